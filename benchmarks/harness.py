"""What the benchmarks measure, shared by the pytest-benchmark modules and ``run.py``.

Everything here builds *callables*: each call of one runs exactly one unit of work (one training
step on the next batch, one inference pass, one op), so pytest-benchmark and the interleaved
runner time the same code.

Peers of a whole-step configuration (``make_step(config, peer)``):

- ``fastnn``            the book's step, written out below (``book_step``), on a ``fastnn.Model``
- ``reference``         the same ``book_step`` on a ``fastnn.reference.Model`` (plain NumPy)
- ``torch``             the same network in PyTorch eager: Linear/ReLU/Dropout, CrossEntropyLoss on
                        the logits, ``torch.optim.Adam(fused=True)`` (foreach when fused is refused)
- ``gemm-floor``        the GEMM calls a fastnn step issues, alone, through ``fastnn.backend.blas.gemm``
                        into preallocated buffers (forward ``x @ W`` per dense layer; backward
                        ``x.T @ dv`` per layer and ``dv @ W.T`` except the first layer's)
- ``fastnn-raw``        the same step as ``fastnn`` issued straight to the kernel entry points
                        (``fastnn._ext._dense.forward(layer.__dict__, x)`` ...): no class methods,
                        no Python-side checks. fastnn - fastnn-raw = the Python layer's cost.
- ``fastnn-train-step`` ``fastnn.Model._train_step`` (what ``Model.train`` calls per batch: the
                        book step plus the NaN/inf guard)
- ``fastnn-manual`` / ``reference-manual``  (spiral only) the Ch10-style loop of calls on the
                        layer objects, no Model
- ``fastnn-predict``    (inference only) ``Model.predict``: validation and a fresh output copy

The reference Model has no ``_train_step``, so fastnn and the reference both run ``book_step``,
which is the body of ``Model.train``'s batch loop (book Ch22) without the print.
"""
from __future__ import annotations

import gzip
import os
import pathlib
from dataclasses import dataclass, field

import numpy as np

import fastnn
import fastnn.reference as ref
from fastnn.backend import blas
from fastnn._ext import _activations, _dense, _dropout, _losses, _optimizers

try:  # PyTorch is an optional peer
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DTYPE = np.float32


# --------------------------------------------------------------------------------------------------
# Configurations (design.md §12)

@dataclass(frozen=True)
class Config:
    name: str
    sizes: tuple            # layer widths, input first: (2, 64, 3) is Dense(2,64) ReLU Dense(64,3) Softmax
    batch: int
    data: str               # "spiral" or "mnist" (real MNIST rows when found, else random of that shape)
    n_batches: int          # distinct batches cycled through (consecutive slices, as Model.train)
    training: bool = True   # False: inference (forward + softmax, training=False)
    dropout: float = 0.0    # Layer_Dropout(rate) after each hidden ReLU
    l2: float = 0.0         # weight and bias L2 on the first Dense layer
    learning_rate: float = 0.001
    decay: float = 0.0
    pretrain: int = 1       # steps run before the state snapshot every block restarts from
    description: str = ""
    target: dict = field(default_factory=dict, compare=False, hash=False)
    baseline: dict = field(default_factory=dict, compare=False, hash=False)


CONFIGS = {c.name: c for c in [
    Config("spiral", (2, 64, 3), 300, "spiral", 1, learning_rate=0.05, decay=5e-7,
           description="Ch10 model: Dense(2,64) ReLU Dense(64,3) Softmax+CCE, Adam(0.05, decay 5e-7), "
                       "the whole 300-sample spiral set per step",
           target={"kind": "ref_ratio", "value": 8.0},
           baseline={"reference": 220, "torch": 349, "gemm-floor": 16}),
    Config("spiral-big", (2, 512, 3), 1000, "spiral", 3, dropout=0.1, l2=5e-4, learning_rate=0.05, decay=5e-5,
           description="Ch18 model: Dense(2,512,L2 5e-4) ReLU Dropout(0.1, fast mode) Dense(512,3) "
                       "Softmax+CCE, Adam(0.05, decay 5e-5), batch 1000",
           target={"kind": "ref_ratio", "value": 6.0},
           baseline={"reference": 11309, "torch": 7943, "gemm-floor": 889}),
    Config("mnist", (784, 128, 128, 10), 128, "mnist", 16, decay=1e-3,
           description="Dense(784,128) ReLU Dense(128,128) ReLU Dense(128,10) Softmax+CCE, Adam(decay 1e-3), batch 128",
           target={"kind": "floor_ratio", "value": 1.2},
           baseline={"reference": 1607, "torch": 1562, "gemm-floor": 660}),
    Config("wide", (784, 1024, 1024, 10), 256, "mnist", 8, decay=1e-3,
           description="Dense(784,1024) ReLU Dense(1024,1024) ReLU Dense(1024,10) Softmax+CCE, Adam(decay 1e-3), batch 256",
           target={"kind": "floor_ratio", "value": 1.1},
           baseline={"reference": 32166, "torch": 19475, "gemm-floor": 17947}),
    Config("tiny-batch", (784, 128, 10), 1, "mnist", 64, decay=1e-3,
           description="Dense(784,128) ReLU Dense(128,10) Softmax+CCE, Adam(decay 1e-3), batch 1",
           target={"kind": "ref_ratio", "value": 6.0},
           baseline={"reference": 325, "torch": 398, "gemm-floor": 31}),
    Config("tiny-batch-long", (784, 128, 10), 1, "mnist", 64, decay=1e-3, pretrain=1500,
           description="tiny-batch after 1500 training steps (diagnostic, no target): most of the first "
                       "layer's Adam momentums have decayed into float32 denormals (dead ReLU units get zero "
                       "gradients; 0.9^k underflows after several hundred steps and stays at the smallest "
                       "denormal), as in any long training run"),
    Config("mnist-long", (784, 128, 128, 10), 128, "mnist", 16, decay=1e-3, pretrain=1500,
           description="mnist after 1500 training steps (diagnostic, no target): Adam momentums of dead "
                       "units in float32 denormals, as in any long training run"),
    Config("infer-1", (784, 128, 128, 10), 1, "mnist", 64, training=False,
           description="inference: forward (training=False) + softmax, 784-128-128-10, batch 1",
           target={"kind": "ref_ratio", "value": 3.0}),
    Config("infer-1024", (784, 128, 128, 10), 1024, "mnist", 2, training=False,
           description="inference: forward (training=False) + softmax, 784-128-128-10, batch 1024",
           target={"kind": "floor_ratio", "value": 1.1}),
]}

