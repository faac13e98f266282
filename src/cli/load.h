/*
 * `vigil load` internals (docs/load-generator.md): the parts of the load generator that do not
 * depend on the event loop, plus the loop's own entry point.
 *
 *   load_hist.c    log-linear latency histogram (HdrHistogram-like, fixed size, no allocation)
 *   load_http.c    URL parsing, the HTTP/1.1 response parser, one blocking GET
 *   load_check.c   allocation-free JSON validation and the checks of every answer
 *   load_bodies.c  the model's description (GET /models/{m}), feature sampling from the training
 *                  reference or rows of a labelled CSV file (--data), and the pools of pre-built
 *                  requests, one per request kind (feedback included)
 *   load_engine.c  the open-loop schedule and the epoll loop (one per thread)
 *   cmd_load.c     options, the summary table and the JSON output, exit codes
 *
 * Times are nanoseconds of CLOCK_MONOTONIC in int64_t; latencies are uint64_t nanoseconds.
 */
#ifndef VIGIL_CLI_LOAD_H
#define VIGIL_CLI_LOAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- latency histogram (load_hist.c) ------------------------------------------------------- */

/*
 * Buckets: values below 2 * VG_HIST_HALF ns are counted exactly; above, each power of two is cut
 * into VG_HIST_HALF equal buckets, so a bucket is at most 1/128 (0.78 %) of its values wide.
 * The top bucket ends at 2^36 ns (68.7 s); larger values are counted there (max stays exact).
 */
#define VG_HIST_SUB_BITS 7
#define VG_HIST_HALF (1 << VG_HIST_SUB_BITS)
#define VG_HIST_TOP_EXP 35 /* highest power of two with buckets: [2^35, 2^36) */
#define VG_HIST_BUCKETS ((VG_HIST_TOP_EXP - VG_HIST_SUB_BITS + 2) * VG_HIST_HALF)

struct vg_hist {
    uint64_t total;
    uint64_t min_ns, max_ns; /* exact; min_ns is UINT64_MAX while empty */
    uint64_t sum_ns;
    uint64_t counts[VG_HIST_BUCKETS];
};

void vg_hist_init(struct vg_hist *h);
void vg_hist_record(struct vg_hist *h, uint64_t ns);
/* Adds every count of src to dst. */
void vg_hist_merge(struct vg_hist *dst, const struct vg_hist *src);
/* The value at percentile p (0..100): the highest value of the bucket holding the
 * ceil(p% * total)-th smallest sample, clamped to [min, max]; 0 when empty. p = 100 is max. */
uint64_t vg_hist_percentile(const struct vg_hist *h, double p);
/* Samples above ns (to within the bucket holding ns, whose samples count as not above). */
uint64_t vg_hist_count_above(const struct vg_hist *h, uint64_t ns);
/* Bucket index of a value, and the lowest and highest values of a bucket (exposed for tests). */
int vg_hist_index(uint64_t ns);
uint64_t vg_hist_bucket_low(int idx);
uint64_t vg_hist_bucket_high(int idx);

/* ---- HTTP (load_http.c) -------------------------------------------------------------------- */

/* http://HOST[:PORT][/BASE]; HOST may be a name, an IPv4 address or [IPv6]. */
struct vg_url {
    char host[256];      /* without brackets */
    char port[8];        /* "80" when absent */
    char authority[300]; /* the Host header: as written in the URL */
    char base[512];      /* path prefix without a trailing slash, "" for none */
};

/* Returns 0, or -1 with a message in msg. */
int vg_url_parse(const char *text, struct vg_url *u, char *msg, size_t msg_cap);
/* getaddrinfo on the URL's host and port (first TCP address). Returns 0, or -1 with a message. */
int vg_url_resolve(const struct vg_url *u, struct sockaddr_storage *addr, socklen_t *addr_len,
                   char *msg, size_t msg_cap);

/*
 * Incremental parser of one HTTP/1.1 response in a buffer that grows as bytes arrive: call
 * vg_http_resp_parse after each read with the whole buffer so far. Bodies are delimited by
 * Content-Length, chunked transfer coding (decoded in place once complete; trailers are
 * skipped) or, when neither is given, the end of the connection (eof = 1).
 */
