/* Reference elementwise and tensor kernels, called directly on hand-built
 * nodes: broadcasting, integer Div/Mod signs, rounding, casts, layout ops,
 * Einsum against naive loops, and refusal of inconsistent shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/ref/ref_elementwise.h"
#include "engine/kernels/ref/ref_tensor.h"
#include "ir/graph.h"

#define D(...) ((const int64_t[]){__VA_ARGS__})
#define F(...) ((const float[]){__VA_ARGS__})
#define I32(...) ((const int32_t[]){__VA_ARGS__})
#define I64(...) ((const int64_t[]){__VA_ARGS__})

static qd_tensor *tnew(qd_dtype dt, int rank, const int64_t *dims, const void *data)
{
    qd_tensor *t = qd_tensor_new(dt, rank, dims);
    assert_non_null(t);
    if (data && t->nbytes)
        memcpy(t->data, data, t->nbytes);
    return t;
}

/* A node of op_type with n_in inputs and n_out outputs (values unnamed). */
static qd_node *mk_node(qd_graph *g, const char *op_type, int n_in, int n_out)
{
    qd_value *in[8], *out[8];
    for (int i = 0; i < n_in; i++)
        in[i] = qd_graph_new_value(g, NULL, "in");
    for (int i = 0; i < n_out; i++)
        out[i] = qd_graph_new_value(g, NULL, "out");
    qd_node *n = qd_graph_add_node(g, op_type, "", NULL, in, n_in, out, n_out);
    assert_non_null(n);
    return n;
}

static qd_status run(qd_graph *g, qd_node *n, qd_kernel_fn fn, qd_tensor **in, int n_in,
                     qd_tensor **out, int n_out)
{
    qd_kernel_args a = {.node = n,
                        .graph = g,
                        .n_inputs = n_in,
                        .inputs = (const qd_tensor *const *)in,
                        .n_outputs = n_out,
                        .outputs = out,
                        .n_threads = 1};
    return fn(&a);
}

/* Runs a fresh node with one output; returns the status. */
static qd_status run1(qd_graph *g, const char *op, qd_kernel_fn fn, qd_tensor **in, int n_in,
                      qd_tensor *out, qd_node **node_out)
{
    qd_node *n = mk_node(g, op, n_in, 1);
    if (node_out)
        *node_out = n;
    return run(g, n, fn, in, n_in, &out, 1);
}

static void free_all(qd_tensor **t, int n)
{
    for (int i = 0; i < n; i++)
        qd_tensor_delete(t[i]);
}

static uint32_t rng = 12345;
static float frand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
}

static void fill_rand(qd_tensor *t)
{
    float *f = t->data;
    for (size_t i = 0; i < t->nbytes / 4; i++)
        f[i] = frand();
}

/* ---- binary ---- */

static void test_broadcast_add(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_tensor *x = tnew(QD_DT_FLOAT, 3, D(2, 1, 4), NULL);
    qd_tensor *y = tnew(QD_DT_FLOAT, 2, D(3, 1), NULL);
    qd_tensor *z = tnew(QD_DT_FLOAT, 3, D(2, 3, 4), NULL);
    fill_rand(x);
    fill_rand(y);
    qd_tensor *in[] = {x, y};
    assert_int_equal(run1(g, "Add", qd_ref_binary, in, 2, z, NULL), QD_OK);
    const float *X = x->data, *Y = y->data, *Z = z->data;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                assert_true(Z[(i * 3 + j) * 4 + k] == X[i * 4 + k] + Y[j]);
    /* Sub with a scalar on the left, Mul with equal shapes. */
    qd_tensor *s = tnew(QD_DT_FLOAT, 0, NULL, F(10));
    qd_tensor *in2[] = {s, z};
    qd_tensor *w = tnew(QD_DT_FLOAT, 3, D(2, 3, 4), NULL);
    assert_int_equal(run1(g, "Sub", qd_ref_binary, in2, 2, w, NULL), QD_OK);
    for (int i = 0; i < 24; i++)
        assert_true(((float *)w->data)[i] == 10 - Z[i]);
    /* An output that the inputs do not broadcast to is refused. */
    qd_tensor *bad = tnew(QD_DT_FLOAT, 3, D(2, 3, 5), NULL);
    assert_int_equal(run1(g, "Add", qd_ref_binary, in, 2, bad, NULL), QD_STATUS_SHAPE_ERROR);
    assert_non_null(strstr(qd_graph_error(g), "Add"));
    qd_tensor *all[] = {x, y, z, s, w, bad};
    free_all(all, 6);
    qd_graph_delete(g);
}

static void test_broadcast_general(void **state)
{
    (void)state;
    /* Both sides broadcast in different dims: [1,4,1,6] * [3,1,5,6]. */
    qd_graph *g = qd_graph_new();
    qd_tensor *x = tnew(QD_DT_FLOAT, 4, D(1, 4, 1, 6), NULL);
    qd_tensor *y = tnew(QD_DT_FLOAT, 4, D(3, 1, 5, 6), NULL);
    qd_tensor *z = tnew(QD_DT_FLOAT, 4, D(3, 4, 5, 6), NULL);
    fill_rand(x);
    fill_rand(y);
    qd_tensor *in[] = {x, y};
    assert_int_equal(run1(g, "Mul", qd_ref_binary, in, 2, z, NULL), QD_OK);
    const float *X = x->data, *Y = y->data, *Z = z->data;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 5; c++)
                for (int d = 0; d < 6; d++)
                    assert_true(Z[((a * 4 + b) * 5 + c) * 6 + d] ==
                                X[b * 6 + d] * Y[(a * 5 + c) * 6 + d]);
    qd_tensor *all[] = {x, y, z};
    free_all(all, 3);
    qd_graph_delete(g);
}

