/*
 * The `vigil` command line: one binary, one file per subcommand (cmd_<name>.c), all listed in the
 * table in main.c. Adding a subcommand: write cmd_<name>.c defining
 * `const struct vg_cli_command vg_cli_cmd_<name>`, declare it below and add it to the table.
 *
 * Exit codes shared by every subcommand: 0 success, 1 failure (model, input or output error,
 * message on stderr), 2 usage error (message and a pointer to --help on stderr).
 */
#ifndef VIGIL_CLI_H
#define VIGIL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "vigil/engine.h"

enum { VG_CLI_OK = 0, VG_CLI_FAIL = 1, VG_CLI_USAGE = 2 };

struct vg_cli_command {
    const char *name;
    const char *summary; /* one line for `vigil --help` */
    const char *usage;   /* full text for `vigil <name> --help` */
    /* argv[0] is the subcommand name; returns an exit code. --help never reaches run(). */
    int (*run)(int argc, char **argv);
};

/* The subcommands (one per cmd_*.c file), in the order `vigil --help` lists them. */
extern const struct vg_cli_command vg_cli_cmd_inspect;
extern const struct vg_cli_command vg_cli_cmd_load;
extern const struct vg_cli_command vg_cli_cmd_reference;
extern const struct vg_cli_command vg_cli_cmd_run;
extern const struct vg_cli_command vg_cli_cmd_serve;
extern const struct vg_cli_command vg_cli_cmd_train;

/* ---- helpers shared by subcommands (util.c) ------------------------------------------------ */

/* Prints "vigil <cmd>: <message>\n" on stderr; returns VG_CLI_FAIL. */
int vg_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the usage error and "Try 'vigil <cmd> --help'." on stderr; returns VG_CLI_USAGE. */
int vg_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Matches option `name` at argv[*i]: "--name VALUE" (advancing *i) or "--name=VALUE".
 * Returns 1 and sets *value on a match, 0 when argv[*i] is another argument, -1 when the value
 * is missing (a usage error).
 */
int vg_cli_opt_value(int argc, char **argv, int *i, const char *name, const char **value);

/* Loads a model, printing the engine's message on failure. Returns 0 or VG_CLI_FAIL. */
int vg_cli_load_model(const char *cmd, const char *path, struct vg_model **out);

/* ---- JSON output (json.c): RFC 8259 text, written straight to a FILE ----------------------- */

/* A JSON string: escapes quotes, backslashes and control characters; invalid UTF-8 bytes
 * become U+FFFD so the output stays valid JSON whatever the model's strings hold. */
void vg_json_str(FILE *f, const char *s);
/* Numbers that round-trip: %.9g for float, %.17g for double; NaN and infinities as null. */
void vg_json_f32(FILE *f, float v);
void vg_json_f64(FILE *f, double v);
void vg_json_i64(FILE *f, int64_t v);

/* ---- config.json's drift reference (reference_json.c) --------------------------------------- */

struct cJSON;
struct vg_reference;

/*
 * The "reference" object of config.json (docs/model-repository.md): "rows", "bins", one entry per
 * feature (names in `features`, r's order) and "class_distribution" ({} when r has no class
 * shares; else names in `classes`, r's order). A new cJSON tree the caller deletes; NULL when out
 * of memory. `vigil train` and `vigil reference` both write it through here.
 */
struct cJSON *vg_cli_reference_json(const struct vg_reference *r, int rows,
                                    const char *const *features, const char *const *classes);

#endif
