/* The pattern matcher: finds every row of a pattern table in a graph, then
 * keeps a set of non-overlapping matches, longest first. See pattern.h. */
#include "passes/pattern.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

unsigned qd_pattern_qdq_points(const qd_pattern *p, const char *target)
{
    if (!p || !target)
        return 0;
    for (int i = 0; i < QD_PATTERN_MAX_TARGETS && p->qdq[i].target; i++)
        if (!strcmp(p->qdq[i].target, target))
            return p->qdq[i].points;
    return 0;
}

/* ---- matching one row at one anchor --------------------------------------- */

typedef struct chain {
    qd_node *nodes[QD_MATCH_MAX_NODES];
    int n;
} chain;

static int is_const(const qd_value *v) { return v && v->konst; }

/* 1 when v may be an intermediate value of a chain: read by exactly `uses`
 * nodes and not a graph output. */
static int intermediate(const qd_value *v, size_t uses)
{
    return v && !v->is_output && v->n_uses == uses;
}

/* 1 when the outputs of n other than output 0 are absent or unread (BN's
 * training outputs). */
static int only_first_output_used(const qd_node *n)
{
    for (int k = 1; k < n->n_outputs; k++)
        if (n->outputs[k] && (n->outputs[k]->n_uses || n->outputs[k]->is_output))
            return 0;
    return 1;
}

static int op_in(const qd_pattern_step *s, qd_op op)
{
    for (int k = 0; k < s->n_ops; k++)
        if (s->ops[k] == op)
            return 1;
    return 0;
}

/* Whether node n satisfies step s, entered through value prev (NULL for the
 * first step, which enters through input 0). */
static int step_accepts(qd_graph *g, const qd_pattern_step *s, const qd_node *n,
                        const qd_value *prev)
{
    if (!op_in(s, n->op) || n->n_outputs < 1 || !n->outputs[0] || n->n_inputs < 1)
        return 0;
    int chain_in = 0;
    if (prev) {
        if (n->inputs[0] == prev)
            chain_in = 0;
        else if ((s->flags & QD_STEP_ANY_INPUT) && n->n_inputs > 1 && n->inputs[1] == prev)
            chain_in = 1;
        else
            return 0;
    }
    if (s->flags & (QD_STEP_OTHER_ACTIVATION | QD_STEP_OTHER_CONST | QD_STEP_OTHER_SCALAR)) {
        if (n->n_inputs < 2)
            return 0;
        const qd_value *other = n->inputs[1 - chain_in];
        if (!other)
            return 0;
        if ((s->flags & QD_STEP_OTHER_ACTIVATION) &&
            (is_const(other) || (!prev && is_const(n->inputs[0]))))
            return 0;
        if ((s->flags & (QD_STEP_OTHER_CONST | QD_STEP_OTHER_SCALAR)) && !is_const(other))
            return 0;
        if ((s->flags & QD_STEP_OTHER_SCALAR) &&
            qd_numel(other->konst->rank, other->konst->dims) != 1)
            return 0;
    }
    return !s->pred || s->pred(g, n);
}

/* The SiLU fork x * Sigmoid(x) hanging off x (x read by exactly those two
 * nodes): sets *sig and *mul, returns 1. */
static int silu_fork(const qd_value *x, qd_node **sig, qd_node **mul)
{
    if (!intermediate(x, 2))
        return 0;
    qd_node *s = NULL, *m = NULL;
    for (int u = 0; u < 2; u++) {
        qd_node *c = x->uses[u].node;
        if (c->op == QD_OP_SIGMOID && c->n_inputs == 1 && c->inputs[0] == x)
            s = c;
        else if (c->op == QD_OP_MUL && c->n_inputs == 2)
            m = c;
    }
    if (!s || !m || s->n_outputs < 1 || !intermediate(s->outputs[0], 1) || !m->outputs[0])
        return 0;
    if (!((m->inputs[0] == x && m->inputs[1] == s->outputs[0]) ||
          (m->inputs[1] == x && m->inputs[0] == s->outputs[0])))
        return 0;
    *sig = s;
    *mul = m;
    return 1;
}

static void keep_longer(const chain *cur, chain *best)
{
    if (cur->n > best->n)
        *best = *cur;
}

/* Matches steps[i..] of p after the chain so far (cur), whose output is prev.
 * Keeps the longest complete match in best. */
static void match_steps(qd_graph *g, const qd_pattern *p, int i, qd_value *prev, chain *cur,
                        chain *best)
{
    if (i == p->n_steps) {
        keep_longer(cur, best);
        return;
    }
    const qd_pattern_step *s = &p->steps[i];
    if (intermediate(prev, 1) && only_first_output_used(cur->nodes[cur->n - 1])) {
        qd_node *n = prev->uses[0].node;
        if (step_accepts(g, s, n, prev)) {
            cur->nodes[cur->n++] = n;
            match_steps(g, p, i + 1, n->outputs[0], cur, best);
            cur->n--;
        }
    }
    qd_node *sig, *mul;
    if ((s->flags & QD_STEP_SILU) && only_first_output_used(cur->nodes[cur->n - 1]) &&
        silu_fork(prev, &sig, &mul) && (!s->pred || (s->pred(g, sig) && s->pred(g, mul)))) {
        cur->nodes[cur->n++] = sig;
        cur->nodes[cur->n++] = mul;
        match_steps(g, p, i + 1, mul->outputs[0], cur, best);
        cur->n -= 2;
    }
    if (s->flags & QD_STEP_OPTIONAL)
        match_steps(g, p, i + 1, prev, cur, best);
}

