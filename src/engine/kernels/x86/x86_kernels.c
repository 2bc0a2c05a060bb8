/* The x86 kernels' selector: CPU features (read once), which nodes the
 * kernels claim, the kernel for a node; and the helpers they share. Plain
 * C, no ISA flags: the AVX-512 code is in the *_avx512.c files. */
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "engine/kernels/x86/x86_common.h"
#include "engine/kernels/x86/x86_kernels.h"

/* ---- CPU features ---- */

static once_flag g_cpu_once = ONCE_FLAG_INIT;
static int g_cpu_avx512;

static void cpu_init(void)
{
    /* QD_X86_DISABLE=1: behave as on a CPU without AVX-512 (tests of the
     * fallback path, engine comparisons). */
    const char *off = getenv("QD_X86_DISABLE");
    if (off && *off && strcmp(off, "0") != 0) {
        g_cpu_avx512 = 0;
        return;
    }
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    /* The builtins also check that the OS saves the AVX-512 state. */
    g_cpu_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("fma");
#else
    g_cpu_avx512 = 0;
#endif
}

int qd_x86_cpu_avx512(void)
{
    call_once(&g_cpu_once, cpu_init);
    return g_cpu_avx512;
}

/* ---- threads ---- */

void qd_x86_parallel(const qd_kernel_args *a, int64_t n_items, int64_t work, qd_x86_range_fn fn,
                     void *ctx)
{
    if (n_items <= 0)
        return;
#ifdef _OPENMP
    int nt = a->n_threads > 0 ? a->n_threads : omp_get_max_threads();
    if (nt > n_items)
        nt = (int)n_items;
    if (nt > 1 && work >= QD_X86_PAR_MIN && !omp_in_parallel()) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int t = 0; t < nt; t++)
            fn(ctx, n_items * t / nt, n_items * (t + 1) / nt);
        return;
    }
#else
    (void)a;
    (void)work;
#endif
    fn(ctx, 0, n_items);
}

/* ---- node checks ---- */

int qd_x86_unary_shapes_ok(const qd_node *n, int max_outputs)
{
    const qd_value *x = qd_x86_in(n, 0), *y = qd_x86_out(n, 0);
    if (!qd_x86_f32_known(x) || !qd_x86_f32_known(y))
        return 0;
    if (qd_value_numel(x) != qd_value_numel(y))
        return 0;
    for (int i = max_outputs; i < n->n_outputs; i++)
        if (n->outputs[i])
            return 0;
    return 1;
}

int qd_x86_attr_int(const qd_node *n, const char *name, int64_t def, int64_t *out)
{
    const qd_attr *at = qd_node_attr(n, name);
    if (!at) {
        *out = def;
        return 1;
    }
    if (at->type != QD_ATTR_INT)
        return 0;
    *out = at->i;
    return 1;
}

int qd_x86_attr_float(const qd_node *n, const char *name, float def, float *out)
{
    const qd_attr *at = qd_node_attr(n, name);
    if (!at) {
        *out = def;
        return 1;
    }
    if (at->type != QD_ATTR_FLOAT)
        return 0;
    *out = at->f;
    return 1;
}

int qd_x86_tensor_f32(const qd_tensor *t)
{
    if (!t || t->dtype != QD_DT_FLOAT || t->rank < 0 || t->rank > QD_MAX_RANK)
        return 0;
    int64_t n = qd_numel(t->rank, t->dims);
    if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(float) || (size_t)n * sizeof(float) != t->nbytes)
        return 0;
    return n == 0 || t->data != NULL;
}

int qd_x86_is_gelu(const qd_node *n)
{
    return n->op_type && !strcmp(n->op_type, "Gelu") &&
           (!n->domain || !n->domain[0] || !strcmp(n->domain, "ai.onnx"));
}

/* ---- selection ---- */

/* The kernel and its node check for n's op; NULL when none. */
static qd_kernel_fn kernel_for(const qd_node *n, int (**supports)(const qd_node *))
{
    switch (n->op) {
    case QD_OP_LAYER_NORMALIZATION:
        *supports = qd_x86_layernorm_supports;
        return qd_x86_layernorm;
    case QD_OP_SOFTMAX: *supports = qd_x86_softmax_supports; return qd_x86_softmax;
    case QD_OP_RELU:
    case QD_OP_SIGMOID:
    case QD_OP_TANH:
    case QD_OP_ERF:
    case QD_OP_EXP:
    case QD_OP_SQRT:
    case QD_OP_RECIPROCAL:
    case QD_OP_NEG:
    case QD_OP_ABS:
    case QD_OP_HARD_SIGMOID:
    case QD_OP_HARD_SWISH:
    case QD_OP_CLIP: *supports = qd_x86_unary_supports; return qd_x86_unary;
    case QD_OP_ADD:
    case QD_OP_SUB:
    case QD_OP_MUL:
    case QD_OP_DIV: *supports = qd_x86_binary_supports; return qd_x86_binary;
    case QD_OP_TRANSPOSE: *supports = qd_x86_transpose_supports; return qd_x86_transpose;
    case QD_OP_GLOBAL_AVERAGE_POOL:
    case QD_OP_REDUCE_MEAN: *supports = qd_x86_reduce_mean_supports; return qd_x86_reduce_mean;
    case QD_OP_MAX_POOL: *supports = qd_x86_max_pool_supports; return qd_x86_max_pool;
    case QD_OP_QUANTIZE_LINEAR:
    case QD_OP_DEQUANTIZE_LINEAR: *supports = qd_x86_quantize_supports; return qd_x86_quantize;
    default: break;
    }
    /* Gelu is matched by name: the op table may not have it (yet). */
    if (qd_x86_is_gelu(n)) {
        *supports = qd_x86_gelu_supports;
        return qd_x86_gelu;
    }
    *supports = NULL;
    return NULL;
}

int qd_x86_supports(const qd_node *n)
{
    if (!n || !qd_x86_cpu_avx512())
        return 0;
    int (*supports)(const qd_node *);
    qd_kernel_fn fn = kernel_for(n, &supports);
    return fn && supports(n);
}

qd_kernel_impl qd_x86_impl(const qd_node *n)
{
    int (*supports)(const qd_node *);
    qd_kernel_fn fn = n ? kernel_for(n, &supports) : NULL;
    return (qd_kernel_impl){"x86", fn, NULL, NULL, NULL};
}
