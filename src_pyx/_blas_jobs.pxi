# OpenBLAS's caller-managed threading (openblas_set_threads_callback_function, OpenBLAS >= 0.3.27):
# OpenBLAS cuts a threaded GEMM into numjobs jobs and hands them to this callback, which runs
# them on fastnn's OpenMP team, one job per thread, all at once: the jobs of a level-3 GEMM wait
# for each other (they share packed panels), so they must run concurrently. When an OpenMP team
# of numjobs threads cannot be had (called from inside a parallel region, or with OMP_DYNAMIC),
# the jobs run on POSIX threads started for the call instead. The job indices and the data each
# job sees are OpenBLAS's own, so the products are bit-identical to OpenBLAS's own threading.
# One threaded GEMM at a time: OpenBLAS hands every caller-managed call the same per-thread
# buffers, so two Python threads' GEMMs at once corrupted each other's products (overflows and
# NaN within 20 calls of 3 threads); the lock serialises them, as OpenBLAS's own server does.
# In a process forked from this one, GCC's OpenMP team is not usable (its threads were not
# copied), so a child runs the jobs on POSIX threads (and re-creates the lock).
cdef extern from *:
    """
    #if defined(_OPENMP) && !defined(_WIN32)
    #include <omp.h>
    #include <pthread.h>
    #include <stdlib.h>
    #define FASTNN_BLAS_JOBS 1
    typedef void (*fastnn_dojob_t)(int, void*, int);
    typedef struct { fastnn_dojob_t dojob; void* data; int arg; int index; } fastnn_job;
    static void* fastnn_job_thread(void* p) {
        fastnn_job* j = (fastnn_job*)p;
        j->dojob(j->index, j->data, j->arg);
        return NULL;
    }
    static void fastnn_jobs_on_pthreads(fastnn_dojob_t dojob, int numjobs, size_t elsize, char* jobdata, int arg) {
        fastnn_job* jobs = (fastnn_job*)malloc(sizeof(fastnn_job) * (size_t)numjobs);
        pthread_t* threads = (pthread_t*)malloc(sizeof(pthread_t) * (size_t)numjobs);
        int i, started = 1;
        if (jobs == NULL || threads == NULL) { abort(); }
        for (i = 0; i < numjobs; i++) {
            jobs[i].dojob = dojob; jobs[i].data = jobdata + (size_t)i * elsize; jobs[i].arg = arg; jobs[i].index = i;
        }
        for (i = 1; i < numjobs; i++) {
            if (pthread_create(&threads[i], NULL, fastnn_job_thread, &jobs[i]) != 0) { abort(); }
            started++;
        }
        fastnn_job_thread(&jobs[0]);
        for (i = 1; i < started; i++) pthread_join(threads[i], NULL);
        free(jobs);
        free(threads);
    }
    static pthread_mutex_t fastnn_blas_lock = PTHREAD_MUTEX_INITIALIZER;
    static volatile int fastnn_blas_forked = 0;
    static pthread_once_t fastnn_blas_once = PTHREAD_ONCE_INIT;
    static void fastnn_blas_child(void) {
        pthread_mutex_init(&fastnn_blas_lock, NULL);
        fastnn_blas_forked = 1;
    }
    static void fastnn_blas_register(void) { pthread_atfork(NULL, NULL, fastnn_blas_child); }
    static void fastnn_blas_jobs_init(void) { pthread_once(&fastnn_blas_once, fastnn_blas_register); }
    static void fastnn_blas_jobs_locked(fastnn_dojob_t dojob, int numjobs, size_t elsize, char* data, int arg) {
        int mismatch = 0;
        if (numjobs == 1) {
            dojob(0, data, arg);
            return;
        }
        if (fastnn_blas_forked || omp_in_parallel() || omp_get_dynamic() || omp_get_thread_limit() < numjobs) {
            fastnn_jobs_on_pthreads(dojob, numjobs, elsize, data, arg);
            return;
        }
        #pragma omp parallel num_threads(numjobs) reduction(|:mismatch)
        {
            if (omp_get_num_threads() == numjobs) {
                int t = omp_get_thread_num();
                dojob(t, data + (size_t)t * elsize, arg);
            } else {
                mismatch = 1;
            }
        }
        if (mismatch) fastnn_jobs_on_pthreads(dojob, numjobs, elsize, data, arg);
    }
    static void fastnn_blas_jobs(int sync, fastnn_dojob_t dojob, int numjobs, size_t elsize, void* jobdata, int arg) {
        (void)sync;
        if (numjobs < 1) return;
        pthread_mutex_lock(&fastnn_blas_lock);
        fastnn_blas_jobs_locked(dojob, numjobs, elsize, (char*)jobdata, arg);
        pthread_mutex_unlock(&fastnn_blas_lock);
    }
    #else
    #define FASTNN_BLAS_JOBS 0
    static void fastnn_blas_jobs(int sync, void* dojob, int numjobs, size_t elsize, void* jobdata, int arg) {}
    static void fastnn_blas_jobs_init(void) {}
    #endif
    """
    int FASTNN_BLAS_JOBS
    void fastnn_blas_jobs(int, void*, int, size_t, void*, int) noexcept nogil
    void fastnn_blas_jobs_init() noexcept nogil
