/*
 * Keeps a server busy with keep-alive POST requests and checks every answer, for the graceful
 * shutdown test (tests/server/test_server.sh):
 *
 *   http_hammer IPV4 PORT PATH BODY_FILE EXPECT CONNECTIONS SECONDS READY_FILE
 *
 * CONNECTIONS threads each hold one HTTP/1.1 keep-alive connection and send POST PATH with the
 * JSON body read from BODY_FILE, one request at a time, for SECONDS or until the server stops
 * listening. READY_FILE is created once 100 requests have been answered with 200 (so the test
 * knows the load is on before it sends SIGTERM).
 *
 * Each request carries its own X-Request-Id, "hammer-TTT-NNNNNNNN" (thread, sequence number).
 * Every request is classified:
 *   ok                 complete response, status 200, body contains EXPECT
 *   other status       complete response with another status (counted by status)
 *   invalid            complete 200 response whose body lacks EXPECT             (failure)
 *   truncated          the response started but the connection ended before it was complete
 *                      (status line, headers or Content-Length bytes missing)     (failure)
 *   timeout            no complete response within 20 s                        (failure)
 *   closed_unanswered  the whole request was written, then the connection ended before a single
 *                      byte of response: the server closed it without reading the request
 *                      (test_server.sh checks with the access log that it was not served; each
 *                      such request's id is printed on stderr as "unanswered ID")
 *   send_failed        the connection ended while the request was being written
 * A connection refused when (re)connecting means the server stopped listening: that thread stops.
 * Any other connect error is a failure.
 *
 * Prints one JSON line on stdout:
 *   {"connections":..,"sent":..,"ok":..,"statuses":{"200":..,...},"invalid":..,"truncated":..,
 *    "timeouts":..,"closed_unanswered":..,"send_failed":..,"connect_refused":..,
 *    "connect_errors":..,"connects":..}
 * ("sent" counts requests written completely.) Exit status: 0 when no failure was seen and at
 * least one request got ok, 1 otherwise, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http_tool.h"

#define MAX_STATUS 600
#define MAX_RESPONSE (1 << 20)
#define READY_AFTER_OK 100

struct hammer {
    struct sockaddr_in addr;
    const char *path;
    const char *expect;
    char *request; /* the full request bytes, built once; each worker copies it */
    size_t request_len;
    size_t id_offset; /* where the request id's "TTT-NNNNNNNN" sits in request */
    double deadline;
    const char *ready_file;
    atomic_long ok_total;
    atomic_int ready_written;
};

struct worker_stats {
    long sent, ok, invalid, truncated, timeouts, closed_unanswered, send_failed;
    long connect_refused, connect_errors, connects;
    long statuses[MAX_STATUS];
};

struct worker {
    pthread_t thread;
    int index;
    struct hammer *h;
    struct worker_stats st;
};

enum outcome { OUT_DONE, OUT_DONE_CLOSE, OUT_UNANSWERED, OUT_TRUNCATED, OUT_TIMEOUT };

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *data = NULL;
    if (!fp)
        return NULL;
    if (fseek(fp, 0, SEEK_END) != 0)
        goto out;
    long size = ftell(fp);
    if (size < 0 || size > MAX_RESPONSE || fseek(fp, 0, SEEK_SET) != 0)
        goto out;
    data = malloc((size_t)size + 1);
    if (data && fread(data, 1, (size_t)size, fp) != (size_t)size) {
        free(data);
        data = NULL;
        goto out;
    }
    if (data) {
        data[size] = 0;
        *len = (size_t)size;
    }
out:
    fclose(fp);
    return data;
}

