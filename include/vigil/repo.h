/*
 * vigil model repository: the directory tree `vigil train` writes and the server reads.
 *
 *   REPO/<name>/config.json            copy of the newest version's config.json
 *   REPO/<name>/<version>/model.onnx   version = 1, 2, 3, ... (decimal, no leading zeros)
 *   REPO/<name>/<version>/config.json  that version's own configuration
 *
 * docs/model-repository.md documents the layout and every config.json field.
 *
 * A new version is written as a transaction: vg_repo_begin picks the version number and creates
 * a hidden temporary directory REPO/<name>/.tmp-<version>-<pid>; vg_repo_put writes files into it
 * (each fsync'd); vg_repo_commit renames it to REPO/<name>/<version> and then replaces
 * REPO/<name>/config.json atomically; vg_repo_end cleans up whatever was not committed. Readers
 * therefore see a version directory either complete or not at all. SIGINT, SIGTERM, SIGHUP and
 * SIGQUIT are deferred from vg_repo_begin to vg_repo_end (a handler records them; signals the
 * process ignores stay ignored), so an interrupt cannot leave the temporary directory behind:
 * a signal received before the commit's rename cancels the version; vg_repo_end cleans up,
 * restores the previous actions and re-raises the signal. A process killed
 * with SIGKILL (or a power cut) can leave a .tmp-* entry; vg_repo_begin removes those whose process
 * is gone. Entries whose name starts with '.' are never versions.
 *
 * Ownership: struct vg_repo_txn is caller-allocated; vg_repo_begin fills it, vg_repo_end frees its
 * contents (call it after vg_repo_begin whatever begin returned). A transaction is used by one
 * thread; since it changes process-wide signal actions, a process runs one transaction at a
 * time, and must not change those signals' actions meanwhile. Functions return 0 or a negative
 * VG_E* code with a message naming the path.
 */
#ifndef VIGIL_REPO_H
#define VIGIL_REPO_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil/engine.h"

/* Longest model name, and the characters allowed: letters, digits, '.', '-', '_'; not first '.'. */
#define VG_REPO_MAX_NAME 128
#define VG_REPO_MAX_FILES 8
#define VG_REPO_N_SIGNALS 4

/* "DIR/NAME" in a new malloc'd string (the caller frees it), or NULL when out of memory. */
char *vg_repo_path(const char *dir, const char *name);

/* 1 when `name` is a valid model name (a safe single path component), else 0. */
int vg_repo_valid_name(const char *name);

/*
 * Highest version directory in REPO/<name> (entries that are all decimal digits, value >= 1):
 * *version = 0 when there is none or the directory does not exist. Errors only when the
 * directory exists but cannot be read.
 */
int vg_repo_latest_version(const char *repo, const char *name, int64_t *version,
                           struct vg_error *err);

struct vg_repo_txn {
    char *repo_dir;  /* REPO */
    char *model_dir; /* REPO/<name> */
    char *tmp_dir;   /* REPO/<name>/.tmp-<version>-<pid> */
    char *final_dir; /* REPO/<name>/<version> */
    int64_t version;
    int n_files;
    char *files[VG_REPO_MAX_FILES]; /* names written into tmp_dir, for cleanup */
    char *config;                   /* bytes of the version's config.json, copied to the top */
    size_t config_len;
    int made_repo, made_model_dir; /* created by this transaction: removed again if empty */
    int committed;
    unsigned deferred; /* bit i: deferred_signals[i] has our handler */
    struct sigaction old_actions[VG_REPO_N_SIGNALS];
};

/*
 * Starts writing the next version of `name` in `repo`: creates REPO and REPO/<name> when missing,
 * removes stale temporary entries of dead processes, sets t->version to the latest version + 1
 * and creates the temporary directory. Defers the termination signals (see above).
 */
int vg_repo_begin(struct vg_repo_txn *t, const char *repo, const char *name, struct vg_error *err);

/*
 * Writes `file` (a plain file name) into the version being built and fsyncs it. A file named
 * "config.json" is also remembered as the model-level config that vg_repo_commit installs.
 */
int vg_repo_put(struct vg_repo_txn *t, const char *file, const void *data, size_t len,
                struct vg_error *err);

/*
 * Renames the temporary directory to REPO/<name>/<version> (fails with VG_EIO if that version
 * appeared meanwhile, e.g. written by a concurrent run, or if a deferred signal arrived) and fsyncs REPO/<name>; then, when this is
 * still the newest version, replaces REPO/<name>/config.json with the version's config.json
 * (temporary file + rename). After the rename the version is committed even if installing the
 * top-level config fails (that failure is returned, the version stays).
 */
int vg_repo_commit(struct vg_repo_txn *t, struct vg_error *err);

/*
 * Replaces the config.json of an existing version, REPO/<name>/<version>/config.json, with
 * `data` (temporary file in that directory, fsync, rename, fsync of the directory), and then, when
 * that version is the newest, REPO/<name>/config.json the same way, so it stays a copy
 * (*wrote_top, when not NULL, says whether it was written). Readers see each file old or new,
 * never partial. The termination signals are deferred as in a transaction (a signal arriving
 * meanwhile is re-raised once both files are written), and leftover temporary files of dead
 * processes in the version directory are removed first. Not to be called inside a transaction.
 * Errors: the version directory does not exist (VG_EINVAL), a write or rename failed (VG_EIO;
 * the file it was writing is unchanged).
 */
int vg_repo_set_config(const char *repo, const char *name, int64_t version, const void *data,
                       size_t len, int *wrote_top, struct vg_error *err);

/*
 * Ends the transaction: when not committed, removes the temporary directory and the directories
 * vg_repo_begin created (if they are empty); frees t's contents; then restores the previous
 * signal actions and re-raises a signal received meanwhile (by default ending the process here).
 * Safe on a zeroed struct.
 */
void vg_repo_end(struct vg_repo_txn *t);

#endif
