/* int8_agreement [--bf16] QDQ_MODEL IMAGES LABELS [COUNT] [MEAN STD]
 *
 * Runs a QDQ model over labelled images twice with the engine: on its INT8
 * kernels (lowered QDQ groups) and as written (float DequantizeLinear ->
 * op -> QuantizeLinear, which onnxruntime also does), and prints one line:
 *
 *   images N agree A (P%) top1_int8 X% top1_written Y% max_logit_diff D
 *       logit_scale S int8_steps K
 *
 * With --bf16 the two runs are the model with bfloat16 high precision and
 * in float32 (any model; the fields then say top1_bf16 and top1_fp32).
 * Exit status 77 when this CPU cannot run bfloat16.
 *
 * Exit status 0 when it ran; the caller judges the figures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "qdeploy.h"

#define BATCH 50

static int argmax(const float *x, int64_t n)
{
    int best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = (int)i;
    return best;
}

int main(int argc, char **argv)
{
    int bf16 = argc > 1 && !strcmp(argv[1], "--bf16");
    if (bf16) {
        argc--;
        argv++;
    }
    if (argc < 4) {
        fprintf(stderr,
                "usage: int8_agreement [--bf16] QDQ_MODEL IMAGES LABELS [COUNT] [MEAN STD]\n");
        return 2;
    }
    int64_t count = argc > 4 ? atoll(argv[4]) : 10000;
    qd_dataset_options dopt;
    qd_dataset_options_init(&dopt);
    dopt.labels = argv[3];
    dopt.n_mean = 1;
    dopt.mean[0] = argc > 6 ? strtof(argv[5], NULL) : 0.2860f;
    dopt.std[0] = argc > 6 ? strtof(argv[6], NULL) : 0.3530f;
    qd_error err = {0};
    qd_dataset *ds = NULL;
    qd_graph *g[2] = {NULL, NULL};
    qd_engine *e[2] = {NULL, NULL};
    float *x = NULL, *logits[2] = {NULL, NULL};
    int rc = 1;
    if (qd_dataset_open(argv[2], &dopt, &ds, &err) != QD_OK) {
        fprintf(stderr, "int8_agreement: %s\n", err.message);
        goto done;
    }
    if (count > qd_dataset_count(ds))
        count = qd_dataset_count(ds);
    for (int k = 0; k < 2; k++) {
        qd_engine_options opt = {.batch = BATCH};
        if (bf16)
            opt.high_precision_bf16 = k == 0;
        else
            opt.qdq_as_written = k;
        if (qd_graph_load(argv[1], &g[k]) != QD_OK || qd_graph_infer_shapes(g[k]) != QD_OK ||
            qd_graph_simplify(g[k]) != QD_OK || qd_graph_canonicalize(g[k]) != QD_OK) {
            fprintf(stderr, "int8_agreement: %s: %s\n", argv[1], qd_graph_error(g[k]));
            goto done;
        }
        if (qd_engine_create(g[k], &opt, &e[k]) != QD_OK) {
            fprintf(stderr, "int8_agreement: %s: %s\n", argv[1], qd_engine_error(e[k]));
            if (bf16 && k == 0 && strstr(qd_engine_error(e[k]), "AVX512-BF16"))
                rc = 77;
            goto done;
        }
    }
    qd_tensor_info in, out;
    qd_engine_input_info(e[0], 0, &in);
    if (in.rank != 4 || in.dims[0] != BATCH) {
        fprintf(stderr, "int8_agreement: %s: want one N,C,H,W input\n", argv[1]);
        goto done;
    }
    int c = (int)in.dims[1], h = (int)in.dims[2], w = (int)in.dims[3];
    size_t per = (size_t)c * h * w;
    x = calloc(BATCH * per, sizeof *x);
    int64_t labels[BATCH];
    qd_engine_output_info(e[0], 0, &out);
    int64_t classes = out.rank == 2 ? out.dims[1] : 0;
    for (int k = 0; k < 2; k++)
        logits[k] = calloc((size_t)(BATCH * classes), sizeof(float));
    if (!x || !logits[0] || !logits[1] || classes <= 0) {
        fprintf(stderr, "int8_agreement: out of memory or output not N x classes\n");
        goto done;
    }
    int64_t agree = 0, right[2] = {0, 0}, seen = 0;
    double max_diff = 0, scale = 0;
    for (int64_t start = 0; start < count;) {
        int64_t n_read = 0, next = 0;
        if (qd_dataset_read(ds, start, BATCH, c, h, w, x, labels, &n_read, &next, &err) != QD_OK) {
            fprintf(stderr, "int8_agreement: %s\n", err.message);
            goto done;
        }
        for (int k = 0; k < 2; k++) {
            if (qd_engine_set_input(e[k], in.name, QD_FLOAT32, 4, in.dims, x) != QD_OK ||
                qd_engine_run(e[k]) != QD_OK) {
                fprintf(stderr, "int8_agreement: %s\n", qd_engine_error(e[k]));
                goto done;
            }
            qd_engine_output_info(e[k], 0, &out);
            memcpy(logits[k], out.data, (size_t)(BATCH * classes) * sizeof(float));
        }
        for (int64_t i = 0; i < n_read && seen < count; i++, seen++) {
            const float *a = logits[0] + i * classes, *b = logits[1] + i * classes;
            int pa = argmax(a, classes), pb = argmax(b, classes);
            agree += pa == pb;
            right[0] += pa == labels[i];
            right[1] += pb == labels[i];
            for (int64_t j = 0; j < classes; j++) {
                max_diff = fmax(max_diff, fabs(a[j] - b[j]));
                scale = fmax(scale, fabs(b[j]));
            }
        }
        start = next;
        if (n_read == 0)
            break;
    }
    qd_engine_stats stats;
    qd_engine_get_stats(e[0], &stats);
    printf("images %lld agree %lld (%.2f%%) %s %.2f%% %s %.2f%% "
           "max_logit_diff %.4g logit_scale %.4g int8_steps %d\n",
           (long long)seen, (long long)agree, 100.0 * agree / (double)seen,
           bf16 ? "top1_bf16" : "top1_int8", 100.0 * right[0] / (double)seen,
           bf16 ? "top1_fp32" : "top1_written", 100.0 * right[1] / (double)seen, max_diff, scale,
           stats.int8_steps);
    rc = 0;
done:
    free(x);
    free(logits[0]);
    free(logits[1]);
    for (int k = 0; k < 2; k++) {
        qd_engine_delete(e[k]);
        qd_graph_delete(g[k]);
    }
    qd_dataset_delete(ds);
    return rc;
}
