/*
 * vigil server: the internal interfaces between the server's modules (not a public header).
 *
 *   config.c       struct vg_server_config: defaults, config file, VIGIL_* environment, argv
 *   http.c         libmicrohttpd daemon, request lifecycle, limits, routing, HTTP metrics,
 *                  access log, request ids, graceful shutdown, the reply helpers below
 *   routes.c       the route table (templates -> handlers)
 *   jsonw.c        the capped JSON writer replies and the access log are built with (jsonw.h)
 *   api_basic.c    GET /, GET /health, GET /metrics, GET /models, GET /models/{model}
 *   store.c        the model repository as served: loading, per-model metrics, session pools
 *   api_predict.c  POST /predict, POST /models/{name}/predict
 *   api_v2.c       the Open Inference Protocol (KServe v2) REST API under /v2
 *   quality.c      model quality: each model's drift monitor from its training reference
 *   api_feedback.c POST /feedback, POST /v2/models/{model}/feedback; the prediction store
 *   api_image.c    image models: /predict with an image (upload, URL, base64), top-k answer
 *   image.c        image models' config, JPEG/PNG decoding, EXIF orientation, preprocessing
 *   fetch.c        image_url: libcurl fetch with address checks (SSRF rules), size and time caps
 *   multipart.c    multipart/form-data: finding one field of a buffered body
 *   src/cli/cmd_serve.c   `vigil serve`: config -> store -> http, signals
 *
 * Threads: libmicrohttpd runs a pool of `threads` worker threads (epoll, one per core by
 * default); every handler runs synchronously on one of them. Handlers share only the store (read
 * only after start-up), the metrics registry (lock-free updates) and the session pools (lock-free).
 *
 * Memory: a struct vg_req lives for one request and belongs to http.c; handlers set its reply
 * fields through the vg_reply_* helpers, which take ownership of what they are given. The store
 * owns every struct vg_served and everything in it until vg_store_close().
 */
#ifndef VIGIL_SERVER_H
#define VIGIL_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "vigil/engine.h"
#include "vigil/monitor.h"

/* ---- Configuration (config.c) ---------------------------------------------------------------- */

/* A network: `prefix` leading bits of `addr` (4 bytes for AF_INET, 16 for AF_INET6). */
struct vg_cidr {
    int family;
    int prefix;
    unsigned char addr[16];
};

struct vg_server_config {
    char *models_dir;        /* --models, VIGIL_MODELS; default "models" */
    char *host;              /* --host, VIGIL_HOST; default "0.0.0.0" */
    int port;                /* --port, VIGIL_PORT; default 8000; 0 = any free port */
    int threads;             /* --threads, VIGIL_THREADS; default: number of online CPUs */
    char *default_model;     /* --default-model, VIGIL_DEFAULT_MODEL; NULL = first loaded by name */
    size_t max_body_bytes;   /* --max-body-bytes, VIGIL_MAX_BODY_BYTES; default 1 MiB -> 413 */
    unsigned timeout_s;      /* --timeout, VIGIL_TIMEOUT; idle/slow connection timeout, default 30 */
    unsigned max_connections; /* --max-connections, VIGIL_MAX_CONNECTIONS; default 4096 */
    unsigned shutdown_grace_s; /* --shutdown-grace, VIGIL_SHUTDOWN_GRACE; wait for in-flight, 30 */
    char *access_log;        /* --access-log, VIGIL_ACCESS_LOG; NULL = off, "-" = stdout, else file */
    int max_batch_rows;      /* --max-batch-rows, VIGIL_MAX_BATCH_ROWS; default 10000 -> 413/400 */
    int drift;               /* --drift on|off, VIGIL_DRIFT; default 1 (on) */
    unsigned drift_window_s; /* --drift-window, VIGIL_DRIFT_WINDOW; drift window, default 600 */
    int feedback;            /* --feedback on|off, VIGIL_FEEDBACK; default 1 (on) */
    unsigned feedback_store; /* --feedback-store, VIGIL_FEEDBACK_STORE; predictions kept, 100000 */
    unsigned live_accuracy_window; /* --live-accuracy-window, VIGIL_LIVE_ACCURACY_WINDOW; 1000 */
    char *config_file;       /* --config, VIGIL_CONFIG: JSON object with the same keys */
    /* image models (docs/image-models.md) */
    size_t image_max_pixels;     /* --image-max-pixels; width x height at most, default 40M */
    size_t image_max_body_bytes; /* --image-max-body-bytes; body cap of requests to image models
                                    (the larger of it and max_body_bytes), default 16M */
    int image_url;               /* --image-url on|off; default on */
    unsigned image_url_timeout_ms;         /* --image-url-timeout-ms; total, default 10000 */
    unsigned image_url_connect_timeout_ms; /* --image-url-connect-timeout-ms; default 3000 */
    size_t image_url_max_bytes;  /* --image-url-max-bytes; default 16M */
    unsigned image_url_max_redirects; /* --image-url-max-redirects; default 3 */
    char *image_url_allow;       /* --image-url-allow CIDR[,CIDR...]; NULL = none */
    struct vg_cidr *image_url_allow_list; /* parsed from image_url_allow */
    int image_url_allow_n;
};

