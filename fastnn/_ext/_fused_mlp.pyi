"""The Model's compiled training step for one wide hidden layer between thin ones (Dense-ReLU-
[Dropout]-Dense-softmax/CCE); None means "take the per-layer path" (nothing changed, nothing drawn)."""
from typing import Any, Callable, Final

MAX_THIN: Final = 16

def hidden_step(dense1: dict[str, Any], dense2: dict[str, Any], scratch: dict[str, Any], X: object,
                labels: object, keep: float, draw_seed: Callable[[], int] | None,
                keep_attributes: tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any], dict[str, Any]]
                | None = None) -> tuple[float, int] | None: ...
