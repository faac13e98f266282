/*
 * Float convolution kernels (see conv_kern.h for the contracts and conv.c for the design note).
 *
 * SIMD: the hot loops (depthwise rows, the bias + activation pass) have an AVX2 variant chosen at
 * run time with __builtin_cpu_supports("avx2"); the build's baseline (x86-64: SSE2) runs the
 * portable variant. Both do the same float operations in the same order per element (multiply,
 * then add; no FMA, which would round once instead of twice), so the choice never changes a
 * result. Non-x86 builds compile the portable variants only.
 */
#include "conv_kern.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define VG_CONV_X86 1
#include <immintrin.h>
#else
#define VG_CONV_X86 0
#endif

#define VG_TARGET_AVX2 __attribute__((target("avx2")))

static int use_avx2(void)
{
#if VG_CONV_X86
    /* sessions on several threads may ask first at once: every one computes the same answer */
    static int v = -1;
    int r = __atomic_load_n(&v, __ATOMIC_RELAXED);
    if (r < 0) {
        __builtin_cpu_init();
        r = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&v, r, __ATOMIC_RELAXED);
    }
    return r;
#else
    return 0;
#endif
}

/* floor(a / b) and ceil(a / b) for b > 0 and any sign of a. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a > 0) ? q + 1 : q;
}

/* Positions p in [0, n) with p * s + off in [0, size): [*lo, *hi). */
static void valid_range(int64_t n, int64_t s, int64_t off, int64_t size, int64_t *lo, int64_t *hi)
{
    int64_t a = ceil_div(-off, s), b = floor_div(size - 1 - off, s) + 1;
    if (a < 0)
        a = 0;
    if (b > n)
        b = n;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

/* ---- activation ------------------------------------------------------------------------------ */

/*
 * exp for SiLU, the same operations in the scalar and the AVX2 form (so both give the same bits):
 * the argument is clamped to [-87, 88] (MAXPS/MINPS order, so NaN becomes -87: the caller
 * multiplies by x, which brings NaN back), n = round-to-nearest-even(x * log2(e)),
 * r = x - n * ln2 (in two parts), exp(r) by Cephes' degree-6 polynomial, times 2^n built in the
 * exponent bits. Relative error about 2 ulp, well inside what the Sigmoid operator's own
 * approximation differs by.
 */
#define EXP_LO -87.0f
#define EXP_HI 88.0f
#define EXP_LOG2E 1.44269504088896341f
#define EXP_C1 0.693359375f
#define EXP_C2 -2.12194440e-4f
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

static inline float silu1(float x)
{
    float t = -x;
    t = t > EXP_LO ? t : EXP_LO;
    t = t < EXP_HI ? t : EXP_HI;
    float n = rintf(t * EXP_LOG2E);
    float r = t - n * EXP_C1;
    r = r - n * EXP_C2;
    float p = EXP_P0;
    p = p * r + EXP_P1;
    p = p * r + EXP_P2;
    p = p * r + EXP_P3;
    p = p * r + EXP_P4;
    p = p * r + EXP_P5;
    p = p * (r * r) + r;
    p = p + 1.0f;
    union {
        uint32_t u;
        float f;
    } sc = {.u = (uint32_t)((int32_t)n + 127) << 23};
    float e = p * sc.f;
    return x / (1.0f + e);
}

static inline float act1(float v, const struct vg_conv_act *act)
{
    switch (act->kind) {
    case VG_CONV_ACT_RELU: return v < 0 ? 0.0f : v;
    case VG_CONV_ACT_CLIP:
        v = v < act->a ? act->a : v;
        return v > act->b ? act->b : v;
    case VG_CONV_ACT_LEAKY: return v < 0 ? act->a * v : v;
    case VG_CONV_ACT_HARDSWISH: {
        /* as the HardSwish operator (ops/activation.c): HardSigmoid with alpha 1/6, beta 0.5 */
        float h = v * (1.0f / 6.0f) + 0.5f;
        h = h < 0 ? 0.0f : h > 1 ? 1.0f : h;
        return v * h;
    }
    case VG_CONV_ACT_SILU: return silu1(v);
    default: return v;
    }
}

#if VG_CONV_X86
VG_TARGET_AVX2 static inline __m256 silu8(__m256 x)
{
    __m256 t = _mm256_sub_ps(_mm256_setzero_ps(), x);
    t = _mm256_max_ps(t, _mm256_set1_ps(EXP_LO));
    t = _mm256_min_ps(t, _mm256_set1_ps(EXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_sub_ps(t, _mm256_mul_ps(n, _mm256_set1_ps(EXP_C1)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(EXP_C2)));
    __m256 p = _mm256_set1_ps(EXP_P0);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P1));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P2));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P3));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P4));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P5));
    p = _mm256_add_ps(_mm256_mul_ps(p, _mm256_mul_ps(r, r)), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
                                     23);
    __m256 e = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* MAXPS/MINPS return the second operand when either is NaN or both are equal: with the value as
   the second operand they reproduce `v < lo ? lo : v` and `v > hi ? hi : v` exactly. */
