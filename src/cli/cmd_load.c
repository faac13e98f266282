/*
 * `vigil load`: an open-loop HTTP load generator for `vigil serve` (docs/load-generator.md).
 *
 * This file holds the command line: options, the start-up (GET /models/{model}, the request
 * pools), the summary table, the JSON output and the exit status. The engine and its parts are
 * in load_*.c (see load.h).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/load.h"

#define CMD "load"
#define MAX_RATE 10000000.0
#define MAX_DURATION_NS (7LL * 24 * 3600 * 1000000000LL)
#define MAX_REQUESTS ((uint64_t)1 << 40)
#define MAX_BODY_FILE (16 * 1024 * 1024)
#define POOL_VALID 4096
#define POOL_ERROR 256
/* --data rows, each a pre-built request of every valid kind */
#define MAX_DATA_ROWS 1000000
#define EXIT_TARGETS 3
#define EXIT_INTERRUPTED 130

static const char load_usage[] =
    "Usage: vigil load --url URL --model NAME --rate R [--duration D] [--scenario S] [options]\n"
    "       vigil load --url URL --rate R [--path PATH] [--body FILE] [options]   (raw mode)\n"
    "\n"
    "An open-loop HTTP load generator for `vigil serve`. Requests leave on a fixed schedule\n"
    "(request i at start + i/R), whatever the answers do; each waits for a free keep-alive\n"
    "connection when all are busy, and its latency runs from its intended send time, so a slow\n"
    "server shows as latency, not as a lower rate. Every answer is checked.\n"
    "\n"
    "At start it reads GET URL/models/NAME: the features, classes and the training reference\n"
    "(per-feature deciles). Feature values are drawn from the reference: a decile bin by its\n"
    "share, then uniformly within it. Requests are POST URL/models/NAME/predict with one row\n"
    "of named features, built in pools (4096 per kind) before the run.\n"
    "\n"
    "Options:\n"
    "  --url URL             the server, http://HOST[:PORT][/PREFIX] (required)\n"
    "  --model NAME          the model to send rows to (required, except in raw mode)\n"
    "  --scenario S          normal, spike, drift, errors or mixed (default: normal):\n"
    "                          normal  rows drawn from the training reference\n"
    "                          spike   normal rows; the rate is multiplied by --spike-factor\n"
    "                                  from --spike-start for --spike-length\n"
    "                          drift   rows with the --drift-features shifted by --drift-shift\n"
    "                                  reference standard deviations (others unchanged)\n"
    "                          errors  a share --error-ratio of the requests is invalid, cycling\n"
    "                                  through: malformed JSON (400), a missing feature (400), a\n"
    "                                  string for a number (400), an unknown model (404), GET\n"
    "                                  instead of POST (405), an empty body (400), and with\n"
    "                                  --unavailable-model a model that failed to load (503)\n"
    "                          mixed   normal rows with a spike (as spike), errors (as errors,\n"
    "                                  --error-ratio default 0.05) and, from --drift-start on,\n"
    "                                  drift rows instead of normal ones\n"
    "  --rate R              requests per second (required; the base rate in a spike)\n"
    "  --duration D          length of the measured run (default: 10s)\n"
    "  --warmup D            normal requests at the base rate before the measured run, checked\n"
    "                        but left out of the figures (default: 0)\n"
    "  --connections C       keep-alive connections, one request at a time each (default: 64)\n"
    "  --threads N           threads, each with C/N connections and every N-th request\n"
    "                        (default: 1)\n"
    "  --timeout D           a request without its whole answer after D fails; also how long\n"
    "                        requests still waiting for a connection at the end may be sent\n"
    "                        (default: 10s)\n"
    "  --error-ratio F       share of invalid requests in [0, 1] (errors: 0.2, mixed: 0.05);\n"
    "                        request m is invalid when floor((m+1)F) > floor(mF), so exactly\n"
    "                        floor(nF) of the first n are, evenly spread\n"
    "  --unavailable-model M errors, mixed: also send valid rows to model M, which the server\n"
    "                        must report as failed to load (GET /models/M answers 503): the\n"
    "                        one server-side error (5xx) a healthy server gives on purpose,\n"
    "                        expected 503, so error-budget alerts can be exercised\n"
    "  --drift-shift S       shift of the drift features, in standard deviations (default: 3)\n"
    "  --drift-features A,B  the features to shift (default: the first half, rounded up)\n"
    "  --drift-start D       mixed: when drift rows begin (default: 2/3 of the duration)\n"
    "  --spike-factor K      rate multiplier during the spike, > 0 (default: 5)\n"
    "  --spike-start D       when the spike begins, from the start of the measured run\n"
    "                        (default: a third of the duration)\n"
    "  --spike-length D      how long it lasts (default: a third of the duration)\n"
    "  --data FILE.csv       send the rows of this CSV file (header row; columns named as the\n"
    "                        model's features, other columns ignored) instead of rows drawn\n"
    "                        from the reference: valid requests take them in order, request i\n"
    "                        row i mod the number of rows (drift: with the drift features\n"
    "                        shifted); the model then needs no reference\n"
    "  --target COLUMN       with --data: the column of true labels (classes of the model, or\n"
    "                        values for a regressor); the report gives the model's accuracy on\n"
    "                        the rows sent\n"
    "  --feedback F          send ground truth back: a share F in [0, 1] of the right answers\n"
    "                        to measured prediction requests get POST URL/feedback\n"
    "                        {\"id\": <the prediction's id>, \"label\": <its row's label>}\n"
    "                        on the same connections, due when the answer arrived (needs --data\n"
    "                        and --target); each answer must be 200 with the outcome the\n"
    "                        generator expects (\"correct\" when the label sent is the predicted\n"
    "                        class)\n"
    "  --label-noise P       with --feedback: a share P in [0, 1] of the feedbacks carry another\n"
    "                        class than the row's, drawn uniformly (default: 0)\n"
    "  --seed N              seed of the drawn rows and noisy labels (default: 42)\n"
    "  --path PATH           the request path under the URL (default: /models/NAME/predict;\n"
    "                        raw mode: /)\n"
    "  --body FILE           raw mode: POST this file's bytes (default: GET without a body)\n"
    "  --method M            raw mode: the method (default: POST with --body, else GET)\n"
    "  --content-type T      raw mode: the body's type (default: application/json)\n"
    "  --expect-status N     raw mode: the right status (default: 200)\n"
    "  --max-error-rate F    failed requests tolerated, as a share of those sent (default: 0)\n"
    "  --max-p99 D           a p99 latency above D is a missed target (exit status 3)\n"
    "  --report N            describe the first N wrong answers on stderr (default: 5)\n"
    "  --progress, --no-progress\n"
    "                        a progress line on stderr once a second (default: when stderr\n"
    "                        is a terminal): elapsed time, send rate, failures, requests\n"
    "                        waiting for a connection, p50 and p99 of the last second\n"
    "  --dump N              print the first N requests of the schedule as JSON lines\n"
    "                        ({\"seq\",\"kind\",\"method\",\"path\",\"body\"}) and exit, sending "
    "nothing\n"
    "  --json                print one JSON object instead of the table\n"
    "  -h, --help            show this help\n"
    "\n"
    "Durations: 500ms, 30s, 2m, 1h, or plain seconds (1.5).\n"
    "\n"
    "Raw mode (no --model): every request is METHOD URL/PATH with the --body, and an answer is\n"
    "right when its status is --expect-status (the body is not checked). Scenarios: normal and\n"
    "spike.\n"
    "\n"
    "Checks: a valid request must get 200 with a JSON object whose \"id\" is the request's\n"
    "X-Request-Id, \"model\" the model, a numeric \"version\", and a \"prediction\" that is one "
    "of\n"
    "the classes with \"probabilities\" for every class in [0, 1] summing to 1, the predicted\n"
    "class among the most probable (regression: a finite number). An invalid request must get\n"
    "its status above with a JSON body holding an \"error\" message. Every answer must carry\n"
    "the request's X-Request-Id header (raw mode: the status alone). Every request ends as one\n"
    "of: ok (valid, right answer), expected error (invalid, rightly refused), unexpected status,\n"
    "bad body (right status, wrong or garbled answer), connection error, timeout.\n"
    "\n"
    "Feedback requests are not in the schedule: their counts, statuses and latency (from the\n"
    "answer's arrival) are reported apart, and the rate and counts of the schedule are those of\n"
    "the prediction requests. The report adds: feedbacks sent, accepted as correct and as\n"
    "incorrect, the live accuracy the server should report (correct / (correct + incorrect)),\n"
    "and the model's accuracy on the rows sent (predictions against --target, without noise).\n"
    "\n"
    "Output: a table per request kind, the spike window and the total: requests sent, rate,\n"
    "err% (requests without a right 200 answer: refused as expected, or failed), failed\n"
    "(unexpected status, bad body, connection error or timeout), and the latency p50, p90, p99,\n"
    "p99.9 and max in ms (0.8 % resolution); then the counts, the statuses, requests scheduled\n"
    "and sent, the lag of sends behind the schedule, and the generator's CPU time. --json\n"
    "gives the same figures and a cumulative latency histogram (docs/load-generator.md).\n"
    "\n"
    "Exit status: 0 every request answered as expected (failures within --max-error-rate) and\n"
    "the targets met; 1 a wrong answer (bad body), failures (failed requests and failed\n"
    "connection attempts) beyond --max-error-rate of the requests sent, or the run\n"
    "could not start (server unreachable, model unknown or without a reference); 2 usage\n"
    "error; 3 answers right but a target missed: p99 above --max-p99, or requests left unsent\n"
    "(the schedule could not be kept); 130 interrupted (SIGINT/SIGTERM: the run stops, drains\n"
    "and reports).\n";

