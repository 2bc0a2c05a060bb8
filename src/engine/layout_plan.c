/* Memory layout of activations.
 *
 * oneDNN's fast convolutions want channels-last (NHWC) data; ONNX speaks
 * NCHW. Converting around every conv would cost what the fast conv saves,
 * so layouts are planned over the whole graph, forwards:
 *  - a oneDNN Conv writes NHWC;
 *  - elementwise ops on NHWC data stay NHWC: the kernel sees the data as a
 *    plain N,H,W,C tensor and its other operands permuted alike ("physical"
 *    steps), which is valid when permuting does not reorder their data
 *    (scalars, per-channel [C,1,1] vectors, same-layout tensors);
 *  - MaxPool and GlobalAveragePool read NHWC data directly;
 *  - a Transpose that only renames NCHW<->NHWC dims (ConvNeXt's permutes
 *    around LayerNorm) becomes a view: nothing moves;
 *  - everything else reads plain data: a conversion step is inserted once
 *    per value that needs it.
 * Graph outputs are always plain. A 4-D tensor with C == 1 or H*W == 1 has
 * the same bytes in both layouts and is always called plain. */
#include <string.h>

#include "base/alloc.h"
#include "engine/engine.h"
#include "engine/kernels/dnnl/dnnl_kernels.h"
#include "engine/kernels/x86/pool2d_nhwc.h"

static int nontrivial_4d(int rank, const int64_t *d)
{
    return rank == 4 && d[1] > 1 && d[2] * d[3] > 1;
}

static int is_elementwise(qd_op op)
{
    switch (op) {
    case QD_OP_RELU: case QD_OP_LEAKY_RELU: case QD_OP_ELU: case QD_OP_CLIP:
    case QD_OP_SIGMOID: case QD_OP_HARD_SIGMOID: case QD_OP_HARD_SWISH: case QD_OP_TANH:
    case QD_OP_ERF: case QD_OP_GELU: case QD_OP_SOFTPLUS: case QD_OP_SQRT: case QD_OP_RECIPROCAL:
    case QD_OP_NEG: case QD_OP_ABS: case QD_OP_EXP: case QD_OP_LOG:
    case QD_OP_ADD: case QD_OP_SUB: case QD_OP_MUL: case QD_OP_DIV: case QD_OP_POW:
    case QD_OP_MAX: case QD_OP_MIN: case QD_OP_SUM: case QD_OP_WHERE:
        return 1;
    default:
        return 0;
    }
}

/* Per-tensor QuantizeLinear / DequantizeLinear are elementwise too. */
static int is_elementwise_node(const qd_node *n)
{
    if (n->op == QD_OP_QUANTIZE_LINEAR || n->op == QD_OP_DEQUANTIZE_LINEAR) {
        const qd_value *sc = n->n_inputs > 1 ? n->inputs[1] : NULL;
        return sc && sc->konst && qd_numel(sc->konst->rank, sc->konst->dims) == 1;
    }
    return is_elementwise(n->op);
}

static int writes_graph_output(const qd_step *st)
{
    for (int o = 0; o < st->n_outputs; o++)
        if (st->outputs[o] && st->outputs[o]->is_output)
            return 1;
    return 0;
}

/* A slot holding `from`'s data in `layout`, made by a conversion step
 * appended to out[] (once per value and layout). -1: no room. */
static int converted(qd_engine *e, int from, qd_layout layout, qd_step *out, size_t *n_out)
{
    qd_slot *src = &e->slots[from];
    if (src->view.layout == layout)
        return from;
    if (src->converted[layout] >= 0)
        return src->converted[layout];
    if (e->n_slots >= e->slots_cap)
        return -1;
    int id = (int)e->n_slots++;
    qd_slot *dst = &e->slots[id];
    dst->kind = QD_SLOT_ARENA;
    dst->view = src->view;
    dst->view.layout = layout;
    dst->view.data = NULL;
    dst->value = NULL;
    src = &e->slots[from];
    src->converted[layout] = id;
    qd_step *st = &out[(*n_out)++];
    memset(st, 0, sizeof *st);
    st->n_inputs = 1;
    st->in_slot[0] = from;
    st->n_outputs = 1;
    st->out_slot[0] = id;
    st->impl = (qd_kernel_impl){"reorder", qd_reorder_layout, NULL, NULL, NULL};
    return id;
}

