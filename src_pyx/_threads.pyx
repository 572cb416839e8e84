"""The thread policy of the kernels that split a batch over OpenMP threads (_conv.pyx), and its
Python controls (fastnn/conv.py: set_num_threads, get_num_threads, and OpenBLAS's thread functions
installed at import). One module, so the setting is process-wide.

The batch (samples in the conv forward, fixed chunks in its backward) is split over OpenMP
threads, each running whole samples, with NumPy's BLAS pinned to one thread meanwhile. By default
the batch is split only while NumPy's BLAS is itself limited to one thread: OpenBLAS's idle
workers busy-wait after the Dense layers' GEMMs and an OpenMP team then fights them for the cores.
Measured on the 2-core machine, float32, batch 128:
  conv fw+bw, 32->64 k5 14x14 (batch 64): 1 thread 53 ms, OpenBLAS-threaded GEMMs 91 ms,
                                           OpenMP 2 threads 28 ms
  LeNet training step:   BLAS 2 threads: serial conv 10.0 ms, OpenMP conv 16.1 ms (the fight)
                         BLAS 1 thread:  serial conv 10.4 ms, OpenMP conv  7.3 ms
  MNIST CNN (32/64 ch):  BLAS 2 threads: serial 59 ms, OpenMP 54 ms; BLAS 1 thread: OpenMP 35 ms
(OMP_WAIT_POLICY=PASSIVE also ends the fight, but it must be set before the process starts.)
"""
from _openmp_helpers cimport omp_get_max_threads

# ---------------------------------------------------------------------------------------------
# The batch is split over OpenMP threads only when NumPy's BLAS can be pinned to one thread
# meanwhile (fastnn/conv.py hands over OpenBLAS's get/set_num_threads at import): calling
# a multi-threaded OpenBLAS from inside an OpenMP region oversubscribes the cores (and OpenBLAS
# warns that it may hang). The serial loop pins BLAS to one thread as well: OpenBLAS splits one
# sample's small GEMMs badly (conv 32->64, k5, 14x14, batch 64: 53 ms on one thread, 91 ms on
# two). Without the pin functions (a BLAS other than NumPy's OpenBLAS) the loop is serial and
# the GEMMs use BLAS's own threads. By default the split is only used while BLAS itself runs on
# one thread (see threads_for_work for why and the figures).

ctypedef void (*set_threads_t)(int) noexcept nogil
ctypedef int (*get_threads_t)() noexcept nogil
cdef set_threads_t _blas_set_threads = NULL
cdef get_threads_t _blas_get_threads = NULL
cdef int _max_threads = 0          # 0: OpenMP's default (omp_get_max_threads()); see set_num_threads
# Below this many multiply-adds per thread the batch is not split: a chosen threshold, about
# 45 us of GEMM per thread, several times what waking a thread costs.
cdef Py_ssize_t _MIN_WORK_PER_THREAD = 2000000


def set_blas_thread_functions(size_t set_address, size_t get_address):
    """Install BLAS's set_num_threads(int) / get_num_threads() (0, 0 removes them)."""
    global _blas_set_threads, _blas_get_threads
    if (set_address == 0) != (get_address == 0):
        raise ValueError("give both addresses or neither")
    _blas_set_threads = <set_threads_t>set_address
    _blas_get_threads = <get_threads_t>get_address


def set_num_threads(int n):
    """Threads for the loop over samples: 0 = automatic (OpenMP's count, OMP_NUM_THREADS or the
    cores, while NumPy's BLAS is on one thread; else 1: see threads_for_work), 1 = serial,
    n = n threads. Batches too small to pay for a thread (fewer samples or chunks than threads,
    or under _MIN_WORK_PER_THREAD multiply-adds per thread) use fewer."""
    global _max_threads
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    _max_threads = n


def set_min_work_per_thread(Py_ssize_t work):
    """The split threshold in multiply-adds per thread (tests lower it to 1 to split tiny
    batches); returns the previous value."""
    global _MIN_WORK_PER_THREAD
    if work < 1:
        raise ValueError(f"work must be >= 1, got {work}")
    previous = _MIN_WORK_PER_THREAD
    _MIN_WORK_PER_THREAD = work
    return previous


def num_threads():
    """(setting, threads a large batch would use now, whether BLAS can be pinned)."""
    return _max_threads, threads_for_work(1 << 40, 1 << 20), _blas_get_threads != NULL


cdef int threads_for_work(Py_ssize_t work, Py_ssize_t n_items) noexcept:
    """Threads for `work` multiply-adds spread over n_items samples or chunks.

    Automatic (set_num_threads(0), the default): OpenMP's thread count, but only while NumPy's
    BLAS runs on one thread. When BLAS has several threads, its idle workers busy-wait after each
    GEMM of the Dense layers and an OpenMP team fights them for the cores: on the 2-core machine a
    LeNet training step took 16.1 ms with 2 OpenMP threads against 10.0 ms serial (BLAS on 2
    threads), while with BLAS on 1 thread the OpenMP conv made the step faster (10.4 -> 7.3 ms; a
    32/64-channel MNIST CNN 59 -> 35 ms). An explicit set_num_threads(n) is obeyed as given."""
    if _blas_get_threads == NULL:
        return 1
    cdef int n = _max_threads
    if n == 0:
        n = omp_get_max_threads()
        if _blas_get_threads() > 1:
            n = 1
    if n > n_items:
        n = <int>n_items
    if work // _MIN_WORK_PER_THREAD < n:
        n = <int>(work // _MIN_WORK_PER_THREAD)
    return n if n > 1 else 1


cdef int blas_threads_pin() noexcept nogil:
    cdef int n = 0
    if _blas_get_threads != NULL:
        n = _blas_get_threads()
        if n > 1:
            _blas_set_threads(1)
    return n


cdef void blas_threads_restore(int n) noexcept nogil:
    if n > 1:
        _blas_set_threads(n)
