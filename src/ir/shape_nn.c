/* Shape functions of the network ops: convolution, linear algebra,
 * normalization, pooling, reductions, resizing and quantization. */
#include <math.h>
#include <string.h>

#include "ir/shape_internal.h"

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        qd_status st_ = (expr);                                                                    \
        if (st_ != QD_OK)                                                                          \
            return st_;                                                                            \
    } while (0)

#define SPATIAL_MAX (QD_MAX_RANK - 2)

/* ---- sliding windows (Conv, pools) ---- */

typedef enum auto_pad { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID } auto_pad;

typedef struct window {
    int k; /* spatial dims */
    int64_t kernel[SPATIAL_MAX]; /* -1 when unknown (weight shape unknown) */
    int64_t stride[SPATIAL_MAX];
    int64_t dilation[SPATIAL_MAX];
    int64_t pads[2 * SPATIAL_MAX]; /* begins then ends */
    int64_t output_padding[SPATIAL_MAX];
    auto_pad pad;
    int ceil_mode;
} window;

/* Reads an ints attribute of exactly `count` values into out (default def). */
static qd_status spatial_ints(qd_graph *g, const qd_node *n, const char *name, int count,
                              int64_t def, int64_t min, int64_t *out)
{
    const int64_t *v;
    size_t nv;
    TRY(qd_node_attr_ints(g, n, name, &v, &nv));
    if (v && nv != (size_t)count)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "attribute '%s' has %zu values, expected %d",
                            name, nv, count);
    for (int i = 0; i < count; i++) {
        out[i] = v ? v[i] : def;
        if (out[i] < min)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "attribute '%s' has invalid value %lld",
                                name, (long long)out[i]);
    }
    return QD_OK;
}

/* kernel: kernel_shape from the weight (NULL for pools, where the attribute
 * is required). */
static qd_status read_window(qd_graph *g, const qd_node *n, int k, const int64_t *kernel,
                             window *w)
{
    memset(w, 0, sizeof *w);
    w->k = k;
    const int64_t *ks;
    size_t nk;
    TRY(qd_node_attr_ints(g, n, "kernel_shape", &ks, &nk));
    if (ks) {
        if (nk != (size_t)k)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "kernel_shape has %zu values for %d spatial dims", nk, k);
        for (int i = 0; i < k; i++) {
            if (ks[i] <= 0)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "invalid kernel size %lld",
                                    (long long)ks[i]);
            w->kernel[i] = ks[i];
        }
    } else if (kernel) {
        memcpy(w->kernel, kernel, (size_t)k * sizeof *kernel);
    } else {
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "attribute 'kernel_shape' is required");
    }
    TRY(spatial_ints(g, n, "strides", k, 1, 1, w->stride));
    TRY(spatial_ints(g, n, "dilations", k, 1, 1, w->dilation));
    TRY(spatial_ints(g, n, "pads", 2 * k, 0, 0, w->pads));
    TRY(spatial_ints(g, n, "output_padding", k, 0, 0, w->output_padding));
    int64_t ceil_mode;
    TRY(qd_node_attr_int(g, n, "ceil_mode", 0, &ceil_mode));
    w->ceil_mode = ceil_mode != 0;
    const char *ap;
    TRY(qd_node_attr_string(g, n, "auto_pad", "NOTSET", &ap));
    if (strcmp(ap, "NOTSET") == 0 || ap[0] == '\0')
        w->pad = PAD_NOTSET;
    else if (strcmp(ap, "SAME_UPPER") == 0)
        w->pad = PAD_SAME_UPPER;
    else if (strcmp(ap, "SAME_LOWER") == 0)
        w->pad = PAD_SAME_LOWER;
    else if (strcmp(ap, "VALID") == 0)
        w->pad = PAD_VALID;
    else
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "unknown auto_pad '%s'", ap);
    return QD_OK;
}

/* Output size of spatial dim i for a forward window over an input of size
 * in (known). Negative result: error already set. */
static qd_status window_out(qd_graph *g, const qd_node *n, const window *w, int i, int64_t in,
                            int64_t *out)
{
    int64_t k = w->kernel[i], s = w->stride[i], eff;
    if (qd_mul_i64(w->dilation[i], k - 1, &eff) != 0 || qd_add_i64(eff, 1, &eff) != 0)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "kernel size overflows");
    switch (w->pad) {
    case PAD_SAME_UPPER:
    case PAD_SAME_LOWER: *out = in / s + (in % s != 0); return QD_OK;
    case PAD_VALID:
        if (in < eff)
            break;
        *out = (in - eff) / s + 1;
        return QD_OK;
    case PAD_NOTSET: {
        int64_t total;
        if (qd_add_i64(in, w->pads[i], &total) != 0 ||
            qd_add_i64(total, w->pads[i + w->k], &total) != 0)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "pads overflow");
        if (total < eff)
            break;
        total -= eff;
        *out = total / s + 1;
        if (w->ceil_mode && total % s != 0) {
            /* PyTorch and newer ONNX drop a last window that would start in
             * the end padding. */
            int64_t start, limit;
            *out += 1;
            if (qd_add_i64(in, w->pads[i], &limit) == 0 &&
                (qd_mul_i64(*out - 1, s, &start) != 0 || start >= limit))
                *out -= 1;
        }
        return QD_OK;
    }
    }
    return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                        "kernel %lld (dilated %lld) is larger than the padded input %lld at "
                        "spatial dim %d",
                        (long long)k, (long long)eff, (long long)in, i);
}

