/* The AVX-512 kernels (src/engine/kernels/x86) against the reference
 * kernels on random shapes (odd sizes, tails, dims of 1), and the selector
 * (qd_x86_supports / qd_x86_impl). Exact where the kernel does the same
 * IEEE operations as the reference (Relu, Neg, Abs, Sqrt, Reciprocal,
 * HardSigmoid, HardSwish, Clip, Add/Sub/Mul/Div, Transpose, MaxPool);
 * 1e-5 relative (plus a small absolute floor for the transcendental
 * ones) elsewhere. GELU has no reference kernel: it is checked against
 * the formula in double. Without AVX-512 (or with QD_X86_DISABLE=1: the
 * ctest entry unit_test_x86_kernels_fallback) only the fallback to the
 * reference kernels is checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four above first */
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/kernel.h"
#include "engine/kernels/x86/x86_kernels.h"
#include "ir/graph.h"

/* ---- random numbers ---- */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}

static int rnd_int(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }
static float rnd_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(rnd() % 16777216u) / 16777216.0);
}

/* ---- one node, its values and tensors ---- */

#define MAXIN 4
#define MAXBUF 8

/* A buffer between two inaccessible pages: the tensor's data ends at the
 * upper one (overruns fault) or starts at the lower one (underruns fault),
 * alternately. The kernels' masked loads must not touch either. */
typedef struct gbuf {
    void *base;
    size_t len;
} gbuf;

typedef struct tc {
    qd_graph *g;
    qd_node *n;
    qd_value *iv[MAXIN], *ov;
    qd_tensor *in[MAXIN];  /* owned unless the value holds it as konst */
    int konst[MAXIN];
    int nin;
    qd_tensor *want, *got; /* outputs of the reference and of the x86 kernel */
    gbuf bufs[MAXBUF];
    int nbufs;
} tc;

static int g_guard_flip;

static qd_tensor *guarded_typed(tc *c, qd_dtype dt, int rank, const int64_t *dims)
{
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    const size_t n = (size_t)qd_numel(rank, dims) * qd_dtype_size(dt);
    const size_t body = (n + pg - 1) / pg * pg;
    const size_t len = body + 2 * pg;
    assert_true(c->nbufs < MAXBUF);
    char *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(base != MAP_FAILED);
    assert_int_equal(mprotect(base, pg, PROT_NONE), 0);
    assert_int_equal(mprotect(base + pg + body, pg, PROT_NONE), 0);
    char *data = (g_guard_flip++ & 1) ? base + pg : base + pg + body - n;
    qd_tensor *t = qd_tensor_wrap(dt, rank, dims, data, 0);
    assert_non_null(t);
    c->bufs[c->nbufs++] = (gbuf){base, len};
    return t;
}

static qd_tensor *guarded(tc *c, int rank, const int64_t *dims)
{
    return guarded_typed(c, QD_DT_FLOAT, rank, dims);
}

static tc *tc_new(const char *op, int64_t opset, int nin)
{
    tc *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->g = qd_graph_new();
    assert_non_null(c->g);
    c->g->opset = opset;
    for (int i = 0; i < nin; i++)
        c->iv[i] = qd_graph_new_value(c->g, NULL, "in");
    c->ov = qd_graph_new_value(c->g, NULL, "out");
    c->n = qd_graph_add_node(c->g, op, "", "n0", c->iv, nin, &c->ov, 1);
    assert_non_null(c->n);
    c->nin = nin;
    return c;
}

static void tc_free(tc *c)
{
    for (int i = 0; i < c->nin; i++)
        if (!c->konst[i])
            qd_tensor_delete(c->in[i]);
    qd_tensor_delete(c->want);
    qd_tensor_delete(c->got);
    for (int i = 0; i < c->nbufs; i++)
        munmap(c->bufs[i].base, c->bufs[i].len);
    qd_graph_delete(c->g);
    free(c);
}

/* Input i: a float tensor of the given shape, uniform in [lo, hi]. */
static float *tc_input(tc *c, int i, int rank, const int64_t *dims, float lo, float hi)
{
    qd_tensor *t = guarded(c, rank, dims);
    float *p = t->data;
    for (int64_t k = 0; k < qd_numel(rank, dims); k++)
        p[k] = rnd_uniform(lo, hi);
    qd_value_set_shape(c->iv[i], QD_DT_FLOAT, rank, dims);
    c->in[i] = t;
    return p;
}

/* Input i: a constant (the value takes t). */
static void tc_const(tc *c, int i, qd_tensor *t)
{
    qd_value_set_shape(c->iv[i], t->dtype, t->rank, t->dims);
    qd_value_set_const(c->iv[i], t);
    c->in[i] = c->iv[i]->konst;
    c->konst[i] = 1;
}

static void tc_output(tc *c, int rank, const int64_t *dims)
{
    qd_value_set_shape(c->ov, QD_DT_FLOAT, rank, dims);
    c->want = qd_tensor_new(QD_DT_FLOAT, rank, dims);
    c->got = guarded(c, rank, dims);
    assert_non_null(c->want);
    assert_non_null(c->got);
    /* garbage, so that unwritten elements show */
    memset(c->want->data, 0x7f, c->want->nbytes);
    memset(c->got->data, 0x7d, c->got->nbytes);
}

static qd_status tc_call(tc *c, qd_kernel_fn fn, qd_tensor *out, int threads)
{
    qd_tensor *outs[1] = {out};
    qd_kernel_args a = {c->n, c->g, c->nin, (const qd_tensor *const *)c->in, 1, outs, threads,
                        NULL, NULL, 0, NULL, 0};
    return fn(&a);
}

/* Runs the reference kernel into want and the x86 kernel into got
 * (2 threads); both must succeed. */
