"""Loss kernels: categorical cross-entropy (sparse and one-hot labels), binary cross-entropy, mean
squared and mean absolute error, the fused softmax + categorical cross-entropy, and the L1/L2
regularisation loss. Each backward sits next to its forward.

Shapes: predictions/dvalues (n_samples, n_outputs); sparse labels (n_samples,) of uint8, int32 or
int64 class ids; one-hot and regression targets (n_samples, n_outputs) of the predictions' dtype.
Sums and means accumulate in double (design.md §4); per-element values are computed in the data's
dtype, in the book's order of operations. Constants inside per-element formulas are typed
(`<floating>1`): Cython writes an integer literal in a floating expression as a C double (1.0),
which would evaluate a float32 formula in double and round once at the end, not as NumPy does.
"""
from libc.math cimport INFINITY, fabs, log, logf
from libc.stdint cimport int32_t, int64_t, uint8_t

cimport numpy as cnp
cnp.import_array()
from cython cimport floating

from _common cimport data, ready, ready2, reuse2
from _regularization cimport penalty
from _softmax cimport _softmax_forward

ctypedef fused label_t:
    uint8_t
    int32_t
    int64_t


# The book clips probabilities to [1e-7, 1 - 1e-7] before taking logs.
cdef inline floating _clip(floating p) noexcept nogil:
    cdef floating low = <floating>1e-7
    cdef floating high = <floating>(1 - 1e-7)
    if p < low:
        return low
    if p > high:
        return high
    return p


cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline bint _labels_in_range(const label_t* y, Py_ssize_t n, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if y[i] < 0 or y[i] >= n_classes:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Categorical cross-entropy: loss_i = -log(clip(p_i[y_i])) (sparse) or
# -log(sum_j clip(p_ij) * y_ij) (one-hot).

cdef inline double _cce_sparse(const floating* y_pred, const label_t* y_true, floating* losses,
                               Py_ssize_t n_samples, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating loss
    cdef double total = 0
    for i in range(n_samples):
        loss = -_log(_clip(y_pred[i * n_classes + y_true[i]]))
        if losses != NULL:
            losses[i] = loss
        total += loss
    return total


cdef inline double _cce_onehot(const floating* y_pred, const floating* y_true, floating* losses,
                               Py_ssize_t n_samples, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating confidence, loss
    cdef double total = 0
    for i in range(n_samples):
        confidence = 0
        for j in range(n_classes):
            confidence = confidence + _clip(y_pred[i * n_classes + j]) * y_true[i * n_classes + j]
        loss = -_log(confidence)
        if losses != NULL:
            losses[i] = loss
        total += loss
    return total


# The book: dinputs = -y_true / dvalues / n_samples (one-hot; sparse labels go through np.eye),
# with no clipping. Entries whose target is 0 get 0 here even where dvalues is 0 (the book's
# -0/0 would be NaN there; the gradient of -0*log(p) is 0).
cdef inline void _cce_backward_sparse(const floating* dvalues, const label_t* y_true, floating* dinputs,
                                      Py_ssize_t n_samples, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating n = <floating>n_samples
    cdef floating minus_one = -1
    for i in range(n_samples * n_classes):
        dinputs[i] = 0
    for i in range(n_samples):
        j = i * n_classes + y_true[i]
        dinputs[j] = (minus_one / dvalues[j]) / n


cdef inline void _cce_backward_onehot(const floating* dvalues, const floating* y_true, floating* dinputs,
                                      Py_ssize_t n_samples, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating n = <floating>n_samples
    cdef floating y, d
    for i in range(n_samples * n_classes):
        y = y_true[i]
        d = dvalues[i]
        dinputs[i] = 0 if y == 0 else (-y / d) / n


# ---------------------------------------------------------------------------------------------
# Softmax + categorical cross-entropy, fused. Backward from the softmax output:
# dinputs = (softmax - onehot(y)) / n_samples, as the book's copy, subtract 1, divide.

cdef inline void _softmax_cce_backward_sparse(const floating* dvalues, const label_t* y_true,
                                              floating* dinputs, Py_ssize_t n_samples,
                                              Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating n = <floating>n_samples
    for i in range(n_samples):
        for j in range(n_classes):
            dinputs[i * n_classes + j] = dvalues[i * n_classes + j]
        dinputs[i * n_classes + y_true[i]] -= 1
        for j in range(n_classes):
            dinputs[i * n_classes + j] = dinputs[i * n_classes + j] / n


# One-hot targets: the book takes their argmax (the first maximum, as np.argmax), here row by row
# inside the loop, so no label array is allocated per call.
cdef inline void _softmax_cce_backward_onehot(const floating* dvalues, const floating* y_true,
                                              floating* dinputs, Py_ssize_t n_samples,
                                              Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i, j, best
    cdef floating n = <floating>n_samples
    for i in range(n_samples):
        best = 0
        for j in range(1, n_classes):
            if y_true[i * n_classes + j] > y_true[i * n_classes + best]:
                best = j
        for j in range(n_classes):
            dinputs[i * n_classes + j] = dvalues[i * n_classes + j]
        dinputs[i * n_classes + best] -= 1
        for j in range(n_classes):
            dinputs[i * n_classes + j] = dinputs[i * n_classes + j] / n


# ---------------------------------------------------------------------------------------------
# Binary cross-entropy, per sample the mean over outputs of -(y log p + (1 - y) log(1 - p)).

cdef inline double _bce(const floating* y_pred, const floating* y_true, floating* losses,
                        Py_ssize_t n_samples, Py_ssize_t n_outputs) noexcept nogil:
    cdef Py_ssize_t i, j, k
    cdef floating p, y
    cdef double row, total = 0
    for i in range(n_samples):
        row = 0
        for j in range(n_outputs):
            k = i * n_outputs + j
            p = _clip(y_pred[k])
            y = y_true[k]
            row += -(y * _log(p) + (1 - y) * _log(1 - p))
        row = row / n_outputs
        if losses != NULL:
            losses[i] = <floating>row
        total += <floating>row
    return total


cdef inline void _bce_backward(const floating* dvalues, const floating* y_true, floating* dinputs,
                               Py_ssize_t n_samples, Py_ssize_t n_outputs) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating p, y
    cdef floating outputs = <floating>n_outputs, n = <floating>n_samples
    cdef floating one = 1
    for i in range(n_samples * n_outputs):
        p = _clip(dvalues[i])
        y = y_true[i]
        dinputs[i] = (-(y / p - (one - y) / (one - p)) / outputs) / n


# ---------------------------------------------------------------------------------------------
# Mean squared error: per sample mean((y - p)^2); gradient -2 (y - p) / n_outputs / n_samples.

cdef inline double _mse(const floating* y_pred, const floating* y_true, floating* losses,
                        Py_ssize_t n_samples, Py_ssize_t n_outputs) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating d
    cdef double row, total = 0
    for i in range(n_samples):
        row = 0
        for j in range(n_outputs):
            d = y_true[i * n_outputs + j] - y_pred[i * n_outputs + j]
            row += d * d
        row = row / n_outputs
        if losses != NULL:
            losses[i] = <floating>row
        total += <floating>row
    return total


cdef inline void _mse_backward(const floating* dvalues, const floating* y_true, floating* dinputs,
                               Py_ssize_t n_samples, Py_ssize_t n_outputs) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating outputs = <floating>n_outputs, n = <floating>n_samples
    cdef floating minus_two = -2
    for i in range(n_samples * n_outputs):
        dinputs[i] = ((minus_two * (y_true[i] - dvalues[i])) / outputs) / n


# ---------------------------------------------------------------------------------------------
# Mean absolute error: per sample mean(|y - p|). Gradient -sign(y - p) / n_outputs / n_samples:
# the book's sign is wrong (it climbs the loss); fastnn fixes it, as the reference does.

cdef inline double _mae(const floating* y_pred, const floating* y_true, floating* losses,
                        Py_ssize_t n_samples, Py_ssize_t n_outputs) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef double row, total = 0
    for i in range(n_samples):
        row = 0
        for j in range(n_outputs):
            row += fabs(y_true[i * n_outputs + j] - y_pred[i * n_outputs + j])
        row = row / n_outputs
        if losses != NULL:
            losses[i] = <floating>row
        total += <floating>row
    return total


cdef inline void _mae_backward(const floating* dvalues, const floating* y_true, floating* dinputs,
                               Py_ssize_t n_samples, Py_ssize_t n_outputs) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating diff, sign
    cdef floating outputs = <floating>n_outputs, n = <floating>n_samples
    for i in range(n_samples * n_outputs):
        diff = y_true[i] - dvalues[i]
        sign = 1 if diff > 0 else (-1 if diff < 0 else 0)
        dinputs[i] = (-sign / outputs) / n


# =============================================================================================
# Entry points. Label arrays: uint8, int32 or int64 (np.intp); anything else goes through
# fastnn._validation first. Every entry returns None (or False) when an argument is not in the
# exact form it reads, after checking nothing was written.

cdef enum:
    LABELS_OK = 0
    LABELS_NEED_CONVERSION = 1
    LABELS_OUT_OF_RANGE = 2


cdef enum:
    NOT_LABELS = 0
    U8 = 1
    I32 = 2
    I64 = 3


cdef int _label_kind(object y, Py_ssize_t n_samples) noexcept:
    """U8, I32 or I64 when y is a C-contiguous 1-D array of n_samples integers of that width in
    native byte order, else NOT_LABELS."""
    if not cnp.PyArray_CheckExact(y):
        return NOT_LABELS
    cdef cnp.ndarray a = <cnp.ndarray>y
    if a.ndim != 1 or a.shape[0] != n_samples or not cnp.PyArray_ISCARRAY_RO(a):
        return NOT_LABELS
    cdef int typenum = cnp.PyArray_TYPE(a)
    cdef Py_ssize_t size = cnp.PyArray_ITEMSIZE(a)
    if cnp.PyTypeNum_ISUNSIGNED(typenum) and size == 1:
        return U8
    if cnp.PyTypeNum_ISSIGNED(typenum) and size == 4:
        return I32
    if cnp.PyTypeNum_ISSIGNED(typenum) and size == 8:
        return I64
    return NOT_LABELS


cdef int _check_labels(int kind, void* y, Py_ssize_t n, Py_ssize_t n_classes) noexcept nogil:
    cdef bint ok
    if kind == U8:
        ok = _labels_in_range(<uint8_t*>y, n, n_classes)
    elif kind == I32:
        ok = _labels_in_range(<int32_t*>y, n, n_classes)
    else:
        ok = _labels_in_range(<int64_t*>y, n, n_classes)
    return LABELS_OK if ok else LABELS_OUT_OF_RANGE


cdef bint _predictions(object y_pred) noexcept:
    return ready(y_pred, cnp.NPY_FLOAT32) or ready(y_pred, cnp.NPY_FLOAT64)


cdef inline bint _loggable_rows(const floating* y, Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    """Every row finite and non-negative with a positive entry: its weighted sum of clipped
    probabilities is > 0, so -log of it is finite."""
    cdef Py_ssize_t i, j
    cdef floating v
    cdef bint positive
    for i in range(n):
        positive = False
        for j in range(c):
            v = y[i * c + j]
            if not (v >= 0 and v < <floating>INFINITY):   # NaN fails both comparisons
                return False
            positive = positive or v > 0
        if not positive:
            return False
    return True


def labels_ready(object y_pred, object y_true):
    """True when cce(y_pred, y_true, ...) can run without validation and give finite losses for
    finite predictions: y_pred a C-contiguous 2-D float array with at least one column; y_true
    class ids in [0, n_classes), or one-hot rows of y_pred's dtype and shape that are finite,
    non-negative and have a positive weight. Reads only the labels and writes nothing: the
    cross-entropy forwards (and the combined softmax + CCE forward, before its softmax overwrites
    anything) check their labels with it."""
    if not _predictions(y_pred) or (<cnp.ndarray>y_pred).ndim != 2 or (<cnp.ndarray>y_pred).shape[1] == 0:
        return False
    cdef cnp.ndarray p = <cnp.ndarray>y_pred
    cdef Py_ssize_t n = p.shape[0], c = p.shape[1]
    cdef int kind = _label_kind(y_true, n)
    cdef void* p_y
    cdef bint ok
    cdef bint f32 = cnp.PyArray_TYPE(p) == cnp.NPY_FLOAT32
    if kind == NOT_LABELS:
        if not (ready2(y_true, cnp.PyArray_TYPE(p), c) and (<cnp.ndarray>y_true).shape[0] == n):
            return False
        p_y = data(<cnp.ndarray>y_true)
        with nogil:
            if f32:
                ok = _loggable_rows(<float*>p_y, n, c)
            else:
                ok = _loggable_rows(<double*>p_y, n, c)
        return ok
    return _check_labels(kind, data(<cnp.ndarray>y_true), n, c) == LABELS_OK


def cce(object y_pred, object y_true, bint per_sample):
    """Categorical cross-entropy of (n_samples, n_classes) predictions.

    Returns (sum of the per-sample losses as a Python float, per-sample losses array or None), or
    None when y_pred/y_true need validation or conversion first (nothing is computed then).
    Sparse labels outside [0, n_classes) also return None, so the caller's validation reports them;
    so do predictions without a column (-log of an empty sum would be inf).
    """
    if not _predictions(y_pred) or (<cnp.ndarray>y_pred).ndim != 2 or (<cnp.ndarray>y_pred).shape[1] == 0:
        return None
    cdef cnp.ndarray p = <cnp.ndarray>y_pred
    cdef int typenum = cnp.PyArray_TYPE(p)
    cdef Py_ssize_t n = p.shape[0], c = p.shape[1]
    cdef int kind = _label_kind(y_true, n)
    cdef bint onehot = kind == 0 and ready2(y_true, typenum, c) and (<cnp.ndarray>y_true).shape[0] == n
    if kind == 0 and not onehot:
        return None
    cdef void* p_y = data(<cnp.ndarray>y_true)
    if kind != 0 and _check_labels(kind, p_y, n, c) != LABELS_OK:
        return None
    cdef cnp.ndarray losses = None
    cdef void* p_losses = NULL
    if per_sample:
        losses = cnp.PyArray_EMPTY(1, [n], typenum, 0)
        p_losses = data(losses)
    cdef void* p_p = data(p)
    cdef double total
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            if onehot:
                total = _cce_onehot(<float*>p_p, <float*>p_y, <float*>p_losses, n, c)
            elif kind == U8:
                total = _cce_sparse(<float*>p_p, <uint8_t*>p_y, <float*>p_losses, n, c)
            elif kind == I32:
                total = _cce_sparse(<float*>p_p, <int32_t*>p_y, <float*>p_losses, n, c)
            else:
                total = _cce_sparse(<float*>p_p, <int64_t*>p_y, <float*>p_losses, n, c)
        else:
            if onehot:
                total = _cce_onehot(<double*>p_p, <double*>p_y, <double*>p_losses, n, c)
            elif kind == U8:
                total = _cce_sparse(<double*>p_p, <uint8_t*>p_y, <double*>p_losses, n, c)
            elif kind == I32:
                total = _cce_sparse(<double*>p_p, <int32_t*>p_y, <double*>p_losses, n, c)
            else:
                total = _cce_sparse(<double*>p_p, <int64_t*>p_y, <double*>p_losses, n, c)
    return total, losses


def cce_backward(dict state, object dvalues, object y_true):
    """CCE backward into state['dinputs']; False when dvalues/y_true need validation first."""
    if not _predictions(dvalues) or (<cnp.ndarray>dvalues).ndim != 2 or (<cnp.ndarray>dvalues).shape[1] == 0:
        return False
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues
    cdef int typenum = cnp.PyArray_TYPE(dv)
    cdef Py_ssize_t n = dv.shape[0], c = dv.shape[1]
    cdef int kind = _label_kind(y_true, n)
    cdef bint onehot = kind == 0 and ready2(y_true, typenum, c) and (<cnp.ndarray>y_true).shape[0] == n
    if kind == 0 and not onehot:
        return False
    cdef void* p_y = data(<cnp.ndarray>y_true)
    if kind != 0 and _check_labels(kind, p_y, n, c) != LABELS_OK:
        return False
    cdef cnp.ndarray dinputs = reuse2(state, "dinputs", n, c, typenum, dv, y_true)
    cdef void* p_dv = data(dv)
    cdef void* p_dx = data(dinputs)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            if onehot:
                _cce_backward_onehot(<float*>p_dv, <float*>p_y, <float*>p_dx, n, c)
            elif kind == U8:
                _cce_backward_sparse(<float*>p_dv, <uint8_t*>p_y, <float*>p_dx, n, c)
            elif kind == I32:
                _cce_backward_sparse(<float*>p_dv, <int32_t*>p_y, <float*>p_dx, n, c)
            else:
                _cce_backward_sparse(<float*>p_dv, <int64_t*>p_y, <float*>p_dx, n, c)
        else:
            if onehot:
                _cce_backward_onehot(<double*>p_dv, <double*>p_y, <double*>p_dx, n, c)
            elif kind == U8:
                _cce_backward_sparse(<double*>p_dv, <uint8_t*>p_y, <double*>p_dx, n, c)
            elif kind == I32:
                _cce_backward_sparse(<double*>p_dv, <int32_t*>p_y, <double*>p_dx, n, c)
            else:
                _cce_backward_sparse(<double*>p_dv, <int64_t*>p_y, <double*>p_dx, n, c)
    return True


def softmax_cce_backward(dict state, object dvalues, object y_true):
    """(softmax output - one-hot) / n_samples into state['dinputs']; False when dvalues/y_true need
    validation first. One-hot targets are reduced to their argmax, as the book does. Zero columns
    return False: the one-hot loop subtracts 1 at column 0 of every row, which would write past
    the end of an empty dinputs."""
    if not _predictions(dvalues) or (<cnp.ndarray>dvalues).ndim != 2 or (<cnp.ndarray>dvalues).shape[1] == 0:
        return False
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues
    cdef int typenum = cnp.PyArray_TYPE(dv)
    cdef Py_ssize_t n = dv.shape[0], c = dv.shape[1]
    cdef int kind = _label_kind(y_true, n)
    cdef bint onehot = kind == 0
    if onehot and not (ready2(y_true, typenum, c) and (<cnp.ndarray>y_true).shape[0] == n):
        return False
    cdef cnp.ndarray labels = <cnp.ndarray>y_true
    cdef void* p_y = data(labels)
    if not onehot and _check_labels(kind, p_y, n, c) != LABELS_OK:
        return False
    cdef cnp.ndarray dinputs = reuse2(state, "dinputs", n, c, typenum, dv, labels)
    cdef void* p_dv = data(dv)
    cdef void* p_dx = data(dinputs)
    with nogil:
        if onehot:
            if typenum == cnp.NPY_FLOAT32:
                _softmax_cce_backward_onehot(<float*>p_dv, <float*>p_y, <float*>p_dx, n, c)
            else:
                _softmax_cce_backward_onehot(<double*>p_dv, <double*>p_y, <double*>p_dx, n, c)
        elif typenum == cnp.NPY_FLOAT32:
            if kind == U8:
                _softmax_cce_backward_sparse(<float*>p_dv, <uint8_t*>p_y, <float*>p_dx, n, c)
            elif kind == I32:
                _softmax_cce_backward_sparse(<float*>p_dv, <int32_t*>p_y, <float*>p_dx, n, c)
            else:
                _softmax_cce_backward_sparse(<float*>p_dv, <int64_t*>p_y, <float*>p_dx, n, c)
        else:
            if kind == U8:
                _softmax_cce_backward_sparse(<double*>p_dv, <uint8_t*>p_y, <double*>p_dx, n, c)
            elif kind == I32:
                _softmax_cce_backward_sparse(<double*>p_dv, <int32_t*>p_y, <double*>p_dx, n, c)
            else:
                _softmax_cce_backward_sparse(<double*>p_dv, <int64_t*>p_y, <double*>p_dx, n, c)
    return True


# Elementwise losses share one calling shape: predictions and targets of one dtype and shape. The
# kinds are C constants and (cpdef) Python attributes: fastnn/losses.py passes _losses.BCE etc.
cpdef enum:
    BCE = 0
    MSE = 1
    MAE = 2


cdef bint _pair(object y_pred, object y_true) noexcept:
    """Predictions (n, k >= 1) and targets of the same shape and dtype (k == 0 would make each
    per-sample mean 0/0 = NaN: the caller's validation refuses it)."""
    if not _predictions(y_pred) or (<cnp.ndarray>y_pred).ndim != 2 or (<cnp.ndarray>y_pred).shape[1] == 0:
        return False
    cdef cnp.ndarray p = <cnp.ndarray>y_pred
    return ready2(y_true, cnp.PyArray_TYPE(p), p.shape[1]) and (<cnp.ndarray>y_true).shape[0] == p.shape[0]


def elementwise(int which, object y_pred, object y_true, bint per_sample):
    """BCE (0), MSE (1) or MAE (2) forward: (sum of per-sample losses, per-sample array or None),
    or None when the arguments need validation first."""
    if not _pair(y_pred, y_true):
        return None
    cdef cnp.ndarray p = <cnp.ndarray>y_pred
    cdef int typenum = cnp.PyArray_TYPE(p)
    cdef Py_ssize_t n = p.shape[0], k = p.shape[1]
    cdef cnp.ndarray losses = None
    cdef void* p_losses = NULL
    if per_sample:
        losses = cnp.PyArray_EMPTY(1, [n], typenum, 0)
        p_losses = data(losses)
    cdef void* p_p = data(p)
    cdef void* p_y = data(<cnp.ndarray>y_true)
    cdef double total
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            if which == BCE:
                total = _bce(<float*>p_p, <float*>p_y, <float*>p_losses, n, k)
            elif which == MSE:
                total = _mse(<float*>p_p, <float*>p_y, <float*>p_losses, n, k)
            else:
                total = _mae(<float*>p_p, <float*>p_y, <float*>p_losses, n, k)
        else:
            if which == BCE:
                total = _bce(<double*>p_p, <double*>p_y, <double*>p_losses, n, k)
            elif which == MSE:
                total = _mse(<double*>p_p, <double*>p_y, <double*>p_losses, n, k)
            else:
                total = _mae(<double*>p_p, <double*>p_y, <double*>p_losses, n, k)
    return total, losses


def elementwise_backward(int which, dict state, object dvalues, object y_true):
    """BCE (0), MSE (1) or MAE (2) backward into state['dinputs']; False when the arguments need
    validation first."""
    if not _pair(dvalues, y_true):
        return False
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues
    cdef int typenum = cnp.PyArray_TYPE(dv)
    cdef Py_ssize_t n = dv.shape[0], k = dv.shape[1]
    cdef cnp.ndarray dinputs = reuse2(state, "dinputs", n, k, typenum, dv, y_true)
    cdef void* p_dv = data(dv)
    cdef void* p_y = data(<cnp.ndarray>y_true)
    cdef void* p_dx = data(dinputs)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            if which == BCE:
                _bce_backward(<float*>p_dv, <float*>p_y, <float*>p_dx, n, k)
            elif which == MSE:
                _mse_backward(<float*>p_dv, <float*>p_y, <float*>p_dx, n, k)
            else:
                _mae_backward(<float*>p_dv, <float*>p_y, <float*>p_dx, n, k)
        else:
            if which == BCE:
                _bce_backward(<double*>p_dv, <double*>p_y, <double*>p_dx, n, k)
            elif which == MSE:
                _mse_backward(<double*>p_dv, <double*>p_y, <double*>p_dx, n, k)
            else:
                _mae_backward(<double*>p_dv, <double*>p_y, <double*>p_dx, n, k)
    return True


def regularization_loss(object weights, object biases, double l1w, double l2w, double l1b, double l2b):
    """The L1/L2 penalty of one layer's parameters (any shape, float32/float64, C order), in double;
    None when an array is not in that form."""
    if not (_predictions(weights) and _predictions(biases)):
        return None
    cdef cnp.ndarray w = <cnp.ndarray>weights, b = <cnp.ndarray>biases
    cdef Py_ssize_t nw = cnp.PyArray_SIZE(w), nb = cnp.PyArray_SIZE(b)
    cdef bint wf = cnp.PyArray_TYPE(w) == cnp.NPY_FLOAT32, bf = cnp.PyArray_TYPE(b) == cnp.NPY_FLOAT32
    cdef void* p_w = data(w)
    cdef void* p_b = data(b)
    cdef double total = 0
    with nogil:
        total += penalty(<float*>p_w, nw, l1w, l2w) if wf else penalty(<double*>p_w, nw, l1w, l2w)
        total += penalty(<float*>p_b, nb, l1b, l2b) if bf else penalty(<double*>p_b, nb, l1b, l2b)
    return total


# ---------------------------------------------------------------------------------------------
# Categorical accuracy straight from class scores: the number of rows whose argmax (the first
# maximum, as np.argmax) equals the label. The Model uses it to skip the predictions array.

cdef inline Py_ssize_t _argmax_matches(const floating* scores, const label_t* labels, Py_ssize_t n_samples,
                                       Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i, j, best, correct = 0
    cdef const floating* row
    for i in range(n_samples):
        row = scores + i * n_classes
        best = 0
        for j in range(1, n_classes):
            if row[j] > row[best]:
                best = j
        correct += best == labels[i]
    return correct


def argmax_matches(object scores, object labels):
    """Count of rows of `scores` (n_samples, n_classes) whose argmax equals the class id in
    `labels` (n_samples,); None when the arguments are not in that exact form."""
    if not _predictions(scores) or (<cnp.ndarray>scores).ndim != 2:
        return None
    cdef cnp.ndarray s = <cnp.ndarray>scores
    cdef Py_ssize_t n = s.shape[0], c = s.shape[1]
    cdef int kind = _label_kind(labels, n)
    if kind == NOT_LABELS or c == 0:
        return None
    cdef void* p_s = data(s)
    cdef void* p_y = data(<cnp.ndarray>labels)
    cdef bint f32 = cnp.PyArray_TYPE(s) == cnp.NPY_FLOAT32
    cdef Py_ssize_t correct
    with nogil:
        if f32:
            if kind == U8:
                correct = _argmax_matches(<float*>p_s, <uint8_t*>p_y, n, c)
            elif kind == I32:
                correct = _argmax_matches(<float*>p_s, <int32_t*>p_y, n, c)
            else:
                correct = _argmax_matches(<float*>p_s, <int64_t*>p_y, n, c)
        else:
            if kind == U8:
                correct = _argmax_matches(<double*>p_s, <uint8_t*>p_y, n, c)
            elif kind == I32:
                correct = _argmax_matches(<double*>p_s, <int32_t*>p_y, n, c)
            else:
                correct = _argmax_matches(<double*>p_s, <int64_t*>p_y, n, c)
    return correct


# ---------------------------------------------------------------------------------------------
# The Model's fused head for softmax + categorical cross-entropy + categorical accuracy with class
# ids: the same four computations as the separate calls (softmax forward, the loss's per-sample
# -log, argmax == label, the combined gradient), on the same kernels in the same order, so the
# numbers are bit-identical; one call instead of four keeps a small batch's step short.

cdef inline void _softmax_cce_step(const floating* logits, const label_t* labels, floating* probabilities,
                                   floating* dinputs, Py_ssize_t n, Py_ssize_t c,
                                   double* loss_sum, Py_ssize_t* correct) noexcept nogil:
    _softmax_forward(logits, probabilities, n, c)
    loss_sum[0] = _cce_sparse(<const floating*>probabilities, labels, <floating*>NULL, n, c)
    correct[0] = _argmax_matches(<const floating*>probabilities, labels, n, c)
    _softmax_cce_backward_sparse(<const floating*>probabilities, labels, dinputs, n, c)


def softmax_cce_step(dict softmax_state, dict combined_state, object logits, object labels):
    """Softmax of `logits` (n, c) into softmax_state['output'] (and 'inputs'), the combined
    gradient into combined_state['dinputs']; returns (sum of the per-sample losses, number of
    rows whose argmax is the label). None, changing nothing, when logits/labels are not a
    C-contiguous float array and in-range class ids of the exact forms the kernels read."""
    if not _predictions(logits) or (<cnp.ndarray>logits).ndim != 2:
        return None
    cdef cnp.ndarray x = <cnp.ndarray>logits
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1]
    cdef int kind = _label_kind(labels, n)
    if kind == NOT_LABELS or c == 0 or n == 0:
        return None
    cdef void* p_y = data(<cnp.ndarray>labels)
    if _check_labels(kind, p_y, n, c) != LABELS_OK:
        return None
    cdef cnp.ndarray probabilities = reuse2(softmax_state, "output", n, c, typenum, x, labels)
    cdef cnp.ndarray dinputs = reuse2(combined_state, "dinputs", n, c, typenum, probabilities, x)
    cdef void* p_x = data(x)
    cdef void* p_p = data(probabilities)
    cdef void* p_d = data(dinputs)
    cdef double total = 0
    cdef Py_ssize_t correct = 0
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            if kind == U8:
                _softmax_cce_step(<float*>p_x, <uint8_t*>p_y, <float*>p_p, <float*>p_d, n, c, &total, &correct)
            elif kind == I32:
                _softmax_cce_step(<float*>p_x, <int32_t*>p_y, <float*>p_p, <float*>p_d, n, c, &total, &correct)
            else:
                _softmax_cce_step(<float*>p_x, <int64_t*>p_y, <float*>p_p, <float*>p_d, n, c, &total, &correct)
        else:
            if kind == U8:
                _softmax_cce_step(<double*>p_x, <uint8_t*>p_y, <double*>p_p, <double*>p_d, n, c, &total, &correct)
            elif kind == I32:
                _softmax_cce_step(<double*>p_x, <int32_t*>p_y, <double*>p_p, <double*>p_d, n, c, &total, &correct)
            else:
                _softmax_cce_step(<double*>p_x, <int64_t*>p_y, <double*>p_p, <double*>p_d, n, c, &total, &correct)
    softmax_state["inputs"] = x
    return total, correct
