#include "data/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "data/idx.h"
#include "data/image.h"
#include "data/npy.h"
#include "data/zip.h"
#include "ir/tensor.h"

#define MAX_FOLDER_DEPTH 64

struct qd_dataset {
    qd_dataset_kind kind;
    char *path;
    char *labels_path;
    char *member;
    qd_dataset_options opt; /* string fields not kept */
    int64_t count;
    int64_t *labels;        /* per stored item; NULL when unlabelled */
    int64_t num_classes;
    int64_t *perm;          /* visiting order when shuffled */

    /* idx / npy / npz: the whole array */
    qd_tensor *array;
    qd_pixel_type pixel;
    int src_c, src_h, src_w;

    /* folder */
    char *pool;             /* NUL-terminated item paths */
    size_t *item_off;
    char **class_names;
    unsigned char *bad;     /* per item, allocated on the first skip */
    int64_t n_skipped;
    char first_bad[QD_ERROR_MAX];
};

static const float IMAGENET_MEAN[3] = {0.485f, 0.456f, 0.406f};
static const float IMAGENET_STD[3] = {0.229f, 0.224f, 0.225f};

void qd_dataset_options_init(qd_dataset_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->resize_size = QD_DATASET_AUTO;
    opt->crop_size = QD_DATASET_AUTO;
}

void qd_dataset_delete(qd_dataset *ds)
{
    if (!ds)
        return;
    qd_free(ds->path);
    qd_free(ds->labels_path);
    qd_free(ds->member);
    qd_free(ds->labels);
    qd_free(ds->perm);
    qd_tensor_delete(ds->array);
    qd_free(ds->pool);
    qd_free(ds->item_off);
    if (ds->class_names)
        for (int64_t k = 0; k < ds->num_classes; k++)
            qd_free(ds->class_names[k]);
    qd_free(ds->class_names);
    qd_free(ds->bad);
    qd_free(ds);
}

/* ---- small helpers ---------------------------------------------------- */

static qd_status oom(qd_error *err, const char *path)
{
    return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *s = qd_malloc(a + (size_t)slash + b + 1);
    if (!s)
        return NULL;
    memcpy(s, dir, a);
    if (slash)
        s[a] = '/';
    memcpy(s + a + slash, name, b + 1);
    return s;
}

typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

