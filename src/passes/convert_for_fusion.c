/* Conversions for the fusion matcher (issue 4). Unlike qd_graph_canonicalize
 * (engine only), each rewrite here leaves a graph that is valid ONNX at the
 * model's own opset: they run inside the quantize pipeline, whose output
 * other tools (TensorRT, onnxruntime) build.
 *
 *  - FlattenGemmToConv: Flatten(axis 1) of an N x C x 1 x 1 tensor feeding a
 *    Gemm with a constant weight becomes Conv 1x1 -> Flatten, so the
 *    classifier head after a global pool is a compute op on the 4-D tensor.
 *  - DecomposeMultiheadAttention: the packed Q/K/V input projection torch
 *    exports for nn.MultiheadAttention (one MatMul with an [E, 3E] weight,
 *    Add of a [3E] bias, then Slices or a Split of the last axis into E-wide
 *    parts) becomes one MatMul(+Add) with an [E, E] weight per part, each
 *    writing the tensor its slice wrote. Every projection then is a
 *    FusedLinear with its own input QDQ and per-channel weight scales.
 *
 * Both keep the names of the values the rest of the graph reads (graph
 * outputs included); the new nodes take the names of the nodes they
 * replace, with a suffix: _conv for the head's Conv (the Flatten keeps
 * its name), _q/_k/_v for the projections. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ir/graph.h"
#include "passes/passes.h"

/* ---- helpers --------------------------------------------------------------- */

/* The one float32 constant behind v, or NULL. */
static const qd_tensor *float_const(const qd_value *v)
{
    return v && v->konst && v->konst->dtype == QD_DT_FLOAT ? v->konst : NULL;
}

/* Element i of a one-element-per-axis integer constant input, or fails. */
static int const_i64(const qd_value *v, int64_t *out)
{
    if (!v || !v->konst || qd_numel(v->konst->rank, v->konst->dims) != 1 ||
        (v->konst->dtype != QD_DT_INT64 && v->konst->dtype != QD_DT_INT32))
        return 0;
    *out = qd_tensor_get_i64(v->konst, 0);
    return 1;
}

/* A new float initializer of the given shape; NULL (error set) on OOM. */
static qd_value *new_weight(qd_graph *g, const char *base, const char *suffix, int rank,
                            const int64_t *dims, float **data)
{
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, rank, dims);
    if (!t) {
        qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory converting for '%s'", base);
        return NULL;
    }
    *data = t->data;
    char hint[512];
    snprintf(hint, sizeof hint, "%s%s", base, suffix);
    qd_value *v = qd_graph_add_initializer(g, hint, t);
    if (!v)
        qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory converting for '%s'", base);
    return v;
}

static qd_value *new_activation(qd_graph *g, const char *base, const char *suffix)
{
    char hint[512];
    snprintf(hint, sizeof hint, "%s%s", base, suffix);
    qd_value *v = qd_graph_new_value(g, NULL, hint);
    if (!v && g->err.status == QD_OK)
        qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory converting for '%s'", base);
    return v;
}

/* ---- Flatten -> Gemm into Conv 1x1 -> Flatten ------------------------------ */

/* Gemm node gemm: returns 1 when rewritten, 0 when the pattern is not
 * exact, -1 on error (set on g). */
