#include "data/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"

static const struct {
    const char *descr;
    qd_dtype dtype;
} DESCRS[] = {
    {"<f4", QD_DT_FLOAT}, {"<f8", QD_DT_DOUBLE},  {"<f2", QD_DT_FLOAT16}, {"<i8", QD_DT_INT64},
    {"<i4", QD_DT_INT32}, {"<i2", QD_DT_INT16},   {"|i1", QD_DT_INT8},    {"|u1", QD_DT_UINT8},
    {"|b1", QD_DT_BOOL},  {"<u2", QD_DT_UINT16},  {"<u4", QD_DT_UINT32},  {"<u8", QD_DT_UINT64},
};

/* Finds 'key': in the header dict and returns the text after the colon. */
static const char *dict_value(const char *header, const char *key)
{
    const char *p = strstr(header, key);
    if (!p)
        return NULL;
    p = strchr(p + strlen(key), ':');
    if (!p)
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

qd_status qd_npy_parse(const void *data, size_t size, const char *what, qd_tensor **out,
                       qd_error *err)
{
    const unsigned char *b = data;
    *out = NULL;
    if (size < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: not a .npy file", what);
    int major = b[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12)
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: truncated .npy header",
                                what);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        hstart = 12;
    } else {
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: unknown .npy version %d", what,
                            major);
    }
    if (hlen > size - hstart || hlen > 1 << 20)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: truncated .npy header", what);
    char *header = qd_strndup((const char *)b + hstart, hlen);
    if (!header)
        return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    qd_status st = QD_OK;
    const char *descr = dict_value(header, "'descr'");
    const char *order = dict_value(header, "'fortran_order'");
    const char *shape = dict_value(header, "'shape'");
    qd_dtype dtype = QD_DT_UNDEFINED;
    if (descr && descr[0] == '\'')
        for (size_t i = 0; i < sizeof DESCRS / sizeof DESCRS[0]; i++)
            if (!strncmp(descr + 1, DESCRS[i].descr, 3) && descr[4] == '\'')
                dtype = DESCRS[i].dtype;
    if (descr && !strncmp(descr, "'<b1'", 5))
        dtype = QD_DT_BOOL;
    if (dtype == QD_DT_UNDEFINED) {
        st = qd_error_set(err, QD_STATUS_UNSUPPORTED,
                          "%s: unsupported .npy dtype %.12s (little-endian numbers only)", what,
                          descr ? descr : "?");
        goto done;
    }
    if (!order || strncmp(order, "False", 5) != 0) {
        st = qd_error_set(err, QD_STATUS_UNSUPPORTED, "%s: Fortran-order arrays are not supported",
                          what);
        goto done;
    }
    if (!shape || *shape != '(') {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: .npy header has no shape", what);
        goto done;
    }
    int64_t dims[QD_MAX_RANK];
    int rank = 0;
    const char *p = shape + 1;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        char *end;
        long long d = strtoll(p, &end, 10);
        if (end == p || d < 0 || rank == QD_MAX_RANK) {
            st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: bad .npy shape", what);
            goto done;
        }
        dims[rank++] = d;
        p = end;
    }
    /* Check the data is there before allocating what the header claims. */
    size_t off = hstart + hlen;
    int64_t numel = qd_numel(rank, dims);
    size_t esize = qd_dtype_size(dtype);
    if (numel < 0 || !esize || (uint64_t)numel > (size - off) / esize) {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "%s: truncated: %zu data bytes, the shape needs %lld elements of %zu",
                          what, size - off, (long long)numel, esize);
        goto done;
    }
    qd_tensor *t = qd_tensor_new(dtype, rank, dims);
    if (!t) {
        st = qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: array too large", what);
        goto done;
    }
    memcpy(t->data, b + off, t->nbytes);
    *out = t;
done:
    qd_free(header);
    return st;
}

qd_status qd_npy_read(const char *path, qd_tensor **out, qd_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: not a regular file", path);
    }
    long size = ftell(f);
    rewind(f);
    if (size < 0) {
        fclose(f);
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: not a regular file", path);
    }
    void *buf = qd_malloc((size_t)size + 1);
    if (!buf) {
        fclose(f);
        return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    qd_status st = got == (size_t)size ? qd_npy_parse(buf, got, path, out, err)
                                       : qd_error_set(err, QD_STATUS_IO_ERROR, "%s: read error",
                                                      path);
    qd_free(buf);
    return st;
}

qd_status qd_npy_write(const char *path, const qd_tensor *t, qd_error *err)
{
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof DESCRS / sizeof DESCRS[0]; i++)
        if (DESCRS[i].dtype == t->dtype)
            descr = DESCRS[i].descr;
    if (!descr)
        return qd_error_set(err, QD_STATUS_UNSUPPORTED, "%s: cannot write %s as .npy", path,
                            qd_dtype_name(t->dtype));
    char header[512];
    int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     descr);
    for (int i = 0; i < t->rank; i++)
        n += snprintf(header + n, sizeof header - (size_t)n, "%lld,%s", (long long)t->dims[i],
                      i + 1 < t->rank ? " " : "");
    n += snprintf(header + n, sizeof header - (size_t)n, "), }");
    /* Pad with spaces so data starts on a 64-byte boundary; end with \n. */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: %s", path, strerror(errno));
    size_t hlen = (size_t)n + pad + 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(header, 1, (size_t)n, f);
    for (size_t i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(t->data, 1, t->nbytes, f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: write failed: %s", path, strerror(e));
    }
    return QD_OK;
}