struct vg_http_resp {
    size_t header_end;        /* 0 until the header block is complete */
    long long content_length; /* -1 when absent */
    int chunked;
    int close; /* "Connection: close", or HTTP/1.0 without keep-alive */
    int status;
    size_t id_off, id_len;     /* the X-Request-Id header's value in the buffer (id_len 0: none) */
    size_t body_off, body_len; /* set when complete */
};

enum { VG_HTTP_BAD = -1, VG_HTTP_MORE = 0, VG_HTTP_DONE = 1 };

void vg_http_resp_reset(struct vg_http_resp *r);
/* VG_HTTP_DONE (body at buf + body_off), VG_HTTP_MORE, or VG_HTTP_BAD (not a valid response). */
int vg_http_resp_parse(struct vg_http_resp *r, char *buf, size_t len, int eof);

/*
 * One blocking GET of base + path with an overall time limit. On success returns 0 with the
 * status and a malloc'd, NUL-terminated body (the caller frees it); on a network or protocol
 * failure returns -1 with a message naming the URL.
 */
int vg_http_get(const struct vg_url *u, const char *path, double timeout_s, int *status,
                char **body, size_t *body_len, char *msg, size_t msg_cap);

/* ---- answer checks (load_check.c) ---------------------------------------------------------- */

/* Whether s[0..len) is exactly one JSON value (RFC 8259) with optional surrounding whitespace. */
int vg_json_valid(const char *s, size_t len);

/* What a right prediction answer of the model looks like. */
struct vg_answer_spec {
    const char *model;  /* "model" must be this name */
    int classification; /* else regression: "prediction" is a number */
    int n_classes;
    const char *const *classes; /* classification: names in the model's order */
};

/*
 * A 200 answer to a one-row prediction: a JSON object with "id" equal to want_id, "model",
 * a numeric "version", and either a "prediction" that names one of the classes with
 * "probabilities" holding each class once, every value in [0, 1], summing to 1 within 1e-3,
 * the predicted class among the most probable; or (regression) a finite numeric "prediction".
 * Returns 0, or -1 with *why pointing to a static reason.
 */
int vg_check_prediction(const struct vg_answer_spec *spec, const char *body, size_t len,
                        const char *want_id, size_t want_id_len, const char **why);
/* The same, also giving the index of the predicted class in *pred_class (-1 for regression). */
int vg_check_prediction_class(const struct vg_answer_spec *spec, const char *body, size_t len,
                              const char *want_id, size_t want_id_len, int *pred_class,
                              const char **why);
/* An error answer: a JSON object with a non-empty string "error". 0 or -1 with *why. */
int vg_check_error_body(const char *body, size_t len, const char **why);
/*
 * A 200 answer to POST /feedback with one object (the contract of docs/load-generator.md): a JSON
 * object whose "id" is the prediction's id (pred_id), "model" the model, a numeric "version" and
 * "outcome" the string want_outcome ("correct", "incorrect" or "received"). 0 or -1 with *why.
 */
int vg_check_feedback(const struct vg_answer_spec *spec, const char *body, size_t len,
                      const char *pred_id, size_t pred_id_len, const char *want_outcome,
                      const char **why);

/* ---- the model and the request pools (load_bodies.c) --------------------------------------- */

#define VG_REF_BINS 10

struct vg_feature_dist {
    char *name;
    double edges[VG_REF_BINS + 1];
    double cum[VG_REF_BINS]; /* cumulative bin shares, normalised so cum[last] == 1 */
    double mean, std, min, max;
    int drift; /* shifted in drift requests */
};

struct vg_load_model {
    char *name;
    int classification;
    int n_features;
    struct vg_feature_dist *features;
    int n_classes;
    char **classes;
};

/*
 * Reads the answer of GET /models/{name}: features, task, classes and the training reference.
 * A model without "reference" (or with an incomplete one) is an error. Returns 0, or -1 with a
 * message; vg_load_model_release frees what was filled, in either case.
 */
int vg_load_model_parse(const char *json, const char *name, struct vg_load_model *m, char *msg,
                        size_t msg_cap);
/* Same, where a model without a reference is accepted (need_reference 0): the feature
 * distributions are then left zero, for vg_load_data_read to fill from the data. */
