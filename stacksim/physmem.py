"""
Simulated physical memory for data mode: the memory map, the class of every page, its bytes.

A crash dump copies physical memory, so data mode needs memory to copy. This module models the
three things a dump depends on, each deterministic from the scenario and its seed:

**The memory map** (:class:`MemoryMap`): which page frame numbers (PFNs) hold RAM, as runs of
``(base_page, page_count)`` like Windows' ``PHYSICAL_MEMORY_DESCRIPTOR`` (``MmPhysicalMemoryBlock``,
copied into the dump header's ``PhysicalMemoryBlock``) [RE S42, S42f]. ``[memory] runs`` gives
it explicitly; otherwise :func:`realistic_map` builds the map of a typical x86-64 PC
(ASSUMPTION, modelled on BIOS/UEFI memory maps [INF S65]):

* page 0 is not RAM Windows uses (firmware: the real-mode interrupt table and BIOS data area;
  crash dumps skip the first physical page [RE S66]);
* pages 0x1–0x9E hold conventional memory, 632 KiB up to the extended BIOS data area at
  0x9FC00; 0x9F000–0xFFFFF (video memory, option and system ROMs) is a hole [INF S65];
* RAM continues at 1 MiB (PFN 0x100) up to 3 GiB (PFN 0xC0000); 3–4 GiB is the PCI/MMIO hole
  (device memory, which a dump does not include [RE S66]; its size is an ASSUMPTION: firmware
  reserves 0.5–1.5 GiB there), and what does not fit below it is remapped from 4 GiB
  (PFN 0x100000) upwards.

Whatever the map, it holds exactly ``ram / 4096`` pages: the holes move RAM up, they do not
take any away. Explicit runs are sorted, neither overlap nor touch, and number at most
:data:`MAX_MEMORY_RUNS`, what the 64-bit dump header's run list holds.

**Page classes** (:class:`PageClass`): kernel, user, file cache, guest (Hyper-V) or free, in
exactly the numbers the dump plans of :mod:`stacksim.memory` size: a kernel dump's body is the
kernel pages, an active dump's the kernel and user pages (everything but free, file-cache and
guest pages). Pages are assigned classes in extents of :data:`EXTENT_PAGES` consecutive pages
(ASSUMPTION: allocations cluster a little; 64 KiB keeps the class map's run-length encoding to
about one run per extent while the classes mix over the whole address space). A keyed
pseudorandom permutation of the extents (a 4-round Feistel network with cycle walking) puts
each page at a position, and the position's range gives the class: counts are exact, every
page's class costs O(1), no table proportional to RAM exists, and a range of pages is computed
with numpy in bulk.

**Page contents**: every page begins with a 32-byte marker, so plaintext is recognisable
anywhere (:func:`find_markers`): the magic ``STKSIMPG`` (8 bytes), the PFN (u64, little-endian),
the page class (u8), 7 zero bytes, and a tag of the seed (u64). The rest is generated from
``(seed, PFN)`` by a counter-based hash (splitmix64's finaliser over 64-bit words), vectorised
over every page of a request, and differs by class so that compression (the hiberfile) has
something to find (ASSUMPTION, plausible shapes, not measured ones):

* free: zero (Windows zeroes free pages before reuse; the zeroed list);
* file cache: text-like, 8-byte words drawn from a 256-word vocabulary;
* kernel: the first half structured (pointer-like 0xFFFFF8... values alternating with small
  integers), the second half zero;
* user: random 64-byte blocks, about half of them copies of a block earlier in the page;
* guest: random (a guest's memory seen from the host; often encrypted or compressed already).

numpy is imported only by the functions that need it, so ``import stacksim`` stays fast.
"""

from __future__ import annotations

import enum
import functools
import hashlib
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, BinaryIO, Final

from stacksim.memory import plan_crash_dump
from stacksim.requests import PAGE_SIZE
from stacksim.units import format_bytes

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from stacksim.scenario import MemorySection, Scenario

    Words = npt.NDArray[np.uint64]

__all__ = [
    "DATA_MODE_MAX_ADDRESS",
    "DATA_MODE_MAX_RAM",
    "EXTENT_PAGES",
    "MAGIC",
    "MARKER_BYTES",
    "MAX_MEMORY_RUNS",
    "MAX_PFN",
    "MemoryMap",
    "PageClass",
    "PhysicalMemory",
    "class_runs",
    "count_markers",
    "data_mode_problem",
    "find_markers",
    "memory_map",
    "page_counts",
    "realistic_map",
    "runs_problem",
    "write_classes",
    "write_image",
]

PAGE_WORDS: Final = PAGE_SIZE // 8
"""64-bit words in a page."""

MAX_PFN: Final = 2**40
"""PFNs an explicit run may reach (exclusive): 2^40 pages of 4 KiB = x86-64's 52-bit physical addresses."""

MAX_MEMORY_RUNS: Final = 42
"""
Most explicit runs: ``DUMP_HEADER64`` declares ``PhysicalMemoryBlockBuffer[700]`` (a 16-byte count, then 16-byte runs)
[RE S56, S58]; 704 bytes lie before ``ContextRecord`` [RE S42f], but a 43rd run would end past the declared buffer, so
stacksim stops at 42 (:data:`stacksim.dumpfmt.MAX_RUNS`).
"""