struct load_opts {
    const char *url, *model, *path, *body_file, *method, *content_type;
    const char *data, *target;
    double feedback, label_noise;
    int feedback_set, label_noise_set;
    const char *drift_features;
    const char *unavailable_model;
    const char *scenario_name;
    enum vg_scenario scenario;
    double rate, error_ratio, drift_shift, spike_factor, max_error_rate;
    int64_t duration_ns, warmup_ns, timeout_ns, drift_start_ns, spike_start_ns, spike_len_ns;
    int64_t max_p99_ns;
    int connections, threads, expect_status, report, json, progress;
    long dump;
    uint64_t seed;
    /* which of the scenario-specific options were given */
    int error_ratio_set, drift_set, drift_start_set, spike_set;
};

/* ---- option parsing ------------------------------------------------------------------------ */

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    if (!s[0] || s[0] == ' ')
        return -1;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* "500ms", "30s", "2m", "1h", "1.5" (seconds) -> nanoseconds. */
static int parse_duration(const char *s, int64_t *ns)
{
    char num[64];
    size_t n = strspn(s, "0123456789.eE+-");
    /* 'e' belongs to the number only when a digit follows ("1e3"), never in a unit */
    if (n == 0 || n >= sizeof num)
        return -1;
    memcpy(num, s, n);
    num[n] = '\0';
    const char *unit = s + n;
    double v, scale;
    if (parse_double(num, &v) || v < 0)
        return -1;
    if (!*unit || !strcmp(unit, "s"))
        scale = 1e9;
    else if (!strcmp(unit, "ms"))
        scale = 1e6;
    else if (!strcmp(unit, "us"))
        scale = 1e3;
    else if (!strcmp(unit, "m"))
        scale = 60e9;
    else if (!strcmp(unit, "h"))
        scale = 3600e9;
    else
        return -1;
    double total = v * scale;
    if (total > (double)MAX_DURATION_NS)
        return -1;
    *ns = (int64_t)llround(total);
    return 0;
}

static int parse_long_opt(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!s[0] || s[0] == ' ' || s[0] == '+' || errno || *end || v < lo || v > hi)
        return vg_cli_usage_error(CMD, "%s: '%s' is not a whole number in [%ld, %ld]", opt, s, lo,
                                  hi);
    *out = v;
    return 0;
}

static int duration_opt(const char *opt, const char *s, int64_t *out)
{
    if (parse_duration(s, out))
        return vg_cli_usage_error(
            CMD, "%s: '%s' is not a duration (e.g. 500ms, 30s, 2m, or seconds)", opt, s);
    return 0;
}

static int ratio_opt(const char *opt, const char *s, double *out)
{
    if (parse_double(s, out) || *out < 0 || *out > 1)
        return vg_cli_usage_error(CMD, "%s: '%s' is not a number in [0, 1]", opt, s);
    return 0;
}

static const char *const scenario_names[] = {"normal", "spike", "drift", "errors", "mixed"};

/* Options that take a value; set_option applies one. */
static const char *const value_options[] = {
    "--url",           "--model",          "--scenario",
    "--rate",          "--duration",       "--warmup",
    "--connections",   "--threads",        "--timeout",
    "--error-ratio",   "--drift-shift",    "--drift-features",
    "--drift-start",   "--spike-factor",   "--spike-start",
    "--spike-length",  "--seed",           "--path",
    "--body",          "--method",         "--content-type",
    "--expect-status", "--max-error-rate", "--max-p99",
    "--report",        "--dump",           "--unavailable-model",
    "--data",          "--target",         "--feedback",
    "--label-noise",
};

