/* Calibration observers: life cycle, streaming statistics, the max kind, and
 * the dispatch of finish to the histogram-based kinds. */
#include "quant/observer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "quant/observer_internal.h"

struct qd_observer {
    qd_observer_kind kind;
    qd_observer_options opt; /* opt.name points at name */
    char *name;
    size_t channels;         /* >= 1 */
    int per_channel;
    uint64_t batches;
    qd_observer_stats *stats; /* [channels] */
    qd_obs_hist *hist;        /* [channels], NULL for the max kind */
    double *scratch;          /* 2 * num_bins, for finish */
    qd_error err;
};

static const char *const kind_names[QD_OBSERVER_KIND_COUNT] = {"max", "percentile", "entropy",
                                                               "mse"};

const char *qd_observer_kind_name(qd_observer_kind kind)
{
    if ((int)kind < 0 || (int)kind >= QD_OBSERVER_KIND_COUNT)
        return "?";
    return kind_names[kind];
}

int qd_observer_kind_parse(const char *name, qd_observer_kind *kind)
{
    if (!name)
        return -1;
    for (int k = 0; k < QD_OBSERVER_KIND_COUNT; k++) {
        if (strcmp(name, kind_names[k]) == 0) {
            if (kind)
                *kind = (qd_observer_kind)k;
            return 0;
        }
    }
    return -1;
}

void qd_observer_options_init(qd_observer_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->name = NULL;
    opt->channels = 0;
    opt->num_bins = 2048;
    opt->percentile = 99.99;
    opt->entropy_levels = 128;
    opt->entropy_start = 128;
    opt->entropy_stride = 1;
    opt->entropy_flatten_zero_bin = 1;
    opt->mse_start_fraction = 0.1;
}

double qd_observer_stats_mean_abs(const qd_observer_stats *s)
{
    return s && s->count ? s->sum_abs / (double)s->count : 0.0;
}

static int uses_histogram(qd_observer_kind kind)
{
    return kind != QD_OBSERVER_MAX;
}

static qd_status check_options(qd_observer_kind kind, const qd_observer_options *o,
                               const char *name, qd_error *err)
{
    if ((int)kind < 0 || (int)kind >= QD_OBSERVER_KIND_COUNT)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "observer '%s': unknown kind %d",
                            name, (int)kind);
    if (!uses_histogram(kind))
        return QD_OK;
    if (o->num_bins < 2 || o->num_bins % 2 != 0 || o->num_bins > (1 << 24))
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                            "observer '%s': num_bins must be even and in [2, 2^24], got %d",
                            name, o->num_bins);
    if (kind == QD_OBSERVER_PERCENTILE && !(o->percentile > 0.0 && o->percentile <= 100.0))
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                            "observer '%s': percentile must be in (0, 100], got %g", name,
                            o->percentile);
    if (kind == QD_OBSERVER_ENTROPY) {
        if (o->entropy_levels < 1 || o->entropy_levels > o->num_bins)
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                "observer '%s': entropy levels must be in [1, num_bins=%d], got %d",
                                name, o->num_bins, o->entropy_levels);
        if (o->entropy_start < o->entropy_levels || o->entropy_start > o->num_bins)
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                "observer '%s': entropy start bin must be in [levels=%d, "
                                "num_bins=%d], got %d",
                                name, o->entropy_levels, o->num_bins, o->entropy_start);
        if (o->entropy_stride < 1)
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                "observer '%s': entropy stride must be >= 1, got %d", name,
                                o->entropy_stride);
    }
    if (kind == QD_OBSERVER_MSE &&
        !(o->mse_start_fraction >= 0.0 && o->mse_start_fraction <= 1.0))
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                            "observer '%s': mse start fraction must be in [0, 1], got %g", name,
                            o->mse_start_fraction);
    return QD_OK;
}

