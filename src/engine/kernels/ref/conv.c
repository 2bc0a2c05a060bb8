/* Reference Conv and ConvTranspose (float32, any spatial rank, groups,
 * dilations, strides, pads, auto_pad): im2col / col2im around a plain-C
 * GEMM, one (batch, group) at a time. */
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/ref/nn_common.h"
#include "engine/kernels/ref/ref_nn.h"

/* Fills the M output planes of size sp with the bias (or zero). */
static void init_bias(float *y, int64_t m, int64_t sp, const float *bias)
{
    for (int64_t i = 0; i < m; i++) {
        float b = bias ? bias[i] : 0.0f;
        float *row = y + i * sp;
        for (int64_t j = 0; j < sp; j++)
            row[j] = b;
    }
}

static qd_status check_bias(const qd_kernel_args *a, const qd_tensor *B, int64_t M)
{
    if (!B)
        return QD_OK;
    qd_status st = qd_nn_check(a, B, QD_DT_FLOAT, "bias B");
    if (st != QD_OK)
        return st;
    if (qd_nn_numel(B) != M)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "bias has %lld elements for %lld channels",
                          (long long)qd_nn_numel(B), (long long)M);
    return QD_OK;
}

qd_status qd_ref_conv(const qd_kernel_args *a)
{
    const qd_tensor *X = qd_nn_in(a, 0), *W = qd_nn_in(a, 1), *B = qd_nn_in(a, 2);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check(a, X, QD_DT_FLOAT, "input X")) != QD_OK ||
        (st = qd_nn_check(a, W, QD_DT_FLOAT, "weights W")) != QD_OK ||
        (st = qd_nn_check(a, Y, QD_DT_FLOAT, "output Y")) != QD_OK)
        return st;
    if (X->rank < 3 || W->rank != X->rank)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "X rank %d and W rank %d", X->rank, W->rank);
    int nsp = X->rank - 2;
    int64_t group, kernel[QD_MAX_RANK];
    if ((st = qd_node_attr_int(a->graph, a->node, "group", 1, &group)) != QD_OK ||
        (st = qd_nn_kernel_shape(a, W, nsp, kernel)) != QD_OK)
        return st;
    int64_t N = X->dims[0], C = X->dims[1], M = W->dims[0];
    if (group <= 0 || C % group || M % group || W->dims[1] != C / group || Y->dims[1] != M ||
        Y->dims[0] != N)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR,
                          "channels do not agree: X has %lld, W is %lldx%lld, group %lld",
                          (long long)C, (long long)M, (long long)W->dims[1], (long long)group);
    if ((st = check_bias(a, B, M)) != QD_OK)
        return st;
    qd_nn_geom g;
    if ((st = qd_nn_geom_init(a, X, Y, kernel, 0, &g)) != QD_OK)
        return st;

    const int64_t Cg = C / group, Mg = M / group;
    const int64_t isp = qd_nn_prod(nsp, g.in), osp = qd_nn_prod(nsp, g.out);
    const int64_t K = Cg * qd_nn_prod(nsp, g.k);
    const float *x = X->data, *w = W->data, *bias = B ? B->data : NULL;
    float *y = Y->data;
    if (N * M * osp == 0)
        return QD_OK;

    /* A 1x1, stride-1, unpadded conv reads the input as it is. */
    int direct = 1;
    for (int i = 0; i < nsp; i++)
        direct &= g.k[i] == 1 && g.stride[i] == 1 && g.pad[i] == 0 && g.pad_end[i] == 0 &&
                  g.in[i] == g.out[i];
    /* Grouped (depthwise) convs have small GEMMs: run the (batch, group)
     * pairs in parallel, one im2col buffer per thread. Otherwise the GEMM
     * is parallel inside. */
    const int64_t tasks = N * group;
    const int par = group > 1 && tasks > 1 && Mg * osp * K * tasks > QD_NN_PAR_MIN;
    int nbuf = 1;
#ifdef _OPENMP
    if (par)
        nbuf = omp_get_max_threads();
#else
    (void)par;
