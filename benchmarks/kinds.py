"""The compiled kernels' kind numbers of the fastnn classes whose kernels the raw peer calls
directly: the ``kind`` argument of ``fastnn._ext._activations.forward`` and ``backward``, and the
method argument of ``fastnn._ext._optimizers.update_layer``."""
import fastnn

KERNEL_KIND = {
    fastnn.Activation_ReLU: 0,
    fastnn.Activation_Sigmoid: 1,
    fastnn.Activation_Softmax: 2,
    fastnn.Optimizer_Adam: 4,
}
