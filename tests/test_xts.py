"""
stacksim.xts: AES-256-XTS in the aes-xts-plain64 convention, checked against cryptography's own XTS.

The oracle is ``cryptography``'s ``modes.XTS`` with one object per 512-byte sector and the tweak
written out by hand (the sector number, 16 bytes little-endian): an implementation stacksim did
not write, used exactly as a reader of the disk image would use it.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import tracemalloc
from pathlib import Path

import pytest
from conftest import make_fifo
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stacksim import xts
from stacksim._io import INPUT_LIMITS, InputError
from stacksim.xts import CHUNK_SECTORS, KEY_LABEL, XtsCipher, derive_key, read_key_file

SECTOR = 512
KEY = bytes(range(64))


def reference(key: bytes, data: bytes, first_sector: int, *, encrypt: bool = True) -> bytes:
    """*data* through one cryptography XTS object per sector, tweak = the sector number as 16 bytes little-endian."""
    out = []
    for k in range(len(data) // SECTOR):
        cipher = Cipher(algorithms.AES(key), modes.XTS((first_sector + k).to_bytes(16, "little")))
        context = cipher.encryptor() if encrypt else cipher.decryptor()
        out.append(context.update(data[k * SECTOR : (k + 1) * SECTOR]))
    return b"".join(out)


@pytest.fixture(params=["compiled", "numpy"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of building the masks: numba's kernel (``stacksim[fast]``) and numpy's window; the bytes must agree."""
    if request.param == "numpy":
        monkeypatch.setenv("STACKSIM_XTS", "numpy")
    else:
        monkeypatch.delenv("STACKSIM_XTS", raising=False)
    assert XtsCipher(KEY).backend == request.param
    return str(request.param)


@pytest.fixture
def numpy_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numpy mask window (what the window tests look at)."""
    monkeypatch.setenv("STACKSIM_XTS", "numpy")


def data_of(n: int, seed: int = 1) -> bytes:
    """*n* sectors of reproducible random bytes."""
    return random.Random(seed).randbytes(n * SECTOR)


SIZES = [1, 2, 8, 15, 512, CHUNK_SECTORS - 1, CHUNK_SECTORS, CHUNK_SECTORS + 1, 8192]
FIRSTS = [0, 1, 2**32 - 3, 2**63 - 1]


@pytest.mark.usefixtures("backend")
class TestMatchesCryptography:
    @pytest.mark.parametrize("first", FIRSTS)
    @pytest.mark.parametrize("n", SIZES)
    def test_encrypt_equals_one_xts_object_per_sector(self, n: int, first: int) -> None:
        """Encrypting n sectors from sector s gives what cryptography's XTS gives sector by sector."""
        data = data_of(n)
        assert XtsCipher(KEY).encrypt(data, first) == reference(KEY, data, first)

    @pytest.mark.parametrize("n", SIZES)
    def test_the_last_sectors_plain64_can_number(self, n: int) -> None:
        """A write that ends at sector 2**64 - 1 (tweaks with every bit of the low 64 set) matches too."""
        data = data_of(n, seed=2)
        assert XtsCipher(KEY).encrypt(data, 2**64 - n) == reference(KEY, data, 2**64 - n)

    @pytest.mark.parametrize("n", SIZES)
    def test_decrypt_equals_one_xts_object_per_sector(self, n: int) -> None:
        """Decrypting any n sectors gives what cryptography's XTS decryption gives sector by sector."""
        data = data_of(n, seed=3)
        assert XtsCipher(KEY).decrypt(data, 12345) == reference(KEY, data, 12345, encrypt=False)

    def test_a_cipher_reused_for_writes_of_changing_sizes_stays_right(self) -> None:
        """One cipher used for writes of a dozen sizes (more than it keeps views for) in random places stays right."""
        cipher = XtsCipher(KEY)
        rng = random.Random(5)
        sizes = [1, 2, 3, 5, 16, 17, 100, 101, CHUNK_SECTORS, CHUNK_SECTORS + 5, 2 * CHUNK_SECTORS + 3, 7]
        for n in sizes + sizes[::-1]:
            first = rng.randrange(2**64 - n)
            data = rng.randbytes(n * SECTOR)
            assert cipher.encrypt(data, first) == reference(KEY, data, first)

    @settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # (the fixture only picks the backend)
    @given(
        key=st.binary(min_size=64, max_size=64).filter(lambda k: k[:32] != k[32:]),
        n=st.integers(1, 40),
        where=st.floats(0, 1),
        seed=st.integers(0, 2**32),
    )
    def test_property_any_key_any_place_any_length(self, key: bytes, n: int, where: float, seed: int) -> None:
        """For any key, length and first sector (down to the last ones), encrypt matches the reference and decrypt undoes it."""
        first = min(int(where * 2**64), 2**64 - n)
        data = data_of(n, seed)
        cipher = XtsCipher(key)
        encrypted = cipher.encrypt(data, first)
        assert encrypted == reference(key, data, first)
        assert cipher.decrypt(encrypted, first) == data


