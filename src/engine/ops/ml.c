/*
 * ai.onnx.ml operators other than the tree ensembles: LinearClassifier, LinearRegressor, Scaler,
 * Normalizer, Imputer, Binarizer, ArrayFeatureExtractor, OneHotEncoder, LabelEncoder, ZipMap.
 *
 * Design note: the subset of the ONNX-ML spec implemented (ai.onnx.ml opsets 1 to 5; the opsets
 * only differ for LabelEncoder, 1 / 2-3 / 4+, so every other entry covers them all).
 *
 * Common rules
 * - Numeric inputs may be float, double, int64 or int32 wherever the spec allows them; int inputs
 *   are converted to double for arithmetic. Outputs follow the spec (float for Linear*, Scaler,
 *   Normalizer; the input type for Imputer, Binarizer, ArrayFeatureExtractor).
 * - Every attribute is checked at load: its type, lengths against each other, enum strings
 *   (post_transform, norm). An attribute name the operator does not define is rejected, as the
 *   ONNX checker does. Lengths that need the input shape (feature counts) are checked at planning.
 * - Run fails only on data: ArrayFeatureExtractor index out of range and OneHotEncoder zeros=0 with
 *   an unknown category (VG_ERANGE, like ONNX Runtime which fails that run too).
 *
 * post_transform (LinearClassifier, LinearRegressor), per row of scores:
 *   NONE; LOGISTIC 1/(1+e^-x); SOFTMAX; SOFTMAX_ZERO (softmax over the entries with |x| > 1e-7, the
 *   others scaled by e^-max, all divided by the sum over the non-zero entries, as ONNX Runtime
 *   does); PROBIT sqrt(2) * erfinv(2x - 1), with erfinv the closed-form approximation (a = 0.147)
 *   that ONNX Runtime and the ONNX reference evaluator both use.
 *
 * LinearClassifier: X [N, F] or [F] (one row). R score rows of F coefficients (row-major, one row
 *   per class) plus optional intercepts (R of them; absent = 0). Exactly one of classlabels_ints /
 *   classlabels_strings with L labels; multi_class is accepted and ignored (ONNX Runtime ignores
 *   it too). Outputs Y [N] (int64 or string) and Z [N, C] float.
 *   - R == L >= 2: Z = post_transform(scores), Y = label of the first maximum of the raw scores.
 *   - R == 1, L == 2 (scikit-learn's binary export, one coefficient row): as ONNX Runtime does,
 *     Y = labels[1] if the raw score s > 0 else labels[0], and Z = [1 - s, s] for every
 *     post_transform except PROBIT: ONNX Runtime applies no transform in this case (the ONNX
 *     reference evaluator instead outputs transform([-s, s]); we follow ONNX Runtime, which is what
 *     exported models are validated against). PROBIT with this layout is rejected at load: ONNX
 *     Runtime leaves half of Z unwritten there, so there is no behaviour to match.
 *   - R == 1, no labels: ONNX Runtime's form; Y = 1 if s > 0 else 0 (int64), Z = [s] (PROBIT
 *     applied, other transforms not, again as ONNX Runtime).
 *   R is the intercept count when intercepts are given; else L, except that L == 2 without
 *   intercepts allows either layout and the coefficient count decides at planning (F or 2F).
 * LinearRegressor: Y [N, targets] = X C^T + intercepts (length 0 or targets), then post_transform
 *   per row. Unlike ONNX Runtime, which skips every transform but PROBIT when targets == 1, the
 *   transform is applied as the spec says for any target count.
 * Scaler: Y = (X - offset) * scale per feature (the last axis); each of length 1 or F, equal
 *   lengths when both are given (the spec's rule); an absent one is the identity.
 * Normalizer: X [N, C] or [C]; MAX divides by the row maximum, L1 by the sum of |x|, L2 by the
 *   square root of the sum of squares (sign kept); a zero divisor leaves the row unchanged.
 * Imputer: float/double inputs use imputed_value_floats and replaced_value_float (default 0), int
 *   inputs imputed_value_int64s and replaced_value_int64 (default 0); the other pair must be
 *   absent. A NaN replaced value matches NaN inputs. Imputed values: 1 or F (last axis) of them;
 *   for int32 inputs they must fit int32.
 * Binarizer: Y = 1 where X > threshold else 0 (NaN -> 0), in X's type.
 * ArrayFeatureExtractor: Z = X[..., Y] on the last axis, Y int64 of any shape flattened (at least
 *   one index); a rank-1 X gives [1, K] (ONNX Runtime's shape). Indices must lie in [0, last dim).
 * OneHotEncoder: Y = X.shape + [C] float; numeric inputs are truncated to int64 and looked up in
 *   cats_int64s, strings in cats_strings. Unknown category: a zero row when zeros = 1 (default),
 *   else the run fails with VG_ERANGE. A repeated category sets its last column (ONNX Runtime).
 * LabelEncoder opset 1: string -> int64 (index in classes_strings, the last one for a repeated
 *   class, else default_int64 = -1), or int64 -> string (classes_strings[x], else default_string =
 *   "_Unused"); the input type chooses.
 * LabelEncoder opsets 2+: one keys_{strings,int64s,floats} and one values_{strings,int64s,floats}
 *   attribute of the same length; from opset 4 keys_tensor / values_tensor may replace them (float,
 *   double, int64, int32 or string; int16 is not an engine type) and default_tensor (one value of
 *   the values' type) overrides the default_* attributes. The input type must be the keys' type,
 *   the output has the values' type. Misses give default_string ("_Unused"), default_int64 (-1) or
 *   default_float (-0.0; also for double values); int32 values default to -1. A repeated key keeps
 *   its first value. Keys compare as values, as in ONNX Runtime: 0.0 equals -0.0 and a NaN key
 *   matches every NaN (the spec's "bit-wise comparison" is meant to let NaN be mapped).
 * ZipMap: X float [N, C] or [C] with C = the number of classlabels_int64s / classlabels_strings.
 *   The output is the engine's sequence-of-maps form: a float [N, C] copy of X whose map_keys is a
 *   state-owned rank-1 tensor of the C keys.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

/* ---- shared helpers -------------------------------------------------------------------------- */

static inline double num_at(const void *data, enum vg_dtype dt, int64_t i)
{
    switch (dt) {
    case VG_DT_FLOAT: return ((const float *)data)[i];
    case VG_DT_DOUBLE: return ((const double *)data)[i];
    case VG_DT_INT64: return (double)((const int64_t *)data)[i];
    case VG_DT_INT32: return ((const int32_t *)data)[i];
    default: return 0;
    }
}

static int is_numeric(enum vg_dtype dt)
{
    return dt == VG_DT_FLOAT || dt == VG_DT_DOUBLE || dt == VG_DT_INT64 || dt == VG_DT_INT32;
}

static const char *dt_name(enum vg_dtype dt)
{
    switch (dt) {
    case VG_DT_FLOAT: return "float";
    case VG_DT_DOUBLE: return "double";
    case VG_DT_INT64: return "int64";
    case VG_DT_INT32: return "int32";
    case VG_DT_STRING: return "string";
    case VG_DT_BOOL: return "bool";
    case VG_DT_INT8: return "int8";
    case VG_DT_UINT8: return "uint8";
    default: return "undefined";
    }
}

static int need_numeric_input(struct vg_kctx *c)
{
    if (c->n_out < 1 || !c->out[0])
        return vg_kerr(c, VG_EGRAPH, "output 0 is required");
    if (c->n_in < 1 || !c->in[0])
        return vg_kerr(c, VG_EGRAPH, "input X is required");
    if (!is_numeric(c->in[0]->dtype))
        return vg_kerr(c, VG_ETYPE, "input X must be float, double, int64 or int32, got %s",
                       dt_name(c->in[0]->dtype));
    return 0;
}

