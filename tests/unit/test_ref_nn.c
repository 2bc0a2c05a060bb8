/* Reference NN kernels (src/engine/kernels/ref/ref_nn.h) against naive
 * direct formulas and hand-computed values: conv/conv-transpose on random
 * shapes (groups, depthwise, dilation, pads, auto_pad), matmul broadcasting,
 * Gemm, normalizations, pooling, reductions, softmax family, resize,
 * quantization rounding and saturation, QLinear ops vs dequantize -> float
 * op -> quantize. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/ref/ref_nn.h"
#include "ir/graph.h"

/* ---- fixture: one node, its tensors, a call ---- */

#define MAXIO 10

typedef struct fx {
    qd_graph *g;
    qd_node *n;
    const qd_tensor *in[MAXIO];
    qd_tensor *own_in[MAXIO];
    qd_tensor *out[4];
    int nin, nout;
} fx;

static fx *fx_new(const char *op, int nin, int nout, int64_t opset)
{
    fx *f = calloc(1, sizeof *f);
    f->g = qd_graph_new();
    f->g->opset = opset;
    qd_value *iv[MAXIO], *ov[4];
    for (int i = 0; i < nin; i++)
        iv[i] = qd_graph_new_value(f->g, NULL, "in");
    for (int i = 0; i < nout; i++)
        ov[i] = qd_graph_new_value(f->g, NULL, "out");
    f->n = qd_graph_add_node(f->g, op, "", "n0", iv, nin, ov, nout);
    assert_non_null(f->n);
    f->nin = nin;
    f->nout = nout;
    return f;
}

static qd_tensor *mk(qd_dtype dt, int rank, const int64_t *dims)
{
    qd_tensor *t = qd_tensor_new(dt, rank, dims);
    assert_non_null(t);
    return t;
}

static qd_tensor *fx_in(fx *f, int i, qd_dtype dt, int rank, const int64_t *dims)
{
    f->own_in[i] = mk(dt, rank, dims);
    f->in[i] = f->own_in[i];
    return f->own_in[i];
}

static qd_tensor *fx_out(fx *f, int i, qd_dtype dt, int rank, const int64_t *dims)
{
    f->out[i] = mk(dt, rank, dims);
    return f->out[i];
}

static qd_status fx_run(fx *f, qd_kernel_fn fn)
{
    qd_kernel_args a = {0};
    a.node = f->n;
    a.graph = f->g;
    a.n_inputs = f->nin;
    a.inputs = f->in;
    a.n_outputs = f->nout;
    a.outputs = f->out;
    a.n_threads = 1;
    return fn(&a);
}

static void fx_free(fx *f)
{
    for (int i = 0; i < MAXIO; i++)
        qd_tensor_delete(f->own_in[i]);
    for (int i = 0; i < 4; i++)
        qd_tensor_delete(f->out[i]);
    qd_graph_delete(f->g);
    free(f);
}

static uint32_t rng = 12345;
static float frand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}
static int irand(int n)
{
    rng = rng * 1664525u + 1013904223u;
    return (int)((rng >> 8) % (uint32_t)n);
}

static void fill(qd_tensor *t)
{
    float *p = t->data;
    for (int64_t i = 0; i < qd_numel(t->rank, t->dims); i++)
        p[i] = frand();
}

static void set_f(qd_tensor *t, const float *v)
{
    memcpy(t->data, v, t->nbytes);
}

/* Compares the first n elements of t. */
static void expect_close(const qd_tensor *t, const double *want, int64_t n, double tol)
{
    assert_true(qd_numel(t->rank, t->dims) >= n);
    for (int64_t i = 0; i < n; i++) {
        double got = qd_tensor_get_f64(t, i);
        if (!(fabs(got - want[i]) <= tol * (1.0 + fabs(want[i])))) {
            print_error("element %lld: got %.9g want %.9g\n", (long long)i, got, want[i]);
            fail();
        }
    }
}

static void expect_f(const qd_tensor *t, const float *want, int64_t n, double tol)
{
    double w[256];
    assert_true(n <= 256);
    for (int64_t i = 0; i < n; i++)
        w[i] = want[i];
    expect_close(t, w, n, tol);
}

/* ---- Conv ---- */

typedef struct conv_case {
    int nsp, N, C, M, group;
    int64_t in[3], k[3], s[3], d[3], pb[3], pe[3];
    const char *auto_pad; /* NULL: explicit pads */
    int bias;
} conv_case;

/* The output size and padding ONNX defines for a forward conv. */
static void conv_out(const conv_case *c, int64_t *out, int64_t *pb)
{
    for (int i = 0; i < c->nsp; i++) {
        int64_t eff = (c->k[i] - 1) * c->d[i] + 1;
        if (c->auto_pad && strcmp(c->auto_pad, "VALID")) {
            out[i] = (c->in[i] + c->s[i] - 1) / c->s[i];
            int64_t total = (out[i] - 1) * c->s[i] + eff - c->in[i];
            if (total < 0)
                total = 0;
            pb[i] = !strcmp(c->auto_pad, "SAME_UPPER") ? total / 2 : total - total / 2;
        } else if (c->auto_pad) {
            out[i] = (c->in[i] - eff) / c->s[i] + 1;
            pb[i] = 0;
        } else {
            out[i] = (c->in[i] + c->pb[i] + c->pe[i] - eff) / c->s[i] + 1;
            pb[i] = c->pb[i];
        }
    }
}

static void run_conv_case(const conv_case *c)
{
    fx *f = fx_new("Conv", 3, 1, 17);
    int64_t out[3], pb[3];
    conv_out(c, out, pb);
    int rank = c->nsp + 2;
    int64_t xd[5] = {c->N, c->C}, wd[5] = {c->M, c->C / c->group}, yd[5] = {c->N, c->M};
    for (int i = 0; i < c->nsp; i++) {
        xd[i + 2] = c->in[i];
        wd[i + 2] = c->k[i];
        yd[i + 2] = out[i];
    }
    qd_tensor *X = fx_in(f, 0, QD_DT_FLOAT, rank, xd), *W = fx_in(f, 1, QD_DT_FLOAT, rank, wd);
    int64_t bd[1] = {c->M};
    qd_tensor *B = NULL;
    if (c->bias) {
        B = fx_in(f, 2, QD_DT_FLOAT, 1, bd);
        fill(B);
    }
    fill(X);
    fill(W);
    qd_tensor *Y = fx_out(f, 0, QD_DT_FLOAT, rank, yd);
    qd_node_set_attr_ints(f->n, "strides", c->s, (size_t)c->nsp);
    qd_node_set_attr_ints(f->n, "dilations", c->d, (size_t)c->nsp);
    qd_node_set_attr_int(f->n, "group", c->group);
    if (c->auto_pad) {
        qd_node_set_attr_string(f->n, "auto_pad", c->auto_pad);
    } else {
        int64_t pads[6];
        for (int i = 0; i < c->nsp; i++) {
            pads[i] = c->pb[i];
            pads[i + c->nsp] = c->pe[i];
        }
        qd_node_set_attr_ints(f->n, "pads", pads, (size_t)(2 * c->nsp));
    }
    assert_int_equal(fx_run(f, qd_ref_conv), QD_OK);

    /* Direct formula, one output element at a time (spatial dims padded to
     * three with size 1). */
    const float *x = X->data, *w = W->data, *y = Y->data;
    const int64_t Cg = c->C / c->group, Mg = c->M / c->group;
    int64_t o3[3] = {1, 1, 1}, k3[3] = {1, 1, 1}, i3[3] = {1, 1, 1};
    for (int i = 0; i < c->nsp; i++) {
        o3[i] = out[i];
        k3[i] = c->k[i];
        i3[i] = c->in[i];
    }
    const int64_t osp = o3[0] * o3[1] * o3[2], ksp = k3[0] * k3[1] * k3[2];
    for (int64_t yi = 0; yi < c->N * c->M * osp; yi++) {
        int64_t n = yi / (c->M * osp), m = yi / osp % c->M, q = yi % osp;
        int64_t oo[3] = {q / (o3[1] * o3[2]), q / o3[2] % o3[1], q % o3[2]};
        double s = B ? ((float *)B->data)[m] : 0.0;
        for (int64_t cc = 0; cc < Cg; cc++)
            for (int64_t kq = 0; kq < ksp; kq++) {
                int64_t kk[3] = {kq / (k3[1] * k3[2]), kq / k3[2] % k3[1], kq % k3[2]};
                int64_t xi = n * c->C + (m / Mg) * Cg + cc; /* input plane */
                int inside = 1;
                for (int d = 0; d < 3; d++) {
                    int64_t ii = d < c->nsp ? oo[d] * c->s[d] - pb[d] + kk[d] * c->d[d] : 0;
                    inside &= ii >= 0 && ii < i3[d];
                    xi = xi * i3[d] + ii;
                }
                if (inside)
                    s += (double)x[xi] * w[(m * Cg + cc) * ksp + kq];
            }
        if (fabs(y[yi] - s) > 1e-4 * (1 + fabs(s))) {
            print_error("conv nsp %d group %d: y[%lld] = %g, want %g\n", c->nsp, c->group,
                        (long long)yi, y[yi], s);
            fail();
        }
    }
    fx_free(f);
}

