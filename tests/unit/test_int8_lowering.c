/* INT8 execution of QDQ groups (engine/lower_qdq.h) against the model as
 * written (the reference path runs DequantizeLinear -> op -> QuantizeLinear
 * in float, as onnxruntime does), on random shapes: convs (strides, pads,
 * groups incl. depthwise, 1x1 and 3x3), residual Adds, Relu, int8 and float
 * outputs; MatMul and Gemm Linears. Also the AVX-512 Quantize/Dequantize
 * kernels against the reference kernel, ties and saturation included, and
 * which steps were lowered. */
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
#include "engine/kernels/ref/ref_nn.h"
#include "engine/kernels/x86/x86_kernels.h"
#include "ir/graph.h"
#include "graph_build.h"

static unsigned g_seed = 7;
static float frand(void)
{
    g_seed = g_seed * 1103515245u + 12345u;
    return (float)((g_seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}
static int irand(int lo, int hi) { return lo + (int)((frand() + 1.0f) * 0.5f * (hi - lo + 0.999f)); }

static qd_value *const_f32(qd_graph *g, const char *hint, int rank, const int64_t *dims,
                           const float *data)
{
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, rank, dims);
    memcpy(t->data, data, t->nbytes);
    return qd_graph_add_initializer(g, hint, t);
}

static qd_value *scalar_f32(qd_graph *g, const char *hint, float v)
{
    return const_f32(g, hint, 0, NULL, &v);
}

static qd_value *zero_i8(qd_graph *g, int64_t n)
{
    int64_t d[1] = {n};
    qd_tensor *t = qd_tensor_new(QD_DT_INT8, n ? 1 : 0, d);
    memset(t->data, 0, t->nbytes);
    return qd_graph_add_initializer(g, "zp", t);
}

/* x -> Q(s) -> DQ(s): the int8 view of an activation. */
static qd_value *qdq(qd_graph *g, qd_value *x, float s)
{
    qd_value *sc = scalar_f32(g, "s", s), *zp = zero_i8(g, 0);
    qd_value *in[3] = {x, sc, zp};
    qd_value *q = tg_node1(g, "QuantizeLinear", in, 3);
    in[0] = q;
    return tg_node1(g, "DequantizeLinear", in, 3);
}

/* A constant int8 weight with per-channel scales on `axis`, dequantized. */
static qd_value *weight_dq(qd_graph *g, int rank, const int64_t *dims, int axis)
{
    qd_tensor *w = qd_tensor_new(QD_DT_INT8, rank, dims);
    for (int64_t i = 0; i < qd_numel(rank, dims); i++)
        ((int8_t *)w->data)[i] = (int8_t)irand(-127, 127);
    int64_t c = dims[axis];
    float *sc = malloc((size_t)c * sizeof *sc);
    for (int64_t i = 0; i < c; i++)
        sc[i] = 0.002f + 0.01f * (frand() + 1.0f);
    qd_value *wv = qd_graph_add_initializer(g, "w", w);
    qd_value *sv = const_f32(g, "ws", 1, &c, sc);
    free(sc);
    qd_value *in[3] = {wv, sv, zero_i8(g, c)};
    qd_value *y = tg_node1(g, "DequantizeLinear", in, 3);
    qd_node_set_attr_int(y->producer, "axis", axis);
    return y;
}

/* Runs g on the given inputs, fast (INT8 lowering) or reference; returns
 * the output copied, and the number of lowered steps. */
static float *run(qd_graph *g, int reference, qd_value **ins, float **data, int n_in,
                  int *lowered, int *requantized)
{
    qd_engine_options opt = {.threads = 2, .reference = reference};
    qd_engine *e = tg_engine(g, &opt);
    for (int i = 0; i < n_in; i++)
        assert_int_equal(qd_engine_set_input(e, ins[i]->name, QD_FLOAT32, ins[i]->rank,
                                             ins[i]->dims, data[i]),
                         QD_OK);
    qd_tensor_info info;
    float *out = tg_run_output0(e, &info);
    *lowered = *requantized = 0;
    for (size_t k = 0; k < e->n_steps; k++) {
        *lowered += e->steps[k].lowered;
        *requantized += e->steps[k].lowered && e->steps[k].quant.dst_scale > 0.0f;
    }
    qd_engine_delete(e);
    return out;
}

static float *random_data(int rank, const int64_t *dims)
{
    int64_t n = qd_numel(rank, dims);
    float *d = malloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++)
        d[i] = 2.0f * frand();
    return d;
}

