/* Helpers shared by the shape functions (shape_*.c), the folder (fold.c) and
 * the inference driver (infer.c). Private to src/ir/. */
#ifndef QD_IR_SHAPE_INTERNAL_H
#define QD_IR_SHAPE_INTERNAL_H
#include <stdint.h>

#include "ir/shape.h"

/* The newest default-domain opset whose semantics the shape functions know;
 * a graph without an opset (built by hand) is read as this one. */
#define QD_OPSET_LATEST 17

/* A shape under construction: dims are -1 when unknown; sym[i] names a
 * symbolic dim (borrowed from an input value, copied when set on an output). */
typedef struct qd_shp {
    int rank; /* -1 unknown; may exceed QD_MAX_RANK only transiently (checked) */
    int64_t d[QD_MAX_RANK];
    const char *sym[QD_MAX_RANK];
} qd_shp;

void qd_shp_unknown(qd_shp *s);
/* Sets s to rank known dims all unknown. */
void qd_shp_unknown_dims(qd_shp *s, int rank);
/* s = shape of v (unknown when v is NULL). */
void qd_shp_of(const qd_value *v, qd_shp *s);
/* Copies dim i of src into dim j of dst (value and symbol). */
void qd_shp_copy_dim(qd_shp *dst, int j, const qd_shp *src, int i);
/* 1 when dims a and b are the same known value or the same symbol. */
int qd_dim_same(int64_t a, const char *sa, int64_t b, const char *sb);
/* "1x3xbatchx?" for messages. */
const char *qd_shp_str(const qd_shp *s, char *buf, size_t size);
/* Numpy broadcast keeping symbols; -1 when incompatible. */
int qd_shp_broadcast(const qd_shp *a, const qd_shp *b, qd_shp *out);
/* The product of dims [from, to): a value, a lone symbol (the other dims
 * multiplying to 1), or unknown (-1, NULL). -2 on overflow. */
int64_t qd_shp_product(const qd_shp *s, int from, int to, const char **sym);

/* Sets output `index` of n (ignored when omitted). Where inference knows
 * less than the value already carries (declared value_info), the declared
 * dims and dtype are kept. */
qd_status qd_set_output(qd_graph *g, qd_node *n, int index, qd_dtype dtype, const qd_shp *s);

/* Error naming the node: "node 'NAME' (OP): <message>". */
qd_status qd_node_fail(qd_graph *g, const qd_node *n, qd_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Fails with QD_STATUS_INVALID_MODEL unless the first `count` inputs are
 * present. */
qd_status qd_need_inputs(qd_graph *g, const qd_node *n, int count);
/* Input i, or NULL when absent or omitted. */
qd_value *qd_input(const qd_node *n, int i);
qd_dtype qd_input_dtype(const qd_node *n, int i);
/* The model's default opset, QD_OPSET_LATEST when unknown. */
int64_t qd_default_opset(const qd_graph *g);

/* Normalises a possibly negative axis into [0, rank); error naming the node
 * when out of range. */
qd_status qd_axis(qd_graph *g, const qd_node *n, int64_t axis, int rank, int *out);

/* Overflow-checked arithmetic: 0 on success, -1 on overflow. */
int qd_mul_i64(int64_t a, int64_t b, int64_t *out);
int qd_add_i64(int64_t a, int64_t b, int64_t *out);

int qd_dtype_is_int(qd_dtype dtype);

/* The elements of a small constant integer tensor (rank <= 1): 1 when read,
 * 0 when v is not constant or not an integer tensor, -1 when it has more
 * than cap elements. */
int qd_const_ints(const qd_value *v, int64_t *out, int cap, int *count);

/* An integer list given either as attribute `attr` (older opsets) or as
 * constant input `input` (newer opsets); whichever is present. */
typedef enum qd_list_state {
    QD_LIST_ABSENT,  /* neither given */
    QD_LIST_UNKNOWN, /* given as an input that is not constant */
    QD_LIST_KNOWN,
} qd_list_state;
qd_status qd_int_list(qd_graph *g, const qd_node *n, const char *attr, int input, int64_t *out,
                      int cap, int *count, qd_list_state *state);

/* [start, end) of Shape's output within an input of rank `rank`: opset 15's
 * start/end attributes, clamped. */
qd_status qd_shape_attr_range(qd_graph *g, const qd_node *n, int rank, int *start, int *end);

/* One axis of Slice, clamped the ONNX way: returns the output length and
 * sets *first to the first index taken. step != 0. */
int64_t qd_slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *first);

/* Symbolic values of small integer tensors (shape vectors): elements are
 * known numbers, named symbols ("batch"), or unknown. They let
 * Reshape(x, Concat(Gather(Shape(x), 0), -1)) keep "batch" when the batch
 * size is not fixed, where constant folding cannot help. */
#define QD_SYMVEC_MAX 64
typedef struct qd_symvec {
    int rank; /* 0 (scalar) or 1 */
    int n;    /* element count */
    int64_t v[QD_SYMVEC_MAX];
    const char *sym[QD_SYMVEC_MAX];
    unsigned char known[QD_SYMVEC_MAX];
} qd_symvec;
/* Evaluates v from its constant data or by walking back through the shape
 * ops that produced it. Returns 1 when at least the element count is known,
 * 0 otherwise. */
int qd_symvec_eval(const qd_value *v, qd_symvec *out);

#endif