static void test_conv(void **state)
{
    (void)state;
    const conv_case cases[] = {
        /* nsp N C M group in k s d pb pe auto_pad bias */
        {2, 1, 1, 1, 1, {5, 5}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, NULL, 0},
        {2, 2, 6, 4, 2, {7, 6}, {3, 2}, {2, 1}, {1, 2}, {1, 0}, {2, 1}, NULL, 1},
        {2, 1, 8, 8, 8, {9, 9}, {3, 3}, {1, 1}, {2, 2}, {2, 2}, {2, 2}, NULL, 1}, /* depthwise */
        {2, 1, 4, 8, 4, {6, 7}, {3, 3}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, "SAME_UPPER", 1},
        {2, 1, 3, 5, 1, {6, 7}, {4, 3}, {2, 3}, {1, 1}, {0, 0}, {0, 0}, "SAME_LOWER", 0},
        {2, 1, 3, 5, 1, {8, 7}, {3, 3}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, "VALID", 1},
        {2, 1, 16, 4, 1, {5, 5}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, NULL, 1}, /* 1x1 direct */
        {1, 2, 4, 6, 2, {11}, {3}, {2}, {2}, {2}, {1}, NULL, 1},
        {3, 1, 2, 3, 1, {5, 4, 6}, {2, 3, 2}, {1, 2, 1}, {2, 1, 1}, {1, 0, 1}, {0, 1, 1}, NULL, 1},
        {2, 1, 5, 5, 5, {40, 37}, {7, 7}, {1, 1}, {1, 1}, {3, 3}, {3, 3}, NULL, 1}, /* dw 7x7 */
        {2, 1, 40, 36, 1, {20, 21}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, NULL, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_conv_case(&cases[i]);
    /* Random small shapes. */
    for (int t = 0; t < 30; t++) {
        conv_case c = {0};
        c.nsp = 1 + irand(3);
        c.group = 1 + irand(3);
        c.C = c.group * (1 + irand(3));
        c.M = c.group * (1 + irand(3));
        c.N = 1 + irand(2);
        c.bias = irand(2);
        for (int i = 0; i < c.nsp; i++) {
            c.k[i] = 1 + irand(3);
            c.s[i] = 1 + irand(2);
            c.d[i] = 1 + irand(2);
            c.pb[i] = irand(2);
            c.pe[i] = irand(3);
            c.in[i] = (c.k[i] - 1) * c.d[i] + 1 + irand(5);
        }
        run_conv_case(&c);
    }
}

static void test_conv_errors(void **state)
{
    (void)state;
    fx *f = fx_new("Conv", 2, 1, 17);
    int64_t xd[4] = {1, 3, 4, 4}, wd[4] = {2, 2, 3, 3}, yd[4] = {1, 2, 2, 2};
    fx_in(f, 0, QD_DT_FLOAT, 4, xd);
    fx_in(f, 1, QD_DT_FLOAT, 4, wd);
    fx_out(f, 0, QD_DT_FLOAT, 4, yd);
    /* 3 input channels vs weights for 2 */
    assert_int_equal(fx_run(f, qd_ref_conv), QD_STATUS_SHAPE_ERROR);
    assert_non_null(strstr(qd_graph_error(f->g), "node 'n0' (Conv)"));
    fx_free(f);

    f = fx_new("Conv", 2, 1, 17);
    fx_in(f, 0, QD_DT_DOUBLE, 4, xd);
    fx_in(f, 1, QD_DT_DOUBLE, 4, wd);
    fx_out(f, 0, QD_DT_DOUBLE, 4, yd);
    assert_int_equal(fx_run(f, qd_ref_conv), QD_STATUS_UNSUPPORTED);
    fx_free(f);
}

/* ---- ConvTranspose ---- */

static void run_convt(int nsp, int64_t C, int64_t Mg, int64_t group, const int64_t *in,
                      const int64_t *k, const int64_t *s, const int64_t *d, const int64_t *pb,
                      const int64_t *pe, const int64_t *op)
{
    fx *f = fx_new("ConvTranspose", 3, 1, 17);
    int rank = nsp + 2;
    int64_t M = Mg * group, out[3];
    int64_t xd[5] = {1, C}, wd[5] = {C, Mg}, yd[5] = {1, M}, bd[1] = {M};
    for (int i = 0; i < nsp; i++) {
        out[i] = s[i] * (in[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 - pb[i] - pe[i];
        xd[i + 2] = in[i];
        wd[i + 2] = k[i];
        yd[i + 2] = out[i];
    }
    qd_tensor *X = fx_in(f, 0, QD_DT_FLOAT, rank, xd), *W = fx_in(f, 1, QD_DT_FLOAT, rank, wd);
    qd_tensor *B = fx_in(f, 2, QD_DT_FLOAT, 1, bd), *Y = fx_out(f, 0, QD_DT_FLOAT, rank, yd);
    fill(X);
    fill(W);
    fill(B);
    int64_t pads[6];
    for (int i = 0; i < nsp; i++) {
        pads[i] = pb[i];
        pads[i + nsp] = pe[i];
    }
    qd_node_set_attr_ints(f->n, "pads", pads, (size_t)(2 * nsp));
    qd_node_set_attr_ints(f->n, "strides", s, (size_t)nsp);
    qd_node_set_attr_ints(f->n, "dilations", d, (size_t)nsp);
    qd_node_set_attr_ints(f->n, "output_padding", op, (size_t)nsp);
    qd_node_set_attr_int(f->n, "group", group);
    assert_int_equal(fx_run(f, qd_ref_conv_transpose), QD_OK);

    /* Scatter formula: y[m, i*s - pb + k*d] += x[c, i] * w[c, m, k]. */
    int64_t ysz = qd_numel(rank, yd);
    double *ref = calloc((size_t)ysz, sizeof *ref);
    const float *x = X->data, *w = W->data, *b = B->data;
    int64_t i3[3] = {1, 1, 1}, k3[3] = {1, 1, 1}, o3[3] = {1, 1, 1};
    for (int i = 0; i < nsp; i++) {
        i3[i] = in[i];
        k3[i] = k[i];
        o3[i] = out[i];
    }
    const int64_t Cg = C / group, osp = o3[0] * o3[1] * o3[2];
    const int64_t isp = i3[0] * i3[1] * i3[2], ksp = k3[0] * k3[1] * k3[2];
    for (int64_t i = 0; i < ysz; i++)
        ref[i] = b[i / osp];
    for (int64_t c = 0; c < C; c++)
        for (int64_t mg = 0; mg < Mg; mg++)
            for (int64_t q = 0; q < isp; q++)
                for (int64_t kq = 0; kq < ksp; kq++) {
                    int64_t ii[3] = {q / (i3[1] * i3[2]), q / i3[2] % i3[1], q % i3[2]};
                    int64_t kk[3] = {kq / (k3[1] * k3[2]), kq / k3[2] % k3[1], kq % k3[2]};
                    int64_t m = (c / Cg) * Mg + mg, yi = m;
                    int inside = 1;
                    for (int dd = 0; dd < 3; dd++) {
                        int64_t oo = dd < nsp ? ii[dd] * s[dd] - pb[dd] + kk[dd] * d[dd] : 0;
                        inside &= oo >= 0 && oo < o3[dd];
                        yi = yi * o3[dd] + oo;
                    }
                    if (inside)
                        ref[yi] += (double)x[c * isp + q] * w[(c * Mg + mg) * ksp + kq];
                }
    expect_close(Y, ref, ysz, 1e-4);
    free(ref);
    fx_free(f);
}

static void test_conv_transpose(void **state)
{
    (void)state;
    const int64_t one[3] = {1, 1, 1}, zero[3] = {0, 0, 0};
    int64_t in2[2] = {3, 4}, k2[2] = {3, 3}, s2[2] = {2, 3}, d2[2] = {1, 2}, pb2[2] = {1, 0},
            pe2[2] = {0, 2}, op2[2] = {1, 0};
    run_convt(2, 2, 3, 1, in2, k2, one, one, zero, zero, zero);
    run_convt(2, 4, 2, 2, in2, k2, s2, d2, pb2, pe2, op2);
    run_convt(2, 3, 1, 3, in2, k2, s2, one, pb2, pe2, zero); /* depthwise */
    int64_t in1[1] = {5}, k1[1] = {4}, s1[1] = {3}, op1[1] = {2};
    run_convt(1, 2, 2, 1, in1, k1, s1, one, zero, zero, op1);
    int64_t in3[3] = {2, 3, 2}, k3[3] = {2, 2, 3}, s3[3] = {2, 1, 2};
    run_convt(3, 1, 2, 1, in3, k3, s3, one, zero, zero, zero);

    /* output_shape with SAME_UPPER: total padding 1 goes to the end (the
     * ONNX test_convtranspose_autopad_same). */
    fx *f = fx_new("ConvTranspose", 2, 1, 17);
    int64_t xd[4] = {1, 1, 3, 3}, wd[4] = {1, 1, 3, 3}, yd[4] = {1, 1, 6, 6};
    qd_tensor *X = fx_in(f, 0, QD_DT_FLOAT, 4, xd), *W = fx_in(f, 1, QD_DT_FLOAT, 4, wd);
    qd_tensor *Y = fx_out(f, 0, QD_DT_FLOAT, 4, yd);
    for (int i = 0; i < 9; i++) {
        ((float *)X->data)[i] = (float)i;
        ((float *)W->data)[i] = 1.0f;
    }
    int64_t st2[2] = {2, 2};
    qd_node_set_attr_ints(f->n, "strides", st2, 2);
    qd_node_set_attr_string(f->n, "auto_pad", "SAME_UPPER");
    assert_int_equal(fx_run(f, qd_ref_conv_transpose), QD_OK);
    const float row0[6] = {0, 0, 1, 1, 3, 2}, row5[6] = {6, 6, 13, 7, 15, 8};
    for (int j = 0; j < 6; j++) {
        assert_float_equal(((float *)Y->data)[j], row0[j], 1e-6);
        assert_float_equal(((float *)Y->data)[30 + j], row5[j], 1e-6);
    }
    fx_free(f);
}

/* ---- MatMul / Gemm ---- */

static void run_matmul(int ra, const int64_t *da, int rb, const int64_t *db, int ry,
                       const int64_t *dy)
{
    fx *f = fx_new("MatMul", 2, 1, 17);
    qd_tensor *A = fx_in(f, 0, QD_DT_FLOAT, ra, da), *B = fx_in(f, 1, QD_DT_FLOAT, rb, db);
    qd_tensor *Y = fx_out(f, 0, QD_DT_FLOAT, ry, dy);
    fill(A);
    fill(B);
    assert_int_equal(fx_run(f, qd_ref_matmul), QD_OK);
    /* Promote to [batch..., M, K] x [batch..., K, N] and broadcast by hand. */
    int64_t M = ra == 1 ? 1 : da[ra - 2], K = da[ra - 1], N = rb == 1 ? 1 : db[rb - 1];
    int nb = ry - (ra == 1 ? 0 : 1) - (rb == 1 ? 0 : 1);
    int64_t bd[8], ad_b[8], bd_b[8];
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - (ra > 2 ? ra - 2 : 0)), ib = i - (nb - (rb > 2 ? rb - 2 : 0));
        ad_b[i] = ia >= 0 ? da[ia] : 1;
        bd_b[i] = ib >= 0 ? db[ib] : 1;
        bd[i] = dy[i];
    }
    int64_t batch = qd_numel(nb, bd), yi = 0;
    const float *a = A->data, *b = B->data, *y = Y->data;
    for (int64_t bt = 0; bt < batch; bt++) {
        int64_t rem = bt, oa = 0, ob = 0, sa = 1, sb = 1;
        for (int i = nb - 1; i >= 0; i--) {
            int64_t idx = rem % bd[i];
            rem /= bd[i];
            oa += (ad_b[i] == 1 ? 0 : idx) * sa;
            ob += (bd_b[i] == 1 ? 0 : idx) * sb;
            sa *= ad_b[i];
            sb *= bd_b[i];
        }
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++, yi++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)a[oa * M * K + i * K + k] * b[ob * K * N + k * N + j];
                assert_true(fabs(y[yi] - s) < 1e-4 * (1 + fabs(s)));
            }
    }
    assert_int_equal(yi, qd_numel(ry, dy));
    fx_free(f);
}