TRAIN_PEERS = ("fastnn", "reference", "torch", "gemm-floor", "fastnn-raw", "fastnn-train-step")
INFER_PEERS = ("fastnn", "reference", "torch", "gemm-floor", "fastnn-raw", "fastnn-predict")
MANUAL_PEERS = ("fastnn-manual", "reference-manual")   # spiral only
MAIN_PEERS = ("fastnn", "reference", "torch", "gemm-floor")


def peers_for(config: Config, *, with_torch: bool = True, extras: bool = True) -> list[str]:
    names = list(TRAIN_PEERS if config.training else INFER_PEERS)
    if config.name == "spiral":
        names += MANUAL_PEERS
    if not extras:
        names = [n for n in names if n in MAIN_PEERS]
    if not with_torch or torch is None:
        names.remove("torch")
    return names


def target_text(config: Config) -> str:
    t = config.target
    if not t:
        return ""
    if t["kind"] == "ref_ratio":
        return f"reference/fastnn >= {t['value']:g}"
    return f"fastnn/GEMM floor <= {t['value']:g}"


def target_met(config: Config, ref_ratio: float | None, floor_ratio: float | None) -> bool | None:
    t = config.target
    if not t:
        return None
    if t["kind"] == "ref_ratio":
        return None if ref_ratio is None else ref_ratio >= t["value"]
    return None if floor_ratio is None else floor_ratio <= t["value"]


# --------------------------------------------------------------------------------------------------
# Data

def spiral_data(samples: int, classes: int, seed: int = 0):
    """nnfs's spiral_data (same formula), float32 X, int64 y, from a private RNG."""
    rng = np.random.RandomState(seed)
    X = np.zeros((samples * classes, 2), dtype=DTYPE)
    y = np.zeros(samples * classes, dtype=np.int64)
    for c in range(classes):
        ix = range(samples * c, samples * (c + 1))
        r = np.linspace(0.0, 1, samples)
        t = np.linspace(c * 4, (c + 1) * 4, samples) + rng.randn(samples) * 0.2
        X[ix] = np.c_[r * np.sin(t * 2.5), r * np.cos(t * 2.5)]
        y[ix] = c
    return X, y


def mnist_dir() -> pathlib.Path | None:
    """Where the real MNIST IDX files are: $FASTNN_BENCH_MNIST, then ../shared/datasets/mnist next
    to the repository, then /work/shared/datasets/mnist. None when absent."""
    candidates = []
    if os.environ.get("FASTNN_BENCH_MNIST"):
        candidates.append(pathlib.Path(os.environ["FASTNN_BENCH_MNIST"]))
    candidates += [REPO_ROOT.parent / "shared" / "datasets" / "mnist", pathlib.Path("/work/shared/datasets/mnist")]
    for path in candidates:
        if (path / "train-images-idx3-ubyte.gz").is_file() and (path / "train-labels-idx1-ubyte.gz").is_file():
            return path
    return None


