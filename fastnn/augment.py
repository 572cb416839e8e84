"""Data augmentation of image batches: Augmentation_CropFlip (not in the book).

``Model.train(..., augment=Augmentation_CropFlip(padding=2))`` augments every training batch as
it is taken: the data set itself is never copied or changed, and each batch is written into one
buffer reused from step to step (the kernel is src_pyx/_augment.pyx). The draws come from NumPy's
global RNG, so ``np.random.seed`` reproduces a run; ``fastnn.reference.Augmentation_CropFlip``
makes the same draws and computes the same images in NumPy.
"""
from __future__ import annotations

import numpy as np

from ._core import arrays as _arrays, checks as _checks
from ._core.constraints import Bool, Int
from ._core.spec import declare
from ._ext import _augment

__all__ = ["Augmentation_CropFlip"]

_PARAMS = {"padding": Int(0, 4096), "flip": Bool()}


@declare("augmentation", params=_PARAMS, saveable=False)
class Augmentation_CropFlip:
    """Random crop with zero padding and random horizontal flip, per sample, of NCHW image batches.

    For a batch ``inputs`` of shape (n_samples, channels, height, width), sample i becomes its
    image zero-padded by ``padding`` pixels on every side, cropped back to (height, width) at row
    offset ``rows[i]`` and column offset ``cols[i]`` (each in [0, 2 * padding]: the image shifted
    by up to ``padding`` pixels in each direction), then mirrored left-right when ``flips[i]``::

        output[i, c, h, w] = inputs[i, c, h + rows[i] - padding, x + cols[i] - padding]
        x = width - 1 - w if flips[i] else w          (0 outside the image)

    ``padding=0`` skips the crop, ``flip=False`` the flip (not both: that would change nothing).
    Mirroring suits photographs and clothes (CIFAR-10, Fashion-MNIST), not digits (MNIST).

    Each call draws, from NumPy's global RNG and in this order: ``rows`` and ``cols`` with
    ``np.random.randint(0, 2 * padding + 1, n_samples)`` each (when padding > 0), then ``flips``
    as ``np.random.random_sample(n_samples) < 0.5`` (when flip). The result is written into a
    buffer kept on the object (``output``, a view of the first n_samples rows of a buffer sized
    for the largest batch so far): valid until the next call, like a layer's output.
    """

    def __init__(self, padding: int = 2, flip: bool = True) -> None:
        self.padding, self.flip = type(self)._spec.check(locals())
        if not self.padding and not self.flip:
            raise ValueError("Augmentation_CropFlip: padding=0 with flip=False would change nothing; give a "
                             "padding > 0 (random crops), flip=True (random mirroring) or both")

    def __repr__(self) -> str:
        return f"Augmentation_CropFlip(padding={self.padding}, flip={self.flip})"

    def draw(self, n_samples: int) -> tuple:
        """(rows, cols, flips) for a batch of `n_samples`, from NumPy's global RNG: intp arrays of
        crop offsets in [0, 2 * padding] (None without padding) and a bool array (None without
        flip), each of length n_samples."""
        n = _checks.positive_int(n_samples, "n_samples", "Augmentation_CropFlip.draw")
        rows = cols = flips = None
        if self.padding:
            rows = np.random.randint(0, 2 * self.padding + 1, n)
            cols = np.random.randint(0, 2 * self.padding + 1, n)
        if self.flip:
            flips = np.random.random_sample(n) < 0.5
        return rows, cols, flips

    def __call__(self, inputs) -> np.ndarray:
        """The augmented batch (n_samples, channels, height, width) of `inputs`, with fresh draws."""
        inputs = self._inputs(inputs, "Augmentation_CropFlip")
        return self._apply(inputs, self.draw(len(inputs)))

    def apply(self, inputs, draws) -> np.ndarray:
        """The batch `inputs` (n_samples, channels, height, width) augmented with given `draws`
        (rows, cols, flips), as ``draw`` returns them: rows/cols None or int arrays of length
        n_samples with values in [0, 2 * padding], flips None or a bool array of that length."""
        where = "Augmentation_CropFlip.apply"
        inputs = self._inputs(inputs, where)
        return self._apply(inputs, self._draws(draws, len(inputs), where))

    # --- helpers -----------------------------------------------------------------------------------
    def _inputs(self, inputs, where: str) -> np.ndarray:
        x = _arrays.float_input(inputs, "inputs", where)
        if x.ndim != 4 or not x.shape[0]:
            raise _checks.fail(where, "inputs", "a batch of images (n_samples, channels, height, width) with at "
                               "least one sample", _checks.describe(x))
        return x

    def _draws(self, draws, n: int, where: str) -> tuple:
        if not isinstance(draws, (tuple, list)) or len(draws) != 3:
            raise _checks.fail(where, "draws", "a tuple (rows, cols, flips), as draw() returns",
                               _checks.describe(draws), TypeError)
        checked = []
        for name, value, wanted in zip(("rows", "cols", "flips"), draws, (self.padding, self.padding, self.flip)):
            if not wanted:
                if value is not None:
                    raise _checks.fail(where, name, f"None for {self!r}", _checks.describe(value))
                checked.append(None)
                continue
            array = np.asarray(value)
            if name == "flips":
                ok = array.dtype == np.bool_
                expected = f"a bool array of length {n}"
            else:
                ok = array.dtype.kind in "iu" and (array.size == 0 or (array.min() >= 0 and array.max() <= 2 * self.padding))
                expected = f"an int array of length {n} with values in [0, {2 * self.padding}]"
            if not ok or array.shape != (n,):
                raise _checks.fail(where, name, expected, _checks.describe(value))
            checked.append(np.ascontiguousarray(array, dtype=np.bool_ if name == "flips" else np.intp))
        return tuple(checked)

    def _apply(self, inputs: np.ndarray, draws: tuple) -> np.ndarray:
        n = len(inputs)
        buffer = self.__dict__.get("_buffer")
        if (buffer is None or buffer.dtype != inputs.dtype or buffer.shape[1:] != inputs.shape[1:]
                or len(buffer) < n or np.may_share_memory(buffer, inputs)):
            buffer = np.empty(inputs.shape, inputs.dtype)
            self._buffer = buffer
        output = buffer[:n]
        status = _augment.crop_flip(inputs, output, *draws, self.padding)
        if status:  # the checks above make this unreachable; the kernel writes nothing then
            raise RuntimeError(f"Augmentation_CropFlip: the kernel refused the batch (status {status})")
        self.output = output
        return output
