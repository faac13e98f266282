/*
 * Exact 8-bit integer GEMM for the int8 operators (QLinearConv, ConvInteger, QLinearMatMul,
 * MatMulInteger; see qgemm.h for the interface).
 *
 * Design note
 *  - Exactness. C[m][n] = bias[m] + sum_k (A[m][k] - za[m]) * (B[k][n] - zb[n]) is computed
 *    exactly in 32-bit (two's-complement wrapping, as ONNX's int32 accumulator): no intermediate
 *    sum is ever saturated. The zero points are not subtracted inside the loop; the kernels
 *    compute the raw sum S = sum_k a*b of the packed values and the output stage corrects it:
 *        C = S - za*colsum(B) - zb*rowsum(A) + K*za*zb + bias
 *    where the sums come with the packs (the weights' ones are computed once at load).
 *  - Domains. Every path works on A as int8 and B as uint8, the operand types of vpdpbusd
 *    (u8 x s8 -> s32, and the non-saturating form: exact). A uint8 A is moved into int8 by
 *    a - 128 (its zero point too), an int8 B into uint8 by b + 128 (a flip of the top bit): the
 *    products change but the corrected result is the same number. Padding (K to a multiple of 4,
 *    M to MR, N to NR) is 0 in both, which adds nothing to S.
 *  - Paths, chosen at run time with __builtin_cpu_supports (the baseline build is plain x86-64):
 *      AVX512-VNNI: vpdpbusd on zmm, 8 x 32 tile (16 accumulators);
 *      AVX-VNNI:    the VEX vpdpbusd on ymm, 6 x 16 tile;
 *      AVX2:        A widened to int16 at pack time, B widened in the kernel, vpmaddwd (int16
 *                   pairs summed into int32: exact), 4 x 8 tile;
 *      portable C:  the same packs, 4 x 8 tile.
 *    We do NOT use vpmaddubsw: it saturates the sum of two u8 x s8 products to int16 (255*127*2
 *    exceeds 32767), which ONNX Runtime's x86 u8s8 AVX2 kernel accepts. Our results are the
 *    exact ones; ONNX Runtime's can therefore differ from ours by more than rounding in the rare
 *    cases where its pairs saturated (activations near 255 against weights near +-127).
 *  - Requantization is integer: y = saturate(round_half_even(C * mult / 2^shift) + y_zp) with
 *    mult in [2^30, 2^31) and shift derived at load from the real multiplier
 *    M = x_scale * w_scale / y_scale (double, from the float32 scales). mult / 2^shift equals M
 *    within a relative 2^-31, so the result equals the exact formula round_half_even(C * M)
 *    unless C * M lies within |C * M| * 2^-31 of a .5 tie (the product C * mult is exact in 64
 *    bits and the final shift rounds half to even exactly). Multipliers >= 2^30 saturate any
 *    non-zero C anyway and are clamped; tiny ones below 2^-31 keep an absolute error <= 2^-32.
 *    The SIMD stage handles shift 32..62 (M < 0.5, every practical case); others go scalar.
 *  - Blocking: N in chunks whose packed B fits in about 256 KiB (L2), then MR rows of A (one
 *    panel, in L1) against every NR-column panel of the chunk; the output stage runs on each
 *    tile while it is hot. On the AVX-512 path, the convolution case (u8/s8 output, one
 *    multiplier per row or per tensor, one B zero point) applies the correction and the
 *    requantization to the accumulators in registers and stores bytes (masked for a partial
 *    panel): storing and reloading the int32 tile cost as much as the products for small K.
 *    Its bytes are made with two saturating packs and a dword permute per 32 columns (cheaper
 *    than vpmov[u]sdb); a last panel of at most 16 columns skips the second half of the
 *    products; the vpdpbusd accumulations are written as asm (GCC 12 copied every accumulator
 *    at every step of the intrinsic form, and spilled). A full 32-column panel of B is packed
 *    with 256-bit transposes, including a last partial group of K rows.
 */
#include "qgemm.h"

#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VG_X86 1
#else
#define VG_X86 0
#endif

#define MAX_MR 8
#define MAX_NR 32

typedef void (*kern_fn)(int k4, const void *ap, const uint8_t *bp, int32_t *tile, int mr);

struct path_info {
    int mr, nr;
    int a16; /* A packed as int16 */
    kern_fn kern;
    const char *name;
};

/* ---- Kernels --------------------------------------------------------------------------------- */

static void kern_c(int k4, const void *ap_, const uint8_t *bp, int32_t *tile, int mr)
{
    const int8_t *ap = ap_;
    uint32_t acc[4][8]; /* wraps like the int32 accumulator of the SIMD paths */
    memset(acc, 0, sizeof(acc));
    for (int p = 0; p < k4; p++) {
        for (int r = 0; r < mr; r++) {
            const int8_t *a = ap + 4 * r;
            for (int c = 0; c < 8; c++) {
                const uint8_t *b = bp + 4 * c;
                acc[r][c] += (uint32_t)(a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]);
            }
        }
        ap += 16;
        bp += 32;
    }
    for (int r = 0; r < mr; r++)
        memcpy(tile + r * 8, acc[r], sizeof(acc[r]));
}

#if VG_X86
static inline int32_t load_i32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline int64_t load_i64(const void *p)
{
    int64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

#define AVX2_T __attribute__((target("avx2")))
#define VNNI256_T __attribute__((target("avx2,avxvnni")))
#define VNNI512_T __attribute__((target("avx2,avx512f,avx512bw,avx512vnni")))

/* acc += u8 x s8 dot products (vpdpbusd). GCC 12 compiles the intrinsic in the unrolled 8 x 32
 * loop with a register copy per accumulator per step and spills (twice the instructions of the
 * products); the asm form keeps each accumulator in place. Same instruction, same results. */
#define DPBUSD512(acc, u8v, s8v) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8v), "v"(s8v))

static inline __attribute__((always_inline)) AVX2_T void
kern_avx2_body(int k4, const int16_t *ap, const uint8_t *bp, int32_t *tile, const int mr)
{
    __m256i c0[4], c1[4];
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        c0[r] = c1[r] = _mm256_setzero_si256();
    for (int p = 0; p < k4; p++) {
        __m256i b = _mm256_loadu_si256((const __m256i *)bp);
        __m256i blo = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(b));
        __m256i bhi = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(b, 1));
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++) {
            __m256i a = _mm256_set1_epi64x(load_i64(ap + 4 * r));
            c0[r] = _mm256_add_epi32(c0[r], _mm256_madd_epi16(blo, a));
            c1[r] = _mm256_add_epi32(c1[r], _mm256_madd_epi16(bhi, a));
        }
        ap += 16;
        bp += 32;
    }
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++) {
        /* c0 holds columns 0-3 as pairs of half sums, c1 columns 4-7. */
        __m256i s = _mm256_hadd_epi32(c0[r], c1[r]);
        s = _mm256_permute4x64_epi64(s, 0xD8);
        _mm256_storeu_si256((__m256i *)(tile + 8 * r), s);
    }
}

