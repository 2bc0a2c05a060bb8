/* Shape and dtype inference: one function per row family of ops.def.
 *
 * A shape function reads its node's inputs (dtype, rank, dims, and konst
 * where an input is constant, e.g. Reshape's shape) and sets its outputs with
 * qd_value_set_shape(). Unknown input dims give unknown output dims, never an
 * error; inconsistent shapes are an error naming the node (qd_graph_fail). A
 * symbolic input dim (dim_params[i]) that passes through unchanged keeps its
 * name on the output. */
#ifndef QD_IR_SHAPE_H
#define QD_IR_SHAPE_H

#include "ir/graph.h"

typedef qd_status (*qd_shape_fn)(qd_graph *g, qd_node *n);

#define QD_OP(id, onnx_name, since, shape_fn) qd_status qd_shape_##shape_fn(qd_graph *g, qd_node *n);
#include "ir/ops.def"
#undef QD_OP

/* The shape function of op (NULL for QD_OP_UNKNOWN). */
qd_shape_fn qd_shape_fn_of(qd_op op);

/* Computes the outputs of a node whose inputs are all constant, for the ops
 * that make up shape-computation subgraphs (Shape, Gather, Concat, Unsqueeze,
 * Squeeze, Slice, Cast, Add/Sub/Mul/Div, Equal, Where, ConstantOfShape,
 * Expand, Range, Reshape, ...) and small tensors (at most
 * QD_FOLD_MAX_ELEMENTS elements per output). Shape is folded as soon as its
 * input shape is known, constant or not. Sets outputs' konst and returns 1
 * when it folded, 0 when the node is not foldable, -1 on error (g->err set). */
#define QD_FOLD_MAX_ELEMENTS 65536
int qd_fold_node(qd_graph *g, qd_node *n);

/* Helpers shared by shape functions. */
/* Numpy broadcast of a and b into out; -1 when incompatible. */
int qd_broadcast_shapes(int ra, const int64_t *da, int rb, const int64_t *db, int *rout,
                        int64_t *dout);
/* Copies shape (and symbolic names) of `from` to `to`, with dtype. */
qd_status qd_shape_copy(qd_value *to, const qd_value *from, qd_dtype dtype);

#endif
