/*
 * `vigil run MODEL.onnx --input NAME=FILE ... [--out-dir DIR]`: one inference from files, outputs
 * as JSON on stdout (and optionally as .npy files).
 *
 * Output format (a subset of the Open Inference Protocol's response, keyed by output name):
 *   {"outputs": {"<name>": {"shape": [...], "datatype": "FP32", "data": [...]}, ...}}
 * data is flattened row-major. BOOL data prints as true/false, BYTES as strings. A ZipMap output
 * (sequence of maps) prints "datatype": "MAP", "shape": [N] and data as N objects {key: prob}
 * (keys are JSON strings, integer keys in decimal). Floats use %.9g (float32) and %.17g (double),
 * enough to read back the exact value; NaN and infinities, which JSON cannot express, are null.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "vigil/tensor_io.h"

static const char run_usage[] =
    "Usage: vigil run MODEL.onnx --input NAME=FILE [--input NAME=FILE ...] [--out-dir DIR]\n"
    "\n"
    "Runs the model once on tensors read from files and prints every output as JSON:\n"
    "  {\"outputs\": {\"NAME\": {\"shape\": [...], \"datatype\": \"FP32\", \"data\": [...]}}}\n"
    "data is flattened in row-major order. Floats are printed with enough digits to round-trip\n"
    "(9 significant digits for FP32, 17 for FP64). JSON has no NaN or infinity: such values are\n"
    "printed as null (use --out-dir to get them exactly). A ZipMap output (sequence of maps)\n"
    "prints \"datatype\": \"MAP\" and a list of {key: probability} objects, one per row.\n"
    "\n"
    "Options:\n"
    "  -i, --input NAME=FILE  bind graph input NAME to the tensor in FILE: a NumPy .npy file\n"
    "                         (little-endian f4 f8 i8 i4 i1 u1 b1, C order) or an ONNX\n"
    "                         TensorProto .pb file; recognised by the .npy extension or the\n"
    "                         NumPy magic bytes, anything else is read as TensorProto.\n"
    "                         Every graph input must be given exactly once.\n"
    "  -o, --out-dir DIR      also write each output to DIR/<output name>.npy (DIR is created\n"
    "                         if missing; characters other than letters, digits, '.', '-' and\n"
    "                         '_' in the name become '_'). ZipMap outputs are written as their\n"
    "                         [N, classes] probabilities; string outputs are skipped with a\n"
    "                         warning (.npy holds numbers only).\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 success; 1 the model, an input file or the run failed, an input is unknown\n"
    "or missing, or an output could not be written (message on stderr); 2 usage error.\n";

struct run_input {
    const char *name;
    const char *file;
    int index; /* graph input index */
    struct vg_tensor tensor;
    int loaded;
};

static int looks_like_npy(const char *path)
{
    size_t n = strlen(path);
    if (n >= 4 && !strcasecmp(path + n - 4, ".npy"))
        return 1;
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0; /* the .pb reader reports why the file cannot be opened */
    char magic[6];
    int yes = fread(magic, 1, sizeof(magic), f) == sizeof(magic) &&
              !memcmp(magic, "\x93NUMPY", sizeof(magic));
    fclose(f);
    return yes;
}

static int load_input(const char *cmd, struct run_input *in, const struct vg_io_info *io)
{
    struct vg_error err = {0};
    int rc = looks_like_npy(in->file) ? vg_tensor_read_npy(in->file, &in->tensor, &err)
                                      : vg_tensor_read_pb(in->file, &in->tensor, NULL, &err);
    if (rc)
        return vg_cli_fail(cmd, "input '%s': cannot read %s", in->name,
                           err.msg[0] ? err.msg : vg_strerror(rc));
    in->loaded = 1;
    if (in->tensor.dtype != io->dtype)
        return vg_cli_fail(cmd, "input '%s': %s holds %s data but the model expects %s%s", in->name,
                           in->file, vg_dtype_name(in->tensor.dtype), vg_dtype_name(io->dtype),
                           in->tensor.dtype == VG_DT_DOUBLE && io->dtype == VG_DT_FLOAT
                               ? " (NumPy arrays default to float64: save with "
                                 ".astype(numpy.float32))"
                               : "");
    return 0;
}

/* ---- JSON output --------------------------------------------------------------------------- */

static void print_shape(FILE *f, const struct vg_tensor *t)
{
    putc('[', f);
    for (int d = 0; d < t->rank; d++) {
        if (d)
            fputs(", ", f);
        vg_json_i64(f, t->dims[d]);
    }
    putc(']', f);
}

