/*
 * The open-loop engine of `vigil load` (docs/load-generator.md).
 *
 * Schedule: request i is due at a fixed time computed from the rate alone (start + i / R, the
 * rate changing between segments for a spike), never from when earlier answers came back. A due
 * request takes a free keep-alive connection; when none is free it waits, and that wait is part
 * of its latency, which always runs from the intended send time to the last byte of the answer.
 * A slow server therefore shows up as latency instead of as a lower request rate, the
 * "coordinated omission" a closed-loop tool suffers from (wrk2 and HdrHistogram describe it).
 *
 * Each thread owns its connections and the requests i with i % threads == its index, so threads
 * share nothing on the request path; statistics are merged at the end. A thread waits in
 * epoll_pwait2 with a nanosecond timeout up to the next due time (with a timerfd instead where
 * the kernel lacks epoll_pwait2, or when VIGIL_LOAD_TIMERFD=1 asks for it), or, when the next
 * send is close, sleeps until it and reads the answers that came meanwhile, timed by the
 * kernel's receive timestamps (wait_next). Connections carry one request at a time, with no
 * pipelining; a connection that fails or is closed is reopened.
 *
 * Why not libcurl: the generator shares the machine with the server it measures, so its CPU per
 * request must stay small. Measured on the 2-CPU benchmark machine against the same server,
 * libcurl 7.88's multi interface (64 keep-alive handles, closed loop, as fast as it goes) spent
 * 38 µs of CPU per request, 17 µs of it in user space (handle re-arming, callbacks, its own
 * bookkeeping), and topped out at 26,000 requests a second on a whole CPU. Here a request is a
 * copy of pre-built bytes with its id patched in, one send and one recv: 11 µs per request at
 * saturation (69,000 a second), three quarters of it in the kernel (docs/load-generator.md).
 *
 * End of the run: once the schedule is over, requests still waiting for a connection keep
 * being sent for up to --timeout (their latency keeps growing); what is left after that counts
 * as unsent. Answers in flight get their own --timeout.
 *
 * Feedback (--feedback): a right answer to a measured valid request whose row has a label may be
 * chosen (the j-th right answer of a thread is when floor((j+1)F) > floor(jF), F the ratio, so
 * exactly floor(n F) of a thread's n are). Its feedback, POST /feedback with the row's label (for
 * the noisy ones, chosen the same way with the --label-noise share, another class drawn from a
 * hash of the seed and the request number), becomes due when the answer arrived and waits in a
 * queue; a free connection takes a waiting feedback before the next scheduled request, so the
 * queue holds at most about one entry per connection. It is not part of the schedule: its
 * counts and latency (from the answer's arrival) are its own, and the rate and counts of the
 * scheduled requests are those of the prediction requests alone.
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "cli/load.h"

#define MAX_EVENTS 256
#define MAX_RESPONSE_BYTES (4 * 1024 * 1024)
#define CHECK_EVERY_NS 10000000LL /* timeouts and reconnections are looked at every 10 ms */
#define RECONNECT_BACKOFF_NS 100000000LL
#define NS 1000000000LL
#define DEFER_MAX_NS 1000000LL /* reads wait for a due send at most this long (see wait_next) */

enum conn_state { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };

struct conn {
    int fd;
    enum conn_state state;
    int want_out; /* EPOLLOUT is in the epoll mask */
    /* the request in flight */
    enum vg_load_kind kind;
    int warmup, spike;
    int64_t due_ns, sent_ns, connect_ns, retry_ns;
    int64_t rx_ns; /* kernel receive time of the answer's latest bytes (CLOCK_MONOTONIC), 0 */
    uint64_t seq;  /* the request number (a feedback: of the prediction it is about) */
    int fb_expect; /* a feedback: the outcome expected (enum fb_outcome) */
    char id[VG_LOAD_ID_LEN];
    char *out;
    size_t out_len, out_done;
    char *in;
    size_t in_len, in_cap;
    struct vg_http_resp resp;
};

struct shared;

/* What a feedback's answer must say: "correct" when the label sent is the predicted class. */
enum fb_outcome { FB_INCORRECT, FB_CORRECT, FB_RECEIVED };
static const char *const fb_outcome_names[] = {"incorrect", "correct", "received"};

/* A feedback waiting for a connection. */
struct pending_fb {
    uint64_t seq;  /* the prediction's request number */
    int32_t label; /* the feedback pool's request: a class, or a row (regression) */
    int8_t expect;
    int64_t due_ns;
};

struct worker {
    pthread_t thread;
    int index;
    struct shared *sh;
    int ep, timer_fd;
    int64_t timer_armed;
    int use_pwait2;
    int rx_stamps;           /* sockets carry kernel receive timestamps (SO_TIMESTAMPNS) */
    int64_t real_minus_mono; /* CLOCK_REALTIME - CLOCK_MONOTONIC, refreshed at every wake-up */
    struct conn *conns;
    int n_conns;
    /* Idle connections, a FIFO ring of n_idle ids from idle[idle_head]: a request takes the one
       idle the longest, so at a low rate every connection is used in turn and none sits idle
       until the server's idle timeout closes it (which races with a request sent on it). */
    int *idle, idle_head, n_idle, n_busy;
    /* feedback waiting for a connection: a FIFO ring of n_pending from pending[pending_head] */
    struct pending_fb *pending;
    int pending_cap, pending_head, n_pending;
    uint64_t fb_right_answers, fb_sent_count; /* for the choice of feedbacks and noisy labels */
    struct vg_feedback_stats fb;
    uint64_t next_due;  /* this worker's next request index not yet due */
    uint64_t next_send; /* its next due request not yet sent */
    uint64_t end;       /* its requests are those below end (lowered by an interruption) */
    int64_t stop_ns;    /* schedule end (absolute), or the interruption time */
    int cut;
    int64_t next_check, next_progress;
    /* results */
    struct vg_load_stats groups[VG_GROUP_COUNT];
    uint64_t statuses[VG_MAX_STATUS];
    uint64_t scheduled, warmup_scheduled, unsent, warmup_unsent;
    uint64_t connects, connect_errors;
    int64_t max_lag;
    double lag_sum;
    uint64_t lag_n;
    int64_t last_send, last_done;
    /* progress: published for worker 0, which prints the line */
    _Atomic uint64_t pub_sent, pub_failed, pub_backlog;
    struct vg_hist interval; /* worker 0: answers since the last progress line */
    uint64_t progress_sent;
};

