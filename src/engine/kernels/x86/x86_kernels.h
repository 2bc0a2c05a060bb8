/* Own AVX-512 kernels for the memory-bound float32 ops around the convs and
 * matmuls of ConvNeXt, ViT, Swin and ResNet: LayerNormalization, Softmax,
 * GELU, Erf and other activations, broadcasting Add/Sub/Mul/Div,
 * Transpose, GlobalAveragePool/ReduceMean, MaxPool 2-D. The selector API
 * for the engine, and each kernel's entry point (tests, benchmarks).
 *
 * A node is claimed (qd_x86_supports) only when the CPU runs AVX-512F (with
 * DQ, BW, VL and FMA; read once) and the node's inferred static shapes,
 * dtypes and attributes are a case these kernels vectorise; everything
 * else stays on the reference kernel. The run functions re-check the
 * run-time tensors and call the reference kernel themselves when a case is
 * not theirs (another shape at run time, a CPU without AVX-512), so they
 * are always safe to call for their op. They compute one node: a step with
 * fused nodes is refused. Threads: one OpenMP region per call, static
 * schedule, a->n_threads threads (0: OpenMP's default); single-threaded
 * below ~16K elements.
 *
 * Tensors are plain row-major (QD_LAYOUT_PLAIN), the layout plan's
 * physical NHWC views of elementwise steps included: broadcast patterns are
 * classified on the run-time dims, so [C,1,1] against an NHWC view is a
 * row. Results: bitwise the reference's for Relu, Neg, Abs, Sqrt,
 * Reciprocal, HardSigmoid, HardSwish, Clip, Add/Sub/Mul/Div, Transpose,
 * MaxPool; within a few ulp for exp/erf/tanh/sigmoid (x86_math_avx512.h),
 * ~1e-6 relative for LayerNorm/Softmax/means (sums in double).
 * QD_X86_DISABLE=1 in the environment turns the kernels off (reference
 * paths everywhere), for comparisons.
 *
 * Per-kernel cases (float32):
 *   LayerNormalization  axis = last; Scale (and optional B) of shape [N],
 *                       N = last dim; no Mean/InvStdDev outputs.
 *   Softmax             rows along the last axis (opset >= 13 axis = last;
 *                       opset < 13 always, the input seen as 2-D).
 *   Gelu                approximate = "none" (erf) or "tanh" (ONNX opset 20;
 *                       matched by op_type "Gelu" in the default domain).
 *                       Keeps relative accuracy in the negative tail.
 *   unary               Relu, Sigmoid, Tanh, Erf, Exp, Sqrt, Reciprocal,
 *                       Neg, Abs, HardSigmoid, HardSwish, Clip.
 *   Add/Sub/Mul/Div     same shape; one operand one element; one operand
 *                       [.., C] against [M, C] (a row), [C, 1, .., 1]
 *                       against [.., C, inner...] (per channel over a
 *                       contiguous block) or [M, 1] against [M, C]; the
 *                       small operand on either side.
 *   Transpose           rank 2-6, any permutation: row copies when the
 *                       last axis stays, else tiled 16x16 transposes.
 *   GlobalAveragePool   rank >= 3.
 *   ReduceMean          axes forming one contiguous range (last axis,
 *                       (2, 3) of NCHW, (1, 2) of NHWC, ...), keepdims 0/1,
 *                       axes as attribute or constant input.
 *   MaxPool             rank 4 (2-D), any kernel/stride/pads/dilations/
 *                       auto_pad/ceil_mode, no Indices output. */
#ifndef QD_X86_KERNELS_H
#define QD_X86_KERNELS_H

#include "engine/engine.h"
#include "ir/graph.h"

/* 1 when a kernel here handles n (shapes of inputs and outputs[0] known)
 * and the CPU has AVX-512. */
int qd_x86_supports(const qd_node *n);

