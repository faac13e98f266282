/*
 * The JSON writer (jsonw.h).
 *
 * FP32 at a fraction of printf's cost: for each digit count the digits are a * 10^k rounded in
 * double arithmetic, or printf's own where that product lies too near a tie to trust; strtof
 * checks each candidate, so the text always reads back exactly. Checked against printf for every
 * float (every bit pattern of the sign bit clear; the sign only adds a '-'): the text is that of
 * the first "%.<d>g" that reads back, d counting up from 1 for subnormals and from 6 otherwise
 * (which is the shortest: see fmt_f32). FP64 goes through printf.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "server/jsonw.h"

#define INITIAL_CAP 256

void vg_jw_init(struct vg_jw *jw, size_t max_bytes)
{
    /* max + 1 bytes (the NUL) must be countable */
    *jw = (struct vg_jw){.max = max_bytes < SIZE_MAX ? max_bytes : SIZE_MAX - 1};
}

void vg_jw_release(struct vg_jw *jw)
{
    free(jw->data);
    vg_jw_init(jw, jw->max);
}

static int jw_fail(struct vg_jw *jw)
{
    free(jw->data);
    jw->data = NULL;
    jw->len = jw->cap = 0;
    jw->failed = 1;
    return -1;
}

int vg__jw_grow(struct vg_jw *jw, size_t n)
{
    if (jw->failed || n > jw->max - jw->len)
        return jw_fail(jw);
    size_t need = jw->len + n + 1; /* the NUL vg_jw_take adds */
    size_t cap = jw->cap ? jw->cap : INITIAL_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > jw->max + 1)
        cap = jw->max + 1;
    char *p = realloc(jw->data, cap);
    if (!p)
        return jw_fail(jw);
    jw->data = p;
    jw->cap = cap;
    return 0;
}

char *vg_jw_take(struct vg_jw *jw, size_t *len)
{
    *len = 0;
    if (vg_jw_reserve(jw, 0))
        return NULL;
    char *text = jw->data;
    text[jw->len] = 0;
    *len = jw->len;
    vg_jw_init(jw, jw->max);
    return text;
}

void vg_jw_printf(struct vg_jw *jw, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = jw->cap - jw->len;
    int n = vsnprintf(room ? jw->data + jw->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        jw_fail(jw);
        return;
    }
    if ((size_t)n >= room) {
        if (vg_jw_reserve(jw, (size_t)n))
            return;
        va_start(ap, fmt);
        vsnprintf(jw->data + jw->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    jw->len += (size_t)n;
}

/* ---- Strings --------------------------------------------------------------------------------- */

int vg_jw_utf8_len(const unsigned char *s)
{
    unsigned c = s[0], cp, min;
    int n;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    cp = c & (0x3fu >> (n - 1));
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0; /* also stops at the terminating NUL */
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void vg_jw_str(struct vg_jw *jw, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);
    if (n > (SIZE_MAX - 2) / 6) {
        jw_fail(jw);
        return;
    }
    if (vg_jw_reserve(jw, n * 6 + 2))
        return;
    char *o = jw->data + jw->len;
    *o++ = '"';
    while (*p) {
        unsigned c = *p;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)c;
            p++;
        } else if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
            p++;
        } else if (c < 0x20) {
            *o++ = '\\';
            switch (c) {
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            default:
                memcpy(o, "u00", 3);
                o[3] = hex[c >> 4];
                o[4] = hex[c & 15];
                o += 5;
                break;
            }
            p++;
        } else {
            int k = vg_jw_utf8_len(p);
            if (k == 0) {
                memcpy(o, "\\ufffd", 6);
                o += 6;
                p++;
            } else {
                memcpy(o, p, (size_t)k);
                o += k;
                p += k;
            }
        }
    }
    *o++ = '"';
    jw->len = (size_t)(o - jw->data);
}

/* ---- Numbers --------------------------------------------------------------------------------- */

/* a * 10^k, correctly rounded while |k| <= 22 (powers of ten exact in a double), close beyond. */
static double scale10(double a, int k)
{
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    for (; k > 22; k -= 22)
        a *= 1e22;
    for (; k < -22; k += 22)
        a /= 1e22;
    return k >= 0 ? a * p10[k] : a / p10[-k];
}

/*
 * a * 10^k rounded to an integer. Sets *tie when a * 10^k lies so close to halfway between two
 * integers that the roundings in scale10 (a few units in the last place) may have carried it
 * across: those digits must come from printf. For a float that is about one digit count in 10^5.
 */
static uint64_t scaled_digits(double a, int k, int *tie)
{
    double s = scale10(a, k);
    if (fabs(s - floor(s) - 0.5) < s * 0x1p-44)
        *tie = 1;
    return (uint64_t)llrint(s);
}

/*
 * The decimal m * 10^(exp - digits + 1), m having `digits` digits, as printf's %g would print it
 * (trailing zeros dropped; exponent form when exp < -4 or exp >= digits). Room for 32 bytes.
 */
