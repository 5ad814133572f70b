"""
XTS benchmark: stacksim.xts.XtsCipher beside cryptography's per-sector XTS and bulk ECB, in one run.

Rows, for writes of 64 KiB, 1 MiB and 4 MiB of random bytes:

* **per-sector XTS**: one ``cryptography`` ``modes.XTS`` object per 512-byte sector (what a
  straightforward filter would do; the reference the tests compare with).
* **ECB update()**: one ``cryptography`` ECB call per write, returning new bytes: what "the cipher
  in bulk" costs when each call allocates its output.
* **ECB update_into**: the same call into a buffer allocated once: the AES itself, the limit no
  XTS can beat (XTS is this plus the tweak masks and two XORs).
* **XtsCipher.encrypt_into, scattered**: stacksim's XTS in place in a buffer allocated once, each
  call 2^20 sectors past the one before (neither the next sector nor inside the mask window: the
  masks are built for each write's own sectors).
* **XtsCipher.encrypt_into, ascending**: the same, each call at the sector after the previous
  call's last, as a dump's writes come (how ``dumpfve.sys`` uses it): masks from the mask window,
  built 2,048 sectors at a time.
* **XtsCipher.encrypt, scattered**: the first XtsCipher row, returning new bytes.

(A write to the sectors of the write before it would find its masks in the window still: a row at
one fixed sector would measure XTS without the masks.)

A second table splits XtsCipher's time per sector, a chunk of 1,024 sectors at a time: the masks,
the two XORs, the ECB.
Times are CPU seconds of this process (``time.process_time``), so other load on the machine counts
less than in wall time; each figure is the best of the repetitions, and the methods take turns
within each repetition. MB/s is 10^6 bytes per second. Run on demand, not in the test suite:

    PYTHONPATH=. python3 benchmarks/bench_xts.py            # ~1 minute
    PYTHONPATH=. python3 benchmarks/bench_xts.py --quick    # fewer repetitions and bytes
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Callable

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from stacksim.xts import CHUNK_SECTORS, XtsCipher, derive_key

SECTOR = 512
SIZES = (64 * 1024, 2**20, 4 * 2**20)
FIRST = 2**40 + 12345
"""The first sector of every write: any place on a large disk."""


def per_sector_xts(key: bytes, data: bytes, first: int) -> bytes:
    """*data* through one cryptography XTS object per sector."""
    out = []
    for k in range(len(data) // SECTOR):
        context = Cipher(algorithms.AES(key), modes.XTS((first + k).to_bytes(16, "little"))).encryptor()
        out.append(context.update(data[k * SECTOR : (k + 1) * SECTOR]))
    return b"".join(out)


def methods(key: bytes, data: bytes) -> dict[str, Callable[[], object]]:
    """The rows of the table for one write *data*, each a call that encrypts it once."""
    ecb = Cipher(algorithms.AES(key[:32]), modes.ECB()).encryptor()
    ecb_out = bytearray(len(data) + 16)
    xts = XtsCipher(key)
    ascending = XtsCipher(key)
    buf = bytearray(data)
    sectors = len(data) // SECTOR
    scattered = itertools.count(FIRST, 2**20)
    follow = itertools.count(FIRST, sectors)
    return {
        "per-sector XTS": lambda: per_sector_xts(key, data, FIRST),
        "ECB update()": lambda: ecb.update(data),
        "ECB update_into": lambda: ecb.update_into(data, ecb_out),
        "XtsCipher.encrypt_into, scattered": lambda: xts.encrypt_into(buf, next(scattered), buf),
        "XtsCipher.encrypt_into, ascending": lambda: ascending.encrypt_into(buf, next(follow), buf),
        "XtsCipher.encrypt, scattered": lambda: xts.encrypt(data, next(scattered)),
    }


def cpu_seconds(call: Callable[[], object], times: int) -> float:
    """CPU seconds per call over *times* calls."""
    t0 = time.process_time()
    for _ in range(times):
        call()
    return (time.process_time() - t0) / times


def throughput(size: int, reps: int, budget: int) -> dict[str, float]:
    """Best MB/s of each method for writes of *size* bytes, *reps* interleaved repetitions of about *budget* bytes each."""
    key = derive_key(1)
    data = os.urandom(size)
    assert XtsCipher(key).encrypt(data, FIRST) == per_sector_xts(key, data, FIRST)
    rows = methods(key, data)
    best = dict.fromkeys(rows, float("inf"))
    for _ in range(reps):
        for name, call in rows.items():
            share = budget // 8 if name == "per-sector XTS" else budget  # it is 10-50x slower
            best[name] = min(best[name], cpu_seconds(call, max(1, share // size)))
    return {name: size / seconds / 1e6 for name, seconds in best.items()}


def breakdown(reps: int) -> dict[str, float]:
    """XtsCipher's time per sector (ns), step by step, a chunk at a time."""
    key = derive_key(1)
    xts = XtsCipher(key)
    data = bytearray(os.urandom(2**20))
    xts.encrypt_into(data, FIRST, data)
    assert xts._scratch is not None
    v = xts._scratch.views(CHUNK_SECTORS)
    out = xts._scratch.window_v128(0, CHUNK_SECTORS)
    work, work_in, work_out = xts._scratch.work_views(CHUNK_SECTORS)
    masks = xts._scratch.mask_words[: len(work)]
    src = np.frombuffer(data, dtype=np.uint64)[: len(work)]
    steps: dict[str, Callable[[], object]] = {
        "tweak masks T_0..T_31 (incl. the tweak ECB)": lambda: xts._masks(v, FIRST, out),
        "XOR masks in": lambda: np.bitwise_xor(src, masks, out=work),
        "ECB of every block (in place)": lambda: xts._forward.update_into(work_in, work_out),
        "XOR masks out": lambda: np.bitwise_xor(work, masks, out=work),
    }
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(reps):
        for name, call in steps.items():
            best[name] = min(best[name], cpu_seconds(call, 100))
    return {name: seconds / CHUNK_SECTORS * 1e9 for name, seconds in best.items()}


def main() -> None:
    """Measure and print the two tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 repetitions of 8 MiB instead of 7 of 32 MiB")
    args = ap.parse_args()
    reps, budget = (3, 8 * 2**20) if args.quick else (7, 32 * 2**20)
    print("MB/s = 10^6 bytes per CPU second (time.process_time); best of", reps, "interleaved repetitions\n")
    print("| write | method | MB/s | ÷ ECB update_into | ÷ ECB update() |")
    print("|---|---|---|---|---|")
    for size in SIZES:
        rates = throughput(size, reps, budget)
        for name, rate in rates.items():
            print(
                f"| {size // 1024:,} KiB | {name} | {rate:,.0f} | {rate / rates['ECB update_into']:.2f} | "
                f"{rate / rates['ECB update()']:.2f} |"
            )
    print("\nXtsCipher, ns per 512-byte sector (chunks of 1,024 sectors):\n")
    print("| step | ns/sector |")
    print("|---|---|")
    parts = breakdown(reps)
    for name, ns in parts.items():
        print(f"| {name} | {ns:.0f} |")
    print(f"| total | {sum(parts.values()):.0f} |")


if __name__ == "__main__":
    main()
