"""
The XTS tweak masks in compiled code (numba), for :class:`stacksim.xts.XtsCipher` when numba is installed.

Optional: ``pip install "stacksim[fast]"``. Without numba, XtsCipher builds the masks with numpy
(the mask window, ``stacksim/xts.py``), which costs about twice as much per write; the bytes are
the same either way (the tests run both).

:func:`xor_masks` XORs each 16-byte block *j* of each sector with ``T_j = T × alpha^j``, computing
the masks in registers as it goes (shift both words up one bit, fold the bit that falls off the
top back in as 0x87: IEEE 1619 [S67]): no mask memory at all, one pass over the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["xor_masks"]


@njit(cache=True, nogil=True, boundscheck=False)  # type: ignore[untyped-decorator]
def xor_masks(src: Any, dst: Any, tweaks: Any) -> None:  # pragma: no cover - compiled; run by the tests through numba
    """``dst = src xor masks`` for ``len(tweaks)`` sectors: *src*, *dst* uint64 words (64 a sector), *tweaks* (n, 2): each T."""
    one = np.uint64(1)
    top = np.uint64(63)
    fold = np.uint64(0x87)
    for s in range(tweaks.shape[0]):
        lo = tweaks[s, 0]
        hi = tweaks[s, 1]
        base = s * 64
        for j in range(32):
            w = base + 2 * j
            dst[w] = src[w] ^ lo
            dst[w + 1] = src[w + 1] ^ hi
            carry = hi >> top
            hi = (hi << one) | (lo >> top)
            lo = (lo << one) ^ (carry * fold)
