/* qd_graph_convert_for_fusion: FlattenGemmToConv and
 * DecomposeMultiheadAttention on small graphs (the structure they leave,
 * engine outputs before/after, the look-alikes they must leave alone), the
 * fusion rows the results match, the report, and the conversions on
 * torchvision resnet50 / vit_b_16 when the e2e fixture has exported them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "ir/graph.h"
#include "passes/passes.h"
#include "passes/pattern.h"
#include "quant/placement.h"
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
                        unsigned seed)
{
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, rank, dims);
    for (int64_t i = 0; i < qd_numel(rank, dims); i++)
        ((float *)t->data)[i] = frand(&seed);
    return qd_graph_add_initializer(g, name, t);
}

static qd_value *scalar(qd_graph *g, const char *name, float v)
{
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, 0, NULL);
    ((float *)t->data)[0] = v;
    return qd_graph_add_initializer(g, name, t);
}

/* A one-element int64 initializer ([1], as torch writes Slice operands). */
static qd_value *ints1(qd_graph *g, int64_t v)
{
    int64_t one = 1;
    qd_tensor *t = qd_tensor_new(QD_DT_INT64, 1, &one);
    ((int64_t *)t->data)[0] = v;
    return qd_graph_add_initializer(g, "slice_arg", t);
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

static int count_op(const qd_graph *g, const char *type)
{
    int n = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        n += !strcmp(g->nodes[i]->op_type, type);
    return n;
}

static qd_node *find_node(const qd_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_nodes; i++)
        if (!strcmp(g->nodes[i]->name, name))
            return g->nodes[i];
    fail_msg("no node %s", name);
    return NULL;
}

/* Runs g with a seeded input (every graph input filled); returns a copy of
 * every output, concatenated (caller frees), and the element count. */
static float *run(qd_graph *g, int reference, size_t *count)
{
    qd_engine_options opt = {.threads = reference ? 1 : 0, .reference = reference};
    qd_engine *e = NULL;
    if (qd_engine_create(g, &opt, &e) != QD_OK)
        fail_msg("engine: %s", e ? qd_engine_error(e) : "out of memory");
    unsigned seed = 99;
    for (int k = 0; k < qd_engine_input_count(e); k++) {
        qd_tensor_info in;
        assert_int_equal(qd_engine_input_info(e, k, &in), QD_OK);
        float *x = malloc(in.nbytes);
        for (size_t i = 0; i < in.nbytes / 4; i++)
            x[i] = 2.0f * frand(&seed);
        assert_int_equal(qd_engine_set_input(e, in.name, in.dtype, in.rank, in.dims, x), QD_OK);
        free(x);
    }
    if (qd_engine_run(e) != QD_OK)
        fail_msg("run: %s", qd_engine_error(e));
    float *all = NULL;
    size_t n = 0;
    for (int k = 0; k < qd_engine_output_count(e); k++) {
        qd_tensor_info out;
        assert_int_equal(qd_engine_output_info(e, k, &out), QD_OK);
        all = realloc(all, (n + out.nbytes / 4) * sizeof *all);
        memcpy(all + n, out.data, out.nbytes);
        n += out.nbytes / 4;
    }
    qd_engine_delete(e);
    *count = n;
    return all;
}

static void assert_close(const float *a, const float *b, size_t n, float tol)
{
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > tol * (1.0f + fabsf(b[i])))
            fail_msg("element %zu: %g vs %g", i, (double)a[i], (double)b[i]);
}

static void convert(qd_graph *g, qd_conversion_counts *c)
{
    if (qd_graph_infer_shapes(g) != QD_OK || qd_graph_simplify(g) != QD_OK)
        fail_msg("prepare: %s", qd_graph_error(g));
    if (qd_graph_convert_for_fusion(g, c) != QD_OK)
        fail_msg("convert: %s", qd_graph_error(g));
    if (qd_graph_verify(g) != QD_OK)
        fail_msg("verify after conversion: %s", qd_graph_error(g));
}

/* Builds the graph twice, converts one, compares engine outputs (reference
 * kernels). Returns the converted graph; *c holds the counts. */
typedef qd_graph *(*builder)(int variant);

