/* Calibration: runs the float model on the engine over calibration data and
 * streams every planned activation into an observer (histograms, never the
 * activations), then fills the plan's amax values. */
#ifndef QD_QUANT_CALIBRATE_H
#define QD_QUANT_CALIBRATE_H

#include "data/dataset.h"
#include "quant/observer.h"
#include "quant/placement.h"

typedef struct qd_calibration_options {
    qd_observer_kind method; /* activations; weights are always max */
    int batches;             /* default 32 */
    int batch_size;          /* default 32: items per batch */
    int threads;             /* 0: all cores */
    int progress;            /* 1: a progress line on stderr */
} qd_calibration_options;

void qd_calibration_options_init(qd_calibration_options *opt);

/* Fills plan->points[i].amax for every activation point. g must have one
 * float32 NCHW input; items are read from ds as its C x H x W. The engine
 * is created and deleted inside: g is unchanged. Errors go to err. */
qd_status qd_calibrate(qd_graph *g, qd_qdq_plan *plan, qd_dataset *ds,
                       const qd_calibration_options *opt, qd_error *err);

#endif
