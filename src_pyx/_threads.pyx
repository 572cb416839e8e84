"""fastnn's thread policy, for every kernel: one pool of threads, OpenMP's, and its Python
controls (fastnn/conv.py: set_num_threads, get_num_threads; fastnn/backend/blas.py installs
OpenBLAS's thread functions here at import). One module, so the setting is process-wide.

1. NumPy's OpenBLAS runs its threaded GEMMs on fastnn's OpenMP team (OpenBLAS's caller-managed
   threading: blas_jobs below is its callback), not on its own worker threads. So the Dense
   layers' GEMMs (and NumPy's own matmul) and the conv kernels' OpenMP loops use the same threads:
   no busy-waiting OpenBLAS worker is left to fight an OpenMP team for the cores. Before this, on
   the 2-core machine, an OpenMP conv after a Dense GEMM ran a LeNet training step in 16.1 ms
   against 10.0 ms serial, so the conv loop stayed serial unless the user limited BLAS to one
   thread.
2. The conv kernels (_conv.pyx) split the batch (samples in forward, fixed chunks in backward)
   over OpenMP threads, each running whole samples, with NumPy's BLAS pinned to one thread
   meanwhile: one sample's GEMMs are too small for OpenBLAS to split well (conv 32->64, k3,
   14x14, batch 128 on 2 cores: 35 ms with OpenBLAS splitting the GEMMs of 4 samples at a time,
   22 ms with 2 OpenMP threads running one sample each).
3. BatchNorm (_batchnorm.pyx) splits NCHW channels over the same team. Element-wise, loss,
   optimizer and pooling kernels run on the calling thread (memory-bound; docs/threads.md).
Automatic mode (set_num_threads(0), the default): OpenMP's thread count (OMP_NUM_THREADS, the
cores, or what threadpoolctl set for "openmp"). Without the callback (a BLAS other than NumPy's
OpenBLAS, or an OpenBLAS older than 0.3.27) the old rule applies: the batch is split only while
BLAS runs on one thread.
"""
from _openmp_helpers cimport omp_get_max_threads

include "_blas_jobs.pxi"

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


cdef bint _shared_team = False     # OpenBLAS runs its threaded work on fastnn's OpenMP team


def blas_jobs_address():
    """The address of blas_jobs, the callback that runs OpenBLAS's threaded work on fastnn's
    OpenMP team (openblas_set_threads_callback_function), or 0 when this build cannot run it
    (no OpenMP, or no POSIX threads for its fallback)."""
    if not FASTNN_BLAS_JOBS:
        return 0
    fastnn_blas_jobs_init()      # a forked child runs the jobs on POSIX threads
    return <size_t>fastnn_blas_jobs


def set_shared_team(bint shared):
    """Record whether OpenBLAS's callback is installed (fastnn/backend/blas.py, at import)."""
    global _shared_team
    _shared_team = shared


def shared_team():
    """Whether NumPy's OpenBLAS runs its threads on fastnn's OpenMP team."""
    return _shared_team


cdef int threads_for_work(Py_ssize_t work, Py_ssize_t n_items) noexcept:
    """Threads for `work` multiply-adds spread over n_items samples or chunks.

    Automatic (set_num_threads(0), the default): OpenMP's thread count, when OpenBLAS runs its
    threads on fastnn's OpenMP team (blas_jobs installed) or is itself on one thread; otherwise 1
    (OpenBLAS's own busy-waiting workers would fight an OpenMP team: a LeNet training step took
    16.1 ms with 2 OpenMP threads against 10.0 ms serial, BLAS on 2 threads). An explicit
    set_num_threads(n) is obeyed as given."""
    if _blas_get_threads == NULL:
        return 1
    cdef int n = _max_threads
    if n == 0:
        n = omp_get_max_threads()
        if not _shared_team and _blas_get_threads() > 1:
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
