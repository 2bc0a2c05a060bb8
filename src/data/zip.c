#include "data/zip.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "base/alloc.h"

typedef struct zip_entry {
    char *name;
    uint64_t comp_size, size, offset; /* offset of the local header */
    uint32_t crc;
    uint16_t method, flags;
} zip_entry;

struct qd_zip {
    FILE *f;
    char *path;
    uint64_t file_size;
    zip_entry *entries;
    size_t n;
};

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static int read_at(FILE *f, uint64_t off, void *dst, size_t n)
{
    if (fseeko(f, (off_t)off, SEEK_SET) != 0)
        return -1;
    return fread(dst, 1, n, f) == n ? 0 : -1;
}

void qd_zip_close(qd_zip *zip)
{
    if (!zip)
        return;
    if (zip->f)
        fclose(zip->f);
    for (size_t i = 0; i < zip->n; i++)
        qd_free(zip->entries[i].name);
    qd_free(zip->entries);
    qd_free(zip->path);
    qd_free(zip);
}

size_t qd_zip_count(const qd_zip *zip)
{
    return zip->n;
}

const char *qd_zip_name(const qd_zip *zip, size_t i)
{
    return i < zip->n ? zip->entries[i].name : NULL;
}

uint64_t qd_zip_size(const qd_zip *zip, size_t i)
{
    return i < zip->n ? zip->entries[i].size : 0;
}

long qd_zip_find(const qd_zip *zip, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < zip->n; i++) {
        const char *e = zip->entries[i].name;
        if (!strcmp(e, name) || (!strncmp(e, name, len) && !strcmp(e + len, ".npy")))
            return (long)i;
    }
    return -1;
}

#define BAD(...) qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, __VA_ARGS__)

