/* simplify and conversions: each rewrite on a small graph, checked for the
 * ops it leaves and for unchanged outputs (reference engine before/after). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "ir/graph.h"
#include "qdeploy.h"

static float frand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (float)((*seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static qd_value *input(qd_graph *g, const char *name, int rank, const int64_t *dims)
{
    qd_value *v = qd_graph_new_value(g, name, NULL);
    qd_value_set_shape(v, QD_DT_FLOAT, rank, dims);
    assert_int_equal(qd_graph_add_input(g, v), QD_OK);
    return v;
}

static qd_value *weight(qd_graph *g, const char *name, int rank, const int64_t *dims,
                        unsigned seed, float offset)
{
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

static qd_value *op(qd_graph *g, const char *type, const char *name, qd_value **ins, int n_in,
                    const char *out_name)
{
    qd_value *out = qd_graph_new_value(g, out_name, NULL);
    qd_graph_add_node(g, type, "", name, ins, n_in, &out, 1);
    return out;
}

static void output(qd_graph *g, qd_value *v)
{
    assert_int_equal(qd_graph_add_output(g, v), QD_OK);
}

static int count_op(const qd_graph *g, const char *type)
{
    int n = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        n += !strcmp(g->nodes[i]->op_type, type);
    return n;
}

/* Runs g on the reference kernels with a seeded input; returns a copy of
 * output 0 (caller frees) and its element count. */
static float *run(qd_graph *g, size_t *count)
{
    qd_engine_options opt = {.threads = 1, .reference = 1};
    qd_engine *e = NULL;
    assert_int_equal(qd_engine_create(g, &opt, &e), QD_OK);
    qd_tensor_info in, out;
    assert_int_equal(qd_engine_input_info(e, 0, &in), QD_OK);
    unsigned seed = 99;
    float *x = malloc(in.nbytes);
    for (size_t i = 0; i < in.nbytes / 4; i++)
        x[i] = 2.0f * frand(&seed);
    assert_int_equal(qd_engine_set_input(e, in.name, in.dtype, in.rank, in.dims, x), QD_OK);
    free(x);
    assert_int_equal(qd_engine_run(e), QD_OK);
    assert_int_equal(qd_engine_output_info(e, 0, &out), QD_OK);
    float *copy = malloc(out.nbytes);
    memcpy(copy, out.data, out.nbytes);
    *count = out.nbytes / 4;
    qd_engine_delete(e);
    return copy;
}

static void assert_close(const float *a, const float *b, size_t n, float tol)
{
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > tol * (1.0f + fabsf(b[i])))
            fail_msg("element %zu: %g vs %g", i, (double)a[i], (double)b[i]);
}

/* x -> Conv(w[, b]) -> BatchNormalization -> Identity -> y */
static qd_graph *conv_bn(int with_bias)
{
    qd_graph *g = qd_graph_new();
    g->opset = 17;
    qd_value *x = input(g, "x", 4, (int64_t[]){1, 3, 6, 6});
    qd_value *ins[5] = {x, weight(g, "w", 4, (int64_t[]){4, 3, 3, 3}, 1, 0), NULL};
    if (with_bias)
        ins[2] = weight(g, "b", 1, (int64_t[]){4}, 2, 0);
    qd_value *c = op(g, "Conv", "conv", ins, with_bias ? 3 : 2, "c");
    qd_value *bn_in[5] = {c, weight(g, "gamma", 1, (int64_t[]){4}, 3, 1.5f),
                          weight(g, "beta", 1, (int64_t[]){4}, 4, 0),
                          weight(g, "mean", 1, (int64_t[]){4}, 5, 0),
                          weight(g, "var", 1, (int64_t[]){4}, 6, 2.0f)};
    qd_value *b = op(g, "BatchNormalization", "bn", bn_in, 5, "bn_out");
    qd_value *y = op(g, "Identity", "id", &b, 1, "y");
    output(g, y);
    return g;
}

static void test_simplify_folds_batch_norm(void **state)
{
    (void)state;
    for (int bias = 0; bias < 2; bias++) {
        qd_graph *before = conv_bn(bias), *after = conv_bn(bias);
        size_t n1, n2;
        float *want = run(before, &n1);
        assert_int_equal(qd_graph_infer_shapes(after), QD_OK);
        assert_int_equal(qd_graph_simplify(after), QD_OK);
        assert_int_equal(after->n_nodes, 1);
        assert_string_equal(after->nodes[0]->op_type, "Conv");
        /* The output keeps its name. */
        assert_string_equal(after->outputs[0]->name, "y");
        assert_ptr_equal(after->outputs[0]->producer, after->nodes[0]);
        float *got = run(after, &n2);
        assert_int_equal(n1, n2);
        assert_close(got, want, n1, 1e-5f);
        free(want);
        free(got);
        qd_graph_delete(before);
        qd_graph_delete(after);
    }
}

