/*
 * Elementwise operators of the ai.onnx domain: arithmetic, activations, comparisons, logic.
 *
 * Implemented (opsets 1..17, one table entry per operator; the few version differences are
 * decided from node->opset):
 *   Binary, numpy multidirectional broadcasting from opset 7 (opset < 7: the legacy form, see
 *   below): Add, Sub, Mul, Div, Pow, Equal, Less, Greater, And, Or; LessOrEqual and
 *   GreaterOrEqual (opset 12+).
 *   Variadic with broadcasting (opset 8+; before 8 every input must have the same shape): Max, Min.
 *   Unary: Neg, Abs, Exp, Log, Sqrt, Relu, LeakyRelu (alpha, default 0.01), Sigmoid, Tanh, Not.
 *   Clip: min/max attributes before opset 11, optional scalar (one-element) inputs from 11.
 *   `consumed_inputs` (opset 1) is ignored.
 *
 * Legacy broadcasting (opset < 7): with broadcast=0 both shapes must be equal; with broadcast=1
 * B's shape must match a contiguous run of A's dims starting at `axis` (default: suffix
 * matching), a B dim of 1 repeating; the output has A's shape.
 *
 * Types: float, double, int64, int32, int8, uint8 wherever the newest version of an operator
 * allows integers (Relu ints from 14, Max/Min/Clip ints from 12, arithmetic int8/uint8 from 14 are
 * accepted in every opset: a model server gains nothing from refusing them); Exp, Log, Sqrt,
 * Sigmoid, Tanh, LeakyRelu float and double only; Neg signed types; Equal also bool; And, Or, Not
 * bool only. Comparisons output bool. Inputs must share one dtype (VG_ETYPE at load), except
 * Pow from opset 12: base float, double, int32 or int64, exponent any numeric type, output the
 * base's type.
 *
 * Integer semantics: Add, Sub, Mul, Neg and Abs wrap around (two's complement), which is what
 * ONNX Runtime's plain C++ arithmetic gives in practice. Div truncates toward zero; INT_MIN / -1
 * wraps to INT_MIN. Integer division by zero is undefined in ONNX (ONNX Runtime's division traps
 * on x86): here the run fails with VG_ERANGE ("integer division by zero") before anything is
 * computed. Integer Pow with an integer exponent is computed exactly
 * by repeated squaring (wrapping); a negative exponent gives the truncated 1 / x^-y: 1 for x = 1,
 * +-1 for x = -1, else 0 (also 0 for x = 0, where ONNX Runtime gives an undefined cast of inf).
 * Mixed-type Pow computes in double (as numpy and ONNX Runtime do) and casts to the base's type,
 * saturating when the base is an integer. Max and Min propagate NaN (numpy's maximum/minimum);
 * Clip computes min(max(x, lo), hi), so lo > hi gives hi everywhere and NaN stays NaN; absent
 * bounds are the type's lowest and highest finite values.
 *
 * Speed: each (operator, dtype) pair has one kernel over a contiguous row where each input is
 * either contiguous or a repeated scalar; the N-d driver first drops size-1 axes and merges axes
 * both inputs walk contiguously, so same-shape and scalar-broadcast cases are one kernel call,
 * and anything else walks rows with an index counter. Short rows repeated along the batch
 * ([batch, 4] - [4]) are batched through per-node scratch holding copies of the repeated row.
 * Kernels are plain loops the compiler vectorises (the file asks for tree vectorisation, which -O2
 * leaves out, and for no trapping math so that selects on floats are if-converted: nothing here
 * reads the FP exception flags). Float Sigmoid and Tanh use a vectorisable e^x (within 3 ulp, see
 * ew_expf) instead of libm.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "no-trapping-math")
#define EW_IVDEP _Pragma("GCC ivdep")
#else
#define EW_IVDEP
#endif

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "op.h"

/* ---- dtype slots ----------------------------------------------------------------------------- */

enum { EW_F32, EW_F64, EW_I64, EW_I32, EW_I8, EW_U8, EW_BOOL, EW_NSLOT };

static int ew_slot(enum vg_dtype dt)
{
    switch (dt) {
    case VG_DT_FLOAT: return EW_F32;
    case VG_DT_DOUBLE: return EW_F64;
    case VG_DT_INT64: return EW_I64;
    case VG_DT_INT32: return EW_I32;
    case VG_DT_INT8: return EW_I8;
    case VG_DT_UINT8: return EW_U8;
    case VG_DT_BOOL: return EW_BOOL;
    default: return -1;
    }
}

static int ew_is_int_slot(int s)
{
    return s == EW_I64 || s == EW_I32 || s == EW_I8 || s == EW_U8;
}

/* ---- kernels --------------------------------------------------------------------------------- */

/*
 * A binary kernel computes o[0..n) from a and b, each either contiguous (step 1) or one value
 * repeated (step 0). `x` and `y` name the two operands in EXPR. No restrict: `o` may be `a` (Max
 * and Min fold into their output), which is safe because element i is read before it is written;
 * ivdep tells the vectoriser there is no dependence between iterations, so it needs no alias
 * checks.
 */

