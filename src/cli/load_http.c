/*
 * The HTTP/1.1 client side of `vigil load`: URL parsing, a response parser and one blocking GET.
 *
 * Subset of RFC 9112 implemented, for responses to our own requests (never pipelined):
 * - status line "HTTP/1.x NNN reason"; 1xx interim responses are not expected (we never send
 *   Expect) and are refused as malformed;
 * - header fields read: Content-Length, Transfer-Encoding (chunked as the last coding),
 *   Connection (close / keep-alive), X-Request-Id; the header block is capped at 64 KiB;
 * - body: none for 204 and 304; else Content-Length, chunked (chunk extensions ignored,
 *   trailer fields skipped; decoded in place) or, without either, up to the end of the
 *   connection.
 * Plain http:// only: TLS would cost more CPU per request than the server under test spends.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/load.h"

#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_GET_BYTES (16 * 1024 * 1024)

int vg_url_parse(const char *text, struct vg_url *u, char *msg, size_t msg_cap)
{
    memset(u, 0, sizeof *u);
    if (!strncasecmp(text, "https://", 8)) {
        snprintf(msg, msg_cap, "'%s': https is not supported (plain http:// only)", text);
        return -1;
    }
    if (strncasecmp(text, "http://", 7)) {
        snprintf(msg, msg_cap, "'%s' is not an http:// URL (e.g. http://127.0.0.1:8000)", text);
        return -1;
    }
    const char *auth = text + 7;
    size_t auth_len = strcspn(auth, "/?#");
    const char *path = auth + auth_len;
    if (auth_len == 0 || auth_len >= sizeof u->authority) {
        snprintf(msg, msg_cap, "'%s': no host, or a host name too long", text);
        return -1;
    }
    if (memchr(auth, '@', auth_len)) {
        snprintf(msg, msg_cap, "'%s': user names in the URL are not supported", text);
        return -1;
    }
    memcpy(u->authority, auth, auth_len);
    const char *host = auth, *port = NULL;
    size_t host_len;
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', auth_len);
        if (!close) {
            snprintf(msg, msg_cap, "'%s': unterminated [IPv6 address]", text);
            return -1;
        }
        host = auth + 1;
        host_len = (size_t)(close - host);
        if (close + 1 < auth + auth_len) {
            if (close[1] != ':') {
                snprintf(msg, msg_cap, "'%s': unexpected text after ]", text);
                return -1;
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(auth, ':', auth_len);
        host_len = colon ? (size_t)(colon - auth) : auth_len;
        port = colon ? colon + 1 : NULL;
    }
    if (host_len == 0 || host_len >= sizeof u->host) {
        snprintf(msg, msg_cap, "'%s': no host", text);
        return -1;
    }
    memcpy(u->host, host, host_len);
    if (port) {
        size_t port_len = (size_t)(auth + auth_len - port);
        long v = 0;
        for (size_t i = 0; i < port_len; i++) {
            if (port[i] < '0' || port[i] > '9' || (v = v * 10 + (port[i] - '0')) > 65535) {
                v = -1;
                break;
            }
        }
        if (port_len == 0 || v < 1) {
            snprintf(msg, msg_cap, "'%s': the port must be a number in [1, 65535]", text);
            return -1;
        }
        snprintf(u->port, sizeof u->port, "%ld", v);
    } else {
        strcpy(u->port, "80");
    }
    if (strpbrk(path, "?#")) {
        snprintf(msg, msg_cap, "'%s': the URL must not have a query or fragment", text);
        return -1;
    }
    size_t path_len = strlen(path);
    while (path_len > 0 && path[path_len - 1] == '/')
        path_len--;
    if (path_len >= sizeof u->base) {
        snprintf(msg, msg_cap, "'%s': path too long", text);
        return -1;
    }
    memcpy(u->base, path, path_len);
    for (size_t i = 0; i < path_len; i++)
        if ((unsigned char)path[i] <= ' ' || path[i] == 0x7f) {
            snprintf(msg, msg_cap, "'%s': spaces or control characters in the path", text);
            return -1;
        }
    return 0;
}

int vg_url_resolve(const struct vg_url *u, struct sockaddr_storage *addr, socklen_t *addr_len,
                   char *msg, size_t msg_cap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc || !res) {
        snprintf(msg, msg_cap, "cannot resolve '%s': %s", u->host,
                 rc ? gai_strerror(rc) : "no address");
        return -1;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* ---- response parser ---------------------------------------------------------------------- */

void vg_http_resp_reset(struct vg_http_resp *r)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
}

/* Whether the comma-separated header value v[0..n) lists token tok (case-insensitive). */
static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok), i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tl && !strncasecmp(v + start, tok, tl))
            return 1;
    }
    return 0;
}

/* Whether the last coding of a Transfer-Encoding value is chunked. */
static int last_is_chunked(const char *v, size_t n)
{
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    const char *comma = NULL;
    for (size_t i = 0; i < n; i++)
        if (v[i] == ',')
            comma = v + i;
    const char *last = comma ? comma + 1 : v;
    while (last < v + n && (*last == ' ' || *last == '\t'))
        last++;
    return (size_t)(v + n - last) == 7 && !strncasecmp(last, "chunked", 7);
}

