r"""
AES-256-XTS over whole writes, in dm-crypt's ``aes-xts-plain64`` convention.

This is the cipher ``dumpfve.sys`` applies to every page of a data-mode dump, and the one
``stacksim extract`` undoes (``docs/reference/encryption.md``).

**The convention** [IEEE 1619 S67; dm-crypt S68]. The data unit is one 512-byte sector. The
tweak of a sector is its number relative to the start of the partition, as a 128-bit
little-endian integer (``plain64``: the sector number in the low 64 bits, zeros above). The
64-byte key is *key1* (the data key, bytes 0-31) followed by *key2* (the tweak key, bytes
32-63). Block *j* (0 to 31) of sector *i* is

    C_j = E_key1(P_j xor T_j) xor T_j,    T_j = E_key2(i) * alpha^j

in GF(2^128) modulo x^128 + x^7 + x^2 + x + 1, each 16-byte block read as a little-endian
integer (multiplying by alpha shifts it up one bit and, if a bit falls off the top, XORs 0x87
into the lowest byte). That is exactly what ``cryptography``'s ``modes.XTS(tweak)`` computes for
one sector, so any XTS implementation can check the bytes.

**Why not one XTS object per sector.** A ``cryptography`` XTS object per 512-byte sector runs at
10-120 MB/s, depending on the machine: the time goes into building the object, not into AES
(``benchmarks/bench_xts.py``). :class:`XtsCipher` handles a write of *n*
consecutive sectors with two ECB calls: one for the *n* initial tweaks ``E_key2(i)``, one for
all ``32 n`` blocks (in place), with the ``32 n`` masks ``T_j`` XORed in before and after. The
masks are built with numpy, without a loop over *j* and without a loop over sectors:

1. ``T_b`` for *b* = 0 to 7: both 64-bit words shifted up *b* bits, the *b* bits that cross
   into the high word carried over, the *b* bits that fall off the top folded back in (times
   0x87, carry-less, from a table of 128 values).
2. Multiplying by ``alpha^8`` moves a block up one byte and folds the byte that falls off into
   the two lowest bytes. So ``T_{8a+b}`` (*a* = 1, 2, 3) is ``T_b`` moved up *a* bytes: with
   the masks laid out group by group (every sector's blocks 0-7, then every sector's blocks
   8-15, ...), that is **one memory copy per group**, shifted by *a* bytes. The copy brings the
   top *a* bytes of the block before into the low *a* bytes of each block; one XOR of each
   block's low 32-bit word replaces them with the fold of the *a* bytes that fell off its top.
3. One copy of 128-byte groups puts the masks back in sector order.

Masks are built for chunks of at most :data:`CHUNK_SECTORS` sectors, and the data is XORed,
encrypted and XORed again :data:`PASS_SECTORS` at a time, in buffers that each :class:`XtsCipher`
allocates when it first needs them: memory stays a few times the chunk size (about 2.3 MiB),
whatever the size of the write or the dump. ``benchmarks/bench_xts.py``
measures all of this against the ECB limit (``docs/explanation/performance.md``).

**The mask window.** Building masks costs about 25 numpy calls, 60-100 µs, however few sectors
they are for: at a 64 KiB write (128 sectors) that fixed cost was nearly all of the cipher's time.
The masks depend only on the sector numbers and key2, so they are computed for
:data:`MASK_WINDOW_SECTORS` sectors at a time, in chunks of :data:`CHUNK_SECTORS`, and each write
takes its slice: a write that starts where the one before it ended (a dump is written in
ascending order) gets the masks of the window's next sectors ahead of it; any other write gets
masks for its own sectors only. The bytes are the same either way.

The seed-derived key (:func:`derive_key`) is for simulation only: anyone who knows the scenario
knows the key.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias, final

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from stacksim._io import InputError, read_input, shorten, terminal_safe
from stacksim.requests import SECTOR_SIZE

__all__ = [
    "CHUNK_SECTORS",
    "KEY_BYTES",
    "KEY_FILE_FORMS",
    "KEY_LABEL",
    "MASK_WINDOW_SECTORS",
    "MAX_SECTOR",
    "PASS_SECTORS",
    "XtsCipher",
    "derive_key",
    "read_key_file",
]

KEY_BYTES: Final = 64
"""An AES-256-XTS key: key1 (data, 32 bytes) then key2 (tweak, 32 bytes)."""

MAX_SECTOR: Final = 2**64
"""One past the last sector number ``plain64`` can express: a write must end at or before it."""

CHUNK_SECTORS: Final = 1024
"""Sectors worked at once (512 KiB): numpy's cost per call is small against it, and the buffers stay near the cache."""

