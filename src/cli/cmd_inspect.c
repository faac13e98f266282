/*
 * `vigil inspect MODEL.onnx [--json]`: what a model takes and gives, and what it is made of.
 * Loading runs every check the engine makes (operators, opsets, types, shapes), so a model that
 * inspects cleanly will also plan; the engine's message is printed when it does not.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char inspect_usage[] =
    "Usage: vigil inspect MODEL.onnx [--json]\n"
    "\n"
    "Loads an ONNX model and prints its inputs and outputs (name, type, shape with symbolic\n"
    "dimension names), opset imports, producer, operator counts by domain:op_type, and the number\n"
    "of nodes left to execute after constant folding.\n"
    "\n"
    "Options:\n"
    "  --json     print one JSON object instead of text:\n"
    "             {\"model\", \"producer\", \"opsets\": {domain: version},\n"
    "              \"inputs\"/\"outputs\": [{\"name\", \"datatype\", \"map\", \"shape\"}],\n"
    "              \"operators\": {\"domain:op_type\": count}, \"n_nodes\", \"n_exec_nodes\"}\n"
    "             A shape is null when undeclared; a dimension is a number, its symbolic\n"
    "             name as a string, or null when unknown.\n"
    "  -h, --help show this help\n"
    "\n"
    "Exit status: 0 success, 1 the model does not load (engine message on stderr), 2 usage.\n";

/* The default ONNX domain is the empty string; show it by its name. */
static const char *domain_name(const char *d)
{
    return (!d || !*d) ? "ai.onnx" : d;
}

struct op_count {
    const char *domain;
    const char *op_type;
    int count;
};

static int op_count_cmp(const void *a, const void *b)
{
    const struct op_count *x = a, *y = b;
    if (x->count != y->count)
        return y->count - x->count;
    int c = strcmp(x->domain, y->domain);
    return c ? c : strcmp(x->op_type, y->op_type);
}

/* Distinct (domain, op_type) pairs with their counts, most frequent first. Caller frees. */
static struct op_count *count_ops(const struct vg_model *m, int *n_out)
{
    int n_nodes = vg_model_n_nodes(m), n = 0;
    struct op_count *ops = calloc(n_nodes > 0 ? (size_t)n_nodes : 1, sizeof(*ops));
    if (!ops)
        return NULL;
    for (int i = 0; i < n_nodes; i++) {
        const char *op_type, *domain;
        vg_model_node(m, i, &op_type, &domain);
        domain = domain_name(domain);
        int j = 0;
        while (j < n && (strcmp(ops[j].domain, domain) || strcmp(ops[j].op_type, op_type)))
            j++;
        if (j == n)
            ops[n++] = (struct op_count){domain, op_type, 0};
        ops[j].count++;
    }
    qsort(ops, (size_t)n, sizeof(*ops), op_count_cmp);
    *n_out = n;
    return ops;
}

static void type_text(FILE *f, const struct vg_io_info *io)
{
    if (io->is_map)
        fprintf(f, "seq(map(%s))", vg_dtype_name(io->dtype));
    else
        fputs(vg_dtype_name(io->dtype), f);
}

static void shape_text(FILE *f, const struct vg_io_info *io)
{
    if (io->rank < 0) {
        fputs("(shape not declared)", f);
        return;
    }
    putc('[', f);
    for (int d = 0; d < io->rank; d++) {
        if (d)
            fputs(", ", f);
        if (io->dims[d] >= 0)
            fprintf(f, "%lld", (long long)io->dims[d]);
        else if (io->dim_names[d] && io->dim_names[d][0])
            fputs(io->dim_names[d], f);
        else
            putc('?', f);
    }
    putc(']', f);
}

static int name_width(const struct vg_io_info *io, int width)
{
    size_t n = strlen(io->name);
    return n > (size_t)width && n < 40 ? (int)n : width;
}

static void print_text(const char *path, const struct vg_model *m, const struct op_count *ops,
                       int n_ops)
{
    const char *producer = vg_model_producer(m);
    printf("model:    %s\n", path);
    printf("producer: %s\n", producer[0] ? producer : "(none)");
    printf("opsets:  ");
    for (int i = 0; i < vg_model_n_opsets(m); i++) {
        const char *domain;
        int64_t version;
        vg_model_opset(m, i, &domain, &version);
        printf("%s %s %lld", i ? "," : "", domain_name(domain), (long long)version);
    }
    printf("\n");
    /* One name column for inputs and outputs, so types and shapes line up. */
    int width = 0;
    for (int i = 0; i < vg_model_n_inputs(m); i++)
        width = name_width(vg_model_input(m, i), width);
    for (int i = 0; i < vg_model_n_outputs(m); i++)
        width = name_width(vg_model_output(m, i), width);
    for (int pass = 0; pass < 2; pass++) {
        int n = pass ? vg_model_n_outputs(m) : vg_model_n_inputs(m);
        printf("%s (%d):\n", pass ? "outputs" : "inputs", n);
        for (int i = 0; i < n; i++) {
            const struct vg_io_info *io = pass ? vg_model_output(m, i) : vg_model_input(m, i);
            printf("  %-*s  ", width, io->name);
            type_text(stdout, io);
            printf("  ");
            shape_text(stdout, io);
            printf("\n");
        }
    }
    printf("operators (%d nodes):\n", vg_model_n_nodes(m));
    for (int i = 0; i < n_ops; i++)
        printf("  %6d  %s:%s\n", ops[i].count, ops[i].domain, ops[i].op_type);
    printf("nodes after constant folding: %d\n", vg_model_n_exec_nodes(m));
}

