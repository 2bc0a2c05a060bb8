/* oneDNN plumbing shared by the conv and matmul kernels. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <threads.h>

#include <oneapi/dnnl/dnnl_debug.h>

#include "base/alloc.h"
#include "engine/kernels/dnnl/dnnl_common.h"
#include "engine/lower_qdq.h"

/* ---- errors ---- */

qd_status qd_dnnl_fail(qd_graph *g, const qd_node *n, dnnl_status_t s, const char *what)
{
    qd_status st = s == dnnl_out_of_memory ? QD_STATUS_OUT_OF_MEMORY : QD_STATUS_UNSUPPORTED;
    /* Keep only the function name of the failed call. */
    char fn[96];
    size_t len = strcspn(what, "(");
    if (len >= sizeof fn)
        len = sizeof fn - 1;
    memcpy(fn, what, len);
    fn[len] = '\0';
    return qd_graph_fail(g, st, "node '%s' (%s): oneDNN: %s failed: %s", n ? n->name : "?",
                         n ? n->op_type : "?", fn, dnnl_status2str(s));
}

/* ---- engine and stream ---- */

static once_flag g_once = ONCE_FLAG_INIT;
static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;
static dnnl_status_t g_init_status = dnnl_success;
static const char *g_init_what = "";

static void init_once(void)
{
    g_init_what = "dnnl_engine_create";
    g_init_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
    if (g_init_status != dnnl_success)
        return;
    g_init_what = "dnnl_stream_create";
    g_init_status = dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags);
    if (g_init_status != dnnl_success) {
        dnnl_engine_destroy(g_engine);
        g_engine = NULL;
    }
}

qd_status qd_dnnl_get(qd_graph *g, const qd_node *n, dnnl_engine_t *engine, dnnl_stream_t *stream)
{
    call_once(&g_once, init_once);
    if (g_init_status != dnnl_success)
        return qd_dnnl_fail(g, n, g_init_status, g_init_what);
    if (engine)
        *engine = g_engine;
    if (stream)
        *stream = g_stream;
    return QD_OK;
}

/* ---- layouts and descriptors ---- */

static qd_dnnl_layout g_layout = QD_DNNL_NCHW;
static qd_dnnl_conv_policy g_policy = QD_DNNL_CONV_AUTO;

void qd_dnnl_set_activation_layout(qd_dnnl_layout layout) { g_layout = layout; }
qd_dnnl_layout qd_dnnl_activation_layout(void) { return g_layout; }
void qd_dnnl_set_conv_policy(qd_dnnl_conv_policy policy) { g_policy = policy; }
qd_dnnl_conv_policy qd_dnnl_conv_policy_get(void) { return g_policy; }

dnnl_format_tag_t qd_dnnl_act_tag(qd_dnnl_layout layout, int rank)
{
    switch (rank) {
    case 3: return layout == QD_DNNL_NHWC ? dnnl_nwc : dnnl_ncw;
    case 4: return layout == QD_DNNL_NHWC ? dnnl_nhwc : dnnl_nchw;
    case 5: return layout == QD_DNNL_NHWC ? dnnl_ndhwc : dnnl_ncdhw;
    default: return dnnl_format_tag_undef;
    }
}

dnnl_status_t qd_dnnl_md_plain(dnnl_memory_desc_t *md, int rank, const int64_t *dims)
{
    if (rank < 1 || rank > DNNL_MAX_NDIMS)
        return dnnl_invalid_arguments;
    dnnl_dims_t d, strides;
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        d[i] = dims[i];
        strides[i] = s;
        s *= dims[i] > 0 ? dims[i] : 1;
    }
    return dnnl_memory_desc_init_by_strides(md, rank, d, dnnl_f32, strides);
}

/* ---- post-ops from the fused chain ---- */

/* A float attribute without a graph for messages: def when absent, -1 when
 * of another type. */
static int attr_float(const qd_node *n, const char *name, float def, float *out)
{
    const qd_attr *at = qd_node_attr(n, name);
    if (!at) {
        *out = def;
        return 0;
    }
    if (at->type != QD_ATTR_FLOAT)
        return -1;
    *out = at->f;
    return 0;
}

/* One float from a constant scalar (or 1-element) input. */
static int const_scalar(const qd_value *v, float *out)
{
    if (!v->konst || v->konst->dtype != QD_DT_FLOAT ||
        qd_numel(v->konst->rank, v->konst->dims) != 1)
        return -1;
    *out = ((const float *)v->konst->data)[0];
    return 0;
}

/* Clip's bounds: attributes min/max (opset < 11) or constant inputs 1, 2. */
static int clip_bounds(const qd_node *n, float *lo, float *hi)
{
    if (attr_float(n, "min", -FLT_MAX, lo) || attr_float(n, "max", FLT_MAX, hi))
        return -1;
    if (n->n_inputs > 1 && n->inputs[1] && const_scalar(n->inputs[1], lo))
        return -1;
    if (n->n_inputs > 2 && n->inputs[2] && const_scalar(n->inputs[2], hi))
        return -1;
    if (*lo < -FLT_MAX)
        *lo = -FLT_MAX;
    if (*hi > FLT_MAX)
        *hi = FLT_MAX;
    return 0;
}

