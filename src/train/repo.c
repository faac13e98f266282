/*
 * Model repository writer (include/vigil/repo.h): numbered version directories made visible by
 * one rename.
 *
 * Why each step:
 * - The version directory is built under a hidden name in the model directory itself, so the
 *   final rename stays within one filesystem and is atomic; readers skip names starting with '.'.
 * - Every file is fsync'd before the rename, and the model directory after it, so after a crash
 *   the version is either absent or complete, never present with empty files.
 * - renameat2(RENAME_NOREPLACE) keeps a concurrent run that picked the same number from replacing
 *   a version; filesystems without it fall back to rename(), which still refuses to replace a
 *   non-empty directory.
 * - Termination signals are deferred while the temporary directory exists: a handler that only
 *   records the signal replaces their default action, and vg_repo_end restores the old action and
 *   re-raises the signal after the cleanup. The cleanup thus runs in ordinary code (no
 *   async-signal-safety constraints). Blocking the signals would not do: the mask is per thread,
 *   and a process-directed signal goes to any thread not blocking it, such as the engine's pool
 *   workers, whose default action then ends the whole process mid-write.
 * - Temporary names end in the writer's pid so a later run can tell an abandoned one (its process
 *   is gone) from one still being written.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "vigil/repo.h"

#define TMP_PREFIX ".tmp-"
/* A version number has at most this many digits (fits int64 comfortably). */
#define MAX_VERSION_DIGITS 15

int vg_repo_valid_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > VG_REPO_MAX_NAME || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

char *vg_repo_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The version an entry name stands for: all digits, no leading zero, >= 1; else 0. */
static int64_t version_of(const char *entry)
{
    size_t n = strlen(entry);
    if (n == 0 || n > MAX_VERSION_DIGITS || entry[0] == '0')
        return 0;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (entry[i] < '0' || entry[i] > '9')
            return 0;
        v = v * 10 + (entry[i] - '0');
    }
    return v;
}

int vg_repo_latest_version(const char *repo, const char *name, int64_t *version,
                           struct vg_error *err)
{
    int rc = 0;
    DIR *d = NULL;
    char *model_dir = vg_repo_path(repo, name);
    *version = 0;
    if (!model_dir) {
        rc = vg__err(err, VG_ENOMEM, "out of memory");
        goto out;
    }
    d = opendir(model_dir);
    if (!d) {
        if (errno != ENOENT)
            rc = vg__err(err, VG_EIO, "cannot read %s: %s", model_dir, strerror(errno));
        goto out;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t v = version_of(e->d_name);
        if (v <= *version)
            continue;
        char *path = vg_repo_path(model_dir, e->d_name);
        if (!path) {
            rc = vg__err(err, VG_ENOMEM, "out of memory");
            goto out;
        }
        if (is_dir(path))
            *version = v;
        free(path);
    }
out:
    if (d)
        closedir(d);
    free(model_dir);
    return rc;
}

/* Removes a file or a directory of plain files (what our temporary entries hold). */
static void remove_entry(const char *path)
{
    if (unlink(path) == 0 || errno == ENOENT)
        return;
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(path);
}

/* A temporary entry is abandoned when the pid after its last '-' names no live process (or us:
 * this process has not created one yet, so an entry with our pid is from a dead namesake). */
static int abandoned(const char *entry)
{
    const char *dash = strrchr(entry, '-');
    if (!dash || !dash[1])
        return 0;
    char *end;
    long pid = strtol(dash + 1, &end, 10);
    if (*end || pid <= 0)
        return 0;
    if (pid == (long)getpid())
        return 1;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static void remove_abandoned(const char *model_dir)
{
    DIR *d = opendir(model_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) || !abandoned(e->d_name))
            continue;
        char *path = vg_repo_path(model_dir, e->d_name);
        if (path)
            remove_entry(path);
        free(path);
    }
    closedir(d);
}

