r"""
AES-256-XTS over whole writes, in dm-crypt's ``aes-xts-plain64`` convention.

This is the cipher ``dumpfve.sys`` applies to every page of a data-mode dump, and the one
``stacksim extract`` undoes (``docs/reference/encryption.md``).

**The convention** [IEEE 1619 S56; dm-crypt S57]. The data unit is one 512-byte sector. The
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
about 120 MB/s: the cost is the object, not the AES. :class:`XtsCipher` handles a write of *n*
consecutive sectors with two ECB calls: one for the *n* initial tweaks ``E_key2(i)``, one for
all ``32 n`` blocks (in place), with the ``32 n`` masks ``T_j`` XORed in before and after. The
masks are built with numpy, without a loop over *j* and without a loop over sectors:

1. ``T_b`` for *b* = 0 to 7: both 64-bit words multiplied by ``2**b``, the *b* bits that cross
   into the high word carried over, the *b* bits that fall off the top folded back in (times
   0x87, carry-less).
2. Multiplying by ``alpha^8`` moves a block up one byte and folds the byte that falls off into
   the two lowest bytes. So ``T_{8a+b}`` (*a* = 1, 2, 3) is ``T_b`` moved up *a* bytes: with
   the masks laid out group by group (every sector's blocks 0-7, then every sector's blocks
   8-15, ...), that is **one memory copy per group**, shifted by *a* bytes. The copy brings the
   top *a* bytes of the block before into the low *a* bytes of each block; one XOR of each
   block's low 32-bit word replaces them with the fold of the *a* bytes that fell off its top.
3. One copy of 128-byte groups puts the masks back in sector order.

Writes are cut into chunks of at most :data:`CHUNK_SECTORS` sectors, worked in buffers that each
:class:`XtsCipher` allocates when it first needs them: memory stays a few times the chunk size,
whatever the size of the write or the dump. A write of fewer than :data:`BULK_MIN_SECTORS`
sectors uses one ``cryptography`` XTS object per sector, which is faster at that size.
``benchmarks/bench_xts.py`` measures all of this against the ECB limit.

The seed-derived key (:func:`derive_key`) is for simulation only: anyone who knows the scenario
knows the key.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias, final

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from stacksim._io import InputError, read_input, shorten, terminal_safe
from stacksim.requests import SECTOR_SIZE

__all__ = [
    "BULK_MIN_SECTORS",
    "CHUNK_SECTORS",
    "KEY_BYTES",
    "MAX_SECTOR",
    "XtsCipher",
    "derive_key",
    "read_key_file",
]

KEY_BYTES: Final = 64
"""An AES-256-XTS key: key1 (data, 32 bytes) then key2 (tweak, 32 bytes)."""

MAX_SECTOR: Final = 2**64
"""One past the last sector number ``plain64`` can express: a write must end at or before it."""

CHUNK_SECTORS: Final = 1024
"""Sectors worked at once (512 KiB): large enough that numpy's per-call cost is small, small enough to stay near the cache."""

BULK_MIN_SECTORS: Final = 16
"""Below this many sectors (8 KiB) a ``cryptography`` XTS object per sector is faster than the bulk path."""

BLOCKS: Final = SECTOR_SIZE // 16
"""AES blocks per sector (32)."""

Buffer: TypeAlias = bytes | bytearray | memoryview
"""What :class:`XtsCipher` reads from (``out=`` buffers must be writable)."""

_U64 = np.uint64
_U32 = np.uint32
_Words: TypeAlias = npt.NDArray[np.uint64]
_Words32: TypeAlias = npt.NDArray[np.uint32]
_Bytes: TypeAlias = npt.NDArray[np.uint8]

_TOP_SHIFT: Final = np.array([24, 16, 8], dtype=_U32)[:, None]
"""A block's top 32 bits shifted right by these keep its top a = 1, 2, 3 bytes."""

_V16: Final = np.dtype("V16")
_V128: Final = np.dtype("V128")


def _shift_rows(rows: npt.NDArray[np.unsignedinteger[Any]]) -> None:
    """``rows[b] = rows[0] << b`` for b = 1..7, in three shifts (rows 1, 2-3, 4-7 from the rows before)."""
    for k in (1, 2, 4):
        np.left_shift(rows[:k], k, out=rows[k : 2 * k])