static size_t fmt_decimal(char *dst, int negative, uint64_t m, int digits, int exp)
{
    char d[20] = "";
    for (int i = digits - 1; i >= 0; i--, m /= 10)
        d[i] = (char)('0' + m % 10);
    int scientific = exp < -4 || exp >= digits;
    while (digits > 1 && d[digits - 1] == '0')
        digits--;
    size_t n = 0;
    if (negative)
        dst[n++] = '-';
    if (scientific) {
        dst[n++] = d[0];
        if (digits > 1) {
            dst[n++] = '.';
            memcpy(dst + n, d + 1, (size_t)digits - 1);
            n += (size_t)digits - 1;
        }
        dst[n++] = 'e';
        dst[n++] = exp < 0 ? '-' : '+';
        int x = exp < 0 ? -exp : exp;
        if (x >= 100)
            dst[n++] = (char)('0' + x / 100);
        dst[n++] = (char)('0' + x / 10 % 10);
        dst[n++] = (char)('0' + x % 10);
    } else if (exp < 0) {
        dst[n++] = '0';
        dst[n++] = '.';
        for (int i = -1; i > exp; i--)
            dst[n++] = '0';
        memcpy(dst + n, d, (size_t)digits);
        n += (size_t)digits;
    } else {
        for (int i = 0; i <= exp; i++)
            dst[n++] = i < digits ? d[i] : '0';
        if (digits > exp + 1) {
            dst[n++] = '.';
            memcpy(dst + n, d + exp + 1, (size_t)(digits - exp - 1));
            n += (size_t)(digits - exp - 1);
        }
    }
    return n;
}

/* FP32 at dst (room for 32 bytes), as the file's note says; %.9g, which always reads back, is
 * the fallback. */
static size_t fmt_f32(char *dst, float v)
{
    static const uint64_t p10[] = {1,      10,      100,      1000,      10000,
                                   100000, 1000000, 10000000, 100000000, 1000000000};
    if (v == 0 && signbit(v)) {
        memcpy(dst, "-0", 2);
        return 2;
    }
    if (fabsf(v) < 16777216.0f && v == (float)(int32_t)v) /* range first: casts can overflow */
        return vg__jw_fmt_i64(dst, (int32_t)v);
    if (!isfinite(v)) {
        memcpy(dst, "null", 4);
        return 4;
    }
    double a = fabs((double)v);
    int exp0 = (int)floor(log10(a));
    /* A normal float's gap to its neighbours is under 1.2e-7 of it, finer than 6 digits can tell
     * apart, so whenever fewer digits read back the 6 correctly rounded ones end in zeros and
     * print as those fewer; a subnormal's gap can be far wider (up to all of it at 1e-45). */
    for (int digits = a < FLT_MIN ? 1 : 6; digits <= 9; digits++) {
        int exp = exp0, tie = 0;
        uint64_t m = scaled_digits(a, digits - 1 - exp, &tie);
        if (m >= p10[digits]) { /* log10 rounded up past a power of ten, or m rounded up to one */
            exp++;
            m = scaled_digits(a, digits - 1 - exp, &tie);
        } else if (m < p10[digits - 1]) {
            exp--;
            m = scaled_digits(a, digits - 1 - exp, &tie);
        }
        size_t n;
        if (tie)
            n = (size_t)snprintf(dst, 32, "%.*g", digits, (double)v);
        else if (m < p10[digits - 1] || m >= p10[digits])
            break;
        else
            n = fmt_decimal(dst, v < 0, m, digits, exp);
        dst[n] = 0;
        if (strtof(dst, NULL) == v)
            return n;
    }
    return (size_t)snprintf(dst, 32, "%.9g", (double)v);
}

/* Shortest %.<15..17>g that reads back as v (from 1 digit for subnormals, as fmt_f32 says);
 * room for 32 bytes. */
static size_t fmt_f64(char *dst, double v)
{
    if (v == 0 && signbit(v)) {
        memcpy(dst, "-0", 2);
        return 2;
    }
    if (fabs(v) < 2147483647.0 && v == (double)(int32_t)v)
        return vg__jw_fmt_i64(dst, (int32_t)v);
    if (!isfinite(v)) {
        memcpy(dst, "null", 4);
        return 4;
    }
    int n = 0;
    for (int digits = fabs(v) < DBL_MIN ? 1 : 15; digits <= 17; digits++) {
        n = snprintf(dst, 32, "%.*g", digits, v);
        if (digits == 17 || strtod(dst, NULL) == v)
            break;
    }
    return (size_t)n;
}

void vg_jw_f32(struct vg_jw *jw, float v)
{
    if (vg_jw_reserve(jw, 32))
        return;
    jw->len += fmt_f32(jw->data + jw->len, v);
}

void vg_jw_f64(struct vg_jw *jw, double v)
{
    if (vg_jw_reserve(jw, 32))
        return;
    jw->len += fmt_f64(jw->data + jw->len, v);
}

/* ---- Values ---------------------------------------------------------------------------------- */

const char *vg_json_kind(const struct cJSON *v)
{
    if (!v)
        return "nothing";
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    return "an object";
}
