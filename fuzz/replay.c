/*
 * Replays inputs through a fuzz target without libFuzzer: every regular file named on the command
 * line, or found directly in a directory named there, goes once through LLVMFuzzerTestOneInput.
 * This is how the corpora run as ctest tests with gcc (and under ASan in the sanitizer build).
 * Exit status 1 when an argument cannot be read or no input was found.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Larger than any seed; libFuzzer's own default -max_len is far below it. */
#define REPLAY_MAX_INPUT ((long)64 << 20)

static int replay_file(const char *path, long *n_replayed)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long sz;
    int rc = -1;
    if (!f) {
        perror(path);
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        sz > REPLAY_MAX_INPUT) {
        fprintf(stderr, "%s: cannot read (or larger than %ld bytes)\n", path, REPLAY_MAX_INPUT);
        goto out;
    }
    /* An exact-size heap copy, so ASan sees any read past the input's end. */
    buf = malloc(sz ? (size_t)sz : 1);
    if (!buf || fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        fprintf(stderr, "%s: read failed\n", path);
        goto out;
    }
    LLVMFuzzerTestOneInput(buf, (size_t)sz);
    (*n_replayed)++;
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Files directly in `dir`, in name order so runs are reproducible. */
static int replay_dir(const char *dir, long *n_replayed)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!d) {
        perror(dir);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) {
                rc = -1;
                goto out;
            }
            names = grown;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        if (!(names[n] = malloc(len))) {
            rc = -1;
            goto out;
        }
        snprintf(names[n++], len, "%s/%s", dir, e->d_name);
    }
    if (n > 0)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode) && replay_file(names[i], n_replayed))
            rc = -1;
    }
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    long n_replayed = 0;
    int rc = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            rc = 1;
        } else if (S_ISDIR(st.st_mode) ? replay_dir(argv[i], &n_replayed)
                                       : replay_file(argv[i], &n_replayed)) {
            rc = 1;
        }
    }
    printf("%ld inputs replayed\n", n_replayed);
    if (n_replayed == 0)
        rc = 1;
    return rc;
}