/* Whether a window keeps the size of any input (so symbols pass through). */
static int window_is_identity(const window *w, int i)
{
    if (w->stride[i] != 1)
        return 0;
    if (w->pad == PAD_SAME_UPPER || w->pad == PAD_SAME_LOWER)
        return 1;
    if (w->kernel[i] != 1)
        return 0;
    return w->pad == PAD_VALID || (w->pads[i] == 0 && w->pads[i + w->k] == 0);
}

/* Spatial dims of x (from index 2) through the window into out (from 2). */
static qd_status window_spatial(qd_graph *g, const qd_node *n, const window *w, const qd_shp *x,
                                qd_shp *out)
{
    for (int i = 0; i < w->k; i++) {
        out->d[2 + i] = -1;
        out->sym[2 + i] = NULL;
        if (x->rank < 0 || w->kernel[i] < 0)
            continue;
        int64_t in = x->d[2 + i];
        if (in < 0) {
            if (window_is_identity(w, i))
                qd_shp_copy_dim(out, 2 + i, x, 2 + i);
            continue;
        }
        TRY(window_out(g, n, w, i, in, &out->d[2 + i]));
    }
    return QD_OK;
}

/* The spatial rank of a windowed op from the input's or the weight's rank. */
static qd_status spatial_rank(qd_graph *g, const qd_node *n, const qd_shp *x, const qd_shp *wt,
                              int *k)
{
    int rank = x->rank >= 0 ? x->rank : wt ? wt->rank : -1;
    if (x->rank >= 0 && wt && wt->rank >= 0 && x->rank != wt->rank)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                            "input rank %d does not match weight rank %d", x->rank, wt->rank);
    if (rank >= 0 && rank < 3)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                            "input must have rank 3 or more (N, C, spatial...), has %d", rank);
    *k = rank < 0 ? -1 : rank - 2;
    return QD_OK;
}

/* Conv and QLinearConv: x [N, C, D...], w [M, C/group, k...]. */
static qd_status conv_shape(qd_graph *g, qd_node *n, const qd_value *xv, const qd_value *wv,
                            const qd_value *bias, qd_dtype dt)
{
    qd_shp x, w, out;
    qd_shp_of(xv, &x);
    qd_shp_of(wv, &w);
    int k;
    TRY(spatial_rank(g, n, &x, &w, &k));
    if (k < 0)
        return qd_set_output(g, n, 0, dt, NULL);
    int64_t group;
    TRY(qd_node_attr_int(g, n, "group", 1, &group));
    if (group <= 0)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "invalid group %lld", (long long)group);
    int64_t kernel[SPATIAL_MAX];
    for (int i = 0; i < k; i++)
        kernel[i] = w.rank >= 0 ? w.d[2 + i] : -1;
    window win;
    TRY(read_window(g, n, k, kernel, &win));
    if (w.rank >= 0) {
        for (int i = 0; i < k; i++) {
            if (w.d[2 + i] >= 0 && w.d[2 + i] != win.kernel[i])
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                    "kernel_shape %lld does not match the weight's %lld",
                                    (long long)win.kernel[i], (long long)w.d[2 + i]);
        }
        int64_t want;
        if (x.rank >= 0 && x.d[1] >= 0 && w.d[1] >= 0 &&
            (qd_mul_i64(w.d[1], group, &want) != 0 || want != x.d[1]))
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "input channels %lld do not match weight's %lld x group %lld",
                                (long long)x.d[1], (long long)w.d[1], (long long)group);
        if (w.d[0] >= 0 && w.d[0] % group != 0)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "output channels %lld are not divisible by group %lld",
                                (long long)w.d[0], (long long)group);
    }
    qd_shp b;
    qd_shp_of(bias, &b);
    if (b.rank >= 0 && (b.rank != 1 || (b.d[0] >= 0 && w.rank >= 0 && w.d[0] >= 0 &&
                                        b.d[0] != w.d[0])))
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "bias must be 1-D of size %lld",
                            (long long)(w.rank >= 0 ? w.d[0] : -1));
    qd_shp_unknown_dims(&out, k + 2);
    if (x.rank >= 0)
        qd_shp_copy_dim(&out, 0, &x, 0);
    if (w.rank >= 0)
        out.d[1] = w.d[0];
    TRY(window_spatial(g, n, &win, &x, &out));
    return qd_set_output(g, n, 0, dt, &out);
}

qd_status qd_shape_conv(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 2));
    qd_dtype dt = qd_input_dtype(n, 0) ? qd_input_dtype(n, 0) : qd_input_dtype(n, 1);
    return conv_shape(g, n, n->inputs[0], n->inputs[1], qd_input(n, 2), dt);
}

