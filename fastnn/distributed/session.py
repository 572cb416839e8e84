"""One distributed call of Model.train, evaluate or predict: what the Model calls at the points where
the ranks meet. fastnn.model knows nothing of MPI; it calls these methods when its `distributed`
argument is a Session (the ``collective`` decorator turns ``distributed=True``/``"sharded"`` into one).

Data parallelism, as Horovod does it: rank 0's model is copied to every rank when training
starts; each step, every rank computes the gradients of its part of the batch, the gradients
are summed over the ranks in one message, and every rank applies the same update, so the ranks
hold the same parameters throughout.

- ``distributed=True``: every rank passes the same data. Each batch is split into contiguous
  parts, one per rank (sizes differing by at most one sample), so a step sees exactly the batch a
  one-process run sees.
- ``distributed="sharded"``: each rank passes its own part (shard) of the data; a step takes
  ``batch_size`` samples from every rank's shard. The epoch has as many steps as the *longest*
  shard needs: every sample is seen once per epoch, and a rank whose shard has run out takes part
  in the last steps with no samples (the step's mean is over the samples present).

The mean: the losses' gradients divide by the local sample count, so each rank weights its
gradient by its share of the step's samples (local count / step count) before the sum; the sum
is then the gradient of the whole step's mean loss.
"""
from __future__ import annotations

import functools
import weakref

import numpy as np

from .._core import config as _config
from ..layers import Layer_Dropout
from . import comm as _comm
from .agreement import architecture, disagreement, fingerprint, parameters_fingerprint
from .buffers import GradientMessage, broadcast_state, match_state, state_names, trainable_dtype
from .protocol import ACCURACY, FAILED, LOSS, Protocol

# The communicator of each model's last distributed call: Model.save writes on rank 0 only.
_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def collective(method):
    """Decorator of Model.train/evaluate/predict. Without ``distributed`` (False) the method runs
    as it is. Otherwise it runs with ``distributed`` set to a Session, and an exception raised on
    any rank, anywhere in the call, stops every rank with that error (see protocol.py)."""
    where = f"Model.{method.__name__}"

    @functools.wraps(method)
    def call(model, *args, distributed=False, **kwargs):
        if distributed is False or distributed is None:
            return method(model, *args, **kwargs)
        session = Session(model, _comm.current(), where)
        try:
            session.mode = _mode(distributed, where)
            result = method(model, *args, distributed=session, **kwargs)
            session.protocol.checkpoint()
            return result
        except Exception as exc:
            session.protocol.fail(exc)
            raise
        finally:
            session.release()
    return call


def root_only(model, write, *args, **kwargs):
    """Model.save/save_parameters: a model that took part in a distributed call is written by rank
    0 alone; the other ranks return at once and leave the path alone (a rank that reads the file
    next calls fastnn.distributed.barrier() first). Any other model is written as usual."""
    comm = _MODELS.get(model)
    if comm is None or comm.rank == 0:
        write(model, *args, **kwargs)


def _mode(distributed, where: str) -> str:
    if distributed is True:
        return "replicated"
    if isinstance(distributed, str) and distributed == "sharded":
        return "sharded"
    raise ValueError(f"{where}: distributed must be False, True (every rank passes the same data) or "
                     f"'sharded' (each rank passes its own part), got {distributed!r}")


def _saved(obj) -> dict:
    spec = getattr(type(obj), "_spec", None)
    return {name: getattr(obj, name) for name in spec.saved if hasattr(obj, name)} if spec is not None else {}