static qd_graph *convert_and_compare(builder make, int variant, qd_conversion_counts *c)
{
    qd_graph *before = make(variant), *after = make(variant);
    size_t n1, n2;
    float *want = run(before, 1, &n1);
    convert(after, c);
    float *got = run(after, 1, &n2);
    assert_int_equal(n1, n2);
    assert_close(got, want, n1, 1e-5f);
    free(want);
    free(got);
    qd_graph_delete(before);
    return after;
}

static size_t matched(qd_graph *g, const char *target, const char *name, qd_qdq_plan *plan)
{
    qd_match_list m = {0};
    if (qd_match_patterns(g, target, &m) != QD_OK)
        fail_msg("match: %s", qd_graph_error(g));
    size_t n = qd_match_count(&m, name);
    if (plan)
        assert_int_equal(qd_plan_build(g, &m, target, plan), QD_OK);
    qd_match_list_free(&m);
    return n;
}

/* ---- FlattenGemmToConv ------------------------------------------------------ */

/* x[2, 16, 1, 1] -> Flatten -> Gemm(B, C) -> y[2, 6]. Variants:
 * 0 transB 1, bias [6]; 1 transB 0, alpha 0.5, beta 2, bias [1, 6];
 * 2 no bias; 3 a one-value bias; 4 symbolic batch. */
static qd_graph *flatten_gemm(int variant)
{
    qd_graph *g = new_graph();
    int64_t xd[4] = {2, 16, 1, 1};
    qd_value *x = input(g, "x", 4, xd);
    if (variant == 4) {
        x->dims[0] = -1;
        x->dim_params[0] = qd_strdup("batch");
    }
    qd_value *f = op(g, "Flatten", "flatten", &x, 1);
    qd_node_set_attr_int(last_node, "axis", 1);
    int trans_b = variant != 1;
    qd_value *ins[3] = {f, weight(g, "fc.weight", 2,
                                  trans_b ? (int64_t[]){6, 16} : (int64_t[]){16, 6}, 3),
                        NULL};
    if (variant == 0 || variant == 4)
        ins[2] = weight(g, "fc.bias", 1, (int64_t[]){6}, 4);
    else if (variant == 1)
        ins[2] = weight(g, "fc.bias", 2, (int64_t[]){1, 6}, 4);
    else if (variant == 3)
        ins[2] = weight(g, "fc.bias", 1, (int64_t[]){1}, 4);
    qd_value *y = qd_graph_new_value(g, "y", NULL);
    qd_node *gemm = qd_graph_add_node(g, "Gemm", "", "fc", ins, ins[2] ? 3 : 2, &y, 1);
    qd_node_set_attr_int(gemm, "transB", trans_b);
    if (variant == 1) {
        qd_node_set_attr_float(gemm, "alpha", 0.5f);
        qd_node_set_attr_float(gemm, "beta", 2.0f);
    }
    output(g, y);
    return g;
}

static void test_flatten_gemm_to_conv(void **state)
{
    (void)state;
    for (int variant = 0; variant < 5; variant++) {
        qd_conversion_counts c;
        qd_graph *g = convert_and_compare(flatten_gemm, variant, &c);
        assert_int_equal(c.flatten_gemm_to_conv, 1);
        assert_int_equal(c.mha_in_proj_split, 0);
        assert_int_equal(g->n_nodes, 2);
        assert_int_equal(count_op(g, "Gemm"), 0);
        qd_node *conv = g->nodes[0], *flat = g->nodes[1];
        assert_string_equal(conv->op_type, "Conv");
        assert_string_equal(flat->op_type, "Flatten");
        /* The graph output keeps its name and shape. */
        assert_string_equal(g->outputs[0]->name, "y");
        assert_ptr_equal(g->outputs[0]->producer, flat);
        assert_int_equal(g->outputs[0]->rank, 2);
        assert_int_equal(g->outputs[0]->dims[1], 6);
        const qd_tensor *w = conv->inputs[1]->konst;
        assert_int_equal(w->rank, 4);
        assert_int_equal(w->dims[0], 6);
        assert_int_equal(w->dims[1], 16);
        assert_int_equal(conv->n_inputs, variant == 2 ? 2 : 3);
        if (variant != 2)
            assert_int_equal(qd_numel(conv->inputs[2]->konst->rank, conv->inputs[2]->konst->dims),
                             6);
        int64_t axis;
        assert_int_equal(qd_node_attr_int(g, flat, "axis", 0, &axis), QD_OK);
        assert_int_equal(axis, 1);
        /* The old weights are gone from the model. */
        assert_null(qd_graph_find_value(g, "fc.weight"));
        for (size_t i = 0; i < g->n_initializers; i++)
            assert_true(g->initializers[i]->n_uses > 0);
        qd_graph_delete(g);
    }
}