static AVX2_T void kern_avx2(int k4, const void *ap, const uint8_t *bp, int32_t *tile, int mr)
{
    switch (mr) {
    case 1: kern_avx2_body(k4, ap, bp, tile, 1); break;
    case 2: kern_avx2_body(k4, ap, bp, tile, 2); break;
    case 3: kern_avx2_body(k4, ap, bp, tile, 3); break;
    default: kern_avx2_body(k4, ap, bp, tile, 4); break;
    }
}

static inline __attribute__((always_inline)) VNNI256_T void
kern_vnni256_body(int k4, const int8_t *ap, const uint8_t *bp, int32_t *tile, const int mr)
{
    __m256i c0[6], c1[6];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
        c0[r] = c1[r] = _mm256_setzero_si256();
    for (int p = 0; p < k4; p++) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)bp);
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(bp + 32));
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            __m256i a = _mm256_set1_epi32(load_i32(ap + 4 * r));
            c0[r] = _mm256_dpbusd_avx_epi32(c0[r], b0, a);
            c1[r] = _mm256_dpbusd_avx_epi32(c1[r], b1, a);
        }
        ap += 24;
        bp += 64;
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
        _mm256_storeu_si256((__m256i *)(tile + 16 * r), c0[r]);
        _mm256_storeu_si256((__m256i *)(tile + 16 * r + 8), c1[r]);
    }
}

static VNNI256_T void kern_vnni256(int k4, const void *ap, const uint8_t *bp, int32_t *tile,
                                   int mr)
{
    switch (mr) {
    case 1: kern_vnni256_body(k4, ap, bp, tile, 1); break;
    case 2: kern_vnni256_body(k4, ap, bp, tile, 2); break;
    case 3: kern_vnni256_body(k4, ap, bp, tile, 3); break;
    case 4: kern_vnni256_body(k4, ap, bp, tile, 4); break;
    case 5: kern_vnni256_body(k4, ap, bp, tile, 5); break;
    default: kern_vnni256_body(k4, ap, bp, tile, 6); break;
    }
}

static inline __attribute__((always_inline)) VNNI512_T void
kern_vnni512_body(int k4, const int8_t *ap, const uint8_t *bp, int32_t *tile, const int mr)
{
    __m512i c0[8], c1[8];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
        c0[r] = c1[r] = _mm512_setzero_si512();
    for (int p = 0; p < k4; p++) {
        __m512i b0 = _mm512_loadu_si512((const void *)bp);
        __m512i b1 = _mm512_loadu_si512((const void *)(bp + 64));
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            __m512i a = _mm512_set1_epi32(load_i32(ap + 4 * r));
            DPBUSD512(c0[r], b0, a);
            DPBUSD512(c1[r], b1, a);
        }
        ap += 32;
        bp += 128;
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        _mm512_storeu_si512((void *)(tile + 32 * r), c0[r]);
        _mm512_storeu_si512((void *)(tile + 32 * r + 16), c1[r]);
    }
}

static VNNI512_T void kern_vnni512(int k4, const void *ap, const uint8_t *bp, int32_t *tile,
                                   int mr)
{
    switch (mr) {
    case 1: kern_vnni512_body(k4, ap, bp, tile, 1); break;
    case 2: kern_vnni512_body(k4, ap, bp, tile, 2); break;
    case 3: kern_vnni512_body(k4, ap, bp, tile, 3); break;
    case 4: kern_vnni512_body(k4, ap, bp, tile, 4); break;
    case 5: kern_vnni512_body(k4, ap, bp, tile, 5); break;
    case 6: kern_vnni512_body(k4, ap, bp, tile, 6); break;
    case 7: kern_vnni512_body(k4, ap, bp, tile, 7); break;
    default: kern_vnni512_body(k4, ap, bp, tile, 8); break;
    }
}
#endif

static const struct path_info paths[VG_QGEMM_NPATHS] = {
    [VG_QGEMM_PORTABLE] = {4, 8, 0, kern_c, "portable"},
#if VG_X86
    [VG_QGEMM_AVX2] = {4, 8, 1, kern_avx2, "avx2"},
    [VG_QGEMM_AVXVNNI] = {6, 16, 0, kern_vnni256, "avx-vnni"},
    [VG_QGEMM_AVX512] = {8, 32, 0, kern_vnni512, "avx512-vnni"},
#else
    [VG_QGEMM_AVX2] = {4, 8, 1, NULL, "avx2"},
    [VG_QGEMM_AVXVNNI] = {6, 16, 0, NULL, "avx-vnni"},
    [VG_QGEMM_AVX512] = {8, 32, 0, NULL, "avx512-vnni"},
#endif
};

/* ---- Path selection -------------------------------------------------------------------------- */

int vg_qgemm_path_supported(int path)
{
    switch (path) {
    case VG_QGEMM_PORTABLE: return 1;
#if VG_X86
    case VG_QGEMM_AVX2: return __builtin_cpu_supports("avx2");
    case VG_QGEMM_AVXVNNI:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avxvnni");
    case VG_QGEMM_AVX512:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
#endif
    default: return 0;
    }
}

static atomic_int forced_path = -1;

int vg_qgemm_path(void)
{
    int f = atomic_load_explicit(&forced_path, memory_order_relaxed);
    if (f >= 0)
        return f;
    static atomic_int best = -1; /* the CPU does not change: probe once */
    int b = atomic_load_explicit(&best, memory_order_relaxed);
    if (b < 0) {
        b = VG_QGEMM_PORTABLE;
        for (int p = VG_QGEMM_NPATHS - 1; p > 0 && b == VG_QGEMM_PORTABLE; p--)
            if (vg_qgemm_path_supported(p))
                b = p;
        atomic_store_explicit(&best, b, memory_order_relaxed);
    }
    return b;
}

void vg_qgemm_force_path(int path)
{
    if (path >= 0 && !vg_qgemm_path_supported(path))
        return;
    atomic_store(&forced_path, path);
}

const char *vg_qgemm_path_name(int path)
{
    return path >= 0 && path < VG_QGEMM_NPATHS ? paths[path].name : "?";
}

int vg_qgemm_nr(int path)
{
    return paths[path].nr;
}

/* ---- Packing --------------------------------------------------------------------------------- */

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

size_t vg_qgemm_pack_a_bytes(int path, int m, int k)
{
    const struct path_info *pi = &paths[path];
    size_t panels = (size_t)(m + pi->mr - 1) / (size_t)pi->mr;
    size_t k4 = (size_t)(k + 3) / 4;
    return align64(panels * k4 * (size_t)pi->mr * 4 * (pi->a16 ? 2 : 1)) +
           align64((size_t)m * sizeof(int32_t));
}