static void test_int_div_mod(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_tensor *x = tnew(QD_DT_INT32, 1, D(6), I32(-7, 7, -7, 7, 5, INT32_MIN));
    qd_tensor *y = tnew(QD_DT_INT32, 1, D(6), I32(2, 2, -2, -2, 0, -1));
    qd_tensor *z = tnew(QD_DT_INT32, 1, D(6), NULL);
    qd_tensor *in[] = {x, y};
    assert_int_equal(run1(g, "Div", qd_ref_binary, in, 2, z, NULL), QD_OK);
    const int32_t want_div[] = {-3, 3, 3, -3, 0, INT32_MIN}; /* /0 gives 0; MIN/-1 wraps */
    assert_memory_equal(z->data, want_div, sizeof want_div);

    /* Mod, fmod=0: the sign of the divisor (the ONNX node test's data). */
    qd_tensor *a8 = tnew(QD_DT_INT8, 1, D(6), (int8_t[]){-4, 7, 5, 4, -7, 8});
    qd_tensor *b8 = tnew(QD_DT_INT8, 1, D(6), (int8_t[]){2, -3, 8, -2, 3, 5});
    qd_tensor *c8 = tnew(QD_DT_INT8, 1, D(6), NULL);
    qd_tensor *in8[] = {a8, b8};
    assert_int_equal(run1(g, "Mod", qd_ref_binary, in8, 2, c8, NULL), QD_OK);
    assert_memory_equal(c8->data, ((int8_t[]){0, -2, 5, 0, 2, 3}), 6);
    /* fmod=1: the sign of the dividend. */
    qd_node *n;
    n = mk_node(g, "Mod", 2, 1);
    qd_node_set_attr_int(n, "fmod", 1);
    assert_int_equal(run(g, n, qd_ref_binary, in8, 2, &c8, 1), QD_OK);
    assert_memory_equal(c8->data, ((int8_t[]){0, 1, 5, 0, -1, 3}), 6);
    /* Float fmod. */
    qd_tensor *fx = tnew(QD_DT_FLOAT, 1, D(3), F(-4.3f, 7.2f, 5.0f));
    qd_tensor *fy = tnew(QD_DT_FLOAT, 1, D(3), F(2.1f, -3.4f, 8.0f));
    qd_tensor *fz = tnew(QD_DT_FLOAT, 1, D(3), NULL);
    qd_tensor *inf[] = {fx, fy};
    assert_int_equal(run(g, n, qd_ref_binary, inf, 2, &fz, 1), QD_OK);
    for (int i = 0; i < 3; i++)
        assert_float_equal(((float *)fz->data)[i],
                           fmodf(((float *)fx->data)[i], ((float *)fy->data)[i]), 1e-6);
    /* Unsigned wrap-around in Sub. */
    qd_tensor *u1 = tnew(QD_DT_UINT8, 1, D(2), (uint8_t[]){1, 200});
    qd_tensor *u2 = tnew(QD_DT_UINT8, 1, D(2), (uint8_t[]){2, 100});
    qd_tensor *u3 = tnew(QD_DT_UINT8, 1, D(2), NULL);
    qd_tensor *inu[] = {u1, u2};
    assert_int_equal(run1(g, "Sub", qd_ref_binary, inu, 2, u3, NULL), QD_OK);
    assert_memory_equal(u3->data, ((uint8_t[]){255, 100}), 2);
    qd_tensor *all[] = {x, y, z, a8, b8, c8, fx, fy, fz, u1, u2, u3};
    free_all(all, 12);
    qd_graph_delete(g);
}

static void test_pow_mixed(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_tensor *x = tnew(QD_DT_INT32, 1, D(3), I32(1, 2, 3));
    qd_tensor *y = tnew(QD_DT_FLOAT, 1, D(3), F(4, 5, 6));
    qd_tensor *z = tnew(QD_DT_INT32, 1, D(3), NULL);
    qd_tensor *in[] = {x, y};
    assert_int_equal(run1(g, "Pow", qd_ref_binary, in, 2, z, NULL), QD_OK);
    assert_memory_equal(z->data, I32(1, 32, 729), 12);
    qd_tensor *fx = tnew(QD_DT_FLOAT, 1, D(3), F(1, 2, 3));
    qd_tensor *iy = tnew(QD_DT_INT64, 0, NULL, I64(2));
    qd_tensor *fz = tnew(QD_DT_FLOAT, 1, D(3), NULL);
    qd_tensor *in2[] = {fx, iy};
    assert_int_equal(run1(g, "Pow", qd_ref_binary, in2, 2, fz, NULL), QD_OK);
    assert_memory_equal(fz->data, F(1, 4, 9), 12);
    qd_tensor *all[] = {x, y, z, fx, iy, fz};
    free_all(all, 6);
    qd_graph_delete(g);
}

static void test_compare_logic_where(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_tensor *x = tnew(QD_DT_FLOAT, 2, D(2, 2), F(1, 2, 3, 4));
    qd_tensor *y = tnew(QD_DT_FLOAT, 1, D(2), F(2, 3));
    qd_tensor *c = tnew(QD_DT_BOOL, 2, D(2, 2), NULL);
    qd_tensor *in[] = {x, y};
    assert_int_equal(run1(g, "Less", qd_ref_binary, in, 2, c, NULL), QD_OK);
    assert_memory_equal(c->data, ((uint8_t[]){1, 1, 0, 0}), 4);
    assert_int_equal(run1(g, "GreaterOrEqual", qd_ref_binary, in, 2, c, NULL), QD_OK);
    assert_memory_equal(c->data, ((uint8_t[]){0, 0, 1, 1}), 4);
    qd_tensor *b = tnew(QD_DT_BOOL, 1, D(2), (uint8_t[]){1, 0});
    qd_tensor *d = tnew(QD_DT_BOOL, 2, D(2, 2), NULL);
    qd_tensor *inb[] = {c, b};
    assert_int_equal(run1(g, "Xor", qd_ref_binary, inb, 2, d, NULL), QD_OK);
    assert_memory_equal(d->data, ((uint8_t[]){1, 0, 0, 1}), 4);
    /* Where with a broadcast condition and a scalar y. */
    qd_tensor *s = tnew(QD_DT_FLOAT, 0, NULL, F(-1));
    qd_tensor *w = tnew(QD_DT_FLOAT, 2, D(2, 2), NULL);
    qd_tensor *inw[] = {b, x, s};
    assert_int_equal(run1(g, "Where", qd_ref_where, inw, 3, w, NULL), QD_OK);
    assert_memory_equal(w->data, F(1, -1, 3, -1), 16);
    qd_tensor *all[] = {x, y, c, b, d, s, w};
    free_all(all, 7);
    qd_graph_delete(g);
}

