/* onnxruntime-style QDQ on the INT8 kernels (engine/lower_qdq.h), against
 * the same graph run as written (options.qdq_as_written: float
 * DequantizeLinear -> op -> QuantizeLinear):
 *  - the bias as DequantizeLinear(int32, s_x * s_w[c]) (Conv, Gemm);
 *  - uint8 activations with zero points, in and out;
 *  - QLinearConv / QLinearMatMul rewritten by qd_graph_canonicalize
 *    (passes/qlinear_to_qdq.h), against the reference QLinear kernels and
 *    against the ONNX backend node tests' expected outputs;
 *  - what must not be lowered (a bias at another scale, a bias zero point)
 *    and still computes the model as written. */
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
#include "ir/graph.h"
#include "graph_build.h"
#include "onnx/onnx_io.h"
#include "qdeploy.h"
#include "../conformance/tensor_pb.h"

static unsigned g_seed = 11;
static float frand(void)
{
    g_seed = g_seed * 1103515245u + 12345u;
    return (float)((g_seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}
static int irand(int lo, int hi) { return lo + (int)((frand() + 1.0f) * 0.5f * (hi - lo + 0.999f)); }

static qd_value *konst(qd_graph *g, const char *hint, qd_dtype dt, int rank, const int64_t *dims,
                       const void *data)
{
    qd_tensor *t = qd_tensor_new(dt, rank, dims);
    memcpy(t->data, data, t->nbytes);
    return qd_graph_add_initializer(g, hint, t);
}

static qd_value *scalar_f32(qd_graph *g, float v) { return konst(g, "s", QD_DT_FLOAT, 0, NULL, &v); }

/* A zero point of type dt (int8 or uint8). */
static qd_value *zp_of(qd_graph *g, qd_dtype dt, int v)
{
    int8_t s = (int8_t)v;
    uint8_t u = (uint8_t)v;
    return konst(g, "zp", dt, 0, NULL, dt == QD_DT_UINT8 ? (const void *)&u : (const void *)&s);
}

/* x -> Q(s, zp) -> DQ(s, zp): an activation as onnxruntime quantizes it. */
static qd_value *qdq(qd_graph *g, qd_value *x, float s, qd_dtype dt, int zp)
{
    qd_value *in[3] = {x, scalar_f32(g, s), zp_of(g, dt, zp)};
    in[0] = tg_node1(g, "QuantizeLinear", in, 3);
    return tg_node1(g, "DequantizeLinear", in, 3);
}

/* A constant int8 weight (symmetric) with per-channel scales on `axis`,
 * dequantized; the scales are returned in sw (c of them). */
static qd_value *weight_dq(qd_graph *g, int rank, const int64_t *dims, int axis, float *sw)
{
    int64_t n = qd_numel(rank, dims), c = dims[axis];
    int8_t *w = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++)
        w[i] = (int8_t)irand(-127, 127);
    for (int64_t i = 0; i < c; i++)
        sw[i] = 0.002f + 0.01f * (frand() + 1.0f);
    int8_t *z = calloc((size_t)c, 1);
    qd_value *in[3] = {konst(g, "w", QD_DT_INT8, rank, dims, w),
                       konst(g, "ws", QD_DT_FLOAT, 1, &c, sw),
                       konst(g, "wz", QD_DT_INT8, 1, &c, z)};
    free(w);
    free(z);
    qd_value *y = tg_node1(g, "DequantizeLinear", in, 3);
    qd_node_set_attr_int(y->producer, "axis", axis);
    return y;
}

/* The bias as onnxruntime writes it: int32 at scale s_x * s_w[c] (times
 * scale_error, to test the check), zero point bias_zp. */
static qd_value *bias_dq(qd_graph *g, int64_t c, float sx, const float *sw, float scale_error,
                         int bias_zp)
{
    int32_t *b = malloc((size_t)c * sizeof *b), *z = malloc((size_t)c * sizeof *z);
    float *sb = malloc((size_t)c * sizeof *sb);
    for (int64_t i = 0; i < c; i++) {
        b[i] = irand(-3000, 3000);
        sb[i] = sx * sw[i] * scale_error;
        z[i] = bias_zp;
    }
    qd_value *in[3] = {konst(g, "b", QD_DT_INT32, 1, &c, b), konst(g, "bs", QD_DT_FLOAT, 1, &c, sb),
                       konst(g, "bz", QD_DT_INT32, 1, &c, z)};
    free(b);
    free(sb);
    free(z);
    qd_value *y = tg_node1(g, "DequantizeLinear", in, 3);
    qd_node_set_attr_int(y->producer, "axis", 0);
    return y;
}

/* Runs g as written or lowered on float input data; the output copied as
 * float, and the INT8 step counts. */
static float *run(qd_graph *g, int as_written, const float *data, int *int8_steps,
                  int *requantized)
{
    qd_engine_options opt = {.threads = 2, .qdq_as_written = as_written};
    qd_engine *e = tg_engine(g, &opt);
    qd_value *x = g->inputs[0];
    assert_int_equal(qd_engine_set_input(e, x->name, QD_FLOAT32, x->rank, x->dims, data), QD_OK);
    qd_tensor_info info;
    float *out = tg_run_output0(e, &info);
    assert_int_equal(info.dtype, QD_FLOAT32);
    qd_engine_stats st;
    qd_engine_get_stats(e, &st);
    *int8_steps = st.int8_steps;
    *requantized = st.int8_requantized;
    qd_engine_delete(e);
    return out;
}

static float *random_data(int64_t n)
{
    float *d = malloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++)
        d[i] = 1.5f * frand() + 0.3f; /* not centred: the zero point matters */
    return d;
}