qd_status qd_shape_qlinear_conv(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 8));
    qd_dtype dt = qd_input_dtype(n, 7) ? qd_input_dtype(n, 7) : qd_input_dtype(n, 0);
    return conv_shape(g, n, n->inputs[0], n->inputs[3], NULL, dt);
}

/* x [N, C, D...], w [C, M/group, k...] -> [N, M, stride*(D-1) + ...]. */
qd_status qd_shape_conv_transpose(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 2));
    qd_shp x, w, out;
    qd_shp_of(n->inputs[0], &x);
    qd_shp_of(n->inputs[1], &w);
    qd_dtype dt = n->inputs[0]->dtype;
    int k;
    TRY(spatial_rank(g, n, &x, &w, &k));
    if (k < 0)
        return qd_set_output(g, n, 0, dt, NULL);
    int64_t group;
    TRY(qd_node_attr_int(g, n, "group", 1, &group));
    if (group <= 0)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "invalid group %lld", (long long)group);
    int64_t kernel[SPATIAL_MAX];
    for (int i = 0; i < k; i++)
        kernel[i] = w.rank >= 0 ? w.d[2 + i] : -1;
    window win;
    TRY(read_window(g, n, k, kernel, &win));
    if (x.rank >= 0 && w.rank >= 0 && x.d[1] >= 0 && w.d[0] >= 0 && x.d[1] != w.d[0])
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                            "input channels %lld do not match weight's %lld", (long long)x.d[1],
                            (long long)w.d[0]);
    qd_shp_unknown_dims(&out, k + 2);
    if (x.rank >= 0)
        qd_shp_copy_dim(&out, 0, &x, 0);
    if (w.rank >= 0 && w.d[1] >= 0 && qd_mul_i64(w.d[1], group, &out.d[1]) != 0)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "channel count overflows");
    const int64_t *os;
    size_t nos;
    TRY(qd_node_attr_ints(g, n, "output_shape", &os, &nos));
    if (os) {
        if (nos != (size_t)k && nos != (size_t)k + 2)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "output_shape has %zu values for %d spatial dims", nos, k);
        for (int i = 0; i < k; i++) {
            out.d[2 + i] = os[i + (int)nos - k];
            if (out.d[2 + i] < 0)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "invalid output_shape %lld",
                                    (long long)out.d[2 + i]);
        }
        return qd_set_output(g, n, 0, dt, &out);
    }
    for (int i = 0; i < k; i++) {
        int64_t in = x.rank >= 0 ? x.d[2 + i] : -1, s = win.stride[i], v;
        if (in < 0 || win.kernel[i] < 0)
            continue;
        if (win.pad == PAD_SAME_UPPER || win.pad == PAD_SAME_LOWER) {
            if (qd_mul_i64(in, s, &v) != 0)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "size overflows");
        } else {
            /* stride * (in - 1) + output_padding + dilated kernel - pads */
            int64_t pads = 0, eff;
            if (in == 0)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "input size is 0");
            if ((win.pad != PAD_VALID && qd_add_i64(win.pads[i], win.pads[i + k], &pads) != 0) ||
                qd_mul_i64(win.dilation[i], win.kernel[i] - 1, &eff) != 0 ||
                qd_add_i64(eff, 1, &eff) != 0 || qd_mul_i64(s, in - 1, &v) != 0 ||
                qd_add_i64(v, win.output_padding[i], &v) != 0 || qd_add_i64(v, eff, &v) != 0)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "output size overflows");
            v -= pads;
        }
        if (v <= 0)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "output size %lld at spatial dim %d is not positive",
                                (long long)v, i);
        out.d[2 + i] = v;
    }
    return qd_set_output(g, n, 0, dt, &out);
}

/* ---- linear algebra ---- */

qd_status qd_shape_gemm(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 2));
    qd_shp a, b, out;
    qd_shp_of(n->inputs[0], &a);
    qd_shp_of(n->inputs[1], &b);
    int64_t ta, tb;
    TRY(qd_node_attr_int(g, n, "transA", 0, &ta));
    TRY(qd_node_attr_int(g, n, "transB", 0, &tb));
    if ((a.rank >= 0 && a.rank != 2) || (b.rank >= 0 && b.rank != 2))
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "A and B must be 2-D, are %d-D and %d-D",
                            a.rank, b.rank);
    qd_shp_unknown_dims(&out, 2);
    int ka = ta ? 0 : 1, kb = tb ? 1 : 0;
    if (a.rank == 2)
        qd_shp_copy_dim(&out, 0, &a, 1 - ka);
    if (b.rank == 2)
        qd_shp_copy_dim(&out, 1, &b, 1 - kb);
    if (a.rank == 2 && b.rank == 2 && a.d[ka] >= 0 && b.d[kb] >= 0 && a.d[ka] != b.d[kb])
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                            "inner dims do not match: A has %lld, B has %lld (transA=%lld, "
                            "transB=%lld)",
                            (long long)a.d[ka], (long long)b.d[kb], (long long)ta, (long long)tb);
    qd_shp c, r;
    qd_shp_of(qd_input(n, 2), &c);
    if (c.rank > 2 || (c.rank >= 0 && qd_shp_broadcast(&c, &out, &r) != 0)) {
        char s1[64], s2[64];
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "C %s does not broadcast to %s",
                            qd_shp_str(&c, s1, sizeof s1), qd_shp_str(&out, s2, sizeof s2));
    }
    qd_dtype dt = qd_input_dtype(n, 0) ? qd_input_dtype(n, 0) : qd_input_dtype(n, 1);
    return qd_set_output(g, n, 0, dt, &out);
}

