/*
 * A tiny HTTP/1.1 server that stalls once, for the coordinated-omission test of `vigil load`
 * (tests/load/test_load.sh):
 *
 *   http_stall_server PORT_FILE STALL_AFTER_MS STALL_MS [LIFETIME_S]
 *
 * Listens on 127.0.0.1 on a port the kernel picks and writes that port to PORT_FILE (written
 * whole, then renamed into place). Every request (any method and path; a body is read by its
 * Content-Length) is answered at once with 200 and the JSON body {"ok":true}, keep-alive,
 * except during the stall: STALL_AFTER_MS after the first request arrives, the server stops
 * answering for STALL_MS (it still reads requests), then answers everything held back and goes
 * on as before. The stall happens once. One thread, epoll, non-blocking sockets.
 *
 * On SIGTERM or SIGINT, or after LIFETIME_S seconds (default 120), prints one JSON line on
 * stdout, {"requests":N,"held":N,"stall_began_ms":T,"stall_ms":T,"max_held":N}, and exits 0
 * ("held" counts requests answered late because of the stall; stall_began_ms is measured from
 * the first request, -1 when no stall happened). Exit status 2 on bad usage, 1 on a setup error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_tool.h"

#define MAX_CONNS 4096
#define IN_CAP 65536

static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 11\r\n\r\n{\"ok\":true}";

struct sconn {
    int fd;
    char in[IN_CAP];
    size_t in_len;
    long held; /* requests read but not answered yet (the stall) */
    char *out; /* answers not written yet */
    size_t out_len, out_cap;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void close_conn(int ep, struct sconn **slot)
{
    struct sconn *c = *slot;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
    *slot = NULL;
}

/* Queues n answers and writes what the socket takes; -1 when the connection failed. */
static int answer_n(int ep, struct sconn **slot, long n)
{
    struct sconn *c = *slot;
    size_t need = c->out_len + (size_t)n * (sizeof answer - 1);
    if (need > c->out_cap) {
        size_t cap = need * 2;
        char *bigger = realloc(c->out, cap);
        if (!bigger)
            return -1;
        c->out = bigger;
        c->out_cap = cap;
    }
    for (long k = 0; k < n; k++) {
        memcpy(c->out + c->out_len, answer, sizeof answer - 1);
        c->out_len += sizeof answer - 1;
    }
    size_t done = 0;
    while (done < c->out_len) {
        ssize_t w = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            break;
        if (w < 0)
            return -1;
        done += (size_t)w;
    }
    memmove(c->out, c->out + done, c->out_len - done);
    c->out_len -= done;
    struct epoll_event ev = {.events = EPOLLIN | (c->out_len ? EPOLLOUT : 0), .data.ptr = slot};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return 0;
}

/* Complete requests at the start of c->in: how many, consuming them. -1 when malformed. */
static long take_requests(struct sconn *c)
{
    long n = 0;
    for (;;) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!end)
            return c->in_len == IN_CAP ? -1 : n;
        size_t head = (size_t)(end - c->in) + 4;
        long body = 0;
        for (char *line = memchr(c->in, '\n', head); line && line < end;
             line = memchr(line, '\n', (size_t)(end - line))) {
            line++;
            if (!strncasecmp(line, "Content-Length:", 15))
                body = strtol(line + 15, NULL, 10);
        }
        if (body < 0 || head + (size_t)body > IN_CAP)
            return -1;
        if (c->in_len < head + (size_t)body)
            return n;
        memmove(c->in, c->in + head + body, c->in_len - head - (size_t)body);
        c->in_len -= head + (size_t)body;
        n++;
    }
}

