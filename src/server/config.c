/*
 * `vigil serve` configuration: one table of options, read from four layers in increasing
 * precedence: built-in defaults, a JSON config file, VIGIL_* environment variables, the command
 * line. Every option has the same name in each layer: `--max-body-bytes` on the command line,
 * VIGIL_MAX_BODY_BYTES in the environment, "max-body-bytes" in the file.
 *
 * Values, in every layer:
 * - numbers are plain decimal digits (no sign, no spaces); byte sizes may end in K, M or G
 *   (powers of 1024). In the config file a number may be a JSON number (whole) or a string.
 * - switches (--drift, --feedback) are on or off (true and false too; JSON true/false in the file).
 * - an empty string (or JSON null) unsets an optional string (default model, access log) and is
 *   an error for a required one (models, host); an empty environment variable counts as unset.
 * The command line is checked for unknown options before the file is read, so a typo is reported
 * as such rather than as a problem further down.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server.h"

#define MAX_CONFIG_FILE_BYTES (1 << 20)

const char vg_serve_usage[] =
    "Usage: vigil serve [options]\n"
    "\n"
    "Serves every model of a model repository over HTTP: /predict and /models/NAME/predict,\n"
    "the Open Inference Protocol under /v2, /health, /metrics (Prometheus) and /models.\n"
    "See docs/serving.md.\n"
    "\n"
    "Options (each also read from the environment variable shown, and from the config file\n"
    "under its long name without the dashes; the command line wins over the environment, which\n"
    "wins over the config file):\n"
    "  --models DIR            model repository (VIGIL_MODELS; default: models)\n"
    "  --host ADDR             address to listen on, IPv4 or IPv6 (VIGIL_HOST; default: 0.0.0.0)\n"
    "  --port N                TCP port, 0 to 65535; 0 picks a free port (VIGIL_PORT;\n"
    "                          default: 8000)\n"
    "  --threads N             worker threads, 1 to 1024 (VIGIL_THREADS; default: one per\n"
    "                          online CPU)\n"
    "  --default-model NAME    the model /predict uses (VIGIL_DEFAULT_MODEL; default: the first\n"
    "                          loaded model by name)\n"
    "  --max-body-bytes N      largest request body; larger ones get 413. K, M, G suffixes\n"
    "                          (VIGIL_MAX_BODY_BYTES; default: 1M)\n"
    "  --timeout S             seconds a connection may stay idle or stalled before it is\n"
    "                          closed; 0 = never (VIGIL_TIMEOUT; default: 30)\n"
    "  --max-connections N     open connections at most; more wait in the listen queue\n"
    "                          (VIGIL_MAX_CONNECTIONS; default: 4096)\n"
    "  --shutdown-grace S      on SIGTERM/SIGINT, seconds to let requests in progress finish\n"
    "                          (VIGIL_SHUTDOWN_GRACE; default: 30)\n"
    "  --access-log FILE|-     one JSON line per request, appended to FILE or written to stdout\n"
    "                          with - (VIGIL_ACCESS_LOG; default: off)\n"
    "  --max-batch-rows N      rows per prediction request at most (VIGIL_MAX_BATCH_ROWS;\n"
    "                          default: 10000)\n"
    "  --drift on|off          feature and prediction drift against each model's training\n"
    "                          reference, exported as vigil_feature_psi and friends\n"
    "                          (VIGIL_DRIFT; default: on)\n"
    "  --drift-window S        seconds of traffic the drift gauges cover, 1 to 86400\n"
    "                          (VIGIL_DRIFT_WINDOW; default: 600)\n"
    "  --feedback on|off       keep predictions so that POST /feedback can give their true\n"
    "                          label; exported as vigil_feedback_total, vigil_live_accuracy\n"
    "                          and friends (VIGIL_FEEDBACK; default: on)\n"
    "  --feedback-store N      predictions kept for feedback, 1 to 10000000; the oldest are\n"
    "                          evicted, about 160 bytes each (VIGIL_FEEDBACK_STORE;\n"
    "                          default: 100000)\n"
    "  --live-accuracy-window N  feedbacks vigil_live_accuracy covers, 1 to 10000000\n"
    "                          (VIGIL_LIVE_ACCURACY_WINDOW; default: 1000)\n"
    "  --image-max-pixels N    image models: width x height of an image at most, checked on\n"
    "                          its header before decoding (VIGIL_IMAGE_MAX_PIXELS;\n"
    "                          default: 40000000)\n"
    "  --image-max-body-bytes N  body cap of requests to image models, when larger than\n"
    "                          --max-body-bytes (VIGIL_IMAGE_MAX_BODY_BYTES; default: 16M)\n"
    "  --image-url on|off      fetch {\"image_url\": ...} of image predictions\n"
    "                          (VIGIL_IMAGE_URL; default: on)\n"
    "  --image-url-timeout-ms N  total time for an image_url fetch, redirects included\n"
    "                          (VIGIL_IMAGE_URL_TIMEOUT_MS; default: 10000)\n"
    "  --image-url-connect-timeout-ms N  time to connect to an image_url server\n"
    "                          (VIGIL_IMAGE_URL_CONNECT_TIMEOUT_MS; default: 3000)\n"
    "  --image-url-max-bytes N  largest image fetched from image_url; K, M, G suffixes\n"
    "                          (VIGIL_IMAGE_URL_MAX_BYTES; default: 16M)\n"
    "  --image-url-max-redirects N  redirects followed, 0 to 20\n"
    "                          (VIGIL_IMAGE_URL_MAX_REDIRECTS; default: 3)\n"
    "  --image-url-allow CIDR[,CIDR...]  networks image_url may reach although loopback,\n"
    "                          private, link-local or reserved, e.g. 10.1.0.0/16,fd00::/8\n"
    "                          (VIGIL_IMAGE_URL_ALLOW; default: none)\n"
    "  --config FILE           JSON object with any of the keys above, e.g.\n"
    "                          {\"port\": 8080, \"models\": \"/srv/models\"} (VIGIL_CONFIG)\n"
    "  -h, --help              show this help\n"
    "\n"
    "Logs go to stderr, one line each. SIGTERM or SIGINT stops accepting connections, lets\n"
    "requests in progress finish (up to --shutdown-grace seconds; a second signal cuts it\n"
    "short) and exits 0.\n"
    "\n"
    "Exit status: 0 after a signal; 1 when the server cannot start (repository unreadable,\n"
    "address in use, access log not writable); 2 usage error.\n";

enum opt_kind { OPT_STRING, OPT_INT, OPT_UINT, OPT_SIZE, OPT_BOOL, OPT_COUNT /* size_t */ };

