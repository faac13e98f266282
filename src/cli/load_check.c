/*
 * Checks of every answer `vigil load` receives, without allocating: a JSON validator (RFC 8259:
 * the value grammar, string escapes, UTF-8 in strings, nesting capped at 64 levels) that walks
 * the top-level object of an answer and hands back the raw text of the members the checks need.
 * Numbers are converted with strtod only for the few members that are checked by value.
 *
 * cJSON would do the same in a few lines, but allocates a tree per answer; at 20,000+ answers a
 * second that is the generator's largest cost after the system calls.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/load.h"

#define MAX_DEPTH 64
#define MAX_NAME 512 /* class names compared after unescaping, at most this long */

struct jp {
    const char *p, *end;
    int depth;
};

static void ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* Length of the UTF-8 sequence at p (strict: no overlongs, surrogates or > U+10FFFF), 0 if
 * invalid or cut by end. */
static int utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], cp, min;
    int n;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000;
    else
        return 0;
    if (end - p < n)
        return 0;
    cp = c & (0x3fu >> (n - 1));
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A string at j->p ('"'): *s, *n get the raw text between the quotes. */
static int string(struct jp *j, const char **s, size_t *n)
{
    if (j->p >= j->end || *j->p != '"')
        return -1;
    const char *start = ++j->p;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            *s = start;
            *n = (size_t)(j->p - start);
            j->p++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (j->end - j->p < 2)
                return -1;
            char e = j->p[1];
            if (e == 'u') {
                if (j->end - j->p < 6 || hex4(j->p + 2) < 0)
                    return -1;
                j->p += 6;
            } else if (e && strchr("\"\\/bfnrt", e)) {
                j->p += 2;
            } else {
                return -1;
            }
            continue;
        }
        int k = utf8_len((const unsigned char *)j->p, (const unsigned char *)j->end);
        if (!k)
            return -1;
        j->p += k;
    }
    return -1;
}

static int digits(struct jp *j)
{
    const char *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > s ? 0 : -1;
}

static int number(struct jp *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (digits(j))
        return -1;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (digits(j))
            return -1;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (digits(j))
            return -1;
    }
    return 0;
}

static int literal(struct jp *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n))
        return -1;
    j->p += n;
    return 0;
}

/* Called for each member of the object being walked, with the raw key and the value's text. */
typedef void (*member_fn)(void *ctx, const char *key, size_t key_len, const char *v, size_t v_len);

static int value(struct jp *j, member_fn on_member, void *ctx);

/* object, array and value recurse into each other, at most MAX_DEPTH deep (checked in value) */
// NOLINTNEXTLINE(misc-no-recursion): the depth is capped at MAX_DEPTH
static int object(struct jp *j, member_fn on_member, void *ctx)
{
    j->p++; /* '{' */
    ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return 0;
    }
    for (;;) {
        const char *key;
        size_t key_len;
        ws(j);
        if (string(j, &key, &key_len))
            return -1;
        ws(j);
        if (j->p >= j->end || *j->p != ':')
            return -1;
        j->p++;
        ws(j);
        const char *v = j->p;
        if (value(j, NULL, NULL))
            return -1;
        if (on_member)
            on_member(ctx, key, key_len, v, (size_t)(j->p - v));
        ws(j);
        if (j->p >= j->end)
            return -1;
        if (*j->p == '}') {
            j->p++;
            return 0;
        }
        if (*j->p != ',')
            return -1;
        j->p++;
    }
}

// NOLINTNEXTLINE(misc-no-recursion): the depth is capped at MAX_DEPTH
static int array(struct jp *j)
{
    j->p++; /* '[' */
    ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return 0;
    }
    for (;;) {
        ws(j);
        if (value(j, NULL, NULL))
            return -1;
        ws(j);
        if (j->p >= j->end)
            return -1;
        if (*j->p == ']') {
            j->p++;
            return 0;
        }
        if (*j->p != ',')
            return -1;
        j->p++;
    }
}

/* One value at j->p; on_member (objects only) sees the members of this value, not deeper. */
// NOLINTNEXTLINE(misc-no-recursion): the depth is capped at MAX_DEPTH
static int value(struct jp *j, member_fn on_member, void *ctx)
{
    if (j->p >= j->end)
        return -1;
    int rc;
    switch (*j->p) {
    case '{':
        if (++j->depth > MAX_DEPTH)
            return -1;
        rc = object(j, on_member, ctx);
        j->depth--;
        return rc;
    case '[':
        if (++j->depth > MAX_DEPTH)
            return -1;
        rc = array(j);
        j->depth--;
        return rc;
    case '"': {
        const char *s;
        size_t n;
        return string(j, &s, &n);
    }
    case 't': return literal(j, "true");
    case 'f': return literal(j, "false");
    case 'n': return literal(j, "null");
    default: return number(j);
    }
}

/* Parses s[0..len) as one JSON value; on_member sees the members of a top-level object. */
static int walk(const char *s, size_t len, member_fn on_member, void *ctx)
{
    struct jp j = {s, s + len, 0};
    ws(&j);
    if (value(&j, on_member, ctx))
        return -1;
    ws(&j);
    return j.p == j.end ? 0 : -1;
}

