"""``repr`` of the losses, accuracies, optimizers and activations, from their declarations: the
class name and each declared constructor parameter with its current value, as Python would write
the call (``Optimizer_Adam(learning_rate=0.05, decay=5e-05, epsilon=1e-07, beta_1=0.9,
beta_2=0.999)``)."""
from __future__ import annotations

from .spec import Spec


def constructor_repr(obj: object) -> str:
    spec: Spec | None = getattr(type(obj), "_spec", None)
    params = spec.params if spec is not None else {}
    arguments = ", ".join(f"{name}={getattr(obj, name)!r}" for name in params if name in vars(obj))
    return f"{type(obj).__name__}({arguments})"