static void test_variadic(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_tensor *a = tnew(QD_DT_FLOAT, 1, D(3), F(3, 2, 1));
    qd_tensor *b = tnew(QD_DT_FLOAT, 2, D(2, 3), F(1, 3, 2, 0, 0, 5));
    qd_tensor *c = tnew(QD_DT_FLOAT, 0, NULL, F(2.5f));
    qd_tensor *o = tnew(QD_DT_FLOAT, 2, D(2, 3), NULL);
    qd_tensor *in[] = {a, b, c};
    assert_int_equal(run1(g, "Max", qd_ref_binary, in, 3, o, NULL), QD_OK);
    assert_memory_equal(o->data, F(3, 3, 2.5f, 3, 2.5f, 5), 24);
    assert_int_equal(run1(g, "Sum", qd_ref_binary, in, 3, o, NULL), QD_OK);
    assert_memory_equal(o->data, F(6.5f, 7.5f, 5.5f, 5.5f, 4.5f, 8.5f), 24);
    assert_int_equal(run1(g, "Mean", qd_ref_binary, in, 3, o, NULL), QD_OK);
    for (int i = 0; i < 6; i++)
        assert_float_equal(((float *)o->data)[i], (F(6.5f, 7.5f, 5.5f, 5.5f, 4.5f, 8.5f))[i] / 3,
                           1e-6);
    qd_tensor *o1 = tnew(QD_DT_FLOAT, 1, D(3), NULL);
    assert_int_equal(run1(g, "Min", qd_ref_binary, in, 1, o1, NULL), QD_OK);
    assert_memory_equal(o1->data, a->data, 12);
    qd_tensor *all[] = {a, b, c, o, o1};
    free_all(all, 5);
    qd_graph_delete(g);
}

/* ---- unary ---- */

static void test_unary_math(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    const float xs[] = {-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f, 0.3f, -0.7f};
    qd_tensor *x = tnew(QD_DT_FLOAT, 1, D(8), xs);
    qd_tensor *y = tnew(QD_DT_FLOAT, 1, D(8), NULL);
    const float *Y = y->data;
    qd_tensor *in[] = {x};
    /* Round: half to even. */
    assert_int_equal(run1(g, "Round", qd_ref_unary, in, 1, y, NULL), QD_OK);
    const float want_round[] = {-2, -2, -0.0f, 0, 2, 2, 0, -1};
    assert_memory_equal(y->data, want_round, sizeof want_round);
    assert_int_equal(run1(g, "Sigmoid", qd_ref_unary, in, 1, y, NULL), QD_OK);
    for (int i = 0; i < 8; i++)
        assert_float_equal(Y[i], 1 / (1 + exp(-xs[i])), 1e-6);
    qd_node *n;
    n = mk_node(g, "LeakyRelu", 1, 1);
    qd_node_set_attr_float(n, "alpha", 0.1f);
    assert_int_equal(run(g, n, qd_ref_unary, in, 1, &y, 1), QD_OK);
    for (int i = 0; i < 8; i++)
        assert_float_equal(Y[i], xs[i] < 0 ? 0.1f * xs[i] : xs[i], 1e-7);
    assert_int_equal(run1(g, "HardSwish", qd_ref_unary, in, 1, y, NULL), QD_OK);
    for (int i = 0; i < 8; i++)
        assert_float_equal(Y[i], xs[i] * fmaxf(0, fminf(1, xs[i] / 6 + 0.5f)), 1e-6);
    assert_int_equal(run1(g, "Erf", qd_ref_unary, in, 1, y, NULL), QD_OK);
    for (int i = 0; i < 8; i++)
        assert_float_equal(Y[i], erf(xs[i]), 1e-6);
    assert_int_equal(run1(g, "Softplus", qd_ref_unary, in, 1, y, NULL), QD_OK);
    for (int i = 0; i < 8; i++)
        assert_float_equal(Y[i], log(exp(xs[i]) + 1), 1e-6);
    /* Integers: Neg wraps at the minimum, Relu keeps positives. */
    qd_tensor *i8 = tnew(QD_DT_INT8, 1, D(3), (int8_t[]){-128, -5, 7});
    qd_tensor *o8 = tnew(QD_DT_INT8, 1, D(3), NULL);
    qd_tensor *ini[] = {i8};
    assert_int_equal(run1(g, "Neg", qd_ref_unary, ini, 1, o8, NULL), QD_OK);
    assert_memory_equal(o8->data, ((int8_t[]){-128, 5, -7}), 3);
    assert_int_equal(run1(g, "Relu", qd_ref_unary, ini, 1, o8, NULL), QD_OK);
    assert_memory_equal(o8->data, ((int8_t[]){0, 0, 7}), 3);
    /* Float ops refuse integers; a size mismatch is refused. */
    assert_int_equal(run1(g, "Exp", qd_ref_unary, ini, 1, o8, NULL), QD_STATUS_UNSUPPORTED);
    qd_tensor *small = tnew(QD_DT_FLOAT, 1, D(7), NULL);
    assert_int_equal(run1(g, "Exp", qd_ref_unary, in, 1, small, NULL), QD_STATUS_SHAPE_ERROR);
    qd_tensor *all[] = {x, y, i8, o8, small};
    free_all(all, 5);
    qd_graph_delete(g);
}

