/*
 * Holds many slow HTTP clients against a server (tests/server/test_server.sh):
 *
 *   http_slow_clients HOST PORT N HOLD_SECONDS READY_FILE
 *
 * Opens N TCP connections to HOST:PORT (an IPv4 address). Even-numbered connections send
 * nothing; odd-numbered ones trickle the start of a POST request, one byte per connection per
 * second, and never finish its header, so the server can never answer them. Once every
 * connection has been attempted, READY_FILE is created: the test then checks that the server
 * still answers normal requests promptly. After HOLD_SECONDS (counted from READY_FILE), each
 * connection is classified, then all are closed:
 *   open              nothing came back: the server is still waiting for the request
 *   closed_by_server  EOF or reset (e.g. the server's idle timeout)
 *   answered          the server wrote bytes (e.g. a 408) before the end of the hold
 *
 * Prints one JSON line on stdout:
 *   {"target":N,"connected":..,"connect_failed":..,"open_at_end":..,"closed_by_server":..,
 *    "answered":..,"bytes_trickled":..}
 * Exit status: 0 when every connection was established, 1 when some were not, 2 on bad usage.
 * Needs N + a few file descriptors (the test raises `ulimit -n`).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_tool.h"

/* Never completed: the header's final empty line is not part of it. */
static const char partial_request[] = "POST /predict HTTP/1.1\r\n"
                                      "Host: slow-client\r\n"
                                      "Content-Type: application/json\r\n"
                                      "X-Request-Id: slow-client\r\n"
                                      "Content-Length: 64\r\n";

enum conn_state { CONN_PENDING, CONN_OPEN, CONN_FAILED, CONN_CLOSED, CONN_ANSWERED };

struct slow_conn {
    int fd;
    enum conn_state state;
    size_t sent; /* bytes of partial_request written so far (odd connections) */
};

static int start_connect(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits for the non-blocking connects of `conns` to finish, for at most `timeout_s`. */
static void finish_connects(struct slow_conn *conns, long n, double timeout_s)
{
    struct pollfd *pfd = calloc((size_t)n, sizeof *pfd);
    long *index = calloc((size_t)n, sizeof *index);
    if (!pfd || !index) {
        for (long i = 0; i < n; i++)
            if (conns[i].state == CONN_PENDING)
                conns[i].state = CONN_FAILED;
        goto out;
    }
    double deadline = now_seconds() + timeout_s;
    for (;;) {
        long m = 0;
        for (long i = 0; i < n; i++) {
            if (conns[i].state != CONN_PENDING)
                continue;
            pfd[m].fd = conns[i].fd;
            pfd[m].events = POLLOUT;
            pfd[m].revents = 0;
            index[m++] = i;
        }
        double left = deadline - now_seconds();
        if (m == 0 || left <= 0)
            break;
        int rc = poll(pfd, (nfds_t)m, (int)(left * 1000) + 1);
        if (rc < 0 && errno != EINTR)
            break;
        for (long k = 0; k < m && rc > 0; k++) {
            if (!pfd[k].revents)
                continue;
            struct slow_conn *c = &conns[index[k]];
            int so_error = 0;
            socklen_t len = sizeof so_error;
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0 || so_error)
                c->state = CONN_FAILED;
            else
                c->state = CONN_OPEN;
        }
    }
    for (long i = 0; i < n; i++)
        if (conns[i].state == CONN_PENDING)
            conns[i].state = CONN_FAILED;
out:
    free(pfd);
    free(index);
}

/* One more byte of the partial request on every odd open connection. */
static long trickle(struct slow_conn *conns, long n)
{
    long bytes = 0;
    for (long i = 1; i < n; i += 2) {
        struct slow_conn *c = &conns[i];
        if (c->state != CONN_OPEN || c->sent >= sizeof partial_request - 1)
            continue;
        ssize_t w = send(c->fd, partial_request + c->sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == 1) {
            c->sent++;
            bytes++;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            c->state = CONN_CLOSED;
        }
    }
    return bytes;
}

/* Whether the server closed or answered the connection meanwhile, without blocking. */
static void classify(struct slow_conn *c)
{
    if (c->state != CONN_OPEN)
        return;
    char buf[512];
    ssize_t r = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0)
        c->state = CONN_ANSWERED;
    else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        c->state = CONN_CLOSED;
}

int main(int argc, char **argv)
{
    long port, n, hold;
    struct sockaddr_in addr = {.sin_family = AF_INET};
    if (argc != 6 || inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1 ||
        parse_count(argv[2], 1, 65535, &port) || parse_count(argv[3], 1, 100000, &n) ||
        parse_count(argv[4], 0, 3600, &hold)) {
        fprintf(stderr, "usage: http_slow_clients IPV4 PORT N HOLD_SECONDS READY_FILE\n");
        return 2;
    }
    addr.sin_port = htons((unsigned short)port);
    const char *ready_file = argv[5];

    struct slow_conn *conns = calloc((size_t)n, sizeof *conns);
    if (!conns) {
        fprintf(stderr, "http_slow_clients: out of memory\n");
        return 1;
    }
    /* Connect in waves so the server's listen backlog is never the limit being measured. */
    const long wave = 100;
    for (long first = 0; first < n; first += wave) {
        long last = first + wave < n ? first + wave : n;
        for (long i = first; i < last; i++) {
            conns[i].fd = start_connect(&addr);
            conns[i].state = conns[i].fd < 0 ? CONN_FAILED : CONN_PENDING;
        }
        finish_connects(conns + first, last - first, 10.0);
    }
    long connected = 0, failed = 0;
    for (long i = 0; i < n; i++) {
        if (conns[i].state == CONN_OPEN)
            connected++;
        else
            failed++;
    }

    FILE *fp = fopen(ready_file, "w");
    if (fp) {
        fprintf(fp, "%ld\n", connected);
        fclose(fp);
    } else {
        fprintf(stderr, "http_slow_clients: cannot create %s: %s\n", ready_file, strerror(errno));
    }

    long bytes = 0;
    double end = now_seconds() + (double)hold;
    for (;;) {
        bytes += trickle(conns, n);
        double left = end - now_seconds();
        if (left <= 0)
            break;
        struct timespec ts = {0, left >= 1.0 ? 999999999L : (long)(left * 1e9)};
        nanosleep(&ts, NULL);
    }

    long open_at_end = 0, closed = 0, answered = 0;
    for (long i = 0; i < n; i++) {
        classify(&conns[i]);
        switch (conns[i].state) {
        case CONN_OPEN: open_at_end++; break;
        case CONN_CLOSED: closed++; break;
        case CONN_ANSWERED: answered++; break;
        default: break;
        }
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    }
    free(conns);
    printf("{\"target\":%ld,\"connected\":%ld,\"connect_failed\":%ld,\"open_at_end\":%ld,"
           "\"closed_by_server\":%ld,\"answered\":%ld,\"bytes_trickled\":%ld}\n",
           n, connected, failed, open_at_end, closed, answered, bytes);
    return failed == 0 ? 0 : 1;
}