static void tc_run(tc *c)
{
    qd_kernel_fn ref = qd_ref_kernel(c->n->op);
    assert_non_null(ref);
    qd_status st = tc_call(c, ref, c->want, 1);
    if (st != QD_OK)
        fprintf(stderr, "reference: %s\n", c->g->err.message);
    assert_int_equal(st, QD_OK);
    qd_kernel_impl impl = qd_x86_impl(c->n);
    assert_string_equal(impl.name, "x86");
    assert_non_null(impl.run);
    st = tc_call(c, impl.run, c->got, 2);
    if (st != QD_OK)
        fprintf(stderr, "x86: %s\n", c->g->err.message);
    assert_int_equal(st, QD_OK);
}

/* ---- comparisons ---- */

static int64_t numel(const qd_tensor *t) { return qd_numel(t->rank, t->dims); }

/* Bitwise equal, any NaN matching any NaN. */
static void expect_exact(const qd_tensor *got, const qd_tensor *want, const char *what)
{
    const float *g = got->data, *w = want->data;
    for (int64_t i = 0; i < numel(want); i++) {
        if (isnan(g[i]) && isnan(w[i]))
            continue;
        if (memcmp(&g[i], &w[i], sizeof(float)) != 0) {
            print_error("%s: element %lld: got %.9g want %.9g\n", what, (long long)i, (double)g[i],
                        (double)w[i]);
            fail();
        }
    }
}

/* |got - want| <= atol + rtol |want| everywhere (NaN matching NaN, inf
 * matching inf). */
static void expect_close_d(const float *g, const double *w, int64_t n, double rtol, double atol,
                           const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        if (isnan(g[i]) && isnan(w[i]))
            continue;
        if (isinf(w[i]) && g[i] == w[i])
            continue;
        if (!(fabs((double)g[i] - w[i]) <= atol + rtol * fabs(w[i]))) {
            print_error("%s: element %lld: got %.9g want %.9g (diff %.3g)\n", what, (long long)i,
                        (double)g[i], w[i], fabs((double)g[i] - w[i]));
            fail();
        }
    }
}

static void expect_close(const qd_tensor *got, const qd_tensor *want, double rtol, double atol,
                         const char *what)
{
    const int64_t n = numel(want);
    double *w = malloc((size_t)(n ? n : 1) * sizeof *w);
    assert_non_null(w);
    for (int64_t i = 0; i < n; i++)
        w[i] = ((const float *)want->data)[i];
    expect_close_d(got->data, w, n, rtol, atol, what);
    free(w);
}

static int g_skip; /* no AVX-512: every test passes with a message */
#define SKIP_WITHOUT_AVX512()                                                                      \
    do {                                                                                           \
        if (g_skip)                                                                                \
            return;                                                                                \
    } while (0)

/* Sizes that exercise tails: not multiples of 16, 1, exact multiples. */
static const int64_t k_sizes[] = {1, 2, 15, 16, 17, 31, 33, 96, 197, 768, 1000};
#define N_SIZES (int)(sizeof k_sizes / sizeof k_sizes[0])

/* ---- LayerNormalization ---- */

static void ln_case(int rank, const int64_t *dims, int bias, float offset, float spread)
{
    tc *c = tc_new("LayerNormalization", 17, bias ? 3 : 2);
    tc_input(c, 0, rank, dims, offset - spread, offset + spread);
    const int64_t n = dims[rank - 1];
    tc_input(c, 1, 1, &n, -2, 2);
    if (bias)
        tc_input(c, 2, 1, &n, -1, 1);
    assert_int_equal(qd_node_set_attr_float(c->n, "epsilon", 1e-5f), 0);
    if (rnd() & 1)
        assert_int_equal(qd_node_set_attr_int(c->n, "axis", rank - 1), 0);
    tc_output(c, rank, dims);
    assert_int_equal(qd_x86_supports(c->n), 1);
    tc_run(c);
    /* y is O(scale): compare against max(1, |want|) */
    expect_close(c->got, c->want, 1e-5, 1e-5, "LayerNormalization");
    tc_free(c);
}

static void test_layernorm(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    for (int s = 0; s < N_SIZES; s++) {
        int64_t d2[2] = {rnd_int(1, 40), k_sizes[s]};
        ln_case(2, d2, s & 1, 0, 1);
        int64_t d3[3] = {rnd_int(1, 3), rnd_int(1, 9), k_sizes[s]};
        ln_case(3, d3, 1, 0, 3);
    }
    /* a large mean over a small spread (cancellation) */
    int64_t d[2] = {7, 768};
    ln_case(2, d, 1, 100.0f, 0.5f);
    ln_case(2, d, 0, -30.0f, 1e-2f);
    /* ViT and ConvNeXt shapes, parallel */
    int64_t vit[3] = {1, 197, 768}, cnx[4] = {1, 56, 56, 96};
    ln_case(3, vit, 1, 0.3f, 2);
    ln_case(4, cnx, 1, 0, 1);
    /* constant rows: variance 0 */
    tc *c = tc_new("LayerNormalization", 17, 2);
    int64_t dc[2] = {3, 40};
    float *x = tc_input(c, 0, 2, dc, 0, 1);
    for (int i = 0; i < 120; i++)
        x[i] = 2.5f;
    tc_input(c, 1, 1, &dc[1], 1, 2);
    tc_output(c, 2, dc);
    tc_run(c);
    expect_close(c->got, c->want, 1e-5, 1e-5, "LayerNormalization constant rows");
    tc_free(c);
}

