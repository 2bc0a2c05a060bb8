/* Placement: which tensor edges get Quantize/DequantizeLinear, from the
 * fused modules the matcher found and the QDQ points their rows declare for
 * the target. The plan is the hand-off between placement, calibration
 * (fills amax) and QDQ insertion. */
#ifndef QD_QUANT_PLACEMENT_H
#define QD_QUANT_PLACEMENT_H

#include "ir/graph.h"
#include "passes/pattern.h"

typedef enum qd_plan_kind {
    QD_PLAN_ACTIVATION = 0, /* per tensor, amax from calibration */
    QD_PLAN_WEIGHT = 1,     /* constant weight, per channel along axis */
} qd_plan_kind;

typedef struct qd_plan_point {
    qd_node *consumer;   /* the node whose input is quantized */
    int input;           /* which input */
    qd_plan_kind kind;
    int axis;            /* weights: the output-channel axis */
    const char *module;  /* the fused module that asked for it (report) */
    const char *why;     /* "input", "residual input", "weight" */
    float amax;          /* activations: filled by calibration; 0 until then */
} qd_plan_point;

typedef struct qd_qdq_plan {
    qd_plan_point *points;
    size_t n, cap;
    int linear_kept_high; /* FusedLinear left in high precision (K*N/(K+N) < 256) */
} qd_qdq_plan;

/* Below this K*N/(K+N), a Linear gains nothing from INT8 (mixed policy). */
#define QD_LINEAR_MIN_INTENSITY 256.0

/* K*N/(K+N) of a Linear's constant weight (Gemm, MatMul [K, N], or a 1x1
 * Conv [N, K, 1, 1] that FlattenGemmToConv made): its arithmetic intensity.
 * Huge when n has no such weight. */
double qd_linear_intensity(qd_graph *g, const qd_node *n);

/* 1 when the Linear n stays in high precision for target under the mixed
 * policy: tensorrt's K*N/(K+N) < QD_LINEAR_MIN_INTENSITY; never for x86. */
int qd_plan_linear_stays_high(qd_graph *g, const qd_node *n, const char *target);

/* Builds the plan for target ("tensorrt", "x86": pattern-aware mixed precision;
 * "uniform": every Conv and Linear, ModelOpt's INT8_DEFAULT_CFG). */
qd_status qd_plan_build(qd_graph *g, const qd_match_list *matches, const char *target,
                        qd_qdq_plan *plan);
void qd_plan_free(qd_qdq_plan *plan);

#endif
