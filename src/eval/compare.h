/* The comparison the seed benchmark makes (`qdeploy compare`): for each
 * variant (the float model, and one QDQ model per policy) Top-1/Top-5 on a
 * labelled validation set with the engine, latency at batch 1 (interleaved,
 * medians), the quantization error (SQNR) of every quantized tensor and the
 * per-layer latency from the engine's profile.
 *
 *   variants:  --policies "fp32,mixed,uniform"; an item may name its
 *              calibration method ("mixed:percentile"); the baseline is
 *              fp32 when listed, else the first item.
 *   quantize:  per policy a fresh copy of the model through
 *              qd_quantize_graph, calibrated on the calibration set (32
 *              batches of 32 by default), saved to out_dir as
 *              <model stem>.<variant>.qdq.onnx and evaluated from that file.
 *   SQNR:      10 log10(sum x^2 / sum (x - fq(x))^2) per quantized tensor;
 *              fq is what the QDQ pair computes (int8, zero point 0, the
 *              tensor's scale; weights per channel, clamped to +-127 as
 *              stored). Activations are observed on the float model
 *              (engine with options.unfused) over the calibration batches;
 *              weights come from the constants.
 *   layers:    per node of the float graph, the median over profiled runs
 *              (batch 1) of the time of the engine step it anchors (a
 *              Q/DQ step counts for the node its output feeds).
 * The result is written as Markdown (the seed's table) or as the JSON
 * document the HTML report embeds (schema: qdeploy_compare 1). */
#ifndef QD_EVAL_COMPARE_H
#define QD_EVAL_COMPARE_H
#include <stdio.h>

#include "data/dataset.h"
#include "eval/latency.h"
#include "eval/topk.h"
#include "ir/graph.h"
#include "passes/pattern.h"
#include "quant/quantize.h"

typedef struct qd_compare_options {
    const char *model;
    const char *data;     /* labelled validation set */
    const char *labels;   /* labels file for idx/npy/npz data; NULL: from the data */
    const char *calib;    /* calibration set (needed when a policy quantizes) */
    const char *policies; /* default "fp32,mixed,uniform" */
    int method;           /* default method for quantized variants; -1: per policy */
    int calib_batches;    /* default 32 */
    int batch_size;       /* default 32: calibration and evaluation batches */
    qd_dataset_options data_opt; /* preprocessing (labels are set from `labels`) */
    const char *out_dir;  /* QDQ models; default "out/compare" */
    int threads;          /* engine threads, 0: all cores */
    int warmup, iters;    /* latency runs; defaults 5 and 50 */
    int profile_iters;    /* profiled runs for per-layer latency; default 20, 0: none */
    int64_t limit;        /* evaluate at most this many images; 0: all */
    int sqnr;             /* 1 (default): compute SQNR */
    int progress;         /* progress bars on stderr */
    const char *target;   /* default "tensorrt" */
} qd_compare_options;

void qd_compare_options_init(qd_compare_options *opt);

typedef struct qd_compare_sqnr {
    size_t point;   /* index into the variant's q.points (first point on the tensor) */
    double sqnr_db; /* +inf when exact, NaN when not measured */
} qd_compare_sqnr;

typedef struct qd_compare_variant {
    char name[128];    /* "fp32", "mixed", "mixed:max" */
    char label[96];    /* "Baseline FP32", "qdeploy Mixed-Precision", "Uniform INT8" */
    int is_float;
    qd_quantize_policy policy;
    int method;        /* qd_observer_kind; -1 for the float variant */
    qd_topk topk;
    qd_latency latency;
    double speedup, top1_drop_pp;
    char *qdq_model;   /* path written, NULL for the float variant */
    qd_quantize_result q;
    qd_compare_sqnr *sqnr;
    size_t n_sqnr;
    double *node_ms;   /* per float-graph node, median ms per run; NaN: no step */
    double layout_ms;  /* layout conversions */
    double other_ms;   /* steps of no float-graph node */
    int profiled;
} qd_compare_variant;

typedef struct qd_compare_result {
    qd_compare_options opt;  /* as run (strings borrowed from the caller) */
    qd_compare_variant *variants;
    size_t n_variants;
    size_t baseline;
    qd_graph *graph;          /* the float model as quantization sees it */
    qd_match_list matches;    /* its fusions (target tensorrt) */
    qd_fusion_count *fusions;
    size_t n_fusions;
    int *node_group;          /* per node: the index of its match, or -1 */
    int64_t data_count;       /* images evaluated */
    const char *data_kind;
    int64_t calib_images;
    char machine[256];
} qd_compare_result;

/* Runs the comparison. *r must be zeroed; free it with qd_compare_result_free
 * (also after a failure). Errors name the file, node or variant. */
qd_status qd_compare_run(const qd_compare_options *opt, qd_compare_result *r, qd_error *err);
void qd_compare_result_free(qd_compare_result *r);

/* The seed's table, the summary per policy and the fusion table (Markdown). */
void qd_compare_write_markdown(const qd_compare_result *r, FILE *out);
/* The JSON document (schema qdeploy_compare 1, see the README). */
void qd_compare_write_json(const qd_compare_result *r, FILE *out);

/* The graph prepared for the engine the way `qdeploy run` prepares it:
 * shapes, simplify, canonicalize. Errors name the file. */
qd_status qd_compare_load_for_engine(const char *path, qd_graph **out, qd_error *err);

#endif
