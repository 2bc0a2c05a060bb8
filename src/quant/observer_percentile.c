/* Percentile calibration: the value below which a given percentage of the
 * histogram's mass of |x| lies. Like pytorch-quantization's
 * _compute_amax_percentile it walks the cumulative histogram to the first bin
 * where the cumulative count reaches the target; instead of returning that
 * bin's left edge, it interpolates linearly inside the bin (mass assumed
 * uniform within a bin), so the answer is within one bin of the exact
 * percentile of the data. */
#include <math.h>

#include "quant/observer.h"

double qd_hist_percentile(const double *bins, int num_bins, double width, double percentile)
{
    if (!bins || num_bins <= 0 || !(width > 0.0))
        return 0.0;
    double total = 0.0;
    for (int k = 0; k < num_bins; k++)
        total += bins[k];
    if (!(total > 0.0))
        return 0.0;
    if (percentile > 100.0)
        percentile = 100.0;
    double target = percentile / 100.0 * total;
    double cum = 0.0;
    for (int k = 0; k < num_bins; k++) {
        if (bins[k] > 0.0 && cum + bins[k] >= target) {
            double frac = (target - cum) / bins[k];
            if (frac < 0.0)
                frac = 0.0;
            if (frac > 1.0)
                frac = 1.0;
            return (k + frac) * width;
        }
        cum += bins[k];
    }
    return num_bins * width; /* rounding left target a hair above the total */
}
