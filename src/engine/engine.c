/* Engine lifecycle: plan (create), run, inputs and outputs. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/alloc.h"
#include "engine/engine.h"
#include "engine/kernels/dnnl/dnnl_kernels.h"
#include "engine/kernels/x86/x86_kernels.h"
#include "engine/lower_qdq.h"
#include "ir/shape.h"

#define ARENA_ALIGN 64

static qd_status engine_fail(qd_engine *e, qd_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static qd_status engine_fail(qd_engine *e, qd_status st, const char *fmt, ...)
{
    e->err.status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err.message, sizeof e->err.message, fmt, ap);
    va_end(ap);
    return st;
}

/* Copies the graph's error (from shape inference, kernels) onto the engine. */
static qd_status from_graph(qd_engine *e, qd_status st)
{
    e->err.status = st;
    snprintf(e->err.message, sizeof e->err.message, "%s", qd_graph_error(e->graph));
    return st;
}

const char *qd_engine_error(const qd_engine *e) { return e ? e->err.message : "out of memory"; }

/* A Transpose that only moves dims of size 1 keeps the data order. */
static int transpose_keeps_order(const qd_node *n)
{
    const qd_value *x = n->n_inputs ? n->inputs[0] : NULL;
    const qd_attr *perm = qd_node_attr(n, "perm");
    if (!x || !qd_value_shape_known(x))
        return 0;
    int last = -1;
    for (int i = 0; i < x->rank; i++) {
        int64_t axis = perm && perm->type == QD_ATTR_INTS && (int)perm->n == x->rank
                           ? perm->ints[i]
                           : x->rank - 1 - i; /* default: reversed */
        if (axis < 0 || axis >= x->rank)
            return 0;
        if (x->dims[axis] == 1)
            continue;
        if (axis < last)
            return 0;
        last = (int)axis;
    }
    return 1;
}

/* Ops whose single output is their first input's data, reshaped. */
static int is_view_op(const qd_node *n)
{
    qd_op op = n->op;
    if (op == QD_OP_TRANSPOSE && n->n_outputs == 1)
        return transpose_keeps_order(n);
    for (int o = 1; o < n->n_outputs; o++)
        if (n->outputs[o])
            return 0; /* e.g. Dropout's mask must be written */
    return op == QD_OP_RESHAPE || op == QD_OP_FLATTEN || op == QD_OP_SQUEEZE ||
           op == QD_OP_UNSQUEEZE || op == QD_OP_IDENTITY || op == QD_OP_DROPOUT;
}

static void make_label(qd_step *s);
static void observe_step(qd_engine *e, const qd_step *st);

static int root_of(const qd_engine *e, int id)
{
    while (e->slots[id].alias_of >= 0)
        id = e->slots[id].alias_of;
    return id;
}

static void set_view_shape(qd_slot *s, const qd_value *v)
{
    s->view.dtype = v->dtype;
    s->view.rank = v->rank < 0 ? 0 : v->rank;
    for (int i = 0; i < QD_MAX_RANK; i++)
        s->view.dims[i] = i < v->rank ? v->dims[i] : 0;
    int64_t n = qd_numel(s->view.rank, s->view.dims);
    s->view.nbytes = n < 0 ? 0 : (size_t)n * qd_dtype_size(v->dtype);
    s->view.owns_data = 0;
}

static int has_symbolic_input(const qd_graph *g)
{
    for (size_t i = 0; i < g->n_inputs; i++) {
        const qd_value *v = g->inputs[i];
        for (int d = 0; d < v->rank; d++)
            if (v->dims[d] < 0)
                return 1;
    }
    return 0;
}

/* The values a step reads and writes (see qd_step). */
static void step_io_lists(qd_step *st)
{
    qd_node *n = st->node;
    st->n_inputs = 0;
    for (int j = 0; j < n->n_inputs && st->n_inputs < QD_STEP_MAX_INPUTS; j++)
        st->inputs[st->n_inputs++] = n->inputs[j];
    qd_value *carried = n->n_outputs ? n->outputs[0] : NULL;
    qd_node *last = n;
    for (int f = 0; f < st->n_fused; f++) {
        qd_node *fn = st->fused[f];
        for (int j = 0; j < fn->n_inputs && st->n_inputs < QD_STEP_MAX_INPUTS; j++)
            if (fn->inputs[j] != carried && (fn->n_inputs > 1 && j < 2 && fn->op == QD_OP_ADD))
                st->inputs[st->n_inputs++] = fn->inputs[j];
        carried = fn->n_outputs ? fn->outputs[0] : NULL;
        last = fn;
    }
    st->n_outputs = 0;
    for (int o = 0; o < last->n_outputs && st->n_outputs < QD_STEP_MAX_OUTPUTS; o++)
        st->outputs[st->n_outputs++] = last->outputs[o];
    for (int j = 0; j < st->n_inputs; j++)
        st->in_slot[j] = st->inputs[j] ? st->inputs[j]->id : -1;
    for (int o = 0; o < st->n_outputs; o++)
        st->out_slot[o] = st->outputs[o] ? st->outputs[o]->id : -1;
}

/* Whether n's step may write a graph output: the layout plan then keeps
 * its output channels-first, where oneDNN 2.6 takes zero points only in
 * its reference kernel. Follows the chain the step may fuse. */
static int may_write_graph_output(const qd_node *n)
{
    const qd_value *v = n->n_outputs ? n->outputs[0] : NULL;
    for (int depth = 0; v && depth < 8; depth++) {
        if (v->is_output)
            return 1;
        if (v->n_uses != 1)
            return 0;
        qd_op op = v->uses[0].node->op;
        if (op != QD_OP_RELU && op != QD_OP_CLIP && op != QD_OP_ADD && op != QD_OP_GELU &&
            op != QD_OP_SIGMOID && op != QD_OP_TANH && op != QD_OP_HARD_SWISH &&
            op != QD_OP_QUANTIZE_LINEAR)
            return 0;
        v = v->uses[0].node->n_outputs ? v->uses[0].node->outputs[0] : NULL;
    }
    return 0;
}

