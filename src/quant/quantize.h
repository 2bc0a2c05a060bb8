/* The quantization pipeline as one call (what `qdeploy quantize` and
 * `qdeploy compare` run):
 *
 *   infer shapes -> simplify -> [conversions] -> match the fusion table
 *   -> place QDQ points for the target and policy (or read a plan file)
 *   -> --include / --exclude -> calibrate the activations on a dataset with
 *   the engine -> insert Quantize/DequantizeLinear.
 *
 * Loading and saving are the caller's. The result describes what was done
 * by name (nodes, tensors), so it stays readable after the graph changes:
 * the fusions, every QDQ point with its amax and scale, the QDQ pair counts
 * by kind, and the nodes left in high precision with the reason.
 *
 * The plan file (--plan, written by --dump-plan / qd_quantize_plan_write):
 *   {"points": [{"node": "/layer1/Conv", "input": 0, "kind": "activation",
 *                "amax": 1.5, "scale": 0.0118, ...},
 *               {"node": "/layer1/Conv", "input": 1, "kind": "weight", "axis": 0}, ...]}
 * Required per point: node (a node name of the simplified graph), input
 * (its input index), kind ("activation" or "weight"). Optional: axis
 * (weights; default: the output-channel axis of the op), amax or scale
 * (activations: used as given, amax = scale * 127; calibration fills the
 * points that have neither), op and tensor (checked against the graph, so
 * a plan made for another model fails), module and why (kept for the
 * report). Weight scales always come from the weights: amax/scale on a
 * weight point are ignored. Other keys are ignored. */
#ifndef QD_QUANT_QUANTIZE_H
#define QD_QUANT_QUANTIZE_H
#include <stdio.h>

#include "data/dataset.h"
#include "ir/graph.h"
#include "passes/passes.h"
#include "passes/pattern.h"
#include "quant/calibrate.h"
#include "quant/placement.h"
#include "report/json.h"

typedef enum qd_quantize_policy {
    QD_POLICY_MIXED = 0,   /* pattern-aware: the target's QDQ points */
    QD_POLICY_UNIFORM = 1, /* every Conv and Linear (ModelOpt INT8_DEFAULT_CFG) */
} qd_quantize_policy;

/* "mixed", "uniform". */
const char *qd_quantize_policy_name(qd_quantize_policy policy);
/* 0 and *out set, or -1 for an unknown name. */
int qd_quantize_policy_parse(const char *name, qd_quantize_policy *out);

typedef struct qd_quantize_options {
    const char *target;        /* "tensorrt" (default when NULL) */
    qd_quantize_policy policy; /* default mixed */
    int method;                /* activation observer (qd_observer_kind), or -1 (default):
                                  entropy for mixed, max for uniform */
    int input_max;             /* 1 (default): the model's input is calibrated with max
                                  whatever the method: its range is the preprocessing's,
                                  and histogram methods clip it at the spike of background
                                  pixels (Fashion-MNIST: amax 0.81 of 2.02 with entropy) */
    qd_calibration_options calib; /* batches, batch_size, threads, progress
                                     (calib.method is set from `method`) */
    const char *include;       /* POSIX extended regex on node names and op types:
                                  also quantize matching Conv/Gemm/MatMul; NULL: none */
    const char *exclude;       /* the same: keep matching nodes in high precision */
    const char *plan_path;     /* a plan file replacing placement; NULL: none */
    const char *calib_path;    /* opened with `data` when no dataset is passed */
    qd_dataset_options data;
} qd_quantize_options;

/* Defaults: tensorrt, mixed, method -1, calibration defaults (32 x 32). */
void qd_quantize_options_init(qd_quantize_options *opt);

/* Why a node stays in high precision. */
typedef enum qd_hp_reason {
    QD_HP_EXCLUDED = 0, /* --exclude matched it */
    QD_HP_DEPTHWISE,    /* depthwise conv: memory-bound */
    QD_HP_GLOBAL_POOL,  /* global average pool */
    QD_HP_LAYERNORM,
    QD_HP_SOFTMAX,
    QD_HP_GELU,
    QD_HP_SMALL_LINEAR, /* Linear with K*N/(K+N) < QD_LINEAR_MIN_INTENSITY */
    QD_HP_NOT_IN_PLAN,  /* the plan file has no point for it */
    QD_HP_POLICY,       /* matched, but the policy declares no QDQ for the module */
    QD_HP_NO_PATTERN,   /* a Conv/Gemm/MatMul no fusion pattern matched */
    QD_HP_REASON_COUNT
} qd_hp_reason;

/* "depthwise conv", "global average pool", ... as the reports print them. */
const char *qd_hp_reason_name(qd_hp_reason reason);
/* A short key for JSON ("depthwise", "global_pool", ...). */
const char *qd_hp_reason_key(qd_hp_reason reason);

