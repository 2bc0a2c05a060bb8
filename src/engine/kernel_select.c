/* Which kernel runs a node: the fast path when there is one and the caller
 * did not ask for the reference path, else the portable reference kernel. */
#include "engine/engine.h"

int qd_engine_select_kernel(const qd_engine *e, const qd_node *n, qd_kernel_impl *impl)
{
    (void)e;
    qd_kernel_fn ref = qd_ref_kernel(n->op);
    if (!ref)
        return 0;
    *impl = (qd_kernel_impl){"ref", ref, NULL, NULL};
    return 1;
}

void qd_engine_fuse_step(const qd_engine *e, qd_step *step, unsigned char *taken)
{
    (void)e;
    (void)step;
    (void)taken;
}