/*
 * Fills `c` from, in increasing precedence: defaults, the config file (--config or VIGIL_CONFIG, a
 * JSON object whose keys are the long option names without "--": {"port": 8000, "models": "..."}),
 * VIGIL_* environment variables, then argv (argv[0] is "serve"). On a bad value returns -1 after
 * writing "vigil serve: <what is wrong>" to stderr (the caller exits 2). Returns 0 on success.
 */
int vg_server_config_load(struct vg_server_config *c, int argc, char **argv);
void vg_server_config_release(struct vg_server_config *c);
/* The `vigil serve --help` text, listing every option with its variable and default. */
extern const char vg_serve_usage[];

/* ---- Logging (http.c) ------------------------------------------------------------------------ */

/* One line on stderr: "<ISO 8601 UTC time> <level> <message>\n", written atomically. */
void vg_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- Requests and replies (http.c) ----------------------------------------------------------- */

struct vg_server;
struct vg_store;

/* ---- The HTTP daemon (http.c), driven by cmd_serve.c ----------------------------------------- */

/*
 * Binds cfg->host:cfg->port, opens the access log, registers the vigil_http_* families in `reg`,
 * attaches ground-truth feedback (vg_feedback_attach) and starts cfg->threads worker threads. `cfg`, `store` and `reg` must outlive the server.
 * Signals the caller wants to wait for must be blocked before this call (the workers inherit the
 * mask). Returns 0 and *out, or a negative VG_E* code with a message in err.
 */
int vg_server_start(struct vg_server **out, const struct vg_server_config *cfg,
                    struct vg_store *store, struct vg_registry *reg, struct vg_error *err);
/* "http://<host>:<port>" with the port actually bound (cfg->port may be 0). */
const char *vg_server_url(const struct vg_server *s);
/* Stops accepting connections. Requests already received or in progress go on; their responses
 * carry "Connection: close". */
void vg_server_quiesce(struct vg_server *s);
/* Requests whose headers have arrived and whose response has not been fully sent. */
long vg_server_in_flight(const struct vg_server *s);
/* Stops the daemon and frees s. From here on a request that arrives on an open connection is
 * closed unanswered before it is handled; requests already admitted finish and send their reply
 * first (waiting up to 1 s). Then every connection is closed and the access log too. */
void vg_server_stop(struct vg_server *s);

#define VG_ROUTE_MAX_PARAMS 2

struct vg_req {
    /* in */
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* raw path, without the query string */
    const char *route;        /* the route template that matched, e.g. "/v2/models/{model}/infer" */
    const char *content_type; /* header value or NULL */
    const char *accept;       /* header value or NULL */
    const char *body;         /* NUL-terminated (an extra 0 byte after body_len), never NULL */
    size_t body_len;
    const char *params[VG_ROUTE_MAX_PARAMS]; /* template parameters in order ({model}, {version}) */
    int n_params;
    char request_id[72];      /* X-Request-Id (if 1..64 printable chars) or a generated UUIDv4 */
    struct vg_server *srv;
    struct vg_store *store;
    struct vg_registry *registry;
    /* out: set through vg_reply_* */
    int status;
    char *resp_body;          /* malloc'd; http.c frees it */
    size_t resp_len;
    const char *resp_type;    /* static string */
    /* for the access log (static strings or strings the store owns) */
    const char *log_model;
    const char *log_version;
    void *conn;               /* http.c's libmicrohttpd connection (vg_req_query) */
};