static void io_json(FILE *f, const struct vg_io_info *io)
{
    fputs("{\"name\": ", f);
    vg_json_str(f, io->name);
    fputs(", \"datatype\": ", f);
    vg_json_str(f, vg_dtype_name(io->dtype));
    fprintf(f, ", \"map\": %s, \"shape\": ", io->is_map ? "true" : "false");
    if (io->rank < 0) {
        fputs("null", f);
    } else {
        putc('[', f);
        for (int d = 0; d < io->rank; d++) {
            if (d)
                fputs(", ", f);
            if (io->dims[d] >= 0)
                vg_json_i64(f, io->dims[d]);
            else if (io->dim_names[d] && io->dim_names[d][0])
                vg_json_str(f, io->dim_names[d]);
            else
                fputs("null", f);
        }
        putc(']', f);
    }
    putc('}', f);
}

static void print_json(const char *path, const struct vg_model *m, const struct op_count *ops,
                       int n_ops)
{
    FILE *f = stdout;
    fputs("{\"model\": ", f);
    vg_json_str(f, path);
    fputs(", \"producer\": ", f);
    vg_json_str(f, vg_model_producer(m));
    fputs(", \"opsets\": {", f);
    for (int i = 0; i < vg_model_n_opsets(m); i++) {
        const char *domain;
        int64_t version;
        vg_model_opset(m, i, &domain, &version);
        fputs(i ? ", " : "", f);
        vg_json_str(f, domain_name(domain));
        fputs(": ", f);
        vg_json_i64(f, version);
    }
    fputs("}", f);
    for (int pass = 0; pass < 2; pass++) {
        int n = pass ? vg_model_n_outputs(m) : vg_model_n_inputs(m);
        fprintf(f, ", \"%s\": [", pass ? "outputs" : "inputs");
        for (int i = 0; i < n; i++) {
            fputs(i ? ", " : "", f);
            io_json(f, pass ? vg_model_output(m, i) : vg_model_input(m, i));
        }
        fputs("]", f);
    }
    fputs(", \"operators\": {", f);
    for (int i = 0; i < n_ops; i++) {
        fputs(i ? ", " : "", f);
        /* Keys are "domain:op_type"; build them through the escaper piecewise. */
        size_t len = strlen(ops[i].domain) + strlen(ops[i].op_type) + 2;
        char *key = malloc(len);
        if (key) {
            snprintf(key, len, "%s:%s", ops[i].domain, ops[i].op_type);
            vg_json_str(f, key);
            free(key);
        } else {
            vg_json_str(f, ops[i].op_type);
        }
        fprintf(f, ": %d", ops[i].count);
    }
    fprintf(f, "}, \"n_nodes\": %d, \"n_exec_nodes\": %d}\n", vg_model_n_nodes(m),
            vg_model_n_exec_nodes(m));
}

static int inspect_run(int argc, char **argv)
{
    const char *cmd = argv[0], *path = NULL;
    int json = 0, options_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && !strcmp(a, "--")) {
            options_done = 1;
        } else if (!options_done && !strcmp(a, "--json")) {
            json = 1;
        } else if (!options_done && a[0] == '-' && a[1]) {
            return vg_cli_usage_error(cmd, "unknown option '%s'", a);
        } else if (!path) {
            path = a;
        } else {
            return vg_cli_usage_error(cmd, "one model at a time (got '%s' and '%s')", path, a);
        }
    }
    if (!path)
        return vg_cli_usage_error(cmd, "missing MODEL.onnx");

    struct vg_model *m = NULL;
    if (vg_cli_load_model(cmd, path, &m))
        return VG_CLI_FAIL;
    int n_ops = 0, rc = VG_CLI_OK;
    struct op_count *ops = count_ops(m, &n_ops);
    if (!ops) {
        rc = vg_cli_fail(cmd, "out of memory");
        goto out;
    }
    if (json)
        print_json(path, m, ops, n_ops);
    else
        print_text(path, m, ops, n_ops);
out:
    free(ops);
    vg_model_free(m);
    return rc;
}

const struct vg_cli_command vg_cli_cmd_inspect = {
    .name = "inspect",
    .summary = "print a model's inputs, outputs, opsets and operators",
    .usage = inspect_usage,
    .run = inspect_run,
};
