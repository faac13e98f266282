/*
 * The HTTP layer: libmicrohttpd (0.9.75) with an internal epoll thread pool, the request
 * lifecycle, limits, routing, request ids, HTTP metrics, the access log, the reply helpers and
 * the log, all in one place because they share one per-connection structure.
 *
 * Lifecycle of a request (libmicrohttpd calls on_request several times per request):
 * 1. headers received: the request starts (clock, in-flight count, request id), the path is
 *    matched against the route table, and what can be refused without the body is decided here
 *    (404, 405, 415, 413 from Content-Length). When a body is announced the refusal is queued at
 *    once, before any body byte is read, and libmicrohttpd closes the connection after it (the
 *    body was not consumed); without a body it waits for step 3, keeping the connection alive.
 *    The socket of such an early refusal lingers (see "Lingering close") so the refusal reaches
 *    the client even while it is still sending.
 * 2. body chunks: appended to the connection's buffer, capped at max_body_bytes. A chunked body
 *    that outgrows the cap cannot be answered in mid-upload (libmicrohttpd forbids queueing a
 *    reply while it delivers upload data), so the connection is closed at once; the request is
 *    logged and counted as 413.
 * 3. request complete: the handler runs on this worker thread and its reply is queued.
 * 4. on_completed (after the last byte is sent, or on error, timeout or shutdown): metrics, the
 *    access log line, the in-flight count.
 *
 * Memory: one struct conn per TCP connection (libmicrohttpd's socket context), reused by every
 * request on it, so keep-alive traffic allocates only the reply (the body the handler builds and
 * libmicrohttpd's response object). Body buffers grow to the largest body seen and are dropped
 * after a request when above KEEP_BODY_BYTES.
 *
 * Metrics without locks or lookups on the request path: every route template is split and given
 * an array of handles per method at start-up. Status codes are cached in small arrays of atomic
 * slots: a (route, method, code) triple is bound in the registry (which locks) the first time it
 * is seen, then read with one atomic load.
 *
 * Paths are not percent-decoded: routing and logs see the raw path (model names are plain
 * [A-Za-z0-9._-], so nothing is lost).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/jsonw.h"
#include "server/server.h"

#define KEEP_BODY_BYTES (64 * 1024) /* larger body buffers are freed after their request */
#define MAX_SEGMENTS 8              /* path segments in a route template */
#define CODE_SLOTS 16               /* distinct status codes cached per (route, method) */
#define LOG_LINE_MAX 4096
#define LINGER_MAX_FDS 1024 /* connections drained at once after an early refusal */
#define LINGER_SECONDS 5    /* how long at most */
/* Caps of the JSON written here: an access log line longer than this is dropped (libmicrohttpd's
 * memory pool bounds the path long before); an error body holds a message of under 1 KiB. */
#define ACCESS_LINE_MAX (1024 * 1024)
#define ERROR_BODY_MAX (16 * 1024)

/* ---- Log ------------------------------------------------------------------------------------- */

/* "2026-11-23T12:00:00.123Z" (24 characters and a NUL for any year below 10000). */
#define TIME_TEXT_MAX 64
static void format_time(char out[TIME_TEXT_MAX], const struct timespec *ts)
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    snprintf(out, TIME_TEXT_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts->tv_nsec / 1000000));
}