static int read_perm(const qd_node *n, int64_t *perm)
{
    const qd_attr *a = qd_node_attr(n, "perm");
    if (!a || a->type != QD_ATTR_INTS || a->n != 4)
        return 0;
    memcpy(perm, a->ints, 4 * sizeof *perm);
    return 1;
}

/* Whether an elementwise step can compute on the NHWC data directly. */
static int physical_ok(const qd_engine *e, const qd_step *st)
{
    const qd_tensor *y = &e->slots[st->out_slot[0]].view;
    if (st->n_outputs != 1 || !nontrivial_4d(y->rank, y->dims))
        return 0;
    for (int j = 0; j < st->n_inputs; j++) {
        if (st->in_slot[j] < 0)
            continue;
        const qd_tensor *t = &e->slots[st->in_slot[j]].view;
        if (t->layout == QD_LAYOUT_NHWC) {
            if (t->rank != 4 || memcmp(t->dims, y->dims, 4 * sizeof *t->dims) != 0)
                return 0;
            continue;
        }
        if (t->rank > 4)
            return 0;
        int64_t d[4] = {1, 1, 1, 1};
        for (int i = 0; i < t->rank; i++)
            d[4 - t->rank + i] = t->dims[i];
        if (d[1] > 1 && d[2] * d[3] > 1)
            return 0; /* permuting would reorder its data */
    }
    return 1;
}

static void set_output_layouts(qd_engine *e, qd_step *st, qd_layout layout)
{
    for (int o = 0; o < st->n_outputs; o++) {
        if (st->out_slot[o] < 0)
            continue;
        qd_tensor *v = &e->slots[st->out_slot[o]].view;
        v->layout = (layout == QD_LAYOUT_NHWC && nontrivial_4d(v->rank, v->dims))
                        ? QD_LAYOUT_NHWC
                        : QD_LAYOUT_PLAIN;
    }
}

/* Converts every NHWC input of st to plain. 0 when out of slots. */
static int inputs_plain(qd_engine *e, qd_step *st, qd_step *out, size_t *n_out)
{
    for (int j = 0; j < st->n_inputs; j++) {
        if (st->in_slot[j] < 0 || e->slots[st->in_slot[j]].view.layout == QD_LAYOUT_PLAIN)
            continue;
        int c = converted(e, st->in_slot[j], QD_LAYOUT_PLAIN, out, n_out);
        if (c < 0)
            return 0;
        st->in_slot[j] = c;
    }
    return 1;
}

static int plan_conv(qd_engine *e, qd_step *st, qd_step *out, size_t *n_out)
{
    const qd_tensor *y = &e->slots[st->out_slot[0]].view;
    /* INT8 convs run fast only channels-last: a 1x1 output is the same
     * bytes either way, so it does not pull the source to plain. */
    qd_layout want = (!writes_graph_output(st) &&
                      (nontrivial_4d(y->rank, y->dims) || st->lowered))
                         ? QD_LAYOUT_NHWC
                         : QD_LAYOUT_PLAIN;
    /* The source in the destination's layout (brgconv wants them alike);
     * a residual (fused Add operand) in exactly the destination's layout. */
    for (int j = 0; j < st->n_inputs; j++) {
        if (st->in_slot[j] < 0 || (j > 0 && j < st->node->n_inputs))
            continue; /* weights and bias are constants */
        const qd_tensor *t = &e->slots[st->in_slot[j]].view;
        if (t->rank != 4 || t->layout == want ||
            (want == QD_LAYOUT_NHWC && !nontrivial_4d(t->rank, t->dims)))
            continue;
        if (j == 0 && !st->lowered && qd_dnnl_conv_reads_plain_src(st->node))
            continue; /* a space-to-depth stem reads either layout */
        int c = converted(e, st->in_slot[j], want, out, n_out);
        if (c < 0)
            return 0;
        st->in_slot[j] = c;
    }
    set_output_layouts(e, st, want);
    return 1;
}