/* Takes ownership of s (freed on failure). */
static int strlist_push(strlist *l, char *s)
{
    if (!s)
        return -1;
    if (qd_grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v) != 0) {
        qd_free(s);
        return -1;
    }
    l->v[l->n++] = s;
    return 0;
}

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        qd_free(l->v[i]);
    qd_free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_image_ext(const char *name)
{
    /* As torchvision: by extension only, hidden files included. */
    const char *dot = strrchr(name, '.');
    return dot &&
           (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

/* 1 directory, 0 other, following symlinks (as Python's is_dir()). */
static int entry_is_dir(const char *full, const struct dirent *de)
{
#ifdef DT_DIR
    if (de->d_type == DT_DIR)
        return 1;
    if (de->d_type == DT_REG)
        return 0;
#else
    (void)de;
#endif
    struct stat sb;
    return stat(full, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int is_dot(const char *n)
{
    return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

/* ---- folder kind ------------------------------------------------------ */

typedef struct dir_id {
    dev_t dev;
    ino_t ino;
} dir_id;

/* Collects dir and every directory below it (symlinks followed, cycles and
 * depths beyond MAX_FOLDER_DEPTH skipped). */
static qd_status collect_dirs(const char *dir, strlist *dirs, dir_id *stack, int depth,
                              qd_error *err)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: %s", dir, strerror(errno));
    for (int i = 0; i < depth; i++)
        if (stack[i].dev == sb.st_dev && stack[i].ino == sb.st_ino)
            return QD_OK; /* a symlink cycle */
    stack[depth].dev = sb.st_dev;
    stack[depth].ino = sb.st_ino;
    if (strlist_push(dirs, qd_strdup(dir)) != 0)
        return oom(err, dir);
    DIR *d = opendir(dir);
    if (!d)
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: %s", dir, strerror(errno));
    qd_status st = QD_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (is_dot(de->d_name))
            continue;
        char *full = path_join(dir, de->d_name);
        if (!full) {
            st = oom(err, dir);
            break;
        }
        if (depth + 1 < MAX_FOLDER_DEPTH && entry_is_dir(full, de))
            st = collect_dirs(full, dirs, stack, depth + 1, err);
        qd_free(full);
        if (st != QD_OK)
            break;
    }
    closedir(d);
    return st;
}

typedef struct item_pool {
    char *pool;
    size_t len, cap;
    size_t *off;
    int64_t *labels;
    size_t n, ncap, lcap;
} item_pool;

static int pool_add(item_pool *p, const char *dir, const char *name, int64_t label)
{
    size_t a = strlen(dir), b = strlen(name);
    size_t need = p->len + a + 1 + b + 1;
    if (qd_grow((void **)&p->pool, &p->cap, need, 1) != 0 ||
        qd_grow((void **)&p->off, &p->ncap, p->n + 1, sizeof *p->off) != 0 ||
        qd_grow((void **)&p->labels, &p->lcap, p->n + 1, sizeof *p->labels) != 0)
        return -1;
    p->off[p->n] = p->len;
    p->labels[p->n] = label;
    p->n++;
    memcpy(p->pool + p->len, dir, a);
    p->len += a;
    if (a && dir[a - 1] != '/')
        p->pool[p->len++] = '/';
    memcpy(p->pool + p->len, name, b + 1);
    p->len += b + 1;
    return 0;
}

/* Adds the images of one class folder, ordered as torchvision's
 * make_dataset: sorted(os.walk(...)), then sorted file names. */
static qd_status scan_class(const char *class_dir, int64_t label, item_pool *items,
                            qd_error *err)
{
    strlist dirs = {0}, names = {0};
    dir_id stack[MAX_FOLDER_DEPTH];
    qd_status st = collect_dirs(class_dir, &dirs, stack, 0, err);
    if (st != QD_OK)
        goto done;
    if (dirs.n > 1)
        qsort(dirs.v, dirs.n, sizeof *dirs.v, cmp_str);
    size_t before = items->n;
    for (size_t i = 0; i < dirs.n && st == QD_OK; i++) {
        DIR *d = opendir(dirs.v[i]);
        if (!d) {
            st = qd_error_set(err, QD_STATUS_IO_ERROR, "%s: %s", dirs.v[i], strerror(errno));
            break;
        }
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (is_dot(de->d_name) || !has_image_ext(de->d_name))
                continue;
            char *full = path_join(dirs.v[i], de->d_name);
            if (!full) {
                st = oom(err, dirs.v[i]);
                break;
            }
            int dir = entry_is_dir(full, de);
            qd_free(full);
            if (!dir && strlist_push(&names, qd_strdup(de->d_name)) != 0) {
                st = oom(err, dirs.v[i]);
                break;
            }
        }
        closedir(d);
        if (names.n > 1)
            qsort(names.v, names.n, sizeof *names.v, cmp_str);
        for (size_t k = 0; k < names.n && st == QD_OK; k++)
            if (pool_add(items, dirs.v[i], names.v[k], label) != 0)
                st = oom(err, dirs.v[i]);
        strlist_free(&names);
    }
    if (st == QD_OK && items->n == before)
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "%s: class folder has no .jpg/.jpeg/.png images", class_dir);
done:
    strlist_free(&dirs);
    strlist_free(&names);
    return st;
}

static qd_status open_folder(qd_dataset *ds, qd_error *err)
{
    const char *path = ds->path;
    if (ds->labels_path)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                            "%s: an image folder takes its labels from the class folders; "
                            "a labels file (%s) is not used with it",
                            path, ds->labels_path);
    strlist classes = {0};
    item_pool items = {0};
    qd_status st = QD_OK;
    DIR *d = opendir(path);
    if (!d)
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: %s", path, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (is_dot(de->d_name))
            continue;
        char *full = path_join(path, de->d_name);
        if (!full) {
            st = oom(err, path);
            break;
        }
        int dir = entry_is_dir(full, de);
        qd_free(full);
        if (dir && strlist_push(&classes, qd_strdup(de->d_name)) != 0) {
            st = oom(err, path);
            break;
        }
    }
    closedir(d);
    if (st != QD_OK)
        goto fail;
    if (classes.n == 0) {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "%s: no class sub-folders (expected %s/<class>/<image>.jpg or .png)",
                          path, path);
        goto fail;
    }
    if (classes.n > 1)
        qsort(classes.v, classes.n, sizeof *classes.v, cmp_str);
    for (size_t k = 0; k < classes.n; k++) {
        char *class_dir = path_join(path, classes.v[k]);
        if (!class_dir) {
            st = oom(err, path);
            goto fail;
        }
        st = scan_class(class_dir, (int64_t)k, &items, err);
        qd_free(class_dir);
        if (st != QD_OK)
            goto fail;
    }
    ds->pool = items.pool;
    ds->item_off = items.off;
    ds->labels = items.labels;
    ds->count = (int64_t)items.n;
    ds->class_names = classes.v;
    ds->num_classes = (int64_t)classes.n;
    return QD_OK;
