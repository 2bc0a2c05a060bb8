/* The oneDNN float32 kernels (Conv, MatMul, Gemm, fused post-ops) against
 * naive formulas in double precision, on random shapes; and the selector
 * API (supports / fusable).
 *
 * Environment: QD_TEST_FILTER=<test name pattern>, QD_TEST_VERBOSE=1 (print
 * each case before it runs), QD_TEST_KEEP_GOING=1 (report every mismatch
 * instead of stopping at the first). ONEDNN_VERBOSE=1 shows the chosen
 * implementations. */
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

#include "engine/kernels/dnnl/dnnl_kernels.h"
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
static float rnd_float(void) { return (float)((double)(rnd() % 2000001) / 1000000.0 - 1.0); }

static int g_bf16_data; /* random data exactly representable in bfloat16 */

/* m/256 for an integer |m| <= 256: at most 8 significant bits, so exactly
 * a bfloat16 value. (Arithmetic, not bit masking: Debian's GCC 12 -O2
 * dropped a float->bits->mask->float round trip here.) */
static float rnd_bf16(void) { return (float)((int)(rnd() % 513) - 256) / 256.0f; }

static void fill(qd_tensor *t)
{
    float *p = t->data;
    for (int64_t i = 0; i < qd_numel(t->rank, t->dims); i++)
        p[i] = g_bf16_data ? rnd_bf16() : rnd_float();
}

/* ---- building nodes ---- */

static qd_value *value(qd_graph *g, int rank, const int64_t *dims)
{
    qd_value *v = qd_graph_new_value(g, NULL, "v");
    assert_non_null(v);
    qd_value_set_shape(v, QD_DT_FLOAT, rank, dims);
    return v;
}

/* A value with random float data; constant when konst, else the tensor is
 * returned in *data (caller deletes). */
static qd_value *data_value(qd_graph *g, int rank, const int64_t *dims, int konst, qd_tensor **data)
{
    qd_value *v = value(g, rank, dims);
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, rank, dims);
    assert_non_null(t);
    fill(t);
    if (konst) {
        qd_value_set_const(v, t);
        *data = v->konst;
    } else {
        *data = t;
    }
    return v;
}

/* ---- running a step ---- */

typedef struct step {
    const qd_tensor *in[16];
    int n_in;
    qd_tensor *out;
    const qd_node *fused[8];
    int n_fused;
} step;

static const char *g_last_impl;
/* test_bf16_random: the kernels compute in bfloat16 (engine option
 * high_precision_bf16), checked with a looser tolerance. */
static int g_bf16;
static int g_bf16_steps, g_bf16_named; /* constant-weight steps; of them on a "bf16" impl */
static double g_tol = 1e-4;
static int g_verbose; /* QD_TEST_VERBOSE: print each case before it runs */

/* prepare + run + release through the impl; returns the status of the
 * first failing call. */
static int g_single_run; /* run once (in-place residual tests) */

static qd_status run_step(qd_graph *g, const qd_node *n, step *s)
{
    qd_kernel_impl impl = qd_dnnl_impl(n);
    assert_string_equal(impl.name, "dnnl");
    qd_tensor *outs[1] = {s->out};
    qd_kernel_args a = {n, g, s->n_in, s->in, 1, outs, 2, NULL, s->fused, s->n_fused, NULL, g_bf16};
    void *state = NULL;
    qd_status st = impl.prepare(&a, &state);
    if (st != QD_OK)
        return st;
    g_last_impl = qd_dnnl_state_impl(state);
    if (g_bf16 && n->inputs[1]->konst) {
        g_bf16_steps++;
        g_bf16_named += strstr(g_last_impl, "bf16") != NULL;
        if (g_verbose)
            fprintf(stderr, "bf16 step on %s\n", g_last_impl);
    }
    a.state = state;
    st = impl.run(&a);
    if (st == QD_OK && !g_single_run) /* twice: the state is reusable */
        st = impl.run(&a);
    impl.release(state);
    return st;
}

/* max |got - want| <= g_tol * max(1, max |want|) */
static void check_close(const float *got, const double *want, int64_t count, const char *what)
{
    double maxabs = 1, maxdiff = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < count; i++) {
        if (fabs(want[i]) > maxabs)
            maxabs = fabs(want[i]);
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= maxdiff)) {
            maxdiff = d;
            at = i;
        }
    }
    if (!(maxdiff <= g_tol * maxabs)) {
        fprintf(stderr, "%s: max diff %g at %lld (got %g want %g), magnitude %g\n", what, maxdiff,
                (long long)at, (double)got[at], want[at], maxabs);
        if (!getenv("QD_TEST_KEEP_GOING"))
            fail();
    }
}

/* ---- the fused tail, applied to a reference in double ---- */

typedef enum act {
    ACT_NONE,
    ACT_RELU,
    ACT_LEAKY,
    ACT_ELU,
    ACT_SIGMOID,
    ACT_TANH,
    ACT_HSIGMOID,
    ACT_HSWISH,
    ACT_CLIP6,
    ACT_CLIP_ATTR,
    ACT_LEAKY2, /* a second LeakyRelu slope: clashes with ACT_LEAKY in oneDNN */
    ACT_COUNT
} act;

static const char *act_op(act k)
{
    static const char *names[] = {"",        "Relu", "LeakyRelu",   "Elu",
                                  "Sigmoid", "Tanh", "HardSigmoid", "HardSwish",
                                  "Clip",    "Clip", "LeakyRelu"};
    return names[k];
}

static double act_apply(act k, double x)
{
    switch (k) {
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_LEAKY: return x > 0 ? x : 0.1 * x;
    case ACT_ELU: return x > 0 ? x : 0.7 * (exp(x) - 1);
    case ACT_SIGMOID: return 1 / (1 + exp(-x));
    case ACT_TANH: return tanh(x);
    case ACT_HSIGMOID: return fmax(0, fmin(1, 0.25 * x + 0.4));
    case ACT_HSWISH: return x * fmax(0, fmin(1, x / 6 + 0.5));
    case ACT_CLIP6: return fmin(6, fmax(0, x));
    case ACT_CLIP_ATTR: return fmin(0.5, fmax(-0.5, x));
    case ACT_LEAKY2: return x > 0 ? x : 0.3 * x;
    default: return x;
    }
}

/* Appends activation k after value *cur (shape y); updates *cur. */
static qd_node *add_act(qd_graph *g, act k, qd_value **cur)
{
    qd_value *out = value(g, (*cur)->rank, (*cur)->dims);
    qd_value *ins[3] = {*cur, NULL, NULL};
    int n_in = 1;
    if (k == ACT_CLIP6) {
        int64_t one = 1;
        qd_tensor *lo = qd_tensor_new(QD_DT_FLOAT, 0, &one),
                  *hi = qd_tensor_new(QD_DT_FLOAT, 0, &one);
        ((float *)lo->data)[0] = 0;
        ((float *)hi->data)[0] = 6;
        ins[1] = value(g, 0, NULL);
        ins[2] = value(g, 0, NULL);
        qd_value_set_const(ins[1], lo);
        qd_value_set_const(ins[2], hi);
        n_in = 3;
    }
    qd_node *n = qd_graph_add_node(g, act_op(k), "", NULL, ins, n_in, &out, 1);
    assert_non_null(n);
    if (k == ACT_LEAKY)
        qd_node_set_attr_float(n, "alpha", 0.1f);
    if (k == ACT_LEAKY2)
        qd_node_set_attr_float(n, "alpha", 0.3f);
    if (k == ACT_ELU)
        qd_node_set_attr_float(n, "alpha", 0.7f);
    if (k == ACT_HSIGMOID) {
        qd_node_set_attr_float(n, "alpha", 0.25f);
        qd_node_set_attr_float(n, "beta", 0.4f);
    }
    if (k == ACT_CLIP_ATTR) {
        qd_node_set_attr_float(n, "min", -0.5f);
        qd_node_set_attr_float(n, "max", 0.5f);
    }
    *cur = out;
    return n;
}