int vg_load_model_parse_opt(const char *json, const char *name, int need_reference,
                            struct vg_load_model *m, char *msg, size_t msg_cap);
void vg_load_model_release(struct vg_load_model *m);

/*
 * Rows of a CSV file (--data) to send instead of rows drawn from the reference: the model's
 * features (columns of those names, read by the training CSV reader, src/train/csv.c) and, with
 * a target column, each row's true label: the model's class index (classification) or value.
 */
struct vg_load_data {
    int n_rows, n_features;
    float *x; /* [n_rows * n_features], the model's feature order */
    int has_labels;
    int32_t *label_class; /* classification: index into the model's classes */
    double *label_value;  /* regression */
};

/*
 * Reads path with the model's features and, when target is not NULL, its labels (classes must be
 * classes of the model). A model without a reference gets its features' mean, std, min and max
 * from the data (used to shift drift rows). Returns 0, or -1 with a message naming the file,
 * line and column. vg_load_data_release frees what was filled, in either case.
 */
int vg_load_data_read(struct vg_load_model *m, const char *path, const char *target,
                      struct vg_load_data *d, char *msg, size_t msg_cap);
void vg_load_data_release(struct vg_load_data *d);

enum vg_load_kind {
    VG_KIND_NORMAL,        /* features drawn from the reference */
    VG_KIND_DRIFT,         /* the drift features shifted by shift * std */
    VG_KIND_MALFORMED,     /* malformed JSON: cut short, a NaN literal, a trailing comma -> 400 */
    VG_KIND_MISSING,       /* one feature left out -> 400 */
    VG_KIND_STRING,        /* one feature sent as a string -> 400 */
    VG_KIND_UNKNOWN_MODEL, /* a valid row for a model that does not exist -> 404 */
    VG_KIND_WRONG_METHOD,  /* GET on the prediction path -> 405 */
    VG_KIND_EMPTY_BODY,    /* POST without a body -> 400 */
    VG_KIND_UNAVAILABLE,   /* a valid row for a model that failed to load -> 503 (only with
                              --unavailable-model: the one server-side failure a healthy server
                              gives on purpose) */
    VG_KIND_RAW,           /* --body / --path without a model: status check only */
    VG_KIND_FEEDBACK,      /* POST /feedback with a prediction's true label (--feedback): not
                              in the schedule, sent after the answer it follows, counted apart */
    VG_KIND_COUNT
};

/* The invalid kinds, cycled in this order: VG_KIND_MALFORMED .. VG_KIND_EMPTY_BODY, and
   VG_KIND_UNAVAILABLE too when the plan has an unavailable model. */
#define VG_N_ERROR_KINDS 6

struct vg_kind_info {
    const char *name;
    int expected_status;
    int valid; /* a valid request (200 expected and its answer checked) */
};
extern const struct vg_kind_info vg_load_kinds[VG_KIND_COUNT];

/*
 * Request ids: "load-TTTTTT-NNNNNNNNNNN", a 6-character tag of the run (base 36, from the clock
 * and the pid) and the request number mod 10^11, so that runs against the same server never
 * reuse an id (the server keeps predictions by id for feedback). Feedback requests carry
 * "fdbk-TTTTTT-NNNNNNNNNNN" with the number of the prediction they are about.
 */
#define VG_LOAD_TAG_LEN 6
#define VG_LOAD_ID_LEN 23

/* Pre-built requests of one kind: complete HTTP/1.1 request bytes, each with a request id
 * placeholder of VG_LOAD_ID_LEN characters at id_off[i] that the sender overwrites; feedback
 * requests have a second one, the prediction's id in the body, at id2_off[i]. */
struct vg_req_pool {
    char *bytes;
    uint32_t *off, *len, *id_off, *id2_off; /* id2_off: NULL but for the feedback pool */
    int n;
    int cycle; /* request number seq sends request seq % n (rows of --data, in order) */
    size_t max_len;
};