qd_status qd_observer_create(qd_observer_kind kind, const qd_observer_options *opt,
                             qd_observer **out, qd_error *err)
{
    if (!out)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "observer: NULL output handle");
    *out = NULL;
    qd_observer_options defaults;
    qd_observer_options_init(&defaults);
    if (!opt)
        opt = &defaults;
    const char *name = opt->name ? opt->name : "tensor";
    qd_status st = check_options(kind, opt, name, err);
    if (st != QD_OK)
        return st;

    qd_observer *obs = qd_calloc(1, sizeof *obs);
    if (!obs)
        goto oom;
    obs->kind = kind;
    obs->opt = *opt;
    obs->name = qd_strdup(name);
    if (!obs->name)
        goto oom;
    obs->opt.name = obs->name;
    obs->per_channel = opt->channels > 0;
    obs->channels = opt->channels > 0 ? opt->channels : 1;
    obs->stats = qd_calloc(obs->channels, sizeof *obs->stats);
    if (!obs->stats)
        goto oom;
    if (uses_histogram(kind)) {
        obs->hist = qd_calloc(obs->channels, sizeof *obs->hist);
        obs->scratch = qd_malloc(2 * (size_t)opt->num_bins * sizeof *obs->scratch);
        if (!obs->hist || !obs->scratch)
            goto oom;
    }
    *out = obs;
    return QD_OK;

oom:
    qd_observer_delete(obs);
    return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "observer '%s': out of memory", name);
}

void qd_observer_delete(qd_observer *obs)
{
    if (!obs)
        return;
    if (obs->hist) {
        for (size_t c = 0; c < obs->channels; c++)
            qd_obs_hist_free(&obs->hist[c]);
    }
    qd_free(obs->hist);
    qd_free(obs->stats);
    qd_free(obs->scratch);
    qd_free(obs->name);
    qd_free(obs);
}

void qd_observer_reset(qd_observer *obs)
{
    if (!obs)
        return;
    memset(obs->stats, 0, obs->channels * sizeof *obs->stats);
    if (obs->hist) {
        for (size_t c = 0; c < obs->channels; c++)
            qd_obs_hist_clear(&obs->hist[c], obs->opt.num_bins);
    }
    obs->batches = 0;
    qd_error_clear(&obs->err);
}

/* Statistics of one batch's values of one channel. */
typedef struct batch_acc {
    uint64_t count, nan_count, inf_count;
    float min, max, max_abs;
    double sum_abs;
} batch_acc;

static void acc_values(batch_acc *a, const float *x, size_t n)
{
    uint64_t count = 0;
    float mn = a->min, mx = a->max, ma = a->max_abs;
    double sum = 0.0;
    for (size_t k = 0; k < n; k++) {
        float v = x[k];
        if (!isfinite(v)) {
            if (isnan(v))
                a->nan_count++;
            else
                a->inf_count++;
            continue;
        }
        if (a->count + count == 0) {
            mn = mx = v;
        } else {
            if (v < mn)
                mn = v;
            if (v > mx)
                mx = v;
        }
        float av = fabsf(v);
        if (av > ma)
            ma = av;
        sum += av;
        count++;
    }
    a->count += count;
    a->min = mn;
    a->max = mx;
    a->max_abs = ma;
    a->sum_abs += sum;
}

static void stats_merge(qd_observer_stats *s, const batch_acc *a)
{
    if (a->count) {
        if (s->count == 0) {
            s->min = a->min;
            s->max = a->max;
        } else {
            if (a->min < s->min)
                s->min = a->min;
            if (a->max > s->max)
                s->max = a->max;
        }
        if (a->max_abs > s->max_abs)
            s->max_abs = a->max_abs;
        s->sum_abs += a->sum_abs;
        s->count += a->count;
    }
    s->nan_count += a->nan_count;
    s->inf_count += a->inf_count;
}

/* One batch: channel c's values are the `outer` runs of `inner` values at
 * data + (o * channels + c) * inner. */