typedef struct ort_case {
    int64_t c, o, hw, k, stride, pad;
    qd_dtype act;    /* uint8 (zero point 100) or int8 (zero point 0) */
    int relu;        /* a Relu between Conv and Q */
    int requant;     /* Q(uint8, zp 7) after the conv, then DQ; else a float output */
    int gemm;        /* Gemm [1, c] x [o, c]^T + C instead of a Conv */
    float bias_err;  /* 1: the right bias scale */
    int bias_zp;     /* 0: as onnxruntime writes it */
    int want_int8;   /* expected int8 steps */
    int64_t group;   /* 0 or 1: dense; c: depthwise */
    int xzp;         /* the activation's zero point when not 0 (int8) */
    qd_dtype res;    /* a residual Add of x as this 8-bit type (o == c, same shape) */
} ort_case;

static void run_ort_case(const ort_case *oc)
{
    qd_graph *g = qd_graph_new();
    g->opset = 17;
    int64_t xd[4] = {1, oc->c, oc->hw, oc->hw}, xg[2] = {3, oc->c};
    qd_value *x = oc->gemm ? tg_input(g, "x", QD_DT_FLOAT, 2, xg) : tg_input(g, "x", QD_DT_FLOAT, 4, xd);
    float sx = 0.0123f;
    int zx = oc->xzp ? oc->xzp : oc->act == QD_DT_UINT8 ? 100 : 0;
    qd_value *xq = qdq(g, x, sx, oc->act, zx);
    float *sw = malloc((size_t)oc->o * sizeof *sw);
    qd_value *y;
    if (oc->gemm) {
        int64_t wd[2] = {oc->o, oc->c};
        qd_value *in[3] = {xq, weight_dq(g, 2, wd, 0, sw), NULL};
        in[2] = bias_dq(g, oc->o, sx, sw, oc->bias_err, oc->bias_zp);
        y = tg_node1(g, "Gemm", in, 3);
        qd_node_set_attr_int(y->producer, "transB", 1);
    } else {
        int64_t group = oc->group > 1 ? oc->group : 1;
        int64_t wd[4] = {oc->o, oc->c / group, oc->k, oc->k};
        qd_value *in[3] = {xq, weight_dq(g, 4, wd, 0, sw), NULL};
        in[2] = bias_dq(g, oc->o, sx, sw, oc->bias_err, oc->bias_zp);
        y = tg_node1(g, "Conv", in, 3);
        int64_t pads[4] = {oc->pad, oc->pad, oc->pad, oc->pad}, st[2] = {oc->stride, oc->stride};
        qd_node_set_attr_ints(y->producer, "pads", pads, 4);
        qd_node_set_attr_ints(y->producer, "strides", st, 2);
        qd_node_set_attr_int(y->producer, "group", group);
    }
    free(sw);
    if (oc->res) {
        qd_value *a[2] = {y, qdq(g, x, 0.017f, oc->res, oc->res == QD_DT_UINT8 ? 90 : -9)};
        y = tg_node1(g, "Add", a, 2);
    }
    if (oc->relu)
        y = tg_node1(g, "Relu", &y, 1);
    float step = 0.0f;
    if (oc->requant) {
        step = 0.04f;
        y = qdq(g, y, step, QD_DT_UINT8, 7);
    }
    tg_output(g, tg_node1(g, "Identity", &y, 1));
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    int64_t n_in = qd_value_numel(x), n_out = qd_value_numel(g->outputs[0]);
    float *data = random_data(n_in);
    int i8, rq, i8_ref, rq_ref;
    float *fast = run(g, 0, data, &i8, &rq);
    float *ref = run(g, 1, data, &i8_ref, &rq_ref);
    char what[200];
    snprintf(what, sizeof what,
             "%s c%lld o%lld g%lld hw%lld k%lld s%lld p%lld %s relu%d rq%d bias*%g zp%d res%d",
             oc->gemm ? "gemm" : "conv", (long long)oc->c, (long long)oc->o, (long long)oc->group,
             (long long)oc->hw,
             (long long)oc->k, (long long)oc->stride, (long long)oc->pad,
             oc->act == QD_DT_UINT8 ? "u8" : "s8", oc->relu, oc->requant, oc->bias_err,
             oc->bias_zp, (int)oc->res);
    if (i8 != oc->want_int8 || i8_ref != 0)
        fail_msg("%s: %d INT8 steps (as written %d), want %d", what, i8, i8_ref, oc->want_int8);
    assert_int_equal(rq, oc->want_int8 && oc->requant ? 1 : 0);
    tg_compare(fast, ref, n_out, step, what);
    free(fast);
    free(ref);
    free(data);
    qd_graph_delete(g);
}

