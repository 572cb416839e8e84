"""The Model's compiled training step for two wide hidden layers between thin ones with a linear
output and mean squared error (Dense-ReLU-Dense-ReLU-Dense-Linear, MSE, regression accuracy);
None means "take the per-layer path" (nothing changed)."""
from typing import Any, Final

MAX_THIN: Final = 16

def regression_step(dense1: dict[str, Any], dense2: dict[str, Any], dense3: dict[str, Any], scratch: dict[str, Any],
                    X: object, y: object, precision: float) -> tuple[float, int] | None: ...