/* Appends Add(cur, r) (or Add(r, cur)); r gets random data of shape
 * (rank, dims) returned in *rt. */
static qd_node *add_residual(qd_graph *g, qd_value **cur, int rank, const int64_t *dims,
                             qd_tensor **rt)
{
    qd_value *r = data_value(g, rank, dims, 0, rt);
    qd_value *out = value(g, (*cur)->rank, (*cur)->dims);
    qd_value *ins[2] = {*cur, r};
    if (rnd() & 1) {
        ins[0] = r;
        ins[1] = *cur;
    }
    qd_node *n = qd_graph_add_node(g, "Add", "", NULL, ins, 2, &out, 1);
    assert_non_null(n);
    *cur = out;
    return n;
}

/* A fused tail description: act1, then optional residual (full or per
 * channel), then act2. */
typedef struct tail {
    act pre, post;
    int residual; /* 0 none, 1 full shape, 2 per channel */
} tail;

typedef struct tail_run {
    qd_value *last;
    qd_tensor *res;
    int64_t res_dims[QD_MAX_RANK];
    int res_rank;
} tail_run;

/* Builds the tail's nodes after value y of the anchor; registers them in s
 * and the residual tensor as an extra input. chan_axis: the axis a per
 * channel operand varies on. */
static void build_tail(qd_graph *g, const qd_node *anchor, const tail *t, step *s, tail_run *tr,
                       int chan_axis)
{
    qd_value *cur = anchor->outputs[0];
    memset(tr, 0, sizeof *tr);
    if (t->pre != ACT_NONE)
        s->fused[s->n_fused++] = add_act(g, t->pre, &cur);
    if (t->residual) {
        tr->res_rank = cur->rank;
        for (int i = 0; i < cur->rank; i++)
            tr->res_dims[i] = t->residual == 1 || i == chan_axis ? cur->dims[i] : 1;
        qd_node *add = add_residual(g, &cur, tr->res_rank, tr->res_dims, &tr->res);
        s->fused[s->n_fused++] = add;
        s->in[s->n_in++] = tr->res;
    }
    if (t->post != ACT_NONE)
        s->fused[s->n_fused++] = add_act(g, t->post, &cur);
    tr->last = cur;
}

/* Applies the tail to ref (row-major dims of the output). */
static void apply_tail(const tail *t, const tail_run *tr, double *ref, int rank,
                       const int64_t *dims)
{
    int64_t count = qd_numel(rank, dims);
    const float *r = tr->res ? tr->res->data : NULL;
    for (int64_t i = 0; i < count; i++) {
        double v = act_apply(t->pre, ref[i]);
        if (t->residual) {
            /* index into the (broadcast) residual */
            int64_t rem = i, ri = 0, stride = 1;
            int64_t idx[QD_MAX_RANK];
            for (int d = rank - 1; d >= 0; d--) {
                idx[d] = rem % dims[d];
                rem /= dims[d];
            }
            for (int d = rank - 1; d >= 0; d--) {
                if (tr->res_dims[d] != 1)
                    ri += idx[d] * stride;
                stride *= tr->res_dims[d];
            }
            v += r[ri];
        }
        ref[i] = act_apply(t->post, v);
    }
}

static void random_tail(tail *t, int allow_residual)
{
    t->pre = t->post = ACT_NONE;
    t->residual = 0;
    switch (rnd_int(0, 5)) {
    case 0: break;
    case 1: t->pre = (act)rnd_int(1, ACT_COUNT - 1); break;
    case 2: t->residual = allow_residual ? 1 : 0; break;
    case 3:
        t->residual = allow_residual ? 1 : 0;
        t->post = ACT_RELU;
        break;
    case 4:
        t->pre = ACT_RELU;
        t->residual = allow_residual ? rnd_int(1, 2) : 0;
        break;
    default:
        t->residual = allow_residual ? 2 : 0;
        t->post = (act)rnd_int(1, ACT_COUNT - 1);
        break;
    }
}

/* ---- Conv ---- */

typedef struct conv_case {
    int k; /* spatial dims */
    int64_t n, c, m, group;
    int64_t in[3], kernel[3], stride[3], dil[3], pads[6];
    const char *auto_pad; /* NULL: NOTSET */
    int bias;
    tail t;
} conv_case;

/* Output size and begin pad of dim i; -1 if the window does not fit. */
static int64_t conv_out(const conv_case *cc, int i, int64_t *pl)
{
    int64_t eff = (cc->kernel[i] - 1) * cc->dil[i] + 1, in = cc->in[i], s = cc->stride[i];
    if (cc->auto_pad && strcmp(cc->auto_pad, "VALID") == 0) {
        *pl = 0;
        return in < eff ? -1 : (in - eff) / s + 1;
    }
    if (cc->auto_pad) {
        int64_t out = (in + s - 1) / s;
        int64_t total = (out - 1) * s + eff - in;
        if (total < 0)
            total = 0;
        *pl = strcmp(cc->auto_pad, "SAME_UPPER") == 0 ? total / 2 : total - total / 2;
        return out;
    }
    *pl = cc->pads[i];
    int64_t span = in + cc->pads[i] + cc->pads[i + cc->k] - eff;
    return span < 0 ? -1 : span / s + 1;
}

static void random_conv(conv_case *cc)
{
    for (;;) {
        memset(cc, 0, sizeof *cc);
        int r = rnd_int(0, 9);
        cc->k = r == 0 ? 1 : r == 1 ? 3 : 2;
        cc->n = rnd_int(1, 2);
        int kind = rnd_int(0, 3); /* 0 dense, 1 depthwise, 2 grouped, 3 dense */
        int64_t group = 1;
        if (kind == 1) {
            cc->c = rnd_int(1, 67);
            group = cc->c;
            cc->m = cc->c * rnd_int(1, 2);
        } else if (kind == 2) {
            group = rnd_int(2, 4);
            cc->c = group * rnd_int(1, 16);
            cc->m = group * rnd_int(1, 16);
        } else {
            cc->c = rnd_int(1, 67);
            cc->m = rnd_int(1, 67);
        }
        cc->group = group;
        static const int ks[] = {1, 3, 5, 7};
        for (int i = 0; i < cc->k; i++) {
            cc->in[i] = cc->k == 3 ? rnd_int(1, 8) : rnd_int(1, 20);
            cc->kernel[i] = ks[rnd_int(0, cc->k == 3 ? 1 : 3)];
            cc->stride[i] = rnd_int(1, 2);
            cc->dil[i] = rnd_int(1, 4) == 1 ? 2 : 1;
            cc->pads[i] = rnd_int(0, 3);
            cc->pads[i + cc->k] = rnd_int(0, 3);
        }
        switch (rnd_int(0, 7)) {
        case 0: cc->auto_pad = "SAME_UPPER"; break;
        case 1: cc->auto_pad = "SAME_LOWER"; break;
        case 2: cc->auto_pad = "VALID"; break;
        default: cc->auto_pad = NULL;
        }
        cc->bias = rnd_int(0, 1);
        random_tail(&cc->t, 1);
        int ok = 1;
        for (int i = 0; i < cc->k; i++) {
            int64_t pl;
            if (conv_out(cc, i, &pl) < 1)
                ok = 0;
        }
        if (ok)
            return;
    }
}