@pytest.mark.usefixtures("backend")
class TestBehaviour:
    @pytest.mark.parametrize("n", [1, 16, 3000])
    def test_decrypt_undoes_encrypt(self, n: int) -> None:
        """decrypt(encrypt(data, s), s) is data."""
        cipher = XtsCipher(KEY)
        data = data_of(n, seed=6)
        assert cipher.decrypt(cipher.encrypt(data, 99), 99) == data

    def test_equal_sectors_encrypt_differently(self) -> None:
        """Two equal plaintext sectors next to each other give two different ciphertext sectors."""
        out = XtsCipher(KEY).encrypt(bytes(2 * SECTOR), 7)
        assert out[:SECTOR] != out[SECTOR:]

    def test_the_same_sector_at_another_place_encrypts_differently(self) -> None:
        """The same bytes written at sector 7 and at sector 8 give different ciphertext: the tweak is the place."""
        cipher = XtsCipher(KEY)
        data = data_of(16)
        assert cipher.encrypt(data, 7) != cipher.encrypt(data, 8)

    def test_encrypting_a_long_write_equals_encrypting_its_pieces(self) -> None:
        """A write split at any sector gives the same bytes as the whole write: each sector depends only on its number."""
        cipher = XtsCipher(KEY)
        data = data_of(3000, seed=7)
        cut = 1234 * SECTOR
        assert cipher.encrypt(data, 50) == cipher.encrypt(data[:cut], 50) + cipher.encrypt(data[cut:], 50 + 1234)

    @pytest.mark.parametrize("n", [1, 16, 2500])
    def test_encrypt_into_writes_what_encrypt_returns(self, n: int) -> None:
        """encrypt_into(data, s, out) leaves in out what encrypt(data, s) returns."""
        cipher = XtsCipher(KEY)
        data = data_of(n, seed=8)
        out = bytearray(len(data))
        cipher.encrypt_into(data, 3, out)
        assert bytes(out) == cipher.encrypt(data, 3)

    @pytest.mark.parametrize("n", [1, 16, 2500])
    def test_in_place(self, n: int) -> None:
        """A buffer encrypted into itself and decrypted into itself is back where it started."""
        cipher = XtsCipher(KEY)
        data = data_of(n, seed=9)
        buf = bytearray(data)
        cipher.encrypt_into(buf, 3, buf)
        assert bytes(buf) == reference(KEY, data, 3)
        cipher.decrypt_into(buf, 3, memoryview(buf))
        assert bytes(buf) == data

    @pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "unaligned memoryview", "memoryview of words"])
    def test_any_contiguous_buffer_is_read(self, kind: str) -> None:
        """bytes, bytearray and memoryviews (an odd offset, another item format) give the same ciphertext."""
        data = data_of(40, seed=10)
        padded = bytearray(b"x" + data)
        buffers = {
            "bytes": data,
            "bytearray": bytearray(data),
            "memoryview": memoryview(data),
            "unaligned memoryview": memoryview(padded)[1:],
            "memoryview of words": memoryview(data).cast("Q"),
        }
        assert XtsCipher(KEY).encrypt(buffers[kind], 0) == reference(KEY, data, 0)

    def test_a_write_of_any_size_uses_the_same_few_megabytes(self) -> None:
        """A 24 MiB write allocates at most 4 MiB while it is encrypted (buffers of one chunk, not of the write)."""
        cipher = XtsCipher(KEY)
        data = bytearray(os.urandom(24 * 2**20))
        tracemalloc.start()
        try:
            cipher.encrypt_into(data, 0, data)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak <= 4 * 2**20


