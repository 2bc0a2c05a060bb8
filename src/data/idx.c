#include "data/idx.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <zlib.h>

#include "base/alloc.h"

/* Reads up to n bytes; returns the count read, or -1 on a zlib error. */
static long long read_full(gzFile f, unsigned char *dst, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        if (want > (1u << 30))
            want = 1u << 30;
        int r = gzread(f, dst + got, (unsigned)want);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long long)got;
}

/* The gzip-level error pending on f, if any ("" when none). Z_BUF_ERROR is a
 * premature end of the compressed stream. */
static const char *gz_problem(gzFile f, int *truncated)
{
    int code = Z_OK;
    const char *msg = gzerror(f, &code);
    *truncated = code == Z_BUF_ERROR;
    if (code == Z_OK)
        return "";
    if (code == Z_ERRNO)
        return strerror(errno);
    return msg && *msg ? msg : "gzip error";
}

int qd_idx_sniff(const char *path, int *rank)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return 0;
    unsigned char m[4];
    long long got = read_full(f, m, 4);
    gzclose_r(f);
    if (got != 4 || m[0] != 0 || m[1] != 0 || m[2] != 0x08 || m[3] == 0 || m[3] > 4)
        return 0;
    if (rank)
        *rank = m[3];
    return 1;
}

qd_status qd_idx_read(const char *path, int rank, qd_tensor **out, qd_error *err)
{
    *out = NULL;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return qd_error_set(err, errno == ENOMEM ? QD_STATUS_OUT_OF_MEMORY : QD_STATUS_IO_ERROR,
                            "%s: %s", path, errno ? strerror(errno) : "cannot open");
    gzbuffer(f, 1 << 17);
    qd_status st = QD_OK;
    unsigned char *data = NULL;
    int truncated = 0;
    unsigned char head[4 + 4 * 4];
    long long got = read_full(f, head, 4);
    if (got < 0) {
        st = qd_error_set(err, QD_STATUS_IO_ERROR, "%s: %s", path, gz_problem(f, &truncated));
        goto done;
    }
    if (got < 4 || head[0] != 0 || head[1] != 0) {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "%s: not an IDX file (bad magic%s)", path,
                          got < 4 ? ": file too short" : "");
        goto done;
    }
    unsigned magic = (unsigned)head[2] << 8 | head[3];
    if (head[2] != 0x08) {
        st = qd_error_set(err, QD_STATUS_UNSUPPORTED,
                          "%s: IDX element type 0x%02x is not supported "
                          "(unsigned bytes, 0x08, only)",
                          path, head[2]);
        goto done;
    }
    if (head[3] != rank) {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "%s: IDX magic 0x%08x has %d dims, expected 0x%08x (%s)", path, magic,
                          head[3], 0x800u | (unsigned)rank,
                          rank == 1 ? "labels" : rank == 3 ? "images" : "data");
        goto done;
    }
    got = read_full(f, head + 4, 4 * (size_t)rank);
    if (got != 4 * rank) {
        const char *why = gz_problem(f, &truncated);
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: truncated IDX header%s%s", path,
                          *why ? ": " : "", why);
        goto done;
    }
    int64_t dims[4];
    uint64_t total = 1;
    for (int i = 0; i < rank; i++) {
        const unsigned char *d = head + 4 + 4 * i;
        dims[i] = (int64_t)((uint64_t)d[0] << 24 | (uint64_t)d[1] << 16 | (uint64_t)d[2] << 8 |
                            d[3]);
        if (dims[i] != 0 && total > (UINT64_C(1) << 40) / (uint64_t)dims[i]) {
            st = qd_error_set(err, QD_STATUS_UNSUPPORTED, "%s: IDX dims are too large", path);
            goto done;
        }
        total *= (uint64_t)dims[i];
    }
    /* Grow with the data read, so a lying header cannot make us allocate. */
    size_t cap = total < (1u << 24) ? (size_t)total : (1u << 24);
    size_t have = 0;
    data = qd_malloc(cap ? cap : 1);
    if (!data) {
        st = qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
        goto done;
    }
    while (have < total) {
        if (have == cap) {
            size_t ncap = cap * 2 < total ? cap * 2 : (size_t)total;
            unsigned char *nd = qd_realloc(data, ncap);
            if (!nd) {
                st = qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
                goto done;
            }
            data = nd;
            cap = ncap;
        }
        size_t want = cap - have;
        long long r = read_full(f, data + have, want);
        if (r < 0) {
            st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: corrupt gzip data: %s", path,
                              gz_problem(f, &truncated));
            goto done;
        }
        have += (size_t)r;
        if ((size_t)r < want)
            break; /* end of the data */
    }
    if (have < total) {
        const char *why = gz_problem(f, &truncated);
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "%s: truncated: the IDX dims need %llu data bytes, "
                          "the file has %zu%s%s%s",
                          path, (unsigned long long)total, have, *why ? " (" : "", why,
                          *why ? ")" : "");
        goto done;
    }
    unsigned char extra;
    got = read_full(f, &extra, 1);
    if (got > 0) {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "%s: the IDX dims (%llu data bytes) do not match the file size "
                          "(more data follows)",
                          path, (unsigned long long)total);
        goto done;
    }
    const char *why = gz_problem(f, &truncated);
    if (*why) {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: %s gzip stream: %s", path,
                          truncated ? "truncated" : "corrupt", why);
        goto done;
    }
    *out = qd_tensor_wrap(QD_DT_UINT8, rank, dims, data, 1);
    if (!*out) {
        st = qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
        goto done;
    }
    data = NULL;
done:
    qd_free(data);
    int rc = gzclose_r(f);
    if (st == QD_OK && rc != Z_OK) {
        qd_tensor_delete(*out);
        *out = NULL;
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: %s gzip stream", path,
                          rc == Z_BUF_ERROR ? "truncated" : "corrupt");
    }
    return st;
}
