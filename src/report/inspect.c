/* `qdeploy inspect`: what a model is, in text or JSON. */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "ir/graph.h"
#include "ir/stats.h"
#include "report/json.h"

#define TOP_TENSORS 10

typedef struct op_count {
    const char *op_type;
    int count;
} op_count;

static int by_count_desc(const void *a, const void *b)
{
    const op_count *x = a, *y = b;
    if (x->count != y->count)
        return y->count - x->count;
    return strcmp(x->op_type, y->op_type);
}

static int64_t value_bytes(const qd_value *v)
{
    int64_t n = qd_value_numel(v);
    return n < 0 ? -1 : n * (int64_t)qd_dtype_size(v->dtype);
}

static int by_bytes_desc(const void *a, const void *b)
{
    int64_t x = value_bytes(*(qd_value *const *)a), y = value_bytes(*(qd_value *const *)b);
    return (x < y) - (x > y);
}

/* Histogram of op types in first-seen order, then sorted by count. */
static op_count *histogram(const qd_graph *g, size_t *n_out)
{
    op_count *h = qd_calloc(g->n_nodes + 1, sizeof *h);
    size_t n = 0;
    if (!h)
        return NULL;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const char *t = g->nodes[i]->op_type;
        size_t j = 0;
        while (j < n && strcmp(h[j].op_type, t) != 0)
            j++;
        if (j == n)
            h[n++].op_type = t;
        h[j].count++;
    }
    qsort(h, n, sizeof *h, by_count_desc);
    *n_out = n;
    return h;
}

static void json_shape(qd_json *j, const qd_value *v)
{
    if (v->rank < 0) {
        qd_json_null(j);
        return;
    }
    qd_json_begin_array(j);
    for (int i = 0; i < v->rank; i++) {
        if (v->dims[i] >= 0)
            qd_json_int(j, v->dims[i]);
        else if (v->dim_params[i])
            qd_json_string(j, v->dim_params[i]);
        else
            qd_json_null(j);
    }
    qd_json_end_array(j);
}

static void json_values(qd_json *j, qd_value *const *vs, size_t n)
{
    qd_json_begin_array(j);
    for (size_t i = 0; i < n; i++) {
        qd_json_begin_object(j);
        qd_json_key(j, "name");
        qd_json_string(j, vs[i]->name);
        qd_json_key(j, "dtype");
        qd_json_string(j, qd_dtype_name(vs[i]->dtype));
        qd_json_key(j, "shape");
        json_shape(j, vs[i]);
        qd_json_end_object(j);
    }
    qd_json_end_array(j);
}

/* Values sorted by size, largest first; only those with a known size. */
static qd_value **largest(const qd_graph *g, size_t *n_out)
{
    qd_value **vs = qd_calloc(g->n_values + 1, sizeof *vs);
    size_t n = 0;
    if (!vs)
        return NULL;
    for (size_t i = 0; i < g->n_values; i++) {
        qd_value *v = g->values[i];
        if (value_bytes(v) > 0 && (v->is_initializer || v->producer || v->is_input))
            vs[n++] = v;
    }
    qsort(vs, n, sizeof *vs, by_bytes_desc);
    *n_out = n < TOP_TENSORS ? n : TOP_TENSORS;
    return vs;
}

static void print_json(const qd_graph *g, FILE *out, const qd_graph_stats *s, const op_count *h,
                       size_t nh, qd_value *const *big, size_t nbig)
{
    qd_json j;
    qd_json_init(&j, out, 1);
    qd_json_begin_object(&j);
    qd_json_key(&j, "model");
    qd_json_string(&j, g->path ? g->path : "");
    qd_json_key(&j, "ir_version");
    qd_json_int(&j, g->ir_version);
    qd_json_key(&j, "producer");
    qd_json_string(&j, g->producer_name);
    qd_json_key(&j, "opset");
    qd_json_int(&j, g->opset);
    qd_json_key(&j, "opsets");
    qd_json_begin_array(&j);
    for (size_t i = 0; i < g->n_opsets; i++) {
        qd_json_begin_object(&j);
        qd_json_key(&j, "domain");
        qd_json_string(&j, g->opsets[i].domain);
        qd_json_key(&j, "version");
        qd_json_int(&j, g->opsets[i].version);
        qd_json_end_object(&j);
    }
    qd_json_end_array(&j);
    qd_json_key(&j, "inputs");
    json_values(&j, g->inputs, g->n_inputs);
    qd_json_key(&j, "outputs");
    json_values(&j, g->outputs, g->n_outputs);
    qd_json_key(&j, "node_count");
    qd_json_int(&j, (int64_t)g->n_nodes);
    qd_json_key(&j, "op_histogram");
    qd_json_begin_object(&j);
    for (size_t i = 0; i < nh; i++) {
        qd_json_key(&j, h[i].op_type);
        qd_json_int(&j, h[i].count);
    }
    qd_json_end_object(&j);
    qd_json_key(&j, "parameters");
    qd_json_int(&j, s->parameters);
    qd_json_key(&j, "parameter_bytes");
    qd_json_int(&j, s->parameter_bytes);
    qd_json_key(&j, "macs");
    qd_json_begin_object(&j);
    qd_json_key(&j, "conv");
    qd_json_int(&j, s->macs_conv);
    qd_json_key(&j, "matmul_gemm");
    qd_json_int(&j, s->macs_matmul);
    qd_json_key(&j, "other");
    qd_json_int(&j, s->macs_other);
    qd_json_key(&j, "total");
    qd_json_int(&j, s->macs_conv + s->macs_matmul + s->macs_other);
    qd_json_end_object(&j);
    qd_json_key(&j, "nodes_with_unknown_shapes");
    qd_json_int(&j, s->unknown_shapes);
    qd_json_key(&j, "largest_tensors");
    qd_json_begin_array(&j);
    for (size_t i = 0; i < nbig; i++) {
        qd_json_begin_object(&j);
        qd_json_key(&j, "name");
        qd_json_string(&j, big[i]->name);
        qd_json_key(&j, "kind");
        qd_json_string(&j, big[i]->is_initializer ? "initializer" : "activation");
        qd_json_key(&j, "dtype");
        qd_json_string(&j, qd_dtype_name(big[i]->dtype));
        qd_json_key(&j, "shape");
        json_shape(&j, big[i]);
        qd_json_key(&j, "bytes");
        qd_json_int(&j, value_bytes(big[i]));
        qd_json_end_object(&j);
    }
    qd_json_end_array(&j);
    qd_json_end_object(&j);
}