static int flatten_gemm_to_conv(qd_graph *g, qd_node *gemm)
{
    if (gemm->n_inputs < 2 || gemm->n_outputs != 1 || !gemm->outputs[0])
        return 0;
    qd_value *a = gemm->inputs[0];
    qd_node *flat = a ? a->producer : NULL;
    if (!flat || flat->op != QD_OP_FLATTEN || a->n_uses != 1 || a->is_output ||
        flat->n_inputs != 1 || flat->n_outputs != 1)
        return 0;
    qd_value *x = flat->inputs[0];
    if (!x || x->dtype != QD_DT_FLOAT || x->rank != 4 || x->dims[1] <= 0 || x->dims[2] != 1 ||
        x->dims[3] != 1)
        return 0; /* only N x C x 1 x 1 with C and the 1 x 1 known */
    int64_t axis, trans_a, trans_b;
    float alpha, beta;
    if (qd_node_attr_int(g, flat, "axis", 1, &axis) != QD_OK ||
        qd_node_attr_int(g, gemm, "transA", 0, &trans_a) != QD_OK ||
        qd_node_attr_int(g, gemm, "transB", 0, &trans_b) != QD_OK ||
        qd_node_attr_float(g, gemm, "alpha", 1.0f, &alpha) != QD_OK ||
        qd_node_attr_float(g, gemm, "beta", 1.0f, &beta) != QD_OK)
        return -1;
    if ((axis != 1 && axis != -3) || trans_a != 0 || (trans_b != 0 && trans_b != 1))
        return 0;
    const qd_tensor *b = float_const(gemm->inputs[1]);
    int64_t k = x->dims[1];
    if (!b || b->rank != 2 || b->dims[trans_b ? 1 : 0] != k)
        return 0;
    int64_t m = b->dims[trans_b ? 0 : 1];
    /* Bias: C broadcast over [N, M] must be one value per output channel:
     * shape [M], [1, M], or a single value. */
    const qd_tensor *c = NULL;
    if (gemm->n_inputs > 2 && gemm->inputs[2] && beta != 0.0f) {
        c = float_const(gemm->inputs[2]);
        if (!c)
            return 0;
        int64_t nc = qd_numel(c->rank, c->dims);
        int per_channel = nc == m && c->rank >= 1 && c->rank <= 2 && c->dims[c->rank - 1] == m;
        if (!per_channel && nc != 1)
            return 0;
    }

    qd_value *y = gemm->outputs[0];
    char gemm_name[512], flat_name[512];
    snprintf(gemm_name, sizeof gemm_name, "%s", gemm->name);
    snprintf(flat_name, sizeof flat_name, "%s", flat->name);
    float *wd, *bd = NULL;
    int64_t wdims[4] = {m, k, 1, 1};
    qd_value *w = new_weight(g, gemm->inputs[1]->name, "_conv", 4, wdims, &wd);
    if (!w)
        return -1;
    const float *bs = b->data;
    for (int64_t o = 0; o < m; o++)
        for (int64_t i = 0; i < k; i++)
            wd[o * k + i] = alpha * (trans_b ? bs[o * k + i] : bs[i * m + o]);
    qd_value *bias = NULL;
    if (c) {
        if (!(bias = new_weight(g, gemm->inputs[2]->name, "_conv", 1, &m, &bd)))
            return -1;
        int64_t nc = qd_numel(c->rank, c->dims);
        for (int64_t o = 0; o < m; o++)
            bd[o] = beta * ((const float *)c->data)[nc == 1 ? 0 : o];
    }
    qd_value *conv_out = new_activation(g, gemm_name, "_conv_output");
    if (!conv_out)
        return -1;
    qd_graph_remove_node(g, gemm);
    qd_graph_remove_node(g, flat);
    qd_value *ins[3] = {x, w, bias};
    char conv_name[600];
    snprintf(conv_name, sizeof conv_name, "%s_conv", gemm_name);
    qd_node *conv = qd_graph_add_node(g, "Conv", "", conv_name, ins, bias ? 3 : 2, &conv_out, 1);
    qd_node *nf = conv ? qd_graph_add_node(g, "Flatten", "", flat_name, &conv_out, 1, &y, 1) : NULL;
    if (!nf || qd_node_set_attr_ints(conv, "kernel_shape", (int64_t[]){1, 1}, 2) != 0 ||
        qd_node_set_attr_int(nf, "axis", 1) != 0) {
        qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory converting '%s'", gemm_name);
        return -1;
    }
    return 1;
}

/* ---- packed Q/K/V projection into one projection per part ------------------ */

#define QD_MAX_PARTS 3

/* One reader of the packed projection output: a Slice (one part) or a
 * Split (one part per output), each part a range of the last axis. */