PASS_SECTORS: Final = 128
"""Sectors XORed, encrypted and XORed again at a time (64 KiB): the data, its masks and the work buffer
stay in the core's L2 cache between the three passes (measured here: within 2-3 % of whole chunks of
1,024 sectors at 1 MiB writes, and a work buffer of 64 KiB instead of 512 KiB)."""

MASK_WINDOW_SECTORS: Final = 2 * CHUNK_SECTORS
"""Sectors whose masks are kept (1 MiB of masks): computed ahead for writes in ascending order (module docstring)."""

BLOCKS: Final = SECTOR_SIZE // 16
"""AES blocks per sector (32)."""
WORDS: Final = SECTOR_SIZE // 8
"""64-bit words per sector (64)."""

Buffer: TypeAlias = bytes | bytearray | memoryview
"""What :class:`XtsCipher` reads (an ``out`` buffer must be writable)."""

_U64 = np.uint64
_U32 = np.uint32
_Words: TypeAlias = npt.NDArray[np.uint64]
_Words32: TypeAlias = npt.NDArray[np.uint32]
_Bytes: TypeAlias = npt.NDArray[np.uint8]
_Opaque: TypeAlias = npt.NDArray[np.void]


def _fold(x: _Words32, out: _Words32, tmp: _Words32) -> None:
    """*out* = *x* times 0x87, carry-less (x ^ x<<1 ^ x<<2 ^ x<<7): what bits that fall off the top add at the bottom."""
    np.left_shift(x, _U32(1), out=out)
    np.bitwise_xor(out, x, out=out)
    np.left_shift(x, _U32(2), out=tmp)
    np.bitwise_xor(out, tmp, out=out)
    np.left_shift(x, _U32(7), out=tmp)
    np.bitwise_xor(out, tmp, out=out)


def _fold_table() -> _Words32:
    """The fold of every 7-bit value: at most 7 bits fall off a block shifted up 0 to 7 bits."""
    bits = np.arange(128, dtype=_U32)
    out = np.empty_like(bits)
    _fold(bits, out, np.empty_like(bits))
    return out


_FOLD7: Final = _fold_table()

_TOP_SHIFT: Final = np.array([24, 16, 8], dtype=_U32)[:, None]
"""A block's top 32-bit word shifted right by these keeps its top a = 1, 2, 3 bytes."""