typedef struct conv_case {
    int64_t n, c, o, h, w, k, stride, pad, group;
    int relu, residual, requant;
} conv_case;

static void run_conv_case(const conv_case *cc)
{
    qd_graph *g = qd_graph_new();
    g->opset = 17;
    int64_t xd[4] = {cc->n, cc->c, cc->h, cc->w};
    int64_t oh = (cc->h + 2 * cc->pad - cc->k) / cc->stride + 1;
    int64_t ow = (cc->w + 2 * cc->pad - cc->k) / cc->stride + 1;
    int64_t yd[4] = {cc->n, cc->o, oh, ow};
    qd_value *ins[2];
    float *data[2];
    int n_in = 0;
    ins[n_in] = tg_input(g, "x", QD_DT_FLOAT, 4, xd);
    data[n_in++] = random_data(4, xd);
    qd_value *rd = NULL;
    if (cc->residual) {
        ins[n_in] = tg_input(g, "r", QD_DT_FLOAT, 4, yd);
        data[n_in++] = random_data(4, yd);
        rd = qdq(g, ins[1], 0.017f);
    }
    qd_value *xd_ = qdq(g, ins[0], 0.0157f);
    int64_t wd[4] = {cc->o, cc->c / cc->group, cc->k, cc->k};
    qd_value *w = weight_dq(g, 4, wd, 0);
    float *bias = random_data(1, &cc->o);
    qd_value *b = const_f32(g, "b", 1, &cc->o, bias);
    free(bias);
    qd_value *cin[3] = {xd_, w, b};
    qd_value *y = tg_node1(g, "Conv", cin, 3);
    qd_node *conv = y->producer;
    int64_t pads[4] = {cc->pad, cc->pad, cc->pad, cc->pad}, strides[2] = {cc->stride, cc->stride};
    qd_node_set_attr_ints(conv, "pads", pads, 4);
    qd_node_set_attr_ints(conv, "strides", strides, 2);
    qd_node_set_attr_int(conv, "group", cc->group);
    if (cc->residual) {
        qd_value *a[2] = {y, rd};
        y = tg_node1(g, "Add", a, 2);
    }
    if (cc->relu)
        y = tg_node1(g, "Relu", &y, 1);
    float step = 0.0f;
    if (cc->requant) {
        step = 0.05f;
        y = qdq(g, y, step);
    }
    /* A float tail keeps the conv's own output off the graph output. */
    qd_value *tail = tg_node1(g, "Identity", &y, 1);
    tg_output(g, tail);
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);

    int lowered, requantized, l2, r2;
    float *fast = run(g, 0, ins, data, n_in, &lowered, &requantized);
    float *ref = run(g, 1, ins, data, n_in, &l2, &r2);
    char what[200];
    snprintf(what, sizeof what,
             "conv n%lld c%lld o%lld %lldx%lld k%lld s%lld p%lld g%lld relu%d res%d rq%d",
             (long long)cc->n, (long long)cc->c, (long long)cc->o, (long long)cc->h,
             (long long)cc->w, (long long)cc->k, (long long)cc->stride, (long long)cc->pad,
             (long long)cc->group, cc->relu, cc->residual, cc->requant);
    assert_int_equal(lowered, 1);
    assert_int_equal(l2, 0);
    /* Requantized in the kernel when what is fused commutes with the scale. */
    assert_int_equal(requantized, cc->requant ? 1 : 0);
    tg_compare(fast, ref, qd_numel(4, yd), step, what);
    free(fast);
    free(ref);
    for (int i = 0; i < n_in; i++)
        free(data[i]);
    qd_graph_delete(g);
}

