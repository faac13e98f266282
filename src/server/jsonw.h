/*
 * vigil server: the JSON writer that builds the response bodies of /predict and /v2, error
 * bodies and the access log, straight into one malloc'd buffer (no cJSON tree).
 *
 * Output is RFC 8259 text:
 *   strings  '"' and '\' escaped; \b \f \n \r \t for those controls and \u00xx for the other
 *            U+0000..U+001F; valid UTF-8 (and DEL) kept as is; each byte that does not start a
 *            valid UTF-8 sequence (overlong forms, surrogates and code points past U+10FFFF
 *            included) becomes \ufffd, so the text is valid JSON whatever a string holds.
 *   floats   the fewest significant digits that read back as the same value (at most 9 for
 *            FP32, 17 for FP64; of equally few, the nearest), laid out as printf's %g; integral
 *            values below 2^24 (FP32) or 2^31 (FP64) in magnitude as plain integers; -0 as "-0";
 *            NaN and infinities, which JSON lacks, as null.
 *
 * Size: a writer has a cap (max_bytes). The first append that would pass it, or whose allocation
 * fails, frees the buffer and sets `failed`; every later append is a no-op, so a caller builds the
 * whole text and checks once at the end. A string is reserved at its worst case (6 bytes a byte)
 * before it is escaped.
 *
 * A writer belongs to one thread at a time; the functions keep no other state.
 */
#ifndef VIGIL_SERVER_JSONW_H
#define VIGIL_SERVER_JSONW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The largest response body a handler builds (/predict, /v2 infer). */
#define VG_JW_MAX_RESPONSE_BYTES ((size_t)512 << 20)

struct cJSON;

struct vg_jw {
    char *data;      /* malloc'd, with room for a final NUL; NULL before the first append */
    size_t len, cap; /* bytes written; bytes allocated (cap > len once data is allocated) */
    size_t max;      /* cap on len */
    int failed;      /* an append passed max or ran out of memory; data is then NULL */
};

/* An empty writer that holds at most max_bytes. Allocates nothing. */
void vg_jw_init(struct vg_jw *jw, size_t max_bytes);
/* Frees the buffer; the writer is empty (and not failed) again, with the same cap. */
void vg_jw_release(struct vg_jw *jw);
/* Empties the writer but keeps its buffer, for a writer reused line after line. */
static inline void vg_jw_reset(struct vg_jw *jw)
{
    jw->len = 0;
    jw->failed = 0;
}
/*
 * Hands over the text: a malloc'd, NUL-terminated buffer the caller frees (for vg_reply_raw),
 * its length (without the NUL) in *len; the writer is left empty, ready for reuse. NULL (and
 * *len = 0) when the writer has failed.
 */
char *vg_jw_take(struct vg_jw *jw, size_t *len);

/* Internal: the slow path of vg_jw_reserve. */
int vg__jw_grow(struct vg_jw *jw, size_t n);

/* Makes room for n more bytes. 0, or -1 when the writer has failed (now or before). */
static inline int vg_jw_reserve(struct vg_jw *jw, size_t n)
{
    return jw->cap - jw->len > n ? 0 : vg__jw_grow(jw, n);
}

/* Appends n raw bytes (already JSON: punctuation, keys, numbers). */
static inline void vg_jw_mem(struct vg_jw *jw, const void *s, size_t n)
{
    if (vg_jw_reserve(jw, n))
        return;
    memcpy(jw->data + jw->len, s, n);
    jw->len += n;
}

/* Appends a string literal raw (the "" concatenation refuses anything but a literal). */
#define vg_jw_lit(jw, s) vg_jw_mem((jw), "" s, sizeof(s) - 1)

static inline void vg_jw_char(struct vg_jw *jw, char c)
{
    if (vg_jw_reserve(jw, 1))
        return;
    jw->data[jw->len++] = c;
}

/* Internal: the decimal digits of v at dst (room for 20 bytes); returns their count. */
static inline size_t vg__jw_fmt_i64(char *dst, int64_t v)
{
    char digits[20];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        dst[len++] = '-';
    while (n)
        dst[len++] = digits[--n];
    return len;
}

static inline void vg_jw_i64(struct vg_jw *jw, int64_t v)
{
    if (vg_jw_reserve(jw, 20))
        return;
    jw->len += vg__jw_fmt_i64(jw->data + jw->len, v);
}

/* Appends s as a JSON string, quotes included, escaped as the note above says. NULL is "". */
void vg_jw_str(struct vg_jw *jw, const char *s);
/* Floats as the note above says: shortest round-trip, null when not finite. */
void vg_jw_f32(struct vg_jw *jw, float v);
void vg_jw_f64(struct vg_jw *jw, double v);
/* Appends printf output raw (the caller keeps it valid JSON). */
void vg_jw_printf(struct vg_jw *jw, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Length of the valid UTF-8 sequence at s (1 to 4; 1 for ASCII, NUL included), or 0 when the
 * bytes there are not one. Reads no further than the first byte that breaks the sequence. */
int vg_jw_utf8_len(const unsigned char *s);

/* What a JSON value is, for error messages: "a string", "a number", "a boolean", "null",
 * "an array", "an object"; "nothing" for NULL. */
const char *vg_json_kind(const struct cJSON *v);

#endif
