# The thread policy shared by the kernels that split their work over OpenMP threads (_conv.pyx,
# _batchnorm.pyx),
# implemented in _threads.pyx, whose Python functions set it process-wide.

# Threads for `work` multiply-adds spread over n_items samples or chunks (1: run serially).
cdef int threads_for_work(Py_ssize_t work, Py_ssize_t n_items) noexcept
# Pin NumPy's BLAS to one thread for a kernel's duration; returns what blas_threads_restore needs.
cdef int blas_threads_pin() noexcept nogil
cdef void blas_threads_restore(int n) noexcept nogil
