/* Reference BatchNormalization, LayerNormalization, InstanceNormalization
 * (float32; statistics accumulated in double). */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/ref/nn_common.h"
#include "engine/kernels/ref/ref_nn.h"

/* Checks that the per-channel parameter t (named what) is float32 with C
 * elements. */
static qd_status check_vec(const qd_kernel_args *a, const qd_tensor *t, int64_t C, const char *what)
{
    qd_status st = qd_nn_check(a, t, QD_DT_FLOAT, what);
    if (st != QD_OK)
        return st;
    if (qd_nn_numel(t) != C)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "%s has %lld elements, expected %lld", what,
                          (long long)qd_nn_numel(t), (long long)C);
    return QD_OK;
}

/* Mean and population variance of n floats (two passes, in double). */
static void moments(const float *x, int64_t n, int64_t stride, double *mean, double *var)
{
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++)
        s += x[i * stride];
    double m = n ? s / (double)n : 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = x[i * stride] - m;
        ss += d * d;
    }
    *mean = m;
    *var = n ? ss / (double)n : 0.0;
}

qd_status qd_ref_batch_normalization(const qd_kernel_args *a)
{
    const qd_tensor *X = qd_nn_in(a, 0), *S = qd_nn_in(a, 1), *Bi = qd_nn_in(a, 2);
    const qd_tensor *Mn = qd_nn_in(a, 3), *V = qd_nn_in(a, 4);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check(a, X, QD_DT_FLOAT, "input X")) != QD_OK ||
        (st = qd_nn_check(a, Y, QD_DT_FLOAT, "output Y")) != QD_OK)
        return st;
    if (X->rank < 2 || qd_nn_numel(Y) != qd_nn_numel(X))
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "X must be [N, C, ...] and Y like X");
    int64_t N = X->dims[0], C = X->dims[1], sp = qd_nn_prod(X->rank - 2, X->dims + 2);
    if ((st = check_vec(a, S, C, "scale")) != QD_OK || (st = check_vec(a, Bi, C, "B")) != QD_OK ||
        (st = check_vec(a, Mn, C, "input_mean")) != QD_OK ||
        (st = check_vec(a, V, C, "input_var")) != QD_OK)
        return st;
    float eps, momentum;
    int64_t training = 0;
    if ((st = qd_node_attr_float(a->graph, a->node, "epsilon", 1e-5f, &eps)) != QD_OK ||
        (st = qd_node_attr_float(a->graph, a->node, "momentum", 0.9f, &momentum)) != QD_OK)
        return st;
    /* training_mode exists from opset 14; older opsets only run inference
     * here (their extra training outputs are left untouched). */
    if (a->graph->opset >= 14 &&
        (st = qd_node_attr_int(a->graph, a->node, "training_mode", 0, &training)) != QD_OK)
        return st;
    const float *x = X->data, *scale = S->data, *bias = Bi->data;
    const float *mean_in = Mn->data, *var_in = V->data;
    float *y = Y->data;
    qd_tensor *rm = training ? qd_nn_out(a, 1) : NULL, *rv = training ? qd_nn_out(a, 2) : NULL;
    if ((rm && (st = check_vec(a, rm, C, "running_mean")) != QD_OK) ||
        (rv && (st = check_vec(a, rv, C, "running_var")) != QD_OK))
        return st;

    QD_NN_OMP_FOR(N * C * sp > QD_NN_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        double mean = mean_in[c], var = var_in[c];
        if (training) {
            /* Batch statistics over N and the spatial dims. */
            double s = 0, ss = 0;
            for (int64_t n = 0; n < N; n++) {
                const float *xc = x + (n * C + c) * sp;
                for (int64_t i = 0; i < sp; i++)
                    s += xc[i];
            }
            double cnt = (double)(N * sp);
            mean = cnt ? s / cnt : 0.0;
            for (int64_t n = 0; n < N; n++) {
                const float *xc = x + (n * C + c) * sp;
                for (int64_t i = 0; i < sp; i++)
                    ss += (xc[i] - mean) * (xc[i] - mean);
            }
            var = cnt ? ss / cnt : 0.0;
            if (rm)
                ((float *)rm->data)[c] = (float)(mean_in[c] * momentum + mean * (1.0 - momentum));
            if (rv)
                ((float *)rv->data)[c] = (float)(var_in[c] * momentum + var * (1.0 - momentum));
        }
        /* y = x * k + b with k = scale / sqrt(var + eps). */
        double k = scale[c] / sqrt(var + eps);
        float kf = (float)k, bf = (float)(bias[c] - mean * k);
        for (int64_t n = 0; n < N; n++) {
            const float *xc = x + (n * C + c) * sp;
            float *yc = y + (n * C + c) * sp;
            for (int64_t i = 0; i < sp; i++)
                yc[i] = xc[i] * kf + bf;
        }
    }
    return QD_OK;
}

/* Expands a parameter that broadcasts (numpy rules, right-aligned) to the
 * normalized shape dims[0..nd) into a dense buffer of prod(dims). */