typedef struct part {
    qd_node *reader;
    qd_value *out; /* what the part wrote; NULL: an unused Split output */
    int64_t begin, end;
} part;

/* The range a Slice node reads from the last axis of its rank-r, M-wide
 * input; 0 when it is not a plain slice of that axis. */
static int slice_range(const qd_node *s, int rank, int64_t m, int64_t *begin, int64_t *end)
{
    int64_t st, en, axis = 0, step = 1;
    if (s->n_inputs < 3 || s->n_outputs != 1 || !const_i64(s->inputs[1], &st) ||
        !const_i64(s->inputs[2], &en))
        return 0;
    if (s->n_inputs > 3 && s->inputs[3] && !const_i64(s->inputs[3], &axis))
        return 0;
    if (s->n_inputs > 4 && s->inputs[4] && !const_i64(s->inputs[4], &step))
        return 0;
    if (axis < 0)
        axis += rank;
    if (axis != rank - 1 || step != 1)
        return 0;
    /* ONNX clamping: negative from the end, then into [0, m]. */
    if (st < 0)
        st += m;
    if (en < 0)
        en += m;
    st = st < 0 ? 0 : st > m ? m : st;
    en = en < 0 ? 0 : en > m ? m : en;
    *begin = st;
    *end = en;
    return st < en;
}

/* The parts of a Split of the last axis; returns their count, 0 when it is
 * not one. */
static int split_parts(qd_graph *g, qd_node *s, int rank, int64_t m, part *parts, int max)
{
    int64_t axis;
    if (qd_node_attr_int(g, s, "axis", 0, &axis) != QD_OK)
        return 0;
    if (axis < 0)
        axis += rank;
    if (axis != rank - 1 || s->n_outputs < 1 || s->n_outputs > max)
        return 0;
    int64_t sizes[QD_MAX_PARTS];
    const int64_t *attr = NULL;
    size_t n_attr = 0;
    if (qd_node_attr_ints(g, s, "split", &attr, &n_attr) != QD_OK)
        return 0;
    const qd_value *in = s->n_inputs > 1 ? s->inputs[1] : NULL;
    if (in) { /* opset 13: split sizes as an input */
        if (!in->konst || qd_numel(in->konst->rank, in->konst->dims) != s->n_outputs)
            return 0;
        for (int i = 0; i < s->n_outputs; i++)
            sizes[i] = qd_tensor_get_i64(in->konst, i);
    } else if (attr) {
        if (n_attr != (size_t)s->n_outputs)
            return 0;
        for (int i = 0; i < s->n_outputs; i++)
            sizes[i] = attr[i];
    } else {
        if (m % s->n_outputs)
            return 0;
        for (int i = 0; i < s->n_outputs; i++)
            sizes[i] = m / s->n_outputs;
    }
    int64_t at = 0;
    for (int i = 0; i < s->n_outputs; i++) {
        if (sizes[i] <= 0)
            return 0;
        qd_value *o = s->outputs[i];
        parts[i] = (part){s, o && (o->n_uses || o->is_output) ? o : NULL, at, at + sizes[i]};
        at += sizes[i];
    }
    return at == m ? s->n_outputs : 0;
}

static int by_begin(const part *a, const part *b) { return a->begin < b->begin; }

/* 1 when nothing reads n's outputs: with a symbolic batch, torch's Shape of
 * the packed output stays behind once the Gather after it is folded. */
static int is_dead(const qd_node *n)
{
    for (int k = 0; k < n->n_outputs; k++)
        if (n->outputs[k] && (n->outputs[k]->n_uses || n->outputs[k]->is_output))
            return 0;
    return 1;
}

/* MatMul node mm: returns 1 when its packed output was split, 0 when it is
 * not nn.MultiheadAttention's packed projection, -1 on error. */
