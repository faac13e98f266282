/*
 * multipart/form-data (RFC 7578) over a body that is already buffered whole (http.c caps it):
 * finding one field without copying. libmicrohttpd's post processor streams fields in pieces,
 * which would only mean copying them back together here.
 *
 * Accepted: the boundary parameter quoted or not; CRLF line ends (bare LF too); a preamble before
 * the first boundary; parts' headers of any case; Content-Disposition: form-data; name="..."
 * (quoted or token). A delimiter is "--boundary" at the start of a line followed by "--" or
 * the end of the line (so "--boundary" inside the data, followed by anything else, is data). The
 * first part with the name wins. A body with no closing boundary is malformed.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "server/server.h"

#define MAX_BOUNDARY 70

int vg_media_type_is(const char *ct, const char *type)
{
    size_t n = strlen(type);
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, type, n))
        return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* The boundary parameter of the Content-Type into out (NUL-terminated). */
static int get_boundary(const char *ct, char *out, size_t size)
{
    const char *p = ct;
    while ((p = strcasestr(p, "boundary="))) {
        if (p == ct || p[-1] == ';' || p[-1] == ' ' || p[-1] == '\t')
            break;
        p++;
    }
    if (!p)
        return -1;
    p += 9;
    size_t n = 0;
    if (*p == '"') {
        p++;
        while (p[n] && p[n] != '"')
            n++;
        if (p[n] != '"')
            return -1;
    } else {
        while (p[n] && p[n] != ';' && p[n] != ' ' && p[n] != '\t')
            n++;
    }
    if (n == 0 || n > MAX_BOUNDARY || n >= size)
        return -1;
    memcpy(out, p, n);
    out[n] = 0;
    return 0;
}

/* The value of header `name` in the header block [h, end), or NULL; *vlen its length. */
static const char *find_header(const char *h, const char *end, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    while (h < end) {
        const char *eol = memchr(h, '\n', (size_t)(end - h));
        if (!eol)
            eol = end;
        const char *line_end = eol > h && eol[-1] == '\r' ? eol - 1 : eol;
        if ((size_t)(line_end - h) > nl && !strncasecmp(h, name, nl) && h[nl] == ':') {
            const char *v = h + nl + 1;
            while (v < line_end && (*v == ' ' || *v == '\t'))
                v++;
            *vlen = (size_t)(line_end - v);
            return v;
        }
        h = eol + 1;
    }
    return NULL;
}

/* Whether a Content-Disposition value names field `name`. */
static int names_field(const char *v, size_t vlen, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + 5 <= vlen; i++) {
        if (strncasecmp(v + i, "name=", 5) ||
            (i > 0 && v[i - 1] != ';' && v[i - 1] != ' ' && v[i - 1] != '\t'))
            continue;
        const char *p = v + i + 5;
        size_t rest = vlen - i - 5;
        if (rest && *p == '"') {
            return rest >= nl + 2 && !memcmp(p + 1, name, nl) && p[1 + nl] == '"';
        }
        return rest >= nl && !memcmp(p, name, nl) &&
               (rest == nl || p[nl] == ';' || p[nl] == ' ' || p[nl] == '\t');
    }
    return 0;
}

int vg_multipart_field(const char *content_type, const char *body, size_t body_len,
                       const char *name, const char **data, size_t *len, const char **part_type,
                       size_t *part_type_len, char *msg, size_t size)
{
    char boundary[MAX_BOUNDARY + 1];
    char delim[MAX_BOUNDARY + 4];
    if (!content_type || get_boundary(content_type, boundary, sizeof boundary)) {
        snprintf(msg, size,
                 "malformed multipart/form-data: the Content-Type has no valid boundary "
                 "parameter");
        return -1;
    }
    int dl = snprintf(delim, sizeof delim, "--%s", boundary);
    const char *end = body + body_len;
    const char *p = memmem(body, body_len, delim, (size_t)dl);
    if (!p) {
        snprintf(msg, size, "malformed multipart/form-data: the boundary never appears");
        return -1;
    }
    for (;;) {
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return 0; /* the closing boundary: no such field */
        /* the rest of the boundary line */
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        const char *headers = eol + 1;
        /* headers end at an empty line */
        const char *hend = NULL, *content = NULL;
        for (const char *q = headers; q < end;) {
            const char *e = memchr(q, '\n', (size_t)(end - q));
            if (!e)
                break;
            if (e == q || (e == q + 1 && *q == '\r')) {
                hend = q;
                content = e + 1;
                break;
            }
            q = e + 1;
        }
        if (!content)
            break;
        /* the part ends at CRLF--boundary (or LF--boundary) */
        const char *next = NULL;
        for (const char *q = content; q < end;) {
            const char *m = memmem(q, (size_t)(end - q), delim, (size_t)dl);
            if (!m)
                break;
            /* a delimiter starts a line and ends with "--" or the end of its line */
            const char *after = m + dl;
            while (after < end && (*after == ' ' || *after == '\t'))
                after++;
            int ends = (end - after >= 2 && after[0] == '-' && after[1] == '-') ||
                       (after < end && *after == '\n') ||
                       (end - after >= 2 && after[0] == '\r' && after[1] == '\n');
            if (m > content && m[-1] == '\n' && ends) {
                next = m;
                break;
            }
            q = m + 1;
        }
        if (!next)
            break;
        const char *cend = next - 1;
        if (cend > content && cend[-1] == '\r')
            cend--;
        size_t vlen;
        const char *cd = find_header(headers, hend, "Content-Disposition", &vlen);
        if (cd && names_field(cd, vlen, name)) {
            *data = content;
            *len = (size_t)(cend - content);
            size_t tl = 0;
            const char *t = find_header(headers, hend, "Content-Type", &tl);
            *part_type = t;
            *part_type_len = t ? tl : 0;
            return 1;
        }
        p = next;
    }
    snprintf(msg, size, "malformed multipart/form-data: a part is not terminated by the boundary");
    return -1;
}
