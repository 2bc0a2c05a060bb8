#include "data/image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "base/alloc.h"

/* ---- JPEG ------------------------------------------------------------- */

typedef struct jpeg_guard {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX + 64];
} jpeg_guard;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    char msg[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, msg);
    snprintf(g->message, sizeof g->message, "%s", msg);
    longjmp(g->jump, 1);
}

/* Warnings are silent, except a premature end of data: libjpeg would fill
 * the rest with grey; PIL refuses such a file ("image file is truncated"),
 * and so do we. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_guard *g = (jpeg_guard *)cinfo->err;
        snprintf(g->message, sizeof g->message, "premature end of data (truncated file)");
        longjmp(g->jump, 1);
    }
}

static void jpeg_on_output(j_common_ptr cinfo)
{
    (void)cinfo;
}

/* PIL's MULDIV255 (rounded a*b/255). */
static unsigned muldiv255(unsigned a, unsigned b)
{
    unsigned t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

static qd_status decode_jpeg(const unsigned char *data, size_t size, const char *what,
                             qd_image *out, qd_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_guard guard;
    unsigned char *volatile pix = NULL;
    unsigned char *volatile row = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&guard.pub);
    guard.pub.error_exit = jpeg_on_error;
    guard.pub.emit_message = jpeg_on_message;
    guard.pub.output_message = jpeg_on_output;
    guard.message[0] = '\0';
    if (setjmp(guard.jump)) {
        jpeg_destroy_decompress(&cinfo);
        qd_free(pix);
        qd_free(row);
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: corrupt JPEG: %s", what,
                            guard.message);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    int cmyk = 0, channels = 3;
    if (cinfo.jpeg_color_space == JCS_GRAYSCALE) {
        cinfo.out_color_space = JCS_GRAYSCALE;
        channels = 1;
    } else if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        cinfo.out_color_space = JCS_CMYK;
        cmyk = 1;
    } else {
        cinfo.out_color_space = JCS_RGB;
    }
    jpeg_start_decompress(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height;
    int comps = cinfo.output_components;
    if (w == 0 || h == 0 || w * h > QD_IMAGE_MAX_PIXELS || comps != (cmyk ? 4 : channels)) {
        jpeg_destroy_decompress(&cinfo);
        if (comps != (cmyk ? 4 : channels))
            return qd_error_set(err, QD_STATUS_UNSUPPORTED,
                                "%s: unsupported JPEG colour layout (%d components)", what, comps);
        return qd_error_set(err, QD_STATUS_UNSUPPORTED, "%s: JPEG of %zux%zu pixels is too large",
                            what, w, h);
    }
    pix = qd_malloc(w * h * (size_t)channels);
    if (cmyk)
        row = qd_malloc(w * 4);
    if (!pix || (cmyk && !row)) {
        jpeg_destroy_decompress(&cinfo);
        qd_free(pix);
        qd_free(row);
        return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory decoding JPEG",
                            what);
    }
    /* Adobe CMYK JPEGs store inverted values (PIL reads them as "CMYK;I"). */
    int inverted = cinfo.saw_Adobe_marker;
    while (cinfo.output_scanline < cinfo.output_height) {
        size_t y = cinfo.output_scanline;
        JSAMPROW dst = cmyk ? row : pix + y * w * (size_t)channels;
        if (jpeg_read_scanlines(&cinfo, &dst, 1) != 1)
            break;
        if (cmyk) {
            unsigned char *o = pix + y * w * 3;
            for (size_t x = 0; x < w; x++) {
                unsigned c[4];
                for (int k = 0; k < 4; k++)
                    c[k] = inverted ? 255u - row[4 * x + (size_t)k] : row[4 * x + (size_t)k];
                unsigned nk = 255u - c[3];
                for (int k = 0; k < 3; k++) {
                    unsigned m = muldiv255(c[k], nk);
                    o[3 * x + (size_t)k] = (unsigned char)(nk > m ? nk - m : 0);
                }
            }
        }
    }
    if (cinfo.output_scanline < cinfo.output_height) {
        jpeg_destroy_decompress(&cinfo);
        qd_free(pix);
        qd_free(row);
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: corrupt JPEG: truncated", what);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    qd_free(row);
    out->width = (int)w;
    out->height = (int)h;
    out->channels = channels;
    out->data = pix;
    return QD_OK;
}

