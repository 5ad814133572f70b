"""
Hibernation's compressor: the CPU work that turns the kept pages into the hiberfile's body.

Windows compresses the hiberfile image (Xpress, and Xpress Huffman since Windows 8 [RE S42]);
the power manager does it, ahead of crashdmp, which writes the compressed bytes through the
hibernation stack. No source gives the compressor's speed or how it overlaps the writes, so both
are named assumptions (``[hibernation]``, ``docs/explanation/hibernation.md``):

* **Cost** (ASSUMPTION ``compress_rate``, default 120 MB/s): compressing costs the same time per
  byte it reads, whatever the page. A write of *L* body bytes carries the compressed form of
  ``L × uncompressed ÷ body`` bytes of memory -- the image's average, so equal writes cost equal
  time in timing and in data mode, and a whole image costs ``uncompressed ÷ rate``. The default is
  zlib level 1 on one core of the project machine over stacksim's kernel and user pages
  (98-148 MB/s by class): a real LZ77 + Huffman compressor, like Xpress Huffman.
* **Overlap** (ASSUMPTION ``compress_overlap``, default on): double buffering with one
  compressing CPU. While the port writes one buffer, the compressor fills the other, so the
  compression of write *k* + 1 starts when write *k* is issued, and write *k* + 1 is issued
  when both write *k* has completed and its own bytes are ready:
  ``issue[k+1] = max(done[k], issue[k] + cost)``. The first write waits for its own
  compression. Without overlap, compression starts when the previous write completes:
  ``issue[k+1] = done[k] + cost``.

A write the port retries is not compressed again: its bytes are still in the buffer.
"""

from __future__ import annotations

from typing import Final

from stacksim.metrics import LayerStats

__all__ = ["LAYER", "Compressor", "share_ns"]

LAYER: Final = "compressor"
"""The compressor's name in results and traces."""


def share_ns(length: int, uncompressed_bytes: int, body_bytes: int, rate: int) -> int:
    """
    The time, rounded up to a whole ns, for *length* body bytes' share of the image's memory at *rate* bytes/s.

    ``⌈length × uncompressed ÷ body ÷ rate⌉``: what compressing a write costs, and what
    decompressing a read costs on resume (:mod:`stacksim.resume`); 0 for an empty body.
    """
    if not body_bytes:
        return 0
    return -(-length * uncompressed_bytes * 10**9 // (body_bytes * rate))


class Compressor:
    """
    When each write of the hiberfile's body may be issued, given the compressor's work.

    Args:
        uncompressed_bytes: the kept pages' bytes (what the compressor reads).
        body_bytes: the body as written (what it produces, set headers and padding included).
        rate: bytes of memory compressed per second (``[hibernation] compress_rate``).
        overlap: compress the next write while the current one is written (double buffering).
    """

    def __init__(self, *, uncompressed_bytes: int, body_bytes: int, rate: int, overlap: bool) -> None:
        self.uncompressed_bytes = uncompressed_bytes
        self.body_bytes = body_bytes
        self.rate = rate
        self.overlap = overlap
        self.stats = LayerStats(LAYER)
        """One call per write compressed; its duration is the compression time of that write."""
        self.waited_ns = 0
        """Time crashdmp waited for compressed bytes, with the port idle."""
        self._last_issue: int | None = None
        self._costs: dict[int, int] = {}

    def cost_ns(self, length: int) -> int:
        """The time to compress what a write of *length* body bytes carries, rounded up to a whole ns."""
        cost = self._costs.get(length)
        if cost is None:
            cost = self._costs[length] = share_ns(length, self.uncompressed_bytes, self.body_bytes, self.rate)
        return cost

    def ready(self, now_ns: int, length: int, until_ns: int | None = None) -> int:
        """
        When the next write of *length* bytes may be issued: not before *now_ns* (the previous write's completion).

        Call once per write, in order, as it is issued; the time between *now_ns* and the answer
        is time crashdmp waits for the compressor. *until_ns*: the power fails then (a
        ``power_loss`` fault); work and waiting after it are not counted, since nothing runs.
        """
        cost = self.cost_ns(length)
        start = now_ns if self._last_issue is None or not self.overlap else self._last_issue
        issue = max(now_ns, start + cost)
        if until_ns is not None and issue > until_ns:  # the power fails first: count what ran before it
            self.stats.record(max(0, min(cost, until_ns - start)))
            self.waited_ns += max(0, until_ns - now_ns)
        else:
            self.stats.record(cost)
            self.waited_ns += issue - now_ns
        self._last_issue = issue
        return issue