static void test_matmul(void **state)
{
    (void)state;
    run_matmul(2, (int64_t[]){3, 4}, 2, (int64_t[]){4, 5}, 2, (int64_t[]){3, 5});
    run_matmul(1, (int64_t[]){4}, 2, (int64_t[]){4, 5}, 1, (int64_t[]){5});
    run_matmul(2, (int64_t[]){3, 4}, 1, (int64_t[]){4}, 1, (int64_t[]){3});
    run_matmul(1, (int64_t[]){7}, 1, (int64_t[]){7}, 0, (int64_t[]){1});
    run_matmul(3, (int64_t[]){2, 3, 4}, 2, (int64_t[]){4, 5}, 3, (int64_t[]){2, 3, 5});
    run_matmul(4, (int64_t[]){2, 1, 3, 4}, 3, (int64_t[]){3, 4, 2}, 4, (int64_t[]){2, 3, 3, 2});
    run_matmul(1, (int64_t[]){4}, 3, (int64_t[]){2, 4, 5}, 2, (int64_t[]){2, 5});
    /* big enough for the tiled and parallel paths */
    run_matmul(2, (int64_t[]){67, 130}, 2, (int64_t[]){130, 301}, 2, (int64_t[]){67, 301});

    /* int32 */
    fx *f = fx_new("MatMul", 2, 1, 17);
    int64_t d[2] = {2, 2};
    qd_tensor *A = fx_in(f, 0, QD_DT_INT32, 2, d), *B = fx_in(f, 1, QD_DT_INT32, 2, d);
    qd_tensor *Y = fx_out(f, 0, QD_DT_INT32, 2, d);
    int32_t av[4] = {1, 2, 3, 4}, bv[4] = {5, -6, 7, 8};
    memcpy(A->data, av, sizeof av);
    memcpy(B->data, bv, sizeof bv);
    assert_int_equal(fx_run(f, qd_ref_matmul), QD_OK);
    int32_t *y = Y->data;
    assert_int_equal(y[0], 19);
    assert_int_equal(y[1], 10);
    assert_int_equal(y[2], 43);
    assert_int_equal(y[3], 14);
    fx_free(f);
}

static void run_gemm(int64_t M, int ta, int tb, float alpha, float beta, int crank,
                     const int64_t *cd)
{
    const int64_t K = 37, N = 6;
    fx *f = fx_new("Gemm", crank >= 0 ? 3 : 2, 1, 13);
    int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N}, yd[2] = {M, N};
    qd_tensor *A = fx_in(f, 0, QD_DT_FLOAT, 2, ad), *B = fx_in(f, 1, QD_DT_FLOAT, 2, bd);
    qd_tensor *C = crank >= 0 ? fx_in(f, 2, QD_DT_FLOAT, crank, cd) : NULL;
    qd_tensor *Y = fx_out(f, 0, QD_DT_FLOAT, 2, yd);
    fill(A);
    fill(B);
    if (C)
        fill(C);
    qd_node_set_attr_int(f->n, "transA", ta);
    qd_node_set_attr_int(f->n, "transB", tb);
    qd_node_set_attr_float(f->n, "alpha", alpha);
    qd_node_set_attr_float(f->n, "beta", beta);
    assert_int_equal(fx_run(f, qd_ref_gemm), QD_OK);
    const float *a = A->data, *b = B->data, *c = C ? C->data : NULL, *y = Y->data;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) {
                double av = ta ? a[k * M + i] : a[i * K + k], bv = tb ? b[j * K + k] : b[k * N + j];
                s += av * bv;
            }
            s *= alpha;
            if (c) {
                int64_t cm = crank == 2 ? cd[0] : 1, cn = crank >= 1 ? cd[crank - 1] : 1;
                s += beta * c[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)];
            }
            assert_true(fabs(y[i * N + j] - s) < 1e-4);
        }
    fx_free(f);
}

static void test_gemm(void **state)
{
    (void)state;
    /* M = 5 takes the dot-product path for transB, M = 40 the transposing one */
    for (int64_t M = 5; M <= 40; M += 35) {
        run_gemm(M, 0, 0, 1.0f, 1.0f, -1, NULL);
        run_gemm(M, 1, 0, 0.5f, 1.0f, 0, NULL);
        run_gemm(M, 0, 1, 1.0f, 0.25f, 1, (int64_t[]){6});
        run_gemm(M, 1, 1, 0.25f, 0.35f, 2, (int64_t[]){1, 6});
        run_gemm(M, 0, 0, 1.0f, 2.0f, 2, (int64_t[]){M, 1});
        run_gemm(M, 1, 1, 1.0f, 1.0f, 2, (int64_t[]){M, 6});
        run_gemm(M, 0, 0, 1.0f, 1.0f, 1, (int64_t[]){1});
    }
}

/* ---- normalization ---- */

