/* qdeploy bench MODEL [--batch N] [--threads T] [--warmup W] [--iters I]
 *                     [--profile] [--reference] [--no-int8] [--high-precision P] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: qdeploy bench MODEL [--batch N] [--threads T] [--warmup W] [--iters I]\n"
                 "                    [--profile] [--reference] [--no-int8]\n"
                 "                    [--high-precision fp32|bf16]\n"
                 "  Times inference on random inputs; prints median/min/max latency, what the\n"
                 "  plan runs (INT8 kernels, Quantize/Dequantize steps) and the time per op\n"
                 "  type (fused groups, precision changes and layout conversions are their\n"
                 "  own rows); --profile: time per node instead. A QDQ model runs its QDQ\n"
                 "  groups as INT8 kernels; --no-int8 runs it as written, in float.\n"
                 "  --high-precision bf16: what is not INT8 (Conv, MatMul, Gemm with constant\n"
                 "  weights) computes in bfloat16 with float32 accumulation (AVX512-BF16).\n");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int positive(const char *s, long *out)
{
    char *end;
    *out = strtol(s, &end, 10);
    return *end == '\0' && *out >= 0;
}

int qd_cli_bench(int argc, char **argv)
{
    const char *model = NULL;
    qd_engine_options opt = {.profile = 1};
    long warmup = 3, iters = 20, v;
    int per_node = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc && positive(argv[++i], &v) && v > 0)
            opt.batch = v;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc && positive(argv[++i], &v) && v > 0)
            opt.threads = (int)v;
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc && positive(argv[++i], &v))
            warmup = v;
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc && positive(argv[++i], &v) && v > 0)
            iters = v;
        else if (!strcmp(argv[i], "--profile"))
            per_node = 1;
        else if (!strcmp(argv[i], "--reference"))
            opt.reference = 1;
        else if (!strcmp(argv[i], "--no-int8"))
            opt.qdq_as_written = 1;
        else if (!strcmp(argv[i], "--high-precision") && i + 1 < argc) {
            if (qd_cli_high_precision(argv[++i], &opt) != 0)
                return 2;
        }
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] != '-' && !model)
            model = argv[i];
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!model) {
        usage(stderr);
        return 2;
    }
    qd_graph *g = NULL;
    qd_engine *e = NULL;
    double *times = NULL;
    int rc = 1;
    qd_status st = qd_graph_load(model, &g);
    if (st != QD_OK) {
        rc = qd_cli_fail_model(model, g, st);
        goto done;
    }
    if ((st = qd_graph_infer_shapes(g)) != QD_OK || (st = qd_graph_simplify(g)) != QD_OK ||
        (st = qd_graph_canonicalize(g)) != QD_OK) {
        rc = qd_cli_fail_model(model, g, st);
        goto done;
    }
    if (qd_engine_create(g, &opt, &e) != QD_OK) {
        rc = qd_cli_fail("%s: %s", model, qd_engine_error(e));
        goto done;
    }
    /* Random inputs: uniform [-1, 1) floats, small non-negative integers. */
    srand(1);
    for (int i = 0; i < qd_engine_input_count(e); i++) {
        qd_tensor_info in;
        qd_engine_input_info(e, i, &in);
        if (in.dtype == QD_FLOAT32)
            for (size_t k = 0; k < in.nbytes / 4; k++)
                ((float *)in.data)[k] = (float)rand() / ((float)RAND_MAX / 2) - 1.0f;
    }
    times = calloc((size_t)iters, sizeof *times);
    if (!times) {
        rc = qd_cli_fail("out of memory");
        goto done;
    }
    for (long i = 0; i < warmup + iters; i++) {
        double t0 = now_ms();
        if (qd_engine_run(e) != QD_OK) {
            rc = qd_cli_fail("%s: %s", model, qd_engine_error(e));
            goto done;
        }
        if (i >= warmup)
            times[i - warmup] = now_ms() - t0;
        if (i + 1 == warmup)
            qd_engine_profile_reset(e);
    }
    qsort(times, (size_t)iters, sizeof *times, cmp_double);
    int threads = opt.threads ? opt.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    printf("%s: batch %lld, %d threads, %ld runs: median %.3f ms, min %.3f ms, max %.3f ms\n",
           model, (long long)(opt.batch ? opt.batch : 1), threads, iters, times[iters / 2],
           times[0], times[iters - 1]);
    qd_engine_stats stats;
    qd_engine_get_stats(e, &stats);
    printf("plan: %d steps; INT8 kernels: %d (%d write int8); Quantize: %d, Dequantize: %d; "
           "layout conversions: %d\n",
           stats.steps, stats.int8_steps, stats.int8_requantized, stats.quantize_steps,
           stats.dequantize_steps, stats.layout_conversions);
    qd_engine_profile(e, stdout, per_node);
    rc = 0;
done:
    free(times);
    qd_engine_delete(e);
    qd_graph_delete(g);
    return rc;
}
