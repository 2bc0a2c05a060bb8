/* Conversions: decomposed forms exporters write, rewritten into the single
 * ops they compute, so the engine runs them in one pass (or as a oneDNN
 * post-op) and patterns can name them.
 *  - GELU, as torch exports nn.GELU: x * 0.5 * (1 + erf(x / sqrt(2)))
 *  - LayerNorm, as torch exports it below opset 17:
 *      m = ReduceMean(x); d = x - m; v = ReduceMean(d^2);
 *      y = d / sqrt(v + eps) [* gamma] [+ beta]
 * The new nodes keep the output names of what they replace. Gelu and
 * LayerNormalization are ONNX ops of opsets 20 and 17: a model written
 * after these conversions at a lower opset is for qdeploy's engine only. */
#include <math.h>
#include <string.h>

#include "ir/graph.h"
#include "passes/passes.h"
#include "passes/qlinear_to_qdq.h"

/* The scalar value of a constant one-element float tensor, or NAN. */
static double scalar_of(const qd_value *v)
{
    if (!v || !v->konst || qd_numel(v->konst->rank, v->konst->dims) != 1 ||
        !qd_dtype_is_float(v->konst->dtype))
        return NAN;
    return qd_tensor_get_f64(v->konst, 0);
}

static int near(double a, double b) { return fabs(a - b) <= 1e-4 * fabs(b); }

/* The single node reading v (v read once and not a graph output), or NULL. */
static qd_node *only_user(const qd_value *v, qd_op op)
{
    if (!v || v->is_output || v->n_uses != 1 || v->uses[0].node->op != op)
        return NULL;
    return v->uses[0].node;
}

/* The operand of a binary node that is not `v`. */
static qd_value *other_input(const qd_node *n, const qd_value *v)
{
    if (n->n_inputs != 2)
        return NULL;
    return n->inputs[0] == v ? n->inputs[1] : n->inputs[1] == v ? n->inputs[0] : NULL;
}

/* Replaces the nodes `dead` (in any order) by one new node that reads
 * inputs and writes `out` (an existing value, keeping its name). */
static qd_node *replace_chain(qd_graph *g, qd_node **dead, int n_dead, const char *op_type,
                              const char *name, qd_value *const *inputs, int n_inputs,
                              qd_value *out)
{
    char keep[512];
    snprintf(keep, sizeof keep, "%s", name);
    for (int i = 0; i < n_dead; i++)
        qd_graph_remove_node(g, dead[i]);
    return qd_graph_add_node(g, op_type, "", keep, inputs, n_inputs, &out, 1);
}

/* Erf node e: match the GELU around it. Returns 1 when rewritten. */
static int convert_gelu(qd_graph *g, qd_node *erf)
{
    qd_node *scale = erf->inputs[0] ? erf->inputs[0]->producer : NULL;
    if (!scale || erf->inputs[0]->n_uses != 1)
        return 0;
    qd_value *x = NULL;
    if (scale->op == QD_OP_DIV && near(scalar_of(scale->inputs[1]), M_SQRT2))
        x = scale->inputs[0];
    else if (scale->op == QD_OP_MUL) {
        for (int k = 0; k < 2 && !x; k++)
            if (near(scalar_of(scale->inputs[k]), M_SQRT1_2))
                x = scale->inputs[1 - k];
    }
    if (!x)
        return 0;
    qd_node *plus1 = only_user(erf->outputs[0], QD_OP_ADD);
    if (!plus1 || !near(scalar_of(other_input(plus1, erf->outputs[0])), 1.0))
        return 0;
    qd_value *t = plus1->outputs[0];
    qd_node *mul = only_user(t, QD_OP_MUL);
    if (!mul)
        return 0;
    qd_value *m = other_input(mul, t);
    qd_node *dead[6] = {scale, erf, plus1, mul};
    int n_dead = 4;
    qd_value *out;
    if (m == x) { /* (x * t) * 0.5 */
        qd_node *half = only_user(mul->outputs[0], QD_OP_MUL);
        if (!half || !near(scalar_of(other_input(half, mul->outputs[0])), 0.5))
            return 0;
        dead[n_dead++] = half;
        out = half->outputs[0];
    } else { /* (x * 0.5) * t */
        qd_node *half = m ? m->producer : NULL;
        if (!half || half->op != QD_OP_MUL || m->n_uses != 1 || other_input(half, x) == NULL ||
            !near(scalar_of(other_input(half, x)), 0.5))
            return 0;
        dead[n_dead++] = half;
        out = mul->outputs[0];
    }
    qd_node *gelu = replace_chain(g, dead, n_dead, "Gelu", erf->name, &x, 1, out);
    return gelu != NULL;
}

/* 1 when ReduceMean node r reduces only the last axis of a rank-r input,
 * keeping dims. */
static int reduces_last_axis(qd_graph *g, const qd_node *r)
{
    const qd_value *x = r->inputs[0];
    if (!x || x->rank < 1)
        return 0;
    int64_t keep;
    if (qd_node_attr_int(g, r, "keepdims", 1, &keep) != QD_OK || !keep)
        return 0;
    const int64_t *axes;
    size_t n_axes;
    if (qd_node_attr_ints(g, r, "axes", &axes, &n_axes) != QD_OK)
        return 0;
    int64_t axis;
    if (n_axes == 1) {
        axis = axes[0];
    } else if (!axes && r->n_inputs > 1 && r->inputs[1] && r->inputs[1]->konst &&
               qd_numel(r->inputs[1]->konst->rank, r->inputs[1]->konst->dims) == 1) {
        axis = qd_tensor_get_i64(r->inputs[1]->konst, 0); /* opset 18 axes input */
    } else {
        return 0;
    }
    return axis == -1 || axis == x->rank - 1;
}