static void test_layernorm_not_claimed(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    int64_t d[3] = {2, 5, 8};
    /* normalizing over the last two axes */
    tc *c = tc_new("LayerNormalization", 17, 2);
    tc_input(c, 0, 3, d, -1, 1);
    tc_input(c, 1, 2, d + 1, -1, 1);
    assert_int_equal(qd_node_set_attr_int(c->n, "axis", -2), 0);
    tc_output(c, 3, d);
    assert_int_equal(qd_x86_supports(c->n), 0);
    /* called anyway, the kernel takes the reference path */
    tc_run(c);
    expect_exact(c->got, c->want, "LayerNormalization axis -2 (reference path)");
    tc_free(c);
    /* a Scale of one element broadcast, a Scale [1, N] */
    c = tc_new("LayerNormalization", 17, 2);
    tc_input(c, 0, 3, d, -1, 1);
    int64_t one = 1;
    tc_input(c, 1, 1, &one, -1, 1);
    tc_output(c, 3, d);
    assert_int_equal(qd_x86_supports(c->n), 0);
    tc_free(c);
    c = tc_new("LayerNormalization", 17, 2);
    tc_input(c, 0, 3, d, -1, 1);
    int64_t s2[2] = {1, 8};
    tc_input(c, 1, 2, s2, -1, 1);
    tc_output(c, 3, d);
    assert_int_equal(qd_x86_supports(c->n), 0);
    tc_free(c);
    /* Mean output requested */
    qd_graph *g = qd_graph_new();
    g->opset = 17;
    qd_value *in[2] = {qd_graph_new_value(g, NULL, "x"), qd_graph_new_value(g, NULL, "s")};
    qd_value *out[2] = {qd_graph_new_value(g, NULL, "y"), qd_graph_new_value(g, NULL, "m")};
    qd_value_set_shape(in[0], QD_DT_FLOAT, 3, d);
    qd_value_set_shape(in[1], QD_DT_FLOAT, 1, d + 2);
    qd_value_set_shape(out[0], QD_DT_FLOAT, 3, d);
    int64_t md[3] = {2, 5, 1};
    qd_value_set_shape(out[1], QD_DT_FLOAT, 3, md);
    qd_node *n = qd_graph_add_node(g, "LayerNormalization", "", "ln", in, 2, out, 2);
    assert_non_null(n);
    assert_int_equal(qd_x86_supports(n), 0);
    qd_graph_delete(g);
}

/* ---- Softmax ---- */

static void softmax_case(int64_t opset, int rank, const int64_t *dims, int set_axis, int64_t axis,
                         float range)
{
    tc *c = tc_new("Softmax", opset, 1);
    tc_input(c, 0, rank, dims, -range, range);
    if (set_axis)
        assert_int_equal(qd_node_set_attr_int(c->n, "axis", axis), 0);
    tc_output(c, rank, dims);
    assert_int_equal(qd_x86_supports(c->n), 1);
    tc_run(c);
    expect_close(c->got, c->want, 1e-5, 1e-7, "Softmax");
    tc_free(c);
}

static void test_softmax(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    for (int s = 0; s < N_SIZES; s++) {
        int64_t d[3] = {rnd_int(1, 3), rnd_int(1, 7), k_sizes[s]};
        softmax_case(13, 3, d, 0, 0, 5);
        softmax_case(13, 3, d, 1, -1, 20);
        softmax_case(13, 3, d, 1, 2, 1);
        /* opset 11: rows of prod(dims[axis:]) */
        softmax_case(11, 3, d, 0, 0, 3);
        softmax_case(11, 3, d, 1, 2, 3);
    }
    int64_t attn[3] = {12, 197, 197};
    softmax_case(13, 3, attn, 0, 0, 8);
    int64_t trailing1[3] = {4, 33, 1};
    softmax_case(13, 3, trailing1, 1, 1, 3);
    /* huge differences: most exps underflow */
    int64_t d[2] = {5, 100};
    softmax_case(13, 2, d, 0, 0, 200);
    /* axis not last, opset 13: not claimed */
    tc *c = tc_new("Softmax", 13, 1);
    int64_t d3[3] = {2, 3, 4};
    tc_input(c, 0, 3, d3, -1, 1);
    assert_int_equal(qd_node_set_attr_int(c->n, "axis", 1), 0);
    tc_output(c, 3, d3);
    assert_int_equal(qd_x86_supports(c->n), 0);
    tc_run(c); /* reference path */
    expect_exact(c->got, c->want, "Softmax axis 1 (reference path)");
    tc_free(c);
}

/* ---- GELU ---- */

static double gelu_ref(double x, int tanh_form)
{
    if (tanh_form) {
        double u2 = 2.0 * 0.7978845608028654 * (x + 0.044715 * x * x * x);
        return x / (1.0 + exp(-u2));
    }
    return 0.5 * x * erfc(-x / sqrt(2.0));
}

static void gelu_case(int64_t count, const char *approx, float lo, float hi, double rtol)
{
    tc *c = tc_new("Gelu", 20, 1);
    int64_t d[1] = {count};
    float *x = tc_input(c, 0, 1, d, lo, hi);
    if (approx)
        assert_int_equal(qd_node_set_attr_string(c->n, "approximate", approx), 0);
    tc_output(c, 1, d);
    assert_int_equal(qd_x86_supports(c->n), 1);
    qd_kernel_impl impl = qd_x86_impl(c->n);
    assert_ptr_equal(impl.run, qd_x86_gelu);
    assert_int_equal(tc_call(c, impl.run, c->got, 2), QD_OK);
    const int tanh_form = approx && !strcmp(approx, "tanh");
    double *w = malloc((size_t)count * sizeof *w);
    for (int64_t i = 0; i < count; i++)
        w[i] = gelu_ref(x[i], tanh_form);
    expect_close_d(c->got->data, w, count, rtol, 1e-30, tanh_form ? "Gelu tanh" : "Gelu erf");
    free(w);
    tc_free(c);
}