def _fold(x: _Words32, out: _Words32, tmp: _Words32) -> None:
    """*out* = carry-less *x* times 0x87 (x ^ x<<1 ^ x<<2 ^ x<<7): what bits that fall off the top add at the bottom."""
    np.left_shift(x, 1, out=out)
    np.bitwise_xor(out, x, out=out)
    np.left_shift(x, 2, out=tmp)
    np.bitwise_xor(out, tmp, out=out)
    np.left_shift(x, 7, out=tmp)
    np.bitwise_xor(out, tmp, out=out)


@final
class _Scratch:
    """The buffers for one chunk of up to *capacity* sectors, allocated once and reused."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.sectors = np.zeros((capacity, 2), dtype=_U64)  # the tweaks' plaintext: high words stay 0
        self.count = np.arange(capacity, dtype=_U64)
        self.initial = np.zeros(capacity * 16 + 16, dtype=np.uint8)  # E_key2(i); ECB wants 15 spare bytes
        self.crossing = np.zeros((2, 8, capacity), dtype=_U32)
        self.fold8 = np.zeros((2, 8, capacity), dtype=_U32)
        self.by_b = np.zeros((8, capacity, 2), dtype=_U64)
        self.first = np.zeros(16 + capacity * 128, dtype=np.uint8)  # 16 zero bytes, then T_0..T_7 per sector
        self.groups = np.zeros((4, capacity * 128), dtype=np.uint8)
        self.top = np.zeros(capacity * 8, dtype=_U32)
        self.fell = np.zeros((3, capacity * 8), dtype=_U32)
        self.fix = np.zeros((2, 3, capacity * 8), dtype=_U32)
        self.masks = np.zeros(capacity * SECTOR_SIZE, dtype=np.uint8)
        self.work = np.zeros(capacity * SECTOR_SIZE + 16, dtype=np.uint8)
        self._views: dict[int, _Views] = {}

    def views(self, n: int) -> _Views:
        """The arrays for a chunk of *n* sectors (cached: a dump writes the same few sizes again and again)."""
        views = self._views.get(n)
        if views is None:
            if len(self._views) >= 8:
                self._views.clear()
            views = self._views[n] = _Views.make(self, n)
        return views


@final
@dataclass(frozen=True, slots=True)
class _Views:
    """Views of a :class:`_Scratch` for exactly *n* sectors (names as in the module docstring)."""

    n: int
    sectors: _Words  # (n, 2): sector number, 0
    sector_low: _Words  # (n,): the low words of *sectors*
    count: _Words  # (n,): 0 .. n-1
    sector_bytes: memoryview
    initial_out: memoryview
    initial: _Words  # (n, 2): T = E_key2(i)
    crossing: _Words32  # (2, 8, n): each word's top byte << b >> 8: the top b bits (that cross, that fall off)
    fold8: _Words32  # (2, 8, n): [0] scratch, [1] fold of the bits that fell off
    by_b: _Words  # (8, n, 2): T_b, block b of every sector
    by_b32: _Words32  # (8, n, 4)
    first_v16: npt.NDArray[np.void]  # (n, 8): T_0..T_7 in sector order
    by_b_v16: npt.NDArray[np.void]  # (8, n)
    first_bytes: _Bytes  # (n * 128,)
    shifted: tuple[_Bytes, ...]  # 3 x (n * 128,): first_bytes moved up 1, 2, 3 bytes (16 zero bytes precede)
    groups: _Bytes  # (4, n * 128)
    low_words: _Words32  # (3, 8n): the low 32-bit word of every block of groups 1-3
    top32: _Words32  # (8n,) strided: the top 32-bit word of T_0..T_7
    top: _Words32  # (8n,)
    fell: _Words32  # (3, 8n): the top a bytes of T_b
    fix: _Words32  # (3, 8n)
    fix_tmp: _Words32
    groups_v128: npt.NDArray[np.void]  # (4, n)
    masks_v128: npt.NDArray[np.void]  # (n, 4)
    masks: _Words  # (64 n,)
    work: _Words  # (64 n,)
    work_in: memoryview
    work_out: memoryview

    @classmethod
    def make(cls, s: _Scratch, n: int) -> _Views:
        """Cut the views for *n* sectors out of *s*."""
        g = s.groups[:, : n * 128]
        first = s.first[: 16 + n * 128]
        by_b = s.by_b[:, :n]
        return cls(
            n=n,
            sectors=s.sectors[:n],
            sector_low=s.sectors[:n, 0],
            count=s.count[:n],
            sector_bytes=s.sectors[:n].data.cast("B"),
            initial_out=s.initial[: n * 16 + 16].data,
            initial=s.initial[: n * 16].view(_U64).reshape(n, 2),
            crossing=s.crossing[:, :, :n],
            fold8=s.fold8[:, :, :n],
            by_b=by_b,
            by_b32=by_b.view(_U32),
            first_v16=first[16:].view(_V16).reshape(n, 8),
            by_b_v16=by_b.view(_V16)[:, :, 0],
            first_bytes=first[16:],
            shifted=tuple(first[16 - a : 16 - a + n * 128] for a in (1, 2, 3)),
            groups=g,
            low_words=g[1:].view(_U32)[:, 0::4],
            top32=first[16:].view(_U32)[3::4],
            top=s.top[: 8 * n],
            fell=s.fell[:, : 8 * n],
            fix=s.fix[0, :, : 8 * n],
            fix_tmp=s.fix[1, :, : 8 * n],
            groups_v128=g.view(_V128),
            masks_v128=s.masks[: n * SECTOR_SIZE].view(_V128).reshape(n, 4),
            masks=s.masks[: n * SECTOR_SIZE].view(_U64),
            work=s.work[: n * SECTOR_SIZE].view(_U64),
            work_in=s.work[: n * SECTOR_SIZE].data,
            work_out=s.work[: n * SECTOR_SIZE + 16].data,
        )


@final
class XtsCipher:
    """
    AES-256-XTS (``aes-xts-plain64``) for writes of whole sectors.

    Not thread-safe: each instance works in its own buffers (one per filter, allocated in
    DriverEntry, as a real dump filter allocates its own).

    Args:
        key: 64 bytes, key1 (data) then key2 (tweak); the halves must differ.

    Raises:
        ValueError: a key of another length, or with equal halves.
    """

    def __init__(self, key: bytes) -> None:
        key = bytes(key)
        if len(key) != KEY_BYTES:
            raise ValueError(f"an AES-256-XTS key is {KEY_BYTES} bytes, not {len(key)}")
        if key[:32] == key[32:]:
            raise ValueError("the two halves of an XTS key (key1 for the data, key2 for the tweak) must differ")
        self._key = key
        self._tweak = Cipher(algorithms.AES(key[32:]), modes.ECB()).encryptor()
        self._forward = Cipher(algorithms.AES(key[:32]), modes.ECB()).encryptor()
        self._backward = Cipher(algorithms.AES(key[:32]), modes.ECB()).decryptor()
        self._scratch: _Scratch | None = None

    def encrypt(self, data: Buffer, first_sector: int) -> bytes:
        """The ciphertext of *data*, whole sectors of which the first is sector *first_sector* of the partition."""
        return self._run(data, first_sector, encrypt=True)

    def decrypt(self, data: Buffer, first_sector: int) -> bytes:
        """The plaintext of *data*, whole sectors of which the first is sector *first_sector* of the partition."""
        return self._run(data, first_sector, encrypt=False)

    def encrypt_into(self, data: Buffer, first_sector: int, out: bytearray | memoryview) -> None:
        """:meth:`encrypt` into *out*: as long as *data*, and *data* itself (in place) or not overlapping it."""
        self._run_into(data, first_sector, out, encrypt=True)

    def decrypt_into(self, data: Buffer, first_sector: int, out: bytearray | memoryview) -> None:
        """:meth:`decrypt` into *out*: as long as *data*, and *data* itself (in place) or not overlapping it."""
        self._run_into(data, first_sector, out, encrypt=False)

    def _run(self, data: Buffer, first_sector: int, *, encrypt: bool) -> bytes:
        src = memoryview(data).cast("B")
        n, first_sector = _check_write(len(src), first_sector)
        if n < BULK_MIN_SECTORS:
            return b"".join(self._per_sector(src, first_sector, encrypt=encrypt))
        parts = []
        for _words, v in self._bulk(np.frombuffer(src, dtype=_U64), first_sector, encrypt=encrypt):
            np.bitwise_xor(v.work, v.masks, out=v.work)
            parts.append(bytes(v.work_in))
        return b"".join(parts)

    def _run_into(self, data: Buffer, first_sector: int, out: bytearray | memoryview, *, encrypt: bool) -> None:
        src = memoryview(data).cast("B")
        dst = memoryview(out).cast("B")
        n, first_sector = _check_write(len(src), first_sector)
        if dst.readonly or len(dst) != len(src):
            raise ValueError(f"out must be a writable buffer of {len(src):,} bytes, the length of the data")
        src_words = np.frombuffer(src, dtype=_U64)
        dst_words = np.frombuffer(dst, dtype=_U64)
        if np.may_share_memory(src_words, dst_words) and src_words.ctypes.data != dst_words.ctypes.data:
            raise ValueError("out overlaps the data without being the same buffer")
        if n < BULK_MIN_SECTORS:
            for k, sector in enumerate(self._per_sector(src, first_sector, encrypt=encrypt)):
                dst[k * SECTOR_SIZE : (k + 1) * SECTOR_SIZE] = sector
            return
        for words, v in self._bulk(src_words, first_sector, encrypt=encrypt):
            np.bitwise_xor(v.work, v.masks, out=dst_words[words])

    def _per_sector(self, src: memoryview, first_sector: int, *, encrypt: bool) -> Iterator[bytes]:
        """Each sector through its own ``cryptography`` XTS object: the reference, and the fast way for a few sectors."""
        for k in range(len(src) // SECTOR_SIZE):
            cipher = Cipher(algorithms.AES(self._key), modes.XTS((first_sector + k).to_bytes(16, "little")))
            context: CipherContext = cipher.encryptor() if encrypt else cipher.decryptor()
            yield context.update(src[k * SECTOR_SIZE : (k + 1) * SECTOR_SIZE])

    def _bulk(self, src: _Words, first_sector: int, *, encrypt: bool) -> Iterator[tuple[slice, _Views]]:
        """
        Chunk by chunk: the chunk's words in *src*, and views whose ``work`` holds AES(data xor masks).

        The caller XORs ``masks`` into ``work`` once more (into its output) before the next chunk.
        """
        if self._scratch is None:
            self._scratch = _Scratch(CHUNK_SECTORS)
        cipher = self._forward if encrypt else self._backward
        n = len(src) // (BLOCKS * 2)
        for start in range(0, n, CHUNK_SECTORS):
            v = self._scratch.views(min(CHUNK_SECTORS, n - start))
            words = slice(start * BLOCKS * 2, (start + v.n) * BLOCKS * 2)
            self._masks(v, first_sector + start)
            np.bitwise_xor(src[words], v.masks, out=v.work)
            cipher.update_into(v.work_in, v.work_out)
            yield words, v

    def _masks(self, v: _Views, first_sector: int) -> None:
        """Fill ``v.masks`` with T_0..T_31 of sectors *first_sector* .. *first_sector* + n - 1 (module docstring, steps 1-3)."""
        np.add(v.count, _U64(first_sector), out=v.sector_low)
        self._tweak.update_into(v.sector_bytes, v.initial_out)
        # 1. T_b = T shifted up b bits in both words; the top b bits of the low word cross into
        #    the high word, the top b bits of the high word fall off and come back folded.
        np.copyto(v.by_b[0], v.initial)
        _shift_rows(v.by_b)
        np.right_shift(v.initial.T, 56, out=v.crossing[:, 0], casting="unsafe")
        _shift_rows(v.crossing.transpose(1, 0, 2))
        np.right_shift(v.crossing, 8, out=v.crossing)
        _fold(v.crossing[1], v.fold8[1], v.fold8[0])
        np.bitwise_xor(v.by_b32[:, :, 0], v.fold8[1], out=v.by_b32[:, :, 0])
        np.bitwise_or(v.by_b32[:, :, 2], v.crossing[0], out=v.by_b32[:, :, 2])
        np.copyto(v.first_v16, v.by_b_v16.T)
        # 2. Groups 1-3 are group 0 moved up 1, 2, 3 bytes; each block's low bytes then hold the
        #    top bytes of the block before, to be replaced by the fold of its own top bytes.
        np.copyto(v.groups[0], v.first_bytes)
        for a, moved in enumerate(v.shifted, start=1):
            np.copyto(v.groups[a], moved)
        np.copyto(v.top, v.top32)
        np.right_shift(v.top[None], _TOP_SHIFT, out=v.fell)
        _fold(v.fell, v.fix, v.fix_tmp)
        np.bitwise_xor(v.fix[:, 1:], v.fell[:, :-1], out=v.fix[:, 1:])
        np.bitwise_xor(v.low_words, v.fix, out=v.low_words)
        # 3. Back to sector order.
        np.copyto(v.masks_v128, v.groups_v128.T)


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
    ``INPUT_LIMITS["key"]`` bytes). Its contents are never shown, not even in an error.

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
