/* simplify: what every later stage wants gone. Folded constants become
 * initializers, Identity and inference-time Dropout disappear, a
 * BatchNormalization that follows a Conv is folded into the Conv's weights
 * and bias, and a per-feature scale after a MatMul (ConvNeXt's layer
 * scale) into the MatMul's weights. Shapes must have been inferred
 * (qd_graph_infer_shapes). */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "ir/graph.h"
#include "passes/passes.h"

/* Makes `to` take `from`'s place as producer of from's consumers, keeping
 * the name the rest of the graph (and the user) knows: the node producing
 * `keep` now produces it directly. */
static void bypass(qd_graph *g, qd_node *n, qd_value *in, qd_value *out)
{
    if (out->is_output && in->producer && in->n_uses == 1) {
        /* Keep the graph output's name: the producer of `in` writes `out`. */
        qd_node *p = in->producer;
        int idx = in->producer_output;
        qd_graph_remove_node(g, n);
        p->outputs[idx] = out;
        out->producer = p;
        out->producer_output = idx;
        in->producer = NULL;
        return;
    }
    if (out->is_output)
        return; /* an input or initializer passed straight out: keep the node */
    qd_graph_replace_uses(g, out, in);
    qd_graph_remove_node(g, n);
}

static int remove_identities(qd_graph *g)
{
    int changed = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        qd_node *n = g->nodes[i];
        int is_dropout = n->op == QD_OP_DROPOUT && (n->n_outputs < 2 || !n->outputs[1] ||
                                                    !n->outputs[1]->n_uses);
        if ((n->op != QD_OP_IDENTITY && !is_dropout) || !n->n_inputs || !n->inputs[0] ||
            !n->outputs[0])
            continue;
        if (is_dropout && n->n_inputs > 2 && n->inputs[2]) {
            /* training_mode input: only a constant false is inference */
            const qd_tensor *t = n->inputs[2]->konst;
            if (!t || qd_tensor_get_i64(t, 0))
                continue;
        }
        size_t before = g->n_nodes;
        bypass(g, n, n->inputs[0], n->outputs[0]);
        if (g->n_nodes != before) {
            changed++;
            i--;
        }
    }
    return changed;
}

/* Nodes whose every output was folded to a constant: the constants become
 * initializers and the nodes go. */
static qd_status materialize_constants(qd_graph *g, int *changed)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        qd_node *n = g->nodes[i];
        int all = n->n_outputs > 0;
        for (int o = 0; o < n->n_outputs; o++)
            if (n->outputs[o] && !n->outputs[o]->konst)
                all = 0;
        if (!all)
            continue;
        for (int o = 0; o < n->n_outputs; o++) {
            qd_value *v = n->outputs[o];
            if (!v)
                continue;
            if (qd_grow((void **)&g->initializers, &g->initializers_cap, g->n_initializers + 1,
                        sizeof *g->initializers) != 0)
                return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
            v->is_initializer = 1;
            g->initializers[g->n_initializers++] = v;
        }
        qd_graph_remove_node(g, n);
        i--;
        (*changed)++;
    }
    return QD_OK;
}

/* Conv -> BatchNormalization with constant parameters: scale the Conv's
 * weights per output channel and fold the shift into its bias. */
