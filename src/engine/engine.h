/* The execution plan: one step per node (or per fused group), activation
 * buffers placed in one arena by liveness. */
#ifndef QD_ENGINE_ENGINE_H
#define QD_ENGINE_ENGINE_H

#include "engine/kernel.h"
#include "ir/graph.h"
#include "qdeploy.h"

/* Where a value's data lives at run time. */
typedef enum qd_slot_kind {
    QD_SLOT_NONE = 0,
    QD_SLOT_CONST,   /* v->konst->data */
    QD_SLOT_ARENA,   /* arena + offset */
    QD_SLOT_DYNAMIC, /* allocated during the run (shape known only then) */
} qd_slot_kind;

typedef struct qd_slot {
    qd_slot_kind kind;
    size_t offset;  /* ARENA: byte offset */
    size_t size;    /* bytes */
    int alias_of;   /* value id whose buffer this one shares, or -1 */
    qd_tensor view; /* dtype/layout/rank/dims/data of the current run */
    int first_step, last_step;
    qd_value *value;  /* the graph value it holds; NULL for the engine's own
                         (layout conversions) */
    int converted[2]; /* slot holding this one's data in layout 0 (plain) /
                         1 (NHWC), made by a reorder step; -1: none yet */
} qd_slot;

/* A kernel's optional lifecycle around its compute function. */
typedef struct qd_kernel_impl {
    const char *name; /* "ref", "dnnl", ... shown by the profiler */
    qd_kernel_fn run;
    /* Builds state once at plan time (may be NULL). */
    qd_status (*prepare)(const qd_kernel_args *a, void **state);
    void (*release)(void *state);
    /* 1 when the step's output may share the buffer of its input `input`
     * (a residual accumulated in place), given the prepared state. NULL: no. */
    int (*in_place_ok)(const void *state, int input);
} qd_kernel_impl;

#define QD_MAX_FUSED 4
#define QD_STEP_MAX_INPUTS 64
#define QD_STEP_MAX_OUTPUTS 16

typedef struct qd_step {
    qd_node *node;                     /* the anchor: Conv, MatMul, ... or any op;
                                          NULL for a layout conversion */
    qd_node *fused[QD_MAX_FUSED];      /* nodes run inside this step, in order */
    int n_fused;
    /* What the step reads and writes: the anchor's inputs, then each fused
     * node's other operand; the last node's outputs. NULL: omitted. */
    qd_value *inputs[QD_STEP_MAX_INPUTS];
    int n_inputs;
    qd_value *outputs[QD_STEP_MAX_OUTPUTS];
    int n_outputs;
    /* The slots actually read and written (usually the values' own; a
     * layout conversion redirects an input to a converted copy). -1: none. */
    int in_slot[QD_STEP_MAX_INPUTS];
    int out_slot[QD_STEP_MAX_OUTPUTS];
    int physical;   /* elementwise on channels-last data: kernels see the
                       NHWC tensors as plain N,H,W,C (see layout_plan.c) */
    int view_alias; /* output 0 shares input 0's buffer: nothing runs */
    qd_kernel_impl impl;
    void *state;
    int dynamic; /* output shapes computed at run time */
    /* A node after the anchor that makes an operand of a fused Add: the
     * step runs after that node's step (see plan_steps). NULL: none. */
    const qd_node *wait_for;
    int lowered; /* an INT8 kernel of a QDQ group: quant holds its scales */
    qd_quant_params quant;
    char label[96]; /* "Conv+Add+Relu", for the profile */
    const char *fused_names[QD_MAX_FUSED]; /* the fused nodes' names, for the profile */
    double total_ms;
    int64_t calls;
} qd_step;

struct qd_engine {
    qd_error err;
    qd_graph *graph;
    qd_engine_options opt;
    qd_step *steps;
    size_t n_steps;
    qd_slot *slots; /* one per graph value (by value id), then the engine's own */
    size_t n_slots, slots_cap;
    void *arena;
    size_t arena_size;
    void **dynamic_buffers; /* freed after each run */
    size_t n_dynamic, dynamic_cap;
    int ran;
    qd_value_observer observer;
    void *observer_user;
};

/* Picks the best kernel for a node: a fast one unless opt.reference, else
 * the reference kernel. Returns 0 when the node has no kernel at all. */
int qd_engine_select_kernel(const qd_engine *e, const qd_node *n, qd_kernel_impl *impl);

/* With a fast kernel chosen for step->node, absorbs the nodes that follow it
 * and that the kernel can run as post-ops (activations, a residual Add).
 * `taken` marks nodes (by id) already absorbed. */
void qd_engine_fuse_step(const qd_engine *e, qd_step *step, unsigned char *taken);

/* Chooses the memory layout of every activation: channels-last between
 * the oneDNN convs, plain elsewhere, with conversion steps inserted where a
 * consumer needs the other layout and free views where a Transpose only
 * renames dims (see layout_plan.c). */
qd_status qd_engine_plan_layouts(qd_engine *e);

/* After the layout plan: channels-last float depthwise Conv steps move to
 * the own x86 kernel, and one followed by a permute view and a
 * LayerNormalization over its channels (ConvNeXt) becomes one step with
 * them, writing the LayerNorm's output (see dwconv_fusion.c). */
void qd_engine_fuse_dwconv(qd_engine *e);

/* Converts between plain NCHW and channels-last NHWC (a->inputs[0] to
 * a->outputs[0], layouts read from the tensors). */
qd_status qd_reorder_layout(const qd_kernel_args *a);

/* Places every ARENA slot: offsets such that values alive at the same step
 * never overlap. Returns the arena size. */
size_t qd_memory_plan(qd_slot *slots, size_t n_slots, size_t alignment);

#endif
