"""
``dumpfve.sys`` -- a BitLocker-like dump filter that encrypts every page it is handed.

The normal stack encrypts in ``fvevol.sys``, a volume filter the dump path bypasses, so
BitLocker ships ``dumpfve.sys`` to encrypt the crash dump and hiberfile instead [DOC S6c, S47];
it is the default ``DumpFilters`` entry [ANEC S30, S31]. Position in the chain: it must be the
*last* filter that changes data, since anything below it sees ciphertext.

What is modelled:

* ``driver_entry``: with BitLocker off it fails and is skipped (``dump_dumpfve.sys`` is reportedly
  not loaded then [ANEC S33]); it sets no flags before failing. With BitLocker on it declares
  version 2 with the read flag (hiberfile pages must be decrypted on resume through
  ``Dump_Read``). ntdddump gives the read flag the same bit as ``DUMP_FILTER_CRITICAL``, so a
  read-capable dumpfve is also critical (fact sheet §1.5 [DOC header + INF]). With
  ``read_support = false`` it declares version 1 without the flag, as a filter written before
  Windows 8 would: it still encrypts, but resume cannot call it to decrypt.
* ``dump_write``: encrypts the pages into its own buffer and repoints the MDL (the MDL-swap
  technique of real encryption filters [SRC S24, S26]); the caller's buffer is only read, once,
  and the size never changes. In data mode the bytes are really encrypted: the
  buffer of ``MaxPagesPerWrite`` × 4 KiB is allocated in ``driver_entry``, and the cipher is
  AES-256-XTS with 512-byte data units whose tweak is the sector number relative to the start of
  the partition (``aes-xts-plain64``; :mod:`stacksim.xts`, ``docs/reference/encryption.md``), the
  key the one BitLocker hands the filter (:attr:`FilterExtension.volume_key`). This is not
  BitLocker's on-disk format (its metadata and key hierarchy are not modelled, ASSUMPTION):
  stacksim uses the documented dm-crypt convention so that independent tools can decrypt the image.
* Cost (assumption, no published figure): ``per_call`` (default 1 µs) plus ``per_byte`` (default
  0.3 ns/B ≈ 3.3 GB/s: AES-XTS with AES-NI on one core plus the copy). Real figures depend on
  the CPU and on whether hardware AES is usable in crash mode (VeraCrypt disables it for 32-bit
  crash dumps [SRC S24b]).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

from stacksim._engine import spend
from stacksim.filters._base import (
    DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ,
    DUMP_FILTER_MAJOR_VERSION_1,
    DumpFilter,
    FilterExtension,
    FilterInitializationData,
)
from stacksim.filters._params import Nanoseconds, PicosecondsPerByte
from stacksim.requests import PAGE_SIZE, SECTOR_SIZE, DumpRequest, Mdl, NtStatus
from stacksim.units import bytes_time_ns

if TYPE_CHECKING:
    from stacksim.xts import XtsCipher

__all__ = ["DumpFve"]


class DumpFveConfig(BaseModel):
    """Parameters of ``[filters."dumpfve.sys"]``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    bitlocker: bool = True
    """Whether the dump volume is BitLocker-protected; when false the filter declines to load."""
    read_support: bool = True
    """Declare read support (version 2, the read flag, Dump_Read: Windows 8+); false: a version-1 filter resume cannot call."""
    per_call: Nanoseconds = 1_000
    """CPU time per Dump_Write / Dump_Read call (assumption)."""
    per_byte: PicosecondsPerByte = 300
    """CPU time per byte encrypted or decrypted, in ps/B (assumption: ~3.3 GB/s AES-XTS + copy)."""


class DumpFve(DumpFilter):
    """BitLocker's crash dump filter (see module docstring). Sits last among data-changing filters."""

    service_name: ClassVar[str] = "dumpfve.sys"
    Config: ClassVar[type[BaseModel]] = DumpFveConfig
    config: DumpFveConfig

    def driver_entry(self, extension: FilterExtension, init: FilterInitializationData) -> int:
        """Decline to load without BitLocker; otherwise allocate the encryption buffer."""
        if not self.config.bitlocker:
            return NtStatus.FVE_NOT_ENCRYPTED
        if init.max_pages_per_write == 0:  # VeraCrypt and DiskCryptor fail on 0 too [SRC S24, S26]
            return NtStatus.INVALID_PARAMETER
        super().driver_entry(extension, init)
        if self.config.read_support:
            init.flags = DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ
        else:  # a pre-Windows 8 filter: version 1, no read flag, no Dump_Read
            init.major_version, init.flags, init.dump_read = DUMP_FILTER_MAJOR_VERSION_1, 0, None
        self._buffer_bytes = init.max_pages_per_write * PAGE_SIZE
        self._mdls: dict[int, Mdl] = {}
        self._cipher: XtsCipher | None = None
        if extension.volume_key is not None:  # data mode: the real buffer and the volume's key, now -- never at crash time
            from stacksim.xts import XtsCipher  # numpy and cryptography: only in data mode

            self._cipher = XtsCipher(extension.volume_key)
            self._buffer = bytearray(self._buffer_bytes)
        return NtStatus.SUCCESS

    def changes_data(self) -> bool:
        """It encrypts every write: a hiberfile it wrote resumes only through its ``dump_read``."""
        return True

    def _crypt(self, length: int) -> None:
        spend(self.write_cost(None, length))

    def write_cost(self, extension: FilterExtension | None, length: int) -> int:
        """``per_call + ⌈length × per_byte⌉``: the MDL swap is invisible to the layers below."""
        return self.config.per_call + bytes_time_ns(length, self.config.per_byte)

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        """Encrypt into the filter's own buffer and point the request at it."""
        length = request.length
        if length > self._buffer_bytes:
            return NtStatus.INVALID_PARAMETER
        self._crypt(length)
        mdl = self._mdls.get(length)
        if mdl is None:
            data = memoryview(self._buffer)[:length] if self._cipher is not None else None
            mdl = self._mdls[length] = Mdl(self.service_name, length, data)
        pages = request.mdl.data
        if pages is not None:
            if self._cipher is None or mdl.data is None:  # bytes but no key: a data-mode run always hands one over
                return NtStatus.ENCRYPTION_FAILED
            # The caller's pages, encrypted into the filter's own buffer in one pass, as DiskCryptor's
            # dc_dump_encrypt calls xts_encrypt(mapped MDL, its buffer) [SRC S26]: the bytes of a copy
            # encrypted in place, one copy fewer; the caller's buffer is only read.
            self._cipher.encrypt_into(pages, request.offset // SECTOR_SIZE, mdl.data)
        request.mdl = mdl
        return NtStatus.SUCCESS

    async def dump_read(self, extension: FilterExtension, request: DumpRequest) -> int:
        """Decrypt the pages just read, in place (Dump_Read may modify the contents [DOC S9])."""
        self._crypt(request.length)
        pages = request.mdl.data
        if pages is not None and self._cipher is not None:
            self._cipher.decrypt_into(pages, request.offset // SECTOR_SIZE, pages)
        return NtStatus.SUCCESS