static int parse_header_block(struct vg_http_resp *r, const char *buf, size_t end)
{
    /* "HTTP/1.1 200 OK\r\n" */
    if (end < 14 || memcmp(buf, "HTTP/1.", 7) || (buf[7] != '0' && buf[7] != '1') || buf[8] != ' ')
        return VG_HTTP_BAD;
    int minor = buf[7] - '0';
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return VG_HTTP_BAD;
        status = status * 10 + (buf[i] - '0');
    }
    if (buf[12] != ' ' && buf[12] != '\r')
        return VG_HTTP_BAD;
    if (status < 200 || status >= VG_MAX_STATUS)
        return VG_HTTP_BAD; /* 1xx: we never ask for one */
    r->status = status;
    int keep_alive = 0, close = 0;
    const char *line = memchr(buf, '\n', end);
    while (line && (size_t)(line + 1 - buf) < end) {
        line++;
        const char *eol = memchr(line, '\n', end - (size_t)(line - buf));
        if (!eol)
            break;
        size_t n = (size_t)(eol - line);
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n == 0)
            break;
        const char *colon = memchr(line, ':', n);
        if (!colon || colon == line)
            return VG_HTTP_BAD;
        size_t name_len = (size_t)(colon - line);
        const char *v = colon + 1;
        size_t vn = n - name_len - 1;
        while (vn > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vn--;
        }
        while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
            vn--;
        if (name_len == 14 && !strncasecmp(line, "Content-Length", 14)) {
            long long cl = 0;
            if (vn == 0 || vn > 15)
                return VG_HTTP_BAD;
            for (size_t i = 0; i < vn; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return VG_HTTP_BAD;
                cl = cl * 10 + (v[i] - '0');
            }
            if (r->content_length >= 0 && r->content_length != cl)
                return VG_HTTP_BAD;
            r->content_length = cl;
        } else if (name_len == 17 && !strncasecmp(line, "Transfer-Encoding", 17)) {
            r->chunked = last_is_chunked(v, vn);
            if (!r->chunked)
                return VG_HTTP_BAD; /* a coding we cannot delimit */
        } else if (name_len == 10 && !strncasecmp(line, "Connection", 10)) {
            close |= has_token(v, vn, "close");
            keep_alive |= has_token(v, vn, "keep-alive");
        } else if (name_len == 12 && !strncasecmp(line, "X-Request-Id", 12)) {
            r->id_off = (size_t)(v - buf);
            r->id_len = vn;
        }
        line = eol;
    }
    r->close = close || (minor == 0 && !keep_alive);
    if (r->chunked)
        r->content_length = -1; /* Transfer-Encoding overrides Content-Length */
    if (status == 204 || status == 304)
        r->content_length = 0, r->chunked = 0;
    return VG_HTTP_MORE;
}

/* Reads a hex chunk size line at buf[*pos..len): 1 with *size and *pos past the line,
 * 0 when incomplete, -1 when malformed. */
static int chunk_size_line(const char *buf, size_t len, size_t *pos, unsigned long long *size)
{
    size_t i = *pos;
    unsigned long long v = 0;
    int digits = 0;
    for (; i < len; i++) {
        char c = buf[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            break;
        if (++digits > 15)
            return -1;
        v = v * 16 + (unsigned)d;
    }
    if (i == len)
        return 0;
    if (!digits)
        return -1;
    const char *nl = memchr(buf + i, '\n', len - i);
    if (!nl)
        return len - i > 4096 ? -1 : 0;
    *pos = (size_t)(nl - buf) + 1;
    *size = v;
    return 1;
}

/* Scans a chunked body from start; when complete, decodes it in place. */
static int dechunk(struct vg_http_resp *r, char *buf, size_t len)
{
    size_t pos = r->header_end;
    for (;;) {
        unsigned long long size;
        int rc = chunk_size_line(buf, len, &pos, &size);
        if (rc <= 0)
            return rc < 0 ? VG_HTTP_BAD : VG_HTTP_MORE;
        if (size == 0) {
            /* trailer fields, then an empty line */
            for (;;) {
                const char *nl = memchr(buf + pos, '\n', len - pos);
                if (!nl)
                    return VG_HTTP_MORE;
                size_t n = (size_t)(nl - (buf + pos));
                pos = (size_t)(nl - buf) + 1;
                if (n == 0 || (n == 1 && buf[pos - 2] == '\r'))
                    break;
            }
            break;
        }
        if (len - pos < size + 2)
            return VG_HTTP_MORE;
        pos += size;
        if (buf[pos] == '\r')
            pos++;
        if (buf[pos] != '\n')
            return VG_HTTP_BAD;
        pos++;
    }
    /* complete: move the data of every chunk together */
    size_t in = r->header_end;
    size_t out = in; /* out <= in: the moves never overwrite what is still to be read */
    for (;;) {
        unsigned long long size;
        chunk_size_line(buf, len, &in, &size);
        if (size == 0)
            break;
        memmove(buf + out, buf + in, size);
        out += size;
        in += size;
        in += buf[in] == '\r' ? 2 : 1;
    }
    r->body_off = r->header_end;
    r->body_len = out - r->header_end;
    return VG_HTTP_DONE;
}

int vg_http_resp_parse(struct vg_http_resp *r, char *buf, size_t len, int eof)
{
    if (!r->header_end) {
        const char *end = NULL;
        for (size_t i = 0; i + 3 < len; i++)
            if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
                end = buf + i + 4;
                break;
            }
        if (!end)
            return len >= MAX_HEADER_BYTES || (eof && len) ? VG_HTTP_BAD : VG_HTTP_MORE;
        r->header_end = (size_t)(end - buf);
        if (parse_header_block(r, buf, r->header_end) == VG_HTTP_BAD) {
            r->header_end = 0;
            return VG_HTTP_BAD;
        }
    }
    if (r->chunked) {
        int rc = dechunk(r, buf, len);
        return rc == VG_HTTP_MORE && eof ? VG_HTTP_BAD : rc;
    }
    size_t have = len - r->header_end;
    if (r->content_length >= 0) {
        if (have < (unsigned long long)r->content_length)
            return eof ? VG_HTTP_BAD : VG_HTTP_MORE;
        r->body_off = r->header_end;
        r->body_len = (size_t)r->content_length;
        return VG_HTTP_DONE;
    }
    if (!eof)
        return VG_HTTP_MORE;
    r->body_off = r->header_end;
    r->body_len = have;
    r->close = 1;
    return VG_HTTP_DONE;
}