@final
class _Scratch:
    """
    The buffers for chunks of up to *capacity* sectors, allocated once and reused (names as in :class:`_Views`).

    ``masks`` is the mask window: T_0..T_31 of :data:`MASK_WINDOW_SECTORS` consecutive sectors.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.sectors = np.zeros((capacity, 2), dtype=_U64)  # the tweaks' plaintext; the high words stay 0
        self.count = np.arange(capacity, dtype=_U64)
        self.initial = np.zeros(capacity * 16 + 16, dtype=np.uint8)  # ECB output wants 15 spare bytes
        # Flat buffers: each chunk's views are contiguous prefixes, which numpy walks in one loop.
        self.z = np.zeros(capacity * 32, dtype=_U64)
        self.fold = np.zeros(capacity * 8, dtype=_U32)
        self.first = np.zeros(16 + capacity * 128, dtype=np.uint8)  # 16 zero bytes, then T_0..T_7 of each sector
        self.groups = np.zeros(capacity * SECTOR_SIZE, dtype=np.uint8)
        self.top = np.zeros(capacity * 8, dtype=_U32)
        self.fell = np.zeros(capacity * 24, dtype=_U32)
        self.fix = np.zeros(capacity * 24, dtype=_U32)
        self.fix_tmp = np.zeros(capacity * 24, dtype=_U32)
        self.masks = np.zeros(MASK_WINDOW_SECTORS * SECTOR_SIZE, dtype=np.uint8)
        self.mask_words = self.masks.view(_U64)
        self.work = np.zeros(PASS_SECTORS * SECTOR_SIZE + 16, dtype=np.uint8)  # ECB output wants 15 spare bytes
        self._views: dict[int, _Views] = {}
        self._work: dict[int, tuple[_Words, memoryview, memoryview]] = {}

    def views(self, n: int) -> _Views:
        """The arrays for a chunk of *n* sectors, cached (a dump writes the same few sizes over and over)."""
        views = self._views.get(n)
        if views is None:
            if len(self._views) >= 8:
                self._views.clear()
            views = self._views[n] = _Views.make(self, n)
        return views

    def work_views(self, n: int) -> tuple[_Words, memoryview, memoryview]:
        """The work buffer for a chunk of *n* sectors: its words, the ECB's input and its output (15 bytes longer), cached."""
        views = self._work.get(n)
        if views is None:
            if len(self._work) >= 8:
                self._work.clear()
            size = n * SECTOR_SIZE
            views = self._work[n] = (self.work[:size].view(_U64), self.work[:size].data, self.work[: size + 16].data)
        return views

    def window_v128(self, start: int, n: int) -> _Opaque:
        """Window sectors *start* .. *start* + *n* - 1 as (n, 4) items of 128 bytes: where :meth:`XtsCipher._masks` puts masks."""
        return self.masks[start * SECTOR_SIZE : (start + n) * SECTOR_SIZE].view("V128").reshape(n, 4)