/* The naive convolution in double. Dims padded to 3 spatial. */
static void conv_ref(const conv_case *cc, const float *x, const float *w, const float *b,
                     const int64_t *out, double *y)
{
    int64_t in[3] = {1, 1, 1}, ker[3] = {1, 1, 1}, o[3] = {1, 1, 1}, s[3] = {1, 1, 1},
            d[3] = {1, 1, 1}, pl[3] = {0, 0, 0};
    for (int i = 0; i < cc->k; i++) {
        int j = 3 - cc->k + i;
        in[j] = cc->in[i];
        ker[j] = cc->kernel[i];
        o[j] = out[i];
        s[j] = cc->stride[i];
        d[j] = cc->dil[i];
        conv_out(cc, i, &pl[j]);
    }
    int64_t cg = cc->c / cc->group, mg = cc->m / cc->group;
    for (int64_t n = 0; n < cc->n; n++)
        for (int64_t m = 0; m < cc->m; m++) {
            int64_t grp = m / mg;
            for (int64_t o0 = 0; o0 < o[0]; o0++)
                for (int64_t o1 = 0; o1 < o[1]; o1++)
                    for (int64_t o2 = 0; o2 < o[2]; o2++) {
                        double acc = b ? b[m] : 0;
                        for (int64_t ci = 0; ci < cg; ci++)
                            for (int64_t k0 = 0; k0 < ker[0]; k0++) {
                                int64_t i0 = o0 * s[0] - pl[0] + k0 * d[0];
                                if (i0 < 0 || i0 >= in[0])
                                    continue;
                                for (int64_t k1 = 0; k1 < ker[1]; k1++) {
                                    int64_t i1 = o1 * s[1] - pl[1] + k1 * d[1];
                                    if (i1 < 0 || i1 >= in[1])
                                        continue;
                                    for (int64_t k2 = 0; k2 < ker[2]; k2++) {
                                        int64_t i2 = o2 * s[2] - pl[2] + k2 * d[2];
                                        if (i2 < 0 || i2 >= in[2])
                                            continue;
                                        int64_t c = grp * cg + ci;
                                        double xv =
                                            x[(((n * cc->c + c) * in[0] + i0) * in[1] + i1) *
                                                  in[2] +
                                              i2];
                                        double wv =
                                            w[(((m * cg + ci) * ker[0] + k0) * ker[1] + k1) *
                                                  ker[2] +
                                              k2];
                                        acc += xv * wv;
                                    }
                                }
                            }
                        y[(((n * cc->m + m) * o[0] + o0) * o[1] + o1) * o[2] + o2] = acc;
                    }
        }
}

/* NCHW <-> NHWC copies for the channels-last layout test. */
static void to_channels_last(const float *src, float *dst, int rank, const int64_t *dims, int back)
{
    int64_t n = dims[0], c = dims[1], sp = 1;
    for (int i = 2; i < rank; i++)
        sp *= dims[i];
    for (int64_t b = 0; b < n; b++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t p = 0; p < sp; p++) {
                int64_t cf = (b * c + ch) * sp + p, cl = (b * sp + p) * c + ch;
                if (back)
                    dst[cf] = src[cl];
                else
                    dst[cl] = src[cf];
            }
}

static void conv_case_run(const conv_case *cc, qd_dnnl_layout layout, const char *label)
{
    qd_graph *g = qd_graph_new();
    int rank = cc->k + 2;
    int64_t xd[5] = {cc->n, cc->c}, wd[5] = {cc->m, cc->c / cc->group}, yd[5] = {cc->n, cc->m};
    int64_t out[3];
    for (int i = 0; i < cc->k; i++) {
        int64_t pl;
        xd[2 + i] = cc->in[i];
        wd[2 + i] = cc->kernel[i];
        yd[2 + i] = out[i] = conv_out(cc, i, &pl);
    }
    qd_tensor *xt, *wt, *bt = NULL;
    qd_value *x = data_value(g, rank, xd, 0, &xt);
    qd_value *w = data_value(g, rank, wd, 1, &wt);
    qd_value *ins[3] = {x, w, NULL};
    if (cc->bias)
        ins[2] = data_value(g, 1, &cc->m, 1, &bt);
    qd_value *y = value(g, rank, yd);
    qd_node *n = qd_graph_add_node(g, "Conv", "", "conv", ins, cc->bias ? 3 : 2, &y, 1);
    assert_non_null(n);
    if (cc->group != 1)
        qd_node_set_attr_int(n, "group", cc->group);
    qd_node_set_attr_ints(n, "strides", cc->stride, (size_t)cc->k);
    qd_node_set_attr_ints(n, "dilations", cc->dil, (size_t)cc->k);
    if (cc->auto_pad)
        qd_node_set_attr_string(n, "auto_pad", cc->auto_pad);
    else if (rnd() & 1)
        qd_node_set_attr_ints(n, "pads", cc->pads, 2 * (size_t)cc->k);
    else if (cc->pads[0] || cc->pads[1] || cc->pads[2] || cc->pads[3] || cc->pads[4] || cc->pads[5])
        qd_node_set_attr_ints(n, "pads", cc->pads, 2 * (size_t)cc->k);
    if (rnd() & 1)
        qd_node_set_attr_ints(n, "kernel_shape", cc->kernel, (size_t)cc->k);
    assert_int_equal(qd_dnnl_supports(n), 1);

    step s = {.n_in = cc->bias ? 3 : 2};
    s.in[0] = xt;
    s.in[1] = wt;
    if (cc->bias)
        s.in[2] = bt;
    tail_run tr;
    build_tail(g, n, &cc->t, &s, &tr, 1);
    for (int i = 0; i < s.n_fused; i++) {
        const qd_node *f = s.fused[i];
        const qd_value *other = NULL;
        if (f->op == QD_OP_ADD)
            other = f->inputs[0]->producer ? f->inputs[1] : f->inputs[0];
        assert_int_equal(qd_dnnl_fusable(n, f, other), 1);
    }
    qd_tensor *yt = qd_tensor_new(QD_DT_FLOAT, rank, yd);
    s.out = yt;
    int64_t ycount = qd_numel(rank, yd);
    double *ref = malloc((size_t)ycount * sizeof *ref);
    conv_ref(cc, xt->data, wt->data, bt ? bt->data : NULL, out, ref);
    apply_tail(&cc->t, &tr, ref, rank, yd);

    /* Channels-last: hand the kernel transposed copies. */
    qd_tensor *xcl = NULL, *rcl = NULL, *ycl = NULL;
    if (layout == QD_DNNL_NHWC) {
        xcl = qd_tensor_clone(xt);
        to_channels_last(xt->data, xcl->data, rank, xd, 0);
        s.in[0] = xcl;
        if (tr.res && cc->t.residual == 1) {
            rcl = qd_tensor_clone(tr.res);
            to_channels_last(tr.res->data, rcl->data, rank, yd, 0);
            s.in[s.n_in - 1] = rcl;
        }
        ycl = qd_tensor_new(QD_DT_FLOAT, rank, yd);
        s.out = ycl;
    }
    char what[256];
    snprintf(what, sizeof what,
             "%s conv k%d n%lld c%lld m%lld g%lld in %lldx%lld ker %lldx%lld s %lldx%lld d "
             "%lldx%lld pad %s bias %d tail %d/%d/%d",
             label, cc->k, (long long)cc->n, (long long)cc->c, (long long)cc->m,
             (long long)cc->group, (long long)cc->in[0], (long long)cc->in[1],
             (long long)cc->kernel[0], (long long)cc->kernel[1], (long long)cc->stride[0],
             (long long)cc->stride[1], (long long)cc->dil[0], (long long)cc->dil[1],
             cc->auto_pad ? cc->auto_pad : "explicit", cc->bias, cc->t.pre, cc->t.residual,
             cc->t.post);
    if (g_verbose)
        fprintf(stderr, "%s\n", what);
    qd_dnnl_set_activation_layout(layout);
    qd_status st = run_step(g, n, &s);
    qd_dnnl_set_activation_layout(QD_DNNL_NCHW);
    if (st != QD_OK)
        fprintf(stderr, "%s: %s\n", label, qd_graph_error(g));
    assert_int_equal(st, QD_OK);
    if (layout == QD_DNNL_NHWC)
        to_channels_last(ycl->data, yt->data, rank, yd, 1);
    size_t wl = strlen(what);
    snprintf(what + wl, sizeof what - wl, " [%s]", g_last_impl ? g_last_impl : "?");
    check_close(yt->data, ref, ycount, what);
    free(ref);
    qd_tensor_delete(xt);
    qd_tensor_delete(yt);
    qd_tensor_delete(tr.res);
    qd_tensor_delete(xcl);
    qd_tensor_delete(rcl);
    qd_tensor_delete(ycl);
    qd_graph_delete(g);
}