fail:
    strlist_free(&classes);
    qd_free(items.pool);
    qd_free(items.off);
    qd_free(items.labels);
    return st;
}

/* ---- array kinds ------------------------------------------------------ */

/* Reads member (NULL: the first) of an .npz; *resolved (may be NULL)
 * receives a copy of the member's name. */
static qd_status read_npz_member(const char *path, const char *member, qd_tensor **out,
                                 char **resolved, qd_error *err)
{
    *out = NULL;
    qd_zip *z = NULL;
    qd_status st = qd_zip_open(path, &z, err);
    if (st != QD_OK)
        return st;
    long idx = 0;
    if (qd_zip_count(z) == 0) {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: empty .npz (no arrays)", path);
        goto done;
    }
    if (member) {
        idx = qd_zip_find(z, member);
        if (idx < 0) {
            char names[512] = "";
            size_t len = 0;
            for (size_t i = 0; i < qd_zip_count(z) && len + 2 < sizeof names; i++)
                len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "",
                                        qd_zip_name(z, i));
            st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                              "%s: no member named %s (members: %s)", path, member, names);
            goto done;
        }
    }
    void *data = NULL;
    size_t size = 0;
    st = qd_zip_read(z, (size_t)idx, &data, &size, err);
    if (st != QD_OK)
        goto done;
    char what[QD_ERROR_MAX];
    snprintf(what, sizeof what, "%s:%s", path, qd_zip_name(z, (size_t)idx));
    st = qd_npy_parse(data, size, what, out, err);
    qd_free(data);
    if (st == QD_OK && resolved && !(*resolved = qd_strdup(qd_zip_name(z, (size_t)idx)))) {
        qd_tensor_delete(*out);
        *out = NULL;
        st = oom(err, path);
    }
done:
    qd_zip_close(z);
    return st;
}

typedef enum file_kind { FILE_UNKNOWN, FILE_NPY, FILE_ZIP, FILE_IDX, FILE_IMAGE } file_kind;

static file_kind sniff_file(const char *path, int *idx_rank)
{
    unsigned char m[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return FILE_UNKNOWN;
    size_t n = fread(m, 1, sizeof m, f);
    fclose(f);
    if (n >= 6 && !memcmp(m, "\x93NUMPY", 6))
        return FILE_NPY;
    if (n >= 4 && m[0] == 'P' && m[1] == 'K' &&
        ((m[2] == 3 && m[3] == 4) || (m[2] == 5 && m[3] == 6)))
        return FILE_ZIP;
    if ((n >= 3 && m[0] == 0xff && m[1] == 0xd8 && m[2] == 0xff) ||
        (n >= 8 && !memcmp(m, "\x89PNG\r\n\x1a\n", 8)))
        return FILE_IMAGE;
    if (qd_idx_sniff(path, idx_rank))
        return FILE_IDX;
    return FILE_UNKNOWN;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcasecmp(s + a - b, suffix);
}

static qd_status load_labels(qd_dataset *ds, qd_error *err)
{
    const char *path = ds->labels_path;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: labels must be a regular file",
                            path);
    int rank = 0;
    file_kind k = sniff_file(path, &rank);
    qd_tensor *t = NULL;
    qd_status st;
    if (k == FILE_NPY || (k == FILE_UNKNOWN && ends_with(path, ".npy")))
        st = qd_npy_read(path, &t, err);
    else if (k == FILE_ZIP || (k == FILE_UNKNOWN && ends_with(path, ".npz")))
        st = read_npz_member(path, ds->opt.labels_member, &t, NULL, err);
    else
        st = qd_idx_read(path, 1, &t, err); /* IDX labels, or a clear "bad magic" */
    if (st != QD_OK)
        return st;
    if (!(t->dtype == QD_DT_INT64 || t->dtype == QD_DT_INT32 || t->dtype == QD_DT_INT16 ||
          t->dtype == QD_DT_INT8 || t->dtype == QD_DT_UINT8 || t->dtype == QD_DT_UINT16 ||
          t->dtype == QD_DT_UINT32)) {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "%s: labels must be integers, not %s", path, qd_dtype_name(t->dtype));
        goto done;
    }
    if (!(t->rank == 1 || (t->rank == 2 && t->dims[1] == 1))) {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "%s: labels must have shape (N) or (N, 1), not rank %d", path, t->rank);
        goto done;
    }
    if (t->dims[0] != ds->count) {
        st = qd_error_set(err, QD_STATUS_SHAPE_ERROR, "%s: %lld labels for %lld items in %s",
                          path, (long long)t->dims[0], (long long)ds->count, ds->path);
        goto done;
    }
    ds->labels = qd_malloc(sizeof *ds->labels * (size_t)(ds->count ? ds->count : 1));
    if (!ds->labels) {
        st = oom(err, path);
        goto done;
    }
    int64_t maxl = -1;
    for (int64_t i = 0; i < ds->count; i++) {
        int64_t v = qd_tensor_get_i64(t, i);
        if (v < -1) {
            st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: label %lld of item %lld",
                              path, (long long)v, (long long)i);
            goto done;
        }
        ds->labels[i] = v;
        if (v > maxl)
            maxl = v;
    }
    ds->num_classes = maxl + 1;