def _read_idx(path: pathlib.Path, count: int, header: int, item: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read(header + count * item)
    return np.frombuffer(raw, dtype=np.uint8, offset=header)


_DATA_CACHE: dict = {}


def mnist_rows(count: int = 4096):
    """(X float32 (count, 784) scaled to [-1, 1] as the book, y int64, source) from the first
    `count` MNIST training images; random data of the same shape when the files are absent."""
    key = ("mnist", count)
    if key not in _DATA_CACHE:
        folder = mnist_dir()
        if folder is not None:
            images = _read_idx(folder / "train-images-idx3-ubyte.gz", count, 16, 784).reshape(count, 784)
            labels = _read_idx(folder / "train-labels-idx1-ubyte.gz", count, 8, 1)
            X = ((images.astype(DTYPE) - 127.5) / 127.5).astype(DTYPE)
            y = labels.astype(np.int64)
            source = f"MNIST ({folder})"
        else:
            rng = np.random.default_rng(0)
            X = rng.uniform(-1, 1, size=(count, 784)).astype(DTYPE)
            y = rng.integers(0, 10, size=count).astype(np.int64)
            source = "random (MNIST files not found)"
        _DATA_CACHE[key] = (X, y, source)
    return _DATA_CACHE[key]


def batches(config: Config):
    """(list of (X, y) batches, description of the data)."""
    if config.data == "spiral":
        per_class = config.batch * config.n_batches // 3
        X, y = spiral_data(per_class, 3)
        source = f"spiral_data({per_class}, 3)"
    else:
        X, y, source = mnist_rows(max(4096, config.batch * config.n_batches))
        n_out = config.sizes[-1]
        if n_out != 10:  # pragma: no cover - all mnist-like configs have 10 classes
            y = y % n_out
    out = []
    for i in range(config.n_batches):
        sl = slice(i * config.batch, (i + 1) * config.batch)
        out.append((X[sl], y[sl]))
    return out, source


# --------------------------------------------------------------------------------------------------
# Models

def build_model(lib, config: Config, seed: int = 0, dropout_mode: str = "fast"):
    """A finalized fastnn or fastnn.reference Model for `config` (weights from np.random.seed(seed))."""
    np.random.seed(seed)
    model = lib.Model()
    sizes = config.sizes
    for i in range(len(sizes) - 1):
        reg = dict(weight_regularizer_l2=config.l2, bias_regularizer_l2=config.l2) if (i == 0 and config.l2) else {}
        model.add(lib.Layer_Dense(sizes[i], sizes[i + 1], **reg))
        if i < len(sizes) - 2:
            model.add(lib.Activation_ReLU())
            if config.dropout:
                if lib is fastnn:
                    model.add(lib.Layer_Dropout(config.dropout, mode=dropout_mode))
                else:
                    model.add(lib.Layer_Dropout(config.dropout))
    model.add(lib.Activation_Softmax())
    model.set(loss=lib.Loss_CategoricalCrossentropy(),
              optimizer=lib.Optimizer_Adam(learning_rate=config.learning_rate, decay=config.decay),
              accuracy=lib.Accuracy_Categorical())
    model.finalize()
    return model


def book_step(model, X, y):
    """One batch of the book's Model.train loop (Ch22), as fastnn's Model._train_step runs it
    without the NaN guard: forward(training=True), loss with regularisation, accuracy, backward,
    optimizer pre/update/post. The same code drives fastnn and the reference."""
    output = model.forward(X, training=True)
    data_loss, reg_loss = model.loss.calculate(output, y, include_regularization=True)
    predictions = model.output_layer_activation.predictions(output)
    accuracy = model.accuracy.calculate(predictions, y)
    model.backward(output, y)
    optimizer = model.optimizer
    optimizer.pre_update_params()
    for layer in model.trainable_layers:
        optimizer.update_params(layer)
    optimizer.post_update_params()
    return data_loss, reg_loss, accuracy


def _cycle(items):
    """A function returning the items in turn, forever."""
    state = [0]
    n = len(items)

    def nxt():
        i = state[0]
        state[0] = i + 1 if i + 1 < n else 0
        return items[i]
    return nxt


def _dense_shapes(config: Config):
    return [(config.sizes[i], config.sizes[i + 1]) for i in range(len(config.sizes) - 1)]


# --- torch ------------------------------------------------------------------------------------------

def torch_adam_kind() -> str:
    """'fused' when torch.optim.Adam(fused=True) runs on CPU tensors in this torch, else 'foreach'."""
    if torch is None:
        return "none"
    try:
        p = torch.nn.Parameter(torch.zeros(2))
        p.grad = torch.ones(2)
        torch.optim.Adam([p], fused=True).step()
        return "fused"
    except (RuntimeError, TypeError, ValueError):
        return "foreach"


def build_torch(config: Config, fastnn_model):
    """The same network in torch, weights copied from `fastnn_model` (torch stores W transposed)."""
    modules = []
    dense = [layer for layer in fastnn_model.layers if isinstance(layer, fastnn.Layer_Dense)]
    for i, layer in enumerate(dense):
        lin = torch.nn.Linear(*layer.weights.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.weights.T)))
            lin.bias.copy_(torch.from_numpy(layer.biases.reshape(-1)))
        modules.append(lin)
        if i < len(dense) - 1:
            modules.append(torch.nn.ReLU())
            if config.dropout:
                modules.append(torch.nn.Dropout(config.dropout))
    return torch.nn.Sequential(*modules)