CONVENTIONAL: Final = (0x1, 0x9E)
"""The realistic map's first run: pages 1–0x9E, 632 KiB below the EBDA at 0x9FC00 [INF S65]."""

HIGH_BASE: Final = 0x100
"""The realistic map's second run starts at 1 MiB, above the video memory and ROMs."""

PCI_HOLE: Final = 0xC0000
"""The realistic map's RAM below 4 GiB ends at 3 GiB: a 1 GiB PCI/MMIO hole (ASSUMPTION)."""

REMAP_BASE: Final = 0x100000
"""RAM that does not fit below the PCI hole continues at 4 GiB."""

EXTENT_PAGES: Final = 16
"""Consecutive pages that share a class (64 KiB; ASSUMPTION, see the module docstring)."""

DATA_MODE_MAX_RAM: Final = 64 * 2**30
"""The most RAM data mode generates (64 GiB): every byte is computed and written (measured: ≈ 5 s per GiB here)."""

DATA_MODE_MAX_ADDRESS: Final = 2**40
"""The highest physical address data mode writes (1 TiB): the sparse file is that long."""

MAGIC: Final = b"STKSIMPG"
"""The first 8 bytes of every simulated page."""

MARKER_BYTES: Final = 32
"""Bytes of the marker at the start of every page: magic, PFN, class, padding, seed tag."""

_MAGIC_WORD: Final = int.from_bytes(MAGIC, "little")
_WINDOW: Final = 4096
"""Pages whose classes are computed (and kept) together for small requests: 256 extents."""
_STAGING_PAGES: Final = 1024
"""Pages :meth:`PhysicalMemory.read_pages` generates at a time (4 MiB) before copying them into its result."""
_BLOCK_PAGES: Final = 1024
"""Pages generated at once (4 MiB): fewer, longer numpy calls (measured: 0.63 GB/s at 64 pages, 1.1 GB/s at 1,024)."""
_MAP_PFN_LIMIT: Final = 2**41
"""A MemoryMap's PFNs stay below 2^41: the realistic map of nearly 4 PiB reaches past 2^40 (its holes push RAM up)."""


class PageClass(enum.IntEnum):
    """What a physical page holds; which dumps take it (:func:`page_counts`)."""

    FREE = 0
    """Free or zeroed: in a complete dump only."""
    KERNEL = 1
    """Kernel, HAL and driver memory: in every dump but the small one."""
    USER = 2
    """Process memory: in complete and active dumps."""
    FILE_CACHE = 3
    """The system file cache: in complete dumps only."""
    GUEST = 4
    """Memory of Hyper-V guests: in complete dumps only."""

    @property
    def label(self) -> str:
        """The class's name in files and messages: ``free``, ``kernel``, ``user``, ``file_cache``, ``guest``."""
        return self.name.lower()


_ORDER: Final = (PageClass.KERNEL, PageClass.USER, PageClass.FILE_CACHE, PageClass.GUEST, PageClass.FREE)
"""The classes in the order their ranges of permuted positions follow each other."""


# -- the memory map ----------------------------------------------------------------------------


def runs_problem(runs: Iterable[tuple[int, int]], *, limit: int = MAX_PFN, max_runs: int = MAX_MEMORY_RUNS) -> str | None:
    """
    What is wrong with a list of ``(base_page, page_count)`` runs, or None if nothing is.

    The runs must be at least one and at most *max_runs*, each a base page ≥ 0 and a page count
    > 0 ending at or below PFN *limit*, sorted by base page, neither overlapping nor touching
    (two runs that touch are one run: merge them).
    """
    runs = list(runs)
    if not runs:
        return "runs = [] lists no memory; give at least one [base_page, page_count] run"
    if len(runs) > max_runs:
        return f"{len(runs):,} runs; a memory map has at most {max_runs} (what the 64-bit dump header's run list holds)"
    end = -1
    for i, (base, count) in enumerate(runs):
        if base < 0 or count <= 0:
            return f"runs[{i}] = [{base}, {count}]: the base page must be ≥ 0 and the page count > 0"
        where = f"runs[{i}] = [{base:#x}, {count:#x}]"
        if base + count > limit:
            return f"{where} ends at PFN {base + count:#x}, past {limit:#x} (52-bit physical addresses)"
        if base < end:
            return f"{where} starts before runs[{i - 1}] ends (PFN {end:#x}): runs must be sorted and must not overlap"
        if base == end:
            return f"{where} starts where runs[{i - 1}] ends: runs that touch are one run; merge them"
        end = base + count
    return None


