/* QDQ insertion (src/quant/qdq_insert.c): structure of the rewritten graph,
 * hand-checked weight quantization, onnx.checker on the saved model, the
 * QDQ graph against the float graph on the engine's reference path, and
 * the opset and argument errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "ir/graph.h"
#include "quant/qdq_insert.h"
#include "qdeploy.h"

static float frand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (float)((*seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static qd_graph *new_graph(int64_t opset)
{
    qd_graph *g = qd_graph_new();
    assert_non_null(g);
    g->opset = opset;
    g->opsets = qd_calloc(1, sizeof *g->opsets);
    assert_non_null(g->opsets);
    g->opsets[0].domain = qd_strdup("");
    g->opsets[0].version = opset;
    g->n_opsets = 1;
    g->ir_version = 8;
    return g;
}

static qd_value *input(qd_graph *g, const char *name, int rank, const int64_t *dims)
{
    qd_value *v = qd_graph_new_value(g, name, NULL);
    assert_non_null(v);
    qd_value_set_shape(v, QD_DT_FLOAT, rank, dims);
    assert_int_equal(qd_graph_add_input(g, v), QD_OK);
    return v;
}

static void output(qd_graph *g, qd_value *v)
{
    assert_int_equal(qd_graph_add_output(g, v), QD_OK);
}

static qd_value *weight(qd_graph *g, const char *name, int rank, const int64_t *dims,
                        unsigned seed, float mag)
{
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, rank, dims);
    assert_non_null(t);
    for (int64_t i = 0; i < qd_numel(rank, dims); i++)
        ((float *)t->data)[i] = mag * frand(&seed);
    qd_value *v = qd_graph_add_initializer(g, name, t);
    assert_non_null(v);
    return v;
}

static qd_node *op(qd_graph *g, const char *type, const char *name, qd_value **ins, int n_in,
                   qd_value **out)
{
    *out = qd_graph_new_value(g, NULL, name);
    assert_non_null(*out);
    qd_node *n = qd_graph_add_node(g, type, "", name, ins, n_in, out, 1);
    assert_non_null(n);
    return n;
}

/* The test model: x[1,2,5,5] -> conv1 (3x3 pad 1, bias) -> relu -> conv2
 * (3x3, no pad, no bias) -> flatten -> gemm (transB=1, bias) -> matmul
 * (constant [5,6] weight) -> y[1,6]. */
typedef struct model {
    qd_graph *g;
    qd_node *conv1, *conv2, *gemm, *matmul;
    qd_value *acts[4]; /* the activation input of each of them */
} model;

static const int64_t X_DIMS[4] = {1, 2, 5, 5};

/* intermediates != 0: the four activation inputs are graph outputs too
 * (after y), to measure their ranges. */