@final
@dataclass(frozen=True, slots=True)
class _Views:
    """Views of a :class:`_Scratch` for a chunk of exactly *n* sectors; T is E_key2(sector), T_j its block-j mask."""

    n: int
    sector_low: _Words  # (n,): the sector numbers, the low words of the tweaks' plaintext
    count: _Words  # (n,): 0 .. n-1
    sector_bytes: memoryview  # the tweaks' plaintext, (sector, 0) per sector
    initial_out: memoryview
    initial: _Words  # (n, 2): T
    z: _Words  # (2, 8, n, 2): [0, b] = T_b's words; [1, b] = the top byte of each word of T, shifted up b bits
    by_b: _Words  # (8, n, 2): z[0], T_b for b = 0..7, block b of every sector
    by_b32: _Words32  # (8, n, 4): by_b as 32-bit words
    crossing: _Words  # (8, n, 2): z[1], then >> 8: the top b bits of each word, which cross or fall off
    fold: _Words32  # (8, n): the fold of the bits that fall off
    by_b_v16: _Opaque  # (8, n): by_b, one 16-byte item per block
    first_v16: _Opaque  # (n, 8): T_0..T_7 in sector order
    windows: _Bytes  # (4, 128 n), read-only: row a is T_0..T_7 of every sector, moved up a bytes
    groups: _Bytes  # (4, 128 n): group a holds T_8a..T_8a+7 of every sector
    top32: _Words32  # (8 n,): the top 32-bit word of T_0..T_7 (strided)
    top: _Words32  # (8 n,): a contiguous copy
    fell: _Words32  # (3, 8 n): the top a bytes of T_0..T_7, a = 1, 2, 3: what a move up a bytes pushes out
    fix: _Words32  # (3, 8 n): what each block's low word of groups 1-3 gets XORed with
    fix_tmp: _Words32
    low_words: _Words32  # (3, 8 n): the low 32-bit word of every block of groups 1-3 (strided)
    groups_v128: _Opaque  # (4, n): one 128-byte item per group and sector

    @classmethod
    def make(cls, s: _Scratch, n: int) -> _Views:
        """Cut the views for *n* sectors out of *s*."""
        z = s.z[: 32 * n].reshape(2, 8, n, 2)
        first = s.first[: 16 + n * 128]
        groups = s.groups[: n * SECTOR_SIZE].reshape(4, n * 128)
        return cls(
            n=n,
            sector_low=s.sectors[:n, 0],
            count=s.count[:n],
            sector_bytes=s.sectors[:n].data.cast("B"),
            initial_out=s.initial[: n * 16 + 16].data,
            initial=s.initial[: n * 16].view(_U64).reshape(n, 2),
            z=z,
            by_b=z[0],
            by_b32=z[0].view(_U32),
            crossing=z[1],
            fold=s.fold[: 8 * n].reshape(8, n),
            by_b_v16=z[0].view("V16")[:, :, 0],
            first_v16=first[16:].view("V16").reshape(n, 8),
            windows=np.lib.stride_tricks.as_strided(first[16:], shape=(4, n * 128), strides=(-1, 1), writeable=False),
            groups=groups,
            top32=first[16:].view(_U32)[3::4],
            top=s.top[: 8 * n],
            fell=s.fell[: 24 * n].reshape(3, 8 * n),
            fix=s.fix[: 24 * n].reshape(3, 8 * n),
            fix_tmp=s.fix_tmp[: 24 * n].reshape(3, 8 * n),
            low_words=groups[1:].view(_U32)[:, 0::4],
            groups_v128=groups.view("V128"),
        )