/* oneDNN's algorithm for a Gelu node's "approximate" attribute. */
static dnnl_alg_kind_t gelu_alg(const qd_node *n)
{
    const qd_attr *a = qd_node_attr(n, "approximate");
    if (!a)
        return dnnl_eltwise_gelu_erf;
    if (a->type != QD_ATTR_STRING)
        return dnnl_alg_kind_undef;
    if (!strcmp(a->s, "none"))
        return dnnl_eltwise_gelu_erf;
    if (!strcmp(a->s, "tanh"))
        return dnnl_eltwise_gelu_tanh;
    return dnnl_alg_kind_undef;
}

int qd_dnnl_eltwise_fusable(const qd_node *n)
{
    float f, g;
    if (n->n_inputs < 1 || !n->inputs[0] || n->n_outputs < 1 || !n->outputs[0])
        return 0;
    if (n->inputs[0]->dtype != QD_DT_FLOAT)
        return 0;
    switch (n->op) {
    case QD_OP_RELU:
    case QD_OP_SIGMOID:
    case QD_OP_TANH:
    case QD_OP_HARD_SWISH: return n->n_inputs == 1;
    case QD_OP_LEAKY_RELU:
    case QD_OP_ELU: return n->n_inputs == 1 && attr_float(n, "alpha", 0, &f) == 0;
    case QD_OP_HARD_SIGMOID:
        return n->n_inputs == 1 && attr_float(n, "alpha", 0, &f) == 0 &&
               attr_float(n, "beta", 0, &g) == 0;
    case QD_OP_CLIP: return n->n_inputs <= 3 && clip_bounds(n, &f, &g) == 0 && f <= g;
    case QD_OP_GELU: return n->n_inputs == 1 && gelu_alg(n) != dnnl_alg_kind_undef;
    default: return 0;
    }
}

/* An eltwise post-op. */
typedef struct elt {
    dnnl_alg_kind_t alg;
    float alpha, beta;
} elt;

/* The eltwise post-ops (1 or 2) that compute activation node n. */
static int node_eltwise(const qd_node *n, elt *out)
{
    float alpha = 0, beta = 0, lo, hi;
    switch (n->op) {
    case QD_OP_RELU: out[0] = (elt){dnnl_eltwise_relu, 0, 0}; return 1;
    case QD_OP_LEAKY_RELU:
        attr_float(n, "alpha", 0.01f, &alpha);
        out[0] = (elt){dnnl_eltwise_relu, alpha, 0};
        return 1;
    case QD_OP_ELU:
        attr_float(n, "alpha", 1.0f, &alpha);
        out[0] = (elt){dnnl_eltwise_elu, alpha, 0};
        return 1;
    case QD_OP_SIGMOID: out[0] = (elt){dnnl_eltwise_logistic, 0, 0}; return 1;
    case QD_OP_TANH: out[0] = (elt){dnnl_eltwise_tanh, 0, 0}; return 1;
    case QD_OP_HARD_SWISH: out[0] = (elt){dnnl_eltwise_hardswish, 0, 0}; return 1;
    case QD_OP_GELU: out[0] = (elt){gelu_alg(n), 0, 0}; return 1;
    case QD_OP_HARD_SIGMOID:
        attr_float(n, "alpha", 0.2f, &alpha);
        attr_float(n, "beta", 0.5f, &beta);
        out[0] = (elt){dnnl_eltwise_linear, alpha, beta};
        out[1] = (elt){dnnl_eltwise_clip, 0.f, 1.f};
        return 2;
    case QD_OP_CLIP:
        if (clip_bounds(n, &lo, &hi) != 0)
            return 0;
        if (lo == 0.f && hi == FLT_MAX)
            out[0] = (elt){dnnl_eltwise_relu, 0, 0};
        else
            out[0] = (elt){dnnl_eltwise_clip, lo, hi};
        return 1;
    default: return 0;
    }
}

/* Equivalent spellings of an eltwise post-op. oneDNN 2.6's jit post-op
 * injector keeps one eltwise injector per algorithm, so two post-ops of one
 * algorithm with different parameters (LeakyRelu ... Relu, two linears)
 * compute wrong results in brgconv/jit/brg matmul; another spelling avoids
 * the clash. */
static int spellings(elt e, elt *alt)
{
    int n = 0;
    alt[n++] = e;
    if (e.alg == dnnl_eltwise_relu && e.alpha == 0.f) {
        alt[n++] = (elt){dnnl_eltwise_bounded_relu, FLT_MAX, 0};
        alt[n++] = (elt){dnnl_eltwise_clip_v2, 0.f, FLT_MAX};
        alt[n++] = (elt){dnnl_eltwise_clip, 0.f, FLT_MAX};
    } else if (e.alg == dnnl_eltwise_clip) {
        alt[n++] = (elt){dnnl_eltwise_clip_v2, e.alpha, e.beta};
        if (e.alpha == 0.f)
            alt[n++] = (elt){dnnl_eltwise_bounded_relu, e.beta, 0};
    }
    return n;
}

typedef struct used_algs {
    elt e[64];
    int n;
} used_algs;

static int clashes(const used_algs *u, elt e)
{
    for (int i = 0; i < u->n; i++)
        if (u->e[i].alg == e.alg && (u->e[i].alpha != e.alpha || u->e[i].beta != e.beta))
            return 1;
    return 0;
}