VG_TARGET_AVX2 static inline __m256 act8(__m256 v, const struct vg_conv_act *act)
{
    switch (act->kind) {
    case VG_CONV_ACT_RELU: return _mm256_max_ps(_mm256_setzero_ps(), v);
    case VG_CONV_ACT_CLIP:
        v = _mm256_max_ps(_mm256_set1_ps(act->a), v);
        return _mm256_min_ps(_mm256_set1_ps(act->b), v);
    case VG_CONV_ACT_LEAKY: {
        __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
        return _mm256_blendv_ps(v, _mm256_mul_ps(_mm256_set1_ps(act->a), v), neg);
    }
    case VG_CONV_ACT_HARDSWISH: {
        __m256 h = _mm256_add_ps(_mm256_mul_ps(v, _mm256_set1_ps(1.0f / 6.0f)),
                                 _mm256_set1_ps(0.5f));
        h = _mm256_max_ps(_mm256_setzero_ps(), h);
        h = _mm256_min_ps(_mm256_set1_ps(1.0f), h);
        return _mm256_mul_ps(v, h);
    }
    case VG_CONV_ACT_SILU: return silu8(v);
    default: return v;
    }
}
#endif

/* ---- bias + activation pass ------------------------------------------------------------------ */

static void epilogue_c(float *y, int64_t ldy, int64_t rows, int64_t cols, const float *bias,
                       const struct vg_conv_act *act)
{
    for (int64_t m = 0; m < rows; m++) {
        float *r = y + m * ldy;
        float b = bias ? bias[m] : 0.0f;
        if (act->kind == VG_CONV_ACT_NONE) {
            if (bias)
                for (int64_t t = 0; t < cols; t++)
                    r[t] = r[t] + b;
            continue;
        }
        for (int64_t t = 0; t < cols; t++)
            r[t] = act1(bias ? r[t] + b : r[t], act);
    }
}

#if VG_CONV_X86
/* `kind` is a constant in each caller below, so act8's switch folds away in the loop. */
VG_TARGET_AVX2 static inline __attribute__((always_inline)) void
epilogue_avx2_k(float *y, int64_t ldy, int64_t rows, int64_t cols, const float *bias,
                const struct vg_conv_act *act, int kind)
{
    const struct vg_conv_act k = {kind, act->a, act->b};
    for (int64_t m = 0; m < rows; m++) {
        float *r = y + m * ldy;
        float b = bias ? bias[m] : 0.0f;
        __m256 bv = _mm256_set1_ps(b);
        int64_t t = 0;
        for (; t + 8 <= cols; t += 8) {
            __m256 v = _mm256_loadu_ps(r + t);
            if (bias)
                v = _mm256_add_ps(v, bv);
            _mm256_storeu_ps(r + t, act8(v, &k));
        }
        for (; t < cols; t++)
            r[t] = act1(bias ? r[t] + b : r[t], &k);
    }
}

VG_TARGET_AVX2 static void epilogue_avx2(float *y, int64_t ldy, int64_t rows, int64_t cols,
                                         const float *bias, const struct vg_conv_act *act)
{
    switch (act->kind) {
    case VG_CONV_ACT_RELU: epilogue_avx2_k(y, ldy, rows, cols, bias, act, VG_CONV_ACT_RELU); break;
    case VG_CONV_ACT_CLIP: epilogue_avx2_k(y, ldy, rows, cols, bias, act, VG_CONV_ACT_CLIP); break;
    case VG_CONV_ACT_LEAKY: epilogue_avx2_k(y, ldy, rows, cols, bias, act, VG_CONV_ACT_LEAKY); break;
    case VG_CONV_ACT_HARDSWISH:
        epilogue_avx2_k(y, ldy, rows, cols, bias, act, VG_CONV_ACT_HARDSWISH);
        break;
    case VG_CONV_ACT_SILU: epilogue_avx2_k(y, ldy, rows, cols, bias, act, VG_CONV_ACT_SILU); break;
    default: epilogue_avx2_k(y, ldy, rows, cols, bias, act, VG_CONV_ACT_NONE); break;
    }
}
#endif

