/*
 * `vigil`: subcommand dispatch. Every subcommand lives in its own cmd_<name>.c; the table below
 * is the one place listing them (and the order `vigil --help` shows).
 */
#include <string.h>

#include "cli/cli.h"

static const struct vg_cli_command *const commands[] = {
    &vg_cli_cmd_inspect, &vg_cli_cmd_load,  &vg_cli_cmd_reference,
    &vg_cli_cmd_run,     &vg_cli_cmd_serve, &vg_cli_cmd_train,
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
    fputs("Usage: vigil <command> [options]\n"
          "       vigil <command> --help\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fputs("\n"
          "Exit status: 0 success, 1 failure (message on stderr), 2 usage error.\n",
          f);
}

static int is_help(const char *arg)
{
    return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return VG_CLI_USAGE;
    }
    if (is_help(argv[1]) || !strcmp(argv[1], "help")) {
        /* `vigil help CMD` reads naturally too. */
        if (argc > 2 && strcmp(argv[1], "help") == 0) {
            for (size_t i = 0; i < N_COMMANDS; i++)
                if (!strcmp(argv[2], commands[i]->name)) {
                    fputs(commands[i]->usage, stdout);
                    return VG_CLI_OK;
                }
            fprintf(stderr, "vigil: unknown command '%s'\n\n", argv[2]);
            usage(stderr);
            return VG_CLI_USAGE;
        }
        usage(stdout);
        return VG_CLI_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct vg_cli_command *cmd = commands[i];
        if (strcmp(argv[1], cmd->name))
            continue;
        /* --help anywhere before a "--" wins over every other argument. */
        for (int a = 2; a < argc && strcmp(argv[a], "--"); a++)
            if (is_help(argv[a])) {
                fputs(cmd->usage, stdout);
                return VG_CLI_OK;
            }
        int rc = cmd->run(argc - 1, argv + 1);
        if (fflush(stdout) || ferror(stdout)) {
            fprintf(stderr, "vigil %s: error writing to standard output\n", cmd->name);
            return VG_CLI_FAIL;
        }
        return rc;
    }
    fprintf(stderr, "vigil: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return VG_CLI_USAGE;
}