/* The head Conv is still a FusedLinear, and the Linear intensity rule of
 * the mixed policy applies to it: 16x6 is far below 256. */
static void test_converted_head_is_linear(void **state)
{
    (void)state;
    qd_conversion_counts c;
    qd_graph *g = flatten_gemm(0);
    convert(g, &c);
    qd_qdq_plan plan;
    assert_int_equal(matched(g, "tensorrt", "FusedLinear", &plan), 1);
    assert_int_equal(matched(g, "tensorrt", "FusedConvBN", NULL), 0);
    assert_int_equal(plan.linear_kept_high, 1);
    assert_int_equal(plan.n, 0);
    qd_plan_free(&plan);
    /* The x86 target (the CPU) has no intensity rule: the same module is
     * INT8, input and weight, with tensorrt's fusion rows. */
    assert_int_equal(matched(g, "x86", "FusedLinear", &plan), 1);
    assert_int_equal(plan.linear_kept_high, 0);
    assert_int_equal(plan.n, 2);
    qd_plan_free(&plan);
    /* uniform quantizes every Linear: input and per-channel weight (axis 0). */
    assert_int_equal(matched(g, "uniform", "FusedLinear", &plan), 1);
    assert_int_equal(plan.n, 2);
    for (size_t i = 0; i < plan.n; i++)
        if (plan.points[i].kind == QD_PLAN_WEIGHT)
            assert_int_equal(plan.points[i].axis, 0);
    qd_plan_free(&plan);
    qd_graph_delete(g);

    /* A big head (2048 -> 1000 as resnet50's) is INT8 in mixed too. */
    g = new_graph();
    qd_value *x = input(g, "x", 4, (int64_t[]){1, 2048, 1, 1});
    qd_value *f = op(g, "Flatten", "flatten", &x, 1);
    qd_value *ins[3] = {f, weight(g, "w", 2, (int64_t[]){1000, 2048}, 1),
                        weight(g, "b", 1, (int64_t[]){1000}, 2)};
    output(g, op(g, "Gemm", "fc", ins, 3));
    qd_node_set_attr_int(last_node, "transB", 1);
    convert(g, &c);
    assert_int_equal(c.flatten_gemm_to_conv, 1);
    assert_int_equal(matched(g, "tensorrt", "FusedLinear", &plan), 1);
    assert_int_equal(plan.linear_kept_high, 0);
    assert_int_equal(plan.n, 2);
    qd_plan_free(&plan);
    qd_graph_delete(g);
}

/* Look-alikes: 0 Flatten axis 2; 1 B not a constant; 2 a 2x2 map; 3 the
 * Flatten output read twice; 4 transA 1. */
static qd_graph *flatten_gemm_lookalike(int variant)
{
    qd_graph *g = new_graph();
    qd_value *x = input(g, "x", 4, variant == 2 ? (int64_t[]){1, 4, 2, 2}
                                                : (int64_t[]){1, 16, 1, 1});
    qd_value *f = op(g, "Flatten", "flatten", &x, 1);
    qd_node_set_attr_int(last_node, "axis", variant == 0 ? 2 : 1);
    qd_value *b;
    int trans_b = 1, trans_a = 0;
    if (variant == 0) {
        b = weight(g, "w", 2, (int64_t[]){6, 1}, 1); /* A is [16, 1] */
    } else if (variant == 1) {
        b = input(g, "w", 2, (int64_t[]){6, 16});
    } else if (variant == 4) {
        b = weight(g, "w", 2, (int64_t[]){6, 1}, 1); /* A^T is [16, 1] */
        trans_a = 1;
    } else {
        b = weight(g, "w", 2, (int64_t[]){6, 16}, 1);
    }
    qd_value *ins[3] = {f, b, weight(g, "bias", 1, (int64_t[]){6}, 2)};
    output(g, op(g, "Gemm", "fc", ins, 3));
    qd_node_set_attr_int(last_node, "transB", trans_b);
    qd_node_set_attr_int(last_node, "transA", trans_a);
    if (variant == 3)
        output(g, op(g, "Relu", "relu", &f, 1));
    return g;
}

