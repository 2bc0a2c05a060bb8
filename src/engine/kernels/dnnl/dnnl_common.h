/* Shared plumbing of the oneDNN kernels: the process's engine and stream,
 * memory descriptors, error mapping, post-ops from a fused chain, one-time
 * weight reorders and the shared layout-conversion scratch. Internal to
 * src/engine/kernels/dnnl/. */
#ifndef QD_DNNL_COMMON_H
#define QD_DNNL_COMMON_H

#include <oneapi/dnnl/dnnl.h>

#include "engine/kernel.h"
#include "engine/kernels/dnnl/dnnl_kernels.h"

/* Fails a call naming the node: "node 'NAME' (OP): oneDNN: WHAT: STATUS". */
qd_status qd_dnnl_fail(qd_graph *g, const qd_node *n, dnnl_status_t s, const char *what);

#define QD_DNNL_TRY(g, n, call)                                                                    \
    do {                                                                                           \
        dnnl_status_t s_ = (call);                                                                 \
        if (s_ != dnnl_success) {                                                                  \
            st = qd_dnnl_fail((g), (n), s_, #call);                                                \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

/* The process's CPU engine and stream, created on the first call
 * (call_once). The engine runs steps one at a time; executing on the one
 * stream from two threads at once is not supported. */
qd_status qd_dnnl_get(qd_graph *g, const qd_node *n, dnnl_engine_t *engine, dnnl_stream_t *stream);

/* Every kernel state starts with this (qd_dnnl_state_impl reads it). */
typedef struct qd_dnnl_state_head {
    const char *impl; /* oneDNN implementation name, owned by the primitive */
    /* The input the primitive accumulates into dst (a `sum` post-op):
     * the output may share its buffer. -1: none. */
    int in_place_input;
} qd_dnnl_state_head;

/* 1 when v is float32 with a static shape of rank_min..rank_max and no
 * zero dims: what the oneDNN kernels take. */
int qd_dnnl_value_ok(const qd_value *v, int rank_min, int rank_max);

/* A step run without a prepared state: prepare, run with that state (the
 * impl's run, called again with a->state set), release. Slow: for callers
 * that skip prepare. */
qd_status qd_dnnl_run_unprepared(const qd_kernel_args *a,
                                 qd_status (*prepare)(const qd_kernel_args *, void **),
                                 void (*release)(void *));

/* qd_kernel_impl.in_place_ok for every oneDNN state. */
int qd_dnnl_in_place_ok(const void *state, int input);

qd_dnnl_conv_policy qd_dnnl_conv_policy_get(void);

/* The activation layout the engine passes (qd_dnnl_set_activation_layout). */
qd_dnnl_layout qd_dnnl_activation_layout(void);
/* Plain channels-first (ncw/nchw/ncdhw) or channels-last (nwc/nhwc/ndhwc)
 * tag for an activation of `rank` (3..5). */
dnnl_format_tag_t qd_dnnl_act_tag(qd_dnnl_layout layout, int rank);

/* Row-major float32 descriptor of dims (rank 1..12). */
dnnl_status_t qd_dnnl_md_plain(dnnl_memory_desc_t *md, int rank, const int64_t *dims);

/* How a fused Add whose operand has the output's full shape becomes a
 * post-op. Operands that broadcast per channel are binary adds, or run in
 * the tail when allow_binary is 0 (gemm:jit conv computes a per-channel
 * binary post-op wrongly on 3-D ndhwc). */
typedef enum qd_dnnl_residual {
    /* `sum`: the caller puts the operand into dst before executing. Only
     * the first full-shape Add; later ones run in the tail. This is what
     * conv uses: oneDNN 2.6's brgconv does not take a full-tensor binary
     * post-op at all, and gemm:jit conv computes it wrongly on nhwc. */
    QD_DNNL_RESIDUAL_SUM,
    QD_DNNL_RESIDUAL_BINARY, /* binary add reading the operand (matmul) */
    QD_DNNL_RESIDUAL_TAIL,   /* after the primitive (see qd_dnnl_run_tail) */
} qd_dnnl_residual;

/* The fused chain as post-ops, appended to po (which may already hold
 * post-ops); fused nodes from index fuse_limit on go to the tail. dst_md
 * describes the destination the primitive writes; full_md is the layout of
 * a full-shape binary operand (dst_md unless the kernel computes in another
 * layout than the engine's). For each binary
 * post-op, bin_input[k] is the index in a->inputs of its operand and
 * bin_pos[k] its post-op position; a `sum` operand's index is sum_input. */
#define QD_DNNL_MAX_BINARY 8
typedef struct qd_dnnl_chain {
    int n_binary;
    int bin_pos[QD_DNNL_MAX_BINARY];
    int bin_input[QD_DNNL_MAX_BINARY];
    int sum_input; /* -1: none */
    /* Fused nodes from this index on run after the primitive
     * (qd_dnnl_run_tail): a second residual, a residual in TAIL mode, or
     * an eltwise oneDNN 2.6 would miscompute (two eltwise post-ops of one
     * algorithm with different parameters). n_fused when all are fused. */
    int tail_from;
} qd_dnnl_chain;

qd_status qd_dnnl_chain_post_ops(const qd_kernel_args *a, dnnl_post_ops_t po,
                                 const dnnl_memory_desc_t *dst_md,
                                 const dnnl_memory_desc_t *full_md, qd_dnnl_residual residual,
                                 int allow_binary, int fuse_limit, qd_dnnl_chain *chain);

/* The chain's binary post-op operands: a memory object each, described as
 * primitive pd wants them; their data is set at each run by
 * qd_dnnl_bind_binary. */
qd_status qd_dnnl_create_binary(const qd_kernel_args *a, const_dnnl_primitive_desc_t pd,
                                const qd_dnnl_chain *chain, dnnl_memory_t *bin);
/* Points the binary operands at this run's inputs and appends them to
 * args (*na grows by chain->n_binary). */
qd_status qd_dnnl_bind_binary(const qd_kernel_args *a, const qd_dnnl_chain *chain,
                              dnnl_memory_t *bin, dnnl_exec_arg_t *args, int *na);
/* `sum` reads the residual from the destination: copies it into
 * a->outputs[0] unless that already is its buffer (the engine gave the
 * output the residual's dying buffer). Nothing without a `sum` residual. */
void qd_dnnl_residual_to_dst(const qd_kernel_args *a, const qd_dnnl_chain *chain);

/* For an INT8 step that requantizes after its chain (quant->requant_post_op):
 * appends the final scaling by 1/dst_scale; nothing otherwise. */
qd_status qd_dnnl_requant_post_op(const qd_kernel_args *a, dnnl_post_ops_t po);

/* Applies the fused nodes from chain->tail_from on to a->outputs[0] in
 * place. A per-channel Add operand is indexed by (i / inner) % channels of
 * the output's flat index i. */
void qd_dnnl_run_tail(const qd_kernel_args *a, const qd_dnnl_chain *chain, int64_t channels,
                      int64_t inner);

/* 1 when `next` is an activation this library fuses as an eltwise post-op. */
int qd_dnnl_eltwise_fusable(const qd_node *next);

/* Reorders constant data (described by from) once into a new memory object
 * of descriptor `to` owned by the library; *out is set on success. */
qd_status qd_dnnl_reorder_const(qd_graph *g, const qd_node *n, const dnnl_memory_desc_t *from,
                                const void *data, const dnnl_memory_desc_t *to, dnnl_memory_t *out);

/* A reorder primitive between two descriptors. */
qd_status qd_dnnl_reorder_prim(qd_graph *g, const qd_node *n, const dnnl_memory_desc_t *from,
                               const dnnl_memory_desc_t *to, dnnl_primitive_t *out);

/* Destroys whichever of a primitive descriptor, its attributes and their
 * post-ops exist (NULL: skipped): the common tail of building a primitive. */
void qd_dnnl_destroy_desc(dnnl_primitive_desc_t pd, dnnl_primitive_attr_t attr,
                          dnnl_post_ops_t po);

/* Runs a primitive on the stream and waits. */
qd_status qd_dnnl_execute(qd_graph *g, const qd_node *n, dnnl_primitive_t p, int nargs,
                          const dnnl_exec_arg_t *args);

/* Process-wide scratch buffers for layout conversions, shared by all
 * kernels (steps run one at a time, so two engines must not run
 * concurrently in two threads). A kernel reserves the sizes it needs at
 * prepare time and fetches the pointers at run time; the buffers are freed
 * when the last reservation is dropped. slot: 0..QD_DNNL_SCRATCH_SLOTS-1. */
#define QD_DNNL_SCRATCH_SLOTS 2
int qd_dnnl_scratch_reserve(int slot, size_t bytes); /* 0, or -1 on out of memory */
void qd_dnnl_scratch_unreserve(int slot);
void *qd_dnnl_scratch(int slot);

/* True when a conv primitive descriptor's implementation is one we
 * consider slow for a hot layer (reference or im2col+gemm "gemm:jit"). */
int qd_dnnl_impl_is_slow(const_dnnl_primitive_desc_t pd);
const char *qd_dnnl_impl_name(const_dnnl_primitive_desc_t pd);

/* A Conv's geometry (1 to 3 spatial dims), read from its attributes and
 * checked against the (inferred) shapes x, w, y of `rank`. */
#define QD_DNNL_SPATIAL_MAX 3
typedef struct qd_dnnl_conv_geom {
    int k; /* spatial dims */
    int64_t group;
    int64_t n, ic, oc;
    int64_t in[QD_DNNL_SPATIAL_MAX], out[QD_DNNL_SPATIAL_MAX], kernel[QD_DNNL_SPATIAL_MAX];
    int64_t stride[QD_DNNL_SPATIAL_MAX], dil[QD_DNNL_SPATIAL_MAX], pl[QD_DNNL_SPATIAL_MAX], pr[QD_DNNL_SPATIAL_MAX];
    /* Some window lies entirely in the padding (pads >= the dilated
     * kernel). oneDNN 2.6's brgconv crashes on such shapes with a `sum`
     * post-op, so a residual then runs after the primitive. */
    int fullpad;
} qd_dnnl_conv_geom;
int qd_dnnl_conv_read_geom(const qd_node *n, int rank, const int64_t *x, const int64_t *w,
                           const int64_t *y, qd_dnnl_conv_geom *g, char *err, size_t esz);

/* ---- the INT8 kernels' shared part (s8_common.c) ---- */

/* An INT8 primitive with the memories it runs on. */
typedef struct qd_dnnl_s8_prim {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, bias, dst;
    dnnl_memory_t bin[QD_DNNL_MAX_BINARY];
    dnnl_memory_t zp_src, zp_dst; /* runtime zero points (a->quant's), or NULL */
    qd_dnnl_chain chain;
} qd_dnnl_s8_prim;

/* Builds p for op_desc (a conv or matmul descriptor): the fused chain's
 * post-ops, the requantizing post-op, output scales (n_scales, mask), the
 * source and destination zero points (a->quant; fails when only oneDNN's
 * reference implementation takes them), the
 * primitive and memories for src/dst, for a runtime weight of wei_md
 * (NULL: the caller reorders a constant into p->wei with
 * qd_dnnl_s8_weights_md), and for each binary operand. Fills head. */
qd_status qd_dnnl_s8_build(const qd_kernel_args *a, const void *op_desc,
                           const dnnl_memory_desc_t *src_md, const dnnl_memory_desc_t *dst_md,
                           const dnnl_memory_desc_t *wei_md, int n_scales, int scale_mask,
                           const float *scales, qd_dnnl_s8_prim *p, qd_dnnl_state_head *head);
/* The weights layout the primitive chose. */
const dnnl_memory_desc_t *qd_dnnl_s8_weights_md(const qd_dnnl_s8_prim *p);
void qd_dnnl_s8_destroy(qd_dnnl_s8_prim *p);
/* Runs p on a's tensors (inputs[0] -> outputs[0], the chain's operands;
 * a `sum` residual is put into dst first); wei_data: a runtime weight's
 * data, NULL for a constant one. */
qd_status qd_dnnl_s8_execute(const qd_kernel_args *a, qd_dnnl_s8_prim *p, const void *wei_data);

/* The per-op halves of the selector API (conv2d_f32_dnnl.c,
 * matmul_f32_dnnl.c). */
int qd_dnnl_conv_supports(const qd_node *n);
int qd_dnnl_matmul_supports(const qd_node *n);
int qd_dnnl_gemm_supports(const qd_node *n);
qd_kernel_impl qd_dnnl_conv_impl(void);
qd_kernel_impl qd_dnnl_matmul_impl(void);
qd_kernel_impl qd_dnnl_gemm_impl(void);
qd_kernel_impl qd_dnnl_conv_s8_impl(void);
qd_kernel_impl qd_dnnl_matmul_s8_impl(void);

#endif