done:
    qd_tensor_delete(t);
    return st;
}

/* Checks the array's dtype and layout and records the per-item view. */
static qd_status adopt_array(qd_dataset *ds, qd_tensor *t, const char *what, qd_error *err)
{
    ds->array = t;
    const int64_t *d = t->dims;
    int ok = 0;
    if (t->dtype == QD_DT_UINT8 && t->rank == 3) {
        ds->pixel = QD_PIXEL_U8_HWC;
        ds->src_c = 1, ds->src_h = (int)d[1], ds->src_w = (int)d[2];
        ok = 1;
    } else if (t->dtype == QD_DT_UINT8 && t->rank == 4) {
        ds->pixel = QD_PIXEL_U8_HWC;
        ds->src_h = (int)d[1], ds->src_w = (int)d[2], ds->src_c = (int)d[3];
        ok = 1;
    } else if (t->dtype == QD_DT_FLOAT && t->rank == 4) {
        ds->pixel = QD_PIXEL_F32_CHW;
        ds->src_c = (int)d[1], ds->src_h = (int)d[2], ds->src_w = (int)d[3];
        ok = 1;
    } else if (t->dtype == QD_DT_FLOAT && t->rank == 3) {
        ds->pixel = QD_PIXEL_F32_CHW;
        ds->src_c = 1, ds->src_h = (int)d[1], ds->src_w = (int)d[2];
        ok = 1;
    }
    if (!ok)
        return qd_error_set(err, QD_STATUS_UNSUPPORTED,
                            "%s: a %s array of rank %d is not a dataset (expected uint8 N,H,W or "
                            "N,H,W,C, or float32 N,C,H,W or N,H,W)",
                            what, qd_dtype_name(t->dtype), t->rank);
    for (int i = 1; i < t->rank; i++)
        if (d[i] <= 0 || d[i] > (1 << 24))
            return qd_error_set(err, QD_STATUS_UNSUPPORTED, "%s: bad item dims", what);
    if (ds->src_c > QD_PREPROCESS_MAX_CHANNELS)
        return qd_error_set(err, QD_STATUS_UNSUPPORTED, "%s: %d channels is too many", what,
                            ds->src_c);
    ds->count = d[0];
    return QD_OK;
}

static qd_status open_array(qd_dataset *ds, file_kind k, int idx_rank, qd_error *err)
{
    const char *path = ds->path;
    qd_tensor *t = NULL;
    qd_status st;
    char what[QD_ERROR_MAX];
    snprintf(what, sizeof what, "%s", path);
    if (ds->kind == QD_DATASET_IDX) {
        if (k == FILE_IDX && idx_rank != 3)
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                "%s: an IDX file of rank %d (magic 0x%08x) is not an images file "
                                "(magic 0x00000803)%s",
                                path, idx_rank, 0x800u | (unsigned)idx_rank,
                                idx_rank == 1 ? "; it looks like labels" : "");
        st = qd_idx_read(path, 3, &t, err);
    } else if (ds->kind == QD_DATASET_NPY) {
        st = qd_npy_read(path, &t, err);
    } else {
        char *name = NULL;
        st = read_npz_member(path, ds->member, &t, &name, err);
        if (st == QD_OK) {
            /* Name the member in later messages. */
            qd_free(ds->member);
            ds->member = name;
            snprintf(what, sizeof what, "%s:%s", path, name);
        }
    }
    if (st != QD_OK)
        return st;
    st = adopt_array(ds, t, what, err);
    if (st != QD_OK)
        return st;
    if (ds->count == 0)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: no items (empty dataset)", what);
    if (ds->labels_path)
        return load_labels(ds, err);
    return QD_OK;
}

