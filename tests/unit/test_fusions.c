/* The pattern matcher and the fusion table: each row on a small synthetic
 * graph, the matching rules (longest wins, single-use intermediates,
 * predicates), the report, and the counts on torchvision models when they
 * are cached in .cache/torchvision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "ir/graph.h"
#include "passes/pattern.h"
#include "qdeploy.h"

static float frand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (float)((*seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static qd_graph *new_graph(void)
{
    qd_graph *g = qd_graph_new();
    assert_non_null(g);
    g->opset = 17;
    return g;
}

static qd_value *input(qd_graph *g, const char *name, int rank, const int64_t *dims)
{
    qd_value *v = qd_graph_new_value(g, name, NULL);
    qd_value_set_shape(v, QD_DT_FLOAT, rank, dims);
    assert_int_equal(qd_graph_add_input(g, v), QD_OK);
    return v;
}

static qd_value *weight(qd_graph *g, const char *name, int rank, const int64_t *dims,
                        float offset)
{
    unsigned seed = 7;
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, rank, dims);
    for (int64_t i = 0; i < qd_numel(rank, dims); i++)
        ((float *)t->data)[i] = frand(&seed) + offset;
    return qd_graph_add_initializer(g, name, t);
}

static qd_value *scalar(qd_graph *g, const char *name, float v)
{
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, 0, NULL);
    ((float *)t->data)[0] = v;
    return qd_graph_add_initializer(g, name, t);
}

static qd_node *last_node;

static qd_value *op(qd_graph *g, const char *type, const char *name, qd_value **ins, int n_in)
{
    qd_value *out = qd_graph_new_value(g, NULL, name);
    last_node = qd_graph_add_node(g, type, "", name, ins, n_in, &out, 1);
    assert_non_null(last_node);
    return out;
}

static void output(qd_graph *g, qd_value *v)
{
    assert_int_equal(qd_graph_add_output(g, v), QD_OK);
}

/* Conv (k x k, pad k/2) from c_in to c_out channels, with `group`. */
static qd_value *conv(qd_graph *g, const char *name, qd_value *x, int64_t c_out, int64_t k,
                      int64_t group)
{
    char wname[64];
    snprintf(wname, sizeof wname, "%s.w", name);
    int64_t c_in = x->dims[1];
    assert_true(c_in > 0); /* build convs on values with known shapes */
    qd_value *ins[2] = {x, weight(g, wname, 4, (int64_t[]){c_out, c_in / group, k, k}, 0)};
    qd_value *y = op(g, "Conv", name, ins, 2);
    qd_node_set_attr_ints(last_node, "kernel_shape", (int64_t[]){k, k}, 2);
    qd_node_set_attr_ints(last_node, "pads", (int64_t[]){k / 2, k / 2, k / 2, k / 2}, 4);
    qd_node_set_attr_int(last_node, "group", group);
    return y;
}

/* BatchNormalization over x's channels (taken from the producing Conv's
 * weight: shapes are inferred only once the graph is built). */
static qd_value *bn(qd_graph *g, const char *name, qd_value *x)
{
    const qd_node *p = x->producer;
    int64_t c[1] = {p && p->op == QD_OP_CONV ? p->inputs[1]->konst->dims[0] : x->dims[1]};
    char n[4][64];
    const char *part[4] = {"gamma", "beta", "mean", "var"};
    for (int i = 0; i < 4; i++)
        snprintf(n[i], sizeof n[i], "%s.%s", name, part[i]);
    qd_value *ins[5] = {x, weight(g, n[0], 1, c, 1.5f), weight(g, n[1], 1, c, 0),
                        weight(g, n[2], 1, c, 0), weight(g, n[3], 1, c, 2.0f)};
    return op(g, "BatchNormalization", name, ins, 5);
}

static qd_value *unary(qd_graph *g, const char *type, const char *name, qd_value *x)
{
    return op(g, type, name, &x, 1);
}

static qd_value *binary(qd_graph *g, const char *type, const char *name, qd_value *a,
                        qd_value *b)
{
    qd_value *ins[2] = {a, b};
    return op(g, type, name, ins, 2);
}