#endif
    const size_t col_n = (size_t)(K * osp);
    float *col = NULL;
    if (!direct && !(col = qd_malloc((col_n * (size_t)nbuf + 1) * sizeof *col)))
        return qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory for the im2col buffer");

    QD_NN_OMP_FOR(par)
    for (int64_t t = 0; t < tasks; t++) {
        const int64_t n = t / group, gi = t % group;
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        const float *xg = x + (n * C + gi * Cg) * isp;
        float *yg = y + (n * M + gi * Mg) * osp;
        init_bias(yg, Mg, osp, bias ? bias + gi * Mg : NULL);
        const float *src = xg;
        if (!direct) {
            float *mycol = col + col_n * (size_t)tid;
            qd_nn_im2col_f32(&g, Cg, xg, mycol);
            src = mycol;
        }
        qd_nn_sgemm(Mg, osp, K, w + gi * Mg * K, K, src, osp, yg, osp);
    }
    qd_free(col);
    return QD_OK;
}

qd_status qd_ref_conv_transpose(const qd_kernel_args *a)
{
    const qd_tensor *X = qd_nn_in(a, 0), *W = qd_nn_in(a, 1), *B = qd_nn_in(a, 2);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check(a, X, QD_DT_FLOAT, "input X")) != QD_OK ||
        (st = qd_nn_check(a, W, QD_DT_FLOAT, "weights W")) != QD_OK ||
        (st = qd_nn_check(a, Y, QD_DT_FLOAT, "output Y")) != QD_OK)
        return st;
    if (X->rank < 3 || W->rank != X->rank)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "X rank %d and W rank %d", X->rank, W->rank);
    int nsp = X->rank - 2;
    int64_t group, kernel[QD_MAX_RANK];
    if ((st = qd_node_attr_int(a->graph, a->node, "group", 1, &group)) != QD_OK ||
        (st = qd_nn_kernel_shape(a, W, nsp, kernel)) != QD_OK)
        return st;
    /* W is [C, M/group, k...]. */
    int64_t N = X->dims[0], C = X->dims[1];
    if (group <= 0 || W->dims[0] != C || C % group || Y->dims[0] != N ||
        Y->dims[1] != W->dims[1] * group)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR,
                          "channels do not agree: X has %lld, W is %lldx%lld, group %lld",
                          (long long)C, (long long)W->dims[0], (long long)W->dims[1],
                          (long long)group);
    int64_t M = Y->dims[1];
    if ((st = check_bias(a, B, M)) != QD_OK)
        return st;
    qd_nn_geom g;
    if ((st = qd_nn_geom_init(a, X, Y, kernel, 1, &g)) != QD_OK)
        return st;

    const int64_t Cg = C / group, Mg = M / group, kprod = qd_nn_prod(nsp, g.k);
    const int64_t isp = qd_nn_prod(nsp, g.in), osp = qd_nn_prod(nsp, g.out);
    const int64_t R = Mg * kprod; /* rows of the column buffer */
    const float *x = X->data, *w = W->data, *bias = B ? B->data : NULL;
    float *y = Y->data;
    if (N * M * osp == 0)
        return QD_OK;
    float *col = qd_malloc((size_t)(R * (isp ? isp : 1)) * sizeof *col);
    float *wt = qd_malloc((size_t)(R * (Cg ? Cg : 1)) * sizeof *wt);
    if (!col || !wt) {
        qd_free(col);
        qd_free(wt);
        return qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory for the col2im buffers");
    }
    for (int64_t gi = 0; gi < group; gi++) {
        /* col = Wg^T * Xg needs Wg ([Cg, R]) transposed to [R, Cg]. */
        const float *wg = w + gi * Cg * R;
        for (int64_t c = 0; c < Cg; c++)
            for (int64_t r = 0; r < R; r++)
                wt[r * Cg + c] = wg[c * R + r];
        for (int64_t n = 0; n < N; n++) {
            const float *xg = x + (n * C + gi * Cg) * isp;
            float *yg = y + (n * M + gi * Mg) * osp;
            memset(col, 0, (size_t)(R * isp) * sizeof *col);
            qd_nn_sgemm(R, isp, Cg, wt, Cg, xg, isp, col, isp);
            init_bias(yg, Mg, osp, bias ? bias + gi * Mg : NULL);
            qd_nn_col2im_f32(&g, Mg, col, yg);
        }
    }
    qd_free(col);
    qd_free(wt);
    return QD_OK;
}