/* ---- open ------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

qd_status qd_dataset_open(const char *path, const qd_dataset_options *opt, qd_dataset **out,
                          qd_error *err)
{
    *out = NULL;
    qd_dataset_options defaults;
    if (!opt) {
        qd_dataset_options_init(&defaults);
        opt = &defaults;
    }
    if (!path || !*path)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "no dataset path given");
    qd_dataset *ds = qd_calloc(1, sizeof *ds);
    if (!ds)
        return oom(err, path);
    ds->opt = *opt;
    ds->opt.labels = ds->opt.member = ds->opt.labels_member = NULL;
    ds->path = qd_strdup(path);
    if (opt->labels)
        ds->labels_path = qd_strdup(opt->labels);
    if (opt->member)
        ds->member = qd_strdup(opt->member);
    qd_status st = QD_OK;
    if (!ds->path || (opt->labels && !ds->labels_path) || (opt->member && !ds->member)) {
        st = oom(err, path);
        goto fail;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st = qd_error_set(err, QD_STATUS_IO_ERROR, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        ds->kind = QD_DATASET_FOLDER;
        st = open_folder(ds, err);
    } else if (!S_ISREG(sb.st_mode)) {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "%s: not a regular file or a directory", path);
    } else {
        int rank = 0;
        file_kind k = sniff_file(path, &rank);
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        if (k == FILE_NPY || (k == FILE_UNKNOWN && ends_with(path, ".npy")))
            ds->kind = QD_DATASET_NPY;
        else if (k == FILE_ZIP || (k == FILE_UNKNOWN && ends_with(path, ".npz")))
            ds->kind = QD_DATASET_NPZ;
        else if (k == FILE_IDX ||
                 (k == FILE_UNKNOWN && (ends_with(path, ".gz") || strstr(base, "idx") != NULL)))
            ds->kind = QD_DATASET_IDX;
        if (k == FILE_IMAGE) {
            st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                              "%s: a single image is not a dataset (pass a folder of class "
                              "folders of images)",
                              path);
            goto fail;
        }
        if (!ds->kind) {
            st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                              "%s: unknown dataset format (expected a folder of class folders of "
                              "JPEG/PNG images, an IDX images file (.gz ok), .npy or .npz)",
                              path);
            goto fail;
        }
        ds->opt.labels_member = opt->labels_member; /* for load_labels, while opening */
        st = open_array(ds, k, rank, err);
        ds->opt.labels_member = NULL;
    }
    if (st != QD_OK)
        goto fail;
    if (opt->shuffle && ds->count > 1) {
        ds->perm = qd_malloc(sizeof *ds->perm * (size_t)ds->count);
        if (!ds->perm) {
            st = oom(err, path);
            goto fail;
        }
        uint64_t s = opt->seed;
        for (int64_t i = 0; i < ds->count; i++)
            ds->perm[i] = i;
        for (int64_t i = ds->count - 1; i > 0; i--) {
            int64_t j = (int64_t)(splitmix64(&s) % (uint64_t)(i + 1));
            int64_t t = ds->perm[i];
            ds->perm[i] = ds->perm[j];
            ds->perm[j] = t;
        }
    }
    *out = ds;
    return QD_OK;
fail:
    qd_dataset_delete(ds);
    return st;
}

/* ---- queries ---------------------------------------------------------- */

qd_dataset_kind qd_dataset_get_kind(const qd_dataset *ds)
{
    return ds->kind;
}

const char *qd_dataset_kind_name(qd_dataset_kind kind)
{
    switch (kind) {
    case QD_DATASET_FOLDER: return "image folder";
    case QD_DATASET_IDX: return "IDX";
    case QD_DATASET_NPY: return "npy";
    case QD_DATASET_NPZ: return "npz";
    }
    return "?";
}

