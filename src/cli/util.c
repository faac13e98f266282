/* Helpers shared by the subcommands: messages, option values, model loading. */
#include <stdarg.h>
#include <string.h>

#include "cli/cli.h"

int vg_cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "vigil %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return VG_CLI_FAIL;
}

int vg_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "vigil %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'vigil %s --help'.\n", cmd);
    return VG_CLI_USAGE;
}

int vg_cli_opt_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n))
        return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

int vg_cli_load_model(const char *cmd, const char *path, struct vg_model **out)
{
    struct vg_error err = {0};
    int rc = vg_engine_load_file(path, out, &err);
    if (rc)
        return vg_cli_fail(cmd, "cannot load model: %s", err.msg[0] ? err.msg : vg_strerror(rc));
    return 0;
}
