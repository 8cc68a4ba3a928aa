/* Fused CPU selective scan (Mamba S6): forward, backward and the one-step update.
 *
 * Plain C (GNU vector extensions, pthreads), no torch headers: it is compiled on first use
 * by seqmamba_kernels/_cpu_build.py and called through ctypes by seqmamba_kernels/cpu_scan.py, which validates
 * every argument first.  All arithmetic is float32; inputs arrive as float32 with arbitrary
 * element strides (the model hands over transposed views, which are read in place).
 *
 * Layout of the work:
 *   - Channels are processed in blocks of W = 16 consecutive channels that share one B group
 *     and one C group.  One block is one vector register per state index n (a zmm on
 *     AVX-512, two ymm on AVX2), so the state h[n] of a block lives in registers (N = 16)
 *     or L1 (other N) through the whole time loop, and B_t[n], C_t[n] are scalar broadcasts.
 *     Lanes of a short block (dim not a multiple of 16, or small groups) are padded with
 *     zeros that provably stay zero and contribute nothing to any sum.
 *   - Time is walked in tiles of T steps: a tile of u, dt, z (W x T, any strides) is first
 *     transposed into a small buffer, then the recurrence runs over it, then the outputs are
 *     transposed back.  The exp of dt*A is computed inside the loop (never stored in the
 *     forward).  The state at every tile start is kept for the backward (when asked).
 *   - One parallel region per call: worker threads take (batch, block) items from an atomic
 *     counter until none are left.  Items are fine grained, so a thread that the OS
 *     deschedules (another process on the same cores) delays the call by one item, not by a
 *     barrier per time step.
 *   - Backward items are (batch, super-block): a run of blocks in one B/C group, walked by
 *     one thread, so that the channel sums of dB and dC are written by one thread in a fixed
 *     order (deterministic for a given thread count) into a per-super-block partial that
 *     Python reduces over the super-blocks of a group.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define ABI_VERSION 3
#define W 16
#define LOG2E 1.44269504088896341f

typedef float vf __attribute__((vector_size(W * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(W * sizeof(int32_t))));

/* ----------------------------------------------------------------------- vector maths */

static inline vf splat(float x) { return (vf){0} + x; }
/* Lane-wise m ? a : b (m is all-ones or zero per lane). */
static inline vf sel(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }

/* Lane-wise max(a, lo) and min(a, hi) that keep a NaN in a (x86's max/min return their
 * second operand when a NaN is involved, so the NaN goes second). */
#if defined(__AVX512F__)
static inline vf vmax_keep_nan(vf a, float lo) { return (vf)_mm512_max_ps(splat(lo), a); }
static inline vf vmin_keep_nan(vf a, float hi) { return (vf)_mm512_min_ps(splat(hi), a); }
#else
static inline vf vmax_keep_nan(vf a, float lo) { return sel(a < splat(lo), splat(lo), a); }
static inline vf vmin_keep_nan(vf a, float hi) { return sel(a > splat(hi), splat(hi), a); }
#endif

/* 2^y, the scan's exp: exp(dt A) = 2^(dt A log2 e) with A log2 e formed once per channel, so
 * the range reduction is one rounding and one subtraction.  y + 1.5*2^23 rounds y to an
 * integer r whose bits sit in the float's low mantissa bits, so 2^r is built from the same
 * sum without a conversion.  2^f on |f| <= 1/2 by a degree-6 polynomial fitted for minimal
 * relative error (2.6e-9 in exact arithmetic; about 1e-7 in float32).  y is clamped to
 * [-126, 127] so that 2^r stays a normal float; a NaN propagates. */
static inline vf vexp2(vf y)
{
    y = vmin_keep_nan(vmax_keep_nan(y, -126.0f), 127.0f);
    const vf magic = splat(12582912.0f); /* 1.5 * 2^23 = 0x4B400000 */
    vf rm = y + magic;
    vf f = y - (rm - magic);
    vf p = splat(1.5345597453e-04f);
    p = p * f + 1.3399929372e-03f;
    p = p * f + 9.6184897537e-03f;
    p = p * f + 5.5503287827e-02f;
    p = p * f + 2.4022646883e-01f;
    p = p * f + 6.9314720573e-01f;
    p = p * f + 1.0f;
    vi e = ((vi)rm + (127 - 0x4B400000)) << 23;
    return p * (vf)e;
}

/* softplus(x) = max(x, 0) + log1p(e^-|x|).  With e = e^-|x| in (0, 1] and u = 1 + e rounded,
 * log1p(e) = log(u) + log1p(c/u) where c = e - (u - 1) is the rounding error of u, exactly;
 * c/u is taken as c (2 - u), whose error c (u-1)^2 / u stays below 1e-7 of the result.  log(u)
 * for u in (1, 2] with Cephes' logf polynomial after halving u above sqrt(2).  Above 20 this
 * is x + log1p(e^-x) = x to float32 rounding, as torch's threshold gives. */
static inline vf vsoftplus(vf x)
{
    vf e = vexp2((vf)((vi)x & 0x7fffffff) * -LOG2E);
    vf u = e + 1.0f;
    vf c = e - (u - 1.0f);
    vi big = u > splat(1.41421356237f);
    vf k = (vf)(big & (vi)splat(1.0f)); /* 1 where u was halved */
    vf m = sel(big, u * 0.5f, u) - 1.0f;
    vf z = m * m;
    vf p = splat(7.0376836292e-2f);
    p = p * m - 1.1514610310e-1f;
    p = p * m + 1.1676998740e-1f;
    p = p * m - 1.2420140846e-1f;
    p = p * m + 1.4249322787e-1f;
    p = p * m - 1.6668057665e-1f;
    p = p * m + 2.0000714765e-1f;
    p = p * m - 2.4999993993e-1f;
    p = p * m + 3.3333331174e-1f;
    vf l = p * m * z + k * -2.12194440e-4f - 0.5f * z;
    l = m + l + k * 0.693359375f;
    l = l + c * (2.0f - u);
    return sel(x > splat(0.0f), x, splat(0.0f)) + l;
}

static inline vf vsigmoid(vf x) { return 1.0f / (1.0f + vexp2(x * -LOG2E)); }

static inline float hsum(vf v)
{
    float s = 0.0f;
    for (int i = 0; i < W; i++) s += v[i];
    return s;
}