@final
class XtsCipher:
    """
    AES-256-XTS (``aes-xts-plain64``) for writes of whole sectors.

    Not thread-safe: each instance works in its own buffers, as each dump filter does in the
    buffer it allocated in DriverEntry.

    Args:
        key: 64 bytes, key1 (data) then key2 (tweak); the halves must differ.

    Raises:
        ValueError: a key of another length, or with equal halves.
    """

    def __init__(self, key: bytes, *, backend: str = "auto") -> None:
        key = bytes(key)
        if len(key) != KEY_BYTES:
            raise ValueError(f"an AES-256-XTS key is {KEY_BYTES} bytes, not {len(key)}")
        if key[:32] == key[32:]:
            raise ValueError("the two halves of an XTS key (key1 for the data, key2 for the tweak) must differ")
        self._tweak = Cipher(algorithms.AES(key[32:]), modes.ECB()).encryptor()
        self._forward = Cipher(algorithms.AES(key[:32]), modes.ECB()).encryptor()
        self._backward = Cipher(algorithms.AES(key[:32]), modes.ECB()).decryptor()
        if backend not in ("auto", "numpy", "compiled"):
            raise ValueError(f"backend must be 'auto', 'numpy' or 'compiled', not {backend!r}")
        self._kernel = _compiled_kernel(required=backend == "compiled") if backend != "numpy" else None
        """numba's :func:`stacksim._xts_compiled.xor_masks` when installed (and not refused), else None: numpy masks."""
        self.backend = "compiled" if self._kernel is not None else "numpy"
        self._scratch: _Scratch | None = None
        self._window_first = 0
        """The first sector of the mask window (``_Scratch.masks``) ..."""
        self._window_sectors = 0
        """... and how many sectors' masks it holds (0: none yet)."""
        self._next: int | None = None
        """The sector after the last write: a write that starts there gets masks ahead of it."""

    def encrypt(self, data: Buffer, first_sector: int) -> bytes:
        """The ciphertext of *data*: whole sectors, the first of which is sector *first_sector* of the partition."""
        return self._run(data, first_sector, encrypt=True)

    def decrypt(self, data: Buffer, first_sector: int) -> bytes:
        """The plaintext of *data*: whole sectors, the first of which is sector *first_sector* of the partition."""
        return self._run(data, first_sector, encrypt=False)

    def encrypt_into(self, data: Buffer, first_sector: int, out: bytearray | memoryview) -> None:
        """:meth:`encrypt` into *out*: as long as *data*, and either *data* itself (in place) or not overlapping it."""
        self._run_into(data, first_sector, out, encrypt=True)

    def decrypt_into(self, data: Buffer, first_sector: int, out: bytearray | memoryview) -> None:
        """:meth:`decrypt` into *out*: as long as *data*, and either *data* itself (in place) or not overlapping it."""
        self._run_into(data, first_sector, out, encrypt=False)

    def _run(self, data: Buffer, first_sector: int, *, encrypt: bool) -> bytes:
        src = memoryview(data).cast("B")
        out = bytearray(len(src))
        self._run_into(src, first_sector, out, encrypt=encrypt)
        return bytes(out)

    def _run_into(self, data: Buffer, first_sector: int, out: bytearray | memoryview, *, encrypt: bool) -> None:
        """
        ``out = AES(data xor masks) xor masks``, :data:`PASS_SECTORS` at a time, the masks from the window.

        Each pass XORs the data with its masks into the work buffer, runs the ECB over it in place
        and XORs the masks again into *out*: three passes over 64 KiB that stay in the core's cache.
        """
        src = memoryview(data).cast("B")
        dst = memoryview(out).cast("B")
        n, first_sector = _check_write(len(src), first_sector)
        if dst.readonly or len(dst) != len(src):
            raise ValueError(f"out must be a writable buffer of {len(src):,} bytes, the length of the data")
        src_words = np.frombuffer(src, dtype=_U64)
        dst_words = np.frombuffer(dst, dtype=_U64)
        if np.may_share_memory(src_words, dst_words) and src_words.ctypes.data != dst_words.ctypes.data:
            raise ValueError("out overlaps the data without being the same buffer")
        if self._scratch is None:
            self._scratch = _Scratch(CHUNK_SECTORS)
        scratch = self._scratch
        mask_words = scratch.mask_words
        cipher = self._forward if encrypt else self._backward
        xor = np.bitwise_xor
        ahead = first_sector == self._next
        self._next = first_sector + n
        kernel = self._kernel
        if kernel is not None:  # the masks computed in registers as they are XORed in: no window
            for start in range(0, n, PASS_SECTORS):
                count = min(PASS_SECTORS, n - start)
                v = scratch.views(count)
                np.add(v.count, _U64(first_sector + start), out=v.sector_low)
                self._tweak.update_into(v.sector_bytes, v.initial_out)
                work, work_in, work_out = scratch.work_views(count)
                lo, hi = start * WORDS, (start + count) * WORDS
                kernel(src_words[lo:hi], work, v.initial)
                cipher.update_into(work_in, work_out)
                kernel(work, dst_words[lo:hi], v.initial)
            return
        for start in range(0, n, PASS_SECTORS):
            count = min(PASS_SECTORS, n - start)
            at = first_sector + start - self._window_first
            if at < 0 or at + count > self._window_sectors:
                self._fill_window(first_sector + start, MASK_WINDOW_SECTORS if ahead else n - start)
                at = 0
            work, work_in, work_out = scratch.work_views(count)
            lo, hi = start * WORDS, (start + count) * WORDS
            masks = mask_words[at * WORDS : (at + count) * WORDS]
            xor(src_words[lo:hi], masks, out=work)
            cipher.update_into(work_in, work_out)
            xor(work, masks, out=dst_words[lo:hi])

    def _fill_window(self, first_sector: int, n: int) -> None:
        """Put the masks of up to *n* sectors from *first_sector* into the window (at most its size; sectors stay below 2**64)."""
        assert self._scratch is not None
        n = min(n, MASK_WINDOW_SECTORS, MAX_SECTOR - first_sector)
        self._window_sectors = 0  # (nothing valid while it is being filled)
        for start in range(0, n, CHUNK_SECTORS):
            count = min(CHUNK_SECTORS, n - start)
            self._masks(self._scratch.views(count), first_sector + start, self._scratch.window_v128(start, count))
        self._window_first, self._window_sectors = first_sector, n

    def _masks(self, v: _Views, first_sector: int, out: _Opaque) -> None:
        """
        Fill *out* with T_0..T_31 of sectors *first_sector* .. *first_sector* + n - 1 (module docstring, steps 1-3).

        *out* is (n, 4) items of 128 bytes: :meth:`_Scratch.window_v128`.
        """
        np.add(v.count, _U64(first_sector), out=v.sector_low)
        self._tweak.update_into(v.sector_bytes, v.initial_out)
        # 1. T_b = T with both words shifted up b bits; the top b bits of the low word cross into
        #    the high word, and the top b bits of the high word fall off and come back folded.
        np.copyto(v.by_b[0], v.initial)
        np.right_shift(v.initial, _U64(56), out=v.crossing[0])
        for k in (1, 2, 4):
            np.left_shift(v.z[:, :k], _U64(k), out=v.z[:, k : 2 * k])  # rows 1, 2-3, 4-7 from the rows before
        np.right_shift(v.crossing, _U64(8), out=v.crossing)
        np.take(_FOLD7, v.crossing[:, :, 1], out=v.fold, mode="clip")
        np.bitwise_xor(v.by_b32[:, :, 0], v.fold, out=v.by_b32[:, :, 0])
        np.bitwise_or(v.by_b[:, :, 1], v.crossing[:, :, 0], out=v.by_b[:, :, 1])
        np.copyto(v.first_v16, v.by_b_v16.T)
        # 2. Group a is group 0 moved up a bytes. Each block's low a bytes then hold the top a bytes
        #    of the block before (or zeros), to be replaced by the fold of its own top a bytes.
        np.copyto(v.groups, v.windows)
        np.copyto(v.top, v.top32)
        np.right_shift(v.top[None], _TOP_SHIFT, out=v.fell)
        _fold(v.fell, v.fix, v.fix_tmp)
        np.bitwise_xor(v.fix[:, 1:], v.fell[:, :-1], out=v.fix[:, 1:])
        np.bitwise_xor(v.low_words, v.fix, out=v.low_words)
        # 3. Back to sector order.
        np.copyto(out, v.groups_v128.T)