/* Picks a clash-free spelling of each of want[0..n); 0 on success. */
static int pick_spellings(const used_algs *u, const elt *want, int n, elt *out)
{
    used_algs tmp = *u;
    for (int i = 0; i < n; i++) {
        elt alt[4];
        int na = spellings(want[i], alt), j = 0;
        while (j < na && clashes(&tmp, alt[j]))
            j++;
        if (j == na || tmp.n >= 64)
            return -1;
        out[i] = alt[j];
        tmp.e[tmp.n++] = alt[j];
    }
    return 0;
}

static int same_dims(const qd_tensor *t, int rank, const int64_t *dims)
{
    if (t->rank != rank)
        return 0;
    for (int i = 0; i < rank; i++)
        if (t->dims[i] != dims[i])
            return 0;
    return 1;
}

qd_status qd_dnnl_requant_post_op(const qd_kernel_args *a, dnnl_post_ops_t po)
{
    const qd_quant_params *q = a->quant;
    if (!q || q->dst_scale <= 0.0f || !q->requant_post_op)
        return QD_OK;
    for (int i = 0; i < dnnl_post_ops_len(po); i++) {
        float scale, alpha, beta;
        dnnl_alg_kind_t alg;
        if (dnnl_post_ops_get_kind(po, i) == dnnl_eltwise &&
            dnnl_post_ops_get_params_eltwise(po, i, &scale, &alg, &alpha, &beta) == dnnl_success &&
            alg == dnnl_eltwise_linear)
            return qd_graph_fail(a->graph, QD_STATUS_UNSUPPORTED,
                                 "node '%s' (%s): cannot requantize after a linear post-op",
                                 a->node->name, a->node->op_type);
    }
    dnnl_status_t s = dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_linear,
                                                   1.0f / q->dst_scale, 0.0f);
    return s == dnnl_success ? QD_OK : qd_dnnl_fail(a->graph, a->node, s, "requantize post-op");
}

qd_status qd_dnnl_chain_post_ops(const qd_kernel_args *a, dnnl_post_ops_t po,
                                 const dnnl_memory_desc_t *dst_md,
                                 const dnnl_memory_desc_t *full_md, qd_dnnl_residual residual,
                                 int allow_binary, int fuse_limit, qd_dnnl_chain *chain)
{
    qd_status st = QD_OK;
    const qd_node *anchor = a->node;
    int extra = anchor->n_inputs;
    chain->n_binary = 0;
    chain->sum_input = -1;
    chain->tail_from = a->n_fused;
    /* Eltwise post-ops already there (Gemm's alpha). */
    used_algs used = {.n = 0};
    for (int i = 0; i < dnnl_post_ops_len(po) && used.n < 64; i++) {
        elt e;
        float scale;
        if (dnnl_post_ops_get_kind(po, i) == dnnl_eltwise &&
            dnnl_post_ops_get_params_eltwise(po, i, &scale, &e.alg, &e.alpha, &e.beta) ==
                dnnl_success)
            used.e[used.n++] = e;
    }
    for (int k = 0; k < a->n_fused; k++) {
        const qd_node *n = a->fused[k];
        if (k >= fuse_limit) {
            chain->tail_from = k;
            break;
        }
        if (n->op == QD_OP_ADD) {
            if (n->n_inputs != 2 || extra >= a->n_inputs || !a->inputs[extra])
                return qd_graph_fail(a->graph, QD_STATUS_INVALID_ARGUMENT,
                                     "node '%s' (%s): fused Add '%s' has no operand in the step's "
                                     "inputs",
                                     anchor->name, anchor->op_type, n->name);
            const qd_tensor *t = a->inputs[extra];
            /* An INT8 step writing int8 or uint8 adds a full-shape 8-bit
             * residual (`sum` reads dst), scaled to dst's units. */
            const qd_quant_params *q = a->quant;
            int int8_sum = q && q->dst_scale > 0.0f && same_dims(t, a->outputs[0]->rank,
                                                                 a->outputs[0]->dims);
            int t_ok = int8_sum ? t->dtype == QD_DT_INT8 || t->dtype == QD_DT_UINT8
                                : t->dtype == QD_DT_FLOAT;
            if (!t_ok ||
                (int8_sum && (q->residual_scale <= 0.0f || residual != QD_DNNL_RESIDUAL_SUM ||
                              chain->sum_input >= 0)))
                return qd_graph_fail(a->graph, QD_STATUS_UNSUPPORTED,
                                     "node '%s' (%s): fused Add '%s': operand is %s, not %s",
                                     anchor->name, anchor->op_type, n->name,
                                     qd_dtype_name(t->dtype), int8_sum ? "8-bit" : "float32");
            /* Every value of the chain has the anchor output's shape. */
            const qd_tensor *y = a->outputs[0];
            int full = same_dims(t, y->rank, y->dims);
            if ((full && (residual == QD_DNNL_RESIDUAL_TAIL ||
                          (residual == QD_DNNL_RESIDUAL_SUM && chain->sum_input >= 0))) ||
                (!full && !allow_binary)) {
                chain->tail_from = k;
                break;
            }
            if (full && residual == QD_DNNL_RESIDUAL_SUM) {
                float scale = !int8_sum               ? 1.f
                              : q->requant_post_op ? q->residual_scale
                                                   : q->residual_scale / q->dst_scale;
                /* An 8-bit residual of another type or with a zero point:
                 * dst's bytes read as its type, minus its zero point. */
                dnnl_data_type_t rt = t->dtype == QD_DT_UINT8 ? dnnl_u8 : dnnl_s8;
                if (int8_sum && (q->residual_zp || t->dtype != a->outputs[0]->dtype))
                    QD_DNNL_TRY(a->graph, anchor,
                                dnnl_post_ops_append_sum_v3(po, scale, q->residual_zp, rt));
                else
                    QD_DNNL_TRY(a->graph, anchor, dnnl_post_ops_append_sum(po, scale));
                chain->sum_input = extra;
            } else {
                if (chain->n_binary >= QD_DNNL_MAX_BINARY)
                    return qd_graph_fail(a->graph, QD_STATUS_UNSUPPORTED,
                                         "node '%s' (%s): too many fused Adds", anchor->name,
                                         anchor->op_type);
                dnnl_memory_desc_t md;
                if (full) {
                    md = *full_md;
                } else {
                    /* A broadcast operand: right-aligned to dst's rank. */
                    int64_t d[DNNL_MAX_NDIMS];
                    int r = dst_md->ndims, off = r - t->rank;
                    if (off < 0)
                        return qd_graph_fail(a->graph, QD_STATUS_SHAPE_ERROR,
                                             "node '%s' (%s): fused Add '%s': operand rank %d "
                                             "exceeds the output's",
                                             anchor->name, anchor->op_type, n->name, t->rank);
                    for (int i = 0; i < r; i++) {
                        d[i] = i < off ? 1 : t->dims[i - off];
                        if (d[i] != 1 && d[i] != dst_md->dims[i])
                            return qd_graph_fail(a->graph, QD_STATUS_SHAPE_ERROR,
                                                 "node '%s' (%s): fused Add '%s': operand does "
                                                 "not broadcast to the output",
                                                 anchor->name, anchor->op_type, n->name);
                    }
                    QD_DNNL_TRY(a->graph, anchor, qd_dnnl_md_plain(&md, r, d));
                }
                QD_DNNL_TRY(a->graph, anchor,
                            dnnl_post_ops_append_binary(po, dnnl_binary_add, &md));
                chain->bin_pos[chain->n_binary] = dnnl_post_ops_len(po) - 1;
                chain->bin_input[chain->n_binary] = extra;
                chain->n_binary++;
            }
            extra++;
        } else if (qd_dnnl_eltwise_fusable(n)) {
            elt want[2], got[2];
            int ne = node_eltwise(n, want);
            if (ne == 0)
                return qd_graph_fail(a->graph, QD_STATUS_UNSUPPORTED,
                                     "node '%s' (%s): cannot fuse '%s' (%s)", anchor->name,
                                     anchor->op_type, n->name, n->op_type);
            if (pick_spellings(&used, want, ne, got) != 0) {
                /* This node and the rest run after the primitive. */
                chain->tail_from = k;
                break;
            }
            for (int i = 0; i < ne; i++) {
                QD_DNNL_TRY(
                    a->graph, anchor,
                    dnnl_post_ops_append_eltwise(po, 1.f, got[i].alg, got[i].alpha, got[i].beta));
                used.e[used.n++] = got[i];
            }
        } else {
            return qd_graph_fail(a->graph, QD_STATUS_UNSUPPORTED,
                                 "node '%s' (%s): cannot fuse '%s' (%s) into oneDNN post-ops",
                                 anchor->name, anchor->op_type, n->name, n->op_type);
        }
    }
    return QD_OK;
fail:
    return st;
}

