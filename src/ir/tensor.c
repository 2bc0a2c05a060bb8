#include "ir/tensor.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"

size_t qd_dtype_size(qd_dtype dtype)
{
    switch (dtype) {
    case QD_DT_FLOAT: return 4;
    case QD_DT_UINT8: return 1;
    case QD_DT_INT8: return 1;
    case QD_DT_UINT16: return 2;
    case QD_DT_INT16: return 2;
    case QD_DT_INT32: return 4;
    case QD_DT_INT64: return 8;
    case QD_DT_BOOL: return 1;
    case QD_DT_FLOAT16: return 2;
    case QD_DT_DOUBLE: return 8;
    case QD_DT_UINT32: return 4;
    case QD_DT_UINT64: return 8;
    case QD_DT_COMPLEX64: return 8;
    case QD_DT_COMPLEX128: return 16;
    case QD_DT_BFLOAT16: return 2;
    default: return 0;
    }
}

const char *qd_dtype_name(qd_dtype dtype)
{
    switch (dtype) {
    case QD_DT_FLOAT: return "float32";
    case QD_DT_UINT8: return "uint8";
    case QD_DT_INT8: return "int8";
    case QD_DT_UINT16: return "uint16";
    case QD_DT_INT16: return "int16";
    case QD_DT_INT32: return "int32";
    case QD_DT_INT64: return "int64";
    case QD_DT_STRING: return "string";
    case QD_DT_BOOL: return "bool";
    case QD_DT_FLOAT16: return "float16";
    case QD_DT_DOUBLE: return "float64";
    case QD_DT_UINT32: return "uint32";
    case QD_DT_UINT64: return "uint64";
    case QD_DT_COMPLEX64: return "complex64";
    case QD_DT_COMPLEX128: return "complex128";
    case QD_DT_BFLOAT16: return "bfloat16";
    default: return "?";
    }
}

int qd_dtype_is_float(qd_dtype dtype)
{
    return dtype == QD_DT_FLOAT || dtype == QD_DT_FLOAT16 || dtype == QD_DT_DOUBLE ||
           dtype == QD_DT_BFLOAT16;
}

int64_t qd_numel(int rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return -1;
        if (dims[i] && n > INT64_MAX / dims[i])
            return -1;
        n *= dims[i];
    }
    return n;
}

qd_tensor *qd_tensor_wrap(qd_dtype dtype, int rank, const int64_t *dims, void *data, int owns)
{
    if (rank < 0 || rank > QD_MAX_RANK)
        return NULL;
    int64_t n = qd_numel(rank, dims);
    size_t es = qd_dtype_size(dtype);
    if (n < 0 || es == 0 || (uint64_t)n > SIZE_MAX / es)
        return NULL;
    qd_tensor *t = qd_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->dtype = dtype;
    t->rank = rank;
    if (rank)
        memcpy(t->dims, dims, (size_t)rank * sizeof *dims);
    t->data = data;
    t->nbytes = (size_t)n * es;
    t->owns_data = owns;
    return t;
}

qd_tensor *qd_tensor_new(qd_dtype dtype, int rank, const int64_t *dims)
{
    qd_tensor *t = qd_tensor_wrap(dtype, rank, dims, NULL, 1);
    if (!t)
        return NULL;
    t->data = qd_calloc(1, t->nbytes ? t->nbytes : 1);
    if (!t->data) {
        qd_free(t);
        return NULL;
    }
    return t;
}

qd_tensor *qd_tensor_clone(const qd_tensor *src)
{
    qd_tensor *t = qd_tensor_new(src->dtype, src->rank, src->dims);
    if (t && src->nbytes)
        memcpy(t->data, src->data, src->nbytes);
    return t;
}

void qd_tensor_delete(qd_tensor *t)
{
    if (!t)
        return;
    if (t->owns_data)
        qd_free(t->data);
    qd_free(t);
}