def _compiled_kernel(*, required: bool) -> Callable[..., None] | None:
    """numba's mask kernel, or None when numba is not installed or ``STACKSIM_XTS=numpy`` asks for numpy."""
    import os

    if not required and os.environ.get("STACKSIM_XTS") == "numpy":
        return None
    try:
        from stacksim._xts_compiled import xor_masks
    except ImportError:
        if required:
            raise
        return None
    kernel: Callable[..., None] = xor_masks
    return kernel


def _check_write(length: int, first_sector: int) -> tuple[int, int]:
    """
    The number of sectors in a write of *length* bytes from *first_sector*, and *first_sector* as an int.

    Raises:
        TypeError: *first_sector* is not an integer (``True`` is not a sector number).
        ValueError: *length* is not a positive multiple of 512, or the sectors leave 0 .. 2**64 - 1.
    """
    if isinstance(first_sector, bool):
        raise TypeError("first_sector must be an integer, not bool")
    first_sector = operator.index(first_sector)
    if length <= 0 or length % SECTOR_SIZE:
        raise ValueError(f"XTS works on whole {SECTOR_SIZE}-byte sectors: {length:,} bytes is not a positive multiple")
    n = length // SECTOR_SIZE
    if first_sector < 0 or first_sector + n > MAX_SECTOR:
        raise ValueError(f"sectors {first_sector:,} .. {first_sector + n - 1:,} are outside 0 .. 2**64 - 1 (plain64 tweaks)")
    return n, first_sector


