/* The ONNX backend node tests (Debian libonnx-testdata) run on the engine:
 * every test whose ops all have an engine kernel must pass, except those
 * listed with a reason in expected_failures.txt.
 *
 * usage: qd_node_tests DATA_DIR EXPECTED_FAILURES [--reference] [FILTER]
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernel.h"
#include "ir/graph.h"
#include "onnx/onnx_io.h"
#include "qdeploy.h"
#include "tensor_pb.h"

#define MAX_TENSORS 32

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int close_enough(const qd_tensor *got, const qd_tensor *want, char *why, size_t n_why)
{
    if (got->dtype != want->dtype) {
        snprintf(why, n_why, "dtype %s, expected %s", qd_dtype_name(got->dtype),
                 qd_dtype_name(want->dtype));
        return 0;
    }
    int64_t n = qd_numel(want->rank, want->dims);
    if (got->rank != want->rank || qd_numel(got->rank, got->dims) != n) {
        snprintf(why, n_why, "rank %d / %lld elements, expected rank %d / %lld elements",
                 got->rank, (long long)qd_numel(got->rank, got->dims), want->rank, (long long)n);
        return 0;
    }
    for (int i = 0; i < want->rank; i++) {
        if (got->dims[i] != want->dims[i]) {
            snprintf(why, n_why, "dim %d is %lld, expected %lld", i, (long long)got->dims[i],
                     (long long)want->dims[i]);
            return 0;
        }
    }
    int is_float = qd_dtype_is_float(want->dtype);
    double rtol = want->dtype == QD_DT_FLOAT16 || want->dtype == QD_DT_BFLOAT16 ? 1e-2 : 1e-3;
    double atol = want->dtype == QD_DT_FLOAT16 || want->dtype == QD_DT_BFLOAT16 ? 1e-2 : 1e-5;
    for (int64_t i = 0; i < n; i++) {
        if (is_float) {
            double a = qd_tensor_get_f64(got, i), b = qd_tensor_get_f64(want, i);
            if (isnan(a) && isnan(b))
                continue;
            if (isinf(b) && a == b)
                continue;
            if (!(fabs(a - b) <= atol + rtol * fabs(b))) {
                snprintf(why, n_why, "element %lld is %.7g, expected %.7g", (long long)i, a, b);
                return 0;
            }
        } else if (qd_tensor_get_i64(got, i) != qd_tensor_get_i64(want, i)) {
            snprintf(why, n_why, "element %lld is %lld, expected %lld", (long long)i,
                     (long long)qd_tensor_get_i64(got, i), (long long)qd_tensor_get_i64(want, i));
            return 0;
        }
    }
    return 1;
}

/* For a model qdeploy cannot load: 1 when one of its ops has no kernel (the
 * test is out of scope), read straight from the protobuf. */
static int has_unclaimed_op(const char *path, char *ops, size_t n_ops)
{
    size_t size;
    char *buf = read_all(path, &size);
    if (!buf)
        return 0;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(&qd_protobuf_allocator, size,
                                                     (const uint8_t *)buf);
    free(buf);
    int unclaimed = 0;
    for (size_t i = 0; mp && mp->graph && i < mp->graph->n_node; i++) {
        const Onnx__NodeProto *n = mp->graph->node[i];
        if (!strstr(ops, n->op_type) && strlen(ops) + strlen(n->op_type) + 2 < n_ops) {
            strcat(ops, ops[0] ? "," : "");
            strcat(ops, n->op_type);
        }
        if (!qd_ref_kernel(qd_op_lookup(n->domain, n->op_type)))
            unclaimed = 1;
    }
    if (mp)
        onnx__model_proto__free_unpacked(mp, &qd_protobuf_allocator);
    return unclaimed;
}