/* ---- one blocking GET --------------------------------------------------------------------- */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - mono_s();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, (int)(left * 1000) + 1);
        if (rc < 0 && errno == EINTR)
            continue;
        return rc < 0 ? -1 : rc;
    }
}

int vg_http_get(const struct vg_url *u, const char *path, double timeout_s, int *status,
                char **body, size_t *body_len, char *msg, size_t msg_cap)
{
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char *buf = NULL;
    int fd = -1, rc = -1;
    double deadline = mono_s() + timeout_s;
    *body = NULL;
    if (vg_url_resolve(u, &addr, &addr_len, msg, msg_cap))
        return -1;
    fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(msg, msg_cap, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&addr, addr_len) && errno != EINPROGRESS) {
        snprintf(msg, msg_cap, "cannot connect to http://%s: %s", u->authority, strerror(errno));
        goto out;
    }
    int ready = wait_fd(fd, POLLOUT, deadline), soerr = 0;
    socklen_t sl = sizeof soerr;
    if (ready > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr)
        ready = -1, errno = soerr;
    if (ready <= 0) {
        snprintf(msg, msg_cap, "cannot connect to http://%s: %s", u->authority,
                 ready == 0 ? "timed out" : strerror(errno));
        goto out;
    }
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET %s%s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n"
                     "Connection: close\r\n\r\n",
                     u->base, path, u->authority);
    if (n < 0 || (size_t)n >= sizeof req) {
        snprintf(msg, msg_cap, "request path too long");
        goto out;
    }
    for (size_t done = 0; done < (size_t)n;) {
        ssize_t w = send(fd, req + done, (size_t)n - done, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN && wait_fd(fd, POLLOUT, deadline) > 0)
            continue;
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(msg, msg_cap, "http://%s%s%s: cannot send the request: %s", u->authority,
                     u->base, path, w < 0 ? strerror(errno) : "connection closed");
            goto out;
        }
        done += (size_t)w;
    }
    size_t cap = 16384, len = 0;
    buf = malloc(cap + 1);
    if (!buf) {
        snprintf(msg, msg_cap, "out of memory");
        goto out;
    }
    struct vg_http_resp resp;
    vg_http_resp_reset(&resp);
    for (;;) {
        if (len == cap) {
            char *bigger = cap >= MAX_GET_BYTES ? NULL : realloc(buf, cap * 2 + 1);
            if (!bigger) {
                snprintf(msg, msg_cap, "http://%s%s%s: answer larger than %d bytes", u->authority,
                         u->base, path, MAX_GET_BYTES);
                goto out;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN) {
            int w = wait_fd(fd, POLLIN, deadline);
            if (w > 0)
                continue;
            snprintf(msg, msg_cap, "http://%s%s%s: %s", u->authority, u->base, path,
                     w == 0 ? "no complete answer in time" : strerror(errno));
            goto out;
        }
        if (r < 0) {
            snprintf(msg, msg_cap, "http://%s%s%s: %s", u->authority, u->base, path,
                     strerror(errno));
            goto out;
        }
        len += (size_t)r;
        int p = vg_http_resp_parse(&resp, buf, len, r == 0);
        if (p == VG_HTTP_DONE)
            break;
        if (p == VG_HTTP_BAD || r == 0) {
            snprintf(msg, msg_cap, "http://%s%s%s: %s", u->authority, u->base, path,
                     len == 0 ? "the server closed the connection without answering"
                              : "not a valid HTTP/1.1 response");
            goto out;
        }
    }
    memmove(buf, buf + resp.body_off, resp.body_len);
    buf[resp.body_len] = '\0';
    *status = resp.status;
    *body = buf;
    *body_len = resp.body_len;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}