/* 1 when oneDNN has a non-reference kernel for n's INT8 step with these
 * zero points, in the activation layout the layout plan will give it
 * (channels-last for 4-D convs not writing a graph output). */
static int zero_points_fast(const qd_node *n, const qd_value *x_q, const qd_value *w_q,
                            int src_zp, int dst_zp, int sum_zp)
{
    int channels_last = n->op == QD_OP_CONV && x_q->rank == 4 && !may_write_graph_output(n);
    return qd_dnnl_s8_zero_points_fast(n, x_q, w_q, src_zp, dst_zp, sum_zp, channels_last);
}

/* An INT8 step (see lower_qdq.h) reads the int8 tensors behind its
 * DequantizeLinear inputs, and writes the int8 output of the
 * QuantizeLinear that alone consumes its result when what it fuses
 * commutes with a positive scale (Relu, one residual Add of an int8
 * operand): that Q node then runs inside the step. */
static void finish_lowering(qd_step *st, qd_value *x_q, qd_value *w_q, unsigned char *taken)
{
    st->inputs[0] = x_q;
    st->in_slot[0] = x_q->id;
    st->inputs[1] = w_q;
    st->in_slot[1] = w_q->id;
    qd_value *b_q = qd_lower_bias_source(st->node); /* int32, accumulator units */
    if (b_q && st->n_inputs > 2) {
        st->inputs[2] = b_q;
        st->in_slot[2] = b_q->id;
    }
    float dst_scale;
    int32_t dst_zp;
    qd_node *q = st->n_outputs >= 1 ? qd_lower_requant_target_zp(st->outputs[0], &dst_scale,
                                                                 &dst_zp)
                                    : NULL;
    if (!q || taken[q->id])
        return;
    /* Relu and an int8 residual commute with the scale: it folds into the
     * output scales. GELU and friends, or a bias Add (a MatMul's), compute
     * in real units before a final 1/dst_scale post-op. A full-shape Add
     * must be an 8-bit residual (oneDNN sums it in dst's units, minus its
     * zero point). */
    int post_op = 0, extra = st->node->n_inputs, n_residual = 0, r_at = -1;
    qd_value *r_q = NULL;
    float residual_scale = 0.0f;
    int32_t residual_zp = 0;
    const qd_value *y = st->outputs[0];
    for (int f = 0; f < st->n_fused; f++) {
        qd_op op = st->fused[f]->op;
        if (op == QD_OP_ADD) {
            if (extra >= st->n_inputs || !st->inputs[extra])
                return;
            const qd_value *r = st->inputs[extra];
            if (r->rank == y->rank && !memcmp(r->dims, y->dims, (size_t)y->rank * 8)) {
                r_q = qd_lower_dq_source_zp(r, &residual_scale, &residual_zp);
                if (!r_q || n_residual++)
                    return;
                r_at = extra;
            } else {
                post_op = 1; /* a per-channel operand, in real units */
            }
            extra++;
        } else if (op == QD_OP_GELU || op == QD_OP_SIGMOID || op == QD_OP_TANH ||
                   op == QD_OP_CLIP || op == QD_OP_HARD_SWISH) {
            post_op = 1;
        } else if (op != QD_OP_RELU) {
            return;
        }
    }
    /* Zero points oneDNN takes only in its reference kernel here: a float
     * output instead. */
    if ((dst_zp || residual_zp) &&
        !zero_points_fast(st->node, x_q, w_q, st->quant.src_zp != 0, dst_zp != 0, residual_zp != 0))
        return;
    if (r_q) {
        st->inputs[r_at] = r_q;
        st->in_slot[r_at] = r_q->id;
        st->quant.residual_scale = residual_scale;
        st->quant.residual_zp = residual_zp;
    }
    st->quant.requant_post_op = post_op;
    st->quant.dst_scale = dst_scale;
    st->quant.dst_zp = dst_zp;
    st->outputs[0] = q->outputs[0];
    st->out_slot[0] = q->outputs[0]->id;
    st->n_outputs = 1;
    taken[q->id] = 1;
}

/* LayerNorm and Softmax (own AVX-512 kernels) write int8 themselves when
 * a QuantizeLinear alone reads their output: the next INT8 layer's input
 * (ViT's and ConvNeXt's LayerNorm before a Linear, attention's
 * probabilities), saving the float tensor and the Quantize pass over it. */
static void fuse_trailing_quantize(qd_step *st, unsigned char *taken)
{
    qd_node *n = st->node;
    if (st->n_fused || st->dynamic || strcmp(st->impl.name, "x86") != 0 || st->n_outputs < 1 ||
        (n->op != QD_OP_LAYER_NORMALIZATION && n->op != QD_OP_SOFTMAX))
        return;
    for (int o = 1; o < st->n_outputs; o++)
        if (st->outputs[o])
            return;
    const qd_value *y = st->outputs[0];
    float scale;
    qd_node *q = qd_lower_requant_target(y, &scale);
    if (!q || taken[q->id] || y->rank < 1 ||
        (n->op == QD_OP_SOFTMAX && y->dims[y->rank - 1] > QD_X86_SOFTMAX_Q8_MAX))
        return;
    st->quant.dst_scale = scale;
    st->outputs[0] = q->outputs[0];
    st->out_slot[0] = q->outputs[0]->id;
    taken[q->id] = 1;
}

