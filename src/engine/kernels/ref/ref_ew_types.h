/* Private to the reference elementwise and tensor kernels: per-dtype X-macro
 * lists, load/store of 16-bit floats, error and OpenMP helpers.
 *
 * A type list entry is X(P, sfx, S, C, U): P is a pass-through argument
 * (usually the op name), sfx a short type name, S the storage type, C the
 * type computed in (float for fp16/bf16), U an unsigned type wide enough to
 * compute + - * with wrap-around and without signed-overflow UB. */
#ifndef QD_REF_EW_TYPES_H
#define QD_REF_EW_TYPES_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/kernel.h"
#include "ir/tensor.h"

#ifdef _OPENMP
#include <omp.h>
#define QD_REF_PRAGMA(x) _Pragma(#x)
/* Parallel loop over independent rows, only when the work is big enough to
 * pay for waking the team. */
#define QD_REF_OMP_FOR(cond, nt)                                                                   \
    QD_REF_PRAGMA(omp parallel for schedule(static) if(cond) num_threads(nt))
#else
#define QD_REF_OMP_FOR(cond, nt)
#endif

/* Elements below which a loop stays on one thread. */
#define QD_REF_PAR_MIN 32768

static inline int qd_ref_nthreads(const qd_kernel_args *a)
{
#ifdef _OPENMP
    return a->n_threads > 0 ? a->n_threads : omp_get_max_threads();
#else
    (void)a;
    return 1;
#endif
}

/* "node 'NAME' (Op): message" on the graph's error. */
static inline qd_status qd_ref_fail(const qd_kernel_args *a, qd_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline qd_status qd_ref_fail(const qd_kernel_args *a, qd_status st, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qd_graph_fail(a->graph, st, "node '%s' (%s): %s", a->node->name ? a->node->name : "",
                         a->node->op_type ? a->node->op_type : "?", msg);
}

/* These kernels compute their node alone; a step with fused nodes is
 * refused rather than computed partly. */
#define QD_REF_NO_FUSION(a)                                                                        \
    do {                                                                                           \
        if ((a)->n_fused > 0)                                                                      \
            return qd_ref_fail((a), QD_STATUS_UNSUPPORTED, "fused nodes are not supported");       \
    } while (0)

/* 1 when t is present and its buffer holds exactly its dims' elements. */
static inline int qd_ref_tensor_ok(const qd_tensor *t)
{
    if (!t || t->rank < 0 || t->rank > QD_MAX_RANK)
        return 0;
    int64_t n = qd_numel(t->rank, t->dims);
    size_t es = qd_dtype_size(t->dtype);
    if (n < 0 || es == 0 || (uint64_t)n > SIZE_MAX / es || (size_t)n * es != t->nbytes)
        return 0;
    return n == 0 || t->data != NULL;
}

#define QD_REF_DT_f32 QD_DT_FLOAT
#define QD_REF_DT_f64 QD_DT_DOUBLE
#define QD_REF_DT_f16 QD_DT_FLOAT16
#define QD_REF_DT_bf16 QD_DT_BFLOAT16
#define QD_REF_DT_i8 QD_DT_INT8
#define QD_REF_DT_i16 QD_DT_INT16
#define QD_REF_DT_i32 QD_DT_INT32
#define QD_REF_DT_i64 QD_DT_INT64
#define QD_REF_DT_u8 QD_DT_UINT8
#define QD_REF_DT_u16 QD_DT_UINT16
#define QD_REF_DT_u32 QD_DT_UINT32
#define QD_REF_DT_u64 QD_DT_UINT64
#define QD_REF_DT_b8 QD_DT_BOOL

/* Load a stored element as the compute type, store a computed value. */
#define QD_REF_LD_f32(v) (v)
#define QD_REF_LD_f64(v) (v)
#define QD_REF_LD_f16(v) qd_fp16_to_fp32(v)
#define QD_REF_LD_bf16(v) qd_bf16_to_fp32(v)
#define QD_REF_LD_i8(v) (v)
#define QD_REF_LD_i16(v) (v)
#define QD_REF_LD_i32(v) (v)
#define QD_REF_LD_i64(v) (v)
#define QD_REF_LD_u8(v) (v)
#define QD_REF_LD_u16(v) (v)
#define QD_REF_LD_u32(v) (v)
#define QD_REF_LD_u64(v) (v)
#define QD_REF_LD_b8(v) ((uint8_t)((v) != 0))

#define QD_REF_ST_f32(v) (v)
#define QD_REF_ST_f64(v) (v)
#define QD_REF_ST_f16(v) qd_fp32_to_fp16(v)
#define QD_REF_ST_bf16(v) qd_fp32_to_bf16(v)
#define QD_REF_ST_i8(v) (v)
#define QD_REF_ST_i16(v) (v)
#define QD_REF_ST_i32(v) (v)
#define QD_REF_ST_i64(v) (v)
#define QD_REF_ST_u8(v) (v)
#define QD_REF_ST_u16(v) (v)
#define QD_REF_ST_u32(v) (v)
#define QD_REF_ST_u64(v) (v)
#define QD_REF_ST_b8(v) ((uint8_t)((v) != 0))

#define QD_REF_TYPES_FLOAT(X, P)                                                                   \
    X(P, f32, float, float, float)                                                                 \
    X(P, f64, double, double, double)                                                              \
    X(P, f16, uint16_t, float, float)                                                              \
    X(P, bf16, uint16_t, float, float)
#define QD_REF_TYPES_SINT(X, P)                                                                    \
    X(P, i8, int8_t, int8_t, uint32_t)                                                             \
    X(P, i16, int16_t, int16_t, uint32_t)                                                          \
    X(P, i32, int32_t, int32_t, uint32_t)                                                          \
    X(P, i64, int64_t, int64_t, uint64_t)
#define QD_REF_TYPES_UINT(X, P)                                                                    \
    X(P, u8, uint8_t, uint8_t, uint32_t)                                                           \
    X(P, u16, uint16_t, uint16_t, uint32_t)                                                        \
    X(P, u32, uint32_t, uint32_t, uint32_t)                                                        \
    X(P, u64, uint64_t, uint64_t, uint64_t)
#define QD_REF_TYPES_BOOL(X, P) X(P, b8, uint8_t, uint8_t, uint32_t)
#define QD_REF_TYPES_INT(X, P) QD_REF_TYPES_SINT(X, P) QD_REF_TYPES_UINT(X, P)
#define QD_REF_TYPES_NUM(X, P) QD_REF_TYPES_FLOAT(X, P) QD_REF_TYPES_INT(X, P)
#define QD_REF_TYPES_ALL(X, P) QD_REF_TYPES_NUM(X, P) QD_REF_TYPES_BOOL(X, P)

/* A dispatch case: `case QD_DT_FLOAT: return op_f32;`. */
#define QD_REF_CASE(op, sfx, S, C, U)                                                              \
    case QD_REF_DT_##sfx: return op##_##sfx;

#endif