static void vlog(const char *level, const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    format_time(line, &now); /* line is far longer than TIME_TEXT_MAX */
    size_t n = strlen(line);
    n += (size_t)snprintf(line + n, sizeof line - n, " %s ", level);
    size_t start = n;
    int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (m < 0)
        m = 0;
    if ((size_t)m >= sizeof line - n - 1) { /* truncated: keep room for "...\n" */
        n = sizeof line - 5;
        memcpy(line + n, "...", 3);
        n += 3;
    } else {
        n += (size_t)m;
    }
    /* Messages quote client input (paths, names): one line each, whatever they hold. */
    for (size_t i = start; i < n; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void vg_log(const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

/* libmicrohttpd's messages about what clients do (hang up, time out, send garbage) are routine
 * for a server on a network and would flood the log; our own lines name the requests that
 * matter. Everything else it says (accept failures, the connection limit...) is logged. */
static const char *const mhd_routine[] = {
    "Application reported internal error", /* our MHD_NO: we logged the request already */
    "closed by remote side",
    "Socket disconnected",
    "Failed to send data",
    "Failed to receive data",
    "timed out",
    "Error processing request",
    "without `Host' header",
};

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    for (size_t i = 0; i < sizeof mhd_routine / sizeof mhd_routine[0]; i++)
        if (strstr(msg, mhd_routine[i]))
            return;
    vg_log("warn", "libmicrohttpd: %s", msg);
}

/* ---- Routes and their metrics ---------------------------------------------------------------- */

enum { M_GET, M_HEAD, M_POST, M_PUT, M_DELETE, M_PATCH, M_OPTIONS, M_OTHER, N_METHODS };
static const char *const method_names[N_METHODS] = {"GET",    "HEAD",  "POST",    "PUT",
                                                    "DELETE", "PATCH", "OPTIONS", "OTHER"};

static int method_index(const char *m)
{
    switch (m[0]) {
    case 'G': return strcmp(m, "GET") ? M_OTHER : M_GET;
    case 'H': return strcmp(m, "HEAD") ? M_OTHER : M_HEAD;
    case 'P':
        if (!strcmp(m, "POST"))
            return M_POST;
        if (!strcmp(m, "PUT"))
            return M_PUT;
        return strcmp(m, "PATCH") ? M_OTHER : M_PATCH;
    case 'D': return strcmp(m, "DELETE") ? M_OTHER : M_DELETE;
    case 'O': return strcmp(m, "OPTIONS") ? M_OTHER : M_OPTIONS;
    default: return M_OTHER;
    }
}

struct code_slot {
    atomic_int code; /* 0 = free */
    _Atomic(struct vg_counter *) counter;
};

/* The handles of one (route, method). */
struct route_metrics {
    _Atomic(struct vg_histogram *) duration, request_size, response_size;
    struct code_slot codes[CODE_SLOTS];
};

struct segment {
    const char *literal; /* NULL for a {parameter} */
    size_t len;
};

/* One distinct route template; the last one of the array is "unmatched". */
struct pattern {
    const char *text; /* the route label */
    int n_segments;
    struct segment segments[MAX_SEGMENTS];
    const struct vg_route *route_for[N_METHODS]; /* NULL: 405 */
    char allow[64];                              /* "GET, HEAD" */
    struct route_metrics metrics[N_METHODS];
};

struct vg_server {
    struct MHD_Daemon *daemon;
    const struct vg_server_config *cfg;
    struct vg_store *store;
    struct vg_registry *registry;
    int listen_fd;
    int quiesced;
    int access_fd; /* -1 when off */
    int access_owned;
    atomic_long in_flight;
    atomic_int closing; /* replies ask clients to close their connection */
    atomic_int stopped; /* vg_server_stop began: new requests are closed unanswered */
    struct vg_family *f_requests, *f_duration, *f_request_size, *f_response_size;
    struct vg_gauge *g_in_flight;
    int n_patterns;           /* without "unmatched" */
    struct pattern *patterns; /* n_patterns + 1 */
    char url[128];
    struct linger_pool *linger;
};

static const double duration_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                         0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
static const double size_bounds[] = {64,    256,    1024,    4096,    16384,
                                     65536, 262144, 1048576, 4194304, 16777216};

static struct vg_histogram *histogram_handle(struct vg_family *f,
                                             _Atomic(struct vg_histogram *) *slot,
                                             const struct pattern *p, int method)
{
    struct vg_histogram *h = atomic_load_explicit(slot, memory_order_acquire);
    if (h)
        return h;
    const char *labels[] = {method_names[method], p->text};
    if (vg_histogram_bind(f, labels, &h))
        return NULL;
    atomic_store_explicit(slot, h, memory_order_release);
    return h;
}

static struct vg_counter *bind_code(struct vg_server *s, const struct pattern *p, int method,
                                    int status)
{
    char code[16];
    snprintf(code, sizeof code, "%d", status);
    const char *labels[] = {method_names[method], p->text, code};
    struct vg_counter *c;
    return vg_counter_bind(s->f_requests, labels, &c) ? NULL : c;
}

/* The requests_total child for this status: one atomic load once the code has been seen. */
static struct vg_counter *code_counter(struct vg_server *s, struct pattern *p, int method,
                                       int status)
{
    struct code_slot *slots = p->metrics[method].codes;
    for (int i = 0; i < CODE_SLOTS; i++) {
        int code = atomic_load_explicit(&slots[i].code, memory_order_acquire);
        if (code == 0) {
            int expected = 0;
            if (atomic_compare_exchange_strong(&slots[i].code, &expected, status))
                code = status;
            else
                code = expected;
        }
        if (code != status)
            continue;
        struct vg_counter *c = atomic_load_explicit(&slots[i].counter, memory_order_acquire);
        if (!c) {
            /* Binding is idempotent: two threads racing here get the same child. */
            c = bind_code(s, p, method, status);
            if (c)
                atomic_store_explicit(&slots[i].counter, c, memory_order_release);
        }
        return c;
    }
    return bind_code(s, p, method, status); /* more distinct codes than slots: rare */
}

static int pattern_parse(struct pattern *p, const char *text, struct vg_error *err)
{
    p->text = text;
    const char *s = text;
    if (*s != '/')
        goto bad;
    if (!strcmp(text, "/"))
        return 0;
    while (*s == '/') {
        s++;
        const char *e = strchrnul(s, '/');
        if (e == s || p->n_segments == MAX_SEGMENTS)
            goto bad;
        struct segment *seg = &p->segments[p->n_segments++];
        if (*s == '{') {
            if (e[-1] != '}' || e - s < 3)
                goto bad;
            seg->literal = NULL;
        } else {
            seg->literal = s;
            seg->len = (size_t)(e - s);
        }
        s = e;
    }
    if (!*s)
        return 0;
bad:
    err->code = VG_EINVAL;
    snprintf(err->msg, sizeof err->msg, "bad route template '%s'", text);
    return -VG_EINVAL;
}

/* Matches a raw path; on success fills start/len of each parameter segment. */
static int pattern_match(const struct pattern *p, const char *path, const char **param,
                         size_t *param_len, int *n_params)
{
    const char *s = path;
    int n = 0;
    if (*s != '/')
        return 0;
    if (p->n_segments == 0)
        return s[1] == '\0';
    for (int i = 0; i < p->n_segments; i++) {
        if (*s != '/')
            return 0;
        s++;
        const char *e = strchrnul(s, '/');
        size_t len = (size_t)(e - s);
        const struct segment *seg = &p->segments[i];
        if (seg->literal) {
            if (len != seg->len || memcmp(s, seg->literal, len))
                return 0;
        } else {
            if (!len || n == VG_ROUTE_MAX_PARAMS)
                return 0;
            param[n] = s;
            param_len[n++] = len;
        }
        s = e;
    }
    if (*s)
        return 0;
    *n_params = n;
    return 1;
}

static int build_patterns(struct vg_server *s, struct vg_error *err)
{
    int n_routes = 0;
    while (vg_routes[n_routes].method)
        n_routes++;
    s->patterns = calloc((size_t)n_routes + 1, sizeof *s->patterns);
    if (!s->patterns) {
        err->code = VG_ENOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -VG_ENOMEM;
    }
    for (int i = 0; i < n_routes; i++) {
        const struct vg_route *r = &vg_routes[i];
        struct pattern *p = NULL;
        for (int k = 0; k < s->n_patterns && !p; k++)
            if (!strcmp(s->patterns[k].text, r->pattern))
                p = &s->patterns[k];
        if (!p) {
            p = &s->patterns[s->n_patterns++];
            int rc = pattern_parse(p, r->pattern, err);
            if (rc)
                return rc;
        }
        int m = method_index(r->method);
        if (!p->route_for[m])
            p->route_for[m] = r;
    }
    for (int k = 0; k < s->n_patterns; k++) {
        struct pattern *p = &s->patterns[k];
        if (p->route_for[M_GET] && !p->route_for[M_HEAD])
            p->route_for[M_HEAD] = p->route_for[M_GET]; /* libmicrohttpd drops the body */
        size_t n = 0;
        for (int m = 0; m < N_METHODS; m++)
            if (p->route_for[m])
                n += (size_t)snprintf(p->allow + n, sizeof p->allow - n, "%s%s", n ? ", " : "",
                                      method_names[m]);
    }
    s->patterns[s->n_patterns].text = "unmatched";
    return 0;
}

static int register_metrics(struct vg_server *s, struct vg_error *err)
{
    static const char *const requests_labels[] = {"method", "route", "code", NULL};
    static const char *const route_labels[] = {"method", "route", NULL};
    struct vg_registry *reg = s->registry;
    int rc = vg_counter_register(reg, "vigil_http_requests_total",
                                 "HTTP requests answered, by method, route template and status.",
                                 requests_labels, &s->f_requests, err);
    if (!rc)
        rc = vg_histogram_register(reg, "vigil_http_request_duration_seconds",
                                   "Time from a request's headers to its last response byte.",
                                   route_labels, duration_bounds,
                                   sizeof duration_bounds / sizeof duration_bounds[0],
                                   &s->f_duration, err);
    if (!rc)
        rc = vg_histogram_register(
            reg, "vigil_http_request_size_bytes", "Request body sizes in bytes.", route_labels,
            size_bounds, sizeof size_bounds / sizeof size_bounds[0], &s->f_request_size, err);
    if (!rc)
        rc = vg_histogram_register(
            reg, "vigil_http_response_size_bytes", "Response body sizes in bytes.", route_labels,
            size_bounds, sizeof size_bounds / sizeof size_bounds[0], &s->f_response_size, err);
    struct vg_family *f_in_flight = NULL;
    if (!rc)
        rc = vg_gauge_register(reg, "vigil_http_requests_in_flight",
                               "Requests received and not yet fully answered.", NULL, &f_in_flight,
                               err);
    if (!rc)
        rc = vg_gauge_bind(f_in_flight, NULL, &s->g_in_flight);
    /* Each route's latency histogram is bound now, so latency panels and alerts see every route
     * from the first scrape; the size histograms are bound on a route's first request, which
     * keeps the scrape (and its cost) to the routes in use. */
    for (int k = 0; !rc && k < s->n_patterns; k++) {
        struct pattern *p = &s->patterns[k];
        for (int m = 0; m < N_METHODS; m++) {
            if (!p->route_for[m] || (m == M_HEAD && p->route_for[m] == p->route_for[M_GET]))
                continue;
            if (!histogram_handle(s->f_duration, &p->metrics[m].duration, p, m))
                rc = -VG_ENOMEM;
        }
    }
    if (rc && err && !err->msg[0]) {
        err->code = -rc;
        snprintf(err->msg, sizeof err->msg, "cannot register the HTTP metrics: %s",
                 vg_strerror(rc));
    }
    return rc;
}

/* ---- Request ids ----------------------------------------------------------------------------- */

/* splitmix64 per thread, seeded from getrandom: ids need to be unique, not secret. */
static _Thread_local uint64_t rng_state;
static _Thread_local int rng_seeded;

static uint64_t rng_next(void)
{
    if (!rng_seeded) {
        if (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            rng_state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)&ts;
        }
        rng_seeded = 1;
    }
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* An RFC 9562 version 4 UUID, lowercase: 36 characters and a NUL. */
static void uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    uint64_t hi = rng_next(), lo = rng_next();
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(hi >> (8 * i));
        b[8 + i] = (unsigned char)(lo >> (8 * i));
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

static int valid_request_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n == 64 || s[n] < 0x20 || s[n] > 0x7e || s[n] == '"' || s[n] == '\\')
            return 0;
    return n > 0;
}