typedef struct qd_hp_node {
    char *node, *op;
    qd_hp_reason reason;
    const char *module; /* the fused module it belongs to, or NULL */
} qd_hp_node;

/* One QDQ point of the calibrated plan, by name. */
typedef struct qd_quant_point {
    char *node, *op; /* the consumer */
    int input;
    char *tensor;       /* the float tensor quantized */
    qd_plan_kind kind;
    int axis;           /* weights: channel axis; activations: -1 */
    const char *module; /* the fused module that asked for it ("--include", "plan file") */
    const char *why;    /* "input", "residual input", "weight" */
    int given;          /* activations: amax came from the plan file */
    float amax;         /* activations: clip value; weights: max over channels */
    float scale;        /* amax / 127 (weights: of the largest channel) */
    int channels;       /* weights: channel count; activations 1 */
    float *channel_scale; /* weights: per channel scales (channels of them); else NULL */
} qd_quant_point;

/* Fusion table counts: one row per fused name that matched. */
typedef struct qd_fusion_count {
    const char *module;
    int count;
} qd_fusion_count;

typedef struct qd_quantize_result {
    const char *target;        /* the pattern target used ("tensorrt", "uniform") */
    qd_quantize_policy policy;
    int method;                /* qd_observer_kind used for activations */
    qd_conversion_counts conversions; /* conversions for fusion applied by this call */
    qd_match_list matches;     /* the fusions (nodes point into the graph) */
    qd_fusion_count *fusions;
    size_t n_fusions;
    qd_quant_point *points;    /* in plan order */
    size_t n_points;
    int pairs_activation;      /* QDQ points on activation inputs (residuals not included) */
    int pairs_residual;        /* on the residual operand of a fused Add */
    int pairs_weight;          /* per-channel weights */
    qd_hp_node *high;          /* nodes left in high precision, in graph order */
    size_t n_high;
    int high_by_reason[QD_HP_REASON_COUNT];
    int64_t calib_images;      /* images calibration ran on (0: all amax given) */
} qd_quantize_result;

void qd_quantize_result_free(qd_quantize_result *r);

/* The fusion table of matches: one row per fused name that matched, in the
 * table's order (*out allocated with qd_malloc, *n rows). */
qd_status qd_quantize_count_fusions(const qd_match_list *m, qd_fusion_count **out, size_t *n,
                                    qd_error *err);

/* The graph as quantization sees it: shapes inferred, simplified (BN
 * folded), and converted for fusion. qd_quantize_graph runs this first;
 * callers that want the float model the report describes run it alone. */
qd_status qd_quantize_prepare(qd_graph *g, qd_error *err);

/* Runs the pipeline on g (loaded, not yet prepared: preparing twice is
 * harmless) and leaves the QDQ graph in g. calib may be NULL: then
 * opt->calib_path is opened (and closed) here, or, when every activation
 * amax comes from the plan file, no data is needed. *result must be zeroed;
 * free it with qd_quantize_result_free (also after a failure). Errors name
 * the model's node/tensor, the plan file and entry, or the dataset. */
qd_status qd_quantize_graph(qd_graph *g, qd_dataset *calib, const qd_quantize_options *opt,
                            qd_quantize_result *result, qd_error *err);

/* Reads a plan file for g (prepared) into plan (zeroed before; free with
 * qd_plan_free). given[i] (an array the call allocates with qd_malloc, one
 * per point; may be NULL to not ask) is 1 when point i's amax came from the
 * file. Errors name the file and the entry ("plan.json: points[3]: ..."). */
qd_status qd_quantize_plan_read(qd_graph *g, const char *path, qd_qdq_plan *plan, int **given,
                                qd_error *err);

/* Writes the calibrated plan (the --dump-plan format, which --plan reads). */
qd_status qd_quantize_plan_write(const qd_quantize_result *r, FILE *out);

/* The transformation report as JSON (--json): target, policy, method,
 * fusions, QDQ pair counts, nodes left in high precision (each with its
 * reason, and counts by reason), and every quantized tensor with its amax
 * and scale. model and output are the file names to record (may be NULL). */
/* Pieces of the --json report that `qdeploy compare` writes too, each one
 * JSON value at j's current key: the fusion table (array), the QDQ pair
 * counts and the high-precision node counts by reason (objects). */
void qd_quantize_json_fusions(qd_json *j, const qd_fusion_count *f, size_t n);
void qd_quantize_json_pairs(qd_json *j, const qd_quantize_result *r);
void qd_quantize_json_high_counts(qd_json *j, const qd_quantize_result *r);

void qd_quantize_report_json(const qd_quantize_result *r, const char *model, const char *output,
                             FILE *out);

/* The same in short, as text (Markdown tables): fusion table, QDQ pair
 * counts, high-precision nodes by reason, scales summary. */
void qd_quantize_report_text(const qd_quantize_result *r, FILE *out);

#endif
