/* Element types and dense tensors (constant data: initializers, folded
 * constants, attribute tensors). */
#ifndef QD_IR_TENSOR_H
#define QD_IR_TENSOR_H
#include <stddef.h>
#include <stdint.h>

/* Numbered as ONNX's TensorProto.DataType, so conversion is a cast. */
typedef enum qd_dtype {
    QD_DT_UNDEFINED = 0,
    QD_DT_FLOAT = 1,
    QD_DT_UINT8 = 2,
    QD_DT_INT8 = 3,
    QD_DT_UINT16 = 4,
    QD_DT_INT16 = 5,
    QD_DT_INT32 = 6,
    QD_DT_INT64 = 7,
    QD_DT_STRING = 8,
    QD_DT_BOOL = 9,
    QD_DT_FLOAT16 = 10,
    QD_DT_DOUBLE = 11,
    QD_DT_UINT32 = 12,
    QD_DT_UINT64 = 13,
    QD_DT_COMPLEX64 = 14,
    QD_DT_COMPLEX128 = 15,
    QD_DT_BFLOAT16 = 16,
} qd_dtype;

#define QD_MAX_RANK 8

/* Size in bytes of one element; 0 for undefined, strings and unknown types. */
size_t qd_dtype_size(qd_dtype dtype);
/* "float32", "int64", ...; "?" for unknown values. */
const char *qd_dtype_name(qd_dtype dtype);
int qd_dtype_is_float(qd_dtype dtype);

/* How a 4-D N,C,H,W tensor's data is laid out in memory. The engine keeps
 * activations between oneDNN convs channels-last; dims stay logical. */
typedef enum qd_layout {
    QD_LAYOUT_PLAIN = 0, /* row-major in the logical dims */
    QD_LAYOUT_NHWC = 1,  /* logical N,C,H,W stored as N,H,W,C */
} qd_layout;

typedef struct qd_tensor {
    qd_dtype dtype;
    qd_layout layout;
    int rank;
    int64_t dims[QD_MAX_RANK];
    void *data;       /* rank 0 = scalar; NULL only when numel == 0 */
    size_t nbytes;
    int owns_data;    /* 0 when data points into a mapping kept by the graph */
} qd_tensor;

int64_t qd_numel(int rank, const int64_t *dims);

/* New tensor with zeroed data. NULL on out of memory or overflow. */
qd_tensor *qd_tensor_new(qd_dtype dtype, int rank, const int64_t *dims);
/* New tensor that takes ownership of data (allocated with qd_malloc). */
qd_tensor *qd_tensor_wrap(qd_dtype dtype, int rank, const int64_t *dims, void *data, int owns);
qd_tensor *qd_tensor_clone(const qd_tensor *t);
void qd_tensor_delete(qd_tensor *t);

/* Reads element i of an integer or float tensor as int64 / double. */
int64_t qd_tensor_get_i64(const qd_tensor *t, int64_t i);
double qd_tensor_get_f64(const qd_tensor *t, int64_t i);
/* Writes element i, converting (saturating for small integers is not done:
 * the value is cast the way C casts it). */
void qd_tensor_set_i64(qd_tensor *t, int64_t i, int64_t v);
void qd_tensor_set_f64(qd_tensor *t, int64_t i, double v);

/* fp16 <-> fp32 conversions (round to nearest even). */
float qd_fp16_to_fp32(uint16_t h);
uint16_t qd_fp32_to_fp16(float f);
float qd_bf16_to_fp32(uint16_t h);
uint16_t qd_fp32_to_bf16(float f);

#endif