static void test_conv_groups(void **state)
{
    (void)state;
    const conv_case fixed[] = {
        {1, 16, 32, 14, 14, 3, 1, 1, 1, 1, 0, 1},  {2, 64, 64, 8, 8, 1, 1, 0, 1, 1, 1, 1},
        {1, 32, 64, 15, 15, 3, 2, 1, 1, 0, 0, 0},  {1, 3, 16, 32, 32, 7, 2, 3, 1, 1, 0, 0},
        {1, 48, 48, 10, 10, 3, 1, 1, 48, 0, 0, 1}, {1, 32, 32, 9, 9, 3, 1, 1, 4, 1, 1, 0},
        {1, 24, 40, 12, 12, 1, 1, 0, 1, 0, 1, 1},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        run_conv_case(&fixed[i]);
    for (int t = 0; t < 12; t++) {
        conv_case cc = {irand(1, 2), 8 * irand(1, 8), 8 * irand(1, 8), irand(5, 17), irand(5, 17),
                        irand(0, 1) ? 3 : 1, irand(1, 2), 0, 1, irand(0, 1), irand(0, 1),
                        irand(0, 1)};
        cc.pad = cc.k / 2;
        if (irand(0, 3) == 0) {
            cc.group = cc.c; /* depthwise */
            cc.o = cc.c;
        }
        if (cc.residual && cc.stride != 1)
            cc.stride = 1;
        run_conv_case(&cc);
    }
}

/* x[B,T,K] -> QDQ -> MatMul(W[K,N]) -> Add bias -> [Relu] -> [QDQ], or the
 * Gemm form with transB and C. */
/* relu: 0 none, 1 Relu, 2 Gelu. */
static void run_linear_case(int gemm, int64_t b, int64_t t, int64_t k, int64_t nn, int relu,
                            int requant)
{
    qd_graph *g = qd_graph_new();
    g->opset = 17;
    int64_t xd[3] = {b, t, k};
    int xr = gemm ? 2 : 3;
    if (gemm)
        xd[0] = b * t, xd[1] = k;
    qd_value *x = tg_input(g, "x", QD_DT_FLOAT, xr, xd);
    float *data[1] = {random_data(xr, xd)};
    qd_value *xq = qdq(g, x, 0.0157f);
    float *bias = random_data(1, &nn);
    qd_value *bv = const_f32(g, "b", 1, &nn, bias);
    free(bias);
    qd_value *y;
    if (gemm) {
        int64_t wd[2] = {nn, k};
        qd_value *in[3] = {xq, weight_dq(g, 2, wd, 0), bv};
        y = tg_node1(g, "Gemm", in, 3);
        qd_node_set_attr_int(y->producer, "transB", 1);
    } else {
        int64_t wd[2] = {k, nn};
        qd_value *in[2] = {xq, weight_dq(g, 2, wd, 1)};
        y = tg_node1(g, "MatMul", in, 2);
        qd_value *a[2] = {y, bv};
        y = tg_node1(g, "Add", a, 2);
    }
    if (relu)
        y = tg_node1(g, relu == 2 ? "Gelu" : "Relu", &y, 1);
    float step = 0.0f;
    if (requant) {
        step = 0.04f;
        y = qdq(g, y, step);
    }
    qd_value *tail = tg_node1(g, "Identity", &y, 1);
    tg_output(g, tail);
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    qd_value *ins[1] = {x};
    int lowered, requantized, l2, r2;
    float *fast = run(g, 0, ins, data, 1, &lowered, &requantized);
    float *ref = run(g, 1, ins, data, 1, &l2, &r2);
    char what[160];
    snprintf(what, sizeof what, "%s b%lld t%lld k%lld n%lld relu%d rq%d", gemm ? "gemm" : "matmul",
             (long long)b, (long long)t, (long long)k, (long long)nn, relu, requant);
    assert_int_equal(lowered, 1);
    /* Requantized in the kernel: a Gemm's bias is the kernel's own, a
     * MatMul's bias Add and GELU run in real units before 1/s_y. */
    assert_int_equal(requantized, requant ? 1 : 0);
    tg_compare(fast, ref, b * t * nn, step, what);
    free(fast);
    free(ref);
    free(data[0]);
    qd_graph_delete(g);
}

static void test_linear_groups(void **state)
{
    (void)state;
    run_linear_case(0, 1, 197, 96, 160, 0, 0);
    run_linear_case(0, 2, 49, 64, 256, 1, 1);
    run_linear_case(1, 1, 1, 512, 10, 0, 0);
    run_linear_case(1, 4, 1, 128, 64, 1, 1);
    run_linear_case(0, 1, 49, 96, 384, 2, 1); /* ConvNeXt's fc1: bias, GELU, requantized */
    run_linear_case(1, 2, 3, 64, 32, 2, 0);
    for (int i = 0; i < 6; i++)
        run_linear_case(irand(0, 1), irand(1, 2), irand(1, 40), 16 * irand(1, 12),
                        16 * irand(1, 12), irand(0, 2), irand(0, 1));
}

/* Attention's MatMuls: two int8 activations [B, H, M, K] x [B, H, K, N]. */
static void run_batched_case(int64_t b, int64_t h, int64_t m, int64_t k, int64_t nn, int requant)
{
    qd_graph *g = qd_graph_new();
    g->opset = 17;
    int64_t ad[4] = {b, h, m, k}, bd[4] = {b, h, k, nn};
    qd_value *ins[2] = {tg_input(g, "a", QD_DT_FLOAT, 4, ad), tg_input(g, "b", QD_DT_FLOAT, 4, bd)};
    float *data[2] = {random_data(4, ad), random_data(4, bd)};
    qd_value *mm[2] = {qdq(g, ins[0], 0.0157f), qdq(g, ins[1], 0.011f)};
    qd_value *y = tg_node1(g, "MatMul", mm, 2);
    float step = 0.0f;
    if (requant) {
        step = 0.03f;
        y = qdq(g, y, step);
    }
    qd_value *tail = tg_node1(g, "Identity", &y, 1);
    tg_output(g, tail);
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    int lowered, requantized, l2, r2;
    float *fast = run(g, 0, ins, data, 2, &lowered, &requantized);
    float *ref = run(g, 1, ins, data, 2, &l2, &r2);
    char what[160];
    snprintf(what, sizeof what, "batched matmul %lldx%lldx%lldx%lld x %lld rq%d", (long long)b,
             (long long)h, (long long)m, (long long)k, (long long)nn, requant);
    assert_int_equal(lowered, 1);
    assert_int_equal(requantized, requant);
    tg_compare(fast, ref, b * h * m * nn, step, what);
    free(fast);
    free(ref);
    free(data[0]);
    free(data[1]);
    qd_graph_delete(g);
}

static void test_attention_matmuls(void **state)
{
    (void)state;
    run_batched_case(1, 12, 197, 64, 197, 0); /* ViT-B/16's QK^T */
    run_batched_case(1, 4, 50, 50, 32, 1);    /* AV, requantized */
    run_batched_case(2, 3, 7, 16, 9, 0);
}

/* LayerNorm / Softmax -> QuantizeLinear: the x86 kernel writes the int8
 * tensor itself; the same values as the float op then Quantize. */
static void run_norm_quant_case(const char *op, int64_t rows, int64_t n)
{
    qd_graph *g = qd_graph_new();
    g->opset = 17;
    int64_t xd[2] = {rows, n};
    qd_value *x = tg_input(g, "x", QD_DT_FLOAT, 2, xd);
    float *data[1] = {random_data(2, xd)};
    qd_value *y;
    if (!strcmp(op, "LayerNormalization")) {
        float *sc = random_data(1, &n), *bi = random_data(1, &n);
        qd_value *in[3] = {x, const_f32(g, "scale", 1, &n, sc), const_f32(g, "bias", 1, &n, bi)};
        free(sc);
        free(bi);
        y = tg_node1(g, op, in, 3);
    } else {
        y = tg_node1(g, op, &x, 1);
    }
    float step = !strcmp(op, "Softmax") ? 1.0f / 127.0f : 0.03f;
    y = qdq(g, y, step);
    qd_value *tail = tg_node1(g, "Identity", &y, 1);
    tg_output(g, tail);
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    qd_engine_options opt = {.threads = 2};
    qd_engine *e = tg_engine(g, &opt);
    int fused = 0;
    for (size_t k = 0; k < e->n_steps; k++)
        fused += !e->steps[k].lowered && e->steps[k].quant.dst_scale > 0.0f;
    qd_engine_delete(e);
    assert_int_equal(fused, qd_x86_cpu_avx512() ? 1 : 0);
    qd_value *ins[1] = {x};
    int l1, r1, l2, r2;
    float *fast = run(g, 0, ins, data, 1, &l1, &r1);
    float *ref = run(g, 1, ins, data, 1, &l2, &r2);
    char what[96];
    snprintf(what, sizeof what, "%s %lldx%lld -> int8", op, (long long)rows, (long long)n);
    tg_compare(fast, ref, rows * n, step, what);
    free(fast);
    free(ref);
    free(data[0]);
    qd_graph_delete(g);
}

static void test_norm_quant(void **state)
{
    (void)state;
    run_norm_quant_case("LayerNormalization", 197, 768);
    run_norm_quant_case("LayerNormalization", 5, 37);
    run_norm_quant_case("Softmax", 12 * 197, 197);
    run_norm_quant_case("Softmax", 3, 5);
}

/* The AVX-512 Quantize/Dequantize against the reference kernel. */
static void check_q_kernel(qd_dtype qt, int zp, float scale)
{
    if (!qd_x86_cpu_avx512())
        skip();
    qd_graph *g = qd_graph_new();
    g->opset = 17;
    const int64_t n = 1000;
    qd_value *x = tg_input(g, "x", QD_DT_FLOAT, 1, &n);
    qd_value *sc = scalar_f32(g, "s", scale);
    qd_tensor *zt = qd_tensor_new(qt, 0, NULL);
    if (qt == QD_DT_INT8)
        *(int8_t *)zt->data = (int8_t)zp;
    else
        *(uint8_t *)zt->data = (uint8_t)zp;
    qd_value *zv = qd_graph_add_initializer(g, "z", zt);
    qd_value *in[3] = {x, sc, zv};
    qd_value *q = tg_node1(g, "QuantizeLinear", in, 3);
    in[0] = q;
    qd_value *y = tg_node1(g, "DequantizeLinear", in, 3);
    tg_output(g, y);
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    assert_true(qd_x86_supports(q->producer));
    assert_true(qd_x86_supports(y->producer));

    qd_tensor *xt = qd_tensor_new(QD_DT_FLOAT, 1, &n);
    float *xs = xt->data;
    for (int64_t i = 0; i < n; i++) {
        if (i % 4 == 0)
            xs[i] = ((float)irand(-300, 300) + 0.5f) * scale; /* exact ties */
        else
            xs[i] = 400.0f * scale * frand(); /* beyond the range: saturation */
    }
    qd_tensor *q_ref = qd_tensor_new(qt, 1, &n), *q_fast = qd_tensor_new(qt, 1, &n);
    qd_tensor *y_ref = qd_tensor_new(QD_DT_FLOAT, 1, &n), *y_fast = qd_tensor_new(QD_DT_FLOAT, 1, &n);
    const qd_tensor *qin[3] = {xt, sc->konst, zt};
    qd_tensor *qo[1] = {q_ref};
    qd_kernel_args a = {q->producer, g, 3, qin, 1, qo, 2, NULL, NULL, 0, NULL, 0};
    assert_int_equal(qd_ref_kernel(QD_OP_QUANTIZE_LINEAR)(&a), QD_OK);
    qo[0] = q_fast;
    assert_int_equal(qd_x86_quantize(&a), QD_OK);
    assert_memory_equal(q_ref->data, q_fast->data, (size_t)n * qd_dtype_size(qt));
    const qd_tensor *din[3] = {q_ref, sc->konst, zt};
    qd_tensor *dout[1] = {y_ref};
    qd_kernel_args d = {y->producer, g, 3, din, 1, dout, 2, NULL, NULL, 0, NULL, 0};
    assert_int_equal(qd_ref_kernel(QD_OP_DEQUANTIZE_LINEAR)(&d), QD_OK);
    dout[0] = y_fast;
    assert_int_equal(qd_x86_quantize(&d), QD_OK);
    assert_memory_equal(y_ref->data, y_fast->data, y_ref->nbytes);
    /* Round half to even and saturation, spelled out. */
    int lo = qt == QD_DT_INT8 ? -128 : 0, hi = qt == QD_DT_INT8 ? 127 : 255;
    for (int64_t i = 0; i < n; i++) {
        float r = nearbyintf(xs[i] / scale) + (float)zp;
        int want = r < lo ? lo : r > hi ? hi : (int)r;
        int got = qt == QD_DT_INT8 ? ((int8_t *)q_fast->data)[i] : ((uint8_t *)q_fast->data)[i];
        assert_int_equal(got, want);
    }
    qd_tensor_delete(xt);
    qd_tensor_delete(q_ref);
    qd_tensor_delete(q_fast);
    qd_tensor_delete(y_ref);
    qd_tensor_delete(y_fast);
    qd_graph_delete(g);
}

static void test_quantize_kernels(void **state)
{
    (void)state;
    check_q_kernel(QD_DT_INT8, 0, 0.0173f);
    check_q_kernel(QD_DT_INT8, -3, 0.25f);
    check_q_kernel(QD_DT_UINT8, 128, 0.0311f);
    check_q_kernel(QD_DT_UINT8, 0, 0.5f);
}

/* A group the lowering must leave alone runs as written: a uint8 conv
 * with a zero point writing a graph output (kept channels-first, where
 * oneDNN 2.6 takes zero points only in its reference kernel) is not
 * lowered. */
static void test_not_lowered(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    g->opset = 17;
    int64_t xd[4] = {1, 8, 6, 6};
    qd_value *x = tg_input(g, "x", QD_DT_FLOAT, 4, xd);
    qd_value *sc = scalar_f32(g, "s", 0.02f);
    qd_tensor *zt = qd_tensor_new(QD_DT_UINT8, 0, NULL);
    *(uint8_t *)zt->data = 128;
    qd_value *zv = qd_graph_add_initializer(g, "z", zt);
    qd_value *in[3] = {x, sc, zv};
    qd_value *q = tg_node1(g, "QuantizeLinear", in, 3);
    in[0] = q;
    qd_value *xq = tg_node1(g, "DequantizeLinear", in, 3);
    int64_t wd[4] = {8, 8, 3, 3};
    qd_value *cin[2] = {xq, weight_dq(g, 4, wd, 0)};
    qd_value *y = tg_node1(g, "Conv", cin, 2);
    int64_t pads[4] = {1, 1, 1, 1};
    qd_node_set_attr_ints(y->producer, "pads", pads, 4);
    tg_output(g, y);
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    float *data[1] = {random_data(4, xd)};
    qd_value *ins[1] = {x};
    int lowered, requantized, l2, r2;
    float *fast = run(g, 0, ins, data, 1, &lowered, &requantized);
    float *ref = run(g, 1, ins, data, 1, &l2, &r2);
    assert_int_equal(lowered, 0);
    tg_compare(fast, ref, qd_numel(4, xd), 0.0f, "uint8 conv");
    free(fast);
    free(ref);
    free(data[0]);
    qd_graph_delete(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize_kernels),
        cmocka_unit_test(test_conv_groups),
        cmocka_unit_test(test_linear_groups),
        cmocka_unit_test(test_attention_matmuls),
        cmocka_unit_test(test_norm_quant),
        cmocka_unit_test(test_not_lowered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