void vg_conv_epilogue(float *y, int64_t ldy, int64_t rows, int64_t cols, const float *bias,
                      const struct vg_conv_act *act)
{
    if (!bias && act->kind == VG_CONV_ACT_NONE)
        return;
#if VG_CONV_X86
    if (use_avx2()) {
        epilogue_avx2(y, ldy, rows, cols, bias, act);
        return;
    }
#endif
    epilogue_c(y, ldy, rows, cols, bias, act);
}

/* ---- im2col ---------------------------------------------------------------------------------- */

/* dst[i] = src[2 i] for i < n: the stride-2 rows of the first layers (reads src[2 n - 1] too,
   which is inside the row whenever src[2 (n - 1)] is, except at the row's very end: the vector
   loop stops a vector early). */
#if VG_CONV_X86
VG_TARGET_AVX2 static void gather_even_avx2(float *dst, const float *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 9 <= n; i += 8) {
        __m256 a = _mm256_loadu_ps(src + 2 * i), b = _mm256_loadu_ps(src + 2 * i + 8);
        __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        _mm256_storeu_ps(dst + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev),
                                                                         _MM_SHUFFLE(3, 1, 2, 0))));
    }
    for (; i < n; i++)
        dst[i] = src[2 * i];
}
#endif

static void gather_even(float *dst, const float *src, int64_t n)
{
#if VG_CONV_X86
    if (use_avx2()) {
        gather_even_avx2(dst, src, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++)
        dst[i] = src[2 * i];
}

static void im2col_2d(const struct vg_conv_geom *g, const float *x, int64_t t0, int64_t tn,
                      float *col)
{
    const int64_t H = g->in[0], W = g->in[1], OW = g->out[1];
    const int64_t KH = g->kern[0], KW = g->kern[1], sh = g->str[0], sw = g->str[1];
    const int64_t dh = g->dil[0], dw = g->dil[1], pt = g->pad[0], pl = g->pad[1];
    float *dst = col;
    for (int64_t c = 0; c < g->c; c++) {
        const float *xc = x + c * H * W;
        for (int64_t ky = 0; ky < KH; ky++)
            for (int64_t kx = 0; kx < KW; kx++) {
                int64_t off = kx * dw - pl, lo, hi;
                valid_range(OW, sw, off, W, &lo, &hi);
                int64_t t = t0, end = t0 + tn;
                while (t < end) {
                    int64_t oy = t / OW, ox = t % OW;
                    int64_t n = OW - ox < end - t ? OW - ox : end - t;
                    int64_t iy = oy * sh - pt + ky * dh;
                    if (iy < 0 || iy >= H) {
                        memset(dst, 0, sizeof(float) * (size_t)n);
                    } else {
                        const float *row = xc + iy * W + off;
                        int64_t a = ox > lo ? ox : lo, b = ox + n < hi ? ox + n : hi;
                        if (a >= b) {
                            memset(dst, 0, sizeof(float) * (size_t)n);
                        } else {
                            float *d = dst - ox;
                            for (int64_t p = ox; p < a; p++)
                                d[p] = 0.0f;
                            if (sw == 1)
                                memcpy(d + a, row + a, sizeof(float) * (size_t)(b - a));
                            else if (sw == 2)
                                gather_even(d + a, row + 2 * a, b - a);
                            else
                                for (int64_t p = a; p < b; p++)
                                    d[p] = row[p * sw];
                            for (int64_t p = b; p < ox + n; p++)
                                d[p] = 0.0f;
                        }
                    }
                    dst += n;
                    t += n;
                }
            }
    }
}

/* Row-major position index -> coordinates. */
static void unravel(int64_t idx, int k, const int64_t *dims, int64_t *pos)
{
    for (int d = k - 1; d >= 0; d--) {
        pos[d] = idx % dims[d];
        idx /= dims[d];
    }
}

static void odometer(int k, const int64_t *dims, int64_t *pos)
{
    for (int d = k - 1; d >= 0; d--) {
        if (++pos[d] < dims[d])
            return;
        pos[d] = 0;
    }
}

static void im2col_nd(const struct vg_conv_geom *g, const float *x, int64_t t0, int64_t tn,
                      float *col)
{
    int k = g->k;
    for (int64_t r = 0; r < g->c * g->kern_size; r++) {
        const float *xc = x + (r / g->kern_size) * g->in_size;
        int64_t kp[VG_CONV_MAX_SP], op[VG_CONV_MAX_SP];
        unravel(r % g->kern_size, k, g->kern, kp);
        unravel(t0, k, g->out, op);
        float *dst = col + r * tn;
        for (int64_t t = 0; t < tn; t++) {
            int64_t idx = 0;
            int ok = 1;
            for (int d = 0; d < k; d++) {
                int64_t i = op[d] * g->str[d] - g->pad[d] + kp[d] * g->dil[d];
                ok &= i >= 0 && i < g->in[d];
                idx = idx * g->in[d] + i;
            }
            dst[t] = ok ? xc[idx] : 0.0f;
            odometer(k, g->out, op);
        }
    }
}

void vg_conv_im2col(const struct vg_conv_geom *g, const float *x, int64_t t0, int64_t tn,
                    float *col)
{
    if (g->k == 2)
        im2col_2d(g, x, t0, tn, col);
    else
        im2col_nd(g, x, t0, tn, col);
}

/* ---- col2im (ConvTranspose) ------------------------------------------------------------------ */

static void col2im_2d(const struct vg_conv_geom *g, const float *col, int64_t t0, int64_t tn,
                      float *y)
{
    const int64_t IW = g->in[1], OH = g->out[0], OW = g->out[1];
    const int64_t KH = g->kern[0], KW = g->kern[1], sh = g->str[0], sw = g->str[1];
    const int64_t dh = g->dil[0], dw = g->dil[1], pt = g->pad[0], pl = g->pad[1];
    const float *src = col;
    for (int64_t m = 0; m < g->c; m++) {
        float *ym = y + m * OH * OW;
        for (int64_t ky = 0; ky < KH; ky++)
            for (int64_t kx = 0; kx < KW; kx++) {
                int64_t off = kx * dw - pl, lo, hi;
                valid_range(IW, sw, off, OW, &lo, &hi);
                int64_t t = t0, end = t0 + tn;
                while (t < end) {
                    int64_t iy = t / IW, ix = t % IW;
                    int64_t n = IW - ix < end - t ? IW - ix : end - t;
                    int64_t oy = iy * sh - pt + ky * dh;
                    if (oy >= 0 && oy < OH) {
                        float *row = ym + oy * OW + off;
                        const float *s = src - ix;
                        int64_t a = ix > lo ? ix : lo, b = ix + n < hi ? ix + n : hi;
                        for (int64_t p = a; p < b; p++)
                            row[p * sw] += s[p];
                    }
                    src += n;
                    t += n;
                }
            }
    }
}

static void col2im_nd(const struct vg_conv_geom *g, const float *col, int64_t t0, int64_t tn,
                      float *y)
{
    int k = g->k;
    for (int64_t r = 0; r < g->c * g->kern_size; r++) {
        float *ym = y + (r / g->kern_size) * g->out_size;
        int64_t kp[VG_CONV_MAX_SP], ip[VG_CONV_MAX_SP];
        unravel(r % g->kern_size, k, g->kern, kp);
        unravel(t0, k, g->in, ip);
        const float *src = col + r * tn;
        for (int64_t t = 0; t < tn; t++) {
            int64_t idx = 0;
            int ok = 1;
            for (int d = 0; d < k; d++) {
                int64_t o = ip[d] * g->str[d] - g->pad[d] + kp[d] * g->dil[d];
                ok &= o >= 0 && o < g->out[d];
                idx = idx * g->out[d] + o;
            }
            if (ok)
                ym[idx] += src[t];
            odometer(k, g->in, ip);
        }
    }
}

void vg_conv_col2im(const struct vg_conv_geom *g, const float *col, int64_t t0, int64_t tn,
                    float *y)
{
    if (g->k == 2)
        col2im_2d(g, col, t0, tn, y);
    else
        col2im_nd(g, col, t0, tn, y);
}

/* ---- depthwise ------------------------------------------------------------------------------- */

/*
 * The channel is first copied into a zero-padded plane covering exactly the rows and columns the
 * windows read, so the inner loops have no bounds checks. For stride 2 without column dilation
 * each padded row is stored deinterleaved (even columns, then odd columns): the 8 inputs that one
 * kernel column contributes to 8 neighbouring outputs are then contiguous.
 */
#define DW_SLACK 16 /* zeroed floats after the plane: a tail vector reads at most 7 past its end */

struct dw_plane {
    int64_t ph, pw;   /* padded plane rows and columns */
    int64_t pwe;      /* deinterleaved: even columns per row (odd ones follow) */
    int split;        /* deinterleaved layout */
};

static void dw_plane_dims(const struct vg_conv_geom *g, struct dw_plane *p)
{
    p->ph = (g->out[0] - 1) * g->str[0] + (g->kern[0] - 1) * g->dil[0] + 1;
    p->pw = (g->out[1] - 1) * g->str[1] + (g->kern[1] - 1) * g->dil[1] + 1;
    p->split = g->str[1] == 2 && g->dil[1] == 1;
    p->pwe = (p->pw + 1) / 2;
    if (p->split)
        p->pw = 2 * p->pwe;
}

size_t vg_conv_dw_scratch(const struct vg_conv_geom *g)
{
    struct dw_plane p;
    dw_plane_dims(g, &p);
    return (size_t)(p.ph * p.pw) + DW_SLACK;
}

static void deinterleave(float *dst, float *dst2, const float *src, int64_t n);

static void dw_fill(const struct vg_conv_geom *g, const struct dw_plane *p, const float *x,
                    float *buf)
{
    const int64_t H = g->in[0], W = g->in[1], pt = g->pad[0], pl = g->pad[1];
    for (int i = 0; i < DW_SLACK; i++) /* read by the tail vectors */
        buf[p->ph * p->pw + i] = 0.0f;
    for (int64_t py = 0; py < p->ph; py++) {
        float *d = buf + py * p->pw;
        int64_t iy = py - pt;
        if (iy < 0 || iy >= H) {
            memset(d, 0, sizeof(float) * (size_t)p->pw);
            continue;
        }
        const float *row = x + iy * W;
        if (p->split) {
            /* padded column px = 2j (+1 for the odd half) is x's column px - pl; in
               [j_lo, j_hi) both are inside x, so that part needs no checks */
            float *o = d + p->pwe;
            int64_t n = p->pwe, j_lo = (pl + 1) / 2;
            int64_t j_hi = W - 2 + pl >= 0 ? (W - 2 + pl) / 2 + 1 : 0;
            if (j_lo > n)
                j_lo = n;
            if (j_hi > n)
                j_hi = n;
            if (j_hi < j_lo)
                j_hi = j_lo;
            for (int64_t j = 0; j < n; j++) {
                if (j == j_lo) {
                    deinterleave(d + j_lo, o + j_lo, row + 2 * j_lo - pl, j_hi - j_lo);
                    j = j_hi;
                    if (j >= n)
                        break;
                }
                int64_t ie = 2 * j - pl, io = ie + 1;
                d[j] = ie >= 0 && ie < W ? row[ie] : 0.0f;
                o[j] = io >= 0 && io < W ? row[io] : 0.0f;
            }
            continue;
        }
        int64_t a = pl < p->pw ? pl : p->pw;              /* first column inside x */
        int64_t b = W + pl < p->pw ? W + pl : p->pw;      /* end of x's columns */
        if (a < 0)
            a = 0;
        for (int64_t px = 0; px < a; px++)
            d[px] = 0.0f;
        if (b > a)
            memcpy(d + a, row + (a - pl), sizeof(float) * (size_t)(b - a));
        for (int64_t px = b > a ? b : a; px < p->pw; px++)
            d[px] = 0.0f;
    }
}

/* Plain loops: any stride and dilation; the reference order for every other variant. */
static void dw_rows_c(const struct vg_conv_geom *g, const struct dw_plane *p, const float *buf,
                      const float *w, float bias, const struct vg_conv_act *act, float *y)
{
    const int64_t OH = g->out[0], OW = g->out[1], KH = g->kern[0], KW = g->kern[1];
    const int64_t sh = g->str[0], sw = g->str[1], dh = g->dil[0], dw = g->dil[1];
    for (int64_t oy = 0; oy < OH; oy++)
        for (int64_t ox = 0; ox < OW; ox++) {
            float acc = bias;
            for (int64_t ky = 0; ky < KH; ky++) {
                const float *r = buf + (oy * sh + ky * dh) * p->pw;
                for (int64_t kx = 0; kx < KW; kx++) {
                    int64_t px = ox * sw + kx * dw;
                    float v = p->split ? r[(px & 1) * p->pwe + (px >> 1)] : r[px];
                    acc = acc + w[ky * KW + kx] * v;
                }
            }
            y[oy * OW + ox] = act1(acc, act);
        }
}

#if VG_CONV_X86
#define DW_MAX_TAPS 64

/*
 * Vectors of 8 neighbouring outputs of one row ("jobs"): first every full vector of every row,
 * then each row's last 1..7 columns. Jobs run four at a time, whatever their rows, so four independent sums hide the add
 * latency even on 7- or 14-wide maps; each output's own sum still runs bias, tap 0, tap 1, ...
 * exactly like the portable loop. `KH`/`KW` are compile-time constants in the specialised
 * callers (3x3, 5x5), so the tap loops unroll. off[t] is tap t's offset in the padded plane.
 */
VG_TARGET_AVX2 static inline __attribute__((always_inline)) void
dw_jobs_avx2(const float *const *src, float *const *dst, int nj, const int64_t *off,
             const float *w, __m256 bv, const struct vg_conv_act *act, int64_t KH, int64_t KW)
{
    if (nj == 4) {
        __m256 a0 = bv, a1 = bv, a2 = bv, a3 = bv;
        const float *s0 = src[0], *s1 = src[1], *s2 = src[2], *s3 = src[3];
#pragma GCC unroll 25
        for (int64_t t = 0; t < KH * KW; t++) {
            __m256 wv = _mm256_set1_ps(w[t]);
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(wv, _mm256_loadu_ps(s0 + off[t])));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(wv, _mm256_loadu_ps(s1 + off[t])));
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(wv, _mm256_loadu_ps(s2 + off[t])));
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(wv, _mm256_loadu_ps(s3 + off[t])));
        }
        _mm256_storeu_ps(dst[0], act8(a0, act));
        _mm256_storeu_ps(dst[1], act8(a1, act));
        _mm256_storeu_ps(dst[2], act8(a2, act));
        _mm256_storeu_ps(dst[3], act8(a3, act));
        return;
    }
    for (int j = 0; j < nj; j++) {
        __m256 acc = bv;
#pragma GCC unroll 25
        for (int64_t t = 0; t < KH * KW; t++)
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(w[t]),
                                                   _mm256_loadu_ps(src[j] + off[t])));
        _mm256_storeu_ps(dst[j], act8(acc, act));
    }
}

