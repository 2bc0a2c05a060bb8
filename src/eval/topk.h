/* Top-k accuracy: counting (pure functions, unit-tested) and the
 * evaluation of an engine over a labelled dataset in batches.
 *
 * Ranking: the rank of the true class is the number of classes that score
 * higher, plus the classes scoring the same with a lower index (a stable
 * descending sort, so ties never count as hits twice); NaN scores rank below
 * every number. The item is a top-k hit when that rank is < k. */
#ifndef QD_EVAL_TOPK_H
#define QD_EVAL_TOPK_H
#include <stdint.h>

#include "base/status.h"
#include "data/dataset.h"
#include "qdeploy.h"

typedef struct qd_topk {
    int64_t total; /* items counted */
    int64_t top1;  /* hits at k = 1 */
    int64_t top5;  /* hits at k = 5 */
} qd_topk;

/* The rank (0 = best) of class `label` among scores[0..classes). */
int64_t qd_topk_rank(const float *scores, int64_t classes, int64_t label);

/* Adds n rows of logits (row-major n x classes) with their labels to acc.
 * A label outside [0, classes) is INVALID_ARGUMENT naming the row
 * (first_item + row) and nothing is added. */
qd_status qd_topk_add(qd_topk *acc, const float *logits, int64_t n, int64_t classes,
                      const int64_t *labels, int64_t first_item, qd_error *err);

/* 100 * hits / total (0 when total is 0). */
double qd_topk_percent(int64_t hits, int64_t total);

typedef struct qd_eval_options {
    int64_t limit;       /* at most this many items (0: all) */
    int progress;        /* a progress bar on stderr */
    const char *label;   /* its label ("fp32: evaluating") */
} qd_eval_options;

/* Runs the engine over ds (items 0 .. min(count, limit)) in batches of the
 * engine's input batch (dim 0; the last batch is padded with repeats that
 * are not counted) and counts top-1/top-5 of output 0 (n x classes, or any
 * shape with n rows). The engine must have one float32 NCHW input. Every
 * item needs a label. */
qd_status qd_eval_topk(qd_engine *e, qd_dataset *ds, const qd_eval_options *opt, qd_topk *out,
                       qd_error *err);

#endif