/* Applies option `a` (one of value_options) with value v; VG_CLI_USAGE on a bad value. */
static int set_option(struct load_opts *o, const char *a, const char *v)
{
    long n;
#define IS(name) (!strcmp(a, name))
    if (IS("--url")) {
        o->url = v;
    } else if (IS("--model")) {
        o->model = v;
    } else if (IS("--scenario")) {
        size_t k = 0;
        while (k < sizeof scenario_names / sizeof *scenario_names && strcmp(v, scenario_names[k]))
            k++;
        if (k == sizeof scenario_names / sizeof *scenario_names)
            return vg_cli_usage_error(
                CMD, "--scenario: '%s' is not normal, spike, drift, errors or mixed", v);
        o->scenario = (enum vg_scenario)k;
        o->scenario_name = scenario_names[k];
    } else if (IS("--rate")) {
        if (parse_double(v, &o->rate) || !(o->rate > 0) || o->rate > MAX_RATE)
            return vg_cli_usage_error(CMD, "--rate: '%s' is not a number in (0, %.0f]", v,
                                      MAX_RATE);
    } else if (IS("--duration")) {
        if (duration_opt(a, v, &o->duration_ns))
            return VG_CLI_USAGE;
        if (o->duration_ns <= 0)
            return vg_cli_usage_error(CMD, "--duration must be above 0");
    } else if (IS("--warmup")) {
        if (duration_opt(a, v, &o->warmup_ns))
            return VG_CLI_USAGE;
    } else if (IS("--connections")) {
        if (parse_long_opt("--connections", v, 1, 65536, &n))
            return VG_CLI_USAGE;
        o->connections = (int)n;
    } else if (IS("--threads")) {
        if (parse_long_opt("--threads", v, 1, 256, &n))
            return VG_CLI_USAGE;
        o->threads = (int)n;
    } else if (IS("--timeout")) {
        if (duration_opt(a, v, &o->timeout_ns))
            return VG_CLI_USAGE;
        if (o->timeout_ns < 1000000)
            return vg_cli_usage_error(CMD, "--timeout must be at least 1ms");
    } else if (IS("--error-ratio")) {
        if (ratio_opt("--error-ratio", v, &o->error_ratio))
            return VG_CLI_USAGE;
        o->error_ratio_set = 1;
    } else if (IS("--unavailable-model")) {
        if (!*v)
            return vg_cli_usage_error(CMD, "--unavailable-model: the model name is empty");
        o->unavailable_model = v;
    } else if (IS("--drift-shift")) {
        if (parse_double(v, &o->drift_shift) || fabs(o->drift_shift) > 1e6)
            return vg_cli_usage_error(CMD, "--drift-shift: '%s' is not a number", v);
        o->drift_set = 1;
    } else if (IS("--drift-features")) {
        o->drift_features = v;
        o->drift_set = 1;
    } else if (IS("--drift-start")) {
        if (duration_opt(a, v, &o->drift_start_ns))
            return VG_CLI_USAGE;
        o->drift_start_set = 1;
    } else if (IS("--spike-factor")) {
        if (parse_double(v, &o->spike_factor) || !(o->spike_factor > 0) || o->spike_factor > 1000)
            return vg_cli_usage_error(CMD, "--spike-factor: '%s' is not a number in (0, 1000]", v);
        o->spike_set = 1;
    } else if (IS("--spike-start")) {
        if (duration_opt(a, v, &o->spike_start_ns))
            return VG_CLI_USAGE;
        o->spike_set = 1;
    } else if (IS("--spike-length")) {
        if (duration_opt(a, v, &o->spike_len_ns))
            return VG_CLI_USAGE;
        o->spike_set = 1;
    } else if (IS("--seed")) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        if (!v[0] || v[0] == '-' || v[0] == ' ' || errno || *end)
            return vg_cli_usage_error(CMD, "--seed: '%s' is not a whole number >= 0", v);
        o->seed = s;
    } else if (IS("--path")) {
        if (v[0] != '/' || strpbrk(v, " \t\r\n"))
            return vg_cli_usage_error(CMD, "--path: '%s' must start with / and hold no spaces", v);
        o->path = v;
    } else if (IS("--body")) {
        o->body_file = v;
    } else if (IS("--method")) {
        if (!v[0] || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(v))
            return vg_cli_usage_error(CMD, "--method: '%s' is not an upper-case method", v);
        o->method = v;
    } else if (IS("--content-type")) {
        if (!v[0] || strpbrk(v, "\r\n"))
            return vg_cli_usage_error(CMD, "--content-type: '%s' is not a media type", v);
        o->content_type = v;
    } else if (IS("--expect-status")) {
        if (parse_long_opt("--expect-status", v, 100, VG_MAX_STATUS - 1, &n))
            return VG_CLI_USAGE;
        o->expect_status = (int)n;
    } else if (IS("--max-error-rate")) {
        if (ratio_opt("--max-error-rate", v, &o->max_error_rate))
            return VG_CLI_USAGE;
    } else if (IS("--max-p99")) {
        if (duration_opt(a, v, &o->max_p99_ns))
            return VG_CLI_USAGE;
    } else if (IS("--report")) {
        if (parse_long_opt("--report", v, 0, 1000000, &n))
            return VG_CLI_USAGE;
        o->report = (int)n;
    } else if (IS("--dump")) {
        if (parse_long_opt("--dump", v, 0, 10000000, &o->dump))
            return VG_CLI_USAGE;
    } else if (IS("--data")) {
        if (!v[0])
            return vg_cli_usage_error(CMD, "--data: empty file name");
        o->data = v;
    } else if (IS("--target")) {
        if (!v[0])
            return vg_cli_usage_error(CMD, "--target: empty column name");
        o->target = v;
    } else if (IS("--feedback")) {
        if (ratio_opt("--feedback", v, &o->feedback))
            return VG_CLI_USAGE;
        o->feedback_set = 1;
    } else if (IS("--label-noise")) {
        if (ratio_opt("--label-noise", v, &o->label_noise))
            return VG_CLI_USAGE;
        o->label_noise_set = 1;
    }
#undef IS
    return 0;
}