/* ---- Lingering close ------------------------------------------------------------------------ */

/*
 * A refusal sent before the body is read (413 from Content-Length, or 404/405/415 on a request
 * with a body) ends with libmicrohttpd closing the socket while the client may still be sending
 * the body. Closing a TCP socket with unread data makes the kernel answer with a reset, and a
 * reset can destroy the refusal in the client's receive buffer before the client reads it. So,
 * as nginx's lingering_close does, such a socket is kept open a little longer through a dup'd
 * descriptor: when the reply has been sent, our descriptor shuts down the sending side (the
 * client sees the end of the reply) and a thread reads and discards what still arrives, until
 * the client closes or LINGER_SECONDS pass. libmicrohttpd removes its descriptor from its epoll
 * sets before closing it, so the dup does not keep its events alive.
 *
 * Workers hand descriptors over through a non-blocking pipe (no lock); when the pipe or the table
 * is full the descriptor is simply closed.
 */
struct linger_pool {
    pthread_t thread;
    int started;
    int epoll_fd;
    int pipe_fd[2]; /* workers write descriptors (ints) to [1] */
    int stop_fd;    /* eventfd */
    int n;
    int fds[LINGER_MAX_FDS];
    double deadline[LINGER_MAX_FDS];
    char sink[65536]; /* what is read goes here, unread */
};

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void linger_drop(struct linger_pool *l, int i)
{
    close(l->fds[i]); /* also removes it from the epoll set: no other descriptor remains */
    l->n--;
    l->fds[i] = l->fds[l->n];
    l->deadline[i] = l->deadline[l->n];
}