@pytest.mark.usefixtures("numpy_masks")
class TestMaskWindow:
    """Writes in ascending order take their masks from a window computed ahead; any order gives the same bytes."""

    def test_consecutive_writes_match_across_window_refills(self) -> None:
        """Writes of 100 sectors one after the other (some straddling a window's end) give what cryptography gives."""
        cipher = XtsCipher(KEY)
        first = 2**40 - 7
        data = data_of(50 * 100, seed=11)
        out = b"".join(cipher.encrypt(data[k * 100 * SECTOR : (k + 1) * 100 * SECTOR], first + k * 100) for k in range(50))
        assert out == reference(KEY, data, first)

    def test_ascending_writes_compute_masks_a_window_at_a_time(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """64 ascending writes of 128 sectors build masks 9 times: the first write's own, then 4 windows of 2,048 sectors."""
        calls: list[int] = []
        real = XtsCipher._masks

        def counted(self: XtsCipher, v: object, first_sector: int, out: object) -> None:
            calls.append(first_sector)
            real(self, v, first_sector, out)  # type: ignore[arg-type]

        monkeypatch.setattr(XtsCipher, "_masks", counted)
        cipher = XtsCipher(KEY)
        buf = bytearray(128 * SECTOR)
        for k in range(64):
            cipher.encrypt_into(buf, k * 128, buf)
        assert xts.MASK_WINDOW_SECTORS == 2 * CHUNK_SECTORS == 2048
        assert calls == [0, 128, 128 + 1024, 2176, 2176 + 1024, 4224, 4224 + 1024, 6272, 6272 + 1024]

    def test_a_write_elsewhere_gets_masks_for_its_own_sectors(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """After ascending writes, a write back at sector 5 is right and builds masks for its 16 sectors only."""
        cipher = XtsCipher(KEY)
        for k in range(3):
            cipher.encrypt(data_of(128), 1000 + k * 128)
        built: list[int] = []
        real = cipher._fill_window
        monkeypatch.setattr(cipher, "_fill_window", lambda first, n: (built.append(n), real(first, n)))
        data = data_of(16, seed=12)
        assert cipher.encrypt(data, 5) == reference(KEY, data, 5)
        assert built == [16]

    def test_ascending_writes_to_the_last_sector(self) -> None:
        """Writes of 16 sectors ending at sector 2**64 - 1: the window stops at the last sector plain64 numbers."""
        cipher = XtsCipher(KEY)
        first = 2**64 - 160
        data = data_of(160, seed=13)
        out = b"".join(cipher.encrypt(data[k * 16 * SECTOR : (k + 1) * 16 * SECTOR], first + k * 16) for k in range(10))
        assert out == reference(KEY, data, first)

    def test_decrypting_the_writes_just_encrypted_gives_them_back(self) -> None:
        """Encrypt and decrypt calls taking turns on ascending writes (as dump_write and dump_read could) undo each other."""
        cipher = XtsCipher(KEY)
        for k in range(40):
            data = data_of(64, seed=k)
            assert cipher.decrypt(cipher.encrypt(data, 300 + 64 * k), 300 + 64 * k) == data


class TestRefused:
    @pytest.mark.parametrize("size", [0, 32, 63, 65, 128])
    def test_a_key_that_is_not_64_bytes(self, size: int) -> None:
        """An AES-256-XTS key is 64 bytes: any other length is a ValueError."""
        with pytest.raises(ValueError, match=f"64 bytes, not {size}"):
            XtsCipher(bytes(range(size)))

    def test_a_key_with_equal_halves(self) -> None:
        """key1 == key2 is refused, as cryptography refuses it."""
        with pytest.raises(ValueError, match="must differ"):
            XtsCipher(b"k" * 64)

    @pytest.mark.parametrize("length", [0, 1, 511, 513, 1000])
    def test_a_write_that_is_not_whole_sectors(self, length: int) -> None:
        """A length that is not a positive multiple of 512 is a ValueError."""
        with pytest.raises(ValueError, match="whole 512-byte sectors"):
            XtsCipher(KEY).encrypt(bytes(length), 0)

    @pytest.mark.parametrize(("first", "n"), [(-1, 1), (2**64, 1), (2**64 - 1, 2), (2**64 - 16, 17)])
    def test_sectors_beyond_plain64(self, first: int, n: int) -> None:
        """A first sector below 0, or a write that ends past sector 2**64 - 1, is a ValueError."""
        with pytest.raises(ValueError, match=re.escape("outside 0 .. 2**64 - 1")):
            XtsCipher(KEY).encrypt(bytes(n * SECTOR), first)

    @pytest.mark.parametrize("first", [True, 1.0, "1", None])
    def test_a_first_sector_that_is_not_an_integer(self, first: object) -> None:
        """A sector number must be an int (True is not one)."""
        with pytest.raises(TypeError):
            XtsCipher(KEY).encrypt(bytes(SECTOR), first)  # type: ignore[arg-type]

    @pytest.mark.parametrize("make", [lambda n: bytearray(n - SECTOR), lambda n: bytes(n), lambda n: memoryview(bytes(n))])
    def test_an_out_buffer_of_the_wrong_size_or_read_only(self, make: object) -> None:
        """out must be writable and exactly as long as the data."""
        data = data_of(20)
        with pytest.raises(ValueError, match="writable buffer of 10,240 bytes"):
            XtsCipher(KEY).encrypt_into(data, 0, make(len(data)))  # type: ignore[operator]

    def test_an_out_buffer_that_overlaps_the_data_elsewhere(self) -> None:
        """out that overlaps the data without being it (shifted by a sector) is refused: chunks would read their own output."""
        buf = bytearray(21 * SECTOR)
        with pytest.raises(ValueError, match="overlaps"):
            XtsCipher(KEY).encrypt_into(memoryview(buf)[: 20 * SECTOR], 0, memoryview(buf)[SECTOR:])


class TestDeriveKey:
    def test_the_documented_formula(self) -> None:
        """The key is SHA-512 of the label, the seed as 8 bytes little-endian and a zero counter byte."""
        expected = hashlib.sha512(KEY_LABEL + (1234).to_bytes(8, "little") + b"\x00").digest()
        assert derive_key(1234) == expected

    def test_the_label(self) -> None:
        """The label is fixed: changing it would change every derived key and every data-mode disk image."""
        assert KEY_LABEL == b"stacksim aes-256-xts-plain64 simulation key v1\x00"

    @pytest.mark.parametrize("seed", [0, 1, 2**63 - 1, 2**64 - 1])
    def test_a_usable_key_for_every_seed(self, seed: int) -> None:
        """Every seed gives 64 bytes whose halves differ, which XtsCipher accepts."""
        key = derive_key(seed)
        assert len(key) == 64
        assert key[:32] != key[32:]
        XtsCipher(key)

    def test_deterministic_and_seed_dependent(self) -> None:
        """The same seed gives the same key; neighbouring seeds give different keys."""
        assert derive_key(7) == derive_key(7)
        assert len({derive_key(s) for s in range(100)}) == 100

    def test_equal_halves_move_on_to_the_next_counter(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """If a digest had equal halves, the counter byte 1 would be used instead (checked with a stand-in SHA-512)."""
        calls: list[bytes] = []

        class FakeDigest:
            def __init__(self, message: bytes) -> None:
                calls.append(message)
                self.message = message

            def digest(self) -> bytes:
                return b"\x00" * 64 if self.message.endswith(b"\x00") else b"\x01" * 32 + b"\x02" * 32

        monkeypatch.setattr(xts.hashlib, "sha512", FakeDigest)
        assert derive_key(5) == b"\x01" * 32 + b"\x02" * 32
        assert [m[-1] for m in calls] == [0, 1]

    @pytest.mark.parametrize("seed", [-1, 2**64, True, 1.5])
    def test_a_seed_outside_64_bits(self, seed: object) -> None:
        """A seed that is not an integer from 0 to 2**64 - 1 is a ValueError."""
        with pytest.raises(ValueError, match="seed"):
            derive_key(seed)  # type: ignore[arg-type]


class TestReadKeyFile:
    def write(self, tmp_path: Path, content: bytes) -> Path:
        """A key file holding *content*."""
        path = tmp_path / "k.key"
        path.write_bytes(content)
        return path

    def test_64_raw_bytes(self, tmp_path: Path) -> None:
        """A file of exactly 64 bytes is the key itself."""
        assert read_key_file(self.write(tmp_path, KEY)) == KEY

    @pytest.mark.parametrize("form", ["lower", "upper", "newline", "spaces around"])
    def test_128_hex_digits(self, tmp_path: Path, form: str) -> None:
        """128 hex digits, either case, with whitespace before and after, are the key in hex."""
        text = {
            "lower": KEY.hex(),
            "upper": KEY.hex().upper(),
            "newline": KEY.hex() + "\n",
            "spaces around": " \t\r\n" + KEY.hex() + " \n\n",
        }[form]
        assert read_key_file(self.write(tmp_path, text.encode())) == KEY

    def test_the_key_reads_back_the_image_the_cipher_wrote(self, tmp_path: Path) -> None:
        """A key written as hex and read back encrypts exactly as the key it came from."""
        key = derive_key(42)
        path = self.write(tmp_path, key.hex().encode())
        data = data_of(16)
        assert XtsCipher(read_key_file(path)).encrypt(data, 0) == reference(key, data, 0)

    @pytest.mark.parametrize(
        ("content", "says"),
        [
            (b"", "the key file is empty"),
            (bytes(range(63)), "is 63 bytes and not hex text"),
            (bytes(range(65)), "is 65 bytes and not hex text"),
            (KEY.hex()[:64].encode(), "64 hex digits (a 256-bit key)"),
            (KEY.hex().encode() + b"00", "130 hex digits"),
            (KEY.hex()[:127].encode(), "127 hex digits"),
            (" ".join(KEY.hex()[i : i + 2] for i in range(0, 128, 2)).encode(), "with whitespace between them"),
            (b"0x" + KEY.hex().encode(), "not hex text"),
        ],
        ids=["empty", "63-bytes", "65-bytes", "256-bit-hex", "130-digits", "127-digits", "spaced-hex", "0x-prefix"],
    )
    def test_anything_else_is_refused_naming_the_file_and_the_forms(self, tmp_path: Path, content: bytes, says: str) -> None:
        """A key file of another size or form is an InputError naming the file, the problem and the two allowed forms."""
        path = self.write(tmp_path, content)
        with pytest.raises(InputError) as caught:
            read_key_file(path)
        message = str(caught.value)
        assert message.startswith(str(path))
        assert says in message
        assert "exactly 64 raw bytes, or 128 hex digits" in message

    def test_equal_halves_are_refused(self, tmp_path: Path) -> None:
        """A key whose two halves are equal is refused when it is read, naming the file."""
        path = self.write(tmp_path, (b"\x11" * 32 * 2).hex().encode())
        with pytest.raises(InputError, match=re.escape("k.key: the two 32-byte halves of the key are equal")):
            read_key_file(path)

    def test_a_folder_is_refused(self, tmp_path: Path) -> None:
        """A directory is not a key file."""
        with pytest.raises(InputError, match="is a directory, not a regular key file"):
            read_key_file(tmp_path)

    @pytest.mark.timeout(10)
    def test_a_fifo_is_refused_without_waiting_for_a_writer(self, tmp_path: Path) -> None:
        """A FIFO no one writes to is refused at once."""
        with pytest.raises(InputError, match="FIFO"):
            read_key_file(make_fifo(tmp_path / "k.key"))

    def test_a_missing_file_is_refused(self, tmp_path: Path) -> None:
        """A path with nothing there is named."""
        with pytest.raises(InputError, match="no such key file"):
            read_key_file(tmp_path / "missing.key")

    def test_the_cap_is_4_KiB(self) -> None:
        """A key file is read only up to 4,096 bytes (INPUT_LIMITS['key'])."""
        assert INPUT_LIMITS["key"] == 4096


class TestBackend:
    """Which masks XtsCipher uses: numba's kernel when installed, numpy's otherwise; asked for by name, or refused."""

    def test_without_numba_auto_falls_back_to_numpy(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The compiled kernel cannot be imported: "auto" builds the masks with numpy, "compiled" raises ImportError."""
        import sys

        monkeypatch.delenv("STACKSIM_XTS", raising=False)
        monkeypatch.setitem(sys.modules, "stacksim._xts_compiled", None)
        assert XtsCipher(KEY).backend == "numpy"
        with pytest.raises(ImportError):
            XtsCipher(KEY, backend="compiled")

    def test_an_unknown_backend_is_refused(self) -> None:
        """backend is "auto", "numpy" or "compiled"."""
        with pytest.raises(ValueError, match="backend must be"):
            XtsCipher(KEY, backend="gpu")