static void test_conv_random(void **state)
{
    (void)state;
    g_rng = 0x1234567ull;
    for (int i = 0; i < 160; i++) {
        conv_case cc;
        random_conv(&cc);
        qd_dnnl_set_conv_policy((qd_dnnl_conv_policy)(i % 3));
        char label[32];
        snprintf(label, sizeof label, "#%d policy %d", i, i % 3);
        conv_case_run(&cc, QD_DNNL_NCHW, label);
    }
    qd_dnnl_set_conv_policy(QD_DNNL_CONV_AUTO);
}

static void test_conv_random_channels_last(void **state)
{
    (void)state;
    g_rng = 0xabcdefull;
    for (int i = 0; i < 60; i++) {
        conv_case cc;
        random_conv(&cc);
        char label[32];
        snprintf(label, sizeof label, "#%d nhwc", i);
        conv_case_run(&cc, QD_DNNL_NHWC, label);
    }
}

/* 3x3 stride-1 convs of 64+ channels run on oneDNN's Winograd kernels
 * (conv2d_f32_dnnl.c): same results within the tolerance, with every
 * tail, in both activation layouts. They take Relu and a full residual
 * (sum) as post-ops; with another activation or a broadcast operand
 * (residual kind 2, a binary post-op) the conv may run direct. */
static void test_conv_winograd(void **state)
{
    (void)state;
    g_rng = 0x3141592ull;
    for (int i = 0; i < 24; i++) {
        conv_case cc;
        memset(&cc, 0, sizeof cc);
        cc.k = 2;
        cc.n = rnd_int(1, 2);
        cc.c = rnd_int(64, 96);
        cc.m = rnd_int(64, 96);
        cc.group = 1;
        for (int d = 0; d < 2; d++) {
            cc.in[d] = rnd_int(5, 16);
            cc.kernel[d] = 3;
            cc.stride[d] = cc.dil[d] = 1;
            cc.pads[d] = cc.pads[d + 2] = 1;
        }
        cc.bias = rnd_int(0, 1);
        random_tail(&cc.t, 1);
        char label[32];
        snprintf(label, sizeof label, "#%d winograd", i);
        conv_case_run(&cc, i % 2 ? QD_DNNL_NHWC : QD_DNNL_NCHW, label);
        assert_non_null(g_last_impl);
        if (cc.t.residual == 2 || cc.t.pre > ACT_RELU || cc.t.post > ACT_RELU)
            continue;
        if (!strstr(g_last_impl, "wino"))
            fprintf(stderr, "%s: ran on %s, not a Winograd kernel\n", label, g_last_impl);
        assert_non_null(strstr(g_last_impl, "wino"));
    }
}

/* Every activation, each with a full residual, on a ResNet-like conv; and
 * the implementation is a fast one (no reference, no im2col gemm). */
static void test_conv_fused_each(void **state)
{
    (void)state;
    g_rng = 0x77ull;
    for (int k = ACT_RELU; k < ACT_COUNT; k++) {
        for (int res = 0; res <= 2; res++) {
            conv_case cc = {.k = 2, .n = 1, .c = 32, .m = 48, .group = 1, .bias = 1};
            cc.in[0] = cc.in[1] = 12;
            cc.kernel[0] = cc.kernel[1] = 3;
            cc.stride[0] = cc.stride[1] = 1;
            cc.dil[0] = cc.dil[1] = 1;
            cc.pads[0] = cc.pads[1] = cc.pads[2] = cc.pads[3] = 1;
            cc.t.pre = (act)k;
            cc.t.residual = res;
            cc.t.post = res ? ACT_RELU : ACT_NONE;
            conv_case_run(&cc, QD_DNNL_NCHW, act_op((act)k));
            assert_null(strstr(g_last_impl, "ref"));
            assert_null(strstr(g_last_impl, "gemm"));
            conv_case_run(&cc, QD_DNNL_NHWC, act_op((act)k));
            assert_null(strstr(g_last_impl, "ref"));
            assert_null(strstr(g_last_impl, "gemm"));
        }
    }
}

/* ---- MatMul ---- */

static void matmul_ref(int ra, const int64_t *ad, int rb, const int64_t *bd, const float *A,
                       const float *B, int ry, const int64_t *yd, double *y)
{
    /* Expand to rank r with ONNX rules. */
    int r = ra < 2 ? 2 : ra;
    if ((rb < 2 ? 2 : rb) > r)
        r = rb < 2 ? 2 : rb;
    int64_t a[16], b[16];
    for (int i = 0; i < r; i++)
        a[i] = b[i] = 1;
    if (ra == 1)
        a[r - 1] = ad[0];
    else
        for (int i = 0; i < ra; i++)
            a[r - ra + i] = ad[i];
    if (rb == 1)
        b[r - 2] = bd[0];
    else
        for (int i = 0; i < rb; i++)
            b[r - rb + i] = bd[i];
    int64_t M = a[r - 2], K = a[r - 1], N = b[r - 1], batch = 1, bdims[16];
    for (int i = 0; i < r - 2; i++) {
        bdims[i] = a[i] > b[i] ? a[i] : b[i];
        batch *= bdims[i];
    }
    (void)ry;
    (void)yd;
    for (int64_t bi = 0; bi < batch; bi++) {
        int64_t rem = bi, ao = 0, bo = 0, as = M * K, bs = K * N;
        for (int i = r - 3; i >= 0; i--) {
            int64_t idx = rem % bdims[i];
            rem /= bdims[i];
            if (a[i] != 1)
                ao += idx * as;
            if (b[i] != 1)
                bo += idx * bs;
            as *= a[i];
            bs *= b[i];
        }
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += (double)A[ao + m * K + k] * B[bo + k * N + n];
                y[(bi * M + m) * N + n] = acc;
            }
    }
}

