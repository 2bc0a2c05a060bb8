/* Datasets for calibration (--calib DATA) and evaluation (--data VAL
 * --labels ...): a list of items, each with a label (or -1), read in
 * batches of float32 NCHW model input.
 *
 * Kinds, detected from the path:
 *   folder  a directory of class sub-directories of .jpg/.jpeg/.png images
 *           (case-insensitive), the ImageNet / ImageNette layout. As
 *           torchvision's ImageFolder: classes are the sub-directories
 *           sorted by name (byte order), label = index in that list; the
 *           images of a class are all files below its folder (recursively,
 *           symlinks followed, cycles skipped) sorted by (directory, file
 *           name); other files are ignored; a class without images is an
 *           error. Images are decoded one at a time when read (JPEG or PNG
 *           by content), never all held in memory.
 *   idx     an IDX images file (MNIST / Fashion-MNIST: magic 0x00000803,
 *           N x H x W unsigned bytes; .gz accepted), loaded whole. Labels
 *           from options.labels: an IDX labels file (magic 0x00000801, N
 *           entries).
 *   npy     a .npy array, loaded whole: uint8 N,H,W (grey) or N,H,W,C
 *           (C = 1 or 3), pixels 0..255; or float32 N,C,H,W (or N,H,W),
 *           taken as model input values (see normalize_float).
 *   npz     a .npz (zip) holding such arrays: the member options.member
 *           (with or without ".npy"), else the first.
 *   Labels for idx/npy/npz come from options.labels: an IDX labels file,
 *   a .npy of integers (int64, int32, uint8, ...; shape N or N,1), or an
 *   .npz (member options.labels_member, else the first). Without it every
 *   label is -1. The counts must agree.
 *
 * Preprocessing (see preprocess.h for the exact arithmetic), for a model
 * input of C x H x W:
 *   - resize_size and crop_size both QD_DATASET_AUTO (the default):
 *       folder: ImageNet convention: the shorter side to
 *               floor(min(H, W) * 256 / 224), then center crop H x W
 *               (256 then 224 for a 224 x 224 model);
 *       idx/npy/npz: bilinear resize straight to H x W (no crop; the
 *               identity when the data already is H x W), so 28 x 28
 *               Fashion-MNIST feeds a 32 x 32 or 224 x 224 model as
 *               F.interpolate(x, (H, W), mode="bilinear") would.
 *   - otherwise (either given), for every kind: resize_size > 0 resizes
 *     the shorter side to it (0 or AUTO: no resize), then center crop
 *     H x W (zero padding where the image is smaller). crop_size, when
 *     > 0, must equal H and W (checked when reading).
 *   - channels: grey images feed a 3-channel model replicated (as
 *     ImageFolder's RGB conversion); RGB feeds a 1-channel model as PIL's
 *     "L" (R*299/1000 + G*587/1000 + B*114/1000, rounded).
 *   - pixels (uint8) are scaled to [0, 1], then normalized with mean/std:
 *     n_mean values (1 = every channel, or C); n_mean == 0 means the
 *     ImageNet values (0.485, 0.456, 0.406 / 0.229, 0.224, 0.225) for a
 *     3-channel model and is an error for another channel count (pass
 *     e.g. 0.2860 / 0.3530 for Fashion-MNIST).
 *   - float32 arrays are already model input: only resized/cropped, unless
 *     normalize_float asks for mean/std as well.
 *
 * Bad images (folder kind): without skip_bad the first unreadable image is
 * an error naming the file and the item; with skip_bad it is skipped,
 * counted (qd_dataset_skipped) and the next item fills its slot. IDX and
 * array files are checked whole when opened. Opening never decodes
 * images. Paths that are neither regular files nor directories (FIFOs,
 * devices) are refused rather than opened, so nothing blocks.
 *
 * A handle is not thread-safe: qd_dataset_read updates the skip record;
 * read from one thread, or use one handle per thread. */