/* name "x86", run = the kernel for n's op (prepare/release NULL). Only
 * meaningful when qd_x86_supports(n). */
qd_kernel_impl qd_x86_impl(const qd_node *n);

/* 1 when the CPU (and OS) run the AVX-512 code paths here; read once.
 * The environment variable QD_X86_DISABLE=1 makes it 0 (then nothing is
 * claimed and the kernels run the reference code). */
int qd_x86_cpu_avx512(void);

/* ---- depthwise conv, channels-last (dwconv_nhwc_f32_avx512.c) ----
 * Not chosen by qd_x86_supports: the engine's step fusion after the layout
 * plan (engine/dwconv_fusion.c) moves a planned channels-last oneDNN
 * depthwise Conv step of at most 384 channels here, with the [Transpose
 * ->] LayerNormalization after it fused when there is one. Cases: float32, K x K with K = 3, 5
 * or 7, stride 1, dilation 1, pads K/2, group = channels, constant weights
 * and bias. Input NHWC; output N,H,W,C (the conv's NHWC output, or the
 * LayerNorm's plain output: the same bytes), float32 or, with the fused
 * LayerNorm and a->quant->dst_scale, int8. Inputs: X, W, B (NULL
 * allowed), then the LayerNorm's Scale and B (NULL allowed). */
int qd_x86_dwconv_nhwc_supports(const qd_node *conv);
/* 1 when the LayerNorm fusion has room for this many channels. */
int qd_x86_dwconv_layernorm_ok(int64_t channels);
qd_status qd_x86_dwconv_prepare(const qd_kernel_args *a, void **state);
void qd_x86_dwconv_release(void *state);
qd_status qd_x86_dwconv_nhwc(const qd_kernel_args *a);

/* ---- the kernels (qd_kernel_fn) ---- */

/* LayerNorm and Softmax write int8 when a->quant->dst_scale is set (the
 * engine fused the QuantizeLinear that alone reads their output);
 * Softmax rows then hold at most QD_X86_SOFTMAX_Q8_MAX elements. */
#define QD_X86_SOFTMAX_Q8_MAX 4096
qd_status qd_x86_layernorm(const qd_kernel_args *a);
qd_status qd_x86_softmax(const qd_kernel_args *a);
/* GELU of input 0 into output 0; attribute "approximate" = "none" | "tanh". */
qd_status qd_x86_gelu(const qd_kernel_args *a);
/* Relu, Sigmoid, Tanh, Erf, Exp, Sqrt, Reciprocal, Neg, Abs, HardSigmoid,
 * HardSwish, Clip (switches on the node's op). */
qd_status qd_x86_unary(const qd_kernel_args *a);
/* Add, Sub, Mul, Div. */
qd_status qd_x86_binary(const qd_kernel_args *a);
qd_status qd_x86_transpose(const qd_kernel_args *a);
/* GlobalAveragePool and ReduceMean. */
qd_status qd_x86_reduce_mean(const qd_kernel_args *a);
qd_status qd_x86_max_pool(const qd_kernel_args *a);
/* QuantizeLinear / DequantizeLinear with one scale (and zero point). */
qd_status qd_x86_quantize(const qd_kernel_args *a);

/* ---- per-kernel node checks (the parts of qd_x86_supports) ---- */

int qd_x86_layernorm_supports(const qd_node *n);
int qd_x86_softmax_supports(const qd_node *n);
int qd_x86_gelu_supports(const qd_node *n);
int qd_x86_unary_supports(const qd_node *n);
int qd_x86_binary_supports(const qd_node *n);
int qd_x86_transpose_supports(const qd_node *n);
int qd_x86_reduce_mean_supports(const qd_node *n);
int qd_x86_max_pool_supports(const qd_node *n);
int qd_x86_quantize_supports(const qd_node *n);

/* 1 for a node GELU is computed for: op_type "Gelu" in the default domain. */
int qd_x86_is_gelu(const qd_node *n);

#endif
