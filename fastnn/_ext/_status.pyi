"""The status codes of src_pyx/_status.pxi: what a kernel entry point working on a layer's state
returns (OK is 0). No module of this name exists at run time: the .pxi is included by _dense,
_conv, _pool, _batchnorm and _optimizers, each of which defines these names, and their stubs take
them from here."""
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
