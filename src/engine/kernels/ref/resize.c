/* Reference Resize (nearest for any dtype; linear and cubic for float32;
 * every coordinate_transformation_mode and nearest_mode; scales or sizes;
 * opset 18 axes and keep_aspect_ratio_policy), DepthToSpace (DCR/CRD) and
 * SpaceToDepth.
 *
 * Resize is separable: every ONNX mode is a tensor product of 1-D
 * interpolations, so it runs as one 1-D pass per resized axis, each output
 * index reading a few taps (1 nearest, 2 linear, 4 cubic) of its input
 * row. */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/ref/nn_common.h"
#include "engine/kernels/ref/ref_nn.h"

enum { CT_HALF_PIXEL, CT_PYTORCH_HALF_PIXEL, CT_ALIGN_CORNERS, CT_ASYMMETRIC,
       CT_TF_HALF_PIXEL_FOR_NN, CT_TF_CROP_AND_RESIZE, CT_HALF_PIXEL_SYMMETRIC };
enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL, NM_SIMPLE };
enum { MODE_NEAREST, MODE_LINEAR, MODE_CUBIC };

typedef struct resize_attrs {
    int mode, ct, nm;
    float cubic_a, extrapolation;
    int64_t exclude_outside;
} resize_attrs;

/* The taps of one axis: out[o] = sum_t w[o*nt + t] * in[idx[o*nt + t]],
 * or the extrapolation value where extrap[o]. */
typedef struct axis_taps {
    int nt;
    int64_t *idx;
    float *w;
    unsigned char *extrap;
} axis_taps;

static int lookup(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

static qd_status read_attrs(const qd_kernel_args *a, resize_attrs *r)
{
    static const char *const modes[] = {"nearest", "linear", "cubic"};
    static const char *const cts[] = {"half_pixel", "pytorch_half_pixel", "align_corners",
                                      "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize",
                                      "half_pixel_symmetric"};
    static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    const char *mode, *ct, *nm;
    int64_t antialias;
    int old = a->graph->opset < 11;
    qd_status st;
    if ((st = qd_node_attr_string(a->graph, a->node, "mode", "nearest", &mode)) != QD_OK ||
        (st = qd_node_attr_string(a->graph, a->node, "coordinate_transformation_mode",
                                  old ? "asymmetric" : "half_pixel", &ct)) != QD_OK ||
        (st = qd_node_attr_string(a->graph, a->node, "nearest_mode", "round_prefer_floor",
                                  &nm)) != QD_OK ||
        (st = qd_node_attr_float(a->graph, a->node, "cubic_coeff_a", -0.75f, &r->cubic_a)) !=
            QD_OK ||
        (st = qd_node_attr_float(a->graph, a->node, "extrapolation_value", 0.0f,
                                 &r->extrapolation)) != QD_OK ||
        (st = qd_node_attr_int(a->graph, a->node, "exclude_outside", 0, &r->exclude_outside)) !=
            QD_OK ||
        (st = qd_node_attr_int(a->graph, a->node, "antialias", 0, &antialias)) != QD_OK)
        return st;
    r->mode = lookup(mode, modes, 3);
    r->ct = lookup(ct, cts, 7);
    r->nm = lookup(nm, nms, 4);
    if (r->mode < 0 || r->ct < 0 || r->nm < 0)
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "mode '%s', transformation '%s', nearest '%s'",
                          mode, ct, nm);
    /* Resize-10 had no nearest_mode: it truncated, or took ceil when
     * downsampling (onnxruntime's original rule). */
    if (old)
        r->nm = NM_SIMPLE;
    if (antialias && r->mode != MODE_NEAREST)
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "antialias is not supported");
    return QD_OK;
}

/* Output coordinate -> input coordinate along one axis. As in the ONNX
 * reference, the resized length is in * scale, not rounded: with scales
 * that do not divide evenly align_corners and friends use the fraction. */
