/* Conv (1-D, 2-D, 3-D; any group, strides, pads, auto_pad, dilations,
 * optional bias) in float32 on oneDNN, with the fused chain as post-ops.
 *
 * The weights are constant: prepare() lets oneDNN choose their layout
 * (format_tag_any) and reorders them once. Activations come in the engine's
 * layout (qd_dnnl_set_activation_layout). With NCHW activations oneDNN 2.6
 * has no fast direct kernel for most convs (it falls back to im2col+gemm,
 * "gemm:jit", 2-4x slower, 10-20x on depthwise), so by default the conv
 * then runs channels-last on shared scratch buffers: reorder in, conv,
 * reorder out. With NHWC activations it runs in place on the engine's
 * buffers.
 *
 * A full-shape residual Add is a `sum` post-op: the residual is put into
 * the destination first (reordered into the scratch destination, or copied
 * into the output unless the output already is the residual's buffer).
 * oneDNN 2.6's brgconv takes no full-tensor binary post-op and gemm:jit
 * computes one wrongly on nhwc, so binary post-ops are used only for
 * per-channel operands. What oneDNN would run slowly or wrongly (see
 * conv_pd) runs after the primitive (qd_dnnl_run_tail). */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/dnnl/dnnl_common.h"

#define SPATIAL_MAX QD_DNNL_SPATIAL_MAX


static int ints_attr(const qd_node *n, const char *name, int count, int64_t def, int64_t min,
                     int64_t *out, char *err, size_t esz)
{
    const qd_attr *at = qd_node_attr(n, name);
    if (at && (at->type != QD_ATTR_INTS || at->n != (size_t)count)) {
        snprintf(err, esz, "attribute '%s' must be %d ints", name, count);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        out[i] = at ? at->ints[i] : def;
        if (out[i] < min) {
            snprintf(err, esz, "attribute '%s' has invalid value %lld", name, (long long)out[i]);
            return -1;
        }
    }
    return 0;
}

int qd_dnnl_conv_read_geom(const qd_node *n, int rank, const int64_t *x, const int64_t *w,
                     const int64_t *y, qd_dnnl_conv_geom *g, char *err, size_t esz)
{
    memset(g, 0, sizeof *g);
    if (rank < 3 || rank > 2 + SPATIAL_MAX) {
        snprintf(err, esz, "rank %d convolutions are not supported", rank);
        return -1;
    }
    g->k = rank - 2;
    const qd_attr *at = qd_node_attr(n, "group");
    if (at && at->type != QD_ATTR_INT) {
        snprintf(err, esz, "attribute 'group' must be an int");
        return -1;
    }
    g->group = at ? at->i : 1;
    g->n = x[0];
    g->ic = x[1];
    g->oc = w[0];
    if (g->group <= 0 || g->oc % g->group != 0 || w[1] * g->group != g->ic || y[1] != g->oc ||
        y[0] != g->n) {
        snprintf(err, esz, "channels do not match (input %lld, weight %lldx%lld, group %lld)",
                 (long long)g->ic, (long long)w[0], (long long)w[1], (long long)g->group);
        return -1;
    }
    int64_t ks[SPATIAL_MAX], pads[2 * SPATIAL_MAX];
    at = qd_node_attr(n, "kernel_shape");
    if (at && ints_attr(n, "kernel_shape", g->k, 1, 1, ks, err, esz))
        return -1;
    if (ints_attr(n, "strides", g->k, 1, 1, g->stride, err, esz) ||
        ints_attr(n, "dilations", g->k, 1, 1, g->dil, err, esz) ||
        ints_attr(n, "pads", 2 * g->k, 0, 0, pads, err, esz))
        return -1;
    const char *ap = "NOTSET";
    at = qd_node_attr(n, "auto_pad");
    if (at) {
        if (at->type != QD_ATTR_STRING) {
            snprintf(err, esz, "attribute 'auto_pad' must be a string");
            return -1;
        }
        ap = at->s[0] ? at->s : "NOTSET";
    }
    int same_upper = strcmp(ap, "SAME_UPPER") == 0, same_lower = strcmp(ap, "SAME_LOWER") == 0;
    int valid = strcmp(ap, "VALID") == 0;
    if (!same_upper && !same_lower && !valid && strcmp(ap, "NOTSET") != 0) {
        snprintf(err, esz, "unknown auto_pad '%s'", ap);
        return -1;
    }
    for (int i = 0; i < g->k; i++) {
        g->in[i] = x[2 + i];
        g->out[i] = y[2 + i];
        g->kernel[i] = w[2 + i];
        if (qd_node_attr(n, "kernel_shape") && ks[i] != g->kernel[i]) {
            snprintf(err, esz, "kernel_shape does not match the weight");
            return -1;
        }
        int64_t eff = (g->kernel[i] - 1) * g->dil[i] + 1;
        if (same_upper || same_lower) {
            int64_t total = (g->out[i] - 1) * g->stride[i] + eff - g->in[i];
            if (total < 0)
                total = 0;
            g->pl[i] = same_upper ? total / 2 : total - total / 2;
            g->pr[i] = total - g->pl[i];
        } else if (valid) {
            g->pl[i] = g->pr[i] = 0;
        } else {
            g->pl[i] = pads[i];
            g->pr[i] = pads[i + g->k];
        }
        int64_t span = g->in[i] + g->pl[i] + g->pr[i] - eff;
        if (g->in[i] <= 0 || g->out[i] <= 0 || span < 0 || span / g->stride[i] + 1 != g->out[i]) {
            snprintf(err, esz, "output size %lld does not match the window at spatial dim %d",
                     (long long)g->out[i], i);
            return -1;
        }
        if (g->pl[i] >= eff || (g->out[i] - 1) * g->stride[i] - g->pl[i] >= g->in[i])
            g->fullpad = 1;
    }
    return 0;
}