static int parse_args(int argc, char **argv, struct load_opts *o)
{
    memset(o, 0, sizeof *o);
    o->scenario_name = "normal";
    o->duration_ns = 10000000000LL;
    o->timeout_ns = 10000000000LL;
    o->connections = 64;
    o->threads = 1;
    o->drift_shift = 3;
    o->spike_factor = 5;
    o->expect_status = 200;
    o->report = 5;
    o->seed = 42;
    o->progress = -1;
    o->dump = -1;
    o->rate = -1;
    o->max_p99_ns = -1;
    o->spike_start_ns = o->spike_len_ns = o->drift_start_ns = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        }
        if (!strcmp(a, "--progress") || !strcmp(a, "--no-progress")) {
            o->progress = a[2] == 'p';
            continue;
        }
        const char *name = NULL, *v = NULL;
        for (size_t k = 0; !name && k < sizeof value_options / sizeof *value_options; k++) {
            int m = vg_cli_opt_value(argc, argv, &i, value_options[k], &v);
            if (m < 0)
                return vg_cli_usage_error(CMD, "%s needs a value", a);
            if (m > 0)
                name = value_options[k];
        }
        if (!name)
            return vg_cli_usage_error(
                CMD, a[0] == '-' ? "unknown option '%s'" : "unexpected argument '%s'", a);
        if (set_option(o, name, v))
            return VG_CLI_USAGE;
    }

    if (!o->url)
        return vg_cli_usage_error(CMD, "--url is required");
    if (o->rate < 0)
        return vg_cli_usage_error(CMD, "--rate is required");
    int raw = !o->model;
    if (raw) {
        if (o->scenario != VG_SC_NORMAL && o->scenario != VG_SC_SPIKE)
            return vg_cli_usage_error(CMD,
                                      "--scenario %s needs --model (raw mode, without a model, "
                                      "runs normal and spike only)",
                                      o->scenario_name);
    } else if (o->body_file || o->method || o->content_type || o->expect_status != 200) {
        return vg_cli_usage_error(CMD, "--body, --method, --content-type and --expect-status are "
                                       "for raw mode, without --model");
    }
    if (raw && (o->data || o->target || o->feedback_set || o->label_noise_set))
        return vg_cli_usage_error(CMD, "--data, --target, --feedback and --label-noise need "
                                       "--model");
    if (o->target && !o->data)
        return vg_cli_usage_error(CMD, "--target names a column of --data FILE.csv");
    if (o->feedback_set && (!o->data || !o->target))
        return vg_cli_usage_error(CMD, "--feedback needs --data FILE.csv and --target COLUMN: the "
                                       "true label of each row sent");
    if (o->label_noise_set && !o->feedback_set)
        return vg_cli_usage_error(CMD, "--label-noise applies to --feedback");
    int spike = o->scenario == VG_SC_SPIKE || o->scenario == VG_SC_MIXED;
    int errors = o->scenario == VG_SC_ERRORS || o->scenario == VG_SC_MIXED;
    int drift = o->scenario == VG_SC_DRIFT || o->scenario == VG_SC_MIXED;
    if (o->spike_set && !spike)
        return vg_cli_usage_error(CMD, "--spike-* options apply to the spike and mixed scenarios");
    if ((o->error_ratio_set || o->unavailable_model) && !errors)
        return vg_cli_usage_error(CMD, "--error-ratio and --unavailable-model apply to the errors "
                                       "and mixed scenarios");
    if ((o->drift_set && !drift) || (o->drift_start_set && o->scenario != VG_SC_MIXED))
        return vg_cli_usage_error(CMD, "--drift-shift and --drift-features apply to the drift "
                                       "and mixed scenarios, --drift-start to mixed");
    if (!o->error_ratio_set)
        o->error_ratio = o->scenario == VG_SC_MIXED ? 0.05 : 0.2;
    if (spike) {
        if (o->spike_start_ns < 0)
            o->spike_start_ns = o->duration_ns / 3;
        if (o->spike_len_ns < 0)
            o->spike_len_ns = o->duration_ns / 3;
        if (o->spike_start_ns + o->spike_len_ns > o->duration_ns)
            return vg_cli_usage_error(CMD, "the spike (--spike-start + --spike-length) must end "
                                           "within --duration");
    } else {
        o->spike_start_ns = o->spike_len_ns = 0;
    }
    if (o->scenario == VG_SC_MIXED) {
        if (o->drift_start_ns < 0)
            o->drift_start_ns = o->duration_ns / 3 * 2;
        if (o->drift_start_ns > o->duration_ns)
            return vg_cli_usage_error(CMD, "--drift-start must be within --duration");
    }
    if (o->threads > o->connections)
        return vg_cli_usage_error(CMD, "--threads (%d) cannot exceed --connections (%d)",
                                  o->threads, o->connections);
    double factor = spike ? o->spike_factor : 1.0;
    double total =
        o->rate * (double)(o->duration_ns + o->warmup_ns) / 1e9 * (factor > 1 ? factor : 1);
    if (total > (double)MAX_REQUESTS)
        return vg_cli_usage_error(CMD, "--rate times --duration is over %llu requests",
                                  (unsigned long long)MAX_REQUESTS);
    if (o->progress < 0)
        o->progress = isatty(STDERR_FILENO);
    if (o->dump >= 0)
        o->progress = 0;
    return 0;
}

/* ---- start-up ------------------------------------------------------------------------------ */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *data = malloc(MAX_BODY_FILE + 1);
    size_t n = data ? fread(data, 1, MAX_BODY_FILE + 1, f) : 0;
    int bad = !data || ferror(f) || n > MAX_BODY_FILE;
    fclose(f);
    if (bad) {
        free(data);
        errno = data ? EFBIG : ENOMEM;
        return NULL;
    }
    *len = n;
    return data;
}