/* Runs one test folder. Returns 1 pass, 0 fail, -1 skipped (unclaimed op). */
static int run_test(const char *dir, int reference, char *why, size_t n_why, char *ops,
                    size_t n_ops)
{
    char path[8800];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    qd_graph *g = NULL;
    ops[0] = '\0';
    qd_status st = qd_graph_load(path, &g);
    if (st != QD_OK) {
        snprintf(why, n_why, "load: %s", qd_graph_error(g));
        qd_graph_delete(g);
        return has_unclaimed_op(path, ops, n_ops) ? -1 : 0;
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        const qd_node *n = g->nodes[i];
        if (!strstr(ops, n->op_type) && strlen(ops) + strlen(n->op_type) + 2 < n_ops) {
            strcat(ops, ops[0] ? "," : "");
            strcat(ops, n->op_type);
        }
        if (qd_ref_kernel(n->op) == NULL) {
            snprintf(why, n_why, "op %s not claimed", n->op_type);
            qd_graph_delete(g);
            return -1;
        }
    }
    int result = 1, n_sets = 0;
    for (int set = 0; set < 16 && result == 1; set++) {
        char sdir[4400];
        snprintf(sdir, sizeof sdir, "%s/test_data_set_%d", dir, set);
        qd_tensor *in[MAX_TENSORS] = {0}, *want[MAX_TENSORS] = {0};
        int n_in = 0, n_want = 0;
        for (int i = 0; i < MAX_TENSORS; i++) {
            snprintf(path, sizeof path, "%s/input_%d.pb", sdir, i);
            if (!(in[i] = read_pb(g, path)))
                break;
            n_in++;
        }
        for (int i = 0; i < MAX_TENSORS; i++) {
            snprintf(path, sizeof path, "%s/output_%d.pb", sdir, i);
            if (!(want[i] = read_pb(g, path)))
                break;
            n_want++;
        }
        if (n_want == 0) {
            for (int i = 0; i < n_in; i++)
                qd_tensor_delete(in[i]);
            break;
        }
        n_sets++;
        /* Each data set gets a fresh graph: inputs' shapes come from the data. */
        qd_graph *gs = NULL;
        qd_engine *e = NULL;
        snprintf(path, sizeof path, "%s/model.onnx", dir);
        qd_graph_load(path, &gs);
        if ((size_t)n_in != gs->n_inputs) {
            snprintf(why, n_why, "%d inputs in the data, %zu in the model", n_in, gs->n_inputs);
            result = 0;
        }
        for (int i = 0; i < n_in && result == 1; i++) {
            /* The test data stores bfloat16 as uint16. */
            if (in[i]->dtype == QD_DT_UINT16 && gs->inputs[i]->dtype == QD_DT_BFLOAT16)
                in[i]->dtype = QD_DT_BFLOAT16;
            qd_value_set_shape(gs->inputs[i], in[i]->dtype, in[i]->rank, in[i]->dims);
        }
        qd_engine_options opt = {.threads = 2, .reference = reference};
        if (result == 1 && qd_engine_create(gs, &opt, &e) != QD_OK) {
            snprintf(why, n_why, "plan: %s", qd_engine_error(e));
            result = 0;
        }
        for (int i = 0; i < n_in && result == 1; i++) {
            if (qd_engine_set_input(e, gs->inputs[i]->name, in[i]->dtype, in[i]->rank,
                                    in[i]->dims, in[i]->data) != QD_OK) {
                snprintf(why, n_why, "input: %s", qd_engine_error(e));
                result = 0;
            }
        }
        if (result == 1 && qd_engine_run(e) != QD_OK) {
            snprintf(why, n_why, "run: %s", qd_engine_error(e));
            result = 0;
        }
        for (int i = 0; i < n_want && result == 1; i++) {
            if (i >= qd_engine_output_count(e)) {
                snprintf(why, n_why, "missing output %d", i);
                result = 0;
                break;
            }
            qd_tensor_info o;
            qd_engine_output_info(e, i, &o);
            qd_tensor *got = qd_tensor_wrap((qd_dtype)o.dtype, o.rank, o.dims, o.data, 0);
            if (want[i]->dtype == QD_DT_UINT16 && o.dtype == QD_DT_BFLOAT16)
                want[i]->dtype = QD_DT_BFLOAT16;
            char detail[512];
            if (!got || !close_enough(got, want[i], detail, sizeof detail)) {
                snprintf(why, n_why, "output '%s': %s", o.name, got ? detail : "bad output");
                result = 0;
            }
            qd_tensor_delete(got);
        }
        qd_engine_delete(e);
        qd_graph_delete(gs);
        for (int i = 0; i < MAX_TENSORS; i++) {
            qd_tensor_delete(in[i]);
            qd_tensor_delete(want[i]);
        }
    }
    if (n_sets == 0 && result == 1) {
        snprintf(why, n_why, "no test data");
        result = -1;
    }
    qd_graph_delete(g);
    return result;
}