/* ConvNeXt's block tail: x[1,4,4,8] -> MatMul(W[8,6]) [-> Add(b)]
 * [-> Transpose(0,3,1,2)] -> Mul(gamma) -> y. kind 0: with Add and
 * Transpose, gamma [6,1,1]; 1: no Add, no Transpose, gamma [6]; 2: gamma
 * along H (not the features: must stay); 3: gamma a scalar. */
static qd_graph *linear_scale(int kind)
{
    qd_graph *g = qd_graph_new();
    g->opset = 17;
    qd_value *x = input(g, "x", 4, (int64_t[]){1, 4, 4, 8});
    qd_value *mm[2] = {x, weight(g, "w", 2, (int64_t[]){8, 6}, 11, 0)};
    qd_value *y = op(g, "MatMul", "fc2", mm, 2, "h");
    if (kind == 0) {
        qd_value *a[2] = {weight(g, "b", 1, (int64_t[]){6}, 12, 0), y};
        y = op(g, "Add", "bias", a, 2, "hb");
        y = op(g, "Transpose", "perm", &y, 1, "t");
        qd_node_set_attr_ints(y->producer, "perm", (int64_t[]){0, 3, 1, 2}, 4);
    }
    qd_value *gamma = kind == 0   ? weight(g, "gamma", 3, (int64_t[]){6, 1, 1}, 13, 0.5f)
                      : kind == 1 ? weight(g, "gamma", 1, (int64_t[]){6}, 13, 0.5f)
                      : kind == 2 ? weight(g, "gamma", 3, (int64_t[]){4, 1, 1}, 13, 0.5f)
                                  : scalar(g, "gamma", 0.25f);
    qd_value *m[2] = {gamma, y};
    output(g, op(g, "Mul", "layer_scale", m, 2, "y"));
    return g;
}

static void test_simplify_folds_linear_scale(void **state)
{
    (void)state;
    for (int kind = 0; kind < 4; kind++) {
        qd_graph *before = linear_scale(kind), *after = linear_scale(kind);
        size_t n1, n2;
        float *want = run(before, &n1);
        assert_int_equal(qd_graph_infer_shapes(after), QD_OK);
        assert_int_equal(qd_graph_simplify(after), QD_OK);
        /* Folded unless gamma varies along something but the features. */
        assert_int_equal(count_op(after, "Mul"), kind == 2 ? 1 : 0);
        assert_string_equal(after->outputs[0]->name, "y");
        /* The replaced weights are no initializers any more. */
        for (size_t i = 0; i < after->n_initializers; i++)
            assert_true(after->initializers[i]->n_uses > 0);
        float *got = run(after, &n2);
        assert_int_equal(n1, n2);
        assert_close(got, want, n1, 1e-5f);
        free(want);
        free(got);
        qd_graph_delete(before);
        qd_graph_delete(after);
    }
}

/* x -> Div(sqrt2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5) -> y, or the
 * (x * 0.5) * t order. */
static qd_graph *gelu_chain(int half_first)
{
    qd_graph *g = qd_graph_new();
    g->opset = 13;
    qd_value *x = input(g, "x", 2, (int64_t[]){3, 17});
    qd_value *d = op(g, "Div", "div", (qd_value *[]){x, scalar(g, "sqrt2", 1.4142135f)}, 2, "d");
    qd_value *e = op(g, "Erf", "erf", &d, 1, "e");
    qd_value *t = op(g, "Add", "add1", (qd_value *[]){e, scalar(g, "one", 1.0f)}, 2, "t");
    qd_value *y;
    if (!half_first) {
        qd_value *m = op(g, "Mul", "mul", (qd_value *[]){x, t}, 2, "m");
        y = op(g, "Mul", "half", (qd_value *[]){m, scalar(g, "half_c", 0.5f)}, 2, "y");
    } else {
        qd_value *h = op(g, "Mul", "half", (qd_value *[]){x, scalar(g, "half_c", 0.5f)}, 2, "h");
        y = op(g, "Mul", "mul", (qd_value *[]){h, t}, 2, "y");
    }
    output(g, y);
    return g;
}

