/* TensorProto <-> qd_tensor. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "onnx/onnx_io.h"

static const char *entry(const Onnx__TensorProto *tp, const char *key)
{
    for (size_t i = 0; i < tp->n_external_data; i++)
        if (tp->external_data[i]->key && strcmp(tp->external_data[i]->key, key) == 0)
            return tp->external_data[i]->value;
    return NULL;
}

static int parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* Element count of the typed repeated field holding this dtype's data. */
static qd_status typed_field_to_data(qd_graph *g, Onnx__TensorProto *tp, qd_tensor *t,
                                     int64_t numel, const char *what)
{
    size_t have = 0;
    switch (t->dtype) {
    case QD_DT_FLOAT: have = tp->n_float_data; break;
    case QD_DT_COMPLEX64: have = tp->n_float_data / 2; break;
    case QD_DT_DOUBLE: have = tp->n_double_data; break;
    case QD_DT_COMPLEX128: have = tp->n_double_data / 2; break;
    case QD_DT_INT64: have = tp->n_int64_data; break;
    case QD_DT_UINT32:
    case QD_DT_UINT64: have = tp->n_uint64_data; break;
    case QD_DT_INT32:
    case QD_DT_INT16:
    case QD_DT_INT8:
    case QD_DT_UINT16:
    case QD_DT_UINT8:
    case QD_DT_BOOL:
    case QD_DT_FLOAT16:
    case QD_DT_BFLOAT16: have = tp->n_int32_data; break;
    default:
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED, "%s: %s tensors are not supported", what,
                             qd_dtype_name(t->dtype));
    }
    if ((int64_t)have != numel)
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                             "%s: holds %zu elements, its shape needs %" PRId64, what, have,
                             numel);
    /* Float and int64 arrays already have the tensor's layout: take them. */
    if (t->dtype == QD_DT_FLOAT || t->dtype == QD_DT_COMPLEX64) {
        t->data = tp->float_data;
        tp->float_data = NULL;
        tp->n_float_data = 0;
        return QD_OK;
    }
    if (t->dtype == QD_DT_INT64) {
        t->data = tp->int64_data;
        tp->int64_data = NULL;
        tp->n_int64_data = 0;
        return QD_OK;
    }
    if (t->dtype == QD_DT_DOUBLE || t->dtype == QD_DT_COMPLEX128) {
        t->data = tp->double_data;
        tp->double_data = NULL;
        tp->n_double_data = 0;
        return QD_OK;
    }
    t->data = qd_malloc(t->nbytes ? t->nbytes : 1);
    if (!t->data)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", what);
    for (int64_t i = 0; i < numel; i++) {
        switch (t->dtype) {
        case QD_DT_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)tp->uint64_data[i]; break;
        case QD_DT_UINT64: ((uint64_t *)t->data)[i] = tp->uint64_data[i]; break;
        case QD_DT_INT32: ((int32_t *)t->data)[i] = tp->int32_data[i]; break;
        case QD_DT_INT16: ((int16_t *)t->data)[i] = (int16_t)tp->int32_data[i]; break;
        case QD_DT_INT8: ((int8_t *)t->data)[i] = (int8_t)tp->int32_data[i]; break;
        case QD_DT_UINT16:
        case QD_DT_FLOAT16: /* fp16 and bf16 bits travel in the low 16 bits */
        case QD_DT_BFLOAT16: ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i]; break;
        case QD_DT_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)tp->int32_data[i]; break;
        case QD_DT_BOOL: ((uint8_t *)t->data)[i] = tp->int32_data[i] != 0; break;
        default: break;
        }
    }
    return QD_OK;
}

qd_status qd_tensor_from_proto(qd_graph *g, Onnx__TensorProto *tp, const char *what,
                               qd_tensor **out)
{
    *out = NULL;
    if (tp->n_dims > QD_MAX_RANK)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED, "%s: rank %zu exceeds %d", what,
                             tp->n_dims, QD_MAX_RANK);
    for (size_t i = 0; i < tp->n_dims; i++)
        if (tp->dims[i] < 0)
            return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "%s: negative dimension %" PRId64,
                                 what, tp->dims[i]);
    if (tp->segment)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED, "%s: segmented tensors are not supported",
                             what);
    qd_dtype dtype = (qd_dtype)(tp->has_data_type ? tp->data_type : 0);
    if (dtype == QD_DT_STRING)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED, "%s: string tensors are not supported",
                             what);
    if (qd_dtype_size(dtype) == 0)
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "%s: unknown data type %d", what,
                             (int)dtype);
    int64_t count = qd_numel((int)tp->n_dims, tp->dims);
    if (count < 0 || (uint64_t)count > SIZE_MAX / qd_dtype_size(dtype))
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "%s: shape too large", what);
    qd_tensor *t = qd_tensor_wrap(dtype, (int)tp->n_dims, tp->dims, NULL, 1);
    if (!t)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", what);
    int64_t numel = qd_numel(t->rank, t->dims);
    qd_status st = QD_OK;

    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        const char *location = entry(tp, "location");
        int64_t offset = 0, length = -1;
        if (!location || !*location) {
            st = qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "%s: external data without a location",
                               what);
            goto fail;
        }
        const char *s_off = entry(tp, "offset"), *s_len = entry(tp, "length");
        if ((s_off && parse_i64(s_off, &offset) != 0) || (s_len && parse_i64(s_len, &length) != 0)) {
            st = qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                               "%s: bad external data offset or length", what);
            goto fail;
        }
        if (length < 0)
            length = (int64_t)t->nbytes;
        if ((uint64_t)length != t->nbytes) {
            st = qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                               "%s: external data length %" PRId64 " but its shape needs %zu bytes",
                               what, length, t->nbytes);
            goto fail;
        }
        void *data;
        size_t size;
        st = qd_external_data_map(g, location, offset, length, what, &data, &size);
        if (st != QD_OK)
            goto fail;
        if (((uintptr_t)data % 64) == 0) {
            t->data = data; /* points into the graph's mapping */
            t->owns_data = 0;
        } else { /* misaligned for SIMD loads: one copy */
            t->data = qd_malloc(size ? size : 1);
            if (!t->data) {
                st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", what);
                goto fail;
            }
            memcpy(t->data, data, size);
        }
    } else if (tp->has_raw_data) {
        if (tp->raw_data.len != t->nbytes) {
            st = qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                               "%s: raw_data has %zu bytes, its shape and type need %zu", what,
                               tp->raw_data.len, t->nbytes);
            goto fail;
        }
        /* Take the parser's buffer instead of copying it. */
        t->data = tp->raw_data.data;
        tp->raw_data.data = NULL;
        tp->raw_data.len = 0;
        tp->has_raw_data = 0;
    } else {
        st = typed_field_to_data(g, tp, t, numel, what);
        if (st != QD_OK)
            goto fail;
    }
    if (!t->data && t->nbytes == 0) {
        t->data = qd_malloc(1);
        if (!t->data) {
            st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", what);
            goto fail;
        }
    }
    *out = t;
    return QD_OK;
fail:
    qd_tensor_delete(t);
    return st;
}

void qd_tensor_to_proto(const qd_tensor *t, const char *name, Onnx__TensorProto *tp)
{
    tp->n_dims = (size_t)t->rank;
    tp->dims = (int64_t *)t->dims;
    tp->has_data_type = 1;
    tp->data_type = (int32_t)t->dtype;
    tp->name = (char *)(name ? name : "");
    tp->has_raw_data = 1;
    tp->raw_data.data = t->data;
    tp->raw_data.len = t->nbytes;
}