static int make_dir(const char *path, int *made, struct vg_error *err)
{
    if (mkdir(path, 0755) == 0) {
        *made = 1;
        return 0;
    }
    if (errno == EEXIST && is_dir(path))
        return 0;
    return vg__err(err, VG_EIO, "cannot create directory %s: %s", path, strerror(errno));
}

static int fsync_path(const char *path, int flags, struct vg_error *err)
{
    int fd = open(path, flags | O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vg__err(err, VG_EIO, "cannot open %s: %s", path, strerror(errno));
    int rc = 0;
    /* Some filesystems refuse fsync on directories (EINVAL): nothing more can be done there. */
    if (fsync(fd) != 0 && errno != EINVAL)
        rc = vg__err(err, VG_EIO, "cannot sync %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

static int write_file(const char *path, const void *data, size_t len, struct vg_error *err)
{
    int rc = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return vg__err(err, VG_EIO, "cannot create %s: %s", path, strerror(errno));
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = vg__err(err, VG_EIO, "cannot write %s: %s", path,
                         w < 0 ? strerror(errno) : "no progress");
            goto out;
        }
        p += w;
        len -= (size_t)w;
    }
    if (fsync(fd) != 0)
        rc = vg__err(err, VG_EIO, "cannot sync %s: %s", path, strerror(errno));
out:
    if (close(fd) != 0 && !rc)
        rc = vg__err(err, VG_EIO, "cannot write %s: %s", path, strerror(errno));
    return rc;
}

static const int deferred_signals[VG_REPO_N_SIGNALS] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
/* The signal received during a transaction (one transaction per process at a time). */
static volatile sig_atomic_t pending_signal;

static void note_signal(int sig)
{
    pending_signal = sig;
}

static void defer_signals(unsigned *deferred, struct sigaction old_actions[VG_REPO_N_SIGNALS])
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = note_signal;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    pending_signal = 0;
    for (int i = 0; i < VG_REPO_N_SIGNALS; i++) {
        struct sigaction *old = &old_actions[i];
        if (sigaction(deferred_signals[i], NULL, old) != 0)
            continue;
        /* An ignored signal stays ignored (e.g. SIGINT for a background job of a script). */
        if (old->sa_handler == SIG_IGN)
            continue;
        if (sigaction(deferred_signals[i], &sa, NULL) == 0)
            *deferred |= 1u << i;
    }
}

static void restore_signals(unsigned *deferred,
                            const struct sigaction old_actions[VG_REPO_N_SIGNALS])
{
    for (int i = 0; i < VG_REPO_N_SIGNALS; i++)
        if (*deferred & (1u << i))
            sigaction(deferred_signals[i], &old_actions[i], NULL);
    *deferred = 0;
    int sig = pending_signal;
    pending_signal = 0;
    if (sig)
        raise(sig); /* now with its old action: by default, the process ends here */
}

int vg_repo_begin(struct vg_repo_txn *t, const char *repo, const char *name, struct vg_error *err)
{
    int rc = 0;
    memset(t, 0, sizeof *t);
    if (!repo || !repo[0] || !vg_repo_valid_name(name))
        return vg__err(err, VG_EINVAL, "invalid model name '%s'", name ? name : "");
    defer_signals(&t->deferred, t->old_actions);
    t->repo_dir = strdup(repo);
    t->model_dir = vg_repo_path(repo, name);
    if (!t->repo_dir || !t->model_dir) {
        rc = vg__err(err, VG_ENOMEM, "out of memory");
        goto out;
    }
    rc = make_dir(t->repo_dir, &t->made_repo, err);
    if (rc)
        goto out;
    rc = make_dir(t->model_dir, &t->made_model_dir, err);
    if (rc)
        goto out;
    remove_abandoned(t->model_dir);
    rc = vg_repo_latest_version(repo, name, &t->version, err);
    if (rc)
        goto out;
    t->version++;
    char leaf[64];
    snprintf(leaf, sizeof leaf, TMP_PREFIX "%lld-%ld", (long long)t->version, (long)getpid());
    t->tmp_dir = vg_repo_path(t->model_dir, leaf);
    snprintf(leaf, sizeof leaf, "%lld", (long long)t->version);
    t->final_dir = vg_repo_path(t->model_dir, leaf);
    if (!t->tmp_dir || !t->final_dir) {
        rc = vg__err(err, VG_ENOMEM, "out of memory");
        goto out;
    }
    if (mkdir(t->tmp_dir, 0755) != 0) {
        rc = vg__err(err, VG_EIO, "cannot create directory %s: %s", t->tmp_dir, strerror(errno));
        free(t->tmp_dir); /* not ours: vg_repo_end must not remove it */
        t->tmp_dir = NULL;
        goto out;
    }
out:
    return rc;
}

