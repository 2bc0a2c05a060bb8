/* op -> portable reference kernel. */
#include "engine/kernel.h"

qd_kernel_fn qd_ref_kernel(qd_op op)
{
    switch (op) {
    default: return NULL;
    }
}