struct opt {
    const char *name; /* long option without "--"; also the config file key */
    const char *env;
    enum opt_kind kind;
    size_t offset;
    unsigned long long min, max; /* numbers */
    int optional;                /* strings: NULL allowed (an empty value unsets) */
};

#define FIELD(f) offsetof(struct vg_server_config, f)

static const struct opt opts[] = {
    {"models", "VIGIL_MODELS", OPT_STRING, FIELD(models_dir), 0, 0, 0},
    {"host", "VIGIL_HOST", OPT_STRING, FIELD(host), 0, 0, 0},
    {"port", "VIGIL_PORT", OPT_INT, FIELD(port), 0, 65535, 0},
    {"threads", "VIGIL_THREADS", OPT_INT, FIELD(threads), 1, 1024, 0},
    {"default-model", "VIGIL_DEFAULT_MODEL", OPT_STRING, FIELD(default_model), 0, 0, 1},
    {"max-body-bytes", "VIGIL_MAX_BODY_BYTES", OPT_SIZE, FIELD(max_body_bytes), 1, 1ULL << 30, 0},
    {"timeout", "VIGIL_TIMEOUT", OPT_UINT, FIELD(timeout_s), 0, 86400, 0},
    {"max-connections", "VIGIL_MAX_CONNECTIONS", OPT_UINT, FIELD(max_connections), 1, 1000000, 0},
    {"shutdown-grace", "VIGIL_SHUTDOWN_GRACE", OPT_UINT, FIELD(shutdown_grace_s), 0, 86400, 0},
    {"access-log", "VIGIL_ACCESS_LOG", OPT_STRING, FIELD(access_log), 0, 0, 1},
    {"max-batch-rows", "VIGIL_MAX_BATCH_ROWS", OPT_INT, FIELD(max_batch_rows), 1, 100000000, 0},
    {"drift", "VIGIL_DRIFT", OPT_BOOL, FIELD(drift), 0, 1, 0},
    {"drift-window", "VIGIL_DRIFT_WINDOW", OPT_UINT, FIELD(drift_window_s), 1, 86400, 0},
    {"feedback", "VIGIL_FEEDBACK", OPT_BOOL, FIELD(feedback), 0, 1, 0},
    {"feedback-store", "VIGIL_FEEDBACK_STORE", OPT_UINT, FIELD(feedback_store), 1, 10000000, 0},
    {"live-accuracy-window", "VIGIL_LIVE_ACCURACY_WINDOW", OPT_UINT, FIELD(live_accuracy_window), 1,
     10000000, 0},
    {"image-max-pixels", "VIGIL_IMAGE_MAX_PIXELS", OPT_COUNT, FIELD(image_max_pixels), 1,
     1ULL << 40, 0},
    {"image-max-body-bytes", "VIGIL_IMAGE_MAX_BODY_BYTES", OPT_SIZE, FIELD(image_max_body_bytes), 1,
     1ULL << 31, 0},
    {"image-url", "VIGIL_IMAGE_URL", OPT_BOOL, FIELD(image_url), 0, 1, 0},
    {"image-url-timeout-ms", "VIGIL_IMAGE_URL_TIMEOUT_MS", OPT_UINT, FIELD(image_url_timeout_ms), 1,
     600000, 0},
    {"image-url-connect-timeout-ms", "VIGIL_IMAGE_URL_CONNECT_TIMEOUT_MS", OPT_UINT,
     FIELD(image_url_connect_timeout_ms), 1, 600000, 0},
    {"image-url-max-bytes", "VIGIL_IMAGE_URL_MAX_BYTES", OPT_SIZE, FIELD(image_url_max_bytes), 1,
     1ULL << 31, 0},
    {"image-url-max-redirects", "VIGIL_IMAGE_URL_MAX_REDIRECTS", OPT_UINT,
     FIELD(image_url_max_redirects), 0, 20, 0},
    {"image-url-allow", "VIGIL_IMAGE_URL_ALLOW", OPT_STRING, FIELD(image_url_allow), 0, 0, 1},
    {"config", "VIGIL_CONFIG", OPT_STRING, FIELD(config_file), 0, 0, 1},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static int usage_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "vigil serve: %s\n", msg);
    return -1;
}