int64_t qd_dataset_count(const qd_dataset *ds)
{
    return ds->count;
}

int qd_dataset_has_labels(const qd_dataset *ds)
{
    return ds->labels != NULL;
}

static int64_t item_of(const qd_dataset *ds, int64_t i)
{
    return ds->perm ? ds->perm[i] : i;
}

int64_t qd_dataset_label(const qd_dataset *ds, int64_t i)
{
    if (!ds->labels || i < 0 || i >= ds->count)
        return -1;
    return ds->labels[item_of(ds, i)];
}

int64_t qd_dataset_num_classes(const qd_dataset *ds)
{
    return ds->labels ? ds->num_classes : 0;
}

const char *qd_dataset_class_name(const qd_dataset *ds, int64_t k)
{
    if (!ds->class_names || k < 0 || k >= ds->num_classes)
        return NULL;
    return ds->class_names[k];
}

const char *qd_dataset_item_path(const qd_dataset *ds, int64_t i)
{
    if (ds->kind != QD_DATASET_FOLDER || i < 0 || i >= ds->count)
        return NULL;
    return ds->pool + ds->item_off[item_of(ds, i)];
}

int64_t qd_dataset_skipped(const qd_dataset *ds, const char **first_message)
{
    if (first_message)
        *first_message = ds->n_skipped ? ds->first_bad : NULL;
    return ds->n_skipped;
}

void qd_dataset_describe(const qd_dataset *ds, char *buf, size_t size)
{
    if (!size)
        return;
    int n;
    if (ds->kind == QD_DATASET_FOLDER)
        n = snprintf(buf, size, "image folder %s: %lld images in %lld classes", ds->path,
                     (long long)ds->count, (long long)ds->num_classes);
    else
        n = snprintf(buf, size, "%s %s%s%s: %lld items %dx%dx%d %s", qd_dataset_kind_name(ds->kind),
                     ds->path, ds->member ? ":" : "", ds->member ? ds->member : "",
                     (long long)ds->count, ds->src_c, ds->src_h, ds->src_w,
                     ds->pixel == QD_PIXEL_U8_HWC ? "uint8" : "float32");
    if (n >= 0 && (size_t)n < size && ds->kind != QD_DATASET_FOLDER) {
        if (ds->labels)
            snprintf(buf + n, size - (size_t)n, ", labels from %s (%lld classes)",
                     ds->labels_path, (long long)ds->num_classes);
        else
            snprintf(buf + n, size - (size_t)n, ", unlabelled");
    }
}

/* ---- reading ---------------------------------------------------------- */

static qd_status setup_preprocess(const qd_dataset *ds, int c, int h, int w, qd_preprocess *p,
                                  qd_error *err)
{
    const qd_dataset_options *o = &ds->opt;
    memset(p, 0, sizeof *p);
    if (o->resize_size == QD_DATASET_AUTO && o->crop_size == QD_DATASET_AUTO) {
        if (ds->kind == QD_DATASET_FOLDER) {
            int m = h < w ? h : w;
            p->resize = QD_RESIZE_SHORTER;
            p->resize_size = (int)((long long)m * 256 / 224);
            if (p->resize_size < 1)
                p->resize_size = 1;
        } else {
            p->resize = QD_RESIZE_DIRECT;
        }
    } else {
        if (o->crop_size > 0 && (o->crop_size != h || o->crop_size != w))
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                "%s: crop size %d does not match the model input %dx%d",
                                ds->path, o->crop_size, h, w);
        if (o->resize_size > 0) {
            p->resize = QD_RESIZE_SHORTER;
            p->resize_size = o->resize_size;
        } else if (o->resize_size < 0 && o->resize_size != QD_DATASET_AUTO) {
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: bad resize size %d",
                                ds->path, o->resize_size);
        }
    }
    int is_float = ds->kind != QD_DATASET_FOLDER && ds->pixel == QD_PIXEL_F32_CHW;
    p->normalize = !is_float || o->normalize_float;
    if (p->normalize) {
        if (o->n_mean == 0) {
            if (c != 3)
                return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                    "%s: no default mean/std for a %d-channel model input (the "
                                    "defaults are ImageNet's, for 3 channels); pass mean and std",
                                    ds->path, c);
            p->n_mean = 3;
            memcpy(p->mean, IMAGENET_MEAN, sizeof IMAGENET_MEAN);
            memcpy(p->std, IMAGENET_STD, sizeof IMAGENET_STD);
        } else {
            if (o->n_mean < 0 || o->n_mean > QD_PREPROCESS_MAX_CHANNELS ||
                !(o->n_mean == 1 || o->n_mean == c))
                return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                    "%s: %d mean/std values for a %d-channel model input",
                                    ds->path, o->n_mean, c);
            p->n_mean = o->n_mean;
            memcpy(p->mean, o->mean, sizeof p->mean);
            memcpy(p->std, o->std, sizeof p->std);
        }
        for (int k = 0; k < p->n_mean; k++)
            if (!(p->std[k] != 0.0f))
                return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: std[%d] is zero",
                                    ds->path, k);
    }
    return QD_OK;
}

