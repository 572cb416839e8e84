"""The PyTorch peer: the configurations' networks in PyTorch eager, from a fastnn Model's weights.

A training step is ``nn.Linear``/``ReLU``/``Dropout``, ``CrossEntropyLoss`` on the logits,
``torch.optim.Adam(fused=True)`` (foreach when fused is refused), the book's learning-rate decay
set per step, L2 as Adam's ``weight_decay`` (the same gradient) plus the regularisation loss's
value, ``loss.item()`` and the accuracy; inference is the network under ``torch.inference_mode()``
with ``torch.softmax``. ``torch`` is None where PyTorch is not installed.
"""
from __future__ import annotations

import numpy as np

import fastnn

from data import cycle

try:  # PyTorch is an optional peer
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None


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


def build_torch(config, fastnn_model):
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


def torch_step(config, fastnn_model, data):
    """A zero-argument callable: one training step on the next of `data`'s batches, returning
    (data_loss, reg_loss, accuracy); ``.net``, ``.opt`` and ``.counter`` for torch_restorer."""
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
    tbatches = cycle([(torch.from_numpy(X), torch.from_numpy(y)) for X, y in data])
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


def torch_infer(config, fastnn_model, data):
    """A zero-argument callable: the softmax of the network's output for the next batch."""
    net = build_torch(config, fastnn_model).eval()
    tbatches = cycle([torch.from_numpy(X) for X, _ in data])

    def step():
        with torch.inference_mode():
            return torch.softmax(net(tbatches()), dim=1)
    return step


def torch_restorer(net, opt, counter):
    """A function putting the network's parameters, the optimizer's state and the step counter
    back to what they are now (in place)."""
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
