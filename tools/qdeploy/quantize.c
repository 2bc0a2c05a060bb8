/* qdeploy quantize MODEL -o OUT.onnx --calib DATA [options]
 *
 * load -> qd_quantize_graph (infer shapes, simplify, conversions, fusions,
 * placement or --plan, --include/--exclude, calibration, QDQ insertion)
 * -> save (atomically) -> reports. Also the small helpers the verbs share
 * (cli.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ir/graph.h"
#include "quant/observer.h"
#include "quant/quantize.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qdeploy quantize MODEL -o OUT.onnx --calib DATA [options]\n"
            "  Writes a QDQ ONNX model whose Quantize/DequantizeLinear pairs sit where the\n"
            "  target gains from INT8, calibrated on DATA (an image folder of class\n"
            "  sub-folders, an IDX file such as train-images-idx3-ubyte.gz, .npy or .npz).\n"
            "  --target tensorrt|x86    the target compiler (default tensorrt); x86 (the\n"
            "                           CPU) also quantizes Linears TensorRT keeps in float\n"
            "  --policy mixed|uniform   pattern-aware (default) or every Conv/Linear\n"
            "  --method entropy|max|percentile|mse  activation calibration (default entropy;\n"
            "                           uniform: max)\n"
            "  --calib-batches N        batches of calibration data (default 32)\n"
            "  --batch-size N           images per batch (default 32)\n"
            "  --mean a[,b,c] --std a[,b,c]  normalization (default ImageNet)\n"
            "  --resize-size N --crop-size N  torchvision-style preprocessing of images\n"
            "  --skip-bad               skip unreadable images (counted)\n"
            "  --threads T              engine threads (default all cores)\n"
            "  --exclude REGEX          keep nodes whose name or op type matches in float\n"
            "  --include REGEX          also quantize matching Conv/Gemm/MatMul nodes\n"
            "  --plan FILE.json         the QDQ points from a plan file (as --dump-plan writes;\n"
            "                           its amax/scale values are kept, calibration fills the\n"
            "                           rest; --calib is optional when all are given)\n"
            "  --dump-plan FILE.json    write the calibrated plan (every QDQ point, amax, scale)\n"
            "  --json FILE              write the transformation report as JSON\n");
}

/* ---- helpers shared by the verbs (cli.h) ------------------------------------ */