/* Numpy matmul: 1-D operands get a dim prepended / appended and removed
 * again; batch dims broadcast. */
static qd_status matmul_shape(qd_graph *g, const qd_node *n, const qd_value *av,
                              const qd_value *bv, qd_shp *out)
{
    qd_shp a, b;
    qd_shp_of(av, &a);
    qd_shp_of(bv, &b);
    qd_shp_unknown(out);
    if (a.rank == 0 || b.rank == 0)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "operands must not be scalars");
    if (a.rank < 0 || b.rank < 0)
        return QD_OK;
    int a1 = a.rank == 1, b1 = b.rank == 1;
    int ka = a.rank - 1, kb = b1 ? 0 : b.rank - 2;
    if (a.d[ka] >= 0 && b.d[kb] >= 0 && a.d[ka] != b.d[kb]) {
        char s1[128], s2[128];
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                            "inner dims do not match: %s x %s", qd_shp_str(&a, s1, sizeof s1),
                            qd_shp_str(&b, s2, sizeof s2));
    }
    qd_shp ba, bb, batch;
    qd_shp_unknown_dims(&ba, a1 ? 0 : a.rank - 2);
    qd_shp_unknown_dims(&bb, b1 ? 0 : b.rank - 2);
    for (int i = 0; i < ba.rank; i++)
        qd_shp_copy_dim(&ba, i, &a, i);
    for (int i = 0; i < bb.rank; i++)
        qd_shp_copy_dim(&bb, i, &b, i);
    if (qd_shp_broadcast(&ba, &bb, &batch) != 0) {
        char s1[128], s2[128];
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "batch dims of %s and %s do not broadcast",
                            qd_shp_str(&a, s1, sizeof s1), qd_shp_str(&b, s2, sizeof s2));
    }
    *out = batch;
    if (!a1)
        qd_shp_copy_dim(out, out->rank++, &a, a.rank - 2);
    if (!b1)
        qd_shp_copy_dim(out, out->rank++, &b, b.rank - 1);
    return QD_OK;
}

qd_status qd_shape_matmul(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 2));
    qd_dtype a = qd_input_dtype(n, 0), b = qd_input_dtype(n, 1);
    if (a && b && a != b)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "input types do not agree: %s and %s",
                            qd_dtype_name(a), qd_dtype_name(b));
    qd_shp out;
    TRY(matmul_shape(g, n, n->inputs[0], n->inputs[1], &out));
    return qd_set_output(g, n, 0, a ? a : b, &out);
}

qd_status qd_shape_qlinear_matmul(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 8));
    qd_shp out;
    TRY(matmul_shape(g, n, n->inputs[0], n->inputs[3], &out));
    qd_dtype dt = qd_input_dtype(n, 7) ? qd_input_dtype(n, 7) : qd_input_dtype(n, 0);
    return qd_set_output(g, n, 0, dt, &out);
}

/* ---- normalization and elementwise ---- */

qd_status qd_shape_batch_norm(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 5));
    qd_shp x, c;
    qd_shp_of(n->inputs[0], &x);
    if (x.rank == 0)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "input must have a channel dim");
    qd_shp_unknown_dims(&c, 1);
    if (x.rank >= 2)
        qd_shp_copy_dim(&c, 0, &x, 1);
    for (int i = 1; i < 5; i++) {
        const qd_value *p = n->inputs[i];
        if (p->rank >= 0 && (p->rank != 1 || (p->dims[0] >= 0 && c.d[0] >= 0 &&
                                              p->dims[0] != c.d[0])))
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "parameter '%s' must be 1-D of size %lld (channels)", p->name,
                                (long long)c.d[0]);
        if (c.d[0] < 0 && p->rank == 1)
            c.d[0] = p->dims[0];
    }
    TRY(qd_set_output(g, n, 0, n->inputs[0]->dtype, &x));
    /* Training-mode outputs (running/saved mean and variance) are [C]. */
    qd_dtype stat = qd_default_opset(g) >= 14 ? n->inputs[3]->dtype : n->inputs[0]->dtype;
    for (int i = 1; i < n->n_outputs; i++)
        TRY(qd_set_output(g, n, i, stat, &c));
    return QD_OK;
}