/* ---- PNG -------------------------------------------------------------- */

static qd_status decode_png(const unsigned char *data, size_t size, const char *what,
                            qd_image *out, qd_error *err)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&img, data, size)) {
        qd_status st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: corrupt PNG: %s", what,
                                    img.message);
        png_image_free(&img);
        return st;
    }
    int colour = (img.format & PNG_FORMAT_FLAG_COLOR) != 0;
    int alpha = (img.format & PNG_FORMAT_FLAG_ALPHA) != 0;
    size_t w = img.width, h = img.height;
    if (w == 0 || h == 0 || w * h > QD_IMAGE_MAX_PIXELS) {
        png_image_free(&img);
        return qd_error_set(err, QD_STATUS_UNSUPPORTED, "%s: PNG of %zux%zu pixels is too large",
                            what, w, h);
    }
    /* 8-bit output, alpha kept when present so it can be dropped rather than
     * composited (the simplified API would composite onto black). */
    img.format = colour ? (alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB)
                        : (alpha ? PNG_FORMAT_GA : PNG_FORMAT_GRAY);
    size_t in_ch = (size_t)(colour ? 3 : 1) + (alpha ? 1 : 0);
    unsigned char *buf = qd_malloc(w * h * in_ch);
    if (!buf) {
        png_image_free(&img);
        return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory decoding PNG", what);
    }
    if (!png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        qd_status st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: corrupt PNG: %s", what,
                                    img.message);
        png_image_free(&img);
        qd_free(buf);
        return st;
    }
    png_image_free(&img);
    size_t out_ch = colour ? 3 : 1;
    if (alpha) {
        for (size_t i = 0; i < w * h; i++)
            for (size_t k = 0; k < out_ch; k++)
                buf[i * out_ch + k] = buf[i * in_ch + k];
        unsigned char *shrunk = qd_realloc(buf, w * h * out_ch);
        if (shrunk)
            buf = shrunk;
    }
    out->width = (int)w;
    out->height = (int)h;
    out->channels = (int)out_ch;
    out->data = buf;
    return QD_OK;
}

/* ---- entry points ----------------------------------------------------- */

qd_status qd_image_decode(const void *data, size_t size, const char *what, qd_image *out,
                          qd_error *err)
{
    memset(out, 0, sizeof *out);
    const unsigned char *b = data;
    if (size >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        return decode_jpeg(b, size, what, out, err);
    if (size >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8))
        return decode_png(b, size, what, out, err);
    if (size == 0)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: empty file", what);
    return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: not a JPEG or PNG image", what);
}

qd_status qd_image_load(const char *path, qd_image *out, qd_error *err)
{
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) /* checked before opening: a FIFO would block */
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: %s", path, strerror(errno));
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: not a regular file", path);
    }
    if ((unsigned long long)sb.st_size > (1ull << 31)) {
        fclose(f);
        return qd_error_set(err, QD_STATUS_UNSUPPORTED, "%s: image file larger than 2 GiB", path);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *buf = qd_malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, size, f);
    int bad = ferror(f);
    fclose(f);
    qd_status st;
    if (bad || got != size)
        st = qd_error_set(err, QD_STATUS_IO_ERROR, "%s: read error", path);
    else
        st = qd_image_decode(buf, size, path, out, err);
    qd_free(buf);
    return st;
}

void qd_image_free(qd_image *img)
{
    if (!img)
        return;
    qd_free(img->data);
    memset(img, 0, sizeof *img);
}