static void test_matmul_random(void **state)
{
    (void)state;
    g_rng = 0xfeedull;
    for (int it = 0; it < 150; it++) {
        int ra = rnd_int(1, 4), rb = rnd_int(1, 4);
        if (it < 20) /* plenty of plain 2-D */
            ra = rb = 2;
        int64_t M = rnd_int(1, 40), K = rnd_int(1, 70), N = rnd_int(1, 70);
        int64_t ad[4], bd[4], yd[6];
        int r = (ra < 2 ? 2 : ra) > (rb < 2 ? 2 : rb) ? (ra < 2 ? 2 : ra) : (rb < 2 ? 2 : rb);
        int64_t batch[4];
        for (int i = 0; i < 4; i++)
            batch[i] = rnd_int(1, 3);
        if (ra == 1) {
            ad[0] = K;
        } else {
            for (int i = 0; i < ra - 2; i++)
                ad[i] = (rnd() & 1) ? batch[r - ra + i] : 1;
            ad[ra - 2] = M;
            ad[ra - 1] = K;
        }
        if (rb == 1) {
            bd[0] = K;
        } else {
            for (int i = 0; i < rb - 2; i++)
                bd[i] = (rnd() & 1) ? batch[r - rb + i] : 1;
            bd[rb - 2] = K;
            bd[rb - 1] = N;
        }
        /* ONNX output shape */
        int ry = 0;
        for (int i = 0; i < r - 2; i++) {
            int64_t da = i - (r - ra) >= 0 && ra > 1 ? ad[i - (r - ra)] : 1;
            int64_t db = i - (r - rb) >= 0 && rb > 1 ? bd[i - (r - rb)] : 1;
            yd[ry++] = da > db ? da : db;
        }
        if (ra > 1)
            yd[ry++] = M;
        if (rb > 1)
            yd[ry++] = N;
        int b_const = rnd() & 1;
        qd_graph *g = qd_graph_new();
        qd_tensor *at, *bt;
        qd_value *A = data_value(g, ra, ad, 0, &at);
        qd_value *B = data_value(g, rb, bd, b_const, &bt);
        qd_value *Y = value(g, ry, yd);
        qd_value *ins[2] = {A, B};
        qd_node *n = qd_graph_add_node(g, "MatMul", "", "mm", ins, 2, &Y, 1);
        if (g_verbose) {
            char sa[64], sb[64], sy[64];
            fprintf(stderr, "matmul #%d %s x %s -> %s bconst %d\n", it,
                    qd_value_shape_str(A, sa, sizeof sa), qd_value_shape_str(B, sb, sizeof sb),
                    qd_value_shape_str(Y, sy, sizeof sy), b_const);
        }
        assert_int_equal(qd_dnnl_supports(n), 1);
        step s = {.n_in = 2};
        s.in[0] = at;
        s.in[1] = bt;
        tail t;
        random_tail(&t, 1);
        if (t.residual == 2 && (ra < 2 || rb < 2))
            t.residual = 1;
        tail_run tr;
        build_tail(g, n, &t, &s, &tr, ry - 1);
        for (int i = 0; i < s.n_fused; i++) {
            const qd_node *f = s.fused[i];
            const qd_value *other = NULL;
            if (f->op == QD_OP_ADD)
                other = f->inputs[0]->producer ? f->inputs[1] : f->inputs[0];
            assert_int_equal(qd_dnnl_fusable(n, f, other), 1);
        }
        qd_tensor *yt = qd_tensor_new(QD_DT_FLOAT, ry, yd);
        s.out = yt;
        int64_t cnt = qd_numel(ry, yd);
        double *ref = malloc((size_t)(cnt ? cnt : 1) * sizeof *ref);
        matmul_ref(ra, ad, rb, bd, at->data, bt->data, ry, yd, ref);
        apply_tail(&t, &tr, ref, ry, yd);
        qd_status st = run_step(g, n, &s);
        if (st != QD_OK)
            fprintf(stderr, "matmul #%d: %s\n", it, qd_graph_error(g));
        assert_int_equal(st, QD_OK);
        char what[200];
        snprintf(what, sizeof what, "matmul #%d ra %d rb %d M %lld K %lld N %lld const %d [%s]", it,
                 ra, rb, (long long)M, (long long)K, (long long)N, b_const, g_last_impl);
        check_close(yt->data, ref, cnt, what);
        free(ref);
        qd_tensor_delete(at);
        if (!b_const)
            qd_tensor_delete(bt);
        qd_tensor_delete(yt);
        qd_tensor_delete(tr.res);
        qd_graph_delete(g);
    }
}

/* ---- Gemm ---- */

static void test_gemm_random(void **state)
{
    (void)state;
    g_rng = 0xbeefull;
    for (int it = 0; it < 150; it++) {
        int64_t M = rnd_int(1, 40), K = rnd_int(1, 70), N = rnd_int(1, 70);
        int ta = rnd() & 1, tb = rnd() & 1;
        float alpha = (rnd() & 1) ? 1.0f : 0.5f + (float)rnd_int(0, 10) / 10;
        float beta = (rnd() & 1) ? 1.0f : (float)rnd_int(0, 10) / 5;
        int c_kind = rnd_int(0, 5); /* none, [N], [1,N], [M,N], [M,1], scalar */
        int b_const = rnd() & 1, c_const = rnd() & 1;
        int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N};
        int64_t yd[2] = {M, N}, cd[2];
        int cr = 0;
        switch (c_kind) {
        case 1:
            cr = 1;
            cd[0] = N;
            break;
        case 2:
            cr = 2;
            cd[0] = 1;
            cd[1] = N;
            break;
        case 3:
            cr = 2;
            cd[0] = M;
            cd[1] = N;
            break;
        case 4:
            cr = 2;
            cd[0] = M;
            cd[1] = 1;
            break;
        case 5: cr = 0; break;
        default: break;
        }
        qd_graph *g = qd_graph_new();
        qd_tensor *at, *bt, *ct = NULL;
        qd_value *A = data_value(g, 2, ad, 0, &at);
        qd_value *B = data_value(g, 2, bd, b_const, &bt);
        qd_value *ins[3] = {A, B, NULL};
        if (c_kind)
            ins[2] = data_value(g, cr, cd, c_const, &ct);
        qd_value *Y = value(g, 2, yd);
        qd_node *n = qd_graph_add_node(g, "Gemm", "", "gemm", ins, c_kind ? 3 : 2, &Y, 1);
        if (ta)
            qd_node_set_attr_int(n, "transA", 1);
        if (tb)
            qd_node_set_attr_int(n, "transB", 1);
        if (alpha != 1.0f)
            qd_node_set_attr_float(n, "alpha", alpha);
        if (beta != 1.0f)
            qd_node_set_attr_float(n, "beta", beta);
        assert_int_equal(qd_dnnl_supports(n), 1);
        step s = {.n_in = c_kind ? 3 : 2};
        s.in[0] = at;
        s.in[1] = bt;
        s.in[2] = ct;
        tail t;
        random_tail(&t, 1);
        tail_run tr;
        build_tail(g, n, &t, &s, &tr, 1);
        qd_tensor *yt = qd_tensor_new(QD_DT_FLOAT, 2, yd);
        s.out = yt;
        double *ref = malloc((size_t)(M * N) * sizeof *ref);
        const float *a = at->data, *b = bt->data, *c = ct ? ct->data : NULL;
        for (int64_t m = 0; m < M; m++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += (double)a[ta ? k * M + m : m * K + k] * b[tb ? j * K + k : k * N + j];
                acc *= alpha;
                if (c) {
                    double cv = cr == 0   ? c[0]
                                : cr == 1 ? c[j]
                                          : c[(cd[0] == 1 ? 0 : m) * cd[1] + (cd[1] == 1 ? 0 : j)];
                    acc += beta * cv;
                }
                ref[m * N + j] = acc;
            }
        apply_tail(&t, &tr, ref, 2, yd);
        qd_status st = run_step(g, n, &s);
        if (st != QD_OK)
            fprintf(stderr, "gemm #%d: %s\n", it, qd_graph_error(g));
        assert_int_equal(st, QD_OK);
        char what[200];
        snprintf(what, sizeof what,
                 "gemm #%d M %lld K %lld N %lld ta %d tb %d alpha %g beta %g C %d bconst %d "
                 "cconst %d [%s]",
                 it, (long long)M, (long long)K, (long long)N, ta, tb, (double)alpha, (double)beta,
                 c_kind, b_const, c_const, g_last_impl);
        check_close(yt->data, ref, M * N, what);
        free(ref);
        qd_tensor_delete(at);
        if (!b_const)
            qd_tensor_delete(bt);
        if (ct && !c_const)
            qd_tensor_delete(ct);
        qd_tensor_delete(yt);
        qd_tensor_delete(tr.res);
        qd_graph_delete(g);
    }
}

