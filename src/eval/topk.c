#include "eval/topk.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/progress.h"

int64_t qd_topk_rank(const float *scores, int64_t classes, int64_t label)
{
    float s = scores[label];
    int64_t rank = 0;
    for (int64_t c = 0; c < classes; c++) {
        if (c == label)
            continue;
        float t = scores[c];
        if (isnan(s))
            rank += !isnan(t) || c < label; /* every number beats NaN */
        else if (!isnan(t))
            rank += t > s || (t == s && c < label);
    }
    return rank;
}

qd_status qd_topk_add(qd_topk *acc, const float *logits, int64_t n, int64_t classes,
                      const int64_t *labels, int64_t first_item, qd_error *err)
{
    if (classes < 1)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "top-k: the model has no outputs");
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes)
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                labels[i] < 0 ? "item %lld has no label"
                                              : "item %lld: label %lld is out of range for a "
                                                "model with %lld outputs",
                                (long long)(first_item + i), (long long)labels[i],
                                (long long)classes);
    for (int64_t i = 0; i < n; i++) {
        int64_t r = qd_topk_rank(logits + i * classes, classes, labels[i]);
        acc->top1 += r < 1;
        acc->top5 += r < 5;
        acc->total++;
    }
    return QD_OK;
}

double qd_topk_percent(int64_t hits, int64_t total)
{
    return total > 0 ? 100.0 * (double)hits / (double)total : 0.0;
}

qd_status qd_eval_topk(qd_engine *e, qd_dataset *ds, const qd_eval_options *opt, qd_topk *out,
                       qd_error *err)
{
    qd_eval_options defaults = {0};
    if (!opt)
        opt = &defaults;
    memset(out, 0, sizeof *out);
    if (qd_engine_input_count(e) != 1)
        return qd_error_set(err, QD_STATUS_UNSUPPORTED,
                            "evaluation needs a model with one input (it has %d)",
                            qd_engine_input_count(e));
    qd_tensor_info in, o;
    qd_status st = qd_engine_input_info(e, 0, &in);
    if (st != QD_OK)
        return qd_error_set(err, st, "%s", qd_engine_error(e));
    if (in.dtype != QD_FLOAT32 || in.rank != 4 || in.dims[0] < 1)
        return qd_error_set(err, QD_STATUS_UNSUPPORTED,
                            "evaluation needs one float32 NCHW input ('%s' is not)", in.name);
    if (!qd_dataset_has_labels(ds))
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "the evaluation data has no labels");
    int64_t b = in.dims[0], c = in.dims[1], h = in.dims[2], w = in.dims[3];
    int64_t count = qd_dataset_count(ds);
    if (opt->limit > 0 && opt->limit < count)
        count = opt->limit;
    if (count <= 0)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "the evaluation set is empty");
    size_t item = (size_t)(c * h * w);
    float *batch = qd_malloc((size_t)b * item * sizeof *batch);
    int64_t *labels = qd_malloc((size_t)b * sizeof *labels);
    qd_progress bar;
    qd_progress_begin(&bar, opt->progress, opt->label ? opt->label : "evaluating", count);
    if (!batch || !labels) {
        st = qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "out of memory for a batch");
        goto done;
    }
    int64_t dims[4] = {b, c, h, w};
    for (int64_t start = 0; start < count;) {
        int64_t want = count - start < b ? count - start : b, n_read = 0, next = start;
        if ((st = qd_dataset_read(ds, start, want, (int)c, (int)h, (int)w, batch, labels, &n_read,
                                  &next, err)) != QD_OK)
            goto done;
        if (n_read <= 0)
            break;
        for (int64_t k = n_read; k < b; k++)
            memcpy(batch + k * item, batch, item * sizeof *batch);
        if ((st = qd_engine_set_input(e, in.name, QD_FLOAT32, 4, dims, batch)) != QD_OK ||
            (st = qd_engine_run(e)) != QD_OK || (st = qd_engine_output_info(e, 0, &o)) != QD_OK) {
            qd_error_set(err, st, "%s", qd_engine_error(e));
            goto done;
        }
        int64_t numel = (int64_t)(o.nbytes / sizeof(float));
        if (o.dtype != QD_FLOAT32 || o.rank < 1 || o.dims[0] != b || numel % b) {
            st = qd_error_set(err, QD_STATUS_UNSUPPORTED,
                              "output '%s' is not float32 scores with one row per image",
                              o.name);
            goto done;
        }
        if ((st = qd_topk_add(out, o.data, n_read, numel / b, labels, start, err)) != QD_OK)
            goto done;
        start = next;
        qd_progress_update(&bar, start);
    }
done:
    qd_progress_end(&bar);
    qd_free(batch);
    qd_free(labels);
    return st;
}
