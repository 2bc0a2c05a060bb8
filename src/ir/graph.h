/* The graph IR: values (tensor edges), nodes, attributes, the graph.
 *
 * Every value has one producer (a node output, or none for graph inputs and
 * constants) and a use list, so passes can rewrite without searching. Nodes
 * are kept in topological order in g->nodes after qd_graph_toposort().
 */
#ifndef QD_IR_GRAPH_H
#define QD_IR_GRAPH_H
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "base/strmap.h"
#include "ir/ops.h"
#include "ir/tensor.h"
#include "qdeploy.h"

typedef struct qd_node qd_node;
typedef struct qd_value qd_value;

typedef struct qd_use {
    qd_node *node;
    int input; /* index into node->inputs */
} qd_use;

struct qd_value {
    char *name;
    qd_dtype dtype;                /* QD_DT_UNDEFINED until known */
    int rank;                      /* -1 while unknown */
    int64_t dims[QD_MAX_RANK];     /* -1: unknown or symbolic */
    char *dim_params[QD_MAX_RANK]; /* name of a symbolic dim ("batch"), else NULL */
    qd_tensor *konst;              /* constant data: initializer or folded value */
    int is_initializer;            /* listed in the model's initializers */
    int is_input;                  /* a graph input (not an initializer) */
    int is_output;                 /* a graph output */
    qd_node *producer;             /* NULL for inputs and initializers */
    int producer_output;
    qd_use *uses;
    size_t n_uses, uses_cap;
    char *doc_string;
    int id; /* index in g->values */
};

/* ONNX AttributeProto.AttributeType numbering. */
typedef enum qd_attr_type {
    QD_ATTR_UNDEFINED = 0,
    QD_ATTR_FLOAT = 1,
    QD_ATTR_INT = 2,
    QD_ATTR_STRING = 3,
    QD_ATTR_TENSOR = 4,
    QD_ATTR_GRAPH = 5,
    QD_ATTR_FLOATS = 6,
    QD_ATTR_INTS = 7,
    QD_ATTR_STRINGS = 8,
    QD_ATTR_TENSORS = 9,
    QD_ATTR_GRAPHS = 10,
    QD_ATTR_SPARSE_TENSOR = 11,
    QD_ATTR_SPARSE_TENSORS = 12,
    QD_ATTR_TYPE_PROTO = 13,
    QD_ATTR_TYPE_PROTOS = 14,
} qd_attr_type;

const char *qd_attr_type_name(qd_attr_type type);

typedef struct qd_attr {
    char *name;
    qd_attr_type type;
    float f;
    int64_t i;
    char *s; /* bytes; s_len may include NULs; always NUL-terminated */
    size_t s_len;
    qd_tensor *t;
    float *floats;
    int64_t *ints;
    char **strings;
    size_t n; /* element count of floats/ints/strings */
    /* Kinds the IR does not model (graphs, sparse tensors, type protos,
     * tensor lists) are kept as the packed AttributeProto and written back
     * unchanged. */
    void *raw;
    size_t raw_len;
} qd_attr;

struct qd_node {
    char *name;
    char *op_type;
    char *domain; /* "" for the default ONNX domain */
    qd_op op;     /* QD_OP_UNKNOWN for ops outside ops.def */
    qd_value **inputs; /* NULL entry: omitted optional input */
    int n_inputs;
    qd_value **outputs; /* NULL entry: omitted optional output */
    int n_outputs;
    qd_attr *attrs;
    int n_attrs;
    char *doc_string;
    int id; /* index in g->nodes */
};

typedef struct qd_opset {
    char *domain;
    int64_t version;
} qd_opset;

typedef struct qd_mapping {
    void *addr;
    size_t len;
} qd_mapping;

struct qd_graph {
    qd_error err;
    char *path;     /* the file it was loaded from, or NULL */
    char *base_dir; /* where external data is resolved, or NULL */

    int64_t ir_version;
    int64_t model_version;
    char *producer_name, *producer_version, *model_domain, *model_doc;
    char *name, *doc_string;
    qd_opset *opsets;
    size_t n_opsets;
    int64_t opset; /* version of the default domain ("" / "ai.onnx") */
    char **meta_keys, **meta_values;
    size_t n_meta;

    qd_value **values;
    size_t n_values, values_cap;
    qd_strmap value_by_name;

    qd_node **nodes;
    size_t n_nodes, nodes_cap;

    qd_value **inputs; /* graph inputs, initializers excluded */
    size_t n_inputs, inputs_cap;
    qd_value **outputs;
    size_t n_outputs, outputs_cap;
    qd_value **initializers; /* in file order */
    size_t n_initializers, initializers_cap;