/* Infers shapes, matches for tensorrt. */
static void match(qd_graph *g, qd_match_list *m)
{
    if (qd_graph_infer_shapes(g) != QD_OK)
        fail_msg("infer shapes: %s", qd_graph_error(g));
    memset(m, 0, sizeof *m);
    qd_status st = qd_match_patterns(g, "tensorrt", m);
    if (st != QD_OK)
        fail_msg("match: %s", qd_graph_error(g));
}

/* The match containing the node named `name`, or NULL. */
static const qd_match *match_of(const qd_match_list *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        for (int j = 0; j < m->items[i].n_nodes; j++)
            if (!strcmp(m->items[i].nodes[j]->name, name))
                return &m->items[i];
    return NULL;
}

static void assert_match(const qd_match_list *m, const char *node, const char *pattern,
                         int n_nodes)
{
    const qd_match *x = match_of(m, node);
    if (!x)
        fail_msg("node %s: no match, wanted %s", node, pattern);
    if (strcmp(x->pattern->name, pattern) || x->n_nodes != n_nodes)
        fail_msg("node %s: %s of %d nodes, wanted %s of %d", node, x->pattern->name,
                 x->n_nodes, pattern, n_nodes);
}

/* ---- rows ------------------------------------------------------------------ */

static qd_graph *conv_bn_relu_graph(void)
{
    qd_graph *g = new_graph();
    qd_value *x = input(g, "x", 4, (int64_t[]){1, 4, 8, 8});
    qd_value *y = unary(g, "Relu", "relu", bn(g, "bn", conv(g, "conv", x, 8, 3, 1)));
    output(g, y);
    return g;
}

static void test_conv_bn_relu(void **state)
{
    qd_graph *g = conv_bn_relu_graph();
    qd_match_list m;
    match(g, &m);
    assert_int_equal(m.n, 1);
    assert_match(&m, "conv", "FusedConvBNReLU", 3);
    assert_string_equal(m.items[0].nodes[0]->name, "conv");
    assert_string_equal(m.items[0].nodes[1]->name, "bn");
    assert_string_equal(m.items[0].nodes[2]->name, "relu");
    assert_int_equal(qd_pattern_qdq_points(m.items[0].pattern, "tensorrt"),
                     QD_QDQ_INPUT | QD_QDQ_WEIGHT);
    qd_match_list_free(&m);

    /* BN folded by simplify: the same row, one node shorter. */
    assert_int_equal(qd_graph_simplify(g), QD_OK);
    match(g, &m);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.items[0].pattern->name, "FusedConvBNReLU");
    assert_int_equal(m.items[0].n_nodes, 2);
    qd_match_list_free(&m);
    qd_graph_delete(g);
}

static void test_activations(void **state)
{
    const char *acts[] = {"Relu", "Clip", "LeakyRelu", "Elu", "Gelu",
                          "Sigmoid", "HardSwish", "HardSigmoid"};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        qd_graph *g = new_graph();
        qd_value *x = input(g, "x", 4, (int64_t[]){1, 4, 8, 8});
        output(g, unary(g, acts[i], "act", conv(g, "conv", x, 8, 1, 1)));
        qd_match_list m;
        match(g, &m);
        assert_int_equal(m.n, 1);
        assert_match(&m, "act", "FusedConvBNReLU", 2);
        qd_match_list_free(&m);
        qd_graph_delete(g);
    }
    /* Tanh is not one of them. */
    qd_graph *g = new_graph();
    qd_value *x = input(g, "x", 4, (int64_t[]){1, 4, 8, 8});
    output(g, unary(g, "Tanh", "act", conv(g, "conv", x, 8, 1, 1)));
    qd_match_list m;
    match(g, &m);
    assert_match(&m, "conv", "FusedConvBN", 1);
    assert_null(match_of(&m, "act"));
    qd_match_list_free(&m);
    qd_graph_delete(g);
}

/* SiLU: Conv -> BN -> {Sigmoid, Mul(x, sigmoid)}: a fork. */
static void test_silu(void **state)
{
    qd_graph *g = new_graph();
    qd_value *x = input(g, "x", 4, (int64_t[]){1, 4, 8, 8});
    qd_value *b = bn(g, "bn", conv(g, "conv", x, 8, 3, 1));
    qd_value *s = unary(g, "Sigmoid", "sig", b);
    output(g, binary(g, "Mul", "mul", s, b));
    qd_match_list m;
    match(g, &m);
    assert_int_equal(m.n, 1);
    assert_match(&m, "mul", "FusedConvBNReLU", 4);
    qd_match_list_free(&m);
    qd_graph_delete(g);
}

