"""Plots of training histories (matplotlib, an optional extra: ``pip install "fastnn[plot]"``)."""
from __future__ import annotations

import os
import pathlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is optional: imported when a plot is made
    from matplotlib.figure import Figure

    from .history import History

# Up to this many epochs each one is marked with a dot: a short history (one epoch is one point)
# would otherwise draw lines without anything visible on them.
MARKERS_UP_TO = 50
DEFAULT_SUFFIX = ".png"


def _matplotlib(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise ImportError('plotting needs matplotlib: pip install "fastnn[plot]"') from exc


def draw_history(figure: Figure, history: History, *, title: str | None = None) -> Figure:
    """Draw a History's loss and accuracy per epoch, training against validation, side by side,
    into `figure` (a matplotlib Figure); returns it."""
    if len(history) == 0:
        raise ValueError("plot_history: the history is empty (train for at least one epoch)")
    ticker = _matplotlib("matplotlib.ticker")
    epochs = history.epochs
    marker = "o" if len(epochs) <= MARKERS_UP_TO else None
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for axes, key, label in ((loss_axes, "loss", "loss"), (accuracy_axes, "accuracy", "accuracy")):
        axes.plot(epochs, history[key], label=f"training {label}", marker=marker)
        validation = history["val_" + key]
        points = [(e, v) for e, v in zip(epochs, validation) if v is not None]
        if points:
            axes.plot([e for e, _ in points], [v for _, v in points], label=f"validation {label}", marker=marker)
        axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))  # whole epochs
        axes.ticklabel_format(axis="y", useOffset=False)  # 1.0986, not "1e-5 + 1.098" and 60.0
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(True, alpha=0.3)
        axes.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def history_figure(history: History, *, title: str | None = None) -> Figure:
    """The plot as a matplotlib Figure, not shown and not saved (a Jupyter cell ending in it shows
    it; ``figure.savefig(...)`` writes it). Works headless."""
    Figure = _matplotlib("matplotlib.figure").Figure
    return draw_history(Figure(figsize=(10, 4), dpi=100), history, title=title)


def plot_history(history: History, path: str | os.PathLike[str] | None = None, *, title: str | None = None):
    """Plot a History's loss and accuracy per epoch, training against validation.

    With a path: write the image there (the format from its suffix; ``.png`` is added when the
    path has none) and return the path written, as a str when given a str. Works headless.
    Without one: show it with ``matplotlib.pyplot.show()`` (a window, or inline in a notebook)
    and return None; see ``History.figure()`` for the Figure itself.
    """
    if path is None:
        pyplot = _matplotlib("matplotlib.pyplot")
        draw_history(pyplot.figure(figsize=(10, 4), dpi=100), history, title=title)
        pyplot.show()
        return None
    written = pathlib.Path(os.fspath(path))
    if not written.suffix:
        written = written.with_name(written.name + DEFAULT_SUFFIX)
    history_figure(history, title=title).savefig(written)
    return str(written) if isinstance(path, str) else written