class Session:
    """The distributed side of one Model call on one rank."""

    def __init__(self, model, comm, where: str) -> None:
        self.model = model
        self.comm = comm
        self.rank = comm.rank
        self.size = comm.size
        self.where = where
        self.protocol = Protocol(comm, where)
        self.mode = "replicated"
        self.message: GradientMessage | None = None  # the training step's gradient message
        self.totals: list[int] | None = None  # sharded: every step's sample count over all ranks
        self._dropout_stream = False
        # The step's gradients: Model._gradients, or (set by Model.train) its compiled plan's.
        self.gradients = None
        _MODELS[model] = comm

    def __repr__(self) -> str:
        return f"Session({self.where}, {self.mode}, rank {self.rank} of {self.size})"

    def log_mode(self, mode: str) -> str:
        """Only rank 0 prints the log and shows progress."""
        return mode if self.rank == 0 else "silent"

    def _rows(self, n: int) -> tuple[int, int]:
        """This rank's contiguous part of n samples (sizes differ by at most one)."""
        return self.rank * n // self.size, (self.rank + 1) * n // self.size

    # --- training --------------------------------------------------------------------------------
    def start(self, X, y, validation_data, epochs: int, batch_size, shuffle: bool, mode: str):
        """Before the first step: the ranks compare the model, the arguments and (distributed=True)
        the data; every rank takes rank 0's parameters, optimizer state and settings (and, with
        distributed=True, NumPy's global RNG state, so shuffles agree); each rank gets its own
        dropout stream. Returns (steps per epoch, this rank's log mode)."""
        model = self.model
        layers = model.trainable_layers
        dtype = trainable_dtype(layers)
        if dtype is None:
            raise ValueError(f"{self.where}: distributed training needs every trainable layer in one dtype, got "
                             f"{sorted({str(layer.weights.dtype) for layer in layers})}")
        description = {"mode": self.mode, "model": architecture(model),
                       "settings": (epochs, batch_size, bool(shuffle), validation_data is not None)}
        if self.mode == "replicated":
            description["data"] = fingerprint(X, y)
            if validation_data is not None:
                description["validation"] = fingerprint(*validation_data)
        root = None
        if self.rank == 0:
            root = {"optimizer": _saved(model.optimizer), "accuracy": _saved(model.accuracy),
                    "state": [state_names(layer, model.optimizer) for layer in layers],
                    "rng": np.random.get_state() if self.mode == "replicated" else None}
        message = GradientMessage(layers, dtype)
        gathered = self.protocol.gather((description, len(X), root))
        error = disagreement(self.where, [entry[0] for entry in gathered])
        if error is not None:
            raise self.protocol.agreed_error(error)
        root = gathered[0][2]
        if self.rank != 0:
            for obj, values in ((model.optimizer, root["optimizer"]), (model.accuracy, root["accuracy"])):
                for name, value in values.items():
                    setattr(obj, name, value)
            match_state(layers, root["state"])
            if root["rng"] is not None:
                np.random.set_state(root["rng"])
        broadcast_state(self.comm, layers, root["state"], dtype)
        message.attach()
        self.message = message
        self.protocol.start_loop(len(message.data), dtype)
        if any(isinstance(layer, Layer_Dropout) for layer in model.layers):
            # One draw from the global RNG (the same on every rank with distributed=True) and the
            # rank seed this rank's dropout stream; the global RNG stays the same on every rank.
            seed = int(np.random.randint(0, 2 ** 32, dtype=np.uint64))
            _config.set_dropout_random(np.random.RandomState([seed, self.rank]))
            self._dropout_stream = True
        steps = 1 if batch_size is None else -(-len(X) // batch_size)
        if self.mode == "sharded":
            counts = [entry[1] for entry in gathered]
            steps = 1 if batch_size is None else max(-(-n // batch_size) for n in counts)
            self.totals = [sum(n if batch_size is None else min(batch_size, max(0, n - step * batch_size))
                               for n in counts) for step in range(steps)]
        return steps, self.log_mode(mode)

    def train_step(self, batch_X, batch_y, epoch: int, step: int, factor: float | None = None):
        """One step: this rank's gradients of its samples, weighted by its share, summed over the
        ranks with the step's loss and accuracy in one message; then the update (at the
        schedules' `factor` of the rate, as Model._update). Returns the step's (data_loss,
        reg_loss, accuracy) over all its samples."""
        model, message = self.model, self.message
        assert message is not None, "train_step before start"
        if self.totals is None:
            total = len(batch_X)
            lo, hi = self._rows(total)
            batch_X, batch_y = batch_X[lo:hi], batch_y[lo:hi]
        else:
            total = self.totals[step]
        count = len(batch_X)
        status = message.status
        if count:
            data_loss, reg_loss, accuracy = (self.gradients or model._gradients)(batch_X, batch_y, epoch, step)
            message.collect()
            share = count / total
            message.scale(share)
            status[LOSS], status[ACCURACY] = data_loss * share, accuracy * share
        else:
            message.gradients.fill(0)
            reg_loss = model.loss.regularization_loss()
            status[LOSS] = status[ACCURACY] = 0
        status[FAILED] = 0
        self.protocol.loop_status(message.data)
        model._update(factor)
        return float(status[LOSS]), reg_loss, float(status[ACCURACY])

    def reduce_accumulated(self) -> None:
        """The loss's and the accuracy's sums and counts of the pass (an epoch, or an evaluation)
        become the sums over all ranks, so calculate_accumulated() gives the whole data set's
        figures, the same on every rank."""
        objects = (self.model.loss, self.model.accuracy)
        mine = tuple(obj.__dict__.get(name, 0) for obj in objects for name in ("accumulated_sum", "accumulated_count"))
        totals = [sum(values) for values in zip(*self.protocol.gather(mine))]
        for i, obj in enumerate(objects):
            obj.accumulated_sum, obj.accumulated_count = totals[2 * i], totals[2 * i + 1]

    # --- evaluation and prediction -----------------------------------------------------------------
    def _agree_on_inference(self, *arrays) -> None:
        """evaluate/predict on their own: the ranks hold the same model and (distributed=True) data."""
        description = {"mode": self.mode, "model": architecture(self.model),
                       "parameters": parameters_fingerprint(self.model)}
        if self.mode == "replicated":
            description["data"] = fingerprint(*arrays)
        error = disagreement(self.where, self.protocol.gather(description))
        if error is not None:
            raise self.protocol.agreed_error(error)

    def local_samples(self, X, y, mode: str):
        """The samples this rank evaluates (its part with distributed=True, its shard as given with
        "sharded") and its log mode; the pass's sums are reduced by reduce_accumulated()."""
        if self.protocol.scratch is None:
            self._agree_on_inference(X, y)
        if self.mode == "replicated":
            lo, hi = self._rows(len(X))
            X, y = X[lo:hi], y[lo:hi]
        return X, y, self.log_mode(mode)

    def predict(self, predict, X, batch_size):
        """`predict` (the Model's batched inference) on this rank's part of X (distributed=True) or
        on its shard ("sharded"); every rank gets all parts, in rank order."""
        self._agree_on_inference(X)
        if self.mode == "replicated":
            lo, hi = self._rows(len(X))
            X = X[lo:hi]
        parts = self.protocol.gather(predict(X, batch_size) if len(X) else None)
        parts = [part for part in parts if part is not None]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def release(self) -> None:
        """After the call: Layer_Dropout draws from NumPy's global RNG again."""
        if self._dropout_stream:
            _config.set_dropout_random(None)
            self._dropout_stream = False
