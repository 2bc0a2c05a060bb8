#include "data/preprocess.h"

#include <stddef.h>
#include <string.h>

#include "base/alloc.h"

void qd_resize_shorter_dims(int width, int height, int size, int *out_width, int *out_height)
{
    /* torchvision _compute_resized_output_size: the longer side is
     * int(size * long / short), a true division truncated. */
    int shorter = width <= height ? width : height;
    int longer = width <= height ? height : width;
    int new_long = (int)((double)((long long)size * longer) / (double)shorter);
    if (width <= height) {
        *out_width = size;
        *out_height = new_long;
    } else {
        *out_width = new_long;
        *out_height = size;
    }
}

int qd_center_crop_offset(int size, int crop)
{
    if (crop > size)
        return -((crop - size) / 2);
    int d = size - crop;
    /* Python's int(round(d / 2.0)): halves round to even. */
    int half = d / 2;
    if (d % 2 && half % 2)
        half++;
    return half;
}

typedef struct tap {
    int i0, i1;
    float l0, l1;
    int pad;
} tap;

/* Output index o of a crop at offset off from an image resized from in to
 * rs samples (rs == in: no resize). As PyTorch's CPU bilinear kernel
 * computes it (checked against torch 1.13 to 1 ulp): the scale in float,
 * the source index in double, the weight rounded to float. */
static void build_taps(int in, int rs, int off, int out, tap *t)
{
    float scale = (float)in / (float)rs;
    for (int o = 0; o < out; o++) {
        int r = o + off;
        tap *k = &t[o];
        memset(k, 0, sizeof *k);
        if (r < 0 || r >= rs) {
            k->pad = 1;
            continue;
        }
        if (rs == in) {
            k->i0 = k->i1 = r;
            k->l0 = 1.0f;
            k->l1 = 0.0f;
            continue;
        }
        double src = (double)scale * ((double)r + 0.5) - 0.5;
        if (src < 0.0)
            src = 0.0;
        int i0 = (int)src;
        if (i0 > in - 1)
            i0 = in - 1;
        k->i0 = i0;
        k->i1 = i0 + (i0 < in - 1 ? 1 : 0);
        double l1 = src - (double)i0;
        if (l1 < 0.0)
            l1 = 0.0;
        if (l1 > 1.0)
            l1 = 1.0;
        k->l1 = (float)l1;
        k->l0 = 1.0f - k->l1;
    }
}