static void test_gelu(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    for (int s = 0; s < N_SIZES; s++) {
        gelu_case(k_sizes[s], NULL, -6, 6, 2e-6);
        /* the float rounding of 2u shows as ~|2u| ulp in the tail */
        gelu_case(k_sizes[s], "tanh", -6, 6, 1e-5);
    }
    gelu_case(197 * 3072, "none", -8, 8, 2e-6);
    /* relative accuracy in the negative tail (Phi(-12) ~ 2e-33) */
    gelu_case(10000, "none", -12, -3, 5e-6);
    gelu_case(10000, "tanh", -9, -3, 3e-5);
    gelu_case(1000, "none", -1e-3f, 1e-3f, 2e-6);
    /* against the reference kernel (double precision, 1 + erf: exact
     * enough away from the far negative tail) */
    for (int t = 0; t < 2; t++) {
        tc *r = tc_new("Gelu", 20, 1);
        int64_t dr[2] = {3, 1001};
        tc_input(r, 0, 2, dr, -5, 5);
        if (t)
            assert_int_equal(qd_node_set_attr_string(r->n, "approximate", "tanh"), 0);
        tc_output(r, 2, dr);
        tc_run(r);
        expect_close(r->got, r->want, 1e-5, 1e-7, "Gelu vs reference");
        tc_free(r);
    }
    /* a bad approximate attribute is an error */
    tc *c = tc_new("Gelu", 20, 1);
    int64_t d[1] = {3};
    tc_input(c, 0, 1, d, -1, 1);
    assert_int_equal(qd_node_set_attr_string(c->n, "approximate", "fast"), 0);
    tc_output(c, 1, d);
    assert_int_equal(qd_x86_supports(c->n), 0);
    assert_int_not_equal(tc_call(c, qd_x86_gelu, c->got, 1), QD_OK);
    tc_free(c);
}

/* ---- vector math accuracy over the float range ---- */

static void test_math_accuracy(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    /* a dense grid plus specials, through Erf / Exp / Tanh / Sigmoid nodes */
    const int64_t n = 400001;
    static const char *ops[] = {"Erf", "Exp", "Tanh", "Sigmoid"};
    static const float lim[] = {8, 100, 12, 100};
    for (int k = 0; k < 4; k++) {
        tc *c = tc_new(ops[k], 13, 1);
        int64_t d[1] = {n + 8};
        float *x = tc_input(c, 0, 1, d, 0, 1);
        for (int64_t i = 0; i < n; i++)
            x[i] = -lim[k] + 2 * lim[k] * (float)i / (float)(n - 1);
        const float sp[8] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-30f, -1e-20f, 89.0f};
        memcpy(x + n, sp, sizeof sp);
        tc_output(c, 1, d);
        assert_int_equal(qd_x86_supports(c->n), 1);
        assert_int_equal(tc_call(c, qd_x86_impl(c->n).run, c->got, 2), QD_OK);
        const float *g = c->got->data;
        double max_abs = 0, max_rel = 0, max_abs_erff = 0;
        for (int64_t i = 0; i < n + 8; i++) {
            double v = x[i], w;
            switch (k) {
            case 0: w = erf(v); break;
            case 1: w = exp(v); break;
            case 2: w = tanh(v); break;
            default: w = 1.0 / (1.0 + exp(-v)); break;
            }
            if (isnan(w)) {
                assert_true(isnan(g[i]));
                continue;
            }
            if (isinf(w) || w > FLT_MAX) {
                if (!(isinf(g[i]) && (g[i] > 0) == (w > 0)))
                    print_error("%s(%g): got %g want inf\n", ops[k], v, (double)g[i]);
                assert_true(isinf(g[i]));
                continue;
            }
            double ae = fabs((double)g[i] - w);
            double re = fabs(w) >= FLT_MIN ? ae / fabs(w) : 0;
            if (fabs(w) < FLT_MIN && ae > 2 * 1.4e-45 && ae > 1e-6 * fabs(w)) {
                print_error("%s(%g): got %g want %g in the denormal range\n", ops[k], v,
                            (double)g[i], w);
                fail();
            }
            if (ae > max_abs)
                max_abs = ae;
            if (re > max_rel)
                max_rel = re;
            if (k == 0) {
                double e = fabs((double)g[i] - (double)erff(x[i]));
                if (e > max_abs_erff)
                    max_abs_erff = e;
            }
        }
        printf("  %-8s max rel error %.3g (%.2f ulp), max abs error %.3g", ops[k], max_rel,
               max_rel / 5.96e-8, max_abs);
        if (k == 0)
            printf(", max abs vs erff %.3g", max_abs_erff);
        printf("\n");
        assert_true(max_rel < 6e-7);
        if (k == 0)
            assert_true(max_abs_erff <= 1e-6);
        tc_free(c);
    }
}

/* ---- unary ops ---- */

static void unary_case(const char *op, int64_t count, float lo, float hi, int exact)
{
    tc *c = tc_new(op, 13, 1);
    int64_t d[2] = {1, count};
    float *x = tc_input(c, 0, 2, d, lo, hi);
    if (count > 4) {
        x[0] = 0.0f;
        x[1] = -0.0f;
        x[2] = NAN;
        x[3] = lo;
    }
    if (!strcmp(op, "HardSigmoid") && (count & 1)) {
        assert_int_equal(qd_node_set_attr_float(c->n, "alpha", 0.3f), 0);
        assert_int_equal(qd_node_set_attr_float(c->n, "beta", 0.4f), 0);
    }
    tc_output(c, 2, d);
    assert_int_equal(qd_x86_supports(c->n), 1);
    tc_run(c);
    if (exact)
        expect_exact(c->got, c->want, op);
    else
        expect_close(c->got, c->want, 1e-5, 1e-7, op);
    tc_free(c);
}