void vg_qgemm_pack_a(int path, const void *a, int a_signed, size_t lda, int m, int k, void *mem,
                     struct vg_qgemm_pa *pa)
{
    const struct path_info *pi = &paths[path];
    int mr = pi->mr, k4 = (k + 3) / 4, panels = (m + mr - 1) / mr;
    size_t data_bytes = (size_t)panels * (size_t)k4 * (size_t)mr * 4 * (pi->a16 ? 2 : 1);
    pa->path = path;
    pa->m = m;
    pa->k = k;
    pa->k4 = k4;
    pa->a_signed = a_signed;
    pa->data = mem;
    pa->rowsum = (int32_t *)((char *)mem + align64(data_bytes));
    const uint8_t *src = a;
    int off = a_signed ? 0 : -128; /* uint8 a -> a - 128 */
    for (int pn = 0; pn < panels; pn++) {
        for (int r = 0; r < mr; r++) {
            int row = pn * mr + r;
            int32_t sum = 0;
            for (int p = 0; p < k4; p++) {
                size_t at = (((size_t)pn * (size_t)k4 + (size_t)p) * (size_t)mr + (size_t)r) * 4;
                for (int j = 0; j < 4; j++) {
                    int kk = 4 * p + j;
                    int v = 0;
                    if (row < m && kk < k) {
                        uint8_t raw = src[(size_t)row * lda + (size_t)kk];
                        v = a_signed ? (int)(int8_t)raw : (int)raw + off;
                    }
                    sum += v;
                    if (pi->a16)
                        ((int16_t *)mem)[at + (size_t)j] = (int16_t)v;
                    else
                        ((int8_t *)mem)[at + (size_t)j] = (int8_t)v;
                }
            }
            if (row < m)
                pa->rowsum[row] = sum;
        }
    }
}

size_t vg_qgemm_pack_b_bytes(int path, int k, int n)
{
    const struct path_info *pi = &paths[path];
    size_t panels = (size_t)(n + pi->nr - 1) / (size_t)pi->nr;
    size_t k4 = (size_t)(k + 3) / 4;
    return align64(panels * k4 * (size_t)pi->nr * 4) + align64((size_t)n * sizeof(int32_t));
}

/* Columns [c0, c0 + cn) of one panel, rows [p0*4, k) of B, scalar (edges and the C path). */
static void pack_b_scalar(const uint8_t *b, uint8_t flip, size_t ldb, int k, int n, int nr, int k4,
                          int p0, int col0, int cfirst, int clast, uint8_t *dst, int32_t *colsum)
{
    for (int c = cfirst; c < clast; c++) {
        int col = col0 + c;
        int32_t sum = 0;
        for (int p = p0; p < k4; p++) {
            uint8_t *d = dst + ((size_t)p * (size_t)nr + (size_t)c) * 4;
            for (int j = 0; j < 4; j++) {
                int kk = 4 * p + j;
                uint8_t v = 0;
                if (kk < k && col < n)
                    v = (uint8_t)(b[(size_t)kk * ldb + (size_t)col] ^ flip);
                d[j] = v;
                sum += v;
            }
        }
        if (colsum && col < n)
            colsum[col] += sum;
    }
}

#if VG_X86
/* One group of 4 rows (r0-r3, 32 bytes each) of a 32-column panel: bytes interleaved within
 * 128-bit lanes, the lanes put back in column order before the stores. */
static inline __attribute__((always_inline)) AVX2_T void
pack_b_32_group(__m256i r0, __m256i r1, __m256i r2, __m256i r3, __m256i fl, uint8_t *d,
                __m256i *s0, __m256i *s1, __m256i *s2, __m256i *s3, int with_cs)
{
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    /* lane 0 holds columns 0-15, lane 1 columns 16-31 */
    __m256i x01l = _mm256_unpacklo_epi8(r0, r1), x01h = _mm256_unpackhi_epi8(r0, r1);
    __m256i x23l = _mm256_unpacklo_epi8(r2, r3), x23h = _mm256_unpackhi_epi8(r2, r3);
    __m256i o0 = _mm256_xor_si256(_mm256_unpacklo_epi16(x01l, x23l), fl); /* 0-3 | 16-19 */
    __m256i o1 = _mm256_xor_si256(_mm256_unpackhi_epi16(x01l, x23l), fl); /* 4-7 | 20-23 */
    __m256i o2 = _mm256_xor_si256(_mm256_unpacklo_epi16(x01h, x23h), fl); /* 8-11 | 24-27 */
    __m256i o3 = _mm256_xor_si256(_mm256_unpackhi_epi16(x01h, x23h), fl); /* 12-15 | 28-31 */
    __m256i c0 = _mm256_permute2x128_si256(o0, o1, 0x20); /* columns 0-7 */
    __m256i c1 = _mm256_permute2x128_si256(o2, o3, 0x20); /* 8-15 */
    __m256i c2 = _mm256_permute2x128_si256(o0, o1, 0x31); /* 16-23 */
    __m256i c3 = _mm256_permute2x128_si256(o2, o3, 0x31); /* 24-31 */
    _mm256_storeu_si256((__m256i *)d, c0);
    _mm256_storeu_si256((__m256i *)(d + 32), c1);
    _mm256_storeu_si256((__m256i *)(d + 64), c2);
    _mm256_storeu_si256((__m256i *)(d + 96), c3);
    if (with_cs) {
        *s0 = _mm256_add_epi32(*s0, _mm256_madd_epi16(_mm256_maddubs_epi16(c0, ones8), ones16));
        *s1 = _mm256_add_epi32(*s1, _mm256_madd_epi16(_mm256_maddubs_epi16(c1, ones8), ones16));
        *s2 = _mm256_add_epi32(*s2, _mm256_madd_epi16(_mm256_maddubs_epi16(c2, ones8), ones16));
        *s3 = _mm256_add_epi32(*s3, _mm256_madd_epi16(_mm256_maddubs_epi16(c3, ones8), ones16));
    }
}

/* A whole 32-column panel (the AVX-512 path's): k4full groups of 4 rows, then krem (0-3) rows
 * as one more, partial group, its missing rows given as `flip` so that they pack to 0. */