/* Value of query-string argument `key` ("?top_k=3"), or NULL (also without a connection).
 * In api_image.c, so that the handlers link without http.c (the unit tests stub the replies). */
const char *vg_req_query(const struct vg_req *r, const char *key);

/* Replies with cJSON_PrintUnformatted(obj) as application/json; takes ownership of obj. */
void vg_reply_json(struct vg_req *r, int status, cJSON *obj);
/* Replies with a body the caller built with malloc (ownership passes). */
void vg_reply_raw(struct vg_req *r, int status, const char *content_type, char *body, size_t len);
/*
 * Replies {"error": "<message>"} with `status` and writes a log line
 * "warn <method> <path> <status> <request id>: <message>" (level "error" for 5xx).
 */
void vg_reply_error(struct vg_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Routes (routes.c) ----------------------------------------------------------------------- */

typedef void (*vg_handler)(struct vg_req *r);

/* VG_BODY_PREDICT: application/json, image/jpeg, image/png or multipart/form-data (415 otherwise);
 * requests to an image model may carry bodies up to image_max_body_bytes. */
enum { VG_BODY_NONE = 0, VG_BODY_JSON = 1, VG_BODY_PREDICT = 2 };

struct vg_route {
    const char *method;   /* "GET" or "POST" */
    const char *pattern;  /* "/v2/models/{model}/versions/{version}/infer": {x} matches a segment */
    vg_handler handler;
    int body;             /* VG_BODY_JSON: Content-Type must be absent or application/json (415) */
};

/* The table, ended by a {NULL} entry. The same pattern may appear with several methods. */
extern const struct vg_route vg_routes[];

/* api_basic.c */
void vg_api_index(struct vg_req *r);
void vg_api_health(struct vg_req *r);
void vg_api_metrics(struct vg_req *r);
void vg_api_models(struct vg_req *r);     /* GET /models: every entry, loaded or not */
void vg_api_model_info(struct vg_req *r); /* GET /models/{model}: features, classes, metrics */
/* api_predict.c */
void vg_api_predict(struct vg_req *r); /* /predict (default model) and /models/{model}/predict */
/* api_v2.c */
void vg_api_v2_server(struct vg_req *r);        /* GET /v2 */
void vg_api_v2_live(struct vg_req *r);          /* GET /v2/health/live */
void vg_api_v2_ready(struct vg_req *r);         /* GET /v2/health/ready */
void vg_api_v2_model(struct vg_req *r);         /* GET /v2/models/{model}[/versions/{version}] */
void vg_api_v2_model_ready(struct vg_req *r);   /* GET .../ready */
void vg_api_v2_infer(struct vg_req *r);         /* POST .../infer */
void vg_api_v2_repository_index(struct vg_req *r); /* POST /v2/repository/index */
/* api_feedback.c */
void vg_api_feedback(struct vg_req *r); /* POST /feedback, POST /v2/models/{model}/feedback */

/* ---- The model store (store.c) --------------------------------------------------------------- */

enum vg_task { VG_TASK_CLASSIFICATION, VG_TASK_REGRESSION };

/* ---- Image models (image.c) ------------------------------------------------------------------ */

enum vg_image_layout { VG_IMAGE_NCHW, VG_IMAGE_NHWC };
enum vg_image_norm { VG_IMAGE_NORM_NONE, VG_IMAGE_NORM_MEAN_STD, VG_IMAGE_NORM_OFFSET_SCALE };

/* config.json's "image" object (with "top_k"), checked at load. */
struct vg_image_spec {
    enum vg_image_layout layout;
    int channels;            /* 1 or 3 */
    int bgr;                 /* color_order "BGR" */
    int resize_short_side;
    int crop_h, crop_w;
    enum vg_image_norm norm;
    float mean[3], std[3];   /* mean_std, per channel in the model's channel order */
    float offset, scale;     /* offset_scale */
    enum vg_dtype dtype;     /* VG_DT_FLOAT, VG_DT_UINT8 or VG_DT_INT8 */
    int softmax;             /* "output": "logits" */
    int top_k;               /* default top_k of answers */
};

/* Parses `image` (and `top_k`, may be NULL) of config.json into s; on error writes why to msg
 * ("'image.crop' must be ...") and returns -1. */
int vg_image_spec_parse(const cJSON *image, const cJSON *top_k, struct vg_image_spec *s,
                        char *msg, size_t size);

/* A decoded image: 8-bit pixels, rows top to bottom as stored (orientation not applied yet). */
struct vg_image {
    int width, height, channels; /* channels: as asked (1 grey or 3 RGB) */
    int orientation;             /* EXIF orientation 1..8 (1 when absent) */
    int src_width, src_height;   /* as the file declares them (JPEG may decode scaled down) */
    const char *format;          /* "jpeg" or "png" */
    unsigned char *pixels;       /* malloc'd, width * height * channels */
};

enum vg_image_status {
    VG_IMAGE_OK = 0,
    VG_IMAGE_NOT_IMAGE,  /* neither JPEG nor PNG */
    VG_IMAGE_CORRUPT,    /* corrupt or truncated */
    VG_IMAGE_TOO_LARGE,  /* more pixels than allowed (checked on the header) */
    VG_IMAGE_NOMEM,
};

/* Decodes a JPEG or PNG (found by its signature) to `channels` (1 or 3) 8-bit channels; alpha is
 * composited on white. JPEGs much larger than `min_short_side` decode at 1/2, 1/4 or 1/8 scale
 * (libjpeg's DCT scaling) keeping the short side >= min_short_side. Never exits the process;
 * returns a vg_image_status with a message in msg. */
int vg_image_decode(const void *data, size_t len, int channels, int min_short_side,
                    uint64_t max_pixels, struct vg_image *out, char *msg, size_t size);
void vg_image_free(struct vg_image *img);
/* Orientation, resize of the short side (bilinear, box pre-reduction when shrinking by 2x or
 * more), centre crop, colour order, normalisation, dtype and layout into dst (crop_h * crop_w *
 * channels elements of s->dtype). Returns 0 or -VG_ENOMEM. */
int vg_image_preprocess(const struct vg_image_spec *s, const struct vg_image *img, void *dst);
/* Whether the bytes start like a JPEG or a PNG. */
int vg_image_sniff(const void *data, size_t len);

/* ---- image_url (fetch.c) --------------------------------------------------------------------- */

enum vg_fetch_status {
    VG_FETCH_OK = 0,
    VG_FETCH_BAD_URL,       /* not an http(s) URL, or unparsable: 400 */
    VG_FETCH_FORBIDDEN,     /* an address the SSRF rules refuse: 403 */
    VG_FETCH_TOO_LARGE,     /* larger than image_url_max_bytes: 400 */
    VG_FETCH_TIMEOUT,       /* 504 */
    VG_FETCH_FAILED,        /* DNS, connection, TLS, an HTTP status other than 200, too many
                               redirects: 502 */
    VG_FETCH_NOMEM,
};

struct vg_fetch_opts {
    long connect_timeout_ms, timeout_ms;
    size_t max_bytes;
    int max_redirects;
    const struct vg_cidr *allow; /* networks allowed although private, loopback... */
    int n_allow;
};

/* libcurl's global initialisation, once (vg_server_start calls it before the workers start;
 * vg_fetch calls it too). libcurl's global state is kept until the process exits. */
int vg_fetch_global_init(void);
/* GETs url, following up to o->max_redirects redirects itself, checking the address of every
 * connection (after DNS resolution, on every hop) against the SSRF rules. On VG_FETCH_OK *data
 * (malloc'd) holds *len bytes; otherwise msg says why. */
int vg_fetch(const char *url, const struct vg_fetch_opts *o, unsigned char **data, size_t *len,
             char *msg, size_t size);
/* "10.0.0.0/8,::1/128" into a malloc'd array; -1 with a message in msg when malformed. */
int vg_cidr_parse_list(const char *text, struct vg_cidr **out, int *n, char *msg, size_t size);
/* Why an address is refused ("private", "loopback", ...), or NULL when it may be fetched. */
const char *vg_addr_forbidden(const struct sockaddr *sa, const struct vg_cidr *allow, int n_allow);

/* ---- Content types, multipart/form-data (multipart.c) ---------------------------------------- */

/* Whether the media type of Content-Type `ct` is `type` (case-insensitive; blanks around it and
 * parameters after ';' ignored). */
int vg_media_type_is(const char *ct, const char *type);

/* Finds form field `name` in a buffered multipart/form-data body. Returns 1 with *data and *len set
 * (pointing into body) and *part_type the part's Content-Type (NULL when it has none, else
 * NUL-less: *part_type_len bytes), 0 when absent, -1 with a message in msg when malformed. */
int vg_multipart_field(const char *content_type, const char *body, size_t body_len,
                       const char *name, const char **data, size_t *len, const char **part_type,
                       size_t *part_type_len, char *msg, size_t size);

/* ---- api_image.c ----------------------------------------------------------------------------- */

/* Reasons counted in vigil_image_rejected_total{model,version,reason}. */
enum vg_image_reject {
    VG_REJECT_BAD_REQUEST,     /* no image, bad base64, bad JSON, bad top_k... */
    VG_REJECT_UNSUPPORTED,     /* neither JPEG nor PNG */
    VG_REJECT_CORRUPT,         /* corrupt or truncated image */
    VG_REJECT_TOO_MANY_PIXELS, /* decompression-bomb guard */
    VG_REJECT_URL_DISABLED,    /* image_url with --image-url off */
    VG_REJECT_URL_INVALID,     /* not an http(s) URL */
    VG_REJECT_URL_FORBIDDEN,   /* SSRF rules */
    VG_REJECT_URL_TOO_LARGE,
    VG_REJECT_URL_TIMEOUT,
    VG_REJECT_URL_FAILED,
    VG_N_IMAGE_REJECTS
};
extern const char *const vg_image_reject_names[VG_N_IMAGE_REJECTS];

/* Image handles of one model version (bound at load by store.c). */
struct vg_image_metrics {
    struct vg_histogram *decode, *preprocess;
    struct vg_counter *rejected[VG_N_IMAGE_REJECTS];
};

struct vg_served;
/* /predict and /models/{model}/predict for an image model (called by vg_api_predict). */
void vg_api_predict_image(struct vg_req *r, struct vg_served *m);

/* Outcomes counted in vigil_model_requests_total{outcome}. */
enum vg_outcome { VG_OUTCOME_SUCCESS, VG_OUTCOME_BAD_INPUT, VG_OUTCOME_INTERNAL, VG_N_OUTCOMES };

struct vg_served_private;

/* One loaded model version. Immutable once the server starts (vg_store_open, then
 * vg_quality_attach); any thread may read it. */
struct vg_served {
    const char *name;
    int64_t version;
    const char *version_str;     /* decimal */
    const char *description;
    enum vg_task task;
    const char *sha256;          /* of model.onnx, lowercase hex */
    const struct vg_model *model;
    const cJSON *config;         /* the version's parsed config.json */
    int n_features;
    const char *const *features; /* column j of the input is features[j] */
    int input;                   /* graph input index of the feature tensor */
    int out_label;               /* graph output indices, -1 when absent */
    int out_proba;
    int out_value;
    int n_classes;
    const char *const *classes;  /* classification: class names in probability-column order */
    double holdout_accuracy;     /* NaN when config.json has none */
    double load_seconds;
    struct vg_served_private *priv; /* session pool and metric handles */
    struct vg_drift *drift;      /* drift monitor (vigil/drift.h), owned by the registry; NULL
                                    with --drift off or without a reference (quality.c) */
    struct vg_feedback_model *feedback; /* its feedback metrics and live-accuracy window, owned
                                           by store->feedback; NULL with --feedback off */
    /* image classifiers ("task": "image_classification"): NULL for tabular models. The classes
     * are the labels of labels.txt; out_proba is the scores output (logits or probabilities). */
    const struct vg_image_spec *image;
    struct vg_image_metrics *image_metrics;
};

/* One model directory of the repository: loaded, or failed with a reason. */
struct vg_store_entry {
    const char *name;
    int64_t version;        /* the version that serves (or failed to load); 0 if none found */
    int loaded;
    const char *reason;     /* why it failed to load; NULL when loaded */
    struct vg_served *served; /* NULL when not loaded */
};

struct vg_store {
    char *dir;
    int n;
    struct vg_store_entry *entries; /* sorted by name */
    const char *default_model;      /* name of the model /predict uses, NULL when none loaded */
    struct vg_registry *registry;
    void *priv;
    int max_batch_rows;             /* rows per /predict request (413 above); vg_store_open sets
                                       0 = 10000; the caller sets it afterwards from the config */
    struct vg_feedback *feedback;   /* ground-truth feedback state (api_feedback.c); NULL with
                                       --feedback off or before vg_server_start */
    const struct vg_server_config *cfg; /* set by vg_server_start (image options); NULL before:
                                           the image handler then uses the defaults */
};

/*
 * Scans `dir` (layout in docs/model-repository.md) and loads the highest version of every model,
 * registering the per-model metric families in `reg` and binding each loaded version's series.
 * A model that fails to load is kept as an entry with its reason (and logged, and exported as
 * vigil_model_loaded 0); the others serve. Fails (negative VG_E*, message in err) only when `dir`
 * cannot be read or a metric family cannot be registered. `default_model` may be NULL.
 */
int vg_store_open(struct vg_store *s, const char *dir, const char *default_model,
                  struct vg_registry *reg, struct vg_error *err);
void vg_store_close(struct vg_store *s);
/* The entry named `name`, or NULL. */
const struct vg_store_entry *vg_store_find(const struct vg_store *s, const char *name);
/* Number of loaded models. */
int vg_store_n_loaded(const struct vg_store *s);

/*
 * Session pool: a session for this thread's use, returned with vg_served_release. Lock-free;
 * allocates a new session only when every pooled one is busy. NULL on allocation failure.
 */
struct vg_session *vg_served_acquire(struct vg_served *m);
void vg_served_release(struct vg_served *m, struct vg_session *s);
/* Runs the session, observing the engine time in vigil_model_inference_duration_seconds. */
int vg_served_run(struct vg_served *m, struct vg_session *s, struct vg_error *err);
/* Counts one request with its outcome and, on success, `rows` rows predicted. */
void vg_served_count(struct vg_served *m, enum vg_outcome outcome, int64_t rows);
/* Counts one prediction of class `k` (0 <= k < n_classes) in vigil_model_predictions_total. */
void vg_served_count_class(struct vg_served *m, int k);
/* Column of the feature called `name` (a hash table built at load), or -1. Thread-safe. */
int vg_served_feature_index(const struct vg_served *m, const char *name);

/* ---- Model quality (quality.c) --------------------------------------------------------------- */

/*
 * With cfg->drift on: registers the drift families in `reg` and gives every loaded model
 * version with a training reference in its config.json a drift monitor (m->drift, window
 * cfg->drift_window_s); the others are logged and served without one. Call after vg_store_open,
 * before vg_server_start. Fails (negative VG_E*, message in err) only when the families cannot be
 * registered.
 */
int vg_quality_attach(struct vg_store *s, const struct vg_server_config *cfg,
                      struct vg_registry *reg, struct vg_error *err);

/* ---- Ground-truth feedback (api_feedback.c) -------------------------------------------------- */

struct vg_feedback;       /* the server's prediction store, rejection counters, per-model state */
struct vg_feedback_model; /* one model version's feedback metrics and live-accuracy window */

/*
 * With cfg->feedback on: registers the vigil_feedback_* and vigil_live_accuracy* families in
 * `reg`, makes the prediction store (cfg->feedback_store predictions), binds every loaded model
 * version's series and sets s->feedback and each m->feedback. vg_server_start calls it before
 * the workers start; vg_feedback_detach (from vg_server_stop, after the workers have stopped)
 * frees it all. Fails (negative VG_E*, message in err) when memory runs out or a family cannot
 * be registered.
 */
int vg_feedback_attach(struct vg_store *s, const struct vg_server_config *cfg,
                       struct vg_registry *reg, struct vg_error *err);
void vg_feedback_detach(struct vg_store *s);
/*
 * Keeps the predictions of a successful request in the prediction store: rows of the session's
 * outputs (still valid: call before vg_served_release), under `id` for a single row, under
 * "<id>/<i>" for row i when `batch`. A no-op with feedback off. Thread-safe, no allocation.
 */
void vg_feedback_record(struct vg_req *r, struct vg_served *m, const struct vg_session *s,
                        const char *id, int64_t rows, int batch);

#endif