/* Conv -> BN -> Add(x) -> Relu: the residual row wins over ConvBN. */
static void test_longer_wins(void **state)
{
    qd_graph *g = new_graph();
    qd_value *x = input(g, "x", 4, (int64_t[]){1, 8, 8, 8});
    qd_value *b = bn(g, "bn", conv(g, "conv", x, 8, 3, 1));
    /* x is the residual branch; a second Relu reads it too */
    output(g, unary(g, "Relu", "relu0", x));
    output(g, unary(g, "Relu", "relu", binary(g, "Add", "add", x, b)));
    qd_match_list m;
    match(g, &m);
    assert_match(&m, "conv", "FusedConvBNAddReLU", 4);
    assert_int_equal(qd_match_count(&m, "FusedConvBN"), 0);
    assert_int_equal(qd_match_count(&m, "FusedConvBNReLU"), 0);
    assert_null(match_of(&m, "relu0"));
    assert_int_equal(qd_pattern_qdq_points(match_of(&m, "conv")->pattern, "tensorrt"),
                     QD_QDQ_INPUT | QD_QDQ_WEIGHT | QD_QDQ_RESIDUAL_INPUT);
    qd_match_list_free(&m);
    qd_graph_delete(g);
}

/* Adding a constant is no residual branch: Conv->Add(const)->Relu is not
 * FusedConvBNAddReLU. */
static void test_add_const_not_residual(void **state)
{
    qd_graph *g = new_graph();
    qd_value *x = input(g, "x", 4, (int64_t[]){1, 8, 8, 8});
    qd_value *c = conv(g, "conv", x, 8, 3, 1);
    qd_value *k = weight(g, "k", 4, (int64_t[]){1, 8, 8, 8}, 0);
    output(g, unary(g, "Relu", "relu", binary(g, "Add", "add", c, k)));
    qd_match_list m;
    match(g, &m);
    assert_match(&m, "conv", "FusedConvBN", 1);
    assert_int_equal(qd_match_count(&m, "FusedConvBNAddReLU"), 0);
    qd_match_list_free(&m);
    qd_graph_delete(g);
}

/* BN's output read twice: the chain stops at BN. Also a graph output. */
static void test_second_use_breaks_chain(void **state)
{
    for (int as_output = 0; as_output < 2; as_output++) {
        qd_graph *g = new_graph();
        qd_value *x = input(g, "x", 4, (int64_t[]){1, 4, 8, 8});
        qd_value *b = bn(g, "bn", conv(g, "conv", x, 8, 3, 1));
        output(g, unary(g, "Relu", "relu", b));
        if (as_output)
            output(g, b);
        else
            output(g, unary(g, "Sigmoid", "other", b));
        qd_match_list m;
        match(g, &m);
        assert_match(&m, "conv", "FusedConvBN", 2);
        assert_null(match_of(&m, "relu"));
        assert_int_equal(qd_match_count(&m, "FusedConvBNReLU"), 0);
        qd_match_list_free(&m);
        qd_graph_delete(g);
    }
}

