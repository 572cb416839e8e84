"""The geometry of a convolution or pooling window: kernel size, stride and padding per axis.

Layer_Conv2D and Layer_MaxPool2D take each as an int (both axes) or a (height, width) pair
(``constraints.Pair``); padding may also be ``"same"``: with stride 1, a total of ``k - 1`` rows
(columns) of padding keeps the plane's size, split as PyTorch splits it: ``(k - 1) // 2`` above
(left) and the rest below (right), so an even kernel gets its extra row at the bottom and its extra
column on the right. The compiled kernels read the same attributes (src_pyx/_im2col.pxd:
``window``); these functions serve the checks and messages of the Python layer.
"""
from __future__ import annotations

from .checks import fail

SAME = "same"


def pair(value) -> tuple[int, int]:
    """(height, width) of an int or a pair (as the constraints return them)."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def paddings(padding, kernel_size) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero rows/columns of `padding` for a window of `kernel_size`."""
    if padding == SAME:
        kh, kw = pair(kernel_size)
        return (kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2
    ph, pw = pair(padding)
    return ph, ph, pw, pw


def check_same(padding, stride, where: str) -> None:
    """padding="same" keeps the plane's size only with stride 1 (PyTorch refuses other strides)."""
    if padding == SAME and pair(stride) != (1, 1):
        raise fail(where, "stride", "1 with padding='same' (the output keeps the input's size)", repr(stride))