typedef struct conv_state {
    qd_dnnl_state_head head;
    dnnl_primitive_t conv;
    dnnl_primitive_t to_internal, from_internal, res_to_internal; /* internal layout only */
    dnnl_memory_t src_user, dst_user, res_user;
    dnnl_memory_t src_int, dst_int;
    dnnl_memory_t wei, bias;
    dnnl_memory_t bin[QD_DNNL_MAX_BINARY];
    qd_dnnl_chain chain;
    int internal;
    int dst_direct; /* internal input only: the conv writes the engine's buffer */
    int has_bias;
    qd_dnnl_layout layout; /* of the engine's activations, at prepare */
    int reserved[2];
    int rank;
    int64_t in_dims[2 + SPATIAL_MAX], out_dims[2 + SPATIAL_MAX];
    /* Space-to-depth stem (see s2d_eligible): the input is rearranged into
     * s2d_buf, [N, Hs, Ws, 4*C] channels-last, before a stride-1 conv. */
    int s2d;
    float *s2d_buf;
    int64_t s2d_h, s2d_w, s2d_pt, s2d_pl;
} conv_state;

static void conv_release(void *p)
{
    conv_state *s = p;
    if (!s)
        return;
    if (s->conv)
        dnnl_primitive_destroy(s->conv);
    dnnl_primitive_t prims[] = {s->to_internal, s->from_internal, s->res_to_internal};
    for (size_t i = 0; i < sizeof prims / sizeof *prims; i++)
        if (prims[i])
            dnnl_primitive_destroy(prims[i]);
    dnnl_memory_t mems[] = {s->src_user, s->dst_user, s->res_user, s->src_int,
                            s->dst_int,  s->wei,      s->bias};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
    for (int i = 0; i < QD_DNNL_MAX_BINARY; i++)
        if (s->bin[i])
            dnnl_memory_destroy(s->bin[i]);
    for (int i = 0; i < 2; i++)
        if (s->reserved[i])
            qd_dnnl_scratch_unreserve(i);
    qd_free(s->s2d_buf);
    qd_free(s);
}

/* ---- space-to-depth stem ----
 * A stride-2 conv on few channels (ResNet's 7x7 stem on RGB) keeps oneDNN's
 * kernels at a third of their speed: with 3 input channels the vector units
 * sit mostly idle. The same conv is a stride-1 conv with ceil(k/2) taps on
 * 4*C channels of the 2x2 space-to-depth of the padded input:
 *   y[o][y][x] = sum W[o][c][2qy+ry][2qx+rx] * S[c,ry,rx][y+qy][x+qx],
 *   S[c,ry,rx][i][j] = Xpadded[c][2i+ry][2j+rx]  (taps past k are zero). */
#define S2D_MAX_CHANNELS 4

