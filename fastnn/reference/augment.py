"""Augmentation_CropFlip in NumPy (not in the book): the oracle of fastnn's augmentation kernel.

The same draws from NumPy's global RNG, in the same order, as ``fastnn.Augmentation_CropFlip``;
the images are made by padding with ``np.pad`` and indexing, so for the same draws both give the
same arrays, bit for bit.
"""
from __future__ import annotations

import numpy as np


class Augmentation_CropFlip:
    """Random crop with zero padding and random horizontal flip of (n_samples, channels, height,
    width) image batches; ``fastnn.Augmentation_CropFlip`` documents the transformation."""

    def __init__(self, padding: int = 2, flip: bool = True) -> None:
        self.padding = padding
        self.flip = flip

    def draw(self, n_samples: int) -> tuple:
        """(rows, cols, flips): crop offsets in [0, 2 * padding] (None without padding) and flip
        flags (None without flip), for n_samples images."""
        rows = cols = flips = None
        if self.padding:
            rows = np.random.randint(0, 2 * self.padding + 1, n_samples)
            cols = np.random.randint(0, 2 * self.padding + 1, n_samples)
        if self.flip:
            flips = np.random.random_sample(n_samples) < 0.5
        return rows, cols, flips

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """The augmented batch (n_samples, channels, height, width), with fresh draws."""
        return self.apply(inputs, self.draw(len(inputs)))

    def apply(self, inputs: np.ndarray, draws: tuple) -> np.ndarray:
        """inputs (n_samples, channels, height, width) cropped and flipped as `draws` say."""
        rows, cols, flips = draws
        n, _, height, width = inputs.shape
        p = self.padding
        padded = np.pad(inputs, ((0, 0), (0, 0), (p, p), (p, p)))
        rows = np.zeros(n, int) if rows is None else rows
        cols = np.zeros(n, int) if cols is None else cols
        h = rows[:, None] + np.arange(height)[None, :]                     # (n, height) padded rows
        w = cols[:, None] + np.arange(width)[None, :]                      # (n, width) padded columns
        if flips is not None:
            w = np.where(flips[:, None], w[:, ::-1], w)
        samples = np.arange(n)[:, None, None, None]
        channels = np.arange(inputs.shape[1])[None, :, None, None]
        self.output = padded[samples, channels, h[:, None, :, None], w[:, None, None, :]]
        return self.output