static AVX2_T void pack_b_avx2_32(const uint8_t *b, uint8_t flip, size_t ldb, int k4full, int nr,
                                  int col0, uint8_t *dst, int32_t *colsum, int krem)
{
    const __m256i fl = _mm256_set1_epi8((char)flip);
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    const uint8_t *src = b + col0;
    for (int p = 0; p < k4full; p++) {
        const uint8_t *r = src + (size_t)(4 * p) * ldb;
        __m256i r0 = _mm256_loadu_si256((const __m256i *)r);
        __m256i r1 = _mm256_loadu_si256((const __m256i *)(r + ldb));
        __m256i r2 = _mm256_loadu_si256((const __m256i *)(r + 2 * ldb));
        __m256i r3 = _mm256_loadu_si256((const __m256i *)(r + 3 * ldb));
        pack_b_32_group(r0, r1, r2, r3, fl, dst + (size_t)p * (size_t)nr * 4, &s0, &s1, &s2, &s3,
                        colsum != NULL);
    }
    if (krem > 0) {
        const uint8_t *r = src + (size_t)(4 * k4full) * ldb;
        __m256i r0 = _mm256_loadu_si256((const __m256i *)r);
        __m256i r1 = krem > 1 ? _mm256_loadu_si256((const __m256i *)(r + ldb)) : fl;
        __m256i r2 = krem > 2 ? _mm256_loadu_si256((const __m256i *)(r + 2 * ldb)) : fl;
        pack_b_32_group(r0, r1, r2, fl, fl, dst + (size_t)k4full * (size_t)nr * 4, &s0, &s1, &s2,
                        &s3, colsum != NULL);
    }
    if (colsum) {
        int32_t *cs = colsum + col0;
        _mm256_storeu_si256((__m256i *)cs,
                            _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)cs), s0));
        _mm256_storeu_si256((__m256i *)(cs + 8),
                            _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(cs + 8)), s1));
        _mm256_storeu_si256((__m256i *)(cs + 16),
                            _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(cs + 16)), s2));
        _mm256_storeu_si256((__m256i *)(cs + 24),
                            _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(cs + 24)), s3));
    }
}

/* Full groups of 4 rows for 8 columns at a time: a 4 x 8 byte transpose per step. */
static AVX2_T void pack_b_avx2(const uint8_t *b, uint8_t flip, size_t ldb, int k4full, int nr,
                               int col0, int c8, uint8_t *dst, int32_t *colsum)
{
    const __m128i fl = _mm_set1_epi8((char)flip);
    const __m128i ones8 = _mm_set1_epi8(1), ones16 = _mm_set1_epi16(1);
    for (int c = 0; c < c8; c += 8) {
        __m128i s0 = _mm_setzero_si128(), s1 = _mm_setzero_si128();
        const uint8_t *src = b + col0 + c;
        for (int p = 0; p < k4full; p++) {
            const uint8_t *r = src + (size_t)(4 * p) * ldb;
            __m128i r0 = _mm_loadl_epi64((const __m128i *)r);
            __m128i r1 = _mm_loadl_epi64((const __m128i *)(r + ldb));
            __m128i r2 = _mm_loadl_epi64((const __m128i *)(r + 2 * ldb));
            __m128i r3 = _mm_loadl_epi64((const __m128i *)(r + 3 * ldb));
            __m128i x01 = _mm_unpacklo_epi8(r0, r1), x23 = _mm_unpacklo_epi8(r2, r3);
            __m128i lo = _mm_xor_si128(_mm_unpacklo_epi16(x01, x23), fl);
            __m128i hi = _mm_xor_si128(_mm_unpackhi_epi16(x01, x23), fl);
            uint8_t *d = dst + ((size_t)p * (size_t)nr + (size_t)c) * 4;
            _mm_storeu_si128((__m128i *)d, lo);
            _mm_storeu_si128((__m128i *)(d + 16), hi);
            if (colsum) {
                s0 = _mm_add_epi32(s0, _mm_madd_epi16(_mm_maddubs_epi16(lo, ones8), ones16));
                s1 = _mm_add_epi32(s1, _mm_madd_epi16(_mm_maddubs_epi16(hi, ones8), ones16));
            }
        }
        if (colsum) {
            __m128i o0 = _mm_loadu_si128((const __m128i *)(colsum + col0 + c));
            __m128i o1 = _mm_loadu_si128((const __m128i *)(colsum + col0 + c + 4));
            _mm_storeu_si128((__m128i *)(colsum + col0 + c), _mm_add_epi32(o0, s0));
            _mm_storeu_si128((__m128i *)(colsum + col0 + c + 4), _mm_add_epi32(o1, s1));
        }
    }
}
#endif

void vg_qgemm_pack_b(int path, const void *b_, int b_signed, size_t ldb, int k, int n,
                     int with_colsum, void *mem, struct vg_qgemm_pb *pb)
{
    const struct path_info *pi = &paths[path];
    const uint8_t *b = b_;
    int nr = pi->nr, k4 = (k + 3) / 4, panels = (n + nr - 1) / nr;
    size_t panel_bytes = (size_t)k4 * (size_t)nr * 4;
    uint8_t flip = b_signed ? 0x80 : 0; /* int8 b -> b + 128 */
    pb->path = path;
    pb->k = k;
    pb->n = n;
    pb->k4 = k4;
    pb->b_signed = b_signed;
    pb->data = mem;
    pb->colsum = with_colsum ? (int32_t *)((char *)mem + align64(panel_bytes * (size_t)panels))
                             : NULL;
    if (pb->colsum)
        memset(pb->colsum, 0, (size_t)n * sizeof(int32_t));
    for (int pn = 0; pn < panels; pn++) {
        uint8_t *dst = pb->data + (size_t)pn * panel_bytes;
        int col0 = pn * nr, cn = n - col0 < nr ? n - col0 : nr;
        int p0 = 0, c8 = 0;
#if VG_X86
        if (path != VG_QGEMM_PORTABLE && nr == 32 && cn == 32) {
            /* a full AVX-512 panel, every row (also a last partial group) */
            pack_b_avx2_32(b, flip, ldb, k / 4, nr, col0, dst, pb->colsum, k % 4);
            c8 = 32;
            p0 = k4;
        } else if (path != VG_QGEMM_PORTABLE) {
            c8 = cn & ~7;
            p0 = k / 4;
            if (c8 > 0 && p0 > 0)
                pack_b_avx2(b, flip, ldb, p0, nr, col0, c8, dst, pb->colsum);
            else
                c8 = p0 = 0;
        }
#endif
        /* The columns the SIMD loop did for rows [0, 4*p0), then every other column. */
        if (p0 < k4)
            pack_b_scalar(b, flip, ldb, k, n, nr, k4, p0, col0, 0, c8, dst, pb->colsum);
        pack_b_scalar(b, flip, ldb, k, n, nr, k4, 0, col0, c8, cn, dst, pb->colsum);
        if (cn < nr) /* the padding columns of a partial panel are 0 */
            for (int p = 0; p < k4; p++)
                memset(dst + ((size_t)p * (size_t)nr + (size_t)cn) * 4, 0, (size_t)(nr - cn) * 4);
    }
}

void vg_qgemm_pb_cols(const struct vg_qgemm_pb *pb, int n0, int n, struct vg_qgemm_pb *sub)
{
    int nr = paths[pb->path].nr;
    *sub = *pb;
    sub->n = n;
    sub->data = pb->data + (size_t)(n0 / nr) * (size_t)pb->k4 * (size_t)nr * 4;
    sub->colsum = pb->colsum ? pb->colsum + n0 : NULL;
}

/* ---- Requantization -------------------------------------------------------------------------- */

