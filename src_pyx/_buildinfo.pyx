"""What the compiled extension was built with; read by fastnn.show_config() and the build tests."""
from _openmp_helpers cimport FASTNN_OPENMP, omp_get_max_threads

cdef extern from *:
    """
    #ifndef FASTNN_COMPILE_FLAGS
    #define FASTNN_COMPILE_FLAGS "unknown"
    #endif
    #ifndef FASTNN_DEBUG_BUILD
    #define FASTNN_DEBUG_BUILD 0
    #endif
    """
    const char* FASTNN_COMPILE_FLAGS
    int FASTNN_DEBUG_BUILD


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(FASTNN_OPENMP)


def openmp_max_threads():
    """OpenMP's thread count for a parallel region (1 when built without OpenMP)."""
    return omp_get_max_threads()


def compile_flags():
    """The compiler flags the kernels were built with, as one string."""
    return FASTNN_COMPILE_FLAGS.decode()


def debug_build():
    """True for a FASTNN_DEBUG=1 build (bounds checks on)."""
    return bool(FASTNN_DEBUG_BUILD)