static qd_status fold_batch_norms(qd_graph *g, int *changed)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        qd_node *bn = g->nodes[i];
        if (bn->op != QD_OP_BATCH_NORMALIZATION || bn->n_inputs < 5 || bn->n_outputs < 1)
            continue;
        if (bn->n_outputs > 1 && ((bn->outputs[1] && bn->outputs[1]->n_uses) ||
                                  (bn->n_outputs > 2 && bn->outputs[2] && bn->outputs[2]->n_uses)))
            continue; /* training outputs are read */
        qd_value *x = bn->inputs[0];
        qd_node *conv = x ? x->producer : NULL;
        if (!conv || conv->op != QD_OP_CONV || x->n_uses != 1 || x->is_output ||
            conv->n_inputs < 2 || !conv->inputs[1] || !conv->inputs[1]->konst)
            continue;
        const qd_tensor *w = conv->inputs[1]->konst;
        const qd_tensor *b = conv->n_inputs > 2 && conv->inputs[2] ? conv->inputs[2]->konst : NULL;
        if (conv->n_inputs > 2 && conv->inputs[2] && !b)
            continue;
        const qd_tensor *p[4];
        int ok = w->dtype == QD_DT_FLOAT && w->rank >= 1 && (!b || b->dtype == QD_DT_FLOAT);
        for (int k = 0; k < 4 && ok; k++) {
            p[k] = bn->inputs[k + 1] ? bn->inputs[k + 1]->konst : NULL;
            ok = p[k] && p[k]->dtype == QD_DT_FLOAT && qd_numel(p[k]->rank, p[k]->dims) == w->dims[0];
        }
        if (!ok)
            continue;
        float eps;
        qd_status st = qd_node_attr_float(g, bn, "epsilon", 1e-5f, &eps);
        if (st != QD_OK)
            return st;
        int64_t m = w->dims[0];
        int64_t per = qd_numel(w->rank, w->dims) / (m ? m : 1);
        qd_tensor *nw = qd_tensor_clone(w);
        qd_tensor *nb = qd_tensor_new(QD_DT_FLOAT, 1, &m);
        if (!nw || !nb) {
            qd_tensor_delete(nw);
            qd_tensor_delete(nb);
            return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory folding '%s'",
                                 bn->name);
        }
        const float *scale = p[0]->data, *shift = p[1]->data, *mean = p[2]->data,
                    *var = p[3]->data;
        float *wd = nw->data, *bd = nb->data;
        for (int64_t c = 0; c < m; c++) {
            /* double: the folded weights should match the unfolded model as
             * closely as float arithmetic allows */
            double s = (double)scale[c] / sqrt((double)var[c] + (double)eps);
            for (int64_t k = 0; k < per; k++)
                wd[c * per + k] = (float)((double)wd[c * per + k] * s);
            double bias = b ? ((const float *)b->data)[c] : 0.0;
            bd[c] = (float)((bias - mean[c]) * s + shift[c]);
        }
        char hint[512];
        snprintf(hint, sizeof hint, "%s.weight_bn", conv->name);
        qd_value *wv = qd_graph_add_initializer(g, hint, nw);
        snprintf(hint, sizeof hint, "%s.bias_bn", conv->name);
        qd_value *bv = wv ? qd_graph_add_initializer(g, hint, nb) : NULL;
        if (!wv || !bv) {
            if (!wv)
                qd_tensor_delete(nb);
            return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory folding '%s'",
                                 bn->name);
        }
        if (conv->n_inputs < 3) {
            /* Give the conv a third input slot. */
            qd_value **grown = qd_realloc(conv->inputs, 4 * sizeof *grown);
            if (!grown)
                return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
            conv->inputs = grown;
            conv->inputs[2] = NULL;
            conv->n_inputs = 3;
        }
        qd_node_set_input(conv, 1, wv);
        qd_node_set_input(conv, 2, bv);
        /* The conv now writes the BN's output (its name is what users see). */
        qd_value *y = bn->outputs[0];
        qd_graph_remove_node(g, bn);
        conv->outputs[0] = y;
        y->producer = conv;
        y->producer_output = 0;
        x->producer = NULL;
        (*changed)++;
        i = 0;
    }
    return QD_OK;
}

/* Initializers nothing reads any more (weights a fold replaced). */
static void drop_unused_initializers(qd_graph *g)
{
    size_t w = 0;
    for (size_t i = 0; i < g->n_initializers; i++) {
        qd_value *v = g->initializers[i];
        if (v->n_uses || v->is_output || v->is_input)
            g->initializers[w++] = v;
        else
            v->is_initializer = 0;
    }
    g->n_initializers = w;
}

/* The single float constant operand of a binary node and the other one,
 * or 0. */
static int const_and_other(const qd_node *n, qd_value **k, qd_value **other)
{
    if (n->n_inputs != 2 || !n->inputs[0] || !n->inputs[1] || n->n_outputs < 1 || !n->outputs[0])
        return 0;
    int c = n->inputs[1]->konst ? 1 : n->inputs[0]->konst ? 0 : -1;
    if (c < 0 || n->inputs[1 - c]->konst || n->inputs[c]->konst->dtype != QD_DT_FLOAT)
        return 0;
    *k = n->inputs[c];
    *other = n->inputs[1 - c];
    return 1;
}

/* v feeds only its one consumer and is not a graph output. */
static int single_use(const qd_value *v)
{
    return v && v->n_uses == 1 && !v->is_output;
}

/* The axis along which a constant of shape k varies when broadcast against
 * an output of rank r: all its dims 1 but one (right-aligned), or -1. A
 * one-element constant varies along no axis: r - 1 will do. */
static int per_axis(const qd_tensor *k, int r)
{
    int axis = -1;
    if (k->rank > r)
        return -1;
    for (int i = 0; i < k->rank; i++)
        if (k->dims[i] != 1) {
            if (axis >= 0)
                return -1;
            axis = r - k->rank + i;
        }
    return axis < 0 ? r - 1 : axis;
}