@dataclass(frozen=True)
class MemoryMap:
    """
    The physical memory map: runs of ``(base_page, page_count)``, sorted, with holes between them.

    A page's *index* counts pages in run order (0 is the first run's base page); its PFN is its
    physical address ÷ 4096. Dump bodies store pages in index order.

    At most :data:`MAX_MEMORY_RUNS` runs, so the map fits in a 64-bit dump header's run list.

    Raises:
        ValueError: the runs break a rule of :func:`runs_problem` (PFNs may reach 2^41 here).
    """

    runs: tuple[tuple[int, int], ...]
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        runs = tuple((int(b), int(c)) for b, c in self.runs)
        problem = runs_problem(runs, limit=_MAP_PFN_LIMIT)
        if problem is not None:
            raise ValueError(problem)
        starts, total = [], 0
        for _base, count in runs:
            starts.append(total)
            total += count
        object.__setattr__(self, "runs", runs)
        object.__setattr__(self, "_starts", tuple(starts))

    @property
    def total_pages(self) -> int:
        """Pages of RAM: the sum of the runs' page counts."""
        return self._starts[-1] + self.runs[-1][1]

    @property
    def max_pfn(self) -> int:
        """The highest PFN + 1: the physical address space spans ``max_pfn × 4096`` bytes."""
        base, count = self.runs[-1]
        return base + count

    def _run_at(self, index: int) -> int:
        if not 0 <= index < self.total_pages:
            raise IndexError(f"page index {index:,} is outside the map's {self.total_pages:,} pages")
        return bisect_right(self._starts, index) - 1

    def pfn_at(self, index: int) -> int:
        """The PFN of the page at *index* (in run order)."""
        r = self._run_at(index)
        return self.runs[r][0] + index - self._starts[r]

    def run_of(self, pfn: int) -> int:
        """
        The number of the run (0 for the first) that holds *pfn*.

        Raises:
            ValueError: *pfn* lies in a hole of the map.
        """
        r = bisect_right(self.runs, (pfn, 2**64)) - 1
        if r < 0 or pfn >= self.runs[r][0] + self.runs[r][1]:
            raise ValueError(f"PFN {pfn:#x} is in a hole of the memory map (no RAM there)")
        return r

    def index_of(self, pfn: int) -> int:
        """
        The index (in run order) of the page at *pfn*.

        Raises:
            ValueError: *pfn* lies in a hole of the map.
        """
        r = self.run_of(pfn)
        return self._starts[r] + pfn - self.runs[r][0]

    def indices_of(self, pfns: Words) -> Words:
        """
        The indices (in run order) of the pages at *pfns*, vectorised: :meth:`index_of` for an array.

        Raises:
            ValueError: a PFN lies in a hole of the map (the first such is named).
        """
        import numpy as np

        bases = np.array([b for b, _ in self.runs], dtype=np.uint64)
        r = np.searchsorted(bases, pfns, side="right") - 1
        ends = np.array([b + c for b, c in self.runs], dtype=np.uint64)
        bad = (r < 0) | (pfns >= ends[np.maximum(r, 0)])
        if bad.any():
            raise ValueError(f"PFN {int(pfns[np.argmax(bad)]):#x} is in a hole of the memory map (no RAM there)")
        starts = np.array(self._starts, dtype=np.uint64)
        out: Words = starts[r] + (pfns - bases[r])
        return out

    def pfns(self, start_index: int, n: int) -> Words:
        """The PFNs of the *n* pages from *start_index* on, as a uint64 array (one numpy call per run crossed)."""
        import numpy as np

        if n < 0 or start_index < 0 or start_index + n > self.total_pages:
            raise IndexError(f"pages {start_index:,}+{n:,} are outside the map's {self.total_pages:,} pages")
        out = np.empty(n, dtype=np.uint64)
        done = 0
        while done < n:
            index = start_index + done
            r = self._run_at(index)
            base, count = self.runs[r]
            offset = index - self._starts[r]
            take = min(n - done, count - offset)
            out[done : done + take] = np.arange(base + offset, base + offset + take, dtype=np.uint64)
            done += take
        return out


def realistic_map(ram: int) -> MemoryMap:
    """
    The memory map of a typical x86-64 PC with *ram* bytes (see the module docstring; ASSUMPTION).

    Raises:
        ValueError: *ram* is not a positive whole number of pages.
    """
    if ram <= 0 or ram % PAGE_SIZE:
        raise ValueError(f"ram = {ram:,} bytes is not a positive whole number of 4 KiB pages")
    left = ram // PAGE_SIZE
    runs = []
    for base, room in (CONVENTIONAL, (HIGH_BASE, PCI_HOLE - HIGH_BASE), (REMAP_BASE, left)):
        take = min(left, room)
        if take:
            runs.append((base, take))
        left -= take
    return MemoryMap(tuple(runs))


def memory_map(section: MemorySection) -> MemoryMap:
    """The map ``[memory]`` describes: its explicit ``runs``, else the realistic map of its ``ram``."""
    if section.runs is not None:
        return MemoryMap(section.runs)
    return realistic_map(section.ram)


def data_mode_problem(section: MemorySection) -> tuple[str, str] | None:
    """``(key, problem)`` if data mode refuses this much memory (:data:`DATA_MODE_MAX_RAM`, :data:`DATA_MODE_MAX_ADDRESS`)."""
    if section.ram > DATA_MODE_MAX_RAM:
        return (
            "[memory] ram",
            f"{format_bytes(section.ram)} is more than data mode generates ({format_bytes(DATA_MODE_MAX_RAM)}): "
            "every byte is computed and written to disk (64 GiB take minutes and 64 GiB of disk); "
            "timing mode (stacksim run) takes any RAM up to 4 PiB",
        )
    top = memory_map(section).max_pfn * PAGE_SIZE
    if top > DATA_MODE_MAX_ADDRESS:
        return (
            "[memory] runs",
            f"the highest physical address is {top:#x}, past the {format_bytes(DATA_MODE_MAX_ADDRESS)} data mode writes "
            "(the memory file is as long as the address space)",
        )
    return None


