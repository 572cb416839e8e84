"""The optimizers' fused update of one layer's weights and biases (and their state) in place."""
from typing import Any

def update_layer(method: int, layer: dict[str, Any], lr: float, epsilon: float = 0.0, a: float = 0.0, b: float = 0.0,
                 correction1: float = 1.0, correction2: float = 1.0, where: str = "Optimizer.update_params") -> None: ...
