# The dropout mask generator, shared by _dropout.pyx (fast mode) and _fused_mlp.pyx (the Model's
# compiled step, which must draw the very same mask): no .pyx sits behind this file.
from libc.stdint cimport uint64_t

# The mask generator: LANES independent xorshift128+ generators (Vigna 2014) advanced side by
# side, so the update loop is a handful of 64-bit shifts, xors and adds that compilers vectorise on
# any x86-64 (no 32-bit multiplies, which SSE2 lacks). Each step yields LANES 64-bit words, cut
# into four 16-bit draws each: DRAWS = 4 * LANES elements per step. The lanes are seeded from the
# one seed by splitmix64, so the mask is a fixed function of (seed, element index).
cdef enum:
    LANES = 8
    DRAWS = 32


cdef inline uint64_t _splitmix64(uint64_t* state) noexcept nogil:
    state[0] += <uint64_t>0x9E3779B97F4A7C15
    cdef uint64_t z = state[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline void _seed_lanes(uint64_t seed, uint64_t* s0, uint64_t* s1) noexcept nogil:
    cdef int lane
    for lane in range(LANES):
        s0[lane] = _splitmix64(&seed)
        s1[lane] = _splitmix64(&seed)
        if s0[lane] == 0 and s1[lane] == 0:  # the one state xorshift128+ cannot leave
            s1[lane] = 1


# LANES = 8 xorshift128+ generators advanced side by side, `steps` times, appending 8 words per step
# to `out`. Written with GCC/clang vector types (four 64-bit lanes per 256-bit vector: one AVX2
# register, two SSE2 ones in the baseline build; the lanes are independent, so the words are the same
# either way): compilers
# do not vectorise the plain loop by themselves. Other compilers get the same words from the
# scalar loop.
cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static inline void fastnn_xorshift128p_fill(uint64_t *s0, uint64_t *s1, uint64_t *out, int steps) {
    #if defined(__GNUC__) || defined(__clang__)
        typedef uint64_t u64x4 __attribute__((vector_size(32)));
        u64x4 a[2], b[2];
        memcpy(a, s0, sizeof a);
        memcpy(b, s1, sizeof b);
        for (int step = 0; step < steps; ++step) {
            for (int v = 0; v < 2; ++v) {
                u64x4 x = a[v], y = b[v];
                a[v] = y;
                x ^= x << 23;
                x = x ^ y ^ (x >> 17) ^ (y >> 26);
                b[v] = x;
                u64x4 r = x + y;
                memcpy(out + 8 * step + 4 * v, &r, sizeof r);
            }
        }
        memcpy(s0, a, sizeof a);
        memcpy(s1, b, sizeof b);
    #else
        for (int step = 0; step < steps; ++step) {
            for (int lane = 0; lane < 8; ++lane) {
                uint64_t x = s0[lane], y = s1[lane];
                s0[lane] = y;
                x ^= x << 23;
                x = x ^ y ^ (x >> 17) ^ (y >> 26);
                s1[lane] = x;
                out[8 * step + lane] = x + y;
            }
        }
    #endif
    }
    """
    void fastnn_xorshift128p_fill(uint64_t* s0, uint64_t* s1, uint64_t* out, int steps) noexcept nogil


# The elements are processed CHUNK at a time: fill a buffer with CHUNK 16-bit draws, then use them.
cdef enum:
    CHUNK = 2048
    CHUNK_WORDS = 512    # CHUNK 16-bit draws in 64-bit words
    CHUNK_STEPS = 64     # generator steps per chunk (CHUNK / DRAWS)
