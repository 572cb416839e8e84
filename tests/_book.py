"""The book's training step, written once for the tests and the benchmarks.

Both forms the book uses, each for fastnn's classes and fastnn.reference's alike (the functions
call only the book's methods, so the same code drives either library):

- the chapter 10-17 loop on layer objects: ``forward`` chains each layer's ``forward(inputs)``;
  ``loss_forward`` is the data loss, from the combined softmax/cross-entropy object's
  ``forward(inputs, y)`` or a loss's ``calculate(output, y)``; ``backward`` is the loss's backward
  and then each layer's in reverse order; ``update`` is the optimizer's ``pre_update_params``,
  ``update_params`` per trainable layer and ``post_update_params``. ``chapter_step`` is one pass of
  that loop, in the book's order.
- ``model_step``: one batch of the Ch18-22 ``Model.train`` loop on a finalized Model (or on any
  object with the Model's ``forward``, ``backward``, ``loss``, ``accuracy``, ``optimizer``,
  ``trainable_layers`` and ``output_layer_activation``).

``build_model`` builds a Model the Ch18 way: ``Model()``, ``add`` each layer, ``set``, ``finalize``;
``ch18_model`` is the book's Ch18 spiral model.
"""
from __future__ import annotations


def build_model(nn, layers, *, loss, optimizer=None, accuracy=None):
    """A finalized ``nn.Model`` (``nn``: fastnn or fastnn.reference) of ``layers``, in order."""
    network = nn.Model()
    for layer in layers:
        network.add(layer)
    network.set(loss=loss, optimizer=optimizer, accuracy=accuracy)
    network.finalize()
    return network


def ch18_model(nn, **dropout_options):
    """The book's Ch18 model: Dense(2, 512, L2 5e-4 on weights and biases) ReLU Dropout(0.1)
    Dense(512, 3) Softmax, categorical cross-entropy, Adam(0.05, decay 5e-5), categorical accuracy
    (``dropout_options``: fastnn's Layer_Dropout keywords, e.g. mode="book")."""
    layers = [nn.Layer_Dense(2, 512, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4), nn.Activation_ReLU(),
              nn.Layer_Dropout(0.1, **dropout_options), nn.Layer_Dense(512, 3), nn.Activation_Softmax()]
    return build_model(nn, layers, loss=nn.Loss_CategoricalCrossentropy(),
                       optimizer=nn.Optimizer_Adam(learning_rate=0.05, decay=5e-5), accuracy=nn.Accuracy_Categorical())


def forward(layers, X):
    """``layer.forward(inputs)`` for each layer in turn, each fed the previous one's output (the
    book's chapter scripts: no training argument); the last layer's output."""
    inputs = X
    for layer in layers:
        layer.forward(inputs)
        inputs = layer.output
    return inputs


def _combined(loss) -> bool:
    """True for Activation_Softmax_Loss_CategoricalCrossentropy: the only loss object that
    carries its loss function as ``.loss``."""
    return hasattr(loss, "loss")


def loss_forward(loss, inputs, y):
    """(output, data loss) of the book's loss line: the combined softmax/CCE object's
    ``forward(inputs, y)`` (output: its softmax), or a loss's ``calculate(inputs, y)`` (output:
    the inputs, the last activation's output)."""
    if _combined(loss):
        value = loss.forward(inputs, y)
        return loss.output, value
    return inputs, loss.calculate(inputs, y)


def trainable(layers) -> list:
    """The layers with parameters (weights and biases), in order."""
    return [layer for layer in layers if hasattr(layer, "weights")]


def regularization_loss(loss, layers):
    """Ch14's sum of ``regularization_loss(layer)`` over the trainable layers, from the loss
    function (the combined object's ``.loss``)."""
    function = loss.loss if _combined(loss) else loss
    return sum(function.regularization_loss(layer) for layer in trainable(layers))


def backward(layers, loss, output, y) -> None:
    """``loss.backward(output, y)``, then each layer's ``backward`` in reverse order, each fed the
    next one's ``dinputs``."""
    loss.backward(output, y)
    dvalues = loss.dinputs
    for layer in reversed(layers):
        layer.backward(dvalues)
        dvalues = layer.dinputs


def update(optimizer, layers) -> None:
    """The book's optimizer calls for one step: pre_update_params, update_params(layer) for each
    layer, post_update_params."""
    optimizer.pre_update_params()
    for layer in layers:
        optimizer.update_params(layer)
    optimizer.post_update_params()


def chapter_step(layers, loss, optimizer, X, y, *, regularization: bool = False):
    """One epoch of the book's chapter 10-17 loops: forward through ``layers``, the data loss (and,
    with ``regularization``, Ch14's regularisation loss), backward, the optimizer's update of the
    trainable layers. Returns (output, data_loss, regularization_loss); the output is what the
    book's accuracy line reads (the softmax of the combined object, else the last layer's)."""
    output, data_loss = loss_forward(loss, forward(layers, X), y)
    reg_loss = regularization_loss(loss, layers) if regularization else 0.0
    backward(layers, loss, output, y)
    update(optimizer, trainable(layers))
    return output, data_loss, reg_loss


def model_step(network, X, y):
    """One batch of the book's Model.train loop (Ch22), without the print: forward(training=True),
    loss with regularisation, predictions and accuracy, backward, the optimizer's update.
    Returns (data_loss, regularization_loss, accuracy)."""
    output = network.forward(X, training=True)
    data_loss, reg_loss = network.loss.calculate(output, y, include_regularization=True)
    predictions = network.output_layer_activation.predictions(output)
    accuracy = network.accuracy.calculate(predictions, y)
    network.backward(output, y)
    update(network.optimizer, network.trainable_layers)
    return data_loss, reg_loss, accuracy