int qd_cli_parse_floats(const char *s, float *out, int max)
{
    int n = 0;
    while (*s) {
        if (n == max)
            return -1;
        char *end;
        out[n++] = strtof(s, &end);
        if (end == s || (*end && *end != ','))
            return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

int qd_cli_int(const char *s, int min, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < min || v > 1000000000L)
        return -1;
    *out = (int)v;
    return 0;
}

int qd_cli_high_precision(const char *value, qd_engine_options *opt)
{
    if (!strcmp(value, "fp32") || !strcmp(value, "bf16")) {
        opt->high_precision_bf16 = !strcmp(value, "bf16");
        return 0;
    }
    qd_cli_fail("--high-precision takes fp32 or bf16, not '%s'", value);
    return -1;
}

int qd_cli_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!strcmp(a, b))
        return 1;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int qd_cli_write_file(const char *path, qd_cli_writer write, const void *ctx)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int bad = write(ctx, f) != 0;
    bad |= ferror(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

/* ---- the verb ---------------------------------------------------------------- */

typedef struct report_ctx {
    const qd_quantize_result *r;
    const char *model, *out;
} report_ctx;

static int write_plan(const void *ctx, FILE *f)
{
    const report_ctx *c = ctx;
    return qd_quantize_plan_write(c->r, f) == QD_OK ? 0 : -1;
}

static int write_json(const void *ctx, FILE *f)
{
    const report_ctx *c = ctx;
    qd_quantize_report_json(c->r, c->model, c->out, f);
    return 0;
}

int qd_cli_quantize(int argc, char **argv)
{
    const char *model = NULL, *out = NULL, *policy = "mixed", *method = NULL;
    const char *dump_plan = NULL, *json = NULL;
    qd_quantize_options qo;
    qd_quantize_options_init(&qo);
    float stdv[QD_PREPROCESS_MAX_CHANNELS];
    int n_std = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int num = 0, min = strstr(a, "-size") && strcmp(a, "--batch-size") ? 0 : 1;
        if (v && (!strcmp(a, "--calib-batches") || !strcmp(a, "--batch-size") ||
                  !strcmp(a, "--threads") || !strcmp(a, "--resize-size") ||
                  !strcmp(a, "--crop-size")) &&
            qd_cli_int(v, min, &num) != 0)
            return qd_cli_fail("%s takes a %s number, not '%s'", a,
                               min ? "positive" : "non-negative", v);
        if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && v)
            out = argv[++i];
        else if (!strcmp(a, "--calib") && v)
            qo.calib_path = argv[++i];
        else if (!strcmp(a, "--target") && v)
            qo.target = argv[++i];
        else if (!strcmp(a, "--policy") && v)
            policy = argv[++i];
        else if (!strcmp(a, "--method") && v)
            method = argv[++i];
        else if (!strcmp(a, "--calib-batches") && v)
            qo.calib.batches = num, i++;
        else if (!strcmp(a, "--batch-size") && v)
            qo.calib.batch_size = num, i++;
        else if (!strcmp(a, "--threads") && v)
            qo.calib.threads = num, i++;
        else if (!strcmp(a, "--resize-size") && v)
            qo.data.resize_size = num, i++;
        else if (!strcmp(a, "--crop-size") && v)
            qo.data.crop_size = num, i++;
        else if (!strcmp(a, "--skip-bad"))
            qo.data.skip_bad = 1;
        else if (!strcmp(a, "--exclude") && v)
            qo.exclude = argv[++i];
        else if (!strcmp(a, "--include") && v)
            qo.include = argv[++i];
        else if (!strcmp(a, "--plan") && v)
            qo.plan_path = argv[++i];
        else if (!strcmp(a, "--dump-plan") && v)
            dump_plan = argv[++i];
        else if (!strcmp(a, "--json") && v)
            json = argv[++i];
        else if (!strcmp(a, "--mean") && v) {
            if ((qo.data.n_mean = qd_cli_parse_floats(argv[++i], qo.data.mean,
                                                      QD_PREPROCESS_MAX_CHANNELS)) < 1)
                return qd_cli_fail("--mean takes numbers separated by commas");
        } else if (!strcmp(a, "--std") && v) {
            if ((n_std = qd_cli_parse_floats(argv[++i], stdv, QD_PREPROCESS_MAX_CHANNELS)) < 1)
                return qd_cli_fail("--std takes numbers separated by commas");
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (a[0] != '-' && !model) {
            model = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!model || !out || (!qo.calib_path && !qo.plan_path)) {
        usage(stderr);
        return 2;
    }
    if (n_std != qo.data.n_mean)
        return qd_cli_fail("--mean and --std need the same number of values");
    memcpy(qo.data.std, stdv, sizeof stdv);
    if (qd_quantize_policy_parse(policy, &qo.policy) != 0)
        return qd_cli_fail("unknown policy '%s' (mixed or uniform)", policy);
    if (method) {
        qd_observer_kind k;
        if (qd_observer_kind_parse(method, &k) != 0)
            return qd_cli_fail("unknown calibration method '%s' (entropy, max, percentile, mse)",
                               method);
        qo.method = (int)k;
    }
    if (qd_cli_same_file(model, out))
        return qd_cli_fail("%s: the output path is the input model", out);
    const char *reports[2] = {dump_plan, json};
    for (int k = 0; k < 2; k++)
        if (reports[k] && (qd_cli_same_file(reports[k], model) || qd_cli_same_file(reports[k], out)))
            return qd_cli_fail("%s: a report would overwrite the model", reports[k]);
    qo.calib.progress = isatty(STDERR_FILENO);

    qd_graph *g = NULL;
    qd_quantize_result res = {0};
    qd_error err = {0};
    report_ctx rc_ctx = {&res, model, out};
    int rc = 1;
    qd_status st = qd_graph_load(model, &g);
    if (st != QD_OK) {
        rc = qd_cli_fail_model(model, g, st);
        goto done;
    }
    if ((st = qd_quantize_graph(g, NULL, &qo, &res, &err)) != QD_OK) {
        rc = qd_cli_fail("%s", err.message);
        goto done;
    }
    if ((st = qd_graph_save(g, out)) != QD_OK) {
        rc = qd_cli_fail_model(model, g, st);
        goto done;
    }
    if (dump_plan && qd_cli_write_file(dump_plan, write_plan, &rc_ctx) != 0) {
        rc = qd_cli_fail("%s: cannot write the plan", dump_plan);
        goto done;
    }
    if (json && qd_cli_write_file(json, write_json, &rc_ctx) != 0) {
        rc = qd_cli_fail("%s: cannot write the report", json);
        goto done;
    }
    printf("%s -> %s (target %s, policy %s, %s calibration)\n\n", model, out,
           qo.target ? qo.target : "tensorrt", qd_quantize_policy_name(qo.policy),
           qd_observer_kind_name((qd_observer_kind)res.method));
    qd_quantize_report_text(&res, stdout);
    rc = 0;
done:
    qd_quantize_result_free(&res);
    qd_graph_delete(g);
    return rc;
}