static void test_batch_norm(void **state)
{
    (void)state;
    fx *f = fx_new("BatchNormalization", 5, 1, 15);
    int64_t xd[4] = {2, 3, 2, 2}, cd[1] = {3};
    qd_tensor *X = fx_in(f, 0, QD_DT_FLOAT, 4, xd), *Y = fx_out(f, 0, QD_DT_FLOAT, 4, xd);
    qd_tensor *p[4];
    for (int i = 0; i < 4; i++)
        fill(p[i] = fx_in(f, i + 1, QD_DT_FLOAT, 1, cd));
    for (int c = 0; c < 3; c++)
        ((float *)p[3]->data)[c] = 0.5f + (float)c; /* variance > 0 */
    fill(X);
    qd_node_set_attr_float(f->n, "epsilon", 1e-2f);
    assert_int_equal(fx_run(f, qd_ref_batch_normalization), QD_OK);
    double want[24];
    const float *x = X->data, *s = p[0]->data, *b = p[1]->data, *m = p[2]->data, *v = p[3]->data;
    for (int i = 0; i < 24; i++) {
        int c = (i / 4) % 3;
        want[i] = (x[i] - m[c]) / sqrt(v[c] + 1e-2) * s[c] + b[c];
    }
    expect_close(Y, want, 24, 1e-5);
    fx_free(f);
}

static void test_layer_norm(void **state)
{
    (void)state;
    /* axis 1 of [2, 3, 4]: normalize over 12 elements; Scale [4] broadcasts. */
    fx *f = fx_new("LayerNormalization", 3, 3, 17);
    int64_t xd[3] = {2, 3, 4}, sd[1] = {4}, md[3] = {2, 1, 1};
    qd_tensor *X = fx_in(f, 0, QD_DT_FLOAT, 3, xd), *S = fx_in(f, 1, QD_DT_FLOAT, 1, sd);
    qd_tensor *B = fx_in(f, 2, QD_DT_FLOAT, 1, sd);
    qd_tensor *Y = fx_out(f, 0, QD_DT_FLOAT, 3, xd), *Mn = fx_out(f, 1, QD_DT_FLOAT, 3, md);
    qd_tensor *Iv = fx_out(f, 2, QD_DT_FLOAT, 3, md);
    fill(X);
    fill(S);
    fill(B);
    qd_node_set_attr_int(f->n, "axis", 1);
    qd_node_set_attr_float(f->n, "epsilon", 1e-3f);
    assert_int_equal(fx_run(f, qd_ref_layer_normalization), QD_OK);
    const float *x = X->data, *s = S->data, *b = B->data;
    double want[24], wm[2], wi[2];
    for (int o = 0; o < 2; o++) {
        double mean = 0, var = 0;
        for (int i = 0; i < 12; i++)
            mean += x[o * 12 + i] / 12.0;
        for (int i = 0; i < 12; i++)
            var += (x[o * 12 + i] - mean) * (x[o * 12 + i] - mean) / 12.0;
        wm[o] = mean;
        wi[o] = 1.0 / sqrt(var + 1e-3);
        for (int i = 0; i < 12; i++)
            want[o * 12 + i] = (x[o * 12 + i] - mean) * wi[o] * s[i % 4] + b[i % 4];
    }
    expect_close(Y, want, 24, 1e-5);
    expect_close(Mn, wm, 2, 1e-6);
    expect_close(Iv, wi, 2, 1e-5);
    fx_free(f);
}

static void test_instance_norm(void **state)
{
    (void)state;
    fx *f = fx_new("InstanceNormalization", 3, 1, 6);
    int64_t xd[4] = {1, 2, 1, 3}, cd[1] = {2};
    qd_tensor *X = fx_in(f, 0, QD_DT_FLOAT, 4, xd), *Y = fx_out(f, 0, QD_DT_FLOAT, 4, xd);
    qd_tensor *S = fx_in(f, 1, QD_DT_FLOAT, 1, cd), *B = fx_in(f, 2, QD_DT_FLOAT, 1, cd);
    set_f(X, (float[]){-1, 0, 1, 2, 3, 4});
    set_f(S, (float[]){1, 1.5f});
    set_f(B, (float[]){0, 1});
    assert_int_equal(fx_run(f, qd_ref_instance_normalization), QD_OK);
    /* the ONNX test_instancenorm_example output */
    expect_f(Y, (float[]){-1.22473562f, 0.0f, 1.22473562f, -0.83710343f, 1.0f, 2.83710343f}, 6,
             1e-5);
    fx_free(f);
}

/* ---- pooling ---- */

static void test_max_pool(void **state)
{
    (void)state;
    /* 4x4, kernel 3, stride 2, ceil_mode: the last window hangs over. */
    fx *f = fx_new("MaxPool", 1, 2, 12);
    int64_t xd[4] = {1, 1, 4, 4}, yd[4] = {1, 1, 2, 2};
    qd_tensor *X = fx_in(f, 0, QD_DT_FLOAT, 4, xd), *Y = fx_out(f, 0, QD_DT_FLOAT, 4, yd);
    qd_tensor *I = fx_out(f, 1, QD_DT_INT64, 4, yd);
    float xv[16];
    for (int i = 0; i < 16; i++)
        xv[i] = (float)(i + 1);
    xv[5] = 100; /* row 1, col 1: inside the first window only */
    set_f(X, xv);
    qd_node_set_attr_ints(f->n, "kernel_shape", (int64_t[]){3, 3}, 2);
    qd_node_set_attr_ints(f->n, "strides", (int64_t[]){2, 2}, 2);
    qd_node_set_attr_int(f->n, "ceil_mode", 1);
    assert_int_equal(fx_run(f, qd_ref_max_pool), QD_OK);
    expect_f(Y, (float[]){100, 12, 15, 16}, 4, 0);
    int64_t *ind = I->data;
    assert_int_equal(ind[0], 5);
    assert_int_equal(ind[1], 11);
    assert_int_equal(ind[2], 14);
    assert_int_equal(ind[3], 15);
    /* storage_order = 1: column-major index */
    qd_node_set_attr_int(f->n, "storage_order", 1);
    assert_int_equal(fx_run(f, qd_ref_max_pool), QD_OK);
    assert_int_equal(ind[0], 5);
    assert_int_equal(ind[1], 3 * 4 + 2);
    assert_int_equal(ind[2], 2 * 4 + 3);
    fx_free(f);

    /* dilation 2 and padding, uint8 */
    f = fx_new("MaxPool", 1, 1, 12);
    int64_t xd2[4] = {1, 1, 4, 4}, yd2[4] = {1, 1, 4, 4};
    qd_tensor *X2 = fx_in(f, 0, QD_DT_UINT8, 4, xd2), *Y2 = fx_out(f, 0, QD_DT_UINT8, 4, yd2);
    for (int i = 0; i < 16; i++)
        ((uint8_t *)X2->data)[i] = (uint8_t)(i * 10);
    qd_node_set_attr_ints(f->n, "kernel_shape", (int64_t[]){2, 2}, 2);
    qd_node_set_attr_ints(f->n, "dilations", (int64_t[]){2, 2}, 2);
    qd_node_set_attr_ints(f->n, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    assert_int_equal(fx_run(f, qd_ref_max_pool), QD_OK);
    /* window at (r, c) covers rows r-1, r+1 and cols c-1, c+1 */
    const uint8_t *y = Y2->data;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) {
            int rr = r + 1 < 4 ? r + 1 : r - 1, cc = c + 1 < 4 ? c + 1 : c - 1;
            assert_int_equal(y[r * 4 + c], (rr * 4 + cc) * 10);
        }
    fx_free(f);
}