static double transform(const resize_attrs *r, double x, int64_t in, int64_t out, double scale,
                        double roi_start, double roi_end)
{
    double lr = scale * (double)in;
    switch (r->ct) {
    case CT_PYTORCH_HALF_PIXEL: return lr > 1.0 ? (x + 0.5) / scale - 0.5 : 0.0;
    case CT_ALIGN_CORNERS: return lr > 1.0 ? x * (double)(in - 1) / (lr - 1.0) : 0.0;
    case CT_ASYMMETRIC: return x / scale;
    case CT_TF_HALF_PIXEL_FOR_NN: return (x + 0.5) / scale;
    case CT_TF_CROP_AND_RESIZE:
        return lr > 1.0 ? roi_start * (double)(in - 1) +
                              x * (roi_end - roi_start) * (double)(in - 1) / (lr - 1.0)
                        : 0.5 * (roi_start + roi_end) * (double)(in - 1);
    case CT_HALF_PIXEL_SYMMETRIC: {
        double adj = (double)out / lr;
        double center = (double)in / 2.0;
        return center * (1.0 - adj) + (x + 0.5) / scale - 0.5;
    }
    default: return (x + 0.5) / scale - 0.5;
    }
}

static int64_t nearest(int nm, double x, double scale)
{
    double f = floor(x);
    switch (nm) {
    case NM_ROUND_PREFER_CEIL: return (int64_t)(x - f == 0.5 ? f + 1.0 : floor(x + 0.5));
    case NM_FLOOR: return (int64_t)f;
    case NM_CEIL: return (int64_t)ceil(x);
    case NM_SIMPLE: return scale < 1.0 ? (int64_t)ceil(x) : (int64_t)x;
    default: return (int64_t)(x - f == 0.5 ? f : floor(x + 0.5));
    }
}