/* expected_failures.txt: "test_name  reason" per line; # comments. */
static char *expected_reason(char *list, const char *name)
{
    static char reason[512];
    size_t n = strlen(name);
    for (char *line = list; line && *line;) {
        char *next = strchr(line, '\n');
        if (line[0] != '#' && !strncmp(line, name, n) && (line[n] == ' ' || line[n] == '\t')) {
            const char *r = line + n;
            while (*r == ' ' || *r == '\t')
                r++;
            size_t len = next ? (size_t)(next - r) : strlen(r);
            snprintf(reason, sizeof reason, "%.*s", (int)len, r);
            return reason;
        }
        line = next ? next + 1 : NULL;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: qd_node_tests DATA_DIR EXPECTED_FAILURES [--reference] [FILTER]\n");
        return 2;
    }
    const char *data_dir = argv[1];
    int reference = 0;
    const char *filter = NULL;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--reference"))
            reference = 1;
        else
            filter = argv[i];
    }
    size_t size;
    char *expected = read_all(argv[2], &size);
    if (expected)
        expected[size] = '\0';

    printf("claimed ops:");
    for (int op = 0; op < QD_OP_COUNT; op++)
        if (qd_ref_kernel((qd_op)op))
            printf(" %s", qd_op_name((qd_op)op));
    printf("\n");

    DIR *d = opendir(data_dir);
    if (!d) {
        fprintf(stderr, "qd_node_tests: cannot open %s\n", data_dir);
        return 2;
    }
    char **names = NULL;
    size_t n_names = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "test_", 5) != 0 || (filter && !strstr(de->d_name, filter)))
            continue;
        names = realloc(names, (n_names + 1) * sizeof *names);
        names[n_names++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n_names, sizeof *names, cmp_str);

    int passed = 0, failed = 0, skipped = 0, xfail = 0, xpass = 0;
    for (size_t i = 0; i < n_names; i++) {
        char dir[4096], why[1024] = "", ops[512];
        snprintf(dir, sizeof dir, "%s/%s", data_dir, names[i]);
        int r = run_test(dir, reference, why, sizeof why, ops, sizeof ops);
        const char *reason = expected ? expected_reason(expected, names[i]) : NULL;
        if (r < 0) {
            skipped++;
        } else if (r == 1) {
            passed++;
            if (reason) {
                xpass++;
                printf("XPASS %s (listed as expected failure: %s)\n", names[i], reason);
            }
        } else if (reason) {
            xfail++;
            printf("XFAIL %s [%s]: %s (expected: %s)\n", names[i], ops, why, reason);
        } else {
            failed++;
            printf("FAIL  %s [%s]: %s\n", names[i], ops, why);
        }
        free(names[i]);
    }
    free(names);
    free(expected);
    printf("node tests (%s kernels): %d passed (%d listed as expected failures and passing), "
           "%d expected failures, %d skipped for unclaimed ops\n",
           reference ? "reference" : "fast", passed, xpass, xfail, skipped);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped + xfail);
    return failed ? 1 : 0;
}
