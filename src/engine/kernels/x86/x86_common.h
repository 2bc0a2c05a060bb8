/* Private to the x86 kernels (x86_kernels.h): the AVX-512 function
 * attribute, threading, value-shape helpers for the supports checks.
 *
 * ISA policy: only functions marked QD_X86_AVX512 contain AVX-512 code, so
 * the rest of the library stays portable; those functions are called only
 * after qd_x86_cpu_avx512() said yes. OpenMP regions live in plain
 * functions (qd_x86_parallel) and call the AVX-512 workers, so no outlined
 * parallel body depends on how a compiler propagates target attributes. */
#ifndef QD_X86_COMMON_H
#define QD_X86_COMMON_H

#include <stdint.h>

#include "engine/kernel.h"
#include "engine/kernels/ref/nn_common.h"
#include "engine/kernels/x86/x86_kernels.h"
#include "ir/graph.h"

/* gcc and clang both accept target attributes on functions. */
#define QD_X86_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))

/* Elements below which a kernel stays on one thread. */
#define QD_X86_PAR_MIN 16384

/* A worker over items [begin, end) of a kernel call. */
typedef void (*qd_x86_range_fn)(void *ctx, int64_t begin, int64_t end);

/* Runs fn over [0, n_items) split in one contiguous range per thread (one
 * OpenMP region, static schedule); on the calling thread alone when `work`
 * (elements touched) is below QD_X86_PAR_MIN. */
void qd_x86_parallel(const qd_kernel_args *a, int64_t n_items, int64_t work, qd_x86_range_fn fn,
                     void *ctx);

/* Refuses a step with fused nodes (these kernels compute one node). */
#define QD_X86_NO_FUSION(a)                                                                        \
    do {                                                                                           \
        if ((a)->n_fused != 0)                                                                     \
            return qd_nn_fail((a), QD_STATUS_UNSUPPORTED,                                          \
                              "the x86 kernels do not run fused nodes");                           \
    } while (0)

/* ---- node checks for qd_x86_*_supports (static shapes) ---- */

/* Input/output i of n when present, else NULL. */
static inline const qd_value *qd_x86_in(const qd_node *n, int i)
{
    return i < n->n_inputs ? n->inputs[i] : NULL;
}
static inline const qd_value *qd_x86_out(const qd_node *n, int i)
{
    return i < n->n_outputs ? n->outputs[i] : NULL;
}

/* 1 when v is present, float32 and of fully known shape. */
static inline int qd_x86_f32_known(const qd_value *v)
{
    return v && v->dtype == QD_DT_FLOAT && qd_value_shape_known(v);
}

/* Node checks shared by most kernels: input 0 and output 0 known float32
 * with the same element count; outputs beyond `max_outputs` absent. */
int qd_x86_unary_shapes_ok(const qd_node *n, int max_outputs);

/* An attribute's value without a graph for messages: 1 when present with
 * the right type or absent (def), 0 when of another type. */
int qd_x86_attr_int(const qd_node *n, const char *name, int64_t def, int64_t *out);
int qd_x86_attr_float(const qd_node *n, const char *name, float def, float *out);

/* LayerNormalization of one row x[0..n): y = (x - mean) / sqrt(var + eps)
 * * sc + bi (bi may be NULL), written as float32 to y or, when yq is not
 * NULL, as int8 at qscale to yq (layernorm_f32_avx512.c). */
QD_X86_AVX512 void qd_x86_layernorm_row(const float *x, int64_t n, const float *sc,
                                         const float *bi, double eps, float *y, int8_t *yq,
                                         float qscale);

/* 1 when t is a float32 tensor whose buffer holds its dims' elements. */
int qd_x86_tensor_f32(const qd_tensor *t);

#endif
