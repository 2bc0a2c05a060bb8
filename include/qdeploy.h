/* qdeploy: make ONNX vision models deployment-ready in INT8.
 *
 * This header is the contract of libqdeploy. Handles are opaque; every
 * fallible call returns a qd_status and keeps a one-line message (what and
 * where: file, node, tensor) on the handle, readable with qd_graph_error().
 * Delete functions accept NULL and half-built objects.
 */
#ifndef QDEPLOY_H
#define QDEPLOY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QDEPLOY_VERSION "0.1.0"

typedef enum qd_status {
    QD_OK = 0,
    QD_STATUS_IO_ERROR,          /* file missing, unreadable, not writable */
    QD_STATUS_INVALID_MODEL,     /* not ONNX, corrupt, inconsistent graph */
    QD_STATUS_UNSUPPORTED,       /* valid ONNX that qdeploy cannot handle */
    QD_STATUS_INVALID_ARGUMENT,  /* caller passed something wrong */
    QD_STATUS_SHAPE_ERROR,       /* shapes or types do not agree */
    QD_STATUS_OUT_OF_MEMORY,
} qd_status;

/* A short name for a status ("invalid model", ...). */
const char *qd_status_name(qd_status status);

/* Allocator hook (SQLite style): every allocation of the library goes through
 * these, so tests can inject out-of-memory faults. Pass NULLs to restore the
 * C library's. Not thread-safe: set it before any other call. */
typedef struct qd_allocator {
    void *(*malloc_fn)(size_t size);
    void *(*realloc_fn)(void *ptr, size_t size);
    void (*free_fn)(void *ptr);
} qd_allocator;
void qd_set_allocator(const qd_allocator *allocator);

/* ---- graph: load, check, save ------------------------------------------ */

typedef struct qd_graph qd_graph;

/* Loads an ONNX model. On success *out is the graph. On failure *out is a
 * graph handle that holds only the error message (or NULL when even that
 * could not be allocated); delete it with qd_graph_delete either way. */
qd_status qd_graph_load(const char *path, qd_graph **out);

/* Loads from memory; base_dir resolves external data (NULL: none allowed). */
qd_status qd_graph_load_buffer(const void *data, size_t size, const char *name,
                               const char *base_dir, qd_graph **out);

void qd_graph_delete(qd_graph *graph);

/* The message of the last failed call on this graph ("" if none). */
const char *qd_graph_error(const qd_graph *graph);

/* Fixes the symbolic dimension `name` (e.g. "batch") to `value`. Use "*" to
 * bind every symbolic dimension of the graph inputs. Re-run shape inference
 * afterwards. */
qd_status qd_graph_bind_dim(qd_graph *graph, const char *name, int64_t value);

/* Infers every value's dtype and shape, folding the shape-computation
 * subgraphs (Shape, Gather, Concat, ...) so a fixed input shape yields static
 * shapes everywhere. */
qd_status qd_graph_infer_shapes(qd_graph *graph);

/* Checks the graph: dangling inputs, cycles, missing initializers, dtype
 * mismatches, unknown ops. The error names the node. */
qd_status qd_graph_verify(qd_graph *graph);

/* Removes what no later stage needs: folded constants become initializers,
 * Identity and inference Dropout go, BatchNormalization after a Conv is
 * folded into the Conv. Run after qd_graph_infer_shapes. Output names stay. */
qd_status qd_graph_simplify(qd_graph *graph);

/* Rewrites decomposed forms into the single ops they compute: the Erf form
 * of GELU into Gelu, the ReduceMean/Sub/Pow/Sqrt/Div form of LayerNorm into
 * LayerNormalization. For the engine and the pattern matcher; Gelu is an
 * ONNX op from opset 20 only, so the result is not for other tools. In a
 * QDQ model, a per-tensor QuantizeLinear after MaxPool, Reshape, Transpose
 * and other ops that commute with it moves above them (exact), so they run
 * on int8 as TensorRT runs them. */
qd_status qd_graph_canonicalize(qd_graph *graph);

/* Writes the graph as ONNX, atomically: a temporary file in the same folder,
 * then a rename. Refuses to overwrite the file the graph was loaded from. */
qd_status qd_graph_save(qd_graph *graph, const char *path);

/* Writes the `qdeploy inspect` summary: inputs/outputs, opset, op histogram,
 * parameters, MACs by op type, largest tensors. json != 0 writes JSON. */
qd_status qd_graph_inspect(qd_graph *graph, FILE *out, int json);

/* ---- engine: run a graph on the CPU ------------------------------------ */

typedef struct qd_engine qd_engine;

/* Element types, numbered as ONNX's TensorProto.DataType. */
enum {
    QD_FLOAT32 = 1, QD_UINT8 = 2, QD_INT8 = 3, QD_INT32 = 6, QD_INT64 = 7, QD_BOOL = 9,
    QD_FLOAT16 = 10, QD_FLOAT64 = 11, QD_BFLOAT16 = 16
};

