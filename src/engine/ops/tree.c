/*
 * Operator family: tree ensembles (ai.onnx.ml TreeEnsembleClassifier and TreeEnsembleRegressor,
 * opsets 1 and 3; one entry each covers every ai.onnx.ml opset from 1).
 *
 * Subset of the ONNX-ML spec implemented
 * --------------------------------------
 *  - Every attribute of opset 1 and the opset-3 `*_as_tensor` forms (nodes_values_as_tensor,
 *    nodes_hitrates_as_tensor, base_values_as_tensor, class_weights_as_tensor /
 *    target_weights_as_tensor): a float or double TENSOR used instead of the FLOATS attribute.
 *    Giving both forms of one attribute is an error. Hitrates are checked for length and ignored.
 *  - Node modes BRANCH_LEQ, BRANCH_LT, BRANCH_GTE, BRANCH_GT, BRANCH_EQ, BRANCH_NEQ, LEAF. A branch
 *    goes to its true child when `x <op> threshold` holds, or when x is NaN and the node's
 *    nodes_missing_value_tracks_true is 1; otherwise to its false child. So without tracking a
 *    NaN takes the false branch, except under BRANCH_NEQ, where `NaN != t` is true (as in ORT).
 *  - Trees are identified by nodes_treeids; a tree's root is the first node listed with that id and
 *    trees are summed in order of first appearance (ONNX Runtime's reading). Children are looked up
 *    by (tree id, node id). Several branches may share a child (LightGBM writes set membership
 *    as EQ nodes sharing a true child); real cycles are rejected.
 *  - Regressor: aggregate_function SUM, AVERAGE (sum / number of trees), MIN, MAX per target over
 *    all leaf weights reached, then + base_values[k] (base_values has 0 or n_targets entries).
 *    A target no weight reached counts 0 under MIN/MAX. post_transform is applied across the
 *    n_targets values; with a single target only PROBIT is applied and LOGISTIC / SOFTMAX /
 *    SOFTMAX_ZERO leave the value unchanged, which is what ONNX Runtime does.
 *  - Classifier: scores are per-class sums of leaf weights plus base_values; labels from
 *    classlabels_int64s or classlabels_strings (exactly one of them). Label output int64 or string
 *    [N], scores float [N, n_classes]. aggregate_function does not exist for the classifier.
 *  - Input X: float, double, int64, int32, shape [N, F] or [F] (one row). Outputs float.
 *
 * Numerics (chosen to agree with ONNX Runtime, the runtime these models are usually checked
 * against): for float, int32 and int64 inputs thresholds are float and the comparison is done in
 * float (integers converted to float first, as C++'s usual conversions do in ORT). For double
 * inputs the comparison is in double against the thresholds as given (the float attribute widened,
 * or the as_tensor double exactly). Leaf weights are summed in double, in tree order; transforms
 * run in float with ORT's formulas: LOGISTIC 1/(1+exp(-|x|)) mirrored for x < 0; SOFTMAX with max
 * subtraction; SOFTMAX_ZERO leaves values within 1e-7 of 0 at ~0 and leaves them out of the sum;
 * PROBIT sqrt(2) * erfinv(2x - 1) with the same closed-form erfinv approximation
 * (a = 0.147, pi = 3.14159) ORT uses, so PROBIT agrees with ORT, not with the exact probit.
 *
 * Classes, has-score and the two-class conventions
 * ------------------------------------------------
 * A class "has a score" for a row when at least one reached leaf carried a weight for it.
 *  - n_classes >= 3 (and two classes whose weights use both class ids, see below): base_values
 *    (0 or n_classes entries) are added, the label is the first class with the highest score
 *    among classes that have a score or a base value (class 0 if none), the transform is applied
 *    to all n_classes scores (classes without a score count 0).
 *  - Two classes, weights for ONE class id only ("binary case", what skl2onnx writes: one
 *    column c, usually class id 0, holding the positive-class score). With s0, s1 the two
 *    column sums and has0/has1 their has-score flags, exactly as ORT's
 *    TreeAggregatorClassifier::FinalizeScores does:
 *      base_values of 2: s0 += b0, s1 += b1, two columns are written;
 *      base_values of 1: s0 += b0, two columns only if has1;
 *      no base_values:   two columns only if has1.
 *      pos = has1 ? s1 : (has0 ? s0 : 0).
 *      All weights >= 0: label = labels[1] if pos > 0.5 else labels[0];
 *      otherwise:        label = labels[1] if pos > 0   else labels[0].
 *      Two columns: the transform is applied to (s0, s1).
 *      One column (s = s0): PROBIT -> (probit(s), 0); all weights >= 0 -> (1 - s, s) with no
 *      other transform; mixed-sign weights -> LOGISTIC gives (logistic(-s), logistic(s)), any
 *      other transform gives (-s, s).
 *    Deliberate differences from ORT, where ORT's result is not meaningful: with two base values
 *    and has1, ORT computes s1 = b1 + s0 (dropping the class-1 sums), we add each base to its own
 *    column; in the one-column PROBIT case ORT leaves the second column unwritten, we write 0.
 *  - Two classes with weights on both class ids: ORT picks labels by `s1 > 0` (and returns the
 *    raw indices 1/0, not the labels); that mislabels probability-style forests (0.7 vs 0.3), so
 *    these are treated like n_classes >= 3 (argmax). Antisymmetric exports (-s, s) get the same
 *    label either way.
 *  - One class: label labels[0], score = sum + base, transform as for n_classes >= 3.
 *  - Weights attached to a branch node are ignored (old onnxmltools exports have them; ORT
 *    ignores them too), but their tree/node ids and class ids are still validated.
 *
 * Validation at load (after which run cannot fail): equal lengths of every nodes_* and
 * class_* / target_* list, known modes, post_transform and aggregate_function
 * (VG_EUNSUPPORTED otherwise), unique (tree, node) ids, children that exist in the same tree and
 * no cycle, feature ids >= 0 for branches, class / target ids in range, 0 or 1 in
 * missing_value_tracks_true, base_values length, exactly one label list. Feature ids < F is
 * checked when the input shape is known (infer).
 *
 * Speed
 * -----
 * At init every tree is flattened into one 16-byte-node array in pre-order with the false child
 * right after its parent. A node still stores both children (as byte offsets), because the walk
 * picks the next node with one load indexed by the comparison result (child[x <= t]) rather than
 * a jump: a tree's comparisons are unpredictable and mispredictions dominated the plain loop.
 * A leaf's children are itself, so a walk can take a fixed number of steps with no leaf test.
 * Shared true children stay shared, a shared false child is copied (growth bounded). 8 walks
 * run in lockstep so the CPU overlaps their load chains: 8 rows of one tree in a batch, 8 trees
 * of the row for one row. A group runs for its deepest tree's depth, checking every 4 steps
 * whether any walk still moves (deep forests have mostly shallow leaves). The comparison is
 * specialised at init when every branch uses the same mode (LEQ, LT, GTE, GT; with or without
 * missing tracking); EQ, NEQ and mixed modes use an outcome mask per node (which of <, ==, >,
 * NaN go true). Float and double rows have their own walks; int rows are converted to float per
 * block. Rows go in blocks of up to 64, trees in chunks (leaf per (tree, row) in scratch), then
 * leaves are summed per row in tree order: from precomputed per-leaf sums for one column, from a
 * dense per-leaf row for up to 16 columns, from the (column, weight) list otherwise. Has-score
 * flags are tracked only when a column can lack a score (decided at init from which leaves carry
 * which columns). Everything per call lives in scratch sized at infer; run does no allocation.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

enum { MODE_LEQ, MODE_LT, MODE_GTE, MODE_GT, MODE_EQ, MODE_NEQ, MODE_LEAF, MODE_COUNT };
enum { POST_NONE, POST_LOGISTIC, POST_SOFTMAX, POST_SOFTMAX_ZERO, POST_PROBIT };
enum { AGG_SUM, AGG_AVERAGE, AGG_MIN, AGG_MAX };

/* Rows evaluated together, and the cap on (rows x trees) leaf slots per chunk. */
#define TREE_BLOCK_ROWS 64
#define TREE_LEAF_SLOTS 4096
/* Up to this many outputs, leaves keep a dense row of per-column sums. */
#define TREE_DENSE_MAX 16
/* Flattening may copy subtrees shared as false children; this bounds the growth. */
#define TREE_MAX_FLAT_NODES ((int64_t)1 << 28)

static const char *const mode_names[MODE_COUNT] = {
    "BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "LEAF",
};
static const char *const post_names[] = {"NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"};
static const char *const agg_names[] = {"SUM", "AVERAGE", "MIN", "MAX"};