static void test_flatten_gemm_left_alone(void **state)
{
    (void)state;
    for (int variant = 0; variant < 5; variant++) {
        qd_conversion_counts c;
        qd_graph *g = convert_and_compare(flatten_gemm_lookalike, variant, &c);
        assert_int_equal(c.flatten_gemm_to_conv, 0);
        assert_int_equal(count_op(g, "Gemm"), 1);
        assert_int_equal(count_op(g, "Flatten"), 1);
        assert_int_equal(count_op(g, "Conv"), 0);
        qd_graph_delete(g);
    }
}

/* ---- DecomposeMultiheadAttention --------------------------------------------- */

#define L 5
#define E 8

/* Self-attention on x[L, 1, E] (torch's sequence-first layout) with one
 * head, as torch 1.13 exports nn.MultiheadAttention:
 *   MatMul(x, W[E, 3E]) -> Add(b[3E], .) -> Slice x3 (last axis)
 *   q: Transpose(1,0,2) / scale; k: Transpose(1,2,0); v: Transpose(1,0,2)
 *   MatMul(q, k) -> Softmax -> MatMul(., v) -> y[1, L, E]
 * Variants: 0 as above; 1 a Split instead of the Slices; 2 no bias, the
 * last Slice ending at INT64_MAX, with a steps input; 3 the Slices in k, v,
 * q order of the graph; 4 a packed k/v projection ([E, 2E], as for a
 * cross-attention) with q from its own MatMul; 5 the bias Add's operands
 * swapped (Add(mm, b)); 6 a symbolic batch, with a Shape of the packed
 * output that nothing reads (torch's, once the Gather after it folded). */
static qd_graph *mha(int variant)
{
    qd_graph *g = new_graph();
    qd_value *x = input(g, "x", 3, (int64_t[]){L, 1, E});
    if (variant == 6) {
        x->dims[1] = -1;
        x->dim_params[1] = qd_strdup("batch");
    }
    int n_parts = variant == 4 ? 2 : 3;
    qd_value *p = op(g, "MatMul", "in_proj",
                     (qd_value *[]){x, weight(g, "in_proj_weight", 2,
                                              (int64_t[]){E, n_parts * E}, 11)},
                     2);
    if (variant != 2) {
        qd_value *b = weight(g, "in_proj_bias", 1, (int64_t[]){n_parts * E}, 12);
        p = op(g, "Add", "in_proj_add", variant == 5 ? (qd_value *[]){p, b} : (qd_value *[]){b, p},
               2);
    }
    if (variant == 6)
        op(g, "Shape", "dead_shape", &p, 1);
    qd_value *parts[3];
    if (variant == 1) {
        qd_value *outs[3];
        for (int i = 0; i < 3; i++)
            outs[i] = qd_graph_new_value(g, NULL, "split");
        qd_value *sizes;
        {
            int64_t three = 3;
            qd_tensor *t = qd_tensor_new(QD_DT_INT64, 1, &three);
            for (int i = 0; i < 3; i++)
                ((int64_t *)t->data)[i] = E;
            sizes = qd_graph_add_initializer(g, "split_sizes", t);
        }
        qd_node *s = qd_graph_add_node(g, "Split", "", "split", (qd_value *[]){p, sizes}, 2,
                                       outs, 3);
        qd_node_set_attr_int(s, "axis", -1);
        for (int i = 0; i < 3; i++)
            parts[i] = outs[i];
    } else {
        int order[3] = {0, 1, 2};
        if (variant == 3) {
            order[0] = 1;
            order[1] = 2;
            order[2] = 0;
        }
        for (int j = 0; j < n_parts; j++) {
            int i = order[j];
            char name[32];
            snprintf(name, sizeof name, "slice%d", i);
            int64_t end = (i + 1) * E;
            if (variant == 2 && i == 2)
                end = INT64_MAX;
            qd_value *ins[5] = {p, ints1(g, i * E), ints1(g, end), ints1(g, -1),
                                ints1(g, 1)};
            parts[n_parts == 2 ? i + 1 : i] = op(g, "Slice", name, ins, variant == 2 ? 5 : 4);
        }
    }
    if (variant == 4)
        parts[0] = op(g, "MatMul", "q_proj",
                      (qd_value *[]){input(g, "query", 3, (int64_t[]){L, 1, E}),
                                     weight(g, "q_proj_weight", 2, (int64_t[]){E, E}, 13)},
                      2);
    qd_value *q = op(g, "Transpose", "qt", &parts[0], 1);
    qd_node_set_attr_ints(last_node, "perm", (int64_t[]){1, 0, 2}, 3);
    q = op(g, "Div", "scale", (qd_value *[]){q, scalar(g, "sqrt_d", 2.828f)}, 2);
    qd_value *k = op(g, "Transpose", "kt", &parts[1], 1);
    qd_node_set_attr_ints(last_node, "perm", (int64_t[]){1, 2, 0}, 3);
    qd_value *v = op(g, "Transpose", "vt", &parts[2], 1);
    qd_node_set_attr_ints(last_node, "perm", (int64_t[]){1, 0, 2}, 3);
    qd_value *s = op(g, "MatMul", "qk", (qd_value *[]){q, k}, 2);
    s = op(g, "Softmax", "softmax", &s, 1);
    qd_node_set_attr_int(last_node, "axis", -1);
    output(g, op(g, "MatMul", "pv", (qd_value *[]){s, v}, 2));
    return g;
}