static void test_unary(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    const int64_t counts[] = {1, 5, 15, 16, 17, 100, 1001, 40009};
    for (size_t s = 0; s < sizeof counts / sizeof counts[0]; s++) {
        const int64_t n = counts[s];
        unary_case("Relu", n, -3, 3, 1);
        unary_case("Neg", n, -3, 3, 1);
        unary_case("Abs", n, -3, 3, 1);
        unary_case("Sqrt", n, -1, 100, 1);
        unary_case("Reciprocal", n, -10, 10, 1);
        unary_case("HardSigmoid", n, -6, 6, 1);
        unary_case("HardSwish", n, -6, 6, 1);
        unary_case("Sigmoid", n, -30, 30, 0);
        unary_case("Tanh", n, -5, 5, 0);
        unary_case("Erf", n, -4, 4, 0);
        unary_case("Exp", n, -90, 88, 0);
    }
}

/* Clip with bounds as inputs (opset >= 11) or attributes (opset 6). */
static void clip_case(int64_t count, int has_lo, int has_hi, int as_attr)
{
    tc *c = tc_new("Clip", as_attr ? 6 : 13, as_attr ? 1 : 3);
    int64_t d[1] = {count};
    float *x = tc_input(c, 0, 1, d, -8, 8);
    if (count > 3)
        x[2] = NAN;
    if (as_attr) {
        if (has_lo)
            assert_int_equal(qd_node_set_attr_float(c->n, "min", -1.5f), 0);
        if (has_hi)
            assert_int_equal(qd_node_set_attr_float(c->n, "max", 6.0f), 0);
    } else {
        qd_tensor *lo = qd_tensor_new(QD_DT_FLOAT, 0, NULL), *hi = qd_tensor_new(QD_DT_FLOAT, 0, NULL);
        ((float *)lo->data)[0] = 0.0f;
        ((float *)hi->data)[0] = 6.0f;
        tc_const(c, 1, lo);
        tc_const(c, 2, hi);
        if (!has_lo)
            c->in[1] = NULL, qd_node_set_input(c->n, 1, NULL);
        if (!has_hi)
            c->in[2] = NULL, qd_node_set_input(c->n, 2, NULL);
    }
    tc_output(c, 1, d);
    assert_int_equal(qd_x86_supports(c->n), 1);
    tc_run(c);
    expect_exact(c->got, c->want, "Clip");
    tc_free(c);
}

static void test_clip(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    for (int s = 0; s < N_SIZES; s++)
        for (int m = 0; m < 8; m++)
            clip_case(k_sizes[s], m & 1, (m >> 1) & 1, (m >> 2) & 1);
}

/* ---- binary ops ---- */

static const char *k_binops[] = {"Add", "Sub", "Mul", "Div"};

/* a op b into out; claimed = expected qd_x86_supports. */
static void binary_case(const char *op, int ra, const int64_t *da, int rb, const int64_t *db,
                        int ro, const int64_t *dout, int claimed)
{
    tc *c = tc_new(op, 14, 2);
    float *a = tc_input(c, 0, ra, da, -4, 4);
    tc_input(c, 1, rb, db, 0.5f, 3);
    if (qd_numel(ra, da) > 2)
        a[1] = 0.0f;
    tc_output(c, ro, dout);
    assert_int_equal(qd_x86_supports(c->n), claimed);
    tc_run(c);
    expect_exact(c->got, c->want, op);
    tc_free(c);
}

static void test_binary(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    for (int o = 0; o < 4; o++) {
        const char *op = k_binops[o];
        for (int s = 0; s < N_SIZES; s++) {
            const int64_t C = k_sizes[s], M = rnd_int(1, 9);
            int64_t mc[2] = {M, C}, c1[1] = {C}, one[1] = {1}, c2[2] = {1, C};
            /* same shape */
            binary_case(op, 2, mc, 2, mc, 2, mc, 1);
            /* scalar either side, rank 0 and [1] */
            binary_case(op, 2, mc, 0, NULL, 2, mc, 1);
            binary_case(op, 1, one, 2, mc, 2, mc, 1);
            /* a row: bias / layer scale, either side */
            binary_case(op, 2, mc, 1, c1, 2, mc, 1);
            binary_case(op, 2, c2, 2, mc, 2, mc, 1);
            /* per channel over a block: [C,1,1] vs [N,C,H,W], either side */
            int64_t H = rnd_int(1, 9), W = rnd_int(1, 21);
            int64_t nchw[4] = {rnd_int(1, 2), C, H, W}, c11[3] = {C, 1, 1};
            binary_case(op, 4, nchw, 3, c11, 4, nchw, 1);
            binary_case(op, 3, c11, 4, nchw, 4, nchw, 1);
            /* a column: [M, 1] vs [M, C] */
            int64_t m1[2] = {M, 1};
            binary_case(op, 2, mc, 2, m1, 2, mc, 1);
        }
        /* [N, C, 1, 1] vs [N, C, H, W] */
        int64_t a4[4] = {2, 3, 1, 1}, b4[4] = {2, 3, 4, 5};
        binary_case(op, 4, a4, 4, b4, 4, b4, 1);
        /* ViT / ConvNeXt sizes, parallel */
        int64_t vit[3] = {1, 197, 768}, bias[1] = {768};
        binary_case(op, 3, vit, 1, bias, 3, vit, 1);
        binary_case(op, 3, vit, 3, vit, 3, vit, 1);
        int64_t cnx[4] = {1, 96, 56, 56}, ch[3] = {96, 1, 1};
        binary_case(op, 4, cnx, 3, ch, 4, cnx, 1);
        /* not claimed: both operands broadcast, and two runs of channels */
        int64_t col[2] = {7, 1}, row[2] = {1, 9}, out[2] = {7, 9};
        binary_case(op, 2, col, 2, row, 2, out, 0);
        int64_t g[4] = {1, 3, 1, 5}, full[4] = {2, 3, 4, 5};
        binary_case(op, 4, full, 4, g, 4, full, 0);
    }
}