int vg_repo_put(struct vg_repo_txn *t, const char *file, const void *data, size_t len,
                struct vg_error *err)
{
    if (!t->tmp_dir || t->committed || !vg_repo_valid_name(file))
        return vg__err(err, VG_EINVAL, "vg_repo_put: bad file name or transaction state");
    if (t->n_files >= VG_REPO_MAX_FILES)
        return vg__err(err, VG_EINVAL, "vg_repo_put: more than %d files", VG_REPO_MAX_FILES);
    char *path = vg_repo_path(t->tmp_dir, file);
    char *saved = strdup(file);
    int rc = 0;
    if (!path || !saved) {
        free(saved);
        rc = vg__err(err, VG_ENOMEM, "out of memory");
        goto out;
    }
    t->files[t->n_files++] = saved; /* before writing: a partial file must be cleaned up too */
    rc = write_file(path, data, len, err);
    if (rc)
        goto out;
    if (!strcmp(file, "config.json")) {
        free(t->config);
        t->config = malloc(len ? len : 1);
        if (!t->config) {
            rc = vg__err(err, VG_ENOMEM, "out of memory");
            goto out;
        }
        memcpy(t->config, data, len);
        t->config_len = len;
    }
out:
    free(path);
    return rc;
}

/*
 * Replaces DIR/config.json with `data` atomically: written to DIR/.tmp-config-<pid>, fsync'd,
 * renamed over the old file, then DIR fsync'd. Readers see the old bytes or the new ones.
 */
static int replace_config(const char *dir, const void *data, size_t len, struct vg_error *err)
{
    int rc = 0;
    char leaf[64];
    snprintf(leaf, sizeof leaf, TMP_PREFIX "config-%ld", (long)getpid());
    char *tmp = vg_repo_path(dir, leaf);
    char *dest = vg_repo_path(dir, "config.json");
    if (!tmp || !dest) {
        rc = vg__err(err, VG_ENOMEM, "out of memory");
        goto out;
    }
    unlink(tmp);
    rc = write_file(tmp, data, len, err);
    if (rc)
        goto out;
    if (rename(tmp, dest) != 0) {
        rc = vg__err(err, VG_EIO, "cannot rename %s to %s: %s", tmp, dest, strerror(errno));
        goto out;
    }
    rc = fsync_path(dir, O_DIRECTORY, err);
out:
    if (rc && tmp)
        unlink(tmp);
    free(tmp);
    free(dest);
    return rc;
}

static int install_top_config(struct vg_repo_txn *t, struct vg_error *err)
{
    return replace_config(t->model_dir, t->config, t->config_len, err);
}