#define EW_BIN(name, TA, TB, TO, EXPR)                                                             \
    static void name(const void *pa, int sa, const void *pb, int sb, void *po, int64_t n)          \
    {                                                                                              \
        const TA *a = pa;                                                                          \
        const TB *b = pb;                                                                          \
        TO *o = po;                                                                                \
        if (sa && sb) {                                                                            \
            EW_IVDEP for (int64_t i = 0; i < n; i++)                                               \
            {                                                                                      \
                TA x = a[i];                                                                       \
                TB y = b[i];                                                                       \
                (void)x;                                                                           \
                (void)y;                                                                           \
                o[i] = (TO)(EXPR);                                                                 \
            }                                                                                      \
        } else if (sb) {                                                                           \
            TA x = a[0];                                                                           \
            (void)x;                                                                               \
            EW_IVDEP for (int64_t i = 0; i < n; i++)                                               \
            {                                                                                      \
                TB y = b[i];                                                                       \
                (void)y;                                                                           \
                o[i] = (TO)(EXPR);                                                                 \
            }                                                                                      \
        } else if (sa) {                                                                           \
            TB y = b[0];                                                                           \
            (void)y;                                                                               \
            EW_IVDEP for (int64_t i = 0; i < n; i++)                                               \
            {                                                                                      \
                TA x = a[i];                                                                       \
                (void)x;                                                                           \
                o[i] = (TO)(EXPR);                                                                 \
            }                                                                                      \
        } else {                                                                                   \
            TA x = a[0];                                                                           \
            TB y = b[0];                                                                           \
            (void)x;                                                                               \
            (void)y;                                                                               \
            TO v = (TO)(EXPR);                                                                     \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i] = v;                                                                          \
        }                                                                                          \
    }

/* Wrapping integer arithmetic without signed-overflow UB (int8/uint8 promote to int safely). */
#define EW_WRAP32(x, op, y) ((int32_t)((uint32_t)(x)op(uint32_t)(y)))
#define EW_WRAP64(x, op, y) ((int64_t)((uint64_t)(x)op(uint64_t)(y)))

/* Max/Min: the first operand wins when it is NaN, the second is NaN-propagating by fallthrough. */
#define EW_FMAX(x, y) (((x) > (y) || (x) != (x)) ? (x) : (y))
#define EW_FMIN(x, y) (((x) < (y) || (x) != (x)) ? (x) : (y))
#define EW_IMAX(x, y) ((x) > (y) ? (x) : (y))
#define EW_IMIN(x, y) ((x) < (y) ? (x) : (y))

/* Signed division that wraps INT_MIN / -1 instead of trapping; the divisor is known non-zero. */
#define EW_SDIV32(x, y) ((y) == -1 ? EW_WRAP32(0, -, x) : (x) / (y))
#define EW_SDIV64(x, y) ((y) == -1 ? EW_WRAP64(0, -, x) : (x) / (y))

EW_BIN(ew_add_f32, float, float, float, x + y)
EW_BIN(ew_add_f64, double, double, double, x + y)
EW_BIN(ew_add_i64, int64_t, int64_t, int64_t, EW_WRAP64(x, +, y))
EW_BIN(ew_add_i32, int32_t, int32_t, int32_t, EW_WRAP32(x, +, y))
EW_BIN(ew_add_i8, int8_t, int8_t, int8_t, x + y)
EW_BIN(ew_add_u8, uint8_t, uint8_t, uint8_t, x + y)

EW_BIN(ew_sub_f32, float, float, float, x - y)
EW_BIN(ew_sub_f64, double, double, double, x - y)
EW_BIN(ew_sub_i64, int64_t, int64_t, int64_t, EW_WRAP64(x, -, y))
EW_BIN(ew_sub_i32, int32_t, int32_t, int32_t, EW_WRAP32(x, -, y))
EW_BIN(ew_sub_i8, int8_t, int8_t, int8_t, x - y)
EW_BIN(ew_sub_u8, uint8_t, uint8_t, uint8_t, x - y)

EW_BIN(ew_mul_f32, float, float, float, x *y)
EW_BIN(ew_mul_f64, double, double, double, x *y)
EW_BIN(ew_mul_i64, int64_t, int64_t, int64_t, EW_WRAP64(x, *, y))
EW_BIN(ew_mul_i32, int32_t, int32_t, int32_t, EW_WRAP32(x, *, y))
EW_BIN(ew_mul_i8, int8_t, int8_t, int8_t, x *y)
EW_BIN(ew_mul_u8, uint8_t, uint8_t, uint8_t, x *y)

EW_BIN(ew_div_f32, float, float, float, x / y)
EW_BIN(ew_div_f64, double, double, double, x / y)
EW_BIN(ew_div_i64, int64_t, int64_t, int64_t, EW_SDIV64(x, y))
EW_BIN(ew_div_i32, int32_t, int32_t, int32_t, EW_SDIV32(x, y))
EW_BIN(ew_div_i8, int8_t, int8_t, int8_t, x / y)
EW_BIN(ew_div_u8, uint8_t, uint8_t, uint8_t, x / y)

EW_BIN(ew_max_f32, float, float, float, EW_FMAX(x, y))
EW_BIN(ew_max_f64, double, double, double, EW_FMAX(x, y))
EW_BIN(ew_max_i64, int64_t, int64_t, int64_t, EW_IMAX(x, y))
EW_BIN(ew_max_i32, int32_t, int32_t, int32_t, EW_IMAX(x, y))
EW_BIN(ew_max_i8, int8_t, int8_t, int8_t, EW_IMAX(x, y))
EW_BIN(ew_max_u8, uint8_t, uint8_t, uint8_t, EW_IMAX(x, y))

EW_BIN(ew_min_f32, float, float, float, EW_FMIN(x, y))
EW_BIN(ew_min_f64, double, double, double, EW_FMIN(x, y))
EW_BIN(ew_min_i64, int64_t, int64_t, int64_t, EW_IMIN(x, y))
EW_BIN(ew_min_i32, int32_t, int32_t, int32_t, EW_IMIN(x, y))
EW_BIN(ew_min_i8, int8_t, int8_t, int8_t, EW_IMIN(x, y))
EW_BIN(ew_min_u8, uint8_t, uint8_t, uint8_t, EW_IMIN(x, y))