VG_TARGET_AVX2 static inline __attribute__((always_inline)) void
dw_rows_avx2_k(const struct vg_conv_geom *g, const struct dw_plane *p, const float *buf,
               const float *w, float bias, const struct vg_conv_act *act, float *y, int64_t KH,
               int64_t KW)
{
    const int64_t OH = g->out[0], OW = g->out[1], sh = g->str[0], dh = g->dil[0];
    const int64_t dw = g->dil[1], pw = p->pw, pwe = p->pwe;
    const __m256 bv = _mm256_set1_ps(bias);
    int64_t off[DW_MAX_TAPS];
    for (int64_t ky = 0; ky < KH; ky++)
        for (int64_t kx = 0; kx < KW; kx++)
            off[ky * KW + kx] = ky * dh * pw +
                                (p->split ? (kx & 1) * pwe + (kx >> 1) : kx * dw);
    const float *src[4];
    float *dst[4];
    int nj = 0;
    int64_t nfull = OW / 8, tail = OW % 8;
    for (int64_t oy = 0; oy < OH; oy++) {
        const float *row = buf + oy * sh * pw;
        float *yr = y + oy * OW;
        for (int64_t ox = 0; ox < nfull * 8; ox += 8) {
            src[nj] = row + ox;
            dst[nj] = yr + ox;
            if (++nj == 4) {
                dw_jobs_avx2(src, dst, 4, off, w, bv, act, KH, KW);
                nj = 0;
            }
        }
    }
    if (nj)
        dw_jobs_avx2(src, dst, nj, off, w, bv, act, KH, KW);
    if (!tail)
        return;
    /* The last 1..7 columns: computed into a small buffer (the loads may run past the row into
       the next one or the plane's zeroed slack; those lanes are dropped) and copied out, which
       avoids masked stores (slow on some x86 cores). */
    float tmp[4][8];
    nj = 0;
    for (int64_t oy = 0; oy < OH; oy++) {
        src[nj] = buf + oy * sh * pw + nfull * 8;
        dst[nj] = tmp[nj];
        if (++nj == 4 || oy == OH - 1) {
            dw_jobs_avx2(src, dst, nj, off, w, bv, act, KH, KW);
            for (int j = 0; j < nj; j++) {
                float *d = y + (oy - (nj - 1) + j) * OW + nfull * 8;
                for (int64_t i = 0; i < tail; i++)
                    d[i] = tmp[j][i];
            }
            nj = 0;
        }
    }
}

