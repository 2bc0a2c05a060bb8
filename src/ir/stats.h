/* Model statistics for `qdeploy inspect`: parameters and MACs. */
#ifndef QD_IR_STATS_H
#define QD_IR_STATS_H
#include <stdint.h>

#include "ir/graph.h"

typedef struct qd_graph_stats {
    int64_t parameters;      /* float initializers, BatchNorm running stats excluded */
    int64_t parameter_bytes; /* bytes of every initializer */
    int64_t macs_conv;       /* Conv, ConvTranspose, QLinearConv */
    int64_t macs_matmul;     /* MatMul, Gemm, QLinearMatMul */
    int64_t macs_other;      /* element operations of every other op (pool windows counted) */
    int unknown_shapes;      /* nodes whose MACs could not be counted */
} qd_graph_stats;

/* MACs of one node (0 when its shapes are unknown); *kind: 0 conv, 1 matmul, 2 other. */
int64_t qd_node_macs(const qd_node *n, int *kind);
void qd_graph_compute_stats(const qd_graph *g, qd_graph_stats *s);

#endif