void vg_qgemm_requant_param(double m, struct vg_qgemm_rq *rq)
{
    int e;
    double f = frexp(m, &e); /* m = f * 2^e, f in [0.5, 1) */
    long long q = llrint(ldexp(f, 31));
    if (q >= (1LL << 31)) {
        q >>= 1;
        e++;
    }
    int shift = 31 - e;
    if (!(m > 0) || !isfinite(m)) {
        rq->mult = 0;
        rq->shift = 32;
    } else if (shift < 1) {
        /* M >= 2^30: every non-zero sum saturates, as it does with this smaller multiplier. */
        rq->mult = INT32_MAX;
        rq->shift = 1;
    } else if (shift > 62) {
        rq->mult = (int32_t)llrint(ldexp(m, 62));
        rq->shift = 62;
    } else {
        rq->mult = (int32_t)q;
        rq->shift = shift;
    }
}

static inline int64_t rq_apply(int32_t acc, int32_t mult, int shift)
{
    int64_t p = (int64_t)acc * mult;
    int64_t q = p >> shift; /* floor: GCC shifts signed values arithmetically */
    uint64_t rem = (uint64_t)p & (((uint64_t)1 << shift) - 1), half = (uint64_t)1 << (shift - 1);
    if (rem > half || (rem == half && (q & 1)))
        q++;
    return q;
}

static inline int32_t clamp_out(int64_t v, enum vg_qgemm_out_kind kind)
{
    int64_t lo = kind == VG_QGEMM_OUT_U8 ? 0 : -128, hi = kind == VG_QGEMM_OUT_U8 ? 255 : 127;
    return (int32_t)(v < lo ? lo : v > hi ? hi : v);
}

static void requant_scalar(const int32_t *acc, int n, const struct vg_qgemm_rq *rq, int rq_step,
                           int32_t zp, enum vg_qgemm_out_kind kind, void *y)
{
    for (int i = 0; i < n; i++) {
        const struct vg_qgemm_rq *r = rq + (size_t)i * (size_t)rq_step;
        int32_t v = clamp_out(rq_apply(acc[i], r->mult, r->shift) + zp, kind);
        if (kind == VG_QGEMM_OUT_U8)
            ((uint8_t *)y)[i] = (uint8_t)v;
        else
            ((int8_t *)y)[i] = (int8_t)v;
    }
}

#if VG_X86
static inline AVX2_T __m256i round_shift_pair(__m256i p, __m256i s)
{
    const __m256i one = _mm256_set1_epi64x(1);
    __m256i bit = _mm256_and_si256(_mm256_srlv_epi64(p, s), one);
    __m256i half_m1 = _mm256_sub_epi64(_mm256_sllv_epi64(one, _mm256_sub_epi64(s, one)), one);
    return _mm256_add_epi64(_mm256_add_epi64(p, half_m1), bit);
}

/* 8 lanes: round_half_even(acc * mult / 2^shift), shift in [32, 62] per lane. */
static inline AVX2_T __m256i requant8(__m256i acc, __m256i mult, __m256i shift)
{
    const __m256i lo32 = _mm256_set1_epi64x(0xffffffff);
    __m256i pe = _mm256_mul_epi32(acc, mult);
    __m256i po = _mm256_mul_epi32(_mm256_srli_epi64(acc, 32), _mm256_srli_epi64(mult, 32));
    pe = round_shift_pair(pe, _mm256_and_si256(shift, lo32));
    po = round_shift_pair(po, _mm256_srli_epi64(shift, 32));
    /* High dwords are floor(p / 2^32); the rest of the shift is an arithmetic 32-bit one. */
    __m256i hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
    return _mm256_srav_epi32(hi, _mm256_sub_epi32(shift, _mm256_set1_epi32(32)));
}

static inline AVX2_T void store8(__m256i v, __m256i zp, __m256i lo, __m256i hi,
                                 enum vg_qgemm_out_kind kind, void *y)
{
    v = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(v, zp), lo), hi);
    __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    __m128i b = kind == VG_QGEMM_OUT_U8 ? _mm_packus_epi16(w, w) : _mm_packs_epi16(w, w);
    _mm_storel_epi64((__m128i *)y, b);
}

static AVX2_T void requant_row_avx2(const int32_t *acc, int n, const struct vg_qgemm_rq *rq,
                                    int32_t zp, enum vg_qgemm_out_kind kind, void *y)
{
    __m256i mult = _mm256_set1_epi32(rq->mult), shift = _mm256_set1_epi32(rq->shift);
    __m256i z = _mm256_set1_epi32(zp);
    __m256i lo = _mm256_set1_epi32(kind == VG_QGEMM_OUT_U8 ? 0 : -128);
    __m256i hi = _mm256_set1_epi32(kind == VG_QGEMM_OUT_U8 ? 255 : 127);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = requant8(_mm256_loadu_si256((const __m256i *)(acc + i)), mult, shift);
        store8(v, z, lo, hi, kind, (uint8_t *)y + i);
    }
    if (i < n) {
        /* The tail through the same vector code, via buffers (no read or write past n). */
        int32_t t[8] = {0};
        uint8_t o[8];
        memcpy(t, acc + i, (size_t)(n - i) * sizeof(int32_t));
        store8(requant8(_mm256_loadu_si256((const __m256i *)t), mult, shift), z, lo, hi, kind, o);
        memcpy((uint8_t *)y + i, o, (size_t)(n - i));
    }
}
/* 16 lanes with AVX-512: vpsravq makes the 64-bit rounding shift direct. */
static inline VNNI512_T __m512i round_shift512(__m512i p, __m512i s)
{
    const __m512i one = _mm512_set1_epi64(1);
    __m512i bit = _mm512_and_si512(_mm512_srlv_epi64(p, s), one);
    __m512i half_m1 = _mm512_sub_epi64(_mm512_sllv_epi64(one, _mm512_sub_epi64(s, one)), one);
    return _mm512_srav_epi64(_mm512_add_epi64(_mm512_add_epi64(p, half_m1), bit), s);
}

static inline VNNI512_T __m512i requant16(__m512i acc, __m512i mult, __m512i shift)
{
    __m512i pe = _mm512_mul_epi32(acc, mult);
    __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(acc, 32), _mm512_srli_epi64(mult, 32));
    pe = round_shift512(pe, _mm512_and_si512(shift, _mm512_set1_epi64(0xffffffff)));
    po = round_shift512(po, _mm512_srli_epi64(shift, 32));
    return _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
}

static inline VNNI512_T void store16(__m512i v, __m512i zp, enum vg_qgemm_out_kind kind, void *y)
{
    v = _mm512_add_epi32(v, zp);
    __m128i b = kind == VG_QGEMM_OUT_U8
                    ? _mm512_cvtusepi32_epi8(_mm512_max_epi32(v, _mm512_setzero_si512()))
                    : _mm512_cvtsepi32_epi8(v);
    _mm_storeu_si128((__m128i *)y, b);
}

