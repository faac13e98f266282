/*
 * `vigil serve`: configuration -> metrics registry -> model store -> drift monitors -> HTTP
 * daemon, then wait for a signal and shut down gracefully (docs/serving.md).
 *
 * Signals: SIGTERM and SIGINT are blocked before any thread exists, so every thread (the
 * libmicrohttpd workers, the session pools' helpers if any) inherits the mask and only the main
 * thread takes them, synchronously with sigwait: no handler, nothing async-signal-unsafe. On the
 * first one the daemon stops accepting, requests already received finish (their replies close
 * the connection), up to --shutdown-grace seconds; a second signal ends the wait at once. Either
 * way the daemon is stopped, every structure freed, and the exit status is 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"
#include "server/server.h"

#define CMD "serve"

/* Many idle keep-alive connections need many descriptors: take all the hard limit allows. */
static void raise_fd_limit(unsigned max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {rl.rlim_max, rl.rlim_max};
        if (!setrlimit(RLIMIT_NOFILE, &want))
            rl = want;
    }
    /* Model files, the access log, epoll and pipes need a few descriptors besides connections. */
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)max_connections + 64 > rl.rlim_cur)
        vg_log("warn",
               "max-connections %u is above what the open file limit (%llu) allows; raise "
               "`ulimit -Hn` or lower --max-connections",
               max_connections, (unsigned long long)rl.rlim_cur);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *signal_name(int sig)
{
    return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal";
}

/* Logs the ready line: the address and every model that serves. */
static void log_ready(const struct vg_server *srv, const struct vg_store *store)
{
    char models[2048];
    size_t n = 0;
    int loaded = 0;
    models[0] = '\0';
    for (int i = 0; i < store->n; i++) {
        const struct vg_store_entry *e = &store->entries[i];
        if (!e->loaded)
            continue;
        loaded++;
        if (n < sizeof models) {
            int w = snprintf(models + n, sizeof models - n, "%s%s v%lld", n ? ", " : ": ", e->name,
                             (long long)e->version);
            n += w > 0 ? (size_t)w : 0;
        }
    }
    vg_log("info", "vigil %s serving %s with %d model(s)%s", VG_VERSION, vg_server_url(srv), loaded,
           models);
    for (int i = 0; i < store->n; i++) {
        const struct vg_store_entry *e = &store->entries[i];
        if (e->loaded)
            continue;
        if (e->version > 0)
            vg_log("warn", "model %s v%lld not loaded: %s", e->name, (long long)e->version,
                   e->reason ? e->reason : "unknown reason");
        else
            vg_log("warn", "model %s not loaded: %s", e->name,
                   e->reason ? e->reason : "unknown reason");
    }
}

/* Waits for SIGTERM/SIGINT, then drains and stops the server. */
static void wait_and_stop(struct vg_server *srv, const struct vg_server_config *cfg,
                          const sigset_t *sigs)
{
    int sig = 0;
    while (sigwait(sigs, &sig))
        ;
    vg_log("info",
           "%s received: no longer accepting connections; up to %u s for %ld request(s) "
           "in progress",
           signal_name(sig), cfg->shutdown_grace_s, vg_server_in_flight(srv));
    vg_server_quiesce(srv);
    double deadline = now_s() + cfg->shutdown_grace_s;
    long left;
    while ((left = vg_server_in_flight(srv)) > 0) {
        double remaining = deadline - now_s();
        if (remaining <= 0) {
            vg_log("warn", "shutdown grace period over: stopping with %ld request(s) in progress",
                   left);
            break;
        }
        struct timespec tick = {0, remaining < 0.01 ? (long)(remaining * 1e9) : 10000000L};
        int again = sigtimedwait(sigs, NULL, &tick);
        if (again > 0) {
            vg_log("warn", "second signal (%s): stopping now with %ld request(s) in progress",
                   signal_name(again), left);
            break;
        }
    }
    vg_server_stop(srv);
}

static int serve_run(int argc, char **argv)
{
    struct vg_server_config cfg;
    if (vg_server_config_load(&cfg, argc, argv)) {
        fprintf(stderr, "Try 'vigil %s --help'.\n", CMD);
        return VG_CLI_USAGE;
    }
    int rc = VG_CLI_FAIL, registry_ready = 0, store_open = 0;
    struct vg_registry registry;
    struct vg_store store;
    struct vg_server *srv = NULL;
    struct vg_error err = {0};

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-reply is an error return, not a death */
    raise_fd_limit(cfg.max_connections);

    if (vg_registry_init(&registry)) {
        vg_log("error", "out of memory");
        goto out;
    }
    registry_ready = 1;
    if (vg_registry_add_process_metrics(&registry, &err) ||
        vg_registry_add_build_info(&registry, VG_VERSION, NULL, &err)) {
        vg_log("error", "cannot register the process metrics: %s", err.msg);
        goto out;
    }
    if (vg_store_open(&store, cfg.models_dir, cfg.default_model, &registry, &err)) {
        if (err.msg[0])
            vg_log("error", "%s", err.msg);
        else
            vg_log("error", "cannot open the model repository '%s'", cfg.models_dir);
        goto out;
    }
    store_open = 1;
    store.max_batch_rows = cfg.max_batch_rows;
    if (vg_quality_attach(&store, &cfg, &registry, &err)) {
        vg_log("error", "cannot set up drift monitoring: %s", err.msg);
        goto out;
    }
    if (vg_server_start(&srv, &cfg, &store, &registry, &err)) {
        vg_log("error", "%s", err.msg);
        goto out;
    }
    log_ready(srv, &store);
    wait_and_stop(srv, &cfg, &sigs);
    vg_log("info", "vigil stopped");
    rc = VG_CLI_OK;
out:
    if (store_open)
        vg_store_close(&store);
    if (registry_ready)
        vg_registry_release(&registry);
    vg_server_config_release(&cfg);
    return rc;
}

const struct vg_cli_command vg_cli_cmd_serve = {
    .name = CMD,
    .summary = "serve a model repository over HTTP (predictions, Open Inference Protocol, metrics)",
    .usage = vg_serve_usage,
    .run = serve_run,
};
