/*
 * Minimal JSON writer for the command line's output (RFC 8259): strings with the mandatory
 * escapes (quote, backslash, U+0000..U+001F) and numbers. JSON has no NaN or infinity, so those
 * are written as null; callers document it. Output only: the CLI never parses JSON.
 */
#include <inttypes.h>
#include <math.h>

#include "cli/cli.h"
#include "server/jsonw.h" /* vg_jw_utf8_len */

void vg_json_str(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    putc('"', f);
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            putc('\\', f);
            putc((int)c, f);
            p++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            case '\b': fputs("\\b", f); break;
            case '\f': fputs("\\f", f); break;
            default: fprintf(f, "\\u%04x", c); break;
            }
            p++;
        } else {
            int n = vg_jw_utf8_len(p);
            if (n == 0) {
                fputs("\\ufffd", f);
                p++;
            } else {
                fwrite(p, 1, (size_t)n, f);
                p += n;
            }
        }
    }
    putc('"', f);
}

void vg_json_f32(FILE *f, float v)
{
    if (!isfinite(v))
        fputs("null", f);
    else
        fprintf(f, "%.9g", (double)v);
}

void vg_json_f64(FILE *f, double v)
{
    if (!isfinite(v))
        fputs("null", f);
    else
        fprintf(f, "%.17g", v);
}

void vg_json_i64(FILE *f, int64_t v)
{
    fprintf(f, "%" PRId64, v);
}