static VNNI512_T void requant_row_avx512(const int32_t *acc, int n, const struct vg_qgemm_rq *rq,
                                         int32_t zp, enum vg_qgemm_out_kind kind, void *y)
{
    __m512i mult = _mm512_set1_epi32(rq->mult), shift = _mm512_set1_epi32(rq->shift);
    __m512i z = _mm512_set1_epi32(zp);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        store16(requant16(_mm512_loadu_si512((const void *)(acc + i)), mult, shift), z, kind,
                (uint8_t *)y + i);
    if (i < n)
        requant_row_avx2(acc + i, n - i, rq, zp, kind, (uint8_t *)y + i);
}
#endif

static int rq_simd_ok(const struct vg_qgemm_rq *rq)
{
    return rq->shift >= 32 && rq->shift <= 62;
}

void vg_qgemm_requant_row(const int32_t *acc, int n, const struct vg_qgemm_rq *rq, int32_t zp,
                          enum vg_qgemm_out_kind kind, void *y)
{
#if VG_X86
    int path = vg_qgemm_path();
    if (rq_simd_ok(rq) && path == VG_QGEMM_AVX512) {
        requant_row_avx512(acc, n, rq, zp, kind, y);
        return;
    }
    if (rq_simd_ok(rq) && path != VG_QGEMM_PORTABLE) {
        requant_row_avx2(acc, n, rq, zp, kind, y);
        return;
    }
#endif
    requant_scalar(acc, n, rq, 0, zp, kind, y);
}

/* ---- Output stage ---------------------------------------------------------------------------- */

/* Per-row constants of the zero-point correction: C = S - za*cs[n] + t*zb[n] + c. */
struct rowp {
    int32_t za, t, c;
    const struct vg_qgemm_rq *rq; /* per-row or single requant, NULL when per column */
};

struct colp {
    const int32_t *cs;             /* column sums (NULL when za is 0 for every row) */
    const int32_t *zb;             /* per-column B zero points (original domain), or NULL */
    int32_t zb_off;                /* +128 for int8 B */
    const struct vg_qgemm_rq *rq;  /* per-column requant, or NULL */
};

static void post_scalar(const int32_t *raw, int nr, const struct rowp *r, const struct colp *cp,
                        enum vg_qgemm_out_kind kind, int32_t y_zp, void *y)
{
    for (int j = 0; j < nr; j++) {
        uint32_t v = (uint32_t)raw[j] + (uint32_t)r->c;
        if (cp->cs)
            v -= (uint32_t)r->za * (uint32_t)cp->cs[j];
        if (cp->zb)
            v += (uint32_t)r->t * (uint32_t)(cp->zb[j] + cp->zb_off);
        if (kind == VG_QGEMM_OUT_I32) {
            ((int32_t *)y)[j] = (int32_t)v;
            continue;
        }
        const struct vg_qgemm_rq *q = cp->rq ? cp->rq + j : r->rq;
        int32_t o = clamp_out(rq_apply((int32_t)v, q->mult, q->shift) + y_zp, kind);
        if (kind == VG_QGEMM_OUT_U8)
            ((uint8_t *)y)[j] = (uint8_t)o;
        else
            ((int8_t *)y)[j] = (int8_t)o;
    }
}

#if VG_X86
static AVX2_T void post_avx2(const int32_t *raw, int nr, const struct rowp *r,
                             const struct colp *cp, enum vg_qgemm_out_kind kind, int32_t y_zp,
                             void *y)
{
    __m256i za = _mm256_set1_epi32(r->za), t = _mm256_set1_epi32(r->t);
    __m256i cc = _mm256_set1_epi32(r->c), zoff = _mm256_set1_epi32(cp->zb_off);
    __m256i z = _mm256_set1_epi32(y_zp);
    __m256i lo = _mm256_set1_epi32(kind == VG_QGEMM_OUT_U8 ? 0 : -128);
    __m256i hi = _mm256_set1_epi32(kind == VG_QGEMM_OUT_U8 ? 255 : 127);
    __m256i mult = _mm256_setzero_si256(), shift = _mm256_setzero_si256();
    if (r->rq) {
        mult = _mm256_set1_epi32(r->rq->mult);
        shift = _mm256_set1_epi32(r->rq->shift);
    }
    int j = 0;
    for (; j + 8 <= nr; j += 8) {
        __m256i v = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(raw + j)), cc);
        if (cp->cs)
            v = _mm256_sub_epi32(
                v, _mm256_mullo_epi32(za, _mm256_loadu_si256((const __m256i *)(cp->cs + j))));
        if (cp->zb) {
            __m256i zb = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(cp->zb + j)), zoff);
            v = _mm256_add_epi32(v, _mm256_mullo_epi32(t, zb));
        }
        if (kind == VG_QGEMM_OUT_I32) {
            _mm256_storeu_si256((__m256i *)((int32_t *)y + j), v);
            continue;
        }
        if (cp->rq) {
            /* rq is {mult, shift} pairs: split them into two vectors. */
            __m256i q0 = _mm256_loadu_si256((const __m256i *)(cp->rq + j));
            __m256i q1 = _mm256_loadu_si256((const __m256i *)(cp->rq + j + 4));
            __m256i ms = _mm256_permutevar8x32_epi32(q0, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
            __m256i ms1 = _mm256_permutevar8x32_epi32(q1, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
            mult = _mm256_permute2x128_si256(ms, ms1, 0x20);
            shift = _mm256_permute2x128_si256(ms, ms1, 0x31);
        }
        store8(requant8(v, mult, shift), z, lo, hi, kind, (uint8_t *)y + j);
    }
    if (j < nr) {
        struct colp tail = *cp;
        if (tail.cs)
            tail.cs += j;
        if (tail.zb)
            tail.zb += j;
        if (tail.rq)
            tail.rq += j;
        size_t es = kind == VG_QGEMM_OUT_I32 ? 4 : 1;
        post_scalar(raw + j, nr - j, r, &tail, kind, y_zp, (char *)y + (size_t)j * es);
    }
}
#endif

