#include "quant/calibrate.h"

#include "base/progress.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/strmap.h"

void qd_calibration_options_init(qd_calibration_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->method = QD_OBSERVER_ENTROPY;
    opt->batches = 32;
    opt->batch_size = 32;
}

typedef struct calib_state {
    qd_strmap observers; /* value name -> qd_observer* */
    qd_status status;    /* first observer error */
    char message[QD_ERROR_MAX];
} calib_state;

/* Engine callback: feeds a planned activation to its observer. Layout does
 * not matter: per-tensor statistics see the values as a set. */
static void on_value(void *user, const qd_tensor_info *v)
{
    calib_state *cs = user;
    qd_observer *obs = qd_strmap_get(&cs->observers, v->name);
    if (!obs || v->dtype != QD_FLOAT32 || cs->status != QD_OK)
        return;
    qd_status st = qd_observer_observe(obs, v->data, v->nbytes / sizeof(float));
    if (st != QD_OK) {
        cs->status = st;
        snprintf(cs->message, sizeof cs->message, "%s", qd_observer_error(obs));
    }
}

qd_status qd_calibrate(qd_graph *g, qd_qdq_plan *plan, qd_dataset *ds,
                       const qd_calibration_options *opt, qd_error *err)
{
    qd_calibration_options defaults;
    qd_progress bar = {0}; /* drawn on stderr when opt->progress */
    if (!opt) {
        qd_calibration_options_init(&defaults);
        opt = &defaults;
    }
    if (g->n_inputs != 1 || g->inputs[0]->rank != 4 || g->inputs[0]->dtype != QD_DT_FLOAT)
        return qd_error_set(err, QD_STATUS_UNSUPPORTED,
                            "calibration needs a model with one float32 NCHW input");
    qd_value *in = g->inputs[0];
    if (in->dims[1] < 1 || in->dims[2] < 1 || in->dims[3] < 1)
        return qd_error_set(err, QD_STATUS_SHAPE_ERROR,
                            "input '%s': channels, height and width must be fixed", in->name);
    int64_t count = qd_dataset_count(ds);
    if (count <= 0)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "the calibration set is empty");
    int64_t wanted = (int64_t)opt->batches * opt->batch_size;
    if (wanted <= 0 || wanted > count)
        wanted = count;
    /* A fixed model batch is what one run takes; a symbolic one is bound. */
    int64_t run_batch = in->dims[0] > 0 ? in->dims[0] : (opt->batch_size > 0 ? opt->batch_size : 1);
    if (run_batch > wanted)
        run_batch = in->dims[0] > 0 ? run_batch : wanted;
    int c = (int)in->dims[1], h = (int)in->dims[2], w = (int)in->dims[3];

    calib_state cs = {.status = QD_OK};
    qd_engine *e = NULL;
    float *batch = NULL;
    qd_status st = QD_OK;
    qd_observer *input_obs = NULL;
    for (size_t i = 0; i < plan->n; i++) {
        qd_plan_point *p = &plan->points[i];
        if (p->kind != QD_PLAN_ACTIVATION)
            continue;
        qd_value *v = p->consumer->inputs[p->input];
        if (qd_strmap_get(&cs.observers, v->name))
            continue;
        qd_observer_options oo;
        qd_observer_options_init(&oo);
        oo.name = v->name;
        qd_observer *obs = NULL;
        if ((st = qd_observer_create(opt->method, &oo, &obs, err)) != QD_OK)
            goto done;
        if (qd_strmap_put(&cs.observers, v->name, obs) != 0) {
            qd_observer_delete(obs);
            st = qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "out of memory");
            goto done;
        }
        if (v == in)
            input_obs = obs; /* the engine does not report its own inputs */
    }
    qd_engine_options eo = {.threads = opt->threads, .batch = run_batch, .unfused = 1};
    if ((st = qd_engine_create(g, &eo, &e)) != QD_OK) {
        qd_error_set(err, st, "%s", qd_engine_error(e));
        goto done;
    }
    qd_engine_set_observer(e, on_value, &cs);
    batch = qd_malloc((size_t)(run_batch * c * h * w) * sizeof *batch);
    if (!batch) {
        st = qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "out of memory for a batch");
        goto done;
    }
    int64_t dims[4] = {run_batch, c, h, w};
    qd_progress_begin(&bar, opt->progress, "calibrating", wanted);
    for (int64_t start = 0; start < wanted;) {
        int64_t n_read = 0, next = start;
        if ((st = qd_dataset_read(ds, start, run_batch, c, h, w, batch, NULL, &n_read, &next, err)) !=
            QD_OK)
            goto done;
        if (n_read <= 0)
            break;
        /* A short last batch of a fixed-batch model is padded by repeats. */
        for (int64_t k = n_read; k < run_batch; k++)
            memcpy(batch + k * c * h * w, batch, (size_t)(c * h * w) * sizeof *batch);
        if (input_obs &&
            (st = qd_observer_observe(input_obs, batch, (size_t)(n_read * c * h * w))) != QD_OK) {
            qd_error_set(err, st, "%s", qd_observer_error(input_obs));
            goto done;
        }
        if ((st = qd_engine_set_input(e, in->name, QD_FLOAT32, 4, dims, batch)) != QD_OK ||
            (st = qd_engine_run(e)) != QD_OK) {
            qd_error_set(err, st, "%s", qd_engine_error(e));
            goto done;
        }
        if (cs.status != QD_OK) {
            st = qd_error_set(err, cs.status, "%s", cs.message);
            goto done;
        }
        start = next;
        qd_progress_update(&bar, start < wanted ? start : wanted);
    }
    qd_progress_end(&bar);
    for (size_t i = 0; i < plan->n; i++) {
        qd_plan_point *p = &plan->points[i];
        if (p->kind != QD_PLAN_ACTIVATION)
            continue;
        qd_observer *obs = qd_strmap_get(&cs.observers, p->consumer->inputs[p->input]->name);
        if (!obs || (st = qd_observer_finish(obs, &p->amax, 1)) != QD_OK) {
            st = qd_error_set(err, st ? st : QD_STATUS_INVALID_MODEL, "%s",
                              obs ? qd_observer_error(obs) : "no observer");
            goto done;
        }
    }
done:
    qd_progress_end(&bar); /* ends the bar's line before an error is printed */
    for (size_t i = 0; i < cs.observers.cap; i++)
        if (cs.observers.keys && cs.observers.keys[i])
            qd_observer_delete(cs.observers.values[i]);
    qd_strmap_free(&cs.observers);
    qd_free(batch);
    qd_engine_delete(e);
    return st;
}