struct vg_body_params {
    const char *path;             /* prediction path under the base (e.g. /models/iris/predict) */
    const char *unknown_path;     /* the same for a model that does not exist */
    const char *unavailable_path; /* the same for a model that failed to load, or NULL */
    double drift_shift;           /* in reference standard deviations */
    uint64_t seed;
    int pool_valid, pool_error;      /* requests per pool: valid kinds, error kinds */
    const struct vg_load_data *data; /* NULL: rows drawn from the reference; else valid kinds
                                        send these rows in order (one request per row) and the
                                        others take their rows from them too */
};

/* Builds the pool of every model kind (NORMAL .. EMPTY_BODY). Returns 0 or -1 with a message. */
int vg_load_build_pools(const struct vg_load_model *m, const struct vg_url *u,
                        const struct vg_body_params *bp, struct vg_req_pool pools[VG_KIND_COUNT],
                        char *msg, size_t msg_cap);
/* The pool of the raw kind: METHOD base+path with the given body (may be NULL) and type. */
int vg_load_build_raw_pool(const struct vg_url *u, const char *method, const char *path,
                           const char *body, size_t body_len, const char *content_type,
                           struct vg_req_pool *pool, char *msg, size_t msg_cap);
/*
 * The feedback pool: POST base+path {"id": "<prediction id placeholder>", "label": L}, one request
 * per class (classification, L the class name) or per row of d (regression, L its value).
 */
int vg_load_build_feedback_pool(const struct vg_load_model *m, const struct vg_load_data *d,
                                const struct vg_url *u, const char *path, struct vg_req_pool *pool,
                                char *msg, size_t msg_cap);
void vg_req_pool_release(struct vg_req_pool *p);
/* Which of the pool's requests request number seq sends: seq % n for a cycled pool, else a fixed
 * scramble of seq. */
int vg_req_pool_pick(const struct vg_req_pool *p, uint64_t seq);
/* The body of request i of a pool (after the header block) and its length. */
const char *vg_req_pool_body(const struct vg_req_pool *p, int i, size_t *len);
/* A run's tag: VG_LOAD_TAG_LEN characters [0-9a-z] from the real-time clock and the pid. */
void vg_load_run_tag(char tag[VG_LOAD_TAG_LEN]);
/* Writes a request id: prefix (4 characters, "load" or "fdbk"), '-', the tag, '-', and seq as 11
 * decimal digits (mod 10^11). */
void vg_load_format_id(char out[VG_LOAD_ID_LEN], const char *prefix,
                       const char tag[VG_LOAD_TAG_LEN], uint64_t seq);

/* ---- the run (load_engine.c) --------------------------------------------------------------- */

enum vg_scenario { VG_SC_NORMAL, VG_SC_SPIKE, VG_SC_DRIFT, VG_SC_ERRORS, VG_SC_MIXED, VG_SC_RAW };

/* Statistics groups: one per kind, then these. Warmup requests count only in VG_GROUP_WARMUP. */
enum { VG_GROUP_SPIKE = VG_KIND_COUNT, VG_GROUP_TOTAL, VG_GROUP_WARMUP, VG_GROUP_COUNT };

#define VG_MAX_STATUS 600

struct vg_load_stats {
    uint64_t sent;              /* requests written completely */
    uint64_t ok;                /* valid requests answered right */
    uint64_t expected_errors;   /* invalid requests refused with their expected status */
    uint64_t unexpected_status; /* any other status */
    uint64_t bad_body;          /* expected status, wrong or garbled body */
    uint64_t conn_errors;       /* the connection failed before the whole answer arrived */
    uint64_t timeouts;          /* no whole answer within --timeout */
    struct vg_hist hist;        /* latency from the intended send time, answered requests */
};