struct shared {
    const struct vg_load_plan *plan;
    struct vg_schedule sched;
    int64_t t0; /* CLOCK_MONOTONIC of the schedule's time 0 */
    struct worker *workers;
    int n_workers;
    atomic_int reports_left;
};

static atomic_int interrupted;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&interrupted, 1);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

/* CLOCK_REALTIME - CLOCK_MONOTONIC: receive timestamps are on the first, our times on the second.
 * Read at every wake-up, so a clock step or slew between a receive and its read hardly matters. */
static int64_t realtime_offset(void)
{
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    return (int64_t)rt.tv_sec * NS + rt.tv_nsec - now_ns();
}

/* ---- schedule ----------------------------------------------------------------------------- */

/* A segment of constant rate: requests at start, start + 1/rate, ... strictly before start + len.
 * The count is ceil(len * rate), with a little slack so that 2 s at 2000/s is 4000, not 4001. */
static void add_segment(struct vg_schedule *s, int64_t start, int64_t len, double rate, int warmup,
                        int spike)
{
    if (len <= 0 || s->n == VG_MAX_SEGMENTS)
        return;
    double exact = (double)len * rate / 1e9;
    uint64_t count = (uint64_t)ceil(exact - 1e-6);
    if (count == 0)
        return;
    s->seg[s->n].start_ns = start;
    s->seg[s->n].period_ns = 1e9 / rate;
    s->seg[s->n].first = s->total;
    s->seg[s->n].count = count;
    s->seg[s->n].warmup = warmup;
    s->seg[s->n].spike = spike;
    s->n++;
    s->total += count;
    if (warmup)
        s->warmup_count += count;
}

void vg_schedule_init(struct vg_schedule *s, const struct vg_load_plan *plan)
{
    memset(s, 0, sizeof *s);
    int64_t w = plan->warmup_ns, d = plan->duration_ns;
    add_segment(s, 0, w, plan->rate, 1, 0);
    if (plan->spike_len_ns > 0) {
        int64_t a = plan->spike_start_ns, b = plan->spike_start_ns + plan->spike_len_ns;
        if (b > d)
            b = d;
        add_segment(s, w, a, plan->rate, 0, 0);
        add_segment(s, w + a, b - a, plan->rate * plan->spike_factor, 0, 1);
        add_segment(s, w + b, d - b, plan->rate, 0, 0);
    } else {
        add_segment(s, w, d, plan->rate, 0, 0);
    }
    s->end_ns = w + d;
}

int64_t vg_schedule_due(const struct vg_schedule *s, uint64_t i, int *segment)
{
    int k = 0;
    while (k + 1 < s->n && i >= s->seg[k + 1].first)
        k++;
    *segment = k;
    return s->seg[k].start_ns + (int64_t)((double)(i - s->seg[k].first) * s->seg[k].period_ns);
}

enum vg_load_kind vg_load_kind_of(const struct vg_load_plan *plan, uint64_t m, int64_t t_ns)
{
    switch (plan->scenario) {
    case VG_SC_NORMAL:
    case VG_SC_SPIKE: return VG_KIND_NORMAL;
    case VG_SC_DRIFT: return VG_KIND_DRIFT;
    case VG_SC_RAW: return VG_KIND_RAW;
    case VG_SC_ERRORS:
    case VG_SC_MIXED: break;
    }
    /* Request m is invalid when floor((m + 1) r) > floor(m r): exactly floor(n r) of the first n
       requests are, spread evenly; the invalid ones cycle through the error kinds. */
    double r = plan->error_ratio;
    uint64_t before = (uint64_t)floor((double)m * r), after = (uint64_t)floor((double)(m + 1) * r);
    if (after > before)
        return (enum vg_load_kind)(VG_KIND_MALFORMED +
                                   before % (uint64_t)(VG_N_ERROR_KINDS + !!plan->unavailable));
    if (plan->scenario == VG_SC_MIXED && t_ns >= plan->drift_start_ns)
        return VG_KIND_DRIFT;
    return VG_KIND_NORMAL;
}

enum vg_load_kind vg_load_request(const struct vg_load_plan *plan, const struct vg_schedule *s,
                                  uint64_t i, int64_t *due_ns, int *warmup, int *spike)
{
    int seg;
    *due_ns = vg_schedule_due(s, i, &seg);
    *warmup = s->seg[seg].warmup;
    *spike = s->seg[seg].spike;
    if (*warmup)
        return plan->scenario == VG_SC_RAW ? VG_KIND_RAW : VG_KIND_NORMAL;
    return vg_load_kind_of(plan, i - s->warmup_count, *due_ns - plan->warmup_ns);
}

/* ---- connections -------------------------------------------------------------------------- */

static void epoll_set(struct worker *w, struct conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(w->ep, op, c->fd, &ev);
}

static void push_idle(struct worker *w, struct conn *c)
{
    c->state = C_IDLE;
    w->idle[(w->idle_head + w->n_idle++) % w->n_conns] = (int)(c - w->conns);
}

/* The connection idle the longest; n_idle must be above 0. */
static struct conn *pop_idle(struct worker *w)
{
    struct conn *c = &w->conns[w->idle[w->idle_head]];
    w->idle_head = (w->idle_head + 1) % w->n_conns;
    w->n_idle--;
    return c;
}