static const struct opt *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
            return &opts[i];
    return NULL;
}

/* Digits with an optional K/M/G suffix (sizes only). 0 on success. */
static int parse_number(const char *s, int allow_suffix, unsigned long long *out)
{
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    if (allow_suffix && *end) {
        int shift;
        switch (*end) {
        case 'k':
        case 'K': shift = 10; break;
        case 'm':
        case 'M': shift = 20; break;
        case 'g':
        case 'G': shift = 30; break;
        default: return -1;
        }
        if (end[1] || v > (ULLONG_MAX >> shift))
            return -1;
        v <<= shift;
        end++;
    }
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static void store_number(struct vg_server_config *c, const struct opt *o, unsigned long long v)
{
    char *p = (char *)c + o->offset;
    switch (o->kind) {
    case OPT_INT:
    case OPT_BOOL: *(int *)p = (int)v; break;
    case OPT_UINT: *(unsigned *)p = (unsigned)v; break;
    case OPT_SIZE:
    case OPT_COUNT: *(size_t *)p = (size_t)v; break;
    case OPT_STRING: break;
    }
}

/* Sets option `o` from text `value`; `where` names the source for messages ("--port",
 * "VIGIL_PORT", "config file 'x': key \"port\""). Returns 0 or -1 after a message. */
static int set_text(struct vg_server_config *c, const struct opt *o, const char *value,
                    const char *where)
{
    if (o->kind == OPT_STRING) {
        char **field = (char **)((char *)c + o->offset);
        if (!value[0]) {
            if (!o->optional)
                return usage_fail("%s: must not be empty", where);
            free(*field);
            *field = NULL;
            return 0;
        }
        char *copy = strdup(value);
        if (!copy)
            return usage_fail("out of memory");
        free(*field);
        *field = copy;
        return 0;
    }
    if (o->kind == OPT_BOOL) {
        if (!strcmp(value, "on") || !strcmp(value, "true"))
            store_number(c, o, 1);
        else if (!strcmp(value, "off") || !strcmp(value, "false"))
            store_number(c, o, 0);
        else
            return usage_fail("%s: '%s' is not on or off", where, value);
        return 0;
    }
    unsigned long long v;
    if (parse_number(value, o->kind == OPT_SIZE, &v) || v < o->min || v > o->max) {
        if (o->kind == OPT_SIZE)
            return usage_fail("%s: '%s' is not a byte count in [%llu, %llu] (K, M, G suffixes "
                              "allowed)",
                              where, value, o->min, o->max);
        return usage_fail("%s: '%s' is not a whole number in [%llu, %llu]", where, value, o->min,
                          o->max);
    }
    store_number(c, o, v);
    return 0;
}

static int set_json(struct vg_server_config *c, const struct opt *o, const cJSON *item,
                    const char *file)
{
    char where[600];
    snprintf(where, sizeof where, "config file '%s': key \"%s\"", file, o->name);
    if (o->kind == OPT_STRING) {
        if (cJSON_IsNull(item) && o->optional)
            return set_text(c, o, "", where);
        if (!cJSON_IsString(item))
            return usage_fail("%s: expected a string", where);
        return set_text(c, o, item->valuestring, where);
    }
    if (cJSON_IsString(item))
        return set_text(c, o, item->valuestring, where);
    if (o->kind == OPT_BOOL) {
        if (!cJSON_IsBool(item))
            return usage_fail("%s: expected true, false, \"on\" or \"off\"", where);
        store_number(c, o, cJSON_IsTrue(item) ? 1 : 0);
        return 0;
    }
    if (!cJSON_IsNumber(item))
        return usage_fail("%s: expected a number", where);
    double d = item->valuedouble;
    if (!(d >= (double)o->min && d <= (double)o->max) || d != floor(d))
        return usage_fail("%s: %g is not a whole number in [%llu, %llu]", where, d, o->min, o->max);
    store_number(c, o, (unsigned long long)d);
    return 0;
}

static int load_file(struct vg_server_config *c, const char *path)
{
    int rc = -1;
    char *text = NULL;
    cJSON *root = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return usage_fail("cannot read config file '%s': %s", path, strerror(errno));
    text = malloc(MAX_CONFIG_FILE_BYTES + 1);
    if (!text) {
        usage_fail("out of memory");
        goto out;
    }
    size_t len = fread(text, 1, MAX_CONFIG_FILE_BYTES + 1, f);
    if (ferror(f)) {
        usage_fail("cannot read config file '%s': %s", path, strerror(errno));
        goto out;
    }
    if (len > MAX_CONFIG_FILE_BYTES) {
        usage_fail("config file '%s' is larger than %d bytes", path, MAX_CONFIG_FILE_BYTES);
        goto out;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        usage_fail("config file '%s' is not valid JSON (error near byte %zu)", path, at);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        usage_fail("config file '%s' must hold a JSON object", path);
        goto out;
    }
    for (const cJSON *item = root->child; item; item = item->next) {
        const struct opt *o = find_opt(item->string, strlen(item->string));
        if (!o) {
            usage_fail("config file '%s': unknown key \"%s\"", path, item->string);
            goto out;
        }
        if (o->offset == FIELD(config_file)) {
            usage_fail("config file '%s': key \"config\" cannot be set in a config file", path);
            goto out;
        }
        if (set_json(c, o, item, path))
            goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    free(text);
    fclose(f);
    return rc;
}

static int set_defaults(struct vg_server_config *c)
{
    memset(c, 0, sizeof *c);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    c->models_dir = strdup("models");
    c->host = strdup("0.0.0.0");
    c->port = 8000;
    c->threads = cpus < 1 ? 1 : cpus > 1024 ? 1024 : (int)cpus;
    c->max_body_bytes = (size_t)1 << 20;
    c->timeout_s = 30;
    c->max_connections = 4096;
    c->shutdown_grace_s = 30;
    c->max_batch_rows = 10000;
    c->drift = 1;
    c->drift_window_s = 600;
    c->feedback = 1;
    c->feedback_store = 100000;
    c->live_accuracy_window = 1000;
    c->image_max_pixels = 40000000;
    c->image_max_body_bytes = (size_t)16 << 20;
    c->image_url = 1;
    c->image_url_timeout_ms = 10000;
    c->image_url_connect_timeout_ms = 3000;
    c->image_url_max_bytes = (size_t)16 << 20;
    c->image_url_max_redirects = 3;
    if (!c->models_dir || !c->host)
        return usage_fail("out of memory");
    return 0;
}

/* One command-line option found by the first pass. */
struct arg_value {
    const struct opt *opt;
    const char *value;
};

int vg_server_config_load(struct vg_server_config *c, int argc, char **argv)
{
    int rc = -1;
    struct arg_value *args = calloc((size_t)(argc > 0 ? argc : 1), sizeof *args);
    int n_args = 0;
    if (set_defaults(c))
        goto out;
    if (!args) {
        usage_fail("out of memory");
        goto out;
    }

    /* Pass 1: every argument must be a known option with a value. */
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) || !a[2]) {
            usage_fail(a[0] == '-' ? "unknown option '%s'" : "unexpected argument '%s'", a);
            goto out;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        const struct opt *o = find_opt(name, eq ? (size_t)(eq - name) : strlen(name));
        if (!o) {
            usage_fail("unknown option '%.*s'", (int)(eq ? eq - a : (long)strlen(a)), a);
            goto out;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            usage_fail("option '%s' needs a value", a);
            goto out;
        }
        args[n_args++] = (struct arg_value){o, value};
        if (o->offset == FIELD(config_file))
            config_path = value;
    }

    /* The file named by --config, else by VIGIL_CONFIG. */
    const char *env_config = getenv("VIGIL_CONFIG");
    if (!config_path && env_config && env_config[0])
        config_path = env_config;
    if (config_path) {
        if (!config_path[0]) {
            usage_fail("--config: must not be empty");
            goto out;
        }
        if (load_file(c, config_path))
            goto out;
    }

    for (size_t k = 0; k < N_OPTS; k++) {
        const char *v = getenv(opts[k].env);
        if (v && v[0] && set_text(c, &opts[k], v, opts[k].env))
            goto out;
    }

    for (int k = 0; k < n_args; k++) {
        char where[256];
        snprintf(where, sizeof where, "--%s", args[k].opt->name);
        if (set_text(c, args[k].opt, args[k].value, where))
            goto out;
    }
    char why[256];
    if (vg_cidr_parse_list(c->image_url_allow, &c->image_url_allow_list, &c->image_url_allow_n, why,
                           sizeof why)) {
        usage_fail("--image-url-allow: %s", why);
        goto out;
    }
    rc = 0;
out:
    free(args);
    if (rc)
        vg_server_config_release(c);
    return rc;
}

void vg_server_config_release(struct vg_server_config *c)
{
    free(c->models_dir);
    free(c->host);
    free(c->default_model);
    free(c->access_log);
    free(c->config_file);
    free(c->image_url_allow);
    free(c->image_url_allow_list);
    memset(c, 0, sizeof *c);
}
