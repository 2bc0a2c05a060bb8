/* Float32 Conv, MatMul and Gemm on oneDNN, with activations and a residual
 * Add fused as post-ops. The selector API for the engine.
 *
 * Fused chain contract (qd_kernel_args.fused / n_fused): the nodes after
 * the anchor in order. Activations (Relu, LeakyRelu, Elu, Sigmoid, Tanh,
 * HardSigmoid, HardSwish, Clip) add nothing to inputs; Clip's min/max are
 * read from the Clip node's own constant inputs or attributes. Each fused
 * Add appends exactly one tensor to a->inputs, after the anchor's own
 * n_inputs entries: its operand that is not the chain value. outputs[0] is
 * the last fused node's output.
 *
 * A conv's residual is added by a `sum` post-op: the kernel copies the
 * residual into the output first, unless the output buffer already is the
 * residual's (an engine that plans the step's output in place of a residual
 * that dies at this step saves that copy). Parts of a chain oneDNN 2.6
 * would run slowly or wrongly are applied after the primitive in the same
 * step, so whatever qd_dnnl_fusable accepts runs correctly.
 *
 * Weights: Conv needs a constant weight (initializer); MatMul/Gemm pack a
 * constant B once and take a runtime B otherwise. Primitives pick their
 * thread partitioning when prepared: set the OpenMP thread count before
 * prepare, not only before run. */
#ifndef QD_DNNL_KERNELS_H
#define QD_DNNL_KERNELS_H

#include "engine/engine.h"
#include "ir/graph.h"

/* 1 if n (Conv 1-D..3-D, MatMul, Gemm) can run on the oneDNN kernels given
 * its inferred static shapes and dtypes (float32 only). */
int qd_dnnl_supports(const qd_node *n);

/* 1 when oneDNN runs bfloat16 conv/matmul natively here (AVX512-BF16). */
int qd_dnnl_has_bf16(void);

/* 1 if `next` can be fused as a post-op into the step anchored at `anchor`
 * (a node qd_dnnl_supports accepts, possibly with earlier fused nodes):
 * an activation listed above, or an Add whose other operand (other_operand)
 * has exactly the anchor output's shape and dtype. other_operand is NULL for
 * unary nodes. */
int qd_dnnl_fusable(const qd_node *anchor, const qd_node *next, const qd_value *other_operand);
/* The same for an anchor known to run on a oneDNN kernel (an INT8 one). */
int qd_dnnl_fusable_after(const qd_node *anchor, const qd_node *next,
                          const qd_value *other_operand);

/* 1 when the Conv n computes from a space-to-depth rearrangement of its
 * input (a stride-2 stem on <= 4 channels), which reads plain NCHW as fast
 * as NHWC: the layout plan then leaves its input plain. */
int qd_dnnl_conv_reads_plain_src(const qd_node *n);

/* name "dnnl", run/prepare/release for n's op. prepare builds the primitive
 * (weights reordered once); run also works without a prepared state (it
 * then prepares and releases on the fly, slowly). */
qd_kernel_impl qd_dnnl_impl(const qd_node *n);

/* INT8 kernels of lowered QDQ groups (engine/lower_qdq.h): Conv, MatMul
 * and Gemm reading int8 x_q and the constant int8 weight w_q, scales in
 * qd_kernel_args.quant. 1 when n fits them (static shapes). */
int qd_dnnl_s8_supports(const qd_node *n, const qd_value *x_q, const qd_value *w_q);
/* 1 when oneDNN has a non-reference INT8 kernel for n with a source
 * and/or destination zero point and/or a residual `sum` with a zero point
 * (what qd_dnnl_s8_supports accepts), its activations channels-last or not
 * (a Conv's; as the INT8 conv describes them); 1 when none is set. The
 * reference kernel would be slower than running the group as written, so
 * such groups stay. */
int qd_dnnl_s8_zero_points_fast(const qd_node *n, const qd_value *x_q, const qd_value *w_q,
                                int src_zp, int dst_zp, int sum_zp, int channels_last);
/* name "dnnl-s8". */
qd_kernel_impl qd_dnnl_s8_impl(const qd_node *n);

/* How activation tensors are laid out in memory; logical dims stay
 * N, C, spatial. NCHW is the engine's layout today. With NCHW the conv
 * kernel computes channels-last internally (reordering in and out) when
 * oneDNN has no fast direct kernel for the plain layout (it would pick
 * im2col+gemm); see the engine notes. Affects primitives prepared after the
 * call. */
typedef enum qd_dnnl_layout { QD_DNNL_NCHW = 0, QD_DNNL_NHWC = 1 } qd_dnnl_layout;
void qd_dnnl_set_activation_layout(qd_dnnl_layout layout);

/* Conv compute policy for NCHW activations (default AUTO): PLAIN always
 * computes on the plain layout, CHANNELS_LAST always reorders through
 * nhwc, AUTO reorders only when the plain primitive would be slow. For
 * benchmarks and tests. */
typedef enum qd_dnnl_conv_policy {
    QD_DNNL_CONV_AUTO = 0,
    QD_DNNL_CONV_PLAIN,
    QD_DNNL_CONV_CHANNELS_LAST
} qd_dnnl_conv_policy;
void qd_dnnl_set_conv_policy(qd_dnnl_conv_policy policy);

/* The oneDNN implementation a prepared state runs ("brgconv:avx512_core",
 * ...), for profiles and tests; NULL for a NULL state. */
const char *qd_dnnl_state_impl(const void *state);

#endif