int main(int argc, char **argv)
{
    long after_ms, stall_ms, lifetime = 120;
    if ((argc != 4 && argc != 5) || parse_count(argv[2], 0, 3600000, &after_ms) ||
        parse_count(argv[3], 0, 3600000, &stall_ms) ||
        (argc == 5 && parse_count(argv[4], 1, 86400, &lifetime))) {
        fprintf(stderr,
                "usage: http_stall_server PORT_FILE STALL_AFTER_MS STALL_MS [LIFETIME_S]\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 1024) ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
        perror("http_stall_server: listen");
        return 1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *pf = fopen(tmp, "w");
    if (!pf || fprintf(pf, "%d\n", ntohs(addr.sin_port)) < 0 || fclose(pf) ||
        rename(tmp, argv[1])) {
        perror("http_stall_server: port file");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

    static struct sconn *conns[MAX_CONNS];
    double start = now_seconds(), first = -1, stall_begin = -1, stall_end = -1;
    long requests = 0, held = 0, max_held = 0, outstanding = 0;
    int stalled = 0, stall_done = 0;
    while (!stop && now_seconds() - start < (double)lifetime) {
        double now = now_seconds();
        if (first >= 0 && !stall_done && !stalled && now >= first + (double)after_ms / 1000) {
            stalled = 1;
            stall_begin = now;
            stall_end = now + (double)stall_ms / 1000;
        }
        if (stalled && now >= stall_end) {
            stalled = 0;
            stall_done = 1;
            for (int k = 0; k < MAX_CONNS; k++)
                if (conns[k] && conns[k]->held) {
                    long n = conns[k]->held;
                    conns[k]->held = 0;
                    if (answer_n(ep, &conns[k], n))
                        close_conn(ep, &conns[k]);
                }
            outstanding = 0;
        }
        int timeout_ms = 100;
        if (stalled)
            timeout_ms = (int)((stall_end - now) * 1000) + 1;
        else if (first >= 0 && !stall_done)
            timeout_ms = (int)((first + (double)after_ms / 1000 - now) * 1000) + 1;
        if (timeout_ms > 100)
            timeout_ms = 100;
        if (timeout_ms < 0)
            timeout_ms = 0;
        struct epoll_event ev[64];
        int n = epoll_wait(ep, ev, 64, timeout_ms);
        for (int k = 0; k < n; k++) {
            if (!ev[k].data.ptr) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    int slot = 0;
                    while (slot < MAX_CONNS && conns[slot])
                        slot++;
                    struct sconn *c = slot < MAX_CONNS ? calloc(1, sizeof *c) : NULL;
                    if (!c) {
                        close(fd);
                        continue;
                    }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c->fd = fd;
                    conns[slot] = c;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = &conns[slot]};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            struct sconn **slot = ev[k].data.ptr;
            struct sconn *c = *slot;
            if (!c)
                continue;
            /* a connection's epoll data is its slot in conns */
            if ((ev[k].events & EPOLLOUT) && answer_n(ep, slot, 0)) {
                close_conn(ep, slot);
                continue;
            }
            ssize_t r = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0) {
                outstanding -= c->held;
                close_conn(ep, slot);
                continue;
            }
            c->in_len += (size_t)r;
            long got = take_requests(c);
            if (got < 0) {
                close_conn(ep, slot);
                continue;
            }
            if (got && first < 0)
                first = now_seconds();
            requests += got;
            if (stalled) {
                c->held += got;
                held += got;
                outstanding += got;
                if (outstanding > max_held)
                    max_held = outstanding;
            } else if (got && answer_n(ep, slot, got)) {
                close_conn(ep, slot);
            }
        }
    }
    printf("{\"requests\":%ld,\"held\":%ld,\"stall_began_ms\":%.1f,\"stall_ms\":%ld,"
           "\"max_held\":%ld}\n",
           requests, held, stall_begin >= 0 ? (stall_begin - first) * 1000 : -1.0, stall_ms,
           max_held);
    for (int k = 0; k < MAX_CONNS; k++)
        if (conns[k])
            close_conn(ep, &conns[k]);
    close(ep);
    close(lfd);
    return 0;
}