    qd_mapping *mappings; /* files mapped for external data, unmapped on delete */
    size_t n_mappings, mappings_cap;
    void *file_buffer;    /* the model file's own mapping or buffer */
    size_t file_size;
    int file_mapped;

    int unique_counter; /* for generated names */
};

qd_graph *qd_graph_new(void);

/* Sets g->err and returns status (printf-style message). */
qd_status qd_graph_fail(qd_graph *g, qd_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- values ---- */
qd_value *qd_graph_find_value(const qd_graph *g, const char *name);
/* Creates a value named `name`, or a fresh unique name derived from `hint`
 * when name is NULL. Fails (NULL, error set) if the name is taken. */
qd_value *qd_graph_new_value(qd_graph *g, const char *name, const char *hint);
/* Adds an initializer value named from `hint` (made unique) holding t (the
 * graph takes t, also on failure). NULL on out of memory. */
qd_value *qd_graph_add_initializer(qd_graph *g, const char *hint, qd_tensor *t);
/* Lists v as the graph's next input (is_input) or output (is_output):
 * QD_OK, or the out-of-memory error set on the graph. */
qd_status qd_graph_add_input(qd_graph *g, qd_value *v);
qd_status qd_graph_add_output(qd_graph *g, qd_value *v);
/* Makes v a constant with data t (the graph takes t). */
void qd_value_set_const(qd_value *v, qd_tensor *t);
/* Copies the shape of t onto v. */
void qd_value_set_shape(qd_value *v, qd_dtype dtype, int rank, const int64_t *dims);
/* 1 when rank and every dimension are known. */
int qd_value_shape_known(const qd_value *v);
int64_t qd_value_numel(const qd_value *v); /* -1 when unknown */
/* Writes "1x3x224x224" / "batchx3x224x224" / "?" into buf. */
const char *qd_value_shape_str(const qd_value *v, char *buf, size_t size);

/* ---- nodes ---- */
/* Appends a node. inputs/outputs entries may be NULL (omitted). Updates use
 * lists and producers. name may be NULL (a unique one is made). */
qd_node *qd_graph_add_node(qd_graph *g, const char *op_type, const char *domain, const char *name,
                           qd_value *const *inputs, int n_inputs, qd_value *const *outputs,
                           int n_outputs);
/* Unlinks and frees the node; its output values stay (without producer). */
void qd_graph_remove_node(qd_graph *g, qd_node *n);
void qd_node_set_input(qd_node *n, int index, qd_value *v);
/* Points every use of `from` at `to` (graph outputs included). */
void qd_graph_replace_uses(qd_graph *g, qd_value *from, qd_value *to);
/* Removes values with no producer, no uses, not an input/output/initializer. */
void qd_graph_prune_values(qd_graph *g);

/* Orders g->nodes topologically (stable). Cycles are an error naming a node. */
qd_status qd_graph_toposort(qd_graph *g);

/* ---- attributes ---- */
const qd_attr *qd_node_attr(const qd_node *n, const char *name);
/* Typed getters: *out = default when absent; an attribute of another type is
 * an error naming the node and the attribute. */
qd_status qd_node_attr_int(qd_graph *g, const qd_node *n, const char *name, int64_t def,
                           int64_t *out);
qd_status qd_node_attr_float(qd_graph *g, const qd_node *n, const char *name, float def,
                             float *out);
qd_status qd_node_attr_string(qd_graph *g, const qd_node *n, const char *name, const char *def,
                              const char **out);
/* *out = NULL, *count = 0 when absent. */
qd_status qd_node_attr_ints(qd_graph *g, const qd_node *n, const char *name,
                            const int64_t **out, size_t *count);
qd_status qd_node_attr_floats(qd_graph *g, const qd_node *n, const char *name,
                              const float **out, size_t *count);
qd_status qd_node_attr_tensor(qd_graph *g, const qd_node *n, const char *name,
                              const qd_tensor **out);
/* Adds (or replaces) attributes. Return 0, or -1 on out of memory. */
int qd_node_set_attr_int(qd_node *n, const char *name, int64_t v);
int qd_node_set_attr_float(qd_node *n, const char *name, float v);
int qd_node_set_attr_string(qd_node *n, const char *name, const char *v);
int qd_node_set_attr_ints(qd_node *n, const char *name, const int64_t *v, size_t count);
int qd_node_set_attr_floats(qd_node *n, const char *name, const float *v, size_t count);
int qd_node_set_attr_tensor(qd_node *n, const char *name, qd_tensor *t); /* takes t */
void qd_attr_clear(qd_attr *a);

#endif