/*
 * 16 bytes. The next node is child[cond], as a byte offset into the node array (index * 16, so
 * the walk adds it to the base with no scaling). child[0], the false child, is always the next
 * node; it is stored anyway so that the select is one indexed load. A leaf has both children
 * equal to itself, so stepping a leaf stays on it and the walk needs no leaf test inside its
 * loop. A leaf reads feature 0 (ignored); its weights are the u.n_weights entries from
 * leaf_wstart[self] (in dense mode leaf_wstart holds its leaf ordinal).
 */
struct tree_node {
    union {
        float thr;
        uint32_t n_weights;
    } u;
    uint32_t feat;
    uint32_t child[2];
};

/* Per node bits kept out of the hot struct: the outcome mask and missing-value tracking. */
enum {
    NODE_MASK = 0x0F, /* outcomes going true: bit 0 x < t, 1 x == t, 2 x > t, 3 NaN */
    NODE_MISS = 0x10, /* nodes_missing_value_tracks_true */
};

struct tree_weight {
    uint32_t col;
    double w;
};

struct tree_model;
typedef void (*tree_walk_fn)(const struct tree_model *m, const void *x, int64_t stride, int rows,
                             int t0, int nt, uint32_t *leaves);

struct tree_model {
    int is_classifier;
    int n_out; /* classes or targets */
    int n_trees;
    int post;
    int agg;
    uint32_t n_nodes; /* flattened */
    struct tree_node *nodes;
    uint8_t *node_mode; /* per flat node: MODE_* */
    uint8_t *node_bits; /* per flat node: NODE_MASK, NODE_MISS */
    uint32_t *roots;
    double *thr_d;         /* per flat node: the threshold double inputs compare against */
    double *leaf_sum;      /* per flat node: sum of a leaf's weights */
    uint32_t *leaf_wstart; /* per flat node: a leaf's first weight */
    struct tree_weight *weights;
    double *base;
    int n_base;
    int64_t max_feature;  /* -1 when no branch node */
    int single_col;       /* >= 0: every weight goes to this column (SUM/AVERAGE only) */
    int dense;            /* SUM/AVERAGE, few columns: leaves hold a dense row of sums */
    double *leaf_dense;   /* dense: [leaf ordinal][n_out] weight sums */
    uint32_t *leaf_hmask; /* dense: per leaf ordinal, bit k set when it has a weight for k */
    uint32_t *depth;      /* per tree: longest root-to-leaf path, in steps */
    int need_has;         /* has-score flags change the result: track them */
    int binary_case;      /* two classes, weights for one class id only */
    int all_positive;
    tree_walk_fn walk_f; /* rows of float */
    tree_walk_fn walk_d; /* rows of double */
    /* labels: point into the node's attributes (owned by the model) */
    const int64_t *labels_i64;
    const char *const *labels_str;
};

/* ---- transforms (float, ONNX Runtime's formulas) --------------------------------------------- */

static float logistic(float v)
{
    float e = 1.0f / (1.0f + expf(-fabsf(v)));
    return v < 0 ? 1.0f - e : e;
}

/* Closed-form erfinv approximation (Winitzki, a = 0.147), the one ORT's PROBIT uses. */
static float erfinv_approx(float x)
{
    float sgn = x < 0 ? -1.0f : 1.0f;
    float l = logf((1.0f - x) * (1.0f + x));
    float p = 2.0f / (3.14159f * 0.147f) + 0.5f * l;
    float q = l / 0.147f;
    return sgn * sqrtf(-p + sqrtf(p * p - q));
}

static float probit(float v)
{
    return 1.41421356f * erfinv_approx(2.0f * v - 1.0f);
}

static void apply_post(int post, float *z, int n)
{
    switch (post) {
    case POST_LOGISTIC:
        for (int k = 0; k < n; k++)
            z[k] = logistic(z[k]);
        break;
    case POST_PROBIT:
        for (int k = 0; k < n; k++)
            z[k] = probit(z[k]);
        break;
    case POST_SOFTMAX: {
        float mx = -FLT_MAX, sum = 0.0f;
        for (int k = 0; k < n; k++)
            if (z[k] > mx)
                mx = z[k];
        for (int k = 0; k < n; k++) {
            z[k] = expf(z[k] - mx);
            sum += z[k];
        }
        for (int k = 0; k < n; k++)
            z[k] /= sum;
        break;
    }
    case POST_SOFTMAX_ZERO: {
        float mx = -FLT_MAX, sum = 0.0f;
        for (int k = 0; k < n; k++)
            if (z[k] > mx)
                mx = z[k];
        float scale_zero = expf(-mx);
        for (int k = 0; k < n; k++) {
            if (z[k] > 1e-7f || z[k] < -1e-7f) {
                z[k] = expf(z[k] - mx);
                sum += z[k];
            } else {
                z[k] *= scale_zero;
            }
        }
        for (int k = 0; k < n; k++)
            z[k] /= sum;
        break;
    }
    default: break;
    }
}

/* ---- walks: one leaf index per (tree, row) -------------------------------------------------- */

/*
 * Defines NAME walking trees [t0, t0 + nt) for `rows` rows of type T and writing the leaf reached
 * for (tree t, row r) to leaves[t * rows + r]. The (tree, row) pairs are taken 8 at a time and
 * the 8 walks advance in lockstep without branches (the comparison result indexes child[]), so
 * the CPU overlaps them instead of mispredicting every comparison, for as many steps as the
 * deepest of their trees (a leaf steps onto itself). With many rows a group is 8 rows of one
 * tree, with few it spans trees. THR reads the threshold of node `n` (byte offset `ix`), COND
 * decides the true branch from v and th.
 */
#define TREE_LANES 8
/* One step of lane k from node offset ix to nx: branch-free select of a child. */
#define TREE_STEP(T, THR, COND)                                                                    \
    const struct tree_node *n = (const struct tree_node *)((const char *)nodes + ix);              \
    T v = xr[k][n->feat];                                                                          \
    T th = THR;                                                                                    \
    uint32_t nx = n->child[(COND) != 0]
