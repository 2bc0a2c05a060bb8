/* Calibration observers: they see a tensor's activations (or a weight) batch
 * by batch and choose the clip threshold amax from which the INT8 scale
 * follows. They keep statistics and histograms, never the activations, so
 * calibrating on thousands of images fits in memory.
 *
 * Quantization is the TensorRT kind: int8 symmetric, zero point 0,
 * scale = amax / 127 (qd_observer_scale).
 *
 * Life cycle:
 *   qd_observer_options opt; qd_observer_options_init(&opt);
 *   opt.name = "conv1_out";                       (for messages)
 *   qd_observer_create(QD_OBSERVER_ENTROPY, &opt, &obs, &err);
 *   for each batch: qd_observer_observe(obs, data, n);
 *   qd_observer_finish(obs, &amax, 1);            (per channel: n_amax = channels)
 *   qd_observer_delete(obs);
 *
 * Kinds:
 *   max         running max |x|.
 *   percentile  from a histogram of |x|: the value below which `percentile`
 *               percent of |x| lies (linear within the bin where the
 *               cumulative count crosses the target).
 *   entropy     TensorRT's legacy/entropy calibrator: KL-divergence search
 *               over clip bins of a 2048-bin histogram of |x| (exact
 *               semantics: qd_hist_entropy_kl below), after bin 0 is set to
 *               bin 1's count (entropy_flatten_zero_bin, on by default).
 *   mse         the candidate clip value (histogram bin edges from
 *               mse_start_fraction of max |x| up to max |x|, and max |x|
 *               itself) minimizing the expected squared error of
 *               fake-quantizing the histogram's distribution.
 * Every histogram-based amax is capped at the observed max |x|.
 *
 * Histogram streaming (percentile, entropy, mse): num_bins bins of equal
 * width over [0, num_bins * width]. The first batch holding a non-zero |x|
 * fixes width = max|x| / num_bins (zeros seen before that are kept aside and
 * put in bin 0 then). When a later batch holds a larger |x|, the width is
 * doubled as often as needed and bins are merged in pairs (new[k] =
 * old[2k] + old[2k+1]), so counts are preserved exactly; a bin of the new
 * histogram covers exactly the two old bins it merges. Values are binned as
 * floor(|x| / width), clamped to the last bin (|x| equal to the range's top
 * edge lands there). Each bin also keeps the exact sum of its values, so the
 * mse search uses each bin's mean (which for spread data is about its
 * centre, and for a point mass is the point itself).
 *
 * Non-finite values: NaN and +-Inf are ignored (in the statistics, the
 * histogram and the amax) and counted in nan_count / inf_count, so a report
 * can flag them. An observer that saw no finite value at all fails in
 * finish with a message naming the tensor.
 *
 * Per-channel observation (weights): qd_observer_observe_channels sees data
 * laid out as [outer][channels][inner] row-major: element (o, c, k) is
 * data[(o * channels + c) * inner + k]. A Conv weight [Cout, Cin, kh, kw] on
 * axis 0 is outer = 1, channels = Cout, inner = Cin*kh*kw; a MatMul weight
 * [K, N] on axis 1 is outer = K, channels = N, inner = 1. Each channel has
 * its own statistics (and, for histogram kinds, its own histogram).
 */
#ifndef QD_QUANT_OBSERVER_H
#define QD_QUANT_OBSERVER_H
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef enum qd_observer_kind {
    QD_OBSERVER_MAX = 0,
    QD_OBSERVER_PERCENTILE,
    QD_OBSERVER_ENTROPY,
    QD_OBSERVER_MSE,
} qd_observer_kind;

#define QD_OBSERVER_KIND_COUNT 4

/* "max", "percentile", "entropy", "mse"; "?" for unknown values. */
const char *qd_observer_kind_name(qd_observer_kind kind);
/* Parses a kind name (as above); -1 if unknown, 0 on success. */
int qd_observer_kind_parse(const char *name, qd_observer_kind *kind);

typedef struct qd_observer_options {
    const char *name;          /* tensor name for messages; copied; NULL: "tensor" */
    size_t channels;           /* 0: per tensor (observe); > 0: per channel (observe_channels) */
    int num_bins;              /* histogram bins; even, >= 2; default 2048 */
    double percentile;         /* percentile kind, in (0, 100]; default 99.99 */
    int entropy_levels;        /* quantized levels of Q; default 128 (int8, |x|) */
    int entropy_start;         /* first candidate clip bin, >= levels; default 128 */
    int entropy_stride;        /* candidate step, >= 1; default 1 (num_bins always tried) */
    int entropy_flatten_zero_bin; /* 1 (default): bin 0 := bin 1 before the KL search, as
                                   * pytorch-quantization does, so the spike of exact zeros
                                   * after a ReLU does not drive the threshold down; 0: bins
                                   * as counted */
    double mse_start_fraction; /* smallest mse candidate as a fraction of max |x|; default 0.1 */
} qd_observer_options;

/* Fills the defaults above (num_bins 2048, percentile 99.99, levels 128,
 * start 128, stride 1, flatten zero bin, mse fraction 0.1, per tensor). */
void qd_observer_options_init(qd_observer_options *opt);

/* Statistics of the finite values seen (per tensor or per channel). */
typedef struct qd_observer_stats {
    uint64_t count;     /* finite values observed */
    uint64_t nan_count; /* NaNs ignored */
    uint64_t inf_count; /* +-Inf ignored */
    float min, max;     /* of x (signed); 0 when count == 0 */
    float max_abs;      /* max |x| */
    double sum_abs;     /* sum of |x|; mean |x| = sum_abs / count */
} qd_observer_stats;