/* ---- the tail of a chain run after the primitive ---- */

static float act_scalar(const elt *e, int ne, float x)
{
    for (int i = 0; i < ne; i++) {
        float a = e[i].alpha, b = e[i].beta;
        switch (e[i].alg) {
        case dnnl_eltwise_relu: x = x > 0 ? x : a * x; break;
        case dnnl_eltwise_elu: x = x > 0 ? x : a * expm1f(x); break;
        case dnnl_eltwise_logistic: x = 1.f / (1.f + expf(-x)); break;
        case dnnl_eltwise_tanh: x = tanhf(x); break;
        case dnnl_eltwise_hardswish: x = x * fminf(1.f, fmaxf(0.f, x / 6.f + 0.5f)); break;
        case dnnl_eltwise_linear: x = a * x + b; break;
        case dnnl_eltwise_clip: x = fminf(b, fmaxf(a, x)); break;
        case dnnl_eltwise_gelu_erf: x = 0.5f * x * (1.f + erff(x * 0.70710678f)); break;
        case dnnl_eltwise_gelu_tanh:
            x = 0.5f * x * (1.f + tanhf(0.79788456f * (x + 0.044715f * x * x * x)));
            break;
        default: break;
        }
    }
    return x;
}

void qd_dnnl_run_tail(const qd_kernel_args *a, const qd_dnnl_chain *chain, int64_t channels,
                      int64_t inner)
{
    if (chain->tail_from >= a->n_fused)
        return;
    float *y = a->outputs[0]->data;
    int64_t count = qd_numel(a->outputs[0]->rank, a->outputs[0]->dims);
    int extra = a->node->n_inputs;
    for (int k = 0; k < a->n_fused; k++) {
        const qd_node *n = a->fused[k];
        if (n->op == QD_OP_ADD) {
            if (k >= chain->tail_from) {
                const qd_tensor *t = a->inputs[extra];
                const float *r = t->data;
                if (same_dims(t, a->outputs[0]->rank, a->outputs[0]->dims)) {
#pragma omp parallel for schedule(static)
                    for (int64_t i = 0; i < count; i++)
                        y[i] += r[i];
                } else { /* per channel */
#pragma omp parallel for schedule(static)
                    for (int64_t i = 0; i < count; i++)
                        y[i] += r[(i / inner) % channels];
                }
            }
            extra++;
        } else if (k >= chain->tail_from) {
            elt e[2];
            int ne = node_eltwise(n, e);
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < count; i++)
                y[i] = act_scalar(e, ne, y[i]);
        }
    }
}

