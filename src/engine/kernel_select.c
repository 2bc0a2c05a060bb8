/* Which kernel runs a node: the fast path when there is one and the caller
 * did not ask for the reference path, else the portable reference kernel;
 * and which following nodes a fast kernel absorbs as post-ops. */
#include "engine/engine.h"
#include "engine/kernels/dnnl/dnnl_kernels.h"
#include "engine/kernels/x86/x86_kernels.h"

int qd_engine_select_kernel(const qd_engine *e, const qd_node *n, qd_kernel_impl *impl)
{
    if (!e->opt.reference && qd_dnnl_supports(n)) {
        *impl = qd_dnnl_impl(n);
        return 1;
    }
    if (!e->opt.reference && qd_x86_supports(n)) {
        *impl = qd_x86_impl(n);
        return 1;
    }
    qd_kernel_fn ref = qd_ref_kernel(n->op);
    if (!ref)
        return 0;
    *impl = (qd_kernel_impl){"ref", ref, NULL, NULL, NULL};
    return 1;
}

/* The single consumer of v, when v feeds exactly one node and nothing else
 * (not a graph output) needs it. */
static qd_node *sole_consumer(const qd_value *v)
{
    if (!v || v->is_output || v->n_uses != 1)
        return NULL;
    return v->uses[0].node;
}

void qd_engine_fuse_step(const qd_engine *e, qd_step *step, unsigned char *taken)
{
    if (e->opt.reference || e->opt.unfused || !step->impl.prepare || step->node->n_outputs < 1)
        return;
    qd_value *carried = step->node->outputs[0];
    while (step->n_fused < QD_MAX_FUSED) {
        qd_node *next = sole_consumer(carried);
        if (!next || taken[next->id] || next->n_outputs < 1 || !next->outputs[0])
            return;
        const qd_value *other = NULL;
        if (next->op == QD_OP_ADD) {
            if (next->n_inputs != 2 || next->inputs[0] == next->inputs[1])
                return;
            other = next->inputs[0] == carried ? next->inputs[1] : next->inputs[0];
            /* An operand made by a node after the anchor (ResNet's
             * downsample branch, listed after the main branch) is waited
             * for: the engine moves the step after that node's step. */
            if (other->producer && other->producer->id > step->node->id) {
                if (step->wait_for)
                    return;
                step->wait_for = other->producer;
            }
        }
        if (!(step->lowered ? qd_dnnl_fusable_after(step->node, next, other)
                            : qd_dnnl_fusable(step->node, next, other)))
            return;
        step->fused[step->n_fused++] = next;
        taken[next->id] = 1;
        carried = next->outputs[0];
    }
}
