/* Channels-last execution: layout conversion, the NHWC pool kernels against
 * the reference kernels, and a graph that exercises every layout-plan rule
 * (NHWC convs, physical elementwise steps, Transpose views, NHWC pools)
 * run on the fast path and compared with the reference path. */
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
#include "engine/kernels/dnnl/dnnl_kernels.h"
#include "engine/kernels/ref/ref_nn.h"
#include "engine/kernels/x86/pool2d_nhwc.h"
#include "ir/graph.h"

static unsigned g_seed = 1;
static float frand(void)
{
    g_seed = g_seed * 1103515245u + 12345u;
    return (float)((g_seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static qd_tensor *random_tensor(int64_t n, int64_t c, int64_t h, int64_t w)
{
    int64_t dims[4] = {n, c, h, w};
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, 4, dims);
    for (int64_t i = 0; i < qd_numel(4, dims); i++)
        ((float *)t->data)[i] = frand();
    return t;
}

static void reorder(qd_graph *g, const qd_tensor *x, qd_tensor *y)
{
    const qd_tensor *in[1] = {x};
    qd_tensor *out[1] = {y};
    qd_kernel_args a = {.graph = g, .n_inputs = 1, .inputs = in, .n_outputs = 1, .outputs = out};
    assert_int_equal(qd_reorder_layout(&a), QD_OK);
}

static void test_reorder_round_trip(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    for (int k = 0; k < 20; k++) {
        int64_t n = 1 + k % 2, c = 1 + (k * 7) % 37, h = 1 + (k * 5) % 19, w = 1 + (k * 3) % 23;
        qd_tensor *x = random_tensor(n, c, h, w), *y = random_tensor(n, c, h, w),
                  *z = random_tensor(n, c, h, w);
        y->layout = QD_LAYOUT_NHWC;
        reorder(g, x, y);
        /* y[b][i][j][ch] == x[b][ch][i][j] */
        const float *xs = x->data, *ys = y->data;
        for (int64_t b = 0; b < n; b++)
            for (int64_t ch = 0; ch < c; ch++)
                for (int64_t i = 0; i < h * w; i++)
                    assert_true(ys[(b * h * w + i) * c + ch] == xs[(b * c + ch) * h * w + i]);
        reorder(g, y, z);
        assert_memory_equal(z->data, x->data, x->nbytes);
        /* int8 data (the INT8 kernels' activations) moves the same way */
        int64_t d4[4] = {n, c, h, w};
        qd_tensor *xb = qd_tensor_new(QD_DT_INT8, 4, d4), *yb = qd_tensor_new(QD_DT_INT8, 4, d4),
                  *zb = qd_tensor_new(QD_DT_INT8, 4, d4);
        for (size_t i = 0; i < xb->nbytes; i++)
            ((int8_t *)xb->data)[i] = (int8_t)(i * 37 + k);
        yb->layout = QD_LAYOUT_NHWC;
        reorder(g, xb, yb);
        for (int64_t b = 0; b < n; b++)
            for (int64_t ch = 0; ch < c; ch++)
                for (int64_t i = 0; i < h * w; i++)
                    assert_true(((int8_t *)yb->data)[(b * h * w + i) * c + ch] ==
                                ((int8_t *)xb->data)[(b * c + ch) * h * w + i]);
        reorder(g, yb, zb);
        assert_memory_equal(zb->data, xb->data, xb->nbytes);
        qd_tensor_delete(xb);
        qd_tensor_delete(yb);
        qd_tensor_delete(zb);
        qd_tensor_delete(x);
        qd_tensor_delete(y);
        qd_tensor_delete(z);
    }
    qd_graph_delete(g);
}

/* A pool node on an input of the given shape, shapes inferred. */
static qd_node *pool_node(qd_graph *g, const char *op, const int64_t *xdims, int k, int s, int p)
{
    qd_value *x = qd_graph_new_value(g, NULL, "x");
    qd_value *y = qd_graph_new_value(g, NULL, "y");
    qd_value_set_shape(x, QD_DT_FLOAT, 4, xdims);
    x->is_input = 1;
    qd_node *n = qd_graph_add_node(g, op, "", NULL, &x, 1, &y, 1);
    if (!strcmp(op, "MaxPool")) {
        int64_t ks[2] = {k, k}, st[2] = {s, s}, pd[4] = {p, p, p, p};
        qd_node_set_attr_ints(n, "kernel_shape", ks, 2);
        qd_node_set_attr_ints(n, "strides", st, 2);
        qd_node_set_attr_ints(n, "pads", pd, 4);
    }
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    return n;
}

static void test_nhwc_pools_match_reference(void **state)
{
    (void)state;
    for (int k = 0; k < 24; k++) {
        qd_graph *g = qd_graph_new();
        g->opset = 17;
        int64_t dims[4] = {1 + k % 2, 1 + (k * 29) % 150, 3 + (k * 3) % 17, 2 + (k * 7) % 19};
        const char *op = k % 3 == 2 ? "GlobalAveragePool" : "MaxPool";
        qd_node *n = pool_node(g, op, dims, 2 + k % 3, 1 + k % 2, k % 2);
        assert_true(qd_pool2d_nhwc_supports(n));
        const qd_value *yv = n->outputs[0];
        qd_tensor *x = random_tensor(dims[0], dims[1], dims[2], dims[3]);
        qd_tensor *want = random_tensor(yv->dims[0], yv->dims[1], yv->dims[2], yv->dims[3]);
        qd_tensor *xn = random_tensor(dims[0], dims[1], dims[2], dims[3]);
        qd_tensor *yn = random_tensor(yv->dims[0], yv->dims[1], yv->dims[2], yv->dims[3]);
        qd_tensor *got = random_tensor(yv->dims[0], yv->dims[1], yv->dims[2], yv->dims[3]);
        xn->layout = yn->layout = QD_LAYOUT_NHWC;
        const qd_tensor *in[1] = {x};
        qd_tensor *out[1] = {want};
        qd_kernel_args a = {.node = n, .graph = g, .n_inputs = 1, .inputs = in,
                            .n_outputs = 1, .outputs = out};
        assert_int_equal(!strcmp(op, "MaxPool") ? qd_ref_max_pool(&a)
                                                : qd_ref_global_average_pool(&a),
                         QD_OK);
        reorder(g, x, xn);
        in[0] = xn;
        out[0] = yn;
        assert_int_equal(qd_pool2d_nhwc(&a), QD_OK);
        reorder(g, yn, got);
        for (size_t i = 0; i < want->nbytes / 4; i++) {
            float w = ((float *)want->data)[i], v = ((float *)got->data)[i];
            if (fabsf(w - v) > 1e-5f * (1 + fabsf(w)))
                fail_msg("%s case %d element %zu: %g vs %g", op, k, i, (double)v, (double)w);
        }
        qd_tensor *ts[] = {x, want, xn, yn, got};
        for (int i = 0; i < 5; i++)
            qd_tensor_delete(ts[i]);
        qd_graph_delete(g);
    }
}

/* ---- a graph through every layout rule ---- */

static qd_value *weight(qd_graph *g, const char *name, int rank, const int64_t *dims)
{
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, rank, dims);
    for (int64_t i = 0; i < qd_numel(rank, dims); i++)
        ((float *)t->data)[i] = 0.5f * frand();
    return qd_graph_add_initializer(g, name, t);
}

static qd_value *op(qd_graph *g, const char *type, qd_value **ins, int n)
{
    qd_value *out = qd_graph_new_value(g, NULL, type);
    qd_graph_add_node(g, type, "", NULL, ins, n, &out, 1);
    return out;
}

/* x -> Conv+Relu -> MaxPool -> Conv -> Add(pool) -> Mul([C,1,1]) -> Sigmoid
 *   -> Transpose(0,2,3,1) -> LayerNorm(C) -> Transpose(0,3,1,2) -> Conv
 *   -> GlobalAveragePool -> Flatten -> y */
static qd_graph *layout_graph(void)
{
    g_seed = 7;
    qd_graph *g = qd_graph_new();
    g->opset = 17;
    qd_value *x = qd_graph_new_value(g, "x", NULL);
    qd_value_set_shape(x, QD_DT_FLOAT, 4, (int64_t[]){1, 3, 20, 20});
    assert_int_equal(qd_graph_add_input(g, x), QD_OK);
    int64_t pads[4] = {1, 1, 1, 1}, k3[2] = {3, 3}, s2[2] = {2, 2};
    qd_value *c1 = op(g, "Conv", (qd_value *[]){x, weight(g, "w1", 4, (int64_t[]){16, 3, 3, 3}),
                                                 weight(g, "b1", 1, (int64_t[]){16})}, 3);
    qd_node_set_attr_ints(c1->producer, "pads", pads, 4);
    qd_value *r1 = op(g, "Relu", &c1, 1);
    qd_value *p1 = op(g, "MaxPool", &r1, 1);
    qd_node_set_attr_ints(p1->producer, "kernel_shape", k3, 2);
    qd_node_set_attr_ints(p1->producer, "strides", s2, 2);
    qd_node_set_attr_ints(p1->producer, "pads", pads, 4);
    qd_value *c2 = op(g, "Conv", (qd_value *[]){p1, weight(g, "w2", 4, (int64_t[]){16, 16, 3, 3})}, 2);
    qd_node_set_attr_ints(c2->producer, "pads", pads, 4);
    qd_value *a2 = op(g, "Add", (qd_value *[]){c2, p1}, 2);
    qd_value *m2 = op(g, "Mul", (qd_value *[]){a2, weight(g, "gamma", 3, (int64_t[]){16, 1, 1})}, 2);
    qd_value *s2v = op(g, "Sigmoid", &m2, 1);
    qd_value *t1 = op(g, "Transpose", &s2v, 1);
    qd_node_set_attr_ints(t1->producer, "perm", (int64_t[]){0, 2, 3, 1}, 4);
    qd_value *ln = op(g, "LayerNormalization", (qd_value *[]){t1, weight(g, "lns", 1, (int64_t[]){16}),
                                                              weight(g, "lnb", 1, (int64_t[]){16})}, 3);
    qd_value *t2 = op(g, "Transpose", &ln, 1);
    qd_node_set_attr_ints(t2->producer, "perm", (int64_t[]){0, 3, 1, 2}, 4);
    qd_value *c3 = op(g, "Conv", (qd_value *[]){t2, weight(g, "w3", 4, (int64_t[]){8, 16, 1, 1})}, 2);
    qd_value *gp = op(g, "GlobalAveragePool", &c3, 1);
    qd_value *y = op(g, "Flatten", &gp, 1);
    assert_int_equal(qd_graph_add_output(g, y), QD_OK);
    return g;
}

static float *run_graph(int reference, qd_engine **keep, size_t *count)
{
    qd_graph *g = layout_graph();
    qd_engine_options opt = {.threads = 2, .reference = reference};
    qd_engine *e = NULL;
    assert_int_equal(qd_engine_create(g, &opt, &e), QD_OK);
    float x[3 * 20 * 20];
    g_seed = 3;
    for (int i = 0; i < 3 * 20 * 20; i++)
        x[i] = frand();
    assert_int_equal(qd_engine_set_input(e, "x", QD_FLOAT32, 4, (int64_t[]){1, 3, 20, 20}, x), QD_OK);
    assert_int_equal(qd_engine_run(e), QD_OK);
    qd_tensor_info o;
    assert_int_equal(qd_engine_output_info(e, 0, &o), QD_OK);
    float *copy = malloc(o.nbytes);
    memcpy(copy, o.data, o.nbytes);
    *count = o.nbytes / 4;
    *keep = e;
    return copy;
}

static void test_layout_plan_matches_reference(void **state)
{
    (void)state;
    qd_engine *fast, *ref;
    size_t n1, n2;
    float *want = run_graph(1, &ref, &n1);
    float *got = run_graph(0, &fast, &n2);
    assert_int_equal(n1, n2);
    for (size_t i = 0; i < n1; i++)
        if (fabsf(got[i] - want[i]) > 1e-4f * (1 + fabsf(want[i])))
            fail_msg("element %zu: %g vs %g", i, (double)got[i], (double)want[i]);
    /* The fast plan kept channels-last data: the two Transposes are views
     * and only the network input is converted. */
    int views = 0, reorders = 0, nhwc_pools = 0;
    for (size_t k = 0; k < fast->n_steps; k++) {
        const qd_step *s = &fast->steps[k];
        if (!s->node)
            reorders++;
        else if (s->node->op == QD_OP_TRANSPOSE && !s->impl.run)
            views++;
        else if (!strcmp(s->impl.name, "nhwc"))
            nhwc_pools++;
    }
    assert_int_equal(views, 2);
    assert_int_equal(reorders, 1);
    assert_int_equal(nhwc_pools, 2);
    qd_graph *gf = fast->graph, *gr = ref->graph;
    qd_engine_delete(fast);
    qd_engine_delete(ref);
    qd_graph_delete(gf);
    qd_graph_delete(gr);
    free(want);
    free(got);
}

/* A stride-2 stem on few channels runs as a stride-1 conv on the
 * space-to-depth input; compare with the reference path on odd sizes,
 * asymmetric pads, 5x5 and 7x7 kernels, 1-3 channels, NCHW input. */
static void test_space_to_depth_stem(void **state)
{
    (void)state;
    const int64_t cases[][7] = {
        /* c, h, w, k, pad top/left, pad bottom/right, oc */
        {3, 224, 224, 7, 3, 3, 64}, {3, 21, 17, 7, 3, 2, 8}, {1, 19, 23, 5, 2, 2, 5},
        {2, 16, 15, 5, 0, 1, 7},    {4, 9, 12, 7, 1, 3, 3},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int64_t *cs = cases[k];
        float *out[2];
        size_t count[2];
        for (int reference = 0; reference < 2; reference++) {
            g_seed = 11 + (unsigned)k;
            qd_graph *g = qd_graph_new();
            g->opset = 17;
            qd_value *x = qd_graph_new_value(g, "x", NULL);
            int64_t xd[4] = {1, cs[0], cs[1], cs[2]};
            qd_value_set_shape(x, QD_DT_FLOAT, 4, xd);
            assert_int_equal(qd_graph_add_input(g, x), QD_OK);
            qd_value *c = op(g, "Conv", (qd_value *[]){x, weight(g, "w", 4, (int64_t[]){cs[6], cs[0], cs[3], cs[3]}),
                                                       weight(g, "b", 1, (int64_t[]){cs[6]})}, 3);
            int64_t pads[4] = {cs[4], cs[4], cs[5], cs[5]}, strides[2] = {2, 2};
            qd_node_set_attr_ints(c->producer, "pads", pads, 4);
            qd_node_set_attr_ints(c->producer, "strides", strides, 2);
            qd_value *y = op(g, "Relu", &c, 1);
            assert_int_equal(qd_graph_add_output(g, y), QD_OK);
            qd_engine_options opt = {.threads = 2, .reference = reference};
            qd_engine *e = NULL;
            assert_int_equal(qd_engine_create(g, &opt, &e), QD_OK);
            if (!reference)
                assert_true(qd_dnnl_conv_reads_plain_src(c->producer));
            size_t n = (size_t)(cs[0] * cs[1] * cs[2]);
            float *in = malloc(n * sizeof *in);
            for (size_t i = 0; i < n; i++)
                in[i] = frand();
            assert_int_equal(qd_engine_set_input(e, "x", QD_FLOAT32, 4, xd, in), QD_OK);
            free(in);
            assert_int_equal(qd_engine_run(e), QD_OK);
            qd_tensor_info o;
            qd_engine_output_info(e, 0, &o);
            out[reference] = malloc(o.nbytes);
            memcpy(out[reference], o.data, o.nbytes);
            count[reference] = o.nbytes / 4;
            qd_engine_delete(e);
            qd_graph_delete(g);
        }
        assert_int_equal(count[0], count[1]);
        for (size_t i = 0; i < count[0]; i++)
            if (fabsf(out[0][i] - out[1][i]) > 1e-4f * (1 + fabsf(out[1][i])))
                fail_msg("case %zu element %zu: %g vs %g", k, i, (double)out[0][i],
                         (double)out[1][i]);
        free(out[0]);
        free(out[1]);
    }
}

/* The observer sees every value of the layout graph, unfused, with the
 * same data (as a set: layout aside) as the reference path computes. */
typedef struct seen {
    int count;
    double sum_abs[64];
    char names[64][64];
} seen;

static void observe(void *user, const qd_tensor_info *v)
{
    seen *s = user;
    if (s->count >= 64 || v->dtype != QD_FLOAT32)
        return;
    double sum = 0;
    for (size_t i = 0; i < v->nbytes / 4; i++)
        sum += fabs(((const float *)v->data)[i]);
    snprintf(s->names[s->count], sizeof s->names[0], "%s", v->name);
    s->sum_abs[s->count++] = sum;
}

static void test_observer_sees_every_value(void **state)
{
    (void)state;
    seen got[2];
    memset(got, 0, sizeof got);
    for (int reference = 0; reference < 2; reference++) {
        qd_graph *g = layout_graph();
        qd_engine_options opt = {.threads = 2, .reference = reference, .unfused = 1};
        qd_engine *e = NULL;
        assert_int_equal(qd_engine_create(g, &opt, &e), QD_OK);
        qd_engine_set_observer(e, observe, &got[reference]);
        float x[3 * 20 * 20];
        g_seed = 3;
        for (int i = 0; i < 3 * 20 * 20; i++)
            x[i] = frand();
        assert_int_equal(qd_engine_set_input(e, "x", QD_FLOAT32, 4, (int64_t[]){1, 3, 20, 20}, x),
                         QD_OK);
        assert_int_equal(qd_engine_run(e), QD_OK);
        /* Every node output of the graph was observed once. */
        assert_int_equal(got[reference].count, (int)g->n_nodes);
        qd_engine_delete(e);
        qd_graph_delete(g);
    }
    for (int i = 0; i < got[0].count; i++) {
        assert_string_equal(got[0].names[i], got[1].names[i]);
        double a = got[0].sum_abs[i], b = got[1].sum_abs[i];
        if (fabs(a - b) > 1e-3 * (1 + fabs(b)))
            fail_msg("%s: sum |x| %g vs %g", got[0].names[i], a, b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reorder_round_trip),
        cmocka_unit_test(test_nhwc_pools_match_reference),
        cmocka_unit_test(test_layout_plan_matches_reference),
        cmocka_unit_test(test_space_to_depth_stem),
        cmocka_unit_test(test_observer_sees_every_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