qd_status qd_preprocess_image(const qd_preprocess *p, const qd_image_view *src, int c, int h,
                              int w, float *dst, qd_error *err)
{
    int sc = src->channels;
    if (c <= 0 || h <= 0 || w <= 0)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "bad model input size %dx%dx%d", c,
                            h, w);
    if (src->width <= 0 || src->height <= 0 || sc <= 0)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "empty image (%dx%dx%d)",
                            src->width, src->height, sc);
    if (!(sc == c || (sc == 1 && c == 3) || (sc == 3 && c == 1)))
        return qd_error_set(err, QD_STATUS_SHAPE_ERROR,
                            "cannot feed a %d-channel image to a %d-channel model input", sc, c);
    if (p->normalize) {
        if (c > QD_PREPROCESS_MAX_CHANNELS || !(p->n_mean == 1 || p->n_mean == c))
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                "%d mean/std values given for a %d-channel model input",
                                p->n_mean, c);
        for (int k = 0; k < p->n_mean; k++)
            if (!(p->std[k] != 0.0f))
                return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "std[%d] is zero", k);
    }
    int iw = src->width, ih = src->height;
    int rw, rh; /* size after the resize */
    switch (p->resize) {
    case QD_RESIZE_SHORTER:
        if (p->resize_size <= 0)
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "bad resize size %d",
                                p->resize_size);
        qd_resize_shorter_dims(iw, ih, p->resize_size, &rw, &rh);
        if (rw <= 0 || rh <= 0)
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                "resizing a %dx%d image to %d on the shorter side leaves nothing",
                                iw, ih, p->resize_size);
        break;
    case QD_RESIZE_DIRECT:
        rw = w;
        rh = h;
        break;
    default:
        rw = iw;
        rh = ih;
        break;
    }
    tap *ty = qd_malloc(sizeof(tap) * ((size_t)h + (size_t)w));
    if (!ty)
        return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    tap *tx = ty + h;
    build_taps(ih, rh, qd_center_crop_offset(rh, h), h, ty);
    build_taps(iw, rw, qd_center_crop_offset(rw, w), w, tx);

    /* The source as planes: base pointer, pixel stride, row stride. */
    const unsigned char *u8 = NULL;
    const float *f32 = NULL;
    void *grey = NULL;
    size_t npix = (size_t)iw * (size_t)ih;
    int pstride = 1, planes = sc;
    if (src->type == QD_PIXEL_U8_HWC) {
        u8 = src->data;
        pstride = sc;
        if (sc == 3 && c == 1) {
            unsigned char *g = qd_malloc(npix);
            if (!g) {
                qd_free(ty);
                return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "out of memory");
            }
            for (size_t i = 0; i < npix; i++) {
                unsigned v = u8[3 * i] * 19595u + u8[3 * i + 1] * 38470u +
                             u8[3 * i + 2] * 7471u + 0x8000u;
                g[i] = (unsigned char)(v >> 16);
            }
            u8 = g;
            grey = g;
            pstride = 1;
            planes = 1;
        }
    } else {
        f32 = src->data;
        if (sc == 3 && c == 1) {
            float *g = qd_malloc(npix * sizeof(float));
            if (!g) {
                qd_free(ty);
                return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "out of memory");
            }
            for (size_t i = 0; i < npix; i++)
                g[i] = 0.2989f * f32[i] + 0.587f * f32[npix + i] + 0.114f * f32[2 * npix + i];
            f32 = g;
            grey = g;
            planes = 1;
        }
    }
    float lut[256];
    for (int i = 0; i < 256; i++)
        lut[i] = (float)i / 255.0f;

    for (int ch = 0; ch < c; ch++) {
        int plane = planes == 1 ? 0 : ch;
        float mean = 0.0f, sd = 1.0f;
        if (p->normalize) {
            mean = p->mean[p->n_mean == 1 ? 0 : ch];
            sd = p->std[p->n_mean == 1 ? 0 : ch];
        }
        float *o = dst + (size_t)ch * (size_t)h * (size_t)w;
        for (int y = 0; y < h; y++) {
            const tap *a = &ty[y];
            for (int x = 0; x < w; x++) {
                const tap *b = &tx[x];
                float v;
                if (a->pad || b->pad) {
                    v = 0.0f;
                } else if (u8) {
                    size_t ps = (size_t)pstride, rowlen = (size_t)iw * ps;
                    const unsigned char *r0 = u8 + (size_t)a->i0 * rowlen + (size_t)plane;
                    const unsigned char *r1 = u8 + (size_t)a->i1 * rowlen + (size_t)plane;
                    size_t x0 = (size_t)b->i0 * ps, x1 = (size_t)b->i1 * ps;
                    float t0 = lut[r0[x0]] * b->l0 + lut[r0[x1]] * b->l1;
                    float t1 = lut[r1[x0]] * b->l0 + lut[r1[x1]] * b->l1;
                    v = t0 * a->l0 + t1 * a->l1;
                } else {
                    const float *pl = f32 + (size_t)plane * npix;
                    const float *r0 = pl + (size_t)a->i0 * (size_t)iw;
                    const float *r1 = pl + (size_t)a->i1 * (size_t)iw;
                    float t0 = r0[b->i0] * b->l0 + r0[b->i1] * b->l1;
                    float t1 = r1[b->i0] * b->l0 + r1[b->i1] * b->l1;
                    v = t0 * a->l0 + t1 * a->l1;
                }
                if (p->normalize)
                    v = (v - mean) / sd;
                o[(size_t)y * (size_t)w + (size_t)x] = v;
            }
        }
    }
    qd_free(grey);
    qd_free(ty);
    return QD_OK;
}