/* Sums over the lanes of P[0..15] at once: lane n of the result is the sum of the lanes of
 * P[n].  A butterfly of 15 shuffle pairs and adds instead of 16 serial horizontal sums
 * (which cost the backward most of its time when written lane by lane). */
#if defined(__clang__)
#define SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUF(a, b, ...) __builtin_shuffle(a, b, (vi){__VA_ARGS__})
#endif
static inline vf fold8(vf a, vf b) /* [a's 8 sums | b's 8 sums] */
{
    return SHUF(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
           SHUF(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
}
static inline vf fold4(vf a, vf b)
{
    return SHUF(a, b, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           SHUF(a, b, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
}
static inline vf fold2(vf a, vf b)
{
    return SHUF(a, b, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
           SHUF(a, b, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
}
static inline vf fold1(vf a, vf b)
{
    return SHUF(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
           SHUF(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}
static inline vf reduce16(const vf *P)
{
    vf r[8], q[4], s2[2];
    for (int i = 0; i < 8; i++) r[i] = fold8(P[2 * i], P[2 * i + 1]);
    for (int i = 0; i < 4; i++) q[i] = fold4(r[2 * i], r[2 * i + 1]);
    for (int i = 0; i < 2; i++) s2[i] = fold2(q[2 * i], q[2 * i + 1]);
    return fold1(s2[0], s2[1]);
}

/* out[n] = sum over lanes of P[n], n < N, 16 at a time (the last group zero-padded). */
static inline void reduce_lanes(int N, const vf *P, float *out)
{
    for (int n0 = 0; n0 < N; n0 += 16) {
        vf pad[16];
        const vf *src = P + n0;
        if (N - n0 < 16) {
            for (int i = 0; i < 16; i++) pad[i] = i < N - n0 ? P[n0 + i] : splat(0.0f);
            src = pad;
        }
        vf r = reduce16(src);
        for (int i = 0; i < 16 && n0 + i < N; i++) out[n0 + i] = r[i];
    }
}

/* ---------------------------------------------------------------------- thread pool */

typedef void (*item_fn)(const void *ctx, int64_t item, void *scratch);

typedef struct {
    item_fn fn;
    const void *ctx;
    int64_t n_items;
    size_t scratch_bytes;
    int64_t next;   /* atomic */
    int64_t done;   /* atomic */
    int64_t active; /* atomic: threads that hold buffers and may still run an item */
    int64_t cpu_ns; /* atomic: CPU time the threads spent on items */
} job_t;

static int64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *worker(void *arg)
{
    job_t *job = (job_t *)arg;
    void *scratch = NULL;
    if (posix_memalign(&scratch, 64, job->scratch_bytes ? job->scratch_bytes : 64) != 0)
        return NULL; /* the other threads take this one's share */
    __atomic_fetch_add(&job->active, 1, __ATOMIC_ACQ_REL);
    const int64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    for (;;) {
        int64_t i = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (i >= job->n_items) break;
        job->fn(job->ctx, i, scratch);
        __atomic_fetch_add(&job->done, 1, __ATOMIC_RELEASE);
    }
    __atomic_fetch_add(&job->cpu_ns, now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&job->active, 1, __ATOMIC_ACQ_REL);
    free(scratch);
    return NULL;
}

/* Threads started for this call only; they end with it and nothing spins between calls. */
static void run_own_threads(job_t *job, int nthreads)
{
    pthread_t tid[256];
    if (nthreads > 256) nthreads = 256;
    int started = 0;
    for (int i = 1; i < nthreads; i++) {
        if (pthread_create(&tid[started], NULL, worker, job) != 0) break;
        started++;
    }
    worker(job);
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
}

#ifdef _OPENMP
/* The team of the OpenMP runtime already in the process, which for PyTorch is torch's own:
 * its workers are still spinning from the last torch op when the scan starts, so they take
 * items at once instead of competing for the cores with threads of our own (measured: a scan
 * right after a torch op took 1.7-2.5x as long on its own threads). */
static void run_openmp_team(job_t *job, int nthreads)
{
#pragma omp parallel num_threads(nthreads)
    {
        worker(job);
        /* Wait for items still running elsewhere by yielding the core, not by spinning in the
         * region's barrier, so that a preempted thread gets its core back. */
        while (__atomic_load_n(&job->done, __ATOMIC_ACQUIRE) < job->n_items &&
               __atomic_load_n(&job->active, __ATOMIC_ACQUIRE) > 0)
            sched_yield();
    }
}

/* When other processes share the cores, the OpenMP team's spinning waits cost everyone (two
 * processes looping on the scan took ~3x their time alone, a fair share being 2x), while
 * threads of our own that sleep when idle stay near 2x.  So each parallel call measures how
 * much CPU its threads got over the wall time; a call whose threads got under 70% of it
 * switches to own threads, and every 16th call tries the team again. */
static int g_use_own_threads = 0; /* relaxed atomics: a hint shared by concurrent callers */
static int64_t g_calls = 0;
#endif

/* Run fn on items 0..n_items-1 on up to nthreads threads (the caller's included); each
 * thread takes items from the shared counter until none are left.  Returns 0, or -1 when
 * memory ran out. */
static int run_items(item_fn fn, const void *ctx, int64_t n_items, int nthreads,
                     size_t scratch_bytes)
{
    job_t job = {fn, ctx, n_items, scratch_bytes, 0, 0, 0, 0};
    if (nthreads > n_items) nthreads = (int)n_items;
    if (nthreads < 1) nthreads = 1;
    if (nthreads == 1) {
        worker(&job);
    } else {
#ifdef _OPENMP
        const int64_t call = __atomic_fetch_add(&g_calls, 1, __ATOMIC_RELAXED);
        const int own = __atomic_load_n(&g_use_own_threads, __ATOMIC_RELAXED) && call % 16;
        const int64_t t0 = now_ns(CLOCK_MONOTONIC);
        if (own) {
            run_own_threads(&job, nthreads);
        } else {
            run_openmp_team(&job, nthreads);
            const int64_t wall = now_ns(CLOCK_MONOTONIC) - t0;
            /* Only a call of 2 ms or more is measured; a shorter one (where thread start-up
             * dominates) goes back to the team. */
            __atomic_store_n(&g_use_own_threads,
                             wall > 2000000 && 10 * job.cpu_ns < 7 * wall * (int64_t)nthreads,
                             __ATOMIC_RELAXED);
        }
#else
        run_own_threads(&job, nthreads);
#endif
    }
    return job.done == n_items ? 0 : -1;
}

int seqmamba_cpu_uses_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------------ arguments */

/* Every field is 64 bits wide so that the ctypes mirror in cpu_scan.py has no padding.
 * Strides are in elements.  (b, d, t) tensors: u, delta, z, out, dout, du, ddelta, dz.
 * (b, g, n, t) tensors: B, C, and the dB/dC partials (b, super, n, t).  Time-invariant B is
 * (d, n) with strides sB[0], sB[1].  A is (d, n) contiguous; D, bias (d,) contiguous;
 * h0, last, dlast, dh0 (b, d, n) contiguous; saved (b, chunks, d, n) contiguous;
 * dA, dBti (b, d, n) and dD, dbias (b, d) per-batch partials, contiguous. */
typedef struct {
    int64_t batch, dim, length, nstate, tile, softplus, b_ti, nthreads;
    const float *u, *delta, *A, *B, *C, *D, *z, *bias, *h0;
    int64_t su[3], sdelta[3], sz[3], sB[4], sC[4];
    float *out, *last, *saved;
    int64_t sout[3];
    int64_t n_blocks;
    const int64_t *blocks; /* n_blocks x (d0, width, b group, c group) */
    /* backward only */
    const float *dout, *dlast;
    int64_t sdout[3];
    float *du, *ddelta, *dz, *dBp, *dCp, *dA, *dBti, *dD, *dbias, *dh0;
    int64_t sdu[3], sddelta[3], sdz[3], sdBp[4], sdCp[4];
    int64_t n_supers;
    const int64_t *supers; /* n_supers x (first block, number of blocks) */
} scan_args;

static int64_t abi_checked_size(void) { return (int64_t)sizeof(scan_args); }

/* 16x16 transpose in registers: four rounds of zipping row i with row i+8. */
static inline void transpose16(vf *r)
{
    for (int round = 0; round < 4; round++) {
        vf n[16];
        for (int i = 0; i < 8; i++) {
            n[2 * i] = SHUF(r[i], r[i + 8], 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            n[2 * i + 1] =
                SHUF(r[i], r[i + 8], 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        }
        memcpy(r, n, sizeof n);
    }
}

static inline vf loadu(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Copy a (rows x Tn) block of a tensor whose rows are strided by s_r and steps by s_t into
 * buf[t][r] (rows <= 16, rows >= `rows` zero).  The two layouts that occur are vectorised:
 * time contiguous (the (batch, dim, length) API layout: 16x16 transposes in registers) and
 * rows contiguous (the model's (batch, length, dim) activations seen transposed: one vector
 * per step). */
static void load_tile(vf *restrict buf, const float *restrict src, int64_t s_r, int64_t s_t,
                      int rows, int64_t Tn)
{
    float *f = (float *)buf;
    int64_t t = 0;
    if (s_r == 1 && rows == W) {
        for (; t < Tn; t++) buf[t] = loadu(src + t * s_t);
        return;
    }
    if (rows < W)
        for (int64_t i = 0; i < Tn; i++) buf[i] = splat(0.0f);
    if (s_t == 1 && s_r != 1) {
        for (; t + W <= Tn; t += W) {
            vf r[W];
            for (int w = 0; w < W; w++) r[w] = w < rows ? loadu(src + w * s_r + t) : splat(0.0f);
            transpose16(r);
            memcpy(buf + t, r, sizeof r);
        }
        for (int w = 0; w < rows; w++)
            for (int64_t i = t; i < Tn; i++) f[i * W + w] = src[w * s_r + i];
    } else {
        for (; t < Tn; t++)
            for (int w = 0; w < rows; w++) f[t * W + w] = src[w * s_r + t * s_t];
    }
}

/* Ask for the cache lines of a tile that load_tile will read next (the time-contiguous
 * layout has 16 short streams per tensor, more than the hardware prefetcher follows). */
static void prefetch_tile(const float *src, int64_t s_r, int64_t s_t, int rows, int64_t Tn)
{
    if (s_t == 1) {
        for (int w = 0; w < rows; w++)
            for (int64_t t = 0; t < Tn; t += 16) __builtin_prefetch(src + w * s_r + t);
    } else if (s_r == 1) {
        for (int64_t t = 0; t < Tn; t++) __builtin_prefetch(src + t * s_t);
    }
}

/* The inverse of load_tile: buf[t][r] -> dst, rows < `rows` only. */
static void store_tile(float *restrict dst, const vf *restrict buf, int64_t s_r, int64_t s_t,
                       int rows, int64_t Tn)
{
    const float *f = (const float *)buf;
    int64_t t = 0;
    if (s_r == 1 && rows == W) {
        for (; t < Tn; t++) memcpy(dst + t * s_t, buf + t, sizeof(vf));
        return;
    }
    if (s_t == 1 && s_r != 1) {
        for (; t + W <= Tn; t += W) {
            vf r[W];
            memcpy(r, buf + t, sizeof r);
            transpose16(r);
            for (int w = 0; w < rows; w++) memcpy(dst + w * s_r + t, &r[w], sizeof(vf));
        }
        for (int w = 0; w < rows; w++)
            for (int64_t i = t; i < Tn; i++) dst[w * s_r + i] = f[i * W + w];
    } else {
        for (; t < Tn; t++)
            for (int w = 0; w < rows; w++) dst[w * s_r + t * s_t] = f[t * W + w];
    }
}

/* buf[t][n] = src[n * s_n + t * s_t] for a (N x Tn) tile of B or C. */
static void load_bc(float *restrict buf, const float *restrict src, int64_t s_n, int64_t s_t,
                    int N, int64_t Tn)
{
    if (N == W) { /* one vector per step: the tile routine, which also handles both layouts */
        load_tile((vf *)buf, src, s_n, s_t, W, Tn);
        return;
    }
    if (s_n == 1) {
        for (int64_t t = 0; t < Tn; t++) memcpy(buf + t * N, src + t * s_t, N * sizeof(float));
    } else if (s_t == 1) {
        for (int n = 0; n < N; n++)
            for (int64_t t = 0; t < Tn; t++) buf[t * N + n] = src[n * s_n + t];
    } else {
        for (int64_t t = 0; t < Tn; t++)
            for (int n = 0; n < N; n++) buf[t * N + n] = src[n * s_n + t * s_t];
    }
}

/* dst[n * s_n + t * s_t] (=, or += unless first) buf[t][n]: a block's channel sums of dB or
 * dC into its super-block's partial (laid out with n contiguous by cpu_scan.py). */
static void add_bc(float *restrict dst, int64_t s_n, int64_t s_t, const float *restrict buf,
                   int N, int64_t Tn, int first)
{
    if (s_n == 1 && N == W) {
        for (int64_t t = 0; t < Tn; t++) {
            vf v = loadu(buf + t * W);
            if (!first) v += loadu(dst + t * s_t);
            memcpy(dst + t * s_t, &v, sizeof v);
        }
        return;
    }
    for (int64_t t = 0; t < Tn; t++)
        for (int n = 0; n < N; n++) {
            float *p = dst + n * s_n + t * s_t;
            *p = first ? buf[t * N + n] : *p + buf[t * N + n];
        }
}

/* Per-lane (d, n) matrix (A or time-invariant B) as N vectors: out[n][w] = m[(d0+w)*sd + n*sn]. */
static void load_lanes_dn(vf *restrict out, const float *restrict m, int64_t sd, int64_t sn,
                          int64_t d0, int width, int N)
{
    for (int n = 0; n < N; n++) {
        vf v = splat(0.0f);
        for (int w = 0; w < width; w++) v[w] = m[(d0 + w) * sd + n * sn];
        out[n] = v;
    }
}

static vf load_lanes_d(const float *v, int64_t d0, int width)
{
    vf r = splat(0.0f);
    if (v)
        for (int w = 0; w < width; w++) r[w] = v[d0 + w];
    return r;
}

/* state (b, d, n) contiguous <-> h[n][w] */
static void load_state(vf *restrict h, const float *restrict s, int64_t d0, int width, int N)
{
    for (int n = 0; n < N; n++) {
        vf v = splat(0.0f);
        if (s)
            for (int w = 0; w < width; w++) v[w] = s[(d0 + w) * N + n];
        h[n] = v;
    }
}

static void store_state(float *restrict s, const vf *restrict h, int64_t d0, int width, int N)
{
    for (int n = 0; n < N; n++)
        for (int w = 0; w < width; w++) s[(d0 + w) * N + n] = h[n][w];
}

/* dt tile (after bias and softplus) and, when wanted, its pre-softplus argument. */
/* The tile of a (batch, dim, length) tensor with strides st that starts at (b, d0, t0):
 * loaded into buf[t][w], stored from it, or prefetched. */
static inline int64_t corner(const int64_t *st, int64_t b, int64_t d0, int64_t t0)
{
    return b * st[0] + d0 * st[1] + t0 * st[2];
}

static void load_bdt(vf *restrict buf, const float *p, const int64_t *st, int64_t b, int64_t d0,
                     int64_t t0, int width, int64_t Tn)
{
    load_tile(buf, p + corner(st, b, d0, t0), st[1], st[2], width, Tn);
}

static void store_bdt(float *p, const int64_t *st, const vf *restrict buf, int64_t b, int64_t d0,
                      int64_t t0, int width, int64_t Tn)
{
    store_tile(p + corner(st, b, d0, t0), buf, st[1], st[2], width, Tn);
}

static void prefetch_bdt(const float *p, const int64_t *st, int64_t b, int64_t d0, int64_t t0,
                         int width, int64_t Tn)
{
    prefetch_tile(p + corner(st, b, d0, t0), st[1], st[2], width, Tn);
}

static void load_dt(vf *restrict dtb, vf *restrict preb, const scan_args *a, int64_t b,
                    int64_t d0, int width, int64_t t0, int64_t Tn, vf bias)
{
    load_bdt(dtb, a->delta, a->sdelta, b, d0, t0, width, Tn);
    for (int64_t t = 0; t < Tn; t++) {
        vf pre = dtb[t] + bias;
        if (preb) preb[t] = pre;
        dtb[t] = a->softplus ? vsoftplus(pre) : pre;
    }
    if (width < W) /* padded lanes: dt = 0, so exp(dt A) = 1 and nothing moves */
        for (int64_t t = 0; t < Tn; t++)
            for (int w = width; w < W; w++) dtb[t][w] = 0.0f;
}

/* ----------------------------------------------------------------------- the recurrence */

/* h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t over one tile, for the NS states of h (offset
 * into the caller's arrays; rows of Bb, Cb, dAb, Hb are N long); yb[t] = <h_t, C_t> over these
 * states (added to yb when acc).  Ae is A * log2(e): exp(dt A) = 2^(dt Ae).  With keep, also
 * stores exp(dt A) and h_t per step (the backward's recompute). */
static inline __attribute__((always_inline)) void
scan_tile(const int NS, const int N, const int ti, const int keep, const int acc, int64_t Tn,
          const vf *restrict dtb, const vf *restrict ub, const float *restrict Bb,
          const float *restrict Cb, const vf *restrict Ae, const vf *restrict Bv,
          vf *restrict h, vf *restrict yb, vf *restrict dAb, vf *restrict Hb)
{
    for (int64_t t = 0; t < Tn; t++) {
        vf dt = dtb[t], x = dt * ub[t], y = acc ? yb[t] : splat(0.0f);
        const float *Bt = Bb + t * N, *Ct = Cb + t * N;
#pragma GCC unroll 16
        for (int n = 0; n < NS; n++) {
            vf dA = vexp2(dt * Ae[n]);
            vf hn = dA * h[n] + x * (ti ? Bv[n] : splat(Bt[n]));
            h[n] = hn;
            y += hn * Ct[n];
            if (keep) {
                dAb[t * N + n] = dA;
                Hb[t * N + n] = hn;
            }
        }
        yb[t] = y;
    }
}

/* State size 16 runs as two passes of 8 states over the tile: 8 states, their 8 A vectors
 * and the exp's constants fit the 32 vector registers of AVX-512, where 16 would spill to the
 * stack every step (measured: the forward at 38% of the register-only roofline with one pass
 * of 16).  Other sizes run in one pass with the state in L1. */
static void scan_tile_any(int N, int ti, int keep, int64_t Tn, const vf *dtb, const vf *ub,
                          const float *Bb, const float *Cb, const vf *Ae, const vf *Bv, vf *h,
                          vf *yb, vf *dAb, vf *Hb)
{
#define PASS(NS, NN, TI, KEEP, ACC, n0)                                                      \
    scan_tile(NS, NN, TI, KEEP, ACC, Tn, dtb, ub, Bb + (n0), Cb + (n0), Ae + (n0),          \
              (TI) ? Bv + (n0) : Bv, hp + (n0), yb, (KEEP) ? dAb + (n0) : dAb,              \
              (KEEP) ? Hb + (n0) : Hb)
    vf *hp = h;
    if (N == 16) {
        for (int half = 0; half < 2; half++) {
            vf hl[16];
            memcpy(hl + 8 * half, h + 8 * half, 8 * sizeof(vf));
            hp = hl;
            const int n0 = 8 * half;
            if (keep) {
                if (ti) { if (half) PASS(8, 16, 1, 1, 1, n0); else PASS(8, 16, 1, 1, 0, n0); }
                else { if (half) PASS(8, 16, 0, 1, 1, n0); else PASS(8, 16, 0, 1, 0, n0); }
            } else {
                if (ti) { if (half) PASS(8, 16, 1, 0, 1, n0); else PASS(8, 16, 1, 0, 0, n0); }
                else { if (half) PASS(8, 16, 0, 0, 1, n0); else PASS(8, 16, 0, 0, 0, n0); }
            }
            memcpy(h + 8 * half, hl + 8 * half, 8 * sizeof(vf));
        }
    } else if (keep) {
        if (ti) PASS(N, N, 1, 1, 0, 0);
        else PASS(N, N, 0, 1, 0, 0);
    } else {
        if (ti) PASS(N, N, 1, 0, 0, 0);
        else PASS(N, N, 0, 0, 0, 0);
    }
#undef PASS
}

/* Scratch layout shared by forward and backward (in vf units unless noted). */
typedef struct {
    vf *Av, *Ae, *Bv, *h, *hs, *lam, *dtb, *preb, *ub, *zb, *yb, *gb, *ob1, *ob2, *ob3, *dAb, *Hb;
    float *Bb, *Cb, *dBb, *dCb;
    double *acc; /* backward sums: dA (N*W), dBti (N*W), dD (W), dbias (W) */
} scratch_t;

static size_t scratch_layout(const scan_args *a, int backward, void *base, scratch_t *s)
{
    int64_t N = a->nstate, T = a->tile;
    char *p = (char *)base;
    size_t off = 0;
#define TAKE(field, type, count)                                                             \
    do {                                                                                     \
        if (s) s->field = (type *)(p + off);                                                 \
        off += ((size_t)(count) * sizeof(type) + 63) & ~(size_t)63;                          \
    } while (0)
    TAKE(Av, vf, N);
    TAKE(Ae, vf, N);
    TAKE(Bv, vf, N);
    TAKE(h, vf, N);
    TAKE(hs, vf, N);
    TAKE(lam, vf, N);
    TAKE(dtb, vf, T);
    TAKE(preb, vf, T);
    TAKE(ub, vf, T);
    TAKE(zb, vf, T);
    TAKE(yb, vf, T);
    TAKE(Bb, float, T * N);
    TAKE(Cb, float, T * N);
    if (backward) {
        TAKE(gb, vf, T);
        TAKE(ob1, vf, T);
        TAKE(ob2, vf, T);
        TAKE(ob3, vf, T);
        TAKE(dAb, vf, T * N);
        TAKE(Hb, vf, T * N);
        TAKE(dBb, float, T * N);
        TAKE(dCb, float, T * N);
        TAKE(acc, double, 2 * N * W + 2 * W);
    }
#undef TAKE
    return off;
}

/* ----------------------------------------------------------------------------- forward */

/* One channel block of one batch row, as the forward and the backward both see it. */
typedef struct {
    int64_t b, d0;
    int width;
    vf Dv, bias;                /* D and the dt bias per lane */
    const float *Bbase, *Cbase; /* this row's B and C groups (Bbase NULL when B is (d, n)) */
} block_t;

/* Set up block k of row b: its per-lane constants, and A, A log2(e) and a time-invariant B
 * as N vectors in the scratch. */
static block_t begin_block(const scan_args *a, int64_t b, int64_t k, scratch_t *s)
{
    const int64_t *blk = a->blocks + 4 * k;
    const int N = (int)a->nstate;
    block_t B = {b, blk[0], (int)blk[1], splat(0.0f), splat(0.0f), NULL, NULL};
    B.Dv = load_lanes_d(a->D, B.d0, B.width);
    B.bias = load_lanes_d(a->bias, B.d0, B.width);
    load_lanes_dn(s->Av, a->A, N, 1, B.d0, B.width, N);
    for (int n = 0; n < N; n++) s->Ae[n] = s->Av[n] * LOG2E;
    if (a->b_ti)
        load_lanes_dn(s->Bv, a->B, a->sB[0], a->sB[1], B.d0, B.width, N);
    else
        B.Bbase = a->B + b * a->sB[0] + blk[2] * a->sB[1];
    B.Cbase = a->C + b * a->sC[0] + blk[3] * a->sC[1];
    return B;
}

/* The tile [t0, t0 + Tn) of the scan's inputs into the scratch: dt (and its pre-softplus
 * argument when preb), u, and B, C. */
static void load_scan_inputs(const scan_args *a, const block_t *B, int64_t t0, int64_t Tn,
                             scratch_t *s, vf *preb)
{
    const int N = (int)a->nstate;
    load_dt(s->dtb, preb, a, B->b, B->d0, B->width, t0, Tn, B->bias);
    load_bdt(s->ub, a->u, a->su, B->b, B->d0, t0, B->width, Tn);
    if (!a->b_ti) load_bc(s->Bb, B->Bbase + t0 * a->sB[3], a->sB[2], a->sB[3], N, Tn);
    load_bc(s->Cb, B->Cbase + t0 * a->sC[3], a->sC[2], a->sC[3], N, Tn);
}

static void fwd_block(const scan_args *a, int64_t b, int64_t k, scratch_t *s)
{
    const block_t B = begin_block(a, b, k, s);
    const int64_t d0 = B.d0;
    const int width = B.width, N = (int)a->nstate, ti = (int)a->b_ti;
    const int64_t L = a->length, T = a->tile, nchunks = (L + T - 1) / T;
    const vf Dv = B.Dv;
    load_state(s->h, a->h0 ? a->h0 + b * a->dim * N : NULL, d0, width, N);
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t t0 = c * T, Tn = (L - t0 < T) ? L - t0 : T;
        if (a->saved) store_state(a->saved + (b * nchunks + c) * a->dim * N, s->h, d0, width, N);
        if (c + 1 < nchunks) { /* the next tile's inputs start arriving during this one */
            const int64_t t1 = t0 + T, Tn1 = (L - t1 < T) ? L - t1 : T;
            prefetch_bdt(a->u, a->su, b, d0, t1, width, Tn1);
            prefetch_bdt(a->delta, a->sdelta, b, d0, t1, width, Tn1);
            if (a->z) prefetch_bdt(a->z, a->sz, b, d0, t1, width, Tn1);
        }
        load_scan_inputs(a, &B, t0, Tn, s, NULL);
        scan_tile_any(N, ti, 0, Tn, s->dtb, s->ub, s->Bb, s->Cb, s->Ae, s->Bv, s->h, s->yb,
                      NULL, NULL);
        if (a->z) {
            load_bdt(s->zb, a->z, a->sz, b, d0, t0, width, Tn);
            for (int64_t t = 0; t < Tn; t++) {
                vf zz = s->zb[t];
                s->yb[t] = (s->yb[t] + Dv * s->ub[t]) * zz * vsigmoid(zz);
            }
        } else {
            for (int64_t t = 0; t < Tn; t++) s->yb[t] += Dv * s->ub[t];
        }
        store_bdt(a->out, a->sout, s->yb, b, d0, t0, width, Tn);
    }
    store_state(a->last + b * a->dim * N, s->h, d0, width, N);
}

static void fwd_item(const void *ctx, int64_t item, void *scratch)
{
    const scan_args *a = (const scan_args *)ctx;
    scratch_t s;
    scratch_layout(a, 0, scratch, &s);
    fwd_block(a, item / a->n_blocks, item % a->n_blocks, &s);
}

/* ---------------------------------------------------------------------------- backward */

/* The adjoint recurrence over one tile, reverse in time (tile buffers filled by the caller):
 *   lam_t = g_t C_t + exp(dt_{t+1} A) lam_{t+1}  (lam holds the carried term on entry/exit)
 *   dC_t = sum_d g_t h_t,  dB_t = sum_d lam_t dt_t u_t  (channel sums: one per state)
 *   d(dt_t A) = lam_t exp(dt_t A) h_{t-1}, with h_{t-1} read from the recomputed states
 *   (never h_t - dt B u, which cancels when the input dominates a decayed state). */
static inline __attribute__((always_inline)) void
bwd_tile(const int N, const int ti, const int softplus, const int has_D, int64_t Tn,
         const scratch_t *s, vf Dv, vf *restrict lam, vf *restrict dAt, vf *restrict dBt,
         vf *dDt, vf *dbt)
{
    vf PC[N], PB[N];
    for (int64_t t = Tn - 1; t >= 0; t--) {
        const vf g = s->gb[t], dt = s->dtb[t], uu = s->ub[t], x = dt * uu;
        const float *Bt = s->Bb + t * N, *Ct = s->Cb + t * N;
        const vf *Ht = s->Hb + t * N, *Hp = t ? s->Hb + (t - 1) * N : s->hs,
                 *dA = s->dAb + t * N;
        vf ddt = splat(0.0f), sB = splat(0.0f);
#pragma GCC unroll 16
        for (int n = 0; n < N; n++) {
            vf l = lam[n] + g * Ct[n];
            PC[n] = g * Ht[n];
            vf q = l * dA[n] * Hp[n];
            ddt += q * s->Av[n];
            dAt[n] += q * dt;
            if (ti) {
                sB += l * s->Bv[n];
                dBt[n] += l * x;
            } else {
                sB += l * Bt[n];
                PB[n] = l * x;
            }
            lam[n] = l * dA[n];
        }
        reduce_lanes(N, PC, s->dCb + t * N);
        if (!ti) reduce_lanes(N, PB, s->dBb + t * N);
        ddt += sB * uu;
        s->ob1[t] = (has_D ? g * Dv : splat(0.0f)) + sB * dt; /* du */
        if (softplus) ddt *= vsigmoid(s->preb[t]);
        *dbt += ddt;
        *dDt += g * uu;
        s->ob2[t] = ddt; /* ddelta */
    }
}

static void bwd_tile_any(int N, int ti, int softplus, int has_D, int64_t Tn, const scratch_t *s,
                         vf Dv, vf *lam, vf *dAt, vf *dBt, vf *dDt, vf *dbt)
{
#define BWD(NN, TI, SP) bwd_tile(NN, TI, SP, has_D, Tn, s, Dv, lam, dAt, dBt, dDt, dbt)
    if (N == 16) {
        vf l16[16], a16[16], b16[16];
        memcpy(l16, lam, sizeof l16);
        memcpy(a16, dAt, sizeof a16);
        memcpy(b16, dBt, sizeof b16);
        vf *sv[3] = {lam, dAt, dBt};
        lam = l16, dAt = a16, dBt = b16;
        if (ti) { if (softplus) BWD(16, 1, 1); else BWD(16, 1, 0); }
        else { if (softplus) BWD(16, 0, 1); else BWD(16, 0, 0); }
        memcpy(sv[0], l16, sizeof l16);
        memcpy(sv[1], a16, sizeof a16);
        memcpy(sv[2], b16, sizeof b16);
    } else {
        if (ti) { if (softplus) BWD(N, 1, 1); else BWD(N, 1, 0); }
        else { if (softplus) BWD(N, 0, 1); else BWD(N, 0, 0); }
    }
#undef BWD
}

/* One block's backward over the whole length, tiles in reverse.  first != 0: this block is
 * the first of its super-block and writes its dB/dC channel sums; later blocks add to them. */
static void bwd_block(const scan_args *a, int64_t b, int64_t k, int64_t sup, int first,
                      scratch_t *s)
{
    const block_t B = begin_block(a, b, k, s);
    const int64_t d0 = B.d0;
    const int width = B.width, N = (int)a->nstate, ti = (int)a->b_ti;
    const int64_t L = a->length, T = a->tile, nchunks = (L + T - 1) / T, Dm = a->dim;
    const vf Dv = B.Dv;
    const int has_D = a->D != NULL;
    load_state(s->lam, a->dlast ? a->dlast + b * Dm * N : NULL, d0, width, N);
    double *accA = s->acc, *accB = s->acc + N * W, *accD = s->acc + 2 * N * W,
           *accBias = accD + W;
    memset(s->acc, 0, (2 * N * W + 2 * W) * sizeof(double));
    vf *lam = s->lam;

    for (int64_t c = nchunks - 1; c >= 0; c--) {
        const int64_t t0 = c * T, Tn = (L - t0 < T) ? L - t0 : T;
        /* Recompute the tile's states from its saved start state. */
        load_state(s->hs, a->saved + (b * nchunks + c) * Dm * N, d0, width, N);
        memcpy(s->h, s->hs, N * sizeof(vf));
        load_scan_inputs(a, &B, t0, Tn, s, s->preb);
        scan_tile_any(N, ti, 1, Tn, s->dtb, s->ub, s->Bb, s->Cb, s->Ae, s->Bv, s->h, s->yb,
                      s->dAb, s->Hb);

        /* dL/dy through the gate: g = dout * silu(z); dz = dout * y * silu'(z). */
        load_bdt(s->gb, a->dout, a->sdout, b, d0, t0, width, Tn);
        if (a->z) {
            load_bdt(s->zb, a->z, a->sz, b, d0, t0, width, Tn);
            for (int64_t t = 0; t < Tn; t++) {
                vf zz = s->zb[t], sz = vsigmoid(zz), g = s->gb[t];
                vf y = s->yb[t] + Dv * s->ub[t];
                s->ob3[t] = g * y * sz * (1.0f + zz * (1.0f - sz));
                s->gb[t] = g * zz * sz;
            }
        }
        vf dDt = splat(0.0f), dbt = splat(0.0f);
        vf dAt[N], dBt[N];
        for (int n = 0; n < N; n++) dAt[n] = dBt[n] = splat(0.0f);
        bwd_tile_any(N, ti, a->softplus, has_D, Tn, s, Dv, lam, dAt, dBt, &dDt, &dbt);

        /* Per-tile float32 sums, carried across tiles in float64. */
        for (int n = 0; n < N; n++)
            for (int w = 0; w < W; w++) {
                accA[n * W + w] += dAt[n][w];
                accB[n * W + w] += dBt[n][w];
            }
        for (int w = 0; w < W; w++) {
            accD[w] += dDt[w];
            accBias[w] += dbt[w];
        }
        store_bdt(a->du, a->sdu, s->ob1, b, d0, t0, width, Tn);
        store_bdt(a->ddelta, a->sddelta, s->ob2, b, d0, t0, width, Tn);
        if (a->z) store_bdt(a->dz, a->sdz, s->ob3, b, d0, t0, width, Tn);
        add_bc(a->dCp + b * a->sdCp[0] + sup * a->sdCp[1] + t0 * a->sdCp[3], a->sdCp[2],
               a->sdCp[3], s->dCb, N, Tn, first);
        if (!ti)
            add_bc(a->dBp + b * a->sdBp[0] + sup * a->sdBp[1] + t0 * a->sdBp[3], a->sdBp[2],
                   a->sdBp[3], s->dBb, N, Tn, first);
    }
    /* lam now holds exp(dt_0 A) lam_0 = dL/dh_{-1}. */
    if (a->dh0) store_state(a->dh0 + b * Dm * N, lam, d0, width, N);
    for (int w = 0; w < width; w++) {
        const int64_t d = d0 + w;
        for (int n = 0; n < N; n++) {
            a->dA[(b * Dm + d) * N + n] = (float)accA[n * W + w];
            if (ti) a->dBti[(b * Dm + d) * N + n] = (float)accB[n * W + w];
        }
        if (a->dD) a->dD[b * Dm + d] = (float)accD[w];
        if (a->dbias) a->dbias[b * Dm + d] = (float)accBias[w];
    }
}

static void bwd_item(const void *ctx, int64_t item, void *scratch)
{
    const scan_args *a = (const scan_args *)ctx;
    scratch_t s;
    scratch_layout(a, 1, scratch, &s);
    const int64_t b = item / a->n_supers, sup = item % a->n_supers;
    const int64_t first = a->supers[2 * sup], count = a->supers[2 * sup + 1];
    for (int64_t k = 0; k < count; k++) bwd_block(a, b, first + k, sup, k == 0, &s);
}

/* --------------------------------------------------------------------- one-step update */

/* One recurrent step for every (batch, channel): state (b, d, n) contiguous, updated in
 * place; x, dt, z, out (b, d) contiguous; B, C (b, g, n) contiguous with block groups. */
typedef struct {
    int64_t batch, dim, nstate, softplus, nthreads, n_blocks;
    const int64_t *blocks;
    float *state;
    const float *x, *dt, *A, *B, *C, *D, *z, *bias;
    int64_t b_groups, c_groups;
    float *out;
} step_args;

static void step_item(const void *ctx, int64_t item, void *scratch)
{
    const step_args *a = (const step_args *)ctx;
    const int64_t b = item / a->n_blocks, *blk = a->blocks + 4 * (item % a->n_blocks);
    const int64_t d0 = blk[0], gb = blk[2], gc = blk[3], Dm = a->dim;
    const int width = (int)blk[1], N = (int)a->nstate;
    vf *Ae = (vf *)scratch, *h = Ae + N;
    load_lanes_dn(Ae, a->A, N, 1, d0, width, N);
    for (int n = 0; n < N; n++) Ae[n] *= LOG2E; /* as the scan: exp(dt A) = 2^(dt A log2 e) */
    float *st = a->state + b * Dm * N;
    load_state(h, st, d0, width, N);
    vf dt = load_lanes_d(a->dt + b * Dm, d0, width) + load_lanes_d(a->bias, d0, width);
    if (a->softplus) dt = vsoftplus(dt);
    const vf u = load_lanes_d(a->x + b * Dm, d0, width), x = dt * u;
    const float *Bg = a->B + (b * a->b_groups + gb) * N, *Cg = a->C + (b * a->c_groups + gc) * N;
    vf y = splat(0.0f);
    for (int n = 0; n < N; n++) {
        h[n] = vexp2(dt * Ae[n]) * h[n] + x * Bg[n];
        y += h[n] * Cg[n];
    }
    store_state(st, h, d0, width, N);
    y += load_lanes_d(a->D, d0, width) * u;
    if (a->z) {
        vf zz = load_lanes_d(a->z + b * Dm, d0, width);
        y = y * zz * vsigmoid(zz);
    }
    for (int w = 0; w < width; w++) a->out[b * Dm + d0 + w] = y[w];
}

/* ------------------------------------------------------------------------ entry points */

int64_t seqmamba_cpu_abi(void) { return ABI_VERSION * 1000000 + abi_checked_size(); }

int64_t seqmamba_cpu_step_args_size(void) { return (int64_t)sizeof(step_args); }

/* Returns 0, or -1 when memory for the per-thread buffers could not be had. */
int seqmamba_cpu_scan_fwd(const scan_args *a)
{
    size_t bytes = scratch_layout(a, 0, NULL, NULL);
    return run_items(fwd_item, a, a->batch * a->n_blocks, (int)a->nthreads, bytes);
}

int seqmamba_cpu_scan_bwd(const scan_args *a)
{
    size_t bytes = scratch_layout(a, 1, NULL, NULL);
    return run_items(bwd_item, a, a->batch * a->n_supers, (int)a->nthreads, bytes);
}

int seqmamba_cpu_state_update(const step_args *a)
{
    size_t bytes = 2 * (size_t)a->nstate * sizeof(vf);
    return run_items(step_item, a, a->batch * a->n_blocks, (int)a->nthreads, bytes);
}

/* ------------------------------------------------------------- causal depthwise conv */

/* out[b, d, t] = act(bias[d] + sum_k w[d, k] x[b, d, t - (K-1) + k]), with x at negative times
 * read from state (b, d, K-1) (zeros when NULL); act is SiLU or the identity.  Mamba's short
 * convolution before the scan.  Items are (batch, 16-channel block, time chunk): no step
 * depends on another's output, so time is split too.  The K inputs in reach of a step are
 * kept as a sliding window of vectors. */
typedef struct {
    int64_t batch, dim, length, width, silu, nthreads, tchunk, n_blocks;
    const float *x, *weight, *bias, *state;
    int64_t sx[3];
    float *out;
    int64_t sout[3];
} conv_args;

static inline vf load_x(const conv_args *a, int64_t b, int64_t d0, int lanes, int64_t t)
{
    if (t < 0) { /* before the chunk: the carried state */
        vf v = splat(0.0f);
        if (a->state) {
            const int64_t K1 = a->width - 1;
            for (int w = 0; w < lanes; w++) v[w] = a->state[(b * a->dim + d0 + w) * K1 + K1 + t];
        }
        return v;
    }
    const float *p = a->x + corner(a->sx, b, d0, t);
    if (a->sx[1] == 1 && lanes == W) return loadu(p);
    vf v = splat(0.0f);
    for (int w = 0; w < lanes; w++) v[w] = p[w * a->sx[1]];
    return v;
}

static void conv_item(const void *ctx, int64_t item, void *scratch)
{
    const conv_args *a = (const conv_args *)ctx;
    (void)scratch;
    const int64_t nt = (a->length + a->tchunk - 1) / a->tchunk;
    const int64_t tc = item % nt, blk = (item / nt) % a->n_blocks, b = item / nt / a->n_blocks;
    const int64_t d0 = blk * W, t0 = tc * a->tchunk;
    const int64_t t1 = t0 + a->tchunk < a->length ? t0 + a->tchunk : a->length;
    const int lanes = a->dim - d0 < W ? (int)(a->dim - d0) : W;
    const int K = (int)a->width;
    vf wv[K], win[K];
    for (int k = 0; k < K; k++) {
        wv[k] = splat(0.0f);
        for (int w = 0; w < lanes; w++) wv[k][w] = a->weight[(d0 + w) * K + k];
    }
    const vf bias = load_lanes_d(a->bias, d0, lanes);
    for (int k = 0; k < K - 1; k++) win[k] = load_x(a, b, d0, lanes, t0 - (K - 1) + k);
    float *ob = a->out + corner(a->sout, b, d0, 0);
    for (int64_t t = t0; t < t1; t++) {
        win[K - 1] = load_x(a, b, d0, lanes, t);
        vf acc = bias;
        for (int k = 0; k < K; k++) acc += wv[k] * win[k];
        if (a->silu) acc = acc * vsigmoid(acc);
        float *o = ob + t * a->sout[2];
        if (a->sout[1] == 1 && lanes == W) {
            memcpy(o, &acc, sizeof acc);
        } else {
            for (int w = 0; w < lanes; w++) o[w * a->sout[1]] = acc[w];
        }
        for (int k = 0; k < K - 1; k++) win[k] = win[k + 1];
    }
}

int seqmamba_cpu_causal_conv1d(const conv_args *a)
{
    const int64_t nt = (a->length + a->tchunk - 1) / a->tchunk;
    return run_items(conv_item, a, a->batch * a->n_blocks * nt, (int)a->nthreads, 64);
}

int64_t seqmamba_cpu_conv_args_size(void) { return (int64_t)sizeof(conv_args); }

/* ---------------------------------------------------------------- roofline measurement */

/* The forward's arithmetic with every operand in registers and no memory traffic: per
 * state update one exp(dt A), two FMAs for h and one for <h, C>.  Each item runs `steps`
 * time steps of one 16-channel block with 16 states; the result is folded into sink so
 * that nothing is optimised away.  benchmarks/cpu_scan.py reports the kernel's
 * state-updates per second as a fraction of this loop's. */
typedef struct {
    int64_t steps;
    float sink[256 * W];
} roof_args;

static void roof_item(const void *ctx, int64_t item, void *scratch)
{
    roof_args *a = (roof_args *)ctx;
    (void)scratch;
    vf h[16], Ae[16];
    for (int n = 0; n < 16; n++) {
        h[n] = splat(0.0f);
        Ae[n] = splat(-0.1f * (n + 1) * LOG2E);
    }
    vf dt = splat(0.01f), x = splat(0.5f), y = splat(0.0f);
    for (int64_t t = 0; t < a->steps; t++) {
#pragma GCC unroll 16
        for (int n = 0; n < 16; n++) {
            h[n] = vexp2(dt * Ae[n]) * h[n] + x * 0.25f;
            y += h[n] * 0.125f;
        }
        dt = dt + 1e-7f; /* varies the input without chaining the steps through y */
    }
    a->sink[(item % 256) * W] = hsum(y);
}

double seqmamba_cpu_roofline(int64_t items, int64_t steps, int nthreads)
{
    roof_args a;
    a.steps = steps;
    run_items(roof_item, &a, items, nthreads, 64);
    return (double)a.sink[0];
}