static void test_clip(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_tensor *x = tnew(QD_DT_INT8, 1, D(4), (int8_t[]){-100, -3, 4, 100});
    qd_tensor *lo = tnew(QD_DT_INT8, 0, NULL, (int8_t[]){-5});
    qd_tensor *hi = tnew(QD_DT_INT8, 0, NULL, (int8_t[]){5});
    qd_tensor *y = tnew(QD_DT_INT8, 1, D(4), NULL);
    qd_tensor *in[] = {x, lo, NULL};
    assert_int_equal(run1(g, "Clip", qd_ref_clip, in, 3, y, NULL), QD_OK);
    assert_memory_equal(y->data, ((int8_t[]){-5, -3, 4, 100}), 4);
    qd_tensor *in2[] = {x, NULL, hi};
    assert_int_equal(run1(g, "Clip", qd_ref_clip, in2, 3, y, NULL), QD_OK);
    assert_memory_equal(y->data, ((int8_t[]){-100, -3, 4, 5}), 4);
    /* Opset 6 style: attributes. */
    qd_tensor *fx = tnew(QD_DT_FLOAT, 1, D(3), F(-2, 0.5f, 9));
    qd_tensor *fy = tnew(QD_DT_FLOAT, 1, D(3), NULL);
    qd_node *n = mk_node(g, "Clip", 1, 1);
    qd_node_set_attr_float(n, "min", 0);
    qd_node_set_attr_float(n, "max", 6);
    assert_int_equal(run(g, n, qd_ref_clip, &fx, 1, &fy, 1), QD_OK);
    assert_memory_equal(fy->data, F(0, 0.5f, 6), 12);
    qd_tensor *all[] = {x, lo, hi, y, fx, fy};
    free_all(all, 6);
    qd_graph_delete(g);
}

static void test_cast(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    const float xs[] = {1.0f, 1.0f / 3.0f, -2.75f, 65504.0f, 1e-7f, 70000.0f};
    qd_tensor *x = tnew(QD_DT_FLOAT, 1, D(6), xs);
    qd_tensor *h = tnew(QD_DT_FLOAT16, 1, D(6), NULL);
    qd_tensor *back = tnew(QD_DT_FLOAT, 1, D(6), NULL);
    qd_node *n = mk_node(g, "Cast", 1, 1);
    qd_node_set_attr_int(n, "to", QD_DT_FLOAT16);
    assert_int_equal(run(g, n, qd_ref_cast, &x, 1, &h, 1), QD_OK);
    const uint16_t *H = h->data;
    assert_int_equal(H[0], 0x3c00);
    assert_int_equal(H[1], 0x3555); /* 1/3 rounds to 0.333251953125 */
    assert_int_equal(H[5], 0x7c00); /* overflow: inf */
    n = mk_node(g, "Cast", 1, 1);
    qd_node_set_attr_int(n, "to", QD_DT_FLOAT);
    assert_int_equal(run(g, n, qd_ref_cast, &h, 1, &back, 1), QD_OK);
    const float *B = back->data;
    assert_true(B[0] == 1.0f && B[1] == 0.333251953125f && B[2] == -2.75f && B[3] == 65504.0f);
    assert_float_equal(B[4], 1e-7, 3e-8); /* subnormal half */
    assert_true(isinf(B[5]));
    /* Float to int truncates toward zero; NaN gives 0; to bool is != 0. */
    qd_tensor *f = tnew(QD_DT_FLOAT, 1, D(4), F(-2.7f, 2.7f, NAN, 0));
    qd_tensor *i = tnew(QD_DT_INT32, 1, D(4), NULL);
    qd_tensor *b = tnew(QD_DT_BOOL, 1, D(4), NULL);
    n = mk_node(g, "Cast", 1, 1);
    qd_node_set_attr_int(n, "to", QD_DT_INT32);
    assert_int_equal(run(g, n, qd_ref_cast, &f, 1, &i, 1), QD_OK);
    assert_memory_equal(i->data, I32(-2, 2, 0, 0), 16);
    n = mk_node(g, "Cast", 1, 1);
    qd_node_set_attr_int(n, "to", QD_DT_BOOL);
    assert_int_equal(run(g, n, qd_ref_cast, &f, 1, &b, 1), QD_OK);
    assert_memory_equal(b->data, ((uint8_t[]){1, 1, 1, 0}), 4);
    /* 'to' must match the output. */
    assert_int_equal(run(g, n, qd_ref_cast, &f, 1, &i, 1), QD_STATUS_SHAPE_ERROR);
    qd_tensor *all[] = {x, h, back, f, i, b};
    free_all(all, 6);
    qd_graph_delete(g);
}

static void test_dropout_identity(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_tensor *x = tnew(QD_DT_FLOAT, 1, D(3), F(1, 2, 3));
    qd_tensor *y = tnew(QD_DT_FLOAT, 1, D(3), NULL);
    qd_tensor *m = tnew(QD_DT_BOOL, 1, D(3), NULL);
    qd_tensor *outs[] = {y, m};
    qd_node *n = mk_node(g, "Dropout", 1, 2);
    assert_int_equal(run(g, n, qd_ref_dropout, &x, 1, outs, 2), QD_OK);
    assert_memory_equal(y->data, x->data, 12);
    assert_memory_equal(m->data, ((uint8_t[]){1, 1, 1}), 3);
    qd_tensor *all[] = {x, y, m};
    free_all(all, 3);
    qd_graph_delete(g);
}

/* ---- tensor ops ---- */