static qd_status layer_norm_stats(qd_graph *g, qd_node *n, const qd_shp *x)
{
    int64_t axis, stash;
    TRY(qd_node_attr_int(g, n, "axis", -1, &axis));
    TRY(qd_node_attr_int(g, n, "stash_type", QD_DT_FLOAT, &stash));
    if (x->rank < 0) {
        for (int i = 1; i < n->n_outputs; i++)
            TRY(qd_set_output(g, n, i, (qd_dtype)stash, NULL));
        return QD_OK;
    }
    int a;
    TRY(qd_axis(g, n, axis, x->rank, &a));
    /* Mean and InvStdDev keep the leading dims and have 1 from axis on. */
    qd_shp s = *x;
    for (int i = a; i < x->rank; i++) {
        s.d[i] = 1;
        s.sym[i] = NULL;
    }
    for (int i = 1; i < n->n_outputs; i++)
        TRY(qd_set_output(g, n, i, (qd_dtype)stash, &s));
    return QD_OK;
}

qd_status qd_shape_same_as_input(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->op == QD_OP_NOT ? QD_DT_BOOL : n->inputs[0]->dtype;
    TRY(qd_set_output(g, n, 0, dt, &x));
    if (n->op == QD_OP_LAYER_NORMALIZATION) {
        TRY(qd_need_inputs(g, n, 2));
        return layer_norm_stats(g, n, &x);
    }
    return QD_OK;
}

qd_status qd_shape_dropout(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x;
    qd_shp_of(n->inputs[0], &x);
    TRY(qd_set_output(g, n, 0, n->inputs[0]->dtype, &x));
    /* The mask is bool from opset 10, the data type before. */
    qd_dtype mask = qd_default_opset(g) >= 10 ? QD_DT_BOOL : n->inputs[0]->dtype;
    return qd_set_output(g, n, 1, mask, &x);
}

/* ---- pooling and reductions ---- */

qd_status qd_shape_pool(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->inputs[0]->dtype;
    const int64_t *ks;
    size_t nk;
    TRY(qd_node_attr_ints(g, n, "kernel_shape", &ks, &nk));
    if (!ks)
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "attribute 'kernel_shape' is required");
    if (nk > SPATIAL_MAX)
        return qd_node_fail(g, n, QD_STATUS_UNSUPPORTED, "%zu spatial dims are too many", nk);
    int k;
    TRY(spatial_rank(g, n, &x, NULL, &k));
    if (k < 0)
        k = (int)nk;
    window win;
    TRY(read_window(g, n, k, NULL, &win));
    qd_shp_unknown_dims(&out, k + 2);
    if (x.rank >= 0) {
        qd_shp_copy_dim(&out, 0, &x, 0);
        qd_shp_copy_dim(&out, 1, &x, 1);
    }
    TRY(window_spatial(g, n, &win, &x, &out));
    TRY(qd_set_output(g, n, 0, dt, &out));
    return qd_set_output(g, n, 1, QD_DT_INT64, &out); /* MaxPool's Indices */
}

qd_status qd_shape_global_pool(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x;
    qd_shp_of(n->inputs[0], &x);
    if (x.rank >= 0 && x.rank < 2)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "input must have rank 2 or more, has %d",
                            x.rank);
    for (int i = 2; i < x.rank; i++) {
        x.d[i] = 1;
        x.sym[i] = NULL;
    }
    return qd_set_output(g, n, 0, n->inputs[0]->dtype, &x);
}

qd_status qd_shape_reduce(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->inputs[0]->dtype;
    int64_t keepdims, noop;
    TRY(qd_node_attr_int(g, n, "keepdims", 1, &keepdims));
    TRY(qd_node_attr_int(g, n, "noop_with_empty_axes", 0, &noop));
    /* axes: an attribute (most ops until opset 18) or input 1 (ReduceSum
     * from 13, all from 18). */
    int64_t axes[4 * QD_MAX_RANK];
    int count;
    qd_list_state state;
    TRY(qd_int_list(g, n, "axes", 1, axes, 4 * QD_MAX_RANK, &count, &state));
    if (x.rank < 0)
        return qd_set_output(g, n, 0, dt, NULL);
    if (state == QD_LIST_UNKNOWN) {
        const qd_value *av = n->inputs[1];
        if (keepdims)
            qd_shp_unknown_dims(&out, x.rank);
        else if (av->rank == 1 && av->dims[0] >= 0 && av->dims[0] <= x.rank)
            qd_shp_unknown_dims(&out, x.rank - (int)av->dims[0]);
        else
            qd_shp_unknown(&out);
        return qd_set_output(g, n, 0, dt, &out);
    }
    if (count == 0 && noop)
        return qd_set_output(g, n, 0, dt, &x);
    int mask[QD_MAX_RANK];
    for (int i = 0; i < x.rank; i++)
        mask[i] = count == 0;
    for (int i = 0; i < count; i++) {
        int a;
        TRY(qd_axis(g, n, axes[i], x.rank, &a));
        mask[a] = 1;
    }
    qd_shp_unknown_dims(&out, 0);
    for (int i = 0; i < x.rank; i++) {
        if (!mask[i])
            qd_shp_copy_dim(&out, out.rank++, &x, i);
        else if (keepdims)
            out.d[out.rank++] = 1;
    }
    return qd_set_output(g, n, 0, dt, &out);
}

