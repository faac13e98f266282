/*
 * vigil training: random forests (CART) from a CSV file, written as ONNX TreeEnsemble models.
 *
 * Ownership: every struct here is caller-allocated (tests put them on the stack) and filled by a
 * function that allocates its contents; the matching *_release frees those contents. All
 * functions are thread-safe on distinct objects; vg_forest_train starts its own threads.
 * Functions that can fail return 0 or a negative VG_E* code (include/vigil/engine.h) and fill a
 * struct vg_error whose message names the file, row and column where it applies.
 */
#ifndef VIGIL_TRAIN_H
#define VIGIL_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/engine.h"

enum vg_task { VG_TASK_AUTO = 0, VG_TASK_CLASSIFICATION = 1, VG_TASK_REGRESSION = 2 };
enum vg_impute { VG_IMPUTE_NONE = 0, VG_IMPUTE_MEAN = 1, VG_IMPUTE_MEDIAN = 2 };

/* ---- data (src/train/csv.c) -------------------------------------------------------------- */

/*
 * A table read from CSV: numeric features and one target column.
 * Classification targets are class indices into class_names (sorted: numerically when every
 * class name is a number, else by byte order). Regression targets are doubles.
 */
struct vg_dataset {
    int n_rows, n_features;
    char **feature_names;  /* n_features, in file order (the target column left out) */
    char *target_name;
    float *x;              /* [n_rows * n_features], row-major, no NaN after reading */
    enum vg_task task;
    int n_classes;
    char **class_names;    /* classification: n_classes */
    int32_t *y_class;      /* classification: [n_rows] */
    double *y_value;       /* regression: [n_rows] */
};

/*
 * Reads `path`: a header row, then one row per sample, comma-separated, optional double quotes
 * (RFC 4180). Features must be numeric; the target may be text or numbers. With task AUTO, a
 * target whose every value is an integer with at most 20 distinct values, or that is not numeric,
 * is classification, else regression. Errors (nothing is returned): an empty file or header only;
 * duplicate column names; a missing target column; ragged rows; a non-numeric feature; NaN or
 * empty cells unless `impute` says how to fill them (column mean or median over the rows that
 * have a value); a classification target with one class. Messages name file, row and column.
 */
int vg_dataset_read_csv(const char *path, const char *target, enum vg_task task,
                        enum vg_impute impute, struct vg_dataset *ds, struct vg_error *err);
/*
 * Same, reading only the listed feature columns, in the order given (features == NULL: every
 * column but the target, in file order, which is what vg_dataset_read_csv does). Also an error:
 * a listed name not in the header, a name listed twice, the target listed as a feature.
 * With a feature list, target may be NULL: the rows' features alone are read (ds->target_name,
 * class_names, y_class and y_value stay NULL, ds->task is `task` as given), e.g. to predict or
 * describe data whose labels are not known.
 */
int vg_dataset_read_csv_select(const char *path, const char *target, const char *const *features,
                               int n_features, enum vg_task task, enum vg_impute impute,
                               struct vg_dataset *ds, struct vg_error *err);
void vg_dataset_release(struct vg_dataset *ds);

/*
 * Train/holdout split: classification is stratified (each class split in proportion, at least one
 * training row per class), regression shuffled. Deterministic in `seed`. Row indices are
 * malloc'd into *train / *test (free both).
 */
int vg_split(const struct vg_dataset *ds, double test_size, uint64_t seed, int32_t **train,
             int *n_train, int32_t **test, int *n_test, struct vg_error *err);

/* ---- forests (src/train/forest.c, onnx_write.c) ------------------------------------------ */

enum vg_criterion { VG_CRIT_GINI = 0, VG_CRIT_ENTROPY = 1, VG_CRIT_SQUARED_ERROR = 2 };
enum vg_max_features { VG_MAXF_SQRT = 0, VG_MAXF_LOG2 = 1, VG_MAXF_ALL = 2, VG_MAXF_FRACTION = 3,
                       VG_MAXF_COUNT = 4 };

struct vg_forest_params {
    int n_trees;                  /* default 100 */
    int max_depth;                /* 0 = unlimited */
    int min_samples_leaf;         /* default 1 */
    enum vg_max_features max_features; /* default sqrt (classification), all (regression) */
    double max_features_value;    /* FRACTION: (0,1]; COUNT: number of features */
    int bootstrap;                /* default 1 */
    enum vg_criterion criterion;  /* gini or entropy for classification; squared error */
    uint64_t seed;                /* default 42 */
    int threads;                  /* 0 = number of CPUs */
    /* Called after each finished tree from the training threads (serialised by the trainer). */
    void (*progress)(void *ctx, int trees_done, int n_trees);
    void *progress_ctx;
};

/* Fills defaults for `task`. */
void vg_forest_params_default(struct vg_forest_params *p, enum vg_task task);