static qd_status parse_directory(qd_zip *z, qd_error *err)
{
    const char *path = z->path;
    if (z->file_size < 22)
        return BAD("%s: not a zip file (too short)", path);
    /* The end-of-central-directory record: 22 bytes + a comment of up to 64 KiB. */
    size_t tail = z->file_size < 22 + 65535 ? (size_t)z->file_size : 22 + 65535;
    uint64_t tail_off = z->file_size - tail;
    unsigned char *buf = qd_malloc(tail);
    if (!buf)
        return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    if (read_at(z->f, tail_off, buf, tail) != 0) {
        qd_free(buf);
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: read error", path);
    }
    long eocd = -1;
    for (long i = (long)tail - 22; i >= 0; i--)
        if (rd32(buf + i) == 0x06054b50u && (size_t)i + 22 + rd16(buf + i + 20) <= tail) {
            eocd = i;
            break;
        }
    if (eocd < 0) {
        qd_free(buf);
        return BAD("%s: not a zip file (no end of central directory; truncated?)", path);
    }
    const unsigned char *e = buf + eocd;
    uint64_t n = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    int multi = rd16(e + 4) != 0 || rd16(e + 6) != 0;
    if (n == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        /* zip64: the locator sits just before the record. */
        uint64_t loc = tail_off + (uint64_t)eocd;
        unsigned char l[20], r[56];
        if (loc < 20 || read_at(z->f, loc - 20, l, 20) != 0 || rd32(l) != 0x07064b50u) {
            qd_free(buf);
            return BAD("%s: corrupt zip64 end of central directory", path);
        }
        uint64_t r_off = rd64(l + 8);
        if (r_off > z->file_size - 56 || read_at(z->f, r_off, r, 56) != 0 ||
            rd32(r) != 0x06064b50u) {
            qd_free(buf);
            return BAD("%s: corrupt zip64 end of central directory", path);
        }
        n = rd64(r + 32);
        cd_size = rd64(r + 40);
        cd_off = rd64(r + 48);
        multi = multi || rd32(r + 16) != 0 || rd32(r + 20) != 0;
    }
    qd_free(buf);
    if (multi)
        return qd_error_set(err, QD_STATUS_UNSUPPORTED,
                            "%s: multi-disk zip archives are not supported", path);
    if (cd_off > z->file_size || cd_size > z->file_size - cd_off || n > cd_size / 46)
        return BAD("%s: corrupt zip central directory (beyond the end of the file)", path);
    unsigned char *cd = qd_malloc(cd_size ? (size_t)cd_size : 1);
    z->entries = qd_calloc(n ? (size_t)n : 1, sizeof *z->entries);
    if (!cd || !z->entries) {
        qd_free(cd);
        return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    if (read_at(z->f, cd_off, cd, (size_t)cd_size) != 0) {
        qd_free(cd);
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: read error", path);
    }
    size_t pos = 0;
    qd_status st = QD_OK;
    for (uint64_t i = 0; i < n; i++) {
        if (cd_size - pos < 46 || rd32(cd + pos) != 0x02014b50u) {
            st = BAD("%s: corrupt zip central directory (entry %llu)", path, (unsigned long long)i);
            break;
        }
        const unsigned char *c = cd + pos;
        size_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
        if (cd_size - pos - 46 < nlen + xlen + clen) {
            st = BAD("%s: corrupt zip central directory (entry %llu)", path, (unsigned long long)i);
            break;
        }
        zip_entry *ze = &z->entries[z->n];
        ze->name = qd_strndup((const char *)c + 46, nlen);
        if (!ze->name) {
            st = qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
            break;
        }
        z->n++;
        ze->flags = rd16(c + 8);
        ze->method = rd16(c + 10);
        ze->crc = rd32(c + 16);
        ze->comp_size = rd32(c + 20);
        ze->size = rd32(c + 24);
        ze->offset = rd32(c + 42);
        /* zip64 extra field: the 0xffffffff fields, in this order. */
        const unsigned char *x = c + 46 + nlen, *xend = x + xlen;
        while (xend - x >= 4) {
            uint16_t id = rd16(x), len = rd16(x + 2);
            if ((size_t)(xend - x - 4) < len)
                break;
            if (id == 0x0001) {
                const unsigned char *v = x + 4, *vend = v + len;
                if (ze->size == 0xffffffffu && vend - v >= 8) {
                    ze->size = rd64(v);
                    v += 8;
                }
                if (ze->comp_size == 0xffffffffu && vend - v >= 8) {
                    ze->comp_size = rd64(v);
                    v += 8;
                }
                if (ze->offset == 0xffffffffu && vend - v >= 8)
                    ze->offset = rd64(v);
            }
            x += 4 + len;
        }
        pos += 46 + nlen + xlen + clen;
    }
    qd_free(cd);
    return st;
}

qd_status qd_zip_open(const char *path, qd_zip **out, qd_error *err)
{
    *out = NULL;
    qd_zip *z = qd_calloc(1, sizeof *z);
    if (!z || !(z->path = qd_strdup(path))) {
        qd_free(z);
        return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    z->f = fopen(path, "rb");
    if (!z->f) {
        qd_status st = qd_error_set(err, QD_STATUS_IO_ERROR, "%s: %s", path, strerror(errno));
        qd_zip_close(z);
        return st;
    }
    struct stat sb;
    if (fstat(fileno(z->f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        qd_zip_close(z);
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: not a regular file", path);
    }
    z->file_size = (uint64_t)sb.st_size;
    qd_status st = parse_directory(z, err);
    if (st != QD_OK) {
        qd_zip_close(z);
        return st;
    }
    *out = z;
    return QD_OK;
}

qd_status qd_zip_read(qd_zip *z, size_t i, void **data, size_t *size, qd_error *err)
{
    *data = NULL;
    *size = 0;
    if (i >= z->n)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: no member %zu", z->path, i);
    const zip_entry *e = &z->entries[i];
    const char *path = z->path, *name = e->name;
    if (e->flags & 1)
        return qd_error_set(err, QD_STATUS_UNSUPPORTED, "%s: member %s is encrypted", path, name);
    if (e->method != 0 && e->method != 8)
        return qd_error_set(err, QD_STATUS_UNSUPPORTED,
                            "%s: member %s uses compression method %u (stored and deflate only)",
                            path, name, e->method);
    unsigned char lh[30];
    if (e->offset > z->file_size || read_at(z->f, e->offset, lh, 30) != 0 ||
        rd32(lh) != 0x04034b50u)
        return BAD("%s: member %s: corrupt local header", path, name);
    uint64_t start = e->offset + 30 + rd16(lh + 26) + rd16(lh + 28);
    if (start > z->file_size || e->comp_size > z->file_size - start)
        return BAD("%s: member %s: data beyond the end of the file (truncated?)", path, name);
    /* Deflate expands at most ~1032:1; a larger claim is a lie. */
    if ((e->method == 0 && e->size != e->comp_size) ||
        (e->method == 8 && e->size / 1032 > e->comp_size + 1) || e->size > SIZE_MAX - 1)
        return BAD("%s: member %s: inconsistent sizes", path, name);
    unsigned char *dst = qd_malloc(e->size ? (size_t)e->size : 1);
    if (!dst)
        return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: member %s: out of memory", path,
                            name);
    qd_status st = QD_OK;
    if (fseeko(z->f, (off_t)start, SEEK_SET) != 0) {
        st = qd_error_set(err, QD_STATUS_IO_ERROR, "%s: read error", path);
        goto fail;
    }
    if (e->method == 0) {
        if (fread(dst, 1, (size_t)e->size, z->f) != (size_t)e->size) {
            st = BAD("%s: member %s: truncated", path, name);
            goto fail;
        }
    } else {
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (inflateInit2(&zs, -15) != Z_OK) {
            st = qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: zlib init failed", path);
            goto fail;
        }
        unsigned char chunk[1 << 16];
        uint64_t left = e->comp_size;
        size_t produced = 0;
        int zr = Z_OK;
        while (zr != Z_STREAM_END) {
            if (zs.avail_in == 0) {
                if (left == 0)
                    break;
                size_t want = left < sizeof chunk ? (size_t)left : sizeof chunk;
                if (fread(chunk, 1, want, z->f) != want)
                    break;
                left -= want;
                zs.next_in = chunk;
                zs.avail_in = (uInt)want;
            }
            size_t room = (size_t)e->size - produced;
            unsigned char sink;
            zs.next_out = room ? dst + produced : &sink;
            zs.avail_out = room ? (room > (1u << 30) ? (1u << 30) : (uInt)room) : 1;
            uInt before = zs.avail_out;
            zr = inflate(&zs, Z_NO_FLUSH);
            if (!room && zs.avail_out != before) {
                zr = Z_DATA_ERROR; /* more data than the directory says */
                break;
            }
            produced += before - zs.avail_out;
            if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
                break;
        }
        inflateEnd(&zs);
        if (zr != Z_STREAM_END || produced != e->size) {
            st = BAD("%s: member %s: corrupt or truncated deflate data", path, name);
            goto fail;
        }
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t done = 0; done < e->size;) {
        size_t n = (size_t)e->size - done > (1u << 30) ? (1u << 30) : (size_t)e->size - done;
        crc = crc32(crc, dst + done, (uInt)n);
        done += n;
    }
    if ((uint32_t)crc != e->crc) {
        st = BAD("%s: member %s: CRC mismatch (corrupt data)", path, name);
        goto fail;
    }
    *data = dst;
    *size = (size_t)e->size;
    return QD_OK;
fail:
    qd_free(dst);
    return st;
}
