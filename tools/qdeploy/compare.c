/* qdeploy compare MODEL --data VAL [--labels LABELS] --calib TRAIN [options]
 *
 * The seed benchmark's table: the float model and one QDQ model per policy,
 * Top-1/Top-5 on VAL with the engine, latency at batch 1, speedup; the
 * summary per policy; the fusion table. --json / --report write the full
 * document (SQNR per tensor, per-layer latency, the graph by precision). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "eval/compare.h"
#include "quant/observer.h"
#include "report/html.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qdeploy compare MODEL --data VAL [--labels LABELS] --calib TRAIN [options]\n"
            "  Quantizes MODEL with each policy, evaluates Top-1/Top-5 of every variant on the\n"
            "  labelled VAL set with the engine, times them (batch 1) and prints the table.\n"
            "  --policies LIST          variants (default fp32,mixed,uniform); a policy may name\n"
            "                           its calibration method: mixed:percentile\n"
            "  --target tensorrt|x86    whose fusions and rules place mixed precision (default\n"
            "                           tensorrt; x86: the CPU, every Linear INT8)\n"
            "  --method M               calibration of quantized variants: entropy, max,\n"
            "                           percentile, mse (default entropy for mixed, max for uniform)\n"
            "  --labels FILE            labels of an IDX/.npy/.npz VAL (t10k-labels-idx1-ubyte.gz);\n"
            "                           an image folder is labelled by its class sub-folders\n"
            "  --calib-batches N        calibration batches (default 32)\n"
            "  --batch-size N           calibration and evaluation batch (default 32)\n"
            "  --mean a[,b,c] --std a[,b,c]  normalization (default ImageNet)\n"
            "  --resize-size N --crop-size N  torchvision-style preprocessing of images\n"
            "  --out-dir DIR            where the QDQ models go (default out/compare)\n"
            "  --json FILE              the full comparison as JSON\n"
            "  --report FILE.html       a self-contained HTML report\n"
            "  --threads T              engine threads (default all cores)\n"
            "  --iters N --warmup N     latency runs (default 50, after 5 warm-up runs)\n"
            "  --profile-iters N        profiled runs for per-layer latency (default 20, 0: none)\n"
            "  --limit N                evaluate only the first N images\n"
            "  --no-sqnr                skip the SQNR pass\n");
}

static int write_buffer(const void *ctx, FILE *f)
{
    const char *s = ctx;
    return fputs(s, f) < 0 ? -1 : 0;
}

int qd_cli_compare(int argc, char **argv)
{
    qd_compare_options co;
    qd_compare_options_init(&co);
    const char *method = NULL, *json = NULL, *report = NULL;
    float stdv[QD_PREPROCESS_MAX_CHANNELS];
    int n_std = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        /* Numeric options: sizes may be 0, counts are >= 1 (warm-up and profile >= 0). */
        static const struct {
            const char *name;
            int min;
        } NUMS[] = {{"--calib-batches", 1}, {"--batch-size", 1},   {"--threads", 1},
                    {"--iters", 1},         {"--warmup", 0},       {"--profile-iters", 0},
                    {"--limit", 1},         {"--resize-size", 0}, {"--crop-size", 0}};
        int num = 0, is_num = 0;
        for (size_t k = 0; k < sizeof NUMS / sizeof NUMS[0]; k++)
            if (!strcmp(a, NUMS[k].name)) {
                if (!v || qd_cli_int(v, NUMS[k].min, &num) != 0)
                    return qd_cli_fail("%s takes a%s number%s%s%s", a,
                                       NUMS[k].min ? " positive" : " non-negative",
                                       v ? ", not '" : "", v ? v : "", v ? "'" : "");
                is_num = 1;
                i++;
            }
        if (is_num) {
            if (!strcmp(a, "--calib-batches"))
                co.calib_batches = num;
            else if (!strcmp(a, "--batch-size"))
                co.batch_size = num;
            else if (!strcmp(a, "--threads"))
                co.threads = num;
            else if (!strcmp(a, "--iters"))
                co.iters = num;
            else if (!strcmp(a, "--warmup"))
                co.warmup = num;
            else if (!strcmp(a, "--profile-iters"))
                co.profile_iters = num;
            else if (!strcmp(a, "--limit"))
                co.limit = num;
            else if (!strcmp(a, "--resize-size"))
                co.data_opt.resize_size = num;
            else
                co.data_opt.crop_size = num;
        } else if (!strcmp(a, "--data") && v)
            co.data = argv[++i];
        else if (!strcmp(a, "--labels") && v)
            co.labels = argv[++i];
        else if (!strcmp(a, "--calib") && v)
            co.calib = argv[++i];
        else if (!strcmp(a, "--policies") && v)
            co.policies = argv[++i];
        else if (!strcmp(a, "--target") && v)
            co.target = argv[++i];
        else if (!strcmp(a, "--method") && v)
            method = argv[++i];
        else if (!strcmp(a, "--out-dir") && v)
            co.out_dir = argv[++i];
        else if (!strcmp(a, "--json") && v)
            json = argv[++i];
        else if (!strcmp(a, "--report") && v)
            report = argv[++i];
        else if (!strcmp(a, "--no-sqnr"))
            co.sqnr = 0;
        else if (!strcmp(a, "--mean") && v) {
            if ((co.data_opt.n_mean = qd_cli_parse_floats(argv[++i], co.data_opt.mean,
                                                          QD_PREPROCESS_MAX_CHANNELS)) < 1)
                return qd_cli_fail("--mean takes numbers separated by commas");
        } else if (!strcmp(a, "--std") && v) {
            if ((n_std = qd_cli_parse_floats(argv[++i], stdv, QD_PREPROCESS_MAX_CHANNELS)) < 1)
                return qd_cli_fail("--std takes numbers separated by commas");
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (a[0] != '-' && !co.model) {
            co.model = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!co.model || !co.data) {
        usage(stderr);
        return 2;
    }
    if (n_std != co.data_opt.n_mean)
        return qd_cli_fail("--mean and --std need the same number of values");
    memcpy(co.data_opt.std, stdv, sizeof stdv);
    if (method) {
        qd_observer_kind k;
        if (qd_observer_kind_parse(method, &k) != 0)
            return qd_cli_fail("unknown calibration method '%s' (entropy, max, percentile, mse)",
                               method);
        co.method = (int)k;
    }
    const char *files[2] = {json, report};
    for (int k = 0; k < 2; k++)
        if (files[k] && qd_cli_same_file(files[k], co.model))
            return qd_cli_fail("%s: the report would overwrite the model", files[k]);
    co.progress = isatty(STDERR_FILENO);

    qd_compare_result res = {0};
    qd_error err = {0};
    char *doc = NULL;
    size_t doc_size = 0;
    int rc = 1;
    if (qd_compare_run(&co, &res, &err) != QD_OK) {
        rc = qd_cli_fail("%s", err.message);
        goto done;
    }
    if (json || report) {
        FILE *mem = open_memstream(&doc, &doc_size);
        if (!mem) {
            rc = qd_cli_fail("out of memory");
            goto done;
        }
        qd_compare_write_json(&res, mem);
        if (fclose(mem) != 0 || !doc) {
            rc = qd_cli_fail("out of memory writing the JSON document");
            goto done;
        }
    }
    if (json && qd_cli_write_file(json, write_buffer, doc) != 0) {
        rc = qd_cli_fail("%s: cannot write the JSON document", json);
        goto done;
    }
    if (report && qd_report_html_write(report, doc, &err) != QD_OK) {
        rc = qd_cli_fail("%s", err.message);
        goto done;
    }
    qd_compare_write_markdown(&res, stdout);
    rc = 0;
done:
    free(doc);
    qd_compare_result_free(&res);
    return rc;
}