static int s2d_eligible_geom(const qd_dnnl_conv_geom *gm)
{
    return gm->k == 2 && gm->group == 1 && gm->ic <= S2D_MAX_CHANNELS && gm->stride[0] == 2 &&
           gm->stride[1] == 2 && gm->dil[0] == 1 && gm->dil[1] == 1 && gm->kernel[0] >= 5 &&
           gm->kernel[1] >= 5 && !gm->fullpad;
}

/* Rearranges x (NCHW or NHWC) into the zero-padded S2D buffer. */
static void s2d_fill(const conv_state *s, const qd_tensor *x)
{
    int64_t n_img = x->dims[0], c = x->dims[1], h = x->dims[2], w = x->dims[3];
    int64_t hs = s->s2d_h, ws = s->s2d_w, cs = 4 * c;
    const float *src = x->data;
    int nhwc = x->layout == QD_LAYOUT_NHWC;
    int64_t rows = n_img * hs;
#pragma omp parallel for schedule(static) if (rows > 8)
    for (int64_t r = 0; r < rows; r++) {
        int64_t b = r / hs, i = r % hs;
        float *out = s->s2d_buf + r * ws * cs;
        for (int64_t j = 0; j < ws; j++) {
            for (int64_t ch = 0; ch < c; ch++) {
                for (int q = 0; q < 4; q++) {
                    int64_t yy = 2 * i + q / 2 - s->s2d_pt, xx = 2 * j + q % 2 - s->s2d_pl;
                    float v = 0.0f;
                    if (yy >= 0 && yy < h && xx >= 0 && xx < w)
                        v = nhwc ? src[((b * h + yy) * w + xx) * c + ch]
                                 : src[((b * c + ch) * h + yy) * w + xx];
                    out[j * cs + ch * 4 + q] = v;
                }
            }
        }
    }
}

/* The S2D weights [O, 4*C, ceil(kh/2), ceil(kw/2)] from [O, C, kh, kw]. */
static float *s2d_weights(const qd_dnnl_conv_geom *gm, const float *w, int64_t *dims)
{
    int64_t o = gm->oc, c = gm->ic, kh = gm->kernel[0], kw = gm->kernel[1];
    int64_t qh = (kh + 1) / 2, qw = (kw + 1) / 2;
    dims[0] = o;
    dims[1] = 4 * c;
    dims[2] = qh;
    dims[3] = qw;
    float *out = qd_calloc((size_t)(o * 4 * c * qh * qw), sizeof *out);
    if (!out)
        return NULL;
    for (int64_t oo = 0; oo < o; oo++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int q = 0; q < 4; q++)
                for (int64_t a = 0; a < qh; a++)
                    for (int64_t b = 0; b < qw; b++) {
                        int64_t ky = 2 * a + q / 2, kx = 2 * b + q % 2;
                        if (ky < kh && kx < kw)
                            out[((oo * 4 * c + ch * 4 + q) * qh + a) * qw + b] =
                                w[((oo * c + ch) * kh + ky) * kw + kx];
                    }
    return out;
}

int qd_dnnl_conv_reads_plain_src(const qd_node *n)
{
    const qd_value *x = n->n_inputs > 0 ? n->inputs[0] : NULL;
    const qd_value *w = n->n_inputs > 1 ? n->inputs[1] : NULL;
    const qd_value *y = n->n_outputs > 0 ? n->outputs[0] : NULL;
    if (!x || !w || !y || x->rank != 4 || w->rank != 4 || y->rank != 4)
        return 0;
    qd_dnnl_conv_geom gm;
    char err[200];
    return qd_dnnl_conv_read_geom(n, 4, x->dims, w->dims, y->dims, &gm, err, sizeof err) == 0 &&
           s2d_eligible_geom(&gm);
}

/* 3x3 stride-1 convs of 64+ channels: oneDNN's Winograd kernels
 * (jit_wino_4x3, jit_fp32_wino_2x3) do a third to half fewer multiplies and
 * ran 1.2-1.7x faster than brgconv on ResNet-50's layers here, reorders
 * into their blocked layout included. convolution_auto never picks them
 * in oneDNN 2.6, so they are asked for by name. Winograd rounds
 * differently from direct (relative error ~1e-6 on these layers). */
static int winograd_eligible(const qd_dnnl_conv_geom *gm, int s2d)
{
    return gm->k == 2 && !s2d && gm->group == 1 && gm->kernel[0] == 3 && gm->kernel[1] == 3 &&
           gm->stride[0] == 1 && gm->stride[1] == 1 && gm->dil[0] == 1 && gm->dil[1] == 1 &&
           gm->ic >= 64 && gm->oc >= 64 && !gm->fullpad &&
           qd_dnnl_conv_policy_get() == QD_DNNL_CONV_AUTO;
}

