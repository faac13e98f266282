/* Helpers shared by the HTTP test tools (http_hammer.c, http_slow_clients.c). */
#ifndef VIGIL_TESTS_HTTP_TOOL_H
#define VIGIL_TESTS_HTTP_TOOL_H

#include <errno.h>
#include <stdlib.h>
#include <time.h>

static inline double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses a decimal integer in [lo, hi] into *out; -1 when s is not one. */
static inline int parse_count(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

#endif