static void linger_adopt(struct linger_pool *l)
{
    int fds[64];
    ssize_t got;
    while ((got = read(l->pipe_fd[0], fds, sizeof fds)) > 0) {
        for (size_t i = 0; i < (size_t)got / sizeof fds[0]; i++) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fds[i]};
            if (l->n == LINGER_MAX_FDS || epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, fds[i], &ev)) {
                close(fds[i]);
                continue;
            }
            l->fds[l->n] = fds[i];
            l->deadline[l->n++] = monotonic_s() + LINGER_SECONDS;
        }
    }
}

static void *linger_main(void *arg)
{
    struct linger_pool *l = arg;
    struct epoll_event events[64];
    for (;;) {
        int n = epoll_wait(l->epoll_fd, events, 64, 250);
        for (int e = 0; e < n; e++) {
            int fd = events[e].data.fd;
            if (fd == l->stop_fd)
                return NULL;
            if (fd == l->pipe_fd[0]) {
                linger_adopt(l);
                continue;
            }
            ssize_t got;
            while ((got = recv(fd, l->sink, sizeof l->sink, 0)) > 0)
                ;
            if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                for (int i = 0; i < l->n; i++)
                    if (l->fds[i] == fd) {
                        linger_drop(l, i);
                        break;
                    }
        }
        double now = monotonic_s();
        for (int i = 0; i < l->n;)
            if (l->deadline[i] <= now)
                linger_drop(l, i);
            else
                i++;
    }
}

static void linger_free(struct linger_pool *l)
{
    if (!l)
        return;
    if (l->started) {
        uint64_t one = 1;
        ssize_t w = write(l->stop_fd, &one, sizeof one);
        (void)w;
        pthread_join(l->thread, NULL);
    }
    linger_adopt(l); /* descriptors still in the pipe */
    while (l->n)
        linger_drop(l, 0);
    close(l->pipe_fd[0]);
    close(l->pipe_fd[1]);
    close(l->stop_fd);
    close(l->epoll_fd);
    free(l);
}

static struct linger_pool *linger_new(void)
{
    struct linger_pool *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->pipe_fd[0] = l->pipe_fd[1] = -1;
    l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    l->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->epoll_fd < 0 || l->stop_fd < 0 || pipe2(l->pipe_fd, O_CLOEXEC | O_NONBLOCK))
        goto fail;
    struct epoll_event stop = {.events = EPOLLIN, .data.fd = l->stop_fd};
    struct epoll_event in = {.events = EPOLLIN, .data.fd = l->pipe_fd[0]};
    if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->stop_fd, &stop) ||
        epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->pipe_fd[0], &in))
        goto fail;
    if (pthread_create(&l->thread, NULL, linger_main, l))
        goto fail;
    l->started = 1;
    return l;
fail:
    linger_free(l);
    return NULL;
}

/* Hands a dup'd descriptor over once its reply is sent (or closes it when not possible). */
static void linger_give(struct linger_pool *l, int fd, int reply_sent)
{
    if (reply_sent && l) {
        shutdown(fd, SHUT_WR);
        if (write(l->pipe_fd[1], &fd, sizeof fd) == (ssize_t)sizeof fd)
            return;
    }
    close(fd);
}

/* ---- Connections and requests ---------------------------------------------------------------- */

