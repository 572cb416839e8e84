"""The communicator distributed training talks through: MPI's COMM_WORLD through mpi4py by
default, imported the first time something asks for it (never by ``import fastnn``), or one a
script sets (a sub-communicator, or the single-process one the tests use).

fastnn needs five operations, all of them collective (every rank calls them in the same order):
an in-place sum of a NumPy buffer over the ranks, a broadcast of a buffer from rank 0, an
allgather of small Python objects, a barrier, and an abort for when nothing else works.
"""
from __future__ import annotations

import numpy as np

MPI_MISSING = ('fastnn.distributed needs mpi4py and an MPI runtime: pip install "fastnn[mpi]" '
               '(mpi4py with the MPICH wheel), or mpi4py built against the system\'s MPI')


class Communicator:
    """An mpi4py intracommunicator seen through the five operations fastnn uses. The buffer
    operations (``allreduce_sum``, ``broadcast``) work in place on C-contiguous NumPy arrays,
    without pickling or copies."""

    def __init__(self, comm) -> None:
        from mpi4py import MPI

        self._mpi = MPI
        self._comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def __repr__(self) -> str:
        return f"Communicator(rank {self.rank} of {self.size})"

    def allreduce_sum(self, buffer: np.ndarray) -> None:
        """buffer <- the sum of every rank's buffer (same size and dtype on every rank)."""
        if self.size > 1:
            self._comm.Allreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)

    def broadcast(self, buffer: np.ndarray) -> None:
        """buffer <- rank 0's buffer."""
        if self.size > 1:
            self._comm.Bcast(buffer, root=0)

    def allgather(self, value) -> list:
        """[rank 0's value, rank 1's value, ...] on every rank (pickled: for small objects)."""
        return self._comm.allgather(value)

    def barrier(self) -> None:
        self._comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every rank of the job: the last resort when the ranks cannot agree to stop."""
        self._comm.Abort(code)


class SingleProcess:
    """A communicator of one rank that needs no MPI: every collective is the identity. With it
    ``distributed=True`` runs the whole protocol in one process (the tests use it)."""

    rank = 0
    size = 1

    def __repr__(self) -> str:
        return "SingleProcess()"

    def allreduce_sum(self, buffer: np.ndarray) -> None:
        pass

    def broadcast(self, buffer: np.ndarray) -> None:
        pass

    def allgather(self, value) -> list:
        return [value]

    def barrier(self) -> None:
        pass

    def abort(self, code: int = 1) -> None:
        raise SystemExit(code)


_OPERATIONS = ("rank", "size", "allreduce_sum", "broadcast", "allgather", "barrier", "abort")
_current = None


def current():
    """The communicator in use: the one set_communicator() set, else MPI's COMM_WORLD (mpi4py is
    imported here, the first time; ImportError with the install command when it is missing)."""
    global _current
    if _current is None:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise ImportError(MPI_MISSING) from exc
        _current = Communicator(MPI.COMM_WORLD)
    return _current


def set_communicator(comm) -> None:
    """Use `comm` from now on: an mpi4py intracommunicator (a split of COMM_WORLD, say), an object
    with the operations of ``Communicator`` (such as ``SingleProcess()``), or None for
    COMM_WORLD again. Every rank must set the same group."""
    global _current
    if comm is None:
        _current = None
        return
    if all(hasattr(comm, name) for name in _OPERATIONS):
        _current = comm
        return
    if callable(getattr(comm, "Get_rank", None)) and callable(getattr(comm, "Allreduce", None)):
        _current = Communicator(comm)
        return
    raise TypeError(f"fastnn.distributed.set_communicator: comm must be an mpi4py communicator, an object "
                    f"with {', '.join(_OPERATIONS)}, or None, got {type(comm).__name__}")