qd_status qd_shape_arg_reduce(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    int64_t axis, keepdims;
    TRY(qd_node_attr_int(g, n, "axis", 0, &axis));
    TRY(qd_node_attr_int(g, n, "keepdims", 1, &keepdims));
    if (x.rank < 0)
        return qd_set_output(g, n, 0, QD_DT_INT64, NULL);
    int a;
    TRY(qd_axis(g, n, axis, x.rank, &a));
    qd_shp_unknown_dims(&out, 0);
    for (int i = 0; i < x.rank; i++) {
        if (i != a)
            qd_shp_copy_dim(&out, out.rank++, &x, i);
        else if (keepdims)
            out.d[out.rank++] = 1;
    }
    return qd_set_output(g, n, 0, QD_DT_INT64, &out);
}

/* ---- resizing and rearranging ---- */

/* A constant float tensor's elements, for Resize scales. 1 read, 0 not. */
static int const_floats(const qd_value *v, double *out, int cap, int *count)
{
    *count = 0;
    if (!v || !v->konst || !qd_dtype_is_float(v->konst->dtype) || v->konst->rank != 1)
        return 0;
    int64_t c = v->konst->dims[0];
    if (c < 0 || c > cap)
        return 0;
    for (int64_t i = 0; i < c; i++)
        out[i] = qd_tensor_get_f64(v->konst, i);
    *count = (int)c;
    return 1;
}

/* An optional input given as an empty tensor counts as absent. */
static int is_empty_input(const qd_value *v)
{
    return !v || (v->rank == 1 && v->dims[0] == 0);
}

qd_status qd_shape_resize(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->inputs[0]->dtype;
    if (x.rank < 0)
        return qd_set_output(g, n, 0, dt, NULL);
    /* Opset 10: (X, scales). Opset 11+: (X, roi, scales, sizes). */
    int old = qd_default_opset(g) < 11;
    const qd_value *scales = qd_input(n, old ? 1 : 2), *sizes = old ? NULL : qd_input(n, 3);
    int64_t axes_list[QD_MAX_RANK];
    int na = 0;
    const int64_t *ax;
    size_t nax;
    TRY(qd_node_attr_ints(g, n, "axes", &ax, &nax)); /* opset 18 */
    if (ax) {
        if (nax > (size_t)x.rank)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "axes has %zu entries for rank %d",
                                nax, x.rank);
        for (size_t i = 0; i < nax; i++) {
            int a;
            TRY(qd_axis(g, n, ax[i], x.rank, &a));
            axes_list[i] = a;
        }
        na = (int)nax;
    } else {
        na = x.rank;
        for (int i = 0; i < na; i++)
            axes_list[i] = i;
    }
    out = x;
    if (!is_empty_input(sizes)) {
        qd_symvec sv;
        if (!qd_symvec_eval(sizes, &sv)) {
            qd_shp_unknown_dims(&out, x.rank);
            return qd_set_output(g, n, 0, dt, &out);
        }
        if (sv.rank != 1 || sv.n != na)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "sizes has %d entries for %d axes",
                                sv.n, na);
        for (int i = 0; i < na; i++) {
            int a = (int)axes_list[i];
            if (sv.known[i] && sv.v[i] < 0)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "invalid size %lld",
                                    (long long)sv.v[i]);
            out.d[a] = sv.known[i] ? sv.v[i] : -1;
            out.sym[a] = sv.known[i] ? NULL : sv.sym[i];
        }
        return qd_set_output(g, n, 0, dt, &out);
    }
    if (is_empty_input(scales))
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "needs scales or sizes");
    double sc[QD_MAX_RANK];
    int ns;
    if (!const_floats(scales, sc, QD_MAX_RANK, &ns)) {
        qd_shp_unknown_dims(&out, x.rank);
        return qd_set_output(g, n, 0, dt, &out);
    }
    if (ns != na)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "scales has %d entries for %d axes", ns,
                            na);
    for (int i = 0; i < na; i++) {
        int a = (int)axes_list[i];
        if (!(sc[i] > 0))
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "invalid scale %g", sc[i]);
        if (sc[i] == 1.0)
            continue;
        out.sym[a] = NULL;
        if (x.d[a] >= 0) {
            double v = floor((double)x.d[a] * sc[i]);
            if (!(v < 9e18))
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "size overflows");
            out.d[a] = (int64_t)v;
        } else {
            out.d[a] = -1;
        }
    }
    return qd_set_output(g, n, 0, dt, &out);
}

static qd_status block_size(qd_graph *g, const qd_node *n, int64_t *b)
{
    TRY(qd_node_attr_int(g, n, "blocksize", 0, b));
    if (*b <= 0 || *b > (1 << 20))
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL,
                            "attribute 'blocksize' is required and must be positive");
    return QD_OK;
}