static qd_status observe_layout(qd_observer *obs, const float *data, size_t outer,
                                size_t channels, size_t inner)
{
    for (size_t c = 0; c < channels; c++) {
        batch_acc a;
        memset(&a, 0, sizeof a);
        for (size_t o = 0; o < outer; o++)
            acc_values(&a, data + (o * channels + c) * inner, inner);
        if (obs->hist) {
            qd_obs_hist *h = &obs->hist[c];
            if (qd_obs_hist_prepare(h, obs->opt.num_bins, a.max_abs) != 0)
                return qd_error_set(&obs->err, QD_STATUS_OUT_OF_MEMORY,
                                    "observer '%s': out of memory for a histogram", obs->name);
            for (size_t o = 0; o < outer; o++)
                qd_obs_hist_add(h, obs->opt.num_bins, data + (o * channels + c) * inner, inner);
        }
        stats_merge(&obs->stats[c], &a);
    }
    obs->batches++;
    return QD_OK;
}

qd_status qd_observer_observe(qd_observer *obs, const float *data, size_t n)
{
    if (!obs)
        return QD_STATUS_INVALID_ARGUMENT;
    if (obs->per_channel)
        return qd_error_set(&obs->err, QD_STATUS_INVALID_ARGUMENT,
                            "observer '%s': per-channel observer (%zu channels) needs "
                            "observe_channels",
                            obs->name, obs->channels);
    if (n && !data)
        return qd_error_set(&obs->err, QD_STATUS_INVALID_ARGUMENT,
                            "observer '%s': NULL data for %zu values", obs->name, n);
    return observe_layout(obs, data, 1, 1, n);
}

qd_status qd_observer_observe_channels(qd_observer *obs, const float *data, size_t outer,
                                       size_t channels, size_t inner)
{
    if (!obs)
        return QD_STATUS_INVALID_ARGUMENT;
    if (!obs->per_channel)
        return qd_error_set(&obs->err, QD_STATUS_INVALID_ARGUMENT,
                            "observer '%s': per-tensor observer; use observe, or create it "
                            "with channels > 0",
                            obs->name);
    if (channels != obs->channels)
        return qd_error_set(&obs->err, QD_STATUS_INVALID_ARGUMENT,
                            "observer '%s': %zu channels observed, %zu expected", obs->name,
                            channels, obs->channels);
    if (outer && inner && (outer > SIZE_MAX / channels || outer * channels > SIZE_MAX / inner))
        return qd_error_set(&obs->err, QD_STATUS_INVALID_ARGUMENT,
                            "observer '%s': layout %zu x %zu x %zu overflows", obs->name, outer,
                            channels, inner);
    if (outer && inner && !data)
        return qd_error_set(&obs->err, QD_STATUS_INVALID_ARGUMENT,
                            "observer '%s': NULL data", obs->name);
    if (!outer || !inner) {
        obs->batches++;
        return QD_OK;
    }
    return observe_layout(obs, data, outer, channels, inner);
}

static double cap(double amax, double max_abs)
{
    return amax > max_abs ? max_abs : amax;
}

/* The amax of one channel whose statistics hold at least one finite value. */
static double channel_amax(qd_observer *obs, size_t c)
{
    const qd_observer_stats *s = &obs->stats[c];
    double max_abs = s->max_abs;
    if (obs->kind == QD_OBSERVER_MAX)
        return max_abs;
    const qd_obs_hist *h = &obs->hist[c];
    if (h->width == 0.0 || !(max_abs > 0.0))
        return 0.0; /* only zeros seen */
    int nb = obs->opt.num_bins;
    double *bins = obs->scratch;
    double *points = obs->scratch + nb;
    for (int j = 0; j < nb; j++) {
        bins[j] = (double)h->counts[j];
        points[j] = h->counts[j] ? h->sums[j] / (double)h->counts[j] : (j + 0.5) * h->width;
    }
    switch (obs->kind) {
    case QD_OBSERVER_PERCENTILE:
        return cap(qd_hist_percentile(bins, nb, h->width, obs->opt.percentile), max_abs);
    case QD_OBSERVER_ENTROPY: {
        if (obs->opt.entropy_flatten_zero_bin)
            bins[0] = bins[1]; /* see observer_entropy.c */
        int i = qd_hist_entropy_best_bin(bins, nb, obs->opt.entropy_levels,
                                         obs->opt.entropy_start, obs->opt.entropy_stride);
        if (i == -2)
            return -1.0; /* out of memory */
        if (i < 0)
            return max_abs; /* cannot happen: the histogram is valid and non-empty */
        return cap((i + 0.5) * h->width, max_abs);
    }
    case QD_OBSERVER_MSE:
        return qd_hist_mse_best(bins, points, nb, h->width, max_abs,
                                obs->opt.mse_start_fraction);
    case QD_OBSERVER_MAX:
        break;
    }
    return max_abs;
}

