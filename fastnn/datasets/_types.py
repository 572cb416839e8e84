"""Type aliases of the dataset functions' signatures (their argument checks are in fastnn._core.checks)."""
from __future__ import annotations

import os
from typing import Tuple, Union

import numpy as np
from numpy.typing import NDArray

PathArg = Union[str, os.PathLike]
"""A path argument: a str or an os.PathLike (pathlib.Path)."""

FourArrays = Tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8]]
"""(X_train, y_train, X_test, y_test), all uint8."""