qd_status qd_shape_depth_to_space(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    int64_t b;
    TRY(block_size(g, n, &b));
    if (x.rank >= 0 && x.rank != 4)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "input must be 4-D, is %d-D", x.rank);
    qd_shp_unknown_dims(&out, 4);
    if (x.rank == 4) {
        qd_shp_copy_dim(&out, 0, &x, 0);
        if (x.d[1] >= 0) {
            if (x.d[1] % (b * b) != 0)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                    "channels %lld are not divisible by blocksize^2 %lld",
                                    (long long)x.d[1], (long long)(b * b));
            out.d[1] = x.d[1] / (b * b);
        }
        for (int i = 2; i < 4; i++)
            if (x.d[i] >= 0 && qd_mul_i64(x.d[i], b, &out.d[i]) != 0)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "size overflows");
    }
    return qd_set_output(g, n, 0, n->inputs[0]->dtype, &out);
}

qd_status qd_shape_space_to_depth(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    int64_t b;
    TRY(block_size(g, n, &b));
    if (x.rank >= 0 && x.rank != 4)
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "input must be 4-D, is %d-D", x.rank);
    qd_shp_unknown_dims(&out, 4);
    if (x.rank == 4) {
        qd_shp_copy_dim(&out, 0, &x, 0);
        if (x.d[1] >= 0 && qd_mul_i64(x.d[1], b * b, &out.d[1]) != 0)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "size overflows");
        for (int i = 2; i < 4; i++) {
            if (x.d[i] < 0)
                continue;
            if (x.d[i] % b != 0)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                    "spatial size %lld is not divisible by blocksize %lld",
                                    (long long)x.d[i], (long long)b);
            out.d[i] = x.d[i] / b;
        }
    }
    return qd_set_output(g, n, 0, n->inputs[0]->dtype, &out);
}

qd_status qd_shape_topk(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    qd_shp x, out;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->inputs[0]->dtype;
    int64_t axis, kval = -1;
    TRY(qd_node_attr_int(g, n, "axis", -1, &axis));
    if (qd_node_attr(n, "k")) { /* opset 1 */
        TRY(qd_node_attr_int(g, n, "k", -1, &kval));
    } else {
        TRY(qd_need_inputs(g, n, 2));
        int64_t kv[1];
        int count;
        int r = qd_const_ints(n->inputs[1], kv, 1, &count);
        if (r < 0 || (r == 1 && count != 1))
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "K must hold one value");
        if (r == 1)
            kval = kv[0];
        if (r == 1 && kval < 0)
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "K is negative (%lld)",
                                (long long)kval);
    }
    if (x.rank < 0) {
        TRY(qd_set_output(g, n, 0, dt, NULL));
        return qd_set_output(g, n, 1, QD_DT_INT64, NULL);
    }
    int a;
    TRY(qd_axis(g, n, axis, x.rank, &a));
    if (kval >= 0 && x.d[a] >= 0 && kval > x.d[a])
        return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR, "K %lld exceeds axis size %lld",
                            (long long)kval, (long long)x.d[a]);
    out = x;
    out.d[a] = kval;
    out.sym[a] = NULL;
    TRY(qd_set_output(g, n, 0, dt, &out));
    return qd_set_output(g, n, 1, QD_DT_INT64, &out);
}

/* ---- Einsum ---- */

#define EINSUM_LETTERS 52

static char letter_char(int l) { return (char)(l < 26 ? 'a' + l : 'A' + l - 26); }

static int letter_index(char c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= 'A' && c <= 'Z')
        return 26 + c - 'A';
    return -1;
}

/* One term ("bij", "...ij"): letters in order, with the ellipsis position
 * (-1 when none). Returns -1 on a syntax error. */
typedef struct einsum_term {
    int letters[QD_MAX_RANK + 1];
    int n_letters;
    int ellipsis; /* index in letters before which the ellipsis dims go */
} einsum_term;

static int parse_term(const char *s, size_t len, einsum_term *t)
{
    t->n_letters = 0;
    t->ellipsis = -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ')
            continue;
        if (s[i] == '.') {
            if (t->ellipsis >= 0 || i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.')
                return -1;
            t->ellipsis = t->n_letters;
            i += 2;
            continue;
        }
        int l = letter_index(s[i]);
        if (l < 0 || t->n_letters > QD_MAX_RANK)
            return -1;
        t->letters[t->n_letters++] = l;
    }
    return 0;
}