/* Moves each step that waits for a later node (a fused Add's operand) to
 * just after the step running that node. Safe: the step's own inputs were
 * ready at its old place, and whatever reads its output reads the fused
 * Add's result, so comes after the operand's node too. 0 on OOM. */
static int run_after_operands(qd_engine *e)
{
    qd_graph *g = e->graph;
    int *step_of = qd_malloc((g->n_nodes + 1) * sizeof *step_of);
    if (!step_of)
        return 0;
    for (int moved = 1; moved;) { /* each step moves at most once */
        moved = 0;
        for (size_t i = 0; i < g->n_nodes; i++)
            step_of[i] = -1;
        for (size_t k = 0; k < e->n_steps; k++) {
            const qd_step *st = &e->steps[k];
            step_of[st->node->id] = (int)k;
            for (int f = 0; f < st->n_fused; f++)
                step_of[st->fused[f]->id] = (int)k;
        }
        for (size_t k = 0; k < e->n_steps; k++) {
            qd_step *st = &e->steps[k];
            int t = st->wait_for ? step_of[st->wait_for->id] : -1;
            if (t <= (int)k)
                continue; /* made by a folded constant, or already before */
            qd_step keep = *st;
            keep.wait_for = NULL;
            memmove(&e->steps[k], &e->steps[k + 1], (size_t)(t - (int)k) * sizeof *st);
            e->steps[t] = keep;
            moved = 1;
            break; /* indices changed: recompute */
        }
    }
    qd_free(step_of);
    return 1;
}

/* DequantizeLinear steps nobody reads any more (their INT8 consumers read
 * the int8 data), then the QuantizeLinear steps that only fed them. */
static void drop_unread_qdq(qd_engine *e)
{
    qd_graph *g = e->graph;
    unsigned char *read = qd_calloc(g->n_values + 1, 1);
    if (!read)
        return; /* keeping them is merely slower */
    for (int pass = 0; pass < 2; pass++) {
        memset(read, 0, g->n_values);
        for (size_t i = 0; i < g->n_outputs; i++)
            read[g->outputs[i]->id] = 1;
        for (size_t k = 0; k < e->n_steps; k++)
            for (int j = 0; j < e->steps[k].n_inputs; j++)
                if (e->steps[k].inputs[j])
                    read[e->steps[k].inputs[j]->id] = 1;
        size_t w = 0;
        for (size_t k = 0; k < e->n_steps; k++) {
            qd_step *st = &e->steps[k];
            int qdq = st->node && !st->lowered && (st->node->op == QD_OP_DEQUANTIZE_LINEAR ||
                                                   st->node->op == QD_OP_QUANTIZE_LINEAR);
            int unread = qdq;
            for (int o = 0; o < st->n_outputs && unread; o++)
                if (st->outputs[o] && read[st->outputs[o]->id])
                    unread = 0;
            if (!unread)
                e->steps[w++] = *st;
        }
        e->n_steps = w;
    }
    qd_free(read);
}

/* Running a QDQ model as written, weights are DequantizeLinear of int8
 * constants: dequantize them once here (they become folded constants of
 * the graph, as shape inference folds small ones), so the float kernels
 * see constant weights instead of the reference kernels running a
 * dequantize and a conv on every run. */