struct attr_spec {
    const char *name;
    enum vg_attr_type type;
};

static const char *attr_type_name(enum vg_attr_type t)
{
    static const char *const names[] = {"UNDEFINED", "FLOAT",  "INT",  "STRING", "TENSOR",
                                        "GRAPH",     "FLOATS", "INTS", "STRINGS"};
    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "UNKNOWN";
}

/* Rejects attributes the operator does not define and defined ones of the wrong type. */
static int check_attrs(struct vg_kctx *c, const struct attr_spec *spec)
{
    const struct vg_node *n = c->node;
    for (int i = 0; i < n->n_attrs; i++) {
        const struct vg_attr *a = &n->attrs[i];
        const struct attr_spec *s = spec;
        while (s->name && strcmp(s->name, a->name))
            s++;
        if (!s->name)
            return vg_kerr(c, VG_EUNSUPPORTED, "unknown attribute '%s'", a->name);
        if (s->type != a->type)
            return vg_kerr(c, VG_EINVAL, "attribute '%s' has type %s, expected %s", a->name,
                           attr_type_name(a->type), attr_type_name(s->type));
    }
    return 0;
}

static int has_attr(struct vg_kctx *c, const char *name)
{
    return vg_attr_find(c->node, name) != NULL;
}

/* X of [N, F] or [F] (one row): the layout of Linear*, Normalizer and ZipMap. */
static int rows_cols(struct vg_kctx *c, const struct vg_tensor *x, int64_t *n, int64_t *f)
{
    *n = *f = 0;
    if (x->rank == 1) {
        *n = 1;
        *f = x->dims[0];
    } else if (x->rank == 2) {
        *n = x->dims[0];
        *f = x->dims[1];
    } else {
        return vg_kerr(c, VG_ESHAPE, "input X must be [N, F] or [F], got rank %d", x->rank);
    }
    return 0;
}

static void same_shape(struct vg_tensor *out, const struct vg_tensor *in)
{
    out->rank = in->rank;
    memcpy(out->dims, in->dims, sizeof(out->dims));
}

/* Size of the last axis (1 for a scalar): the feature axis of Scaler and Imputer. */
static int64_t last_dim(const struct vg_tensor *t)
{
    return t->rank ? t->dims[t->rank - 1] : 1;
}

static void free_state(void *state)
{
    free(state);
}

/* ---- post_transform -------------------------------------------------------------------------- */

enum post { POST_NONE, POST_LOGISTIC, POST_SOFTMAX, POST_SOFTMAX_ZERO, POST_PROBIT };

static int parse_post(struct vg_kctx *c, enum post *out)
{
    static const struct {
        const char *name;
        enum post p;
    } names[] = {{"NONE", POST_NONE},
                 {"LOGISTIC", POST_LOGISTIC},
                 {"SOFTMAX", POST_SOFTMAX},
                 {"SOFTMAX_ZERO", POST_SOFTMAX_ZERO},
                 {"PROBIT", POST_PROBIT}};
    const char *s = vg_attr_s(c->node, "post_transform", "NONE");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(s, names[i].name)) {
            *out = names[i].p;
            return 0;
        }
    return vg_kerr(c, VG_EUNSUPPORTED,
                   "unknown post_transform '%s' (expected NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO "
                   "or PROBIT)",
                   s);
}