/*
 * One tree, nodes in preorder. A leaf has feature -1. Branch: x[feature] <= threshold goes left
 * (threshold is a float32 value, compared in float32, as the ONNX model will). Leaf values:
 * classification: n_classes class probabilities (fractions of the leaf's training samples,
 * weighted by bootstrap counts); regression: one mean.
 */
struct vg_tree_node {
    int32_t feature;
    float threshold;
    int32_t left, right;
    int32_t value;       /* index of the leaf's first value in vg_tree.values, or -1 */
};

struct vg_tree {
    int n_nodes;
    struct vg_tree_node *nodes;
    int n_values;
    double *values;
};

struct vg_forest {
    enum vg_task task;
    int n_features, n_classes; /* n_classes 0 for regression */
    int n_trees;
    struct vg_tree *trees;
};

/*
 * Grows the forest on the given rows. Deterministic: each tree draws from its own generator
 * seeded from (seed, tree index), so the result does not depend on the thread count.
 */
int vg_forest_train(const struct vg_dataset *ds, const int32_t *rows, int n_rows,
                    const struct vg_forest_params *p, struct vg_forest *f, struct vg_error *err);
void vg_forest_release(struct vg_forest *f);

/*
 * Serialises the forest as an ONNX model, input "input" float [N, n_features] (symbolic N):
 * classification: ai.onnx.ml TreeEnsembleClassifier with outputs "label" [N] and
 * "probabilities" float [N, C]; labels are classlabels_int64s when every class name is an integer,
 * else classlabels_strings. Regression: TreeEnsembleRegressor with output "variable" float [N, 1].
 * Opsets ai.onnx 15, ai.onnx.ml 3. The bytes are malloc'd (*bytes, *len); the same forest always
 * gives the same bytes. The model passes onnx.checker.check_model.
 */
int vg_forest_to_onnx(const struct vg_forest *f, const struct vg_dataset *ds, const char *name,
                      void **bytes, size_t *len, struct vg_error *err);

/* ---- evaluation (src/train/metrics.c) ------------------------------------------------------ */

struct vg_class_metrics {
    double precision, recall, f1; /* 0 when undefined (no predicted / no true rows) */
    int support;                  /* true rows of the class */
};

struct vg_metrics {
    enum vg_task task;
    int n_rows;
    /* classification */
    double accuracy;
    int n_classes;
    struct vg_class_metrics *per_class; /* n_classes */
    int64_t *confusion;                 /* [n_classes * n_classes]: row = true, column = predicted */
    /* regression */
    double r2, mae, rmse;
};

int vg_metrics_classification(const int32_t *truth, const int32_t *pred, int n, int n_classes,
                              struct vg_metrics *m, struct vg_error *err);
int vg_metrics_regression(const double *truth, const double *pred, int n, struct vg_metrics *m,
                          struct vg_error *err);
void vg_metrics_release(struct vg_metrics *m);

/* ---- drift reference (src/train/reference.c) ----------------------------------------------- */

#define VG_REF_BINS 10

/*
 * A feature's training distribution: edges[0] = min, edges[1..9] = deciles, edges[10] = max.
 * A value v is in bin i when edges[i] <= v < edges[i+1] (the last bin also holds v == max); below
 * range when v < min; above when v > max (see vg_reference_bin). Shares are fractions of the
 * training rows; below and above are 0 for the training data itself.
 */
struct vg_feature_ref {
    double edges[VG_REF_BINS + 1];
    double shares[VG_REF_BINS];
    double below, above;
    double mean, std, min, max;
};

struct vg_reference {
    int n_features;
    struct vg_feature_ref *features; /* n_features */
    int n_classes;                   /* classification: share of each class in the rows */
    double *class_shares;
};

/*
 * The reference of rows `rows` (indices into ds) of a data set: every feature, and for a
 * classification data set with labels the class shares of those labels (vg_reference_features,
 * then vg_reference_class_shares with ds->y_class).
 */
int vg_reference_compute(const struct vg_dataset *ds, const int32_t *rows, int n_rows,
                         struct vg_reference *r, struct vg_error *err);
/* The features only (r->n_classes 0): for data whose class distribution comes from elsewhere,
 * such as a model's predictions (`vigil reference`). */
int vg_reference_features(const struct vg_dataset *ds, const int32_t *rows, int n_rows,
                          struct vg_reference *r, struct vg_error *err);
/*
 * Sets r's class shares: the share of each class 0..n_classes-1 among classes[rows[i]] for i <
 * n_rows (rows NULL: among classes[0..n_rows-1]). Replaces any shares r held; a class index out
 * of range is an error (r's shares are then left empty).
 */
int vg_reference_class_shares(struct vg_reference *r, const int32_t *classes, const int32_t *rows,
                              int n_rows, int n_classes, struct vg_error *err);
void vg_reference_release(struct vg_reference *r);
/* The bin of v: -1 below range, VG_REF_BINS above range, else 0..VG_REF_BINS-1. NaN gives -2.
 * The rule itself is vg_drift_bin (include/vigil/drift.h), which the server's drift monitor uses. */
int vg_reference_bin(const struct vg_feature_ref *f, double v);

#endif