/* ---- chains oneDNN cannot take whole: the tail after the primitive ---- */


/* bfloat16 (the engine's high_precision_bf16): the random conv (both
 * layouts), matmul and gemm cases again, computed in bf16 wherever the
 * weight is constant: mostly on kernels named bf16 (oneDNN's gemm-based
 * conv, which some shapes get, has no bf16 in its name). The data are
 * bf16 values, so converting them loses nothing and the products
 * accumulated in float32 hold nearly the float tolerance; only Gemm's alpha
 * folded into the weights rounds them (2^-9 relative each). */
static void test_bf16_random(void **state)
{
    if (!qd_dnnl_has_bf16()) {
        fprintf(stderr, "this CPU has no AVX512-BF16: bfloat16 kernels not tested\n");
        skip();
    }
    g_bf16 = g_bf16_data = 1;
    g_tol = 1e-3;
    g_bf16_steps = g_bf16_named = 0;
    test_conv_random(state);
    test_conv_random_channels_last(state);
    test_matmul_random(state);
    test_gemm_random(state);
    g_bf16 = g_bf16_data = 0;
    g_tol = 1e-4;
    fprintf(stderr, "bf16: %d of %d constant-weight steps on a kernel named bf16\n", g_bf16_named,
            g_bf16_steps);
    assert_true(g_bf16_steps > 200);
    assert_true(g_bf16_named * 4 >= g_bf16_steps * 3);
}

/* A fixed 3x3 conv x[1,16,9,9] -> y[1,24,9,9] with bias, built in g. */
typedef struct fixed_conv {
    qd_node *conv;
    qd_tensor *xt, *wt, *bt;
    int64_t yd[4];
    double *ref; /* the plain conv output */
} fixed_conv;

static void fixed_conv_build(qd_graph *g, fixed_conv *fc)
{
    conv_case cc = {.k = 2, .n = 1, .c = 16, .m = 24, .group = 1, .bias = 1};
    cc.in[0] = cc.in[1] = 9;
    cc.kernel[0] = cc.kernel[1] = 3;
    cc.stride[0] = cc.stride[1] = cc.dil[0] = cc.dil[1] = 1;
    cc.pads[0] = cc.pads[1] = cc.pads[2] = cc.pads[3] = 1;
    int64_t xd[4] = {1, 16, 9, 9}, wd[4] = {24, 16, 3, 3}, bd = 24;
    memcpy(fc->yd, (int64_t[]){1, 24, 9, 9}, sizeof fc->yd);
    qd_value *ins[3];
    ins[0] = data_value(g, 4, xd, 0, &fc->xt);
    ins[1] = data_value(g, 4, wd, 1, &fc->wt);
    ins[2] = data_value(g, 1, &bd, 1, &fc->bt);
    qd_value *y = value(g, 4, fc->yd);
    fc->conv = qd_graph_add_node(g, "Conv", "", "conv", ins, 3, &y, 1);
    qd_node_set_attr_ints(fc->conv, "pads", cc.pads, 4);
    fc->ref = malloc(24 * 81 * sizeof *fc->ref);
    int64_t out[2] = {9, 9};
    conv_ref(&cc, fc->xt->data, fc->wt->data, fc->bt->data, out, fc->ref);
}

static void test_conv_tail_fallbacks(void **state)
{
    (void)state;
    g_rng = 0x4242ull;
    for (int policy = 0; policy < 3; policy++) {
        for (int layout = 0; layout < 2; layout++) {
            /* LeakyRelu(0.1) -> Add(r1) -> Add(r2) -> LeakyRelu(0.3): the
             * second slope clashes with the first and the second residual
             * has no second `sum`; both run in the tail. */
            qd_graph *g = qd_graph_new();
            fixed_conv fc;
            fixed_conv_build(g, &fc);
            step s = {.n_in = 3};
            s.in[0] = fc.xt;
            s.in[1] = fc.wt;
            s.in[2] = fc.bt;
            qd_value *cur = fc.conv->outputs[0];
            qd_tensor *r1, *r2;
            s.fused[s.n_fused++] = add_act(g, ACT_LEAKY, &cur);
            s.fused[s.n_fused++] = add_residual(g, &cur, 4, fc.yd, &r1);
            s.in[s.n_in++] = r1;
            s.fused[s.n_fused++] = add_residual(g, &cur, 4, fc.yd, &r2);
            s.in[s.n_in++] = r2;
            s.fused[s.n_fused++] = add_act(g, ACT_LEAKY2, &cur);
            for (int i = 0; i < s.n_fused; i++)
                assert_int_equal(
                    qd_dnnl_fusable(fc.conv, s.fused[i],
                                    s.fused[i]->op == QD_OP_ADD
                                        ? (s.fused[i]->inputs[0]->producer ? s.fused[i]->inputs[1]
                                                                           : s.fused[i]->inputs[0])
                                        : NULL),
                    1);
            const float *p1 = r1->data, *p2 = r2->data;
            for (int i = 0; i < 24 * 81; i++)
                fc.ref[i] = act_apply(ACT_LEAKY2, act_apply(ACT_LEAKY, fc.ref[i]) + p1[i] + p2[i]);
            qd_tensor *yt = qd_tensor_new(QD_DT_FLOAT, 4, fc.yd);
            qd_tensor *r1cl = NULL, *r2cl = NULL, *xcl = NULL, *ycl = NULL;
            s.out = yt;
            if (layout) {
                xcl = qd_tensor_clone(fc.xt);
                r1cl = qd_tensor_clone(r1);
                r2cl = qd_tensor_clone(r2);
                ycl = qd_tensor_clone(yt);
                to_channels_last(fc.xt->data, xcl->data, 4, fc.xt->dims, 0);
                to_channels_last(r1->data, r1cl->data, 4, fc.yd, 0);
                to_channels_last(r2->data, r2cl->data, 4, fc.yd, 0);
                s.in[0] = xcl;
                s.in[3] = r1cl;
                s.in[4] = r2cl;
                s.out = ycl;
            }
            qd_dnnl_set_conv_policy((qd_dnnl_conv_policy)policy);
            qd_dnnl_set_activation_layout(layout ? QD_DNNL_NHWC : QD_DNNL_NCHW);
            qd_status st = run_step(g, fc.conv, &s);
            qd_dnnl_set_activation_layout(QD_DNNL_NCHW);
            qd_dnnl_set_conv_policy(QD_DNNL_CONV_AUTO);
            if (st != QD_OK)
                fprintf(stderr, "%s\n", qd_graph_error(g));
            assert_int_equal(st, QD_OK);
            if (layout)
                to_channels_last(ycl->data, yt->data, 4, fc.yd, 1);
            char what[96];
            snprintf(what, sizeof what, "tail policy %d layout %d [%s]", policy, layout,
                     g_last_impl);
            check_close(yt->data, fc.ref, 24 * 81, what);
            free(fc.ref);
            qd_tensor_delete(fc.xt);
            qd_tensor_delete(r1);
            qd_tensor_delete(r2);
            qd_tensor_delete(yt);
            qd_tensor_delete(xcl);
            qd_tensor_delete(r1cl);
            qd_tensor_delete(r2cl);
            qd_tensor_delete(ycl);
            qd_graph_delete(g);
        }
    }
}