int64_t qd_tensor_get_i64(const qd_tensor *t, int64_t i)
{
    const void *d = t->data;
    switch (t->dtype) {
    case QD_DT_INT64: return ((const int64_t *)d)[i];
    case QD_DT_INT32: return ((const int32_t *)d)[i];
    case QD_DT_INT16: return ((const int16_t *)d)[i];
    case QD_DT_INT8: return ((const int8_t *)d)[i];
    case QD_DT_UINT8: return ((const uint8_t *)d)[i];
    case QD_DT_BOOL: return ((const uint8_t *)d)[i] != 0;
    case QD_DT_UINT16: return ((const uint16_t *)d)[i];
    case QD_DT_UINT32: return ((const uint32_t *)d)[i];
    case QD_DT_UINT64: return (int64_t)((const uint64_t *)d)[i];
    default: return (int64_t)qd_tensor_get_f64(t, i);
    }
}

double qd_tensor_get_f64(const qd_tensor *t, int64_t i)
{
    const void *d = t->data;
    switch (t->dtype) {
    case QD_DT_FLOAT: return ((const float *)d)[i];
    case QD_DT_DOUBLE: return ((const double *)d)[i];
    case QD_DT_FLOAT16: return qd_fp16_to_fp32(((const uint16_t *)d)[i]);
    case QD_DT_BFLOAT16: return qd_bf16_to_fp32(((const uint16_t *)d)[i]);
    case QD_DT_UINT64: return (double)((const uint64_t *)d)[i];
    case QD_DT_STRING:
    case QD_DT_UNDEFINED:
    case QD_DT_COMPLEX64:
    case QD_DT_COMPLEX128: return 0;
    default: return (double)qd_tensor_get_i64(t, i);
    }
}

void qd_tensor_set_i64(qd_tensor *t, int64_t i, int64_t v)
{
    void *d = t->data;
    switch (t->dtype) {
    case QD_DT_INT64: ((int64_t *)d)[i] = v; break;
    case QD_DT_INT32: ((int32_t *)d)[i] = (int32_t)v; break;
    case QD_DT_INT16: ((int16_t *)d)[i] = (int16_t)v; break;
    case QD_DT_INT8: ((int8_t *)d)[i] = (int8_t)v; break;
    case QD_DT_UINT8: ((uint8_t *)d)[i] = (uint8_t)v; break;
    case QD_DT_BOOL: ((uint8_t *)d)[i] = v != 0; break;
    case QD_DT_UINT16: ((uint16_t *)d)[i] = (uint16_t)v; break;
    case QD_DT_UINT32: ((uint32_t *)d)[i] = (uint32_t)v; break;
    case QD_DT_UINT64: ((uint64_t *)d)[i] = (uint64_t)v; break;
    default: qd_tensor_set_f64(t, i, (double)v); break;
    }
}

void qd_tensor_set_f64(qd_tensor *t, int64_t i, double v)
{
    void *d = t->data;
    switch (t->dtype) {
    case QD_DT_FLOAT: ((float *)d)[i] = (float)v; break;
    case QD_DT_DOUBLE: ((double *)d)[i] = v; break;
    case QD_DT_FLOAT16: ((uint16_t *)d)[i] = qd_fp32_to_fp16((float)v); break;
    case QD_DT_BFLOAT16: ((uint16_t *)d)[i] = qd_fp32_to_bf16((float)v); break;
    case QD_DT_BOOL: ((uint8_t *)d)[i] = v != 0; break;
    case QD_DT_STRING:
    case QD_DT_UNDEFINED:
    case QD_DT_COMPLEX64:
    case QD_DT_COMPLEX128: break;
    default:
        /* float -> int conversion truncates toward zero, as ONNX Cast does. */
        qd_tensor_set_i64(t, i, isfinite(v) ? (int64_t)v : 0);
        break;
    }
}

float qd_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t qd_fp32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000 ? 0x200 : 0));
    if (absx >= 0x477ff000) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000) { /* subnormal half or zero */
        float a;
        memcpy(&a, &absx, 4);
        /* a * 2^24 is the subnormal's integer mantissa; rint rounds half-even. */
        return (uint16_t)(sign | (uint32_t)rintf(a * 16777216.0f));
    }
    uint32_t mant = absx & 0x7fffff;
    uint32_t exp = (absx >> 23) - 127 + 15;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

float qd_bf16_to_fp32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t qd_fp32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
