"""How the ranks stay in step, and how a failure on one rank stops all of them instead of a hang.

Every collective a distributed call makes is a *checkpoint*, and every checkpoint begins with a
status message from every rank saying whether that rank failed. A rank that raises anywhere
(bad input, a NaN loss, a refused argument) sends that status at its next checkpoint, which is
the one the other ranks are waiting in, since all ranks run the same sequence of checkpoints;
every rank then learns who failed and why, and raises. Between a status that said "no failure"
and the buffer collective that follows it nothing that can fail runs, so no rank is ever left
alone in a buffer collective.

Two phases, two shapes of status:

- **open** (before a training loop starts, and all of evaluate/predict): the status is an
  allgather of ``(error or None, value)``: the error travels with the values the checkpoint
  exchanges anyway.
- **loop** (from the start of a training loop until train() returns): the status is the in-place
  sum of one buffer whose last ``SLOTS`` elements are status slots. A training step's checkpoint
  is its gradient message itself (slot 0 counts the failed ranks, the others carry the step's
  loss and accuracy), so a step costs one collective; the few other checkpoints (the epoch's
  sums, validation, the end) sum a scratch buffer of the same size and dtype, so that a failing
  rank, which does not know which checkpoint the others are in, always sends a matching message.
  When slot 0 is not zero, every rank allgathers the error descriptions.

If the ranks cannot even exchange the failure (a broken link, a dead peer), the rank that knows
prints the error and aborts the whole job (``comm.abort``): the last resort.
"""
from __future__ import annotations

import builtins
import sys

import numpy as np

SLOTS = 4
FAILED, LOSS, ACCURACY = 0, 1, 2


class Protocol:
    """The checkpoints of one distributed call (train, evaluate or predict) on one rank."""

    def __init__(self, comm, where: str) -> None:
        self.comm = comm
        self.where = where
        self.scratch: np.ndarray | None = None  # the loop phase's status buffer once a training loop started
        self.settled = False  # every rank knows about the error being raised: nothing left to tell

    # --- checkpoints -----------------------------------------------------------------------------
    def gather(self, value=None) -> list:
        """A checkpoint that exchanges one small value per rank: [rank 0's, rank 1's, ...]. Raises,
        on every rank, the error of a rank that failed instead."""
        if self.scratch is not None:
            self.loop_status()
            return self.comm.allgather(value)
        entries = self.comm.allgather((None, value))
        errors = [error for error, _ in entries]
        if any(error is not None for error in errors):
            self._raise(errors)
        return [value for _, value in entries]

    def checkpoint(self) -> None:
        """A checkpoint that exchanges nothing: the end of a call, where a rank that failed after
        the others' last checkpoint is heard."""
        if self.scratch is not None:
            self.loop_status()
        else:
            self.gather()

    def start_loop(self, size: int, dtype) -> None:
        """Enter the loop phase: from now on every status is a sum of `size` elements of `dtype`
        (the training step's gradient message), and the checkpoints that carry no gradients sum
        a scratch buffer of that shape."""
        self.scratch = np.zeros(size, dtype=dtype)

    def loop_status(self, message: np.ndarray | None = None) -> None:
        """A loop-phase checkpoint: `message` (a gradient message ending in the status slots,
        already filled) or the scratch buffer, summed in place over the ranks. Raises, on every
        rank, the error of a rank that failed."""
        if message is None:
            assert self.scratch is not None, "a loop-phase status before the loop started"
            message = self.scratch
            message[-SLOTS:] = 0
        self.comm.allreduce_sum(message)
        if message[len(message) - SLOTS + FAILED] != 0:
            self._raise(self.comm.allgather(None))

    # --- failures --------------------------------------------------------------------------------
    def fail(self, exc: BaseException) -> None:
        """This rank raised `exc` (not yet known to the others): send the failure at this rank's
        next checkpoint, which the other ranks are in or will reach, and exchange the errors. The
        caller then raises `exc` itself."""
        if self.settled:
            return
        self.settled = True
        # str(KeyError("x")) is "'x'": the message is its argument
        text = exc.args[0] if isinstance(exc, KeyError) and len(exc.args) == 1 else str(exc)
        record = (self.comm.rank, type(exc).__name__, str(text))
        try:
            if self.scratch is None:
                self.comm.allgather((record, None))
            else:
                self.scratch[:] = 0
                self.scratch[-SLOTS + FAILED] = 1
                self.comm.allreduce_sum(self.scratch)
                self.comm.allgather(record)
        except Exception as broken:
            sys.stderr.write(f"{self.where}: rank {self.comm.rank} failed ({record[1]}: {record[2]}) and could "
                             f"not tell the other ranks ({type(broken).__name__}: {broken}); aborting the job\n")
            sys.stderr.flush()
            self.comm.abort(1)

    def agreed_error(self, exc: Exception) -> Exception:
        """`exc`, raised on every rank from facts every rank has (a mismatch found in gathered
        values): nothing to tell anyone."""
        self.settled = True
        return exc

    def _raise(self, records: list) -> None:
        self.settled = True
        raise remote_error(self.where, records, self.comm.size)


def remote_error(where: str, records: list, size: int) -> Exception:
    """The error a rank raises when other ranks failed: the first failed rank's exception type
    when it is one of Python's own (FloatingPointError, ValueError, ...), else RuntimeError, with
    a message naming that rank and saying what it raised. ``failed_rank`` holds its number."""
    failed = [record for record in records if record is not None]
    rank, name, text = failed[0]
    message = f"{where}: rank {rank} of {size} failed with {name}: {text}"
    if len(failed) > 1:
        message += f" (ranks {', '.join(str(r[0]) for r in failed[1:])} failed too)"
    cls = getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        cls = RuntimeError
    try:
        error = cls(message)
    except Exception:  # an exception type that wants other arguments
        error = RuntimeError(message)
    setattr(error, "failed_rank", rank)
    return error
