/* simplify: what every later stage wants gone. Folded constants become
 * initializers, Identity and inference-time Dropout disappear, and a
 * BatchNormalization that follows a Conv is folded into the Conv's weights
 * and bias. Shapes must have been inferred (qd_graph_infer_shapes). */
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
    if (st != QD_OK)
        return st;
    qd_graph_prune_values(g);
    return qd_graph_toposort(g);
}