#ifndef QD_DATA_DATASET_H
#define QD_DATA_DATASET_H
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "data/preprocess.h"

#define QD_DATASET_AUTO (-1)

typedef enum qd_dataset_kind {
    QD_DATASET_FOLDER = 1,
    QD_DATASET_IDX = 2,
    QD_DATASET_NPY = 3,
    QD_DATASET_NPZ = 4,
} qd_dataset_kind;

typedef struct qd_dataset_options {
    const char *labels;        /* labels file (idx/npy/npz data); NULL: none */
    const char *member;        /* .npz member with the data; NULL: the first */
    const char *labels_member; /* .npz member with the labels; NULL: the first */
    int resize_size;           /* QD_DATASET_AUTO, 0 (none) or the shorter side */
    int crop_size;             /* QD_DATASET_AUTO, 0 (model size) or = model H = W */
    int n_mean;                /* 0: ImageNet defaults; else 1 or C values */
    float mean[QD_PREPROCESS_MAX_CHANNELS];
    float std[QD_PREPROCESS_MAX_CHANNELS];
    int normalize_float;       /* apply mean/std to float32 arrays too */
    int skip_bad;              /* skip (and count) unreadable images */
    int shuffle;               /* visit items in a fixed pseudo-random order */
    uint64_t seed;             /* ... given by this seed */
} qd_dataset_options;

typedef struct qd_dataset qd_dataset;

/* Defaults: AUTO sizes, ImageNet mean/std, no labels, no skipping. */
void qd_dataset_options_init(qd_dataset_options *opt);

/* Opens a dataset (kind detected from the path: a directory is a folder,
 * otherwise the file's content decides). opt may be NULL for defaults. On
 * failure *out is NULL and err names the file. */
qd_status qd_dataset_open(const char *path, const qd_dataset_options *opt, qd_dataset **out,
                          qd_error *err);
void qd_dataset_delete(qd_dataset *ds);

qd_dataset_kind qd_dataset_get_kind(const qd_dataset *ds);
const char *qd_dataset_kind_name(qd_dataset_kind kind);
int64_t qd_dataset_count(const qd_dataset *ds);
/* 1 when items have labels. */
int qd_dataset_has_labels(const qd_dataset *ds);
/* Label of item i (0 <= i < count), or -1 when unlabelled. */
int64_t qd_dataset_label(const qd_dataset *ds, int64_t i);
/* Number of classes: the class folders, or max label + 1; 0 if unlabelled. */
int64_t qd_dataset_num_classes(const qd_dataset *ds);
/* Name of class k (folder kind: the sub-directory name), else NULL. */
const char *qd_dataset_class_name(const qd_dataset *ds, int64_t k);
/* Path of item i's file (folder kind), else NULL. */
const char *qd_dataset_item_path(const qd_dataset *ds, int64_t i);
/* A one-line description: kind, path, count, source size, labels. */
void qd_dataset_describe(const qd_dataset *ds, char *buf, size_t size);

/* Reads items from index start on into out, a float32 buffer of
 * max_items x c x h x w (NCHW), preprocessed for a c x h x w model input.
 * Fills min(max_items, count - start) items; with skip_bad, bad images are
 * skipped and later items fill their slots, so fewer may be filled only
 * at the end of the dataset. labels (may be NULL) receives the label of
 * each filled item (-1 if none); *n_read (may be NULL) the number filled;
 * *next (may be NULL) the index after the last item consumed, where the
 * next batch starts. Errors name the file and the item. */
qd_status qd_dataset_read(qd_dataset *ds, int64_t start, int64_t max_items, int c, int h, int w,
                          float *out, int64_t *labels, int64_t *n_read, int64_t *next,
                          qd_error *err);

/* Images skipped so far (distinct items) with skip_bad, and the message of
 * the first one (NULL if none). */
int64_t qd_dataset_skipped(const qd_dataset *ds, const char **first_message);

#endif