static model build(int64_t opset, int intermediates)
{
    model m;
    qd_graph *g = m.g = new_graph(opset);
    qd_value *x = input(g, "x", 4, X_DIMS);
    qd_value *c1, *r, *c2, *f, *gm, *y;

    qd_value *in1[3] = {x, weight(g, "conv1.weight", 4, (int64_t[]){3, 2, 3, 3}, 1, 0.5f),
                        weight(g, "conv1.bias", 1, (int64_t[]){3}, 2, 0.1f)};
    m.conv1 = op(g, "Conv", "conv1", in1, 3, &c1);
    qd_node_set_attr_ints(m.conv1, "kernel_shape", (int64_t[]){3, 3}, 2);
    qd_node_set_attr_ints(m.conv1, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    op(g, "Relu", "relu1", &c1, 1, &r);

    qd_value *in2[2] = {r, weight(g, "conv2.weight", 4, (int64_t[]){4, 3, 3, 3}, 3, 0.3f)};
    m.conv2 = op(g, "Conv", "conv2", in2, 2, &c2);
    qd_node_set_attr_ints(m.conv2, "kernel_shape", (int64_t[]){3, 3}, 2);
    qd_node *fl = op(g, "Flatten", "flatten", &c2, 1, &f);
    qd_node_set_attr_int(fl, "axis", 1);

    qd_value *in3[3] = {f, weight(g, "fc.weight", 2, (int64_t[]){5, 36}, 4, 0.2f),
                        weight(g, "fc.bias", 1, (int64_t[]){5}, 5, 0.1f)};
    m.gemm = op(g, "Gemm", "fc", in3, 3, &gm);
    qd_node_set_attr_int(m.gemm, "transB", 1);

    qd_value *in4[2] = {gm, weight(g, "proj.weight", 2, (int64_t[]){5, 6}, 6, 0.4f)};
    m.matmul = op(g, "MatMul", "proj", in4, 2, &y);
    output(g, y);
    m.acts[0] = x;
    m.acts[1] = r;
    m.acts[2] = f;
    m.acts[3] = gm;
    if (intermediates)
        for (int i = 1; i < 4; i++)
            output(g, m.acts[i]);
    return m;
}

static void make_input(float *x, int64_t n)
{
    unsigned seed = 99;
    for (int64_t i = 0; i < n; i++)
        x[i] = 2.0f * frand(&seed);
}

/* Runs g on the reference path; copies output `index` into out (n floats). */
static void run(qd_graph *g, const float *x, int index, float *out, int64_t n)
{
    qd_engine_options opt = {.threads = 1, .reference = 1};
    qd_engine *e = NULL;
    qd_status st = qd_engine_create(g, &opt, &e);
    if (st != QD_OK)
        fail_msg("engine: %s", e ? qd_engine_error(e) : "out of memory");
    assert_int_equal(qd_engine_set_input(e, "x", QD_FLOAT32, 4, X_DIMS, x), QD_OK);
    st = qd_engine_run(e);
    if (st != QD_OK)
        fail_msg("run: %s", qd_engine_error(e));
    qd_tensor_info info;
    assert_int_equal(qd_engine_output_info(e, index, &info), QD_OK);
    assert_int_equal(info.dtype, QD_FLOAT32);
    assert_int_equal(info.nbytes, (size_t)n * sizeof(float));
    memcpy(out, info.data, info.nbytes);
    qd_engine_delete(e);
}

static int count_op(const qd_graph *g, const char *type)
{
    int n = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        n += strcmp(g->nodes[i]->op_type, type) == 0;
    return n;
}

static float max_abs(const float *v, int64_t n)
{
    float m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(v[i]));
    return m;
}

/* The amax of each activation QDQ point, from a float run. */
static void calibrate(const float *x, float amax[4])
{
    static const int64_t sizes[4] = {50, 75, 36, 5};
    model m = build(17, 1);
    float buf[75];
    amax[0] = max_abs(x, 50);
    for (int i = 1; i < 4; i++) {
        run(m.g, x, i, buf, sizes[i]);
        amax[i] = max_abs(buf, sizes[i]);
    }
    qd_graph_delete(m.g);
}

static void quantize(model *m, const float amax[4])
{
    qd_node *nodes[4] = {m->conv1, m->conv2, m->gemm, m->matmul};
    for (int i = 0; i < 4; i++) {
        int axis = -2;
        assert_int_equal(qd_qdq_insert_activation(m->g, nodes[i], 0, amax[i]), QD_OK);
        assert_int_equal(qd_qdq_weight_axis(m->g, nodes[i], 1, &axis), QD_OK);
        assert_int_equal(qd_qdq_insert_weight(m->g, nodes[i], 1, axis), QD_OK);
    }
}

/* The DequantizeLinear feeding node input `input`. */
static const qd_node *dq_of(const qd_node *n, int input)
{
    const qd_node *dq = n->inputs[input]->producer;
    assert_non_null(dq);
    assert_string_equal(dq->op_type, "DequantizeLinear");
    return dq;
}