static void test_transpose(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    /* 4-D general permutation and the batched 2-D (tiled) case. */
    const int64_t perms[2][4] = {{0, 2, 3, 1}, {0, 1, 3, 2}};
    const int64_t dims[4] = {2, 3, 40, 50};
    qd_tensor *x = tnew(QD_DT_FLOAT, 4, dims, NULL);
    fill_rand(x);
    for (int p = 0; p < 2; p++) {
        const int64_t *pm = perms[p];
        int64_t od[4];
        for (int i = 0; i < 4; i++)
            od[i] = dims[pm[i]];
        qd_tensor *y = tnew(QD_DT_FLOAT, 4, od, NULL);
        qd_node *n = mk_node(g, "Transpose", 1, 1);
        qd_node_set_attr_ints(n, "perm", pm, 4);
        assert_int_equal(run(g, n, qd_ref_transpose, &x, 1, &y, 1), QD_OK);
        const float *X = x->data, *Y = y->data;
        int64_t idx[4];
        for (idx[0] = 0; idx[0] < dims[0]; idx[0]++)
            for (idx[1] = 0; idx[1] < dims[1]; idx[1]++)
                for (idx[2] = 0; idx[2] < dims[2]; idx[2]++)
                    for (idx[3] = 0; idx[3] < dims[3]; idx[3]++) {
                        int64_t xi =
                            ((idx[0] * dims[1] + idx[1]) * dims[2] + idx[2]) * dims[3] + idx[3];
                        int64_t yi =
                            ((idx[pm[0]] * od[1] + idx[pm[1]]) * od[2] + idx[pm[2]]) * od[3] +
                            idx[pm[3]];
                        assert_true(Y[yi] == X[xi]);
                    }
        qd_tensor_delete(y);
    }
    /* Default perm reverses; wrong output dims are refused. */
    qd_tensor *m = tnew(QD_DT_INT64, 2, D(2, 3), I64(1, 2, 3, 4, 5, 6));
    qd_tensor *mt = tnew(QD_DT_INT64, 2, D(3, 2), NULL);
    assert_int_equal(run1(g, "Transpose", qd_ref_transpose, &m, 1, mt, NULL), QD_OK);
    assert_memory_equal(mt->data, I64(1, 4, 2, 5, 3, 6), 48);
    assert_int_equal(run1(g, "Transpose", qd_ref_transpose, &m, 1, m, NULL), QD_STATUS_SHAPE_ERROR);
    qd_tensor *all[] = {x, m, mt};
    free_all(all, 3);
    qd_graph_delete(g);
}

static void test_slice(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    /* test_slice_neg_steps: x[20:0:-1, 10:0:-3, 4:1:-2] of [20,10,5]. */
    qd_tensor *x = tnew(QD_DT_FLOAT, 3, D(20, 10, 5), NULL);
    for (int i = 0; i < 1000; i++)
        ((float *)x->data)[i] = (float)i;
    qd_tensor *starts = tnew(QD_DT_INT64, 1, D(3), I64(20, 10, 4));
    qd_tensor *ends = tnew(QD_DT_INT64, 1, D(3), I64(0, 0, 1));
    qd_tensor *axes = tnew(QD_DT_INT64, 1, D(3), I64(0, 1, 2));
    qd_tensor *steps = tnew(QD_DT_INT64, 1, D(3), I64(-1, -3, -2));
    qd_tensor *y = tnew(QD_DT_FLOAT, 3, D(19, 3, 2), NULL);
    qd_tensor *in[] = {x, starts, ends, axes, steps};
    assert_int_equal(run1(g, "Slice", qd_ref_slice, in, 5, y, NULL), QD_OK);
    const float *Y = y->data;
    for (int i = 0; i < 19; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 2; k++)
                assert_true(Y[(i * 3 + j) * 2 + k] ==
                            (float)((19 - i) * 50 + (9 - 3 * j) * 5 + (4 - 2 * k)));
    /* Clamped ends, negative axis, default steps: x[:, 1:1000, -2:] */
    qd_tensor *s2 = tnew(QD_DT_INT32, 1, D(2), I32(1, -2));
    qd_tensor *e2 = tnew(QD_DT_INT32, 1, D(2), I32(1000, INT32_MAX));
    qd_tensor *a2 = tnew(QD_DT_INT32, 1, D(2), I32(1, -1));
    qd_tensor *y2 = tnew(QD_DT_FLOAT, 3, D(20, 9, 2), NULL);
    qd_tensor *in2[] = {x, s2, e2, a2};
    assert_int_equal(run1(g, "Slice", qd_ref_slice, in2, 4, y2, NULL), QD_OK);
    assert_true(((float *)y2->data)[0] == 1 * 5 + 3);
    assert_true(((float *)y2->data)[9 * 2 * 20 - 1] == 19 * 50 + 9 * 5 + 4);
    /* An output that does not match the slice is refused. */
    assert_int_equal(run1(g, "Slice", qd_ref_slice, in, 5, y2, NULL), QD_STATUS_SHAPE_ERROR);
    qd_tensor *all[] = {x, starts, ends, axes, steps, y, s2, e2, a2, y2};
    free_all(all, 10);
    qd_graph_delete(g);
}

static void test_gather(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_tensor *x = tnew(QD_DT_FLOAT, 2, D(3, 3), F(0, 1, 2, 3, 4, 5, 6, 7, 8));
    qd_tensor *idx = tnew(QD_DT_INT64, 2, D(1, 2), I64(-1, 0));
    qd_tensor *y = tnew(QD_DT_FLOAT, 3, D(3, 1, 2), NULL);
    qd_node *n = mk_node(g, "Gather", 2, 1);
    qd_node_set_attr_int(n, "axis", 1);
    qd_tensor *in[] = {x, idx};
    assert_int_equal(run(g, n, qd_ref_gather, in, 2, &y, 1), QD_OK);
    assert_memory_equal(y->data, F(2, 0, 5, 3, 8, 6), 24);
    qd_tensor *i0 = tnew(QD_DT_INT32, 0, NULL, I32(-3));
    qd_tensor *y0 = tnew(QD_DT_FLOAT, 1, D(3), NULL);
    qd_tensor *in0[] = {x, i0};
    assert_int_equal(run1(g, "Gather", qd_ref_gather, in0, 2, y0, NULL), QD_OK);
    assert_memory_equal(y0->data, F(0, 1, 2), 12);
    /* Out-of-range index: an error, not a read. */
    ((int32_t *)i0->data)[0] = 3;
    assert_int_equal(run1(g, "Gather", qd_ref_gather, in0, 2, y0, NULL),
                     QD_STATUS_INVALID_ARGUMENT);
    qd_tensor *all[] = {x, idx, y, i0, y0};
    free_all(all, 5);
    qd_graph_delete(g);
}

