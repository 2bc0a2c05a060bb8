/* The streaming histogram of |x| behind the percentile, entropy and mse
 * observers: fixed bin count, range fixed by the first non-zero batch and
 * grown by doubling the bin width (merging bin pairs, counts exact). */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "quant/observer_internal.h"

int qd_obs_hist_prepare(qd_obs_hist *h, int num_bins, double batch_max)
{
    if (!(batch_max > 0.0))
        return 0; /* only zeros: kept aside while width == 0, else bin 0 */
    if (h->width == 0.0) {
        if (!h->counts) {
            h->counts = qd_calloc((size_t)num_bins, sizeof *h->counts);
            h->sums = qd_calloc((size_t)num_bins, sizeof *h->sums);
            if (!h->counts || !h->sums) {
                qd_free(h->counts);
                qd_free(h->sums);
                h->counts = NULL;
                h->sums = NULL;
                return -1;
            }
        }
        h->width = batch_max / num_bins;
        h->counts[0] += h->pending_zeros;
        h->pending_zeros = 0;
        return 0;
    }
    /* Double the width until the range holds batch_max; bins 2k and 2k+1
     * cover exactly new bin k. num_bins is even, so no bin is left over. */
    while (batch_max > h->width * num_bins) {
        int half = num_bins / 2;
        for (int k = 0; k < half; k++) {
            h->counts[k] = h->counts[2 * k] + h->counts[2 * k + 1];
            h->sums[k] = h->sums[2 * k] + h->sums[2 * k + 1];
        }
        memset(h->counts + half, 0, (size_t)(num_bins - half) * sizeof *h->counts);
        memset(h->sums + half, 0, (size_t)(num_bins - half) * sizeof *h->sums);
        h->width *= 2.0;
    }
    return 0;
}

void qd_obs_hist_add(qd_obs_hist *h, int num_bins, const float *x, size_t n)
{
    if (h->width == 0.0) {
        /* Range not fixed: the batch held only zeros (and non-finite). */
        for (size_t k = 0; k < n; k++)
            h->pending_zeros += x[k] == 0.0f;
        return;
    }
    double inv = 1.0 / h->width;
    size_t last = (size_t)num_bins - 1;
    uint64_t *counts = h->counts;
    double *sums = h->sums;
    for (size_t k = 0; k < n; k++) {
        float v = fabsf(x[k]);
        if (!isfinite(v))
            continue;
        size_t b = (size_t)((double)v * inv);
        if (b > last)
            b = last;
        counts[b]++;
        sums[b] += v;
    }
}

void qd_obs_hist_clear(qd_obs_hist *h, int num_bins)
{
    if (h->counts) {
        memset(h->counts, 0, (size_t)num_bins * sizeof *h->counts);
        memset(h->sums, 0, (size_t)num_bins * sizeof *h->sums);
    }
    h->width = 0.0;
    h->pending_zeros = 0;
}

void qd_obs_hist_free(qd_obs_hist *h)
{
    qd_free(h->counts);
    qd_free(h->sums);
    h->counts = NULL;
    h->sums = NULL;
}