qd_status qd_observer_finish(qd_observer *obs, float *amax, size_t n_amax)
{
    if (!obs)
        return QD_STATUS_INVALID_ARGUMENT;
    if (!amax || n_amax < obs->channels)
        return qd_error_set(&obs->err, QD_STATUS_INVALID_ARGUMENT,
                            "observer '%s': room for %zu amax values, %zu needed", obs->name,
                            amax ? n_amax : 0, obs->channels);
    for (size_t c = 0; c < obs->channels; c++) {
        const qd_observer_stats *s = &obs->stats[c];
        if (s->count > 0)
            continue;
        char where[64] = "";
        if (obs->per_channel)
            snprintf(where, sizeof where, " channel %zu", c);
        if (obs->batches == 0)
            return qd_error_set(&obs->err, QD_STATUS_INVALID_ARGUMENT,
                                "observer '%s': no data observed (no batch)", obs->name);
        if (s->nan_count || s->inf_count)
            return qd_error_set(&obs->err, QD_STATUS_INVALID_ARGUMENT,
                                "observer '%s'%s: no finite value in %llu batches (%llu NaN, "
                                "%llu Inf ignored)",
                                obs->name, where, (unsigned long long)obs->batches,
                                (unsigned long long)s->nan_count,
                                (unsigned long long)s->inf_count);
        return qd_error_set(&obs->err, QD_STATUS_INVALID_ARGUMENT,
                            "observer '%s'%s: no data observed (%llu empty batches)", obs->name,
                            where, (unsigned long long)obs->batches);
    }
    for (size_t c = 0; c < obs->channels; c++) {
        double a = channel_amax(obs, c);
        if (a < 0.0)
            return qd_error_set(&obs->err, QD_STATUS_OUT_OF_MEMORY,
                                "observer '%s': out of memory in %s calibration", obs->name,
                                qd_observer_kind_name(obs->kind));
        amax[c] = (float)a;
    }
    return QD_OK;
}

const char *qd_observer_error(const qd_observer *obs)
{
    return obs ? obs->err.message : "";
}

qd_observer_kind qd_observer_get_kind(const qd_observer *obs)
{
    return obs->kind;
}

size_t qd_observer_channels(const qd_observer *obs)
{
    return obs->channels;
}

uint64_t qd_observer_batches(const qd_observer *obs)
{
    return obs->batches;
}

const qd_observer_stats *qd_observer_channel_stats(const qd_observer *obs, size_t channel)
{
    if (!obs || channel >= obs->channels)
        return NULL;
    return &obs->stats[channel];
}

void qd_observer_tensor_stats(const qd_observer *obs, qd_observer_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!obs)
        return;
    for (size_t c = 0; c < obs->channels; c++) {
        const qd_observer_stats *s = &obs->stats[c];
        batch_acc a = {s->count, s->nan_count, s->inf_count, s->min, s->max, s->max_abs,
                       s->sum_abs};
        stats_merge(out, &a);
    }
}

int qd_observer_histogram(const qd_observer *obs, size_t channel, const uint64_t **counts,
                          int *num_bins, double *width, uint64_t *pending_zeros)
{
    if (!obs || !obs->hist || channel >= obs->channels)
        return -1;
    const qd_obs_hist *h = &obs->hist[channel];
    if (counts)
        *counts = h->counts;
    if (num_bins)
        *num_bins = obs->opt.num_bins;
    if (width)
        *width = h->width;
    if (pending_zeros)
        *pending_zeros = h->pending_zeros;
    return 0;
}

float qd_observer_scale(float amax)
{
    if (!(amax > 0.0f) || !isfinite(amax))
        return 1.0f;
    return amax / 127.0f;
}