static qd_graph *stem_graph(int64_t k)
{
    qd_graph *g = new_graph();
    qd_value *x = input(g, "x", 4, (int64_t[]){1, 3, 16, 16});
    qd_value *r = unary(g, "Relu", "relu", bn(g, "bn", conv(g, "conv", x, 8, k, 1)));
    qd_value *p = unary(g, "MaxPool", "pool", r);
    qd_node_set_attr_ints(last_node, "kernel_shape", (int64_t[]){3, 3}, 2);
    qd_node_set_attr_ints(last_node, "strides", (int64_t[]){2, 2}, 2);
    qd_node_set_attr_ints(last_node, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    output(g, p);
    return g;
}

static void test_stem(void **state)
{
    qd_graph *g = stem_graph(7);
    qd_match_list m;
    match(g, &m);
    assert_int_equal(m.n, 1);
    assert_match(&m, "pool", "FusedConvBNReLUMaxPool", 4);
    qd_match_list_free(&m);
    qd_graph_delete(g);

    /* The predicate rejects a 3x3 conv: ConvBNReLU, MaxPool left alone. */
    g = stem_graph(3);
    match(g, &m);
    assert_int_equal(qd_match_count(&m, "FusedConvBNReLUMaxPool"), 0);
    assert_match(&m, "conv", "FusedConvBNReLU", 3);
    assert_null(match_of(&m, "pool"));
    qd_match_list_free(&m);
    qd_graph_delete(g);
}

static void test_depthwise(void **state)
{
    qd_graph *g = new_graph();
    qd_value *x = input(g, "x", 4, (int64_t[]){1, 8, 8, 8});
    qd_value *d = conv(g, "dw", x, 8, 7, 8);
    output(g, d);
    qd_value *g2 = conv(g, "grouped", x, 8, 3, 2); /* grouped, not depthwise */
    output(g, unary(g, "Relu", "relu", g2));
    qd_match_list m;
    match(g, &m);
    assert_match(&m, "dw", "FusedConvBN", 1);
    assert_match(&m, "grouped", "FusedConvBNReLU", 2);
    assert_int_equal(qd_pattern_qdq_points(match_of(&m, "dw")->pattern, "tensorrt"), 0);
    assert_int_equal(qd_pattern_qdq_points(match_of(&m, "dw")->pattern, "uniform"),
                     QD_QDQ_INPUT | QD_QDQ_WEIGHT);
    assert_int_equal(qd_pattern_qdq_points(match_of(&m, "grouped")->pattern, "tensorrt"),
                     QD_QDQ_INPUT | QD_QDQ_WEIGHT);
    qd_match_list_free(&m);
    qd_graph_delete(g);
}

static void test_avgpool(void **state)
{
    qd_graph *g = new_graph();
    qd_value *x = input(g, "x", 4, (int64_t[]){1, 8, 4, 4});
    output(g, unary(g, "GlobalAveragePool", "gap", x));
    qd_value *r1 = unary(g, "ReduceMean", "rm23", x);
    qd_node_set_attr_ints(last_node, "axes", (int64_t[]){2, 3}, 2);
    output(g, r1);
    qd_value *r2 = unary(g, "ReduceMean", "rm_neg", x);
    qd_node_set_attr_ints(last_node, "axes", (int64_t[]){-2, -1}, 2);
    qd_node_set_attr_int(last_node, "keepdims", 0);
    output(g, r2);
    qd_value *r3 = unary(g, "ReduceMean", "rm1", x); /* over channels: no */
    qd_node_set_attr_ints(last_node, "axes", (int64_t[]){1}, 1);
    output(g, r3);
    qd_match_list m;
    match(g, &m);
    assert_int_equal(qd_match_count(&m, "FusedAdaptiveAvgPool2d"), 3);
    assert_match(&m, "gap", "FusedAdaptiveAvgPool2d", 1);
    assert_match(&m, "rm23", "FusedAdaptiveAvgPool2d", 1);
    assert_match(&m, "rm_neg", "FusedAdaptiveAvgPool2d", 1);
    assert_null(match_of(&m, "rm1"));
    assert_int_equal(qd_pattern_qdq_points(match_of(&m, "gap")->pattern, "tensorrt"), 0);
    qd_match_list_free(&m);
    qd_graph_delete(g);
}

static void test_linear(void **state)
{
    qd_graph *g = new_graph();
    qd_value *x = input(g, "x", 3, (int64_t[]){1, 4, 8});
    qd_value *mm = binary(g, "MatMul", "mm", x, weight(g, "w", 2, (int64_t[]){8, 16}, 0));
    qd_value *y = binary(g, "Add", "bias", weight(g, "b", 1, (int64_t[]){16}, 0), mm);
    /* MatMul of two activations: not a linear layer. */
    qd_value *z = binary(g, "MatMul", "act_mm", y, input(g, "a", 3, (int64_t[]){1, 16, 2}));
    output(g, z);
    qd_value *f = input(g, "f", 2, (int64_t[]){2, 8});
    qd_value *gi[3] = {f, weight(g, "gw", 2, (int64_t[]){5, 8}, 0),
                       weight(g, "gb", 1, (int64_t[]){5}, 0)};
    qd_value *gemm = op(g, "Gemm", "gemm", gi, 3);
    qd_node_set_attr_int(last_node, "transB", 1);
    output(g, gemm);
    qd_match_list m;
    match(g, &m);
    assert_match(&m, "mm", "FusedLinear", 2);
    assert_match(&m, "gemm", "FusedLinear", 1);
    assert_null(match_of(&m, "act_mm"));
    assert_int_equal(qd_match_count(&m, "FusedLinear"), 2);
    qd_match_list_free(&m);
    qd_graph_delete(g);
}

static void test_layernorm(void **state)
{
    qd_graph *g = new_graph();
    qd_value *x = input(g, "x", 3, (int64_t[]){1, 4, 8});
    qd_value *ins[3] = {x, weight(g, "s", 1, (int64_t[]){8}, 1), weight(g, "b", 1,
                                                                      (int64_t[]){8}, 0)};
    output(g, op(g, "LayerNormalization", "ln", ins, 3));
    qd_match_list m;
    match(g, &m);
    assert_int_equal(m.n, 1);
    assert_match(&m, "ln", "LayerNorm", 1);
    assert_int_equal(qd_pattern_qdq_points(m.items[0].pattern, "tensorrt"), 0);
    qd_match_list_free(&m);
    qd_graph_delete(g);
}

/* MatMul(Q, K^T) / sqrt(d) + mask -> Softmax -> MatMul(., V) */
static void test_attention(void **state)
{
    for (int variant = 0; variant < 2; variant++) {
        qd_graph *g = new_graph();
        qd_value *q = input(g, "q", 4, (int64_t[]){1, 2, 4, 8});
        qd_value *k = input(g, "k", 4, (int64_t[]){1, 2, 4, 8});
        qd_value *v = input(g, "v", 4, (int64_t[]){1, 2, 4, 8});
        qd_value *kt = unary(g, "Transpose", "kt", k);
        qd_node_set_attr_ints(last_node, "perm", (int64_t[]){0, 1, 3, 2}, 4);
        qd_value *s = binary(g, "MatMul", "qk", q, kt);
        if (variant == 0) {
            s = binary(g, "Div", "scale", s, scalar(g, "d", 2.8284f));
            s = binary(g, "Add", "mask", weight(g, "m", 2, (int64_t[]){4, 4}, 0), s);
        } else {
            s = binary(g, "Mul", "scale", scalar(g, "d", 0.35f), s);
        }
        qd_value *p = unary(g, "Softmax", "softmax", s);
        qd_node_set_attr_int(last_node, "axis", -1);
        output(g, binary(g, "MatMul", "pv", p, v));
        qd_match_list m;
        match(g, &m);
        assert_int_equal(m.n, 1);
        assert_match(&m, "softmax", "Attention", variant == 0 ? 5 : 4);
        assert_string_equal(m.items[0].nodes[0]->name, "qk");
        assert_string_equal(m.items[0].nodes[m.items[0].n_nodes - 1]->name, "pv");
        assert_null(match_of(&m, "kt"));
        qd_match_list_free(&m);
        qd_graph_delete(g);
    }
}

/* ---- API ------------------------------------------------------------------- */

static void test_report_and_errors(void **state)
{
    qd_graph *g = conv_bn_relu_graph();
    qd_match_list m;
    match(g, &m);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    qd_match_report(&m, f);
    fclose(f);
    assert_non_null(strstr(buf, "| Fused module | Count |\n|---|---:|\n"));
    assert_non_null(strstr(buf, "| `FusedConvBNReLU` | 1 |\n"));
    assert_null(strstr(buf, "FusedConvBN`"));
    free(buf);
    qd_match_list_free(&m);
    qd_match_list_free(&m); /* twice is harmless */
    qd_match_list_free(NULL);

    assert_int_equal(qd_match_patterns(g, "nonsense", &m), QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(qd_graph_error(g), "nonsense"));
    assert_int_equal(m.n, 0);
    memset(&m, 0, sizeof m);
    assert_int_equal(qd_match_patterns(g, NULL, &m), QD_OK); /* default: tensorrt */
    assert_int_equal(m.n, 1);
    qd_match_list_free(&m);
    assert_int_equal(qd_match_patterns(g, "uniform", &m), QD_OK);
    assert_int_equal(m.n, 1);
    qd_match_list_free(&m);
    qd_graph_delete(g);
}

/* ---- torchvision models ------------------------------------------------------- */

typedef struct expected {
    const char *name;
    size_t count;
} expected;

static void check_model(const char *model, const expected *want, size_t n_want, int fold_bn)
{
    /* QD_TORCHVISION_DIR: the e2e fixture's exports (set by CMake);
     * otherwise the benchmark cache of a source tree. */
    const char *dir = getenv("QD_TORCHVISION_DIR");
    const char *fixtures = getenv("QD_FIXTURES");
    char path[1024];
    if (dir)
        snprintf(path, sizeof path, "%s/%s.onnx", dir, model);
    else
        snprintf(path, sizeof path, "%s/../../.cache/torchvision/%s.onnx",
                 fixtures ? fixtures : "tests/fixtures", model);
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        print_message("skipped: %s not found\n", path);
        skip();
    }
    fclose(probe);
    qd_graph *g = NULL;
    if (qd_graph_load(path, &g) != QD_OK)
        fail_msg("%s: %s", path, qd_graph_error(g));
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    if (fold_bn)
        assert_int_equal(qd_graph_simplify(g), QD_OK);
    assert_int_equal(qd_graph_canonicalize(g), QD_OK);
    qd_match_list m = {0};
    if (qd_match_patterns(g, "tensorrt", &m) != QD_OK)
        fail_msg("%s: %s", model, qd_graph_error(g));
    print_message("%s (BN %s):\n", model, fold_bn ? "folded" : "kept");
    qd_match_report(&m, stdout);
    for (size_t i = 0; i < n_want; i++)
        if (qd_match_count(&m, want[i].name) != want[i].count)
            fail_msg("%s: %s %zu, expected %zu", model, want[i].name,
                     qd_match_count(&m, want[i].name), want[i].count);
    /* Every Conv in exactly one match. */
    for (size_t i = 0; i < g->n_nodes; i++) {
        const qd_node *n = g->nodes[i];
        if (n->op != QD_OP_CONV)
            continue;
        int in = 0;
        for (size_t k = 0; k < m.n; k++)
            for (int j = 0; j < m.items[k].n_nodes; j++)
                in += m.items[k].nodes[j] == n;
        if (in != 1)
            fail_msg("%s: Conv %s in %d matches", model, n->name, in);
    }
    qd_match_list_free(&m);
    qd_graph_delete(g);
}

