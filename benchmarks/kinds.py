"""The compiled kernels' kind numbers of the classes whose kernels the raw peer calls directly: the
``kind`` argument of ``fastnn._ext._activations.forward``/``backward`` and the method argument of
``fastnn._ext._optimizers.update_layer``. Each class holds its own (``_KIND``, from the constants
the compiled modules export); nothing is retyped here."""


def kernel_kind(obj) -> int:
    """The kernel kind an activation or optimizer object runs with."""
    return obj._KIND
