/* The bytes-to-path helper of fuzz.h, linked into every fuzz target. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

static int write_all(int fd, const uint8_t *data, size_t size)
{
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n <= 0)
            return -1;
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

int vg_fuzz_bytes_to_path(const uint8_t *data, size_t size, char *path, size_t path_cap)
{
    int fd = memfd_create("vg_fuzz", MFD_CLOEXEC);
    if (fd < 0) {
        char tmpl[] = "/tmp/vg_fuzz_XXXXXX";
        fd = mkstemp(tmpl);
        if (fd < 0)
            return -1;
        unlink(tmpl); /* /proc/self/fd/N still opens it */
    }
    if (write_all(fd, data, size) < 0) {
        close(fd);
        return -1;
    }
    snprintf(path, path_cap, "/proc/self/fd/%d", fd);
    return fd;
}