static void test_decompose_attention(void **state)
{
    (void)state;
    /* The dead Shape survives simplify (its output has a symbolic dim). */
    qd_graph *shaped = mha(6);
    assert_int_equal(qd_graph_infer_shapes(shaped), QD_OK);
    assert_int_equal(qd_graph_simplify(shaped), QD_OK);
    assert_int_equal(count_op(shaped, "Shape"), 1);
    qd_graph_delete(shaped);
    for (int variant = 0; variant < 7; variant++) {
        qd_conversion_counts c;
        qd_graph *g = convert_and_compare(mha, variant, &c);
        int n_parts = variant == 4 ? 2 : 3;
        assert_int_equal(c.mha_in_proj_split, 1);
        assert_int_equal(c.flatten_gemm_to_conv, 0);
        assert_int_equal(count_op(g, "Slice"), 0);
        assert_int_equal(count_op(g, "Split"), 0);
        assert_int_equal(count_op(g, "Shape"), 0);
        /* One MatMul per projection with its own [E, E] weight. */
        int projections = 0;
        for (size_t i = 0; i < g->n_nodes; i++) {
            const qd_node *n = g->nodes[i];
            if (n->op != QD_OP_MATMUL || !n->inputs[1]->konst)
                continue;
            assert_int_equal(n->inputs[1]->konst->rank, 2);
            assert_int_equal(n->inputs[1]->konst->dims[0], E);
            assert_int_equal(n->inputs[1]->konst->dims[1], E);
            projections++;
        }
        assert_int_equal(projections, 3);
        assert_null(qd_graph_find_value(g, "in_proj_weight"));
        assert_int_equal(count_op(g, "Add"), variant == 2 ? 0 : n_parts);
        /* The tensors the attention reads keep their names: the slices'
         * outputs now come from the projections. */
        if (variant == 0 || variant == 5) {
            const qd_value *q = find_node(g, "qt")->inputs[0]; /* was slice0's output */
            assert_string_equal(q->producer->op_type, "Add");
            assert_string_equal(q->producer->name, "in_proj_add_q");
            int mm_at = variant == 5 ? 0 : 1; /* the operand order is kept */
            assert_string_equal(q->producer->inputs[mm_at]->producer->name, "in_proj_q");
            assert_non_null(q->producer->inputs[1 - mm_at]->konst);
        }
        /* Each projection is a FusedLinear with its own input and weight
         * QDQ (uniform: the intensity rule does not apply to E = 8). */
        qd_qdq_plan plan;
        assert_int_equal(matched(g, "uniform", "FusedLinear", &plan), 3);
        int weights = 0;
        for (size_t i = 0; i < plan.n; i++)
            weights += plan.points[i].kind == QD_PLAN_WEIGHT;
        assert_int_equal(weights, 3);
        qd_plan_free(&plan);
        assert_int_equal(matched(g, "tensorrt", "Attention", NULL), 1);
        qd_graph_delete(g);
    }
}