/* ReduceMean node mean: match the LayerNorm that starts with it. */
static int convert_layernorm(qd_graph *g, qd_node *mean)
{
    qd_value *x = mean->inputs[0];
    if (!x || !reduces_last_axis(g, mean))
        return 0;
    qd_node *sub = only_user(mean->outputs[0], QD_OP_SUB);
    if (!sub || sub->inputs[0] != x || sub->inputs[1] != mean->outputs[0])
        return 0;
    qd_value *d = sub->outputs[0];
    if (d->is_output || d->n_uses != 2)
        return 0;
    qd_node *pow = NULL, *div = NULL;
    for (size_t u = 0; u < 2; u++) {
        qd_node *c = d->uses[u].node;
        if (c->op == QD_OP_POW && c->inputs[0] == d && near(scalar_of(c->inputs[1]), 2.0))
            pow = c;
        else if (c->op == QD_OP_DIV && c->inputs[0] == d)
            div = c;
    }
    if (!pow || !div)
        return 0;
    qd_node *var = only_user(pow->outputs[0], QD_OP_REDUCE_MEAN);
    if (!var || !reduces_last_axis(g, var))
        return 0;
    qd_node *add_eps = only_user(var->outputs[0], QD_OP_ADD);
    double eps = add_eps ? scalar_of(other_input(add_eps, var->outputs[0])) : NAN;
    if (isnan(eps))
        return 0;
    qd_node *sqrt_n = only_user(add_eps->outputs[0], QD_OP_SQRT);
    if (!sqrt_n || div->inputs[1] != sqrt_n->outputs[0] || sqrt_n->outputs[0]->n_uses != 1)
        return 0;
    qd_node *dead[9] = {mean, sub, pow, var, add_eps, sqrt_n, div};
    int n_dead = 7;
    qd_value *out = div->outputs[0];
    int64_t c = x->dims[x->rank - 1];
    qd_value *ins[3] = {x, NULL, NULL};
    /* Optional affine part: * gamma [+ beta], constants over the last axis. */
    qd_node *mul = only_user(out, QD_OP_MUL);
    qd_value *gamma = mul ? other_input(mul, out) : NULL;
    if (gamma && gamma->konst && qd_numel(gamma->konst->rank, gamma->konst->dims) == c &&
        gamma->dtype == QD_DT_FLOAT) {
        dead[n_dead++] = mul;
        out = mul->outputs[0];
        ins[1] = gamma;
        qd_node *add = only_user(out, QD_OP_ADD);
        qd_value *beta = add ? other_input(add, out) : NULL;
        if (beta && beta->konst && qd_numel(beta->konst->rank, beta->konst->dims) == c &&
            beta->dtype == QD_DT_FLOAT) {
            dead[n_dead++] = add;
            out = add->outputs[0];
            ins[2] = beta;
        }
    }
    if (!ins[1]) {
        /* LayerNormalization needs a scale: a vector of ones. */
        int64_t dims[1] = {c};
        qd_tensor *ones = c > 0 ? qd_tensor_new(QD_DT_FLOAT, 1, dims) : NULL;
        if (!ones)
            return 0;
        for (int64_t i = 0; i < c; i++)
            ((float *)ones->data)[i] = 1.0f;
        char hint[512];
        snprintf(hint, sizeof hint, "%s.ln_scale", mean->name);
        if (!(ins[1] = qd_graph_add_initializer(g, hint, ones)))
            return 0;
    }
    char name[512];
    snprintf(name, sizeof name, "%s", mean->name);
    qd_node *ln = replace_chain(g, dead, n_dead, "LayerNormalization", name, ins,
                                ins[2] ? 3 : 2, out);
    if (!ln)
        return 0;
    qd_node_set_attr_int(ln, "axis", -1);
    qd_node_set_attr_float(ln, "epsilon", (float)eps);
    return 1;
}

qd_status qd_graph_canonicalize(qd_graph *g)
{
    if (!g)
        return QD_STATUS_INVALID_ARGUMENT;
    if (qd_graph_qlinear_to_qdq(g) != QD_OK)
        return g->err.status;
    int changed = 1;
    while (changed) {
        changed = 0;
        for (size_t i = 0; i < g->n_nodes && !changed; i++) {
            qd_node *n = g->nodes[i];
            if (n->op == QD_OP_ERF && n->n_inputs == 1 && n->n_outputs == 1)
                changed = convert_gelu(g, n);
            else if (n->op == QD_OP_REDUCE_MEAN && n->n_inputs >= 1 && n->n_outputs == 1)
                changed = convert_layernorm(g, n);
        }
        if (g->err.status == QD_STATUS_OUT_OF_MEMORY)
            return g->err.status;
    }
    qd_status st = qd_graph_propagate_quantize(g, NULL);
    if (st != QD_OK)
        return st;
    qd_graph_prune_values(g);
    return qd_graph_toposort(g);
}
