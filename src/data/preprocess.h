/* Image preprocessing as torchvision does it, fused into one pass:
 *
 *   channels   grey -> RGB by replication (ImageFolder's convert("RGB"));
 *              RGB -> grey for a 1-channel model as PIL's convert("L"):
 *              L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16, i.e.
 *              R*299/1000 + G*587/1000 + B*114/1000 rounded (uint8 sources);
 *              0.2989 R + 0.587 G + 0.114 B (float sources, as
 *              torchvision's rgb_to_grayscale on tensors).
 *   scale      uint8 x -> x / 255 (ToTensor); float sources are taken as they are.
 *   resize     bilinear, antialias off, align_corners=False (half-pixel
 *              centres), as F.resize(tensor, size, antialias=False) /
 *              F.interpolate(mode="bilinear"): source coordinate
 *              s = max(0, (in/out) * (d + 0.5) - 0.5), taps floor(s) and
 *              floor(s)+1 (clamped), weights 1-f and f, f = s - floor(s);
 *              with PyTorch's CPU rounding (in/out in float, s in double,
 *              f rounded to float; rows blended after columns), so the
 *              result matches torch to about 1e-7. Either the shorter
 *              side goes to resize_size and the longer to
 *              floor(resize_size * long / short) (Resize(int)), or the image
 *              goes straight to the output H x W (direct), or no resize.
 *              A resize to the image's own size is the identity.
 *   crop       center crop to the output H x W (CenterCrop): offset
 *              round_half_even((size - crop) / 2); when the crop is larger
 *              than the image, zero padding (before normalization) of
 *              (crop - size) // 2 before and the rest after.
 *   normalize  (x - mean[c]) / std[c] (Normalize), when asked.
 *
 * Output: float32 planar C x H x W. Only the output pixels are computed; no
 * resized intermediate image is built. */
#ifndef QD_DATA_PREPROCESS_H
#define QD_DATA_PREPROCESS_H
#include <stdint.h>

#include "base/status.h"

#define QD_PREPROCESS_MAX_CHANNELS 16

typedef enum qd_pixel_type {
    QD_PIXEL_U8_HWC = 0,  /* uint8, height x width x channels (decoded images, IDX, NHWC .npy) */
    QD_PIXEL_F32_CHW = 1, /* float32, channels x height x width (NCHW .npy) */
} qd_pixel_type;

typedef struct qd_image_view {
    qd_pixel_type type;
    int width, height, channels;
    const void *data;
} qd_image_view;

typedef enum qd_resize_mode {
    QD_RESIZE_NONE = 0,    /* keep the size; the crop does the rest */
    QD_RESIZE_SHORTER = 1, /* shorter side to resize_size (torchvision Resize(int)) */
    QD_RESIZE_DIRECT = 2,  /* straight to the output H x W (Resize((H, W))) */
} qd_resize_mode;

typedef struct qd_preprocess {
    qd_resize_mode resize;
    int resize_size; /* QD_RESIZE_SHORTER only */
    int normalize;   /* apply mean/std */
    int n_mean;      /* 1 (broadcast) or the output channel count */
    float mean[QD_PREPROCESS_MAX_CHANNELS];
    float std[QD_PREPROCESS_MAX_CHANNELS];
} qd_preprocess;

/* Preprocesses one image into dst (c x h x w floats). Errors (channel counts
 * that cannot be converted, bad sizes, a zero std) say what is wrong; the
 * caller prefixes the file. */
qd_status qd_preprocess_image(const qd_preprocess *p, const qd_image_view *src, int c, int h,
                              int w, float *dst, qd_error *err);

/* The geometry pieces, exposed for tests and for reports. */
/* torchvision Resize(int) output size for a width x height image. */
void qd_resize_shorter_dims(int width, int height, int size, int *out_width, int *out_height);
/* torchvision CenterCrop offset along one dim (negative: zero padding). */
int qd_center_crop_offset(int size, int crop);

#endif