/* ---- reorders and execution ---- */

qd_status qd_dnnl_create_binary(const qd_kernel_args *a, const_dnnl_primitive_desc_t pd,
                                const qd_dnnl_chain *chain, dnnl_memory_t *bin)
{
    qd_status st = QD_OK;
    dnnl_engine_t eng;
    if ((st = qd_dnnl_get(a->graph, a->node, &eng, NULL)) != QD_OK)
        return st;
    for (int i = 0; i < chain->n_binary; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(
            pd, dnnl_query_exec_arg_md,
            DNNL_ARG_ATTR_MULTIPLE_POST_OP(chain->bin_pos[i]) | DNNL_ARG_SRC_1);
        QD_DNNL_TRY(a->graph, a->node, dnnl_memory_create(&bin[i], md, eng, DNNL_MEMORY_NONE));
    }
fail:
    return st;
}

qd_status qd_dnnl_bind_binary(const qd_kernel_args *a, const qd_dnnl_chain *chain,
                              dnnl_memory_t *bin, dnnl_exec_arg_t *args, int *na)
{
    qd_status st = QD_OK;
    for (int i = 0; i < chain->n_binary; i++) {
        QD_DNNL_TRY(a->graph, a->node,
                    dnnl_memory_set_data_handle(bin[i], a->inputs[chain->bin_input[i]]->data));
        args[(*na)++] = (dnnl_exec_arg_t){
            DNNL_ARG_ATTR_MULTIPLE_POST_OP(chain->bin_pos[i]) | DNNL_ARG_SRC_1, bin[i]};
    }
fail:
    return st;
}

