"""Plots of training histories (matplotlib, an optional extra: ``pip install "fastnn[plot]"``)."""
from __future__ import annotations


def _pyplot():
    # A bare Figure (no pyplot) renders off-screen with the file format's own canvas: no window,
    # no global backend switch, works headless.
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError('plotting needs matplotlib: pip install "fastnn[plot]"') from exc
    return Figure


def plot_history(history, path, *, title: str | None = None):
    """Draw a History's loss and accuracy per epoch, training against validation, side by side,
    into `path` (format from its suffix, e.g. .png). Works headless. Returns the path."""
    Figure = _pyplot()
    if len(history) == 0:
        raise ValueError("plot_history: the history is empty (train for at least one epoch)")
    epochs = history.epochs
    figure = Figure(figsize=(10, 4), dpi=100)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for axes, key, label in ((loss_axes, "loss", "loss"), (accuracy_axes, "accuracy", "accuracy")):
        axes.plot(epochs, history[key], label=f"training {label}")
        validation = history["val_" + key]
        points = [(e, v) for e, v in zip(epochs, validation) if v is not None]
        if points:
            axes.plot([e for e, _ in points], [v for _, v in points], label=f"validation {label}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(True, alpha=0.3)
        axes.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path)
    return path