/* Comparisons, one set per dtype; the output is bool (one byte, 0 or 1). */
#define EW_CMP_SET(sfx, T)                                                                         \
    EW_BIN(ew_eq_##sfx, T, T, uint8_t, x == y)                                                     \
    EW_BIN(ew_lt_##sfx, T, T, uint8_t, x < y)                                                      \
    EW_BIN(ew_gt_##sfx, T, T, uint8_t, x > y)                                                      \
    EW_BIN(ew_le_##sfx, T, T, uint8_t, x <= y)                                                     \
    EW_BIN(ew_ge_##sfx, T, T, uint8_t, x >= y)
EW_CMP_SET(f32, float)
EW_CMP_SET(f64, double)
EW_CMP_SET(i64, int64_t)
EW_CMP_SET(i32, int32_t)
EW_CMP_SET(i8, int8_t)
EW_CMP_SET(u8, uint8_t)
/* Bools compare as truth values, so a stray non-0/1 byte still means true. */
EW_BIN(ew_eq_b, uint8_t, uint8_t, uint8_t, (x != 0) == (y != 0))
EW_BIN(ew_and_b, uint8_t, uint8_t, uint8_t, (x != 0) & (y != 0))
EW_BIN(ew_or_b, uint8_t, uint8_t, uint8_t, (x != 0) | (y != 0))

/* ---- Pow ------------------------------------------------------------------------------------- */

/* x^y for integers, exact modulo 2^64; negative y gives the truncated 1 / x^-y (0 for x = 0). */
static int64_t ew_ipow(int64_t x, int64_t y)
{
    if (y < 0)
        return x == 1 ? 1 : x == -1 ? ((y & 1) ? -1 : 1) : 0;
    uint64_t r = 1, base = (uint64_t)x, e = (uint64_t)y;
    while (e) {
        if (e & 1)
            r *= base;
        base *= base;
        e >>= 1;
    }
    return (int64_t)r;
}

EW_BIN(ew_pow_f32, float, float, float, powf(x, y))
EW_BIN(ew_pow_f64, double, double, double, pow(x, y))
/* Pow(x, 2) is common (variance, squared error) and needs no libm call. */
EW_BIN(ew_square_f32, float, float, float, x *x)
EW_BIN(ew_square_f64, double, double, double, x *x)

/* Mixed-type and integer Pow: float bases in double precision, integer bases exact or saturated. */
#define EW_POW_FLOAT_BASE(sfx, TB)                                                                 \
    EW_BIN(ew_pow_f32_##sfx, float, TB, float, pow((double)x, (double)y))                          \
    EW_BIN(ew_pow_f64_##sfx, double, TB, double, pow(x, (double)y))
#define EW_POW_INT_BASE_INTEXP(sfx, TB)                                                            \
    EW_BIN(ew_pow_i32_##sfx, int32_t, TB, int32_t, (int32_t)ew_ipow(x, (int64_t)y))                \
    EW_BIN(ew_pow_i64_##sfx, int64_t, TB, int64_t, ew_ipow(x, (int64_t)y))
#define EW_POW_INT_BASE_FLOATEXP(sfx, TB)                                                          \
    EW_BIN(ew_pow_i32_##sfx, int32_t, TB, int32_t, vg_sat_i32(pow((double)x, (double)y)))          \
    EW_BIN(ew_pow_i64_##sfx, int64_t, TB, int64_t, vg_sat_i64(pow((double)x, (double)y)))

EW_BIN(ew_pow_f32_f64, float, double, float, pow((double)x, y))
EW_BIN(ew_pow_f64_f32, double, float, double, pow(x, (double)y))
EW_POW_FLOAT_BASE(i64, int64_t)
EW_POW_FLOAT_BASE(i32, int32_t)
EW_POW_FLOAT_BASE(i8, int8_t)
EW_POW_FLOAT_BASE(u8, uint8_t)
EW_POW_INT_BASE_INTEXP(i64, int64_t)
EW_POW_INT_BASE_INTEXP(i32, int32_t)
EW_POW_INT_BASE_INTEXP(i8, int8_t)
EW_POW_INT_BASE_INTEXP(u8, uint8_t)
EW_POW_INT_BASE_FLOATEXP(f32, float)
EW_POW_INT_BASE_FLOATEXP(f64, double)

/* [base slot][exponent slot]; NULL where the spec allows no such pair. */
static const vg_bin_fn ew_pow_fns[EW_NSLOT][EW_NSLOT] = {
    [EW_F32] = {ew_pow_f32, ew_pow_f32_f64, ew_pow_f32_i64, ew_pow_f32_i32, ew_pow_f32_i8,
                ew_pow_f32_u8, NULL},
    [EW_F64] = {ew_pow_f64_f32, ew_pow_f64, ew_pow_f64_i64, ew_pow_f64_i32, ew_pow_f64_i8,
                ew_pow_f64_u8, NULL},
    [EW_I64] = {ew_pow_i64_f32, ew_pow_i64_f64, ew_pow_i64_i64, ew_pow_i64_i32, ew_pow_i64_i8,
                ew_pow_i64_u8, NULL},
    [EW_I32] = {ew_pow_i32_f32, ew_pow_i32_f64, ew_pow_i32_i64, ew_pow_i32_i32, ew_pow_i32_i8,
                ew_pow_i32_u8, NULL},
};

/* ---- unary kernels --------------------------------------------------------------------------- */

/*
 * e^x for float in straight-line code the vectoriser turns into SIMD (libm's expf and tanhf are
 * calls, one element at a time; Sigmoid and Tanh dominate some MLPs). x = n ln2 + r with n rounded
 * by adding 1.5 * 2^23, ln2 split in an exact high part and a low correction, e^r by its Taylor
 * series to degree 7 (truncation < 1e-8 relative for |r| <= ln2 / 2), times 2^n built in two halves
 * so every factor is a normal float down to the denormal range and overflow yields inf. Measured
 * against double exp over [-120, 120]: at most 1.2 ulp. NaN propagates through the arithmetic.
 */
static inline float ew_expf(float x)
{
    const float shifter = 12582912.0f;
    float xc = x < -104.0f ? -104.0f : x; /* e^-104 underflows to 0 */
    xc = xc > 89.0f ? 89.0f : xc;         /* e^89 overflows to inf */
    float t = xc * 1.44269504f + shifter;
    float n = t - shifter;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits, b1, b2;
    memcpy(&bits, &t, sizeof(bits));
    int32_t ni = (int32_t)(bits - 0x4B400000u); /* the low mantissa bits of t hold n */
    int32_t n1 = ni / 2, n2 = ni - n1;
    b1 = (uint32_t)(n1 + 127) << 23;
    b2 = (uint32_t)(n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof(s1));
    memcpy(&s2, &b2, sizeof(s2));
    return p * s1 * s2;
}

/*
 * tanh|x| = m / (m + 2) with m = e^(2|x|) - 1; below 2|x| = 0.7 m comes from the Taylor series of
 * expm1 (degree 10), avoiding the cancellation in e^t - 1. tanh rounds to 1 in float from |x| = 9,
 * so 2|x| is capped at 20. Measured against double tanh: at most 3 ulp.
 */
static inline float ew_tanhf(float x)
{
    float t = 2.0f * fabsf(x);
    t = t > 20.0f ? 20.0f : t;
    float s = 1.0f / 3628800;
    s = s * t + 1.0f / 362880;
    s = s * t + 1.0f / 40320;
    s = s * t + 1.0f / 5040;
    s = s * t + 1.0f / 720;
    s = s * t + 1.0f / 120;
    s = s * t + 1.0f / 24;
    s = s * t + 1.0f / 6;
    s = s * t + 0.5f;
    s = s * t + 1.0f;
    s = s * t;
    float m = t < 0.7f ? s : ew_expf(t) - 1.0f;
    return copysignf(m / (m + 2.0f), x);
}

/* o[i] = EXPR(x = a[i]); `alpha` is LeakyRelu's slope (unused elsewhere). */
typedef void (*ew_un_fn)(const void *a, void *o, int64_t n, float alpha);

#define EW_UN(name, T, TO, EXPR)                                                                   \
    static void name(const void *pa, void *po, int64_t n, float alpha)                             \
    {                                                                                              \
        const T *a = pa;                                                                           \
        TO *o = po;                                                                                \
        (void)alpha;                                                                               \
        EW_IVDEP for (int64_t i = 0; i < n; i++)                                                   \
        {                                                                                          \
            T x = a[i];                                                                            \
            o[i] = (TO)(EXPR);                                                                     \
        }                                                                                          \
    }

EW_UN(ew_neg_f32, float, float, -x)
EW_UN(ew_neg_f64, double, double, -x)
EW_UN(ew_neg_i64, int64_t, int64_t, EW_WRAP64(0, -, x))
EW_UN(ew_neg_i32, int32_t, int32_t, EW_WRAP32(0, -, x))
EW_UN(ew_neg_i8, int8_t, int8_t, -x)

EW_UN(ew_abs_f32, float, float, fabsf(x))
EW_UN(ew_abs_f64, double, double, fabs(x))
EW_UN(ew_abs_i64, int64_t, int64_t, x < 0 ? EW_WRAP64(0, -, x) : x)
EW_UN(ew_abs_i32, int32_t, int32_t, x < 0 ? EW_WRAP32(0, -, x) : x)
EW_UN(ew_abs_i8, int8_t, int8_t, x < 0 ? -x : x)
EW_UN(ew_abs_u8, uint8_t, uint8_t, x)

EW_UN(ew_exp_f32, float, float, expf(x))
EW_UN(ew_exp_f64, double, double, exp(x))
EW_UN(ew_log_f32, float, float, logf(x))
EW_UN(ew_log_f64, double, double, log(x))
EW_UN(ew_sqrt_f32, float, float, sqrtf(x))
EW_UN(ew_sqrt_f64, double, double, sqrt(x))
EW_UN(ew_tanh_f32, float, float, ew_tanhf(x))
EW_UN(ew_tanh_f64, double, double, tanh(x))
/* exp(-x) overflows to inf for very negative x, giving the correct limit 0. */
EW_UN(ew_sigmoid_f32, float, float, 1.0f / (1.0f + ew_expf(-x)))
EW_UN(ew_sigmoid_f64, double, double, 1.0 / (1.0 + exp(-x)))

/* `x < 0 ? 0 : x` keeps NaN, like numpy's maximum(x, 0). */
EW_UN(ew_relu_f32, float, float, x < 0 ? 0.0f : x)
EW_UN(ew_relu_f64, double, double, x < 0 ? 0.0 : x)
EW_UN(ew_relu_i64, int64_t, int64_t, x < 0 ? 0 : x)
EW_UN(ew_relu_i32, int32_t, int32_t, x < 0 ? 0 : x)
EW_UN(ew_relu_i8, int8_t, int8_t, x < 0 ? 0 : x)
EW_UN(ew_lrelu_f32, float, float, x < 0 ? alpha * x : x)
EW_UN(ew_lrelu_f64, double, double, x < 0 ? (double)alpha * x : x)

EW_UN(ew_not_b, uint8_t, uint8_t, x == 0)

/* ---- Legacy broadcasting (the N-d walk itself is vg_binary_nd, tensor.c) --------------------- */

/*
 * Legacy (opset < 7) broadcasting of B onto A. Validates, sets out's shape to A's when `out` is
 * not NULL, and fills `b_strides` (A's rank entries) when not NULL.
 */
static int ew_legacy_layout(struct vg_kctx *c, const struct vg_tensor *a, const struct vg_tensor *b,
                            struct vg_tensor *out, int64_t *b_strides)
{
    char sa[160], sb[160];
    int64_t bcast = vg_attr_i(c->node, "broadcast", 0);
    int64_t axis = 0;
    int same = a->rank == b->rank;

    for (int i = 0; same && i < a->rank; i++)
        same = a->dims[i] == b->dims[i];
    if (same) {
        if (b_strides)
            vg_contig_strides(b, b_strides);
        goto ok;
    }
    if (!bcast)
        goto bad;
    if (b->rank > a->rank)
        goto bad;
    axis = vg_attr_i(c->node, "axis", a->rank - b->rank);
    if (axis < 0 || axis > a->rank - b->rank)
        goto bad;
    for (int i = 0; i < b->rank; i++)
        if (b->dims[i] != 1 && b->dims[i] != a->dims[axis + i])
            goto bad;
    if (b_strides) {
        int64_t st = 1;
        for (int i = a->rank - 1; i >= 0; i--) {
            int j = i - (int)axis;
            if (j < 0 || j >= b->rank) {
                b_strides[i] = 0;
                continue;
            }
            b_strides[i] = b->dims[j] == 1 ? 0 : st;
            st *= b->dims[j];
        }
    }
ok:
    if (out) {
        out->rank = a->rank;
        memcpy(out->dims, a->dims, sizeof(a->dims));
    }
    return 0;
bad:
    vg_shape_str(a, sa, sizeof(sa));
    vg_shape_str(b, sb, sizeof(sb));
    if (!bcast)
        return vg_kerr(c, VG_ESHAPE,
                       "shapes %s and %s differ; opset %lld broadcasts only with broadcast=1", sa,
                       sb, (long long)c->node->opset);
    return vg_kerr(c, VG_ESHAPE,
                   "shapes %s and %s do not match under opset %lld broadcasting (axis=%lld): B's "
                   "dims must equal A's (or be 1) from `axis` on",
                   sa, sb, (long long)c->node->opset, (long long)axis);
}

static int ew_legacy(const struct vg_kctx *c)
{
    return c->node->opset < 7;
}

/* ---- binary operators ------------------------------------------------------------------------ */

struct ew_binop {
    vg_bin_fn fns[EW_NSLOT];
    int out_bool;   /* comparisons and logic: output is bool */
    int int_divide; /* integer divisor must be non-zero */
};

static const struct ew_binop ew_add = {
    {ew_add_f32, ew_add_f64, ew_add_i64, ew_add_i32, ew_add_i8, ew_add_u8, NULL}, 0, 0};
static const struct ew_binop ew_sub = {
    {ew_sub_f32, ew_sub_f64, ew_sub_i64, ew_sub_i32, ew_sub_i8, ew_sub_u8, NULL}, 0, 0};
static const struct ew_binop ew_mul = {
    {ew_mul_f32, ew_mul_f64, ew_mul_i64, ew_mul_i32, ew_mul_i8, ew_mul_u8, NULL}, 0, 0};
static const struct ew_binop ew_div = {
    {ew_div_f32, ew_div_f64, ew_div_i64, ew_div_i32, ew_div_i8, ew_div_u8, NULL}, 0, 1};
static const struct ew_binop ew_max = {
    {ew_max_f32, ew_max_f64, ew_max_i64, ew_max_i32, ew_max_i8, ew_max_u8, NULL}, 0, 0};
static const struct ew_binop ew_min = {
    {ew_min_f32, ew_min_f64, ew_min_i64, ew_min_i32, ew_min_i8, ew_min_u8, NULL}, 0, 0};
static const struct ew_binop ew_equal = {
    {ew_eq_f32, ew_eq_f64, ew_eq_i64, ew_eq_i32, ew_eq_i8, ew_eq_u8, ew_eq_b}, 1, 0};
static const struct ew_binop ew_less = {
    {ew_lt_f32, ew_lt_f64, ew_lt_i64, ew_lt_i32, ew_lt_i8, ew_lt_u8, NULL}, 1, 0};
static const struct ew_binop ew_greater = {
    {ew_gt_f32, ew_gt_f64, ew_gt_i64, ew_gt_i32, ew_gt_i8, ew_gt_u8, NULL}, 1, 0};
static const struct ew_binop ew_less_eq = {
    {ew_le_f32, ew_le_f64, ew_le_i64, ew_le_i32, ew_le_i8, ew_le_u8, NULL}, 1, 0};
static const struct ew_binop ew_greater_eq = {
    {ew_ge_f32, ew_ge_f64, ew_ge_i64, ew_ge_i32, ew_ge_i8, ew_ge_u8, NULL}, 1, 0};
static const struct ew_binop ew_and = {{NULL, NULL, NULL, NULL, NULL, NULL, ew_and_b}, 1, 0};
static const struct ew_binop ew_or = {{NULL, NULL, NULL, NULL, NULL, NULL, ew_or_b}, 1, 0};

static int ew_check_arity(struct vg_kctx *c, int min_in, int max_in)
{
    if (c->n_in < min_in || (max_in > 0 && c->n_in > max_in))
        return vg_kerr(c, VG_EGRAPH, "takes %d..%d inputs, node lists %d", min_in, max_in, c->n_in);
    for (int i = 0; i < min_in; i++)
        if (!c->in[i])
            return vg_kerr(c, VG_EGRAPH, "input %d is required", i);
    if (c->n_out < 1 || !c->out[0])
        return vg_kerr(c, VG_EGRAPH, "output 0 is required");
    return 0;
}

static int ew_binary_init(struct vg_kctx *c, const struct ew_binop *op)
{
    int rc = ew_check_arity(c, 2, 2);
    if (rc)
        return rc;
    enum vg_dtype ta = c->in[0]->dtype, tb = c->in[1]->dtype;
    if (ta != tb)
        return vg_kerr(c, VG_ETYPE, "inputs have different types (%s and %s)", vg_dtype_name(ta),
                       vg_dtype_name(tb));
    int s = ew_slot(ta);
    if (s < 0 || !op->fns[s])
        return vg_kerr(c, VG_ETYPE, "input type %s is not supported", vg_dtype_name(ta));
    c->out[0]->dtype = op->out_bool ? VG_DT_BOOL : ta;
    return 0;
}

/* Strides of in[0], in[1] aligned to out[0] under the node's broadcasting rule. */
static int ew_binary_strides(struct vg_kctx *c, int64_t *sa, int64_t *sb)
{
    if (ew_legacy(c)) {
        vg_contig_strides(c->in[0], sa);
        return ew_legacy_layout(c, c->in[0], c->in[1], NULL, sb);
    }
    vg_broadcast_strides(c->in[0], c->out[0], sa);
    vg_broadcast_strides(c->in[1], c->out[0], sb);
    return 0;
}

static int ew_binary_infer(struct vg_kctx *c)
{
    int64_t sa[VG_MAX_RANK], sb[VG_MAX_RANK];
    int rc;

    if (ew_legacy(c)) {
        rc = ew_legacy_layout(c, c->in[0], c->in[1], c->out[0], NULL);
    } else {
        const struct vg_tensor *shapes[2] = {c->in[0], c->in[1]};
        rc = vg_broadcast_shape(c, 2, shapes, c->out[0]);
    }
    if (rc)
        return rc;
    rc = ew_binary_strides(c, sa, sb);
    if (rc)
        return rc;
    c->scratch_bytes = vg_binary_tile_bytes(c->out[0], sa, vg_dtype_size(c->in[0]->dtype), sb,
                                            vg_dtype_size(c->in[1]->dtype));
    return 0;
}

/* Runs `fn` over in[0], in[1] into out[0] with the node's broadcasting rule. */
static int ew_binary_exec(struct vg_kctx *c, vg_bin_fn fn)
{
    const struct vg_tensor *a = c->in[0], *b = c->in[1];
    struct vg_tensor *o = c->out[0];
    int64_t sa[VG_MAX_RANK], sb[VG_MAX_RANK];

    int rc = ew_binary_strides(c, sa, sb);
    if (rc)
        return rc;
    vg_binary_nd(fn, a->data, vg_dtype_size(a->dtype), sa, b->data, vg_dtype_size(b->dtype), sb,
                 o->data, vg_dtype_size(o->dtype), o, c->scratch, c->scratch_bytes);
    return 0;
}

/* Integer division by zero has no defined result: refuse the run (see the design note). */
static int ew_check_divisor(struct vg_kctx *c, const struct vg_tensor *b)
{
    int64_t n = vg_tensor_numel(b);
    int zero = 0;
    switch (b->dtype) {
    case VG_DT_INT64:
        for (int64_t i = 0; i < n; i++)
            zero |= ((const int64_t *)b->data)[i] == 0;
        break;
    case VG_DT_INT32:
        for (int64_t i = 0; i < n; i++)
            zero |= ((const int32_t *)b->data)[i] == 0;
        break;
    case VG_DT_INT8:
    case VG_DT_UINT8:
        for (int64_t i = 0; i < n; i++)
            zero |= ((const uint8_t *)b->data)[i] == 0;
        break;
    default: break;
    }
    if (zero)
        return vg_kerr(c, VG_ERANGE, "integer division by zero");
    return 0;
}

static int ew_binary_run(struct vg_kctx *c, const struct ew_binop *op)
{
    int s = ew_slot(c->in[0]->dtype);
    if (op->int_divide && ew_is_int_slot(s)) {
        int rc = ew_check_divisor(c, c->in[1]);
        if (rc)
            return rc;
    }
    return ew_binary_exec(c, op->fns[s]);
}

#define EW_BINARY_WRAPPERS(lname, desc)                                                            \
    static int lname##_init(struct vg_kctx *c)                                                     \
    {                                                                                              \
        return ew_binary_init(c, &desc);                                                           \
    }                                                                                              \
    static int lname##_run(struct vg_kctx *c)                                                      \
    {                                                                                              \
        return ew_binary_run(c, &desc);                                                            \
    }

EW_BINARY_WRAPPERS(add, ew_add)
EW_BINARY_WRAPPERS(sub, ew_sub)
EW_BINARY_WRAPPERS(mul, ew_mul)
EW_BINARY_WRAPPERS(div, ew_div)
EW_BINARY_WRAPPERS(equal, ew_equal)
EW_BINARY_WRAPPERS(less, ew_less)
EW_BINARY_WRAPPERS(greater, ew_greater)
EW_BINARY_WRAPPERS(less_eq, ew_less_eq)
EW_BINARY_WRAPPERS(greater_eq, ew_greater_eq)
EW_BINARY_WRAPPERS(logical_and, ew_and)
EW_BINARY_WRAPPERS(logical_or, ew_or)

/* ---- Pow ------------------------------------------------------------------------------------- */

static int pow_init(struct vg_kctx *c)
{
    int rc = ew_check_arity(c, 2, 2);
    if (rc)
        return rc;
    enum vg_dtype ta = c->in[0]->dtype, tb = c->in[1]->dtype;
    /* Before opset 12 base and exponent share one type. */
    if (c->node->opset < 12 && ta != tb)
        return vg_kerr(c, VG_ETYPE, "base and exponent have different types (%s and %s)",
                       vg_dtype_name(ta), vg_dtype_name(tb));
    int sa = ew_slot(ta), sb = ew_slot(tb);
    if (sa < 0 || sb < 0 || !ew_pow_fns[sa][sb])
        return vg_kerr(c, VG_ETYPE, "base type %s with exponent type %s is not supported",
                       vg_dtype_name(ta), vg_dtype_name(tb));
    c->out[0]->dtype = ta;
    return 0;
}

static int pow_run(struct vg_kctx *c)
{
    const struct vg_tensor *b = c->in[1];
    int sa = ew_slot(c->in[0]->dtype), sb = ew_slot(b->dtype);
    if (sa < 0 || sb < 0)
        return vg_kerr(c, VG_ETYPE, "unsupported types"); /* init rejected these already */
    vg_bin_fn fn = ew_pow_fns[sa][sb];

    if (sa == sb && vg_tensor_numel(b) == 1) {
        if (sa == EW_F32 && *(const float *)b->data == 2.0f)
            fn = ew_square_f32;
        else if (sa == EW_F64 && *(const double *)b->data == 2.0)
            fn = ew_square_f64;
    }
    return ew_binary_exec(c, fn);
}

/* ---- Max, Min (variadic) --------------------------------------------------------------------- */

static int ew_variadic_init(struct vg_kctx *c, const struct ew_binop *op)
{
    int rc = ew_check_arity(c, 1, 0);
    if (rc)
        return rc;
    enum vg_dtype t = c->in[0]->dtype;
    for (int i = 1; i < c->n_in; i++) {
        if (!c->in[i])
            return vg_kerr(c, VG_EGRAPH, "input %d is required", i);
        if (c->in[i]->dtype != t)
            return vg_kerr(c, VG_ETYPE, "input %d has type %s, input 0 has %s", i,
                           vg_dtype_name(c->in[i]->dtype), vg_dtype_name(t));
    }
    int s = ew_slot(t);
    if (s < 0 || !op->fns[s])
        return vg_kerr(c, VG_ETYPE, "input type %s is not supported", vg_dtype_name(t));
    c->out[0]->dtype = t;
    return 0;
}

static int max_init(struct vg_kctx *c)
{
    return ew_variadic_init(c, &ew_max);
}
static int max_run(struct vg_kctx *c)
{
    vg_variadic_run(c, ew_max.fns[ew_slot(c->out[0]->dtype)]);
    return 0;
}
static int min_init(struct vg_kctx *c)
{
    return ew_variadic_init(c, &ew_min);
}
static int min_run(struct vg_kctx *c)
{
    vg_variadic_run(c, ew_min.fns[ew_slot(c->out[0]->dtype)]);
    return 0;
}

/* ---- unary operators ------------------------------------------------------------------------- */

struct ew_unop {
    ew_un_fn fns[EW_NSLOT];
};

static const struct ew_unop ew_neg = {{ew_neg_f32, ew_neg_f64, ew_neg_i64, ew_neg_i32, ew_neg_i8}};
static const struct ew_unop ew_abs = {
    {ew_abs_f32, ew_abs_f64, ew_abs_i64, ew_abs_i32, ew_abs_i8, ew_abs_u8}};
static const struct ew_unop ew_exp = {{ew_exp_f32, ew_exp_f64}};
static const struct ew_unop ew_log = {{ew_log_f32, ew_log_f64}};
static const struct ew_unop ew_sqrt = {{ew_sqrt_f32, ew_sqrt_f64}};
static const struct ew_unop ew_tanh = {{ew_tanh_f32, ew_tanh_f64}};
static const struct ew_unop ew_sigmoid = {{ew_sigmoid_f32, ew_sigmoid_f64}};
static const struct ew_unop ew_relu = {
    {ew_relu_f32, ew_relu_f64, ew_relu_i64, ew_relu_i32, ew_relu_i8}};
static const struct ew_unop ew_lrelu = {{ew_lrelu_f32, ew_lrelu_f64}};
static const struct ew_unop ew_not = {{[EW_BOOL] = ew_not_b}};

static int ew_unary_init(struct vg_kctx *c, const struct ew_unop *op)
{
    int rc = ew_check_arity(c, 1, 1);
    if (rc)
        return rc;
    int s = ew_slot(c->in[0]->dtype);
    if (s < 0 || !op->fns[s])
        return vg_kerr(c, VG_ETYPE, "input type %s is not supported",
                       vg_dtype_name(c->in[0]->dtype));
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

static int ew_unary_infer(struct vg_kctx *c)
{
    c->out[0]->rank = c->in[0]->rank;
    memcpy(c->out[0]->dims, c->in[0]->dims, sizeof(c->out[0]->dims));
    return 0;
}

static int ew_unary_run(struct vg_kctx *c, const struct ew_unop *op, float alpha)
{
    op->fns[ew_slot(c->in[0]->dtype)](c->in[0]->data, c->out[0]->data, vg_tensor_numel(c->in[0]),
                                      alpha);
    return 0;
}

#define EW_UNARY_WRAPPERS(lname, desc)                                                             \
    static int lname##_init(struct vg_kctx *c)                                                     \
    {                                                                                              \
        return ew_unary_init(c, &desc);                                                            \
    }                                                                                              \
    static int lname##_run(struct vg_kctx *c)                                                      \
    {                                                                                              \
        return ew_unary_run(c, &desc, 0.0f);                                                       \
    }

EW_UNARY_WRAPPERS(neg, ew_neg)
EW_UNARY_WRAPPERS(abs, ew_abs)
EW_UNARY_WRAPPERS(exp, ew_exp)
EW_UNARY_WRAPPERS(log, ew_log)
EW_UNARY_WRAPPERS(sqrt, ew_sqrt)
EW_UNARY_WRAPPERS(tanh, ew_tanh)
EW_UNARY_WRAPPERS(sigmoid, ew_sigmoid)
EW_UNARY_WRAPPERS(relu, ew_relu)
EW_UNARY_WRAPPERS(logical_not, ew_not)

static int lrelu_init(struct vg_kctx *c)
{
    return ew_unary_init(c, &ew_lrelu);
}

static int lrelu_run(struct vg_kctx *c)
{
    return ew_unary_run(c, &ew_lrelu, vg_attr_f(c->node, "alpha", 0.01f));
}

/* ---- Clip ------------------------------------------------------------------------------------ */

union ew_scalar {
    float f32;
    double f64;
    int64_t i64;
    int32_t i32;
    int8_t i8;
    uint8_t u8;
};

typedef void (*ew_clip_fn)(const void *a, void *o, int64_t n, const void *lo, const void *hi);

#define EW_CLIP(name, T)                                                                           \
    static void name(const void *pa, void *po, int64_t n, const void *plo, const void *phi)        \
    {                                                                                              \
        const T *a = pa;                                                                           \
        T *o = po;                                                                                 \
        T lo = *(const T *)plo, hi = *(const T *)phi;                                              \
        EW_IVDEP for (int64_t i = 0; i < n; i++)                                                   \
        {                                                                                          \
            T v = a[i] < lo ? lo : a[i];                                                           \
            o[i] = v > hi ? hi : v;                                                                \
        }                                                                                          \
    }

EW_CLIP(ew_clip_f32, float)
EW_CLIP(ew_clip_f64, double)
EW_CLIP(ew_clip_i64, int64_t)
EW_CLIP(ew_clip_i32, int32_t)
EW_CLIP(ew_clip_i8, int8_t)
EW_CLIP(ew_clip_u8, uint8_t)

static const ew_clip_fn ew_clip_fns[EW_NSLOT] = {ew_clip_f32, ew_clip_f64, ew_clip_i64,
                                                 ew_clip_i32, ew_clip_i8,  ew_clip_u8};

/* The type's lowest (hi = 0) or highest (hi = 1) finite value, or a float attribute converted. */
static void ew_bound(int slot, int hi, const struct vg_attr *attr, union ew_scalar *v)
{
    double d = attr ? (double)attr->f : 0.0;
    switch (slot) {
    case EW_F32: v->f32 = attr ? attr->f : hi ? FLT_MAX : -FLT_MAX; break;
    case EW_F64: v->f64 = attr ? d : hi ? DBL_MAX : -DBL_MAX; break;
    case EW_I64: v->i64 = attr ? vg_sat_i64(d) : hi ? INT64_MAX : INT64_MIN; break;
    case EW_I32: v->i32 = attr ? vg_sat_i32(d) : hi ? INT32_MAX : INT32_MIN; break;
    case EW_I8:
        v->i8 = (int8_t)(attr ? (d < -128 ? -128 : d > 127 ? 127 : (int)d) : hi ? 127 : -128);
        break;
    case EW_U8:
        v->u8 = (uint8_t)(attr ? (d < 0 ? 0 : d > 255 ? 255 : (int)d) : hi ? 255 : 0);
        break;
    default: break;
    }
}

static int clip_init(struct vg_kctx *c)
{
    int rc = ew_check_arity(c, 1, c->node->opset < 11 ? 1 : 3);
    if (rc)
        return rc;
    enum vg_dtype t = c->in[0]->dtype;
    int s = ew_slot(t);
    if (s < 0 || !ew_clip_fns[s])
        return vg_kerr(c, VG_ETYPE, "input type %s is not supported", vg_dtype_name(t));
    for (int i = 1; i < c->n_in; i++)
        if (c->in[i] && c->in[i]->dtype != t)
            return vg_kerr(c, VG_ETYPE, "input %d (%s) has type %s, input has %s", i,
                           i == 1 ? "min" : "max", vg_dtype_name(c->in[i]->dtype),
                           vg_dtype_name(t));
    c->out[0]->dtype = t;
    return 0;
}

static int clip_infer(struct vg_kctx *c)
{
    for (int i = 1; i < c->n_in; i++) {
        if (c->in[i] && vg_tensor_numel(c->in[i]) != 1) {
            char s[160];
            vg_shape_str(c->in[i], s, sizeof(s));
            return vg_kerr(c, VG_ESHAPE, "%s must be a scalar, has shape %s",
                           i == 1 ? "min" : "max", s);
        }
    }
    return ew_unary_infer(c);
}

static int clip_run(struct vg_kctx *c)
{
    int s = ew_slot(c->in[0]->dtype);
    union ew_scalar lo, hi;
    const void *plo = &lo, *phi = &hi;

    if (c->node->opset < 11) {
        ew_bound(s, 0, vg_attr_find(c->node, "min"), &lo);
        ew_bound(s, 1, vg_attr_find(c->node, "max"), &hi);
    } else {
        ew_bound(s, 0, NULL, &lo);
        ew_bound(s, 1, NULL, &hi);
        if (c->n_in > 1 && c->in[1])
            plo = c->in[1]->data;
        if (c->n_in > 2 && c->in[2])
            phi = c->in[2]->data;
    }
    ew_clip_fns[s](c->in[0]->data, c->out[0]->data, vg_tensor_numel(c->in[0]), plo, phi);
    return 0;
}

/* ---- table ----------------------------------------------------------------------------------- */

#define EW_BINARY(name, lname)                                                                     \
    {                                                                                              \
        "", name, 1, 0, lname##_init, ew_binary_infer, lname##_run, NULL, 0, 2                     \
    }
#define EW_UNARY(name, lname)                                                                      \
    {                                                                                              \
        "", name, 1, 0, lname##_init, ew_unary_infer, lname##_run, NULL, 0, 1                      \
    }

const struct vg_op vg_ops_elementwise[] = {
    EW_BINARY("Add", add),
    EW_BINARY("Sub", sub),
    EW_BINARY("Mul", mul),
    EW_BINARY("Div", div),
    EW_BINARY("Pow", pow),
    EW_BINARY("Equal", equal),
    EW_BINARY("Less", less),
    EW_BINARY("Greater", greater),
    {"", "LessOrEqual", 12, 0, less_eq_init, ew_binary_infer, less_eq_run, NULL, 0, 2},
    {"", "GreaterOrEqual", 12, 0, greater_eq_init, ew_binary_infer, greater_eq_run, NULL, 0, 2},
    EW_BINARY("And", logical_and),
    EW_BINARY("Or", logical_or),
    {"", "Max", 1, 0, max_init, vg_variadic_infer, max_run, NULL, 0, 1},
    {"", "Min", 1, 0, min_init, vg_variadic_infer, min_run, NULL, 0, 1},
    EW_UNARY("Neg", neg),
    EW_UNARY("Abs", abs),
    EW_UNARY("Exp", exp),
    EW_UNARY("Log", log),
    EW_UNARY("Sqrt", sqrt),
    EW_UNARY("Tanh", tanh),
    EW_UNARY("Sigmoid", sigmoid),
    EW_UNARY("Relu", relu),
    EW_UNARY("LeakyRelu", lrelu),
    EW_UNARY("Not", logical_not),
    {"", "Clip", 1, 0, clip_init, clip_infer, clip_run, NULL, 0, 1},
    {0},
};