static void test_structure(void **state)
{
    (void)state;
    float x[50], amax[4];
    make_input(x, 50);
    calibrate(x, amax);
    model m = build(17, 0);
    quantize(&m, amax);
    qd_graph *g = m.g;

    assert_int_equal(count_op(g, "QuantizeLinear"), 4);
    assert_int_equal(count_op(g, "DequantizeLinear"), 8);
    assert_int_equal(count_op(g, "Conv"), 2);
    assert_int_equal(count_op(g, "Gemm"), 1);
    assert_int_equal(count_op(g, "MatMul"), 1);
    assert_int_equal(g->n_nodes, 4 + 8 + 6);

    /* No float weight is left among the initializers; biases stay float. */
    for (size_t i = 0; i < g->n_initializers; i++) {
        const qd_value *v = g->initializers[i];
        assert_false(strcmp(v->name, "conv1.weight") == 0 || strcmp(v->name, "fc.weight") == 0);
    }
    assert_int_equal(m.conv1->inputs[2]->konst->dtype, QD_DT_FLOAT);
    assert_string_equal(m.conv1->inputs[2]->name, "conv1.bias");
    assert_string_equal(m.gemm->inputs[2]->name, "fc.bias");

    qd_node *nodes[4] = {m.conv1, m.conv2, m.gemm, m.matmul};
    const int64_t channels[4] = {3, 4, 5, 6}, axes[4] = {0, 0, 0, 1};
    for (int i = 0; i < 4; i++) {
        /* Activation: Q -> DQ, scalar float scale amax/127, scalar int8 zp 0. */
        const qd_node *dq = dq_of(nodes[i], 0);
        const qd_node *q = dq->inputs[0]->producer;
        assert_non_null(q);
        assert_string_equal(q->op_type, "QuantizeLinear");
        assert_ptr_equal(q->inputs[0], m.acts[i]);
        assert_ptr_equal(q->inputs[1], dq->inputs[1]);
        const qd_tensor *s = q->inputs[1]->konst, *z = q->inputs[2]->konst;
        assert_int_equal(s->dtype, QD_DT_FLOAT);
        assert_int_equal(s->rank, 0);
        assert_true(((float *)s->data)[0] == amax[i] / 127.0f);
        assert_int_equal(z->dtype, QD_DT_INT8);
        assert_int_equal(z->rank, 0);
        assert_int_equal(((int8_t *)z->data)[0], 0);
        assert_null(qd_node_attr(q, "axis"));
        assert_int_equal(dq->outputs[0]->dtype, QD_DT_FLOAT);
        assert_int_equal(q->outputs[0]->dtype, QD_DT_INT8);

        /* Weight: INT8 initializer -> DQ(axis) with [C] scales and int8 zeros. */
        const qd_node *wdq = dq_of(nodes[i], 1);
        const qd_value *wq = wdq->inputs[0];
        assert_true(wq->is_initializer);
        assert_null(wq->producer);
        assert_int_equal(wq->konst->dtype, QD_DT_INT8);
        const qd_tensor *ws = wdq->inputs[1]->konst, *wz = wdq->inputs[2]->konst;
        assert_int_equal(ws->dtype, QD_DT_FLOAT);
        assert_int_equal(ws->rank, 1);
        assert_int_equal(ws->dims[0], channels[i]);
        assert_int_equal(wz->dtype, QD_DT_INT8);
        assert_int_equal(wz->rank, 1);
        assert_int_equal(wz->dims[0], channels[i]);
        for (int64_t c = 0; c < channels[i]; c++)
            assert_int_equal(((int8_t *)wz->data)[c], 0);
        const qd_attr *ax = qd_node_attr(wdq, "axis");
        assert_non_null(ax);
        assert_int_equal(ax->type, QD_ATTR_INT);
        assert_int_equal(ax->i, axes[i]);
        /* Each channel's largest |value| maps to +-127. */
        const int8_t *qd = wq->konst->data;
        int64_t n = qd_numel(wq->konst->rank, wq->konst->dims);
        int seen127 = 0;
        for (int64_t k = 0; k < n; k++) {
            assert_true(qd[k] >= -127 && qd[k] <= 127);
            seen127 += qd[k] == 127 || qd[k] == -127;
        }
        assert_true(seen127 >= channels[i]);
    }
    assert_string_equal(m.conv1->inputs[1]->producer->inputs[0]->name, "conv1.weight_int8");
    assert_string_equal(m.conv1->inputs[1]->producer->name, "conv1.weight_DequantizeLinear");
    assert_string_equal(m.conv1->inputs[0]->producer->name, "x_DequantizeLinear");

    /* Topologically sorted: every input produced before its consumer. */
    for (size_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i]->n_inputs; k++) {
            const qd_value *v = g->nodes[i]->inputs[k];
            if (v && v->producer)
                assert_true(v->producer->id < g->nodes[i]->id);
        }
    assert_int_equal(qd_graph_verify(g), QD_OK);
    qd_graph_delete(g);
}

/* Per-channel scales and round-half-even on a hand-checked weight, and the
 * MatMul axis (columns). */