void qd_dnnl_residual_to_dst(const qd_kernel_args *a, const qd_dnnl_chain *chain)
{
    if (chain->sum_input < 0)
        return;
    const qd_tensor *r = a->inputs[chain->sum_input];
    void *dst = a->outputs[0]->data;
    if (r->data == dst)
        return;
    /* in 64 KiB pieces over the threads: a ConvNeXt residual is megabytes */
    const size_t chunk = 1 << 16, bytes = a->outputs[0]->nbytes;
    int64_t pieces = (int64_t)((bytes + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (pieces > 4)
    for (int64_t i = 0; i < pieces; i++) {
        size_t off = (size_t)i * chunk, len = bytes - off < chunk ? bytes - off : chunk;
        memcpy((char *)dst + off, (const char *)r->data + off, len);
    }
}

void qd_dnnl_destroy_desc(dnnl_primitive_desc_t pd, dnnl_primitive_attr_t attr,
                          dnnl_post_ops_t po)
{
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (po)
        dnnl_post_ops_destroy(po);
}

qd_status qd_dnnl_reorder_prim(qd_graph *g, const qd_node *n, const dnnl_memory_desc_t *from,
                               const dnnl_memory_desc_t *to, dnnl_primitive_t *out)
{
    qd_status st = QD_OK;
    dnnl_engine_t eng;
    dnnl_primitive_desc_t pd = NULL;
    *out = NULL;
    if ((st = qd_dnnl_get(g, n, &eng, NULL)) != QD_OK)
        return st;
    QD_DNNL_TRY(g, n, dnnl_reorder_primitive_desc_create(&pd, from, eng, to, eng, NULL));
    QD_DNNL_TRY(g, n, dnnl_primitive_create(out, pd));
fail:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return st;
}

qd_status qd_dnnl_execute(qd_graph *g, const qd_node *n, dnnl_primitive_t p, int nargs,
                          const dnnl_exec_arg_t *args)
{
    qd_status st = QD_OK;
    dnnl_stream_t strm;
    if ((st = qd_dnnl_get(g, n, NULL, &strm)) != QD_OK)
        return st;
    QD_DNNL_TRY(g, n, dnnl_primitive_execute(p, strm, nargs, args));
    QD_DNNL_TRY(g, n, dnnl_stream_wait(strm));
fail:
    return st;
}

qd_status qd_dnnl_reorder_const(qd_graph *g, const qd_node *n, const dnnl_memory_desc_t *from,
                                const void *data, const dnnl_memory_desc_t *to, dnnl_memory_t *out)
{
    qd_status st = QD_OK;
    dnnl_engine_t eng;
    dnnl_memory_t src = NULL, dst = NULL;
    dnnl_primitive_t r = NULL;
    *out = NULL;
    if ((st = qd_dnnl_get(g, n, &eng, NULL)) != QD_OK)
        return st;
    QD_DNNL_TRY(g, n, dnnl_memory_create(&src, from, eng, (void *)(uintptr_t)data));
    QD_DNNL_TRY(g, n, dnnl_memory_create(&dst, to, eng, DNNL_MEMORY_ALLOCATE));
    if ((st = qd_dnnl_reorder_prim(g, n, from, to, &r)) != QD_OK)
        goto fail;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    if ((st = qd_dnnl_execute(g, n, r, 2, args)) != QD_OK)
        goto fail;
    *out = dst;
    dst = NULL;
fail:
    if (r)
        dnnl_primitive_destroy(r);
    if (src)
        dnnl_memory_destroy(src);
    if (dst)
        dnnl_memory_destroy(dst);
    return st;
}

/* ---- shared scratch ---- */

#define SCRATCH_ALIGN 64

static struct {
    void *raw;
    void *aligned;
    size_t cap;
    int refs;
} g_scratch[QD_DNNL_SCRATCH_SLOTS];

int qd_dnnl_scratch_reserve(int slot, size_t bytes)
{
    if (slot < 0 || slot >= QD_DNNL_SCRATCH_SLOTS)
        return -1;
    if (bytes > g_scratch[slot].cap) {
        if (bytes > SIZE_MAX - SCRATCH_ALIGN)
            return -1;
        void *raw = qd_malloc(bytes + SCRATCH_ALIGN);
        if (!raw)
            return -1;
        qd_free(g_scratch[slot].raw);
        g_scratch[slot].raw = raw;
        g_scratch[slot].aligned =
            (void *)(((uintptr_t)raw + SCRATCH_ALIGN - 1) / SCRATCH_ALIGN * SCRATCH_ALIGN);
        g_scratch[slot].cap = bytes;
    }
    g_scratch[slot].refs++;
    return 0;
}

void qd_dnnl_scratch_unreserve(int slot)
{
    if (slot < 0 || slot >= QD_DNNL_SCRATCH_SLOTS || g_scratch[slot].refs <= 0)
        return;
    if (--g_scratch[slot].refs == 0) {
        qd_free(g_scratch[slot].raw);
        g_scratch[slot].raw = g_scratch[slot].aligned = NULL;
        g_scratch[slot].cap = 0;
    }
}

void *qd_dnnl_scratch(int slot)
{
    return slot >= 0 && slot < QD_DNNL_SCRATCH_SLOTS ? g_scratch[slot].aligned : NULL;
}

/* ---- implementation names ---- */

const char *qd_dnnl_impl_name(const_dnnl_primitive_desc_t pd)
{
    const char *s = NULL;
    if (!pd || dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success)
        return "?";
    return s ? s : "?";
}

int qd_dnnl_impl_is_slow(const_dnnl_primitive_desc_t pd)
{
    const char *s = qd_dnnl_impl_name(pd);
    return strncmp(s, "ref", 3) == 0 || strstr(s, "gemm") != NULL;
}

const char *qd_dnnl_state_impl(const void *state)
{
    return state ? ((const qd_dnnl_state_head *)state)->impl : NULL;
}

/* ---- selection ---- */

int qd_dnnl_has_bf16(void)
{
    /* The ISA values are bit sets: each contains the ones below it. */
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) == (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

int qd_dnnl_supports(const qd_node *n)
{
    if (!n)
        return 0;
    switch (n->op) {
    case QD_OP_CONV: return qd_dnnl_conv_supports(n);
    case QD_OP_MATMUL: return qd_dnnl_matmul_supports(n);
    case QD_OP_GEMM: return qd_dnnl_gemm_supports(n);
    default: return 0;
    }
}

static int value_same_shape(const qd_value *a, const qd_value *b)
{
    if (!qd_value_shape_known(a) || !qd_value_shape_known(b) || a->rank != b->rank)
        return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return 0;
    return 1;
}

/* An operand that broadcasts along the output's channel axis only: conv
 * [C,1,..] or [1,C,1,..]; matmul/gemm [N] or [1,..,N]. */
static int per_channel(const qd_node *anchor, const qd_value *y, const qd_value *v)
{
    if (!qd_value_shape_known(v) || v->rank < 1 || v->rank > y->rank)
        return 0;
    int axis = anchor->op == QD_OP_CONV ? 1 : y->rank - 1;
    int off = y->rank - v->rank;
    for (int i = 0; i < v->rank; i++) {
        int64_t want = i + off == axis ? y->dims[axis] : 1;
        if (v->dims[i] != want)
            return 0;
    }
    if (anchor->op == QD_OP_MATMUL) {
        /* The primitive's destination has the output's rank only when
         * neither operand is 1-D. */
        if (anchor->inputs[0]->rank < 2 || anchor->inputs[1]->rank < 2)
            return 0;
    }
    return 1;
}

int qd_dnnl_fusable(const qd_node *anchor, const qd_node *next, const qd_value *other_operand)
{
    return anchor && qd_dnnl_supports(anchor) && qd_dnnl_fusable_after(anchor, next, other_operand);
}

int qd_dnnl_fusable_after(const qd_node *anchor, const qd_node *next, const qd_value *other_operand)
{
    if (!anchor || !next)
        return 0;
    const qd_value *y = anchor->outputs[0];
    if (next->n_outputs < 1 || !next->outputs[0] || next->outputs[0]->dtype != QD_DT_FLOAT ||
        !value_same_shape(next->outputs[0], y))
        return 0;
    if (next->op != QD_OP_ADD)
        return qd_dnnl_eltwise_fusable(next);
    if (next->n_inputs != 2 || !next->inputs[0] || !next->inputs[1] || !other_operand ||
        next->inputs[0] == next->inputs[1] || other_operand->dtype != QD_DT_FLOAT ||
        other_operand->producer == anchor)
        return 0;
    if (other_operand != next->inputs[0] && other_operand != next->inputs[1])
        return 0;
    return value_same_shape(other_operand, y) || per_channel(anchor, y, other_operand);
}

int qd_dnnl_value_ok(const qd_value *v, int rank_min, int rank_max)
{
    if (!v || v->dtype != QD_DT_FLOAT || !qd_value_shape_known(v) || v->rank < rank_min ||
        v->rank > rank_max)
        return 0;
    for (int i = 0; i < v->rank; i++)
        if (v->dims[i] <= 0)
            return 0;
    return 1;
}

qd_status qd_dnnl_run_unprepared(const qd_kernel_args *a,
                                 qd_status (*prepare)(const qd_kernel_args *, void **),
                                 void (*release)(void *))
{
    void *state = NULL;
    qd_status st = prepare(a, &state);
    if (st == QD_OK) {
        qd_kernel_args with_state = *a;
        with_state.state = state;
        st = qd_dnnl_impl(a->node).run(&with_state);
    }
    release(state);
    return st;
}

int qd_dnnl_in_place_ok(const void *state, int input)
{
    const qd_dnnl_state_head *h = state;
    return h && h->in_place_input >= 0 && h->in_place_input == input;
}

qd_kernel_impl qd_dnnl_impl(const qd_node *n)
{
    switch (n ? n->op : QD_OP_UNKNOWN) {
    case QD_OP_CONV: return qd_dnnl_conv_impl();
    case QD_OP_MATMUL: return qd_dnnl_matmul_impl();
    case QD_OP_GEMM: return qd_dnnl_gemm_impl();
    default: return (qd_kernel_impl){"dnnl", NULL, NULL, NULL, NULL};
    }
}

static int gemm_trans_b(const qd_node *n)
{
    const qd_attr *a = qd_node_attr(n, "transB");
    return a && a->type == QD_ATTR_INT && a->i != 0;
}

int qd_dnnl_s8_supports(const qd_node *n, const qd_value *x, const qd_value *w)
{
    const qd_value *y = n->n_outputs > 0 ? n->outputs[0] : NULL;
    if (n->op == QD_OP_MATMUL && x && w && y && !w->konst) {
        /* Two int8 activations: same batch dims, static shapes. */
        if (!qd_value_shape_known(x) || !qd_value_shape_known(w) || !qd_value_shape_known(y) ||
            w->dtype != QD_DT_INT8 || x->rank < 2 || x->rank > 4 || x->rank != w->rank ||
            y->dtype != QD_DT_FLOAT)
            return 0;
        for (int i = 0; i < x->rank - 2; i++)
            if (x->dims[i] != w->dims[i])
                return 0;
        return x->dims[x->rank - 1] == w->dims[w->rank - 2];
    }
    if (!x || !w || !y || !qd_value_shape_known(x) || !qd_value_shape_known(y) || !w->konst ||
        w->konst->dtype != QD_DT_INT8 || y->dtype != QD_DT_FLOAT)
        return 0;
    if (n->op == QD_OP_CONV) {
        if (x->rank < 3 || x->rank > 2 + QD_DNNL_SPATIAL_MAX || x->rank != w->rank ||
            x->rank != y->rank ||
            (n->n_inputs > 2 && n->inputs[2] && !qd_lower_bias_source(n) &&
             (!n->inputs[2]->konst || n->inputs[2]->dtype != QD_DT_FLOAT)))
            return 0;
        qd_dnnl_conv_geom gm;
        char err[200];
        return qd_dnnl_conv_read_geom(n, x->rank, x->dims, w->dims, y->dims, &gm, err,
                                      sizeof err) == 0;
    }
    if (n->op == QD_OP_MATMUL || n->op == QD_OP_GEMM) {
        const qd_value *c = n->op == QD_OP_GEMM && n->n_inputs > 2 ? n->inputs[2] : NULL;
        const qd_attr *beta = qd_node_attr(n, "beta");
        int64_t n_out = n->op == QD_OP_GEMM && gemm_trans_b(n) ? w->dims[0] : w->dims[1];
        const qd_value *c_q = c ? qd_lower_bias_source(n) : NULL; /* int32 */
        if (c_q)
            c = c_q;
        int64_t c_n = c && c->konst ? qd_numel(c->konst->rank, c->konst->dims) : 0;
        return w->rank == 2 && x->rank >= 1 && x->rank <= 4 && n->n_inputs <= 3 &&
               (!c || (c->konst && (c->dtype == QD_DT_FLOAT || c_q) && (c_n == 1 || c_n == n_out) &&
                       (!beta || (beta->type == QD_ATTR_FLOAT && beta->f == 1.0f))));
    }
    return 0;
}

/* The tag the INT8 conv gives an activation (conv2d_s8_dnnl.c act_tag):
 * channels-last when so laid out, or when both layouts are the same bytes. */
static dnnl_format_tag_t s8_act_tag(int rank, const int64_t *dims, int channels_last)
{
    int64_t spatial = 1;
    for (int i = 2; i < rank; i++)
        spatial *= dims[i];
    int cl = channels_last || spatial == 1 || dims[1] == 1;
    return qd_dnnl_act_tag(cl ? QD_DNNL_NHWC : QD_DNNL_NCHW, rank);
}

int qd_dnnl_s8_zero_points_fast(const qd_node *n, const qd_value *x, const qd_value *w,
                                int src_zp, int dst_zp, int sum_zp, int channels_last)
{
    const qd_value *y = n->n_outputs > 0 ? n->outputs[0] : NULL;
    dnnl_engine_t eng;
    if (!src_zp && !dst_zp && !sum_zp)
        return 1;
    if (!y || !w->konst || qd_dnnl_get(NULL, n, &eng, NULL) != QD_OK)
        return 0;
    dnnl_data_type_t xt = x->dtype == QD_DT_UINT8 ? dnnl_u8 : dnnl_s8;
    dnnl_memory_desc_t src_md, wei_md, dst_md, bias_md;
    dnnl_convolution_desc_t cd;
    dnnl_matmul_desc_t md;
    const void *op_desc;
    int64_t oc;
    if (n->op == QD_OP_CONV) {
        qd_dnnl_conv_geom gm;
        char err[200];
        int r = x->rank;
        if (qd_dnnl_conv_read_geom(n, r, x->dims, w->dims, y->dims, &gm, err, sizeof err) != 0)
            return 0;
        dnnl_dims_t xd, yd, wd, strides, dil, pl, pr, bd = {gm.oc};
        int wr = gm.group > 1 ? r + 1 : r;
        for (int i = 0; i < r; i++) {
            xd[i] = x->dims[i];
            yd[i] = y->dims[i];
        }
        wd[0] = gm.group;
        wd[gm.group > 1] = gm.oc / gm.group;
        wd[(gm.group > 1) + 1] = gm.ic / gm.group;
        for (int i = 0; i < gm.k; i++) {
            wd[(gm.group > 1) + 2 + i] = gm.kernel[i];
            strides[i] = gm.stride[i];
            dil[i] = gm.dil[i] - 1;
            pl[i] = gm.pl[i];
            pr[i] = gm.pr[i];
        }
        if (dnnl_memory_desc_init_by_tag(&src_md, r, xd, xt,
                                         s8_act_tag(r, x->dims, channels_last)) ||
            dnnl_memory_desc_init_by_tag(&dst_md, r, yd, dnnl_u8,
                                         s8_act_tag(r, y->dims, channels_last)) ||
            dnnl_memory_desc_init_by_tag(&wei_md, wr, wd, dnnl_s8, dnnl_format_tag_any) ||
            dnnl_memory_desc_init_by_tag(&bias_md, 1, bd, dnnl_f32, dnnl_a) ||
            dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                       dnnl_convolution_direct, &src_md, &wei_md,
                                                       &bias_md, &dst_md, strides, dil, pl, pr))
            return 0;
        op_desc = &cd;
        oc = gm.oc;
    } else {
        int tb = n->op == QD_OP_GEMM && gemm_trans_b(n);
        if (w->rank != 2 || x->rank < 1)
            return 0;
        int64_t k = w->dims[tb ? 1 : 0];
        oc = w->dims[tb ? 0 : 1];
        dnnl_dims_t sd = {qd_value_numel(x) / (k ? k : 1), k}, wd = {k, oc}, dd = {sd[0], oc},
                    bd = {1, oc};
        if (dnnl_memory_desc_init_by_tag(&src_md, 2, sd, xt, dnnl_ab) ||
            dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_u8, dnnl_ab) ||
            dnnl_memory_desc_init_by_tag(&wei_md, 2, wd, dnnl_s8, dnnl_format_tag_any) ||
            dnnl_memory_desc_init_by_tag(&bias_md, 2, bd, dnnl_f32, dnnl_ab) ||
            dnnl_matmul_desc_init(&md, &src_md, &wei_md, &bias_md, &dst_md))
            return 0;
        op_desc = &md;
    }
    /* Per-channel output scales and the zero points, as the kernel asks. */
    float *scales = qd_malloc((size_t)oc * sizeof *scales);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_post_ops_t po = NULL;
    const int32_t rt = DNNL_RUNTIME_S32_VAL;
    int fast = 0;
    if (scales && dnnl_primitive_attr_create(&attr) == dnnl_success &&
        dnnl_post_ops_create(&po) == dnnl_success) {
        for (int64_t i = 0; i < oc; i++)
            scales[i] = 1.0f;
        if ((!sum_zp || (dnnl_post_ops_append_sum_v3(po, 1.0f, 1, dnnl_u8) == dnnl_success &&
                         dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success)) &&
            dnnl_primitive_attr_set_output_scales(attr, oc, 1 << 1, scales) == dnnl_success &&
            (!src_zp || dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_SRC, 1, 0, &rt) ==
                            dnnl_success) &&
            (!dst_zp || dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_DST, 1, 0, &rt) ==
                            dnnl_success) &&
            dnnl_primitive_desc_create(&pd, op_desc, attr, eng, NULL) == dnnl_success)
            fast = strncmp(qd_dnnl_impl_name(pd), "ref", 3) != 0;
    }
    qd_dnnl_destroy_desc(pd, attr, po);
    qd_free(scales);
    return fast;
}

qd_kernel_impl qd_dnnl_s8_impl(const qd_node *n)
{
    return n->op == QD_OP_CONV ? qd_dnnl_conv_s8_impl() : qd_dnnl_matmul_s8_impl();
}
