/* Reference MaxPool, AveragePool (any spatial rank, pads, auto_pad,
 * dilations, ceil_mode through the output shape), GlobalAveragePool and
 * GlobalMaxPool.
 *
 * The windows are the same in every (batch, channel) plane, so they are
 * resolved once into lists of in-plane offsets clipped to the input. */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/ref/nn_common.h"
#include "engine/kernels/ref/ref_nn.h"

typedef struct pool_plan {
    int64_t planes;  /* N * C */
    int64_t isp, osp; /* plane sizes */
    int64_t wmax;    /* window elements at most: prod(kernel) */
    int64_t *cnt;    /* [osp] inside-input elements of each window */
    int64_t *padded; /* [osp] elements of each window inside input + pads */
    int64_t *off;    /* [osp * wmax] in-plane offsets of those elements */
} pool_plan;

static void plan_free(pool_plan *p)
{
    qd_free(p->cnt);
    qd_free(p->padded);
    qd_free(p->off);
}

static qd_status plan_init(const qd_kernel_args *a, const qd_tensor *X, const qd_tensor *Y,
                           int has_dilations, pool_plan *p, qd_nn_geom *g)
{
    memset(p, 0, sizeof *p);
    if (X->rank < 3 || Y->rank != X->rank || X->dims[0] != Y->dims[0] || X->dims[1] != Y->dims[1])
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "X and Y must be [N, C, spatial...] alike");
    int nsp = X->rank - 2;
    int64_t kernel[QD_MAX_RANK];
    qd_status st = qd_nn_kernel_shape(a, NULL, nsp, kernel);
    if (st != QD_OK || (st = qd_nn_geom_init(a, X, Y, kernel, 0, g)) != QD_OK)
        return st;
    if (!has_dilations)
        for (int d = 0; d < nsp; d++)
            g->dil[d] = 1;
    p->planes = X->dims[0] * X->dims[1];
    p->isp = qd_nn_prod(nsp, g->in);
    p->osp = qd_nn_prod(nsp, g->out);
    p->wmax = qd_nn_prod(nsp, g->k);
    size_t n = (size_t)(p->osp ? p->osp : 1);
    p->cnt = qd_malloc(n * sizeof *p->cnt);
    p->padded = qd_malloc(n * sizeof *p->padded);
    p->off = qd_malloc(n * (size_t)p->wmax * sizeof *p->off);
    if (!p->cnt || !p->padded || !p->off) {
        plan_free(p);
        return qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory for the pooling windows");
    }
    int64_t o[QD_MAX_RANK] = {0};
    for (int64_t q = 0; q < p->osp; q++) {
        /* Per dim: the kernel taps inside the input, and how many taps lie
         * inside input + pads (AveragePool's count_include_pad). */
        int64_t k0[QD_MAX_RANK], k1[QD_MAX_RANK], start[QD_MAX_RANK], padded = 1, cnt = 1;
        for (int d = 0; d < nsp; d++) {
            start[d] = o[d] * g->stride[d] - g->pad[d];
            int64_t lo = 0, hi = 0, np = 0;
            for (int64_t k = 0; k < g->k[d]; k++) {
                int64_t i = start[d] + k * g->dil[d];
                if (i < 0 || i >= g->in[d]) {
                    if (i >= -g->pad[d] && i < g->in[d] + g->pad_end[d])
                        np++;
                    continue;
                }
                if (hi == lo)
                    lo = k;
                hi = k + 1;
                np++;
            }
            k0[d] = lo;
            k1[d] = hi;
            cnt *= hi - lo;
            padded *= np;
        }
        p->cnt[q] = cnt;
        p->padded[q] = padded;
        int64_t *dst = p->off + q * p->wmax;
        if (cnt) {
            int64_t k[QD_MAX_RANK];
            for (int d = 0; d < nsp; d++)
                k[d] = k0[d];
            for (int64_t j = 0; j < cnt; j++) {
                int64_t off = 0;
                for (int d = 0; d < nsp; d++)
                    off = off * g->in[d] + start[d] + k[d] * g->dil[d];
                dst[j] = off;
                for (int d = nsp - 1; d >= 0; d--) {
                    if (++k[d] < k1[d])
                        break;
                    k[d] = k0[d];
                }
            }
        }
        for (int d = nsp - 1; d >= 0; d--) {
            if (++o[d] < g->out[d])
                break;
            o[d] = 0;
        }
    }
    return QD_OK;
}

/* Converts a row-major in-plane offset to the column-major one that
 * storage_order = 1 asks for. */
static int64_t col_major(int64_t off, const qd_nn_geom *g)
{
    int64_t coord[QD_MAX_RANK];
    for (int d = g->nsp - 1; d >= 0; d--) {
        coord[d] = off % g->in[d];
        off /= g->in[d];
    }
    int64_t r = 0;
    for (int d = g->nsp - 1; d >= 0; d--)
        r = r * g->in[d] + coord[d];
    return r;
}

