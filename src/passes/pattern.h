/* The pattern matcher: patterns are data (see DESIGN.md, "Patterns are data").
 *
 * A pattern is a table row: the fused name the report prints, a chain of
 * steps (each a set of accepted ops, optional or not, with a rule for the
 * operand that does not come from the previous step), optional node
 * predicates (7x7 stem on 3 channels, depthwise, constant weight), and per
 * target the QDQ points the fused module declares. The table of fusions is
 * in fusions.c; a target is the list of rows with its QDQ points.
 *
 * Matching rules:
 *  - a step's node reads the previous step's output (input 0, or either
 *    input for steps marked QD_STEP_ANY_INPUT);
 *  - every intermediate value (the output of every step but the last) has a
 *    single use and is not a graph output;
 *  - longer matches (more nodes) win, then earlier rows of the table, then
 *    earlier nodes in topological order; a node belongs to at most one match.
 * Run on a graph after qd_graph_infer_shapes (and usually qd_graph_simplify
 * and qd_graph_canonicalize: BatchNormalization is an optional step, so a
 * graph with BN folded or not matches the same rows).
 */
#ifndef QD_PASSES_PATTERN_H
#define QD_PASSES_PATTERN_H
#include <stddef.h>
#include <stdio.h>

#include "ir/graph.h"

/* Where a fused module wants Quantize/DequantizeLinear pairs; 0: none (the
 * module stays in high precision). */
typedef enum qd_qdq_point {
    QD_QDQ_NONE = 0,
    QD_QDQ_INPUT = 1 << 0,          /* the activation input(s) of the module */
    QD_QDQ_RESIDUAL_INPUT = 1 << 1, /* the residual operand of its Add */
    QD_QDQ_WEIGHT = 1 << 2,         /* constant weights, per channel */
} qd_qdq_point;

/* A predicate on one matched node: 1 when it holds. */
typedef int (*qd_node_pred)(qd_graph *g, const qd_node *n);

enum {
    QD_STEP_OPTIONAL = 1 << 0,  /* the step may be absent */
    QD_STEP_ANY_INPUT = 1 << 1, /* the chain may enter at either input (Add, Mul) */
    QD_STEP_OTHER_ACTIVATION = 1 << 2, /* the other operand is not a constant
                                        * (a residual branch, a K or V) */
    QD_STEP_OTHER_CONST = 1 << 3,  /* the other operand is a constant (bias, weight) */
    QD_STEP_OTHER_SCALAR = 1 << 4, /* the other operand is a one-element constant */
    QD_STEP_SILU = 1 << 5, /* also accepts the fork x * Sigmoid(x) (two nodes) */
};

typedef struct qd_pattern_step {
    const qd_op *ops; /* accepted ops */
    int n_ops;
    unsigned flags;    /* QD_STEP_* */
    qd_node_pred pred; /* NULL: none */
} qd_pattern_step;

#define QD_PATTERN_MAX_STEPS 8
#define QD_PATTERN_MAX_TARGETS 4
/* Nodes of one match: every step may match two nodes (the SiLU fork). */
#define QD_MATCH_MAX_NODES (2 * QD_PATTERN_MAX_STEPS)

typedef struct qd_pattern_qdq {
    const char *target; /* "tensorrt", "uniform" */
    unsigned points;    /* qd_qdq_point bits */
} qd_pattern_qdq;

typedef struct qd_pattern {
    const char *name; /* as the report prints it: "FusedConvBNAddReLU" */
    qd_pattern_step steps[QD_PATTERN_MAX_STEPS];
    int n_steps;
    qd_pattern_qdq qdq[QD_PATTERN_MAX_TARGETS]; /* unlisted target: none */
} qd_pattern;

/* The fusion table (fusions.c) and the targets it declares QDQ points for. */
extern const qd_pattern qd_fusion_patterns[];
extern const size_t qd_fusion_pattern_count;
extern const char *const qd_fusion_targets[]; /* NULL-terminated */

/* The QDQ points of pattern p for target (0 when the row lists none). */
unsigned qd_pattern_qdq_points(const qd_pattern *p, const char *target);

typedef struct qd_match {
    const qd_pattern *pattern;
    qd_node *nodes[QD_MATCH_MAX_NODES]; /* in chain order */
    int n_nodes;
} qd_match;

typedef struct qd_match_list {
    qd_match *items; /* in topological order of their first node */
    size_t n, cap;
    const qd_pattern *patterns; /* the table matched (report order) */
    size_t n_patterns;
} qd_match_list;

/* Matches the fusion table for target ("tensorrt", "uniform"; NULL:
 * "tensorrt"). *out must be zeroed (or freed) before; free it with
 * qd_match_list_free. Errors (unknown target, out of memory) are set on g. */
qd_status qd_match_patterns(qd_graph *g, const char *target, qd_match_list *out);

/* The same over any table (tests, experiments). */
qd_status qd_match_patterns_in(qd_graph *g, const qd_pattern *patterns, size_t n_patterns,
                               qd_match_list *out);

void qd_match_list_free(qd_match_list *m);

/* Number of matches whose pattern is named `name`. */
size_t qd_match_count(const qd_match_list *m, const char *name);

/* Writes the counts as a Markdown table, one row per fused name that
 * matched, in the order of the table's rows:
 *   | Fused module | Count |
 *   |---|---:|
 *   | `FusedConvBNAddReLU` | 16 |
 */
void qd_match_report(const qd_match_list *m, FILE *out);

#endif