typedef struct qd_engine_options {
    int threads;    /* 0: all cores */
    int reference;  /* 1: portable reference kernels only (no oneDNN, no SIMD) */
    int64_t batch;  /* value for symbolic input dims; 0 means 1 */
    int profile;    /* 1: time every step (qd_engine_profile) */
    int unfused;    /* 1: no fused steps, so every value exists in memory and
                       an observer sees it (calibration) */
    int qdq_as_written; /* 1: run QDQ models as written (float DequantizeLinear
                           -> op -> QuantizeLinear), no INT8 kernels */
    int high_precision_bf16; /* 1: float Conv/MatMul/Gemm with a constant
                                weight compute in bfloat16 (weights and input
                                rounded to bf16, accumulation and output in
                                float32): the CPU's counterpart of TensorRT's
                                FP16. Needs AVX512-BF16; else creation fails. */
} qd_engine_options;

/* Plans the graph for execution: binds symbolic dims, infers shapes, picks a
 * kernel per node, plans activation memory, packs weights. The engine
 * borrows the graph: it must outlive the engine and not change meanwhile.
 * On failure *out holds the error (qd_engine_error) or is NULL on OOM. */
qd_status qd_engine_create(qd_graph *graph, const qd_engine_options *options, qd_engine **out);
void qd_engine_delete(qd_engine *engine);
const char *qd_engine_error(const qd_engine *engine);

int qd_engine_input_count(const qd_engine *engine);
int qd_engine_output_count(const qd_engine *engine);

typedef struct qd_tensor_info {
    const char *name;
    int dtype;              /* QD_FLOAT32, ... */
    int rank;
    const int64_t *dims;
    void *data;             /* outputs: valid until the next run */
    size_t nbytes;
    int channels_last;      /* 4-D data stored N,H,W,C (dims stay N,C,H,W) */
} qd_tensor_info;

/* Shape and type the engine expects (inputs) or produced (outputs). */
qd_status qd_engine_input_info(qd_engine *engine, int index, qd_tensor_info *info);
qd_status qd_engine_output_info(qd_engine *engine, int index, qd_tensor_info *info);

/* Copies data in for the input `name`; dtype and shape must match the plan. */
qd_status qd_engine_set_input(qd_engine *engine, const char *name, int dtype, int rank,
                              const int64_t *dims, const void *data);
qd_status qd_engine_run(qd_engine *engine);

/* Called during qd_engine_run with every value a step wrote (not constants
 * or graph inputs), right after the step: the data is valid only during the
 * call. For calibration: observers that need every value want the engine
 * created with options.unfused. NULL removes the observer. */
typedef void (*qd_value_observer)(void *user, const qd_tensor_info *value);
void qd_engine_set_observer(qd_engine *engine, qd_value_observer fn, void *user);

/* What the plan runs: steps in all, INT8 kernels (lowered QDQ groups; how
 * many write int8 for the next layer), the Quantize/Dequantize steps left
 * (precision changes: the CPU's "reformat" layers) and layout conversions. */
typedef struct qd_engine_stats {
    int steps;
    int int8_steps;
    int int8_requantized;
    int quantize_steps;
    int dequantize_steps;
    int layout_conversions;
} qd_engine_stats;
void qd_engine_get_stats(const qd_engine *engine, qd_engine_stats *stats);

/* Per-step timing of the last runs when options.profile was set: writes a
 * table (op type totals, or per node when per_node) to out. */
qd_status qd_engine_profile(qd_engine *engine, FILE *out, int per_node);
/* Forgets the timings so far (e.g. after warm-up runs). */
void qd_engine_profile_reset(qd_engine *engine);

/* One timed step of the profile: the anchor node (NULL name for the engine's
 * own layout conversions), what it ran ("Conv+Relu") and with which kernel,
 * and its mean time per run. fused_nodes lists the other graph nodes the step
 * ran, n_fused of them. */
typedef struct qd_profile_entry {
    const char *node;      /* anchor node name; NULL: a layout conversion */
    const char *op;        /* "Conv+Add+Relu", "Reorder(layout)" */
    const char *kernel;    /* "dnnl", "x86", "ref", ... */
    double ms_per_run;
    const char *const *fused_nodes;
    int n_fused;
} qd_profile_entry;

/* Number of timed steps (0 without options.profile), and entry i of them in
 * execution order. Strings stay valid while the engine lives. */
int qd_engine_profile_count(const qd_engine *engine);
qd_status qd_engine_profile_entry(const qd_engine *engine, int index, qd_profile_entry *entry);

#ifdef __cplusplus
}
#endif
#endif /* QDEPLOY_H */