static float logistic(float x)
{
    /* exp of a non-positive argument only, so large |x| cannot overflow. */
    float e = expf(-fabsf(x));
    return x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

static float probit(float p)
{
    float x = 2.0f * p - 1.0f;
    float sgn = x < 0 ? -1.0f : 1.0f;
    float ln = logf((1.0f - x) * (1.0f + x));
    float v = 2.0f / (3.14159265f * 0.147f) + 0.5f * ln;
    float v2 = ln / 0.147f;
    return 1.41421356f * sgn * sqrtf(-v + sqrtf(v * v - v2));
}

static void post_apply(enum post p, float *s, int64_t n)
{
    float mx = -INFINITY, sum = 0;
    switch (p) {
    case POST_NONE: break;
    case POST_LOGISTIC:
        for (int64_t i = 0; i < n; i++)
            s[i] = logistic(s[i]);
        break;
    case POST_PROBIT:
        for (int64_t i = 0; i < n; i++)
            s[i] = probit(s[i]);
        break;
    case POST_SOFTMAX:
        for (int64_t i = 0; i < n; i++)
            mx = s[i] > mx ? s[i] : mx;
        for (int64_t i = 0; i < n; i++) {
            s[i] = expf(s[i] - mx);
            sum += s[i];
        }
        for (int64_t i = 0; i < n; i++)
            s[i] /= sum;
        break;
    case POST_SOFTMAX_ZERO: {
        for (int64_t i = 0; i < n; i++)
            mx = s[i] > mx ? s[i] : mx;
        float zero_scale = expf(-mx);
        for (int64_t i = 0; i < n; i++) {
            if (s[i] > 1e-7f || s[i] < -1e-7f) {
                s[i] = expf(s[i] - mx);
                sum += s[i];
            } else {
                s[i] *= zero_scale;
            }
        }
        for (int64_t i = 0; i < n; i++)
            s[i] /= sum;
        break;
    }
    }
}

/* Row r of X (F features) times coefficient row k, plus intercept: accumulated in double. */
static float linear_score(const void *x, enum vg_dtype dt, int64_t row_off, int64_t f,
                          const float *coef, float intercept)
{
    double acc = intercept;
    switch (dt) {
    case VG_DT_FLOAT: {
        const float *p = (const float *)x + row_off;
        for (int64_t j = 0; j < f; j++)
            acc += (double)p[j] * coef[j];
        break;
    }
    default:
        for (int64_t j = 0; j < f; j++)
            acc += num_at(x, dt, row_off + j) * coef[j];
        break;
    }
    return (float)acc;
}

/* ---- LinearClassifier ------------------------------------------------------------------------ */

struct lincls {
    const float *coef;
    int64_t n_coef;
    const float *intercepts; /* NULL when absent */
    int64_t n_rows;          /* R, or 0: decided by the feature count (L == 2, no intercepts) */
    int64_t n_labels;
    const int64_t *labels_i;
    const char *const *labels_s; /* non-NULL: string labels */
    enum post post;
};

static const struct attr_spec lincls_attrs[] = {
    {"coefficients", VG_ATTR_FLOATS},
    {"intercepts", VG_ATTR_FLOATS},
    {"classlabels_ints", VG_ATTR_INTS},
    {"classlabels_strings", VG_ATTR_STRINGS},
    {"multi_class", VG_ATTR_INT},
    {"post_transform", VG_ATTR_STRING},
    {NULL, 0},
};

static const char binary_probit_msg[] =
    "post_transform PROBIT with a single coefficient row for 2 classes is not supported";

static int lincls_init(struct vg_kctx *c)
{
    struct lincls s = {0};
    const float *v;
    int rc;

    if (c->n_in < 1 || !c->in[0])
        return vg_kerr(c, VG_EGRAPH, "input X is required");
    if (!is_numeric(c->in[0]->dtype))
        return vg_kerr(c, VG_ETYPE, "input X must be float, double, int64 or int32, got %s",
                       dt_name(c->in[0]->dtype));
    if ((rc = check_attrs(c, lincls_attrs)) < 0 || (rc = parse_post(c, &s.post)) < 0)
        return rc;
    s.n_coef = (int64_t)vg_attr_floats(c->node, "coefficients", &v);
    s.coef = v;
    if (!s.n_coef)
        return vg_kerr(c, VG_EINVAL, "attribute 'coefficients' is required and non-empty");
    int64_t n_int = (int64_t)vg_attr_floats(c->node, "intercepts", &v);
    s.intercepts = n_int ? v : NULL;
    int64_t n_li = (int64_t)vg_attr_ints(c->node, "classlabels_ints", &s.labels_i);
    int64_t n_ls = (int64_t)vg_attr_strings(c->node, "classlabels_strings", &s.labels_s);
    if (n_li && n_ls)
        return vg_kerr(c, VG_EINVAL,
                       "only one of classlabels_ints and classlabels_strings may be given");
    s.n_labels = n_li ? n_li : n_ls;
    if (!n_ls)
        s.labels_s = NULL;

    if (n_int) {
        s.n_rows = n_int;
    } else if (s.n_labels == 2) {
        s.n_rows = 0;
    } else {
        s.n_rows = s.n_labels ? s.n_labels : 1;
    }
    if (s.n_rows && s.n_coef % s.n_rows)
        return vg_kerr(c, VG_EINVAL, "%lld coefficients do not split into %lld class rows",
                       (long long)s.n_coef, (long long)s.n_rows);
    if (s.n_rows == 1) {
        if (s.n_labels != 0 && s.n_labels != 2)
            return vg_kerr(c, VG_EINVAL,
                           "one coefficient row (binary classifier) needs 2 class labels, got %lld",
                           (long long)s.n_labels);
    } else if (s.n_rows > 1 && s.n_rows != s.n_labels) {
        return vg_kerr(c, VG_EINVAL, "%lld intercepts (class rows) do not match %lld class labels",
                       (long long)s.n_rows, (long long)s.n_labels);
    }
    if (s.n_labels == 2 && s.n_rows == 1 && s.post == POST_PROBIT)
        return vg_kerr(c, VG_EUNSUPPORTED, "%s", binary_probit_msg);

    struct lincls *st = malloc(sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    *st = s;
    c->state = st;
    if (c->n_out > 0 && c->out[0])
        c->out[0]->dtype = s.labels_s ? VG_DT_STRING : VG_DT_INT64;
    if (c->n_out > 1 && c->out[1])
        c->out[1]->dtype = VG_DT_FLOAT;
    return 0;
}

/* Class rows R for F features into *rows; an error when the coefficients do not fit. */
static int lincls_rows(struct vg_kctx *c, const struct lincls *s, int64_t f, int64_t *rows)
{
    if (s->n_rows) {
        *rows = s->n_rows;
        if (s->n_rows * f != s->n_coef)
            return vg_kerr(c, VG_ESHAPE,
                           "%lld coefficients are not %lld class rows of %lld features",
                           (long long)s->n_coef, (long long)s->n_rows, (long long)f);
        return 0;
    }
    *rows = f == s->n_coef ? 1 : 2;
    if (f != s->n_coef && 2 * f != s->n_coef)
        return vg_kerr(c, VG_ESHAPE, "%lld coefficients are not 1 or 2 class rows of %lld features",
                       (long long)s->n_coef, (long long)f);
    if (*rows == 1 && s->post == POST_PROBIT)
        return vg_kerr(c, VG_EUNSUPPORTED, "%s", binary_probit_msg);
    return 0;
}

static int lincls_infer(struct vg_kctx *c)
{
    const struct lincls *s = c->state;
    int64_t n, f;
    int rc = rows_cols(c, c->in[0], &n, &f);
    if (rc < 0)
        return rc;
    int64_t r;
    if ((rc = lincls_rows(c, s, f, &r)) < 0)
        return rc;
    int64_t cols = r == 1 && s->n_labels == 2 ? 2 : r;
    if (c->n_out > 0 && c->out[0]) {
        c->out[0]->rank = 1;
        c->out[0]->dims[0] = n;
    }
    if (c->n_out > 1 && c->out[1]) {
        c->out[1]->rank = 2;
        c->out[1]->dims[0] = n;
        c->out[1]->dims[1] = cols;
    }
    c->scratch_bytes = (size_t)r * sizeof(float);
    return 0;
}

static int lincls_run(struct vg_kctx *c)
{
    const struct lincls *s = c->state;
    const struct vg_tensor *x = c->in[0];
    struct vg_tensor *y = c->n_out > 0 ? c->out[0] : NULL;
    struct vg_tensor *z = c->n_out > 1 ? c->out[1] : NULL;
    int64_t n, f;
    rows_cols(c, x, &n, &f);
    int64_t r = f ? s->n_coef / f : (s->n_rows ? s->n_rows : 1);
    float *scores = c->scratch;

    for (int64_t i = 0; i < n; i++) {
        for (int64_t k = 0; k < r; k++)
            scores[k] = linear_score(x->data, x->dtype, i * f, f, s->coef + k * f,
                                     s->intercepts ? s->intercepts[k] : 0.0f);
        int64_t best = 0;
        if (r == 1) {
            best = scores[0] > 0;
        } else {
            for (int64_t k = 1; k < r; k++)
                if (scores[k] > scores[best])
                    best = k;
        }
        if (y) {
            if (s->labels_s)
                ((const char **)y->data)[i] = s->labels_s[best];
            else
                ((int64_t *)y->data)[i] = s->n_labels ? s->labels_i[best] : best;
        }
        if (!z)
            continue;
        float *zr = (float *)z->data + i * z->dims[1];
        if (r == 1 && s->n_labels == 2) {
            zr[0] = 1.0f - scores[0];
            zr[1] = scores[0];
        } else if (r == 1) {
            zr[0] = s->post == POST_PROBIT ? probit(scores[0]) : scores[0];
        } else {
            post_apply(s->post, scores, r);
            memcpy(zr, scores, (size_t)r * sizeof(float));
        }
    }
    return 0;
}

/* ---- LinearRegressor ------------------------------------------------------------------------- */

struct linreg {
    const float *coef;
    int64_t n_coef;
    const float *intercepts;
    int64_t targets;
    enum post post;
};

static const struct attr_spec linreg_attrs[] = {
    {"coefficients", VG_ATTR_FLOATS},
    {"intercepts", VG_ATTR_FLOATS},
    {"targets", VG_ATTR_INT},
    {"post_transform", VG_ATTR_STRING},
    {NULL, 0},
};

static int linreg_init(struct vg_kctx *c)
{
    struct linreg s = {0};
    const float *v;
    int rc;

    if ((rc = check_attrs(c, linreg_attrs)) < 0 || (rc = need_numeric_input(c)) < 0 ||
        (rc = parse_post(c, &s.post)) < 0)
        return rc;
    s.targets = vg_attr_i(c->node, "targets", 1);
    if (s.targets < 1)
        return vg_kerr(c, VG_EINVAL, "targets must be >= 1, got %lld", (long long)s.targets);
    s.n_coef = (int64_t)vg_attr_floats(c->node, "coefficients", &v);
    s.coef = v;
    if (!s.n_coef)
        return vg_kerr(c, VG_EINVAL, "attribute 'coefficients' is required and non-empty");
    if (s.n_coef % s.targets)
        return vg_kerr(c, VG_EINVAL, "%lld coefficients do not split into %lld targets",
                       (long long)s.n_coef, (long long)s.targets);
    int64_t n_int = (int64_t)vg_attr_floats(c->node, "intercepts", &v);
    if (n_int && n_int != s.targets)
        return vg_kerr(c, VG_EINVAL, "%lld intercepts do not match %lld targets", (long long)n_int,
                       (long long)s.targets);
    s.intercepts = n_int ? v : NULL;

    struct linreg *st = malloc(sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    *st = s;
    c->state = st;
    c->out[0]->dtype = VG_DT_FLOAT;
    return 0;
}

static int linreg_infer(struct vg_kctx *c)
{
    const struct linreg *s = c->state;
    int64_t n, f;
    int rc = rows_cols(c, c->in[0], &n, &f);
    if (rc < 0)
        return rc;
    if (f * s->targets != s->n_coef)
        return vg_kerr(c, VG_ESHAPE, "%lld coefficients are not %lld targets of %lld features",
                       (long long)s->n_coef, (long long)s->targets, (long long)f);
    c->out[0]->rank = 2;
    c->out[0]->dims[0] = n;
    c->out[0]->dims[1] = s->targets;
    return 0;
}

static int linreg_run(struct vg_kctx *c)
{
    const struct linreg *s = c->state;
    const struct vg_tensor *x = c->in[0];
    int64_t n, f;
    rows_cols(c, x, &n, &f);
    for (int64_t i = 0; i < n; i++) {
        float *yr = (float *)c->out[0]->data + i * s->targets;
        for (int64_t k = 0; k < s->targets; k++)
            yr[k] = linear_score(x->data, x->dtype, i * f, f, s->coef + k * f,
                                 s->intercepts ? s->intercepts[k] : 0.0f);
        post_apply(s->post, yr, s->targets);
    }
    return 0;
}

/* ---- Scaler ---------------------------------------------------------------------------------- */

struct scaler {
    const float *offset, *scale;
    int64_t n_offset, n_scale;
};

static const struct attr_spec scaler_attrs[] = {
    {"offset", VG_ATTR_FLOATS},
    {"scale", VG_ATTR_FLOATS},
    {NULL, 0},
};

static int scaler_init(struct vg_kctx *c)
{
    struct scaler s;
    int rc;
    if ((rc = check_attrs(c, scaler_attrs)) < 0 || (rc = need_numeric_input(c)) < 0)
        return rc;
    s.n_offset = (int64_t)vg_attr_floats(c->node, "offset", &s.offset);
    s.n_scale = (int64_t)vg_attr_floats(c->node, "scale", &s.scale);
    if (s.n_offset && s.n_scale && s.n_offset != s.n_scale)
        return vg_kerr(c, VG_EINVAL, "offset has %lld values but scale has %lld",
                       (long long)s.n_offset, (long long)s.n_scale);
    struct scaler *st = malloc(sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    *st = s;
    c->state = st;
    c->out[0]->dtype = VG_DT_FLOAT;
    return 0;
}

static int scaler_infer(struct vg_kctx *c)
{
    const struct scaler *s = c->state;
    int64_t f = last_dim(c->in[0]);
    if ((s->n_offset > 1 && s->n_offset != f) || (s->n_scale > 1 && s->n_scale != f))
        return vg_kerr(c, VG_ESHAPE,
                       "offset/scale have %lld/%lld values; expected 1 or %lld (features)",
                       (long long)s->n_offset, (long long)s->n_scale, (long long)f);
    same_shape(c->out[0], c->in[0]);
    return 0;
}

static int scaler_run(struct vg_kctx *c)
{
    const struct scaler *s = c->state;
    const struct vg_tensor *x = c->in[0];
    float *y = c->out[0]->data;
    int64_t total = vg_tensor_numel(x), f = last_dim(x);
    for (int64_t i = 0, j = 0; i < total; i++) {
        double off = s->n_offset ? s->offset[s->n_offset > 1 ? j : 0] : 0.0;
        double sc = s->n_scale ? s->scale[s->n_scale > 1 ? j : 0] : 1.0;
        y[i] = (float)((num_at(x->data, x->dtype, i) - off) * sc);
        if (++j == f)
            j = 0;
    }
    return 0;
}

/* ---- Normalizer ------------------------------------------------------------------------------ */

enum norm { NORM_MAX, NORM_L1, NORM_L2 };

static const struct attr_spec normalizer_attrs[] = {
    {"norm", VG_ATTR_STRING},
    {NULL, 0},
};

static int normalizer_init(struct vg_kctx *c)
{
    int rc;
    if ((rc = check_attrs(c, normalizer_attrs)) < 0 || (rc = need_numeric_input(c)) < 0)
        return rc;
    const char *s = vg_attr_s(c->node, "norm", "MAX");
    enum norm nm;
    if (!strcmp(s, "MAX"))
        nm = NORM_MAX;
    else if (!strcmp(s, "L1"))
        nm = NORM_L1;
    else if (!strcmp(s, "L2"))
        nm = NORM_L2;
    else
        return vg_kerr(c, VG_EUNSUPPORTED, "unknown norm '%s' (expected MAX, L1 or L2)", s);
    enum norm *st = malloc(sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    *st = nm;
    c->state = st;
    c->out[0]->dtype = VG_DT_FLOAT;
    return 0;
}

static int normalizer_infer(struct vg_kctx *c)
{
    int64_t n, f;
    int rc = rows_cols(c, c->in[0], &n, &f);
    if (rc < 0)
        return rc;
    same_shape(c->out[0], c->in[0]);
    return 0;
}

static int normalizer_run(struct vg_kctx *c)
{
    enum norm nm = *(const enum norm *)c->state;
    const struct vg_tensor *x = c->in[0];
    float *y = c->out[0]->data;
    int64_t n, f;
    rows_cols(c, x, &n, &f);
    for (int64_t i = 0; i < n; i++) {
        float *yr = y + i * f;
        float div = 0;
        for (int64_t j = 0; j < f; j++)
            yr[j] = (float)num_at(x->data, x->dtype, i * f + j);
        if (nm == NORM_MAX) {
            div = -INFINITY;
            for (int64_t j = 0; j < f; j++)
                div = yr[j] > div ? yr[j] : div;
        } else if (nm == NORM_L1) {
            for (int64_t j = 0; j < f; j++)
                div += fabsf(yr[j]);
        } else {
            for (int64_t j = 0; j < f; j++)
                div += yr[j] * yr[j];
            div = sqrtf(div);
        }
        if (div == 0 || f == 0)
            continue;
        for (int64_t j = 0; j < f; j++)
            yr[j] /= div;
    }
    return 0;
}

/* ---- Imputer --------------------------------------------------------------------------------- */

struct imputer {
    int n;                /* imputed value count: 1 or F */
    const float *imp_f;   /* float/double inputs */
    const int64_t *imp_i; /* int inputs */
    double repl_f;
    int64_t repl_i;
};

static const struct attr_spec imputer_attrs[] = {
    {"imputed_value_floats", VG_ATTR_FLOATS},
    {"imputed_value_int64s", VG_ATTR_INTS},
    {"replaced_value_float", VG_ATTR_FLOAT},
    {"replaced_value_int64", VG_ATTR_INT},
    {NULL, 0},
};

static int imputer_init(struct vg_kctx *c)
{
    struct imputer s = {0};
    int rc;
    if ((rc = check_attrs(c, imputer_attrs)) < 0 || (rc = need_numeric_input(c)) < 0)
        return rc;
    enum vg_dtype dt = c->in[0]->dtype;
    size_t nf = vg_attr_floats(c->node, "imputed_value_floats", &s.imp_f);
    size_t ni = vg_attr_ints(c->node, "imputed_value_int64s", &s.imp_i);
    if (nf && ni)
        return vg_kerr(c, VG_EINVAL,
                       "only one of imputed_value_floats and imputed_value_int64s may be given");
    int floating = dt == VG_DT_FLOAT || dt == VG_DT_DOUBLE;
    if (floating) {
        if (!nf)
            return vg_kerr(c, VG_EINVAL, "%s input needs imputed_value_floats", dt_name(dt));
        if (has_attr(c, "replaced_value_int64"))
            return vg_kerr(c, VG_EINVAL,
                           "%s input takes replaced_value_float, not replaced_value_int64",
                           dt_name(dt));
        s.n = (int)nf;
        s.repl_f = vg_attr_f(c->node, "replaced_value_float", 0.0f);
    } else {
        if (!ni)
            return vg_kerr(c, VG_EINVAL, "%s input needs imputed_value_int64s", dt_name(dt));
        if (has_attr(c, "replaced_value_float"))
            return vg_kerr(c, VG_EINVAL,
                           "%s input takes replaced_value_int64, not replaced_value_float",
                           dt_name(dt));
        s.n = (int)ni;
        s.repl_i = vg_attr_i(c->node, "replaced_value_int64", 0);
        if (dt == VG_DT_INT32)
            for (size_t k = 0; k < ni; k++)
                if (s.imp_i[k] < INT32_MIN || s.imp_i[k] > INT32_MAX)
                    return vg_kerr(c, VG_EINVAL, "imputed value %lld does not fit int32",
                                   (long long)s.imp_i[k]);
    }
    struct imputer *st = malloc(sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    *st = s;
    c->state = st;
    c->out[0]->dtype = dt;
    return 0;
}

static int imputer_infer(struct vg_kctx *c)
{
    const struct imputer *s = c->state;
    int64_t f = last_dim(c->in[0]);
    if (s->n != 1 && s->n != f)
        return vg_kerr(c, VG_ESHAPE, "%d imputed values; expected 1 or %lld (features)", s->n,
                       (long long)f);
    same_shape(c->out[0], c->in[0]);
    return 0;
}

static int imputer_run(struct vg_kctx *c)
{
    const struct imputer *s = c->state;
    const struct vg_tensor *x = c->in[0];
    void *y = c->out[0]->data;
    int64_t total = vg_tensor_numel(x), f = last_dim(x);
    int repl_nan = isnan(s->repl_f);
    for (int64_t i = 0, j = 0; i < total; i++) {
        int64_t k = s->n > 1 ? j : 0;
        switch (x->dtype) {
        case VG_DT_FLOAT: {
            float v = ((const float *)x->data)[i];
            int hit = repl_nan ? isnan(v) : v == (float)s->repl_f;
            ((float *)y)[i] = hit ? s->imp_f[k] : v;
            break;
        }
        case VG_DT_DOUBLE: {
            double v = ((const double *)x->data)[i];
            int hit = repl_nan ? isnan(v) : v == s->repl_f;
            ((double *)y)[i] = hit ? (double)s->imp_f[k] : v;
            break;
        }
        case VG_DT_INT64: {
            int64_t v = ((const int64_t *)x->data)[i];
            ((int64_t *)y)[i] = v == s->repl_i ? s->imp_i[k] : v;
            break;
        }
        default: {
            int32_t v = ((const int32_t *)x->data)[i];
            ((int32_t *)y)[i] = v == s->repl_i ? (int32_t)s->imp_i[k] : v;
            break;
        }
        }
        if (++j == f)
            j = 0;
    }
    return 0;
}

/* ---- Binarizer ------------------------------------------------------------------------------- */

static const struct attr_spec binarizer_attrs[] = {
    {"threshold", VG_ATTR_FLOAT},
    {NULL, 0},
};

static int binarizer_init(struct vg_kctx *c)
{
    int rc;
    if ((rc = check_attrs(c, binarizer_attrs)) < 0 || (rc = need_numeric_input(c)) < 0)
        return rc;
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

static int same_shape_infer(struct vg_kctx *c)
{
    same_shape(c->out[0], c->in[0]);
    return 0;
}

static int binarizer_run(struct vg_kctx *c)
{
    const struct vg_tensor *x = c->in[0];
    double th = vg_attr_f(c->node, "threshold", 0.0f);
    int64_t total = vg_tensor_numel(x);
    void *y = c->out[0]->data;
    for (int64_t i = 0; i < total; i++) {
        int one = num_at(x->data, x->dtype, i) > th;
        switch (x->dtype) {
        case VG_DT_FLOAT: ((float *)y)[i] = (float)one; break;
        case VG_DT_DOUBLE: ((double *)y)[i] = one; break;
        case VG_DT_INT64: ((int64_t *)y)[i] = one; break;
        default: ((int32_t *)y)[i] = one; break;
        }
    }
    return 0;
}

/* ---- ArrayFeatureExtractor ------------------------------------------------------------------- */

static int afe_init(struct vg_kctx *c)
{
    int rc;
    static const struct attr_spec none[] = {{NULL, 0}};
    if ((rc = check_attrs(c, none)) < 0)
        return rc;
    if (c->n_in < 2 || !c->in[0] || !c->in[1] || c->n_out < 1 || !c->out[0])
        return vg_kerr(c, VG_EGRAPH, "inputs X, Y and output Z are required");
    if (!is_numeric(c->in[0]->dtype) && c->in[0]->dtype != VG_DT_STRING)
        return vg_kerr(c, VG_ETYPE, "input X must be float, double, int64, int32 or string, got %s",
                       dt_name(c->in[0]->dtype));
    if (c->in[1]->dtype != VG_DT_INT64)
        return vg_kerr(c, VG_ETYPE, "input Y (indices) must be int64, got %s",
                       dt_name(c->in[1]->dtype));
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

/* The first index of y outside [0, stride), or -1. */
static int64_t afe_bad_index(const struct vg_tensor *y, int64_t stride)
{
    int64_t k = vg_tensor_numel(y);
    for (int64_t j = 0; j < k; j++) {
        int64_t v = ((const int64_t *)y->data)[j];
        if (v < 0 || v >= stride)
            return j;
    }
    return -1;
}

static int afe_infer(struct vg_kctx *c)
{
    const struct vg_tensor *x = c->in[0];
    int64_t k = vg_tensor_numel(c->in[1]);
    if (x->rank < 1)
        return vg_kerr(c, VG_ESHAPE, "input X must have rank >= 1");
    if (k < 1)
        return vg_kerr(c, VG_ESHAPE, "input Y holds no index");
    const struct vg_tensor *yv = vg_kctx_value(c, 1);
    if (yv) {
        int64_t bad = afe_bad_index(yv, last_dim(x));
        if (bad >= 0)
            return vg_kerr(c, VG_ERANGE, "index Y[%lld] = %lld is out of range [0, %lld)",
                           (long long)bad, (long long)((const int64_t *)yv->data)[bad],
                           (long long)last_dim(x));
    }
    struct vg_tensor *z = c->out[0];
    if (x->rank == 1) {
        z->rank = 2;
        z->dims[0] = 1;
        z->dims[1] = k;
    } else {
        same_shape(z, x);
        z->dims[z->rank - 1] = k;
    }
    return 0;
}

static int afe_run(struct vg_kctx *c)
{
    const struct vg_tensor *x = c->in[0], *y = c->in[1];
    int64_t stride = last_dim(x), k = vg_tensor_numel(y);
    int64_t bad = afe_bad_index(y, stride);
    if (bad >= 0)
        return vg_kerr(c, VG_ERANGE, "index Y[%lld] = %lld is out of range [0, %lld)",
                       (long long)bad, (long long)((const int64_t *)y->data)[bad],
                       (long long)stride);
    size_t es = vg_dtype_size(x->dtype);
    int64_t outer = stride ? vg_tensor_numel(x) / stride : 0;
    const char *src = x->data;
    char *dst = c->out[0]->data;
    const int64_t *idx = y->data;
    for (int64_t i = 0; i < outer; i++) {
        for (int64_t j = 0; j < k; j++, dst += es)
            memcpy(dst, src + (size_t)(i * stride + idx[j]) * es, es);
    }
    return 0;
}

/* ---- sorted key tables (OneHotEncoder, LabelEncoder) ----------------------------------------- */

/*
 * A key -> position table: entries sorted by (key, position), looked up by binary search. Keys are
 * int64 (int32 widened), canonical float/double bit patterns, or strings; `pos` is the key's index
 * in its attribute. Duplicate keys are kept: the lookup returns the first or the last position,
 * whichever rule the operator follows.
 */
struct key_entry {
    union {
        int64_t i;
        uint64_t bits;
        const char *s;
    } k;
    int64_t pos;
};

enum key_kind { KEY_INT, KEY_FLOAT, KEY_DOUBLE, KEY_STRING };

/* Keys compare as values: every NaN equals every NaN, and -0.0 equals 0.0. */
static uint64_t float_key(float f)
{
    uint32_t b;
    if (isnan(f))
        return 0x7fc00000u;
    if (f == 0)
        f = 0;
    memcpy(&b, &f, sizeof(b));
    return b;
}

static uint64_t double_key(double d)
{
    uint64_t b;
    if (isnan(d))
        return 0x7ff8000000000000u;
    if (d == 0)
        d = 0;
    memcpy(&b, &d, sizeof(b));
    return b;
}

static int key_cmp(enum key_kind kind, const struct key_entry *a, const struct key_entry *b)
{
    switch (kind) {
    case KEY_INT: return a->k.i < b->k.i ? -1 : a->k.i > b->k.i;
    case KEY_FLOAT:
    case KEY_DOUBLE: return a->k.bits < b->k.bits ? -1 : a->k.bits > b->k.bits;
    default: return strcmp(a->k.s, b->k.s);
    }
}

static int cmp_pos(const struct key_entry *a, const struct key_entry *b)
{
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static int cmp_int(const void *a, const void *b)
{
    int r = key_cmp(KEY_INT, a, b);
    return r ? r : cmp_pos(a, b);
}

static int cmp_bits(const void *a, const void *b)
{
    int r = key_cmp(KEY_FLOAT, a, b);
    return r ? r : cmp_pos(a, b);
}

static int cmp_string(const void *a, const void *b)
{
    int r = key_cmp(KEY_STRING, a, b);
    return r ? r : cmp_pos(a, b);
}

/* Fills e[0..n) from n keys of type `dt` at `data` and sorts them. */
static void keys_build(enum key_kind kind, enum vg_dtype dt, const void *data, int64_t n,
                       struct key_entry *e)
{
    for (int64_t i = 0; i < n; i++) {
        switch (dt) {
        case VG_DT_INT64: e[i].k.i = ((const int64_t *)data)[i]; break;
        case VG_DT_INT32: e[i].k.i = ((const int32_t *)data)[i]; break;
        case VG_DT_FLOAT: e[i].k.bits = float_key(((const float *)data)[i]); break;
        case VG_DT_DOUBLE: e[i].k.bits = double_key(((const double *)data)[i]); break;
        default: e[i].k.s = ((const char *const *)data)[i]; break;
        }
        e[i].pos = i;
    }
    qsort(e, (size_t)n, sizeof(*e),
          kind == KEY_INT      ? cmp_int
          : kind == KEY_STRING ? cmp_string
                               : cmp_bits);
}

/* Position of `key` in the table (the lowest or, with `last`, the highest), or -1. */
static int64_t keys_find(enum key_kind kind, const struct key_entry *e, int64_t n,
                         const struct key_entry *key, int last)
{
    int64_t lo = 0, hi = n;
    /* First entry whose key is > key (last) or >= key (first). */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = key_cmp(kind, &e[mid], key);
        if (r < 0 || (last && r == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t at = last ? lo - 1 : lo;
    if (at < 0 || at >= n || key_cmp(kind, &e[at], key))
        return -1;
    return e[at].pos;
}

/* The table key of element i of a tensor of type dt. */
static void key_of(enum vg_dtype dt, const void *data, int64_t i, struct key_entry *key)
{
    switch (dt) {
    case VG_DT_INT64: key->k.i = ((const int64_t *)data)[i]; break;
    case VG_DT_INT32: key->k.i = ((const int32_t *)data)[i]; break;
    case VG_DT_FLOAT: key->k.bits = float_key(((const float *)data)[i]); break;
    case VG_DT_DOUBLE: key->k.bits = double_key(((const double *)data)[i]); break;
    default: {
        const char *s = ((const char *const *)data)[i];
        key->k.s = s ? s : "";
        break;
    }
    }
}

static enum key_kind key_kind_of(enum vg_dtype dt)
{
    switch (dt) {
    case VG_DT_INT64:
    case VG_DT_INT32: return KEY_INT;
    case VG_DT_FLOAT: return KEY_FLOAT;
    case VG_DT_DOUBLE: return KEY_DOUBLE;
    default: return KEY_STRING;
    }
}

/* ---- OneHotEncoder --------------------------------------------------------------------------- */

struct onehot {
    int64_t n;
    int zeros;
    struct key_entry keys[];
};

static const struct attr_spec onehot_attrs[] = {
    {"cats_int64s", VG_ATTR_INTS},
    {"cats_strings", VG_ATTR_STRINGS},
    {"zeros", VG_ATTR_INT},
    {NULL, 0},
};

static int onehot_init(struct vg_kctx *c)
{
    int rc;
    if ((rc = check_attrs(c, onehot_attrs)) < 0)
        return rc;
    if (c->n_in < 1 || !c->in[0] || c->n_out < 1 || !c->out[0])
        return vg_kerr(c, VG_EGRAPH, "input X and output Y are required");
    enum vg_dtype dt = c->in[0]->dtype;
    const int64_t *ci;
    const char *const *cs;
    size_t ni = vg_attr_ints(c->node, "cats_int64s", &ci);
    size_t ns = vg_attr_strings(c->node, "cats_strings", &cs);
    if ((ni != 0) == (ns != 0))
        return vg_kerr(c, VG_EINVAL, "exactly one of cats_int64s and cats_strings must be given");
    if (dt == VG_DT_STRING && !ns)
        return vg_kerr(c, VG_ETYPE, "string input needs cats_strings");
    if (dt != VG_DT_STRING) {
        if (!is_numeric(dt))
            return vg_kerr(c, VG_ETYPE,
                           "input X must be string, int64, int32, float or double, got %s",
                           dt_name(dt));
        if (!ni)
            return vg_kerr(c, VG_ETYPE, "%s input needs cats_int64s", dt_name(dt));
    }
    int64_t n = (int64_t)(ni ? ni : ns);
    struct onehot *st = malloc(sizeof(*st) + (size_t)n * sizeof(st->keys[0]));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    st->n = n;
    st->zeros = vg_attr_i(c->node, "zeros", 1) != 0;
    if (ni)
        keys_build(KEY_INT, VG_DT_INT64, ci, n, st->keys);
    else
        keys_build(KEY_STRING, VG_DT_STRING, cs, n, st->keys);
    c->state = st;
    c->out[0]->dtype = VG_DT_FLOAT;
    return 0;
}

static int onehot_infer(struct vg_kctx *c)
{
    const struct onehot *s = c->state;
    const struct vg_tensor *x = c->in[0];
    if (x->rank >= VG_MAX_RANK)
        return vg_kerr(c, VG_ESHAPE, "input rank %d leaves no room for the category axis", x->rank);
    same_shape(c->out[0], x);
    c->out[0]->dims[x->rank] = s->n;
    c->out[0]->rank = x->rank + 1;
    return 0;
}

static int onehot_run(struct vg_kctx *c)
{
    const struct onehot *s = c->state;
    const struct vg_tensor *x = c->in[0];
    int64_t total = vg_tensor_numel(x);
    float *y = c->out[0]->data;
    memset(y, 0, (size_t)(total * s->n) * sizeof(float));
    for (int64_t i = 0; i < total; i++) {
        struct key_entry key;
        int64_t pos = -1;
        /* A repeated category hits its last position, as ONNX Runtime's map does. */
        if (x->dtype == VG_DT_STRING || x->dtype == VG_DT_INT64 || x->dtype == VG_DT_INT32) {
            key_of(x->dtype, x->data, i, &key);
            pos =
                keys_find(x->dtype == VG_DT_STRING ? KEY_STRING : KEY_INT, s->keys, s->n, &key, 1);
        } else {
            double v = num_at(x->data, x->dtype, i);
            /* NaN and values beyond int64 have no category; others truncate like a C cast. */
            if (v > -9.2e18 && v < 9.2e18) {
                key.k.i = (int64_t)v;
                pos = keys_find(KEY_INT, s->keys, s->n, &key, 1);
            }
        }
        if (pos >= 0) {
            y[i * s->n + pos] = 1.0f;
        } else if (!s->zeros) {
            if (x->dtype == VG_DT_STRING)
                return vg_kerr(c, VG_ERANGE, "unknown category '%.64s' at element %lld (zeros=0)",
                               key.k.s, (long long)i);
            return vg_kerr(c, VG_ERANGE, "unknown category %g at element %lld (zeros=0)",
                           num_at(x->data, x->dtype, i), (long long)i);
        }
    }
    return 0;
}

/* ---- LabelEncoder ---------------------------------------------------------------------------- */

enum le_mode {
    LE_V1_STR_TO_INT, /* opset 1: index of the string in classes_strings */
    LE_V1_INT_TO_STR, /* opset 1: classes_strings[x] */
    LE_MAP,           /* opset 2+: keys -> values */
};

struct labelenc {
    enum le_mode mode;
    enum key_kind kind;
    enum vg_dtype in_dt, out_dt;
    int64_t n;
    const char *const *classes; /* opset 1 */
    const void *values;         /* opset 2+: n values of out_dt (attribute or tensor data) */
    union {
        int64_t i;
        int32_t i32;
        float f;
        double d;
        const char *s;
    } dflt; /* written with memcpy of the output element size */
    struct key_entry keys[];
};

static const struct attr_spec le1_attrs[] = {
    {"classes_strings", VG_ATTR_STRINGS},
    {"default_int64", VG_ATTR_INT},
    {"default_string", VG_ATTR_STRING},
    {NULL, 0},
};

static const struct attr_spec le2_attrs[] = {
    {"keys_strings", VG_ATTR_STRINGS},  {"keys_int64s", VG_ATTR_INTS},
    {"keys_floats", VG_ATTR_FLOATS},    {"values_strings", VG_ATTR_STRINGS},
    {"values_int64s", VG_ATTR_INTS},    {"values_floats", VG_ATTR_FLOATS},
    {"default_string", VG_ATTR_STRING}, {"default_int64", VG_ATTR_INT},
    {"default_float", VG_ATTR_FLOAT},   {NULL, 0},
};

static const struct attr_spec le4_attrs[] = {
    {"keys_strings", VG_ATTR_STRINGS},
    {"keys_int64s", VG_ATTR_INTS},
    {"keys_floats", VG_ATTR_FLOATS},
    {"keys_tensor", VG_ATTR_TENSOR},
    {"values_strings", VG_ATTR_STRINGS},
    {"values_int64s", VG_ATTR_INTS},
    {"values_floats", VG_ATTR_FLOATS},
    {"values_tensor", VG_ATTR_TENSOR},
    {"default_string", VG_ATTR_STRING},
    {"default_int64", VG_ATTR_INT},
    {"default_float", VG_ATTR_FLOAT},
    {"default_tensor", VG_ATTR_TENSOR},
    {NULL, 0},
};

static struct labelenc *le_alloc(struct vg_kctx *c, int64_t n)
{
    struct labelenc *st = calloc(1, sizeof(*st) + (size_t)n * sizeof(st->keys[0]));
    if (!st)
        vg_kerr(c, VG_ENOMEM, "out of memory");
    return st;
}

static int le1_init(struct vg_kctx *c, enum vg_dtype dt)
{
    const char *const *cls;
    int64_t n = (int64_t)vg_attr_strings(c->node, "classes_strings", &cls);
    struct labelenc *st;
    if (dt != VG_DT_STRING && dt != VG_DT_INT64)
        return vg_kerr(c, VG_ETYPE, "input must be string or int64, got %s", dt_name(dt));
    if (!(st = le_alloc(c, n)))
        return -VG_ENOMEM;
    st->classes = cls;
    st->n = n;
    st->kind = KEY_STRING;
    st->in_dt = dt;
    if (dt == VG_DT_STRING) {
        st->mode = LE_V1_STR_TO_INT;
        st->out_dt = VG_DT_INT64;
        st->dflt.i = vg_attr_i(c->node, "default_int64", -1);
        keys_build(KEY_STRING, VG_DT_STRING, cls, n, st->keys);
    } else {
        st->mode = LE_V1_INT_TO_STR;
        st->out_dt = VG_DT_STRING;
        st->dflt.s = vg_attr_s(c->node, "default_string", "_Unused");
    }
    c->state = st;
    c->out[0]->dtype = st->out_dt;
    return 0;
}

/* The keys or the values of a LabelEncoder: one list attribute or (opset 4+) one tensor. */
struct le_list {
    enum vg_dtype dt;
    int64_t n;
    const void *data;
};

static int le_list(struct vg_kctx *c, const char *what, struct le_list *out)
{
    char name[32];
    const int64_t *vi;
    const float *vf;
    const char *const *vs;
    snprintf(name, sizeof name, "%s_strings", what);
    size_t ns = vg_attr_strings(c->node, name, &vs);
    snprintf(name, sizeof name, "%s_int64s", what);
    size_t ni = vg_attr_ints(c->node, name, &vi);
    snprintf(name, sizeof name, "%s_floats", what);
    size_t nf = vg_attr_floats(c->node, name, &vf);
    snprintf(name, sizeof name, "%s_tensor", what);
    const struct vg_tensor *t = c->node->opset >= 4 ? vg_attr_t(c->node, name) : NULL;

    if ((ns != 0) + (ni != 0) + (nf != 0) + (t != NULL) != 1)
        return vg_kerr(c, VG_EINVAL,
                       "exactly one of %s_strings, %s_int64s, %s_floats%s must be "
                       "given",
                       what, what, what, c->node->opset >= 4 ? " and the tensor" : "");
    if (t) {
        if (t->dtype != VG_DT_STRING && !is_numeric(t->dtype))
            return vg_kerr(c, VG_EUNSUPPORTED, "%s_tensor of type %s is not supported", what,
                           dt_name(t->dtype));
        *out = (struct le_list){t->dtype, vg_tensor_numel(t), t->data};
    } else if (ns) {
        *out = (struct le_list){VG_DT_STRING, (int64_t)ns, vs};
    } else if (ni) {
        *out = (struct le_list){VG_DT_INT64, (int64_t)ni, vi};
    } else {
        *out = (struct le_list){VG_DT_FLOAT, (int64_t)nf, vf};
    }
    return 0;
}

/* The miss value: default_tensor (opset 4+), else the default_* attribute of the value type. */
static int le_default(struct vg_kctx *c, struct labelenc *st)
{
    const struct vg_tensor *t = c->node->opset >= 4 ? vg_attr_t(c->node, "default_tensor") : NULL;
    if (t) {
        if (t->dtype != st->out_dt || vg_tensor_numel(t) < 1)
            return vg_kerr(c, VG_ETYPE, "default_tensor must hold one %s value, got %s x %lld",
                           dt_name(st->out_dt), dt_name(t->dtype), (long long)vg_tensor_numel(t));
        memcpy(&st->dflt, t->data, vg_dtype_size(st->out_dt));
        return 0;
    }
    switch (st->out_dt) {
    case VG_DT_STRING: st->dflt.s = vg_attr_s(c->node, "default_string", "_Unused"); break;
    case VG_DT_INT64: st->dflt.i = vg_attr_i(c->node, "default_int64", -1); break;
    case VG_DT_INT32: st->dflt.i32 = -1; break;
    case VG_DT_DOUBLE: st->dflt.d = vg_attr_f(c->node, "default_float", -0.0f); break;
    default: st->dflt.f = vg_attr_f(c->node, "default_float", -0.0f); break;
    }
    return 0;
}

static int le2_init(struct vg_kctx *c, enum vg_dtype dt)
{
    struct le_list keys, values;
    int rc;
    if ((rc = le_list(c, "keys", &keys)) < 0 || (rc = le_list(c, "values", &values)) < 0)
        return rc;
    if (keys.n != values.n)
        return vg_kerr(c, VG_EINVAL, "keys and values differ in length (%lld keys, %lld values)",
                       (long long)keys.n, (long long)values.n);
    if (dt != keys.dt)
        return vg_kerr(c, VG_ETYPE, "input type %s does not match the %s keys", dt_name(dt),
                       dt_name(keys.dt));

    struct labelenc *st = le_alloc(c, keys.n);
    if (!st)
        return -VG_ENOMEM;
    st->mode = LE_MAP;
    st->n = keys.n;
    st->kind = key_kind_of(keys.dt);
    st->in_dt = dt;
    st->out_dt = values.dt;
    st->values = values.data;
    if ((rc = le_default(c, st)) < 0) {
        free(st);
        return rc;
    }
    keys_build(st->kind, keys.dt, keys.data, keys.n, st->keys);
    c->state = st;
    c->out[0]->dtype = st->out_dt;
    return 0;
}

static int le_init(struct vg_kctx *c)
{
    int rc;
    int64_t v = c->node->opset;
    if ((rc = check_attrs(c, v < 2 ? le1_attrs : v < 4 ? le2_attrs : le4_attrs)) < 0)
        return rc;
    if (c->n_in < 1 || !c->in[0] || c->n_out < 1 || !c->out[0])
        return vg_kerr(c, VG_EGRAPH, "input X and output Y are required");
    return v < 2 ? le1_init(c, c->in[0]->dtype) : le2_init(c, c->in[0]->dtype);
}

static int le_run(struct vg_kctx *c)
{
    const struct labelenc *s = c->state;
    const struct vg_tensor *x = c->in[0];
    char *y = c->out[0]->data;
    size_t es = vg_dtype_size(s->out_dt);
    int64_t total = vg_tensor_numel(x);
    for (int64_t i = 0; i < total; i++, y += es) {
        struct key_entry key;
        if (s->mode == LE_V1_INT_TO_STR) {
            int64_t v = ((const int64_t *)x->data)[i];
            const char *str = v >= 0 && v < s->n ? s->classes[v] : s->dflt.s;
            memcpy(y, &str, es);
            continue;
        }
        key_of(s->in_dt, x->data, i, &key);
        /* Repeated keys: opset 1 maps a class to its last index, opset 2+ keeps the first pair
         * (ONNX Runtime's map assignment and emplace respectively). */
        int64_t pos = keys_find(s->kind, s->keys, s->n, &key, s->mode == LE_V1_STR_TO_INT);
        if (s->mode == LE_V1_STR_TO_INT) {
            int64_t v = pos >= 0 ? pos : s->dflt.i;
            memcpy(y, &v, es);
        } else {
            memcpy(y,
                   pos >= 0 ? (const char *)s->values + (size_t)pos * es : (const void *)&s->dflt,
                   es);
        }
    }
    return 0;
}

/* ---- ZipMap ---------------------------------------------------------------------------------- */

struct zipmap {
    struct vg_tensor keys; /* rank 1, C keys; data points just past this struct */
};

static const struct attr_spec zipmap_attrs[] = {
    {"classlabels_int64s", VG_ATTR_INTS},
    {"classlabels_strings", VG_ATTR_STRINGS},
    {NULL, 0},
};

static int zipmap_init(struct vg_kctx *c)
{
    int rc;
    if ((rc = check_attrs(c, zipmap_attrs)) < 0)
        return rc;
    if (c->n_in < 1 || !c->in[0] || c->n_out < 1 || !c->out[0])
        return vg_kerr(c, VG_EGRAPH, "input X and output Z are required");
    if (c->in[0]->dtype != VG_DT_FLOAT)
        return vg_kerr(c, VG_ETYPE, "input X must be float, got %s", dt_name(c->in[0]->dtype));
    const int64_t *ki;
    const char *const *ks;
    size_t ni = vg_attr_ints(c->node, "classlabels_int64s", &ki);
    size_t ns = vg_attr_strings(c->node, "classlabels_strings", &ks);
    if ((ni != 0) == (ns != 0))
        return vg_kerr(c, VG_EINVAL,
                       "exactly one of classlabels_int64s and classlabels_strings must be given");
    size_t n = ni ? ni : ns;
    /* Strings are pointers to the model's attribute copies, which outlive this state. */
    size_t es = ni ? sizeof(int64_t) : sizeof(char *);
    struct zipmap *st = calloc(1, sizeof(*st) + n * es);
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    st->keys.dtype = ni ? VG_DT_INT64 : VG_DT_STRING;
    st->keys.rank = 1;
    st->keys.dims[0] = (int64_t)n;
    st->keys.data = st + 1;
    memcpy(st->keys.data, ni ? (const void *)ki : (const void *)ks, n * es);
    c->state = st;
    c->out[0]->dtype = VG_DT_FLOAT;
    c->out[0]->map_keys = &st->keys;
    return 0;
}

static int zipmap_infer(struct vg_kctx *c)
{
    const struct zipmap *s = c->state;
    int64_t n, f;
    int rc = rows_cols(c, c->in[0], &n, &f);
    if (rc < 0)
        return rc;
    if (f != s->keys.dims[0])
        return vg_kerr(c, VG_ESHAPE, "input has %lld columns but there are %lld class labels",
                       (long long)f, (long long)s->keys.dims[0]);
    c->out[0]->rank = 2;
    c->out[0]->dims[0] = n;
    c->out[0]->dims[1] = f;
    c->out[0]->map_keys = &s->keys;
    return 0;
}

static int zipmap_run(struct vg_kctx *c)
{
    memcpy(c->out[0]->data, c->in[0]->data, (size_t)vg_tensor_numel(c->in[0]) * sizeof(float));
    return 0;
}

/* ---- table ----------------------------------------------------------------------------------- */

#define ML "ai.onnx.ml"

const struct vg_op vg_ops_ml[] = {
    {ML, "LinearClassifier", 1, 0, lincls_init, lincls_infer, lincls_run, free_state, 0, 1},
    {ML, "LinearRegressor", 1, 0, linreg_init, linreg_infer, linreg_run, free_state, 0, 1},
    {ML, "Scaler", 1, 0, scaler_init, scaler_infer, scaler_run, free_state, 0, 1},
    {ML, "Normalizer", 1, 0, normalizer_init, normalizer_infer, normalizer_run, free_state, 0, 1},
    {ML, "Imputer", 1, 0, imputer_init, imputer_infer, imputer_run, free_state, 0, 1},
    {ML, "Binarizer", 1, 0, binarizer_init, same_shape_infer, binarizer_run, NULL, 0, 1},
    {ML, "ArrayFeatureExtractor", 1, 0, afe_init, afe_infer, afe_run, NULL, 0, 1},
    {ML, "OneHotEncoder", 1, 0, onehot_init, onehot_infer, onehot_run, free_state, 0, 1},
    {ML, "LabelEncoder", 1, 0, le_init, same_shape_infer, le_run, free_state, 0, 1},
    {ML, "ZipMap", 1, 0, zipmap_init, zipmap_infer, zipmap_run, free_state, 0, 1},
    {0},
};