/* The longest match of p whose first node is anchor; 0 nodes when none. */
static void match_at(qd_graph *g, const qd_pattern *p, qd_node *anchor, chain *best)
{
    best->n = 0;
    if (p->n_steps < 1 || p->n_steps > QD_PATTERN_MAX_STEPS)
        return;
    const qd_pattern_step *s = &p->steps[0];
    chain cur = {.n = 0};
    if (step_accepts(g, s, anchor, NULL)) {
        cur.nodes[cur.n++] = anchor;
        match_steps(g, p, 1, anchor->outputs[0], &cur, best);
    }
}

/* ---- choosing non-overlapping matches ------------------------------------- */

typedef struct candidate {
    size_t row;
    chain c;
} candidate;

static int by_preference(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->c.n != y->c.n)
        return x->c.n > y->c.n ? -1 : 1; /* longer first */
    if (x->row != y->row)
        return x->row < y->row ? -1 : 1; /* then earlier rows */
    int ix = x->c.nodes[0]->id, iy = y->c.nodes[0]->id;
    return (ix > iy) - (ix < iy); /* then earlier nodes */
}

static int by_position(const void *a, const void *b)
{
    const qd_match *x = a, *y = b;
    int ix = x->nodes[0]->id, iy = y->nodes[0]->id;
    return (ix > iy) - (ix < iy);
}

qd_status qd_match_patterns_in(qd_graph *g, const qd_pattern *patterns, size_t n_patterns,
                               qd_match_list *out)
{
    if (!g || !out || (!patterns && n_patterns))
        return g ? qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT, "pattern matching: no output")
                 : QD_STATUS_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    out->patterns = patterns;
    out->n_patterns = n_patterns;
    candidate *cands = NULL;
    size_t n_cands = 0, cands_cap = 0;
    unsigned char *claimed = NULL;
    qd_status st = QD_OK;

    for (size_t i = 0; i < g->n_nodes; i++)
        g->nodes[i]->id = (int)i; /* ids index g->nodes; make sure */

    for (size_t i = 0; i < g->n_nodes; i++) {
        qd_node *n = g->nodes[i];
        if (n->op == QD_OP_UNKNOWN)
            continue;
        for (size_t r = 0; r < n_patterns; r++) {
            chain best;
            match_at(g, &patterns[r], n, &best);
            if (!best.n)
                continue;
            if (qd_grow((void **)&cands, &cands_cap, n_cands + 1, sizeof *cands)) {
                st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY,
                                   "pattern matching at node '%s': out of memory", n->name);
                goto fail;
            }
            cands[n_cands].row = r;
            cands[n_cands].c = best;
            n_cands++;
        }
    }
    if (n_cands)
        qsort(cands, n_cands, sizeof *cands, by_preference);

    claimed = qd_calloc(g->n_nodes ? g->n_nodes : 1, 1);
    if (!claimed) {
        st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "pattern matching: out of memory");
        goto fail;
    }
    for (size_t k = 0; k < n_cands; k++) {
        const chain *c = &cands[k].c;
        int free_ = 1;
        for (int j = 0; j < c->n && free_; j++)
            free_ = !claimed[c->nodes[j]->id];
        if (!free_)
            continue;
        if (qd_grow((void **)&out->items, &out->cap, out->n + 1, sizeof *out->items)) {
            st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY,
                               "pattern matching at node '%s': out of memory",
                               c->nodes[0]->name);
            goto fail;
        }
        qd_match *m = &out->items[out->n++];
        m->pattern = &patterns[cands[k].row];
        m->n_nodes = c->n;
        for (int j = 0; j < c->n; j++) {
            m->nodes[j] = c->nodes[j];
            claimed[c->nodes[j]->id] = 1;
        }
    }
    if (out->n)
        qsort(out->items, out->n, sizeof *out->items, by_position);
    qd_free(cands);
    qd_free(claimed);
    return QD_OK;
fail:
    qd_free(cands);
    qd_free(claimed);
    qd_match_list_free(out);
    return st;
}

qd_status qd_match_patterns(qd_graph *g, const char *target, qd_match_list *out)
{
    if (!g)
        return QD_STATUS_INVALID_ARGUMENT;
    if (!target)
        target = "tensorrt";
    int known = 0;
    for (size_t i = 0; qd_fusion_targets[i] && !known; i++)
        known = !strcmp(qd_fusion_targets[i], target);
    if (!known) {
        if (out)
            memset(out, 0, sizeof *out);
        return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT,
                             "unknown target '%s' (known: tensorrt, uniform)", target);
    }
    /* Every target matches the whole table today; the targets differ in the
     * QDQ points their rows declare (qd_pattern_qdq_points). */
    return qd_match_patterns_in(g, qd_fusion_patterns, qd_fusion_pattern_count, out);
}

void qd_match_list_free(qd_match_list *m)
{
    if (!m)
        return;
    qd_free(m->items);
    memset(m, 0, sizeof *m);
}

size_t qd_match_count(const qd_match_list *m, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; m && name && i < m->n; i++)
        n += !strcmp(m->items[i].pattern->name, name);
    return n;
}

void qd_match_report(const qd_match_list *m, FILE *out)
{
    if (!m || !out)
        return;
    fprintf(out, "| Fused module | Count |\n|---|---:|\n");
    for (size_t r = 0; r < m->n_patterns; r++) {
        const char *name = m->patterns[r].name;
        int seen = 0;
        for (size_t q = 0; q < r && !seen; q++)
            seen = !strcmp(m->patterns[q].name, name);
        size_t count = seen ? 0 : qd_match_count(m, name);
        if (count)
            fprintf(out, "| `%s` | %zu |\n", name, count);
    }
}