static void note_bad(qd_dataset *ds, int64_t item, const char *msg)
{
    if (!ds->bad) {
        ds->bad = qd_calloc((size_t)ds->count, 1);
        if (!ds->bad)
            return;
    }
    if (ds->bad[item])
        return;
    ds->bad[item] = 1;
    if (ds->n_skipped++ == 0)
        snprintf(ds->first_bad, sizeof ds->first_bad, "%s", msg);
}

static void append_item(qd_error *err, int64_t i)
{
    if (!err)
        return;
    size_t n = strlen(err->message);
    if (n + 1 < sizeof err->message)
        snprintf(err->message + n, sizeof err->message - n, " (item %lld)", (long long)i);
}

qd_status qd_dataset_read(qd_dataset *ds, int64_t start, int64_t max_items, int c, int h, int w,
                          float *out, int64_t *labels, int64_t *n_read, int64_t *next,
                          qd_error *err)
{
    if (n_read)
        *n_read = 0;
    if (next)
        *next = start;
    if (start < 0 || start > ds->count || max_items < 0 || (max_items > 0 && !out))
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                            "%s: bad read of %lld items from %lld (%lld items)", ds->path,
                            (long long)max_items, (long long)start, (long long)ds->count);
    if (c <= 0 || h <= 0 || w <= 0 || (int64_t)c * h * w > (1ll << 31))
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: bad model input size %dx%dx%d",
                            ds->path, c, h, w);
    qd_preprocess p;
    qd_status st = setup_preprocess(ds, c, h, w, &p, err);
    if (st != QD_OK)
        return st;
    size_t per = (size_t)c * (size_t)h * (size_t)w;
    int64_t i = start, filled = 0;
    while (filled < max_items && i < ds->count) {
        int64_t item = item_of(ds, i);
        float *dst = out + (size_t)filled * per;
        if (ds->kind == QD_DATASET_FOLDER) {
            if (ds->bad && ds->bad[item]) {
                i++;
                continue;
            }
            const char *file = ds->pool + ds->item_off[item];
            qd_image img;
            st = qd_image_load(file, &img, err);
            if (st == QD_OK) {
                qd_image_view v = {QD_PIXEL_U8_HWC, img.width, img.height, img.channels,
                                   img.data};
                st = qd_preprocess_image(&p, &v, c, h, w, dst, err);
                if (st != QD_OK)
                    qd_error_prefix(err, "%s: ", file);
                qd_image_free(&img);
            }
            if (st != QD_OK) {
                if (ds->opt.skip_bad && st != QD_STATUS_OUT_OF_MEMORY) {
                    note_bad(ds, item, err ? err->message : file);
                    if (err)
                        qd_error_clear(err);
                    st = QD_OK;
                    i++;
                    continue;
                }
                append_item(err, i);
                break;
            }
        } else {
            size_t isz = (size_t)ds->src_c * (size_t)ds->src_h * (size_t)ds->src_w;
            const unsigned char *base = ds->array->data;
            size_t esz = ds->pixel == QD_PIXEL_U8_HWC ? 1 : sizeof(float);
            qd_image_view v = {ds->pixel, ds->src_w, ds->src_h, ds->src_c,
                               base + (size_t)item * isz * esz};
            st = qd_preprocess_image(&p, &v, c, h, w, dst, err);
            if (st != QD_OK) {
                qd_error_prefix(err, "%s: ", ds->path);
                append_item(err, i);
                break;
            }
        }
        if (labels)
            labels[filled] = ds->labels ? ds->labels[item] : -1;
        filled++;
        i++;
    }
    if (n_read)
        *n_read = filled;
    if (next)
        *next = i;
    return st;
}