static void test_average_pool(void **state)
{
    (void)state;
    fx *f = fx_new("AveragePool", 1, 1, 11);
    int64_t xd[4] = {1, 1, 3, 3}, yd[4] = {1, 1, 3, 3};
    qd_tensor *X = fx_in(f, 0, QD_DT_FLOAT, 4, xd), *Y = fx_out(f, 0, QD_DT_FLOAT, 4, yd);
    set_f(X, (float[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    qd_node_set_attr_ints(f->n, "kernel_shape", (int64_t[]){3, 3}, 2);
    qd_node_set_attr_ints(f->n, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    assert_int_equal(fx_run(f, qd_ref_average_pool), QD_OK);
    expect_f(Y, (float[]){3, 3.5f, 4, 4.5f, 5, 5.5f, 6, 6.5f, 7}, 9, 1e-6);
    qd_node_set_attr_int(f->n, "count_include_pad", 1);
    assert_int_equal(fx_run(f, qd_ref_average_pool), QD_OK);
    expect_f(Y, (float[]){12 / 9.f, 21 / 9.f, 16 / 9.f, 27 / 9.f, 5, 33 / 9.f, 24 / 9.f, 39 / 9.f,
                          28 / 9.f},
             9, 1e-6);
    fx_free(f);

    /* SAME_LOWER puts the odd padding first */
    f = fx_new("AveragePool", 1, 1, 11);
    int64_t xd1[3] = {1, 1, 4}, yd1[3] = {1, 1, 4};
    X = fx_in(f, 0, QD_DT_FLOAT, 3, xd1);
    Y = fx_out(f, 0, QD_DT_FLOAT, 3, yd1);
    set_f(X, (float[]){1, 2, 3, 4});
    qd_node_set_attr_ints(f->n, "kernel_shape", (int64_t[]){2}, 1);
    qd_node_set_attr_string(f->n, "auto_pad", "SAME_LOWER");
    assert_int_equal(fx_run(f, qd_ref_average_pool), QD_OK);
    expect_f(Y, (float[]){1, 1.5f, 2.5f, 3.5f}, 4, 1e-6);
    qd_node_set_attr_string(f->n, "auto_pad", "SAME_UPPER");
    assert_int_equal(fx_run(f, qd_ref_average_pool), QD_OK);
    expect_f(Y, (float[]){1.5f, 2.5f, 3.5f, 4}, 4, 1e-6);
    fx_free(f);
}

static void test_global_pool(void **state)
{
    (void)state;
    fx *f = fx_new("GlobalAveragePool", 1, 1, 11);
    int64_t xd[4] = {1, 2, 2, 2}, yd[4] = {1, 2, 1, 1};
    qd_tensor *X = fx_in(f, 0, QD_DT_FLOAT, 4, xd), *Y = fx_out(f, 0, QD_DT_FLOAT, 4, yd);
    set_f(X, (float[]){1, 2, 3, 4, -1, -5, 2, 0});
    assert_int_equal(fx_run(f, qd_ref_global_average_pool), QD_OK);
    expect_f(Y, (float[]){2.5f, -1}, 2, 1e-6);
    assert_int_equal(fx_run(f, qd_ref_global_max_pool), QD_OK);
    expect_f(Y, (float[]){4, 2}, 2, 0);
    fx_free(f);
}

/* ---- reductions ---- */

static const float red_x[12] = {5, 1, 20, 2, 30, 1, 40, 2, 55, 1, 60, 2}; /* [3, 2, 2] */

static fx *reduce_fx(const char *op, int64_t opset, int with_axes_input, int ry, const int64_t *yd)
{
    fx *f = fx_new(op, with_axes_input ? 2 : 1, 1, opset);
    int64_t xd[3] = {3, 2, 2};
    set_f(fx_in(f, 0, QD_DT_FLOAT, 3, xd), red_x);
    fx_out(f, 0, QD_DT_FLOAT, ry, yd);
    return f;
}

static void test_reduce(void **state)
{
    (void)state;
    /* axes attribute, keepdims */
    fx *f = reduce_fx("ReduceMean", 13, 0, 3, (int64_t[]){3, 1, 2});
    qd_node_set_attr_ints(f->n, "axes", (int64_t[]){1}, 1);
    assert_int_equal(fx_run(f, qd_ref_reduce_mean), QD_OK);
    expect_f(f->out[0], (float[]){12.5f, 1.5f, 35, 1.5f, 57.5f, 1.5f}, 6, 1e-6);
    assert_int_equal(fx_run(f, qd_ref_reduce_max), QD_OK);
    expect_f(f->out[0], (float[]){20, 2, 40, 2, 60, 2}, 6, 0);
    assert_int_equal(fx_run(f, qd_ref_reduce_min), QD_OK);
    expect_f(f->out[0], (float[]){5, 1, 30, 1, 55, 1}, 6, 0);
    assert_int_equal(fx_run(f, qd_ref_reduce_prod), QD_OK);
    expect_f(f->out[0], (float[]){100, 2, 1200, 2, 3300, 2}, 6, 1e-6);
    assert_int_equal(fx_run(f, qd_ref_reduce_sum_square), QD_OK);
    expect_f(f->out[0], (float[]){425, 5, 2500, 5, 6625, 5}, 6, 1e-6);
    assert_int_equal(fx_run(f, qd_ref_reduce_l2), QD_OK);
    expect_f(f->out[0], (float[]){sqrtf(425), sqrtf(5), 50, sqrtf(5), sqrtf(6625), sqrtf(5)}, 6,
             1e-6);
    /* negative axes, two of them */
    qd_node_set_attr_ints(f->n, "axes", (int64_t[]){-1, 0}, 2);
    qd_tensor_delete(f->out[0]);
    fx_out(f, 0, QD_DT_FLOAT, 3, (int64_t[]){1, 2, 1});
    assert_int_equal(fx_run(f, qd_ref_reduce_sum), QD_OK);
    expect_f(f->out[0], (float[]){5 + 1 + 30 + 1 + 55 + 1, 20 + 2 + 40 + 2 + 60 + 2}, 2, 1e-6);
    fx_free(f);

    /* no axes: everything */
    f = reduce_fx("ReduceSum", 11, 0, 0, NULL);
    assert_int_equal(fx_run(f, qd_ref_reduce_sum), QD_OK);
    expect_f(f->out[0], (float[]){219}, 1, 1e-6);
    fx_free(f);

    /* ReduceSum-13: axes as input; empty axes with noop keeps the input */
    f = reduce_fx("ReduceSum", 13, 1, 2, (int64_t[]){3, 2});
    qd_tensor *ax = fx_in(f, 1, QD_DT_INT64, 1, (int64_t[]){1});
    ((int64_t *)ax->data)[0] = 2;
    qd_node_set_attr_int(f->n, "keepdims", 0);
    assert_int_equal(fx_run(f, qd_ref_reduce_sum), QD_OK);
    expect_f(f->out[0], (float[]){6, 22, 31, 42, 56, 62}, 6, 1e-6);
    fx_free(f);
    f = reduce_fx("ReduceSum", 13, 1, 3, (int64_t[]){3, 2, 2});
    fx_in(f, 1, QD_DT_INT64, 1, (int64_t[]){0});
    qd_node_set_attr_int(f->n, "noop_with_empty_axes", 1);
    assert_int_equal(fx_run(f, qd_ref_reduce_sum), QD_OK);
    expect_f(f->out[0], red_x, 12, 0);
    fx_free(f);

    /* int64 sum */
    f = fx_new("ReduceSum", 1, 1, 11);
    qd_tensor *xi = fx_in(f, 0, QD_DT_INT64, 2, (int64_t[]){2, 3});
    qd_tensor *yi = fx_out(f, 0, QD_DT_INT64, 1, (int64_t[]){2});
    int64_t v[6] = {1, 2, 3, 4, 5, (int64_t)1 << 40};
    memcpy(xi->data, v, sizeof v);
    qd_node_set_attr_ints(f->n, "axes", (int64_t[]){1}, 1);
    qd_node_set_attr_int(f->n, "keepdims", 0);
    assert_int_equal(fx_run(f, qd_ref_reduce_sum), QD_OK);
    assert_int_equal(((int64_t *)yi->data)[0], 6);
    assert_int_equal(((int64_t *)yi->data)[1], 9 + ((int64_t)1 << 40));
    fx_free(f);
}

static void test_arg_reduce(void **state)
{
    (void)state;
    fx *f = fx_new("ArgMax", 1, 1, 13);
    qd_tensor *X = fx_in(f, 0, QD_DT_FLOAT, 2, (int64_t[]){2, 3});
    qd_tensor *Y = fx_out(f, 0, QD_DT_INT64, 2, (int64_t[]){2, 1});
    set_f(X, (float[]){2, 7, 7, -1, -3, -1});
    qd_node_set_attr_int(f->n, "axis", -1);
    int64_t *y = Y->data;
    assert_int_equal(fx_run(f, qd_ref_arg_max), QD_OK);
    assert_int_equal(y[0], 1);
    assert_int_equal(y[1], 0);
    qd_node_set_attr_int(f->n, "select_last_index", 1);
    assert_int_equal(fx_run(f, qd_ref_arg_max), QD_OK);
    assert_int_equal(y[0], 2);
    assert_int_equal(y[1], 2);
    assert_int_equal(fx_run(f, qd_ref_arg_min), QD_OK);
    assert_int_equal(y[0], 0);
    assert_int_equal(y[1], 1);
    /* axis 0 */
    qd_node_set_attr_int(f->n, "axis", 0);
    qd_node_set_attr_int(f->n, "select_last_index", 0);
    qd_tensor_delete(f->out[0]);
    Y = fx_out(f, 0, QD_DT_INT64, 2, (int64_t[]){1, 3});
    assert_int_equal(fx_run(f, qd_ref_arg_max), QD_OK);
    y = Y->data;
    assert_int_equal(y[0], 0);
    assert_int_equal(y[1], 0);
    assert_int_equal(y[2], 0);
    fx_free(f);
}

/* ---- softmax family ---- */

static void test_softmax(void **state)
{
    (void)state;
    int64_t d[3] = {2, 2, 3};
    float xv[12];
    for (int i = 0; i < 12; i++)
        xv[i] = (float)(i % 5) * 0.7f - 1.0f + (i == 3 ? 1000.0f : 0.0f);
    /* opset 13, axis 1: normalize over the middle axis. */
    fx *f = fx_new("Softmax", 1, 1, 13);
    set_f(fx_in(f, 0, QD_DT_FLOAT, 3, d), xv);
    qd_tensor *Y = fx_out(f, 0, QD_DT_FLOAT, 3, d);
    qd_node_set_attr_int(f->n, "axis", 1);
    assert_int_equal(fx_run(f, qd_ref_softmax), QD_OK);
    double want[12];
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < 3; i++) {
            double a = xv[o * 6 + i], b = xv[o * 6 + 3 + i], m = fmax(a, b);
            double s = exp(a - m) + exp(b - m);
            want[o * 6 + i] = exp(a - m) / s;
            want[o * 6 + 3 + i] = exp(b - m) / s;
        }
    expect_close(Y, want, 12, 1e-6);
    assert_int_equal(fx_run(f, qd_ref_log_softmax), QD_OK);
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < 3; i++) {
            double a = xv[o * 6 + i], b = xv[o * 6 + 3 + i], m = fmax(a, b);
            double lse = m + log(exp(a - m) + exp(b - m));
            want[o * 6 + i] = a - lse;
            want[o * 6 + 3 + i] = b - lse;
        }
    expect_close(Y, want, 12, 1e-5);
    fx_free(f);

    /* opset 11, axis 1: rows of the [2, 6] coercion. */
    f = fx_new("Softmax", 1, 1, 11);
    set_f(fx_in(f, 0, QD_DT_FLOAT, 3, d), xv);
    Y = fx_out(f, 0, QD_DT_FLOAT, 3, d);
    assert_int_equal(fx_run(f, qd_ref_softmax), QD_OK);
    for (int o = 0; o < 2; o++) {
        double m = -INFINITY, s = 0;
        for (int i = 0; i < 6; i++)
            m = fmax(m, xv[o * 6 + i]);
        for (int i = 0; i < 6; i++)
            s += exp(xv[o * 6 + i] - m);
        for (int i = 0; i < 6; i++)
            want[o * 6 + i] = exp(xv[o * 6 + i] - m) / s;
    }
    expect_close(Y, want, 12, 1e-6);
    fx_free(f);
}

static void test_topk(void **state)
{
    (void)state;
    fx *f = fx_new("TopK", 2, 2, 11);
    qd_tensor *X = fx_in(f, 0, QD_DT_FLOAT, 2, (int64_t[]){2, 5});
    qd_tensor *K = fx_in(f, 1, QD_DT_INT64, 1, (int64_t[]){1});
    qd_tensor *V = fx_out(f, 0, QD_DT_FLOAT, 2, (int64_t[]){2, 3});
    qd_tensor *I = fx_out(f, 1, QD_DT_INT64, 2, (int64_t[]){2, 3});
    set_f(X, (float[]){3, 1, 3, 5, 0, -1, -2, -1, -3, -2});
    ((int64_t *)K->data)[0] = 3;
    assert_int_equal(fx_run(f, qd_ref_topk), QD_OK);
    expect_f(V, (float[]){5, 3, 3, -1, -1, -2}, 6, 0);
    int64_t *ind = I->data;
    /* ties: the lower index first */
    const int64_t wi[6] = {3, 0, 2, 0, 2, 1};
    for (int i = 0; i < 6; i++)
        assert_int_equal(ind[i], wi[i]);
    qd_node_set_attr_int(f->n, "largest", 0);
    assert_int_equal(fx_run(f, qd_ref_topk), QD_OK);
    expect_f(V, (float[]){0, 1, 3, -3, -2, -2}, 6, 0);
    const int64_t wi2[6] = {4, 1, 0, 3, 1, 4};
    for (int i = 0; i < 6; i++)
        assert_int_equal(ind[i], wi2[i]);
    fx_free(f);

    /* axis 0 of a [4, 2] tensor, k = 2 (strided slices) */
    f = fx_new("TopK", 2, 2, 11);
    X = fx_in(f, 0, QD_DT_FLOAT, 2, (int64_t[]){4, 2});
    K = fx_in(f, 1, QD_DT_INT64, 1, (int64_t[]){1});
    V = fx_out(f, 0, QD_DT_FLOAT, 2, (int64_t[]){2, 2});
    I = fx_out(f, 1, QD_DT_INT64, 2, (int64_t[]){2, 2});
    set_f(X, (float[]){1, 8, 4, 7, 2, 6, 3, 5});
    ((int64_t *)K->data)[0] = 2;
    qd_node_set_attr_int(f->n, "axis", 0);
    assert_int_equal(fx_run(f, qd_ref_topk), QD_OK);
    expect_f(V, (float[]){4, 8, 3, 7}, 4, 0);
    ind = I->data;
    assert_int_equal(ind[0], 1);
    assert_int_equal(ind[1], 0);
    assert_int_equal(ind[2], 3);
    assert_int_equal(ind[3], 1);
    fx_free(f);
}

static void test_cumsum(void **state)
{
    (void)state;
    fx *f = fx_new("CumSum", 2, 1, 14);
    qd_tensor *X = fx_in(f, 0, QD_DT_FLOAT, 2, (int64_t[]){2, 3});
    qd_tensor *A = fx_in(f, 1, QD_DT_INT32, 0, NULL);
    qd_tensor *Y = fx_out(f, 0, QD_DT_FLOAT, 2, (int64_t[]){2, 3});
    set_f(X, (float[]){1, 2, 3, 4, 5, 6});
    ((int32_t *)A->data)[0] = 1;
    assert_int_equal(fx_run(f, qd_ref_cumsum), QD_OK);
    expect_f(Y, (float[]){1, 3, 6, 4, 9, 15}, 6, 0);
    qd_node_set_attr_int(f->n, "exclusive", 1);
    assert_int_equal(fx_run(f, qd_ref_cumsum), QD_OK);
    expect_f(Y, (float[]){0, 1, 3, 0, 4, 9}, 6, 0);
    qd_node_set_attr_int(f->n, "reverse", 1);
    assert_int_equal(fx_run(f, qd_ref_cumsum), QD_OK);
    expect_f(Y, (float[]){5, 3, 0, 11, 6, 0}, 6, 0);
    ((int32_t *)A->data)[0] = -2;
    qd_node_set_attr_int(f->n, "exclusive", 0);
    assert_int_equal(fx_run(f, qd_ref_cumsum), QD_OK);
    expect_f(Y, (float[]){5, 7, 9, 4, 5, 6}, 6, 0);
    fx_free(f);
}

/* ---- Resize, DepthToSpace, SpaceToDepth ---- */

static void test_resize(void **state)
{
    (void)state;
    /* nearest, asymmetric, floor: 2x upsample repeats */
    fx *f = fx_new("Resize", 3, 1, 13);
    qd_tensor *X = fx_in(f, 0, QD_DT_FLOAT, 4, (int64_t[]){1, 1, 2, 2});
    qd_tensor *S = fx_in(f, 2, QD_DT_FLOAT, 1, (int64_t[]){4});
    qd_tensor *Y = fx_out(f, 0, QD_DT_FLOAT, 4, (int64_t[]){1, 1, 4, 4});
    f->in[1] = NULL;
    set_f(X, (float[]){1, 2, 3, 4});
    set_f(S, (float[]){1, 1, 2, 2});
    qd_node_set_attr_string(f->n, "coordinate_transformation_mode", "asymmetric");
    qd_node_set_attr_string(f->n, "nearest_mode", "floor");
    assert_int_equal(fx_run(f, qd_ref_resize), QD_OK);
    expect_f(Y, (float[]){1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, 16, 0);
    /* linear, half_pixel (the ONNX test_resize_upsample_scales_linear) */
    qd_node_set_attr_string(f->n, "mode", "linear");
    qd_node_set_attr_string(f->n, "coordinate_transformation_mode", "half_pixel");
    assert_int_equal(fx_run(f, qd_ref_resize), QD_OK);
    expect_f(Y,
             (float[]){1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f, 3.25f, 3.5f, 3,
                       3.25f, 3.75f, 4},
             16, 1e-6);
    /* align_corners */
    qd_node_set_attr_string(f->n, "coordinate_transformation_mode", "align_corners");
    assert_int_equal(fx_run(f, qd_ref_resize), QD_OK);
    float wac[16];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            wac[r * 4 + c] = 1 + (float)c / 3 + 2 * (float)r / 3;
    expect_f(Y, wac, 16, 1e-6);
    fx_free(f);

    /* sizes input, uint8 nearest with round_prefer_ceil */
    f = fx_new("Resize", 4, 1, 13);
    X = fx_in(f, 0, QD_DT_UINT8, 2, (int64_t[]){1, 4});
    qd_tensor *Z = fx_in(f, 3, QD_DT_INT64, 1, (int64_t[]){2});
    Y = fx_out(f, 0, QD_DT_UINT8, 2, (int64_t[]){1, 8});
    f->in[1] = f->in[2] = NULL;
    for (int i = 0; i < 4; i++)
        ((uint8_t *)X->data)[i] = (uint8_t)(10 * i);
    ((int64_t *)Z->data)[0] = 1;
    ((int64_t *)Z->data)[1] = 8;
    qd_node_set_attr_string(f->n, "coordinate_transformation_mode", "asymmetric");
    qd_node_set_attr_string(f->n, "nearest_mode", "round_prefer_ceil");
    assert_int_equal(fx_run(f, qd_ref_resize), QD_OK);
    /* x = o / 2: 0, .5->1, 1, 1.5->2, 2, 2.5->3, 3, 3.5->4 clamped to 3 */
    const uint8_t w8[8] = {0, 10, 10, 20, 20, 30, 30, 30};
    for (int i = 0; i < 8; i++)
        assert_int_equal(((uint8_t *)Y->data)[i], w8[i]);
    fx_free(f);
}

static void test_depth_space(void **state)
{
    (void)state;
    float xv[48];
    for (int i = 0; i < 48; i++)
        xv[i] = (float)i;
    const char *modes[2] = {"DCR", "CRD"};
    for (int m = 0; m < 2; m++) {
        fx *f = fx_new("DepthToSpace", 1, 1, 13);
        set_f(fx_in(f, 0, QD_DT_FLOAT, 4, (int64_t[]){1, 8, 2, 3}), xv);
        qd_tensor *Y = fx_out(f, 0, QD_DT_FLOAT, 4, (int64_t[]){1, 2, 4, 6});
        qd_node_set_attr_int(f->n, "blocksize", 2);
        qd_node_set_attr_string(f->n, "mode", modes[m]);
        assert_int_equal(fx_run(f, qd_ref_depth_to_space), QD_OK);
        const float *y = Y->data;
        /* numpy's reshape/transpose definition, first 12 outputs */
        const float dcr[12] = {0, 12, 1, 13, 2, 14, 24, 36, 25, 37, 26, 38};
        const float crd[12] = {0, 6, 1, 7, 2, 8, 12, 18, 13, 19, 14, 20};
        expect_f(Y, m == 0 ? dcr : crd, 12, 0);
        if (m == 0) {
            /* SpaceToDepth inverts DCR DepthToSpace */
            fx *g = fx_new("SpaceToDepth", 1, 1, 13);
            set_f(fx_in(g, 0, QD_DT_FLOAT, 4, (int64_t[]){1, 2, 4, 6}), y);
            qd_tensor *Z = fx_out(g, 0, QD_DT_FLOAT, 4, (int64_t[]){1, 8, 2, 3});
            qd_node_set_attr_int(g->n, "blocksize", 2);
            assert_int_equal(fx_run(g, qd_ref_space_to_depth), QD_OK);
            expect_f(Z, xv, 48, 0);
            fx_free(g);
        }
        fx_free(f);
    }
}

/* ---- quantization ---- */

static void test_quantize_linear(void **state)
{
    (void)state;
    const float xv[10] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 300, -300, 127.5f, -128.5f, NAN};
    /* uint8, zero point 0 */
    fx *f = fx_new("QuantizeLinear", 3, 1, 13);
    set_f(fx_in(f, 0, QD_DT_FLOAT, 1, (int64_t[]){10}), xv);
    ((float *)fx_in(f, 1, QD_DT_FLOAT, 0, NULL)->data)[0] = 1.0f;
    fx_in(f, 2, QD_DT_UINT8, 0, NULL);
    qd_tensor *Y = fx_out(f, 0, QD_DT_UINT8, 1, (int64_t[]){10});
    assert_int_equal(fx_run(f, qd_ref_quantize_linear), QD_OK);
    const uint8_t wu[10] = {0, 2, 2, 0, 0, 255, 0, 128, 0, 0};
    for (int i = 0; i < 10; i++)
        assert_int_equal(((uint8_t *)Y->data)[i], wu[i]);
    fx_free(f);

    /* int8 with zero point 1: round before adding it (2.5 -> 2 -> 3) */
    f = fx_new("QuantizeLinear", 3, 1, 13);
    set_f(fx_in(f, 0, QD_DT_FLOAT, 1, (int64_t[]){10}), xv);
    ((float *)fx_in(f, 1, QD_DT_FLOAT, 0, NULL)->data)[0] = 1.0f;
    ((int8_t *)fx_in(f, 2, QD_DT_INT8, 0, NULL)->data)[0] = 1;
    Y = fx_out(f, 0, QD_DT_INT8, 1, (int64_t[]){10});
    assert_int_equal(fx_run(f, qd_ref_quantize_linear), QD_OK);
    const int8_t wi[10] = {1, 3, 3, 1, -1, 127, -128, 127, -127, -128};
    for (int i = 0; i < 10; i++)
        assert_int_equal(((int8_t *)Y->data)[i], wi[i]);
    fx_free(f);

    /* per axis (axis 1 of [1, 3, 2]); no zero point: uint8 */
    f = fx_new("QuantizeLinear", 2, 1, 13);
    set_f(fx_in(f, 0, QD_DT_FLOAT, 3, (int64_t[]){1, 3, 2}), (float[]){1, 2, 1, 2, 1, 2});
    set_f(fx_in(f, 1, QD_DT_FLOAT, 1, (int64_t[]){3}), (float[]){0.5f, 0.25f, 4});
    Y = fx_out(f, 0, QD_DT_UINT8, 3, (int64_t[]){1, 3, 2});
    assert_int_equal(fx_run(f, qd_ref_quantize_linear), QD_OK);
    const uint8_t wa[6] = {2, 4, 4, 8, 0, 0};
    for (int i = 0; i < 6; i++)
        assert_int_equal(((uint8_t *)Y->data)[i], wa[i]);
    fx_free(f);
}

static void test_dequantize_linear(void **state)
{
    (void)state;
    fx *f = fx_new("DequantizeLinear", 3, 1, 13);
    qd_tensor *X = fx_in(f, 0, QD_DT_UINT8, 2, (int64_t[]){2, 2});
    set_f(fx_in(f, 1, QD_DT_FLOAT, 1, (int64_t[]){2}), (float[]){0.5f, 2});
    qd_tensor *Z = fx_in(f, 2, QD_DT_UINT8, 1, (int64_t[]){2});
    qd_tensor *Y = fx_out(f, 0, QD_DT_FLOAT, 2, (int64_t[]){2, 2});
    memcpy(X->data, (uint8_t[]){0, 255, 10, 3}, 4);
    memcpy(Z->data, (uint8_t[]){10, 3}, 2);
    assert_int_equal(fx_run(f, qd_ref_dequantize_linear), QD_OK);
    expect_f(Y, (float[]){-5, 504, 0, 0}, 4, 0);
    qd_node_set_attr_int(f->n, "axis", 0);
    assert_int_equal(fx_run(f, qd_ref_dequantize_linear), QD_OK);
    expect_f(Y, (float[]){-5, 122.5f, 14, 0}, 4, 0);
    fx_free(f);

    /* int32 (bias), per tensor, no zero point */
    f = fx_new("DequantizeLinear", 2, 1, 13);
    X = fx_in(f, 0, QD_DT_INT32, 1, (int64_t[]){3});
    ((float *)fx_in(f, 1, QD_DT_FLOAT, 0, NULL)->data)[0] = 0.125f;
    Y = fx_out(f, 0, QD_DT_FLOAT, 1, (int64_t[]){3});
    memcpy(X->data, (int32_t[]){-8, 100000, 3}, 12);
    assert_int_equal(fx_run(f, qd_ref_dequantize_linear), QD_OK);
    expect_f(Y, (float[]){-1, 12500, 0.375f}, 3, 0);
    fx_free(f);
}

static int32_t sat(double v, int32_t lo, int32_t hi)
{
    v = nearbyint(v);
    return v < lo ? lo : v > hi ? hi : (int32_t)v;
}

/* QLinearConv == dequantize -> float conv -> quantize, exactly, with
 * power-of-two scales (so every float step is exact). */
static void run_qlinear_conv(qd_dtype xt, qd_dtype wt, int per_channel, int group, int bias)
{
    const int64_t N = 1, C = 2 * group, M = 2 * group, H = 6, W = 5, KH = 3, KW = 2;
    const int64_t OH = (H + 2 - KH) / 2 + 1, OW = (W + 1 - KW) + 1;
    fx *f = fx_new("QLinearConv", 9, 1, 10);
    qd_tensor *X = fx_in(f, 0, xt, 4, (int64_t[]){N, C, H, W});
    float xs = 0.5f, ys = 2.0f, wsv[8];
    ((float *)fx_in(f, 1, QD_DT_FLOAT, 0, NULL)->data)[0] = xs;
    qd_tensor *XZ = fx_in(f, 2, xt, 0, NULL);
    qd_tensor *Wt = fx_in(f, 3, wt, 4, (int64_t[]){M, C / group, KH, KW});
    int64_t nw = per_channel ? M : 1;
    qd_tensor *WS = fx_in(f, 4, QD_DT_FLOAT, 1, (int64_t[]){nw});
    qd_tensor *WZ = fx_in(f, 5, wt, 1, (int64_t[]){nw});
    ((float *)fx_in(f, 6, QD_DT_FLOAT, 0, NULL)->data)[0] = ys;
    qd_tensor *YZ = fx_in(f, 7, QD_DT_UINT8, 0, NULL);
    qd_tensor *B = bias ? fx_in(f, 8, QD_DT_INT32, 1, (int64_t[]){M}) : NULL;
    qd_tensor *Y = fx_out(f, 0, QD_DT_UINT8, 4, (int64_t[]){N, M, OH, OW});
    qd_node_set_attr_ints(f->n, "pads", (int64_t[]){1, 0, 1, 1}, 4);
    qd_node_set_attr_ints(f->n, "strides", (int64_t[]){2, 1}, 2);
    qd_node_set_attr_int(f->n, "group", group);
    int x8 = xt == QD_DT_INT8, w8 = wt == QD_DT_INT8;
    int32_t xzp = x8 ? -3 : 120, yzp = 128;
    for (int64_t i = 0; i < qd_numel(4, X->dims); i++)
        qd_tensor_set_i64(X, i, x8 ? irand(256) - 128 : irand(256));
    qd_tensor_set_i64(XZ, 0, xzp);
    for (int64_t i = 0; i < qd_numel(4, Wt->dims); i++)
        qd_tensor_set_i64(Wt, i, w8 ? irand(256) - 128 : irand(256));
    for (int64_t m = 0; m < nw; m++) {
        wsv[m] = ldexpf(1.0f, -(int)(m % 4) - 4);
        ((float *)WS->data)[m] = wsv[m];
        qd_tensor_set_i64(WZ, m, w8 ? (int)m - 1 : 100 + (int)m);
    }
    ((uint8_t *)YZ->data)[0] = (uint8_t)yzp;
    if (B)
        for (int64_t m = 0; m < M; m++)
            ((int32_t *)B->data)[m] = irand(2001) - 1000;
    assert_int_equal(fx_run(f, qd_ref_qlinear_conv), QD_OK);

    int64_t Cg = C / group, Mg = M / group;
    for (int64_t m = 0; m < M; m++) {
        int64_t wm = per_channel ? m : 0;
        double wscale = wsv[wm];
        int32_t wz = (int32_t)qd_tensor_get_i64(WZ, wm);
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                double s = B ? ((int32_t *)B->data)[m] * xs * wscale : 0.0;
                for (int64_t c = 0; c < Cg; c++)
                    for (int64_t kh = 0; kh < KH; kh++)
                        for (int64_t kw = 0; kw < KW; kw++) {
                            int64_t ih = oh * 2 - 1 + kh, iw = ow - 0 + kw;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                continue;
                            int64_t ci = (m / Mg) * Cg + c;
                            double xv = (qd_tensor_get_i64(X, (ci * H + ih) * W + iw) - xzp) * xs;
                            double wv = (qd_tensor_get_i64(Wt, ((m * Cg + c) * KH + kh) * KW + kw) -
                                         wz) * wscale;
                            s += xv * wv;
                        }
                int32_t want = sat(s / ys, 0 - yzp, 255 - yzp) + yzp;
                assert_int_equal(((uint8_t *)Y->data)[(m * OH + oh) * OW + ow], want);
            }
    }
    fx_free(f);
}

static void test_qlinear_conv(void **state)
{
    (void)state;
    run_qlinear_conv(QD_DT_UINT8, QD_DT_UINT8, 0, 1, 0);
    run_qlinear_conv(QD_DT_UINT8, QD_DT_INT8, 1, 1, 1);
    run_qlinear_conv(QD_DT_INT8, QD_DT_INT8, 1, 2, 1);
    run_qlinear_conv(QD_DT_UINT8, QD_DT_INT8, 1, 4, 1);

    /* the ONNX test_qlinearconv 1x1 case, first row */
    fx *f = fx_new("QLinearConv", 8, 1, 10);
    qd_tensor *X = fx_in(f, 0, QD_DT_UINT8, 4, (int64_t[]){1, 1, 1, 7});
    ((float *)fx_in(f, 1, QD_DT_FLOAT, 0, NULL)->data)[0] = 0.00369204697f;
    ((uint8_t *)fx_in(f, 2, QD_DT_UINT8, 0, NULL)->data)[0] = 132;
    ((uint8_t *)fx_in(f, 3, QD_DT_UINT8, 4, (int64_t[]){1, 1, 1, 1})->data)[0] = 0;
    ((float *)fx_in(f, 4, QD_DT_FLOAT, 1, (int64_t[]){1})->data)[0] = 0.00172794575f;
    ((uint8_t *)fx_in(f, 5, QD_DT_UINT8, 1, (int64_t[]){1})->data)[0] = 255;
    ((float *)fx_in(f, 6, QD_DT_FLOAT, 0, NULL)->data)[0] = 0.00162681262f;
    ((uint8_t *)fx_in(f, 7, QD_DT_UINT8, 0, NULL)->data)[0] = 123;
    qd_tensor *Y = fx_out(f, 0, QD_DT_UINT8, 4, (int64_t[]){1, 1, 1, 7});
    memcpy(X->data, (uint8_t[]){255, 174, 162, 25, 203, 168, 58}, 7);
    assert_int_equal(fx_run(f, qd_ref_qlinear_conv), QD_OK);
    const uint8_t want[7] = {0, 81, 93, 230, 52, 87, 197};
    for (int i = 0; i < 7; i++)
        assert_int_equal(((uint8_t *)Y->data)[i], want[i]);
    fx_free(f);
}

static void test_qlinear_matmul(void **state)
{
    (void)state;
    /* batched [2, 3, 4] x [4, 5], per-column b scale, exact scales */
    const int64_t Bn = 2, M = 3, K = 4, N = 5;
    fx *f = fx_new("QLinearMatMul", 8, 1, 10);
    qd_tensor *A = fx_in(f, 0, QD_DT_UINT8, 3, (int64_t[]){Bn, M, K});
    ((float *)fx_in(f, 1, QD_DT_FLOAT, 0, NULL)->data)[0] = 0.25f;
    ((uint8_t *)fx_in(f, 2, QD_DT_UINT8, 0, NULL)->data)[0] = 113;
    qd_tensor *Bq = fx_in(f, 3, QD_DT_INT8, 2, (int64_t[]){K, N});
    qd_tensor *BS = fx_in(f, 4, QD_DT_FLOAT, 1, (int64_t[]){N});
    qd_tensor *BZ = fx_in(f, 5, QD_DT_INT8, 1, (int64_t[]){N});
    ((float *)fx_in(f, 6, QD_DT_FLOAT, 0, NULL)->data)[0] = 1.0f;
    ((int8_t *)fx_in(f, 7, QD_DT_INT8, 0, NULL)->data)[0] = -5;
    qd_tensor *Y = fx_out(f, 0, QD_DT_INT8, 3, (int64_t[]){Bn, M, N});
    for (int64_t i = 0; i < Bn * M * K; i++)
        ((uint8_t *)A->data)[i] = (uint8_t)irand(256);
    for (int64_t i = 0; i < K * N; i++)
        ((int8_t *)Bq->data)[i] = (int8_t)(irand(256) - 128);
    for (int64_t j = 0; j < N; j++) {
        ((float *)BS->data)[j] = ldexpf(1.0f, -(int)j - 2);
        ((int8_t *)BZ->data)[j] = (int8_t)(j - 2);
    }
    assert_int_equal(fx_run(f, qd_ref_qlinear_matmul), QD_OK);
    for (int64_t b = 0; b < Bn; b++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (((uint8_t *)A->data)[(b * M + i) * K + k] - 113) * 0.25 *
                         (((int8_t *)Bq->data)[k * N + j] - (j - 2)) * ((float *)BS->data)[j];
                int32_t want = sat(s, -128 + 5, 127 + 5) - 5;
                assert_int_equal(((int8_t *)Y->data)[(b * M + i) * N + j], want);
            }
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_conv_errors),
        cmocka_unit_test(test_conv_transpose),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_batch_norm),
        cmocka_unit_test(test_layer_norm),
        cmocka_unit_test(test_instance_norm),
        cmocka_unit_test(test_max_pool),
        cmocka_unit_test(test_average_pool),
        cmocka_unit_test(test_global_pool),
        cmocka_unit_test(test_reduce),
        cmocka_unit_test(test_arg_reduce),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_topk),
        cmocka_unit_test(test_cumsum),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_depth_space),
        cmocka_unit_test(test_quantize_linear),
        cmocka_unit_test(test_dequantize_linear),
        cmocka_unit_test(test_qlinear_conv),
        cmocka_unit_test(test_qlinear_matmul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