static void print_count(FILE *out, const char *label, int64_t v, const char *unit)
{
    fprintf(out, "  %-22s %15lld", label, (long long)v);
    if (unit && v >= 1000000)
        fprintf(out, "  (%.2f %s)", (double)v / 1e9 >= 1 ? (double)v / 1e9 : (double)v / 1e6,
                (double)v / 1e9 >= 1 ? "G" : "M");
    fputc('\n', out);
}

static void print_text(const qd_graph *g, FILE *out, const qd_graph_stats *s, const op_count *h,
                       size_t nh, qd_value *const *big, size_t nbig)
{
    char shape[256];
    fprintf(out, "model     %s\n", g->path ? g->path : "<buffer>");
    fprintf(out, "producer  %s %s, IR version %lld\n", g->producer_name, g->producer_version,
            (long long)g->ir_version);
    fprintf(out, "opsets   ");
    for (size_t i = 0; i < g->n_opsets; i++)
        fprintf(out, " %s:%lld", g->opsets[i].domain[0] ? g->opsets[i].domain : "ai.onnx",
                (long long)g->opsets[i].version);
    fprintf(out, "\n\ninputs\n");
    for (size_t i = 0; i < g->n_inputs; i++)
        fprintf(out, "  %-30s %-8s %s\n", g->inputs[i]->name, qd_dtype_name(g->inputs[i]->dtype),
                qd_value_shape_str(g->inputs[i], shape, sizeof shape));
    fprintf(out, "outputs\n");
    for (size_t i = 0; i < g->n_outputs; i++)
        fprintf(out, "  %-30s %-8s %s\n", g->outputs[i]->name,
                qd_dtype_name(g->outputs[i]->dtype),
                qd_value_shape_str(g->outputs[i], shape, sizeof shape));
    fprintf(out, "\nops (%zu nodes)\n", g->n_nodes);
    for (size_t i = 0; i < nh; i++)
        fprintf(out, "  %-22s %6d\n", h[i].op_type, h[i].count);
    fprintf(out, "\nparameters\n");
    print_count(out, "count", s->parameters, "");
    print_count(out, "bytes", s->parameter_bytes, NULL);
    fprintf(out, "\nMACs per inference\n");
    print_count(out, "Conv", s->macs_conv, "");
    print_count(out, "MatMul/Gemm", s->macs_matmul, "");
    print_count(out, "other (element ops)", s->macs_other, "");
    print_count(out, "total", s->macs_conv + s->macs_matmul + s->macs_other, "");
    if (s->unknown_shapes)
        fprintf(out, "  (%d nodes have unknown shapes and are not counted)\n", s->unknown_shapes);
    fprintf(out, "\nlargest tensors\n");
    for (size_t i = 0; i < nbig; i++)
        fprintf(out, "  %-40s %-11s %-8s %-18s %12lld bytes\n", big[i]->name,
                big[i]->is_initializer ? "initializer" : "activation",
                qd_dtype_name(big[i]->dtype), qd_value_shape_str(big[i], shape, sizeof shape),
                (long long)value_bytes(big[i]));
}

qd_status qd_graph_inspect(qd_graph *g, FILE *out, int json)
{
    if (!g || !out)
        return QD_STATUS_INVALID_ARGUMENT;
    qd_graph_stats s;
    qd_graph_compute_stats(g, &s);
    size_t nh = 0, nbig = 0;
    op_count *h = histogram(g, &nh);
    qd_value **big = largest(g, &nbig);
    if (!h || !big) {
        qd_free(h);
        qd_free(big);
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    if (json)
        print_json(g, out, &s, h, nh, big, nbig);
    else
        print_text(g, out, &s, h, nh, big, nbig);
    qd_free(h);
    qd_free(big);
    if (ferror(out))
        return qd_graph_fail(g, QD_STATUS_IO_ERROR, "write error");
    return QD_OK;
}