static void test_pad(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_tensor *x = tnew(QD_DT_INT32, 2, D(3, 4), I32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
    qd_tensor *pads = tnew(QD_DT_INT64, 1, D(4), I64(1, 2, 1, 3));
    qd_tensor *y = tnew(QD_DT_INT32, 2, D(5, 9), NULL);
    qd_tensor *in[] = {x, pads};
    qd_node *n = mk_node(g, "Pad", 2, 1);
    qd_node_set_attr_string(n, "mode", "reflect");
    assert_int_equal(run(g, n, qd_ref_pad, in, 2, &y, 1), QD_OK);
    /* numpy.pad(x, ((1,1),(2,3)), 'reflect') */
    const int32_t want_reflect[] = {7, 6, 5, 6, 7, 8, 7, 6, 5, 3, 2, 1, 2, 3, 4, 3, 2, 1,
                                    7, 6, 5, 6, 7, 8, 7, 6, 5, 11, 10, 9, 10, 11, 12, 11, 10, 9,
                                    7, 6, 5, 6, 7, 8, 7, 6, 5};
    assert_memory_equal(y->data, want_reflect, sizeof want_reflect);
    n = mk_node(g, "Pad", 2, 1);
    qd_node_set_attr_string(n, "mode", "edge");
    assert_int_equal(run(g, n, qd_ref_pad, in, 2, &y, 1), QD_OK);
    const int32_t want_edge[] = {1, 1, 1, 2, 3, 4, 4, 4, 4, 1, 1, 1, 2, 3, 4, 4, 4, 4,
                                 5, 5, 5, 6, 7, 8, 8, 8, 8, 9, 9, 9, 10, 11, 12, 12, 12, 12,
                                 9, 9, 9, 10, 11, 12, 12, 12, 12};
    assert_memory_equal(y->data, want_edge, sizeof want_edge);
    /* Constant with a value, and a negative pad that crops. */
    qd_tensor *p2 = tnew(QD_DT_INT64, 1, D(4), I64(0, -1, 1, 1));
    qd_tensor *cv = tnew(QD_DT_INT32, 0, NULL, I32(-7));
    qd_tensor *y2 = tnew(QD_DT_INT32, 2, D(4, 4), NULL);
    qd_tensor *in2[] = {x, p2, cv};
    assert_int_equal(run1(g, "Pad", qd_ref_pad, in2, 3, y2, NULL), QD_OK);
    assert_memory_equal(y2->data, I32(2, 3, 4, -7, 6, 7, 8, -7, 10, 11, 12, -7, -7, -7, -7, -7),
                        64);
    /* Opset 18 axes: pad only axis -1. */
    qd_tensor *p3 = tnew(QD_DT_INT64, 1, D(2), I64(1, 0));
    qd_tensor *ax = tnew(QD_DT_INT64, 1, D(1), I64(-1));
    qd_tensor *y3 = tnew(QD_DT_INT32, 2, D(3, 5), NULL);
    qd_tensor *in3[] = {x, p3, NULL, ax};
    assert_int_equal(run1(g, "Pad", qd_ref_pad, in3, 4, y3, NULL), QD_OK);
    assert_memory_equal(y3->data, I32(0, 1, 2, 3, 4, 0, 5, 6, 7, 8, 0, 9, 10, 11, 12), 60);
    assert_int_equal(run1(g, "Pad", qd_ref_pad, in3, 4, y2, NULL), QD_STATUS_SHAPE_ERROR);
    qd_tensor *all[] = {x, pads, y, p2, cv, y2, p3, ax, y3};
    free_all(all, 9);
    qd_graph_delete(g);
}

/* out[b,h,i,j] = sum_d q[b,h,i,d] k[b,h,j,d] */
static void test_einsum_attention(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    enum { B = 2, H = 3, I = 5, J = 7, DD = 8 };
    qd_tensor *q = tnew(QD_DT_FLOAT, 4, D(B, H, I, DD), NULL);
    qd_tensor *k = tnew(QD_DT_FLOAT, 4, D(B, H, J, DD), NULL);
    qd_tensor *o = tnew(QD_DT_FLOAT, 4, D(B, H, I, J), NULL);
    fill_rand(q);
    fill_rand(k);
    qd_node *n = mk_node(g, "Einsum", 2, 1);
    qd_node_set_attr_string(n, "equation", "bhid, bhjd -> bhij");
    qd_tensor *in[] = {q, k};
    assert_int_equal(run(g, n, qd_ref_einsum, in, 2, &o, 1), QD_OK);
    const float *Q = q->data, *K = k->data, *O = o->data;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < I; i++)
                for (int j = 0; j < J; j++) {
                    double s = 0;
                    for (int d = 0; d < DD; d++)
                        s += (double)Q[((b * H + h) * I + i) * DD + d] *
                             K[((b * H + h) * J + j) * DD + d];
                    assert_float_equal(O[((b * H + h) * I + i) * J + j], s, 1e-5);
                }
    /* attn @ v: "bhij,bhjd->bhid" */
    qd_tensor *v = tnew(QD_DT_FLOAT, 4, D(B, H, J, DD), NULL);
    qd_tensor *o2 = tnew(QD_DT_FLOAT, 4, D(B, H, I, DD), NULL);
    fill_rand(v);
    n = mk_node(g, "Einsum", 2, 1);
    qd_node_set_attr_string(n, "equation", "bhij,bhjd->bhid");
    qd_tensor *in2[] = {o, v};
    assert_int_equal(run(g, n, qd_ref_einsum, in2, 2, &o2, 1), QD_OK);
    const float *V = v->data, *O2 = o2->data;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < I; i++)
                for (int d = 0; d < DD; d++) {
                    double s = 0;
                    for (int j = 0; j < J; j++)
                        s += (double)O[((b * H + h) * I + i) * J + j] *
                             V[((b * H + h) * J + j) * DD + d];
                    assert_float_equal(O2[((b * H + h) * I + i) * DD + d], s, 1e-5);
                }
    /* Wrong output dims are refused. */
    assert_int_equal(run(g, n, qd_ref_einsum, in2, 2, &o, 1), QD_STATUS_SHAPE_ERROR);
    qd_tensor *all[] = {q, k, o, v, o2};
    free_all(all, 5);
    qd_graph_delete(g);
}