struct conn {
    struct vg_server *srv;
    struct vg_req req;
    int active;   /* a request has started and not completed */
    int answered; /* a reply was attempted: the handler must not run */
    int replied;  /* ... and queued */
    int status;
    size_t bytes_out;
    int method;
    struct pattern *pattern;
    const struct vg_route *route;
    const char *allow; /* for a 405 */
    struct timespec t0, wall0;
    size_t body_max; /* this request's body cap: max_body_bytes, more for image models */
    int pending;   /* an error reply is prepared (see refuse) */
    int linger_fd; /* dup of the socket after an early refusal, else -1 */
    char *body;
    size_t body_len, body_cap;
    char *scratch; /* path parameters, NUL-terminated */
    size_t scratch_cap;
    struct vg_jw line; /* access log line */
};

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)mc;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn *c = calloc(1, sizeof *c);
        if (c) {
            c->srv = cls;
            c->linger_fd = -1;
            vg_jw_init(&c->line, ACCESS_LINE_MAX);
        }
        *socket_context = c;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct conn *c = *socket_context;
        if (c) {
            if (c->linger_fd >= 0)
                close(c->linger_fd);
            free(c->body);
            free(c->scratch);
            vg_jw_release(&c->line);
            free(c);
        }
        *socket_context = NULL;
    }
}

static size_t no_unescape(void *cls, struct MHD_Connection *mc, char *s)
{
    (void)cls;
    (void)mc;
    return strlen(s);
}

static int body_reserve(struct conn *c, size_t need)
{
    if (need <= c->body_cap)
        return 0;
    size_t cap = c->body_cap ? c->body_cap : 4096;
    while (cap < need)
        cap *= 2;
    char *p = realloc(c->body, cap);
    if (!p)
        return -1;
    c->body = p;
    c->body_cap = cap;
    return 0;
}

static void send_reply(struct conn *c, struct MHD_Connection *mc)
{
    struct vg_req *r = &c->req;
    struct vg_server *s = c->srv;
    c->answered = 1;
    if (!r->status)
        vg_reply_error(r, 500, "the handler produced no reply");
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(r->resp_len, r->resp_body, free);
    if (!resp) {
        free(r->resp_body);
        r->resp_body = NULL;
        vg_log("error", "cannot create a response: out of memory");
        return; /* the connection is closed without a reply */
    }
    r->resp_body = NULL; /* the response owns it */
    int ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                     r->resp_type ? r->resp_type : "application/json") &&
             MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    if (ok && r->status == 405 && c->allow)
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, c->allow);
    if (ok && atomic_load_explicit(&s->closing, memory_order_relaxed))
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (ok && MHD_queue_response(mc, (unsigned)r->status, resp) == MHD_YES) {
        c->replied = 1;
        c->status = r->status;
        c->bytes_out = r->resp_len;
    } else {
        vg_log("error", "%s %s %d %s: cannot queue the response", r->method, r->path, r->status,
               r->request_id);
    }
    MHD_destroy_response(resp);
}

/* Prediction routes: JSON, or an image for image models (the handler refuses an image sent to
 * a tabular model). */
static int is_predict_type(const char *ct)
{
    return vg_media_type_is(ct, "application/json") || vg_media_type_is(ct, "image/jpeg") ||
           vg_media_type_is(ct, "image/png") || vg_media_type_is(ct, "multipart/form-data");
}

/* The body cap of a prediction request: larger when the model it names is an image model. */
static size_t predict_body_max(const struct vg_server *s, const struct vg_req *r)
{
    size_t max = s->cfg->max_body_bytes;
    const char *name = r->n_params > 0 ? r->params[0] : s->store->default_model;
    const struct vg_store_entry *e = name ? vg_store_find(s->store, name) : NULL;
    if (e && e->loaded && e->served->image && s->cfg->image_max_body_bytes > max)
        max = s->cfg->image_max_body_bytes;
    return max;
}

/* A refusal (404, 405, 415, 413...) decided on the headers: sent at once when a body follows,
 * so none of it is read (libmicrohttpd then closes the connection); kept for the final call
 * when there is no body, so the connection stays open for the next request. */
static void refuse(struct conn *c)
{
    c->pending = 1;
}

/*
 * Counts a new request in flight unless vg_server_stop has begun. Both sides use sequentially
 * consistent operations in opposite order (count then check here; flag then check the count in
 * vg_server_stop), so either the stopping thread sees this request and waits for it, or this
 * request sees the flag and is closed before anything of it is handled: a request that was
 * handled always gets its reply before the daemon stops.
 */
static int admit(struct vg_server *s)
{
    atomic_fetch_add(&s->in_flight, 1);
    if (!atomic_load(&s->stopped))
        return 1;
    atomic_fetch_sub(&s->in_flight, 1);
    return 0;
}