static qd_status expand_param(const qd_kernel_args *a, const qd_tensor *t, int nd,
                              const int64_t *dims, const char *what, float **out)
{
    *out = NULL;
    qd_status st = qd_nn_check(a, t, QD_DT_FLOAT, what);
    if (st != QD_OK)
        return st;
    if (t->rank > nd)
        goto bad;
    int64_t strides[QD_MAX_RANK], s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        int ti = i - (nd - t->rank);
        int64_t d = ti >= 0 ? t->dims[ti] : 1;
        if (d != 1 && d != dims[i])
            goto bad;
        strides[i] = d == 1 ? 0 : s;
        s *= d;
    }
    int64_t n = qd_nn_prod(nd, dims);
    float *buf = qd_malloc((size_t)(n ? n : 1) * sizeof *buf);
    if (!buf)
        return qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    const float *src = t->data;
    int64_t idx[QD_MAX_RANK] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < nd; d++)
            off += idx[d] * strides[d];
        buf[i] = src[off];
        for (int d = nd - 1; d >= 0; d--) {
            if (++idx[d] < dims[d])
                break;
            idx[d] = 0;
        }
    }
    *out = buf;
    return QD_OK;
bad:
    return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "%s does not broadcast to the normalized shape",
                      what);
}

qd_status qd_ref_layer_normalization(const qd_kernel_args *a)
{
    const qd_tensor *X = qd_nn_in(a, 0), *S = qd_nn_in(a, 1), *Bi = qd_nn_in(a, 2);
    qd_tensor *Y = qd_nn_out(a, 0), *Mo = qd_nn_out(a, 1), *Io = qd_nn_out(a, 2);
    qd_status st;
    if ((st = qd_nn_check(a, X, QD_DT_FLOAT, "input X")) != QD_OK ||
        (st = qd_nn_check(a, Y, QD_DT_FLOAT, "output Y")) != QD_OK)
        return st;
    int64_t axis_attr, stash;
    float eps;
    int axis = 0;
    if ((st = qd_node_attr_int(a->graph, a->node, "axis", -1, &axis_attr)) != QD_OK ||
        (st = qd_node_attr_float(a->graph, a->node, "epsilon", 1e-5f, &eps)) != QD_OK ||
        (st = qd_node_attr_int(a->graph, a->node, "stash_type", 1, &stash)) != QD_OK ||
        (st = qd_nn_axis(a, axis_attr, X->rank, &axis)) != QD_OK)
        return st;
    int64_t outer = qd_nn_prod(axis, X->dims), inner = qd_nn_prod(X->rank - axis, X->dims + axis);
    if (qd_nn_numel(Y) != outer * inner)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "Y does not have X's shape");
    if ((Mo && ((st = qd_nn_check(a, Mo, QD_DT_FLOAT, "output Mean")) != QD_OK ||
                qd_nn_numel(Mo) != outer)) ||
        (Io && ((st = qd_nn_check(a, Io, QD_DT_FLOAT, "output InvStdDev")) != QD_OK ||
                qd_nn_numel(Io) != outer)))
        return st != QD_OK ? st
                           : qd_nn_fail(a, QD_STATUS_SHAPE_ERROR,
                                        "Mean/InvStdDev must have %lld elements", (long long)outer);
    float *scale = NULL, *bias = NULL;
    if ((st = expand_param(a, S, X->rank - axis, X->dims + axis, "Scale", &scale)) != QD_OK ||
        (Bi && (st = expand_param(a, Bi, X->rank - axis, X->dims + axis, "B", &bias)) != QD_OK)) {
        qd_free(scale);
        return st;
    }
    const float *x = X->data;
    float *y = Y->data;
    float *mo = Mo ? Mo->data : NULL, *io = Io ? Io->data : NULL;
    QD_NN_OMP_FOR(outer * inner > QD_NN_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        const float *xr = x + o * inner;
        float *yr = y + o * inner;
        double mean, var;
        moments(xr, inner, 1, &mean, &var);
        double inv = 1.0 / sqrt(var + eps);
        for (int64_t i = 0; i < inner; i++) {
            float v = (float)((xr[i] - mean) * inv) * scale[i];
            yr[i] = bias ? v + bias[i] : v;
        }
        if (mo)
            mo[o] = (float)mean;
        if (io)
            io[o] = (float)inv;
    }
    qd_free(scale);
    qd_free(bias);
    return QD_OK;
}

qd_status qd_ref_instance_normalization(const qd_kernel_args *a)
{
    const qd_tensor *X = qd_nn_in(a, 0), *S = qd_nn_in(a, 1), *Bi = qd_nn_in(a, 2);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check(a, X, QD_DT_FLOAT, "input X")) != QD_OK ||
        (st = qd_nn_check(a, Y, QD_DT_FLOAT, "output Y")) != QD_OK)
        return st;
    if (X->rank < 3 || qd_nn_numel(Y) != qd_nn_numel(X))
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "X must be [N, C, D...] and Y like X");
    int64_t N = X->dims[0], C = X->dims[1], sp = qd_nn_prod(X->rank - 2, X->dims + 2);
    if ((st = check_vec(a, S, C, "scale")) != QD_OK || (st = check_vec(a, Bi, C, "B")) != QD_OK)
        return st;
    float eps;
    if ((st = qd_node_attr_float(a->graph, a->node, "epsilon", 1e-5f, &eps)) != QD_OK)
        return st;
    const float *x = X->data, *scale = S->data, *bias = Bi->data;
    float *y = Y->data;
    QD_NN_OMP_FOR(N * C * sp > QD_NN_PAR_MIN)
    for (int64_t nc = 0; nc < N * C; nc++) {
        int64_t c = nc % C;
        double mean, var;
        moments(x + nc * sp, sp, 1, &mean, &var);
        double k = scale[c] / sqrt(var + eps);
        float kf = (float)k, bf = (float)(bias[c] - mean * k);
        const float *xc = x + nc * sp;
        float *yc = y + nc * sp;
        for (int64_t i = 0; i < sp; i++)
            yc[i] = xc[i] * kf + bf;
    }
    return QD_OK;
}