static void test_einsum_forms(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    /* Batch diagonal with an ellipsis: "...ii->...i". */
    qd_tensor *x = tnew(QD_DT_DOUBLE, 3, D(2, 3, 3), NULL);
    for (int i = 0; i < 18; i++)
        ((double *)x->data)[i] = i;
    qd_tensor *y = tnew(QD_DT_DOUBLE, 2, D(2, 3), NULL);
    qd_node *n = mk_node(g, "Einsum", 1, 1);
    qd_node_set_attr_string(n, "equation", "...ii ->...i");
    assert_int_equal(run(g, n, qd_ref_einsum, &x, 1, &y, 1), QD_OK);
    assert_memory_equal(y->data, ((double[]){0, 4, 8, 9, 13, 17}), 48);
    /* Implicit output: "i,i" is an inner product (a scalar). */
    qd_tensor *v = tnew(QD_DT_INT64, 1, D(3), I64(1, 2, 3));
    qd_tensor *s = tnew(QD_DT_INT64, 0, NULL, NULL);
    n = mk_node(g, "Einsum", 2, 1);
    qd_node_set_attr_string(n, "equation", "i,i");
    qd_tensor *in[] = {v, v};
    assert_int_equal(run(g, n, qd_ref_einsum, in, 2, &s, 1), QD_OK);
    assert_int_equal(*(int64_t *)s->data, 14);
    /* Implicit transpose order: "ji" gives "ij", i.e. a transpose. */
    qd_tensor *m = tnew(QD_DT_FLOAT, 2, D(2, 3), F(1, 2, 3, 4, 5, 6));
    qd_tensor *mt = tnew(QD_DT_FLOAT, 2, D(3, 2), NULL);
    n = mk_node(g, "Einsum", 1, 1);
    qd_node_set_attr_string(n, "equation", "ji");
    assert_int_equal(run(g, n, qd_ref_einsum, &m, 1, &mt, 1), QD_OK);
    assert_memory_equal(mt->data, F(1, 4, 2, 5, 3, 6), 24);
    qd_tensor *all[] = {x, y, v, s, m, mt};
    free_all(all, 6);
    qd_graph_delete(g);
}

static void test_concat_split_expand_tile(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_tensor *a = tnew(QD_DT_FLOAT, 2, D(2, 1), F(1, 2));
    qd_tensor *b = tnew(QD_DT_FLOAT, 2, D(2, 2), F(3, 4, 5, 6));
    qd_tensor *c = tnew(QD_DT_FLOAT, 2, D(2, 3), NULL);
    qd_node *n = mk_node(g, "Concat", 2, 1);
    qd_node_set_attr_int(n, "axis", -1);
    qd_tensor *in[] = {a, b};
    assert_int_equal(run(g, n, qd_ref_concat, in, 2, &c, 1), QD_OK);
    assert_memory_equal(c->data, F(1, 3, 4, 2, 5, 6), 24);
    /* Split it back; the part sizes come from the outputs. */
    qd_tensor *a2 = tnew(QD_DT_FLOAT, 2, D(2, 1), NULL);
    qd_tensor *b2 = tnew(QD_DT_FLOAT, 2, D(2, 2), NULL);
    qd_tensor *outs[] = {a2, b2};
    n = mk_node(g, "Split", 1, 2);
    qd_node_set_attr_int(n, "axis", 1);
    assert_int_equal(run(g, n, qd_ref_split, &c, 1, outs, 2), QD_OK);
    assert_memory_equal(a2->data, a->data, 8);
    assert_memory_equal(b2->data, b->data, 16);
    /* Expand [2,1] to [2,2,3]. */
    qd_tensor *shape = tnew(QD_DT_INT64, 1, D(3), I64(2, 1, 3));
    qd_tensor *e = tnew(QD_DT_FLOAT, 3, D(2, 2, 3), NULL);
    qd_tensor *ine[] = {a, shape};
    assert_int_equal(run1(g, "Expand", qd_ref_expand, ine, 2, e, NULL), QD_OK);
    assert_memory_equal(e->data, F(1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2), 48);
    /* Tile [2,2] by [2,3]. */
    qd_tensor *reps = tnew(QD_DT_INT64, 1, D(2), I64(2, 3));
    qd_tensor *t = tnew(QD_DT_FLOAT, 2, D(4, 6), NULL);
    qd_tensor *int_[] = {b, reps};
    assert_int_equal(run1(g, "Tile", qd_ref_tile, int_, 2, t, NULL), QD_OK);
    const float want_tile[] = {3, 4, 3, 4, 3, 4, 5, 6, 5, 6, 5, 6,
                               3, 4, 3, 4, 3, 4, 5, 6, 5, 6, 5, 6};
    assert_memory_equal(t->data, want_tile, sizeof want_tile);
    qd_tensor *all[] = {a, b, c, a2, b2, shape, e, reps, t};
    free_all(all, 9);
    qd_graph_delete(g);
}