/* First call of a request: start it, route it, and decide what can be refused now. */
static void begin_request(struct conn *c, struct MHD_Connection *mc, const char *url,
                          const char *method)
{
    struct vg_server *s = c->srv;
    struct vg_req *r = &c->req;
    clock_gettime(CLOCK_MONOTONIC, &c->t0);
    if (s->access_fd >= 0)
        clock_gettime(CLOCK_REALTIME, &c->wall0);
    if (s->g_in_flight)
        vg_gauge_inc(s->g_in_flight);
    c->active = 1;
    c->pending = 0;
    c->answered = 0;
    c->replied = 0;
    c->status = 0;
    c->bytes_out = 0;
    c->body_len = 0;
    c->allow = NULL;

    memset(r, 0, sizeof *r);
    r->method = method;
    r->path = url;
    r->body = "";
    r->srv = s;
    r->store = s->store;
    r->registry = s->registry;
    r->conn = mc;
    c->body_max = s->cfg->max_body_bytes;
    r->content_type = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Type");
    r->accept = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Accept");
    const char *rid = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && valid_request_id(rid))
        memcpy(r->request_id, rid, strlen(rid) + 1);
    else
        uuid4(r->request_id);

    c->method = method_index(method);
    const char *param[VG_ROUTE_MAX_PARAMS];
    size_t param_len[VG_ROUTE_MAX_PARAMS];
    struct pattern *found = NULL, *wrong_method = NULL;
    int n_params = 0;
    for (int k = 0; k < s->n_patterns && !found; k++) {
        struct pattern *p = &s->patterns[k];
        if (!pattern_match(p, url, param, param_len, &n_params))
            continue;
        if (p->route_for[c->method])
            found = p;
        else if (!wrong_method)
            wrong_method = p;
    }
    if (!found) {
        if (wrong_method) {
            c->pattern = wrong_method;
            c->allow = wrong_method->allow;
            r->route = wrong_method->text;
            vg_reply_error(r, 405, "method %s is not allowed on %s (allowed: %s)", method,
                           wrong_method->text, wrong_method->allow);
        } else {
            c->pattern = &s->patterns[s->n_patterns];
            vg_reply_error(r, 404, "no route for %s %s", method, url);
        }
        refuse(c);
        return;
    }
    c->pattern = found;
    c->route = found->route_for[c->method];
    r->route = found->text;

    /* Parameters: copies of the raw segments, NUL-terminated, in the connection's scratch. */
    size_t need = 0;
    for (int i = 0; i < n_params; i++)
        need += param_len[i] + 1;
    if (need > c->scratch_cap) {
        char *p = realloc(c->scratch, need);
        if (!p) {
            vg_reply_error(r, 500, "out of memory");
            refuse(c);
            return;
        }
        c->scratch = p;
        c->scratch_cap = need;
    }
    char *o = c->scratch;
    for (int i = 0; i < n_params; i++) {
        memcpy(o, param[i], param_len[i]);
        o[param_len[i]] = '\0';
        r->params[i] = o;
        o += param_len[i] + 1;
    }
    r->n_params = n_params;

    if (c->route->body == VG_BODY_JSON && r->content_type &&
        !vg_media_type_is(r->content_type, "application/json")) {
        vg_reply_error(r, 415, "Content-Type must be application/json, not '%s'", r->content_type);
        refuse(c);
        return;
    }
    if (c->route->body == VG_BODY_PREDICT) {
        if (r->content_type && !is_predict_type(r->content_type)) {
            vg_reply_error(r, 415,
                           "Content-Type must be application/json (or, for an image model, "
                           "image/jpeg, image/png or multipart/form-data), not '%s'",
                           r->content_type);
            refuse(c);
            return;
        }
        c->body_max = predict_body_max(s, r);
    }
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long len = strtoull(cl, &end, 10);
        if (errno || end == cl)
            return; /* libmicrohttpd has refused such a request already */
        if (len > c->body_max) {
            vg_reply_error(r, 413, "request body of %llu bytes is larger than the limit of %zu",
                           len, c->body_max);
            refuse(c);
        } else if (len && body_reserve(c, (size_t)len + 1)) {
            vg_reply_error(r, 500, "out of memory for a body of %llu bytes", len);
            refuse(c);
        }
    }
}

/* Whether the request announces a body (Content-Length > 0 or a Transfer-Encoding). */
static int has_body(struct MHD_Connection *mc)
{
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
    if (cl)
        return strspn(cl, "0") != strlen(cl);
    return MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Transfer-Encoding") != NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct conn *c = *con_cls;
    if (!c) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        c = ci ? ci->socket_context : NULL;
        if (!c)
            return MHD_NO; /* no memory for this connection */
        *con_cls = c;
        if (!admit(c->srv))
            return MHD_NO;
        begin_request(c, mc, url, method);
        if (c->pending && has_body(mc)) {
            send_reply(c, mc);
            const union MHD_ConnectionInfo *fi =
                MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
            if (c->replied && fi && c->srv->linger)
                c->linger_fd = fcntl(fi->connect_fd, F_DUPFD_CLOEXEC, 0);
        }
        return MHD_YES;
    }
    struct vg_req *r = &c->req;
    size_t max = c->body_max;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (c->answered)
            return c->replied ? MHD_YES : MHD_NO;
        if (c->pending) /* a body without Content-Length or Transfer-Encoding: not HTTP/1.1 */
            return MHD_NO;
        if (n > max - c->body_len) {
            /* A reply cannot be queued while upload data is being delivered: close. */
            c->status = 413;
            vg_log("warn",
                   "%s %s 413 %s: request body larger than the limit of %zu bytes; "
                   "connection closed",
                   r->method, r->path, r->request_id, max);
            return MHD_NO;
        }
        if (body_reserve(c, c->body_len + n + 1)) {
            c->status = 500;
            vg_log("error", "%s %s 500 %s: out of memory for the request body", r->method, r->path,
                   r->request_id);
            return MHD_NO;
        }
        memcpy(c->body + c->body_len, upload_data, n);
        c->body_len += n;
        return MHD_YES;
    }
    if (c->answered)
        return c->replied ? MHD_YES : MHD_NO;
    if (!c->pending) {
        if (c->body_len) {
            c->body[c->body_len] = '\0';
            r->body = c->body;
            r->body_len = c->body_len;
        }
        c->route->handler(r);
    }
    send_reply(c, mc);
    return MHD_YES;
}