#if VG_X86
static VNNI512_T void post_avx512(const int32_t *raw, int nr, const struct rowp *r,
                                  const struct colp *cp, enum vg_qgemm_out_kind kind,
                                  int32_t y_zp, void *y)
{
    __m512i za = _mm512_set1_epi32(r->za), t = _mm512_set1_epi32(r->t);
    __m512i cc = _mm512_set1_epi32(r->c), zoff = _mm512_set1_epi32(cp->zb_off);
    __m512i z = _mm512_set1_epi32(y_zp);
    __m512i mult = _mm512_setzero_si512(), shift = _mm512_setzero_si512();
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    if (r->rq) {
        mult = _mm512_set1_epi32(r->rq->mult);
        shift = _mm512_set1_epi32(r->rq->shift);
    }
    int j = 0;
    for (; j + 16 <= nr; j += 16) {
        __m512i v = _mm512_add_epi32(_mm512_loadu_si512((const void *)(raw + j)), cc);
        if (cp->cs)
            v = _mm512_sub_epi32(
                v, _mm512_mullo_epi32(za, _mm512_loadu_si512((const void *)(cp->cs + j))));
        if (cp->zb) {
            __m512i zb = _mm512_add_epi32(_mm512_loadu_si512((const void *)(cp->zb + j)), zoff);
            v = _mm512_add_epi32(v, _mm512_mullo_epi32(t, zb));
        }
        if (kind == VG_QGEMM_OUT_I32) {
            _mm512_storeu_si512((void *)((int32_t *)y + j), v);
            continue;
        }
        if (cp->rq) {
            __m512i q0 = _mm512_loadu_si512((const void *)(cp->rq + j));
            __m512i q1 = _mm512_loadu_si512((const void *)(cp->rq + j + 8));
            mult = _mm512_permutex2var_epi32(q0, even, q1);
            shift = _mm512_permutex2var_epi32(q0, odd, q1);
        }
        store16(requant16(v, mult, shift), z, kind, (uint8_t *)y + j);
    }
    if (j < nr) {
        struct colp tail = *cp;
        if (tail.cs)
            tail.cs += j;
        if (tail.zb)
            tail.zb += j;
        if (tail.rq)
            tail.rq += j;
        size_t es = kind == VG_QGEMM_OUT_I32 ? 4 : 1;
        post_avx2(raw + j, nr - j, r, &tail, kind, y_zp, (char *)y + (size_t)j * es);
    }
}
#endif

#if VG_X86
/* Row constants of the fused AVX-512 stage: the requantization's shift-dependent terms are
 * computed once per row instead of once per vector. */
struct frow {
    int32_t za, c, mult;
    int64_t shift, half_m1; /* shift in [32, 62]; half_m1 = 2^(shift-1) - 1 */
};

/* round_half_even(p / 2^s) for 64-bit lanes: (p + 2^(s-1) - 1 + bit_s(p)) >> s, as
 * round_shift512 with the shift terms precomputed. */
static inline VNNI512_T __m512i round_shift512_pre(__m512i p, __m512i s, __m512i hm1)
{
    __m512i bit = _mm512_and_si512(_mm512_srlv_epi64(p, s), _mm512_set1_epi64(1));
    return _mm512_srav_epi64(_mm512_add_epi64(_mm512_add_epi64(p, hm1), bit), s);
}

/* The requantized sums of 16 columns of one row, before the zero point and saturation. */
static inline __attribute__((always_inline)) VNNI512_T __m512i
fused_rq16(__m512i acc, const struct frow *fr, __m512i cs, int with_cs)
{
    __m512i v = _mm512_add_epi32(acc, _mm512_set1_epi32(fr->c));
    if (with_cs)
        v = _mm512_sub_epi32(v, _mm512_mullo_epi32(_mm512_set1_epi32(fr->za), cs));
    __m512i mult = _mm512_set1_epi64((int64_t)fr->mult);
    __m512i sh = _mm512_set1_epi64(fr->shift), hm1 = _mm512_set1_epi64(fr->half_m1);
    __m512i pe = round_shift512_pre(_mm512_mul_epi32(v, mult), sh, hm1);
    __m512i po = round_shift512_pre(_mm512_mul_epi32(_mm512_srli_epi64(v, 32), mult), sh, hm1);
    return _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
}

/* 32 int32 values (v0: columns 0-15, v1: 16-31) saturated to bytes and stored, `mask` selecting
 * the columns: two saturating packs (clamping to [0, 255] or [-128, 127] like vpmov[u]sdb) and
 * one dword permute, instead of two vpmov[u]sdb, which take two shuffle uops each. */
static inline __attribute__((always_inline)) VNNI512_T void
store32_sat(__m512i v0, __m512i v1, enum vg_qgemm_out_kind kind, __mmask64 mask, uint8_t *y)
{
    /* Per 128-bit lane i the packs give v0[4i..4i+3], v1[4i..4i+3] (as 8 bytes, twice). */
    __m512i w, b;
    if (kind == VG_QGEMM_OUT_U8) {
        w = _mm512_packus_epi32(v0, v1);
        b = _mm512_packus_epi16(w, w);
    } else {
        w = _mm512_packs_epi32(v0, v1);
        b = _mm512_packs_epi16(w, w);
    }
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    b = _mm512_permutexvar_epi32(idx, b);
    if (mask == 0xFFFFFFFFu)
        _mm256_storeu_si256((__m256i *)y, _mm512_castsi512_si256(b));
    else
        _mm512_mask_storeu_epi8(y, mask, b);
}

/* The 8 x 32 VNNI kernel with the output stage applied while the tile is in registers:
 * zero-point correction (per-row za against column sums, the rest folded into c), per-row
 * requantization and the saturating store of nr <= 32 columns. */
static inline __attribute__((always_inline)) VNNI512_T void
kern_vnni512_fused_body(int k4, const int8_t *ap, const uint8_t *bp, const int mr, int nr,
                        const struct frow *fr, const int32_t *cs, enum vg_qgemm_out_kind kind,
                        int32_t y_zp, uint8_t *y, size_t ldy, const int half)
{
    /* half: nr <= 16, the panel's second 16 columns are padding and are not multiplied (the
     * last panel of a 14x14 or 28x28 map). */
    __m512i c0[8], c1[8];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
        c0[r] = c1[r] = _mm512_setzero_si512();
    for (int p = 0; p < k4; p++) {
        __m512i b0 = _mm512_loadu_si512((const void *)bp);
        __m512i b1 = half ? b0 : _mm512_loadu_si512((const void *)(bp + 64));
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            __m512i a = _mm512_set1_epi32(load_i32(ap + 4 * r));
            DPBUSD512(c0[r], b0, a);
            if (!half)
                DPBUSD512(c1[r], b1, a);
        }
        ap += 32;
        bp += 128;
    }
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF
                            : nr <= 16 ? (__mmask16)0 : (__mmask16)((1u << (nr - 16)) - 1);
    __m512i cs0 = _mm512_setzero_si512(), cs1 = _mm512_setzero_si512();
    if (cs) {
        cs0 = _mm512_maskz_loadu_epi32(m0, cs);
        cs1 = _mm512_maskz_loadu_epi32(m1, cs + 16);
    }
    __m512i z = _mm512_set1_epi32(y_zp);
    __mmask64 m64 = nr >= 32 ? (__mmask64)0xFFFFFFFFu : ((__mmask64)1 << nr) - 1;
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        uint8_t *yr = y + (size_t)r * ldy;
        __m512i v0 = _mm512_add_epi32(fused_rq16(c0[r], &fr[r], cs0, cs != NULL), z);
        __m512i v1 = half ? v0 : _mm512_add_epi32(fused_rq16(c1[r], &fr[r], cs1, cs != NULL), z);
        store32_sat(v0, v1, kind, m64, yr);
    }
}