static int split_packed_projection(qd_graph *g, qd_node *mm)
{
    if (mm->n_inputs != 2 || mm->n_outputs != 1 || !mm->outputs[0] || !mm->inputs[0] ||
        mm->inputs[0]->konst)
        return 0;
    const qd_tensor *w = float_const(mm->inputs[1]);
    if (!w || w->rank != 2)
        return 0;
    int64_t e = w->dims[0], m = w->dims[1];
    /* The in_proj signature: [E, n*E], n = 3 (q, k, v) or 2 (k, v of a
     * cross-attention whose query is projected on its own). */
    int n_parts = e > 0 && m % e == 0 ? (int)(m / e) : 0;
    if (n_parts != 2 && n_parts != 3)
        return 0;
    qd_value *p = mm->outputs[0];
    qd_node *add = NULL;
    const qd_tensor *bias = NULL;
    if (!p->is_output && p->n_uses == 1 && p->uses[0].node->op == QD_OP_ADD &&
        p->uses[0].node->n_inputs == 2) {
        qd_node *a = p->uses[0].node;
        const qd_tensor *b = float_const(a->inputs[1 - p->uses[0].input]);
        if (b && b->rank == 1 && b->dims[0] == m && a->n_outputs == 1 && a->outputs[0]) {
            add = a;
            bias = b;
            p = a->outputs[0];
        }
    }
    if (p->is_output || p->rank < 1 || p->dims[p->rank - 1] != m)
        return 0;

    /* Every reader of p takes E-wide parts of the last axis that together
     * cover it once (or is dead: its outputs unread). */
    part parts[QD_MAX_PARTS];
    qd_node *dead[QD_MAX_PARTS];
    int n = 0, n_dead = 0;
    for (size_t u = 0; u < p->n_uses; u++) {
        qd_node *r = p->uses[u].node;
        if (p->uses[u].input != 0)
            return 0;
        for (int j = 0; j < n; j++)
            if (parts[j].reader == r)
                return 0; /* reads p twice */
        if (r->op == QD_OP_SLICE && n < n_parts) {
            if (!slice_range(r, p->rank, m, &parts[n].begin, &parts[n].end) || !r->outputs[0])
                return 0;
            parts[n].reader = r;
            parts[n].out = r->outputs[0];
            n++;
        } else if (r->op == QD_OP_SPLIT) {
            int got = split_parts(g, r, p->rank, m, parts + n, n_parts - n);
            if (!got)
                return 0;
            n += got;
        } else if (is_dead(r) && n_dead < QD_MAX_PARTS) {
            dead[n_dead++] = r; /* goes with p */
        } else {
            return 0;
        }
    }
    if (n != n_parts)
        return 0;
    for (int i = 1; i < n; i++) /* sort by begin (n <= 3) */
        for (int j = i; j > 0 && by_begin(&parts[j], &parts[j - 1]); j--) {
            part t = parts[j];
            parts[j] = parts[j - 1];
            parts[j - 1] = t;
        }
    for (int i = 0; i < n; i++)
        if (parts[i].begin != i * e || parts[i].end != (i + 1) * e)
            return 0;

    static const char *const qkv[] = {"_q", "_k", "_v"};
    const char *const *suffix = n == 3 ? qkv : qkv + 1;
    char mm_name[512], add_name[512], w_name[512], b_name[512];
    snprintf(mm_name, sizeof mm_name, "%s", mm->name);
    snprintf(add_name, sizeof add_name, "%s", add ? add->name : "");
    snprintf(w_name, sizeof w_name, "%s", mm->inputs[1]->name);
    snprintf(b_name, sizeof b_name, "%s", add ? add->inputs[1 - mm->outputs[0]->uses[0].input]->name
                                              : "");
    int bias_first = add && add->inputs[0] != mm->outputs[0];
    qd_value *x = mm->inputs[0];

    /* The new weights and values first, so a failure leaves the graph as
     * it was (but for unused initializers, pruned later). */
    qd_value *wv[QD_MAX_PARTS], *bv[QD_MAX_PARTS] = {NULL}, *mid[QD_MAX_PARTS] = {NULL};
    for (int i = 0; i < n; i++) {
        if (!parts[i].out)
            continue;
        float *wd, *bd;
        if (!(wv[i] = new_weight(g, w_name, suffix[i], 2, (int64_t[]){e, e}, &wd)))
            return -1;
        const float *ws = w->data;
        for (int64_t r = 0; r < e; r++)
            memcpy(wd + r * e, ws + r * m + i * e, (size_t)e * sizeof *wd);
        if (bias) {
            if (!(bv[i] = new_weight(g, b_name, suffix[i], 1, &e, &bd)))
                return -1;
            memcpy(bd, (const float *)bias->data + i * e, (size_t)e * sizeof *bd);
            if (!(mid[i] = new_activation(g, mm_name, suffix[i])))
                return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        int seen = 0; /* a Split is the reader of several parts */
        for (int j = 0; j < i; j++)
            seen |= parts[j].reader == parts[i].reader;
        if (!seen)
            qd_graph_remove_node(g, parts[i].reader);
    }
    for (int i = 0; i < n_dead; i++)
        qd_graph_remove_node(g, dead[i]);
    if (add)
        qd_graph_remove_node(g, add);
    qd_graph_remove_node(g, mm);
    for (int i = 0; i < n; i++) {
        if (!parts[i].out)
            continue;
        char name[600];
        snprintf(name, sizeof name, "%s%s", mm_name, suffix[i]);
        qd_value *mm_out = bias ? mid[i] : parts[i].out;
        if (!qd_graph_add_node(g, "MatMul", "", name, (qd_value *[]){x, wv[i]}, 2, &mm_out, 1))
            return -1;
        if (!bias)
            continue;
        snprintf(name, sizeof name, "%s%s", add_name, suffix[i]);
        qd_value *ins[2] = {bias_first ? bv[i] : mid[i], bias_first ? mid[i] : bv[i]};
        if (!qd_graph_add_node(g, "Add", "", name, ins, 2, &parts[i].out, 1))
            return -1;
    }
    return 1;
}

/* ---- driver ---------------------------------------------------------------- */

qd_status qd_graph_convert_for_fusion(qd_graph *g, qd_conversion_counts *counts)
{
    if (!g)
        return QD_STATUS_INVALID_ARGUMENT;
    qd_conversion_counts local;
    if (!counts)
        counts = &local;
    memset(counts, 0, sizeof *counts);
    qd_status st = qd_graph_toposort(g);
    if (st != QD_OK)
        return st;
    /* To a fixed point: each rewrite removes the node it anchors on, so the
     * loop ends; restart the scan after a change (the node list moved). */
    int changed = 1, any = 0;
    while (changed) {
        changed = 0;
        for (size_t i = 0; i < g->n_nodes && !changed; i++) {
            qd_node *n = g->nodes[i];
            int r = 0;
            if (n->op == QD_OP_GEMM) {
                r = flatten_gemm_to_conv(g, n);
                counts->flatten_gemm_to_conv += r > 0;
            } else if (n->op == QD_OP_MATMUL) {
                r = split_packed_projection(g, n);
                counts->mha_in_proj_split += r > 0;
            }
            if (r < 0)
                return g->err.status != QD_OK ? g->err.status : QD_STATUS_OUT_OF_MEMORY;
            changed = r > 0;
            any |= changed;
        }
    }
    qd_graph_prune_values(g);
    if (!any)
        return QD_OK;
    /* Shapes of the new values (the matcher's predicates read them). */
    return qd_graph_infer_shapes(g);
}

int qd_conversion_total(const qd_conversion_counts *c)
{
    return c ? c->flatten_gemm_to_conv + c->mha_in_proj_split : 0;
}

void qd_conversion_report(const qd_conversion_counts *c, FILE *out)
{
    if (!c || !out)
        return;
    fprintf(out, "| Conversion | Count |\n|---|---:|\n");
    if (c->flatten_gemm_to_conv)
        fprintf(out, "| `FlattenGemmToConv` | %d |\n", c->flatten_gemm_to_conv);
    if (c->mha_in_proj_split)
        fprintf(out, "| `DecomposeMultiheadAttention` | %d |\n", c->mha_in_proj_split);
}