/* Item 1: the int32 bias (int8 activations, zero point 0). */
static void test_int32_bias(void **state)
{
    (void)state;
    const ort_case cases[] = {
        {8, 16, 9, 3, 1, 1, QD_DT_INT8, 0, 1, 0, 1.0f, 0, 1, 0, 0, 0},
        {16, 8, 8, 1, 2, 0, QD_DT_INT8, 1, 1, 0, 1.0f, 0, 1, 0, 0, 0},
        {5, 12, 7, 3, 2, 1, QD_DT_INT8, 0, 0, 0, 1.0f, 0, 1, 0, 0, 0},
        {32, 10, 1, 1, 1, 0, QD_DT_INT8, 0, 1, 1, 1.0f, 0, 1, 0, 0, 0},
        {32, 10, 1, 1, 1, 0, QD_DT_INT8, 1, 0, 1, 1.0f, 0, 1, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_ort_case(&cases[i]);
}

/* Item 2: uint8 (and int8) activations with zero points, in (and out). */
static void test_uint8_zero_points(void **state)
{
    (void)state;
    const ort_case cases[] = {
        {8, 16, 9, 3, 1, 1, QD_DT_UINT8, 0, 1, 0, 1.0f, 0, 1, 0, 0, 0},
        {16, 24, 10, 3, 2, 1, QD_DT_UINT8, 1, 1, 0, 1.0f, 0, 1, 0, 0, 0},
        {16, 8, 8, 1, 1, 0, QD_DT_UINT8, 0, 0, 0, 1.0f, 0, 1, 0, 0, 0},
        {3, 16, 12, 3, 1, 1, QD_DT_UINT8, 1, 0, 0, 1.0f, 0, 1, 0, 0, 0},
        {32, 10, 1, 1, 1, 0, QD_DT_UINT8, 0, 1, 1, 1.0f, 0, 1, 0, 0, 0},
        {32, 10, 1, 1, 1, 0, QD_DT_UINT8, 1, 0, 1, 1.0f, 0, 1, 0, 0, 0},
        {16, 16, 10, 3, 1, 1, QD_DT_UINT8, 1, 1, 0, 1.0f, 0, 1, 16, 0, 0},
        {32, 32, 9, 3, 2, 1, QD_DT_UINT8, 0, 1, 0, 1.0f, 0, 1, 8, 0, 0},
        /* int8 activations with a zero point (onnxruntime's asymmetric QInt8) */
        {8, 16, 9, 3, 1, 1, QD_DT_INT8, 1, 1, 0, 1.0f, 0, 1, 0, -20, 0},
        {32, 10, 1, 1, 1, 0, QD_DT_INT8, 0, 1, 1, 1.0f, 0, 1, 0, 17, 0},
        /* residual Adds of 8-bit operands with zero points (ResNet blocks) */
        {16, 16, 10, 3, 1, 1, QD_DT_UINT8, 1, 1, 0, 1.0f, 0, 1, 0, 0, QD_DT_UINT8},
        {16, 16, 10, 1, 1, 0, QD_DT_UINT8, 0, 1, 0, 1.0f, 0, 1, 0, 0, QD_DT_INT8},
        {24, 24, 8, 3, 1, 1, QD_DT_INT8, 1, 1, 0, 1.0f, 0, 1, 0, 0, QD_DT_UINT8},
        {16, 16, 9, 3, 1, 1, QD_DT_UINT8, 1, 0, 0, 1.0f, 0, 1, 0, 0, QD_DT_UINT8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_ort_case(&cases[i]);
}

/* A bias at another scale than s_x * s_w, or with a zero point, is not in
 * accumulator units: not lowered, and still the model as written. */
static void test_bias_not_lowered(void **state)
{
    (void)state;
    const ort_case cases[] = {
        {8, 16, 9, 3, 1, 1, QD_DT_INT8, 0, 1, 0, 1.01f, 0, 0, 0, 0, 0},
        {8, 16, 9, 3, 1, 1, QD_DT_UINT8, 0, 1, 0, 0.5f, 0, 0, 0, 0, 0},
        {8, 16, 9, 3, 1, 1, QD_DT_INT8, 0, 1, 0, 1.0f, 3, 0, 0, 0, 0},
        {32, 10, 1, 1, 1, 0, QD_DT_UINT8, 0, 1, 1, 1.001f, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_ort_case(&cases[i]);
}

/* x (float) -> Q(uint8, zp 100) -> QLinearConv or QLinearMatMul (int8
 * symmetric weights per output channel, int32 bias) -> DQ. Built the same
 * for the same seed. */
static qd_graph *qlinear_graph(unsigned seed, int conv, int64_t c, int64_t o, int64_t k)
{
    g_seed = seed;
    qd_graph *g = qd_graph_new();
    g->opset = 13;
    int64_t xd[4] = {1, c, 9, 9}, xm[2] = {5, c};
    qd_value *x = conv ? tg_input(g, "x", QD_DT_FLOAT, 4, xd) : tg_input(g, "x", QD_DT_FLOAT, 2, xm);
    float sx = 0.0117f, sy = 0.05f;
    qd_value *qin[3] = {x, scalar_f32(g, sx), zp_of(g, QD_DT_UINT8, 100)};
    qd_value *xq = tg_node1(g, "QuantizeLinear", qin, 3);
    int64_t wd[4] = {o, c, k, k}, wm[2] = {c, o};
    int64_t nw = conv ? o * c * k * k : c * o;
    int8_t *w = malloc((size_t)nw), *wz = calloc((size_t)o, 1);
    float *sw = malloc((size_t)o * sizeof *sw);
    int32_t *b = malloc((size_t)o * sizeof *b);
    for (int64_t i = 0; i < nw; i++)
        w[i] = (int8_t)irand(-127, 127);
    for (int64_t i = 0; i < o; i++) {
        sw[i] = 0.002f + 0.01f * (frand() + 1.0f);
        b[i] = irand(-3000, 3000);
    }
    qd_value *in[9] = {xq, qin[1], qin[2],
                       konst(g, "w", QD_DT_INT8, conv ? 4 : 2, conv ? wd : wm, w),
                       konst(g, "ws", QD_DT_FLOAT, 1, &o, sw), konst(g, "wz", QD_DT_INT8, 1, &o, wz),
                       scalar_f32(g, sy), zp_of(g, QD_DT_UINT8, 5),
                       conv ? konst(g, "b", QD_DT_INT32, 1, &o, b) : NULL};
    free(w);
    free(wz);
    free(sw);
    free(b);
    qd_value *yq = tg_node1(g, conv ? "QLinearConv" : "QLinearMatMul", in, conv ? 9 : 8);
    if (conv) {
        int64_t pads[4] = {1, 1, 1, 1};
        qd_node_set_attr_ints(yq->producer, "pads", pads, 4);
    }
    qd_value *dq[3] = {yq, in[6], in[7]};
    tg_output(g, tg_node1(g, "DequantizeLinear", dq, 3));
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    return g;
}

static int count_op(const qd_graph *g, qd_op op)
{
    int k = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        k += g->nodes[i]->op == op;
    return k;
}

/* Item 3: the rewritten QLinear op is lowered and agrees with the QLinear
 * op's own (reference) kernel within one output step. */
static void test_qlinear_rewrite(void **state)
{
    (void)state;
    const struct { int conv; int64_t c, o, k; } cases[] = {
        {1, 8, 16, 3}, {1, 16, 8, 1}, {1, 3, 12, 3}, {0, 32, 24, 0}, {0, 7, 5, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned seed = 100 + (unsigned)i;
        qd_graph *orig = qlinear_graph(seed, cases[i].conv, cases[i].c, cases[i].o, cases[i].k);
        qd_graph *g = qlinear_graph(seed, cases[i].conv, cases[i].c, cases[i].o, cases[i].k);
        assert_int_equal(qd_graph_canonicalize(g), QD_OK);
        assert_int_equal(count_op(g, QD_OP_QLINEAR_CONV) + count_op(g, QD_OP_QLINEAR_MATMUL), 0);
        assert_int_equal(count_op(g, cases[i].conv ? QD_OP_CONV : QD_OP_MATMUL), 1);
        int64_t n = qd_value_numel(g->inputs[0]), n_out = qd_value_numel(g->outputs[0]);
        float *data = random_data(n);
        int i8, rq, i8_ref, rq_ref, i8_w, rq_w;
        float *fast = run(g, 0, data, &i8, &rq);
        float *written = run(g, 1, data, &i8_w, &rq_w);
        float *ref = run(orig, 0, data, &i8_ref, &rq_ref);
        char what[100];
        snprintf(what, sizeof what, "%s c%lld o%lld k%lld", cases[i].conv ? "QLinearConv" : "QLinearMatMul",
                 (long long)cases[i].c, (long long)cases[i].o, (long long)cases[i].k);
        if (i8 != 1 || rq != 1 || i8_ref != 0)
            fail_msg("%s: %d INT8 steps (%d requantized), want 1", what, i8, rq);
        tg_compare(fast, ref, n_out, 0.05f, what);
        tg_compare(written, ref, n_out, 0.05f, what);
        free(fast);
        free(written);
        free(ref);
        free(data);
        qd_graph_delete(g);
        qd_graph_delete(orig);
    }
}

/* ---- the ONNX backend node tests, rewritten ---- */

#define NODE_DIR "/usr/share/libonnx-testdata/data/node/"

/* test_qlinearconv and test_qlinearmatmul_2D/3D after qd_graph_canonicalize:
 * no QLinear op left, the expected uint8 outputs within one step. With
 * the scales as graph inputs nothing is lowered (a lowered group needs
 * constant scales), so this checks the rewrite itself. */
static void test_node_tests_rewritten(void **state)
{
    (void)state;
    const char *names[] = {"test_qlinearconv", "test_qlinearmatmul_2D", "test_qlinearmatmul_3D"};
    for (size_t t = 0; t < sizeof names / sizeof *names; t++) {
        char path[512];
        snprintf(path, sizeof path, NODE_DIR "%s/model.onnx", names[t]);
        FILE *probe = fopen(path, "rb");
        if (!probe) {
            print_message("skipped: %s not installed (libonnx-testdata)\n", path);
            continue;
        }
        fclose(probe);
        qd_graph *g = NULL;
        if (qd_graph_load(path, &g) != QD_OK)
            fail_msg("%s: %s", path, qd_graph_error(g));
        assert_int_equal(qd_graph_canonicalize(g), QD_OK);
        assert_int_equal(count_op(g, QD_OP_QLINEAR_CONV) + count_op(g, QD_OP_QLINEAR_MATMUL), 0);
        qd_tensor *in[8] = {0};
        int n_in = (int)g->n_inputs;
        assert_true(n_in <= 8);
        for (int i = 0; i < n_in; i++) {
            snprintf(path, sizeof path, NODE_DIR "%s/test_data_set_0/input_%d.pb", names[t], i);
            assert_non_null(in[i] = read_pb(g, path));
        }
        snprintf(path, sizeof path, NODE_DIR "%s/test_data_set_0/output_0.pb", names[t]);
        qd_tensor *want = read_pb(g, path);
        assert_non_null(want);
        qd_engine_options opt = {.threads = 2};
        qd_engine *e = NULL;
        if (qd_engine_create(g, &opt, &e) != QD_OK)
            fail_msg("%s: %s", names[t], qd_engine_error(e));
        for (int i = 0; i < n_in; i++)
            assert_int_equal(qd_engine_set_input(e, g->inputs[i]->name, in[i]->dtype, in[i]->rank,
                                                 in[i]->dims, in[i]->data),
                             QD_OK);
        assert_int_equal(qd_engine_run(e), QD_OK);
        qd_tensor_info o;
        assert_int_equal(qd_engine_output_info(e, 0, &o), QD_OK);
        assert_int_equal(o.dtype, QD_UINT8);
        assert_int_equal((int64_t)o.nbytes, qd_numel(want->rank, want->dims));
        int max_diff = 0;
        for (size_t i = 0; i < o.nbytes; i++) {
            int d = abs((int)((uint8_t *)o.data)[i] - (int)((uint8_t *)want->data)[i]);
            max_diff = d > max_diff ? d : max_diff;
        }
        if (max_diff > 1)
            fail_msg("%s: max difference %d steps from the expected output", names[t], max_diff);
        qd_engine_delete(e);
        for (int i = 0; i < n_in; i++)
            qd_tensor_delete(in[i]);
        qd_tensor_delete(want);
        qd_graph_delete(g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int32_bias),
        cmocka_unit_test(test_uint8_zero_points),
        cmocka_unit_test(test_bias_not_lowered),
        cmocka_unit_test(test_qlinear_rewrite),
        cmocka_unit_test(test_node_tests_rewritten),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