double qd_observer_stats_mean_abs(const qd_observer_stats *s);

typedef struct qd_observer qd_observer;

/* Creates an observer; opt NULL means the defaults. Bad options: an
 * INVALID_ARGUMENT status and a message on err (which may be NULL). */
qd_status qd_observer_create(qd_observer_kind kind, const qd_observer_options *opt,
                             qd_observer **out, qd_error *err);
/* Accepts NULL. */
void qd_observer_delete(qd_observer *obs);

/* One batch of a per-tensor observer: n values (n == 0 is a no-op). */
qd_status qd_observer_observe(qd_observer *obs, const float *data, size_t n);
/* One batch of a per-channel observer, laid out [outer][channels][inner]
 * (see the top of this file); channels must equal the created count. */
qd_status qd_observer_observe_channels(qd_observer *obs, const float *data, size_t outer,
                                       size_t channels, size_t inner);

/* Computes the clip threshold: amax[0] for a per-tensor observer, amax[c]
 * for each channel of a per-channel one (n_amax must be at least that many).
 * Fails with INVALID_ARGUMENT when no finite value was observed (in any
 * channel). Does not change the observer: more batches may follow. */
qd_status qd_observer_finish(qd_observer *obs, float *amax, size_t n_amax);

/* Forgets every batch (keeps kind and options). */
void qd_observer_reset(qd_observer *obs);

/* The message of the last failed call ("" if none). */
const char *qd_observer_error(const qd_observer *obs);

qd_observer_kind qd_observer_get_kind(const qd_observer *obs);
/* 1 for a per-tensor observer, else the channel count. */
size_t qd_observer_channels(const qd_observer *obs);
/* Number of observe / observe_channels calls since create or reset. */
uint64_t qd_observer_batches(const qd_observer *obs);
/* Statistics of one channel (0 for a per-tensor observer); NULL if out of range. */
const qd_observer_stats *qd_observer_channel_stats(const qd_observer *obs, size_t channel);
/* Statistics of the whole tensor (all channels merged). */
void qd_observer_tensor_stats(const qd_observer *obs, qd_observer_stats *out);

/* The histogram of one channel, for reports and tests: *counts points at
 * num_bins counts, *width is the bin width. While no non-zero |x| was seen,
 * *width is 0, *pending_zeros counts the zeros kept aside and *counts may be
 * NULL. Returns -1 for the max
 * kind (no histogram) or a channel out of range, else 0. */
int qd_observer_histogram(const qd_observer *obs, size_t channel, const uint64_t **counts,
                          int *num_bins, double *width, uint64_t *pending_zeros);

/* scale = amax / 127. An amax that is 0 (all-zero tensor) or not finite
 * gives 1.0f: any positive scale represents zeros exactly and QuantizeLinear
 * needs a non-zero scale. */
float qd_observer_scale(float amax);

/* ---- histogram math (used by the observers; exposed for tests) ---------- */

/* Entropy calibration (TensorRT's legacy calibrator, as in the GTC 2017 talk
 * "8-bit Inference with TensorRT" and NVIDIA pytorch-quantization's
 * _compute_amax_entropy). For candidate clip bin i (num_bins bins, counts
 * bins[]):
 *   P[j] = bins[j] for j < i, and P[i-1] += sum(bins[i..num_bins)) (outliers);
 *   Q: bins[0..i) merged into `levels` groups, bin j in group
 *      floor(j * levels / i) (groups of i/levels bins, proportionally split
 *      when levels does not divide i); each group's total is spread evenly
 *      over the group's non-zero bins, zero bins stay zero (outliers are not
 *      in Q);
 *   P and Q normalized to sum 1; KL(P||Q) = sum over P[j] > 0 of
 *   P[j] ln(P[j] / Q[j]); a bin with P[j] > 0 and Q[j] == 0 makes the
 *   candidate's divergence +Inf (never chosen; this happens only when bin i-1
 *   is empty and holds outliers).
 * Returns that divergence (HUGE_VAL for +Inf, NaN for i out of [levels,
 * num_bins] or an empty histogram). */
double qd_hist_entropy_kl(const double *bins, int num_bins, int i, int levels);

/* The KL search: candidates i = start, start+stride, ... and always
 * num_bins; the i with the smallest divergence wins, ties to the larger i
 * (less clipping, as pytorch-quantization's last argmin). Returns the
 * chosen i (-1 on bad arguments or an empty histogram, -2 on out of
 * memory); the threshold is
 * amax = (i + 0.5) * width, as the TensorRT talk states, which the observer
 * caps at the observed max |x|. */
int qd_hist_entropy_best_bin(const double *bins, int num_bins, int levels, int start, int stride);

/* The value below which `percentile` percent of the histogram's mass lies,
 * linear within the crossing bin; in [0, num_bins * width]. */
double qd_hist_percentile(const double *bins, int num_bins, double width, double percentile);

/* Expected squared error of fake-quantizing (int8 symmetric: q(x) =
 * min(rint(x / s), 127) * s, s = amax / 127) the histogram's mass, bin j's
 * mass sitting at points[j] (NULL: the bin centre (j + 0.5) * width). */
double qd_hist_mse(const double *bins, const double *points, int num_bins, double width,
                   double amax);
/* The mse search over candidates k * width (k = 1..num_bins) in
 * [start_fraction * max_abs, max_abs), and max_abs itself; ties to the
 * larger candidate. Returns the chosen amax (0 for an empty histogram). */
double qd_hist_mse_best(const double *bins, const double *points, int num_bins, double width,
                        double max_abs, double start_fraction);

#endif
