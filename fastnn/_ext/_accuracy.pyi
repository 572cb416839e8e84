"""Categorical accuracy from class scores, without a predictions array; None means "validate the
arguments, then call again"."""

def argmax_matches(scores: object, labels: object) -> int | None: ...