/* ---- Transpose ---- */

/* Float32, and the same shape in int8 (INT8 plans transpose quantized
 * tensors: passes/propagate_quantize.c), both bitwise. */
static void transpose_case(int rank, const int64_t *dims, const int64_t *perm)
{
    int64_t od[QD_MAX_RANK];
    for (int i = 0; i < rank; i++)
        od[i] = dims[perm ? perm[i] : rank - 1 - i];
    for (int s8 = 0; s8 < 2; s8++) {
        tc *c = tc_new("Transpose", 13, 1);
        if (!s8) {
            tc_input(c, 0, rank, dims, -100, 100);
            tc_output(c, rank, od);
        } else {
            qd_tensor *x = guarded_typed(c, QD_DT_INT8, rank, dims);
            int8_t *p = x->data;
            for (int64_t k = 0; k < qd_numel(rank, dims); k++)
                p[k] = (int8_t)rnd_int(-128, 127);
            qd_value_set_shape(c->iv[0], QD_DT_INT8, rank, dims);
            c->in[0] = x;
            qd_value_set_shape(c->ov, QD_DT_INT8, rank, od);
            c->want = qd_tensor_new(QD_DT_INT8, rank, od);
            c->got = guarded_typed(c, QD_DT_INT8, rank, od);
            memset(c->want->data, 0x7f, c->want->nbytes);
            memset(c->got->data, 0x7d, c->got->nbytes);
        }
        if (perm)
            assert_int_equal(qd_node_set_attr_ints(c->n, "perm", perm, (size_t)rank), 0);
        assert_int_equal(qd_x86_supports(c->n), rank >= 2 && rank <= 6);
        tc_run(c);
        if (s8)
            assert_memory_equal(c->got->data, c->want->data, c->want->nbytes);
        else
            expect_exact(c->got, c->want, "Transpose");
        tc_free(c);
    }
}

static void test_transpose(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    static const int64_t p0231[4] = {0, 2, 3, 1}, p0312[4] = {0, 3, 1, 2}, p0213[4] = {0, 2, 1, 3};
    static const int64_t p10[2] = {1, 0}, p021[3] = {0, 2, 1};
    for (int s = 0; s < N_SIZES; s++) {
        const int64_t a = k_sizes[s], b = k_sizes[rnd_int(0, N_SIZES - 1)] % 100 + 1;
        int64_t d4[4] = {rnd_int(1, 2), a % 200 + 1, rnd_int(1, 9), b};
        transpose_case(4, d4, p0231);
        transpose_case(4, d4, p0312);
        transpose_case(4, d4, p0213);
        int64_t d2[2] = {a, b};
        transpose_case(2, d2, p10);
        transpose_case(2, d2, NULL);
        int64_t d3[3] = {rnd_int(1, 3), a, b};
        transpose_case(3, d3, p021);
    }
    /* ConvNeXt: NCHW <-> NHWC; ViT heads */
    int64_t nchw[4] = {1, 96, 56, 56}, nhwc[4] = {1, 56, 56, 96}, vit[4] = {1, 197, 12, 64};
    transpose_case(4, nchw, p0231);
    transpose_case(4, nhwc, p0312);
    transpose_case(4, vit, p0213);
    /* Swin window partition (rank 6) and random ranks 5-6 with dims of 1 */
    int64_t swin[6] = {1, 8, 7, 8, 7, 96}, pw[6] = {0, 1, 3, 2, 4, 5};
    transpose_case(6, swin, pw);
    for (int t = 0; t < 60; t++) {
        int rank = rnd_int(2, 6);
        int64_t d[6], p[6];
        for (int i = 0; i < rank; i++) {
            d[i] = rnd_int(1, 3) == 1 ? 1 : rnd_int(2, 19);
            p[i] = i;
        }
        for (int i = rank - 1; i > 0; i--) {
            int j = rnd_int(0, i);
            int64_t tmp = p[i];
            p[i] = p[j];
            p[j] = tmp;
        }
        transpose_case(rank, d, p);
    }
}

/* ---- GlobalAveragePool / ReduceMean ---- */

static void reduce_case(const char *op, int64_t opset, int rank, const int64_t *dims,
                        const int64_t *axes, int n_axes, int keepdims, int axes_input,
                        int claimed)
{
    tc *c = tc_new(op, opset, axes_input ? 2 : 1);
    tc_input(c, 0, rank, dims, -1, 3);
    int64_t od[QD_MAX_RANK];
    int ro = 0;
    for (int d = 0; d < rank; d++) {
        int red = !strcmp(op, "GlobalAveragePool") ? d >= 2 : n_axes == 0;
        for (int k = 0; k < n_axes; k++)
            red |= (axes[k] < 0 ? axes[k] + rank : axes[k]) == d;
        if (!red)
            od[ro++] = dims[d];
        else if (keepdims)
            od[ro++] = 1;
    }
    if (!strcmp(op, "ReduceMean")) {
        assert_int_equal(qd_node_set_attr_int(c->n, "keepdims", keepdims), 0);
        if (axes_input) {
            int64_t na = n_axes;
            qd_tensor *t = qd_tensor_new(QD_DT_INT64, 1, &na);
            memcpy(t->data, axes, (size_t)n_axes * sizeof(int64_t));
            tc_const(c, 1, t);
        } else if (n_axes) {
            assert_int_equal(qd_node_set_attr_ints(c->n, "axes", axes, (size_t)n_axes), 0);
        }
    }
    tc_output(c, ro, od);
    assert_int_equal(qd_x86_supports(c->n), claimed);
    tc_run(c);
    expect_close(c->got, c->want, 1e-6, 1e-6, op);
    tc_free(c);
}