/* Not a packed projection: 0 separate q/k/v MatMuls; 1 the packed output
 * also read by another node; 2 parts of unequal width; 3 a slice with step
 * 2; 4 slices overlapping (q read twice). */
static qd_graph *mha_lookalike(int variant)
{
    qd_graph *g = new_graph();
    qd_value *x = input(g, "x", 3, (int64_t[]){L, 1, E});
    qd_value *parts[3];
    if (variant == 0) {
        for (int i = 0; i < 3; i++) {
            char name[32];
            snprintf(name, sizeof name, "proj%d.w", i);
            parts[i] = op(g, "MatMul", NULL,
                          (qd_value *[]){x, weight(g, name, 2, (int64_t[]){E, E}, 30 + i)}, 2);
            snprintf(name, sizeof name, "proj%d.b", i);
            parts[i] = op(g, "Add", NULL,
                          (qd_value *[]){weight(g, name, 1, (int64_t[]){E}, 40 + i), parts[i]},
                          2);
        }
    } else {
        qd_value *p = op(g, "MatMul", "in_proj",
                         (qd_value *[]){x, weight(g, "w", 2, (int64_t[]){E, 3 * E}, 11)}, 2);
        int64_t bounds[3][2] = {{0, E}, {E, 2 * E}, {2 * E, 3 * E}};
        if (variant == 2) {
            bounds[1][1] = E + 4;
            bounds[2][0] = E + 4;
        }
        if (variant == 4) {
            bounds[1][0] = 0;
            bounds[1][1] = E;
        }
        for (int i = 0; i < 3; i++) {
            qd_value *ins[5] = {p, ints1(g, bounds[i][0]), ints1(g, bounds[i][1]),
                                ints1(g, -1), ints1(g, variant == 3 && i == 0 ? 2 : 1)};
            parts[i] = op(g, "Slice", NULL, ins, 5);
        }
        if (variant == 1)
            output(g, op(g, "Relu", "other_reader", &p, 1));
    }
    /* Read every part (shapes differ in the look-alikes: reduce each). */
    for (int i = 0; i < 3; i++) {
        qd_value *r = op(g, "ReduceSum", NULL, &parts[i], 1);
        qd_node_set_attr_int(last_node, "keepdims", 0);
        output(g, r);
    }
    return g;
}

static void test_attention_left_alone(void **state)
{
    (void)state;
    for (int variant = 0; variant < 5; variant++) {
        qd_graph *before = mha_lookalike(variant);
        assert_int_equal(qd_graph_infer_shapes(before), QD_OK);
        size_t nodes = before->n_nodes;
        qd_graph_delete(before);
        qd_conversion_counts c;
        qd_graph *g = convert_and_compare(mha_lookalike, variant, &c);
        assert_int_equal(c.mha_in_proj_split, 0);
        assert_int_equal(g->n_nodes, nodes);
        assert_int_equal(count_op(g, "Slice"), variant == 0 ? 0 : 3);
        qd_graph_delete(g);
    }
}

/* ---- API -------------------------------------------------------------------- */

static char *report(const qd_conversion_counts *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    qd_conversion_report(c, f);
    fclose(f);
    return buf;
}