static void test_weight_values(void **state)
{
    (void)state;
    qd_graph *g = new_graph(13);
    qd_value *x = input(g, "x", 4, (int64_t[]){1, 1, 1, 4});
    /* Conv weight [3,1,1,4]: channel 0 amax 127 (scale 1: ties to even),
     * channel 1 amax 1.27 (scale 0.01), channel 2 all zeros (scale 1). */
    static const float wv[12] = {127.0f, 2.5f, 3.5f, -0.5f, 0.5f, -1.27f, 0.004f, -0.006f,
                                 0, 0, 0, 0};
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, 4, (int64_t[]){3, 1, 1, 4});
    memcpy(t->data, wv, sizeof wv);
    qd_value *ins[2] = {x, qd_graph_add_initializer(g, "w", t)}, *y;
    qd_node *conv = op(g, "Conv", "conv", ins, 2, &y);
    output(g, y);
    assert_int_equal(qd_qdq_insert_weight(g, conv, 1, 0), QD_OK);
    const qd_node *dq = dq_of(conv, 1);
    const float *s = dq->inputs[1]->konst->data;
    assert_true(s[0] == 1.0f);
    assert_true(s[1] == 1.27f / 127.0f);
    assert_true(s[2] == 1.0f);
    static const int8_t expect[12] = {127, 2, 4, 0, 50, -127, 0, -1, 0, 0, 0, 0};
    assert_memory_equal(dq->inputs[0]->konst->data, expect, 12);
    qd_graph_delete(g);

    /* MatMul [K=2, N=3]: one scale per column (exact scales 2 and 4 make
     * the ties exact). */
    g = new_graph(13);
    x = input(g, "x", 2, (int64_t[]){1, 2});
    static const float mv[6] = {127.0f, -508.0f, 0.0f, -254.0f, 250.0f, 0.0f};
    t = qd_tensor_new(QD_DT_FLOAT, 2, (int64_t[]){2, 3});
    memcpy(t->data, mv, sizeof mv);
    qd_value *mins[2] = {x, qd_graph_add_initializer(g, "m", t)};
    qd_node *mm = op(g, "MatMul", "mm", mins, 2, &y);
    output(g, y);
    int axis = -2;
    assert_int_equal(qd_qdq_weight_axis(g, mm, 1, &axis), QD_OK);
    assert_int_equal(axis, 1);
    assert_int_equal(qd_qdq_insert_weight(g, mm, 1, axis), QD_OK);
    dq = dq_of(mm, 1);
    s = dq->inputs[1]->konst->data;
    assert_true(s[0] == 2.0f);
    assert_true(s[1] == 4.0f);
    assert_true(s[2] == 1.0f);
    const int8_t *q = dq->inputs[0]->konst->data;
    assert_int_equal(q[0], 64); /* 127 / 2 = 63.5 -> 64 (even) */
    assert_int_equal(q[3], -127);
    assert_int_equal(q[1], -127);
    assert_int_equal(q[4], 62); /* 250 / 4 = 62.5 -> 62 (even) */
    assert_int_equal(q[2], 0);
    qd_graph_delete(g);
}

