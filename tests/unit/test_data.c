/* The dataset layer: IDX (Fashion-MNIST), image folders (JPEG/PNG written
 * here with libjpeg/libpng), .npy/.npz fixtures, torchvision-equivalent
 * preprocessing, and every bad input we can think of (each an error naming
 * the file, never a crash). Expected values marked "torchvision" were
 * computed with Debian's python3-torch 1.13 / torchvision 0.14:
 * F.resize(x, size, InterpolationMode.BILINEAR, antialias=False),
 * F.center_crop, F.normalize on x = uint8 / 255. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include "base/alloc.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/npy.h"
#include "data/preprocess.h"
#include "ir/tensor.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"

static const float IM_MEAN[3] = {0.485f, 0.456f, 0.406f};
static const float IM_STD[3] = {0.229f, 0.224f, 0.225f};

/* ---- files and folders ------------------------------------------------ */

static char g_tmp[256];
static char **g_paths;
static size_t g_npaths;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/qd_test_data_XXXXXX");
    return mkdtemp(g_tmp) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    (void)state;
    nftw(g_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (size_t i = 0; i < g_npaths; i++)
        free(g_paths[i]);
    free(g_paths);
    return 0;
}

/* A path under the temp dir; valid until the group's teardown. */

static const char *tmp_path(const char *rel)
{
    char *b = malloc(strlen(g_tmp) + strlen(rel) + 2);
    assert_non_null(b);
    sprintf(b, "%s/%s", g_tmp, rel);
    g_paths = realloc(g_paths, (g_npaths + 1) * sizeof *g_paths);
    assert_non_null(g_paths);
    g_paths[g_npaths++] = b;
    return b;
}

static void make_dir(const char *rel)
{
    assert_int_equal(mkdir(tmp_path(rel), 0755), 0);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)size + 1);
    assert_int_equal(fread(b, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *n = (size_t)size;
    return b;
}

static void write_png(const char *path, int w, int h, int channels, const unsigned char *px)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = channels == 1 ? PNG_FORMAT_GRAY : channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    assert_true(png_image_write_to_file(&img, path, 0, px, 0, NULL));
}

static void write_jpeg(const char *path, int w, int h, int channels, const unsigned char *px,
                       int quality)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = channels;
    c.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (channels == 3) /* no chroma subsampling: pixels stay close */
        for (int i = 0; i < 3; i++)
            c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * (size_t)w * (size_t)channels);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

/* The test images: RGB 13 x 9 and grey 10 x 7. */
#define RGB_W 13
#define RGB_H 9
#define GREY_W 10
#define GREY_H 7
static unsigned char g_rgb[RGB_H * RGB_W * 3];
static unsigned char g_grey[GREY_H * GREY_W];
/* Smooth ones for JPEG (lossy) checks, 24 x 16. */
#define SM_W 24
#define SM_H 16
static unsigned char g_smooth_rgb[SM_H * SM_W * 3];
static unsigned char g_smooth_grey[SM_H * SM_W];

static void make_patterns(void)
{
    for (int y = 0; y < RGB_H; y++)
        for (int x = 0; x < RGB_W; x++) {
            unsigned char *p = &g_rgb[(y * RGB_W + x) * 3];
            p[0] = (unsigned char)((x * 19 + y * 7) % 256);
            p[1] = (unsigned char)((x * 5 + y * 23 + 40) % 256);
            p[2] = (unsigned char)((x * x + y * 3) % 256);
        }
    for (int y = 0; y < GREY_H; y++)
        for (int x = 0; x < GREY_W; x++)
            g_grey[y * GREY_W + x] = (unsigned char)((x * 23 + y * 31) % 256);
    for (int y = 0; y < SM_H; y++)
        for (int x = 0; x < SM_W; x++) {
            unsigned char *p = &g_smooth_rgb[(y * SM_W + x) * 3];
            p[0] = (unsigned char)(40 + x * 6);
            p[1] = (unsigned char)(200 - y * 8);
            p[2] = (unsigned char)(60 + x * 2 + y * 3);
            g_smooth_grey[y * SM_W + x] = (unsigned char)(30 + x * 4 + y * 5);
        }
}

static void expect_error(qd_status st, const qd_error *err, const char *path, const char *what)
{
    if (st == QD_OK)
        fail_msg("expected an error naming %s", path);
    if (!strstr(err->message, path))
        fail_msg("error does not name %s: %s", path, err->message);
    if (what && !strstr(err->message, what))
        fail_msg("error does not say \"%s\": %s", what, err->message);
}

static void opts_mean(qd_dataset_options *o, int n, const float *mean, const float *std)
{
    o->n_mean = n;
    for (int i = 0; i < n; i++) {
        o->mean[i] = mean[i];
        o->std[i] = std[i];
    }
}

/* ---- an independent bilinear (double precision, written from the
 * formula: s = max(0, in/out * (d + 0.5) - 0.5)) --------------------------- */

static double ref_sample(const unsigned char *img, int w, int h, int sc, int ch, int rh, int rw,
                         int ry, int rx)
{
    double sy = (double)h / rh * (ry + 0.5) - 0.5, sx = (double)w / rw * (rx + 0.5) - 0.5;
    if (rh == h)
        sy = ry;
    if (rw == w)
        sx = rx;
    if (sy < 0)
        sy = 0;
    if (sx < 0)
        sx = 0;
    int y0 = (int)floor(sy), x0 = (int)floor(sx);
    int y1 = y0 + 1 < h ? y0 + 1 : h - 1, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
    double ly = sy - y0, lx = sx - x0;
#define PX(yy, xx) (img[((yy) * w + (xx)) * sc + ch] / 255.0)
    return (1 - ly) * ((1 - lx) * PX(y0, x0) + lx * PX(y0, x1)) +
           ly * ((1 - lx) * PX(y1, x0) + lx * PX(y1, x1));
#undef PX
}

static int ref_offset(int size, int crop)
{
    if (crop > size)
        return -((crop - size) / 2);
    return (int)nearbyint((size - crop) / 2.0); /* ties to even */
}

/* resize: 0 none, else the shorter side. Output c x oh x ow. */
static void ref_pipeline(const unsigned char *img, int w, int h, int sc, int resize, int c, int oh,
                         int ow, const float *mean, const float *std, double *out)
{
    int rw = w, rh = h;
    if (resize > 0) {
        if (w <= h) {
            rw = resize;
            rh = (int)((double)resize * h / w);
        } else {
            rh = resize;
            rw = (int)((double)resize * w / h);
        }
    }
    int ty = ref_offset(rh, oh), tx = ref_offset(rw, ow);
    for (int k = 0; k < c; k++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                int ry = y + ty, rx = x + tx;
                double v = 0;
                if (ry >= 0 && ry < rh && rx >= 0 && rx < rw)
                    v = ref_sample(img, w, h, sc, sc == 1 ? 0 : k, rh, rw, ry, rx);
                out[(k * oh + y) * ow + x] = (v - mean[k]) / std[k];
            }
}

/* ---- preprocessing geometry ------------------------------------------- */

static void test_geometry(void **state)
{
    (void)state;
    int w, h;
    qd_resize_shorter_dims(13, 9, 11, &w, &h);
    assert_int_equal(w, 15); /* int(11 * 13 / 9) = int(15.9) */
    assert_int_equal(h, 11);
    qd_resize_shorter_dims(9, 13, 11, &w, &h);
    assert_int_equal(w, 11);
    assert_int_equal(h, 15);
    qd_resize_shorter_dims(500, 375, 256, &w, &h);
    assert_int_equal(w, 341);
    assert_int_equal(h, 256);
    qd_resize_shorter_dims(10, 10, 256, &w, &h);
    assert_int_equal(w, 256);
    assert_int_equal(h, 256);
    /* CenterCrop: int(round((size - crop) / 2)), halves to even; padding
     * (crop - size) // 2 before */
    assert_int_equal(qd_center_crop_offset(11, 8), 2); /* 1.5 -> 2 */
    assert_int_equal(qd_center_crop_offset(13, 8), 2); /* 2.5 -> 2 */
    assert_int_equal(qd_center_crop_offset(15, 8), 4); /* 3.5 -> 4 */
    assert_int_equal(qd_center_crop_offset(10, 8), 1);
    assert_int_equal(qd_center_crop_offset(256, 224), 16);
    assert_int_equal(qd_center_crop_offset(8, 8), 0);
    assert_int_equal(qd_center_crop_offset(7, 12), -2);
    assert_int_equal(qd_center_crop_offset(10, 12), -1);
    assert_int_equal(qd_center_crop_offset(9, 12), -1);
}