def _torch_step(config: Config, fastnn_model, data):
    net = build_torch(config, fastnn_model)
    first = net[0]
    kind = torch_adam_kind()
    # Book L2 on the first layer: its gradient 2*l2*p is Adam's (coupled) weight_decay.
    if config.l2:
        groups = [{"params": list(first.parameters()), "weight_decay": 2 * config.l2},
                  {"params": [p for m in list(net)[1:] for p in m.parameters()]}]
    else:
        groups = list(net.parameters())
    opt_kw = {"fused": True} if kind == "fused" else {"foreach": True}
    opt = torch.optim.Adam(groups, lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-7, **opt_kw)
    loss_fn = torch.nn.CrossEntropyLoss()
    tbatches = _cycle([(torch.from_numpy(X), torch.from_numpy(y)) for X, y in data])
    lr0, decay, l2 = config.learning_rate, config.decay, config.l2
    it = [0]
    net.train()

    def step():
        x, y = tbatches()
        if decay:  # the book's pre_update_params
            lr = lr0 * (1.0 / (1.0 + decay * it[0]))
            for g in opt.param_groups:
                g["lr"] = lr
        logits = net(x)
        loss = loss_fn(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it[0] += 1
        data_loss = loss.item()
        reg_loss = 0.0
        if l2:
            with torch.no_grad():
                reg_loss = (l2 * (first.weight * first.weight).sum() + l2 * (first.bias * first.bias).sum()).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
        return data_loss, reg_loss, accuracy
    step.net, step.opt, step.counter = net, opt, it
    return step


def _torch_infer(config: Config, fastnn_model, data):
    net = build_torch(config, fastnn_model).eval()
    tbatches = _cycle([torch.from_numpy(X) for X, _ in data])

    def step():
        with torch.inference_mode():
            return torch.softmax(net(tbatches()), dim=1)
    return step


# --- GEMM floor -------------------------------------------------------------------------------------

def gemm_calls(config: Config, X0: np.ndarray):
    """[(label, a, b, out, trans_a, trans_b)] for the GEMMs of one fastnn step, with buffers."""
    rng = np.random.default_rng(1)
    n = config.batch
    calls = []
    xs = [X0]
    for i, (fan_in, fan_out) in enumerate(_dense_shapes(config)):
        W = (0.01 * rng.standard_normal((fan_in, fan_out))).astype(DTYPE)
        out = np.empty((n, fan_out), DTYPE)
        calls.append((f"fwd{i + 1} x@W", xs[-1], W, out, False, False))
        xs.append(out)
    if config.training:
        layers = list(enumerate(_dense_shapes(config)))
        for i, (fan_in, fan_out) in reversed(layers):
            W = calls[i][2]
            dv = rng.standard_normal((n, fan_out)).astype(DTYPE)
            dW = np.empty((fan_in, fan_out), DTYPE)
            calls.append((f"bwd{i + 1} x.T@dv", xs[i], dv, dW, True, False))
            if i > 0:
                dx = np.empty((n, fan_in), DTYPE)
                calls.append((f"bwd{i + 1} dv@W.T", dv, W, dx, False, True))
    return calls


def _gemm_floor(config: Config, data):
    calls = [(a, b, out, ta, tb) for _, a, b, out, ta, tb in gemm_calls(config, np.ascontiguousarray(data[0][0]))]
    gemm = blas.gemm

    def step():
        for a, b, out, ta, tb in calls:
            gemm(a, b, out, trans_a=ta, trans_b=tb)
    return step


# --- raw kernel calls -------------------------------------------------------------------------------

_ADAM = 4
_KIND = {fastnn.Activation_ReLU: 0, fastnn.Activation_Sigmoid: 1, fastnn.Activation_Softmax: 2}


def raw_thunks(model, config: Config, data):
    """[(label, thunk)] for one step of `model` (a fastnn Model) issued straight to the kernel
    entry points, in the order the Model issues them. Each thunk is one call; the batch is picked
    by the first thunk."""
    layers = model.layers
    current = {}
    nxt = _cycle(data)
    thunks = []

    def pick():
        current["X"], current["y"] = nxt()
    thunks.append(("next batch", pick))

    def src(i):
        if i == 0:
            return lambda: current["X"]
        state = layers[i - 1].__dict__
        return lambda: state["output"]

    for i, layer in enumerate(layers):
        state = layer.__dict__
        get = src(i)
        if isinstance(layer, fastnn.Layer_Dense):
            thunks.append((f"dense{i} forward", lambda s=state, g=get: _dense.forward(s, g())))
        elif isinstance(layer, fastnn.Layer_Dropout):
            keep = layer.rate
            if config.training:
                thunks.append((f"dropout{i} forward (fast)", lambda s=state, g=get, k=keep: _dropout.fast_forward(
                    s, g(), k, int(np.random.random_sample() * 9007199254740992.0))))
        else:
            kind = _KIND[type(layer)]
            thunks.append((f"{type(layer).__name__[11:].lower()}{i} forward",
                           lambda s=state, g=get, k=kind: _activations.forward(k, s, g())))
    out_state = layers[-1].__dict__
    if not config.training:
        return thunks

    trainable = [layer for layer in layers if isinstance(layer, fastnn.Layer_Dense)]
    regs = [(lay.__dict__, lay.weight_regularizer_l1, lay.weight_regularizer_l2, lay.bias_regularizer_l1,
             lay.bias_regularizer_l2) for lay in trainable]
    regs = [r for r in regs if any(v > 0 for v in r[1:])]
    result = {}

    def loss():
        total, _ = _losses.cce(out_state["output"], current["y"], False)
        result["data_loss"] = total / len(current["y"])
    thunks.append(("cce loss", loss))
    if regs:
        def reg():
            result["reg_loss"] = sum(_losses.regularization_loss(s["weights"], s["biases"], a, b, c, d)
                                     for s, a, b, c, d in regs)
        thunks.append(("regularization loss", reg))

    def accuracy():
        predictions = np.argmax(out_state["output"], axis=1)
        result["accuracy"] = np.count_nonzero(predictions == current["y"]) / len(predictions)
    thunks.append(("accuracy (argmax, ==)", accuracy))
    combined = {}
    thunks.append(("softmax+cce backward", lambda: _losses.softmax_cce_backward(
        combined, out_state["output"], current["y"])))
    upstream = combined
    for i in range(len(layers) - 2, -1, -1):
        layer = layers[i]
        state = layer.__dict__
        dv = (lambda u=upstream: u["dinputs"])
        if isinstance(layer, fastnn.Layer_Dense):
            first = i == 0
            thunks.append((f"dense{i} backward" + (" (no dinputs)" if first else ""),
                           lambda s=state, d=dv, w=not first: _dense.backward(s, d(), w)))
        elif isinstance(layer, fastnn.Layer_Dropout):
            thunks.append((f"dropout{i} backward", lambda s=state, d=dv: _dropout.backward(s, d())))
        else:
            kind = _KIND[type(layer)]
            thunks.append((f"{type(layer).__name__[11:].lower()}{i} backward",
                           lambda s=state, d=dv, k=kind: _activations.backward(k, s, d())))
        upstream = state
    opt = model.optimizer
    beta_1, beta_2, eps = opt.beta_1, opt.beta_2, opt.epsilon
    for layer in trainable:
        for name in ("weight_momentums", "weight_cache", "bias_momentums", "bias_cache"):
            if not hasattr(layer, name):
                setattr(layer, name, np.zeros_like(layer.weights if name.startswith("weight") else layer.biases))
    coef = {}

    def pre():
        it = opt.iterations
        coef["lr"] = opt.learning_rate * (1. / (1. + opt.decay * it)) if opt.decay else opt.learning_rate
        coef["c1"] = 1 - beta_1 ** (it + 1)
        coef["c2"] = 1 - beta_2 ** (it + 1)
    thunks.append(("adam pre (lr, corrections)", pre))
    for j, layer in enumerate(trainable):
        state = layer.__dict__
        thunks.append((f"adam update dense{layers.index(layer)}", lambda s=state: _optimizers.update_layer(
            _ADAM, s, coef["lr"], eps, beta_1, beta_2, coef["c1"], coef["c2"], "bench")))

    def post():
        opt.iterations += 1
    thunks.append(("adam post", post))
    return thunks


def public_thunks(model, config: Config, data):
    """[(label, thunk)] for one book_step on a fastnn or reference Model, one public-method call
    per thunk (the step's anatomy; the Model's own forward/backward loops written out)."""
    current = {}
    nxt = _cycle(data)
    layers = model.layers
    thunks = []

    def pick():
        current["X"], current["y"] = nxt()
        model.input_layer.forward(current["X"], config.training)
    thunks.append(("next batch + input layer", pick))
    for i, layer in enumerate(layers):
        thunks.append((f"{type(layer).__name__}{i}.forward",
                       lambda lay=layer: lay.forward(lay.prev.output, config.training)))
    out_layer = layers[-1]
    if not config.training:
        return thunks
    result = {}

    def loss():
        result["loss"] = model.loss.calculate(out_layer.output, current["y"], include_regularization=True)
    thunks.append(("loss.calculate (+ regularization)", loss))

    def accuracy():
        predictions = model.output_layer_activation.predictions(out_layer.output)
        result["accuracy"] = model.accuracy.calculate(predictions, current["y"])
    thunks.append(("predictions + accuracy.calculate", accuracy))
    combined = model.softmax_classifier_output

    def combined_backward():
        combined.backward(out_layer.output, current["y"])
        out_layer.dinputs = combined.dinputs
    thunks.append(("softmax+cce backward", combined_backward))
    backward_layer = getattr(model, "_backward_layer", None)
    for layer in reversed(layers[:-1]):
        if backward_layer is not None:
            thunks.append((f"{type(layer).__name__}{layers.index(layer)}.backward",
                           lambda lay=layer: backward_layer(lay, lay.next.dinputs)))
        else:
            thunks.append((f"{type(layer).__name__}{layers.index(layer)}.backward",
                           lambda lay=layer: lay.backward(lay.next.dinputs)))
    opt = model.optimizer
    thunks.append(("optimizer.pre_update_params", opt.pre_update_params))
    for layer in model.trainable_layers:
        thunks.append((f"optimizer.update_params(dense{layers.index(layer)})",
                       lambda lay=layer: opt.update_params(lay)))
    thunks.append(("optimizer.post_update_params", opt.post_update_params))
    return thunks


def _run_thunks(thunks):
    calls = [t for _, t in thunks]

    def step():
        for call in calls:
            call()
    return step


# --- the factory ------------------------------------------------------------------------------------

_STATE_NAMES = ("weights", "biases", "weight_momentums", "bias_momentums", "weight_cache", "bias_cache")


def restorer(layers, optimizer):
    """A function putting the layers' parameters and optimizer state (and the optimizer's
    iteration count and learning rate) back to what they are now. Arrays are restored in place,
    so the kernels' buffers and the objects' identities do not change."""
    saved = [(layer, {name: getattr(layer, name).copy() for name in _STATE_NAMES
                      if isinstance(getattr(layer, name, None), np.ndarray)}) for layer in layers]
    counters = (optimizer.iterations, optimizer.current_learning_rate)

    def restore():
        for layer, arrays in saved:
            for name, array in arrays.items():
                np.copyto(getattr(layer, name), array)
        optimizer.iterations, optimizer.current_learning_rate = counters
    return restore


def _torch_restorer(net, opt, counter):
    params = list(net.parameters())
    saved = [p.detach().clone() for p in params]
    state = [{k: v.clone() for k, v in opt.state[p].items() if hasattr(v, "clone")} for p in params]
    count = counter[0]

    def restore():
        with torch.no_grad():
            for p, value, st in zip(params, saved, state):
                p.copy_(value)
                for k, v in st.items():
                    opt.state[p][k].copy_(v)
        counter[0] = count
    return restore


def prepare(step, snapshot, pretrain: int):
    """Run `pretrain` steps (at least one, which creates the optimizer state), then take the
    state snapshot: ``step.reset()`` returns the peer to it. The runner resets before every
    block of steps, so every block trains from the same point: a peer that runs more steps than
    another (because it is faster) does not drift into another regime (Adam's momentums decay
    into float32 denormals after several hundred steps, which slows every peer's update)."""
    for _ in range(max(1, pretrain)):
        step()
    step.reset = snapshot()
    return step


def make_step(config: Config, peer: str, seed: int = 0, pretrain: int | None = None):
    """A zero-argument callable running one step (or inference pass) of `peer` on the next batch.
    Training peers are first run `pretrain` steps (default config.pretrain, at least 1) and get a
    ``reset()`` method that returns them to that state."""
    pretrain = config.pretrain if pretrain is None else pretrain
    data, _ = batches(config)
    if peer == "gemm-floor":
        return _gemm_floor(config, data)
    if peer == "torch":
        if torch is None:
            raise RuntimeError("torch is not installed")
        model = build_model(fastnn, config, seed)
        if not config.training:
            return _torch_infer(config, model, data)
        step = _torch_step(config, model, data)
        return prepare(step, lambda: _torch_restorer(step.net, step.opt, step.counter), pretrain)
    if peer in ("fastnn-manual", "reference-manual"):
        step = _manual_step(fastnn if peer == "fastnn-manual" else ref, config, data, seed)
        return prepare(step, lambda: restorer(step.layers, step.optimizer), pretrain)
    lib = ref if peer == "reference" else fastnn
    model = build_model(lib, config, seed)
    nxt = _cycle(data)
    if not config.training:
        if peer == "fastnn-raw":
            return _run_thunks(raw_thunks(model, config, data))
        if peer == "fastnn-predict":
            def step():
                return model.predict(nxt()[0])
        else:
            def step():
                return model.forward(nxt()[0], training=False)
        return step
    if peer == "fastnn-raw":
        step = _run_thunks(raw_thunks(model, config, data))
    elif peer == "fastnn-train-step":
        counter = [0]

        def step():
            X, y = nxt()
            counter[0] += 1
            return model._train_step(X, y, 1, counter[0])
    elif peer in ("fastnn", "reference"):
        def step():
            X, y = nxt()
            return book_step(model, X, y)
    else:
        raise ValueError(f"unknown peer {peer!r} for {config.name}")
    return prepare(step, lambda: restorer(model.trainable_layers, model.optimizer), pretrain)


def _manual_step(lib, config: Config, data, seed: int):
    """The Ch10 loop on layer objects (spiral: Dense ReLU Dense, softmax+CCE, Adam)."""
    assert config.name == "spiral"
    np.random.seed(seed)
    dense1 = lib.Layer_Dense(2, 64)
    activation1 = lib.Activation_ReLU()
    dense2 = lib.Layer_Dense(64, 3)
    loss_activation = lib.Activation_Softmax_Loss_CategoricalCrossentropy()
    optimizer = lib.Optimizer_Adam(learning_rate=config.learning_rate, decay=config.decay)
    nxt = _cycle(data)

    def step():
        X, y = nxt()
        dense1.forward(X)
        activation1.forward(dense1.output)
        dense2.forward(activation1.output)
        loss = loss_activation.forward(dense2.output, y)
        predictions = np.argmax(loss_activation.output, axis=1)
        accuracy = np.mean(predictions == y)
        loss_activation.backward(loss_activation.output, y)
        dense2.backward(loss_activation.dinputs)
        activation1.backward(dense2.dinputs)
        dense1.backward(activation1.dinputs)
        optimizer.pre_update_params()
        optimizer.update_params(dense1)
        optimizer.update_params(dense2)
        optimizer.post_update_params()
        return loss, accuracy
    step.layers, step.optimizer = (dense1, dense2), optimizer
    return step


def check_peers_agree(config: Config, seed: int = 0) -> dict:
    """The peers compute the same thing: from the same weights, the first step's losses (and,
    without dropout, the updated weights) of fastnn, fastnn-raw, the reference and torch agree.
    Returns the largest differences; raises AssertionError beyond float32 tolerance."""
    data, _ = batches(config)
    X, y = data[0]
    models = {name: build_model(lib, config, seed, dropout_mode="book")
              for name, lib in (("fastnn", fastnn), ("reference", ref), ("fastnn-raw", fastnn))}
    diffs = {}
    if not config.training:
        outs = {k: np.array(m.forward(X, training=False)) for k, m in models.items() if k != "fastnn-raw"}
        raw = _run_thunks(raw_thunks(models["fastnn-raw"], config, data))
        raw()
        outs["fastnn-raw"] = models["fastnn-raw"].layers[-1].output
        if torch is not None:
            outs["torch"] = _torch_infer(config, models["fastnn"], data)().numpy()
        for k, v in outs.items():
            diffs[k] = float(np.max(np.abs(v - outs["reference"])))
            assert diffs[k] < 1e-5, (config.name, k, diffs[k])
        return diffs
    torch_step = _torch_step(config, models["fastnn"], data) if torch is not None else None
    np.random.seed(123)
    losses = {"fastnn": book_step(models["fastnn"], X, y)[0]}
    np.random.seed(123)
    losses["reference"] = book_step(models["reference"], X, y)[0]
    if not config.dropout:
        raw = raw_thunks(models["fastnn-raw"], config, data)
        _run_thunks(raw)()
        if torch_step is not None:
            losses["torch"] = torch_step()[0]
    for k, v in losses.items():
        diffs[f"loss {k}"] = abs(v - losses["reference"])
        assert diffs[f"loss {k}"] < 1e-4 * max(1.0, abs(losses["reference"])), (config.name, k, v, losses)
    if not config.dropout:
        for k in ("fastnn", "fastnn-raw"):
            for a, b in zip(models[k].trainable_layers, models["reference"].trainable_layers):
                d = float(np.max(np.abs(a.weights - b.weights)))
                diffs[f"weights {k}"] = max(diffs.get(f"weights {k}", 0.0), d)
                assert d < 1e-5 * max(1.0, config.learning_rate * 100), (config.name, k, d)
    return diffs


# --------------------------------------------------------------------------------------------------
# Per-op groups (float32). OP_GROUPS: {group: {peer: factory}}; factory() -> zero-argument callable
# running the op once. Peers: fastnn (public methods), reference, torch (where one eager call does
# the same), gemm-floor (the op's GEMMs alone, for dense).

def _arr(shape, seed, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(DTYPE)


def _dense_layer(lib, n_in, n_out):
    np.random.seed(0)
    return lib.Layer_Dense(n_in, n_out)


def _op_dense_forward(lib, n, n_in, n_out):
    def factory():
        layer = _dense_layer(lib, n_in, n_out)
        x = _arr((n, n_in), 1)
        return lambda: layer.forward(x)
    return factory


def _op_dense_forward_torch(n, n_in, n_out):
    def factory():
        w = torch.from_numpy(_arr((n_out, n_in), 2, 0.01))
        b = torch.zeros(n_out)
        x = torch.from_numpy(_arr((n, n_in), 1))
        F = torch.nn.functional
        return lambda: F.linear(x, w, b)
    return factory


def _op_dense_forward_gemm(n, n_in, n_out):
    def factory():
        x, w, out = _arr((n, n_in), 1), _arr((n_in, n_out), 2, 0.01), np.empty((n, n_out), DTYPE)
        gemm = blas.gemm
        return lambda: gemm(x, w, out)
    return factory


def _op_dense_backward(lib, n, n_in, n_out):
    def factory():
        layer = _dense_layer(lib, n_in, n_out)
        x, dv = _arr((n, n_in), 1), _arr((n, n_out), 3)
        layer.forward(x)
        return lambda: layer.backward(dv)
    return factory


def _op_dense_backward_gemm(n, n_in, n_out):
    def factory():
        x, dv, w = _arr((n, n_in), 1), _arr((n, n_out), 3), _arr((n_in, n_out), 2, 0.01)
        dw, dx = np.empty((n_in, n_out), DTYPE), np.empty((n, n_in), DTYPE)
        gemm = blas.gemm

        def op():
            gemm(x, dv, dw, trans_a=True)
            gemm(dv, w, dx, trans_b=True)
        return op
    return factory


def _op_activation(lib, name, shape, direction):
    def factory():
        act = getattr(lib, name)()
        x, dv = _arr(shape, 1), _arr(shape, 3)
        act.forward(x)
        if direction == "forward":
            return lambda: act.forward(x)
        return lambda: act.backward(dv)
    return factory


def _op_activation_torch(fn, shape):
    def factory():
        x = torch.from_numpy(_arr(shape, 1))
        f = getattr(torch, fn)
        return lambda: f(x)
    return factory


def _op_softmax_cce(lib, n, c):
    """What the Model does for a Softmax output with CCE: softmax forward, loss.calculate, the
    combined backward."""
    def factory():
        softmax = lib.Activation_Softmax()
        loss = lib.Loss_CategoricalCrossentropy()
        combined = lib.Activation_Softmax_Loss_CategoricalCrossentropy()
        x = _arr((n, c), 1)
        y = np.random.default_rng(4).integers(0, c, n).astype(np.int64)

        def op():
            softmax.forward(x)
            value = loss.calculate(softmax.output, y)
            combined.backward(softmax.output, y)
            return value
        return op
    return factory


def _op_softmax_cce_torch(n, c):
    def factory():
        x = torch.from_numpy(_arr((n, c), 1)).requires_grad_(True)
        y = torch.from_numpy(np.random.default_rng(4).integers(0, c, n).astype(np.int64))
        F = torch.nn.functional

        def op():
            x.grad = None
            value = F.cross_entropy(x, y)
            value.backward()
            return value.item()
        return op
    return factory


_OPTIMIZERS = {
    "SGD": ("Optimizer_SGD", {}, ("SGD", {"lr": 1.0})),
    "SGD momentum": ("Optimizer_SGD", {"momentum": 0.9}, ("SGD", {"lr": 1.0, "momentum": 0.9})),
    "Adagrad": ("Optimizer_Adagrad", {}, ("Adagrad", {"lr": 1.0, "eps": 1e-7})),
    "RMSprop": ("Optimizer_RMSprop", {}, ("RMSprop", {"lr": 0.001, "alpha": 0.9, "eps": 1e-7})),
    "Adam": ("Optimizer_Adam", {}, ("Adam", {"lr": 0.001, "eps": 1e-7})),
}


def _op_optimizer(lib, which, n_in=784, n_out=128):
    cls, kwargs, _ = _OPTIMIZERS[which]

    def factory():
        layer = _dense_layer(lib, n_in, n_out)
        layer.dweights = _arr((n_in, n_out), 5, 0.01)
        layer.dbiases = _arr((1, n_out), 6, 0.01)
        optimizer = getattr(lib, cls)(**kwargs)
        optimizer.update_params(layer)  # creates the state, as the first step does
        return lambda: optimizer.update_params(layer)
    return factory


def _op_optimizer_torch(which, n_in=784, n_out=128):
    _, _, (cls, kwargs) = _OPTIMIZERS[which]

    def factory():
        w = torch.nn.Parameter(torch.from_numpy(_arr((n_in, n_out), 2, 0.01)))
        b = torch.nn.Parameter(torch.zeros(1, n_out))
        w.grad = torch.from_numpy(_arr((n_in, n_out), 5, 0.01))
        b.grad = torch.from_numpy(_arr((1, n_out), 6, 0.01))
        extra = {"fused": True} if cls == "Adam" and torch_adam_kind() == "fused" else {}
        optimizer = getattr(torch.optim, cls)([w, b], **kwargs, **extra)
        optimizer.step()
        return optimizer.step
    return factory


def _dead_units(dweights, momentums):
    """Three quarters of the units dead: zero gradient columns whose Adam momentums have decayed
    into float32 denormals (what a long run reaches; see the *-long step configurations)."""
    dweights[:, dweights.shape[1] // 4:] = 0
    momentums[:, momentums.shape[1] // 4:] = 1e-40


def _op_adam_denormal(lib, n_in=784, n_out=128):
    def factory():
        layer = _dense_layer(lib, n_in, n_out)
        layer.dweights = _arr((n_in, n_out), 5, 0.01)
        layer.dbiases = _arr((1, n_out), 6, 0.01)
        optimizer = lib.Optimizer_Adam()
        optimizer.update_params(layer)
        _dead_units(layer.dweights, layer.weight_momentums)
        return lambda: optimizer.update_params(layer)
    return factory


def _op_adam_denormal_torch(n_in=784, n_out=128):
    def factory():
        w = torch.nn.Parameter(torch.from_numpy(_arr((n_in, n_out), 2, 0.01)))
        b = torch.nn.Parameter(torch.zeros(1, n_out))
        w.grad = torch.from_numpy(_arr((n_in, n_out), 5, 0.01))
        b.grad = torch.from_numpy(_arr((1, n_out), 6, 0.01))
        extra = {"fused": True} if torch_adam_kind() == "fused" else {}
        optimizer = torch.optim.Adam([w, b], lr=0.001, eps=1e-7, **extra)
        optimizer.step()
        _dead_units(w.grad.numpy(), optimizer.state[w]["exp_avg"].numpy())
        return optimizer.step
    return factory


def _op_dropout(lib, shape, rate, mode=None):
    def factory():
        layer = lib.Layer_Dropout(rate, mode=mode) if mode else lib.Layer_Dropout(rate)
        x, dv = _arr(shape, 1), _arr(shape, 3)

        def op():
            layer.forward(x, training=True)
            layer.backward(dv)
        return op
    return factory


def _op_groups():
    groups = {}

    def add(group, **peers):
        groups[group] = {k.replace("_", "-"): v for k, v in peers.items() if v is not None}

    has_torch = torch is not None
    for n, n_in, n_out in ((300, 2, 64), (128, 784, 128), (256, 1024, 1024)):
        add(f"dense forward {n}x{n_in}@{n_in}x{n_out}",
            fastnn=_op_dense_forward(fastnn, n, n_in, n_out), reference=_op_dense_forward(ref, n, n_in, n_out),
            torch=_op_dense_forward_torch(n, n_in, n_out) if has_torch else None,
            gemm_floor=_op_dense_forward_gemm(n, n_in, n_out))
        add(f"dense backward {n}x{n_in}x{n_out}",
            fastnn=_op_dense_backward(fastnn, n, n_in, n_out), reference=_op_dense_backward(ref, n, n_in, n_out),
            gemm_floor=_op_dense_backward_gemm(n, n_in, n_out))
    for name, tfn in (("ReLU", "relu"), ("Sigmoid", "sigmoid")):
        for shape in ((300, 64), (256, 1024)):
            s = f"{shape[0]}x{shape[1]}"
            add(f"{name.lower()} forward {s}", fastnn=_op_activation(fastnn, f"Activation_{name}", shape, "forward"),
                reference=_op_activation(ref, f"Activation_{name}", shape, "forward"),
                torch=_op_activation_torch(tfn, shape) if has_torch else None)
            add(f"{name.lower()} backward {s}", fastnn=_op_activation(fastnn, f"Activation_{name}", shape, "backward"),
                reference=_op_activation(ref, f"Activation_{name}", shape, "backward"))
    for n, c in ((300, 3), (128, 10), (1000, 3)):
        add(f"softmax+cce fwd+bwd {n}x{c}", fastnn=_op_softmax_cce(fastnn, n, c), reference=_op_softmax_cce(ref, n, c),
            torch=_op_softmax_cce_torch(n, c) if has_torch else None)
    for which in _OPTIMIZERS:
        add(f"{which} update_params 784x128", fastnn=_op_optimizer(fastnn, which), reference=_op_optimizer(ref, which),
            torch=_op_optimizer_torch(which) if has_torch else None)
    add("Adam update_params 784x128, 3/4 dead units (zero grads, denormal momentums)",
        fastnn=_op_adam_denormal(fastnn), reference=_op_adam_denormal(ref),
        torch=_op_adam_denormal_torch() if has_torch else None)
    for shape in ((1000, 512), (128, 128)):
        s = f"{shape[0]}x{shape[1]}"
        add(f"dropout(0.1) fwd+bwd {s}", fastnn_fast=_op_dropout(fastnn, shape, 0.1, "fast"),
            fastnn_book=_op_dropout(fastnn, shape, 0.1, "book"), reference=_op_dropout(ref, shape, 0.1))
    return groups


OP_GROUPS = _op_groups()
