/* Layout conversion between plain NCHW and channels-last NHWC: per image,
 * a C x HW matrix transposed to HW x C (or back) in cache-sized tiles. */
#include <string.h>

#include "engine/engine.h"

#define TILE 32

static void transpose_tiles(const char *src, char *dst, int64_t rows, int64_t cols, size_t es,
                            int64_t images)
{
    /* dst[b][c][r] = src[b][r][c] for each image b. */
    int64_t tr = (rows + TILE - 1) / TILE, tc = (cols + TILE - 1) / TILE;
    int64_t total = images * tr * tc;
#pragma omp parallel for schedule(static) if (total > 4)
    for (int64_t t = 0; t < total; t++) {
        int64_t b = t / (tr * tc), r0 = (t / tc % tr) * TILE, c0 = (t % tc) * TILE;
        int64_t r1 = r0 + TILE < rows ? r0 + TILE : rows, c1 = c0 + TILE < cols ? c0 + TILE : cols;
        const char *s = src + (size_t)(b * rows * cols) * es;
        char *d = dst + (size_t)(b * rows * cols) * es;
        if (es == 4) {
            const float *sf = (const float *)s;
            float *df = (float *)d;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++)
                    df[c * rows + r] = sf[r * cols + c];
        } else if (es == 1) {
            /* int8 activations of the INT8 kernels */
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++)
                    d[c * rows + r] = s[r * cols + c];
        } else {
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++)
                    memcpy(d + (size_t)(c * rows + r) * es, s + (size_t)(r * cols + c) * es, es);
        }
    }
}

qd_status qd_reorder_layout(const qd_kernel_args *a)
{
    const qd_tensor *x = a->inputs[0];
    qd_tensor *y = a->outputs[0];
    if (x->rank != 4 || y->rank != 4 || x->nbytes != y->nbytes || x->dtype != y->dtype)
        return qd_graph_fail(a->graph, QD_STATUS_SHAPE_ERROR,
                             "layout conversion: tensors disagree (rank %d/%d)", x->rank, y->rank);
    int64_t n = x->dims[0], c = x->dims[1], hw = x->dims[2] * x->dims[3];
    size_t es = qd_dtype_size(x->dtype);
    if (x->layout == y->layout) {
        memcpy(y->data, x->data, x->nbytes);
    } else if (x->layout == QD_LAYOUT_PLAIN) {
        transpose_tiles(x->data, y->data, c, hw, es, n); /* C x HW -> HW x C */
    } else {
        transpose_tiles(x->data, y->data, hw, c, es, n); /* HW x C -> C x HW */
    }
    return QD_OK;
}