static void test_reduce_mean(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    static const int64_t last[1] = {-1}, hw[2] = {2, 3}, nhwc[2] = {1, 2}, tok[1] = {1};
    static const int64_t bad[2] = {1, 3};
    for (int s = 0; s < N_SIZES; s++) {
        const int64_t a = k_sizes[s];
        int64_t d4[4] = {rnd_int(1, 2), rnd_int(1, 40), rnd_int(1, 9), a % 60 + 1};
        reduce_case("GlobalAveragePool", 13, 4, d4, NULL, 0, 1, 0, 1);
        reduce_case("ReduceMean", 13, 4, d4, hw, 2, 1, 0, 1);
        reduce_case("ReduceMean", 13, 4, d4, hw, 2, 0, 0, 1);
        reduce_case("ReduceMean", 13, 4, d4, nhwc, 2, 1, 0, 1);
        reduce_case("ReduceMean", 18, 4, d4, nhwc, 2, 0, 1, 1);
        int64_t d3[3] = {rnd_int(1, 2), rnd_int(1, 50), a};
        reduce_case("ReduceMean", 13, 3, d3, last, 1, 1, 0, 1);
        reduce_case("ReduceMean", 13, 3, d3, last, 1, 0, 0, 1);
        reduce_case("ReduceMean", 13, 3, d3, tok, 1, 0, 0, 1);
        reduce_case("ReduceMean", 18, 3, d3, tok, 1, 1, 1, 1);
        reduce_case("ReduceMean", 13, 3, d3, NULL, 0, 1, 0, 1); /* all axes */
        /* axes 1 and 3 apart: not claimed unless dim 2 is 1 */
        reduce_case("ReduceMean", 13, 4, d4, bad, 2, 1, 0, d4[2] == 1 || d4[1] == 1 || d4[3] == 1);
    }
    int64_t resnet[4] = {1, 2048, 7, 7}, convnext[4] = {1, 768, 7, 7}, swin[3] = {1, 49, 768};
    reduce_case("GlobalAveragePool", 13, 4, resnet, NULL, 0, 1, 0, 1);
    reduce_case("ReduceMean", 13, 4, convnext, hw, 2, 1, 0, 1);
    reduce_case("ReduceMean", 13, 3, swin, tok, 1, 0, 0, 1);
    int64_t big[4] = {1, 64, 112, 112};
    reduce_case("GlobalAveragePool", 13, 4, big, NULL, 0, 1, 0, 1);
}

/* ---- MaxPool ---- */

static int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p0, int64_t p1, int64_t d,
                        int ceil_mode)
{
    int64_t eff = (k - 1) * d + 1, num = in + p0 + p1 - eff;
    int64_t o = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p0)
        o--;
    return o;
}

static void maxpool_case(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s,
                         int64_t p, int64_t d, int ceil_mode, int nan)
{
    tc *c = tc_new("MaxPool", 12, 1);
    int64_t x[4] = {N, C, H, W};
    float *v = tc_input(c, 0, 4, x, -10, 10);
    if (nan)
        for (int i = 0; i < 5; i++)
            v[rnd() % (uint32_t)(N * C * H * W)] = NAN;
    int64_t ks[2] = {k, k + (W > 4 ? 1 : 0)}, st[2] = {s, s}, pads[4] = {p, p, p, p > 0 ? p - 1 : 0};
    int64_t dl[2] = {d, d};
    if (pads[3] >= ks[1])
        pads[3] = ks[1] - 1;
    assert_int_equal(qd_node_set_attr_ints(c->n, "kernel_shape", ks, 2), 0);
    assert_int_equal(qd_node_set_attr_ints(c->n, "strides", st, 2), 0);
    assert_int_equal(qd_node_set_attr_ints(c->n, "pads", pads, 4), 0);
    assert_int_equal(qd_node_set_attr_ints(c->n, "dilations", dl, 2), 0);
    assert_int_equal(qd_node_set_attr_int(c->n, "ceil_mode", ceil_mode), 0);
    int64_t y[4] = {N, C, pool_out(H, ks[0], s, pads[0], pads[2], d, ceil_mode),
                    pool_out(W, ks[1], s, pads[1], pads[3], d, ceil_mode)};
    if (y[2] < 1 || y[3] < 1) {
        tc_free(c);
        return;
    }
    tc_output(c, 4, y);
    assert_int_equal(qd_x86_supports(c->n), 1);
    tc_run(c);
    expect_exact(c->got, c->want, "MaxPool");
    tc_free(c);
}

static void test_maxpool(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    /* ResNet's stem pool */
    maxpool_case(1, 64, 112, 112, 3, 2, 1, 1, 0, 0);
    maxpool_case(2, 3, 33, 47, 3, 2, 1, 1, 0, 1);
    for (int t = 0; t < 80; t++) {
        int64_t H = rnd_int(1, 40), W = rnd_int(1, 70), k = rnd_int(1, 4), s = rnd_int(1, 3);
        int64_t d = rnd_int(1, 3) == 3 ? 2 : 1, p = rnd_int(0, k - 1 < 2 ? k - 1 : 2);
        if (H < (k - 1) * d + 1 || W < k * d + 1)
            continue;
        maxpool_case(rnd_int(1, 2), rnd_int(1, 5), H, W, k, s, p, d, rnd_int(0, 1), t & 1);
    }
    /* auto_pad SAME_UPPER through the reference geometry */
    tc *c = tc_new("MaxPool", 12, 1);
    int64_t x[4] = {1, 2, 13, 29}, y[4] = {1, 2, 7, 15}, ks[2] = {3, 3}, st[2] = {2, 2};
    tc_input(c, 0, 4, x, -1, 1);
    assert_int_equal(qd_node_set_attr_ints(c->n, "kernel_shape", ks, 2), 0);
    assert_int_equal(qd_node_set_attr_ints(c->n, "strides", st, 2), 0);
    assert_int_equal(qd_node_set_attr_string(c->n, "auto_pad", "SAME_UPPER"), 0);
    tc_output(c, 4, y);
    assert_int_equal(qd_x86_supports(c->n), 1);
    tc_run(c);
    expect_exact(c->got, c->want, "MaxPool SAME_UPPER");
    tc_free(c);
}

