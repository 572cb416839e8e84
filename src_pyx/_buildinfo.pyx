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


cdef extern from *:
    """
    static int fastnn_cpu_has_avx2(void) {
    #if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
        __builtin_cpu_init();
        /* libgcc/compiler-rt also check that the OS saves the AVX registers (XCR0). */
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    #else
        return 0;
    #endif
    }
    """
    int fastnn_cpu_has_avx2()


def cpu_has_avx2():
    """True when this CPU (and OS) can run the AVX2 kernel variants."""
    return bool(fastnn_cpu_has_avx2())


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