qd_status qd_shape_einsum(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 1));
    const char *eq;
    TRY(qd_node_attr_string(g, n, "equation", NULL, &eq));
    if (!eq)
        return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "attribute 'equation' is required");
    qd_dtype dt = n->inputs[0]->dtype;
    const char *arrow = strstr(eq, "->");
    size_t lhs_len = arrow ? (size_t)(arrow - eq) : strlen(eq);

    int64_t dim[EINSUM_LETTERS];
    const char *sym[EINSUM_LETTERS] = {0};
    int count[EINSUM_LETTERS] = {0};
    for (int i = 0; i < EINSUM_LETTERS; i++)
        dim[i] = -2; /* not seen */
    qd_shp ell;
    qd_shp_unknown_dims(&ell, 0);
    int has_ellipsis = 0, ranks_known = 1;

    const char *p = eq;
    for (int in = 0; in < n->n_inputs; in++) {
        const char *end = memchr(p, ',', lhs_len - (size_t)(p - eq));
        size_t len = end ? (size_t)(end - p) : lhs_len - (size_t)(p - eq);
        einsum_term t;
        if (parse_term(p, len, &t) != 0 || (!end && in + 1 < n->n_inputs) ||
            (end && in + 1 == n->n_inputs))
            return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL,
                                "equation '%s' does not fit %d inputs", eq, n->n_inputs);
        p = end ? end + 1 : p + len;
        qd_shp x;
        qd_shp_of(n->inputs[in], &x);
        int n_ell = x.rank - t.n_letters;
        if (x.rank >= 0 && (n_ell < 0 || (t.ellipsis < 0 && n_ell != 0)))
            return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                "term %d of '%s' does not match rank %d", in, eq, x.rank);
        if (x.rank < 0)
            ranks_known = 0;
        for (int j = 0; j < t.n_letters; j++) {
            int l = t.letters[j];
            count[l]++;
            if (dim[l] == -2)
                dim[l] = -1;
            if (x.rank < 0)
                continue;
            int pos = j + (t.ellipsis >= 0 && j >= t.ellipsis ? n_ell : 0);
            int64_t d = x.d[pos];
            if (d >= 0 && dim[l] >= 0 && d != dim[l] && d != 1 && dim[l] != 1)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                    "label '%c' has sizes %lld and %lld", letter_char(l),
                                    (long long)dim[l], (long long)d);
            if (d >= 0 && (dim[l] < 0 || dim[l] == 1)) {
                dim[l] = d;
                sym[l] = NULL;
            } else if (d < 0 && dim[l] < 0 && !sym[l]) {
                sym[l] = x.sym[pos];
            }
        }
        if (t.ellipsis >= 0 && x.rank >= 0) {
            qd_shp part, r;
            qd_shp_unknown_dims(&part, n_ell);
            for (int j = 0; j < n_ell; j++)
                qd_shp_copy_dim(&part, j, &x, t.ellipsis + j);
            if (qd_shp_broadcast(&ell, &part, &r) != 0)
                return qd_node_fail(g, n, QD_STATUS_SHAPE_ERROR,
                                    "the '...' dims of '%s' do not broadcast", eq);
            ell = r;
        }
        has_ellipsis |= t.ellipsis >= 0;
    }
    if (!ranks_known && has_ellipsis)
        return qd_set_output(g, n, 0, dt, NULL);

    einsum_term o;
    if (arrow) {
        if (parse_term(arrow + 2, strlen(arrow + 2), &o) != 0)
            return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL, "bad output in equation '%s'", eq);
    } else {
        /* Implicit output: the ellipsis, then labels used once, sorted. */
        o.n_letters = 0;
        o.ellipsis = has_ellipsis ? 0 : -1;
        for (int l = 26; l < EINSUM_LETTERS; l++) /* upper case sorts first */
            if (count[l] == 1 && o.n_letters <= QD_MAX_RANK)
                o.letters[o.n_letters++] = l;
        for (int l = 0; l < 26; l++)
            if (count[l] == 1 && o.n_letters <= QD_MAX_RANK)
                o.letters[o.n_letters++] = l;
    }
    int n_ell = o.ellipsis >= 0 ? ell.rank : 0;
    int rank = o.n_letters + n_ell;
    if (rank > QD_MAX_RANK)
        return qd_node_fail(g, n, QD_STATUS_UNSUPPORTED, "output rank %d is too large", rank);
    qd_shp out;
    qd_shp_unknown_dims(&out, 0);
    for (int j = 0; j <= o.n_letters; j++) {
        if (j == o.ellipsis)
            for (int e = 0; e < n_ell; e++)
                qd_shp_copy_dim(&out, out.rank++, &ell, e);
        if (j == o.n_letters)
            break;
        int l = o.letters[j];
        if (dim[l] == -2)
            return qd_node_fail(g, n, QD_STATUS_INVALID_MODEL,
                                "output label of '%s' is not in any input", eq);
        out.d[out.rank] = dim[l];
        out.sym[out.rank] = dim[l] < 0 ? sym[l] : NULL;
        out.rank++;
    }
    return qd_set_output(g, n, 0, dt, &out);
}

/* ---- quantization ---- */

qd_status qd_shape_quantize_linear(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 2));
    qd_shp x;
    qd_shp_of(n->inputs[0], &x);
    /* The zero point fixes the output type; uint8 without one. */
    const qd_value *zp = qd_input(n, 2);
    qd_dtype dt = zp && zp->dtype ? zp->dtype : QD_DT_UINT8;
    return qd_set_output(g, n, 0, dt, &x);
}

qd_status qd_shape_dequantize_linear(qd_graph *g, qd_node *n)
{
    TRY(qd_need_inputs(g, n, 2));
    qd_shp x;
    qd_shp_of(n->inputs[0], &x);
    qd_dtype dt = n->inputs[1]->dtype && qd_dtype_is_float(n->inputs[1]->dtype)
                      ? n->inputs[1]->dtype
                      : QD_DT_FLOAT;
    return qd_set_output(g, n, 0, dt, &x);
}