# -- page classes ------------------------------------------------------------------------------


def _body_pages(section: MemorySection, crash_dump_enabled: int, filter_pages: int) -> int:
    """Pages in the body of the dump :func:`stacksim.memory.plan_crash_dump` plans for *section*'s memory."""
    plan = plan_crash_dump(
        crash_dump_enabled,
        filter_pages,
        section.ram,
        kernel_fraction=section.kernel_fraction,
        active_fraction=section.active_fraction,
        secondary=0,
        top_pfn=memory_map(section).max_pfn,
    )
    body = next(p for p in plan.parts if p.name == "body")
    return body.bytes // PAGE_SIZE


def page_counts(section: MemorySection) -> dict[PageClass, int]:
    """
    Pages of each class, exactly what the dump plans size.

    Kernel pages are a kernel dump's body (``ram × kernel_fraction``, rounded up to pages); kernel
    plus user pages are an active dump's body (``ram × active_fraction``, rounded up); file-cache
    and guest pages are their fractions of the pages, rounded down; free pages are the rest
    (never fewer than ``ram × free_fraction`` rounded down).
    """
    pages = section.ram // PAGE_SIZE
    kernel = _body_pages(section, 2, 0)
    active = _body_pages(section, 1, 1)
    file_cache = int(pages * section.file_cache_fraction)
    guest = int(pages * section.guest_fraction)
    counts = {
        PageClass.KERNEL: kernel,
        PageClass.USER: active - kernel,
        PageClass.FILE_CACHE: file_cache,
        PageClass.GUEST: guest,
        PageClass.FREE: pages - active - file_cache - guest,
    }
    if min(counts.values()) < 0:
        raise ValueError(f"the fractions give negative page counts {counts}: kernel_fraction exceeds the active share")
    return {c: counts[c] for c in PageClass}


_C0: Final = 0x9E3779B97F4A7C15
_C1: Final = 0xBF58476D1CE4E5B9
_C2: Final = 0x94D049BB133111EB


def _mix(z: Words, t: Words) -> None:
    """splitmix64's finaliser applied to *z* in place (*t*: scratch of the same shape); uint64 arithmetic wraps."""
    import numpy as np

    np.add(z, _C0, out=z)  # Python ints: numpy takes them as uint64 (NEP 50), no scalar to build per call
    np.right_shift(z, 30, out=t)
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, _C1, out=z)
    np.right_shift(z, 27, out=t)
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, _C2, out=z)
    np.right_shift(z, 31, out=t)
    np.bitwise_xor(z, t, out=z)


