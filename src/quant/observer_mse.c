/* MSE calibration: the clip value that minimizes the expected squared error
 * of int8 symmetric fake quantization over the histogram's distribution of
 * |x| (as pytorch-quantization's _compute_amax_mse, with the candidates being
 * bin edges rather than centres, max |x| added, and each bin's mass at its
 * mean value when the observer knows it). Rounding is to nearest even, as
 * ONNX QuantizeLinear and TensorRT round. */
#include <math.h>

#include "quant/observer.h"

double qd_hist_mse(const double *bins, const double *points, int num_bins, double width,
                   double amax)
{
    double total = 0.0, err = 0.0;
    double s = amax / 127.0;
    for (int j = 0; j < num_bins; j++) {
        if (!(bins[j] > 0.0))
            continue;
        double x = points ? points[j] : (j + 0.5) * width;
        double q = 0.0;
        if (s > 0.0) {
            double level = nearbyint(x / s);
            if (level > 127.0)
                level = 127.0;
            q = level * s;
        }
        err += bins[j] * (q - x) * (q - x);
        total += bins[j];
    }
    return total > 0.0 ? err / total : 0.0;
}

double qd_hist_mse_best(const double *bins, const double *points, int num_bins, double width,
                        double max_abs, double start_fraction)
{
    if (!bins || num_bins <= 0 || !(width > 0.0) || !(max_abs > 0.0))
        return 0.0;
    double lo = start_fraction * max_abs;
    double best_amax = max_abs;
    double best = HUGE_VAL;
    for (int k = 1; k <= num_bins; k++) {
        double a = k * width;
        if (a < lo)
            continue;
        if (a >= max_abs)
            break;
        double e = qd_hist_mse(bins, points, num_bins, width, a);
        if (e <= best) { /* ascending: ties go to the larger candidate */
            best = e;
            best_amax = a;
        }
    }
    if (qd_hist_mse(bins, points, num_bins, width, max_abs) <= best)
        best_amax = max_abs;
    return best_amax;
}