static void test_shape_constants_range(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_tensor *x = tnew(QD_DT_FLOAT, 3, D(3, 4, 5), NULL);
    qd_tensor *s = tnew(QD_DT_INT64, 1, D(1), NULL);
    qd_node *n = mk_node(g, "Shape", 1, 1);
    qd_node_set_attr_int(n, "start", 1);
    qd_node_set_attr_int(n, "end", -1);
    assert_int_equal(run(g, n, qd_ref_shape, &x, 1, &s, 1), QD_OK);
    assert_int_equal(((int64_t *)s->data)[0], 4);
    qd_tensor *sz = tnew(QD_DT_INT64, 0, NULL, NULL);
    assert_int_equal(run1(g, "Size", qd_ref_size, &x, 1, sz, NULL), QD_OK);
    assert_int_equal(*(int64_t *)sz->data, 60);
    /* ConstantOfShape with an int32 value. */
    qd_tensor *shp = tnew(QD_DT_INT64, 1, D(2), I64(2, 2));
    qd_tensor *c = tnew(QD_DT_INT32, 2, D(2, 2), NULL);
    n = mk_node(g, "ConstantOfShape", 1, 1);
    qd_node_set_attr_tensor(n, "value", tnew(QD_DT_INT32, 1, D(1), I32(7)));
    assert_int_equal(run(g, n, qd_ref_constant_of_shape, &shp, 1, &c, 1), QD_OK);
    assert_memory_equal(c->data, I32(7, 7, 7, 7), 16);
    /* Constant value_ints. */
    qd_tensor *k = tnew(QD_DT_INT64, 1, D(3), NULL);
    n = mk_node(g, "Constant", 0, 1);
    qd_node_set_attr_ints(n, "value_ints", I64(4, 5, 6), 3);
    assert_int_equal(run(g, n, qd_ref_constant, NULL, 0, &k, 1), QD_OK);
    assert_memory_equal(k->data, I64(4, 5, 6), 24);
    /* Range 10 -> 4 by -3 (int32), and float. */
    qd_tensor *r0 = tnew(QD_DT_INT32, 0, NULL, I32(10));
    qd_tensor *r1 = tnew(QD_DT_INT32, 0, NULL, I32(4));
    qd_tensor *r2 = tnew(QD_DT_INT32, 0, NULL, I32(-3));
    qd_tensor *r = tnew(QD_DT_INT32, 1, D(2), NULL);
    qd_tensor *inr[] = {r0, r1, r2};
    assert_int_equal(run1(g, "Range", qd_ref_range, inr, 3, r, NULL), QD_OK);
    assert_memory_equal(r->data, I32(10, 7), 8);
    qd_tensor *f0 = tnew(QD_DT_FLOAT, 0, NULL, F(1));
    qd_tensor *f1 = tnew(QD_DT_FLOAT, 0, NULL, F(2));
    qd_tensor *f2 = tnew(QD_DT_FLOAT, 0, NULL, F(0.25f));
    qd_tensor *fr = tnew(QD_DT_FLOAT, 1, D(4), NULL);
    qd_tensor *inf[] = {f0, f1, f2};
    assert_int_equal(run1(g, "Range", qd_ref_range, inf, 3, fr, NULL), QD_OK);
    assert_memory_equal(fr->data, F(1, 1.25f, 1.5f, 1.75f), 16);
    /* Reshape copies; a size mismatch is refused. */
    qd_tensor *flat = tnew(QD_DT_FLOAT, 1, D(60), NULL);
    fill_rand(x);
    assert_int_equal(run1(g, "Reshape", qd_ref_reshape, &x, 1, flat, NULL), QD_OK);
    assert_memory_equal(flat->data, x->data, 240);
    assert_int_equal(run1(g, "Reshape", qd_ref_reshape, &x, 1, fr, NULL), QD_STATUS_SHAPE_ERROR);
    qd_tensor *all[] = {x, s, sz, shp, c, k, r0, r1, r2, r, f0, f1, f2, fr, flat};
    free_all(all, 15);
    qd_graph_delete(g);
}

/* A bigger broadcast Add and Transpose so that the threaded paths run. */
static void test_large(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_tensor *x = tnew(QD_DT_FLOAT, 3, D(64, 96, 33), NULL);
    qd_tensor *y = tnew(QD_DT_FLOAT, 2, D(96, 1), NULL);
    qd_tensor *z = tnew(QD_DT_FLOAT, 3, D(64, 96, 33), NULL);
    fill_rand(x);
    fill_rand(y);
    qd_tensor *in[] = {x, y};
    qd_node *n = mk_node(g, "Add", 2, 1);
    qd_kernel_args a = {.node = n,
                        .graph = g,
                        .n_inputs = 2,
                        .inputs = (const qd_tensor *const *)in,
                        .n_outputs = 1,
                        .outputs = &z,
                        .n_threads = 2};
    assert_int_equal(qd_ref_binary(&a), QD_OK);
    const float *X = x->data, *Y = y->data, *Z = z->data;
    for (int i = 0; i < 64 * 96 * 33; i++)
        assert_true(Z[i] == X[i] + Y[(i / 33) % 96]);
    qd_tensor *all[] = {x, y, z};
    free_all(all, 3);
    qd_graph_delete(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broadcast_add),
        cmocka_unit_test(test_broadcast_general),
        cmocka_unit_test(test_int_div_mod),
        cmocka_unit_test(test_pow_mixed),
        cmocka_unit_test(test_compare_logic_where),
        cmocka_unit_test(test_variadic),
        cmocka_unit_test(test_unary_math),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_cast),
        cmocka_unit_test(test_dropout_identity),
        cmocka_unit_test(test_transpose),
        cmocka_unit_test(test_slice),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_pad),
        cmocka_unit_test(test_einsum_attention),
        cmocka_unit_test(test_einsum_forms),
        cmocka_unit_test(test_concat_split_expand_tile),
        cmocka_unit_test(test_shape_constants_range),
        cmocka_unit_test(test_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