/* dst[i] = src[2 i], dst2[i] = src[2 i + 1] for i < n (the stride-2 plane's halves). */
VG_TARGET_AVX2 static void deinterleave_avx2(float *dst, float *dst2, const float *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_loadu_ps(src + 2 * i), b = _mm256_loadu_ps(src + 2 * i + 8);
        __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        __m256 od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        _mm256_storeu_ps(dst + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev),
                                                                         _MM_SHUFFLE(3, 1, 2, 0))));
        _mm256_storeu_ps(dst2 + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od),
                                                                          _MM_SHUFFLE(3, 1, 2, 0))));
    }
    for (; i < n; i++) {
        dst[i] = src[2 * i];
        dst2[i] = src[2 * i + 1];
    }
}
#endif

static void deinterleave(float *dst, float *dst2, const float *src, int64_t n)
{
#if VG_CONV_X86
    if (use_avx2()) {
        deinterleave_avx2(dst, dst2, src, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) {
        dst[i] = src[2 * i];
        dst2[i] = src[2 * i + 1];
    }
}

#if VG_CONV_X86
VG_TARGET_AVX2 static void dw_rows_avx2_3x3(const struct vg_conv_geom *g,
                                            const struct dw_plane *p, const float *buf,
                                            const float *w, float bias,
                                            const struct vg_conv_act *act, float *y)
{
    dw_rows_avx2_k(g, p, buf, w, bias, act, y, 3, 3);
}

VG_TARGET_AVX2 static void dw_rows_avx2_5x5(const struct vg_conv_geom *g,
                                            const struct dw_plane *p, const float *buf,
                                            const float *w, float bias,
                                            const struct vg_conv_act *act, float *y)
{
    dw_rows_avx2_k(g, p, buf, w, bias, act, y, 5, 5);
}

VG_TARGET_AVX2 static void dw_rows_avx2_any(const struct vg_conv_geom *g,
                                            const struct dw_plane *p, const float *buf,
                                            const float *w, float bias,
                                            const struct vg_conv_act *act, float *y)
{
    dw_rows_avx2_k(g, p, buf, w, bias, act, y, g->kern[0], g->kern[1]);
}
#endif

void vg_conv_depthwise(const struct vg_conv_geom *g, const float *x, const float *w, float bias,
                       const struct vg_conv_act *act, float *pad_buf, float *y)
{
    struct dw_plane p;
    dw_plane_dims(g, &p);
    dw_fill(g, &p, x, pad_buf);
#if VG_CONV_X86
    /* vectorised along the row when 8 neighbouring outputs read contiguous inputs */
    if (use_avx2() && (g->str[1] == 1 || p.split) && g->kern[0] * g->kern[1] <= DW_MAX_TAPS) {
        if (g->kern[0] == 3 && g->kern[1] == 3)
            dw_rows_avx2_3x3(g, &p, pad_buf, w, bias, act, y);
        else if (g->kern[0] == 5 && g->kern[1] == 5)
            dw_rows_avx2_5x5(g, &p, pad_buf, w, bias, act, y);
        else
            dw_rows_avx2_any(g, &p, pad_buf, w, bias, act, y);
        return;
    }
#endif
    dw_rows_c(g, &p, pad_buf, w, bias, act, y);
}
