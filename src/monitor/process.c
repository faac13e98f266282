/*
 * Process and build metrics (Linux).
 *
 * A collector reads /proc/self/stat (utime, stime, starttime, vsize, rss), /proc/stat (btime),
 * /proc/self/fd and getrlimit(RLIMIT_NOFILE) once per scrape into a snapshot; the process_*
 * series are scrape-time functions reading that snapshot. Names and units follow the Prometheus
 * client conventions (seconds, bytes; start time in seconds since the Unix epoch).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"

struct process_snapshot {
    double cpu_seconds;
    double resident_bytes;
    double virtual_bytes;
    double open_fds;
    double max_fds;
    double start_time;
    double boot_time; /* read once */
};

static double read_boot_time(void)
{
    FILE *fp = fopen("/proc/stat", "r");
    char line[256];
    double btime = 0;
    if (!fp)
        return 0;
    while (fgets(line, sizeof line, fp))
        if (strncmp(line, "btime ", 6) == 0) {
            btime = strtod(line + 6, NULL);
            break;
        }
    fclose(fp);
    return btime;
}

static void read_stat(struct process_snapshot *s)
{
    char buf[1024];
    FILE *fp = fopen("/proc/self/stat", "r");
    if (!fp)
        return;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    /* The command name (field 2) is in parentheses and may hold spaces: start after the last ')'.
     * Then field 3 is the state; utime and stime are fields 14 and 15, starttime 22, vsize 23,
     * rss (pages) 24. */
    char *p = strrchr(buf, ')');
    if (!p)
        return;
    p++;
    unsigned long long field[25] = {0};
    int idx = 3;
    char *tok, *save = NULL;
    for (tok = strtok_r(p, " ", &save); tok && idx <= 24; tok = strtok_r(NULL, " ", &save), idx++)
        if (idx >= 14)
            field[idx] = strtoull(tok, NULL, 10);
    if (idx <= 24)
        return;
    double ticks = (double)sysconf(_SC_CLK_TCK);
    double page = (double)sysconf(_SC_PAGESIZE);
    if (ticks <= 0)
        ticks = 100;
    s->cpu_seconds = (double)(field[14] + field[15]) / ticks;
    s->start_time = s->boot_time + (double)field[22] / ticks;
    s->virtual_bytes = (double)field[23];
    s->resident_bytes = (double)field[24] * page;
}

static double count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the directory's own descriptor */
}

static void process_collect(void *arg)
{
    struct process_snapshot *s = arg;
    read_stat(s);
    s->open_fds = count_fds();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        s->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur;
}

static double get_cpu(void *arg)
{
    return ((struct process_snapshot *)arg)->cpu_seconds;
}
static double get_rss(void *arg)
{
    return ((struct process_snapshot *)arg)->resident_bytes;
}
static double get_vsize(void *arg)
{
    return ((struct process_snapshot *)arg)->virtual_bytes;
}
static double get_open_fds(void *arg)
{
    return ((struct process_snapshot *)arg)->open_fds;
}
static double get_max_fds(void *arg)
{
    return ((struct process_snapshot *)arg)->max_fds;
}
static double get_start_time(void *arg)
{
    return ((struct process_snapshot *)arg)->start_time;
}

int vg_registry_add_process_metrics(struct vg_registry *r, struct vg_error *err)
{
    static const struct {
        enum vg_metric_type type;
        const char *name, *help;
        vg_value_fn fn;
    } metrics[] = {
        {VG_METRIC_COUNTER, "process_cpu_seconds_total",
         "Total user and system CPU time spent in seconds.", get_cpu},
        {VG_METRIC_GAUGE, "process_resident_memory_bytes", "Resident memory size in bytes.",
         get_rss},
        {VG_METRIC_GAUGE, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
         get_vsize},
        {VG_METRIC_GAUGE, "process_open_fds", "Number of open file descriptors.", get_open_fds},
        {VG_METRIC_GAUGE, "process_max_fds", "Maximum number of open file descriptors.",
         get_max_fds},
        {VG_METRIC_GAUGE, "process_start_time_seconds",
         "Start time of the process since unix epoch in seconds.", get_start_time},
    };
    struct process_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return -VG_ENOMEM;
    s->boot_time = read_boot_time();
    int rc = vg_registry_add_collector(r, process_collect, free, s);
    if (rc) {
        free(s);
        return rc;
    }
    /* From here the registry owns s. */
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
        struct vg_family *f;
        rc = metrics[i].type == VG_METRIC_COUNTER
                 ? vg_counter_register(r, metrics[i].name, metrics[i].help, NULL, &f, err)
                 : vg_gauge_register(r, metrics[i].name, metrics[i].help, NULL, &f, err);
        if (rc)
            return rc;
        rc = metrics[i].type == VG_METRIC_COUNTER ? vg_counter_func(f, NULL, metrics[i].fn, s)
                                                  : vg_gauge_func(f, NULL, metrics[i].fn, s);
        if (rc) {
            if (err) {
                err->code = -rc;
                snprintf(err->msg, sizeof err->msg, "%s: cannot bind its series", metrics[i].name);
            }
            return rc;
        }
    }
    return 0;
}

int vg_registry_add_build_info(struct vg_registry *r, const char *version, const char *commit,
                               struct vg_error *err)
{
    static const char *const with_commit[] = {"version", "commit", NULL};
    static const char *const without_commit[] = {"version", NULL};
    struct vg_family *f;
    struct vg_gauge *g;
    const char *values[] = {version ? version : "", commit};
    int rc = vg_gauge_register(r, "vigil_build_info",
                               "A metric with a constant '1' value labeled by the version and "
                               "commit from which vigil was built.",
                               commit ? with_commit : without_commit, &f, err);
    if (rc)
        return rc;
    rc = vg_gauge_bind(f, values, &g);
    if (rc)
        return rc;
    vg_gauge_set(g, 1);
    return 0;
}
