"""The status codes of src_pyx/_status.pxi, which each kernel module working on a layer's state
(_dense, _conv, _pool, _optimizers, _batchnorm) includes and exports; a stub only, imported by
their stubs (there is no module of this name at run time)."""
from typing import Final

OK: Final = 0
CONVERT: Final = 1
NO_FORWARD: Final = 2
BAD_WEIGHTS: Final = 3
BAD_BIASES: Final = 4
BAD_STRIDE: Final = 5
BAD_PADDING: Final = 6
BAD_POOL: Final = 7
BAD_DWEIGHTS: Final = 8
BAD_DBIASES: Final = 9
BAD_WEIGHT_MOMENTUMS: Final = 10
BAD_WEIGHT_CACHE: Final = 11
BAD_BIAS_MOMENTUMS: Final = 12
BAD_BIAS_CACHE: Final = 13
BAD_ARGMAX: Final = 14
BAD_STATISTICS: Final = 15
BAD_SETTING: Final = 16
ONE_VALUE: Final = 17