/* Starts (re)opening c; on an immediate failure it stays down until its retry time. */
static void start_connect(struct worker *w, struct conn *c, int64_t now)
{
    const struct vg_load_plan *p = w->sh->plan;
    c->fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        goto failed;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (w->rx_stamps && setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one))
        w->rx_stamps = 0;
    c->connect_ns = now;
    c->want_out = 0;
    if (connect(c->fd, (const struct sockaddr *)&p->addr, p->addr_len) == 0) {
        w->connects++;
        epoll_set(w, c, EPOLL_CTL_ADD, EPOLLIN | EPOLLRDHUP);
        push_idle(w, c);
        return;
    }
    if (errno == EINPROGRESS) {
        c->state = C_CONNECTING;
        c->want_out = 1;
        epoll_set(w, c, EPOLL_CTL_ADD, EPOLLOUT);
        return;
    }
    close(c->fd);
failed:
    c->fd = -1;
    w->connect_errors++;
    c->retry_ns = now + RECONNECT_BACKOFF_NS;
}

/* Closes c (its request, if any, already accounted for) and schedules its reopening. */
static void drop_conn(struct worker *w, struct conn *c, int64_t retry_at)
{
    if (c->state == C_IDLE) {
        int k = 0, n = w->n_conns;
        while (k < w->n_idle && w->idle[(w->idle_head + k) % n] != (int)(c - w->conns))
            k++;
        if (k < w->n_idle) {
            for (; k + 1 < w->n_idle; k++) /* close the gap, keeping the order */
                w->idle[(w->idle_head + k) % n] = w->idle[(w->idle_head + k + 1) % n];
            w->n_idle--;
        }
    }
    if (c->state == C_BUSY)
        w->n_busy--;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = C_DOWN;
    c->retry_ns = retry_at;
}

/* ---- outcomes ----------------------------------------------------------------------------- */

enum outcome { O_OK, O_EXPECTED_ERROR, O_UNEXPECTED_STATUS, O_BAD_BODY, O_CONN_ERROR, O_TIMEOUT };

static void count(struct vg_load_stats *s, enum outcome o)
{
    switch (o) {
    case O_OK: s->ok++; break;
    case O_EXPECTED_ERROR: s->expected_errors++; break;
    case O_UNEXPECTED_STATUS: s->unexpected_status++; break;
    case O_BAD_BODY: s->bad_body++; break;
    case O_CONN_ERROR: s->conn_errors++; break;
    case O_TIMEOUT: s->timeouts++; break;
    }
}

static void report(struct worker *w, const struct conn *c, const char *what, const char *body,
                   size_t body_len)
{
    if (atomic_fetch_sub(&w->sh->reports_left, 1) <= 0)
        return;
    const struct vg_load_plan *p = w->sh->plan;
    char shown[301];
    size_t n = body_len < sizeof shown - 1 ? body_len : sizeof shown - 1;
    for (size_t k = 0; k < n; k++)
        shown[k] = body[k] >= ' ' && body[k] < 0x7f ? body[k] : '?';
    shown[n] = '\0';
    fprintf(stderr, "%svigil load: request %.*s (%s): %s%s%s%s\n", p->progress ? "\r\033[K" : "",
            VG_LOAD_ID_LEN, c->id, vg_load_kinds[c->kind].name, what, body ? "; body: '" : "",
            body ? shown : "", body ? "'" : "");
}

/* Accounts for the request on c: outcome, status (0: none) and, when answered, its latency. */
static void finish_request(struct worker *w, struct conn *c, enum outcome o, int status,
                           int64_t now)
{
    int answered = o != O_CONN_ERROR && o != O_TIMEOUT;
    uint64_t latency = answered && now > c->due_ns ? (uint64_t)(now - c->due_ns) : 0;
    if (c->kind == VG_KIND_FEEDBACK) {
        count(&w->groups[VG_KIND_FEEDBACK], o);
        if (answered)
            vg_hist_record(&w->groups[VG_KIND_FEEDBACK].hist, latency);
        if (status > 0 && status < VG_MAX_STATUS)
            w->fb.statuses[status]++;
    } else if (c->warmup) {
        count(&w->groups[VG_GROUP_WARMUP], o);
        if (answered)
            vg_hist_record(&w->groups[VG_GROUP_WARMUP].hist, latency);
    } else {
        struct vg_load_stats *g[3] = {&w->groups[c->kind], &w->groups[VG_GROUP_TOTAL],
                                      c->spike ? &w->groups[VG_GROUP_SPIKE] : NULL};
        for (int k = 0; k < 3 && g[k]; k++) {
            count(g[k], o);
            if (answered)
                vg_hist_record(&g[k]->hist, latency);
        }
        if (status > 0 && status < VG_MAX_STATUS)
            w->statuses[status]++;
        if (answered)
            w->last_done = now;
    }
    if (w->index == 0 && answered)
        vg_hist_record(&w->interval, latency);
    if (o != O_OK && o != O_EXPECTED_ERROR)
        atomic_store_explicit(&w->pub_failed,
                              atomic_load_explicit(&w->pub_failed, memory_order_relaxed) + 1,
                              memory_order_relaxed);
}

/* The request on c failed without an answer: count it, drop the connection, reopen it now. */
static void fail_request(struct worker *w, struct conn *c, enum outcome o, const char *what,
                         int64_t now)
{
    if (c->state == C_BUSY) {
        finish_request(w, c, o, 0, now);
        report(w, c, what, NULL, 0);
    }
    drop_conn(w, c, now);
}

/* 1 for the m-th of a sequence when floor((m + 1) share) > floor(m share): exactly floor(n share)
 * of the first n are chosen, evenly spread. */
