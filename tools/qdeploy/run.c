/* qdeploy run MODEL --input [NAME=]x.npy ... [--output [NAME=]y.npy ...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data/npy.h"
#include "ir/graph.h"

#define MAX_IO 16

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qdeploy run MODEL --input [NAME=]x.npy ... [--output [NAME=]y.npy ...]\n"
            "                  [--threads T] [--reference] [--no-int8]\n"
            "                  [--high-precision fp32|bf16]\n"
            "  Runs the model on .npy inputs (one per graph input, in order, or by name)\n"
            "  and writes outputs as .npy; prints each output's shape and top values.\n"
            "  A symbolic batch dimension takes the inputs' first dimension. QDQ groups\n"
            "  run as INT8 kernels; --no-int8 runs a QDQ model as written, in float.\n"
            "  --high-precision bf16: Conv, MatMul and Gemm with constant weights that\n"
            "  are not INT8 compute in bfloat16 with float32 accumulation (AVX512-BF16).\n");
}

typedef struct named_path {
    const char *name; /* NULL: by position */
    const char *path;
} named_path;

static named_path split_arg(const char *arg)
{
    const char *eq = strchr(arg, '=');
    named_path np = {NULL, arg};
    if (eq) {
        static char names[MAX_IO * 2][256];
        static int next;
        char *buf = names[next++ % (MAX_IO * 2)];
        snprintf(buf, 256, "%.*s", (int)(eq - arg), arg);
        np.name = buf;
        np.path = eq + 1;
    }
    return np;
}

static void print_summary(const qd_tensor_info *o)
{
    printf("%s: %s [", o->name, o->dtype == QD_FLOAT32 ? "float32" : "other");
    for (int i = 0; i < o->rank; i++)
        printf("%s%lld", i ? ", " : "", (long long)o->dims[i]);
    printf("]");
    if (o->dtype == QD_FLOAT32 && o->nbytes >= 4) {
        const float *f = o->data;
        size_t n = o->nbytes / 4, best = 0;
        for (size_t i = 1; i < n; i++)
            if (f[i] > f[best])
                best = i;
        printf("  first: %g  argmax: %zu (%g)", f[0], best, f[best]);
    }
    printf("\n");
}

int qd_cli_run(int argc, char **argv)
{
    const char *model = NULL;
    named_path inputs[MAX_IO], outputs[MAX_IO];
    int n_in = 0, n_out = 0;
    qd_engine_options opt = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--input") && i + 1 < argc && n_in < MAX_IO) {
            inputs[n_in++] = split_arg(argv[++i]);
        } else if (!strcmp(argv[i], "--output") && i + 1 < argc && n_out < MAX_IO) {
            outputs[n_out++] = split_arg(argv[++i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            opt.threads = atoi(argv[++i]);
            if (opt.threads < 1)
                return qd_cli_fail("--threads takes a positive number");
        } else if (!strcmp(argv[i], "--reference")) {
            opt.reference = 1;
        } else if (!strcmp(argv[i], "--no-int8")) {
            opt.qdq_as_written = 1;
        } else if (!strcmp(argv[i], "--high-precision") && i + 1 < argc) {
            if (qd_cli_high_precision(argv[++i], &opt) != 0)
                return 2;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] != '-' && !model) {
            model = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!model || n_in == 0) {
        usage(stderr);
        return 2;
    }
    qd_graph *g = NULL;
    qd_engine *e = NULL;
    qd_tensor *data[MAX_IO] = {0};
    qd_error err = {0};
    int rc = 1;
    qd_status st = qd_graph_load(model, &g);
    if (st != QD_OK) {
        rc = qd_cli_fail_model(model, g, st);
        goto done;
    }
    if ((size_t)n_in != g->n_inputs) {
        rc = qd_cli_fail("%s: the model has %zu inputs, %d given", model, g->n_inputs, n_in);
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        if (qd_npy_read(inputs[i].path, &data[i], &err) != QD_OK) {
            rc = qd_cli_fail("%s", err.message);
            goto done;
        }
        qd_value *v = inputs[i].name ? qd_graph_find_value(g, inputs[i].name) : g->inputs[i];
        if (!v || !v->is_input) {
            rc = qd_cli_fail("%s: no input named '%s'", model, inputs[i].name);
            goto done;
        }
        inputs[i].name = v->name;
        /* A symbolic first dim takes the batch of the data. */
        if (v->rank > 0 && v->dims[0] < 0 && data[i]->rank > 0)
            opt.batch = data[i]->dims[0];
    }
    if ((st = qd_graph_infer_shapes(g)) != QD_OK || (st = qd_graph_simplify(g)) != QD_OK ||
        (st = qd_graph_canonicalize(g)) != QD_OK) {
        rc = qd_cli_fail_model(model, g, st);
        goto done;
    }
    if ((st = qd_engine_create(g, &opt, &e)) != QD_OK) {
        rc = qd_cli_fail("%s: %s", model, qd_engine_error(e));
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        if (qd_engine_set_input(e, inputs[i].name, data[i]->dtype, data[i]->rank, data[i]->dims,
                                data[i]->data) != QD_OK) {
            rc = qd_cli_fail("%s: %s", inputs[i].path, qd_engine_error(e));
            goto done;
        }
    }
    if (qd_engine_run(e) != QD_OK) {
        rc = qd_cli_fail("%s: %s", model, qd_engine_error(e));
        goto done;
    }
    for (int i = 0; i < qd_engine_output_count(e); i++) {
        qd_tensor_info o;
        qd_engine_output_info(e, i, &o);
        print_summary(&o);
    }
    for (int i = 0; i < n_out; i++) {
        int index = -1;
        for (int k = 0; k < qd_engine_output_count(e); k++) {
            qd_tensor_info o;
            qd_engine_output_info(e, k, &o);
            if (outputs[i].name ? !strcmp(o.name, outputs[i].name) : k == i)
                index = k;
        }
        if (index < 0) {
            rc = qd_cli_fail("%s: no output %s%s", model, outputs[i].name ? "named " : "#",
                             outputs[i].name ? outputs[i].name : "");
            goto done;
        }
        qd_tensor_info o;
        qd_engine_output_info(e, index, &o);
        qd_tensor *t = qd_tensor_wrap((qd_dtype)o.dtype, o.rank, o.dims, o.data, 0);
        st = t ? qd_npy_write(outputs[i].path, t, &err) : QD_STATUS_OUT_OF_MEMORY;
        qd_tensor_delete(t);
        if (st != QD_OK) {
            rc = qd_cli_fail("%s", err.message[0] ? err.message : "out of memory");
            goto done;
        }
    }
    rc = 0;
done:
    for (int i = 0; i < MAX_IO; i++)
        qd_tensor_delete(data[i]);
    qd_engine_delete(e);
    qd_graph_delete(g);
    return rc;
}
