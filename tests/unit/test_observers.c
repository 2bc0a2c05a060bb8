/* Calibration observers (src/quant/observer.h) against hand-computed values:
 * max (per tensor, per channel), percentile on a ramp, histogram range
 * growth, entropy (uniform, Gaussian with outliers, a tiny histogram whose
 * KL divergences are computed by hand), mse, and the error paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/observer.h"

static qd_observer *make(qd_observer_kind kind, const qd_observer_options *opt)
{
    qd_observer *obs = NULL;
    qd_error err = {0};
    qd_status st = qd_observer_create(kind, opt, &obs, &err);
    if (st != QD_OK)
        fail_msg("create %s: %s", qd_observer_kind_name(kind), err.message);
    return obs;
}

static float finish1(qd_observer *obs)
{
    float amax = -1.0f;
    qd_status st = qd_observer_finish(obs, &amax, 1);
    if (st != QD_OK)
        fail_msg("finish: %s", qd_observer_error(obs));
    return amax;
}

/* Uniform in [0, 1) from a 32-bit LCG. */
static double urand(unsigned *seed)
{
    *seed = *seed * 1664525u + 1013904223u;
    return ((*seed >> 8) + 0.5) / 16777216.0;
}

static double gauss(unsigned *seed)
{
    double u1 = urand(seed), u2 = urand(seed);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* ---- max ---------------------------------------------------------------- */

static void test_max_per_tensor(void **state)
{
    (void)state;
    qd_observer *obs = make(QD_OBSERVER_MAX, NULL);
    const float b1[] = {1.0f, -3.0f, 2.5f, NAN};
    const float b2[] = {0.5f, INFINITY, -INFINITY, -2.0f};
    assert_int_equal(qd_observer_observe(obs, b1, 4), QD_OK);
    assert_int_equal(qd_observer_observe(obs, b2, 4), QD_OK);
    assert_float_equal(finish1(obs), 3.0f, 0.0f);
    assert_float_equal(qd_observer_scale(3.0f), 3.0f / 127.0f, 1e-9f);

    const qd_observer_stats *s = qd_observer_channel_stats(obs, 0);
    assert_non_null(s);
    assert_int_equal(s->count, 5);
    assert_int_equal(s->nan_count, 1);
    assert_int_equal(s->inf_count, 2);
    assert_float_equal(s->min, -3.0f, 0.0f);
    assert_float_equal(s->max, 2.5f, 0.0f);
    assert_float_equal(s->max_abs, 3.0f, 0.0f);
    assert_float_equal(qd_observer_stats_mean_abs(s), 9.0 / 5.0, 1e-12);
    assert_int_equal(qd_observer_batches(obs), 2);
    assert_int_equal(qd_observer_channels(obs), 1);
    assert_int_equal(qd_observer_histogram(obs, 0, NULL, NULL, NULL, NULL), -1);

    /* A larger batch raises amax; finish does not consume the state. */
    const float b3[] = {-7.25f};
    assert_int_equal(qd_observer_observe(obs, b3, 1), QD_OK);
    assert_float_equal(finish1(obs), 7.25f, 0.0f);
    qd_observer_delete(obs);
}

static void test_max_per_channel(void **state)
{
    (void)state;
    qd_observer_options opt;
    qd_observer_options_init(&opt);
    opt.name = "conv.weight";
    opt.channels = 3;
    qd_observer *obs = make(QD_OBSERVER_MAX, &opt);

    /* Conv weight [Cout=3, Cin=2, kh=2, kw=1], axis 0: outer 1, inner 4. */
    const float w[3 * 4] = {
        0.1f, -0.4f, 0.2f, 0.3f,  /* channel 0: amax 0.4 */
        2.0f, 1.0f,  -1.5f, 0.0f, /* channel 1: amax 2.0 */
        -0.05f, 0.01f, 0.02f, -0.03f, /* channel 2: amax 0.05 */
    };
    assert_int_equal(qd_observer_observe_channels(obs, w, 1, 3, 4), QD_OK);
    float amax[3];
    assert_int_equal(qd_observer_finish(obs, amax, 3), QD_OK);
    assert_float_equal(amax[0], 0.4f, 0.0f);
    assert_float_equal(amax[1], 2.0f, 0.0f);
    assert_float_equal(amax[2], 0.05f, 0.0f);
    const qd_observer_stats *s1 = qd_observer_channel_stats(obs, 1);
    assert_float_equal(s1->min, -1.5f, 0.0f);
    assert_float_equal(s1->max, 2.0f, 0.0f);
    assert_float_equal(qd_observer_stats_mean_abs(s1), 4.5 / 4.0, 1e-12);
    assert_null(qd_observer_channel_stats(obs, 3));
    qd_observer_stats t;
    qd_observer_tensor_stats(obs, &t);
    assert_int_equal(t.count, 12);
    assert_float_equal(t.min, -1.5f, 0.0f);
    assert_float_equal(t.max, 2.0f, 0.0f);
    assert_float_equal(t.max_abs, 2.0f, 0.0f);
    qd_observer_delete(obs);

    /* MatMul weight [K=4, N=3], channels on axis 1: outer 4, inner 1;
     * element (k, n) is w[k * 3 + n]. */
    obs = make(QD_OBSERVER_MAX, &opt);
    const float m[4 * 3] = {
        1.0f,  -8.0f, 0.5f,
        -2.0f, 3.0f,  0.25f,
        0.0f,  4.0f,  -0.75f,
        1.5f,  -1.0f, 0.125f,
    };
    assert_int_equal(qd_observer_observe_channels(obs, m, 4, 3, 1), QD_OK);
    assert_int_equal(qd_observer_finish(obs, amax, 3), QD_OK);
    assert_float_equal(amax[0], 2.0f, 0.0f);
    assert_float_equal(amax[1], 8.0f, 0.0f);
    assert_float_equal(amax[2], 0.75f, 0.0f);

    /* Wrong channel count, per-tensor call, too small an output: errors. */
    assert_int_equal(qd_observer_observe_channels(obs, m, 3, 4, 1), QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(qd_observer_error(obs), "4 channels observed, 3 expected"));
    assert_int_equal(qd_observer_observe(obs, m, 12), QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(qd_observer_error(obs), "conv.weight"));
    assert_int_equal(qd_observer_finish(obs, amax, 2), QD_STATUS_INVALID_ARGUMENT);
    qd_observer_delete(obs);
}

/* ---- percentile ----------------------------------------------------------- */

static void test_percentile_ramp(void **state)
{
    (void)state;
    qd_observer *obs = make(QD_OBSERVER_PERCENTILE, NULL); /* 99.99, 2048 bins */
    float *x = malloc(10000 * sizeof *x);
    for (int k = 0; k < 10000; k++)
        x[k] = (k % 2 ? -1.0f : 1.0f) * (float)k;
    /* Two batches, the larger values first so no growth is involved. */
    assert_int_equal(qd_observer_observe(obs, x + 5000, 5000), QD_OK);
    assert_int_equal(qd_observer_observe(obs, x, 5000), QD_OK);
    double width = 0.0;
    assert_int_equal(qd_observer_histogram(obs, 0, NULL, NULL, &width, NULL), 0);
    assert_float_equal(width, 9999.0 / 2048.0, 1e-9);
    float amax = finish1(obs);
    assert_true(fabs(amax - 9999.0 * 0.9999) <= width);
    qd_observer_delete(obs);

    /* 50th percentile of the same ramp: ~5000, and 100 gives the max. */
    qd_observer_options opt;
    qd_observer_options_init(&opt);
    opt.percentile = 50.0;
    obs = make(QD_OBSERVER_PERCENTILE, &opt);
    assert_int_equal(qd_observer_observe(obs, x, 10000), QD_OK);
    assert_true(fabs(finish1(obs) - 5000.0) <= width);
    qd_observer_delete(obs);
    opt.percentile = 100.0;
    obs = make(QD_OBSERVER_PERCENTILE, &opt);
    assert_int_equal(qd_observer_observe(obs, x, 10000), QD_OK);
    assert_float_equal(finish1(obs), 9999.0f, 0.0f);
    qd_observer_delete(obs);
    free(x);

    /* Hand-computed: bins {2, 6, 2}, width 1: 30% of 10 = 3 lies below
     * 1 + (3 - 2) / 6. */
    const double bins[3] = {2, 6, 2};
    assert_float_equal(qd_hist_percentile(bins, 3, 1.0, 30.0), 1.0 + 1.0 / 6.0, 1e-12);
    assert_float_equal(qd_hist_percentile(bins, 3, 1.0, 100.0), 3.0, 1e-12);
}

/* ---- histogram range growth ---------------------------------------------- */

static void test_histogram_growth(void **state)
{
    (void)state;
    qd_observer_options opt;
    qd_observer_options_init(&opt);
    opt.num_bins = 16;
    qd_observer *obs = make(QD_OBSERVER_PERCENTILE, &opt);

    /* Expected counts after all batches with the final width 16: every value
     * in floor(|x| / 16), except the first batch's max 16.0, which sat on the
     * top edge (clamped into bin 15 at width 1) and so stays in the bin below
     * its edge through every merge: 15 -> 7 -> 3 -> 1 -> 0. All values are
     * exact in binary and none but 16.0 lies on an edge. */
    uint64_t expect[16] = {0};
    uint64_t total = 0;

    /* Batch 0: only zeros: the range waits; the zeros go to bin 0 later. */
    const float zeros[5] = {0.0f, -0.0f, 0.0f, 0.0f, NAN};
    assert_int_equal(qd_observer_observe(obs, zeros, 5), QD_OK);
    const uint64_t *counts = NULL;
    double width = -1.0;
    uint64_t pending = 0;
    assert_int_equal(qd_observer_histogram(obs, 0, &counts, NULL, &width, &pending), 0);
    assert_float_equal(width, 0.0, 0.0);
    assert_int_equal(pending, 4);
    expect[0] += 4;
    total += 4;

    /* Batch 1: +-(k + 0.5) for k < 16, and 16.0: range [0, 16], width 1. */
    float b1[17];
    for (int k = 0; k < 16; k++)
        b1[k] = (k % 2 ? -1.0f : 1.0f) * (k + 0.5f);
    b1[16] = 16.0f;
    assert_int_equal(qd_observer_observe(obs, b1, 17), QD_OK);
    assert_int_equal(qd_observer_histogram(obs, 0, &counts, NULL, &width, &pending), 0);
    assert_float_equal(width, 1.0, 0.0);
    assert_int_equal(pending, 0);
    assert_int_equal(counts[0], 5); /* 4 zeros and 0.5 */
    assert_int_equal(counts[15], 2); /* 15.5 and 16.0 */
    for (int k = 0; k < 16; k++)
        expect[(int)((k + 0.5f) / 16.0f)]++;
    expect[0]++; /* 16.0, see above */
    total += 17;

    /* Batch 2: k + 0.5 for k <= 50: 50.5 > 32 needs two doublings: width 4. */
    float b2[51];
    for (int k = 0; k <= 50; k++) {
        b2[k] = -(k + 0.5f);
        expect[(int)((k + 0.5f) / 16.0f)]++;
    }
    total += 51;
    assert_int_equal(qd_observer_observe(obs, b2, 51), QD_OK);
    assert_int_equal(qd_observer_histogram(obs, 0, &counts, NULL, &width, NULL), 0);
    assert_float_equal(width, 4.0, 0.0);
    uint64_t sum = 0;
    for (int k = 0; k < 16; k++)
        sum += counts[k];
    assert_int_equal(sum, total);
    /* Bin 3 at width 4 is [12, 16): 12.5..15.5 twice (batches 1 and 2)
     * plus 16.0 (kept below its edge). */
    assert_int_equal(counts[3], 9);
    assert_int_equal(counts[12], 3); /* [48, 52): 48.5, 49.5, 50.5 */

    /* Batch 3: 200.5 needs width 8 then 16 (range 256); a few values. */
    const float b3[4] = {200.5f, -100.25f, 33.5f, INFINITY};
    for (int k = 0; k < 3; k++)
        expect[(int)(fabsf(b3[k]) / 16.0f)]++;
    total += 3;
    assert_int_equal(qd_observer_observe(obs, b3, 4), QD_OK);
    assert_int_equal(qd_observer_histogram(obs, 0, &counts, NULL, &width, NULL), 0);
    assert_float_equal(width, 16.0, 0.0);
    sum = 0;
    for (int k = 0; k < 16; k++) {
        if (counts[k] != expect[k])
            fail_msg("bin %d: %llu, expected %llu", k, (unsigned long long)counts[k],
                     (unsigned long long)expect[k]);
        sum += counts[k];
    }
    assert_int_equal(sum, total);
    const qd_observer_stats *s = qd_observer_channel_stats(obs, 0);
    assert_int_equal(s->count, total);
    assert_int_equal(s->nan_count, 1);
    assert_int_equal(s->inf_count, 1);
    assert_float_equal(s->max_abs, 200.5f, 0.0f);
    qd_observer_delete(obs);
}

/* ---- entropy -------------------------------------------------------------- */

static void test_entropy_uniform(void **state)
{
    (void)state;
    qd_observer *obs = make(QD_OBSERVER_ENTROPY, NULL);
    unsigned seed = 7;
    float *x = malloc(50000 * sizeof *x);
    float max_abs = 0.0f;
    for (int b = 0; b < 4; b++) {
        for (int k = 0; k < 50000; k++) {
            x[k] = (float)(2.0 * urand(&seed) - 1.0) * 3.0f;
            if (fabsf(x[k]) > max_abs)
                max_abs = fabsf(x[k]);
        }
        assert_int_equal(qd_observer_observe(obs, x, 50000), QD_OK);
    }
    float amax = finish1(obs);
    assert_true(amax <= max_abs);
    assert_true(amax >= 0.97f * max_abs);
    free(x);
    qd_observer_delete(obs);
}

static void test_entropy_gaussian_outliers(void **state)
{
    (void)state;
    qd_observer *obs = make(QD_OBSERVER_ENTROPY, NULL);
    const int n = 100000;
    const double sigma = 0.5;
    unsigned seed = 11;
    float *x = malloc((size_t)n * sizeof *x);
    for (int b = 0; b < 3; b++) {
        for (int k = 0; k < n; k++)
            x[k] = (float)(sigma * gauss(&seed));
        if (b == 1) { /* a few huge outliers, at 40 sigma */
            x[0] = 20.0f;
            x[1] = -20.0f;
            x[2] = 19.0f;
        }
        assert_int_equal(qd_observer_observe(obs, x, (size_t)n), QD_OK);
    }
    float amax = finish1(obs);
    const qd_observer_stats *s = qd_observer_channel_stats(obs, 0);
    assert_float_equal(s->max_abs, 20.0f, 0.0f);
    if (!(amax > 3.0 * sigma && amax < 0.25f * s->max_abs))
        fail_msg("entropy amax %g: want in (3 sigma = %g, max/4 = %g)", (double)amax,
                 3.0 * sigma, 0.25 * s->max_abs);
    free(x);
    qd_observer_delete(obs);
}

/* A histogram small enough for hand computation: 16 bins, 4 levels, start 4.
 * bins = {4, 2, 2, 1, 1, 0, ...}, total 10 (no outliers beyond bin 4).
 *   i = 4: P = {4, 2, 2, 1+1} / 10, Q = {4, 2, 2, 1} / 9 (one bin per group):
 *          KL = .4 ln .9 + .2 ln .9 + .2 ln .9 + .2 ln 1.8
 *             = .8 ln .9 + .2 ln 1.8                         = 0.0332689...
 *   i = 8: groups {0,1} {2,3} {4,5} {6,7}: Q = {3, 3, 1.5, 1.5, 1, 0, 0, 0}/10
 *          (bin 5 is empty so group 2's 1 stays on bin 4),
 *          P = {4, 2, 2, 1, 1, 0, 0, 0} / 10:
 *          KL = .4 ln(4/3) + .2 ln(2/3) + .2 ln(2/1.5) + .1 ln(1/1.5) + 0
 *                                                            = 0.0509697...
 *   i = 5: groups floor(j*4/5) = {0,0,1,2,3}: Q = {3, 3, 2, 1, 1} / 10:
 *          KL = .4 ln(4/3) + .2 ln(2/3)                      = 0.0339798...
 *   i = 16: groups of 4: Q = {2.25 x4, 1, 0...} / 10:
 *          KL = .4 ln(4/2.25) + .4 ln(2/2.25) + .1 ln(1/2.25) = 0.1019394...
 * The minimum is i = 4. */
static void test_entropy_hand_histogram(void **state)
{
    (void)state;
    double bins[16] = {4, 2, 2, 1, 1};
    double kl4 = 0.8 * log(0.9) + 0.2 * log(1.8);
    double kl8 = 0.4 * log(4.0 / 3) + 0.2 * log(2.0 / 3) + 0.2 * log(2 / 1.5) + 0.1 * log(1 / 1.5);
    double kl5 = 0.4 * log(4.0 / 3) + 0.2 * log(2.0 / 3);
    double kl16 = 0.4 * log(4 / 2.25) + 0.4 * log(2 / 2.25) + 0.1 * log(1 / 2.25);
    assert_float_equal(kl4, 0.0332689, 1e-7);
    assert_float_equal(kl8, 0.0509697, 1e-7);
    assert_float_equal(qd_hist_entropy_kl(bins, 16, 4, 4), kl4, 1e-12);
    assert_float_equal(qd_hist_entropy_kl(bins, 16, 8, 4), kl8, 1e-12);
    assert_float_equal(qd_hist_entropy_kl(bins, 16, 5, 4), kl5, 1e-12);
    assert_float_equal(qd_hist_entropy_kl(bins, 16, 16, 4), kl16, 1e-12);
    assert_int_equal(qd_hist_entropy_best_bin(bins, 16, 4, 4, 1), 4);
    /* Out-of-range candidates and an empty histogram are NaN / -1. */
    assert_true(isnan(qd_hist_entropy_kl(bins, 16, 3, 4)));
    assert_true(isnan(qd_hist_entropy_kl(bins, 16, 17, 4)));
    double empty[16] = {0};
    assert_int_equal(qd_hist_entropy_best_bin(empty, 16, 4, 4, 1), -1);

    /* The same through an observer, from data: values 0.5 x4, 1.5 x2,
     * 2.5 x2, 3.5 x1 and 16 (the max: range [0, 16], width 1, in bin 15).
     * bins = {4, 2, 2, 1, 0 x11, 1}:
     *   i = 4: the outlier joins bin 3: P = {4, 2, 2, 2} / 10, Q = {4, 2, 2, 1}/9:
     *          KL = 0.0332689 as above;
     *   i = 5..15: bin i-1 is empty but holds the outlier in P while Q is 0
     *          there: infinite;
     *   i = 16: Q = {2.25 x4, 0 x11, 1} / 10: KL = 0.1019394.
     * So i = 4 and amax = (4 + 0.5) * 1 = 4.5. (Bins as counted: the
     * zero-bin flattening is off here; see below with it on.) */
    qd_observer_options opt;
    qd_observer_options_init(&opt);
    opt.num_bins = 16;
    opt.entropy_levels = 4;
    opt.entropy_start = 4;
    opt.entropy_flatten_zero_bin = 0;
    qd_observer *obs = make(QD_OBSERVER_ENTROPY, &opt);
    const float x[10] = {0.5f, -0.5f, 0.5f, 0.5f, 1.5f, -1.5f, 2.5f, 2.5f, -3.5f, 16.0f};
    assert_int_equal(qd_observer_observe(obs, x, 10), QD_OK);
    const uint64_t *counts = NULL;
    assert_int_equal(qd_observer_histogram(obs, 0, &counts, NULL, NULL, NULL), 0);
    double b2[16];
    for (int k = 0; k < 16; k++)
        b2[k] = (double)counts[k];
    assert_float_equal(b2[3], 1.0, 0.0);
    assert_float_equal(b2[15], 1.0, 0.0);
    assert_float_equal(qd_hist_entropy_kl(b2, 16, 4, 4), kl4, 1e-12);
    for (int i = 5; i < 16; i++)
        assert_true(isinf(qd_hist_entropy_kl(b2, 16, i, 4)));
    assert_float_equal(qd_hist_entropy_kl(b2, 16, 16, 4), kl16, 1e-12);
    assert_float_equal(finish1(obs), 4.5f, 0.0f);

    /* Stride 5 tries 4, 9, 14 and always 16: still 4. Start 5 leaves only
     * infinite candidates but 16: the whole range, capped at max |x|. */
    qd_observer_delete(obs);
    opt.entropy_stride = 5;
    obs = make(QD_OBSERVER_ENTROPY, &opt);
    assert_int_equal(qd_observer_observe(obs, x, 10), QD_OK);
    assert_float_equal(finish1(obs), 4.5f, 0.0f);
    qd_observer_delete(obs);
    opt.entropy_stride = 1;
    opt.entropy_start = 5;
    obs = make(QD_OBSERVER_ENTROPY, &opt);
    assert_int_equal(qd_observer_observe(obs, x, 10), QD_OK);
    assert_float_equal(finish1(obs), 16.0f, 0.0f);
    qd_observer_delete(obs);

    /* With bin 0 flattened to bin 1 (the default): bins = {2, 2, 2, 1,
     * 0 x11, 1}, total 8:
     *   i = 4:  P = {2, 2, 2, 2} / 8, Q = {2, 2, 2, 1} / 7:
     *           KL = .75 ln(.25 / (2/7)) + .25 ln(.25 / (1/7))  = 0.0397554...
     *   i = 16: Q = {1.75 x4, 0 x11, 1} / 8:
     *           KL = .75 ln(2 / 1.75) + .125 ln(1 / 1.75) + 0     = 0.0301966...
     * so i = 16 wins: amax = 16.5, capped at max |x| = 16. */
    double flat[16] = {2, 2, 2, 1};
    flat[15] = 1;
    double f4 = 0.75 * log(0.875) + 0.25 * log(1.75);
    double f16 = 0.75 * log(2 / 1.75) + 0.125 * log(1 / 1.75);
    assert_float_equal(f4, 0.0397554, 1e-7);
    assert_float_equal(f16, 0.0301966, 1e-7);
    assert_float_equal(qd_hist_entropy_kl(flat, 16, 4, 4), f4, 1e-12);
    assert_float_equal(qd_hist_entropy_kl(flat, 16, 16, 4), f16, 1e-12);
    assert_int_equal(qd_hist_entropy_best_bin(flat, 16, 4, 4, 1), 16);
    opt.entropy_start = 4;
    opt.entropy_flatten_zero_bin = 1;
    obs = make(QD_OBSERVER_ENTROPY, &opt);
    assert_int_equal(qd_observer_observe(obs, x, 10), QD_OK);
    assert_float_equal(finish1(obs), 16.0f, 0.0f);
    qd_observer_delete(obs);
}

/* After a ReLU half the values are exact zeros, all in bin 0. Flattening
 * bin 0 (the default, as pytorch-quantization) keeps the threshold near the
 * tail of ReLU(N(0, 1)); with the spike left in, the search clips at about
 * 2 sigma. */
static void test_entropy_relu_zeros(void **state)
{
    (void)state;
    const int n = 200000;
    unsigned seed = 5;
    float *x = malloc((size_t)n * sizeof *x);
    for (int k = 0; k < n; k++) {
        double v = gauss(&seed);
        x[k] = v > 0.0 ? (float)v : 0.0f;
    }
    qd_observer_options opt;
    qd_observer_options_init(&opt);
    qd_observer *obs = make(QD_OBSERVER_ENTROPY, &opt);
    assert_int_equal(qd_observer_observe(obs, x, (size_t)n), QD_OK);
    float flattened = finish1(obs);
    qd_observer_delete(obs);
    opt.entropy_flatten_zero_bin = 0;
    obs = make(QD_OBSERVER_ENTROPY, &opt);
    assert_int_equal(qd_observer_observe(obs, x, (size_t)n), QD_OK);
    float counted = finish1(obs);
    qd_observer_delete(obs);
    free(x);
    if (!(flattened > 3.5f && counted < 3.0f))
        fail_msg("ReLU entropy amax: flattened %g, as counted %g", (double)flattened,
                 (double)counted);
}

/* ---- mse ------------------------------------------------------------------ */

static void test_mse(void **state)
{
    (void)state;
    /* All values equal: quantizing at amax = that value is exact. */
    qd_observer *obs = make(QD_OBSERVER_MSE, NULL);
    float x[1000];
    for (int k = 0; k < 1000; k++)
        x[k] = k % 3 ? 0.7f : -0.7f;
    assert_int_equal(qd_observer_observe(obs, x, 1000), QD_OK);
    assert_int_equal(qd_observer_observe(obs, x, 500), QD_OK);
    assert_float_equal(finish1(obs), 0.7f, 0.0f);
    qd_observer_delete(obs);

    /* Hand-computed error: one value at 0.5 (bin centre, width 1), one at
     * 1.5, amax 1.5: s = 1.5/127, 0.5/s = 42.33 -> 42 -> 42 s; 1.5 -> 127 s.
     * Expected squared error = (42 s - 0.5)^2 / 2. */
    const double bins[2] = {1, 1};
    double s = 1.5 / 127.0;
    assert_float_equal(qd_hist_mse(bins, NULL, 2, 1.0, 1.5), (42 * s - 0.5) * (42 * s - 0.5) / 2,
                       1e-15);
    /* amax 1.0 clips 1.5 to 1.0: error ~ 0.25 / 2 dominates. */
    assert_true(qd_hist_mse(bins, NULL, 2, 1.0, 1.0) > 0.12);
    assert_float_equal(qd_hist_mse_best(bins, NULL, 2, 1.0, 1.5, 0.1), 1.5, 0.0);

    /* A Gaussian (sigma 1, 1e5 values): clipping the tails costs less than
     * the coarser step, so amax lands between 3 sigma and max |x|. */
    obs = make(QD_OBSERVER_MSE, NULL);
    unsigned seed = 3;
    const int n = 100000;
    float *g = malloc((size_t)n * sizeof *g);
    for (int k = 0; k < n; k++)
        g[k] = (float)gauss(&seed);
    assert_int_equal(qd_observer_observe(obs, g, (size_t)n), QD_OK);
    float amax = finish1(obs);
    float max_abs = qd_observer_channel_stats(obs, 0)->max_abs;
    if (!(amax > 3.0f && amax <= max_abs))
        fail_msg("mse amax %g, max |x| %g", (double)amax, (double)max_abs);
    qd_observer_delete(obs);

    /* The same with one outlier at 100: unlike entropy, mse weighs the
     * outlier's squared error, (100 - a)^2 / n, against the body's rounding
     * noise, about (a / 127)^2 / 12; the sum is least near
     * a = 100 / (1 + n / (12 * 127^2)) = 65.9. */
    obs = make(QD_OBSERVER_MSE, NULL);
    g[0] = 100.0f;
    assert_int_equal(qd_observer_observe(obs, g, (size_t)n), QD_OK);
    amax = finish1(obs);
    if (!(amax > 55.0f && amax < 75.0f))
        fail_msg("mse amax %g, want about 66", (double)amax);
    free(g);
    qd_observer_delete(obs);
}

/* ---- errors, non-finite values, reset, options ------------------------------ */

static void test_errors_and_nonfinite(void **state)
{
    (void)state;
    for (int kind = 0; kind < QD_OBSERVER_KIND_COUNT; kind++) {
        qd_observer_options opt;
        qd_observer_options_init(&opt);
        opt.name = "act7";
        qd_observer *obs = make((qd_observer_kind)kind, &opt);
        float amax = -1.0f;
        /* Nothing observed. */
        assert_int_equal(qd_observer_finish(obs, &amax, 1), QD_STATUS_INVALID_ARGUMENT);
        assert_non_null(strstr(qd_observer_error(obs), "act7"));
        assert_non_null(strstr(qd_observer_error(obs), "no data observed"));
        /* Empty batches only. */
        assert_int_equal(qd_observer_observe(obs, NULL, 0), QD_OK);
        assert_int_equal(qd_observer_finish(obs, &amax, 1), QD_STATUS_INVALID_ARGUMENT);
        assert_non_null(strstr(qd_observer_error(obs), "empty batches"));
        /* NULL data with values. */
        assert_int_equal(qd_observer_observe(obs, NULL, 3), QD_STATUS_INVALID_ARGUMENT);
        /* Only NaN / Inf: ignored, counted, and finish says so. */
        const float bad[4] = {NAN, INFINITY, -INFINITY, NAN};
        assert_int_equal(qd_observer_observe(obs, bad, 4), QD_OK);
        assert_int_equal(qd_observer_finish(obs, &amax, 1), QD_STATUS_INVALID_ARGUMENT);
        assert_non_null(strstr(qd_observer_error(obs), "no finite value"));
        assert_non_null(strstr(qd_observer_error(obs), "2 NaN, 2 Inf"));
        /* Finite values among them: amax ignores the rest. */
        const float mixed[6] = {NAN, 1.0f, -2.0f, INFINITY, 0.5f, 2.0f};
        assert_int_equal(qd_observer_observe(obs, mixed, 6), QD_OK);
        amax = finish1(obs);
        assert_true(amax > 0.0f && amax <= 2.0f);
        const qd_observer_stats *s = qd_observer_channel_stats(obs, 0);
        assert_int_equal(s->count, 4);
        assert_int_equal(s->nan_count, 3);
        assert_int_equal(s->inf_count, 3);
        if (kind != QD_OBSERVER_MAX) {
            const uint64_t *counts;
            int nb;
            assert_int_equal(qd_observer_histogram(obs, 0, &counts, &nb, NULL, NULL), 0);
            uint64_t sum = 0;
            for (int k = 0; k < nb; k++)
                sum += counts[k];
            assert_int_equal(sum, 4);
        }
        /* Reset forgets everything. */
        qd_observer_reset(obs);
        assert_int_equal(qd_observer_batches(obs), 0);
        assert_int_equal(qd_observer_finish(obs, &amax, 1), QD_STATUS_INVALID_ARGUMENT);
        const float again[3] = {0.25f, -0.125f, 0.25f};
        assert_int_equal(qd_observer_observe(obs, again, 3), QD_OK);
        amax = finish1(obs);
        assert_true(amax > 0.0f && amax <= 0.25f);
        /* All zeros: amax 0, scale falls back to 1. */
        qd_observer_reset(obs);
        const float z[3] = {0.0f, -0.0f, 0.0f};
        assert_int_equal(qd_observer_observe(obs, z, 3), QD_OK);
        assert_float_equal(finish1(obs), 0.0f, 0.0f);
        assert_float_equal(qd_observer_scale(0.0f), 1.0f, 0.0f);
        qd_observer_delete(obs);
    }
    qd_observer_delete(NULL);

    /* A per-channel observer names the empty channel... every channel holds
     * data here but channel 1 only NaN. */
    qd_observer_options opt;
    qd_observer_options_init(&opt);
    opt.name = "fc.weight";
    opt.channels = 2;
    qd_observer *obs = make(QD_OBSERVER_PERCENTILE, &opt);
    const float w[4] = {1.0f, NAN, 2.0f, NAN};
    assert_int_equal(qd_observer_observe_channels(obs, w, 2, 2, 1), QD_OK);
    float amax[2];
    assert_int_equal(qd_observer_finish(obs, amax, 2), QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(qd_observer_error(obs), "fc.weight' channel 1"));
    qd_observer_delete(obs);
}

static void test_options(void **state)
{
    (void)state;
    qd_observer_options opt;
    qd_error err = {0};
    qd_observer *obs = NULL;
    qd_observer_options_init(&opt);
    assert_int_equal(opt.num_bins, 2048);
    assert_float_equal(opt.percentile, 99.99, 0.0);
    assert_int_equal(opt.entropy_levels, 128);
    assert_int_equal(opt.entropy_start, 128);
    opt.num_bins = 15;
    assert_int_equal(qd_observer_create(QD_OBSERVER_ENTROPY, &opt, &obs, &err),
                     QD_STATUS_INVALID_ARGUMENT);
    assert_null(obs);
    assert_non_null(strstr(err.message, "num_bins"));
    qd_observer_options_init(&opt);
    opt.percentile = 0.0;
    assert_int_equal(qd_observer_create(QD_OBSERVER_PERCENTILE, &opt, &obs, &err),
                     QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "percentile"));
    qd_observer_options_init(&opt);
    opt.entropy_start = 100;
    assert_int_equal(qd_observer_create(QD_OBSERVER_ENTROPY, &opt, &obs, &err),
                     QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "start"));
    assert_int_equal(qd_observer_create((qd_observer_kind)9, NULL, &obs, &err),
                     QD_STATUS_INVALID_ARGUMENT);
    /* The max kind ignores histogram options. */
    opt.num_bins = 3;
    assert_int_equal(qd_observer_create(QD_OBSERVER_MAX, &opt, &obs, &err), QD_OK);
    qd_observer_delete(obs);

    qd_observer_kind k;
    assert_int_equal(qd_observer_kind_parse("entropy", &k), 0);
    assert_int_equal(k, QD_OBSERVER_ENTROPY);
    assert_int_equal(qd_observer_kind_parse("kl", &k), -1);
    assert_string_equal(qd_observer_kind_name(QD_OBSERVER_MSE), "mse");
}