int vg_repo_set_config(const char *repo, const char *name, int64_t version, const void *data,
                       size_t len, int *wrote_top, struct vg_error *err)
{
    int rc = 0;
    unsigned deferred = 0;
    struct sigaction old_actions[VG_REPO_N_SIGNALS];
    char *model_dir = NULL, *version_dir = NULL;
    char leaf[32];
    if (wrote_top)
        *wrote_top = 0;
    if (!repo || !repo[0] || !vg_repo_valid_name(name) || version < 1)
        return vg__err(err, VG_EINVAL, "invalid model name '%s' or version %lld", name ? name : "",
                       (long long)version);
    snprintf(leaf, sizeof leaf, "%lld", (long long)version);
    model_dir = vg_repo_path(repo, name);
    version_dir = model_dir ? vg_repo_path(model_dir, leaf) : NULL;
    if (!version_dir) {
        rc = vg__err(err, VG_ENOMEM, "out of memory");
        goto out;
    }
    if (!is_dir(version_dir)) {
        rc = vg__err(err, VG_EINVAL, "%s is not a version directory", version_dir);
        goto out;
    }
    defer_signals(&deferred, old_actions);
    remove_abandoned(version_dir);
    rc = replace_config(version_dir, data, len, err);
    if (rc)
        goto restore;
    /* REPO/NAME/config.json copies the newest version's: keep it a copy. */
    int64_t latest = 0;
    rc = vg_repo_latest_version(repo, name, &latest, err);
    if (rc || latest != version)
        goto restore;
    rc = replace_config(model_dir, data, len, err);
    if (!rc && wrote_top)
        *wrote_top = 1;
restore:
    restore_signals(&deferred, old_actions); /* may end the process, after both writes */
out:
    free(model_dir);
    free(version_dir);
    return rc;
}

int vg_repo_commit(struct vg_repo_txn *t, struct vg_error *err)
{
    if (!t->tmp_dir || t->committed)
        return vg__err(err, VG_EINVAL, "vg_repo_commit: no transaction");
    int rc = fsync_path(t->tmp_dir, O_DIRECTORY, err);
    if (rc)
        return rc;
    /* Whoever pressed Ctrl-C before the version existed wants no version. */
    if (pending_signal)
        return vg__err(err, VG_EIO, "interrupted by signal %d; %s was not written",
                       (int)pending_signal, t->final_dir);
    int r = renameat2(AT_FDCWD, t->tmp_dir, AT_FDCWD, t->final_dir, RENAME_NOREPLACE);
    if (r != 0 && (errno == EINVAL || errno == ENOSYS))
        r = rename(t->tmp_dir, t->final_dir);
    if (r != 0) {
        if (errno == EEXIST || errno == ENOTEMPTY)
            return vg__err(err, VG_EIO,
                           "%s appeared while this version was being written (another run?); "
                           "nothing was written, run again",
                           t->final_dir);
        return vg__err(err, VG_EIO, "cannot rename %s to %s: %s", t->tmp_dir, t->final_dir,
                       strerror(errno));
    }
    t->committed = 1;
    rc = fsync_path(t->model_dir, O_DIRECTORY, err);
    if (!rc && t->made_model_dir)
        rc = fsync_path(t->repo_dir, O_DIRECTORY, err);
    if (rc || !t->config)
        return rc;
    /* A concurrent run may have committed a newer version already: leave its config in place. */
    int64_t latest = 0;
    const char *slash = strrchr(t->model_dir, '/');
    rc = vg_repo_latest_version(t->repo_dir, slash + 1, &latest, err);
    if (rc || latest != t->version)
        return rc;
    return install_top_config(t, err);
}

void vg_repo_end(struct vg_repo_txn *t)
{
    if (!t)
        return;
    if (!t->committed && t->tmp_dir) {
        for (int i = 0; i < t->n_files; i++) {
            char *path = vg_repo_path(t->tmp_dir, t->files[i]);
            if (path)
                unlink(path);
            free(path);
        }
        /* Anything else in there is not ours to know about; rmdir fails and says so by leaving
         * the directory, which the next run removes once this process is gone. */
        rmdir(t->tmp_dir);
    }
    if (!t->committed) {
        if (t->made_model_dir)
            rmdir(t->model_dir);
        if (t->made_repo)
            rmdir(t->repo_dir);
    }
    for (int i = 0; i < t->n_files; i++)
        free(t->files[i]);
    free(t->repo_dir);
    free(t->model_dir);
    free(t->tmp_dir);
    free(t->final_dir);
    free(t->config);
    struct vg_repo_txn copy = *t;
    memset(t, 0, sizeof *t);
    restore_signals(&copy.deferred, copy.old_actions); /* last: it may end the process */
}