/* One pair per tensor and scale. */
static void test_activation_reuse(void **state)
{
    (void)state;
    qd_graph *g = new_graph(17);
    qd_value *x = input(g, "x", 2, (int64_t[]){1, 4});
    qd_value *a, *b, *c;
    qd_node *na = op(g, "Relu", "a", &x, 1, &a);
    qd_node *nb = op(g, "Sigmoid", "b", &x, 1, &b);
    qd_node *nc = op(g, "Neg", "c", &x, 1, &c);
    output(g, a);
    output(g, b);
    output(g, c);
    assert_int_equal(qd_qdq_insert_activation(g, na, 0, 2.0f), QD_OK);
    assert_int_equal(qd_qdq_insert_activation(g, nb, 0, 2.0f), QD_OK);
    assert_int_equal(count_op(g, "QuantizeLinear"), 1);
    assert_int_equal(count_op(g, "DequantizeLinear"), 1);
    assert_ptr_equal(na->inputs[0], nb->inputs[0]);
    /* Again on an already quantized input: nothing changes. */
    assert_int_equal(qd_qdq_insert_activation(g, na, 0, 2.0f), QD_OK);
    assert_int_equal(count_op(g, "QuantizeLinear"), 1);
    /* Another scale: a second pair, with unique names. */
    assert_int_equal(qd_qdq_insert_activation(g, nc, 0, 4.0f), QD_OK);
    assert_int_equal(count_op(g, "QuantizeLinear"), 2);
    assert_int_equal(count_op(g, "DequantizeLinear"), 2);
    assert_ptr_not_equal(na->inputs[0], nc->inputs[0]);
    assert_string_not_equal(na->inputs[0]->producer->name, nc->inputs[0]->producer->name);
    /* Re-quantizing a DQ output with another scale is refused. */
    assert_int_equal(qd_qdq_insert_activation(g, na, 0, 3.0f), QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(qd_graph_error(g), "'a'"));
    /* amax 0 gives scale 1. */
    qd_value *d;
    qd_node *nd = op(g, "Relu", "d", &a, 1, &d);
    output(g, d);
    assert_int_equal(qd_qdq_insert_activation(g, nd, 0, 0.0f), QD_OK);
    assert_true(*(float *)nd->inputs[0]->producer->inputs[1]->konst->data == 1.0f);
    assert_int_equal(qd_graph_verify(g), QD_OK);
    qd_graph_delete(g);
}

static void test_onnx_checker(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0 ||
        system("/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1") != 0)
        skip();
    float x[50], amax[4];
    make_input(x, 50);
    calibrate(x, amax);
    model m = build(17, 0);
    /* The pipeline saves graphs with inferred types (the hand-built
     * intermediates have none yet). */
    if (qd_graph_infer_shapes(m.g) != QD_OK)
        fail_msg("infer: %s", qd_graph_error(m.g));
    quantize(&m, amax);
    char dir[] = "/tmp/qd_qdq_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], cmd[512];
    snprintf(path, sizeof path, "%s/model.qdq.onnx", dir);
    if (qd_graph_save(m.g, path) != QD_OK)
        fail_msg("save: %s", qd_graph_error(m.g));
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import onnx; onnx.checker.check_model(onnx.load('%s'), "
             "full_check=True)\"",
             path);
    int rc = system(cmd);
    unlink(path);
    rmdir(dir);
    assert_int_equal(rc, 0);
    qd_graph_delete(m.g);
}

/* The QDQ graph on the reference engine stays close to the float graph. */
static void test_engine_accuracy(void **state)
{
    (void)state;
    float x[50], amax[4], ref[6], got[6];
    make_input(x, 50);
    calibrate(x, amax);
    model f = build(17, 0);
    run(f.g, x, 0, ref, 6);
    qd_graph_delete(f.g);
    model m = build(17, 0);
    quantize(&m, amax);
    run(m.g, x, 0, got, 6);
    qd_graph_delete(m.g);
    float lo = ref[0], hi = ref[0], err = 0;
    for (int i = 0; i < 6; i++) {
        lo = fminf(lo, ref[i]);
        hi = fmaxf(hi, ref[i]);
        err = fmaxf(err, fabsf(got[i] - ref[i]));
    }
    print_message("QDQ vs float: max abs error %g, output range %g\n", (double)err,
                  (double)(hi - lo));
    assert_true(hi - lo > 0);
    assert_true(err < 0.05f * (hi - lo));
    assert_true(err > 0); /* the QDQ really did something */
}

/* A 1x1 single-channel Conv: the engine's result equals fake quantization
 * computed by hand. */