/* ---- selector ---- */

static void test_selector(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    /* fused steps are refused */
    tc *c = tc_new("Relu", 13, 1);
    int64_t d[1] = {40};
    tc_input(c, 0, 1, d, -1, 1);
    tc_output(c, 1, d);
    qd_tensor *outs[1] = {c->got};
    const qd_node *fused[1] = {c->n};
    qd_kernel_args a = {c->n, c->g, 1, (const qd_tensor *const *)c->in, 1, outs, 1, NULL, fused, 1, NULL, 0};
    assert_int_not_equal(qd_x86_impl(c->n).run(&a), QD_OK);
    tc_free(c);
    /* unknown shapes, other dtypes, ops without a kernel here */
    c = tc_new("Relu", 13, 1);
    assert_int_equal(qd_x86_supports(c->n), 0);
    int64_t dd[2] = {3, 5};
    qd_value_set_shape(c->iv[0], QD_DT_INT32, 2, dd);
    qd_value_set_shape(c->ov, QD_DT_INT32, 2, dd);
    assert_int_equal(qd_x86_supports(c->n), 0);
    tc_free(c);
    c = tc_new("Floor", 13, 1);
    tc_input(c, 0, 2, dd, -1, 1);
    tc_output(c, 2, dd);
    assert_int_equal(qd_x86_supports(c->n), 0);
    assert_null(qd_x86_impl(c->n).run);
    tc_free(c);
}

/* ---- without AVX-512 (QD_X86_DISABLE=1 or an older CPU) ---- */

/* Nothing is claimed, and the kernels, called anyway, give the reference
 * kernel's output. */
static void fallback_case(tc *c)
{
    assert_int_equal(qd_x86_supports(c->n), 0);
    tc_run(c);
    expect_exact(c->got, c->want, c->n->op_type);
    tc_free(c);
}

static void test_fallback(void **state)
{
    (void)state;
    if (!g_skip)
        return; /* run with QD_X86_DISABLE=1 (ctest unit_test_x86_kernels_fallback) */
    int64_t d3[3] = {2, 7, 37}, last[1] = {37}, d4[4] = {2, 3, 17, 19};
    static const char *unary[] = {"Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Gelu"};
    for (int k = 0; k < 6; k++) {
        tc *c = tc_new(unary[k], 20, 1);
        tc_input(c, 0, 3, d3, -3, 3);
        tc_output(c, 3, d3);
        fallback_case(c);
    }
    tc *c = tc_new("LayerNormalization", 17, 3);
    tc_input(c, 0, 3, d3, -3, 3);
    tc_input(c, 1, 1, last, -1, 1);
    tc_input(c, 2, 1, last, -1, 1);
    tc_output(c, 3, d3);
    fallback_case(c);
    c = tc_new("Softmax", 13, 1);
    tc_input(c, 0, 3, d3, -3, 3);
    tc_output(c, 3, d3);
    fallback_case(c);
    c = tc_new("Add", 14, 2);
    tc_input(c, 0, 3, d3, -3, 3);
    tc_input(c, 1, 1, last, -3, 3);
    tc_output(c, 3, d3);
    fallback_case(c);
    c = tc_new("Transpose", 13, 1);
    tc_input(c, 0, 3, d3, -3, 3);
    int64_t perm[3] = {0, 2, 1}, td[3] = {2, 37, 7};
    assert_int_equal(qd_node_set_attr_ints(c->n, "perm", perm, 3), 0);
    tc_output(c, 3, td);
    fallback_case(c);
    c = tc_new("GlobalAveragePool", 13, 1);
    tc_input(c, 0, 4, d4, -3, 3);
    int64_t gd[4] = {2, 3, 1, 1};
    tc_output(c, 4, gd);
    fallback_case(c);
    c = tc_new("MaxPool", 12, 1);
    tc_input(c, 0, 4, d4, -3, 3);
    int64_t ks[2] = {3, 3}, st[2] = {2, 2}, md[4] = {2, 3, 8, 9};
    assert_int_equal(qd_node_set_attr_ints(c->n, "kernel_shape", ks, 2), 0);
    assert_int_equal(qd_node_set_attr_ints(c->n, "strides", st, 2), 0);
    tc_output(c, 4, md);
    fallback_case(c);
}

int main(void)
{
    g_skip = !qd_x86_cpu_avx512();
    if (g_skip)
        printf("test_x86_kernels: no AVX-512F/DQ/BW/VL (or QD_X86_DISABLE set): only the "
               "fallback to the reference kernels is tested\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),  cmocka_unit_test(test_layernorm_not_claimed),
        cmocka_unit_test(test_softmax),    cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_math_accuracy), cmocka_unit_test(test_unary),
        cmocka_unit_test(test_clip),       cmocka_unit_test(test_binary),
        cmocka_unit_test(test_transpose),  cmocka_unit_test(test_reduce_mean),
        cmocka_unit_test(test_maxpool),    cmocka_unit_test(test_selector),
        cmocka_unit_test(test_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
