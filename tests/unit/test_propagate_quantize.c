/* Q propagation (passes/propagate_quantize.c): a QuantizeLinear moves above
 * MaxPool, Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Slice, Relu and
 * Concat; not when the op's output has another reader or is a graph
 * output, the scale is per channel, a shape input is not constant, or the
 * op does not commute (AveragePool, Relu with uint8). The model as written
 * computes bit-identical outputs before and after. And a ResNet-like QDQ
 * model (Conv+Relu -> MaxPool -> Q -> DQ -> Conv) gets its first conv
 * writing int8 once the Q sits above the pool. */
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
#include "engine/engine.h"
#include "engine/kernels/x86/x86_kernels.h"
#include "ir/graph.h"
#include "graph_build.h"
#include "passes/passes.h"

static unsigned g_seed = 11;
static float frand(void)
{
    g_seed = g_seed * 1103515245u + 12345u;
    return (float)((g_seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static qd_value *const_f32(qd_graph *g, const char *hint, int rank, const int64_t *dims,
                           const float *data)
{
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, rank, dims);
    memcpy(t->data, data, t->nbytes);
    return qd_graph_add_initializer(g, hint, t);
}

static qd_value *const_i64(qd_graph *g, const char *hint, int64_t n, const int64_t *data)
{
    qd_tensor *t = qd_tensor_new(QD_DT_INT64, 1, &n);
    memcpy(t->data, data, t->nbytes);
    return qd_graph_add_initializer(g, hint, t);
}

static qd_value *zero_point(qd_graph *g, qd_dtype dt, int64_t n)
{
    qd_tensor *t = qd_tensor_new(dt, n ? 1 : 0, &n);
    memset(t->data, 0, t->nbytes);
    return qd_graph_add_initializer(g, "zp", t);
}

/* x -> Q(s, 0) in dt; per channel (axis 1, c scales) when c > 0. */
static qd_value *quantize(qd_graph *g, qd_value *x, float s, qd_dtype dt, int64_t c)
{
    qd_value *sc;
    if (c > 0) {
        float *v = malloc((size_t)c * sizeof *v);
        for (int64_t i = 0; i < c; i++)
            v[i] = s * (1.0f + 0.1f * (float)i);
        sc = const_f32(g, "s", 1, &c, v);
        free(v);
    } else {
        sc = const_f32(g, "s", 0, NULL, &s);
    }
    qd_value *in[3] = {x, sc, zero_point(g, dt, c)};
    qd_value *q = tg_node1(g, "QuantizeLinear", in, 3);
    if (c > 0)
        qd_node_set_attr_int(q->producer, "axis", 1);
    return q;
}

static qd_value *dequantize(qd_graph *g, qd_value *q, float s, qd_dtype dt)
{
    qd_value *in[3] = {q, const_f32(g, "s", 0, NULL, &s), zero_point(g, dt, 0)};
    return tg_node1(g, "DequantizeLinear", in, 3);
}

/* ---- one op between x and Q ---- */

typedef enum op_case {
    CASE_MAXPOOL,
    CASE_RESHAPE,
    CASE_FLATTEN,
    CASE_SQUEEZE,
    CASE_UNSQUEEZE,
    CASE_TRANSPOSE,
    CASE_SLICE,
    CASE_RELU,
    CASE_CONCAT,
    CASE_CHAIN, /* Flatten -> Reshape: the Q climbs both */
    CASE_ORT_MAXPOOL, /* Q -> DQ -> MaxPool -> Q, one scale: the Q climbs, then cancels */
    CASE_RESCALE,     /* Q(s1) -> DQ(s1) -> MaxPool -> Q(s2): climbs, stays */
    /* not rewritten */
    CASE_TWO_CONSUMERS,
    CASE_GRAPH_OUTPUT,
    CASE_PER_CHANNEL,
    CASE_SHAPE_INPUT,
    CASE_AVERAGE_POOL,
    CASE_RELU_UINT8,
    CASE_RELU_AFTER_CONV,
    CASE_MAXPOOL_INDICES,
    N_CASES
} op_case;

static const char *const case_names[N_CASES] = {
    "MaxPool", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Relu",
    "Concat", "Flatten->Reshape", "ORT-style MaxPool", "MaxPool between scales", "two consumers", "graph output", "per-channel scale",
    "non-constant shape", "AveragePool", "Relu uint8", "Relu after Conv", "MaxPool Indices"};

typedef struct built {
    qd_graph *g;
    qd_value *in[2];
    int n_in;
    qd_node *op; /* the op the Q should climb above (the first of a chain) */
} built;

static void set_pool_attrs(qd_node *n)
{
    int64_t k[2] = {3, 3}, s[2] = {2, 2}, p[4] = {1, 1, 1, 1};
    qd_node_set_attr_ints(n, "kernel_shape", k, 2);
    qd_node_set_attr_ints(n, "strides", s, 2);
    qd_node_set_attr_ints(n, "pads", p, 4);
}

/* x[1,4,6,6] -> OP -> Q(0.05) -> DQ -> Identity -> output. */
static built build_case(op_case c)
{
    g_seed = 3; /* before and after get the same constants */
    built b = {qd_graph_new(), {NULL, NULL}, 0, NULL};
    qd_graph *g = b.g;
    g->opset = 17;
    int64_t xd[4] = {1, 4, 6, 6};
    qd_value *x = tg_input(g, "x", QD_DT_FLOAT, 4, xd);
    b.in[b.n_in++] = x;
    qd_value *y = NULL;
    qd_dtype qdt = QD_DT_INT8;
    int64_t per_channel = 0;
    if (c == CASE_ORT_MAXPOOL || c == CASE_RESCALE) {
        float s = c == CASE_RESCALE ? 0.04f : 0.05f;
        x = dequantize(g, quantize(g, x, s, QD_DT_INT8, 0), s, QD_DT_INT8);
    }
    switch (c) {
    case CASE_MAXPOOL:
    case CASE_ORT_MAXPOOL:
    case CASE_RESCALE:
    case CASE_TWO_CONSUMERS:
    case CASE_GRAPH_OUTPUT:
        y = tg_node1(g, "MaxPool", &x, 1);
        set_pool_attrs(y->producer);
        break;
    case CASE_AVERAGE_POOL:
        y = tg_node1(g, "AveragePool", &x, 1);
        set_pool_attrs(y->producer);
        break;
    case CASE_MAXPOOL_INDICES: {
        qd_value *outs[2] = {qd_graph_new_value(g, NULL, "pool"), qd_graph_new_value(g, NULL, "ind")};
        qd_node *n = qd_graph_add_node(g, "MaxPool", "", NULL, &x, 1, outs, 2);
        set_pool_attrs(n);
        y = outs[0];
        tg_output(g, outs[1]);
        break;
    }
    case CASE_RESHAPE: {
        int64_t shape[2] = {1, -1};
        qd_value *in[2] = {x, const_i64(g, "shape", 2, shape)};
        y = tg_node1(g, "Reshape", in, 2);
        break;
    }
    case CASE_SHAPE_INPUT: {
        int64_t sd[1] = {2};
        qd_value *shape = tg_input(g, "shape", QD_DT_INT64, 1, sd);
        b.in[b.n_in++] = shape;
        qd_value *in[2] = {x, shape};
        y = tg_node1(g, "Reshape", in, 2);
        break;
    }
    case CASE_FLATTEN: y = tg_node1(g, "Flatten", &x, 1); break;
    case CASE_CHAIN: {
        y = tg_node1(g, "Flatten", &x, 1);
        int64_t shape[3] = {1, 4, 36};
        qd_value *in[2] = {y, const_i64(g, "shape", 3, shape)};
        y = tg_node1(g, "Reshape", in, 2);
        break;
    }
    case CASE_SQUEEZE: {
        int64_t axes[1] = {0};
        qd_value *in[2] = {x, const_i64(g, "axes", 1, axes)};
        y = tg_node1(g, "Squeeze", in, 2);
        break;
    }
    case CASE_UNSQUEEZE: {
        int64_t axes[1] = {2};
        qd_value *in[2] = {x, const_i64(g, "axes", 1, axes)};
        y = tg_node1(g, "Unsqueeze", in, 2);
        break;
    }
    case CASE_TRANSPOSE:
    case CASE_PER_CHANNEL: {
        y = tg_node1(g, "Transpose", &x, 1);
        int64_t perm[4] = {0, 2, 3, 1};
        qd_node_set_attr_ints(y->producer, "perm", perm, 4);
        if (c == CASE_PER_CHANNEL)
            per_channel = 6; /* axis 1 of the output: 6 */
        break;
    }
    case CASE_SLICE: {
        int64_t st[2] = {1, 0}, en[2] = {4, 5}, ax[2] = {1, 3};
        qd_value *in[4] = {x, const_i64(g, "starts", 2, st), const_i64(g, "ends", 2, en),
                           const_i64(g, "axes", 2, ax)};
        y = tg_node1(g, "Slice", in, 4);
        break;
    }
    case CASE_RELU:
    case CASE_RELU_UINT8:
        y = tg_node1(g, "Relu", &x, 1);
        if (c == CASE_RELU_UINT8)
            qdt = QD_DT_UINT8;
        break;
    case CASE_RELU_AFTER_CONV: {
        int64_t wd[4] = {4, 4, 1, 1};
        float w[16];
        for (int i = 0; i < 16; i++)
            w[i] = frand();
        qd_value *in[2] = {x, const_f32(g, "w", 4, wd, w)};
        y = tg_node1(g, "Conv", in, 2);
        y = tg_node1(g, "Relu", &y, 1);
        break;
    }
    case CASE_CONCAT: {
        int64_t x2d[4] = {1, 3, 6, 6};
        qd_value *x2 = tg_input(g, "x2", QD_DT_FLOAT, 4, x2d);
        b.in[b.n_in++] = x2;
        qd_value *in[2] = {x, x2};
        y = tg_node1(g, "Concat", in, 2);
        qd_node_set_attr_int(y->producer, "axis", 1);
        break;
    }
    default: fail_msg("no case %d", (int)c);
    }
    b.op = c == CASE_CHAIN ? x->uses[0].node : y->producer;
    if (c == CASE_TWO_CONSUMERS)
        tg_output(g, tg_node1(g, "Identity", &y, 1));
    if (c == CASE_GRAPH_OUTPUT)
        tg_output(g, y);
    qd_value *q = quantize(g, y, 0.05f, qdt, per_channel);
    qd_value *dq;
    if (per_channel) {
        /* DQ per channel too, so the model is valid as written. */
        float s[6];
        for (int i = 0; i < 6; i++)
            s[i] = 0.05f * (1.0f + 0.1f * (float)i);
        int64_t n6 = 6;
        qd_value *in[3] = {q, const_f32(g, "s", 1, &n6, s), zero_point(g, qdt, 6)};
        dq = tg_node1(g, "DequantizeLinear", in, 3);
        qd_node_set_attr_int(dq->producer, "axis", 1);
    } else {
        dq = dequantize(g, q, 0.05f, qdt);
    }
    tg_output(g, tg_node1(g, "Identity", &dq, 1));
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    return b;
}

/* Runs g (qdq_as_written or INT8) on fixed random inputs; returns output 0
 * copied and its size in floats. */
static float *run(qd_graph *g, int as_written, const built *b, int64_t *n_out,
                  qd_engine_stats *stats)
{
    qd_engine_options opt = {.threads = 2, .qdq_as_written = as_written};
    qd_engine *e = tg_engine(g, &opt);
    unsigned keep = g_seed;
    g_seed = 99; /* the same inputs for every run */
    for (int i = 0; i < b->n_in; i++) {
        const qd_value *v = b->in[i];
        int64_t n = qd_numel(v->rank, v->dims);
        if (v->dtype == QD_DT_INT64) {
            int64_t shape[2] = {1, -1};
            assert_int_equal(qd_engine_set_input(e, v->name, QD_INT64, v->rank, v->dims, shape),
                             QD_OK);
            continue;
        }
        float *d = malloc((size_t)n * sizeof *d);
        for (int64_t k = 0; k < n; k++)
            d[k] = 4.0f * frand(); /* past the int8 range at s = 0.05: saturation too */
        assert_int_equal(qd_engine_set_input(e, v->name, QD_FLOAT32, v->rank, v->dims, d), QD_OK);
        free(d);
    }
    g_seed = keep;
    qd_tensor_info info;
    float *out = tg_run_output0(e, &info);
    *n_out = (int64_t)(info.nbytes / sizeof(float));
    if (stats)
        qd_engine_get_stats(e, stats);
    qd_engine_delete(e);
    return out;
}

static int count_op(const qd_graph *g, qd_op op)
{
    int n = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        n += g->nodes[i]->op == op;
    return n;
}

/* 1 when some Q moved above the case's op: its input 0 is made by a Q. */
static int op_reads_quantized(const built *b)
{
    const qd_value *in = b->op->inputs[0];
    return in && in->producer && in->producer->op == QD_OP_QUANTIZE_LINEAR;
}

static void check_case(op_case c)
{
    int positive = c < CASE_TWO_CONSUMERS;
    built before = build_case(c), after = build_case(c);
    int moved = -1;
    assert_int_equal(qd_graph_propagate_quantize(after.g, &moved), QD_OK);
    qd_graph_prune_values(after.g);
    assert_int_equal(qd_graph_toposort(after.g), QD_OK);
    if (moved != (positive ? (c == CASE_CHAIN || c == CASE_ORT_MAXPOOL ? 2 : 1) : 0))
        fail_msg("%s: %d moves", case_names[c], moved);
    assert_int_equal(op_reads_quantized(&after), positive);
    if (positive) {
        assert_int_equal(after.op->outputs[0]->dtype, QD_DT_INT8);
        const qd_node *q = after.op->inputs[0]->producer;
        const qd_value *src = q->inputs[0];
        if (c == CASE_RESCALE) { /* the Q reads DQ(Q(x)) of the other scale */
            src = src->producer->op == QD_OP_DEQUANTIZE_LINEAR ? src->producer->inputs[0] : NULL;
            src = src && src->producer ? src->producer->inputs[0] : NULL;
        }
        assert_ptr_equal(src, after.in[0]); /* the Q reads x itself */
        if (c == CASE_ORT_MAXPOOL) { /* nothing left between the two Qs */
            assert_int_equal(count_op(after.g, QD_OP_QUANTIZE_LINEAR), 1);
            assert_int_equal(count_op(after.g, QD_OP_DEQUANTIZE_LINEAR), 1);
        }
        if (c == CASE_CONCAT) {
            const qd_value *in1 = after.op->inputs[1];
            assert_true(in1->producer && in1->producer->op == QD_OP_QUANTIZE_LINEAR);
            assert_ptr_equal(in1->producer->inputs[1], q->inputs[1]); /* same scale */
        }
    }
    /* The model as written: bit-identical outputs. */
    int64_t n0, n1, n2;
    float *ref = run(before.g, 1, &before, &n0, NULL);
    float *got = run(after.g, 1, &after, &n1, NULL);
    assert_int_equal(n0, n1);
    if (memcmp(ref, got, (size_t)n0 * sizeof *ref) != 0)
        fail_msg("%s: as-written outputs differ after the pass", case_names[c]);
    /* And the INT8 path runs the ops now reading int8, to the same values. */
    float *fast = run(after.g, 0, &after, &n2, NULL);
    assert_int_equal(n0, n2);
    for (int64_t i = 0; i < n0; i++)
        if (fabsf(fast[i] - ref[i]) > 1e-6f)
            fail_msg("%s: INT8 run differs at %lld: %g vs %g", case_names[c], (long long)i,
                     fast[i], ref[i]);
    free(ref);
    free(got);
    free(fast);
    qd_graph_delete(before.g);
    qd_graph_delete(after.g);
}

static void test_rewritten(void **state)
{
    (void)state;
    for (int c = 0; c < CASE_TWO_CONSUMERS; c++)
        check_case((op_case)c);
}

static void test_not_rewritten(void **state)
{
    (void)state;
    for (int c = CASE_TWO_CONSUMERS; c < N_CASES; c++)
        check_case((op_case)c);
}

/* ---- ResNet-like: Conv+Relu -> MaxPool -> Q -> DQ -> Conv, TensorRT-style ---- */

static qd_value *weight_dq(qd_graph *g, int64_t o, int64_t c, int64_t k)
{
    int64_t wd[4] = {o, c, k, k};
    qd_tensor *w = qd_tensor_new(QD_DT_INT8, 4, wd);
    for (int64_t i = 0; i < qd_numel(4, wd); i++)
        ((int8_t *)w->data)[i] = (int8_t)(127.0f * frand());
    float *sc = malloc((size_t)o * sizeof *sc);
    for (int64_t i = 0; i < o; i++)
        sc[i] = 0.002f + 0.002f * (frand() + 1.0f);
    qd_value *in[3] = {qd_graph_add_initializer(g, "w", w), const_f32(g, "ws", 1, &o, sc),
                       zero_point(g, QD_DT_INT8, o)};
    free(sc);
    qd_value *y = tg_node1(g, "DequantizeLinear", in, 3);
    qd_node_set_attr_int(y->producer, "axis", 0);
    return y;
}

static qd_value *conv(qd_graph *g, qd_value *x, int64_t o, int64_t c)
{
    float *bias = malloc((size_t)o * sizeof *bias);
    for (int64_t i = 0; i < o; i++)
        bias[i] = 0.1f * frand();
    qd_value *in[3] = {x, weight_dq(g, o, c, 3), const_f32(g, "b", 1, &o, bias)};
    free(bias);
    qd_value *y = tg_node1(g, "Conv", in, 3);
    int64_t pads[4] = {1, 1, 1, 1};
    qd_node_set_attr_ints(y->producer, "pads", pads, 4);
    return y;
}

#define S_IN 0.02f
#define S_POOL 0.03f
#define S_OUT 0.05f

/* ort: onnxruntime's form, Q -> DQ also between the Relu and the pool. */
static built build_resnet_like(int ort)
{
    g_seed = 5; /* the same weights in every build */
    built b = {qd_graph_new(), {NULL, NULL}, 0, NULL};
    qd_graph *g = b.g;
    g->opset = 17;
    int64_t xd[4] = {2, 16, 20, 20};
    qd_value *x = tg_input(g, "x", QD_DT_FLOAT, 4, xd);
    b.in[b.n_in++] = x;
    qd_value *y = dequantize(g, quantize(g, x, S_IN, QD_DT_INT8, 0), S_IN, QD_DT_INT8);
    y = tg_node1(g, "Relu", (qd_value *[]){conv(g, y, 32, 16)}, 1);
    if (ort)
        y = dequantize(g, quantize(g, y, S_POOL, QD_DT_INT8, 0), S_POOL, QD_DT_INT8);
    y = tg_node1(g, "MaxPool", &y, 1);
    set_pool_attrs(y->producer);
    b.op = y->producer;
    y = dequantize(g, quantize(g, y, S_POOL, QD_DT_INT8, 0), S_POOL, QD_DT_INT8);
    y = tg_node1(g, "Relu", (qd_value *[]){conv(g, y, 32, 32)}, 1);
    y = dequantize(g, quantize(g, y, S_OUT, QD_DT_INT8, 0), S_OUT, QD_DT_INT8);
    tg_output(g, tg_node1(g, "Identity", &y, 1));
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    return b;
}

static void check_resnet_like(int ort)
{
    built before = build_resnet_like(ort), after = build_resnet_like(ort);
    assert_int_equal(qd_graph_canonicalize(after.g), QD_OK);
    assert_true(op_reads_quantized(&after)); /* the pool reads int8 */
    qd_engine_stats s0, s1;
    int64_t n0, n1, n2, n3;
    float *int8_before = run(before.g, 0, &before, &n0, &s0);
    float *int8_after = run(after.g, 0, &after, &n1, &s1);
    float *as_written = run(before.g, 1, &before, &n2, NULL);
    float *as_written_after = run(after.g, 1, &after, &n3, NULL);
    assert_true(n0 == n1 && n1 == n2 && n2 == n3);
    print_message("%s form\n", ort ? "onnxruntime" : "TensorRT");
    print_message("plan before: INT8 kernels %d (%d write int8), Quantize %d, Dequantize %d, "
                  "layout conversions %d\n",
                  s0.int8_steps, s0.int8_requantized, s0.quantize_steps, s0.dequantize_steps,
                  s0.layout_conversions);
    print_message("plan after:  INT8 kernels %d (%d write int8), Quantize %d, Dequantize %d, "
                  "layout conversions %d\n",
                  s1.int8_steps, s1.int8_requantized, s1.quantize_steps, s1.dequantize_steps,
                  s1.layout_conversions);
    /* Both convs INT8 either way. TensorRT's form: the first writes int8
     * only after the pass (the second always did), and the Q after the pool
     * runs no more. onnxruntime's: the first always wrote int8; the DQ
     * before the pool and the Q after it run no more. */
    assert_int_equal(s0.int8_steps, 2);
    assert_int_equal(s1.int8_steps, 2);
    assert_int_equal(s0.int8_requantized, ort ? 2 : 1);
    assert_int_equal(s1.int8_requantized, 2);
    assert_int_equal(s1.quantize_steps, s0.quantize_steps - 1);
    assert_int_equal(s1.dequantize_steps, s0.dequantize_steps - ort); /* the output's */
    /* The int8 pool reads the conv's channels-last output as it is. */
    assert_true(s1.layout_conversions <= s0.layout_conversions);
    /* As written: the same bits. INT8: within a few output steps of it (a
     * requantization tie may round the other way, and that step of S_POOL
     * reaches the output through the second conv). */
    assert_memory_equal(as_written, as_written_after, (size_t)n2 * sizeof(float));
    int64_t off = 0;
    double max_diff = 0;
    for (int64_t i = 0; i < n1; i++) {
        double d = fabs(int8_after[i] - as_written[i]);
        max_diff = fmax(max_diff, d);
        off += d > 1e-6;
    }
    print_message("INT8 vs as written: max |diff| %g (%g steps), %lld of %lld differ\n", max_diff,
                  max_diff / S_OUT, (long long)off, (long long)n1);
    assert_true(max_diff <= 3 * S_OUT * 1.001);
    assert_true(off <= n1 / 50 + 1);
    free(int8_before);
    free(int8_after);
    free(as_written);
    free(as_written_after);
    qd_graph_delete(before.g);
    qd_graph_delete(after.g);
}

static void test_resnet_like(void **state)
{
    (void)state;
    check_resnet_like(0);
    check_resnet_like(1);
}

/* Which kernel runs the graph's MaxPool. */
static const char *pool_kernel(qd_graph *g)
{
    static char name[32];
    qd_engine_options opt = {.threads = 2};
    qd_engine *e = tg_engine(g, &opt);
    name[0] = 0;
    for (size_t k = 0; k < e->n_steps; k++)
        if (e->steps[k].node && e->steps[k].node->op == QD_OP_MAX_POOL)
            snprintf(name, sizeof name, "%s", e->steps[k].impl.name);
    qd_engine_delete(e);
    return name;
}

/* A float conv (channels-last output) -> Relu -> MaxPool -> Q(int8 or
 * uint8): after the pass the pool runs on NHWC 8-bit data, with the same
 * bits out as the float pool before it. */
static void test_nhwc_8bit_pool(void **state)
{
    (void)state;
    for (int u8 = 0; u8 < 2; u8++) {
        qd_dtype dt = u8 ? QD_DT_UINT8 : QD_DT_INT8;
        built b[2];
        for (int k = 0; k < 2; k++) {
            g_seed = 21;
            b[k] = (built){qd_graph_new(), {NULL, NULL}, 0, NULL};
            qd_graph *g = b[k].g;
            g->opset = 17;
            int64_t xd[4] = {1, 24, 15, 15}, wd[4] = {24, 24, 3, 3}, o = 24;
            qd_value *x = tg_input(g, "x", QD_DT_FLOAT, 4, xd);
            b[k].in[b[k].n_in++] = x;
            float *w = malloc(24 * 24 * 9 * sizeof *w), bias[24];
            for (int i = 0; i < 24 * 24 * 9; i++)
                w[i] = 0.2f * frand();
            for (int i = 0; i < 24; i++)
                bias[i] = 0.1f * frand();
            qd_value *in[3] = {x, const_f32(g, "w", 4, wd, w), const_f32(g, "b", 1, &o, bias)};
            free(w);
            qd_value *y = tg_node1(g, "Conv", in, 3);
            int64_t pads[4] = {1, 1, 1, 1};
            qd_node_set_attr_ints(y->producer, "pads", pads, 4);
            y = tg_node1(g, "Relu", &y, 1);
            y = tg_node1(g, "MaxPool", &y, 1);
            set_pool_attrs(y->producer);
            b[k].op = y->producer;
            y = dequantize(g, quantize(g, y, 0.02f, dt, 0), 0.02f, dt);
            tg_output(g, tg_node1(g, "Identity", &y, 1));
            assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
        }
        assert_int_equal(qd_graph_canonicalize(b[1].g), QD_OK);
        assert_true(op_reads_quantized(&b[1]));
        assert_int_equal(b[1].op->inputs[0]->dtype, dt);
        if (qd_x86_cpu_avx512()) /* the float conv writes NHWC only with oneDNN */
            assert_string_equal(pool_kernel(b[1].g), "nhwc");
        int64_t n0, n1;
        float *ref = run(b[0].g, 0, &b[0], &n0, NULL);
        float *got = run(b[1].g, 0, &b[1], &n1, NULL);
        assert_int_equal(n0, n1);
        if (memcmp(ref, got, (size_t)n0 * sizeof *ref) != 0)
            fail_msg("%s NHWC pool: outputs differ after the pass", u8 ? "uint8" : "int8");
        free(ref);
        free(got);
        qd_graph_delete(b[0].g);
        qd_graph_delete(b[1].g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rewritten),
        cmocka_unit_test(test_not_rewritten),
        cmocka_unit_test(test_resnet_like),
        cmocka_unit_test(test_nhwc_8bit_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
