# What a kernel entry point working on a layer's state returns (_dense.pyx, _conv.pyx, _pool.pyx,
# _batchnorm.pyx, _optimizers.pyx). Included by each, so each exports the same numbers, also as Python attributes
# (cpdef): fastnn/layers.py reads _dense.CONVERT, fastnn/conv.py _conv.NO_FORWARD, ... OK is 0, so
# the caller's fast path is one call and `if status:`. The kernels build no messages: for any other
# status the Python method that called them raises the error it stands for (fastnn._validation).
cpdef enum:
    OK = 0            # done
    CONVERT = 1       # the data argument (inputs, dvalues) is not in the exact form the kernel
                      # reads; nothing changed: convert it (fastnn._validation) and call again
    NO_FORWARD = 2    # backward without the state of a forward pass that matches the layer
    BAD_WEIGHTS = 3   # a layer attribute the kernel reads cannot be used (replaced by hand?):
    BAD_BIASES = 4    #   weights, biases,
    BAD_STRIDE = 5    #   Conv2D's stride,
    BAD_PADDING = 6   #   Conv2D's padding,
    BAD_POOL = 7      #   MaxPool2D's pool_size or stride,
    BAD_DWEIGHTS = 8  #   and, for an optimizer, the gradients and its state: missing, or not
    BAD_DBIASES = 9   #   of the parameter's dtype and size (see _optimizers.REFUSED)
    BAD_WEIGHT_MOMENTUMS = 10
    BAD_WEIGHT_CACHE = 11
    BAD_BIAS_MOMENTUMS = 12
    BAD_BIAS_CACHE = 13
    BAD_ARGMAX = 14   # MaxPool2D backward: argmax points outside the input planes (changed by
                      # hand after forward); dinputs holds a partial result
    BAD_STATISTICS = 15  # BatchNorm's running_mean / running_var, or
    BAD_SETTING = 16     #   its momentum / epsilon, cannot be used (replaced by hand?)
    ONE_VALUE = 17       # BatchNorm training forward with one value per feature: no variance

# OK as a Python int made once: `return _OK` costs an incref (as `return True` did), where
# `return OK` converts the C constant on every call (measured: 20-30 ns of a 0.5 us entry point).
cdef object _OK = OK