/* The conv writes into the residual's own buffer (what an engine that
 * plans the output in place of a dying residual gets): no copy, same
 * result. */
static void test_conv_residual_in_place(void **state)
{
    (void)state;
    g_rng = 0x99ull;
    for (int layout = 0; layout < 2; layout++) {
        qd_graph *g = qd_graph_new();
        fixed_conv fc;
        fixed_conv_build(g, &fc);
        step s = {.n_in = 3};
        s.in[0] = fc.xt;
        s.in[1] = fc.wt;
        s.in[2] = fc.bt;
        qd_value *cur = fc.conv->outputs[0];
        qd_tensor *r;
        s.fused[s.n_fused++] = add_residual(g, &cur, 4, fc.yd, &r);
        s.in[s.n_in++] = r;
        s.fused[s.n_fused++] = add_act(g, ACT_RELU, &cur);
        const float *pr = r->data;
        for (int i = 0; i < 24 * 81; i++)
            fc.ref[i] = act_apply(ACT_RELU, fc.ref[i] + pr[i]);
        qd_tensor *xcl = NULL;
        if (layout) {
            xcl = qd_tensor_clone(fc.xt);
            to_channels_last(fc.xt->data, xcl->data, 4, fc.xt->dims, 0);
            s.in[0] = xcl;
            float *tmp = malloc(r->nbytes);
            to_channels_last(r->data, tmp, 4, fc.yd, 0);
            memcpy(r->data, tmp, r->nbytes);
            free(tmp);
        }
        qd_tensor *yt = qd_tensor_wrap(QD_DT_FLOAT, 4, fc.yd, r->data, 0);
        s.out = yt;
        qd_dnnl_set_activation_layout(layout ? QD_DNNL_NHWC : QD_DNNL_NCHW);
        g_single_run = 1;
        qd_status st = run_step(g, fc.conv, &s);
        g_single_run = 0;
        qd_dnnl_set_activation_layout(QD_DNNL_NCHW);
        assert_int_equal(st, QD_OK);
        float *got = malloc(r->nbytes);
        if (layout)
            to_channels_last(r->data, got, 4, fc.yd, 1);
        else
            memcpy(got, r->data, r->nbytes);
        check_close(got, fc.ref, 24 * 81, layout ? "in place nhwc" : "in place nchw");
        free(got);
        free(fc.ref);
        qd_tensor_delete(yt);
        qd_tensor_delete(xcl);
        qd_tensor_delete(fc.xt);
        qd_tensor_delete(r);
        qd_graph_delete(g);
    }
}

/* Gemm with a runtime B and alpha != 1 (a linear post-op) followed by each
 * activation (HardSigmoid's linear clashes and goes to the tail). */
static void test_gemm_alpha_each_act(void **state)
{
    (void)state;
    g_rng = 0x31ull;
    for (int k = ACT_RELU; k < ACT_COUNT; k++) {
        int64_t M = 9, K = 21, N = 13, ad[2] = {9, 21}, bd[2] = {21, 13}, yd[2] = {9, 13}, cd = 13;
        qd_graph *g = qd_graph_new();
        qd_tensor *at, *bt, *ct;
        qd_value *ins[3];
        ins[0] = data_value(g, 2, ad, 0, &at);
        ins[1] = data_value(g, 2, bd, 0, &bt);
        ins[2] = data_value(g, 1, &cd, 1, &ct);
        qd_value *Y = value(g, 2, yd);
        qd_node *n = qd_graph_add_node(g, "Gemm", "", "gemm", ins, 3, &Y, 1);
        qd_node_set_attr_float(n, "alpha", 0.5f);
        qd_node_set_attr_float(n, "beta", 2.0f);
        step s = {.n_in = 3};
        s.in[0] = at;
        s.in[1] = bt;
        s.in[2] = ct;
        qd_value *cur = Y;
        s.fused[s.n_fused++] = add_act(g, (act)k, &cur);
        s.fused[s.n_fused++] = add_act(g, ACT_HSIGMOID, &cur);
        qd_tensor *yt = qd_tensor_new(QD_DT_FLOAT, 2, yd);
        s.out = yt;
        double ref[9 * 13];
        const float *a = at->data, *b = bt->data, *c = ct->data;
        for (int64_t m = 0; m < M; m++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t q = 0; q < K; q++)
                    acc += (double)a[m * K + q] * b[q * N + j];
                ref[m * N + j] = act_apply(ACT_HSIGMOID, act_apply((act)k, 0.5 * acc + 2.0 * c[j]));
            }
        assert_int_equal(run_step(g, n, &s), QD_OK);
        check_close(yt->data, ref, M * N, act_op((act)k));
        qd_tensor_delete(at);
        qd_tensor_delete(bt);
        qd_tensor_delete(yt);
        qd_graph_delete(g);
    }
}

/* ---- selector API ---- */

