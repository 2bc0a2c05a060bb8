/* The own channels-last depthwise conv (x86) against the reference kernels,
 * through the engine: ConvNeXt's depthwise conv -> permute -> LayerNorm
 * fused into one step (float output, or int8 when a QuantizeLinear reads
 * the LayerNorm), and a depthwise conv alone. Every case also checks that
 * the step was planned as expected, so a silent fall back to oneDNN or to
 * the separate steps fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/kernels/x86/x86_kernels.h"
#include "graph_build.h"
#include "ir/graph.h"
#include "qdeploy.h"

static unsigned g_seed = 1;
static float frand(void)
{
    g_seed = g_seed * 1103515245u + 12345u;
    return (float)((g_seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static qd_value *random_const(qd_graph *g, const char *hint, int rank, const int64_t *dims,
                              float scale, float offset)
{
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, rank, dims);
    for (int64_t i = 0; i < qd_numel(rank, dims); i++)
        ((float *)t->data)[i] = offset + scale * frand();
    return qd_graph_add_initializer(g, hint, t);
}

static qd_value *scalar(qd_graph *g, qd_dtype dt, float v)
{
    qd_tensor *t = qd_tensor_new(dt, 0, NULL);
    if (dt == QD_DT_FLOAT)
        *(float *)t->data = v;
    else
        memset(t->data, 0, t->nbytes);
    return qd_graph_add_initializer(g, dt == QD_DT_FLOAT ? "scale" : "zp", t);
}

typedef enum tail { TAIL_LN, TAIL_LN_INT8, TAIL_NONE } tail;

typedef struct dw_case {
    int64_t n, c, h, w;
    int k;
    int conv_bias, ln_bias;
    tail tail;
} dw_case;

#define INT8_STEP 0.02f

/* x -> Conv(depthwise KxK, pads K/2) -> Transpose(0,2,3,1) -> then
 * LayerNorm(C) [-> Q -> DQ], or for TAIL_NONE the permuted conv output
 * itself (a graph output, so the Transpose is not a view and the conv
 * runs alone). */
static qd_graph *dw_graph(const dw_case *tc)
{
    qd_graph *g = qd_graph_new();
    g->opset = 17;
    int64_t xd[4] = {tc->n, tc->c, tc->h, tc->w};
    qd_value *x = tg_input(g, "x", QD_DT_FLOAT, 4, xd);
    int64_t wd[4] = {tc->c, 1, tc->k, tc->k};
    qd_value *ins[3] = {x, random_const(g, "w", 4, wd, 0.3f, 0.0f),
                        tc->conv_bias ? random_const(g, "b", 1, &tc->c, 0.5f, 0.0f) : NULL};
    qd_value *y = tg_node1(g, "Conv", ins, tc->conv_bias ? 3 : 2);
    int64_t p = tc->k / 2, pads[4] = {p, p, p, p};
    qd_node_set_attr_int(y->producer, "group", tc->c);
    qd_node_set_attr_ints(y->producer, "pads", pads, 4);
    qd_node_set_attr_ints(y->producer, "kernel_shape", (int64_t[]){tc->k, tc->k}, 2);
    y = tg_node1(g, "Transpose", &y, 1);
    qd_node_set_attr_ints(y->producer, "perm", (int64_t[]){0, 2, 3, 1}, 4);
    if (tc->tail != TAIL_NONE) {
        qd_value *ln[3] = {y, random_const(g, "gamma", 1, &tc->c, 0.5f, 1.0f),
                           tc->ln_bias ? random_const(g, "beta", 1, &tc->c, 0.5f, 0.0f) : NULL};
        y = tg_node1(g, "LayerNormalization", ln, tc->ln_bias ? 3 : 2);
        qd_node_set_attr_float(y->producer, "epsilon", 1e-6f);
    }
    if (tc->tail == TAIL_LN_INT8) {
        qd_value *q[3] = {y, scalar(g, QD_DT_FLOAT, INT8_STEP), scalar(g, QD_DT_INT8, 0)};
        y = tg_node1(g, "QuantizeLinear", q, 3);
        q[0] = y;
        y = tg_node1(g, "DequantizeLinear", q, 3);
    }
    tg_output(g, y);
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    return g;
}

/* Runs g on x; returns a copy of the output. */
static float *run(qd_graph *g, int reference, const float *x, const int64_t *xd, int64_t *count)
{
    qd_engine_options opt = {.threads = 2, .reference = reference};
    qd_engine *e = tg_engine(g, &opt);
    assert_int_equal(qd_engine_set_input(e, "x", QD_FLOAT32, 4, xd, x), QD_OK);
    qd_tensor_info info;
    float *copy = tg_run_output0(e, &info);
    *count = (int64_t)(info.nbytes / sizeof(float));
    qd_engine_delete(e);
    return copy;
}

/* The conv's step: 1 when it runs on the x86 kernel with the planned
 * fusion (2 fused nodes with a LayerNorm, none alone; int8 output for
 * TAIL_LN_INT8). */