static int64_t clamp_idx(int64_t i, int64_t n)
{
    return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/* The ONNX cubic convolution weights of the taps at floor(x) - 1 ..
 * floor(x) + 2 for fractional offset t. */
static void cubic_coeffs(double t, double A, double c[4])
{
    double u = 1.0 - t;
    c[0] = ((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A;
    c[1] = ((A + 2) * t - (A + 3)) * t * t + 1;
    c[2] = ((A + 2) * u - (A + 3)) * u * u + 1;
    c[3] = ((A * (u + 1) - 5 * A) * (u + 1) + 8 * A) * (u + 1) - 4 * A;
}

/* Builds the taps of one axis; returns 1 when the axis maps each output
 * index to the same input index with weight 1 (nothing to do). */
static int build_taps(const resize_attrs *r, int64_t in, int64_t out, double scale, double rs,
                      double re, axis_taps *t)
{
    int identity = in == out;
    for (int64_t o = 0; o < out; o++) {
        double x = transform(r, (double)o, in, out, scale, rs, re);
        int64_t *idx = t->idx + o * t->nt;
        float *w = t->w + o * t->nt;
        t->extrap[o] = r->ct == CT_TF_CROP_AND_RESIZE && (x < 0.0 || x > (double)(in - 1));
        if (t->extrap[o]) {
            identity = 0;
            for (int k = 0; k < t->nt; k++) {
                idx[k] = 0;
                w[k] = 0.0f;
            }
            continue;
        }
        if (r->mode == MODE_NEAREST) {
            idx[0] = clamp_idx(nearest(r->nm, x, scale), in);
            w[0] = 1.0f;
            identity &= idx[0] == o;
        } else if (r->mode == MODE_LINEAR) {
            double f = floor(x), frac = x - f;
            idx[0] = clamp_idx((int64_t)f, in);
            idx[1] = clamp_idx((int64_t)f + 1, in);
            w[0] = (float)(1.0 - frac);
            w[1] = (float)frac;
            identity &= idx[0] == o && frac == 0.0;
        } else {
            double f = floor(x), c[4], sum = 0.0;
            cubic_coeffs(x - f, r->cubic_a, c);
            for (int k = 0; k < 4; k++) {
                int64_t i = (int64_t)f - 1 + k;
                if (r->exclude_outside && (i < 0 || i >= in))
                    c[k] = 0.0;
                sum += c[k];
                idx[k] = clamp_idx(i, in);
            }
            for (int k = 0; k < 4; k++)
                w[k] = (float)(r->exclude_outside && sum != 0.0 ? c[k] / sum : c[k]);
            identity &= x == (double)o;
        }
    }
    return identity;
}

/* One nearest pass along an axis: [outer, in, inner] -> [outer, out,
 * inner], rows copied whole (any dtype). */
static void pass_nearest(const char *src, char *dst, int64_t outer, int64_t in, int64_t out,
                         int64_t inner, size_t es, const axis_taps *t, const unsigned char *fill)
{
    size_t row = (size_t)inner * es;
    for (int64_t ob = 0; ob < outer; ob++) {
        const char *s = src + (size_t)(ob * in) * row;
        char *d = dst + (size_t)(ob * out) * row;
        for (int64_t o = 0; o < out; o++, d += row) {
            if (t->extrap[o]) {
                for (int64_t i = 0; i < inner; i++)
                    memcpy(d + (size_t)i * es, fill, es);
            } else {
                memcpy(d, s + (size_t)t->idx[o] * row, row);
            }
        }
    }
}

/* One linear/cubic pass along an axis (float32). */
static void pass_interp(const float *src, float *dst, int64_t outer, int64_t in, int64_t out,
                        int64_t inner, const axis_taps *t, float fill)
{
    QD_NN_OMP_FOR(outer * out * inner * t->nt > QD_NN_PAR_MIN)
    for (int64_t ob = 0; ob < outer; ob++) {
        const float *s = src + ob * in * inner;
        float *d = dst + ob * out * inner;
        for (int64_t o = 0; o < out; o++) {
            float *dr = d + o * inner;
            if (t->extrap[o]) {
                for (int64_t i = 0; i < inner; i++)
                    dr[i] = fill;
                continue;
            }
            for (int64_t i = 0; i < inner; i++)
                dr[i] = 0.0f;
            for (int k = 0; k < t->nt; k++) {
                float w = t->w[o * t->nt + k];
                if (w == 0.0f)
                    continue;
                const float *sr = s + t->idx[o * t->nt + k] * inner;
                for (int64_t i = 0; i < inner; i++)
                    dr[i] += w * sr[i];
            }
        }
    }
}

/* The extrapolation value stored as one element of dtype. */
static void make_fill(qd_dtype dt, double v, unsigned char out[8])
{
    memset(out, 0, 8);
    qd_tensor t = {.dtype = dt, .rank = 0, .data = out, .nbytes = qd_dtype_size(dt)};
    qd_tensor_set_f64(&t, 0, v);
}

qd_status qd_ref_resize(const qd_kernel_args *a)
{
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check_any(a, X, "input X")) != QD_OK ||
        (st = qd_nn_check(a, Y, X->dtype, "output Y")) != QD_OK)
        return st;
    int old = a->graph->opset < 11;
    const qd_tensor *roi = old ? NULL : qd_nn_in(a, 1);
    const qd_tensor *scales = qd_nn_in(a, old ? 1 : 2);
    const qd_tensor *sizes = old ? NULL : qd_nn_in(a, 3);
    if (scales && qd_nn_numel(scales) == 0)
        scales = NULL;
    if (sizes && qd_nn_numel(sizes) == 0)
        sizes = NULL;
    if (roi && qd_nn_numel(roi) == 0)
        roi = NULL;
    resize_attrs r;
    if ((st = read_attrs(a, &r)) != QD_OK)
        return st;
    if (r.mode != MODE_NEAREST && X->dtype != QD_DT_FLOAT)
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "%s interpolation of %s",
                          r.mode == MODE_LINEAR ? "linear" : "cubic", qd_dtype_name(X->dtype));
    int rank = X->rank;
    if (Y->rank != rank || rank == 0)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "Y must have X's rank");

    /* axes (opset 18): scales, sizes and roi list only these axes. */
    int64_t axes[QD_MAX_RANK];
    const int64_t *ax_attr;
    size_t n_ax;
    if ((st = qd_node_attr_ints(a->graph, a->node, "axes", &ax_attr, &n_ax)) != QD_OK)
        return st;
    if (n_ax > (size_t)rank)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "too many axes");
    if (!ax_attr) {
        n_ax = (size_t)rank;
        for (int i = 0; i < rank; i++)
            axes[i] = i;
    }
    for (size_t i = 0; ax_attr && i < n_ax; i++) {
        int d;
        if ((st = qd_nn_axis(a, ax_attr[i], rank, &d)) != QD_OK)
            return st;
        axes[i] = d;
    }
    double scale[QD_MAX_RANK], rs[QD_MAX_RANK], re[QD_MAX_RANK];
    for (int d = 0; d < rank; d++) {
        scale[d] = X->dims[d] ? (double)Y->dims[d] / (double)X->dims[d] : 1.0;
        rs[d] = 0.0;
        re[d] = 1.0;
    }
    if (scales) {
        if ((size_t)qd_nn_numel(scales) != n_ax || !qd_dtype_is_float(scales->dtype))
            return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "scales must hold %zu floats", n_ax);
        for (size_t i = 0; i < n_ax; i++)
            scale[axes[i]] = qd_tensor_get_f64(scales, (int64_t)i);
    } else if (sizes) {
        const char *policy;
        if ((st = qd_node_attr_string(a->graph, a->node, "keep_aspect_ratio_policy", "stretch",
                                      &policy)) != QD_OK)
            return st;
        if ((size_t)qd_nn_numel(sizes) != n_ax)
            return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "sizes must hold %zu values", n_ax);
        if (strcmp(policy, "stretch")) {
            /* One scale for every listed axis: the smallest / largest ratio. */
            int larger = !strcmp(policy, "not_smaller");
            double s = larger ? 0.0 : INFINITY;
            for (size_t i = 0; i < n_ax; i++) {
                double v = (double)qd_tensor_get_i64(sizes, (int64_t)i) /
                           (double)X->dims[axes[i]];
                s = larger ? fmax(s, v) : fmin(s, v);
            }
            for (size_t i = 0; i < n_ax; i++)
                scale[axes[i]] = s;
        }
    } else if (!old) {
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "one of scales and sizes is needed");
    }
    if (r.ct == CT_TF_CROP_AND_RESIZE) {
        if (!roi || (size_t)qd_nn_numel(roi) != 2 * n_ax || !qd_dtype_is_float(roi->dtype))
            return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "roi must hold %zu floats", 2 * n_ax);
        for (size_t i = 0; i < n_ax; i++) {
            rs[axes[i]] = qd_tensor_get_f64(roi, (int64_t)i);
            re[axes[i]] = qd_tensor_get_f64(roi, (int64_t)(i + n_ax));
        }
    }
    for (int d = 0; d < rank; d++)
        if (!(scale[d] > 0.0))
            return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "scale of axis %d is not positive", d);
    if (qd_nn_numel(Y) == 0)
        return QD_OK;
    if (qd_nn_numel(X) == 0)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "cannot resize an empty input");

    /* Plan the passes and the scratch they need. */
    int nt = r.mode == MODE_NEAREST ? 1 : r.mode == MODE_LINEAR ? 2 : 4;
    int64_t maxo = 1;
    for (int d = 0; d < rank; d++)
        maxo = Y->dims[d] > maxo ? Y->dims[d] : maxo;
    axis_taps t = {nt, qd_malloc((size_t)(maxo * nt) * sizeof(int64_t)),
                   qd_malloc((size_t)(maxo * nt) * sizeof(float)), qd_malloc((size_t)maxo)};
    int64_t cur[QD_MAX_RANK];
    memcpy(cur, X->dims, (size_t)rank * sizeof *cur);
    int64_t biggest = 1;
    int last = -1;
    for (int d = 0; d < rank; d++) {
        cur[d] = Y->dims[d];
        int64_t n = qd_nn_prod(rank, cur);
        biggest = n > biggest ? n : biggest;
    }
    size_t es = qd_dtype_size(X->dtype);
    char *buf[2] = {qd_malloc((size_t)biggest * es), qd_malloc((size_t)biggest * es)};
    if (!t.idx || !t.w || !t.extrap || !buf[0] || !buf[1]) {
        st = qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    unsigned char fill[8];
    make_fill(X->dtype, r.extrapolation, fill);

    memcpy(cur, X->dims, (size_t)rank * sizeof *cur);
    const char *src = X->data;
    int which = 0;
    /* Find the last axis that needs a pass, so that pass writes Y. */
    for (int d = 0; d < rank; d++) {
        if (!build_taps(&r, X->dims[d], Y->dims[d], scale[d], rs[d], re[d], &t))
            last = d;
    }
    for (int d = 0; d <= last; d++) {
        if (build_taps(&r, X->dims[d], Y->dims[d], scale[d], rs[d], re[d], &t))
            continue;
        int64_t outer = qd_nn_prod(d, cur), inner = qd_nn_prod(rank - d - 1, cur + d + 1);
        char *dst = d == last ? (char *)Y->data : buf[which];
        if (r.mode == MODE_NEAREST)
            pass_nearest(src, dst, outer, cur[d], Y->dims[d], inner, es, &t, fill);
        else
            pass_interp((const float *)src, (float *)dst, outer, cur[d], Y->dims[d], inner, &t,
                        r.extrapolation);
        cur[d] = Y->dims[d];
        src = dst;
        which ^= 1;
    }
    if (last < 0)
        memcpy(Y->data, X->data, Y->nbytes);
    st = QD_OK;
done:
    qd_free(t.idx);
    qd_free(t.w);
    qd_free(t.extrap);
    qd_free(buf[0]);
    qd_free(buf[1]);
    return st;
}

