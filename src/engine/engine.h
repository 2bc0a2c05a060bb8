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
    qd_tensor view; /* dtype/rank/dims/data of the current run */
    int first_step, last_step;
} qd_slot;

/* A kernel's optional lifecycle around its compute function. */
typedef struct qd_kernel_impl {
    const char *name; /* "ref", "dnnl", ... shown by the profiler */
    qd_kernel_fn run;
    /* Builds state once at plan time (may be NULL). */
    qd_status (*prepare)(const qd_kernel_args *a, void **state);
    void (*release)(void *state);
} qd_kernel_impl;

#define QD_MAX_FUSED 4
#define QD_STEP_MAX_INPUTS 64
#define QD_STEP_MAX_OUTPUTS 16

typedef struct qd_step {
    qd_node *node;                     /* the anchor: Conv, MatMul, ... or any op */
    qd_node *fused[QD_MAX_FUSED];      /* nodes run inside this step, in order */
    int n_fused;
    /* What the step reads and writes: the anchor's inputs, then each fused
     * node's other operand; the last node's outputs. NULL: omitted. */
    qd_value *inputs[QD_STEP_MAX_INPUTS];
    int n_inputs;
    qd_value *outputs[QD_STEP_MAX_OUTPUTS];
    int n_outputs;
    qd_kernel_impl impl;
    void *state;
    int dynamic; /* output shapes computed at run time */
    double total_ms;
    int64_t calls;
} qd_step;

struct qd_engine {
    qd_error err;
    qd_graph *graph;
    qd_engine_options opt;
    qd_step *steps;
    size_t n_steps;
    qd_slot *slots; /* one per graph value, by value id */
    size_t n_slots;
    void *arena;
    size_t arena_size;
    void **dynamic_buffers; /* freed after each run */
    size_t n_dynamic, dynamic_cap;
    int ran;
};

/* Picks the best kernel for a node: a fast one unless opt.reference, else
 * the reference kernel. Returns 0 when the node has no kernel at all. */
int qd_engine_select_kernel(const qd_engine *e, const qd_node *n, qd_kernel_impl *impl);

/* With a fast kernel chosen for step->node, absorbs the nodes that follow it
 * and that the kernel can run as post-ops (activations, a residual Add).
 * `taken` marks nodes (by id) already absorbed. */
void qd_engine_fuse_step(const qd_engine *e, qd_step *step, unsigned char *taken);

/* Places every ARENA slot: offsets such that values alive at the same step
 * never overlap. Returns the arena size. */
size_t qd_memory_plan(qd_slot *slots, size_t n_slots, size_t alignment);

#endif