static int planned_as_expected(qd_graph *g, const dw_case *tc)
{
    qd_engine_options opt = {.threads = 2};
    qd_engine *e = tg_engine(g, &opt);
    int ok = 0;
    for (size_t k = 0; k < e->n_steps; k++) {
        const qd_step *s = &e->steps[k];
        if (!s->node || s->node->op != QD_OP_CONV)
            continue;
        ok = !strcmp(s->impl.name, "x86") && s->n_fused == (tc->tail == TAIL_NONE ? 0 : 2) &&
             (s->quant.dst_scale > 0.0f) == (tc->tail == TAIL_LN_INT8);
    }
    qd_engine_delete(e);
    return ok;
}

/* With on_x86, the conv step must be the planned x86 one. */
static void run_case(const dw_case *tc, int on_x86)
{
    g_seed = (unsigned)(tc->c * 131 + tc->h * 17 + tc->w * 7 + tc->k + tc->tail);
    qd_graph *g = dw_graph(tc);
    char what[128];
    snprintf(what, sizeof what, "dw %dx%d, %lldx%lldx%lldx%lld, bias %d/%d, tail %d", tc->k, tc->k,
             (long long)tc->n, (long long)tc->c, (long long)tc->h, (long long)tc->w,
             tc->conv_bias, tc->ln_bias, (int)tc->tail);
    if (on_x86 && qd_x86_cpu_avx512() && !planned_as_expected(g, tc))
        fail_msg("%s: not planned on the x86 depthwise kernel as expected", what);
    int64_t xd[4] = {tc->n, tc->c, tc->h, tc->w}, n = qd_numel(4, xd), n1, n2;
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = 2.0f * frand();
    float *fast = run(g, 0, x, xd, &n1), *ref = run(g, 1, x, xd, &n2);
    assert_int_equal(n1, n);
    assert_int_equal(n2, n);
    tg_compare(fast, ref, n, tc->tail == TAIL_LN_INT8 ? INT8_STEP : 0.0f, what);
    free(fast);
    free(ref);
    free(x);
    qd_graph_delete(g);
}

/* Shapes around the kernel's blocking: 8-pixel blocks (widths below,
 * at and past 8, not multiples), output row pairs (odd heights, height
 * below K), 16-channel blocks (channel tails), LayerNorm chunks (rows split
 * when 2 rows x width x channels outgrow the buffer: 256 x 40). */
static void test_dwconv_layernorm_matches_reference(void **state)
{
    (void)state;
    const dw_case cases[] = {
        {1, 96, 14, 14, 7, 1, 1, TAIL_LN},   {1, 20, 9, 11, 7, 1, 0, TAIL_LN},
        {2, 48, 5, 3, 7, 0, 1, TAIL_LN},     {1, 16, 2, 3, 7, 1, 1, TAIL_LN},
        {1, 33, 8, 17, 5, 1, 1, TAIL_LN},    {1, 64, 7, 9, 3, 0, 0, TAIL_LN},
        {1, 256, 6, 40, 7, 1, 1, TAIL_LN},   {1, 384, 3, 7, 7, 1, 1, TAIL_LN},
        {1, 96, 14, 14, 7, 1, 1, TAIL_LN_INT8}, {1, 40, 9, 10, 7, 1, 1, TAIL_LN_INT8},
        {2, 24, 4, 6, 3, 1, 0, TAIL_LN_INT8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_case(&cases[i], 1);
}

static void test_dwconv_alone_matches_reference(void **state)
{
    (void)state;
    const dw_case cases[] = {
        {1, 96, 14, 14, 7, 1, 0, TAIL_NONE}, {1, 20, 9, 11, 5, 0, 0, TAIL_NONE},
        {2, 35, 7, 8, 3, 1, 0, TAIL_NONE},   {1, 17, 2, 19, 7, 1, 0, TAIL_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_case(&cases[i], 1);
}

/* Beyond the channel limit the conv stays on oneDNN and the LayerNorm is
 * its own step; the result is the same. */
static void test_wide_dwconv_stays_on_onednn(void **state)
{
    (void)state;
    dw_case tc = {1, 512, 5, 6, 7, 1, 1, TAIL_LN};
    qd_graph *g = dw_graph(&tc);
    qd_engine_options opt = {.threads = 2};
    qd_engine *e = tg_engine(g, &opt);
    for (size_t k = 0; k < e->n_steps; k++)
        if (e->steps[k].node && e->steps[k].node->op == QD_OP_CONV)
            assert_int_equal(e->steps[k].n_fused, 0);
    qd_engine_delete(e);
    qd_graph_delete(g);
    run_case(&tc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dwconv_layernorm_matches_reference),
        cmocka_unit_test(test_dwconv_alone_matches_reference),
        cmocka_unit_test(test_wide_dwconv_stays_on_onednn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