static VNNI512_T void kern_vnni512_fused(int k4, const int8_t *ap, const uint8_t *bp, int mr,
                                         int nr, const struct frow *fr, const int32_t *cs,
                                         enum vg_qgemm_out_kind kind, int32_t y_zp, uint8_t *y,
                                         size_t ldy)
{
    if (nr <= 16) {
        switch (mr) {
#define FUSED_CASE(R)                                                                              \
    case R: kern_vnni512_fused_body(k4, ap, bp, R, nr, fr, cs, kind, y_zp, y, ldy, 1); break;
        FUSED_CASE(1)
        FUSED_CASE(2)
        FUSED_CASE(3)
        FUSED_CASE(4)
        FUSED_CASE(5)
        FUSED_CASE(6)
        FUSED_CASE(7)
#undef FUSED_CASE
        default: kern_vnni512_fused_body(k4, ap, bp, 8, nr, fr, cs, kind, y_zp, y, ldy, 1); break;
        }
        return;
    }
    switch (mr) {
#define FUSED_CASE(R)                                                                              \
    case R: kern_vnni512_fused_body(k4, ap, bp, R, nr, fr, cs, kind, y_zp, y, ldy, 0); break;
    FUSED_CASE(1)
    FUSED_CASE(2)
    FUSED_CASE(3)
    FUSED_CASE(4)
    FUSED_CASE(5)
    FUSED_CASE(6)
    FUSED_CASE(7)
#undef FUSED_CASE
    default: kern_vnni512_fused_body(k4, ap, bp, 8, nr, fr, cs, kind, y_zp, y, ldy, 0); break;
    }
}
#endif

void vg_qgemm(const struct vg_qgemm_pa *a, const struct vg_qgemm_pb *b,
              const struct vg_qgemm_out *o)
{
    const struct path_info *pi = &paths[a->path];
    int mr_max = pi->mr, nr_max = pi->nr, k4 = a->k4, m = a->m, n = b->n;
    uint32_t kk = (uint32_t)a->k;
    size_t es = o->kind == VG_QGEMM_OUT_I32 ? 4 : 1;
    int32_t za_off = a->a_signed ? 0 : -128, zb_off = b->b_signed ? 128 : 0;
    int32_t zb0 = o->zb && !o->zb_per_col ? o->zb[0] + zb_off : zb_off;
    int requant = o->kind != VG_QGEMM_OUT_I32;

    /* Can the SIMD output stage do every requantization this product needs? */
    int simd = a->path != VG_QGEMM_PORTABLE;
    if (requant) {
        int nq = o->rq_per_col ? n : o->rq_per_row ? m : 1;
        for (int i = 0; i < nq && simd; i++)
            simd = rq_simd_ok(&o->rq[i]);
    }

    struct colp cp0 = {b->colsum, o->zb_per_col ? o->zb : NULL, zb_off,
                       requant && o->rq_per_col ? o->rq : NULL};
    /* Column sums are only needed when some row's zero point is not 0 in the int8 domain. */
    int need_cs = 0;
    for (int i = 0; i < (o->za_per_row ? m : 1); i++)
        need_cs |= (o->za ? o->za[i] : 0) + za_off != 0;
    if (!need_cs)
        cp0.cs = NULL;

    /* The common conv case (u8/s8 output, per-row or single multiplier, one B zero point) runs
     * the output stage inside the AVX-512 kernel. */
    int fused = simd && requant && a->path == VG_QGEMM_AVX512 && !o->rq_per_col && !cp0.zb;
    (void)fused;
    size_t panel_b = (size_t)k4 * (size_t)nr_max * 4;
    size_t panel_a = (size_t)k4 * (size_t)mr_max * 4 * (pi->a16 ? 2 : 1);
    int nc = (int)((256 * 1024) / (panel_b ? panel_b : 1)) * nr_max;
    if (nc < nr_max)
        nc = nr_max;
    int32_t tile[MAX_MR * MAX_NR] __attribute__((aligned(64)));

    for (int n0 = 0; n0 < n; n0 += nc) {
        int n1 = n0 + nc < n ? n0 + nc : n;
        for (int m0 = 0; m0 < m; m0 += mr_max) {
            int mr = m - m0 < mr_max ? m - m0 : mr_max;
            struct rowp rp[MAX_MR];
            for (int r = 0; r < mr; r++) {
                int row = m0 + r;
                int32_t za = (o->za ? o->za[o->za_per_row ? row : 0] : 0) + za_off;
                uint32_t t = kk * (uint32_t)za - (uint32_t)a->rowsum[row];
                uint32_t c = o->bias ? (uint32_t)o->bias[row] : 0;
                if (!o->zb_per_col)
                    c += t * (uint32_t)zb0;
                rp[r].za = za;
                rp[r].t = (int32_t)t;
                rp[r].c = (int32_t)c;
                rp[r].rq = requant && !o->rq_per_col ? &o->rq[o->rq_per_row ? row : 0] : NULL;
            }
            const char *ap = (const char *)a->data + (size_t)(m0 / mr_max) * panel_a;
#if VG_X86
            if (fused) {
                struct frow fr[MAX_MR];
                for (int r = 0; r < mr; r++) {
                    fr[r].za = rp[r].za;
                    fr[r].c = rp[r].c;
                    fr[r].mult = rp[r].rq->mult;
                    fr[r].shift = rp[r].rq->shift;
                    fr[r].half_m1 = ((int64_t)1 << (rp[r].rq->shift - 1)) - 1;
                }
                for (int j0 = n0; j0 < n1; j0 += nr_max) {
                    int nr = n1 - j0 < nr_max ? n1 - j0 : nr_max;
                    kern_vnni512_fused(k4, (const int8_t *)ap,
                                       b->data + (size_t)(j0 / nr_max) * panel_b, mr, nr, fr,
                                       cp0.cs ? cp0.cs + j0 : NULL, o->kind, o->y_zp,
                                       (uint8_t *)o->y + (size_t)m0 * o->ldy + (size_t)j0,
                                       o->ldy);
                }
                continue;
            }
#endif
            for (int j0 = n0; j0 < n1; j0 += nr_max) {
                int nr = n1 - j0 < nr_max ? n1 - j0 : nr_max;
                pi->kern(k4, ap, b->data + (size_t)(j0 / nr_max) * panel_b, tile, mr);
                struct colp cp = cp0;
                if (cp.cs)
                    cp.cs += j0;
                if (cp.zb)
                    cp.zb += j0;
                if (cp.rq)
                    cp.rq += j0;
                for (int r = 0; r < mr; r++) {
                    char *y = (char *)o->y + ((size_t)(m0 + r) * o->ldy + (size_t)j0) * es;
#if VG_X86
                    if (simd && a->path == VG_QGEMM_AVX512) {
                        post_avx512(tile + r * nr_max, nr, &rp[r], &cp, o->kind, o->y_zp, y);
                        continue;
                    }
                    if (simd) {
                        post_avx2(tile + r * nr_max, nr, &rp[r], &cp, o->kind, o->y_zp, y);
                        continue;
                    }
#endif
                    post_scalar(tile + r * nr_max, nr, &rp[r], &cp, o->kind, o->y_zp, y);
                }
            }
        }
    }
}
