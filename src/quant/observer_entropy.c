/* Entropy calibration: TensorRT's legacy/entropy calibrator.
 *
 * Semantics followed (see qd_hist_entropy_kl in observer.h for the formulas):
 * the pseudocode of NVIDIA's GTC 2017 talk "8-bit Inference with TensorRT"
 * (S7310, "Entropy Calibration - pseudocode"), with the details that talk
 * leaves open taken from NVIDIA pytorch-quantization's _compute_amax_entropy
 * (tools/pytorch-quantization/pytorch_quantization/calib/histogram.py):
 *   - unsigned histogram of |x|, num_bins = 2048, levels = 128 (int8 with
 *     sign: 1 << (8 - 1)), candidate clip bins i = 128 .. 2048 inclusive,
 *     stride 1;
 *   - bin j of the first i goes to group floor(j * 128 / i) (the same
 *     partition as np.digitize over linspace(0, i, 129));
 *   - Q spreads each group's total over its non-zero bins only; the outliers
 *     go into P's last bin, not into Q;
 *   - KL as scipy.stats.entropy(P, Q): zero P bins contribute nothing, a
 *     non-zero P bin over a zero Q bin makes the divergence infinite;
 *   - ties go to the larger i (pytorch-quantization's last argmin).
 *   - before the search the observer sets bins[0] = bins[1], as
 *     pytorch-quantization does (option entropy_flatten_zero_bin, on by
 *     default; the functions here take the bins as given). Without it the
 *     spike of exact zeros after a ReLU dominates P: on ReLU(N(0, 1)) the
 *     search then clips at about 2 sigma instead of about 4.4.
 * Difference from pytorch-quantization, on purpose: the threshold is
 * (i + 0.5) * bin_width as in the TensorRT talk (pytorch-quantization
 * returns the edge i * bin_width).
 *
 * Cost: O(i) per candidate with no logarithm per element (ln of every bin is
 * computed once, ln of Q once per group), about 2 M multiply-adds for 2048
 * bins. */
#include <math.h>

#include "base/alloc.h"
#include "quant/observer.h"

typedef struct kl_work {
    const double *bins;
    const double *lnb;  /* ln(bins[j]) for bins[j] > 0 */
    double total;       /* sum of all bins */
    double *group_total; /* levels */
    int *group_nonzero;  /* levels */
    double *group_lnq;   /* levels */
} kl_work;

static double kl_candidate(const kl_work *w, int num_bins, int i, int levels)
{
    const double *b = w->bins;
    for (int g = 0; g < levels; g++) {
        w->group_total[g] = 0.0;
        w->group_nonzero[g] = 0;
    }
    double qtot = 0.0;
    for (int j = 0; j < i; j++) {
        int g = (int)((int64_t)j * levels / i);
        w->group_total[g] += b[j];
        w->group_nonzero[g] += b[j] > 0.0;
        qtot += b[j];
    }
    double outliers = 0.0;
    for (int j = i; j < num_bins; j++)
        outliers += b[j];
    if (!(qtot > 0.0))
        return HUGE_VAL; /* all mass in the outliers: Q is empty */
    for (int g = 0; g < levels; g++)
        w->group_lnq[g] =
            w->group_nonzero[g] ? log(w->group_total[g] / w->group_nonzero[g]) : 0.0;

    /* KL = sum P_n ln(P_n / Q_n) with P_n = p / total, Q_n = q / qtot
     *    = (1 / total) * sum p (ln p - ln q) + ln(qtot / total). */
    double s = 0.0;
    for (int j = 0; j < i; j++) {
        double p = b[j];
        double lnp = w->lnb[j];
        if (j == i - 1 && outliers > 0.0) {
            if (!(p > 0.0))
                return HUGE_VAL; /* P > 0 over an empty bin where Q == 0 */
            p += outliers;
            lnp = log(p);
        }
        if (!(p > 0.0))
            continue;
        int g = (int)((int64_t)j * levels / i);
        s += p * (lnp - w->group_lnq[g]);
    }
    double kl = s / w->total + log(qtot / w->total);
    return kl < 0.0 ? 0.0 : kl; /* rounding can leave -1e-17 for identical P, Q */
}

/* Validates bins and fills w (allocating its arrays). Returns 0, -1 on bad
 * arguments or an empty histogram, -2 on out of memory. */
static int kl_work_init(kl_work *w, const double *bins, int num_bins, int levels)
{
    w->lnb = NULL;
    w->group_total = NULL;
    w->group_nonzero = NULL;
    w->group_lnq = NULL;
    w->bins = bins;
    if (!bins || num_bins <= 0 || levels <= 0 || levels > num_bins)
        return -1;
    double total = 0.0;
    for (int j = 0; j < num_bins; j++) {
        if (!(bins[j] >= 0.0) || !isfinite(bins[j]))
            return -1;
        total += bins[j];
    }
    if (!(total > 0.0))
        return -1;
    w->total = total;
    double *lnb = qd_malloc((size_t)num_bins * sizeof *lnb);
    w->group_total = qd_malloc((size_t)levels * sizeof *w->group_total);
    w->group_nonzero = qd_malloc((size_t)levels * sizeof *w->group_nonzero);
    w->group_lnq = qd_malloc((size_t)levels * sizeof *w->group_lnq);
    w->lnb = lnb;
    if (!lnb || !w->group_total || !w->group_nonzero || !w->group_lnq)
        return -2;
    for (int j = 0; j < num_bins; j++)
        lnb[j] = bins[j] > 0.0 ? log(bins[j]) : 0.0;
    return 0;
}

static void kl_work_free(kl_work *w)
{
    qd_free((void *)w->lnb);
    qd_free(w->group_total);
    qd_free(w->group_nonzero);
    qd_free(w->group_lnq);
}

double qd_hist_entropy_kl(const double *bins, int num_bins, int i, int levels)
{
    if (i < levels || i > num_bins)
        return NAN;
    kl_work w;
    int rc = kl_work_init(&w, bins, num_bins, levels);
    double kl = rc == 0 ? kl_candidate(&w, num_bins, i, levels) : NAN;
    kl_work_free(&w);
    return kl;
}

int qd_hist_entropy_best_bin(const double *bins, int num_bins, int levels, int start, int stride)
{
    if (start < levels || start > num_bins || stride < 1)
        return -1;
    kl_work w;
    int rc = kl_work_init(&w, bins, num_bins, levels);
    if (rc != 0) {
        kl_work_free(&w);
        return rc;
    }
    int best_i = -1;
    double best = HUGE_VAL;
    for (int i = start;; i += stride) {
        if (i > num_bins)
            i = num_bins; /* the last candidate, always tried */
        double kl = kl_candidate(&w, num_bins, i, levels);
        if (kl <= best) { /* ascending i: ties go to the larger i */
            best = kl;
            best_i = i;
        }
        if (i == num_bins)
            break;
    }
    kl_work_free(&w);
    return best_i;
}