/* Out-of-memory faults in create and the first histogram allocation. */
static long alloc_budget = -1;
static void *fail_malloc(size_t n) { return alloc_budget-- == 0 ? NULL : malloc(n); }
static void *fail_realloc(void *p, size_t n) { return alloc_budget-- == 0 ? NULL : realloc(p, n); }

static void test_out_of_memory(void **state)
{
    (void)state;
    qd_allocator a = {fail_malloc, fail_realloc, free};
    const float x[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    int succeeded = 0;
    for (long n = 0; n < 100 && !succeeded; n++) {
        qd_set_allocator(&a);
        alloc_budget = n;
        qd_observer *obs = NULL;
        qd_error err = {0};
        float amax = 0.0f;
        qd_status st = qd_observer_create(QD_OBSERVER_ENTROPY, NULL, &obs, &err);
        if (st == QD_OK)
            st = qd_observer_observe(obs, x, 4);
        if (st == QD_OK)
            st = qd_observer_finish(obs, &amax, 1);
        qd_set_allocator(NULL);
        if (st == QD_OK)
            succeeded = 1;
        else
            assert_int_equal(st, QD_STATUS_OUT_OF_MEMORY);
        qd_observer_delete(obs);
    }
    assert_true(succeeded);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_per_tensor),
        cmocka_unit_test(test_max_per_channel),
        cmocka_unit_test(test_percentile_ramp),
        cmocka_unit_test(test_histogram_growth),
        cmocka_unit_test(test_entropy_uniform),
        cmocka_unit_test(test_entropy_gaussian_outliers),
        cmocka_unit_test(test_entropy_hand_histogram),
        cmocka_unit_test(test_entropy_relu_zeros),
        cmocka_unit_test(test_mse),
        cmocka_unit_test(test_errors_and_nonfinite),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
