/* Depthwise convs on the own channels-last kernel, with ConvNeXt's
 * LayerNorm fused (see engine.h, qd_engine_fuse_dwconv).
 *
 * Runs after the layout plan because only then is it known that the conv
 * reads and writes NHWC and that the permute after it became a view: the
 * pattern is then three steps, Conv (oneDNN, float) -> Transpose (view) ->
 * LayerNormalization over channels (x86, maybe writing int8), and they
 * become one step that never writes the conv's float output. A depthwise
 * conv without that LayerNorm moves to the same kernel alone (faster than
 * oneDNN 2.6's channels-last depthwise kernel up to DW_MAX_CHANNELS). */
#include <string.h>

#include "base/alloc.h"
#include "engine/engine.h"
#include "engine/kernels/x86/x86_kernels.h"

/* Up to here the own kernel (with its LayerNorm) measured faster than
 * oneDNN's channels-last depthwise kernel plus the LayerNorm step, in
 * ConvNeXt (1.1-1.5x at 96-256 channels, even at 384); at 512-1536
 * channels on 14x14 and 7x7 maps it was slower in the model. */
#define DW_MAX_CHANNELS 384

/* The step running node n, or NULL. */
static qd_step *step_of(qd_engine *e, const qd_node *n)
{
    for (size_t k = 0; k < e->n_steps; k++)
        if (e->steps[k].node == n)
            return &e->steps[k];
    return NULL;
}

/* The node alone reading v (not a graph output), or NULL. */
static const qd_node *sole_reader(const qd_value *v)
{
    return v && !v->is_output && v->n_uses == 1 ? v->uses[0].node : NULL;
}

/* The step of a LayerNormalization over the channels of conv step a's
 * output, reached through a Transpose the layout plan made a view;
 * *view gets that Transpose's step. NULL when the pattern is not there. */
static qd_step *layernorm_after(qd_engine *e, const qd_step *a, qd_step **view)
{
    const qd_node *t = sole_reader(a->outputs[0]);
    qd_step *b = t && t->op == QD_OP_TRANSPOSE ? step_of(e, t) : NULL;
    if (!b || !b->view_alias || b->n_fused || b->in_slot[0] != a->out_slot[0])
        return NULL;
    const qd_node *ln = sole_reader(b->outputs[0]);
    qd_step *c = ln && ln->op == QD_OP_LAYER_NORMALIZATION ? step_of(e, ln) : NULL;
    if (!c || c->n_fused || c->dynamic || strcmp(c->impl.name, "x86") != 0 ||
        c->in_slot[0] != b->out_slot[0] || c->n_inputs < 2 ||
        !qd_x86_dwconv_layernorm_ok(a->node->inputs[0]->dims[1]))
        return NULL;
    for (int o = 1; o < c->n_outputs; o++)
        if (c->outputs[o])
            return NULL; /* Mean / InvStdDev wanted */
    /* over the last axis of N,H,W,C: the channels */
    const qd_attr *axis = qd_node_attr(ln, "axis");
    if (axis && (axis->type != QD_ATTR_INT || (axis->i != -1 && axis->i != 3)))
        return NULL;
    const qd_value *sc = c->inputs[1], *bi = c->n_inputs > 2 ? c->inputs[2] : NULL;
    const int64_t ch = a->node->inputs[0]->dims[1];
    if (!sc || !sc->konst || sc->dtype != QD_DT_FLOAT || qd_value_numel(sc) != ch ||
        (bi && (!bi->konst || bi->dtype != QD_DT_FLOAT || qd_value_numel(bi) != ch)))
        return NULL;
    *view = b;
    return c;
}

/* Moves step a to the x86 kernel; with c, fuses view step b and
 * LayerNorm step c into it (both then marked in `gone`). */
static void take_over(qd_engine *e, qd_step *a, qd_step *b, qd_step *c, unsigned char *gone)
{
    a->impl = (qd_kernel_impl){"x86", qd_x86_dwconv_nhwc, qd_x86_dwconv_prepare,
                               qd_x86_dwconv_release, NULL};
    if (!c)
        return;
    if (a->n_inputs < 3) {
        a->inputs[2] = NULL;
        a->in_slot[2] = -1;
    }
    a->inputs[3] = c->inputs[1];
    a->in_slot[3] = c->in_slot[1];
    a->inputs[4] = c->n_inputs > 2 ? c->inputs[2] : NULL;
    a->in_slot[4] = c->n_inputs > 2 ? c->in_slot[2] : -1;
    a->n_inputs = 5;
    a->fused[0] = b->node;
    a->fused[1] = c->node;
    a->n_fused = 2;
    a->n_outputs = c->n_outputs;
    memcpy(a->outputs, c->outputs, sizeof a->outputs);
    memcpy(a->out_slot, c->out_slot, sizeof a->out_slot);
    a->quant = c->quant; /* dst_scale: the LayerNorm wrote int8 */
    gone[b - e->steps] = gone[c - e->steps] = 1;
}

void qd_engine_fuse_dwconv(qd_engine *e)
{
    if (e->opt.reference || e->opt.unfused)
        return;
    unsigned char *gone = qd_calloc(e->n_steps + 1, 1);
    if (!gone)
        return; /* the steps stay as planned */
    for (size_t k = 0; k < e->n_steps; k++) {
        qd_step *a = &e->steps[k];
        if (!a->node || a->node->op != QD_OP_CONV || strcmp(a->impl.name, "dnnl") != 0 ||
            a->lowered || a->dynamic || a->n_fused || a->n_outputs != 1 || a->out_slot[0] < 0 ||
            a->in_slot[0] < 0 || e->slots[a->in_slot[0]].view.layout != QD_LAYOUT_NHWC ||
            e->slots[a->out_slot[0]].view.layout != QD_LAYOUT_NHWC ||
            !qd_x86_dwconv_nhwc_supports(a->node) ||
            a->node->inputs[0]->dims[1] > DW_MAX_CHANNELS)
            continue;
        qd_step *b = NULL, *c = layernorm_after(e, a, &b);
        take_over(e, a, b, c, gone);
    }
    size_t n = 0;
    for (size_t k = 0; k < e->n_steps; k++)
        if (!gone[k])
            e->steps[n++] = e->steps[k];
    e->n_steps = n;
    qd_free(gone);
}