struct vg_load_plan {
    enum vg_scenario scenario;
    double rate;         /* base requests per second */
    int64_t duration_ns; /* measured part */
    int64_t warmup_ns;   /* before it, at the base rate, normal (or raw) requests */
    int64_t spike_start_ns, spike_len_ns; /* from the start of the measured part; len 0: none */
    double spike_factor;
    double error_ratio;     /* errors and mixed */
    int unavailable;        /* invalid requests include VG_KIND_UNAVAILABLE (its pool is built) */
    int64_t drift_start_ns; /* mixed: valid requests from then on are drift requests */
    int connections, threads;
    int64_t timeout_ns;
    int progress;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    const struct vg_req_pool *pools; /* VG_KIND_COUNT pools; only the kinds used need be built */
    const struct vg_answer_spec *spec;
    int raw_status;  /* the right status of raw requests */
    int max_reports; /* wrong answers described on stderr at most (the first ones) */
    char run_tag[VG_LOAD_TAG_LEN];
    /* --data: the rows valid requests send (request seq: row seq % n_rows), NULL without */
    const struct vg_load_data *data;
    /* --feedback: after a right answer to a measured valid request, a share feedback_ratio of
       them get POST /feedback with the row's label (a wrong class for a share label_noise) */
    double feedback_ratio; /* 0: no feedback */
    double label_noise;
    uint64_t seed; /* of the wrong classes of noisy labels */
};

/* Feedback figures (counts of requests are in the VG_KIND_FEEDBACK group). */
struct vg_feedback_stats {
    uint64_t selected; /* right answers chosen for feedback */
    uint64_t unsent;   /* of those, never sent (the drain time ran out, or the queue was full) */
    uint64_t noisy;    /* feedbacks sent with a wrong label on purpose */
    uint64_t correct, incorrect, received; /* accepted: 200 with the outcome expected */
    uint64_t clean_right;                  /* sent feedbacks whose row's true label is the
                                              predicted class (accuracy without the noise) */
    uint64_t labelled, right; /* measured predictions answered right whose row has a label; of
                                 those, predicted the row's label (the model's accuracy) */
    uint64_t statuses[VG_MAX_STATUS]; /* feedback answers by status */
};

struct vg_load_result {
    struct vg_load_stats groups[VG_GROUP_COUNT];
    uint64_t statuses[VG_MAX_STATUS]; /* measured requests by status (warmup excluded) */
    uint64_t scheduled; /* measured requests due before the end (or the interruption) */
    uint64_t unsent;    /* of those, never sent (the backlog when the drain time ran out) */
    uint64_t warmup_scheduled, warmup_unsent;
    uint64_t connects, connect_errors;
    int64_t max_lag_ns; /* latest send behind its intended time (measured requests) */
    double mean_lag_ns;
    double send_seconds;          /* from the start of the measured part to the later of its
                                     scheduled end and the last send */
    double elapsed_seconds;       /* from the start of the measured part to the last answer */
    double cpu_user_s, cpu_sys_s; /* this process during the run */
    int interrupted;
    struct vg_feedback_stats feedback;
};

/*
 * Opens the connections, runs the schedule and drains. Returns 0 when the run took place (its
 * figures in *res, whatever the answers were), -1 with a message when it could not start (no
 * connection could be opened, out of memory). Blocks SIGINT/SIGTERM handling: either signal
 * ends the schedule early (res->interrupted) and the run drains and returns.
 */
int vg_load_run(const struct vg_load_plan *plan, struct vg_load_result *res, char *msg,
                size_t msg_cap);

/* The kind of measured request m (0-based) due at t_ns from the start of the measured part. */
enum vg_load_kind vg_load_kind_of(const struct vg_load_plan *plan, uint64_t m, int64_t t_ns);

/* The schedule: measured and warmup requests in one sequence of segments of constant rate. */
#define VG_MAX_SEGMENTS 4
struct vg_schedule {
    int n;
    struct {
        int64_t start_ns; /* from the start of the run (warmup included) */
        double period_ns;
        uint64_t first, count; /* request indexes first .. first + count - 1 */
        int warmup, spike;
    } seg[VG_MAX_SEGMENTS];
    uint64_t total, warmup_count;
    int64_t end_ns; /* end of the schedule (warmup + duration) */
};
void vg_schedule_init(struct vg_schedule *s, const struct vg_load_plan *plan);
/* Intended send time of request i (from the start of the run) and its segment. Indexes past
 * the end continue the last segment. */
int64_t vg_schedule_due(const struct vg_schedule *s, uint64_t i, int *segment);
/* Everything about request i: its due time, kind, and whether it is warmup or in the spike. */
enum vg_load_kind vg_load_request(const struct vg_load_plan *plan, const struct vg_schedule *s,
                                  uint64_t i, int64_t *due_ns, int *warmup, int *spike);

#endif