static void print_value(FILE *f, const struct vg_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case VG_DT_FLOAT: vg_json_f32(f, ((const float *)t->data)[i]); break;
    case VG_DT_DOUBLE: vg_json_f64(f, ((const double *)t->data)[i]); break;
    case VG_DT_INT64: vg_json_i64(f, ((const int64_t *)t->data)[i]); break;
    case VG_DT_INT32: vg_json_i64(f, ((const int32_t *)t->data)[i]); break;
    case VG_DT_INT8: vg_json_i64(f, ((const int8_t *)t->data)[i]); break;
    case VG_DT_UINT8: vg_json_i64(f, ((const uint8_t *)t->data)[i]); break;
    case VG_DT_BOOL: fputs(((const uint8_t *)t->data)[i] ? "true" : "false", f); break;
    case VG_DT_STRING: vg_json_str(f, ((const char *const *)t->data)[i]); break;
    case VG_DT_UNDEFINED: fputs("null", f); break;
    }
}

static void print_map_key(FILE *f, const struct vg_tensor *keys, int64_t j)
{
    if (keys->dtype == VG_DT_STRING) {
        vg_json_str(f, ((const char *const *)keys->data)[j]);
    } else {
        putc('"', f);
        vg_json_i64(f, ((const int64_t *)keys->data)[j]); /* ZipMap keys: int64 or string */
        putc('"', f);
    }
}

static void print_output(FILE *f, const char *name, const struct vg_tensor *t)
{
    vg_json_str(f, name);
    fputs(": {\"shape\": ", f);
    if (t->map_keys) {
        int64_t n_classes = vg_tensor_numel(t->map_keys);
        int64_t n_rows = n_classes ? vg_tensor_numel(t) / n_classes : 0;
        fprintf(f, "[%lld], \"datatype\": \"MAP\", \"data\": [", (long long)n_rows);
        for (int64_t r = 0; r < n_rows; r++) {
            fputs(r ? ", {" : "{", f);
            for (int64_t j = 0; j < n_classes; j++) {
                fputs(j ? ", " : "", f);
                print_map_key(f, t->map_keys, j);
                fputs(": ", f);
                print_value(f, t, r * n_classes + j);
            }
            putc('}', f);
        }
        fputs("]}", f);
        return;
    }
    print_shape(f, t);
    fputs(", \"datatype\": ", f);
    vg_json_str(f, vg_dtype_name(t->dtype));
    fputs(", \"data\": [", f);
    int64_t n = vg_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        if (i)
            fputs(i % 16 ? ", " : ",\n  ", f); /* keep lines short for people reading it */
        print_value(f, t, i);
    }
    fputs("]}", f);
}

/* ---- .npy output --------------------------------------------------------------------------- */

static int write_output_npy(const char *cmd, const char *dir, int index, const char *name,
                            const struct vg_tensor *t)
{
    if (t->dtype == VG_DT_STRING) {
        fprintf(stderr, "vigil %s: warning: output '%s' holds strings; not written to %s\n", cmd,
                name, dir);
        return 0;
    }
    /* Output names come from the model: keep them from escaping DIR or hiding as dot files. */
    size_t len = strlen(name);
    char *path = malloc(strlen(dir) + len + 32);
    if (!path)
        return vg_cli_fail(cmd, "out of memory");
    char *p = path + sprintf(path, "%s/", dir);
    if (len == 0 || name[0] == '.')
        p += sprintf(p, "output%d_", index);
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '-' || ch == '_';
        *p++ = ok ? ch : '_';
    }
    strcpy(p, ".npy");

    struct vg_tensor plain = *t;
    plain.map_keys = NULL;
    if (t->map_keys) {
        int64_t n_classes = vg_tensor_numel(t->map_keys);
        plain.rank = 2;
        plain.dims[0] = n_classes ? vg_tensor_numel(t) / n_classes : 0;
        plain.dims[1] = n_classes;
    }
    struct vg_error err = {0};
    int rc = vg_tensor_write_npy(path, &plain, &err);
    if (rc)
        rc = vg_cli_fail(cmd, "output '%s': %s", name, err.msg[0] ? err.msg : vg_strerror(rc));
    free(path);
    return rc;
}

static int ensure_dir(const char *cmd, const char *dir)
{
    struct stat st;
    if (!stat(dir, &st)) {
        if (S_ISDIR(st.st_mode))
            return 0;
        return vg_cli_fail(cmd, "%s exists and is not a directory", dir);
    }
    if (mkdir(dir, 0777) && errno != EEXIST)
        return vg_cli_fail(cmd, "cannot create %s: %s", dir, strerror(errno));
    return 0;
}

/* ---- the command --------------------------------------------------------------------------- */