static qd_status fold_constant_dequantize(qd_engine *e)
{
    qd_graph *g = e->graph;
    for (size_t i = 0; i < g->n_nodes; i++) {
        qd_node *n = g->nodes[i];
        if (n->op != QD_OP_DEQUANTIZE_LINEAR || n->n_outputs < 1 || !n->outputs[0] ||
            n->outputs[0]->konst || !qd_value_shape_known(n->outputs[0]))
            continue;
        const qd_tensor *in[3] = {NULL, NULL, NULL};
        int ok = n->n_inputs >= 2 && n->n_inputs <= 3;
        for (int j = 0; ok && j < n->n_inputs; j++) {
            ok = !n->inputs[j] || n->inputs[j]->konst;
            in[j] = n->inputs[j] ? n->inputs[j]->konst : NULL;
        }
        if (!ok || !in[0])
            continue;
        qd_value *y = n->outputs[0];
        qd_tensor *t = qd_tensor_new(y->dtype, y->rank, y->dims);
        if (!t)
            return engine_fail(e, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        qd_tensor *out[1] = {t};
        qd_kernel_args a = {.node = n, .graph = g, .n_inputs = n->n_inputs, .inputs = in,
                            .n_outputs = 1, .outputs = out, .n_threads = e->opt.threads};
        qd_status st = qd_ref_kernel(QD_OP_DEQUANTIZE_LINEAR)(&a);
        if (st != QD_OK) {
            qd_tensor_delete(t);
            return from_graph(e, st);
        }
        qd_value_set_const(y, t);
    }
    return QD_OK;
}

/* Builds the steps: one per node that is not folded to a constant or fused
 * into an earlier step. */
static qd_status plan_steps(qd_engine *e)
{
    qd_graph *g = e->graph;
    /* Room for the layout conversions the layout plan may add. */
    e->steps = qd_calloc(3 * g->n_nodes + 8, sizeof *e->steps);
    unsigned char *taken = qd_calloc(g->n_nodes + 1, 1);
    if (!e->steps || !taken) {
        qd_free(taken);
        return engine_fail(e, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        qd_node *n = g->nodes[i];
        if (taken[n->id])
            continue;
        int folded = 1;
        for (int o = 0; o < n->n_outputs; o++)
            if (n->outputs[o] && !n->outputs[o]->konst)
                folded = 0;
        if (folded)
            continue;
        qd_step *st = &e->steps[e->n_steps];
        st->node = n;
        if (n->n_inputs > QD_STEP_MAX_INPUTS || n->n_outputs > QD_STEP_MAX_OUTPUTS) {
            qd_free(taken);
            return engine_fail(e, QD_STATUS_UNSUPPORTED, "node '%s': too many inputs or outputs",
                               n->name);
        }
        qd_value *x_q = NULL, *w_q = NULL;
        if (!e->opt.reference && !e->opt.unfused && !e->opt.qdq_as_written &&
            qd_lower_anchor(n, &x_q, &w_q, &st->quant) && qd_dnnl_s8_supports(n, x_q, w_q) &&
            zero_points_fast(n, x_q, w_q, st->quant.src_zp != 0, 0, 0)) {
            st->impl = qd_dnnl_s8_impl(n);
            st->lowered = 1;
        } else if (!qd_engine_select_kernel(e, n, &st->impl)) {
            qd_free(taken);
            return engine_fail(e, QD_STATUS_UNSUPPORTED,
                               "node '%s': op '%s' has no kernel in the engine", n->name,
                               n->op_type);
        }
        for (int o = 0; o < n->n_outputs; o++)
            if (n->outputs[o] && !qd_value_shape_known(n->outputs[o]))
                st->dynamic = 1;
        if (!st->dynamic)
            qd_engine_fuse_step(e, st, taken);
        step_io_lists(st);
        if (st->lowered)
            finish_lowering(st, x_q, w_q, taken);
        else
            fuse_trailing_quantize(st, taken);
        e->n_steps++;
    }
    qd_free(taken);
    if (!run_after_operands(e))
        return engine_fail(e, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    drop_unread_qdq(e);
    return QD_OK;
}

/* Decides where each value lives and for how long. Slots past the graph's
 * values (layout conversions) were set up by the layout plan. */
static void plan_slots(qd_engine *e)
{
    qd_graph *g = e->graph;
    for (size_t i = 0; i < g->n_values; i++) {
        qd_slot *s = &e->slots[i];
        const qd_value *v = g->values[i];
        s->first_step = s->last_step = -1;
        if (v->konst) {
            s->kind = QD_SLOT_CONST;
            set_view_shape(s, v);
            s->view.data = v->konst->data;
        } else if (v->is_input) {
            s->kind = QD_SLOT_ARENA;
            s->first_step = s->last_step = 0;
        }
    }
    for (size_t i = g->n_values; i < e->n_slots; i++)
        e->slots[i].first_step = e->slots[i].last_step = -1;
    for (size_t k = 0; k < e->n_steps; k++) {
        qd_step *st = &e->steps[k];
        qd_node *n = st->node;
        for (int o = 0; o < st->n_outputs; o++) {
            if (st->out_slot[o] < 0 || (st->outputs[o] && st->outputs[o]->konst))
                continue;
            qd_slot *s = &e->slots[st->out_slot[o]];
            s->kind = st->dynamic ? QD_SLOT_DYNAMIC : QD_SLOT_ARENA;
            s->first_step = s->last_step = (int)k;
        }
        if (!n || st->dynamic || st->n_fused || st->in_slot[0] < 0 || st->out_slot[0] < 0)
            continue;
        /* A reshape-like node's output shares its input's buffer (as does a
         * Transpose the layout plan found to be a mere renaming): nothing
         * runs and nothing is copied. */
        qd_slot *si = &e->slots[st->in_slot[0]], *so = &e->slots[st->out_slot[0]];
        qd_value *in = n->inputs[0], *out = n->outputs[0];
        int view = st->view_alias ||
                   (is_view_op(n) && in && out && !out->konst && in->dtype == out->dtype &&
                    qd_value_numel(in) == qd_value_numel(out) && si->view.layout == so->view.layout);
        if (!view)
            continue;
        if (si->kind == QD_SLOT_ARENA) {
            so->alias_of = root_of(e, st->in_slot[0]);
            st->impl.run = NULL; /* no-op step */
        } else if (si->kind == QD_SLOT_CONST) {
            so->kind = QD_SLOT_CONST;
            set_view_shape(so, out);
            so->view.data = si->view.data;
            st->impl.run = NULL;
        }
    }
    /* Lifetimes, on the root buffer of each alias chain. */
    for (size_t k = 0; k < e->n_steps; k++) {
        const qd_step *st = &e->steps[k];
        for (int j = 0; j < st->n_inputs; j++) {
            if (st->in_slot[j] < 0)
                continue;
            qd_slot *r = &e->slots[root_of(e, st->in_slot[j])];
            if ((int)k > r->last_step)
                r->last_step = (int)k;
        }
        for (int o = 0; o < st->n_outputs; o++) {
            if (st->out_slot[o] < 0)
                continue;
            qd_slot *r = &e->slots[root_of(e, st->out_slot[o])];
            if ((int)k > r->last_step)
                r->last_step = (int)k;
        }
    }
    for (size_t i = 0; i < g->n_outputs; i++) {
        qd_slot *r = &e->slots[root_of(e, g->outputs[i]->id)];
        r->last_step = (int)e->n_steps + 1; /* read after the run */
    }
    for (size_t i = 0; i < e->n_slots; i++) {
        qd_slot *s = &e->slots[i];
        if (s->kind == QD_SLOT_ARENA && s->alias_of < 0) {
            if (s->value)
                set_view_shape(s, s->value);
            s->size = s->view.nbytes;
        }
    }
}

/* A step that accumulates a residual into its output (a oneDNN `sum`
 * post-op) writes over the residual's buffer when the residual dies there:
 * no copy, and one buffer less. */
static void plan_in_place(qd_engine *e)
{
    for (size_t k = 0; k < e->n_steps; k++) {
        qd_step *st = &e->steps[k];
        if (!st->impl.in_place_ok || !st->state || st->n_outputs < 1 || st->out_slot[0] < 0 ||
            !st->node)
            continue;
        qd_slot *out = &e->slots[st->out_slot[0]];
        if (out->kind != QD_SLOT_ARENA || out->alias_of >= 0)
            continue;
        for (int j = st->node->n_inputs; j < st->n_inputs; j++) {
            if (st->in_slot[j] < 0 || !st->impl.in_place_ok(st->state, j))
                continue;
            int r = root_of(e, st->in_slot[j]);
            qd_slot *res = &e->slots[r];
            if (res->kind != QD_SLOT_ARENA || res->last_step != (int)k ||
                res->view.nbytes != out->view.nbytes || res->view.layout != out->view.layout ||
                (res->value && res->value->is_input))
                continue;
            /* The step must not read the buffer it writes over as another
             * operand (a residual that is also the conv's source). */
            int shared = 0;
            for (int i = 0; i < st->n_inputs; i++)
                if (i != j && st->in_slot[i] >= 0 && root_of(e, st->in_slot[i]) == r)
                    shared = 1;
            if (shared)
                continue;
            /* Nothing else reads the residual's buffer later: views of it
             * would have kept its root alive past this step. */
            out->alias_of = r;
            if (out->last_step > res->last_step)
                res->last_step = out->last_step;
            break;
        }
    }
}

static qd_status place_buffers(qd_engine *e)
{
    size_t size = qd_memory_plan(e->slots, e->n_slots, ARENA_ALIGN);
    if (size == (size_t)-1)
        return engine_fail(e, QD_STATUS_OUT_OF_MEMORY, "out of memory planning memory");
    e->arena_size = size;
    e->arena = qd_malloc(size + ARENA_ALIGN);
    if (!e->arena)
        return engine_fail(e, QD_STATUS_OUT_OF_MEMORY,
                           "out of memory allocating %zu bytes of activations", size);
    char *base = (char *)(((uintptr_t)e->arena + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
    for (size_t i = 0; i < e->n_slots; i++) {
        qd_slot *s = &e->slots[i];
        if (s->kind != QD_SLOT_ARENA)
            continue;
        if (s->alias_of < 0) {
            s->view.data = base + s->offset;
        } else {
            const qd_slot *r = &e->slots[root_of(e, (int)i)];
            if (s->value)
                set_view_shape(s, s->value);
            s->view.data = base + r->offset;
        }
    }
    return QD_OK;
}

/* The argument block of a step, pointing at the slots' current views. */
typedef struct step_io {
    const qd_tensor *in[QD_STEP_MAX_INPUTS];
    qd_tensor *out[QD_STEP_MAX_OUTPUTS];
    qd_tensor in_phys[QD_STEP_MAX_INPUTS]; /* physical views (step->physical) */
    qd_tensor out_phys[QD_STEP_MAX_OUTPUTS];
} step_io;

/* How an elementwise kernel sees a tensor when the step computes on
 * channels-last data: NHWC data as plain N,H,W,C; any other operand
 * (rank-aligned to 4) with its dims permuted the same way, which the layout
 * plan checked leaves its data order unchanged. */
static void physical_view(const qd_tensor *t, qd_tensor *p)
{
    *p = *t;
    if (t->rank == 0)
        return;
    int64_t d[4] = {1, 1, 1, 1};
    for (int i = 0; i < t->rank && i < 4; i++)
        d[4 - t->rank + i] = t->dims[i];
    p->rank = 4;
    p->dims[0] = d[0];
    p->dims[1] = d[2];
    p->dims[2] = d[3];
    p->dims[3] = d[1];
    p->layout = QD_LAYOUT_PLAIN;
}

static void fill_args(qd_engine *e, qd_step *st, step_io *io, qd_kernel_args *a)
{
    for (int j = 0; j < st->n_inputs; j++) {
        io->in[j] = st->in_slot[j] >= 0 ? &e->slots[st->in_slot[j]].view : NULL;
        if (st->physical && io->in[j]) {
            physical_view(io->in[j], &io->in_phys[j]);
            io->in[j] = &io->in_phys[j];
        }
    }
    for (int o = 0; o < st->n_outputs; o++) {
        io->out[o] = st->out_slot[o] >= 0 ? &e->slots[st->out_slot[o]].view : NULL;
        if (st->physical && io->out[o]) {
            physical_view(io->out[o], &io->out_phys[o]);
            io->out[o] = &io->out_phys[o];
        }
    }
    *a = (qd_kernel_args){.node = st->node,
                          .graph = e->graph,
                          .n_inputs = st->n_inputs,
                          .inputs = io->in,
                          .n_outputs = st->n_outputs,
                          .outputs = io->out,
                          .n_threads = e->opt.threads,
                          .state = st->state,
                          .fused = (const qd_node *const *)st->fused,
                          .n_fused = st->n_fused,
                          .quant = st->lowered || st->quant.dst_scale > 0.0f ? &st->quant
                                                                             : NULL,
                          .bf16 = e->opt.high_precision_bf16 && !st->lowered};
}

void qd_engine_delete(qd_engine *e)
{
    if (!e)
        return;
    for (size_t k = 0; k < e->n_steps; k++)
        if (e->steps[k].impl.release && e->steps[k].state)
            e->steps[k].impl.release(e->steps[k].state);
    for (size_t i = 0; i < e->n_dynamic; i++)
        qd_free(e->dynamic_buffers[i]);
    qd_free(e->dynamic_buffers);
    qd_free(e->steps);
    qd_free(e->slots);
    qd_free(e->arena);
    qd_free(e);
}

qd_status qd_engine_create(qd_graph *g, const qd_engine_options *options, qd_engine **out)
{
    qd_engine *e = qd_calloc(1, sizeof *e);
    *out = e;
    if (!e)
        return QD_STATUS_OUT_OF_MEMORY;
    if (!g)
        return engine_fail(e, QD_STATUS_INVALID_ARGUMENT, "no graph given");
    e->graph = g;
    if (options)
        e->opt = *options;
    if (e->opt.batch <= 0)
        e->opt.batch = 1;
#ifdef _OPENMP
    if (e->opt.threads <= 0)
        e->opt.threads = omp_get_num_procs();
#else
    e->opt.threads = 1;
#endif
    qd_status st;
    if (e->opt.high_precision_bf16 && e->opt.reference)
        return engine_fail(e, QD_STATUS_INVALID_ARGUMENT,
                           "bfloat16 high precision runs on the oneDNN kernels, not with the "
                           "reference kernels");
    if (e->opt.high_precision_bf16 && !qd_dnnl_has_bf16())
        return engine_fail(e, QD_STATUS_UNSUPPORTED,
                           "bfloat16 high precision needs a CPU with AVX512-BF16; this one has "
                           "none (run in float32)");
    if (has_symbolic_input(g) && (st = qd_graph_bind_dim(g, "*", e->opt.batch)) != QD_OK)
        return from_graph(e, st);
    if ((st = qd_graph_infer_shapes(g)) != QD_OK || (st = qd_graph_verify(g)) != QD_OK)
        return from_graph(e, st);
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!qd_value_shape_known(g->inputs[i]) || g->inputs[i]->dtype == QD_DT_UNDEFINED)
            return engine_fail(e, QD_STATUS_SHAPE_ERROR,
                               "graph input '%s' has no fixed shape or type", g->inputs[i]->name);
    /* Room for the layout plan's converted copies: at most two per node. */
    e->n_slots = g->n_values;
    e->slots_cap = g->n_values + 2 * g->n_nodes + 8;
    e->slots = qd_calloc(e->slots_cap, sizeof *e->slots);
    if (!e->slots)
        return engine_fail(e, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; i < e->slots_cap; i++) {
        e->slots[i].alias_of = -1;
        e->slots[i].converted[0] = e->slots[i].converted[1] = -1;
        e->slots[i].value = i < g->n_values ? g->values[i] : NULL;
    }
#ifdef _OPENMP
    /* oneDNN fixes a primitive's thread partitioning when it is created. */
    omp_set_num_threads(e->opt.threads);
#endif
    if (e->opt.qdq_as_written && !e->opt.reference && (st = fold_constant_dequantize(e)) != QD_OK)
        return st;
    if ((st = plan_steps(e)) != QD_OK)
        return st;
    if (!e->opt.reference && (st = qd_engine_plan_layouts(e)) != QD_OK)
        return from_graph(e, st);
    qd_engine_fuse_dwconv(e);
    for (size_t k = 0; k < e->n_steps; k++)
        make_label(&e->steps[k]);
    plan_slots(e);
    /* Kernels prepare on shapes and constants only (activation buffers are
     * placed after, once in-place residuals are known). */
    for (size_t k = 0; k < e->n_steps; k++) {
        qd_step *s = &e->steps[k];
        if (!s->impl.prepare || !s->impl.run || s->dynamic)
            continue;
        step_io io;
        qd_kernel_args a;
        fill_args(e, s, &io, &a);
        if ((st = s->impl.prepare(&a, &s->state)) != QD_OK)
            return from_graph(e, st);
    }
    plan_in_place(e);
    return place_buffers(e);
}

/* Output shapes of a dynamic step from the actual input data: small integer
 * inputs (shapes, axes, pads) are shown to the shape function as constants. */
static qd_status run_dynamic_shapes(qd_engine *e, qd_step *st)
{
    qd_node *n = st->node;
    qd_tensor *borrowed[64] = {0};
    for (int j = 0; j < n->n_inputs && j < 64; j++) {
        qd_value *v = n->inputs[j];
        if (!v || v->konst || st->in_slot[j] < 0)
            continue;
        const qd_slot *s = &e->slots[st->in_slot[j]];
        qd_value_set_shape(v, s->view.dtype, s->view.rank, s->view.dims);
        int64_t numel = qd_numel(s->view.rank, s->view.dims);
        /* Range's bounds may be float scalars; large float data never shapes. */
        if (numel <= (qd_dtype_is_float(s->view.dtype) ? 16 : QD_FOLD_MAX_ELEMENTS)) {
            borrowed[j] = qd_tensor_wrap(s->view.dtype, s->view.rank, s->view.dims,
                                         s->view.data, 0);
            v->konst = borrowed[j];
        }
    }
    qd_shape_fn fn = qd_shape_fn_of(n->op);
    qd_status rc = fn ? fn(e->graph, n) : QD_STATUS_UNSUPPORTED;
    for (int j = 0; j < n->n_inputs && j < 64; j++) {
        if (borrowed[j]) {
            n->inputs[j]->konst = NULL;
            qd_tensor_delete(borrowed[j]);
        }
    }
    if (rc != QD_OK)
        return from_graph(e, rc);
    for (int o = 0; o < n->n_outputs; o++) {
        qd_value *v = n->outputs[o];
        if (!v)
            continue;
        if (!qd_value_shape_known(v))
            return engine_fail(e, QD_STATUS_SHAPE_ERROR,
                               "node '%s' (%s): output '%s' has no shape even at run time",
                               n->name, n->op_type, v->name);
        qd_slot *s = &e->slots[v->id];
        set_view_shape(s, v);
        void *buf = qd_malloc(s->view.nbytes ? s->view.nbytes : 1);
        if (!buf || qd_grow((void **)&e->dynamic_buffers, &e->dynamic_cap, e->n_dynamic + 1,
                            sizeof *e->dynamic_buffers) != 0) {
            qd_free(buf);
            return engine_fail(e, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        }
        memset(buf, 0, s->view.nbytes);
        e->dynamic_buffers[e->n_dynamic++] = buf;
        s->view.data = buf;
    }
    return QD_OK;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

qd_status qd_engine_run(qd_engine *e)
{
    if (!e || !e->slots)
        return QD_STATUS_INVALID_ARGUMENT;
    for (size_t i = 0; i < e->n_dynamic; i++)
        qd_free(e->dynamic_buffers[i]);
    e->n_dynamic = 0;
#ifdef _OPENMP
    omp_set_num_threads(e->opt.threads);
#endif
    for (size_t k = 0; k < e->n_steps; k++) {
        qd_step *st = &e->steps[k];
        qd_status rc;
        if (st->dynamic && (rc = run_dynamic_shapes(e, st)) != QD_OK)
            return rc;
        if (!st->impl.run) {
            if (e->observer)
                observe_step(e, st); /* a view: the data is there */
            continue;
        }
        step_io io;
        qd_kernel_args a;
        fill_args(e, st, &io, &a);
        double t0 = e->opt.profile ? now_ms() : 0;
        rc = st->impl.run(&a);
        if (e->opt.profile) {
            st->total_ms += now_ms() - t0;
            st->calls++;
        }
        if (rc != QD_OK)
            return from_graph(e, rc);
        if (e->observer)
            observe_step(e, st);
    }
    e->ran = 1;
    return QD_OK;
}

int qd_engine_input_count(const qd_engine *e) { return e && e->graph ? (int)e->graph->n_inputs : 0; }
int qd_engine_output_count(const qd_engine *e)
{
    return e && e->graph ? (int)e->graph->n_outputs : 0;
}

static void slot_info(const qd_slot *s, const char *name, qd_tensor_info *info)
{
    info->name = name;
    info->dtype = (int)s->view.dtype;
    info->rank = s->view.rank;
    info->dims = s->view.dims;
    info->data = s->view.data;
    info->nbytes = s->view.nbytes;
    info->channels_last = s->view.layout == QD_LAYOUT_NHWC;
}

static void fill_info(const qd_engine *e, const qd_value *v, qd_tensor_info *info)
{
    slot_info(&e->slots[v->id], v->name, info);
}

void qd_engine_set_observer(qd_engine *e, qd_value_observer fn, void *user)
{
    if (!e)
        return;
    e->observer = fn;
    e->observer_user = user;
}

/* Shows the observer what a step wrote (graph values only). */
static void observe_step(qd_engine *e, const qd_step *st)
{
    for (int o = 0; o < st->n_outputs; o++) {
        if (st->out_slot[o] < 0)
            continue;
        const qd_slot *s = &e->slots[st->out_slot[o]];
        if (!s->value || s->kind == QD_SLOT_CONST)
            continue;
        qd_tensor_info info;
        slot_info(s, s->value->name, &info);
        e->observer(e->observer_user, &info);
    }
}

qd_status qd_engine_input_info(qd_engine *e, int index, qd_tensor_info *info)
{
    if (!e || !e->slots || index < 0 || (size_t)index >= e->graph->n_inputs)
        return QD_STATUS_INVALID_ARGUMENT;
    fill_info(e, e->graph->inputs[index], info);
    return QD_OK;
}

qd_status qd_engine_output_info(qd_engine *e, int index, qd_tensor_info *info)
{
    if (!e || !e->slots || index < 0 || (size_t)index >= e->graph->n_outputs)
        return QD_STATUS_INVALID_ARGUMENT;
    fill_info(e, e->graph->outputs[index], info);
    return QD_OK;
}

qd_status qd_engine_set_input(qd_engine *e, const char *name, int dtype, int rank,
                              const int64_t *dims, const void *data)
{
    if (!e || !e->slots || !name)
        return QD_STATUS_INVALID_ARGUMENT;
    qd_value *v = qd_graph_find_value(e->graph, name);
    if (!v || !v->is_input)
        return engine_fail(e, QD_STATUS_INVALID_ARGUMENT, "the model has no input named '%s'",
                           name);
    qd_slot *s = &e->slots[v->id];
    char want[128], got[128];
    if (dtype != (int)s->view.dtype)
        return engine_fail(e, QD_STATUS_SHAPE_ERROR, "input '%s': expected %s data, got %s",
                           name, qd_dtype_name(s->view.dtype), qd_dtype_name((qd_dtype)dtype));
    int same = rank == s->view.rank;
    for (int i = 0; same && i < rank; i++)
        same = dims[i] == s->view.dims[i];
    if (!same) {
        qd_value_shape_str(v, want, sizeof want);
        size_t off = 0;
        got[0] = '\0';
        for (int i = 0; i < rank && off < sizeof got; i++)
            off += (size_t)snprintf(got + off, sizeof got - off, "%s%lld", i ? "x" : "",
                                    (long long)dims[i]);
        return engine_fail(e, QD_STATUS_SHAPE_ERROR, "input '%s': expected shape %s, got %s",
                           name, want, rank ? got : "scalar");
    }
    if (s->view.nbytes)
        memcpy(s->view.data, data, s->view.nbytes);
    return QD_OK;
}

void qd_engine_profile_reset(qd_engine *e)
{
    for (size_t k = 0; e && k < e->n_steps; k++) {
        e->steps[k].total_ms = 0;
        e->steps[k].calls = 0;
    }
}

/* The profile's name for what a step runs: "Conv", "Conv+Relu", ... */
static const char *step_op_name(const qd_step *s) { return s->label; }

static void make_label(qd_step *s)
{
    if (!s->node) {
        snprintf(s->label, sizeof s->label, "Reorder(layout)");
        return;
    }
    int off = snprintf(s->label, sizeof s->label, "%s", s->node->op_type);
    for (int f = 0; f < s->n_fused && off > 0 && off < (int)sizeof s->label; f++)
        off += snprintf(s->label + off, sizeof s->label - (size_t)off, "+%s",
                        s->fused[f]->op_type);
    for (int f = 0; f < s->n_fused; f++)
        s->fused_names[f] = s->fused[f]->name;
    if (s->lowered && off > 0 && off < (int)sizeof s->label)
        snprintf(s->label + off, sizeof s->label - (size_t)off, "%s",
                 s->quant.dst_scale > 0.0f ? "(s8->s8)" : "(s8->f32)");
    else if (s->quant.dst_scale > 0.0f && off > 0 && off < (int)sizeof s->label)
        snprintf(s->label + off, sizeof s->label - (size_t)off, "(->s8)");
}

static int64_t profiled_runs(const qd_engine *e)
{
    int64_t runs = 0;
    for (size_t k = 0; k < e->n_steps; k++)
        if (e->steps[k].calls > runs)
            runs = e->steps[k].calls;
    return runs ? runs : 1;
}

int qd_engine_profile_count(const qd_engine *e)
{
    if (!e || !e->opt.profile)
        return 0;
    int n = 0;
    for (size_t k = 0; k < e->n_steps; k++)
        n += e->steps[k].impl.run != NULL;
    return n;
}

qd_status qd_engine_profile_entry(const qd_engine *e, int index, qd_profile_entry *entry)
{
    if (!e || !entry || !e->opt.profile || index < 0)
        return QD_STATUS_INVALID_ARGUMENT;
    int64_t runs = profiled_runs(e);
    for (size_t k = 0; k < e->n_steps; k++) {
        const qd_step *s = &e->steps[k];
        if (!s->impl.run || index-- > 0)
            continue;
        entry->node = s->node ? s->node->name : NULL;
        entry->op = s->label;
        entry->kernel = s->impl.name;
        entry->ms_per_run = s->total_ms / (double)runs;
        entry->fused_nodes = s->fused_names;
        entry->n_fused = s->n_fused;
        return QD_OK;
    }
    return QD_STATUS_INVALID_ARGUMENT;
}

typedef struct op_time {
    const char *op_type;
    const char *impl;
    double ms;
    int64_t calls;
    int nodes;
} op_time;

qd_status qd_engine_profile(qd_engine *e, FILE *out, int per_node)
{
    if (!e || !out)
        return QD_STATUS_INVALID_ARGUMENT;
    if (!e->opt.profile)
        return engine_fail(e, QD_STATUS_INVALID_ARGUMENT, "the engine was built without profile");
    double total = 0;
    for (size_t k = 0; k < e->n_steps; k++)
        total += e->steps[k].total_ms;
    int64_t runs = profiled_runs(e);
    if (per_node) {
        fprintf(out, "%-48s %-22s %-6s %10s %7s\n", "node", "op", "kernel", "ms/run", "share");
        for (size_t k = 0; k < e->n_steps; k++) {
            const qd_step *s = &e->steps[k];
            if (!s->impl.run)
                continue;
            fprintf(out, "%-48s %-22s %-6s %10.3f %6.1f%%\n",
                    s->node ? s->node->name : "(layout conversion)", step_op_name(s),
                    s->impl.name, s->total_ms / (double)runs,
                    total > 0 ? 100.0 * s->total_ms / total : 0.0);
        }
        return QD_OK;
    }
    op_time *t = qd_calloc(e->n_steps + 1, sizeof *t);
    if (!t)
        return engine_fail(e, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    size_t n = 0;
    for (size_t k = 0; k < e->n_steps; k++) {
        const qd_step *s = &e->steps[k];
        if (!s->impl.run)
            continue;
        size_t j = 0;
        while (j < n && (strcmp(t[j].op_type, step_op_name(s)) || strcmp(t[j].impl, s->impl.name)))
            j++;
        if (j == n) {
            t[n].op_type = step_op_name(s);
            t[n].impl = s->impl.name;
            n++;
        }
        t[j].ms += s->total_ms;
        t[j].nodes++;
    }
    /* Largest first. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && t[j].ms > t[j - 1].ms; j--) {
            op_time tmp = t[j];
            t[j] = t[j - 1];
            t[j - 1] = tmp;
        }
    fprintf(out, "%-24s %-6s %6s %10s %7s\n", "op", "kernel", "nodes", "ms/run", "share");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%-24s %-6s %6d %10.3f %6.1f%%\n", t[i].op_type, t[i].impl, t[i].nodes,
                t[i].ms / (double)runs, total > 0 ? 100.0 * t[i].ms / total : 0.0);
    fprintf(out, "%-24s %-6s %6s %10.3f\n", "total", "", "", total / (double)runs);
    qd_free(t);
    return QD_OK;
}

void qd_engine_get_stats(const qd_engine *e, qd_engine_stats *st)
{
    memset(st, 0, sizeof *st);
    for (size_t k = 0; e && k < e->n_steps; k++) {
        const qd_step *s = &e->steps[k];
        if (!s->impl.run)
            continue; /* views */
        st->steps++;
        st->int8_steps += s->lowered;
        st->int8_requantized += s->lowered && s->quant.dst_scale > 0.0f;
        st->layout_conversions += s->node == NULL;
        st->quantize_steps += s->node && s->node->op == QD_OP_QUANTIZE_LINEAR;
        st->dequantize_steps += s->node && s->node->op == QD_OP_DEQUANTIZE_LINEAR;
    }
}