/* ---- IDX: the real Fashion-MNIST files -------------------------------- */

static void test_idx_fashion(void **state)
{
    (void)state;
    qd_dataset_options o;
    qd_dataset_options_init(&o);
    o.labels = FMNIST "t10k-labels-idx1-ubyte.gz";
    const float m = 0.2860f, s = 0.3530f;
    opts_mean(&o, 1, &m, &s);
    qd_error err = {0};
    qd_dataset *ds = NULL;
    assert_int_equal(qd_dataset_open(FMNIST "t10k-images-idx3-ubyte.gz", &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_get_kind(ds), QD_DATASET_IDX);
    assert_int_equal(qd_dataset_count(ds), 10000);
    assert_true(qd_dataset_has_labels(ds));
    assert_int_equal(qd_dataset_num_classes(ds), 10);
    /* numpy on the .gz: labels[:10] = 9 2 1 1 6 1 4 6 5 7, [-3:] = 8 1 5 */
    const int first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    for (int i = 0; i < 10; i++)
        assert_int_equal(qd_dataset_label(ds, i), first[i]);
    assert_int_equal(qd_dataset_label(ds, 9997), 8);
    assert_int_equal(qd_dataset_label(ds, 9998), 1);
    assert_int_equal(qd_dataset_label(ds, 9999), 5);
    assert_int_equal(qd_dataset_label(ds, 10000), -1);
    int hist[10] = {0};
    for (int i = 0; i < 10000; i++)
        hist[qd_dataset_label(ds, i)]++;
    for (int k = 0; k < 10; k++)
        assert_int_equal(hist[k], 1000);
    char desc[256];
    qd_dataset_describe(ds, desc, sizeof desc);
    assert_non_null(strstr(desc, "10000 items 1x28x28"));

    /* 1 x 28 x 28: no resize; (x / 255 - mean) / std. numpy:
     * img[0, 14, 10:18] = 0 0 98 136 110 109 110 162,
     * img[1, 5, 5:12] = 248 241 231 255 149 47 252,
     * img[9999, 20, 10:14] = 57 60 64 57 */
    float *b = malloc(4 * 28 * 28 * sizeof(float));
    int64_t lab[4], n = 0, next = 0;
    assert_int_equal(qd_dataset_read(ds, 0, 4, 1, 28, 28, b, lab, &n, &next, &err), QD_OK);
    assert_int_equal(n, 4);
    assert_int_equal(next, 4);
    assert_int_equal(lab[0], 9);
    assert_int_equal(lab[3], 1);
    const int r0[8] = {0, 0, 98, 136, 110, 109, 110, 162};
    for (int x = 0; x < 8; x++)
        assert_float_equal(b[14 * 28 + 10 + x], (r0[x] / 255.0f - m) / s, 1e-6);
    const int r1[7] = {248, 241, 231, 255, 149, 47, 252};
    for (int x = 0; x < 7; x++)
        assert_float_equal(b[28 * 28 + 5 * 28 + 5 + x], (r1[x] / 255.0f - m) / s, 1e-6);
    /* the tail: a short last batch */
    assert_int_equal(qd_dataset_read(ds, 9999, 4, 1, 28, 28, b, lab, &n, &next, &err), QD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(next, 10000);
    assert_int_equal(lab[0], 5);
    const int r2[4] = {57, 60, 64, 57};
    for (int x = 0; x < 4; x++)
        assert_float_equal(b[20 * 28 + 10 + x], (r2[x] / 255.0f - m) / s, 1e-6);
    free(b);

    /* 1 x 32 x 32: bilinear straight to the model size. torchvision on
     * item 0: (16,12) -0.8090267, (5,20) -0.8101984, (31,31) -0.8101984,
     * (20,27) 0.9298764 */
    b = malloc(2 * 32 * 32 * sizeof(float));
    assert_int_equal(qd_dataset_read(ds, 0, 2, 1, 32, 32, b, NULL, &n, NULL, &err), QD_OK);
    assert_float_equal(b[16 * 32 + 12], -0.8090267f, 1e-6);
    assert_float_equal(b[5 * 32 + 20], -0.8101984f, 1e-6);
    assert_float_equal(b[31 * 32 + 31], -0.8101984f, 1e-6);
    assert_float_equal(b[20 * 32 + 27], 0.9298764f, 1e-6);
    free(b);

    /* a 3-channel model gets the grey replicated */
    b = malloc(3 * 28 * 28 * sizeof(float));
    assert_int_equal(qd_dataset_read(ds, 0, 1, 3, 28, 28, b, NULL, &n, NULL, &err), QD_OK);
    for (int i = 0; i < 28 * 28; i++) {
        assert_float_equal(b[i], b[28 * 28 + i], 0);
        assert_float_equal(b[i], b[2 * 28 * 28 + i], 0);
    }
    free(b);
    qd_dataset_delete(ds);

    /* shuffled: same items, another order, fixed by the seed */
    o.shuffle = 1;
    o.seed = 7;
    assert_int_equal(qd_dataset_open(FMNIST "t10k-images-idx3-ubyte.gz", &o, &ds, &err), QD_OK);
    int same = 0;
    memset(hist, 0, sizeof hist);
    for (int i = 0; i < 10000; i++) {
        hist[qd_dataset_label(ds, i)]++;
        same += i < 10 && qd_dataset_label(ds, i) == first[i];
    }
    for (int k = 0; k < 10; k++)
        assert_int_equal(hist[k], 1000);
    assert_true(same < 10);
    qd_dataset_delete(ds);

    /* the training split, no labels */
    assert_int_equal(qd_dataset_open(FMNIST "train-images-idx3-ubyte.gz", NULL, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_count(ds), 60000);
    assert_false(qd_dataset_has_labels(ds));
    assert_int_equal(qd_dataset_label(ds, 0), -1);
    qd_dataset_delete(ds);
}

/* ---- IDX: bad files --------------------------------------------------- */

static void idx_header(unsigned char *h, int rank, const unsigned *dims)
{
    h[0] = 0, h[1] = 0, h[2] = 0x08, h[3] = (unsigned char)rank;
    for (int i = 0; i < rank; i++) {
        h[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        h[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        h[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        h[7 + 4 * i] = (unsigned char)dims[i];
    }
}

static void write_gz(const char *path, const void *data, size_t n)
{
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, data, (unsigned)n), (int)n);
    assert_int_equal(gzclose(f), Z_OK);
}

static void open_fails(const char *path, const qd_dataset_options *o, const char *name,
                       const char *what)
{
    qd_error err = {0};
    qd_dataset *ds = (qd_dataset *)1;
    qd_status st = qd_dataset_open(path, o, &ds, &err);
    if (st == QD_OK) {
        qd_dataset_delete(ds);
        fail_msg("opening %s succeeded; expected an error naming %s", path, name);
    }
    assert_null(ds);
    expect_error(st, &err, name, what);
}

static void test_idx_bad(void **state)
{
    (void)state;
    make_dir("idx");
    /* a valid small file: 3 images of 4 x 4 */
    unsigned char file[16 + 3 * 16 + 8];
    const unsigned dims[3] = {3, 4, 4};
    idx_header(file, 3, dims);
    for (int i = 0; i < 48; i++)
        file[16 + i] = (unsigned char)(i * 5);
    const char *ok = tmp_path("idx/ok-images-idx3-ubyte");
    write_bytes(ok, file, 16 + 48);
    qd_error err = {0};
    qd_dataset *ds = NULL;
    qd_dataset_options o;
    qd_dataset_options_init(&o);
    const float m = 0.0f, s = 1.0f;
    opts_mean(&o, 1, &m, &s);
    assert_int_equal(qd_dataset_open(ok, &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_count(ds), 3);
    float b[16];
    assert_int_equal(qd_dataset_read(ds, 2, 1, 1, 4, 4, b, NULL, NULL, NULL, &err), QD_OK);
    assert_float_equal(b[5], (float)((32 + 5) * 5) / 255.0f, 1e-7);
    qd_dataset_delete(ds);
    /* gzip of the same is the same */
    write_gz(tmp_path("idx/ok.gz"), file, 16 + 48);
    assert_int_equal(qd_dataset_open(tmp_path("idx/ok.gz"), &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_count(ds), 3);
    qd_dataset_delete(ds);

    /* dims that do not match the size: short and long */
    const char *p = tmp_path("idx/short-images-idx3-ubyte");
    write_bytes(p, file, 16 + 40);
    open_fails(p, &o, p, "truncated");
    p = tmp_path("idx/long-images-idx3-ubyte");
    write_bytes(p, file, 16 + 48 + 8);
    open_fails(p, &o, p, "do not match");
    p = tmp_path("idx/header-only-idx3-ubyte");
    write_bytes(p, file, 10);
    open_fails(p, &o, p, "truncated IDX header");
    /* wrong magic: not IDX at all, another element type, labels as images */
    unsigned char bad[64];
    memcpy(bad, file, sizeof bad);
    bad[0] = 0x12;
    p = tmp_path("idx/magic-images-idx3-ubyte");
    write_bytes(p, bad, 64);
    open_fails(p, &o, p, "bad magic");
    bad[0] = 0, bad[2] = 0x0d;
    p = tmp_path("idx/float-images-idx3-ubyte");
    write_bytes(p, bad, 64);
    open_fails(p, &o, p, "0x0d");
    p = tmp_path("idx/mystery.bin");
    write_bytes(p, "hello, world", 12);
    open_fails(p, &o, p, "unknown dataset format");
    unsigned char lab[8 + 3] = {0};
    const unsigned ldims[1] = {3};
    idx_header(lab, 1, ldims);
    lab[8] = 1, lab[9] = 0, lab[10] = 2;
    const char *lp = tmp_path("idx/labels-idx1-ubyte");
    write_bytes(lp, lab, 11);
    open_fails(lp, &o, lp, "looks like labels");
    /* labels: fine, wrong count, wrong magic */
    o.labels = lp;
    assert_int_equal(qd_dataset_open(ok, &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_label(ds, 2), 2);
    assert_int_equal(qd_dataset_num_classes(ds), 3);
    qd_dataset_delete(ds);
    const unsigned ldims2[1] = {2};
    idx_header(lab, 1, ldims2);
    const char *lp2 = tmp_path("idx/two-labels-idx1-ubyte");
    write_bytes(lp2, lab, 10);
    o.labels = lp2;
    open_fails(ok, &o, lp2, "2 labels for 3 items");
    o.labels = ok; /* images given as labels */
    open_fails(ok, &o, ok, "expected 0x00000801");
    o.labels = tmp_path("idx/missing-labels");
    open_fails(ok, &o, "missing-labels", "No such file");
    o.labels = NULL;

    /* truncated and corrupt gzip: the real Fashion-MNIST test images, cut */
    size_t n = 0;
    unsigned char *gz = read_bytes(FMNIST "t10k-images-idx3-ubyte.gz", &n);
    p = tmp_path("idx/cut-images-idx3-ubyte.gz");
    write_bytes(p, gz, n / 2);
    open_fails(p, &o, p, "truncated");
    p = tmp_path("idx/cut-trailer-images-idx3-ubyte.gz");
    write_bytes(p, gz, n - 4); /* all the data, half the trailer */
    {
        /* zlib's gzread does not notice a cut trailer once every data byte
         * is out: either an error naming the file or all the data */
        qd_error e2 = {0};
        qd_status st = qd_dataset_open(p, &o, &ds, &e2);
        if (st == QD_OK)
            assert_int_equal(qd_dataset_count(ds), 10000);
        else
            expect_error(st, &e2, p, NULL);
        qd_dataset_delete(ds);
        ds = NULL;
    }
    p = tmp_path("idx/header-cut-images-idx3-ubyte.gz");
    write_bytes(p, gz, 12); /* inside the gzip header */
    open_fails(p, &o, p, NULL);
    for (size_t k = n / 3; k < n / 3 + 64; k++)
        gz[k] ^= 0x5a;
    p = tmp_path("idx/flipped-images-idx3-ubyte.gz");
    write_bytes(p, gz, n);
    open_fails(p, &o, p, NULL);
    free(gz);
    /* a truncated labels .gz */
    gz = read_bytes(FMNIST "t10k-labels-idx1-ubyte.gz", &n);
    p = tmp_path("idx/cut-labels-idx1-ubyte.gz");
    write_bytes(p, gz, n - 100);
    free(gz);
    o.labels = p;
    open_fails(FMNIST "t10k-images-idx3-ubyte.gz", &o, p, "truncated");
    o.labels = NULL;
    /* empty files */
    p = tmp_path("idx/empty-idx3-ubyte");
    write_bytes(p, "", 0);
    open_fails(p, &o, p, NULL);
    /* N = 0 images */
    const unsigned zdims[3] = {0, 4, 4};
    idx_header(file, 3, zdims);
    p = tmp_path("idx/none-idx3-ubyte");
    write_bytes(p, file, 16);
    open_fails(p, &o, p, "empty");
    /* a huge claimed size with little data: an error, not a huge allocation */
    const unsigned hdims[3] = {4000000000u, 1000, 1000};
    idx_header(file, 3, hdims);
    p = tmp_path("idx/huge-idx3-ubyte");
    write_bytes(p, file, 16 + 48);
    open_fails(p, &o, p, NULL);
}

static const char *fixture(const char *name)
{
    static char bufs[4][512];
    static int k;
    const char *root = getenv("QD_FIXTURES");
    char *b = bufs[k++ % 4];
    snprintf(b, 512, "%s/data/%s", root ? root : "tests/fixtures", name);
    return b;
}

/* ---- image folders ---------------------------------------------------- */

/* root/ant/{y.jpg (RGB), z.png (grey)}, root/cat/{A.JPG (grey), b.png
 * (RGB), notes.txt, sub/c.jpeg (RGB)}; sorted: ant = 0, cat = 1. */
static void make_folder(void)
{
    make_dir("root");
    make_dir("root/ant");
    make_dir("root/cat");
    make_dir("root/cat/sub");
    write_jpeg(tmp_path("root/ant/y.jpg"), SM_W, SM_H, 3, g_smooth_rgb, 100);
    write_png(tmp_path("root/ant/z.png"), GREY_W, GREY_H, 1, g_grey);
    write_jpeg(tmp_path("root/cat/A.JPG"), SM_W, SM_H, 1, g_smooth_grey, 100);
    write_png(tmp_path("root/cat/b.png"), RGB_W, RGB_H, 3, g_rgb);
    write_bytes(tmp_path("root/cat/notes.txt"), "not an image", 12);
    write_jpeg(tmp_path("root/cat/sub/c.jpeg"), SM_W, SM_H, 3, g_smooth_rgb, 90);
}

static void expect_close_ref(const float *got, const double *want, size_t n, double tol)
{
    for (size_t i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > tol)
            fail_msg("element %zu: got %.7f, want %.7f", i, (double)got[i], want[i]);
}

static void test_folder(void **state)
{
    (void)state;
    make_folder();
    const char *root = tmp_path("root");
    qd_dataset_options o;
    qd_dataset_options_init(&o);
    qd_error err = {0};
    qd_dataset *ds = NULL;
    assert_int_equal(qd_dataset_open(root, &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_get_kind(ds), QD_DATASET_FOLDER);
    assert_int_equal(qd_dataset_count(ds), 5);
    assert_int_equal(qd_dataset_num_classes(ds), 2);
    assert_string_equal(qd_dataset_class_name(ds, 0), "ant");
    assert_string_equal(qd_dataset_class_name(ds, 1), "cat");
    const char *order[5] = {"root/ant/y.jpg", "root/ant/z.png", "root/cat/A.JPG",
                            "root/cat/b.png", "root/cat/sub/c.jpeg"};
    const int labels[5] = {0, 0, 1, 1, 1};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(qd_dataset_item_path(ds, i), tmp_path(order[i]));
        assert_int_equal(qd_dataset_label(ds, i), labels[i]);
    }

    /* Defaults for an 8 x 8 model: shorter side to int(8 * 256 / 224) = 9,
     * center crop 8, ImageNet mean/std. b.png (13 x 9 RGB), torchvision. */
    float b[5 * 3 * 12 * 12];
    double want[3 * 12 * 12];
    int64_t lab[5], n = 0, next = 0;
    assert_int_equal(qd_dataset_read(ds, 3, 1, 3, 8, 8, b, lab, &n, &next, &err), QD_OK);
    assert_int_equal(lab[0], 1);
    const int pos[6][3] = {{0, 0, 0}, {1, 3, 5}, {2, 7, 7}, {0, 4, 2}, {1, 0, 7}, {2, 6, 1}};
    const float want_c[6] = {-1.4671633f, 0.4852942f, -0.0266666f,
                             -0.3369296f, -0.547619f, -1.3338562f};
    for (int k = 0; k < 6; k++)
        assert_float_equal(b[(pos[k][0] * 8 + pos[k][1]) * 8 + pos[k][2]], want_c[k], 1e-6);
    ref_pipeline(g_rgb, RGB_W, RGB_H, 3, 9, 3, 8, 8, IM_MEAN, IM_STD, want);
    expect_close_ref(b, want, 3 * 64, 1e-5);
    /* the whole folder in one batch: every image decodes */
    assert_int_equal(qd_dataset_read(ds, 0, 5, 3, 8, 8, b, lab, &n, &next, &err), QD_OK);
    assert_int_equal(n, 5);
    assert_int_equal(next, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(lab[i], labels[i]);
    qd_dataset_delete(ds);

    /* Resize(11) + CenterCrop(8): crop offsets 1.5 -> 2 and 3.5 -> 4
     * (halves to even). torchvision values. */
    o.resize_size = 11;
    o.crop_size = 8;
    assert_int_equal(qd_dataset_open(root, &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_read(ds, 3, 1, 3, 8, 8, b, NULL, NULL, NULL, &err), QD_OK);
    const float want_a[6] = {-0.8263861f, 0.9521476f, 0.1421324f,
                             0.1299017f, 0.1155251f, -1.1462545f};
    for (int k = 0; k < 6; k++)
        assert_float_equal(b[(pos[k][0] * 8 + pos[k][1]) * 8 + pos[k][2]], want_a[k], 1e-6);
    ref_pipeline(g_rgb, RGB_W, RGB_H, 3, 11, 3, 8, 8, IM_MEAN, IM_STD, want);
    expect_close_ref(b, want, 3 * 64, 1e-5);
    /* the grey PNG replicated to RGB, upsampled (7 -> 11) */
    assert_int_equal(qd_dataset_read(ds, 1, 1, 3, 8, 8, b, NULL, NULL, NULL, &err), QD_OK);
    ref_pipeline(g_grey, GREY_W, GREY_H, 1, 11, 3, 8, 8, IM_MEAN, IM_STD, want);
    expect_close_ref(b, want, 3 * 64, 1e-5);
    /* a crop size that is not the model's */
    qd_status st = qd_dataset_read(ds, 0, 1, 3, 9, 9, b, NULL, NULL, NULL, &err);
    expect_error(st, &err, root, "crop size 8");
    qd_dataset_delete(ds);

    /* RGB into a 1-channel model: PIL "L", then Resize(11), CenterCrop(8),
     * Normalize(0.5, 0.25). torchvision (on PIL's convert("L")). */
    const float m5 = 0.5f, s25 = 0.25f;
    opts_mean(&o, 1, &m5, &s25);
    assert_int_equal(qd_dataset_open(root, &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_read(ds, 3, 1, 1, 8, 8, b, NULL, NULL, NULL, &err), QD_OK);
    assert_float_equal(b[0], -0.7650623f, 1e-6);
    assert_float_equal(b[3 * 8 + 5], 0.5150328f, 1e-6);
    assert_float_equal(b[7 * 8 + 7], 0.9853358f, 1e-6);
    assert_float_equal(b[4 * 8 + 2], 0.3125372f, 1e-6);
    qd_dataset_delete(ds);

    /* No resize, CenterCrop(12) larger than the grey 10 x 7 image: zero
     * padding (1 left, 2 top) before Normalize. torchvision values. */
    qd_dataset_options_init(&o);
    o.resize_size = 0;
    assert_int_equal(qd_dataset_open(root, &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_read(ds, 1, 1, 3, 12, 12, b, NULL, NULL, NULL, &err), QD_OK);
    assert_float_equal(b[0], -2.1179039f, 1e-6);                          /* (0,0,0) pad */
    assert_float_equal(b[(2 * 12 + 3) * 12 + 5], 0.3393465f, 1e-6);      /* (2,3,5) */
    assert_float_equal(b[(0 * 12 + 9) * 12 + 9], -2.1179039f, 1e-6);     /* (0,9,9) pad */
    assert_float_equal(b[(1 * 12 + 11) * 12 + 11], -2.0357141f, 1e-6);   /* (1,11,11) pad */
    assert_float_equal(b[(2 * 12 + 5) * 12 + 10], -1.0375599f, 1e-6);    /* (2,5,10) */
    assert_float_equal(b[(1 * 12 + 2) * 12 + 2], (23 / 255.0f - 0.456f) / 0.224f, 1e-6);
    ref_pipeline(g_grey, GREY_W, GREY_H, 1, 0, 3, 12, 12, IM_MEAN, IM_STD, want);
    expect_close_ref(b, want, 3 * 144, 1e-5);
    qd_dataset_delete(ds);

    /* JPEG pixels: model = image size, no resize, mean 0, std 1 -> x / 255 */
    const float z = 0.0f, one = 1.0f;
    opts_mean(&o, 1, &z, &one);
    assert_int_equal(qd_dataset_open(root, &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_read(ds, 0, 1, 3, SM_H, SM_W, b, NULL, NULL, NULL, &err), QD_OK);
    double sum = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < SM_H * SM_W; i++)
            sum += fabs(b[c * SM_H * SM_W + i] * 255.0 - g_smooth_rgb[i * 3 + c]);
    assert_true(sum / (3 * SM_H * SM_W) < 2.0); /* quality 100, no subsampling */
    /* the grey JPEG into 3 channels: replicated exactly, close to the source */
    assert_int_equal(qd_dataset_read(ds, 2, 1, 3, SM_H, SM_W, b, NULL, NULL, NULL, &err), QD_OK);
    for (int i = 0; i < SM_H * SM_W; i++) {
        assert_float_equal(b[i], b[SM_H * SM_W + i], 0);
        assert_float_equal(b[i], b[2 * SM_H * SM_W + i], 0);
        assert_true(fabs(b[i] * 255.0 - g_smooth_grey[i]) <= 2.0);
    }
    /* and into 1 channel as it is */
    assert_int_equal(qd_dataset_read(ds, 2, 1, 1, SM_H, SM_W, b, NULL, NULL, NULL, &err), QD_OK);
    for (int i = 0; i < SM_H * SM_W; i++)
        assert_true(fabs(b[i] * 255.0 - g_smooth_grey[i]) <= 2.0);
    qd_dataset_delete(ds);

    /* PyTorch's rounding on a real-sized image (500 x 375 -> Resize(256) ->
     * 341 x 256 -> CenterCrop(224)): the float scale 500/341 moves the
     * source index by up to ~2e-5, so torch differs from exact arithmetic
     * by ~8e-6 here; we follow torch (to ~1e-7). torchvision values. */
    {
        make_dir("big");
        make_dir("big/c");
        unsigned char *g = malloc(375 * 500);
        for (int y = 0; y < 375; y++)
            for (int x = 0; x < 500; x++)
                g[y * 500 + x] = (unsigned char)((x * 37 + y * 11 + (x * y) % 7) % 256);
        write_png(tmp_path("big/c/g.png"), 500, 375, 1, g);
        qd_dataset_options_init(&o);
        o.resize_size = 256;
        o.crop_size = 224;
        opts_mean(&o, 1, &z, &one);
        assert_int_equal(qd_dataset_open(tmp_path("big"), &o, &ds, &err), QD_OK);
        float *big = malloc(224 * 224 * sizeof(float));
        assert_int_equal(qd_dataset_read(ds, 0, 1, 1, 224, 224, big, NULL, NULL, NULL, &err),
                         QD_OK);
        assert_float_equal(big[148 * 224 + 223], 0.6757165193557739f, 2e-7);
        assert_float_equal(big[181 * 224 + 223], 0.7550460696220398f, 2e-7);
        assert_float_equal(big[133 * 224 + 223], 0.7346335649490356f, 2e-7);
        assert_float_equal(big[85 * 224 + 223], 0.7142210602760315f, 2e-7);
        double *ref = malloc(224 * 224 * sizeof(double));
        const float m0 = 0.0f, s1 = 1.0f;
        ref_pipeline(g, 500, 375, 1, 256, 1, 224, 224, &m0, &s1, ref);
        expect_close_ref(big, ref, 224 * 224, 2e-5);
        free(ref);
        free(big);
        free(g);
        qd_dataset_delete(ds);
    }

    /* a labels file with a folder is refused */
    qd_dataset_options_init(&o);
    o.labels = FMNIST "t10k-labels-idx1-ubyte.gz";
    open_fails(root, &o, root, "class folders");
}

/* The image decoder on its own: PNG with alpha (dropped), palette. */
static void test_image_decode(void **state)
{
    (void)state;
    make_dir("img");
    unsigned char rgba[4 * 3 * 4];
    for (int i = 0; i < 12; i++) {
        rgba[4 * i] = (unsigned char)(i * 20);
        rgba[4 * i + 1] = (unsigned char)(255 - i * 20);
        rgba[4 * i + 2] = (unsigned char)(i * 7);
        rgba[4 * i + 3] = (unsigned char)(i * 21); /* varied alpha */
    }
    const char *p = tmp_path("img/alpha.png");
    write_png(p, 4, 3, 4, rgba);
    qd_image img;
    qd_error err = {0};
    assert_int_equal(qd_image_load(p, &img, &err), QD_OK);
    assert_int_equal(img.channels, 3);
    assert_int_equal(img.width, 4);
    assert_int_equal(img.height, 3);
    for (int i = 0; i < 12; i++)
        for (int k = 0; k < 3; k++)
            assert_int_equal(img.data[3 * i + k], rgba[4 * i + k]); /* not composited */
    qd_image_free(&img);
    qd_image_free(&img); /* twice is fine */

    /* JPEGs written by PIL (4:2:0 RGB, Adobe CMYK): the pixels PIL's
     * convert("RGB") gives, exactly (make_fixtures.py prints them) */
    static const struct {
        const char *name;
        unsigned char px[4][3];
    } pil[2] = {
        {"pil_rgb.jpg", {{0, 64, 128}, {110, 177, 232}, {216, 38, 100}, {133, 188, 191}}},
        {"pil_cmyk.jpg", {{105, 84, 64}, {18, 13, 8}, {60, 24, 173}, {13, 9, 5}}},
    };
    const int at[4][2] = {{0, 0}, {5, 7}, {11, 15}, {3, 12}};
    for (int f = 0; f < 2; f++) {
        assert_int_equal(qd_image_load(fixture(pil[f].name), &img, &err), QD_OK);
        assert_int_equal(img.width, 16);
        assert_int_equal(img.height, 12);
        assert_int_equal(img.channels, 3);
        for (int k = 0; k < 4; k++)
            assert_memory_equal(&img.data[(at[k][0] * 16 + at[k][1]) * 3], pil[f].px[k], 3);
        qd_image_free(&img);
    }
}

static void test_folder_bad(void **state)
{
    (void)state;
    qd_dataset_options o;
    qd_dataset_options_init(&o);
    qd_error err = {0};
    qd_dataset *ds = NULL;

    /* an empty folder; a folder of files only; a class with no images */
    make_dir("empty");
    open_fails(tmp_path("empty"), &o, tmp_path("empty"), "no class sub-folders");
    make_dir("flat");
    write_png(tmp_path("flat/a.png"), GREY_W, GREY_H, 1, g_grey);
    open_fails(tmp_path("flat"), &o, tmp_path("flat"), "no class sub-folders");
    make_dir("noimg");
    make_dir("noimg/a");
    make_dir("noimg/b");
    write_png(tmp_path("noimg/a/x.png"), GREY_W, GREY_H, 1, g_grey);
    write_bytes(tmp_path("noimg/b/readme.txt"), "x", 1);
    make_dir("noimg/b/deeper");
    open_fails(tmp_path("noimg"), &o, tmp_path("noimg/b"), "no .jpg/.jpeg/.png images");
    open_fails(tmp_path("does-not-exist"), &o, "does-not-exist", "No such file");
    /* a single image is not a dataset */
    open_fails(tmp_path("flat/a.png"), &o, tmp_path("flat/a.png"), "single image");

    /* A folder with good and bad images:
     *   good/0_ok.png, 1_garbage.jpg (JPEG magic, then noise),
     *   2_trunc.jpg (a JPEG cut in half), 3_text.png (not an image),
     *   4_crc.png (a flipped byte in IDAT), 5_cut.png (cut in half),
     *   6_empty.jpg (0 bytes), 7_ok.jpg, 8_headeronly.jpg (SOI only) */
    make_dir("bad");
    make_dir("bad/good");
    write_png(tmp_path("bad/good/0_ok.png"), RGB_W, RGB_H, 3, g_rgb);
    unsigned char garbage[600];
    garbage[0] = 0xff, garbage[1] = 0xd8, garbage[2] = 0xff, garbage[3] = 0xe0;
    for (int i = 4; i < 600; i++)
        garbage[i] = (unsigned char)(i * 37 + 11);
    write_bytes(tmp_path("bad/good/1_garbage.jpg"), garbage, sizeof garbage);
    write_jpeg(tmp_path("bad/good/7_ok.jpg"), SM_W, SM_H, 3, g_smooth_rgb, 90);
    size_t n = 0;
    unsigned char *jp = read_bytes(tmp_path("bad/good/7_ok.jpg"), &n);
    write_bytes(tmp_path("bad/good/2_trunc.jpg"), jp, n / 2);
    write_bytes(tmp_path("bad/good/8_headeronly.jpg"), jp, 4);
    free(jp);
    write_bytes(tmp_path("bad/good/3_text.png"), "hello, I am not a PNG", 21);
    unsigned char *pn = read_bytes(tmp_path("bad/good/0_ok.png"), &n);
    write_bytes(tmp_path("bad/good/5_cut.png"), pn, n / 2);
    pn[n - 20] ^= 0x40; /* inside IDAT (before the IEND chunk) */
    write_bytes(tmp_path("bad/good/4_crc.png"), pn, n);
    free(pn);
    write_bytes(tmp_path("bad/good/6_empty.jpg"), "", 0);

    /* each bad file on its own is an error naming it */
    const char *bads[7] = {"1_garbage.jpg", "2_trunc.jpg", "3_text.png", "4_crc.png",
                           "5_cut.png", "6_empty.jpg", "8_headeronly.jpg"};
    for (int k = 0; k < 7; k++) {
        qd_image img;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmp_path("bad/good"), bads[k]);
        expect_error(qd_image_load(path, &img, &err), &err, path, NULL);
        assert_null(img.data);
    }
    expect_error(qd_image_load(tmp_path("bad/good/2_trunc.jpg"), &(qd_image){0}, &err), &err,
                 "2_trunc.jpg", "truncated");
    expect_error(qd_image_load(tmp_path("bad/good/3_text.png"), &(qd_image){0}, &err), &err,
                 "3_text.png", "not a JPEG or PNG");

    assert_int_equal(qd_dataset_open(tmp_path("bad"), &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_count(ds), 9);
    float b[9 * 3 * 8 * 8];
    int64_t lab[9], got = 0, next = 0;
    /* without skip_bad: item 0 is fine, item 1 is the first error */
    assert_int_equal(qd_dataset_read(ds, 0, 1, 3, 8, 8, b, lab, &got, &next, &err), QD_OK);
    qd_status st = qd_dataset_read(ds, 0, 4, 3, 8, 8, b, lab, &got, &next, &err);
    expect_error(st, &err, tmp_path("bad/good/1_garbage.jpg"), "(item 1)");
    assert_int_equal(got, 1);
    assert_int_equal(next, 1);
    st = qd_dataset_read(ds, 2, 1, 3, 8, 8, b, lab, &got, &next, &err);
    expect_error(st, &err, tmp_path("bad/good/2_trunc.jpg"), "(item 2)");
    qd_dataset_delete(ds);

    /* with skip_bad: bad images are skipped and counted, the batch filled
     * from later items */
    o.skip_bad = 1;
    assert_int_equal(qd_dataset_open(tmp_path("bad"), &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_read(ds, 0, 9, 3, 8, 8, b, lab, &got, &next, &err), QD_OK);
    assert_int_equal(got, 2);
    assert_int_equal(next, 9);
    const char *first = NULL;
    assert_int_equal(qd_dataset_skipped(ds, &first), 7);
    assert_non_null(strstr(first, "1_garbage.jpg"));
    /* item 7 (7_ok.jpg) landed in slot 1 */
    float one[3 * 8 * 8];
    assert_int_equal(qd_dataset_read(ds, 7, 1, 3, 8, 8, one, NULL, NULL, NULL, &err), QD_OK);
    assert_memory_equal(one, b + 3 * 64, sizeof one);
    /* batches of 1 from 1: the next good one is 7 */
    assert_int_equal(qd_dataset_read(ds, 1, 1, 3, 8, 8, b, lab, &got, &next, &err), QD_OK);
    assert_int_equal(got, 1);
    assert_int_equal(next, 8);
    /* reading again counts nothing twice */
    assert_int_equal(qd_dataset_read(ds, 0, 9, 3, 8, 8, b, lab, &got, &next, &err), QD_OK);
    assert_int_equal(qd_dataset_skipped(ds, NULL), 7);
    qd_dataset_delete(ds);

    /* a folder of only bad images reads nothing, with skip_bad */
    make_dir("allbad");
    make_dir("allbad/x");
    write_bytes(tmp_path("allbad/x/a.jpg"), garbage, sizeof garbage);
    assert_int_equal(qd_dataset_open(tmp_path("allbad"), &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_read(ds, 0, 4, 3, 8, 8, b, lab, &got, &next, &err), QD_OK);
    assert_int_equal(got, 0);
    assert_int_equal(next, 1);
    assert_int_equal(qd_dataset_skipped(ds, NULL), 1);
    qd_dataset_delete(ds);

    /* hidden files count (as in torchvision: by extension only), e.g.
     * macOS "._" files, which then fail to decode; a FIFO named like an
     * image is refused, not opened (that would block) */
    make_dir("hid");
    make_dir("hid/c");
    write_bytes(tmp_path("hid/c/._x.jpg"), garbage, 10);
    write_png(tmp_path("hid/c/a.png"), GREY_W, GREY_H, 1, g_grey);
    assert_int_equal(mkfifo(tmp_path("hid/c/b.jpg"), 0644), 0);
    assert_int_equal(qd_dataset_open(tmp_path("hid"), &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_count(ds), 3);
    assert_string_equal(qd_dataset_item_path(ds, 0), tmp_path("hid/c/._x.jpg"));
    assert_int_equal(qd_dataset_read(ds, 0, 3, 3, 8, 8, b, lab, &got, &next, &err), QD_OK);
    assert_int_equal(got, 1);
    assert_int_equal(qd_dataset_skipped(ds, NULL), 2);
    qd_dataset_delete(ds);
    open_fails(tmp_path("hid/c/b.jpg"), &o, tmp_path("hid/c/b.jpg"), "not a regular file");
    qd_dataset_options lo = o;
    lo.labels = tmp_path("hid/c/b.jpg");
    open_fails(fixture("nhw_u8.npy"), &lo, tmp_path("hid/c/b.jpg"), "regular file");

    /* a symlink cycle does not hang the scan */
    make_dir("loop");
    make_dir("loop/c");
    write_png(tmp_path("loop/c/a.png"), GREY_W, GREY_H, 1, g_grey);
    assert_int_equal(symlink("..", tmp_path("loop/c/up")), 0);
    o.skip_bad = 0;
    assert_int_equal(qd_dataset_open(tmp_path("loop"), &o, &ds, &err), QD_OK);
    assert_true(qd_dataset_count(ds) >= 1);
    qd_dataset_delete(ds);
}

/* ---- .npy / .npz ------------------------------------------------------ */

static void test_npz(void **state)
{
    (void)state;
    qd_dataset_options o;
    qd_dataset_options_init(&o);
    const float z = 0.0f, one = 1.0f;
    opts_mean(&o, 1, &z, &one);
    qd_error err = {0};
    qd_dataset *ds = NULL;
    float b[4 * 3 * 8 * 8];
    int64_t lab[4], n = 0;

    /* stored members (numpy.savez): the first member, images uint8 4x5x6;
     * labels from a .npy */
    o.labels = fixture("labels_i64.npy");
    assert_int_equal(qd_dataset_open(fixture("stored.npz"), &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_get_kind(ds), QD_DATASET_NPZ);
    assert_int_equal(qd_dataset_count(ds), 4);
    assert_int_equal(qd_dataset_read(ds, 0, 4, 1, 5, 6, b, lab, &n, NULL, &err), QD_OK);
    assert_int_equal(n, 4);
    const int want_lab[4] = {3, 0, 2, 1};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(lab[i], want_lab[i]);
        for (int h = 0; h < 5; h++)
            for (int w = 0; w < 6; w++)
                assert_float_equal(b[(i * 5 + h) * 6 + w],
                                   ((i * 31 + h * 7 + w * 3) % 256) / 255.0f, 1e-7);
    }
    qd_dataset_delete(ds);
    /* labels from a member of an .npz */
    o.labels = fixture("stored.npz");
    o.labels_member = "labels";
    o.member = "images.npy";
    assert_int_equal(qd_dataset_open(fixture("stored.npz"), &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_label(ds, 0), 3);
    assert_int_equal(qd_dataset_num_classes(ds), 4);
    qd_dataset_delete(ds);
    o.labels_member = NULL;
    o.member = NULL;
    /* the same array as a plain .npy */
    o.labels = NULL;
    assert_int_equal(qd_dataset_open(fixture("nhw_u8.npy"), &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_get_kind(ds), QD_DATASET_NPY);
    assert_int_equal(qd_dataset_read(ds, 3, 1, 1, 5, 6, b, lab, &n, NULL, &err), QD_OK);
    assert_int_equal(lab[0], -1);
    assert_float_equal(b[2 * 6 + 4], ((3 * 31 + 2 * 7 + 4 * 3) % 256) / 255.0f, 1e-7);
    qd_dataset_delete(ds);

    /* deflated members (numpy.savez_compressed): float32 N,C,H,W used as
     * they are; uint8 N,H,W,C */
    o.member = "nchw";
    o.labels = fixture("labels_i32_3.npy");
    assert_int_equal(qd_dataset_open(fixture("deflated.npz"), &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_count(ds), 3);
    assert_int_equal(qd_dataset_label(ds, 0), 1);
    assert_int_equal(qd_dataset_label(ds, 1), 0);
    assert_int_equal(qd_dataset_read(ds, 0, 3, 2, 4, 4, b, lab, &n, NULL, &err), QD_OK);
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 2; c++)
            for (int h = 0; h < 4; h++)
                for (int w = 0; w < 4; w++)
                    assert_float_equal(b[((i * 2 + c) * 4 + h) * 4 + w],
                                       i * 0.5f - c * 0.25f + h * 0.125f + w * 0.0625f, 1e-6);
    /* upsampled 4 -> 8: the values are linear in h and w, so bilinear with
     * half-pixel centres gives the line at (d + 0.5) / 2 - 0.5, clamped */
    assert_int_equal(qd_dataset_read(ds, 1, 1, 2, 8, 8, b, NULL, NULL, NULL, &err), QD_OK);
    for (int h = 0; h < 8; h++)
        for (int w = 0; w < 8; w++) {
            double sh = fmin(fmax((h + 0.5) / 2 - 0.5, 0), 3);
            double sw = fmin(fmax((w + 0.5) / 2 - 0.5, 0), 3);
            assert_float_equal(b[64 + h * 8 + w], 0.5 - 0.25 + sh * 0.125 + sw * 0.0625, 1e-6);
        }
    /* two channels cannot feed a 1- or 3-channel model */
    qd_status st = qd_dataset_read(ds, 0, 1, 3, 4, 4, b, NULL, NULL, NULL, &err);
    expect_error(st, &err, "deflated.npz", "2-channel");
    qd_dataset_delete(ds);
    /* normalize_float applies mean/std to float data too */
    o.normalize_float = 1;
    const float m2 = 1.0f, s2 = 2.0f;
    opts_mean(&o, 1, &m2, &s2);
    assert_int_equal(qd_dataset_open(fixture("deflated.npz"), &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_read(ds, 2, 1, 2, 4, 4, b, NULL, NULL, NULL, &err), QD_OK);
    assert_float_equal(b[16 + 5], ((1.0f - 0.25f + 0.125f + 0.0625f) - 1.0f) / 2.0f, 1e-6);
    qd_dataset_delete(ds);
    o.normalize_float = 0;
    opts_mean(&o, 1, &z, &one);

    o.member = "nhwc.npy";
    o.labels = fixture("labels_i32_3.npy");
    open_fails(fixture("deflated.npz"), &o, "labels_i32_3.npy", "3 labels for 2 items");
    o.labels = NULL;
    assert_int_equal(qd_dataset_open(fixture("deflated.npz"), &o, &ds, &err), QD_OK);
    assert_int_equal(qd_dataset_count(ds), 2);
    assert_int_equal(qd_dataset_read(ds, 1, 1, 3, 6, 5, b, NULL, NULL, NULL, &err), QD_OK);
    for (int c = 0; c < 3; c++)
        for (int h = 0; h < 6; h++)
            for (int w = 0; w < 5; w++)
                assert_float_equal(b[(c * 6 + h) * 5 + w],
                                   ((50 + h * 11 + w * 5 + c * 70) % 256) / 255.0f, 1e-7);
    qd_dataset_delete(ds);
    /* member not there: the message lists what is */
    o.member = "pixels";
    open_fails(fixture("deflated.npz"), &o, "deflated.npz", "nchw.npy, nhwc.npy");
    /* labels are not images */
    o.member = "labels";
    open_fails(fixture("stored.npz"), &o, "stored.npz:labels.npy", "int64");
}

static void test_npz_bad(void **state)
{
    (void)state;
    make_dir("npz");
    qd_dataset_options o;
    qd_dataset_options_init(&o);
    size_t n = 0;
    unsigned char *z = read_bytes(fixture("deflated.npz"), &n);
    const char *p = tmp_path("npz/cut.npz");
    write_bytes(p, z, n / 2); /* no central directory */
    open_fails(p, &o, p, "truncated");
    p = tmp_path("npz/tiny.npz");
    write_bytes(p, z, 10);
    open_fails(p, &o, p, NULL);
    /* a flipped byte in the first member's deflate data */
    z[60] ^= 0xff;
    p = tmp_path("npz/flipped.npz");
    write_bytes(p, z, n);
    open_fails(p, &o, p, "nchw.npy");
    z[60] ^= 0xff;
    /* the central directory pointing past the end */
    unsigned char *e = z + n - 22;
    assert_int_equal(e[0], 'P');
    e[16] = 0xff, e[17] = 0xff, e[18] = 0xff, e[19] = 0x7f;
    p = tmp_path("npz/cd.npz");
    write_bytes(p, z, n);
    open_fails(p, &o, p, "central directory");
    free(z);
    /* stored member with a flipped data byte: CRC mismatch */
    z = read_bytes(fixture("stored.npz"), &n);
    z[200] ^= 0x01;
    p = tmp_path("npz/crc.npz");
    write_bytes(p, z, n);
    open_fails(p, &o, p, "CRC");
    free(z);
    p = tmp_path("npz/text.npz");
    write_bytes(p, "not a zip at all, just text", 27);
    open_fails(p, &o, p, "not a zip");
    /* an empty zip (end record only) */
    const unsigned char empty[22] = {'P', 'K', 5, 6};
    p = tmp_path("npz/empty.npz");
    write_bytes(p, empty, 22);
    open_fails(p, &o, p, "empty");
    /* .npy: a truncated one, an unsupported dtype, an empty one */
    z = read_bytes(fixture("nhw_u8.npy"), &n);
    p = tmp_path("npz/cut.npy");
    write_bytes(p, z, n - 10);
    open_fails(p, &o, p, "truncated");
    free(z);
    int64_t dims[4] = {2, 1, 3, 3};
    qd_tensor *t = qd_tensor_new(QD_DT_DOUBLE, 4, dims);
    qd_error err = {0};
    p = tmp_path("npz/f64.npy");
    assert_int_equal(qd_npy_write(p, t, &err), QD_OK);
    qd_tensor_delete(t);
    open_fails(p, &o, p, "float64");
    int64_t zdims[3] = {0, 4, 4};
    t = qd_tensor_new(QD_DT_UINT8, 3, zdims);
    p = tmp_path("npz/none.npy");
    assert_int_equal(qd_npy_write(p, t, &err), QD_OK);
    qd_tensor_delete(t);
    open_fails(p, &o, p, "empty");
    /* float labels are refused */
    int64_t ldims[1] = {4};
    t = qd_tensor_new(QD_DT_FLOAT, 1, ldims);
    const char *lp = tmp_path("npz/flabels.npy");
    assert_int_equal(qd_npy_write(lp, t, &err), QD_OK);
    qd_tensor_delete(t);
    o.labels = lp;
    open_fails(fixture("nhw_u8.npy"), &o, lp, "integers");
}

/* ---- option and call errors ------------------------------------------- */

static void test_call_errors(void **state)
{
    (void)state;
    qd_error err = {0};
    qd_dataset *ds = NULL;
    assert_int_equal(qd_dataset_open(fixture("nhw_u8.npy"), NULL, &ds, &err), QD_OK);
    float b[3 * 5 * 6];
    /* 1 channel and no mean/std: no default */
    qd_status st = qd_dataset_read(ds, 0, 1, 1, 5, 6, b, NULL, NULL, NULL, &err);
    expect_error(st, &err, "nhw_u8.npy", "mean");
    /* 3 channels: ImageNet defaults */
    assert_int_equal(qd_dataset_read(ds, 0, 1, 3, 5, 6, b, NULL, NULL, NULL, &err), QD_OK);
    assert_float_equal(b[0], (0.0f - 0.485f) / 0.229f, 1e-6);
    assert_float_equal(b[2 * 30 + 1], (3 / 255.0f - 0.406f) / 0.225f, 1e-6);
    st = qd_dataset_read(ds, 5, 1, 3, 5, 6, b, NULL, NULL, NULL, &err);
    expect_error(st, &err, "nhw_u8.npy", "bad read");
    st = qd_dataset_read(ds, 0, 1, 0, 5, 6, b, NULL, NULL, NULL, &err);
    expect_error(st, &err, "nhw_u8.npy", "model input");
    /* reading 0 items at the end is fine */
    int64_t got = 7, next = 0;
    assert_int_equal(qd_dataset_read(ds, 4, 3, 3, 5, 6, b, NULL, &got, &next, &err), QD_OK);
    assert_int_equal(got, 0);
    assert_int_equal(next, 4);
    qd_dataset_delete(ds);
    qd_dataset_delete(NULL);
    /* two means for three channels; a zero std */
    qd_dataset_options o;
    qd_dataset_options_init(&o);
    const float mm[2] = {0.1f, 0.2f}, ss[2] = {1, 0};
    opts_mean(&o, 2, mm, ss);
    assert_int_equal(qd_dataset_open(fixture("nhw_u8.npy"), &o, &ds, &err), QD_OK);
    st = qd_dataset_read(ds, 0, 1, 3, 5, 6, b, NULL, NULL, NULL, &err);
    expect_error(st, &err, "nhw_u8.npy", "2 mean/std values");
    st = qd_dataset_read(ds, 0, 1, 2, 5, 6, b, NULL, NULL, NULL, &err);
    expect_error(st, &err, "nhw_u8.npy", "std[1] is zero");
    qd_dataset_delete(ds);
}

/* ---- corrupted copies of valid files: errors or data, never a crash ---- */

static void test_mangled(void **state)
{
    (void)state;
    make_dir("mangle");
    make_dir("mangle/c");
    write_jpeg(tmp_path("mangle/src.jpg"), SM_W, SM_H, 3, g_smooth_rgb, 80);
    write_png(tmp_path("mangle/src.png"), RGB_W, RGB_H, 3, g_rgb);
    static unsigned char idx[16 + 100 * 16];
    const unsigned dims[3] = {100, 4, 4};
    idx_header(idx, 3, dims);
    for (size_t i = 16; i < sizeof idx; i++)
        idx[i] = (unsigned char)(i * 7);
    write_gz(tmp_path("mangle/src.gz"), idx, sizeof idx);
    const char *srcs[4] = {tmp_path("mangle/src.jpg"), tmp_path("mangle/src.png"),
                           fixture("deflated.npz"), tmp_path("mangle/src.gz")};
    const char *dsts[4] = {tmp_path("mangle/c/m.jpg"), tmp_path("mangle/c/m.png"),
                           tmp_path("mangle/m.npz"), tmp_path("mangle/m-images-idx3-ubyte.gz")};
    unsigned seed = 12345;
    for (int f = 0; f < 4; f++) {
        size_t n = 0;
        unsigned char *orig = read_bytes(srcs[f], &n);
        unsigned char *buf = malloc(n);
        for (int round = 0; round < 150; round++) {
            memcpy(buf, orig, n);
            size_t len = n;
            seed = seed * 1103515245u + 12345u;
            int flips = 1 + (int)((seed >> 16) % 4);
            for (int k = 0; k < flips; k++) {
                seed = seed * 1103515245u + 12345u;
                buf[(seed >> 8) % n] ^= (unsigned char)(1u << ((seed >> 4) % 8));
            }
            if (round % 3 == 0) {
                seed = seed * 1103515245u + 12345u;
                len = (seed >> 8) % n; /* and cut */
            }
            write_bytes(dsts[f], buf, len);
            qd_dataset_options o;
            qd_dataset_options_init(&o);
            const float z = 0.0f, one = 1.0f;
            opts_mean(&o, 1, &z, &one);
            const char *open_path = f < 2 ? tmp_path("mangle") : dsts[f];
            qd_error err = {0};
            qd_dataset *ds = NULL;
            qd_status st = qd_dataset_open(open_path, &o, &ds, &err);
            if (st == QD_OK) {
                float b[3 * 8 * 8];
                st = qd_dataset_read(ds, 0, 1, 3, 8, 8, b, NULL, NULL, NULL, &err);
                qd_dataset_delete(ds);
            }
            const char *name = f < 2 ? dsts[f] : f == 2 ? "m.npz" : "m-images";
            if (st != QD_OK && !strstr(err.message, name))
                fail_msg("round %d of %s: the error does not name the file: %s", round, dsts[f],
                         err.message);
        }
        free(buf);
        free(orig);
        remove(dsts[f]);
    }
}

/* ---- out of memory: every allocation failing in turn ------------------- */

static long g_fail_at = -1, g_calls, g_live;

static void *t_malloc(size_t n)
{
    if (g_calls++ == g_fail_at)
        return NULL;
    void *p = malloc(n);
    g_live += p != NULL;
    return p;
}

static void *t_realloc(void *p, size_t n)
{
    if (g_calls++ == g_fail_at)
        return NULL;
    void *q = realloc(p, n);
    g_live += q && !p;
    return q;
}

static void t_free(void *p)
{
    g_live--;
    free(p);
}

static qd_status oom_scenario(int which)
{
    qd_dataset_options o;
    qd_dataset_options_init(&o);
    const float z = 0.0f, one = 1.0f;
    opts_mean(&o, 1, &z, &one);
    const char *path = NULL;
    if (which == 0) {
        path = tmp_path("oom");
        o.skip_bad = 1;
    } else if (which == 1) {
        path = tmp_path("oom-images-idx3-ubyte.gz");
        o.labels = tmp_path("oom-labels-idx1-ubyte");
    } else if (which == 2) {
        path = fixture("deflated.npz");
        o.member = "nhwc";
    } else {
        path = fixture("stored.npz");
        o.labels = fixture("stored.npz");
        o.labels_member = "labels";
        o.shuffle = 1;
    }
    qd_error err = {0};
    qd_dataset *ds = NULL;
    const qd_allocator hook = {t_malloc, t_realloc, t_free};
    g_calls = 0;
    g_live = 0;
    qd_set_allocator(&hook);
    qd_status st = qd_dataset_open(path, &o, &ds, &err);
    static float b[4 * 3 * 8 * 8];
    int64_t lab[4];
    if (st == QD_OK) {
        st = qd_dataset_read(ds, 0, 4, 3, 8, 8, b, lab, NULL, NULL, &err);
        qd_dataset_delete(ds);
    }
    qd_set_allocator(NULL);
    if (st != QD_OK && st != QD_STATUS_OUT_OF_MEMORY)
        fail_msg("scenario %d, allocation %ld failing: unexpected error: %s", which, g_fail_at,
                 err.message);
    return st;
}

static void test_out_of_memory(void **state)
{
    (void)state;
    make_dir("oom");
    make_dir("oom/a");
    make_dir("oom/b");
    write_png(tmp_path("oom/a/x.png"), RGB_W, RGB_H, 3, g_rgb);
    write_jpeg(tmp_path("oom/b/y.jpg"), SM_W, SM_H, 1, g_smooth_grey, 90);
    write_bytes(tmp_path("oom/b/z.jpg"), "junk", 4);
    unsigned char idx[16 + 2 * 9];
    const unsigned dims[3] = {2, 3, 3};
    idx_header(idx, 3, dims);
    memset(idx + 16, 7, 18);
    write_gz(tmp_path("oom-images-idx3-ubyte.gz"), idx, sizeof idx);
    unsigned char lab[8 + 2];
    const unsigned ldims[1] = {2};
    idx_header(lab, 1, ldims);
    lab[8] = 1, lab[9] = 0;
    write_bytes(tmp_path("oom-labels-idx1-ubyte"), lab, sizeof lab);
    for (int which = 0; which < 4; which++) {
        g_fail_at = -1;
        assert_int_equal(oom_scenario(which), QD_OK);
        long total = g_calls;
        assert_true(total > 3);
        assert_int_equal(g_live, 0);
        for (g_fail_at = 0; g_fail_at < total; g_fail_at++) {
            oom_scenario(which);
            if (g_live != 0)
                fail_msg("scenario %d: %ld blocks leaked with allocation %ld failing", which,
                         g_live, g_fail_at);
        }
    }
    g_fail_at = -1;
}

int main(void)
{
    make_patterns();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_idx_fashion),
        cmocka_unit_test(test_idx_bad),
        cmocka_unit_test(test_folder),
        cmocka_unit_test(test_image_decode),
        cmocka_unit_test(test_folder_bad),
        cmocka_unit_test(test_npz),
        cmocka_unit_test(test_npz_bad),
        cmocka_unit_test(test_call_errors),
        cmocka_unit_test(test_mangled),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