static void test_report_and_errors(void **state)
{
    (void)state;
    qd_conversion_counts c = {.flatten_gemm_to_conv = 1};
    char *r = report(&c);
    assert_string_equal(r, "| Conversion | Count |\n|---|---:|\n| `FlattenGemmToConv` | 1 |\n");
    free(r);
    c = (qd_conversion_counts){.mha_in_proj_split = 12};
    r = report(&c);
    assert_non_null(strstr(r, "| `DecomposeMultiheadAttention` | 12 |\n"));
    assert_null(strstr(r, "FlattenGemmToConv"));
    free(r);
    assert_int_equal(qd_conversion_total(&c), 12);
    assert_int_equal(qd_conversion_total(NULL), 0);
    qd_conversion_report(NULL, stdout); /* harmless */

    assert_int_equal(qd_graph_convert_for_fusion(NULL, &c), QD_STATUS_INVALID_ARGUMENT);
    /* counts may be NULL; a second run finds nothing more to do. */
    qd_graph *g = flatten_gemm(0);
    convert(g, NULL);
    assert_int_equal(count_op(g, "Conv"), 1);
    c.flatten_gemm_to_conv = 7;
    assert_int_equal(qd_graph_convert_for_fusion(g, &c), QD_OK);
    assert_int_equal(c.flatten_gemm_to_conv, 0);
    assert_int_equal(g->n_nodes, 2);
    qd_graph_delete(g);
}

/* ---- torchvision models ---------------------------------------------------------- */

/* Loads the e2e fixture's export of `model`, or skips. */
static qd_graph *load_torchvision(const char *model)
{
    const char *dir = getenv("QD_TORCHVISION_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.onnx", dir ? dir : "build/test-cache/torchvision", model);
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        print_message("skipped: %s not found\n", path);
        skip();
    }
    fclose(probe);
    qd_graph *g = NULL;
    if (qd_graph_load(path, &g) != QD_OK)
        fail_msg("%s: %s", path, qd_graph_error(g));
    if (qd_graph_infer_shapes(g) != QD_OK || qd_graph_simplify(g) != QD_OK)
        fail_msg("%s: %s", path, qd_graph_error(g));
    return g;
}

/* Converts g, checks the engine's outputs (default kernels) are the same
 * as before, returns the counts. */
static void convert_model(qd_graph *g, qd_conversion_counts *c)
{
    size_t n1, n2;
    float *want = run(g, 0, &n1);
    assert_int_equal(qd_graph_convert_for_fusion(g, c), QD_OK);
    assert_int_equal(qd_graph_verify(g), QD_OK);
    float *got = run(g, 0, &n2);
    assert_int_equal(n1, n2);
    assert_close(got, want, n1, 1e-4f);
    free(want);
    free(got);
}

static void test_resnet50(void **state)
{
    (void)state;
    qd_graph *g = load_torchvision("resnet50");
    qd_conversion_counts c;
    convert_model(g, &c);
    assert_int_equal(c.flatten_gemm_to_conv, 1);
    assert_int_equal(c.mha_in_proj_split, 0);
    assert_int_equal(count_op(g, "Gemm"), 0);
    assert_string_equal(g->outputs[0]->name, "output");
    assert_string_equal(g->outputs[0]->producer->op_type, "Flatten");
    /* The report is the one without the conversion: the head is a
     * FusedLinear (2048 * 1000 / 3048 = 672: INT8 in mixed). */
    qd_qdq_plan plan;
    assert_int_equal(matched(g, "tensorrt", "FusedLinear", &plan), 1);
    assert_int_equal(plan.linear_kept_high, 0);
    qd_plan_free(&plan);
    assert_int_equal(matched(g, "tensorrt", "FusedConvBN", NULL), 4);
    qd_graph_delete(g);
}

static void test_vit_b_16(void **state)
{
    (void)state;
    qd_graph *g = load_torchvision("vit_b_16");
    qd_conversion_counts c;
    convert_model(g, &c);
    assert_int_equal(c.mha_in_proj_split, 12);
    assert_int_equal(count_op(g, "Slice"), 0);
    /* 49 Linears before: 12 packed projections became 36. */
    assert_int_equal(matched(g, "tensorrt", "FusedLinear", NULL), 73);
    assert_int_equal(matched(g, "tensorrt", "Attention", NULL), 12);
    qd_graph_delete(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flatten_gemm_to_conv),
        cmocka_unit_test(test_converted_head_is_linear),
        cmocka_unit_test(test_flatten_gemm_left_alone),
        cmocka_unit_test(test_decompose_attention),
        cmocka_unit_test(test_attention_left_alone),
        cmocka_unit_test(test_report_and_errors),
        cmocka_unit_test(test_resnet50),
        cmocka_unit_test(test_vit_b_16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