#define QD_MAXPOOL(NAME, T, LOWEST)                                                                \
    static void NAME(const pool_plan *p, const qd_nn_geom *g, int storage_order, const T *x, T *y, \
                     int64_t *ind)                                                                 \
    {                                                                                              \
        QD_NN_OMP_FOR(p->planes * p->osp * p->wmax > QD_NN_PAR_MIN)                                \
        for (int64_t pl = 0; pl < p->planes; pl++) {                                               \
            const T *xp = x + pl * p->isp;                                                         \
            T *yp = y + pl * p->osp;                                                               \
            for (int64_t q = 0; q < p->osp; q++) {                                                 \
                const int64_t *off = p->off + q * p->wmax;                                         \
                T best = LOWEST;                                                                   \
                int64_t bi = -1;                                                                   \
                for (int64_t j = 0; j < p->cnt[q]; j++) {                                          \
                    T v = xp[off[j]];                                                              \
                    if (bi < 0 || v > best) {                                                      \
                        best = v;                                                                  \
                        bi = off[j];                                                               \
                    }                                                                              \
                }                                                                                  \
                yp[q] = best;                                                                      \
                if (ind) {                                                                         \
                    if (bi >= 0 && storage_order)                                                  \
                        bi = col_major(bi, g);                                                     \
                    ind[pl * p->osp + q] = bi < 0 ? -1 : pl * p->isp + bi;                         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

QD_MAXPOOL(maxpool_f32, float, -FLT_MAX)
QD_MAXPOOL(maxpool_f64, double, -DBL_MAX)
QD_MAXPOOL(maxpool_i8, int8_t, INT8_MIN)
QD_MAXPOOL(maxpool_u8, uint8_t, 0)

qd_status qd_ref_max_pool(const qd_kernel_args *a)
{
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0), *I = qd_nn_out(a, 1);
    qd_status st;
    if ((st = qd_nn_check_any(a, X, "input X")) != QD_OK ||
        (st = qd_nn_check(a, Y, X->dtype, "output Y")) != QD_OK ||
        (I && (st = qd_nn_check(a, I, QD_DT_INT64, "output Indices")) != QD_OK))
        return st;
    qd_dtype dt = X->dtype;
    if (dt != QD_DT_FLOAT && dt != QD_DT_DOUBLE && dt != QD_DT_INT8 && dt != QD_DT_UINT8)
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "no reference MaxPool for %s",
                          qd_dtype_name(dt));
    int64_t storage_order;
    if ((st = qd_node_attr_int(a->graph, a->node, "storage_order", 0, &storage_order)) != QD_OK)
        return st;
    pool_plan p;
    qd_nn_geom g;
    if ((st = plan_init(a, X, Y, 1, &p, &g)) != QD_OK)
        return st;
    if (I && qd_nn_numel(I) != qd_nn_numel(Y)) {
        plan_free(&p);
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "Indices must have Y's shape");
    }
    int64_t *ind = I ? I->data : NULL;
    int so = storage_order != 0;
    switch (dt) {
    case QD_DT_FLOAT: maxpool_f32(&p, &g, so, X->data, Y->data, ind); break;
    case QD_DT_DOUBLE: maxpool_f64(&p, &g, so, X->data, Y->data, ind); break;
    case QD_DT_INT8: maxpool_i8(&p, &g, so, X->data, Y->data, ind); break;
    default: maxpool_u8(&p, &g, so, X->data, Y->data, ind); break;
    }
    plan_free(&p);
    return QD_OK;
}

qd_status qd_ref_average_pool(const qd_kernel_args *a)
{
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check(a, X, QD_DT_FLOAT, "input X")) != QD_OK ||
        (st = qd_nn_check(a, Y, QD_DT_FLOAT, "output Y")) != QD_OK)
        return st;
    int64_t include_pad;
    if ((st = qd_node_attr_int(a->graph, a->node, "count_include_pad", 0, &include_pad)) != QD_OK)
        return st;
    pool_plan p;
    qd_nn_geom g;
    /* dilations came to AveragePool in opset 19 */
    if ((st = plan_init(a, X, Y, a->graph->opset >= 19, &p, &g)) != QD_OK)
        return st;
    const float *x = X->data;
    float *y = Y->data;
    QD_NN_OMP_FOR(p.planes * p.osp * p.wmax > QD_NN_PAR_MIN)
    for (int64_t pl = 0; pl < p.planes; pl++) {
        const float *xp = x + pl * p.isp;
        float *yp = y + pl * p.osp;
        for (int64_t q = 0; q < p.osp; q++) {
            const int64_t *off = p.off + q * p.wmax;
            float s = 0.0f;
            for (int64_t j = 0; j < p.cnt[q]; j++)
                s += xp[off[j]];
            int64_t div = include_pad ? p.padded[q] : p.cnt[q];
            yp[q] = div ? s / (float)div : 0.0f;
        }
    }
    plan_free(&p);
    return QD_OK;
}

static qd_status global_pool(const qd_kernel_args *a, int is_max)
{
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check(a, X, QD_DT_FLOAT, "input X")) != QD_OK ||
        (st = qd_nn_check(a, Y, QD_DT_FLOAT, "output Y")) != QD_OK)
        return st;
    if (X->rank < 2)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "X must be [N, C, ...]");
    int64_t planes = X->dims[0] * X->dims[1], sp = qd_nn_prod(X->rank - 2, X->dims + 2);
    if (qd_nn_numel(Y) != planes)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "Y must have N*C elements");
    const float *x = X->data;
    float *y = Y->data;
    QD_NN_OMP_FOR(planes * sp > QD_NN_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * sp;
        if (is_max) {
            float m = sp ? xp[0] : -FLT_MAX;
            for (int64_t i = 1; i < sp; i++)
                m = xp[i] > m ? xp[i] : m;
            y[pl] = m;
        } else {
            double s = 0.0;
            for (int64_t i = 0; i < sp; i++)
                s += xp[i];
            y[pl] = sp ? (float)(s / (double)sp) : 0.0f;
        }
    }
    return QD_OK;
}

qd_status qd_ref_global_average_pool(const qd_kernel_args *a)
{
    return global_pool(a, 0);
}

qd_status qd_ref_global_max_pool(const qd_kernel_args *a)
{
    return global_pool(a, 1);
}