class _ExtentPermutation:
    """A keyed bijection of ``range(n)``: a 4-round Feistel network on 2h bits, cycle-walked into range."""

    def __init__(self, n: int, keys: tuple[int, ...]) -> None:
        import numpy as np

        self.n = n
        half = max(1, -(-max(n - 1, 1).bit_length() // 2))
        self._half, self._mask = np.uint64(half), np.uint64((1 << half) - 1)
        self._keys = tuple(np.uint64(k) for k in keys)

    def _feistel(self, x: Words) -> Words:
        import numpy as np

        left: Words = x >> self._half
        right: Words = x & self._mask
        t = np.empty_like(right)
        for key in self._keys:
            f: Words = right ^ key
            _mix(f, t)
            f &= self._mask
            f ^= left
            left, right = right, f
        left <<= self._half
        left |= right
        return left

    def __call__(self, x: Words) -> Words:
        """The images of *x* (every value in ``range(n)``)."""
        import numpy as np

        y = self._feistel(x)
        walk = np.flatnonzero(y >= self.n)
        while walk.size:  # ends: each value's cycle returns to range(n)
            y[walk] = self._feistel(y[walk])
            walk = walk[y[walk] >= self.n]
        return y


# -- page contents -----------------------------------------------------------------------------

_VOCABULARY: Final = (
    "the of and to in is that for it as with was on be by this are or from at which an not have has but "
    "all can one will were there more if no its been may when who file data page disk dump crash kernel "
    "driver filter memory system write read stack device volume cache block sector index entry value table buffer"
)
"""The words file-cache pages are written in: 64 words of at most 6 letters, separated by spaces."""


def _vocabulary_words() -> Words:
    """256 eight-byte tokens, each word four ways (plain, capitalised, with a comma, ending a line), as uint64."""
    import numpy as np

    forms = ("{} ", "{} ", "{}, ", "{}.\n")
    tokens = [
        form.format(word.capitalize() if n == 1 else word).ljust(8).encode("ascii")
        for n, form in enumerate(forms)
        for word in _VOCABULARY.split()
    ]
    return np.frombuffer(b"".join(tokens), dtype="<u8").astype(np.uint64)


def _user_sources() -> Words:
    """
    Four word-index tables for user pages: about half the 64-byte blocks past the eighth repeat one of the first eight.

    A page uses table ``PFN mod 4``; a repeated block's words hash the same counters as its source, so they are equal.
    """
    import numpy as np

    j = np.arange(PAGE_WORDS, dtype=np.uint64)
    tables = []
    for m in range(4):
        block, word = j // np.uint64(8), j % np.uint64(8)
        repeat = (block >= 8) & ((block + np.uint64(m)) % np.uint64(2) == 0)
        source = (block * np.uint64(5) + np.uint64(m)) % np.uint64(8)
        tables.append(np.where(repeat, source * np.uint64(8) + word, j))
    return np.stack(tables)


def _kernel_patterns() -> tuple[Words, Words]:
    """(mask, base) for the structured half of a kernel page: pointers 0xFFFFF8... in even words, small integers in odd ones."""
    import numpy as np

    even = np.arange(PAGE_WORDS // 2) % 2 == 0
    mask = np.where(even, np.uint64(0x0000_07FF_FFFF_FFF8), np.uint64(0xFFFF)).astype(np.uint64)
    base = np.where(even, np.uint64(0xFFFF_F800_0000_0000), np.uint64(0)).astype(np.uint64)
    return mask, base


@dataclass(frozen=True)
class _Tables:
    """The constant tables page generation uses, built once on first use."""

    words: Words
    vocabulary: Words
    user: Words
    kernel_mask: Words
    kernel_base: Words


@functools.cache
def _tables() -> _Tables:
    import numpy as np

    return _Tables(np.arange(PAGE_WORDS, dtype=np.uint64), _vocabulary_words(), _user_sources(), *_kernel_patterns())


class PhysicalMemory:
    """
    A machine's physical memory: its map, the class of every page, and every page's bytes.

    Nothing is stored per page: classes and contents are computed on demand from the seed, a
    range at a time, in bulk. Not thread-safe (use one per thread).

    Args:
        memory_map: the map (:func:`memory_map`); it must hold ``section.ram / 4096`` pages.
        section: ``[memory]``, whose fractions give the class counts (:func:`page_counts`).
        seed: the scenario's seed (0 to 2^64 − 1).

    Raises:
        ValueError: the map and ``ram`` disagree, or the seed is out of range.
    """

    def __init__(self, memory_map: MemoryMap, section: MemorySection, seed: int) -> None:
        if memory_map.total_pages * PAGE_SIZE != section.ram:
            raise ValueError(
                f"the memory map holds {memory_map.total_pages:,} pages but ram = {section.ram:,} bytes "
                f"({section.ram // PAGE_SIZE:,} pages)"
            )
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed {seed} is not a 64-bit unsigned integer")
        self.map = memory_map
        self.seed = seed
        digest = hashlib.blake2b(b"stacksim.physmem" + seed.to_bytes(8, "little"), digest_size=64).digest()
        words = [int.from_bytes(digest[i : i + 8], "little") for i in range(0, 64, 8)]
        self.seed_tag: int = words[0]
        """The seed's tag, in every page's marker (bytes 24–31)."""
        self._low_key, self._high_key = words[1] & 0x1FF, words[1] & ~0x1FF & (2**64 - 1)  # the content key, split at bit 9
        self._keyed_tables: tuple[Words, Words] | None = None
        self._counts = page_counts(section)
        bounds, total = [], 0
        for c in _ORDER:
            total += self._counts[c]
            bounds.append(total)
        self._bounds = tuple(bounds)
        self._perm = _ExtentPermutation(memory_map.total_pages // EXTENT_PAGES, tuple(words[2:6]))
        self._windows: dict[int, npt.NDArray[np.uint8]] = {}
        self._scratch: Words | None = None  # the hash buffers of one block, kept: fresh ones cost page faults
        self._staging: bytearray | None = None  # read_pages's buffer, kept for the same reason

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> PhysicalMemory:
        """The physical memory of a validated :class:`stacksim.Scenario` (its ``[memory]`` and seed)."""
        return cls(memory_map(scenario.memory), scenario.memory, scenario.scenario.seed)

    def class_counts(self) -> dict[PageClass, int]:
        """Pages of each class (:func:`page_counts`)."""
        return dict(self._counts)

    def classes(self, start_index: int, n: int) -> npt.NDArray[np.uint8]:
        """The classes (:class:`PageClass` values) of the *n* pages from index *start_index* on, as a uint8 array."""
        import numpy as np

        total = self.map.total_pages
        if n < 0 or start_index < 0 or start_index + n > total:
            raise IndexError(f"pages {start_index:,}+{n:,} are outside the map's {total:,} pages")
        first, last = start_index // _WINDOW, (start_index + n - 1) // _WINDOW
        if n == 0 or last - first > 1:
            return self._classes(start_index, n)
        parts = [self._window(w) for w in range(first, last + 1)]
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
        offset = start_index - first * _WINDOW
        return joined[offset : offset + n].copy()

    def _window(self, w: int) -> npt.NDArray[np.uint8]:
        """The classes of window *w* (pages ``w × _WINDOW`` on), kept for the next few calls: reads are mostly sequential."""
        cached = self._windows.get(w)
        if cached is None:
            start = w * _WINDOW
            cached = self._windows[w] = self._classes(start, min(_WINDOW, self.map.total_pages - start))
            if len(self._windows) > 8:
                del self._windows[next(iter(self._windows))]
        return cached

    def _classes(self, start_index: int, n: int) -> npt.NDArray[np.uint8]:
        """:meth:`classes`, computed (no cache)."""
        import numpy as np

        pos = np.arange(start_index, start_index + n, dtype=np.uint64)
        permuted = min(max(self._perm.n * EXTENT_PAGES - start_index, 0), n)  # the pages in whole extents: a prefix
        if permuted:
            first = start_index // EXTENT_PAGES
            extents = pos[:permuted] // EXTENT_PAGES
            last = int(extents[-1])
            images = self._perm(np.arange(first, last + 1, dtype=np.uint64))
            pos[:permuted] = images[extents - first] * EXTENT_PAGES + pos[:permuted] % EXTENT_PAGES
        return self._class_of_position(pos)

    def _classes_at(self, indices: Words) -> npt.NDArray[np.uint8]:
        """The classes of the pages at *indices* (any order): :meth:`classes` for an array of indices."""
        import numpy as np

        pos = indices.copy()
        whole = indices < self._perm.n * EXTENT_PAGES  # pages in whole extents are permuted; the tail is not
        extents, inverse = np.unique(indices[whole] // EXTENT_PAGES, return_inverse=True)
        pos[whole] = self._perm(extents)[inverse] * EXTENT_PAGES + indices[whole] % EXTENT_PAGES
        return self._class_of_position(pos)

    def _class_of_position(self, pos: Words) -> npt.NDArray[np.uint8]:
        """The class whose range of permuted positions holds each of *pos*."""
        import numpy as np

        order = np.array(_ORDER, dtype=np.uint8)
        out: npt.NDArray[np.uint8] = order[np.searchsorted(np.array(self._bounds, dtype=np.uint64), pos, side="right")]
        return out

    def pfns_of(self, wanted: Iterable[PageClass], *, chunk_pages: int = 1 << 20) -> Iterator[Words]:
        """
        The PFNs of every page of the *wanted* classes, ascending, in arrays of at most *chunk_pages*.

        What a kernel dump's bitmap holds is ``pfns_of({PageClass.KERNEL})``; an active dump's,
        ``pfns_of({PageClass.KERNEL, PageClass.USER})``. Empty chunks are skipped.
        """
        import numpy as np

        classes = np.array(sorted(set(wanted)), dtype=np.uint8)
        total = self.map.total_pages
        for start in range(0, total, chunk_pages):
            n = min(chunk_pages, total - start)
            keep = np.isin(self.classes(start, n), classes)
            if keep.any():
                yield self.map.pfns(start, n)[keep]

    def _first_index(self, pfn: int, count: int) -> int:
        """The index of *pfn*, checking that the *count* pages from it lie in one run of the map."""
        base, pages = self.map.runs[self.map.run_of(pfn)]
        if pfn + count > base + pages:
            raise ValueError(
                f"PFNs {pfn:#x}+{count:,} run past the end of the run [{base:#x}, {pages:#x}] (at PFN {base + pages:#x}); "
                "read each run separately"
            )
        return self.map.index_of(pfn)

    def read_pages(self, pfn: int, count: int) -> bytes:
        """
        The bytes of the *count* consecutive pages from *pfn* on, which must all lie in one run of the map.

        Raises:
            ValueError: *pfn* is in a hole, or the pages run past the end of its run.
        """
        if count < 0:
            raise ValueError(f"count = {count}: the number of pages must be ≥ 0")
        self._first_index(pfn, count)
        if self._staging is None:
            self._staging = bytearray(_STAGING_PAGES * PAGE_SIZE)
        pieces = []
        for done in range(0, count, _STAGING_PAGES):
            view = memoryview(self._staging)[: min(_STAGING_PAGES, count - done) * PAGE_SIZE]
            self.read_pages_into(pfn + done, view)
            pieces.append(bytes(view))
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def read_pages_into(self, pfn: int, buffer: bytearray | memoryview) -> None:
        """
        Fill *buffer* (a writable buffer of whole pages) with the pages from *pfn* on, without copying.

        For a caller that reuses one buffer (a write's worth of an MDL): the same bytes as
        :meth:`read_pages` for ``len(buffer) // 4096`` pages.

        Raises:
            ValueError: as :meth:`read_pages`; or *buffer* is not a whole number of pages.
            TypeError: *buffer* is read-only.
        """
        import numpy as np

        view = memoryview(buffer).cast("B")
        count = len(view) // PAGE_SIZE
        if not count:
            self._pages_view(view)  # the buffer's checks
            return
        index = self._first_index(pfn, count)
        pages = self._pages_view(view)
        for done in range(0, count, _BLOCK_PAGES):
            n = min(_BLOCK_PAGES, count - done)
            pfns = np.arange(pfn + done, pfn + done + n, dtype=np.uint64)
            self._fill(pages[done : done + n], pfns, self.classes(index + done, n))

    def read_pfns_into(self, pfns: Words, buffer: bytearray | memoryview) -> None:
        """
        Fill *buffer* with the pages at *pfns* (an array of PFNs of RAM, any order), one after the other.

        What a kernel or active dump's body needs: the pages its bitmap marks
        (:meth:`pfns_of`), which are not consecutive, generated a write's worth at a time.
        *buffer* holds exactly ``len(pfns)`` pages.

        Raises:
            ValueError: a PFN is in a hole, or *buffer* is not ``len(pfns)`` pages.
            TypeError: *buffer* is read-only.
        """
        import numpy as np

        view = memoryview(buffer).cast("B")
        pfns = np.asarray(pfns, dtype=np.uint64)
        if len(view) != pfns.size * PAGE_SIZE:
            raise ValueError(f"a buffer of {len(view):,} bytes does not hold {pfns.size:,} pages")
        pages = self._pages_view(view)
        for done in range(0, pfns.size, _BLOCK_PAGES):
            block = pfns[done : done + _BLOCK_PAGES]
            self._fill(pages[done : done + block.size], block, self._classes_at(self.map.indices_of(block)))

    def _pages_view(self, view: memoryview) -> Words:
        """*view* (a writable byte buffer of whole pages) as a (pages, 512) array of little-endian words."""
        import numpy as np

        if view.readonly:
            raise TypeError("the buffer is read-only")
        if len(view) % PAGE_SIZE:
            raise ValueError(f"a buffer of {len(view):,} bytes is not a whole number of 4 KiB pages")
        pages: Words = np.frombuffer(view, dtype="<u8").reshape(len(view) // PAGE_SIZE, PAGE_WORDS)
        return pages

    def _fill(self, out: Words, pfns: Words, classes: npt.NDArray[np.uint8]) -> None:
        """Generate the pages at *pfns*, of *classes*, into the rows of *out* (at most a block)."""
        import numpy as np

        n = out.shape[0]
        if self._scratch is None:
            self._scratch = np.empty((2, _BLOCK_PAGES, PAGE_WORDS), dtype=np.uint64)
        scratch, spare = self._scratch[0, :n], self._scratch[1, :n]
        for c, size in enumerate(np.bincount(classes, minlength=len(PageClass)).tolist()):
            if not size:
                continue
            generate = _GENERATORS[PageClass(c)]
            if size == n:
                generate(self, out, pfns, scratch)
                continue
            rows = np.flatnonzero(classes == c)
            if rows[-1] - rows[0] + 1 == size:  # consecutive rows: generated in place
                first = int(rows[0])
                generate(self, out[first : first + size], pfns[first : first + size], scratch[:size])
            else:
                generate(self, spare[:size], pfns[rows], scratch[:size])
                out[rows] = spare[:size]
        out[:, 0] = _MAGIC_WORD
        out[:, 1] = pfns
        out[:, 2] = classes
        out[:, 3] = self.seed_tag

    def _counters(self, target: Words, pfns: Words, words: Words | None = None) -> None:
        """
        ``target[i, j] = ((pfns[i] << 9) | j) ^ key``: the hash input of word *j* of each page.

        With *words*, the words' indices XOR the key's low 9 bits (a table of :meth:`_keyed`)
        come from there instead. The PFN and the word index occupy separate bits, so the key is
        XORed into each part apart: one pass over *target* instead of two.
        """
        import numpy as np

        rows = ((pfns << 9) ^ self._high_key)[:, None]
        np.bitwise_or(rows, self._keyed()[0][: target.shape[1]] if words is None else words, out=target)

    def _keyed(self) -> tuple[Words, Words]:
        """The word-index tables (all words; the user pages' four) XOR the content key's low 9 bits, made once."""
        import numpy as np

        if self._keyed_tables is None:
            t, low = _tables(), np.uint64(self._low_key)
            self._keyed_tables = (t.words ^ low, t.user ^ low)
        return self._keyed_tables

    def _free(self, target: Words, pfns: Words, scratch: Words) -> None:
        target.fill(0)

    def _guest(self, target: Words, pfns: Words, scratch: Words) -> None:
        self._counters(target, pfns)
        _mix(target, scratch)

    def _user(self, target: Words, pfns: Words, scratch: Words) -> None:
        import numpy as np

        np.take(self._keyed()[1], (pfns & 3).astype(np.intp), axis=0, out=target)
        self._counters(target, pfns, target)
        _mix(target, scratch)

    def _file_cache(self, target: Words, pfns: Words, scratch: Words) -> None:
        import numpy as np

        seeds = scratch[:, : PAGE_WORDS // 8]
        self._counters(seeds, pfns)
        _mix(seeds, scratch[:, PAGE_WORDS // 8 : PAGE_WORDS // 4])
        np.take(_tables().vocabulary, seeds.view(np.uint8), out=target, mode="wrap")  # each hash byte picks a token

    def _kernel(self, target: Words, pfns: Words, scratch: Words) -> None:
        import numpy as np

        t = _tables()
        half = target[:, : PAGE_WORDS // 2]
        self._counters(half, pfns)
        _mix(half, scratch[:, : PAGE_WORDS // 2])
        np.bitwise_and(half, t.kernel_mask, out=half)
        np.bitwise_or(half, t.kernel_base, out=half)
        target[:, PAGE_WORDS // 2 :] = 0


_GENERATORS: Final = {
    PageClass.FREE: PhysicalMemory._free,
    PageClass.KERNEL: PhysicalMemory._kernel,
    PageClass.USER: PhysicalMemory._user,
    PageClass.FILE_CACHE: PhysicalMemory._file_cache,
    PageClass.GUEST: PhysicalMemory._guest,
}
"""How each class's pages are generated (the marker is written over their first 32 bytes afterwards)."""


# -- finding plaintext -------------------------------------------------------------------------


def find_markers(buf: bytes | bytearray | memoryview, *, step: int = 512) -> Words:
    """
    The PFNs in the page markers found in *buf* at offsets that are multiples of *step*, in offset order.

    A marker is the magic ``STKSIMPG`` followed by the PFN; pages on a disk start on sector
    boundaries, so the default *step* is one 512-byte sector. Scanning a large file in pieces:
    start each piece at a multiple of *step*. Vectorised: one comparison per slot.

    Raises:
        ValueError: *step* is not a positive multiple of 8.
    """
    import numpy as np

    if step <= 0 or step % 8:
        raise ValueError(f"step = {step}: must be a positive multiple of 8 bytes")
    raw = np.frombuffer(memoryview(buf).cast("B"), dtype=np.uint8)
    if raw.size < 16:
        return np.empty(0, dtype=np.uint64)
    slots = (raw.size - 16) // step + 1
    words = raw[: raw.size // 8 * 8].view("<u8")
    k = step // 8
    hits = np.flatnonzero(words[0 : (slots - 1) * k + 1 : k] == np.uint64(_MAGIC_WORD))
    out: Words = words[hits * k + 1].astype(np.uint64)
    return out


def count_markers(buf: bytes | bytearray | memoryview, *, step: int = 512) -> int:
    """How many page markers :func:`find_markers` finds in *buf*."""
    return int(find_markers(buf, step=step).size)


# -- files -------------------------------------------------------------------------------------

IMAGE_CHUNK: Final = 4 * 2**20
"""Bytes generated and written at a time by :func:`write_image` (4 MiB)."""


def write_image(memory: PhysicalMemory, stream: BinaryIO, *, chunk: int = IMAGE_CHUNK) -> None:
    """
    Write *memory* to the seekable *stream* so that byte *p* is physical address *p*.

    Holes are skipped with a seek (a sparse file where the file system allows), and the file
    ends at ``max_pfn × 4096``. Memory use is one *chunk* (a multiple of 4096 bytes).
    """
    pages_per_chunk = max(chunk // PAGE_SIZE, 1)
    buffer = bytearray(pages_per_chunk * PAGE_SIZE)
    for base, count in memory.map.runs:
        stream.seek(base * PAGE_SIZE)
        for offset in range(0, count, pages_per_chunk):
            n = min(pages_per_chunk, count - offset)
            view = memoryview(buffer)[: n * PAGE_SIZE]
            memory.read_pages_into(base + offset, view)
            stream.write(view)
    stream.truncate(memory.map.max_pfn * PAGE_SIZE)


def class_runs(memory: PhysicalMemory, *, chunk_pages: int = 1 << 20) -> Iterator[tuple[int, int, PageClass]]:
    """``(first_pfn, pages, class)`` for each run of consecutive PFNs of one class, ascending; computed a chunk at a time."""
    import numpy as np

    open_run: list[int] | None = None  # [first_pfn, pages, class]
    index = 0
    for base, count in memory.map.runs:
        for offset in range(0, count, chunk_pages):
            n = min(chunk_pages, count - offset)
            classes = memory.classes(index, n)
            index += n
            cuts = np.flatnonzero(classes[1:] != classes[:-1]) + 1
            starts = np.concatenate(([0], cuts))
            lengths = np.diff(np.concatenate((starts, [n])))
            for start, length, c in zip(starts.tolist(), lengths.tolist(), classes[starts].tolist(), strict=True):
                pfn = base + offset + start
                if open_run is not None and open_run[2] == c and open_run[0] + open_run[1] == pfn:
                    open_run[1] += length
                    continue
                if open_run is not None:
                    yield open_run[0], open_run[1], PageClass(open_run[2])
                open_run = [pfn, length, c]
    if open_run is not None:
        yield open_run[0], open_run[1], PageClass(open_run[2])


def write_classes(memory: PhysicalMemory, stream: IO[str]) -> None:
    """
    Write the page-class map as JSON text: the map, the counts per class, and the class runs.

    Byte-deterministic for a scenario and seed: fixed key order, one class run per line
    (``docs/reference/cli.md`` describes every key).
    """
    counts = ", ".join(f'"{c.label}": {n}' for c, n in memory.class_counts().items())
    runs = ", ".join(f"[{b}, {c}]" for b, c in memory.map.runs)
    stream.write(
        '{\n  "format": "stacksim page classes",\n  "version": 1,\n'
        f'  "page_size": {PAGE_SIZE},\n  "seed": {memory.seed},\n  "extent_pages": {EXTENT_PAGES},\n'
        f'  "memory_map": [{runs}],\n  "counts": {{{counts}}},\n  "classes": ['
    )
    lines: list[str] = []
    first = True
    for pfn, pages, c in class_runs(memory):
        lines.append(f'{"" if first else ","}\n    {{"first_pfn": {pfn}, "pages": {pages}, "class": "{c.label}"}}')
        first = False
        if len(lines) >= 4096:
            stream.write("".join(lines))
            lines.clear()
    stream.write("".join(lines) + "\n  ]\n}\n")
