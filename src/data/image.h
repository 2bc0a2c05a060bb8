/* Decoded 8-bit images: JPEG (libjpeg-turbo) and PNG (libpng). */
#ifndef QD_DATA_IMAGE_H
#define QD_DATA_IMAGE_H
#include <stddef.h>

#include "base/status.h"

/* Images above this many pixels are refused (PIL's decompression-bomb error
 * threshold, 2 x 89478485), so a hostile header cannot exhaust memory. */
#define QD_IMAGE_MAX_PIXELS 178956970u

typedef struct qd_image {
    int width, height;
    int channels;        /* 1 (grey) or 3 (RGB) */
    unsigned char *data; /* height x width x channels, row-major; qd_malloc'd */
} qd_image;

/* Decodes a JPEG or PNG file; the format is taken from the first bytes, not
 * from the name. Grey images stay 1-channel; colour images (palette, CMYK
 * and alpha included) become RGB, alpha dropped as PIL's convert("RGB")
 * does. A corrupt or truncated file is an error naming the file: libjpeg and
 * libpng errors are caught (setjmp), nothing is printed, nothing exits. */
qd_status qd_image_load(const char *path, qd_image *out, qd_error *err);
/* The same on bytes in memory; what names them in messages. */
qd_status qd_image_decode(const void *data, size_t size, const char *what, qd_image *out,
                          qd_error *err);
/* Frees img->data (NULL-safe) and zeroes the struct. */
void qd_image_free(qd_image *img);

#endif