/* Creates the conv primitive descriptor for src/dst descriptors. With
 * alg other than direct, an implementation oneDNN does not have is
 * QD_STATUS_UNSUPPORTED without an error on the graph (the caller then
 * falls back to direct). */
static qd_status conv_pd(const qd_kernel_args *a, const qd_dnnl_conv_geom *gm,
                         dnnl_alg_kind_t alg, const dnnl_memory_desc_t *src,
                         const dnnl_memory_desc_t *wei,
                         const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *dst,
                         const dnnl_memory_desc_t *full_md, qd_dnnl_chain *chain,
                         dnnl_primitive_desc_t *out)
{
    qd_status st = QD_OK;
    dnnl_engine_t eng;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_attr_t attr = NULL;
    *out = NULL;
    if ((st = qd_dnnl_get(a->graph, a->node, &eng, NULL)) != QD_OK)
        return st;
    dnnl_dims_t strides, dil, pl, pr;
    for (int i = 0; i < gm->k; i++) {
        strides[i] = gm->stride[i];
        dil[i] = gm->dil[i] - 1; /* oneDNN counts the gaps */
        pl[i] = gm->pl[i];
        pr[i] = gm->pr[i];
    }
    dnnl_convolution_desc_t cd;
    int quiet = alg != dnnl_convolution_direct;
    if (quiet && dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, alg, src,
                                                            wei, bias, dst, strides, dil, pl,
                                                            pr) != dnnl_success)
        return QD_STATUS_UNSUPPORTED;
    QD_DNNL_TRY(a->graph, a->node,
                dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, alg, src,
                                                           wei, bias, dst, strides, dil, pl, pr));
    /* Fuse as much as oneDNN runs fast and right: step down until the
     * implementation is neither the reference one nor gemm:jit with a
     * binary post-op (wrong on ndhwc). Level 1 adds per-channel operands
     * in the tail, level 2 also the residual, level 3 fuses nothing. */
    for (int level = 0; level <= 3; level++) {
        qd_dnnl_residual res =
            gm->fullpad || level >= 2 ? QD_DNNL_RESIDUAL_TAIL : QD_DNNL_RESIDUAL_SUM;
        QD_DNNL_TRY(a->graph, a->node, dnnl_post_ops_create(&po));
        if ((st = qd_dnnl_chain_post_ops(a, po, dst, full_md, res, level == 0,
                                         level == 3 ? 0 : a->n_fused, chain)) != QD_OK)
            goto fail;
        QD_DNNL_TRY(a->graph, a->node, dnnl_primitive_attr_create(&attr));
        QD_DNNL_TRY(a->graph, a->node, dnnl_primitive_attr_set_post_ops(attr, po));
        if (quiet && dnnl_primitive_desc_create(out, &cd, attr, eng, NULL) != dnnl_success) {
            *out = NULL;
            st = QD_STATUS_UNSUPPORTED;
            goto fail;
        }
        if (!quiet)
            QD_DNNL_TRY(a->graph, a->node,
                        dnnl_primitive_desc_create(out, &cd, attr, eng, NULL));
        const char *impl = qd_dnnl_impl_name(*out);
        int is_ref = strncmp(impl, "ref", 3) == 0;
        int bad_binary = chain->n_binary > 0 && strstr(impl, "gemm") != NULL;
        if (level == 3 || (!is_ref && !bad_binary) || chain->tail_from == 0)
            break;
        qd_dnnl_destroy_desc(*out, attr, po);
        *out = NULL;
        attr = NULL;
        po = NULL;
    }
fail:
    qd_dnnl_destroy_desc(NULL, attr, po);
    return st;
}