static const expected resnet50[] = {
    {"FusedConvBNReLUMaxPool", 1}, {"FusedConvBNAddReLU", 16}, {"FusedConvBNReLU", 32},
    {"FusedConvBN", 4},           {"FusedAdaptiveAvgPool2d", 1}, {"FusedLinear", 1},
};

static void test_resnet50(void **state)
{
    check_model("resnet50", resnet50, sizeof resnet50 / sizeof *resnet50, 0);
    check_model("resnet50", resnet50, sizeof resnet50 / sizeof *resnet50, 1);
}

static void test_convnext_tiny(void **state)
{
    static const expected want[] = {
        {"FusedConvBN", 22}, {"FusedConvBNReLU", 0}, {"LayerNorm", 23},
        {"FusedLinear", 37}, {"FusedAdaptiveAvgPool2d", 1},
    };
    check_model("convnext_tiny", want, sizeof want / sizeof *want, 1);
}

static void test_vit_b_16(void **state)
{
    static const expected want[] = {
        {"FusedConvBN", 1}, {"LayerNorm", 25}, {"Attention", 12}, {"FusedLinear", 49},
    };
    check_model("vit_b_16", want, sizeof want / sizeof *want, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_bn_relu),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_silu),
        cmocka_unit_test(test_longer_wins),
        cmocka_unit_test(test_add_const_not_residual),
        cmocka_unit_test(test_second_use_breaks_chain),
        cmocka_unit_test(test_stem),
        cmocka_unit_test(test_depthwise),
        cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_report_and_errors),
        cmocka_unit_test(test_resnet50),
        cmocka_unit_test(test_convnext_tiny),
        cmocka_unit_test(test_vit_b_16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