static void access_log(struct vg_server *s, struct conn *c, double seconds)
{
    struct vg_req *r = &c->req;
    struct vg_jw *b = &c->line;
    char time_text[TIME_TEXT_MAX];
    format_time(time_text, &c->wall0);
    vg_jw_reset(b);
    vg_jw_lit(b, "{\"time\":\"");
    vg_jw_mem(b, time_text, strlen(time_text));
    vg_jw_lit(b, "\",\"method\":");
    vg_jw_str(b, r->method);
    vg_jw_lit(b, ",\"route\":");
    vg_jw_str(b, c->pattern ? c->pattern->text : "unmatched");
    vg_jw_lit(b, ",\"path\":");
    vg_jw_str(b, r->path);
    vg_jw_printf(b, ",\"status\":%d,\"duration_ms\":%.3f,\"bytes_in\":%zu,\"bytes_out\":%zu",
                 c->status, seconds * 1e3, c->body_len, c->bytes_out);
    vg_jw_lit(b, ",\"model\":");
    if (r->log_model)
        vg_jw_str(b, r->log_model);
    else
        vg_jw_lit(b, "null");
    vg_jw_lit(b, ",\"version\":");
    if (r->log_version)
        vg_jw_str(b, r->log_version);
    else
        vg_jw_lit(b, "null");
    vg_jw_lit(b, ",\"request_id\":");
    vg_jw_str(b, r->request_id);
    vg_jw_lit(b, "}\n");
    if (!b->failed) {
        /* O_APPEND: each line lands whole, whichever thread writes it. */
        ssize_t w = write(s->access_fd, b->data, b->len);
        (void)w;
    }
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)mc;
    struct vg_server *s = cls;
    struct conn *c = *con_cls;
    *con_cls = NULL;
    if (!c || !c->active)
        return;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds =
        (double)(t1.tv_sec - c->t0.tv_sec) + (double)(t1.tv_nsec - c->t0.tv_nsec) * 1e-9;

    /* Counted: requests answered, and bodies refused mid-upload (status set, no reply). */
    if (c->status && c->pattern) {
        struct pattern *p = c->pattern;
        struct route_metrics *rm = &p->metrics[c->method];
        struct vg_counter *cnt = code_counter(s, p, c->method, c->status);
        if (cnt)
            vg_counter_inc(cnt);
        struct vg_histogram *h;
        if ((h = histogram_handle(s->f_duration, &rm->duration, p, c->method)))
            vg_histogram_observe(h, seconds);
        if ((h = histogram_handle(s->f_request_size, &rm->request_size, p, c->method)))
            vg_histogram_observe(h, (double)c->body_len);
        if ((h = histogram_handle(s->f_response_size, &rm->response_size, p, c->method)))
            vg_histogram_observe(h, (double)c->bytes_out);
    }
    if (c->replied && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        vg_log("warn", "%s %s %d %s: the response was not fully delivered (%s)", c->req.method,
               c->req.path, c->status, c->req.request_id,
               toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? "client closed the connection"
               : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "server shutting down"
                                                                 : "connection error");
    if (s->access_fd >= 0)
        access_log(s, c, seconds);

    if (c->linger_fd >= 0) {
        linger_give(s->linger, c->linger_fd, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
        c->linger_fd = -1;
    }
    free(c->req.resp_body); /* only set when queueing failed */
    c->req.resp_body = NULL;
    c->active = 0;
    if (c->body_cap > KEEP_BODY_BYTES) {
        free(c->body);
        c->body = NULL;
        c->body_cap = 0;
    }
    c->body_len = 0;
    if (s->g_in_flight)
        vg_gauge_dec(s->g_in_flight);
    atomic_fetch_sub_explicit(&s->in_flight, 1, memory_order_release);
}

/* ---- Replies --------------------------------------------------------------------------------- */

void vg_reply_raw(struct vg_req *r, int status, const char *content_type, char *body, size_t len)
{
    free(r->resp_body);
    r->status = status;
    r->resp_body = body;
    r->resp_len = body ? len : 0;
    r->resp_type = content_type;
}

void vg_reply_json(struct vg_req *r, int status, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text) {
        vg_reply_error(r, 500, "out of memory while writing the response");
        return;
    }
    vg_reply_raw(r, status, "application/json", text, strlen(text));
}

void vg_reply_error(struct vg_req *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vg_log(status >= 500 ? "error" : "warn", "%s %s %d %s: %s", r->method ? r->method : "-",
           r->path ? r->path : "-", status, r->request_id, msg);
    struct vg_jw b;
    vg_jw_init(&b, ERROR_BODY_MAX);
    vg_jw_lit(&b, "{\"error\":");
    vg_jw_str(&b, msg);
    vg_jw_char(&b, '}');
    size_t len;
    char *body = vg_jw_take(&b, &len); /* NULL when memory ran out: an empty body then */
    vg_reply_raw(r, status, "application/json", body, len);
}