int vg_json_valid(const char *s, size_t len)
{
    return walk(s, len, NULL, NULL) == 0;
}

/* ---- helpers on raw member text ----------------------------------------------------------- */

/* Unescapes a string's raw text (valid per string()) into out; -1 when longer than cap - 1. */
static int unescape(const char *s, size_t n, char *out, size_t cap, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned cp;
        if (s[i] != '\\') {
            if (o + 1 >= cap)
                return -1;
            out[o++] = s[i++];
            continue;
        }
        char e = s[i + 1];
        i += 2;
        if (e != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            if (o + 1 >= cap)
                return -1;
            out[o++] = to[strchr(from, e) - from];
            continue;
        }
        cp = (unsigned)hex4(s + i);
        i += 4;
        if (cp >= 0xd800 && cp <= 0xdbff && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u') {
            int lo = hex4(s + i + 2);
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned)lo - 0xdc00);
                i += 6;
            }
        }
        if (cp >= 0xd800 && cp <= 0xdfff)
            cp = 0xfffd; /* a lone surrogate */
        if (o + 4 >= cap)
            return -1;
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else if (cp < 0x800) {
            out[o++] = (char)(0xc0 | cp >> 6);
            out[o++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out[o++] = (char)(0xe0 | cp >> 12);
            out[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
            out[o++] = (char)(0x80 | (cp & 0x3f));
        } else {
            out[o++] = (char)(0xf0 | cp >> 18);
            out[o++] = (char)(0x80 | (cp >> 12 & 0x3f));
            out[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
            out[o++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    out[o] = '\0';
    *out_len = o;
    return 0;
}

/* The class whose name a JSON string (v: raw text with quotes) or number token spells; -1. */
static int class_index(const struct vg_answer_spec *spec, const char *v, size_t n)
{
    char name[MAX_NAME];
    size_t len;
    if (n >= 2 && v[0] == '"') {
        if (unescape(v + 1, n - 2, name, sizeof name, &len))
            return -1;
    } else {
        if (n >= sizeof name)
            return -1;
        memcpy(name, v, n);
        name[n] = '\0';
        len = n;
    }
    for (int k = 0; k < spec->n_classes; k++)
        if (strlen(spec->classes[k]) == len && !memcmp(spec->classes[k], name, len))
            return k;
    return -1;
}

/* A JSON number token as a double; -1 when v is not a number. */
static int number_value(const char *v, size_t n, double *out)
{
    char tmp[64];
    if (n == 0 || n >= sizeof tmp || !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9')))
        return -1;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    char *end;
    *out = strtod(tmp, &end);
    return *end == '\0' && isfinite(*out) ? 0 : -1;
}

static int is_key(const char *key, size_t key_len, const char *want)
{
    size_t n = strlen(want);
    return key_len == n && !memcmp(key, want, n);
}

/* ---- prediction answers ------------------------------------------------------------------- */

struct span {
    const char *v;
    size_t n;
};

struct answer {
    struct span id, model, version, prediction, probabilities, error, outcome;
};

static void on_answer_member(void *ctx, const char *key, size_t key_len, const char *v, size_t n)
{
    struct answer *a = ctx;
    struct span s = {v, n};
    if (is_key(key, key_len, "id"))
        a->id = s;
    else if (is_key(key, key_len, "model"))
        a->model = s;
    else if (is_key(key, key_len, "version"))
        a->version = s;
    else if (is_key(key, key_len, "prediction"))
        a->prediction = s;
    else if (is_key(key, key_len, "probabilities"))
        a->probabilities = s;
    else if (is_key(key, key_len, "error"))
        a->error = s;
    else if (is_key(key, key_len, "outcome"))
        a->outcome = s;
}

struct probs {
    const struct vg_answer_spec *spec;
    uint64_t seen[32]; /* classes met (the first 2048) */
    int n_seen;
    double sum, max;
    double value_of_label;
    int label;
    const char *why;
};

static void on_prob_member(void *ctx, const char *key, size_t key_len, const char *v, size_t n)
{
    struct probs *p = ctx;
    if (p->why)
        return;
    char quoted[MAX_NAME + 2];
    if (key_len + 2 > sizeof quoted) {
        p->why = "a probabilities key is not a class";
        return;
    }
    quoted[0] = '"';
    memcpy(quoted + 1, key, key_len);
    quoted[key_len + 1] = '"';
    int k = class_index(p->spec, quoted, key_len + 2);
    double x;
    if (k < 0) {
        p->why = "a probabilities key is not a class";
    } else if (number_value(v, n, &x)) {
        p->why = "a probability is not a number";
    } else if (!(x >= 0.0 && x <= 1.0)) {
        p->why = "a probability is outside [0, 1]";
    } else {
        if (k < 2048) {
            if (p->seen[k / 64] >> (k % 64) & 1) {
                p->why = "a class appears twice in probabilities";
                return;
            }
            p->seen[k / 64] |= (uint64_t)1 << (k % 64);
        }
        p->n_seen++;
        p->sum += x;
        if (x > p->max)
            p->max = x;
        if (k == p->label)
            p->value_of_label = x;
    }
}

/* The members every answer about a prediction has: "id" (want_id), "model", numeric "version". */
static int check_identity(const struct vg_answer_spec *spec, const struct answer *a,
                          const char *want_id, size_t want_id_len, const char *wrong_id,
                          const char **why)
{
    if (!a->id.v || a->id.n != want_id_len + 2 || a->id.v[0] != '"' ||
        memcmp(a->id.v + 1, want_id, want_id_len)) {
        *why = a->id.v ? wrong_id : "no \"id\"";
        return -1;
    }
    size_t model_len = strlen(spec->model);
    if (!a->model.v || a->model.n != model_len + 2 ||
        memcmp(a->model.v + 1, spec->model, model_len)) {
        *why = "\"model\" is not the model's name";
        return -1;
    }
    double x;
    if (!a->version.v || number_value(a->version.v, a->version.n, &x)) {
        *why = "\"version\" is missing or not a number";
        return -1;
    }
    return 0;
}

int vg_check_prediction(const struct vg_answer_spec *spec, const char *body, size_t len,
                        const char *want_id, size_t want_id_len, const char **why)
{
    int pred_class;
    return vg_check_prediction_class(spec, body, len, want_id, want_id_len, &pred_class, why);
}

int vg_check_prediction_class(const struct vg_answer_spec *spec, const char *body, size_t len,
                              const char *want_id, size_t want_id_len, int *pred_class,
                              const char **why)
{
    struct answer a = {0};
    *pred_class = -1;
    if (len == 0 || body[0] != '{' || walk(body, len, on_answer_member, &a)) {
        *why = "the body is not a JSON object";
        return -1;
    }
    if (check_identity(spec, &a, want_id, want_id_len, "\"id\" is not the request's id", why))
        return -1;
    double x;
    if (!a.prediction.v) {
        *why = "no \"prediction\"";
        return -1;
    }
    if (!spec->classification) {
        if (number_value(a.prediction.v, a.prediction.n, &x)) {
            *why = "\"prediction\" is not a finite number";
            return -1;
        }
        return 0;
    }
    struct probs p = {.spec = spec, .max = -1.0, .value_of_label = -1.0};
    p.label = class_index(spec, a.prediction.v, a.prediction.n);
    if (p.label < 0) {
        *why = "\"prediction\" is not one of the model's classes";
        return -1;
    }
    if (!a.probabilities.v || a.probabilities.v[0] != '{') {
        *why = "no \"probabilities\" object";
        return -1;
    }
    walk(a.probabilities.v, a.probabilities.n, on_prob_member, &p);
    if (p.why) {
        *why = p.why;
        return -1;
    }
    if (p.n_seen != spec->n_classes) {
        *why = "\"probabilities\" does not hold every class";
        return -1;
    }
    if (fabs(p.sum - 1.0) > 1e-3) {
        *why = "the probabilities do not sum to 1";
        return -1;
    }
    if (p.value_of_label < p.max - 1e-6) {
        *why = "the predicted class is not among the most probable";
        return -1;
    }
    *pred_class = p.label;
    return 0;
}

int vg_check_feedback(const struct vg_answer_spec *spec, const char *body, size_t len,
                      const char *pred_id, size_t pred_id_len, const char *want_outcome,
                      const char **why)
{
    struct answer a = {0};
    if (len == 0 || body[0] != '{' || walk(body, len, on_answer_member, &a)) {
        *why = "the feedback answer is not a JSON object";
        return -1;
    }
    if (check_identity(spec, &a, pred_id, pred_id_len, "\"id\" is not the prediction's id", why))
        return -1;
    size_t n = strlen(want_outcome);
    if (!a.outcome.v || a.outcome.v[0] != '"') {
        *why = "no \"outcome\" string";
        return -1;
    }
    if (a.outcome.n != n + 2 || memcmp(a.outcome.v + 1, want_outcome, n)) {
        /* the two outcomes the generator can tell apart: it knows the label it sent and the
           class the model predicted */
        *why = !strcmp(want_outcome, "correct")     ? "\"outcome\" is not \"correct\" (the label "
                                                      "sent is the predicted class)"
               : !strcmp(want_outcome, "incorrect") ? "\"outcome\" is not \"incorrect\" (the "
                                                      "label sent is not the predicted class)"
                                                    : "\"outcome\" is not the one expected";
        return -1;
    }
    return 0;
}

int vg_check_error_body(const char *body, size_t len, const char **why)
{
    struct answer a = {0};
    if (len == 0 || body[0] != '{' || walk(body, len, on_answer_member, &a)) {
        *why = "the error body is not a JSON object";
        return -1;
    }
    if (!a.error.v || a.error.v[0] != '"' || a.error.n <= 2) {
        *why = "the error body has no \"error\" message";
        return -1;
    }
    return 0;
}