/* A connected socket; -1 when refused (the server stopped listening), -2 on other errors. */
static int open_connection(const struct hammer *h)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -2;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (const struct sockaddr *)&h->addr, sizeof h->addr) < 0) {
        int e = errno;
        close(fd);
        return e == ECONNREFUSED ? -1 : -2;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Case-insensitive search for header `name` in the header block; returns its value or NULL. */
static const char *find_header(const char *headers, const char *name, size_t *value_len)
{
    size_t name_len = strlen(name);
    const char *line = strstr(headers, "\r\n");
    while (line && line[2] != '\r') {
        line += 2;
        const char *eol = strstr(line, "\r\n");
        if (!eol)
            return NULL;
        if ((size_t)(eol - line) > name_len && strncasecmp(line, name, name_len) == 0 &&
            line[name_len] == ':') {
            const char *v = line + name_len + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            *value_len = (size_t)(eol - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

/*
 * Decodes a chunked body from buf[start..len) once it is complete: returns 1 (body moved to
 * buf[start..], *body_len set), 0 when more bytes are needed (buf untouched), -1 when malformed.
 * No trailers are expected.
 */
static int dechunk(char *buf, size_t start, size_t len, size_t *body_len)
{
    for (int pass = 0; pass < 2; pass++) {
        size_t in = start, out = start;
        for (;;) {
            char *eol = memmem(buf + in, len - in, "\r\n", 2);
            if (!eol)
                return 0;
            char *end;
            unsigned long size = strtoul(buf + in, &end, 16);
            if (end == buf + in)
                return -1;
            size_t data = (size_t)(eol - buf) + 2;
            if (size == 0) {
                if (len - data < 2)
                    return 0;
                *body_len = out - start;
                break;
            }
            if (len - data < size + 2)
                return 0;
            if (pass == 1)
                memmove(buf + out, buf + data, size);
            out += size;
            in = data + size + 2;
        }
    }
    return 1;
}

/*
 * Reads one response. On OUT_DONE / OUT_DONE_CLOSE, *status is set and `buf` holds the body.
 * The connection must be closed after OUT_DONE_CLOSE (the server said so, or the body ran to EOF).
 */
static enum outcome read_response(int fd, char *buf, size_t cap, int *status, size_t *body_len,
                                  size_t *body_off)
{
    size_t len = 0;
    size_t header_end = 0;
    long content_length = -1;
    int chunked = 0, close_after = 0;
    for (;;) {
        if (header_end) {
            if (chunked) {
                int rc = dechunk(buf, header_end, len, body_len);
                if (rc < 0)
                    return OUT_TRUNCATED;
                if (rc > 0) {
                    *body_off = header_end;
                    return close_after ? OUT_DONE_CLOSE : OUT_DONE;
                }
            } else if (content_length >= 0 && len - header_end >= (size_t)content_length) {
                *body_off = header_end;
                *body_len = (size_t)content_length;
                return close_after ? OUT_DONE_CLOSE : OUT_DONE;
            }
        }
        if (len + 1 >= cap)
            return OUT_TRUNCATED;
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return OUT_TIMEOUT;
        if (r <= 0) {
            if (len == 0)
                return OUT_UNANSWERED;
            if (header_end && !chunked && content_length < 0) {
                /* body delimited by the end of the connection */
                *body_off = header_end;
                *body_len = len - header_end;
                return OUT_DONE_CLOSE;
            }
            return OUT_TRUNCATED;
        }
        len += (size_t)r;
        buf[len] = 0;
        if (!header_end) {
            char *e = strstr(buf, "\r\n\r\n");
            if (!e)
                continue;
            header_end = (size_t)(e - buf) + 4;
            int major, minor;
            if (sscanf(buf, "HTTP/%d.%d %d", &major, &minor, status) != 3 || *status < 100 ||
                *status >= MAX_STATUS)
                return OUT_TRUNCATED;
            char saved = buf[header_end];
            buf[header_end] = 0;
            size_t vlen;
            const char *v = find_header(buf, "Content-Length", &vlen);
            if (v)
                content_length = strtol(v, NULL, 10);
            v = find_header(buf, "Transfer-Encoding", &vlen);
            if (v && vlen >= 7 && strncasecmp(v, "chunked", 7) == 0)
                chunked = 1;
            v = find_header(buf, "Connection", &vlen);
            if (v && vlen >= 5 && strncasecmp(v, "close", 5) == 0)
                close_after = 1;
            if (minor == 0 && major == 1)
                close_after = 1;
            buf[header_end] = saved;
        }
    }
}

static void note_ok(struct hammer *h)
{
    long total = atomic_fetch_add(&h->ok_total, 1) + 1;
    if (total >= READY_AFTER_OK && !atomic_exchange(&h->ready_written, 1)) {
        FILE *fp = fopen(h->ready_file, "w");
        if (fp) {
            fprintf(fp, "%ld\n", total);
            fclose(fp);
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct hammer *h = w->h;
    struct worker_stats *st = &w->st;
    char *buf = malloc(MAX_RESPONSE);
    char *request = malloc(h->request_len);
    int fd = -1;
    long seq = 0;
    if (!buf || !request) {
        st->connect_errors++;
        goto out;
    }
    memcpy(request, h->request, h->request_len);
    while (now_seconds() < h->deadline) {
        if (fd < 0) {
            fd = open_connection(h);
            if (fd == -1) {
                st->connect_refused++;
                break;
            }
            if (fd < 0) {
                st->connect_errors++;
                break;
            }
            st->connects++;
        }
        char id[16];
        snprintf(id, sizeof id, "%03d-%08ld", w->index % 1000, seq++ % 100000000);
        memcpy(request + h->id_offset, id, 12);
        if (send_all(fd, request, h->request_len) < 0) {
            st->send_failed++;
            close(fd);
            fd = -1;
            continue;
        }
        st->sent++;
        int status = 0;
        size_t body_len = 0, body_off = 0;
        enum outcome o = read_response(fd, buf, MAX_RESPONSE, &status, &body_len, &body_off);
        switch (o) {
        case OUT_DONE:
        case OUT_DONE_CLOSE:
            st->statuses[status]++;
            if (status == 200) {
                buf[body_off + body_len] = 0;
                if (strstr(buf + body_off, h->expect)) {
                    st->ok++;
                    note_ok(h);
                } else {
                    st->invalid++;
                    fprintf(stderr, "http_hammer: 200 without '%s': %.300s\n", h->expect,
                            buf + body_off);
                }
            }
            break;
        case OUT_UNANSWERED:
            st->closed_unanswered++;
            fprintf(stderr, "unanswered hammer-%s\n", id);
            break;
        case OUT_TRUNCATED: st->truncated++; break;
        case OUT_TIMEOUT: st->timeouts++; break;
        }
        if (o != OUT_DONE) {
            close(fd);
            fd = -1;
        }
    }
out:
    if (fd >= 0)
        close(fd);
    free(request);
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    static struct hammer h;
    long port, n, seconds;
    h.addr.sin_family = AF_INET;
    if (argc != 9 || inet_pton(AF_INET, argv[1], &h.addr.sin_addr) != 1 ||
        parse_count(argv[2], 1, 65535, &port) || parse_count(argv[6], 1, 1000, &n) ||
        parse_count(argv[7], 1, 3600, &seconds)) {
        fprintf(stderr, "usage: http_hammer IPV4 PORT PATH BODY_FILE EXPECT CONNECTIONS SECONDS "
                        "READY_FILE\n");
        return 2;
    }
    h.addr.sin_port = htons((unsigned short)port);
    h.path = argv[3];
    h.expect = argv[5];
    h.ready_file = argv[8];
    int rc = 1;
    struct worker *workers = NULL;
    size_t body_len = 0;
    char *body = read_file(argv[4], &body_len);
    if (!body) {
        fprintf(stderr, "http_hammer: cannot read %s\n", argv[4]);
        return 2;
    }
    size_t cap = body_len + strlen(h.path) + 256;
    h.request = malloc(cap);
    if (!h.request)
        goto out;
    int head = snprintf(h.request, cap,
                        "POST %s HTTP/1.1\r\nHost: %s:%ld\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nX-Request-Id: hammer-000-00000000\r\n\r\n",
                        h.path, argv[1], port, body_len);
    h.id_offset = (size_t)head - strlen("000-00000000\r\n\r\n");
    memcpy(h.request + head, body, body_len);
    h.request_len = (size_t)head + body_len;
    h.deadline = now_seconds() + (double)seconds;

    workers = calloc((size_t)n, sizeof *workers);
    if (!workers)
        goto out;
    long started = 0;
    for (; started < n; started++) {
        workers[started].h = &h;
        workers[started].index = (int)started;
        if (pthread_create(&workers[started].thread, NULL, worker_main, &workers[started]) != 0)
            break;
    }
    struct worker_stats total = {0};
    for (long i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        const struct worker_stats *s = &workers[i].st;
        total.sent += s->sent;
        total.ok += s->ok;
        total.invalid += s->invalid;
        total.truncated += s->truncated;
        total.timeouts += s->timeouts;
        total.closed_unanswered += s->closed_unanswered;
        total.send_failed += s->send_failed;
        total.connect_refused += s->connect_refused;
        total.connect_errors += s->connect_errors;
        total.connects += s->connects;
        for (int k = 0; k < MAX_STATUS; k++)
            total.statuses[k] += s->statuses[k];
    }
    printf("{\"connections\":%ld,\"sent\":%ld,\"ok\":%ld,\"statuses\":{", started, total.sent,
           total.ok);
    const char *sep = "";
    for (int k = 0; k < MAX_STATUS; k++) {
        if (total.statuses[k]) {
            printf("%s\"%d\":%ld", sep, k, total.statuses[k]);
            sep = ",";
        }
    }
    printf("},\"invalid\":%ld,\"truncated\":%ld,\"timeouts\":%ld,\"closed_unanswered\":%ld,"
           "\"send_failed\":%ld,\"connect_refused\":%ld,\"connect_errors\":%ld,\"connects\":%ld}\n",
           total.invalid, total.truncated, total.timeouts, total.closed_unanswered,
           total.send_failed, total.connect_refused, total.connect_errors, total.connects);
    long failures = total.invalid + total.truncated + total.timeouts + total.connect_errors;
    rc = failures == 0 && total.ok > 0 && started == n ? 0 : 1;
out:
    free(workers);
    free(h.request);
    free(body);
    return rc;
}