/* ---- The daemon ------------------------------------------------------------------------------ */

static int fail(struct vg_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct vg_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return -code;
}

static int open_listener(struct vg_server *s, struct vg_error *err)
{
    const struct vg_server_config *cfg = s->cfg;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *list = NULL;
    int gai = getaddrinfo(cfg->host, port, &hints, &list);
    if (gai)
        return fail(err, VG_EINVAL, "cannot resolve host '%s': %s", cfg->host, gai_strerror(gai));
    int fd = -1, saved = 0;
    for (struct addrinfo *a = list; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        int backlog = cfg->max_connections < 128 ? 128 : (int)cfg->max_connections;
        if (!bind(fd, a->ai_addr, a->ai_addrlen) && !listen(fd, backlog))
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(list);
    if (fd < 0)
        return fail(err, VG_EIO, "cannot listen on %s port %d: %s", cfg->host, cfg->port,
                    strerror(saved));
    s->listen_fd = fd;

    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[INET6_ADDRSTRLEN] = "?";
    int bound_port = cfg->port;
    if (!getsockname(fd, (struct sockaddr *)&ss, &sl)) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, addr, sizeof addr);
            bound_port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof addr);
            bound_port = ntohs(in6->sin6_port);
        }
    }
    snprintf(s->url, sizeof s->url, ss.ss_family == AF_INET6 ? "http://[%s]:%d" : "http://%s:%d",
             addr, bound_port);
    return 0;
}

static int open_access_log(struct vg_server *s, struct vg_error *err)
{
    const char *path = s->cfg->access_log;
    s->access_fd = -1;
    if (!path)
        return 0;
    if (!strcmp(path, "-")) {
        s->access_fd = STDOUT_FILENO;
        return 0;
    }
    s->access_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (s->access_fd < 0)
        return fail(err, VG_EIO, "cannot open access log '%s': %s", path, strerror(errno));
    s->access_owned = 1;
    return 0;
}

static void server_free(struct vg_server *s)
{
    vg_feedback_detach(s->store); /* no worker runs any more, or none was started */
    linger_free(s->linger);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->access_owned)
        close(s->access_fd);
    free(s->patterns);
    free(s);
}

int vg_server_start(struct vg_server **out, const struct vg_server_config *cfg,
                    struct vg_store *store, struct vg_registry *reg, struct vg_error *err)
{
    *out = NULL;
    struct vg_server *s = calloc(1, sizeof *s);
    if (!s)
        return fail(err, VG_ENOMEM, "out of memory");
    s->cfg = cfg;
    s->store = store;
    s->registry = reg;
    store->cfg = cfg;
    s->listen_fd = -1;
    s->access_fd = -1;
    int rc = build_patterns(s, err);
    if (!rc && vg_fetch_global_init())
        rc = fail(err, VG_EIO, "cannot initialise libcurl (image_url)");
    if (!rc)
        rc = register_metrics(s, err);
    if (!rc)
        rc = vg_feedback_attach(store, cfg, reg, err);
    if (!rc)
        rc = open_access_log(s, err);
    if (!rc)
        rc = open_listener(s, err);
    if (rc)
        goto fail;
    s->linger = linger_new(); /* without it, early refusals are sent without lingering */
    if (!s->linger)
        vg_log("warn", "cannot start the lingering-close thread: %s", strerror(errno));

    unsigned flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_TURBO | MHD_USE_ERROR_LOG;
    /* A pool of one is just the internal thread. */
    unsigned pool = cfg->threads > 1 ? (unsigned)cfg->threads : 0;
    unsigned limit = cfg->max_connections;
    if (pool && limit < pool)
        limit = pool; /* each worker needs a share of at least one */
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, pool,
        MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        s, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL, MHD_OPTION_END);
    if (!s->daemon) {
        rc = fail(err, VG_EIO, "cannot start the HTTP daemon on %s", s->url);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    server_free(s);
    return rc;
}

const char *vg_server_url(const struct vg_server *s)
{
    return s->url;
}

void vg_server_quiesce(struct vg_server *s)
{
    atomic_store(&s->closing, 1);
    if (s->quiesced)
        return;
    s->quiesced = 1;
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) {
        /* Keep the descriptor open until MHD_stop_daemon (a worker may still hold it) but stop
         * listening now, so new connections are refused instead of queued in the backlog. */
        shutdown(fd, SHUT_RDWR);
    } else {
        s->quiesced = 0; /* libmicrohttpd still owns the socket */
    }
}

long vg_server_in_flight(const struct vg_server *s)
{
    return atomic_load_explicit(&s->in_flight, memory_order_acquire);
}

void vg_server_stop(struct vg_server *s)
{
    if (!s)
        return;
    atomic_store(&s->closing, 1);
    atomic_store(&s->stopped, 1);
    /* Requests admitted before the flag (the caller drained the others, or gave up on them)
     * finish and send their replies; cap the wait for a caller that did not drain. */
    for (int i = 0; i < 1000 && atomic_load(&s->in_flight) > 0; i++)
        nanosleep(&(struct timespec){0, 1000000L}, NULL);
    MHD_stop_daemon(s->daemon);
    if (!s->quiesced)
        s->listen_fd = -1; /* closed by libmicrohttpd */
    server_free(s);
}