static int chosen(uint64_t m, double share)
{
    return floor((double)(m + 1) * share) > floor((double)m * share);
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/*
 * After a right answer to measured valid request c->seq, predicting class pred (-1: regression):
 * counts the model's accuracy on the row's label and, when this answer is chosen for feedback,
 * queues the feedback, due at `now` (the answer's arrival).
 */
static void after_prediction(struct worker *w, const struct conn *c, int pred, int64_t now)
{
    const struct vg_load_plan *p = w->sh->plan;
    const struct vg_load_data *d = p->data;
    if (!d || !d->has_labels)
        return;
    int row = vg_req_pool_pick(&p->pools[c->kind], c->seq);
    int truth = d->label_class ? d->label_class[row] : -1;
    if (truth >= 0) {
        w->fb.labelled++;
        w->fb.right += pred == truth;
    }
    if (!(p->feedback_ratio > 0) || !chosen(w->fb_right_answers++, p->feedback_ratio))
        return;
    w->fb.selected++;
    struct pending_fb f = {.seq = c->seq, .due_ns = now};
    if (truth < 0) {
        f.label = row; /* regression: the feedback pool has one request per row */
        f.expect = FB_RECEIVED;
    } else {
        int label = truth, n_classes = p->spec->n_classes;
        if (n_classes > 1 && p->label_noise > 0 && chosen(w->fb_sent_count, p->label_noise)) {
            /* another class, uniformly */
            int other = (int)(mix64(p->seed ^ (c->seq * 0x9e3779b97f4a7c15ULL)) %
                              (uint64_t)(n_classes - 1));
            label = other >= truth ? other + 1 : other;
            w->fb.noisy++;
        }
        w->fb_sent_count++;
        w->fb.clean_right += truth == pred;
        f.label = label;
        f.expect = label == pred ? FB_CORRECT : FB_INCORRECT;
    }
    if (w->n_pending == w->pending_cap) {
        w->fb.unsent++; /* cannot happen with the queue's size, see the top of the file */
        return;
    }
    w->pending[(w->pending_head + w->n_pending++) % w->pending_cap] = f;
}

/* A complete response is in c->in: check it against the request's kind. */
static void on_response(struct worker *w, struct conn *c, int64_t now)
{
    const struct vg_load_plan *p = w->sh->plan;
    struct vg_http_resp *r = &c->resp;
    const struct vg_kind_info *k = &vg_load_kinds[c->kind];
    const char *body = c->in + r->body_off;
    const char *why = NULL;
    int pred = -1;
    enum outcome o;
    char pred_id[VG_LOAD_ID_LEN];
    if (c->kind == VG_KIND_FEEDBACK)
        vg_load_format_id(pred_id, "load", p->run_tag, c->seq);
    int expected = c->kind == VG_KIND_RAW ? p->raw_status : k->expected_status;
    if (r->status != expected) {
        o = O_UNEXPECTED_STATUS;
        char what[96];
        snprintf(what, sizeof what, "status %d, expected %d", r->status, expected);
        report(w, c, what, body, r->body_len);
    } else {
        if (!r->chunked && c->in_len > r->body_off + r->body_len)
            why = "bytes after the announced Content-Length";
        else if (c->kind != VG_KIND_RAW &&
                 (r->id_len != VG_LOAD_ID_LEN || memcmp(c->in + r->id_off, c->id, VG_LOAD_ID_LEN)))
            why = "the X-Request-Id header is not the request's id";
        else if (c->kind == VG_KIND_RAW)
            why = NULL;
        else if (c->kind == VG_KIND_FEEDBACK)
            vg_check_feedback(p->spec, body, r->body_len, pred_id, VG_LOAD_ID_LEN,
                              fb_outcome_names[c->fb_expect], &why);
        else if (k->valid)
            vg_check_prediction_class(p->spec, body, r->body_len, c->id, VG_LOAD_ID_LEN, &pred,
                                      &why);
        else
            vg_check_error_body(body, r->body_len, &why);
        o = why ? O_BAD_BODY : k->valid || c->kind == VG_KIND_FEEDBACK ? O_OK : O_EXPECTED_ERROR;
        if (why) {
            char what[160];
            snprintf(what, sizeof what, "wrong answer (status %d): %s", r->status, why);
            report(w, c, what, body, r->body_len);
        }
    }
    finish_request(w, c, o, r->status, now);
    if (o == O_OK && c->kind == VG_KIND_FEEDBACK) {
        uint64_t *by_outcome[] = {&w->fb.incorrect, &w->fb.correct, &w->fb.received};
        (*by_outcome[c->fb_expect])++;
    } else if (o == O_OK && k->valid && c->kind != VG_KIND_RAW && !c->warmup) {
        after_prediction(w, c, pred, now);
    }
    c->in_len = 0;
    /* Closed after an answer the server ends the connection with, a wrong one (the stream may
       be out of step), or one that came before the whole request was written. */
    if (r->close || why || c->out_done < c->out_len) {
        drop_conn(w, c, now);
        return;
    }
    w->n_busy--;
    push_idle(w, c);
}

/* recv into c->in, noting the kernel's receive timestamp of the data read in c->rx_ns. */
static ssize_t read_stamped(struct worker *w, struct conn *c)
{
    if (!w->rx_stamps)
        return recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {c->in + c->in_len, c->in_cap - c->in_len};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = control.buf,
                        .msg_controllen = sizeof control.buf};
    ssize_t r = recvmsg(c->fd, &mh, 0);
    for (struct cmsghdr *cm = r > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            c->rx_ns = (int64_t)ts.tv_sec * NS + ts.tv_nsec - w->real_minus_mono;
        }
    return r;
}