KEY_LABEL: Final = b"stacksim aes-256-xts-plain64 simulation key v1\x00"
"""What :func:`derive_key` hashes before the seed: a fixed label, so no other use of SHA-512 on a seed gives the same key."""


def derive_key(seed: int) -> bytes:
    """
    The 64-byte AES-256-XTS key stacksim uses when no ``--key-file`` is given. **Simulation only.**

    The key is SHA-512 of :data:`KEY_LABEL`, the seed as 8 bytes little-endian and a counter
    byte (0, then 1, 2, ... while the two halves of the digest are equal, which SHA-512 makes
    vanishingly unlikely but which XTS forbids). It is deterministic, so the same scenario and
    seed give the same disk image; and it is not secret, since anyone with the scenario can
    derive it.

    Raises:
        ValueError: a seed outside 0 .. 2**64 - 1.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"the seed must be an integer from 0 to 2**64 - 1, not {seed!r}")
    for counter in range(256):
        key = hashlib.sha512(KEY_LABEL + seed.to_bytes(8, "little") + bytes([counter])).digest()
        if key[:32] != key[32:]:
            return key
    raise AssertionError("SHA-512 gave 256 digests with equal halves")  # pragma: no cover


KEY_FILE_FORMS: Final = "exactly 64 raw bytes, or 128 hex digits (surrounding whitespace allowed)"
"""What a key file may hold, as the error messages say it."""

_HEX_KEY: Final = re.compile(rb"[0-9A-Fa-f]{128}")
_HEX_TEXT: Final = re.compile(rb"[0-9A-Fa-f\s]*")


def read_key_file(path: str | Path) -> bytes:
    """
    The AES-256-XTS key in the file at *path* (``--key-file``): 64 raw bytes or 128 hex digits.

    The file is read as every input is (``stacksim._io.read_input``: a regular file, at most
    ``INPUT_LIMITS["key"]`` bytes). Hex is 128 digits of either case with any whitespace before
    and after them; a 64-byte file made only of hex digits and whitespace is read as hex (and
    refused: 64 digits are a 256-bit key). Its contents are never shown, not even in an error.

    Raises:
        InputError: naming the file, what is wrong and what is allowed.
    """
    raw = read_input(path, "key")
    name = terminal_safe(shorten(str(path), 200))
    key = _parse_key(raw, lambda problem: InputError(f"{name}: {problem}; a key file holds {KEY_FILE_FORMS}"))
    if key[:32] == key[32:]:
        raise InputError(f"{name}: the two 32-byte halves of the key are equal; XTS needs key1 (data) and key2 (tweak) to differ")
    return key


def _parse_key(raw: bytes, refuse: Callable[[str], InputError]) -> bytes:
    """The key *raw* holds (the two forms of :data:`KEY_FILE_FORMS`); *refuse* makes the error for a problem."""
    text = raw.strip()
    if len(raw) == KEY_BYTES and not _HEX_TEXT.fullmatch(raw):
        return raw
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text.decode("ascii"))
    if not text:
        raise refuse("the key file holds only whitespace" if raw else "the key file is empty")
    if _HEX_TEXT.fullmatch(raw):
        digits = len(re.sub(rb"\s", b"", raw))
        if len(text) != digits:
            raise refuse(f"the key file holds {digits:,} hex digits with whitespace between them")
        raise refuse(f"the key file holds {digits:,} hex digits (a {digits * 4:,}-bit key); AES-256-XTS needs a 512-bit key")
    raise refuse(f"the key file is {len(raw):,} bytes and not hex text")