/* ConvNeXt's layer scale: MatMul(x, W) [+ b] [-> Transpose] -> Mul(gamma),
 * gamma per output feature: folded into W's columns and b, the Mul goes
 * (one elementwise pass less per block, and the scale then lives in the
 * weights a quantizer sees per channel). */
static qd_status fold_linear_scales(qd_graph *g, int *changed)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        qd_node *mul = g->nodes[i];
        qd_value *gamma, *v;
        if (mul->op != QD_OP_MUL || !const_and_other(mul, &gamma, &v) || !single_use(v) ||
            !v->producer || !qd_value_shape_known(mul->outputs[0]))
            continue;
        int r = mul->outputs[0]->rank;
        int axis = per_axis(gamma->konst, r);
        qd_node *t = v->producer->op == QD_OP_TRANSPOSE ? v->producer : NULL;
        qd_value *u = v;
        if (t) {
            const qd_attr *perm = qd_node_attr(t, "perm");
            if (!perm || perm->type != QD_ATTR_INTS || (int)perm->n != r || axis < 0 ||
                !t->inputs[0] || !single_use(t->inputs[0]))
                continue;
            axis = (int)perm->ints[axis];
            u = t->inputs[0];
        }
        qd_node *add = u->producer && u->producer->op == QD_OP_ADD ? u->producer : NULL;
        qd_value *b = NULL, *z = u;
        if (add && (!const_and_other(add, &b, &z) || !single_use(z)))
            continue;
        qd_node *mm = z->producer;
        if (!mm || mm->op != QD_OP_MATMUL || mm->n_inputs != 2 || !mm->inputs[1] ||
            !mm->inputs[1]->konst || mm->inputs[1]->konst->dtype != QD_DT_FLOAT ||
            mm->inputs[1]->rank != 2 || !qd_value_shape_known(z) || axis != z->rank - 1)
            continue;
        const qd_tensor *w = mm->inputs[1]->konst;
        int64_t k = w->dims[0], n = w->dims[1];
        int64_t gn = qd_numel(gamma->konst->rank, gamma->konst->dims);
        if ((gn != n && gn != 1) || (b && per_axis(b->konst, z->rank) != z->rank - 1) ||
            (b && qd_numel(b->konst->rank, b->konst->dims) != n &&
             qd_numel(b->konst->rank, b->konst->dims) != 1))
            continue;
        const float *gd = gamma->konst->data;
        qd_tensor *nw = qd_tensor_clone(w), *nb = b ? qd_tensor_new(QD_DT_FLOAT, 1, &n) : NULL;
        if (!nw || (b && !nb)) {
            qd_tensor_delete(nw);
            qd_tensor_delete(nb);
            return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory folding '%s'",
                                 mul->name);
        }
        float *wd = nw->data;
        for (int64_t row = 0; row < k; row++)
            for (int64_t col = 0; col < n; col++)
                wd[row * n + col] *= gd[gn == 1 ? 0 : col];
        if (b) {
            const float *bd = b->konst->data;
            int64_t bn = qd_numel(b->konst->rank, b->konst->dims);
            for (int64_t col = 0; col < n; col++)
                ((float *)nb->data)[col] = bd[bn == 1 ? 0 : col] * gd[gn == 1 ? 0 : col];
        }
        char hint[512];
        snprintf(hint, sizeof hint, "%s.weight_scaled", mm->name);
        qd_value *wv = qd_graph_add_initializer(g, hint, nw);
        qd_value *bv = NULL;
        if (wv && b) {
            snprintf(hint, sizeof hint, "%s.bias_scaled", add->name);
            bv = qd_graph_add_initializer(g, hint, nb);
        }
        if (!wv || (b && !bv)) {
            if (!wv)
                qd_tensor_delete(nb);
            return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory folding '%s'",
                                 mul->name);
        }
        qd_node_set_input(mm, 1, wv);
        if (add)
            qd_node_set_input(add, add->inputs[0] == b ? 0 : 1, bv);
        /* v has one use and a producer: the Mul always goes. */
        bypass(g, mul, v, mul->outputs[0]);
        (*changed)++;
        i = 0;
    }
    return QD_OK;
}

qd_status qd_graph_simplify(qd_graph *g)
{
    if (!g)
        return QD_STATUS_INVALID_ARGUMENT;
    int changed = 0;
    qd_status st = materialize_constants(g, &changed);
    if (st == QD_OK)
        changed += remove_identities(g);
    if (st == QD_OK)
        st = fold_batch_norms(g, &changed);
    if (st == QD_OK)
        st = fold_linear_scales(g, &changed);
    if (st != QD_OK)
        return st;
    drop_unused_initializers(g);
    qd_graph_prune_values(g);
    return qd_graph_toposort(g);
}
