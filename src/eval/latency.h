/* Latency of engines: warm-up runs, then timed runs; median, min, max.
 * Several engines are timed interleaved (one run of each in turn), so a
 * noisy neighbour on a shared machine slows them all alike and their ratio
 * stays fair. Inputs are filled with fixed pseudo-random values. */
#ifndef QD_EVAL_LATENCY_H
#define QD_EVAL_LATENCY_H

#include "base/status.h"
#include "qdeploy.h"

typedef struct qd_latency {
    double median_ms, min_ms, max_ms, mean_ms;
    int iters;
} qd_latency;

/* Times n engines: warmup untimed runs each, then iters timed runs each,
 * interleaved. out[i] is engine i's. Errors name the engine (its index and
 * the engine's message). */
qd_status qd_latency_measure(qd_engine *const *engines, int n, int warmup, int iters,
                             qd_latency *out, qd_error *err);

/* Fills the engine's inputs with fixed pseudo-random values: uniform
 * [-1, 1) floats, zeros for other types. */
void qd_latency_fill_inputs(qd_engine *e);

/* Median of v[0..n) (sorts v). */
double qd_median(double *v, int n);

#endif
