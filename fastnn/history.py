"""What Model.train returns: per-epoch figures, and a plot of them."""
from __future__ import annotations

import os
from typing import Iterator

from .plotting import history_figure, plot_history

FIELDS = ("loss", "data_loss", "reg_loss", "accuracy", "learning_rate", "val_loss", "val_accuracy", "seconds")


class History:
    """Per-epoch training figures, one list per field (index i is epoch i + 1).

    Fields: loss, data_loss, reg_loss, accuracy (the epoch's accumulated figures, as on the book's
    ``training,`` line), learning_rate (the optimizer's current rate at the end of the epoch),
    val_loss, val_accuracy (None for epochs without validation data) and seconds (wall time).
    ``history["loss"]`` and ``history.loss`` both give a list.
    """

    def __init__(self) -> None:
        self._data: dict[str, list] = {name: [] for name in FIELDS}

    def append(self, **values) -> None:
        unknown = set(values) - set(FIELDS)
        if unknown:
            raise KeyError(f"unknown history fields: {sorted(unknown)}")
        for name in FIELDS:
            self._data[name].append(values.get(name))

    @property
    def epochs(self) -> list[int]:
        return list(range(1, len(self) + 1))

    def __len__(self) -> int:
        return len(self._data["loss"])

    def __getitem__(self, name: str) -> list:
        return self._data[name]

    def __getattr__(self, name: str):
        data = self.__dict__.get("_data")
        if data is not None and name in data:
            return data[name]
        raise AttributeError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(FIELDS)

    def as_dict(self) -> dict[str, list]:
        """A plain dict of lists (a copy)."""
        return {name: list(values) for name, values in self._data.items()}

    def __repr__(self) -> str:
        if not len(self):
            return "History(0 epochs)"
        last = {k: v[-1] for k, v in self._data.items() if v[-1] is not None}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in last.items() if isinstance(v, float))
        return f"History({len(self)} epochs; last: {shown})"

    def plot(self, path: str | os.PathLike[str] | None = None, *, title: str | None = None):
        """Plot loss and accuracy per epoch, training against validation (matplotlib:
        ``pip install "fastnn[plot]"``).

        ``history.plot("loss.png")`` writes the image (the format from the suffix; ``.png`` is
        added when there is none) and returns the path written. ``history.plot()`` shows it (a
        window, or inline in a notebook) and returns None."""
        return plot_history(self, path, title=title)

    def figure(self, *, title: str | None = None):
        """The same plot as a matplotlib Figure, neither shown nor saved: a notebook cell ending in
        ``history.figure()`` displays it; ``.savefig(path)`` writes it."""
        return history_figure(self, title=title)