static qd_status conv_prepare(const qd_kernel_args *a, void **state)
{
    qd_status st = QD_OK;
    qd_graph *g = a->graph;
    const qd_node *n = a->node;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_engine_t eng;
    float *s2d_w = NULL; /* rearranged weights, until reordered */
    *state = NULL;
    if ((st = qd_dnnl_get(g, n, &eng, NULL)) != QD_OK)
        return st;
    const qd_tensor *x = a->n_inputs > 0 ? a->inputs[0] : NULL;
    const qd_tensor *w = a->n_inputs > 1 ? a->inputs[1] : NULL;
    const qd_tensor *b = a->node->n_inputs > 2 ? a->inputs[2] : NULL;
    const qd_tensor *y = a->n_outputs > 0 ? a->outputs[0] : NULL;
    if (!x || !w || !y || !w->data || x->dtype != QD_DT_FLOAT || w->dtype != QD_DT_FLOAT ||
        y->dtype != QD_DT_FLOAT || (b && b->dtype != QD_DT_FLOAT) || x->rank != w->rank ||
        x->rank != y->rank)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                             "node '%s' (%s): the oneDNN conv needs float32 X, W (constant), Y "
                             "of one rank",
                             n->name, n->op_type);
    qd_dnnl_conv_geom gm;
    char err[200];
    if (qd_dnnl_conv_read_geom(n, x->rank, x->dims, w->dims, y->dims, &gm, err, sizeof err) != 0)
        return qd_graph_fail(g, QD_STATUS_SHAPE_ERROR, "node '%s' (%s): %s", n->name, n->op_type,
                             err);
    if (b && (b->rank != 1 || b->dims[0] != gm.oc))
        return qd_graph_fail(g, QD_STATUS_SHAPE_ERROR, "node '%s' (%s): bias must be 1-D of %lld",
                             n->name, n->op_type, (long long)gm.oc);

    conv_state *s = qd_calloc(1, sizeof *s);
    if (!s)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "node '%s' (%s): out of memory", n->name,
                             n->op_type);
    s->rank = x->rank;
    memcpy(s->in_dims, x->dims, (size_t)x->rank * sizeof *x->dims);
    memcpy(s->out_dims, y->dims, (size_t)y->rank * sizeof *y->dims);
    s->has_bias = b != NULL;

    /* Descriptors. */
    dnnl_memory_desc_t src_user, dst_user, src_int, dst_int, wei_user, wei_any, bias_md;
    dnnl_dims_t xd, yd, wd;
    int rank = x->rank;
    for (int i = 0; i < rank; i++) {
        xd[i] = x->dims[i];
        yd[i] = y->dims[i];
    }
    const float *wdata = w->data;
    if (s2d_eligible_geom(&gm)) {
        /* The stride-1 conv on the S2D input: exactly the rows it needs. */
        int64_t qh = (gm.kernel[0] + 1) / 2, qw = (gm.kernel[1] + 1) / 2;
        s->s2d = 1;
        s->s2d_pt = gm.pl[0];
        s->s2d_pl = gm.pl[1];
        s->s2d_h = gm.out[0] + qh - 1;
        s->s2d_w = gm.out[1] + qw - 1;
        int64_t wdims[4];
        s2d_w = s2d_weights(&gm, w->data, wdims);
        s->s2d_buf = qd_malloc((size_t)(gm.n * s->s2d_h * s->s2d_w * 4 * gm.ic) * sizeof(float));
        if (!s2d_w || !s->s2d_buf) {
            qd_free(s2d_w);
            st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "node '%s' (%s): out of memory",
                               n->name, n->op_type);
            goto fail;
        }
        wdata = s2d_w;
        gm.ic *= 4;
        gm.in[0] = s->s2d_h;
        gm.in[1] = s->s2d_w;
        for (int i = 0; i < 2; i++) {
            gm.kernel[i] = i ? qw : qh;
            gm.stride[i] = 1;
            gm.pl[i] = gm.pr[i] = 0;
        }
        xd[1] = gm.ic;
        xd[2] = s->s2d_h;
        xd[3] = s->s2d_w;
    }
    int wrank = gm.group > 1 ? rank + 1 : rank;
    if (gm.group > 1) {
        wd[0] = gm.group;
        wd[1] = gm.oc / gm.group;
        wd[2] = gm.ic / gm.group;
        for (int i = 0; i < gm.k; i++)
            wd[3 + i] = gm.kernel[i];
    } else {
        for (int i = 0; i < rank; i++)
            wd[i] = w->dims[i];
        if (s->s2d)
            for (int i = 1; i < rank; i++)
                wd[i] = i == 1 ? gm.ic : gm.kernel[i - 2];
    }
    /* Each tensor says how its data is laid out (the engine plans NHWC
     * between convs); plain tensors follow the process-wide default. */
    qd_dnnl_layout layout = y->layout == QD_LAYOUT_NHWC ? QD_DNNL_NHWC : qd_dnnl_activation_layout();
    qd_dnnl_layout src_layout = x->layout == QD_LAYOUT_NHWC || s->s2d
                                    ? QD_DNNL_NHWC
                                    : qd_dnnl_activation_layout();
    s->layout = layout;
    dnnl_format_tag_t user_tag = qd_dnnl_act_tag(layout, rank);
    dnnl_format_tag_t cl_tag = qd_dnnl_act_tag(QD_DNNL_NHWC, rank);
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&src_user, rank, xd, dnnl_f32,
                                                   qd_dnnl_act_tag(src_layout, rank)));
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&dst_user, rank, yd, dnnl_f32, user_tag));
    QD_DNNL_TRY(g, n, qd_dnnl_md_plain(&wei_user, wrank, wd));
    QD_DNNL_TRY(g, n,
                dnnl_memory_desc_init_by_tag(&wei_any, wrank, wd, dnnl_f32, dnnl_format_tag_any));
    dnnl_dims_t bd = {gm.oc};
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&bias_md, 1, bd, dnnl_f32, dnnl_a));

    /* Direct on the engine's layout, or channels-last inside. */
    qd_dnnl_conv_policy policy = qd_dnnl_conv_policy_get();
    int internal = layout == QD_DNNL_NCHW && src_layout == QD_DNNL_NCHW &&
                   policy == QD_DNNL_CONV_CHANNELS_LAST;
    /* Depthwise convs stay float32: memory-bound, bf16 would only add the
     * conversion of their input. */
    int depthwise = gm.group > 1 && gm.group == gm.ic;
    if (a->bf16 && !depthwise) {
        /* bfloat16: the input is converted into a bf16 channels-last copy,
         * the weights are packed as bf16, and the conv accumulates in
         * float32 and writes float32, into the engine's buffer when that is
         * channels-last. */
        QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&src_int, rank, xd, dnnl_bf16, cl_tag));
        QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&wei_any, wrank, wd, dnnl_bf16,
                                                       dnnl_format_tag_any));
        QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&dst_int, rank, yd, dnnl_f32, cl_tag));
        s->dst_direct = layout == QD_DNNL_NHWC;
        if ((st = conv_pd(a, &gm, dnnl_convolution_direct, &src_int, &wei_any,
                          b ? &bias_md : NULL, s->dst_direct ? &dst_user : &dst_int, &dst_user,
                          &s->chain, &pd)) != QD_OK)
            goto fail;
        internal = s->internal = 1;
    } else if (winograd_eligible(&gm, s->s2d)) {
        /* Internal in the blocked layout the Winograd kernel chooses. */
        QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&src_int, rank, xd, dnnl_f32,
                                                       dnnl_format_tag_any));
        QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&dst_int, rank, yd, dnnl_f32,
                                                       dnnl_format_tag_any));
        st = conv_pd(a, &gm, dnnl_convolution_winograd, &src_int, &wei_any,
                     b ? &bias_md : NULL, &dst_int, &dst_user, &s->chain, &pd);
        if (st == QD_OK && !strstr(qd_dnnl_impl_name(pd), "wino")) {
            dnnl_primitive_desc_destroy(pd);
            pd = NULL;
        }
        if (st != QD_OK && st != QD_STATUS_UNSUPPORTED)
            goto fail;
        st = QD_OK;
        internal = s->internal = pd != NULL;
    }
    if (!internal) {
        if ((st = conv_pd(a, &gm, dnnl_convolution_direct, &src_user, &wei_any,
                          b ? &bias_md : NULL, &dst_user, &dst_user, &s->chain, &pd)) != QD_OK)
            goto fail;
        if (layout == QD_DNNL_NCHW && src_layout == QD_DNNL_NCHW && policy == QD_DNNL_CONV_AUTO &&
            qd_dnnl_impl_is_slow(pd)) {
            dnnl_primitive_desc_destroy(pd);
            pd = NULL;
            internal = 1;
        }
    }
    if (internal && !pd) {
        QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&src_int, rank, xd, dnnl_f32, cl_tag));
        QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&dst_int, rank, yd, dnnl_f32, cl_tag));
        if ((st = conv_pd(a, &gm, dnnl_convolution_direct, &src_int, &wei_any,
                          b ? &bias_md : NULL, &dst_int, &dst_user, &s->chain, &pd)) != QD_OK)
            goto fail;
        s->internal = 1;
    }
    s->head.impl = qd_dnnl_impl_name(pd);

    /* Weights, once, in the layout the primitive chose. */
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    st = qd_dnnl_reorder_const(g, n, &wei_user, wdata, wmd, &s->wei);
    qd_free(s2d_w);
    s2d_w = NULL;
    if (st != QD_OK)
        goto fail;
    if (b)
        QD_DNNL_TRY(g, n, dnnl_memory_create(&s->bias, &bias_md, eng, DNNL_MEMORY_NONE));
    QD_DNNL_TRY(g, n, dnnl_memory_create(&s->src_user, &src_user, eng, DNNL_MEMORY_NONE));
    QD_DNNL_TRY(g, n, dnnl_memory_create(&s->dst_user, &dst_user, eng, DNNL_MEMORY_NONE));
    if ((st = qd_dnnl_create_binary(a, pd, &s->chain, s->bin)) != QD_OK)
        goto fail;
    if (s->internal) {
        const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        const dnnl_memory_desc_t *dmd = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        QD_DNNL_TRY(g, n, dnnl_memory_create(&s->src_int, smd, eng, DNNL_MEMORY_NONE));
        if (!s->dst_direct)
            QD_DNNL_TRY(g, n, dnnl_memory_create(&s->dst_int, dmd, eng, DNNL_MEMORY_NONE));
        for (int i = 0; i < (s->dst_direct ? 1 : 2); i++) {
            size_t bytes = dnnl_memory_desc_get_size(i ? dmd : smd);
            if (qd_dnnl_scratch_reserve(i, bytes) != 0) {
                st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY,
                                   "node '%s' (%s): out of memory for %zu bytes of scratch",
                                   n->name, n->op_type, bytes);
                goto fail;
            }
            s->reserved[i] = 1;
        }
        if ((st = qd_dnnl_reorder_prim(g, n, &src_user, smd, &s->to_internal)) != QD_OK ||
            (!s->dst_direct &&
             (st = qd_dnnl_reorder_prim(g, n, dmd, &dst_user, &s->from_internal)) != QD_OK))
            goto fail;
        if (s->chain.sum_input >= 0 && !s->dst_direct) {
            QD_DNNL_TRY(g, n, dnnl_memory_create(&s->res_user, &dst_user, eng, DNNL_MEMORY_NONE));
            if ((st = qd_dnnl_reorder_prim(g, n, &dst_user, dmd, &s->res_to_internal)) != QD_OK)
                goto fail;
        }
    }
    QD_DNNL_TRY(g, n, dnnl_primitive_create(&s->conv, pd));
    /* The implementation name lives in pd; keep the primitive's copy. */
    const_dnnl_primitive_desc_t ppd;
    QD_DNNL_TRY(g, n, dnnl_primitive_get_primitive_desc(s->conv, &ppd));
    s->head.impl = qd_dnnl_impl_name(ppd);
    dnnl_primitive_desc_destroy(pd);
    /* The residual is read from dst by the sum post-op: dst may be its
     * buffer (not with the internal layout, which reorders it first). */
    s->head.in_place_input = s->internal && !s->dst_direct ? -1 : s->chain.sum_input;
    *state = s;
    return QD_OK;
