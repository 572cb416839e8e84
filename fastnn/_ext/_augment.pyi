"""Per-batch image augmentation (random crop with zero padding, horizontal flip) into a reused
output buffer; returns a status code."""
from typing import Final

OK: Final = 0
CONVERT: Final = 1
BAD_OUTPUT: Final = 2
BAD_DRAWS: Final = 3


def crop_flip(inputs: object, output: object, rows: object, cols: object, flips: object, padding: int) -> int: ...