static void test_canonicalize_gelu(void **state)
{
    (void)state;
    for (int order = 0; order < 2; order++) {
        qd_graph *before = gelu_chain(order), *after = gelu_chain(order);
        size_t n1, n2;
        float *want = run(before, &n1);
        assert_int_equal(qd_graph_infer_shapes(after), QD_OK);
        assert_int_equal(qd_graph_canonicalize(after), QD_OK);
        assert_int_equal(after->n_nodes, 1);
        assert_string_equal(after->nodes[0]->op_type, "Gelu");
        assert_string_equal(after->outputs[0]->name, "y");
        float *got = run(after, &n2);
        assert_close(got, want, n1, 1e-6f);
        free(want);
        free(got);
        qd_graph_delete(before);
        qd_graph_delete(after);
    }
}

/* The same chain with a wrong constant is left alone. */
static void test_canonicalize_leaves_lookalikes(void **state)
{
    (void)state;
    qd_graph *g = gelu_chain(0);
    ((float *)qd_graph_find_value(g, "one")->konst->data)[0] = 2.0f;
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    assert_int_equal(qd_graph_canonicalize(g), QD_OK);
    assert_int_equal(count_op(g, "Gelu"), 0);
    assert_int_equal(g->n_nodes, 5);
    qd_graph_delete(g);
}

/* torch's opset-13 LayerNorm over the last axis, with or without affine. */
static qd_graph *layernorm_chain(int affine)
{
    qd_graph *g = qd_graph_new();
    g->opset = 13;
    int64_t axes[] = {-1};
    qd_value *x = input(g, "x", 3, (int64_t[]){2, 5, 24});
    qd_value *m = op(g, "ReduceMean", "mean", &x, 1, "m");
    qd_node_set_attr_ints(m->producer, "axes", axes, 1);
    qd_value *d = op(g, "Sub", "sub", (qd_value *[]){x, m}, 2, "d");
    qd_value *p = op(g, "Pow", "pow", (qd_value *[]){d, scalar(g, "two", 2.0f)}, 2, "p");
    qd_value *v = op(g, "ReduceMean", "var", &p, 1, "v");
    qd_node_set_attr_ints(v->producer, "axes", axes, 1);
    qd_value *ve = op(g, "Add", "eps", (qd_value *[]){v, scalar(g, "eps_c", 1e-6f)}, 2, "ve");
    qd_value *s = op(g, "Sqrt", "sqrt", &ve, 1, "s");
    qd_value *y = op(g, "Div", "div", (qd_value *[]){d, s}, 2, affine ? "n" : "y");
    if (affine) {
        qd_value *gm = weight(g, "gamma", 1, (int64_t[]){24}, 7, 1.0f);
        qd_value *bt = weight(g, "beta", 1, (int64_t[]){24}, 8, 0);
        qd_value *sc = op(g, "Mul", "scale", (qd_value *[]){y, gm}, 2, "sc");
        y = op(g, "Add", "shift", (qd_value *[]){sc, bt}, 2, "y");
    }
    output(g, y);
    return g;
}

static void test_canonicalize_layernorm(void **state)
{
    (void)state;
    for (int affine = 0; affine < 2; affine++) {
        qd_graph *before = layernorm_chain(affine), *after = layernorm_chain(affine);
        size_t n1, n2;
        float *want = run(before, &n1);
        assert_int_equal(qd_graph_infer_shapes(after), QD_OK);
        assert_int_equal(qd_graph_canonicalize(after), QD_OK);
        assert_int_equal(after->n_nodes, 1);
        assert_string_equal(after->nodes[0]->op_type, "LayerNormalization");
        float eps;
        assert_int_equal(qd_node_attr_float(after, after->nodes[0], "epsilon", 0, &eps), QD_OK);
        assert_true(fabsf(eps - 1e-6f) < 1e-12f);
        float *got = run(after, &n2);
        assert_close(got, want, n1, 1e-4f);
        free(want);
        free(got);
        qd_graph_delete(before);
        qd_graph_delete(after);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simplify_folds_batch_norm),
        cmocka_unit_test(test_simplify_folds_linear_scale),
        cmocka_unit_test(test_canonicalize_gelu),
        cmocka_unit_test(test_canonicalize_leaves_lookalikes),
        cmocka_unit_test(test_canonicalize_layernorm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
