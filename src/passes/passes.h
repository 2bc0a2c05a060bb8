/* Graph rewrites. Each takes the graph IR and returns it changed in place. */
#ifndef QD_PASSES_PASSES_H
#define QD_PASSES_PASSES_H

#include <stdio.h>

#include "ir/graph.h"

/* How many times each conversion of qd_graph_convert_for_fusion applied. */
typedef struct qd_conversion_counts {
    int flatten_gemm_to_conv; /* FlattenGemmToConv: head Gemm -> Conv 1x1 -> Flatten */
    int mha_in_proj_split;    /* DecomposeMultiheadAttention: packed Q/K/V projections split */
} qd_conversion_counts;

/* The conversions the fusion matcher wants, run to a fixed point (after
 * qd_graph_infer_shapes and qd_graph_simplify, before qd_match_patterns).
 * The graph stays valid ONNX at its opset and computes the same outputs
 * (up to float rounding), under the same output names:
 *  - Flatten(axis 1) of an N x C x 1 x 1 tensor -> Gemm with a constant
 *    weight (transB 0 or 1, transA 0; alpha and beta folded into the
 *    constants; optional constant bias of one value per output or one
 *    value) becomes Conv(W as [M, C, 1, 1], bias) -> Flatten(axis 1);
 *  - nn.MultiheadAttention's packed input projection, MatMul by an [E, n*E]
 *    constant (n = 3: q, k, v; n = 2: k, v) [+ constant bias], read only by
 *    Slices or Splits of the last axis into its E-wide parts (and nodes
 *    whose outputs nothing reads, removed with it), becomes one MatMul
 *    [+ Add] per part with its own [E, E] weight.
 * Anything else is left alone. counts may be NULL; it is zeroed first.
 * Shapes are re-inferred when something changed. */
qd_status qd_graph_convert_for_fusion(qd_graph *g, qd_conversion_counts *counts);

/* The number of conversions applied, all kinds together. */
int qd_conversion_total(const qd_conversion_counts *counts);

/* Writes the counts as a Markdown table, rows only for conversions that
 * applied:
 *   | Conversion | Count |
 *   |---|---:|
 *   | `FlattenGemmToConv` | 1 |
 */
void qd_conversion_report(const qd_conversion_counts *counts, FILE *out);

/* Moves each per-tensor QuantizeLinear (int8/uint8, constant scale and
 * zero point) above an op that commutes with it, to a fixed point, so the
 * op runs on int8 (see propagate_quantize.c): MaxPool (Indices unread),
 * Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Slice (their other
 * inputs constant), Relu (int8, zero point 0, not right after an op the
 * engine fuses Relu into), Concat (a Q on every input). Only when the op's
 * output feeds that Q alone and is not a graph output. A Q of a DQ with
 * the same scale, zero point and type is dropped (readers read the DQ's
 * input; not for a graph output). Exact: the graph
 * computes the same values. count (may be NULL) gets the moves made. Used
 * by qd_graph_canonicalize; the caller prunes and sorts the graph. */
qd_status qd_graph_propagate_quantize(qd_graph *g, int *count);

#endif
