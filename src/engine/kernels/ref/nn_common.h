/* Private to the reference NN kernels (ref_nn.h): error and argument
 * helpers, convolution/pooling geometry, im2col/col2im, the plain-C GEMM,
 * batched-matmul broadcasting and rounding for quantization. */
#ifndef QD_REF_NN_COMMON_H
#define QD_REF_NN_COMMON_H

#include <math.h>
#include <stdint.h>

#include "engine/kernel.h"
#include "ir/tensor.h"

#ifdef _OPENMP
#include <omp.h>
#define QD_NN_PRAGMA(x) _Pragma(#x)
/* A parallel loop over independent iterations, taken only when the work is
 * big enough to pay for waking the team. */
#define QD_NN_OMP_FOR(cond) QD_NN_PRAGMA(omp parallel for schedule(static) if(cond))
#else
#define QD_NN_OMP_FOR(cond)
#endif

/* Work (multiply-adds or elements) below which loops stay on one thread. */
#define QD_NN_PAR_MIN 65536

/* "node 'NAME' (Op): message" on the graph's error; returns st. */
qd_status qd_nn_fail(const qd_kernel_args *a, qd_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Input/output i, or NULL when omitted or beyond the node's count. */
const qd_tensor *qd_nn_in(const qd_kernel_args *a, int i);
qd_tensor *qd_nn_out(const qd_kernel_args *a, int i);

/* Fails unless t is present, its buffer matches its dims and its dtype is
 * `dtype` (`what` names it in the message). */
qd_status qd_nn_check(const qd_kernel_args *a, const qd_tensor *t, qd_dtype dtype,
                      const char *what);
/* Fails unless t is present and its buffer matches its dims. */
qd_status qd_nn_check_any(const qd_kernel_args *a, const qd_tensor *t, const char *what);

int64_t qd_nn_numel(const qd_tensor *t);
/* Normalises a possibly negative axis into [0, rank); fails when out of range. */
qd_status qd_nn_axis(const qd_kernel_args *a, int64_t axis, int rank, int *out);

/* Reads the ints attribute `name`: exactly n values, or `def` in all n
 * entries when absent. */
qd_status qd_nn_attr_ints_n(const qd_kernel_args *a, const char *name, int n, int64_t def,
                            int64_t *out);

/* Reads integer tensor element i (int32 or int64) as int64. */
int64_t qd_nn_get_int(const qd_tensor *t, int64_t i);

/* Geometry of a convolution or pooling window over nsp spatial dims. For a
 * transposed convolution `in` is the input (small) side and `out` the
 * output (large) side, with out = in*stride - pad + k*dil. */
typedef struct qd_nn_geom {
    int nsp;
    int64_t in[QD_MAX_RANK], out[QD_MAX_RANK], k[QD_MAX_RANK];
    int64_t stride[QD_MAX_RANK], dil[QD_MAX_RANK];
    int64_t pad[QD_MAX_RANK], pad_end[QD_MAX_RANK];
} qd_nn_geom;

/* Fills g from the node's strides, dilations, pads, auto_pad (and for
 * transposed, output_padding and output_shape) and the spatial dims of x
 * and y (both [N, C, spatial...]). kernel holds the nsp kernel dims. */
qd_status qd_nn_geom_init(const qd_kernel_args *a, const qd_tensor *x, const qd_tensor *y,
                          const int64_t *kernel, int transposed, qd_nn_geom *g);
/* Reads kernel_shape (when present it must equal w's spatial dims, when w is
 * given); otherwise takes w's dims [2:]. */
qd_status qd_nn_kernel_shape(const qd_kernel_args *a, const qd_tensor *w, int nsp, int64_t *kernel);

int64_t qd_nn_prod(int n, const int64_t *d);

/* im2col: col[(c*kprod + kidx) * osp + o] = x[c, o*stride - pad + kidx*dil]
 * (0 outside the input), for c < channels. */
void qd_nn_im2col_f32(const qd_nn_geom *g, int64_t channels, const float *x, float *col);
/* The same for quantized input: col = x - zero_point as int32, 0 in the
 * padding (a padded zero point). */
void qd_nn_im2col_u8(const qd_nn_geom *g, int64_t channels, const uint8_t *x, int32_t zp,
                     int32_t *col);
void qd_nn_im2col_s8(const qd_nn_geom *g, int64_t channels, const int8_t *x, int32_t zp,
                     int32_t *col);
/* col2im for the transposed convolution: y[m, i*stride - pad + kidx*dil] +=
 * col[(m*kprod + kidx) * isp + i], for m < channels, positions outside y
 * dropped. */
void qd_nn_col2im_f32(const qd_nn_geom *g, int64_t channels, const float *col, float *y);

/* C[M,N] += A[M,K] * B[K,N]; row-major with leading dimensions. */
void qd_nn_sgemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float *C, int64_t ldc);
/* The same in int32 (wrapping on overflow, as int32 accumulators do). */
void qd_nn_igemm(int64_t M, int64_t N, int64_t K, const int32_t *A, int64_t lda, const int32_t *B,
                 int64_t ldb, int32_t *C, int64_t ldc);

/* Numpy matmul shape handling: 1-D operands promoted, batch dims
 * broadcast. a_off[b]/b_off[b] are the matrix indices (in units of M*K and
 * K*N elements) of output batch b. */
typedef struct qd_nn_mm_plan {
    int64_t M, K, N, batch;
    int64_t *a_off, *b_off;
} qd_nn_mm_plan;
qd_status qd_nn_mm_plan_init(const qd_kernel_args *a, const qd_tensor *A, const qd_tensor *B,
                             const qd_tensor *Y, qd_nn_mm_plan *p);
void qd_nn_mm_plan_free(qd_nn_mm_plan *p);

/* saturate(round(v) + zp): round half to even (the current rounding mode,
 * round-to-nearest by default) before the zero point is added, as ONNX
 * says; clamped into [lo, hi]; NaN gives lo. */
static inline int32_t qd_nn_quantize(float v, int32_t zp, int32_t lo, int32_t hi)
{
    v = nearbyintf(v) + (float)zp;
    if (!(v >= (float)lo))
        return lo;
    if (v > (float)hi)
        return hi;
    return (int32_t)v;
}

/* Range of a quantized integer dtype; 0 when not a supported one. */
int qd_nn_qrange(qd_dtype dt, int32_t *lo, int32_t *hi);

#endif