fail:
    qd_free(s2d_w);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    conv_release(s);
    return st;
}

static int dims_equal(const qd_tensor *t, int rank, const int64_t *dims)
{
    if (!t || t->rank != rank)
        return 0;
    for (int i = 0; i < rank; i++)
        if (t->dims[i] != dims[i])
            return 0;
    return 1;
}

static qd_status conv_execute(const qd_kernel_args *a, conv_state *s)
{
    qd_status st = QD_OK;
    qd_graph *g = a->graph;
    const qd_node *n = a->node;
    dnnl_stream_t strm;
    if ((st = qd_dnnl_get(g, n, NULL, &strm)) != QD_OK)
        return st;
    if (!dims_equal(a->inputs[0], s->rank, s->in_dims) ||
        !dims_equal(a->outputs[0], s->rank, s->out_dims))
        return qd_graph_fail(g, QD_STATUS_SHAPE_ERROR,
                             "node '%s' (%s): shapes changed since the oneDNN conv was prepared",
                             n->name, n->op_type);
    dnnl_exec_arg_t args[4 + QD_DNNL_MAX_BINARY];
    int na = 0;
    if (s->s2d)
        s2d_fill(s, a->inputs[0]);
    QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(s->src_user,
                                                  s->s2d ? (void *)s->s2d_buf : a->inputs[0]->data));
    QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(s->dst_user, a->outputs[0]->data));
    if (s->has_bias)
        QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(s->bias, a->inputs[2]->data));
    if ((st = qd_dnnl_bind_binary(a, &s->chain, s->bin, args, &na)) != QD_OK)
        goto fail;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, s->wei};
    if (s->has_bias)
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, s->bias};
    if (!s->internal || s->dst_direct) {
        if (s->internal) { /* the input only: into its scratch copy */
            QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(s->src_int, qd_dnnl_scratch(0)));
            dnnl_exec_arg_t in[2] = {{DNNL_ARG_FROM, s->src_user}, {DNNL_ARG_TO, s->src_int}};
            QD_DNNL_TRY(g, n, dnnl_primitive_execute(s->to_internal, strm, 2, in));
        }
        qd_dnnl_residual_to_dst(a, &s->chain);
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, s->internal ? s->src_int : s->src_user};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, s->dst_user};
        QD_DNNL_TRY(g, n, dnnl_primitive_execute(s->conv, strm, na, args));
    } else {
        QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(s->src_int, qd_dnnl_scratch(0)));
        QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(s->dst_int, qd_dnnl_scratch(1)));
        dnnl_exec_arg_t in[2] = {{DNNL_ARG_FROM, s->src_user}, {DNNL_ARG_TO, s->src_int}};
        QD_DNNL_TRY(g, n, dnnl_primitive_execute(s->to_internal, strm, 2, in));
        if (s->chain.sum_input >= 0) {
            QD_DNNL_TRY(
                g, n,
                dnnl_memory_set_data_handle(s->res_user, a->inputs[s->chain.sum_input]->data));
            dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, s->res_user}, {DNNL_ARG_TO, s->dst_int}};
            QD_DNNL_TRY(g, n, dnnl_primitive_execute(s->res_to_internal, strm, 2, r));
        }
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, s->src_int};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, s->dst_int};
        QD_DNNL_TRY(g, n, dnnl_primitive_execute(s->conv, strm, na, args));
        dnnl_exec_arg_t out[2] = {{DNNL_ARG_FROM, s->dst_int}, {DNNL_ARG_TO, s->dst_user}};
        QD_DNNL_TRY(g, n, dnnl_primitive_execute(s->from_internal, strm, 2, out));
    }
    QD_DNNL_TRY(g, n, dnnl_stream_wait(strm));
    if (s->chain.tail_from < a->n_fused) {
        int64_t inner = 1;
        if (s->layout == QD_DNNL_NCHW)
            for (int i = 2; i < s->rank; i++)
                inner *= s->out_dims[i];
        qd_dnnl_run_tail(a, &s->chain, s->out_dims[1], inner);
    }
