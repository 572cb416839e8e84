"""Data-parallel training over MPI (mpi4py): ``mpiexec -n 4 python train.py``, where train.py is an
ordinary fastnn script whose ``model.train(X, y, ...)`` passes ``distributed=True``.

Every rank runs the same script. ``distributed=True``: every rank passes the same data, each
batch is split over the ranks, the gradients are summed over the ranks in one message per step,
and the parameters equal a one-process run's with the same batch size (to rounding).
``distributed="sharded"``: each rank passes its own part of the data. Only rank 0 prints the
log; ``Model.save`` writes on rank 0 only; a failure on one rank stops every rank with its error.
``evaluate`` and ``predict`` take the same argument. See docs/distributed.md.

mpi4py is imported the first time something here needs the communicator (a distributed call,
or rank()/size()/is_root()/barrier()), never by ``import fastnn``; install it with
``pip install "fastnn[mpi]"``.
"""
from __future__ import annotations

from . import comm as _comm
from .comm import Communicator, SingleProcess, set_communicator

__all__ = ["rank", "size", "is_root", "barrier", "set_communicator", "Communicator", "SingleProcess"]


def rank() -> int:
    """This process's rank in the communicator (MPI's COMM_WORLD unless set_communicator() chose
    another): 0 to size() - 1."""
    return _comm.current().rank


def size() -> int:
    """The number of ranks (1 for a plain ``python train.py``)."""
    return _comm.current().size


def is_root() -> bool:
    """True on rank 0: the rank that prints, saves and reports."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank called barrier() (for example before ranks read a file rank 0 saved)."""
    _comm.current().barrier()
