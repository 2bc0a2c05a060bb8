/* Internals shared by the observer files: the streaming histogram of |x|. */
#ifndef QD_QUANT_OBSERVER_INTERNAL_H
#define QD_QUANT_OBSERVER_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

/* num_bins bins over [0, num_bins * width]; see observer.h for the growth
 * rule. counts/sums are allocated when the range is first fixed. */
typedef struct qd_obs_hist {
    uint64_t *counts;       /* num_bins, or NULL */
    double *sums;           /* num_bins: sum of the |x| in each bin */
    double width;           /* 0 while only zeros (or nothing) were seen */
    uint64_t pending_zeros; /* zeros seen while width == 0 */
} qd_obs_hist;

/* Makes the range hold batch_max (the batch's max |x| over finite values):
 * fixes it on the first non-zero batch_max, else doubles the width and
 * merges bin pairs until it does. Returns 0, or -1 on out of memory (the
 * histogram is then unchanged). */
int qd_obs_hist_prepare(qd_obs_hist *h, int num_bins, double batch_max);

/* Adds the finite values |x[k]| (all <= the batch_max given to prepare). */
void qd_obs_hist_add(qd_obs_hist *h, int num_bins, const float *x, size_t n);

void qd_obs_hist_clear(qd_obs_hist *h, int num_bins);
void qd_obs_hist_free(qd_obs_hist *h);

#endif