/* Reads what c's socket has; completes the response when it is all there. */
static void on_readable(struct worker *w, struct conn *c, int64_t now)
{
    if (c->state == C_IDLE) {
        /* The server closed an idle connection (or sent something unasked): reopen it. */
        char tmp[256];
        ssize_t r = recv(c->fd, tmp, sizeof tmp, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        drop_conn(w, c, now);
        return;
    }
    for (;;) {
        if (c->in_len == c->in_cap) {
            size_t cap = c->in_cap * 2;
            char *bigger = cap > MAX_RESPONSE_BYTES ? NULL : realloc(c->in, cap + 1);
            if (!bigger) {
                fail_request(w, c, O_CONN_ERROR, "answer too large", now);
                return;
            }
            c->in = bigger;
            c->in_cap = cap;
        }
        ssize_t r = read_stamped(w, c);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return;
        if (r < 0) {
            fail_request(w, c, O_CONN_ERROR, strerror(errno), now);
            return;
        }
        c->in_len += (size_t)r;
        int rc = vg_http_resp_parse(&c->resp, c->in, c->in_len, r == 0);
        if (rc == VG_HTTP_DONE) {
            /* The answer's arrival: the kernel's receive time of its last bytes when known
               (the read may come later than that, see wait_next), else now. */
            int64_t done = now_ns();
            if (c->rx_ns > c->sent_ns && c->rx_ns <= done)
                done = c->rx_ns;
            on_response(w, c, done);
            return;
        }
        if (rc == VG_HTTP_BAD) {
            fail_request(w, c, O_CONN_ERROR,
                         c->in_len ? "not a valid HTTP/1.1 response" : "connection closed", now);
            return;
        }
        if (r == 0) {
            fail_request(w, c, O_CONN_ERROR,
                         c->in_len ? "connection closed mid-answer"
                                   : "connection closed without an answer",
                         now);
            return;
        }
        if (c->in_len < c->in_cap)
            return; /* the socket is drained for now (epoll is level-triggered) */
    }
}

/* Writes what is left of c's request. */
static void write_out(struct worker *w, struct conn *c, int64_t now)
{
    while (c->out_done < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_done, c->out_len - c->out_done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (!c->want_out) {
                c->want_out = 1;
                epoll_set(w, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP | EPOLLOUT);
            }
            return;
        }
        if (n < 0) {
            fail_request(w, c, O_CONN_ERROR, strerror(errno), now);
            return;
        }
        c->out_done += (size_t)n;
    }
    if (c->want_out) {
        c->want_out = 0;
        epoll_set(w, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP);
    }
}

static void on_connected(struct worker *w, struct conn *c, int64_t now)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
        w->connect_errors++;
        c->state = C_DOWN;
        close(c->fd);
        c->fd = -1;
        c->retry_ns = now + RECONNECT_BACKOFF_NS;
        return;
    }
    w->connects++;
    c->want_out = 0;
    epoll_set(w, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP);
    push_idle(w, c);
}

/* ---- sending ------------------------------------------------------------------------------ */

/* Starts sending the request already copied into c->out. */
static void start_request(struct worker *w, struct conn *c, int64_t due_abs, int64_t now)
{
    c->due_ns = due_abs;
    c->sent_ns = now;
    c->state = C_BUSY;
    w->n_busy++;
    vg_http_resp_reset(&c->resp);
    c->in_len = 0;
    c->rx_ns = 0;
}

/* Sends the oldest waiting feedback on a free connection. */
static void send_feedback(struct worker *w, int64_t now)
{
    const struct vg_load_plan *p = w->sh->plan;
    struct pending_fb f = w->pending[w->pending_head];
    w->pending_head = (w->pending_head + 1) % w->pending_cap;
    w->n_pending--;
    struct conn *c = pop_idle(w);
    const struct vg_req_pool *pool = &p->pools[VG_KIND_FEEDBACK];
    c->kind = VG_KIND_FEEDBACK;
    c->warmup = c->spike = 0;
    c->seq = f.seq;
    c->fb_expect = f.expect;
    c->out_len = pool->len[f.label];
    c->out_done = 0;
    memcpy(c->out, pool->bytes + pool->off[f.label], c->out_len);
    vg_load_format_id(c->id, "fdbk", p->run_tag, f.seq);
    memcpy(c->out + pool->id_off[f.label], c->id, VG_LOAD_ID_LEN);
    vg_load_format_id(c->out + pool->id2_off[f.label], "load", p->run_tag, f.seq);
    start_request(w, c, f.due_ns, now);
    w->groups[VG_KIND_FEEDBACK].sent++;
    write_out(w, c, now);
}