fail:
    return st;
}

static qd_status conv_run(const qd_kernel_args *a)
{
    return a->state ? conv_execute(a, a->state)
                    : qd_dnnl_run_unprepared(a, conv_prepare, conv_release);
}

/* ---- selection ---- */

int qd_dnnl_conv_supports(const qd_node *n)
{
    if (n->n_inputs < 2 || n->n_inputs > 3 || n->n_outputs < 1)
        return 0;
    const qd_value *x = n->inputs[0], *w = n->inputs[1], *y = n->outputs[0];
    const qd_value *b = n->n_inputs > 2 ? n->inputs[2] : NULL;
    if (!qd_dnnl_value_ok(x, 3, 2 + SPATIAL_MAX) || !qd_dnnl_value_ok(w, 3, 2 + SPATIAL_MAX) ||
        !qd_dnnl_value_ok(y, 3, 2 + SPATIAL_MAX) || x->rank != w->rank || x->rank != y->rank)
        return 0;
    if (!w->konst || w->konst->dtype != QD_DT_FLOAT || !w->konst->data)
        return 0;
    if (b && (!qd_dnnl_value_ok(b, 1, 1) || b->dims[0] != w->dims[0]))
        return 0;
    qd_dnnl_conv_geom gm;
    char err[200];
    return qd_dnnl_conv_read_geom(n, x->rank, x->dims, w->dims, y->dims, &gm, err, sizeof err) == 0;
}

qd_kernel_impl qd_dnnl_conv_impl(void)
{
    return (qd_kernel_impl){"dnnl", conv_run, conv_prepare, conv_release, qd_dnnl_in_place_ok};
}