static void test_supports_and_fusable(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    int64_t xd[4] = {1, 8, 10, 10}, wd[4] = {16, 8, 3, 3}, yd[4] = {1, 16, 8, 8};
    qd_tensor *xt, *wt, *wrt;
    qd_value *x = data_value(g, 4, xd, 0, &xt);
    qd_value *w = data_value(g, 4, wd, 1, &wt);
    qd_value *wr = data_value(g, 4, wd, 0, &wrt); /* runtime weight */
    qd_value *y = value(g, 4, yd), *y2 = value(g, 4, yd);
    qd_value *ins[2] = {x, w};
    qd_node *conv = qd_graph_add_node(g, "Conv", "", "conv", ins, 2, &y, 1);
    assert_int_equal(qd_dnnl_supports(conv), 1);
    ins[1] = wr;
    qd_node *conv_rt = qd_graph_add_node(g, "Conv", "", "conv_rt", ins, 2, &y2, 1);
    assert_int_equal(qd_dnnl_supports(conv_rt), 0);

    /* Wrong output size (inconsistent with the window). */
    qd_value *y3 = value(g, 4, (int64_t[]){1, 16, 9, 8});
    ins[1] = w;
    qd_node *conv_bad = qd_graph_add_node(g, "Conv", "", "conv_bad", ins, 2, &y3, 1);
    assert_int_equal(qd_dnnl_supports(conv_bad), 0);

    /* int32 matmul is not ours */
    qd_value *ia = qd_graph_new_value(g, "ia", NULL), *ib = qd_graph_new_value(g, "ib", NULL),
             *iy = qd_graph_new_value(g, "iy", NULL);
    int64_t d2[2] = {4, 4};
    qd_value_set_shape(ia, QD_DT_INT32, 2, d2);
    qd_value_set_shape(ib, QD_DT_INT32, 2, d2);
    qd_value_set_shape(iy, QD_DT_INT32, 2, d2);
    qd_value *mm_in[2] = {ia, ib};
    qd_node *imm = qd_graph_add_node(g, "MatMul", "", "imm", mm_in, 2, &iy, 1);
    assert_int_equal(qd_dnnl_supports(imm), 0);

    /* Activations fuse, Softmax does not. */
    qd_value *r1 = value(g, 4, yd);
    qd_node *relu = qd_graph_add_node(g, "Relu", "", "relu", &y, 1, &r1, 1);
    assert_int_equal(qd_dnnl_fusable(conv, relu, NULL), 1);
    qd_value *s1 = value(g, 4, yd);
    qd_node *sm = qd_graph_add_node(g, "Softmax", "", "sm", &y, 1, &s1, 1);
    assert_int_equal(qd_dnnl_fusable(conv, sm, NULL), 0);

    /* Clip with a runtime bound does not. */
    qd_value *lo = value(g, 0, NULL), *c1 = value(g, 4, yd);
    qd_value *clip_in[2] = {y, lo};
    qd_node *clip = qd_graph_add_node(g, "Clip", "", "clip", clip_in, 2, &c1, 1);
    assert_int_equal(qd_dnnl_fusable(conv, clip, NULL), 0);

    /* Add: full shape and per channel fuse; a broadcast over space, a
     * bigger operand or the anchor's own output do not. */
    qd_value *res = value(g, 4, yd), *a1 = value(g, 4, yd);
    qd_value *add_in[2] = {r1, res};
    qd_node *add = qd_graph_add_node(g, "Add", "", "add", add_in, 2, &a1, 1);
    assert_int_equal(qd_dnnl_fusable(conv, add, res), 1);
    qd_value *pc = value(g, 3, (int64_t[]){16, 1, 1}), *a2 = value(g, 4, yd);
    add_in[1] = pc;
    qd_node *add_pc = qd_graph_add_node(g, "Add", "", "add_pc", add_in, 2, &a2, 1);
    assert_int_equal(qd_dnnl_fusable(conv, add_pc, pc), 1);
    qd_value *sp = value(g, 2, (int64_t[]){8, 8}), *a3 = value(g, 4, yd);
    add_in[1] = sp;
    qd_node *add_sp = qd_graph_add_node(g, "Add", "", "add_sp", add_in, 2, &a3, 1);
    assert_int_equal(qd_dnnl_fusable(conv, add_sp, sp), 0);
    qd_value *a4 = value(g, 4, yd);
    add_in[0] = r1;
    add_in[1] = y;
    qd_node *add_self = qd_graph_add_node(g, "Add", "", "add_self", add_in, 2, &a4, 1);
    assert_int_equal(qd_dnnl_fusable(conv, add_self, y), 0);
    qd_value *big = value(g, 4, (int64_t[]){2, 16, 8, 8}),
             *a5 = value(g, 4, (int64_t[]){2, 16, 8, 8});
    add_in[1] = big;
    qd_node *add_big = qd_graph_add_node(g, "Add", "", "add_big", add_in, 2, &a5, 1);
    assert_int_equal(qd_dnnl_fusable(conv, add_big, big), 0);

    /* Other ops get an empty impl. */
    qd_kernel_impl none = qd_dnnl_impl(relu);
    assert_null(none.run);

    qd_tensor_delete(xt);
    qd_tensor_delete(wrt);
    qd_graph_delete(g);
}

/* Errors name the node instead of crashing: a residual missing from the
 * step's inputs. */
static void test_missing_operand(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    int64_t xd[4] = {1, 4, 6, 6}, wd[4] = {4, 4, 1, 1};
    qd_tensor *xt, *wt, *rt;
    qd_value *x = data_value(g, 4, xd, 0, &xt);
    qd_value *w = data_value(g, 4, wd, 1, &wt);
    qd_value *y = value(g, 4, xd), *a = value(g, 4, xd);
    qd_value *r = data_value(g, 4, xd, 0, &rt);
    qd_value *ins[2] = {x, w};
    qd_node *conv = qd_graph_add_node(g, "Conv", "", "the_conv", ins, 2, &y, 1);
    qd_value *add_in[2] = {y, r};
    qd_node *add = qd_graph_add_node(g, "Add", "", "the_add", add_in, 2, &a, 1);
    qd_tensor *yt = qd_tensor_new(QD_DT_FLOAT, 4, xd);
    step s = {.n_in = 2, .out = yt, .n_fused = 1};
    s.in[0] = xt;
    s.in[1] = wt;
    s.fused[0] = add;
    assert_int_not_equal(run_step(g, conv, &s), QD_OK);
    assert_non_null(strstr(qd_graph_error(g), "the_conv"));
    assert_non_null(strstr(qd_graph_error(g), "the_add"));
    qd_tensor_delete(xt);
    qd_tensor_delete(rt);
    qd_tensor_delete(yt);
    qd_graph_delete(g);
}

/* run() without prepare() (a dynamic step) still computes. */
static void test_unprepared_run(void **state)
{
    (void)state;
    g_rng = 0x55ull;
    qd_graph *g = qd_graph_new();
    int64_t ad[2] = {5, 7}, bd[2] = {7, 3}, yd[2] = {5, 3};
    qd_tensor *at, *bt;
    qd_value *A = data_value(g, 2, ad, 0, &at), *B = data_value(g, 2, bd, 0, &bt);
    qd_value *Y = value(g, 2, yd);
    qd_value *ins[2] = {A, B};
    qd_node *n = qd_graph_add_node(g, "MatMul", "", "mm", ins, 2, &Y, 1);
    qd_tensor *yt = qd_tensor_new(QD_DT_FLOAT, 2, yd);
    const qd_tensor *in[2] = {at, bt};
    qd_tensor *out[1] = {yt};
    qd_kernel_args a = {n, g, 2, in, 1, out, 1, NULL, NULL, 0, NULL, 0};
    assert_int_equal(qd_dnnl_impl(n).run(&a), QD_OK);
    double ref[15];
    matmul_ref(2, ad, 2, bd, at->data, bt->data, 2, yd, ref);
    check_close(yt->data, ref, 15, "unprepared matmul");
    qd_tensor_delete(at);
    qd_tensor_delete(bt);
    qd_tensor_delete(yt);
    qd_graph_delete(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_supports_and_fusable),
        cmocka_unit_test(test_missing_operand),
        cmocka_unit_test(test_unprepared_run),
        cmocka_unit_test(test_conv_fused_each),
        cmocka_unit_test(test_conv_tail_fallbacks),
        cmocka_unit_test(test_conv_residual_in_place),
        cmocka_unit_test(test_gemm_alpha_each_act),
        cmocka_unit_test(test_conv_random),
        cmocka_unit_test(test_conv_random_channels_last),
        cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_matmul_random),
        cmocka_unit_test(test_gemm_random),
        cmocka_unit_test(test_bf16_random),
    };
    g_verbose = getenv("QD_TEST_VERBOSE") != NULL;
    if (getenv("QD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("QD_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