/* ---- DepthToSpace / SpaceToDepth ---- */

/* Copies element by element size: the two ops only move data. */
#define QD_D2S_COPY(T)                                                                             \
    do {                                                                                           \
        const T *xs = X->data;                                                                     \
        T *ys = Y->data;                                                                           \
        for (int64_t n = 0; n < N; n++)                                                            \
            for (int64_t c = 0; c < Cs; c++)                                                       \
                for (int64_t h = 0; h < Hs; h++)                                                   \
                    for (int64_t i = 0; i < b; i++)                                                \
                        for (int64_t w = 0; w < Ws; w++)                                           \
                            for (int64_t j = 0; j < b; j++) {                                      \
                                int64_t cd = crd ? c * b * b + i * b + j : (i * b + j) * Cs + c;   \
                                int64_t deep = ((n * Cs * b * b + cd) * Hs + h) * Ws + w;          \
                                int64_t flat =                                                     \
                                    ((n * Cs + c) * Hs * b + h * b + i) * Ws * b + w * b + j;      \
                                if (to_space)                                                      \
                                    ys[flat] = xs[deep];                                           \
                                else                                                               \
                                    ys[deep] = xs[flat];                                           \
                            }                                                                      \
    } while (0)

/* to_space: DepthToSpace ([N, C*b*b, H, W] -> [N, C, H*b, W*b]); else
 * SpaceToDepth, which orders the channels like DCR. */