#define TREE_WALK(NAME, T, THR, COND)                                                              \
    static void NAME(const struct tree_model *m, const void *xv, int64_t stride, int rows, int t0, \
                     int nt, uint32_t *leaves)                                                     \
    {                                                                                              \
        const struct tree_node *nodes = m->nodes;                                                  \
        const double *thr_d = m->thr_d;                                                            \
        const uint8_t *bits = m->node_bits;                                                        \
        const uint32_t *roots = m->roots + t0;                                                     \
        const T *x = xv;                                                                           \
        const uint32_t *depth = m->depth + t0;                                                     \
        int total = rows * nt, t = 0, r = 0;                                                       \
        (void)thr_d;                                                                               \
        (void)bits;                                                                                \
        for (int g = 0; g < total; g += TREE_LANES) {                                              \
            uint32_t cur[TREE_LANES], steps = 0;                                                   \
            const T *xr[TREE_LANES];                                                               \
            int cnt = total - g < TREE_LANES ? total - g : TREE_LANES;                             \
            if (r + TREE_LANES <= rows) { /* 8 rows of one tree */                                 \
                const T *xk = x + (int64_t)r * stride;                                             \
                for (int k = 0; k < TREE_LANES; k++, xk += stride) {                               \
                    cur[k] = roots[t] << 4;                                                        \
                    xr[k] = xk;                                                                    \
                }                                                                                  \
                steps = depth[t];                                                                  \
                r += TREE_LANES - 1;                                                               \
            } else {                                                                               \
                for (int k = 0; k < TREE_LANES; k++) {                                             \
                    cur[k] = roots[t] << 4;                                                        \
                    xr[k] = x + (int64_t)r * stride;                                               \
                    steps = depth[t] > steps ? depth[t] : steps;                                   \
                    if (k + 1 < cnt && ++r == rows) {                                              \
                        r = 0;                                                                     \
                        t++;                                                                       \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            if (++r == rows) {                                                                     \
                r = 0;                                                                             \
                t++;                                                                               \
            }                                                                                      \
            /* blind steps, then one that checks whether any walk still moves (deep trees          \
             * whose leaves are mostly shallow stop well before their depth) */                    \
            for (uint32_t s = 0; s < steps;) {                                                     \
                uint32_t blind = steps - s < 4 ? steps - s - 1 : 3;                                \
                for (uint32_t b = 0; b < blind; b++) {                                             \
                    _Pragma("GCC unroll 8") for (int k = 0; k < TREE_LANES; k++)                   \
                    {                                                                              \
                        uint32_t ix = cur[k];                                                      \
                        TREE_STEP(T, THR, COND);                                                   \
                        cur[k] = nx;                                                               \
                    }                                                                              \
                }                                                                                  \
                uint32_t moved = 0;                                                                \
                _Pragma("GCC unroll 8") for (int k = 0; k < TREE_LANES; k++)                       \
                {                                                                                  \
                    uint32_t ix = cur[k];                                                          \
                    TREE_STEP(T, THR, COND);                                                       \
                    moved |= nx ^ ix;                                                              \
                    cur[k] = nx;                                                                   \
                }                                                                                  \
                s += blind + 1;                                                                    \
                if (!moved)                                                                        \
                    break;                                                                         \
            }                                                                                      \
            for (int k = 0; k < cnt; k++)                                                          \
                leaves[g + k] = cur[k] >> 4;                                                       \
        }                                                                                          \
    }

#define THR_F (n->u.thr)
#define THR_D (*(const double *)((const char *)thr_d + (ix >> 1)))
#define MISS_F ((bits[ix >> 4] >> 4) & (v != v))
/* outcome index: 0 x < t, 1 x == t, 2 x > t, 3 unordered (NaN) */
#define MASK_F ((bits[ix >> 4] >> ((v == th) | ((v > th) << 1) | ((v != v) * 3))) & 1)

#define TREE_WALKS(SUF, T, THR)                                                                    \
    TREE_WALK(walk_leq_##SUF, T, THR, v <= th)                                                     \
    TREE_WALK(walk_lt_##SUF, T, THR, v < th)                                                       \
    TREE_WALK(walk_gte_##SUF, T, THR, v >= th)                                                     \
    TREE_WALK(walk_gt_##SUF, T, THR, v > th)                                                       \
    TREE_WALK(walk_leq_m_##SUF, T, THR, (v <= th) | MISS_F)                                        \
    TREE_WALK(walk_lt_m_##SUF, T, THR, (v < th) | MISS_F)                                          \
    TREE_WALK(walk_gte_m_##SUF, T, THR, (v >= th) | MISS_F)                                        \
    TREE_WALK(walk_gt_m_##SUF, T, THR, (v > th) | MISS_F)                                          \
    TREE_WALK(walk_any_##SUF, T, THR, MASK_F)

TREE_WALKS(f, float, THR_F)
TREE_WALKS(d, double, THR_D)

/* [mode][missing tracked]; EQ, NEQ and mixed modes use the outcome-mask walk */
static const tree_walk_fn walks_f[4][2] = {
    {walk_leq_f, walk_leq_m_f},
    {walk_lt_f, walk_lt_m_f},
    {walk_gte_f, walk_gte_m_f},
    {walk_gt_f, walk_gt_m_f},
};
static const tree_walk_fn walks_d[4][2] = {
    {walk_leq_d, walk_leq_m_d},
    {walk_lt_d, walk_lt_m_d},
    {walk_gte_d, walk_gte_m_d},
    {walk_gt_d, walk_gt_m_d},
};

/* Outcome mask of a mode (see struct tree_node); NEQ holds for NaN, as `NaN != t` does. */
static uint8_t mode_mask(int mode, int miss)
{
    static const uint8_t masks[6] = {0x3, 0x1, 0x6, 0x4, 0x2, 0xD};
    return (uint8_t)(masks[mode] | (miss ? 0x8 : 0));
}

/* ---- accumulation and per-row results ------------------------------------------------------- */

/*
 * Dense rows of K columns, summed per row in tree order in registers (a chain through memory
 * would cost a store-to-load forwarding per tree).
 */
#define TREE_DENSE_K(K)                                                                            \
    static void accumulate_dense##K(const struct tree_model *m, const uint32_t *leaves, int rows,  \
                                    int nt, double *acc, uint32_t *hmask)                          \
    {                                                                                              \
        for (int r = 0; r < rows; r++) {                                                           \
            double a[K];                                                                           \
            uint32_t hm = hmask[r];                                                                \
            _Pragma("GCC unroll 4") for (int k = 0; k < K; k++) a[k] = acc[(size_t)r * K + k];     \
            for (int t = 0; t < nt; t++) {                                                         \
                uint32_t ord = m->leaf_wstart[leaves[(size_t)t * (size_t)rows + r]];               \
                const double *v = m->leaf_dense + (size_t)ord * K;                                 \
                _Pragma("GCC unroll 4") for (int k = 0; k < K; k++) a[k] += v[k];                  \
                hm |= m->leaf_hmask[ord];                                                          \
            }                                                                                      \
            _Pragma("GCC unroll 4") for (int k = 0; k < K; k++) acc[(size_t)r * K + k] = a[k];     \
            hmask[r] = hm;                                                                         \
        }                                                                                          \
    }
TREE_DENSE_K(2)
TREE_DENSE_K(3)
TREE_DENSE_K(4)

/* Adds the leaves of nt trees x rows (layout [tree][row]) to acc / has (layout [row][col]). */
static void accumulate(const struct tree_model *m, const uint32_t *leaves, int rows, int nt,
                       double *acc, unsigned char *has)
{
    const struct tree_node *nodes = m->nodes;
    if (m->single_col >= 0) {
        for (int r = 0; r < rows; r++) {
            double a = acc[r];
            unsigned char h = has[r];
            for (int t = 0; t < nt; t++) {
                uint32_t leaf = leaves[(size_t)t * (size_t)rows + r];
                a += m->leaf_sum[leaf];
                h |= nodes[leaf].u.n_weights != 0;
            }
            acc[r] = a;
            has[r] = h;
        }
        return;
    }
    int n_out = m->n_out;
    if (m->dense) {
        uint32_t *hmask = (uint32_t *)has;
        switch (n_out) {
        case 2: accumulate_dense2(m, leaves, rows, nt, acc, hmask); return;
        case 3: accumulate_dense3(m, leaves, rows, nt, acc, hmask); return;
        case 4: accumulate_dense4(m, leaves, rows, nt, acc, hmask); return;
        default: break;
        }
        for (int t = 0; t < nt; t++) {
            const uint32_t *lt = leaves + (size_t)t * (size_t)rows;
            for (int r = 0; r < rows; r++) {
                uint32_t ord = m->leaf_wstart[lt[r]];
                const double *v = m->leaf_dense + (size_t)ord * (size_t)n_out;
                double *a = acc + (size_t)r * (size_t)n_out;
                for (int k = 0; k < n_out; k++)
                    a[k] += v[k];
                hmask[r] |= m->leaf_hmask[ord];
            }
        }
        return;
    }
    for (int t = 0; t < nt; t++) {
        const uint32_t *lt = leaves + (size_t)t * (size_t)rows;
        for (int r = 0; r < rows; r++) {
            const struct tree_node *leaf = nodes + lt[r];
            const struct tree_weight *w = m->weights + m->leaf_wstart[lt[r]];
            double *a = acc + (size_t)r * (size_t)n_out;
            unsigned char *h = has + (size_t)r * (size_t)n_out;
            uint32_t nw = leaf->u.n_weights;
            switch (m->agg) {
            case AGG_MIN:
                for (uint32_t j = 0; j < nw; j++) {
                    uint32_t k = w[j].col;
                    if (!h[k] || w[j].w < a[k])
                        a[k] = w[j].w;
                    h[k] = 1;
                }
                break;
            case AGG_MAX:
                for (uint32_t j = 0; j < nw; j++) {
                    uint32_t k = w[j].col;
                    if (!h[k] || w[j].w > a[k])
                        a[k] = w[j].w;
                    h[k] = 1;
                }
                break;
            default:
                for (uint32_t j = 0; j < nw; j++)
                    a[w[j].col] += w[j].w;
                if (m->need_has)
                    for (uint32_t j = 0; j < nw; j++)
                        h[w[j].col] = 1;
                break;
            }
        }
    }
}

static void finalize_regressor(const struct tree_model *m, const double *s, const unsigned char *h,
                               float *z)
{
    int n = m->n_out;
    for (int k = 0; k < n; k++) {
        double v = s[k];
        if (m->agg == AGG_AVERAGE)
            v /= m->n_trees;
        else if ((m->agg == AGG_MIN || m->agg == AGG_MAX) && !h[k])
            v = 0;
        if (m->n_base)
            v += m->base[k];
        z[k] = (float)v;
    }
    if (n > 1)
        apply_post(m->post, z, n);
    else if (m->post == POST_PROBIT)
        z[0] = probit(z[0]);
}

/* Two classes, weights for one class id: see the design note. Returns the label index. */
static int finalize_binary(const struct tree_model *m, const double *s, const unsigned char *h,
                           float *z)
{
    int has0 = h[0], has1 = h[1];
    double s0 = s[0], s1 = s[1];
    int two;
    if (m->n_base == 2) {
        s0 += m->base[0];
        s1 += m->base[1];
        two = 1;
    } else {
        if (m->n_base == 1)
            s0 += m->base[0];
        two = has1;
    }
    double pos = has1 ? s1 : (has0 ? s0 : 0.0);
    int label, add;
    if (m->all_positive) {
        label = pos > 0.5;
        add = label ? 0 : 1;
    } else {
        label = pos > 0;
        add = label ? 2 : 3;
    }
    if (two) {
        z[0] = (float)s0;
        z[1] = (float)s1;
        apply_post(m->post, z, 2);
        return label;
    }
    float v = (float)s0;
    if (m->post == POST_PROBIT) {
        z[0] = probit(v);
        z[1] = 0.0f;
    } else if (add <= 1) {
        z[0] = 1.0f - v;
        z[1] = v;
    } else if (m->post == POST_LOGISTIC) {
        z[0] = logistic(-v);
        z[1] = logistic(v);
    } else {
        z[0] = -v;
        z[1] = v;
    }
    return label;
}

static int finalize_classifier(const struct tree_model *m, double *s, const unsigned char *h,
                               float *z)
{
    if (m->binary_case)
        return finalize_binary(m, s, h, z);
    int n = m->n_out, best = -1;
    for (int k = 0; k < m->n_base; k++)
        s[k] += m->base[k];
    for (int k = 0; k < n; k++)
        if ((k < m->n_base || h[k]) && (best < 0 || s[k] > s[best]))
            best = k;
    for (int k = 0; k < n; k++)
        z[k] = (float)s[k];
    apply_post(m->post, z, n);
    return best < 0 ? 0 : best;
}

/* ---- state ----------------------------------------------------------------------------------- */

static void tree_model_free(void *p)
{
    struct tree_model *m = p;
    if (!m)
        return;
    free(m->nodes);
    free(m->node_mode);
    free(m->node_bits);
    free(m->roots);
    free(m->thr_d);
    free(m->leaf_sum);
    free(m->leaf_wstart);
    free(m->leaf_dense);
    free(m->leaf_hmask);
    free(m->depth);
    free(m->weights);
    free(m->base);
    free(m);
}

/* (tree id, node id) -> attribute index, sorted for binary search. */
struct node_key {
    int64_t tree, node;
    uint32_t idx;
};

static int node_key_cmp(const void *a, const void *b)
{
    const struct node_key *x = a, *y = b;
    if (x->tree != y->tree)
        return x->tree < y->tree ? -1 : 1;
    if (x->node != y->node)
        return x->node < y->node ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int64_t node_key_find(const struct node_key *keys, size_t n, int64_t tree, int64_t node)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct node_key *k = &keys[mid];
        if (k->tree < tree || (k->tree == tree && k->node < node))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < n && keys[lo].tree == tree && keys[lo].node == node)
        return keys[lo].idx;
    return -1;
}

/*
 * A list of reals given either as FLOATS attribute `name` or as float/double TENSOR attribute
 * `name`_as_tensor. *out (malloc'd, NULL when absent) receives the values as double; *n the count.
 */
static int read_reals(struct vg_kctx *c, const char *name, double **out, size_t *n)
{
    char tname[64];
    snprintf(tname, sizeof(tname), "%s_as_tensor", name);
    const float *f = NULL;
    size_t nf = vg_attr_floats(c->node, name, &f);
    const struct vg_tensor *t = vg_attr_t(c->node, tname);
    const struct vg_attr *fa = vg_attr_find(c->node, name);
    const struct vg_attr *ta = vg_attr_find(c->node, tname);
    *out = NULL;
    *n = 0;
    if (fa && fa->type != VG_ATTR_FLOATS)
        return vg_kerr(c, VG_EINVAL, "attribute %s must be a list of floats", name);
    if (ta && ta->type != VG_ATTR_TENSOR)
        return vg_kerr(c, VG_EINVAL, "attribute %s must be a tensor", tname);
    if (t && nf)
        return vg_kerr(c, VG_EINVAL, "attributes %s and %s are both set; give only one", name,
                       tname);
    if (t) {
        if (t->dtype != VG_DT_DOUBLE && t->dtype != VG_DT_FLOAT)
            return vg_kerr(c, VG_EUNSUPPORTED, "attribute %s must be a double or float tensor",
                           tname);
        int64_t cnt = vg_tensor_numel(t);
        if (cnt == 0)
            return 0;
        double *v = malloc((size_t)cnt * sizeof(double));
        if (!v)
            return vg_kerr(c, VG_ENOMEM, "out of memory");
        for (int64_t i = 0; i < cnt; i++)
            v[i] = t->dtype == VG_DT_DOUBLE ? ((const double *)t->data)[i]
                                            : (double)((const float *)t->data)[i];
        *out = v;
        *n = (size_t)cnt;
        return 0;
    }
    if (nf) {
        double *v = malloc(nf * sizeof(double));
        if (!v)
            return vg_kerr(c, VG_ENOMEM, "out of memory");
        for (size_t i = 0; i < nf; i++)
            v[i] = f[i];
        *out = v;
        *n = nf;
    }
    return 0;
}

static int ints_attr(struct vg_kctx *c, const char *name, const int64_t **v, size_t *n)
{
    const struct vg_attr *a = vg_attr_find(c->node, name);
    if (a && a->type != VG_ATTR_INTS)
        return vg_kerr(c, VG_EINVAL, "attribute %s must be a list of ints", name);
    *n = vg_attr_ints(c->node, name, v);
    return 0;
}

static int pick_name(struct vg_kctx *c, const char *attr, const char *dflt,
                     const char *const *names, int n_names, int *out)
{
    const struct vg_attr *a = vg_attr_find(c->node, attr);
    if (a && a->type != VG_ATTR_STRING)
        return vg_kerr(c, VG_EINVAL, "attribute %s must be a string", attr);
    const char *s = vg_attr_s(c->node, attr, dflt);
    for (int i = 0; i < n_names; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return 0;
        }
    return vg_kerr(c, VG_EUNSUPPORTED, "unknown %s '%s'", attr, s);
}

/* Everything init builds temporarily. */
struct tree_build {
    size_t n; /* attribute nodes */
    const int64_t *treeids, *nodeids, *featureids, *trueids, *falseids, *missing;
    unsigned char *modes;
    double *values;
    struct node_key *keys;
    int64_t *true_idx, *false_idx; /* attribute index of the children, -1 for leaves */
    uint32_t *w_start, *w_count;   /* per attribute node: its weights in the grouped list */
    unsigned char *color;
    int64_t *stack;
    int64_t flat_cap; /* allocated flat nodes */
    int64_t flat_max; /* bound on flat nodes (shared subtrees copied) */
};

static void tree_build_release(struct tree_build *b)
{
    free(b->modes);
    free(b->values);
    free(b->keys);
    free(b->true_idx);
    free(b->false_idx);
    free(b->w_start);
    free(b->w_count);
    free(b->color);
    free(b->stack);
}

/* Rejects a cycle reachable from attribute node `root` (iterative three-colour DFS). */
static int check_cycles(struct vg_kctx *c, struct tree_build *b, int64_t root)
{
    /* stack entries: node index * 4 + state (0 enter, 1 false child done, 2 both done) */
    size_t sp = 0;
    b->stack[sp++] = root * 4;
    while (sp) {
        int64_t e = b->stack[sp - 1];
        int64_t v = e / 4;
        int st = (int)(e % 4);
        if (st == 0) {
            if (b->color[v] == 2) {
                sp--;
                continue;
            }
            b->color[v] = 1;
            if (b->modes[v] == MODE_LEAF) {
                b->color[v] = 2;
                sp--;
                continue;
            }
        }
        if (st < 2) {
            int64_t child = st == 0 ? b->false_idx[v] : b->true_idx[v];
            b->stack[sp - 1] = v * 4 + st + 1;
            if (b->color[child] == 1)
                return vg_kerr(c, VG_EINVAL,
                               "tree %lld: cycle, the %s child of node %lld (node %lld) is also "
                               "its ancestor",
                               (long long)b->treeids[v], st == 0 ? "false" : "true",
                               (long long)b->nodeids[v], (long long)b->nodeids[child]);
            if (b->color[child] == 0)
                b->stack[sp++] = child * 4;
            continue;
        }
        b->color[v] = 2;
        sp--;
    }
    return 0;
}

/* Resizes the per-flat-node arrays to `cap` entries. */
static int grow_flat(struct tree_model *m, size_t cap)
{
    struct tree_node *nn = realloc(m->nodes, cap * sizeof(*m->nodes));
    if (nn)
        m->nodes = nn;
    uint8_t *md = realloc(m->node_mode, cap);
    if (md)
        m->node_mode = md;
    uint8_t *bt = realloc(m->node_bits, cap);
    if (bt)
        m->node_bits = bt;
    double *td = realloc(m->thr_d, cap * sizeof(double));
    if (td)
        m->thr_d = td;
    uint32_t *ws = realloc(m->leaf_wstart, cap * sizeof(uint32_t));
    if (ws)
        m->leaf_wstart = ws;
    return nn && md && bt && td && ws ? 0 : -1;
}

/*
 * Appends the tree rooted at attribute node `root` to m->nodes in pre-order, false child right
 * after its parent. A node already placed is reused when it is a true child (shared subtree); a
 * false child must be adjacent, so a shared false child is copied.
 */
static int flatten_tree(struct vg_kctx *c, struct tree_build *b, struct tree_model *m, int64_t root,
                        int64_t *placed)
{
    /* stack entries: attribute index, flat index whose `yes` must point at it (-1: none) */
    size_t sp = 0;
    int64_t *st = b->stack;
    st[sp++] = root;
    st[sp++] = -1;
    while (sp) {
        int64_t link = st[--sp];
        int64_t v = st[--sp];
        if (link >= 0 && placed[v] >= 0) {
            m->nodes[link].child[1] = (uint32_t)placed[v] << 4;
            continue;
        }
        if ((int64_t)m->n_nodes >= b->flat_cap) {
            if (b->flat_cap >= b->flat_max)
                return vg_kerr(c, VG_EUNSUPPORTED,
                               "tree %lld: too many nodes once shared subtrees are expanded",
                               (long long)b->treeids[v]);
            int64_t cap = b->flat_cap * 2 < b->flat_max ? b->flat_cap * 2 : b->flat_max;
            if (grow_flat(m, (size_t)cap))
                return vg_kerr(c, VG_ENOMEM, "out of memory");
            b->flat_cap = cap;
        }
        uint32_t p = m->n_nodes++;
        if (link >= 0)
            m->nodes[link].child[1] = p << 4;
        if (placed[v] < 0)
            placed[v] = p;
        struct tree_node *n = &m->nodes[p];
        memset(n, 0, sizeof(*n));
        int mode = b->modes[v];
        m->node_mode[p] = (uint8_t)mode;
        m->node_bits[p] = 0;
        m->thr_d[p] = 0;
        m->leaf_wstart[p] = 0;
        if (mode == MODE_LEAF) {
            n->child[0] = n->child[1] = p << 4;
            m->leaf_wstart[p] = b->w_start[v];
            n->u.n_weights = b->w_count[v];
            continue;
        }
        n->child[0] = (p + 1) << 4;
        n->feat = (uint32_t)b->featureids[v];
        int miss = b->missing ? (int)b->missing[v] : 0;
        uint8_t mask = mode_mask(mode, miss);
        if (isnan(b->values[v])) /* every comparison with a NaN threshold is false, != true */
            mask = (uint8_t)((mode == MODE_NEQ ? 0x7 : 0) | (mask & 0x8));
        m->node_bits[p] = (uint8_t)(mask | (miss ? NODE_MISS : 0));
        m->thr_d[p] = b->values[v];
        n->u.thr = (float)b->values[v];
        /* true child first on the stack so the false child is popped (placed) next */
        st[sp++] = b->true_idx[v];
        st[sp++] = p;
        st[sp++] = b->false_idx[v];
        st[sp++] = -1;
    }
    return 0;
}

static int build_dense(struct vg_kctx *c, struct tree_model *m);
static int tree_depths(struct vg_kctx *c, struct tree_model *m);

static int tree_init(struct vg_kctx *c, int is_classifier)
{
    const struct vg_node *nd = c->node;
    struct tree_build b;
    struct tree_model *m = calloc(1, sizeof(*m));
    double *wvals = NULL, *hitrates = NULL;
    int64_t *placed = NULL;
    uint32_t *stamp = NULL, *cover_cnt = NULL;
    unsigned char *covered = NULL, *is_root = NULL;
    int rc = 0;
    memset(&b, 0, sizeof(b));
    if (!m)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    m->is_classifier = is_classifier;
    m->max_feature = -1;
    m->single_col = -1;

    /* ---- inputs, outputs ---- */
    if (c->n_in != 1 || !c->in[0]) {
        rc = vg_kerr(c, VG_EGRAPH, "expects exactly one input X");
        goto fail;
    }
    enum vg_dtype xt = c->in[0]->dtype;
    if (xt != VG_DT_FLOAT && xt != VG_DT_DOUBLE && xt != VG_DT_INT64 && xt != VG_DT_INT32) {
        rc = vg_kerr(c, VG_ETYPE, "input X is %s; expected float, double, int64 or int32",
                     vg_dtype_name(xt));
        goto fail;
    }
    if (c->n_out < 1 || c->n_out > (is_classifier ? 2 : 1)) {
        rc = vg_kerr(c, VG_EGRAPH, "expects %s output(s), the node lists %d",
                     is_classifier ? "1 or 2" : "1", c->n_out);
        goto fail;
    }

    /* ---- post_transform, aggregate_function ---- */
    if ((rc = pick_name(c, "post_transform", "NONE", post_names, 5, &m->post)))
        goto fail;
    m->agg = AGG_SUM;
    if (!is_classifier && (rc = pick_name(c, "aggregate_function", "SUM", agg_names, 4, &m->agg)))
        goto fail;

    /* ---- node attributes ---- */
    const char *const *modes = NULL;
    size_t n_modes = 0, n_tree, n_feat, n_true, n_false, n_miss, n_vals, n_hit;
    {
        const struct vg_attr *a = vg_attr_find(nd, "nodes_modes");
        if (a && a->type != VG_ATTR_STRINGS) {
            rc = vg_kerr(c, VG_EINVAL, "attribute nodes_modes must be a list of strings");
            goto fail;
        }
        n_modes = vg_attr_strings(nd, "nodes_modes", &modes);
    }
    if ((rc = ints_attr(c, "nodes_nodeids", &b.nodeids, &b.n)) ||
        (rc = ints_attr(c, "nodes_treeids", &b.treeids, &n_tree)) ||
        (rc = ints_attr(c, "nodes_featureids", &b.featureids, &n_feat)) ||
        (rc = ints_attr(c, "nodes_truenodeids", &b.trueids, &n_true)) ||
        (rc = ints_attr(c, "nodes_falsenodeids", &b.falseids, &n_false)) ||
        (rc = ints_attr(c, "nodes_missing_value_tracks_true", &b.missing, &n_miss)))
        goto fail;
    if ((rc = read_reals(c, "nodes_values", &b.values, &n_vals)) ||
        (rc = read_reals(c, "nodes_hitrates", &hitrates, &n_hit)))
        goto fail;
    if (b.n == 0) {
        rc = vg_kerr(c, VG_EINVAL, "nodes_nodeids is empty: the ensemble has no nodes");
        goto fail;
    }
    if (b.n > (size_t)INT32_MAX) {
        rc = vg_kerr(c, VG_EUNSUPPORTED, "too many nodes (%zu)", b.n);
        goto fail;
    }
    {
        struct {
            const char *name;
            size_t n;
            int optional;
        } lens[] = {
            {"nodes_treeids", n_tree, 0},
            {"nodes_featureids", n_feat, 0},
            {"nodes_modes", n_modes, 0},
            {"nodes_truenodeids", n_true, 0},
            {"nodes_falsenodeids", n_false, 0},
            {"nodes_values", n_vals, 0},
            {"nodes_missing_value_tracks_true", n_miss, 1},
            {"nodes_hitrates", n_hit, 1},
        };
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
            if (lens[i].n != b.n && !(lens[i].optional && lens[i].n == 0)) {
                rc = vg_kerr(c, VG_EINVAL,
                             "attribute lengths differ: nodes_nodeids has %zu entries but %s "
                             "has %zu",
                             b.n, lens[i].name, lens[i].n);
                goto fail;
            }
    }
    if (n_miss == 0)
        b.missing = NULL;

    size_t n = b.n;
    b.modes = malloc(n);
    b.keys = malloc(n * sizeof(*b.keys));
    b.true_idx = malloc(n * sizeof(int64_t));
    b.false_idx = malloc(n * sizeof(int64_t));
    b.w_start = calloc(n, sizeof(uint32_t));
    b.w_count = calloc(n, sizeof(uint32_t));
    b.color = calloc(n, 1);
    /* cycle check: at most n + 1 entries; flattening: at most n pending true children plus
     * one false child, two words each */
    b.stack = malloc((2 * n + 8) * sizeof(int64_t));
    placed = malloc(n * sizeof(int64_t));
    is_root = calloc(n, 1);
    if (!b.modes || !b.keys || !b.true_idx || !b.false_idx || !b.w_start || !b.w_count ||
        !b.color || !b.stack || !placed || !is_root) {
        rc = vg_kerr(c, VG_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        int md = -1;
        for (int k = 0; k < MODE_COUNT; k++)
            if (!strcmp(modes[i], mode_names[k]))
                md = k;
        if (md < 0) {
            rc = vg_kerr(c, VG_EUNSUPPORTED, "tree %lld node %lld: unknown node mode '%s'",
                         (long long)b.treeids[i], (long long)b.nodeids[i], modes[i]);
            goto fail;
        }
        b.modes[i] = (unsigned char)md;
        if (b.missing && b.missing[i] != 0 && b.missing[i] != 1) {
            rc = vg_kerr(c, VG_EINVAL,
                         "tree %lld node %lld: nodes_missing_value_tracks_true must be 0 or 1, "
                         "got %lld",
                         (long long)b.treeids[i], (long long)b.nodeids[i], (long long)b.missing[i]);
            goto fail;
        }
        if (md != MODE_LEAF && (b.featureids[i] < 0 || b.featureids[i] >= INT32_MAX)) {
            rc = vg_kerr(c, VG_EINVAL, "tree %lld node %lld: feature id %lld out of range",
                         (long long)b.treeids[i], (long long)b.nodeids[i],
                         (long long)b.featureids[i]);
            goto fail;
        }
        b.keys[i].tree = b.treeids[i];
        b.keys[i].node = b.nodeids[i];
        b.keys[i].idx = (uint32_t)i;
    }
    qsort(b.keys, n, sizeof(*b.keys), node_key_cmp);
    for (size_t i = 1; i < n; i++)
        if (b.keys[i].tree == b.keys[i - 1].tree && b.keys[i].node == b.keys[i - 1].node) {
            rc = vg_kerr(c, VG_EINVAL, "tree %lld: node id %lld appears twice",
                         (long long)b.keys[i].tree, (long long)b.keys[i].node);
            goto fail;
        }
    for (size_t i = 0; i < n; i++) {
        b.true_idx[i] = b.false_idx[i] = -1;
        if (b.modes[i] == MODE_LEAF)
            continue;
        for (int side = 0; side < 2; side++) {
            int64_t id = side ? b.falseids[i] : b.trueids[i];
            int64_t j = node_key_find(b.keys, n, b.treeids[i], id);
            if (j < 0) {
                rc = vg_kerr(c, VG_EINVAL,
                             "tree %lld node %lld: %s child id %lld does not exist in the tree",
                             (long long)b.treeids[i], (long long)b.nodeids[i],
                             side ? "false" : "true", (long long)id);
                goto fail;
            }
            if (j == (int64_t)i) {
                rc = vg_kerr(c, VG_EINVAL,
                             "tree %lld node %lld: cycle, the node is its own %s "
                             "child",
                             (long long)b.treeids[i], (long long)b.nodeids[i],
                             side ? "false" : "true");
                goto fail;
            }
            (side ? b.false_idx : b.true_idx)[i] = j;
        }
    }

    /* ---- trees: roots in order of first appearance ---- */
    {
        /* keys are grouped by tree id; the root is the smallest attribute index of a group */
        uint32_t n_trees = 0;
        for (size_t i = 0; i < n;) {
            size_t j = i;
            uint32_t root = b.keys[i].idx;
            while (j < n && b.keys[j].tree == b.keys[i].tree) {
                if (b.keys[j].idx < root)
                    root = b.keys[j].idx;
                j++;
            }
            is_root[root] = 1;
            n_trees++;
            i = j;
        }
        m->roots = malloc(n_trees * sizeof(uint32_t));
        if (!m->roots) {
            rc = vg_kerr(c, VG_ENOMEM, "out of memory");
            goto fail;
        }
        m->n_trees = 0;
        for (size_t i = 0; i < n; i++)
            if (is_root[i])
                m->roots[m->n_trees++] = (uint32_t)i; /* attribute index for now */
    }
    for (int t = 0; t < m->n_trees; t++)
        if ((rc = check_cycles(c, &b, m->roots[t])))
            goto fail;

    /* ---- weights ---- */
    const int64_t *w_ids, *w_nodes, *w_trees;
    size_t n_wid, n_wnode, n_wtree, n_wval;
    const char *pfx = is_classifier ? "class" : "target";
    char nm_ids[32], nm_nodes[32], nm_trees[32], nm_w[32];
    snprintf(nm_ids, sizeof(nm_ids), "%s_ids", pfx);
    snprintf(nm_nodes, sizeof(nm_nodes), "%s_nodeids", pfx);
    snprintf(nm_trees, sizeof(nm_trees), "%s_treeids", pfx);
    snprintf(nm_w, sizeof(nm_w), "%s_weights", pfx);
    if ((rc = ints_attr(c, nm_ids, &w_ids, &n_wid)) ||
        (rc = ints_attr(c, nm_nodes, &w_nodes, &n_wnode)) ||
        (rc = ints_attr(c, nm_trees, &w_trees, &n_wtree)) ||
        (rc = read_reals(c, nm_w, &wvals, &n_wval)))
        goto fail;
    if (n_wnode != n_wid || n_wtree != n_wid || n_wval != n_wid) {
        rc = vg_kerr(c, VG_EINVAL,
                     "attribute lengths differ: %s has %zu entries, %s %zu, %s %zu, %s %zu", nm_ids,
                     n_wid, nm_nodes, n_wnode, nm_trees, n_wtree, nm_w, n_wval);
        goto fail;
    }
    if (n_wid > (size_t)INT32_MAX) {
        rc = vg_kerr(c, VG_EUNSUPPORTED, "too many leaf weights (%zu)", n_wid);
        goto fail;
    }

    /* ---- outputs count: classes or targets ---- */
    if (is_classifier) {
        const struct vg_attr *ai = vg_attr_find(nd, "classlabels_int64s");
        const struct vg_attr *as = vg_attr_find(nd, "classlabels_strings");
        if ((ai && ai->type != VG_ATTR_INTS) || (as && as->type != VG_ATTR_STRINGS)) {
            rc = vg_kerr(c, VG_EINVAL,
                         "classlabels_int64s must be ints, classlabels_strings "
                         "strings");
            goto fail;
        }
        size_t ni = vg_attr_ints(nd, "classlabels_int64s", &m->labels_i64);
        size_t ns = vg_attr_strings(nd, "classlabels_strings", &m->labels_str);
        if ((ni == 0) == (ns == 0)) {
            rc = vg_kerr(c, VG_EINVAL,
                         "exactly one of classlabels_int64s and "
                         "classlabels_strings must be given and non-empty");
            goto fail;
        }
        if ((ni ? ni : ns) > (size_t)INT32_MAX / 2) {
            rc = vg_kerr(c, VG_EUNSUPPORTED, "too many classes");
            goto fail;
        }
        m->n_out = (int)(ni ? ni : ns);
        if (ns)
            m->labels_i64 = NULL;
        else
            m->labels_str = NULL;
        if (c->out[0])
            c->out[0]->dtype = ns ? VG_DT_STRING : VG_DT_INT64;
        if (c->n_out > 1 && c->out[1])
            c->out[1]->dtype = VG_DT_FLOAT;
    } else {
        const struct vg_attr *a = vg_attr_find(nd, "n_targets");
        if (!a || a->type != VG_ATTR_INT || a->i < 1 || a->i > INT32_MAX / 2) {
            rc = vg_kerr(c, VG_EINVAL, "attribute n_targets must be given, an int >= 1");
            goto fail;
        }
        m->n_out = (int)a->i;
        if (c->out[0])
            c->out[0]->dtype = VG_DT_FLOAT;
    }

    /* ---- base values ---- */
    {
        size_t nb;
        if ((rc = read_reals(c, "base_values", &m->base, &nb)))
            goto fail;
        int ok = nb == 0 || nb == (size_t)m->n_out || (is_classifier && m->n_out == 2 && nb == 1);
        if (!ok) {
            rc = vg_kerr(c, VG_EINVAL, "base_values has %zu entries; expected 0 or %d", nb,
                         m->n_out);
            goto fail;
        }
        m->n_base = (int)nb;
    }

    /* ---- group weights per leaf (attribute order kept within a leaf) ---- */
    m->all_positive = 1;
    int first_col = -1, one_col = 1;
    for (size_t i = 0; i < n_wid; i++) {
        int64_t j = node_key_find(b.keys, n, w_trees[i], w_nodes[i]);
        if (j < 0) {
            rc = vg_kerr(c, VG_EINVAL, "%s entry %zu: node %lld of tree %lld does not exist", nm_w,
                         i, (long long)w_nodes[i], (long long)w_trees[i]);
            goto fail;
        }
        if (w_ids[i] < 0 || w_ids[i] >= m->n_out) {
            rc = vg_kerr(c, VG_EINVAL, "%s entry %zu: %s id %lld out of range [0, %d)", nm_w, i,
                         pfx, (long long)w_ids[i], m->n_out);
            goto fail;
        }
        if (wvals[i] < 0)
            m->all_positive = 0;
        if (first_col < 0)
            first_col = (int)w_ids[i];
        else if (first_col != w_ids[i])
            one_col = 0;
        if (b.modes[j] == MODE_LEAF)
            b.w_count[j]++;
    }
    {
        uint32_t total = 0;
        for (size_t i = 0; i < n; i++) {
            b.w_start[i] = total;
            total += b.w_count[i];
            b.w_count[i] = 0;
        }
        m->weights = malloc((total ? total : 1) * sizeof(*m->weights));
        if (!m->weights) {
            rc = vg_kerr(c, VG_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < n_wid; i++) {
            int64_t j = node_key_find(b.keys, n, w_trees[i], w_nodes[i]);
            if (b.modes[j] != MODE_LEAF)
                continue; /* ignored, see the design note */
            struct tree_weight *w = &m->weights[b.w_start[j] + b.w_count[j]++];
            w->col = (uint32_t)w_ids[i];
            w->w = wvals[i];
        }
    }

    /* ---- flatten ---- */
    /* Shared subtrees are copied where they are false children; this bounds the growth. */
    b.flat_max = (int64_t)n * 4 + 1024;
    if (b.flat_max > TREE_MAX_FLAT_NODES)
        b.flat_max = TREE_MAX_FLAT_NODES;
    if ((int64_t)n > b.flat_max) {
        rc = vg_kerr(c, VG_EUNSUPPORTED, "too many nodes (%zu)", n);
        goto fail;
    }
    b.flat_cap = (int64_t)n;
    if (grow_flat(m, n)) {
        rc = vg_kerr(c, VG_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        placed[i] = -1;
    for (int t = 0; t < m->n_trees; t++) {
        uint32_t root_attr = m->roots[t];
        m->roots[t] = m->n_nodes;
        if ((rc = flatten_tree(c, &b, m, root_attr, placed)))
            goto fail;
    }
    (void)grow_flat(m, m->n_nodes); /* shrink to size; on failure the arrays stay valid */
    m->leaf_sum = calloc(m->n_nodes, sizeof(double));
    if (!m->leaf_sum) {
        rc = vg_kerr(c, VG_ENOMEM, "out of memory");
        goto fail;
    }

    /* ---- per flat node facts: leaf sums, modes, features ---- */
    int same_mode = -1, mixed = 0, any_missing = 0;
    for (uint32_t p = 0; p < m->n_nodes; p++) {
        const struct tree_node *nn = &m->nodes[p];
        if (m->node_mode[p] == MODE_LEAF) {
            double s = 0;
            for (uint32_t j = 0; j < nn->u.n_weights; j++)
                s += m->weights[m->leaf_wstart[p] + j].w;
            m->leaf_sum[p] = s;
            continue;
        }
        if (same_mode < 0)
            same_mode = m->node_mode[p];
        else if (same_mode != m->node_mode[p])
            mixed = 1;
        any_missing |= (m->node_bits[p] & NODE_MISS) != 0;
        if ((int64_t)nn->feat > m->max_feature)
            m->max_feature = nn->feat;
    }
    if (mixed || same_mode < 0 || same_mode == MODE_EQ || same_mode == MODE_NEQ) {
        m->walk_f = walk_any_f;
        m->walk_d = walk_any_d;
    } else {
        m->walk_f = walks_f[same_mode][any_missing];
        m->walk_d = walks_d[same_mode][any_missing];
    }

    /* ---- which column sets are always scored (has-score flags then need no tracking) ---- */
    covered = calloc((size_t)m->n_out, 1);
    cover_cnt = calloc((size_t)m->n_out, sizeof(uint32_t));
    stamp = calloc((size_t)m->n_out, sizeof(uint32_t));
    if (!covered || !cover_cnt || !stamp) {
        rc = vg_kerr(c, VG_ENOMEM, "out of memory");
        goto fail;
    }
    for (int t = 0; t < m->n_trees; t++) {
        uint32_t end = t + 1 < m->n_trees ? m->roots[t + 1] : m->n_nodes;
        uint32_t n_leaves = 0;
        memset(cover_cnt, 0, (size_t)m->n_out * sizeof(uint32_t));
        for (uint32_t p = m->roots[t]; p < end; p++) {
            const struct tree_node *nn = &m->nodes[p];
            if (m->node_mode[p] != MODE_LEAF)
                continue;
            n_leaves++;
            for (uint32_t j = 0; j < nn->u.n_weights; j++) {
                uint32_t k = m->weights[m->leaf_wstart[p] + j].col;
                if (stamp[k] != p + 1) {
                    stamp[k] = p + 1;
                    cover_cnt[k]++;
                }
            }
        }
        for (int k = 0; k < m->n_out; k++)
            if (n_leaves && cover_cnt[k] == n_leaves)
                covered[k] = 1;
    }

    if (is_classifier && m->n_out == 2 && first_col >= 0 && one_col) {
        m->binary_case = 1;
        m->single_col = first_col;
        m->need_has = !covered[first_col];
    } else if (m->agg == AGG_MIN || m->agg == AGG_MAX) {
        m->need_has = 1;
    } else {
        if ((m->n_out == 1 || (first_col >= 0 && one_col)) && !is_classifier)
            m->single_col = first_col >= 0 ? first_col : 0;
        if (is_classifier)
            for (int k = m->n_base; k < m->n_out; k++)
                if (!covered[k])
                    m->need_has = 1;
    }
    if (is_classifier && !m->binary_case && m->n_out == 1)
        m->single_col = 0;
    /* a classifier needs its label from flags only when some column may lack a score */
    if (m->single_col >= 0 && !is_classifier)
        m->need_has = 0;
    if (m->single_col < 0 && (m->agg == AGG_SUM || m->agg == AGG_AVERAGE) &&
        m->n_out <= TREE_DENSE_MAX && (rc = build_dense(c, m)))
        goto fail;
    if ((rc = tree_depths(c, m)))
        goto fail;

    c->state = m;
    m = NULL;
    rc = 0;
fail:
    tree_build_release(&b);
    free(wvals);
    free(hitrates);
    free(placed);
    free(is_root);
    free(stamp);
    free(cover_cnt);
    free(covered);
    tree_model_free(m);
    return rc;
}

/* Dense leaf rows: leaf_wstart of a leaf becomes its ordinal into leaf_dense / leaf_hmask. */
static int build_dense(struct vg_kctx *c, struct tree_model *m)
{
    uint32_t n_leaves = 0;
    for (uint32_t p = 0; p < m->n_nodes; p++)
        n_leaves += m->node_mode[p] == MODE_LEAF;
    m->leaf_dense = calloc((size_t)n_leaves * (size_t)m->n_out, sizeof(double));
    m->leaf_hmask = calloc(n_leaves, sizeof(uint32_t));
    if (!m->leaf_dense || !m->leaf_hmask)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    uint32_t ord = 0;
    for (uint32_t p = 0; p < m->n_nodes; p++) {
        const struct tree_node *nn = &m->nodes[p];
        if (m->node_mode[p] != MODE_LEAF)
            continue;
        const struct tree_weight *w = m->weights + m->leaf_wstart[p];
        double *row = m->leaf_dense + (size_t)ord * (size_t)m->n_out;
        for (uint32_t j = 0; j < nn->u.n_weights; j++) {
            row[w[j].col] += w[j].w;
            m->leaf_hmask[ord] |= 1u << w[j].col;
        }
        m->leaf_wstart[p] = ord++;
    }
    m->dense = 1;
    return 0;
}

/* Longest root-to-leaf path of each tree (the flat trees may share subtrees: memoised DFS). */
static int tree_depths(struct vg_kctx *c, struct tree_model *m)
{
    int rc = 0;
    int32_t *height = malloc((size_t)m->n_nodes * sizeof(int32_t));
    uint32_t *stack = malloc(((size_t)m->n_nodes * 2 + 2) * sizeof(uint32_t));
    m->depth = malloc((size_t)m->n_trees * sizeof(uint32_t));
    if (!height || !stack || !m->depth) {
        rc = vg_kerr(c, VG_ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t p = 0; p < m->n_nodes; p++)
        height[p] = -1;
    for (int t = 0; t < m->n_trees; t++) {
        size_t sp = 0;
        stack[sp++] = m->roots[t];
        while (sp) {
            uint32_t p = stack[sp - 1];
            const struct tree_node *nn = &m->nodes[p];
            if (height[p] >= 0) {
                sp--;
                continue;
            }
            if (m->node_mode[p] == MODE_LEAF) {
                height[p] = 0;
                sp--;
                continue;
            }
            uint32_t yes = nn->child[1] >> 4;
            int32_t hf = height[p + 1], ht = height[yes];
            if (hf >= 0 && ht >= 0) {
                height[p] = 1 + (hf > ht ? hf : ht);
                sp--;
                continue;
            }
            if (hf < 0)
                stack[sp++] = p + 1;
            if (ht < 0)
                stack[sp++] = yes;
        }
        m->depth[t] = (uint32_t)height[m->roots[t]];
    }
out:
    free(height);
    free(stack);
    return rc;
}

static int classifier_init(struct vg_kctx *c)
{
    return tree_init(c, 1);
}

static int regressor_init(struct vg_kctx *c)
{
    return tree_init(c, 0);
}

/* ---- infer / run ----------------------------------------------------------------------------- */

struct tree_plan {
    int64_t n_rows, n_feat;
    int block, tree_chunk;
    size_t acc_off, has_off, leaves_off, xconv_off, srow_off, hrow_off, zrow_off, total;
};

static size_t align64(size_t v)
{
    return (v + 63) & ~(size_t)63;
}

static void plan_layout(const struct tree_model *m, const struct vg_tensor *x, struct tree_plan *p)
{
    p->n_rows = x->rank == 1 ? 1 : x->dims[0];
    p->n_feat = x->rank == 1 ? x->dims[0] : x->dims[1];
    p->block = p->n_rows < TREE_BLOCK_ROWS ? (int)p->n_rows : TREE_BLOCK_ROWS;
    if (p->block < 1)
        p->block = 1;
    int chunk = TREE_LEAF_SLOTS / p->block;
    p->tree_chunk = chunk < m->n_trees ? chunk : m->n_trees;
    size_t n_acc = m->single_col >= 0 ? 1 : (size_t)m->n_out;
    size_t off = 0;
    p->acc_off = off;
    off = align64(off + (size_t)p->block * n_acc * sizeof(double));
    p->has_off = off;
    off = align64(off + (size_t)p->block * (n_acc + sizeof(uint32_t)));
    p->leaves_off = off;
    off = align64(off + (size_t)p->block * (size_t)p->tree_chunk * sizeof(uint32_t));
    p->xconv_off = off;
    if (x->dtype == VG_DT_INT64 || x->dtype == VG_DT_INT32) {
        off = align64(off + (size_t)p->block * (size_t)p->n_feat * sizeof(float));
    }
    p->srow_off = off;
    off = align64(off + (size_t)m->n_out * sizeof(double));
    p->hrow_off = off;
    off = align64(off + (size_t)m->n_out);
    p->zrow_off = off;
    off = align64(off + (size_t)m->n_out * sizeof(float));
    p->total = off;
}

static int tree_infer(struct vg_kctx *c)
{
    const struct tree_model *m = c->state;
    const struct vg_tensor *x = c->in[0];
    if (x->rank != 1 && x->rank != 2)
        return vg_kerr(c, VG_ESHAPE, "X must be [N, F] or [F], got rank %d", x->rank);
    struct tree_plan p;
    plan_layout(m, x, &p);
    if (m->max_feature >= p.n_feat)
        return vg_kerr(c, VG_ESHAPE, "a tree reads feature %lld but X has %lld feature(s) per row",
                       (long long)m->max_feature, (long long)p.n_feat);
    if (p.n_feat > ((int64_t)1 << 40))
        return vg_kerr(c, VG_ESHAPE, "X has too many features");
    if (m->is_classifier) {
        if (c->out[0]) {
            c->out[0]->rank = 1;
            c->out[0]->dims[0] = p.n_rows;
        }
        if (c->n_out > 1 && c->out[1]) {
            c->out[1]->rank = 2;
            c->out[1]->dims[0] = p.n_rows;
            c->out[1]->dims[1] = m->n_out;
        }
    } else if (c->out[0]) {
        c->out[0]->rank = 2;
        c->out[0]->dims[0] = p.n_rows;
        c->out[0]->dims[1] = m->n_out;
    }
    c->scratch_bytes = p.total;
    return 0;
}

static int tree_run(struct vg_kctx *c)
{
    const struct tree_model *m = c->state;
    const struct vg_tensor *x = c->in[0];
    struct tree_plan p;
    plan_layout(m, x, &p);
    unsigned char *scr = c->scratch;
    double *acc = (double *)(scr + p.acc_off);
    unsigned char *has = scr + p.has_off;
    uint32_t *leaves = (uint32_t *)(scr + p.leaves_off);
    double *srow = (double *)(scr + p.srow_off);
    unsigned char *hrow = scr + p.hrow_off;
    float *zrow = (float *)(scr + p.zrow_off);
    const struct vg_tensor *lab = m->is_classifier ? c->out[0] : NULL;
    const struct vg_tensor *sc = m->is_classifier ? (c->n_out > 1 ? c->out[1] : NULL) : c->out[0];
    float *zout = sc ? sc->data : NULL;
    int n_out = m->n_out;
    size_t n_acc = m->single_col >= 0 ? 1 : (size_t)n_out;
    int is_double = x->dtype == VG_DT_DOUBLE;
    tree_walk_fn walk = is_double ? m->walk_d : m->walk_f;

    for (int64_t r0 = 0; r0 < p.n_rows; r0 += p.block) {
        int rows = (int)(p.n_rows - r0 < p.block ? p.n_rows - r0 : p.block);
        const void *xb;
        if (p.n_feat == 0) {
            /* then every tree is a single leaf, which reads (and ignores) feature 0 */
            static const double zero_row[1];
            xb = zero_row;
        } else if (x->dtype == VG_DT_FLOAT) {
            xb = (const float *)x->data + r0 * p.n_feat;
        } else if (is_double) {
            xb = (const double *)x->data + r0 * p.n_feat;
        } else {
            /* integers compare as float, like ORT's implicit int -> float conversion */
            float *xc = (float *)(scr + p.xconv_off);
            int64_t cnt = (int64_t)rows * p.n_feat;
            if (x->dtype == VG_DT_INT64) {
                const int64_t *xi = (const int64_t *)x->data + r0 * p.n_feat;
                for (int64_t i = 0; i < cnt; i++)
                    xc[i] = (float)xi[i];
            } else {
                const int32_t *xi = (const int32_t *)x->data + r0 * p.n_feat;
                for (int64_t i = 0; i < cnt; i++)
                    xc[i] = (float)xi[i];
            }
            xb = xc;
        }
        memset(acc, 0, (size_t)rows * n_acc * sizeof(double));
        memset(has, 0, (size_t)rows * (n_acc + sizeof(uint32_t)));
        for (int t0 = 0; t0 < m->n_trees; t0 += p.tree_chunk) {
            int nt = m->n_trees - t0 < p.tree_chunk ? m->n_trees - t0 : p.tree_chunk;
            walk(m, xb, p.n_feat, rows, t0, nt, leaves);
            accumulate(m, leaves, rows, nt, acc, has);
        }
        for (int r = 0; r < rows; r++) {
            const double *s;
            const unsigned char *h;
            if (m->single_col >= 0) {
                memset(srow, 0, (size_t)n_out * sizeof(double));
                memset(hrow, 0, (size_t)n_out);
                srow[m->single_col] = acc[r];
                hrow[m->single_col] = m->need_has ? has[r] : 1;
                s = srow;
                h = hrow;
            } else {
                memcpy(srow, acc + (size_t)r * n_acc, (size_t)n_out * sizeof(double));
                if (m->dense) {
                    uint32_t hm = m->need_has ? ((const uint32_t *)has)[r] : UINT32_MAX;
                    for (int k = 0; k < n_out; k++)
                        hrow[k] = (hm >> k) & 1;
                } else if (m->need_has)
                    memcpy(hrow, has + (size_t)r * n_acc, (size_t)n_out);
                else
                    memset(hrow, 1, (size_t)n_out);
                s = srow;
                h = hrow;
            }
            float *z = zout ? zout + (r0 + r) * (int64_t)n_out : zrow;
            if (!m->is_classifier) {
                finalize_regressor(m, s, h, z);
                continue;
            }
            int label = finalize_classifier(m, srow, h, z);
            if (lab) {
                if (m->labels_str)
                    ((const char **)lab->data)[r0 + r] = m->labels_str[label];
                else
                    ((int64_t *)lab->data)[r0 + r] = m->labels_i64[label];
            }
        }
    }
    return 0;
}

const struct vg_op vg_ops_tree[] = {
    {"ai.onnx.ml", "TreeEnsembleClassifier", 1, 0, classifier_init, tree_infer, tree_run,
     tree_model_free, 0, 1},
    {"ai.onnx.ml", "TreeEnsembleRegressor", 1, 0, regressor_init, tree_infer, tree_run,
     tree_model_free, 0, 1},
    {0},
};
