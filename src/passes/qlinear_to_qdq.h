/* QLinearConv and QLinearMatMul rewritten as the QDQ form they compute, so
 * the engine lowers them like any QDQ group (engine/lower_qdq.h):
 *
 *   QLinearConv(x, sx, zx, w, sw, zw, sy, zy, B)
 *     -> Q(Conv(DQ(x, sx, zx), DQ(w, sw, zw), DQ(B, sx * sw)), sy, zy)
 *   QLinearMatMul(a, sa, za, b, sb, zb, sy, zy)
 *     -> Q(MatMul(DQ(a, sa, za), DQ(b, sb, zb)), sy, zy)
 *
 * Part of qd_graph_canonicalize (the result is for the engine: a per-axis
 * DequantizeLinear needs opset 13, which a QLinear model may predate). */
#ifndef QD_PASSES_QLINEAR_TO_QDQ_H
#define QD_PASSES_QLINEAR_TO_QDQ_H

#include "ir/graph.h"

/* Rewrites every QLinearConv / QLinearMatMul whose scales are per tensor
 * (weights: per tensor or per output channel / column) and of known size;
 * others stay (the reference kernels run them). QD_OK or out of memory. */
qd_status qd_graph_qlinear_to_qdq(qd_graph *g);

#endif