qd_status qd_engine_plan_layouts(qd_engine *e)
{
    qd_graph *g = e->graph;
    for (size_t i = 0; i < g->n_values; i++) {
        qd_slot *s = &e->slots[i];
        const qd_value *v = g->values[i];
        s->view.dtype = v->dtype;
        s->view.rank = v->rank < 0 ? 0 : v->rank;
        for (int d = 0; d < QD_MAX_RANK; d++)
            s->view.dims[d] = d < v->rank ? v->dims[d] : 0;
        s->view.layout = QD_LAYOUT_PLAIN;
        int64_t n = qd_numel(s->view.rank, s->view.dims);
        s->view.nbytes = n < 0 ? 0 : (size_t)n * qd_dtype_size(v->dtype);
    }
    size_t n_old = e->n_steps, n_new = 0;
    qd_step *old = qd_malloc((n_old + 1) * sizeof *old);
    if (!old)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    memcpy(old, e->steps, n_old * sizeof *old);
    size_t cap = 3 * g->n_nodes + 8;
    int ok = 1;
    for (size_t k = 0; k < n_old && ok; k++) {
        qd_step st = old[k];
        if (n_new + st.n_inputs + 1 > cap) {
            ok = 0;
            break;
        }
        const qd_node *n = st.node;
        int64_t perm[4];
        if (!st.dynamic && n->op == QD_OP_CONV && !strncmp(st.impl.name, "dnnl", 4) &&
            st.out_slot[0] >= 0 && e->slots[st.out_slot[0]].view.rank == 4) {
            ok = plan_conv(e, &st, e->steps, &n_new);
        } else if (!st.dynamic && !st.n_fused && qd_pool2d_nhwc_supports(n) &&
                   !writes_graph_output(&st) && st.in_slot[0] >= 0 &&
                   e->slots[st.in_slot[0]].view.layout == QD_LAYOUT_NHWC) {
            /* Pools read channels-last data directly. */
            st.impl = (qd_kernel_impl){"nhwc", qd_pool2d_nhwc, NULL, NULL, NULL};
            set_output_layouts(e, &st, QD_LAYOUT_NHWC);
        } else if (!st.dynamic && is_elementwise_node(n) && !st.n_fused &&
                   !writes_graph_output(&st) && st.out_slot[0] >= 0) {
            int any_nhwc = 0;
            for (int j = 0; j < st.n_inputs; j++)
                if (st.in_slot[j] >= 0 && e->slots[st.in_slot[j]].view.layout == QD_LAYOUT_NHWC)
                    any_nhwc = 1;
            if (any_nhwc && physical_ok(e, &st)) {
                st.physical = 1;
                set_output_layouts(e, &st, QD_LAYOUT_NHWC);
            } else {
                ok = inputs_plain(e, &st, e->steps, &n_new);
                set_output_layouts(e, &st, QD_LAYOUT_PLAIN);
            }
        } else if (!st.dynamic && n->op == QD_OP_TRANSPOSE && !st.n_fused &&
                   !writes_graph_output(&st) && st.in_slot[0] >= 0 && st.out_slot[0] >= 0 &&
                   read_perm(n, perm)) {
            const qd_tensor *x = &e->slots[st.in_slot[0]].view;
            const qd_tensor *y = &e->slots[st.out_slot[0]].view;
            int to_nhwc = perm[0] == 0 && perm[1] == 2 && perm[2] == 3 && perm[3] == 1;
            int to_nchw = perm[0] == 0 && perm[1] == 3 && perm[2] == 1 && perm[3] == 2;
            if (to_nhwc && x->layout == QD_LAYOUT_NHWC) {
                st.view_alias = 1; /* N,H,W,C plain: the very bytes of the NHWC input */
                set_output_layouts(e, &st, QD_LAYOUT_PLAIN);
            } else if (to_nchw && x->layout == QD_LAYOUT_PLAIN && nontrivial_4d(y->rank, y->dims)) {
                st.view_alias = 1; /* N,C,H,W stored NHWC: the input's bytes */
                set_output_layouts(e, &st, QD_LAYOUT_NHWC);
            } else {
                ok = inputs_plain(e, &st, e->steps, &n_new);
                set_output_layouts(e, &st, QD_LAYOUT_PLAIN);
            }
        } else {
            ok = inputs_plain(e, &st, e->steps, &n_new);
            set_output_layouts(e, &st, QD_LAYOUT_PLAIN);
        }
        e->steps[n_new++] = st;
    }
    qd_free(old);
    e->n_steps = n_new;
    if (!ok)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "layout plan: out of room");
    return QD_OK;
}