static int run_run(int argc, char **argv)
{
    const char *cmd = argv[0], *model_path = NULL, *out_dir = NULL;
    struct run_input *inputs = calloc((size_t)argc, sizeof(*inputs));
    int n_inputs = 0, rc = VG_CLI_OK, options_done = 0;
    struct vg_model *m = NULL;
    struct vg_session *s = NULL;
    if (!inputs)
        return vg_cli_fail(cmd, "out of memory");

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int got = 0;
        if (!options_done && !strcmp(a, "--")) {
            options_done = 1;
            continue;
        }
        if (!options_done && a[0] == '-' && a[1]) {
            if ((got = vg_cli_opt_value(argc, argv, &i, "--input", &v)) ||
                (got = vg_cli_opt_value(argc, argv, &i, "-i", &v))) {
                if (got < 0) {
                    rc = vg_cli_usage_error(cmd, "%s needs NAME=FILE", a);
                    goto out;
                }
                const char *eq = strchr(v, '=');
                if (!eq || eq == v || !eq[1]) {
                    rc = vg_cli_usage_error(cmd, "--input expects NAME=FILE, got '%s'", v);
                    goto out;
                }
                /* argv strings are ours to cut: the name ends at the first '='. */
                ((char *)eq)[0] = '\0';
                inputs[n_inputs++] = (struct run_input){.name = v, .file = eq + 1, .index = -1};
            } else if ((got = vg_cli_opt_value(argc, argv, &i, "--out-dir", &v)) ||
                       (got = vg_cli_opt_value(argc, argv, &i, "-o", &v))) {
                if (got < 0 || !*v) {
                    rc = vg_cli_usage_error(cmd, "%s needs a directory", a);
                    goto out;
                }
                out_dir = v;
            } else {
                rc = vg_cli_usage_error(cmd, "unknown option '%s'", a);
                goto out;
            }
        } else if (!model_path) {
            model_path = a;
        } else {
            rc = vg_cli_usage_error(cmd, "one model at a time (got '%s' and '%s')", model_path, a);
            goto out;
        }
    }
    if (!model_path) {
        rc = vg_cli_usage_error(cmd, "missing MODEL.onnx");
        goto out;
    }

    rc = vg_cli_load_model(cmd, model_path, &m);
    if (rc)
        goto out;

    /* Match names first, so a typo is reported before any file is read. */
    for (int k = 0; k < n_inputs; k++) {
        struct run_input *in = &inputs[k];
        in->index = vg_model_input_index(m, in->name);
        if (in->index < 0) {
            fprintf(stderr, "vigil %s: the model has no input named '%s'; its inputs are:", cmd,
                    in->name);
            for (int j = 0; j < vg_model_n_inputs(m); j++)
                fprintf(stderr, " %s", vg_model_input(m, j)->name);
            fputc('\n', stderr);
            rc = VG_CLI_FAIL;
            goto out;
        }
        for (int j = 0; j < k; j++)
            if (inputs[j].index == in->index) {
                rc = vg_cli_fail(cmd, "input '%s' given twice", in->name);
                goto out;
            }
    }
    for (int j = 0; j < vg_model_n_inputs(m); j++) {
        int given = 0;
        for (int k = 0; k < n_inputs; k++)
            given |= inputs[k].index == j;
        if (!given) {
            const struct vg_io_info *io = vg_model_input(m, j);
            rc = vg_cli_fail(cmd, "missing input '%s' (%s): pass --input %s=FILE", io->name,
                             vg_dtype_name(io->dtype), io->name);
            goto out;
        }
    }

    struct vg_error err = {0};
    s = vg_session_new(m);
    if (!s) {
        rc = vg_cli_fail(cmd, "out of memory creating a session");
        goto out;
    }
    for (int k = 0; k < n_inputs; k++) {
        struct run_input *in = &inputs[k];
        rc = load_input(cmd, in, vg_model_input(m, in->index));
        if (rc)
            goto out;
        int erc = vg_session_set_input(s, in->index, &in->tensor, &err);
        if (erc) {
            rc = vg_cli_fail(cmd, "input '%s' from %s: %s", in->name, in->file,
                             err.msg[0] ? err.msg : vg_strerror(erc));
            goto out;
        }
    }
    int erc = vg_session_run(s, &err);
    if (erc) {
        rc = vg_cli_fail(cmd, "run failed: %s", err.msg[0] ? err.msg : vg_strerror(erc));
        goto out;
    }

    fputs("{\"outputs\": {", stdout);
    for (int j = 0; j < vg_model_n_outputs(m); j++) {
        const struct vg_tensor *t = vg_session_output(s, j);
        if (!t) {
            fputs("}}\n", stdout);
            rc = vg_cli_fail(cmd, "output %d missing after the run", j);
            goto out;
        }
        fputs(j ? ",\n " : "\n ", stdout);
        print_output(stdout, vg_model_output(m, j)->name, t);
    }
    fputs("\n}}\n", stdout);

    if (out_dir) {
        rc = ensure_dir(cmd, out_dir);
        for (int j = 0; !rc && j < vg_model_n_outputs(m); j++)
            rc = write_output_npy(cmd, out_dir, j, vg_model_output(m, j)->name,
                                  vg_session_output(s, j));
    }
out:
    for (int k = 0; k < n_inputs; k++)
        if (inputs[k].loaded)
            vg_tensor_free_data(&inputs[k].tensor);
    free(inputs);
    vg_session_free(s);
    vg_model_free(m);
    return rc;
}

const struct vg_cli_command vg_cli_cmd_run = {
    .name = "run",
    .summary = "run a model on input tensors from .npy/.pb files, print outputs as JSON",
    .usage = run_usage,
    .run = run_run,
};