/* Marks the drift features: the list given, or the first half (rounded up). */
static int mark_drift(struct vg_load_model *m, const char *list)
{
    if (!list) {
        for (int j = 0; j < (m->n_features + 1) / 2; j++)
            m->features[j].drift = 1;
        return 0;
    }
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        int found = 0;
        for (int j = 0; j < m->n_features; j++)
            if (strlen(m->features[j].name) == n && !strncmp(m->features[j].name, p, n))
                m->features[j].drift = found = 1;
        if (!found) {
            vg_cli_usage_error(CMD, "--drift-features: '%.*s' is not a feature of model '%s'",
                               (int)n, p, m->name);
            return VG_CLI_USAGE;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* Descriptors for every connection (and a few more): take what the hard limit allows. */
static void raise_fd_limit(int connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY)
        return;
    rlim_t want = (rlim_t)connections + 64;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* ---- output -------------------------------------------------------------------------------- */

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static uint64_t failed_of(const struct vg_load_stats *s)
{
    return s->unexpected_status + s->bad_body + s->conn_errors + s->timeouts;
}

static void table_row(const char *name, const char *expect, const struct vg_load_stats *s,
                      double seconds)
{
    const struct vg_hist *h = &s->hist;
    printf("%-16s %9llu %9.1f %6s %7.2f %8llu %8.3f %8.3f %8.3f %8.3f %8.3f\n", name,
           (unsigned long long)s->sent, seconds > 0 ? (double)s->sent / seconds : 0.0, expect,
           s->sent ? 100.0 * (double)(s->sent - s->ok) / (double)s->sent : 0.0,
           (unsigned long long)failed_of(s), ms(vg_hist_percentile(h, 50)),
           ms(vg_hist_percentile(h, 90)), ms(vg_hist_percentile(h, 99)),
           ms(vg_hist_percentile(h, 99.9)), ms(h->max_ns));
}

/* correct / (correct + incorrect): the live accuracy the server's feedback should give. */
static double expected_live_accuracy(const struct vg_feedback_stats *f)
{
    uint64_t n = f->correct + f->incorrect;
    return n ? (double)f->correct / (double)n : NAN;
}

/* The --data, --feedback and accuracy lines of the table. */
static void print_feedback_lines(const struct load_opts *o, const struct vg_load_plan *plan,
                                 const struct vg_load_result *r)
{
    const struct vg_feedback_stats *f = &r->feedback;
    const struct vg_load_stats *g = &r->groups[VG_KIND_FEEDBACK];
    if (plan->data)
        printf("data         %s: %d rows%s%s%s, sent in order\n", o->data, plan->data->n_rows,
               o->target ? ", labels from '" : "", o->target ? o->target : "",
               o->target ? "'" : "");
    if (plan->feedback_ratio > 0) {
        printf("feedback     ratio %.6g, label noise %.6g: chosen %llu, sent %llu, unsent %llu, "
               "failed %llu; accepted: ",
               plan->feedback_ratio, plan->label_noise, (unsigned long long)f->selected,
               (unsigned long long)g->sent, (unsigned long long)f->unsent,
               (unsigned long long)failed_of(g));
        if (!plan->spec->classification) {
            printf("received %llu\n", (unsigned long long)f->received);
        } else {
            printf("correct %llu, incorrect %llu (%llu with a noisy label); expected live "
                   "accuracy ",
                   (unsigned long long)f->correct, (unsigned long long)f->incorrect,
                   (unsigned long long)f->noisy);
            if (f->correct + f->incorrect)
                printf("%.6f\n", expected_live_accuracy(f));
            else
                printf("none (no feedback accepted)\n");
        }
    }
    if (f->labelled) {
        printf("accuracy     the model on the rows sent: %.6f (%llu of %llu right answers with "
               "a label)",
               (double)f->right / (double)f->labelled, (unsigned long long)f->right,
               (unsigned long long)f->labelled);
        if (f->correct + f->incorrect)
            printf("; on the feedback rows, without noise: %.6f",
                   (double)f->clean_right / (double)(f->selected ? f->selected : 1));
        printf("\n");
    }
}

static void print_table(const struct load_opts *o, const struct vg_load_plan *plan,
                        const struct vg_load_result *r)
{
    const struct vg_load_stats *t = &r->groups[VG_GROUP_TOTAL];
    uint64_t answered = t->hist.total;
    printf("vigil load: %s at %.6g req/s for %.6g s against %s%s%s, %d connection(s), "
           "%d thread(s)\n\n",
           o->scenario_name, o->rate, (double)o->duration_ns / 1e9, o->url,
           o->model ? ", model " : " (raw)", o->model ? o->model : "", o->connections, o->threads);
    printf("%-16s %9s %9s %6s %7s %8s %8s %8s %8s %8s %8s\n", "kind", "sent", "rate/s", "expect",
           "err%", "failed", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms");
    for (int k = 0; k < VG_KIND_COUNT; k++) {
        if (!r->groups[k].sent || k == VG_KIND_FEEDBACK)
            continue;
        char expect[8];
        snprintf(expect, sizeof expect, "%d",
                 k == VG_KIND_RAW ? o->expect_status : vg_load_kinds[k].expected_status);
        table_row(vg_load_kinds[k].name, expect, &r->groups[k], r->send_seconds);
    }
    if (plan->spike_len_ns > 0)
        table_row("(spike window)", "", &r->groups[VG_GROUP_SPIKE],
                  (double)plan->spike_len_ns / 1e9);
    table_row("total", "", t, r->send_seconds);
    if (plan->feedback_ratio > 0)
        table_row("feedback", "200", &r->groups[VG_KIND_FEEDBACK], r->send_seconds);
    printf("\n(err%%: requests without a right 200 answer, refused as expected or failed; "
           "failed: unexpected status, bad body, connection error or timeout%s)\n\n",
           plan->feedback_ratio > 0 ? "; feedback: POST /feedback, not in the total, its latency "
                                      "from the arrival of the answer it follows"
                                    : "");

    printf("requests     scheduled %llu, sent %llu, unsent %llu; answered %llu\n",
           (unsigned long long)r->scheduled, (unsigned long long)t->sent,
           (unsigned long long)r->unsent, (unsigned long long)answered);
    printf("outcomes     ok %llu, expected errors %llu (%.2f %%), unexpected status %llu, "
           "bad body %llu, connection errors %llu, timeouts %llu\n",
           (unsigned long long)t->ok, (unsigned long long)t->expected_errors,
           t->sent ? 100.0 * (double)t->expected_errors / (double)t->sent : 0.0,
           (unsigned long long)t->unexpected_status, (unsigned long long)t->bad_body,
           (unsigned long long)t->conn_errors, (unsigned long long)t->timeouts);
    printf("statuses    ");
    const char *sep = " ";
    for (int s = 0; s < VG_MAX_STATUS; s++)
        if (r->statuses[s]) {
            printf("%s%d: %llu", sep, s, (unsigned long long)r->statuses[s]);
            sep = ", ";
        }
    printf("%s\n", *sep == ' ' ? " none" : "");
    double planned = (double)plan->duration_ns / 1e9;
    printf("schedule     sent %.1f req/s over %.2f s (scheduled %.1f req/s over %.6g s); sends "
           "behind schedule: mean %.3f ms, max %.3f ms\n",
           r->send_seconds > 0 ? (double)t->sent / r->send_seconds : 0.0, r->send_seconds,
           (double)r->scheduled / planned, planned, r->mean_lag_ns / 1e6,
           (double)r->max_lag_ns / 1e6);
    printf("latency      min %.3f ms, mean %.3f ms, answered over %.2f s\n",
           answered ? ms(t->hist.min_ns) : 0.0,
           answered ? (double)t->hist.sum_ns / (double)answered / 1e6 : 0.0, r->elapsed_seconds);
    printf("connections  %llu opened, %llu failed to open\n", (unsigned long long)r->connects,
           (unsigned long long)r->connect_errors);
    if (plan->warmup_ns > 0) {
        const struct vg_load_stats *w = &r->groups[VG_GROUP_WARMUP];
        printf("warmup       %.6g s: scheduled %llu, sent %llu, failed %llu (not in the figures)\n",
               (double)plan->warmup_ns / 1e9, (unsigned long long)r->warmup_scheduled,
               (unsigned long long)w->sent, (unsigned long long)failed_of(w));
    }
    print_feedback_lines(o, plan, r);
    uint64_t all = t->sent + r->groups[VG_GROUP_WARMUP].sent;
    printf("cpu          %.2f s user, %.2f s system: %.1f us per request\n", r->cpu_user_s,
           r->cpu_sys_s, all ? (r->cpu_user_s + r->cpu_sys_s) * 1e6 / (double)all : 0.0);
    if (r->interrupted)
        printf("interrupted  the figures cover the part of the run before the signal\n");
}

static void json_ms(const char *key, uint64_t ns, const char *sep)
{
    printf("\"%s\":%.6f%s", key, ms(ns), sep);
}

static void json_latency(const struct vg_hist *h)
{
    printf("{");
    json_ms("min", h->total ? h->min_ns : 0, ",");
    printf("\"mean\":%.6f,", h->total ? (double)h->sum_ns / (double)h->total / 1e6 : 0.0);
    json_ms("p50", vg_hist_percentile(h, 50), ",");
    json_ms("p90", vg_hist_percentile(h, 90), ",");
    json_ms("p99", vg_hist_percentile(h, 99), ",");
    json_ms("p999", vg_hist_percentile(h, 99.9), ",");
    json_ms("max", h->max_ns, "}");
}

static void json_u64(const char *key, uint64_t v, const char *sep)
{
    printf("\"%s\":", key);
    vg_json_i64(stdout, (int64_t)v);
    fputs(sep, stdout);
}

static void json_stats(const struct vg_load_stats *s, double seconds, int expected_status)
{
    printf("{");
    json_u64("sent", s->sent, ",");
    printf("\"rate\":%.3f,", seconds > 0 ? (double)s->sent / seconds : 0.0);
    if (expected_status)
        printf("\"expected_status\":%d,", expected_status);
    json_u64("ok", s->ok, ",");
    json_u64("expected_errors", s->expected_errors, ",");
    json_u64("unexpected_status", s->unexpected_status, ",");
    json_u64("bad_body", s->bad_body, ",");
    json_u64("connection_errors", s->conn_errors, ",");
    json_u64("timeouts", s->timeouts, ",");
    json_u64("failed", failed_of(s), ",");
    json_u64("answered", s->hist.total, ",");
    printf("\"error_pct\":%.4f,",
           s->sent ? 100.0 * (double)(s->sent - s->ok) / (double)s->sent : 0.0);
    printf("\"latency_ms\":");
    json_latency(&s->hist);
    printf("}");
}

/* Cumulative counts at 1-2.5-5 steps from 10 µs up to the first step above the maximum. */
static void json_histogram(const struct vg_hist *h)
{
    static const double steps[] = {1.0, 2.5, 5.0};
    printf("[");
    double decade = 0.01; /* ms */
    for (int k = 0; k < 3 * 9; k++) {
        double le_ms = decade * steps[k % 3];
        uint64_t le_ns = (uint64_t)llround(le_ms * 1e6);
        printf("%s{\"le_ms\":%.6g,\"count\":", k ? "," : "", le_ms);
        vg_json_i64(stdout, (int64_t)(h->total - vg_hist_count_above(h, le_ns)));
        printf("}");
        if (le_ns >= h->max_ns)
            break;
        if (k % 3 == 2)
            decade *= 10;
    }
    printf("]");
}

static void json_ratio(const char *key, uint64_t num, uint64_t den, const char *sep)
{
    printf("\"%s\":", key);
    if (den)
        vg_json_f64(stdout, (double)num / (double)den);
    else
        printf("null");
    fputs(sep, stdout);
}

/* ,"data":{...},"feedback":{...},"model_accuracy":{...} when they apply. */
static void json_feedback(const struct load_opts *o, const struct vg_load_plan *plan,
                          const struct vg_load_result *r)
{
    const struct vg_feedback_stats *f = &r->feedback;
    const struct vg_load_stats *g = &r->groups[VG_KIND_FEEDBACK];
    if (plan->data) {
        printf(",\"data\":{\"file\":");
        vg_json_str(stdout, o->data);
        printf(",\"rows\":%d,\"target\":", plan->data->n_rows);
        if (o->target)
            vg_json_str(stdout, o->target);
        else
            printf("null");
        printf("}");
    }
    if (plan->feedback_ratio > 0) {
        printf(",\"feedback\":{\"ratio\":%.6g,\"label_noise\":%.6g,", plan->feedback_ratio,
               plan->label_noise);
        json_u64("selected", f->selected, ",");
        json_u64("sent", g->sent, ",");
        json_u64("unsent", f->unsent, ",");
        json_u64("answered", g->hist.total, ",");
        json_u64("accepted", g->ok, ",");
        json_u64("correct", f->correct, ",");
        json_u64("incorrect", f->incorrect, ",");
        json_u64("received", f->received, ",");
        json_u64("noisy", f->noisy, ",");
        json_u64("failed", failed_of(g), ",");
        json_ratio("expected_live_accuracy", f->correct, f->correct + f->incorrect, ",");
        json_ratio("clean_accuracy", f->clean_right, f->correct + f->incorrect ? f->selected : 0,
                   ",");
        printf("\"statuses\":{");
        const char *sep = "";
        for (int s = 0; s < VG_MAX_STATUS; s++)
            if (f->statuses[s]) {
                printf("%s\"%d\":", sep, s);
                vg_json_i64(stdout, (int64_t)f->statuses[s]);
                sep = ",";
            }
        printf("},\"requests\":");
        json_stats(g, r->send_seconds, 200);
        printf("}");
    }
    if (plan->data && plan->data->has_labels && plan->data->label_class) {
        printf(",\"model_accuracy\":{");
        json_u64("predictions", f->labelled, ",");
        json_u64("right", f->right, ",");
        json_ratio("accuracy", f->right, f->labelled, "}");
    }
}

static void print_json(const struct load_opts *o, const struct vg_load_plan *plan,
                       const struct vg_load_result *r, const struct vg_load_model *m,
                       int exit_status)
{
    const struct vg_load_stats *t = &r->groups[VG_GROUP_TOTAL];
    printf("{\"url\":");
    vg_json_str(stdout, o->url);
    printf(",\"model\":");
    if (o->model)
        vg_json_str(stdout, o->model);
    else
        printf("null");
    printf(",\"scenario\":");
    vg_json_str(stdout, o->model ? o->scenario_name : "raw");
    printf(",\"rate\":%.6g,\"duration_s\":%.6g,\"warmup_s\":%.6g,\"connections\":%d,"
           "\"threads\":%d,\"timeout_s\":%.6g,\"seed\":",
           o->rate, (double)o->duration_ns / 1e9, (double)o->warmup_ns / 1e9, o->connections,
           o->threads, (double)o->timeout_ns / 1e9);
    vg_json_i64(stdout, (int64_t)o->seed);
    if (o->scenario == VG_SC_ERRORS || o->scenario == VG_SC_MIXED)
        printf(",\"error_ratio\":%.6g", o->error_ratio);
    if (plan->spike_len_ns > 0)
        printf(",\"spike\":{\"factor\":%.6g,\"start_s\":%.6g,\"length_s\":%.6g}", o->spike_factor,
               (double)plan->spike_start_ns / 1e9, (double)plan->spike_len_ns / 1e9);
    if (m && (o->scenario == VG_SC_DRIFT || o->scenario == VG_SC_MIXED)) {
        printf(",\"drift\":{\"shift\":%.6g,\"features\":[", o->drift_shift);
        const char *sep = "";
        for (int j = 0; j < m->n_features; j++)
            if (m->features[j].drift) {
                fputs(sep, stdout);
                vg_json_str(stdout, m->features[j].name);
                sep = ",";
            }
        printf("]");
        if (o->scenario == VG_SC_MIXED)
            printf(",\"start_s\":%.6g", (double)plan->drift_start_ns / 1e9);
        printf("}");
    }
    printf(",");
    json_u64("scheduled", r->scheduled, ",");
    json_u64("sent", t->sent, ",");
    json_u64("unsent", r->unsent, ",");
    json_u64("answered", t->hist.total, ",");
    printf("\"send_seconds\":%.6f,\"elapsed_seconds\":%.6f,\"sent_rate\":%.3f,", r->send_seconds,
           r->elapsed_seconds, r->send_seconds > 0 ? (double)t->sent / r->send_seconds : 0.0);
    printf("\"max_lag_ms\":%.6f,\"mean_lag_ms\":%.6f,", (double)r->max_lag_ns / 1e6,
           r->mean_lag_ns / 1e6);
    json_u64("ok", t->ok, ",");
    json_u64("expected_errors", t->expected_errors, ",");
    json_u64("unexpected_status", t->unexpected_status, ",");
    json_u64("bad_body", t->bad_body, ",");
    json_u64("connection_errors", t->conn_errors, ",");
    json_u64("timeouts", t->timeouts, ",");
    json_u64("failed", failed_of(t), ",");
    json_u64("connects", r->connects, ",");
    json_u64("connect_errors", r->connect_errors, ",");
    printf("\"statuses\":{");
    const char *sep = "";
    for (int s = 0; s < VG_MAX_STATUS; s++)
        if (r->statuses[s]) {
            printf("%s\"%d\":", sep, s);
            vg_json_i64(stdout, (int64_t)r->statuses[s]);
            sep = ",";
        }
    printf("},\"latency_ms\":");
    json_latency(&t->hist);
    printf(",\"latency_histogram_ms\":");
    json_histogram(&t->hist);
    printf(",\"kinds\":{");
    sep = "";
    for (int k = 0; k < VG_KIND_COUNT; k++) {
        if (!r->groups[k].sent || k == VG_KIND_FEEDBACK)
            continue;
        printf("%s", sep);
        vg_json_str(stdout, vg_load_kinds[k].name);
        printf(":");
        json_stats(&r->groups[k], r->send_seconds,
                   k == VG_KIND_RAW ? o->expect_status : vg_load_kinds[k].expected_status);
        sep = ",";
    }
    printf("},\"total\":");
    json_stats(t, r->send_seconds, 0);
    if (plan->spike_len_ns > 0) {
        printf(",\"spike_window\":");
        json_stats(&r->groups[VG_GROUP_SPIKE], (double)plan->spike_len_ns / 1e9, 0);
    }
    if (plan->warmup_ns > 0) {
        printf(",\"warmup\":{");
        json_u64("scheduled", r->warmup_scheduled, ",");
        json_u64("unsent", r->warmup_unsent, ",");
        printf("\"stats\":");
        json_stats(&r->groups[VG_GROUP_WARMUP], (double)plan->warmup_ns / 1e9, 0);
        printf("}");
    }
    json_feedback(o, plan, r);
    uint64_t all = t->sent + r->groups[VG_GROUP_WARMUP].sent;
    printf(",\"cpu\":{\"user_s\":%.3f,\"system_s\":%.3f,\"us_per_request\":%.3f}", r->cpu_user_s,
           r->cpu_sys_s, all ? (r->cpu_user_s + r->cpu_sys_s) * 1e6 / (double)all : 0.0);
    printf(",\"interrupted\":%s,\"exit_status\":%d}\n", r->interrupted ? "true" : "false",
           exit_status);
}

/* The exit status the figures call for (see the usage text). */
static int verdict(const struct load_opts *o, const struct vg_load_result *r)
{
    const struct vg_load_stats *t = &r->groups[VG_GROUP_TOTAL], *w = &r->groups[VG_GROUP_WARMUP];
    const struct vg_load_stats *fb = &r->groups[VG_KIND_FEEDBACK];
    uint64_t sent = t->sent + w->sent + fb->sent;
    /* a connection the server refused or never completed is a failure as well */
    uint64_t failed = failed_of(t) + failed_of(w) + failed_of(fb) + r->connect_errors;
    if (t->bad_body + w->bad_body + fb->bad_body > 0)
        return VG_CLI_FAIL;
    if (failed > 0 && (double)failed > o->max_error_rate * (double)sent)
        return VG_CLI_FAIL;
    if (r->interrupted)
        return EXIT_INTERRUPTED;
    if (r->unsent + r->warmup_unsent + r->feedback.unsent > 0)
        return EXIT_TARGETS;
    if (o->max_p99_ns >= 0 && vg_hist_percentile(&t->hist, 99) > (uint64_t)o->max_p99_ns)
        return EXIT_TARGETS;
    return VG_CLI_OK;
}

/* --dump: the first n requests of the schedule, as JSON lines. */
static void dump_requests(const struct vg_load_plan *plan, long n)
{
    struct vg_schedule s;
    vg_schedule_init(&s, plan);
    for (long i = 0; i < n; i++) {
        int64_t due;
        int warmup, spike;
        enum vg_load_kind k = vg_load_request(plan, &s, (uint64_t)i, &due, &warmup, &spike);
        const struct vg_req_pool *p = &plan->pools[k];
        int which = vg_req_pool_pick(p, (uint64_t)i);
        const char *req = p->bytes + p->off[which];
        size_t body_len;
        const char *body = vg_req_pool_body(p, which, &body_len);
        size_t method_len = strcspn(req, " ");
        const char *path = req + method_len + 1;
        size_t path_len = strcspn(path, " ");
        char *b = strndup(body, body_len), *mp = strndup(req, method_len),
             *pp = strndup(path, path_len);
        printf("{\"seq\":%ld,\"due_s\":%.9f,\"kind\":\"%s\",\"method\":", i, (double)due / 1e9,
               vg_load_kinds[k].name);
        vg_json_str(stdout, mp ? mp : "");
        printf(",\"path\":");
        vg_json_str(stdout, pp ? pp : "");
        printf(",\"body\":");
        vg_json_str(stdout, b ? b : "");
        printf("}\n");
        free(b);
        free(mp);
        free(pp);
    }
}

/* ---- the command --------------------------------------------------------------------------- */

/* --unavailable-model NAME: the server must know NAME and report it not loaded (GET /models/NAME
 * answers 503), or its predict requests would not be the 503s they are counted as. Sets *path to
 * NAME's prediction path. Returns 0, or -1 with a message. */
static int check_unavailable(const struct load_opts *o, const struct vg_url *url, double timeout,
                             char **path, char *msg, size_t msg_cap)
{
    size_t cap = strlen(o->unavailable_model) + 32;
    char *info = NULL;
    size_t info_len;
    int status = 0;
    *path = malloc(cap);
    if (!*path) {
        snprintf(msg, msg_cap, "out of memory");
        return -1;
    }
    snprintf(*path, cap, "/models/%s", o->unavailable_model);
    char err[512];
    if (vg_http_get(url, *path, timeout, &status, &info, &info_len, err, sizeof err)) {
        snprintf(msg, msg_cap, "cannot read --unavailable-model from the server: %s", err);
        return -1;
    }
    int rc = 0;
    if (status != 503) {
        snprintf(msg, msg_cap,
                 "--unavailable-model '%s' must be a model the server failed to load (GET %s "
                 "answers 503), but it answered %d",
                 o->unavailable_model, *path, status);
        rc = -1;
    }
    free(info);
    snprintf(*path, cap, "/models/%s/predict", o->unavailable_model);
    return rc;
}

static int load_run(int argc, char **argv)
{
    struct load_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    struct vg_url url;
    struct vg_load_model model = {0};
    struct vg_load_data data = {0};
    struct vg_req_pool pools[VG_KIND_COUNT];
    struct vg_load_result *res = NULL;
    char msg[1024] = "";
    char *info = NULL, *body = NULL, *path = NULL, *unknown_path = NULL, *unavailable_path = NULL;
    const char **class_names = NULL;
    struct vg_load_plan plan;
    struct vg_answer_spec spec = {0};
    memset(pools, 0, sizeof pools);
    rc = VG_CLI_FAIL;

    if (vg_url_parse(o.url, &url, msg, sizeof msg)) {
        rc = vg_cli_usage_error(CMD, "--url: %s", msg);
        goto out;
    }
    plan = (struct vg_load_plan){
        .scenario = o.model ? o.scenario : VG_SC_RAW,
        .rate = o.rate,
        .duration_ns = o.duration_ns,
        .warmup_ns = o.warmup_ns,
        .spike_start_ns = o.spike_start_ns,
        .spike_len_ns = o.spike_len_ns,
        .spike_factor = o.spike_factor,
        .error_ratio = o.error_ratio,
        .drift_start_ns = o.drift_start_ns,
        .connections = o.connections,
        .threads = o.threads,
        .timeout_ns = o.timeout_ns,
        .progress = o.progress,
        .pools = pools,
        .raw_status = o.expect_status,
        .max_reports = o.report,
        .seed = o.seed,
    };
    vg_load_run_tag(plan.run_tag);
    if (o.model) {
        size_t cap = strlen(o.model) + 64;
        path = malloc(cap);
        unknown_path = malloc(cap);
        if (!path || !unknown_path) {
            rc = vg_cli_fail(CMD, "out of memory");
            goto out;
        }
        snprintf(path, cap, "/models/%s", o.model);
        int status = 0;
        size_t info_len;
        double get_timeout = o.timeout_ns / 1e9 < 10 ? o.timeout_ns / 1e9 : 10;
        if (vg_http_get(&url, path, get_timeout, &status, &info, &info_len, msg, sizeof msg)) {
            rc = vg_cli_fail(CMD, "cannot read the model from the server: %s", msg);
            goto out;
        }
        if (status != 200) {
            const char *why = status == 404   ? "not found"
                              : status == 503 ? "not loaded"
                                              : "not readable";
            rc = vg_cli_fail(CMD, "model '%s' %s: GET %s%s answered %d: %.300s", o.model, why,
                             o.url, path, status, info);
            goto out;
        }
        if (vg_load_model_parse_opt(info, o.model, !o.data, &model, msg, sizeof msg)) {
            rc = vg_cli_fail(CMD, "%s", msg);
            goto out;
        }
        if (o.data) {
            if (vg_load_data_read(&model, o.data, o.target, &data, msg, sizeof msg)) {
                rc = vg_cli_fail(CMD, "%s", msg);
                goto out;
            }
            if (data.n_rows > MAX_DATA_ROWS) {
                rc = vg_cli_fail(CMD, "--data %s: %d rows, more than the %d vigil load sends",
                                 o.data, data.n_rows, MAX_DATA_ROWS);
                goto out;
            }
            plan.data = &data;
        }
        if (o.label_noise > 0 && (!model.classification || model.n_classes < 2)) {
            rc = vg_cli_usage_error(CMD,
                                    "--label-noise: model '%s' %s, so there is no other label "
                                    "to send",
                                    o.model,
                                    model.classification ? "has one class" : "is a regressor");
            goto out;
        }
        if (mark_drift(&model, o.drift_features)) {
            rc = VG_CLI_USAGE;
            goto out;
        }
        if (o.unavailable_model &&
            check_unavailable(&o, &url, get_timeout, &unavailable_path, msg, sizeof msg)) {
            rc = vg_cli_fail(CMD, "%s", msg);
            goto out;
        }
        plan.unavailable = unavailable_path != NULL;
        snprintf(path, cap, "/models/%s/predict", o.model);
        snprintf(unknown_path, cap, "/models/%s-unknown/predict", o.model);
        struct vg_body_params bp = {
            .path = o.path ? o.path : path,
            .unknown_path = unknown_path,
            .unavailable_path = unavailable_path,
            .drift_shift = o.drift_shift,
            .seed = o.seed,
            .pool_valid = POOL_VALID,
            .pool_error = POOL_ERROR,
            .data = o.data ? &data : NULL,
        };
        if (vg_load_build_pools(&model, &url, &bp, pools, msg, sizeof msg)) {
            rc = vg_cli_fail(CMD, "%s", msg);
            goto out;
        }
        if (o.feedback > 0 &&
            vg_load_build_feedback_pool(&model, &data, &url, "/feedback", &pools[VG_KIND_FEEDBACK],
                                        msg, sizeof msg)) {
            rc = vg_cli_fail(CMD, "%s", msg);
            goto out;
        }
        plan.feedback_ratio = o.feedback;
        plan.label_noise = o.label_noise;
        class_names = calloc((size_t)model.n_classes + 1, sizeof *class_names);
        if (!class_names) {
            rc = vg_cli_fail(CMD, "out of memory");
            goto out;
        }
        for (int k = 0; k < model.n_classes; k++)
            class_names[k] = model.classes[k];
        spec.model = o.model;
        spec.classification = model.classification;
        spec.n_classes = model.n_classes;
        spec.classes = class_names;
    } else {
        size_t body_len = 0;
        if (o.body_file && !(body = read_file(o.body_file, &body_len))) {
            rc = vg_cli_fail(CMD, "cannot read --body %s: %s", o.body_file, strerror(errno));
            goto out;
        }
        const char *method = o.method ? o.method : body ? "POST" : "GET";
        const char *raw_body = body;
        if (!raw_body && strcmp(method, "GET") && strcmp(method, "HEAD") &&
            strcmp(method, "DELETE"))
            raw_body = ""; /* a POST without --body still says Content-Length: 0 */
        if (!strcmp(method, "HEAD")) {
            rc = vg_cli_usage_error(CMD, "--method HEAD is not supported (answers have no body "
                                         "but announce one)");
            goto out;
        }
        if (vg_load_build_raw_pool(&url, method, o.path ? o.path : "/", raw_body, body_len,
                                   o.content_type ? o.content_type : "application/json",
                                   &pools[VG_KIND_RAW], msg, sizeof msg)) {
            rc = vg_cli_fail(CMD, "%s", msg);
            goto out;
        }
    }
    plan.spec = &spec;

    if (o.dump >= 0) {
        dump_requests(&plan, o.dump);
        rc = VG_CLI_OK;
        goto out;
    }
    if (vg_url_resolve(&url, &plan.addr, &plan.addr_len, msg, sizeof msg)) {
        rc = vg_cli_fail(CMD, "%s", msg);
        goto out;
    }
    raise_fd_limit(o.connections);
    res = malloc(sizeof *res);
    if (!res) {
        rc = vg_cli_fail(CMD, "out of memory");
        goto out;
    }
    if (vg_load_run(&plan, res, msg, sizeof msg)) {
        rc = vg_cli_fail(CMD, "%s: %s", o.url, msg);
        goto out;
    }
    rc = verdict(&o, res);
    if (o.json)
        print_json(&o, &plan, res, o.model ? &model : NULL, rc);
    else
        print_table(&o, &plan, res);
    if (rc != VG_CLI_OK) {
        const struct vg_load_stats *t = &res->groups[VG_GROUP_TOTAL];
        fprintf(stderr, "vigil load: %s\n",
                rc == VG_CLI_FAIL        ? "FAILED: wrong answers or failed requests (see above)"
                : rc == EXIT_INTERRUPTED ? "interrupted"
                : res->unsent + res->feedback.unsent > 0
                    ? "target missed: requests left unsent (the schedule could not be kept)"
                    : "target missed: p99 above --max-p99");
        (void)t;
    }
out:
    free(res);
    for (int k = 0; k < VG_KIND_COUNT; k++)
        vg_req_pool_release(&pools[k]);
    vg_load_model_release(&model);
    vg_load_data_release(&data);
    free(class_names);
    free(info);
    free(body);
    free(path);
    free(unknown_path);
    free(unavailable_path);
    return rc;
}

const struct vg_cli_command vg_cli_cmd_load = {
    .name = CMD,
    .summary = "open-loop HTTP load generator for vigil serve, checking every answer",
    .usage = load_usage,
    .run = load_run,
};