static void test_fake_quant_exact(void **state)
{
    (void)state;
    qd_graph *g = new_graph(13);
    static const int64_t dims[4] = {1, 1, 2, 2};
    qd_value *x = input(g, "x", 4, dims);
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, 4, (int64_t[]){1, 1, 1, 1});
    ((float *)t->data)[0] = 0.3f;
    qd_value *ins[2] = {x, qd_graph_add_initializer(g, "w", t)}, *y;
    qd_node *conv = op(g, "Conv", "conv", ins, 2, &y);
    qd_node_set_attr_ints(conv, "kernel_shape", (int64_t[]){1, 1}, 2);
    output(g, y);
    assert_int_equal(qd_qdq_insert_activation(g, conv, 0, 1.0f), QD_OK);
    assert_int_equal(qd_qdq_insert_weight(g, conv, 1, 0), QD_OK);

    static const float xv[4] = {0.1f, -0.2f, 0.55f, 1.5f}; /* 1.5 saturates */
    qd_engine_options opt = {.threads = 1, .reference = 1};
    qd_engine *e = NULL;
    if (qd_engine_create(g, &opt, &e) != QD_OK)
        fail_msg("engine: %s", e ? qd_engine_error(e) : "out of memory");
    assert_int_equal(qd_engine_set_input(e, "x", QD_FLOAT32, 4, dims, xv), QD_OK);
    assert_int_equal(qd_engine_run(e), QD_OK);
    qd_tensor_info info;
    assert_int_equal(qd_engine_output_info(e, 0, &info), QD_OK);
    const float *out = info.data;
    float sx = 1.0f / 127.0f, sw = 0.3f / 127.0f;
    float wdq = (float)(int)nearbyintf(0.3f / sw) * sw; /* 127 * sw */
    for (int i = 0; i < 4; i++) {
        float qx = nearbyintf(xv[i] / sx);
        qx = fminf(fmaxf(qx, -128.0f), 127.0f);
        float expect = (qx * sx) * wdq;
        assert_true(out[i] == expect);
    }
    assert_true(out[3] == (127.0f * sx) * wdq);
    qd_engine_delete(e);
    qd_graph_delete(g);
}

static void test_errors(void **state)
{
    (void)state;
    model m = build(11, 0);
    assert_int_equal(qd_qdq_insert_activation(m.g, m.conv1, 0, 1.0f), QD_STATUS_UNSUPPORTED);
    assert_non_null(strstr(qd_graph_error(m.g), "'conv1'"));
    assert_non_null(strstr(qd_graph_error(m.g), "opset"));
    assert_int_equal(qd_qdq_insert_weight(m.g, m.conv2, 1, 0), QD_STATUS_UNSUPPORTED);
    assert_non_null(strstr(qd_graph_error(m.g), "'conv2'"));
    assert_non_null(strstr(qd_graph_error(m.g), "conv2.weight"));
    assert_int_equal(count_op(m.g, "QuantizeLinear") + count_op(m.g, "DequantizeLinear"), 0);
    qd_graph_delete(m.g);

    m = build(17, 0);
    /* Not a constant: weight QDQ on an activation. */
    assert_int_equal(qd_qdq_insert_weight(m.g, m.conv2, 0, 0), QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(qd_graph_error(m.g), "'conv2'"));
    /* Bad axis, bad input index, bad amax. */
    assert_int_equal(qd_qdq_insert_weight(m.g, m.conv2, 1, 4), QD_STATUS_INVALID_ARGUMENT);
    assert_int_equal(qd_qdq_insert_activation(m.g, m.conv2, 5, 1.0f),
                     QD_STATUS_INVALID_ARGUMENT);
    assert_int_equal(qd_qdq_insert_activation(m.g, m.conv2, 0, -1.0f),
                     QD_STATUS_INVALID_ARGUMENT);
    assert_int_equal(qd_qdq_insert_activation(m.g, m.conv2, 0, NAN),
                     QD_STATUS_INVALID_ARGUMENT);
    /* No weight axis for a Relu. */
    int axis;
    assert_int_equal(qd_qdq_weight_axis(m.g, m.g->nodes[1], 0, &axis), QD_STATUS_UNSUPPORTED);
    /* The point dispatcher: weight by constness. */
    qd_qdq_point_spec w = {m.gemm, 1, 0}, a = {m.gemm, 0, -1};
    assert_int_equal(qd_qdq_insert_point(m.g, &w, 0.0f), QD_OK);
    assert_int_equal(qd_qdq_insert_point(m.g, &a, 3.0f), QD_OK);
    assert_int_equal(count_op(m.g, "QuantizeLinear"), 1);
    assert_int_equal(count_op(m.g, "DequantizeLinear"), 2);
    assert_int_equal(dq_of(m.gemm, 1)->inputs[0]->konst->dtype, QD_DT_INT8);
    qd_graph_delete(m.g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),       cmocka_unit_test(test_weight_values),
        cmocka_unit_test(test_activation_reuse), cmocka_unit_test(test_onnx_checker),
        cmocka_unit_test(test_engine_accuracy), cmocka_unit_test(test_fake_quant_exact),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