/* Sends waiting feedback, then due requests, while connections are free. */
static void dispatch(struct worker *w, int64_t now)
{
    struct shared *sh = w->sh;
    const struct vg_load_plan *p = sh->plan;
    uint64_t step = (uint64_t)sh->n_workers;
    while (w->n_pending > 0 && w->n_idle > 0)
        send_feedback(w, now);
    while (w->next_send < w->next_due && w->n_idle > 0) {
        uint64_t i = w->next_send;
        w->next_send += step;
        struct conn *c = pop_idle(w);
        int64_t due;
        c->kind = vg_load_request(p, &sh->sched, i, &due, &c->warmup, &c->spike);
        const struct vg_req_pool *pool = &p->pools[c->kind];
        int which = vg_req_pool_pick(pool, i);
        c->out_len = pool->len[which];
        c->out_done = 0;
        memcpy(c->out, pool->bytes + pool->off[which], c->out_len);
        vg_load_format_id(c->id, "load", p->run_tag, i);
        memcpy(c->out + pool->id_off[which], c->id, VG_LOAD_ID_LEN);
        c->seq = i;
        start_request(w, c, sh->t0 + due, now);
        int64_t lag = now - c->due_ns;
        if (c->warmup) {
            w->groups[VG_GROUP_WARMUP].sent++;
        } else {
            w->groups[c->kind].sent++;
            w->groups[VG_GROUP_TOTAL].sent++;
            if (c->spike)
                w->groups[VG_GROUP_SPIKE].sent++;
            if (lag > w->max_lag)
                w->max_lag = lag;
            w->lag_sum += (double)lag;
            w->lag_n++;
            w->last_send = now;
        }
        atomic_store_explicit(&w->pub_sent,
                              atomic_load_explicit(&w->pub_sent, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        write_out(w, c, now);
    }
}

/* Marks as due every request of this worker whose time has come. */
static void advance_due(struct worker *w, int64_t now)
{
    struct shared *sh = w->sh;
    uint64_t step = (uint64_t)sh->n_workers;
    while (w->next_due < w->end) {
        int seg;
        int64_t due = sh->t0 + vg_schedule_due(&sh->sched, w->next_due, &seg);
        if (due > now)
            break;
        if (sh->sched.seg[seg].warmup)
            w->warmup_scheduled++;
        else
            w->scheduled++;
        w->next_due += step;
    }
}

/* The interruption: no request becomes due from now on. */
static void cut_schedule(struct worker *w, int64_t now)
{
    w->cut = 1;
    w->end = w->next_due;
    w->stop_ns = now;
}

/* Drain time is over: what still waits for a connection is never sent. */
static void drop_backlog(struct worker *w)
{
    struct shared *sh = w->sh;
    uint64_t step = (uint64_t)sh->n_workers;
    for (; w->next_send < w->next_due; w->next_send += step) {
        if (w->next_send < sh->sched.warmup_count)
            w->warmup_unsent++;
        else
            w->unsent++;
    }
    w->fb.unsent += (uint64_t)w->n_pending;
    w->n_pending = 0;
}

/* Timeouts of requests and connection attempts; reopening of connections that are down. */
static void housekeeping(struct worker *w, int64_t now)
{
    int64_t timeout = w->sh->plan->timeout_ns;
    for (int k = 0; k < w->n_conns; k++) {
        struct conn *c = &w->conns[k];
        if (c->state == C_BUSY && now - c->sent_ns > timeout) {
            fail_request(w, c, O_TIMEOUT, "no answer within --timeout", now);
        } else if (c->state == C_CONNECTING && now - c->connect_ns > timeout) {
            w->connect_errors++;
            close(c->fd);
            c->fd = -1;
            c->state = C_DOWN;
            c->retry_ns = now;
        }
        if (c->state == C_DOWN && now >= c->retry_ns)
            start_connect(w, c, now);
    }
}

/* ---- progress line ------------------------------------------------------------------------ */

static void progress_line(struct worker *w, int64_t now)
{
    struct shared *sh = w->sh;
    uint64_t sent = 0, failed = 0, backlog = 0;
    for (int k = 0; k < sh->n_workers; k++) {
        sent += atomic_load_explicit(&sh->workers[k].pub_sent, memory_order_relaxed);
        failed += atomic_load_explicit(&sh->workers[k].pub_failed, memory_order_relaxed);
        backlog += atomic_load_explicit(&sh->workers[k].pub_backlog, memory_order_relaxed);
    }
    double elapsed = (double)(now - sh->t0) / 1e9;
    double since = 1.0 + (double)(now - w->next_progress) / 1e9;
    fprintf(stderr,
            "\r\033[K%6.1f s  sent %7.0f/s  total %llu  failed %llu  waiting %llu  p50 %.3f ms  "
            "p99 %.3f ms",
            elapsed, (double)(sent - w->progress_sent) / (since > 0 ? since : 1.0),
            (unsigned long long)sent, (unsigned long long)failed, (unsigned long long)backlog,
            (double)vg_hist_percentile(&w->interval, 50) / 1e6,
            (double)vg_hist_percentile(&w->interval, 99) / 1e6);
    fflush(stderr);
    w->progress_sent = sent;
    vg_hist_init(&w->interval);
}

/* ---- the loop ----------------------------------------------------------------------------- */

static int wait_events(struct worker *w, struct epoll_event *ev, int64_t wake, int64_t now)
{
    int64_t d = wake > now ? wake - now : 0;
    if (w->use_pwait2) {
        struct timespec ts = {(time_t)(d / NS), (long)(d % NS)};
        int n = epoll_pwait2(w->ep, ev, MAX_EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        w->use_pwait2 = 0;
    }
    if (d == 0)
        return epoll_wait(w->ep, ev, MAX_EVENTS, 0);
    if (wake != w->timer_armed) {
        struct itimerspec its = {.it_value = {(time_t)(wake / NS), (long)(wake % NS)}};
        timerfd_settime(w->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
        w->timer_armed = wake;
    }
    return epoll_wait(w->ep, ev, MAX_EVENTS, -1);
}

/*
 * Waits until `wake` or, unless defer_reads, until a socket is ready. With defer_reads the
 * thread sleeps to the next due send whatever arrives, then collects what is ready: one wake-up
 * per send instead of two (a send, then its answer), which halves the generator's CPU at rates
 * where answers come back between sends. Latency is unaffected: answers are timed by the
 * kernel's receive timestamp, not by when they are read.
 */
static int wait_next(struct worker *w, struct epoll_event *ev, int64_t wake, int64_t now,
                     int defer_reads)
{
    if (defer_reads && wake > now) {
        struct timespec ts = {(time_t)(wake / NS), (long)(wake % NS)};
        if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == 0)
            return epoll_wait(w->ep, ev, MAX_EVENTS, 0);
        errno = EINTR;
        return -1;
    }
    return wait_events(w, ev, wake, now);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    const struct vg_load_plan *p = sh->plan;
    struct epoll_event ev[MAX_EVENTS];
    /* Sends leave on time to within the wake-up latency: without this, the kernel may defer
       a timed wake-up by its default 50 µs slack (measured: mean lag 100 -> 50 µs at 5,000/s). */
    prctl(PR_SET_TIMERSLACK, 1000UL);
    int64_t now = now_ns();
    w->real_minus_mono = realtime_offset();
    for (int k = 0; k < w->n_conns; k++)
        start_connect(w, &w->conns[k], now);
    w->next_check = now + CHECK_EVERY_NS;
    w->next_progress = sh->t0 + NS;
    for (;;) {
        now = now_ns();
        if (!w->cut && atomic_load_explicit(&interrupted, memory_order_relaxed))
            cut_schedule(w, now);
        advance_due(w, now);
        int64_t drain_end = w->stop_ns + p->timeout_ns;
        if (now >= drain_end && w->next_due >= w->end)
            drop_backlog(w); /* and the feedback still waiting */
        dispatch(w, now);
        uint64_t step = (uint64_t)sh->n_workers;
        atomic_store_explicit(&w->pub_backlog, (w->next_due - w->next_send) / step,
                              memory_order_relaxed);
        if (now >= w->next_check) {
            housekeeping(w, now);
            w->next_check = now + CHECK_EVERY_NS;
        }
        if (w->index == 0 && p->progress && now >= w->next_progress) {
            progress_line(w, now);
            while (w->next_progress <= now)
                w->next_progress += NS;
        }
        if (w->next_due >= w->end && w->next_send >= w->next_due && w->n_busy == 0 &&
            w->n_pending == 0)
            break;
        int64_t wake = w->next_check;
        int defer_reads = 0;
        if (w->next_due < w->end && w->n_idle > 0) {
            int seg;
            int64_t due = sh->t0 + vg_schedule_due(&sh->sched, w->next_due, &seg);
            if (due < wake)
                wake = due;
            /* answers may wait for the next send when it is close, and no request is waiting
               for the connection an answer would free; not with feedback, which an answer
               makes due at once */
            defer_reads = w->rx_stamps && due == wake && due - now <= DEFER_MAX_NS &&
                          w->next_send >= w->next_due && !(p->feedback_ratio > 0);
        }
        if ((w->next_send < w->next_due || w->n_pending > 0) && w->n_idle == 0 &&
            drain_end < wake && w->next_due >= w->end)
            wake = drain_end;
        if (w->index == 0 && p->progress && w->next_progress < wake)
            wake = w->next_progress;
        int n = wait_next(w, ev, wake, now, defer_reads);
        if (n < 0 && errno != EINTR)
            break;
        now = now_ns();
        if (w->rx_stamps)
            w->real_minus_mono = realtime_offset();
        for (int k = 0; k < n; k++) {
            struct conn *c = ev[k].data.ptr;
            if (!c) {
                uint64_t ticks;
                ssize_t got = read(w->timer_fd, &ticks, sizeof ticks);
                (void)got; /* expired or not, the timer is disarmed now */
                w->timer_armed = 0;
                continue;
            }
            uint32_t e = ev[k].events;
            if (c->state == C_CONNECTING) {
                on_connected(w, c, now);
                continue;
            }
            if (c->state == C_BUSY && (e & EPOLLOUT) && c->out_done < c->out_len)
                write_out(w, c, now);
            if ((c->state == C_BUSY || c->state == C_IDLE) &&
                (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                on_readable(w, c, now);
        }
    }
    for (int k = 0; k < w->n_conns; k++)
        if (w->conns[k].fd >= 0) {
            close(w->conns[k].fd);
            w->conns[k].fd = -1;
        }
    return NULL;
}

/* ---- setup and results -------------------------------------------------------------------- */

/* One connection attempt before anything else, so an unreachable server is one clear error. */
static int probe(const struct vg_load_plan *p, char *msg, size_t cap)
{
    int fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(msg, cap, "socket: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int rc = connect(fd, (const struct sockaddr *)&p->addr, p->addr_len);
    if (rc)
        snprintf(msg, cap, "cannot connect: %s", strerror(errno));
    close(fd);
    return rc ? -1 : 0;
}

static int worker_init(struct worker *w, struct shared *sh, int index, int n_conns, size_t out_cap)
{
    w->sh = sh;
    w->index = index;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    w->use_pwait2 = !getenv("VIGIL_LOAD_TIMERFD") || strcmp(getenv("VIGIL_LOAD_TIMERFD"), "1");
    w->rx_stamps = !getenv("VIGIL_LOAD_NO_RXSTAMP");
    w->n_conns = n_conns;
    w->conns = calloc((size_t)n_conns, sizeof *w->conns);
    w->idle = calloc((size_t)n_conns, sizeof *w->idle);
    /* a feedback is queued by an answer, which frees a connection that takes the oldest one:
       the queue holds about one per connection, of those closed after their answer */
    w->pending_cap = 2 * n_conns + 64;
    w->pending = calloc((size_t)w->pending_cap, sizeof *w->pending);
    if (w->ep < 0 || w->timer_fd < 0 || !w->conns || !w->idle || !w->pending)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->timer_fd, &ev))
        return -1;
    for (int k = 0; k < n_conns; k++) {
        struct conn *c = &w->conns[k];
        c->fd = -1;
        c->state = C_DOWN;
        c->in_cap = 4096;
        c->in = malloc(c->in_cap + 1);
        c->out = malloc(out_cap);
        if (!c->in || !c->out)
            return -1;
    }
    w->next_due = w->next_send = (uint64_t)index;
    w->end = sh->sched.total;
    w->stop_ns = sh->t0 + sh->sched.end_ns;
    for (int g = 0; g < VG_GROUP_COUNT; g++)
        vg_hist_init(&w->groups[g].hist);
    vg_hist_init(&w->interval);
    return 0;
}

static void worker_release(struct worker *w)
{
    for (int k = 0; k < w->n_conns && w->conns; k++) {
        if (w->conns[k].fd >= 0)
            close(w->conns[k].fd);
        free(w->conns[k].in);
        free(w->conns[k].out);
    }
    free(w->conns);
    free(w->idle);
    free(w->pending);
    if (w->ep >= 0)
        close(w->ep);
    if (w->timer_fd >= 0)
        close(w->timer_fd);
}

static void merge_stats(struct vg_load_stats *d, const struct vg_load_stats *s)
{
    d->sent += s->sent;
    d->ok += s->ok;
    d->expected_errors += s->expected_errors;
    d->unexpected_status += s->unexpected_status;
    d->bad_body += s->bad_body;
    d->conn_errors += s->conn_errors;
    d->timeouts += s->timeouts;
    vg_hist_merge(&d->hist, &s->hist);
}

static void merge_feedback(struct vg_feedback_stats *d, const struct vg_feedback_stats *s)
{
    d->selected += s->selected;
    d->unsent += s->unsent;
    d->noisy += s->noisy;
    d->correct += s->correct;
    d->incorrect += s->incorrect;
    d->received += s->received;
    d->clean_right += s->clean_right;
    d->labelled += s->labelled;
    d->right += s->right;
    for (int k = 0; k < VG_MAX_STATUS; k++)
        d->statuses[k] += s->statuses[k];
}

static double cpu_seconds(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

int vg_load_run(const struct vg_load_plan *plan, struct vg_load_result *res, char *msg,
                size_t msg_cap)
{
    struct shared sh = {.plan = plan};
    int rc = -1, started = 0;
    memset(res, 0, sizeof *res);
    for (int g = 0; g < VG_GROUP_COUNT; g++)
        vg_hist_init(&res->groups[g].hist);
    if (probe(plan, msg, msg_cap))
        return -1;
    vg_schedule_init(&sh.sched, plan);
    size_t out_cap = 0;
    for (int k = 0; k < VG_KIND_COUNT; k++)
        if (plan->pools[k].max_len > out_cap)
            out_cap = plan->pools[k].max_len;
    sh.n_workers = plan->threads;
    atomic_init(&sh.reports_left, plan->max_reports);
    sh.workers = calloc((size_t)sh.n_workers, sizeof *sh.workers);
    if (!sh.workers) {
        snprintf(msg, msg_cap, "out of memory");
        return -1;
    }
    for (int k = 0; k < sh.n_workers; k++)
        sh.workers[k].ep = sh.workers[k].timer_fd = -1;
    /* Time 0 of the schedule leaves the threads a moment to open their connections. */
    sh.t0 = now_ns() + 50000000LL;
    for (int k = 0; k < sh.n_workers; k++) {
        int n = plan->connections / sh.n_workers + (k < plan->connections % sh.n_workers);
        if (worker_init(&sh.workers[k], &sh, k, n, out_cap)) {
            snprintf(msg, msg_cap, "cannot set up the connections: %s", strerror(errno));
            goto out;
        }
    }

    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    atomic_store(&interrupted, 0);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    for (; started < sh.n_workers; started++)
        if (pthread_create(&sh.workers[started].thread, NULL, worker_main, &sh.workers[started]))
            break;
    if (started < sh.n_workers) {
        atomic_store(&interrupted, 1);
        snprintf(msg, msg_cap, "cannot start a thread");
    }
    for (int k = 0; k < started; k++)
        pthread_join(sh.workers[k].thread, NULL);
    getrusage(RUSAGE_SELF, &ru1);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (plan->progress)
        fputs("\r\033[K", stderr);
    if (started < sh.n_workers)
        goto out;

    int64_t t_measured = sh.t0 + plan->warmup_ns, last_send = 0, last_done = 0;
    double lag_sum = 0;
    uint64_t lag_n = 0;
    for (int k = 0; k < sh.n_workers; k++) {
        const struct worker *w = &sh.workers[k];
        for (int g = 0; g < VG_GROUP_COUNT; g++)
            merge_stats(&res->groups[g], &w->groups[g]);
        for (int s = 0; s < VG_MAX_STATUS; s++)
            res->statuses[s] += w->statuses[s];
        res->scheduled += w->scheduled;
        res->warmup_scheduled += w->warmup_scheduled;
        res->unsent += w->unsent;
        res->warmup_unsent += w->warmup_unsent;
        res->connects += w->connects;
        res->connect_errors += w->connect_errors;
        merge_feedback(&res->feedback, &w->fb);
        if (w->max_lag > res->max_lag_ns)
            res->max_lag_ns = w->max_lag;
        lag_sum += w->lag_sum;
        lag_n += w->lag_n;
        if (w->last_send > last_send)
            last_send = w->last_send;
        if (w->last_done > last_done)
            last_done = w->last_done;
        if (w->cut)
            res->interrupted = 1;
    }
    res->mean_lag_ns = lag_n ? lag_sum / (double)lag_n : 0;
    double planned = (double)plan->duration_ns / 1e9;
    if (res->interrupted) {
        int64_t stop = sh.workers[0].stop_ns;
        planned = stop > t_measured ? (double)(stop - t_measured) / 1e9 : 0;
    }
    double sent_span = last_send > t_measured ? (double)(last_send - t_measured) / 1e9 : 0;
    res->send_seconds = sent_span > planned ? sent_span : planned;
    res->elapsed_seconds = last_done > t_measured ? (double)(last_done - t_measured) / 1e9 : 0;
    res->cpu_user_s = cpu_seconds(&ru1.ru_utime) - cpu_seconds(&ru0.ru_utime);
    res->cpu_sys_s = cpu_seconds(&ru1.ru_stime) - cpu_seconds(&ru0.ru_stime);
    rc = 0;
out:
    for (int k = 0; k < sh.n_workers; k++)
        worker_release(&sh.workers[k]);
    free(sh.workers);
    return rc;
}
