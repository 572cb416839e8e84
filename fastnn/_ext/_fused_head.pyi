"""The Model's fused softmax + categorical cross-entropy + categorical accuracy step; None means
"validate the arguments, then call again"."""
from typing import Any

def softmax_cce_step(softmax_state: dict[str, Any], combined_state: dict[str, Any], logits: object,
                     labels: object) -> tuple[float, int] | None: ...
