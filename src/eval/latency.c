#include "eval/latency.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double qd_median(double *v, int n)
{
    if (n <= 0)
        return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void qd_latency_fill_inputs(qd_engine *e)
{
    unsigned s = 12345u;
    for (int i = 0; i < qd_engine_input_count(e); i++) {
        qd_tensor_info in;
        if (qd_engine_input_info(e, i, &in) != QD_OK || !in.data)
            continue;
        if (in.dtype != QD_FLOAT32) {
            memset(in.data, 0, in.nbytes);
            continue;
        }
        float *x = in.data;
        for (size_t k = 0; k < in.nbytes / sizeof *x; k++) {
            s = s * 1103515245u + 12345u;
            x[k] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
        }
    }
}

qd_status qd_latency_measure(qd_engine *const *engines, int n, int warmup, int iters,
                             qd_latency *out, qd_error *err)
{
    if (n < 1 || iters < 1 || warmup < 0)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                            "latency: %d engines, %d iterations, %d warm-up runs", n, iters,
                            warmup);
    double *t = qd_malloc((size_t)n * (size_t)iters * sizeof *t);
    if (!t)
        return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    qd_status st = QD_OK;
    for (int k = 0; k < n; k++)
        qd_latency_fill_inputs(engines[k]);
    for (int it = 0; it < warmup + iters; it++)
        for (int k = 0; k < n; k++) {
            double t0 = now_ms();
            if ((st = qd_engine_run(engines[k])) != QD_OK) {
                qd_error_set(err, st, "latency run of model %d: %s", k,
                             qd_engine_error(engines[k]));
                goto done;
            }
            if (it >= warmup)
                t[(size_t)k * (size_t)iters + (size_t)(it - warmup)] = now_ms() - t0;
        }
    for (int k = 0; k < n; k++) {
        double *v = t + (size_t)k * (size_t)iters, sum = 0.0;
        for (int i = 0; i < iters; i++)
            sum += v[i];
        out[k].iters = iters;
        out[k].mean_ms = sum / iters;
        out[k].median_ms = qd_median(v, iters);
        out[k].min_ms = v[0];
        out[k].max_ms = v[iters - 1];
    }
done:
    qd_free(t);
    return st;
}