static qd_status depth_space(const qd_kernel_args *a, int to_space)
{
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    qd_status st;
    if ((st = qd_nn_check_any(a, X, "input")) != QD_OK ||
        (st = qd_nn_check(a, Y, X->dtype, "output")) != QD_OK)
        return st;
    int64_t b;
    const char *mode = "DCR";
    if ((st = qd_node_attr_int(a->graph, a->node, "blocksize", 0, &b)) != QD_OK ||
        (to_space &&
         (st = qd_node_attr_string(a->graph, a->node, "mode", "DCR", &mode)) != QD_OK))
        return st;
    int crd = !strcmp(mode, "CRD");
    if (!crd && strcmp(mode, "DCR"))
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "mode '%s' is not DCR or CRD", mode);
    if (b <= 0 || X->rank != 4 || Y->rank != 4)
        return qd_nn_fail(a, QD_STATUS_INVALID_MODEL, "needs rank-4 tensors and blocksize > 0");
    /* The space-side shape [N, Cs, Hs*b, Ws*b]. */
    const qd_tensor *S = to_space ? Y : X, *D = to_space ? X : Y;
    int64_t N = S->dims[0], Cs = S->dims[1], Hs = D->dims[2], Ws = D->dims[3];
    if (D->dims[0] != N || D->dims[1] != Cs * b * b || S->dims[2] != Hs * b ||
        S->dims[3] != Ws * b)
        return qd_nn_fail(a, QD_STATUS_SHAPE_ERROR, "shapes do not agree with blocksize %lld",
                          (long long)b);
    switch (qd_dtype_size(X->dtype)) {
    case 1: QD_D2S_COPY(uint8_t); break;
    case 2: QD_D2S_COPY(uint16_t); break;
    case 4: QD_D2S_COPY(uint32_t); break;
    case 8: QD_D2S_COPY(uint64_t); break;
    default:
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "no reference kernel for %s",
                          qd_dtype_name(X->dtype));
    }
    return QD_OK;
}

qd_status qd_ref_depth_to_space(const qd_kernel_args *a)
{
    return depth_space(a, 1);
}

qd_status qd_ref_space_to_depth(const qd_kernel_args *a)
{
    return depth_space(a, 0);
}
