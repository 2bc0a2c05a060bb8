/* qdeploy quantize MODEL -o OUT.onnx --calib DATA [options]
 *
 * load -> infer shapes -> simplify (BN folding) -> match the fusion table
 * -> place QDQ points for the target -> calibrate on DATA with the engine
 * -> insert Quantize/DequantizeLinear -> save (atomically). */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "cli.h"
#include "data/dataset.h"
#include "ir/graph.h"
#include "passes/pattern.h"
#include "quant/calibrate.h"
#include "quant/placement.h"
#include "quant/qdq_insert.h"
#include "quant/observer.h"
#include "report/json.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qdeploy quantize MODEL -o OUT.onnx --calib DATA [options]\n"
            "  Writes a QDQ ONNX model whose Quantize/DequantizeLinear pairs sit where the\n"
            "  target gains from INT8, calibrated on DATA (an image folder of class\n"
            "  sub-folders, an IDX file such as train-images-idx3-ubyte.gz, .npy or .npz).\n"
            "  --target tensorrt        the target compiler (default tensorrt)\n"
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
            "  --dump-plan FILE.json    write the calibrated plan (every QDQ point, amax, scale)\n");
}

static int parse_floats(const char *s, float *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        out[n++] = strtof(s, &end);
        if (end == s)
            return -1;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

static int node_matches(const regex_t *re, const qd_node *n)
{
    return regexec(re, n->name, 0, NULL, 0) == 0 || regexec(re, n->op_type, 0, NULL, 0) == 0;
}

/* --exclude drops plan points of matching nodes; --include adds input and
 * weight points for matching Conv/Gemm/MatMul nodes the plan left float.
 * Returns 0, or the exit status of an error already reported. */
static int apply_user_rules(qd_graph *g, qd_qdq_plan *plan, const char *include,
                            const char *exclude)
{
    regex_t inc, exc;
    if (include && regcomp(&inc, include, REG_EXTENDED | REG_NOSUB) != 0)
        return qd_cli_fail("--include: '%s' is not a regular expression", include);
    if (exclude && regcomp(&exc, exclude, REG_EXTENDED | REG_NOSUB) != 0) {
        if (include)
            regfree(&inc);
        return qd_cli_fail("--exclude: '%s' is not a regular expression", exclude);
    }
    int rc = 0;
    if (include) {
        for (size_t i = 0; i < g->n_nodes && rc == 0; i++) {
            qd_node *n = g->nodes[i];
            if ((n->op != QD_OP_CONV && n->op != QD_OP_GEMM && n->op != QD_OP_MATMUL) ||
                !node_matches(&inc, n))
                continue;
            int has = 0;
            for (size_t k = 0; k < plan->n; k++)
                has |= plan->points[k].consumer == n;
            if (has)
                continue;
            size_t need = plan->n + 2;
            if (qd_grow((void **)&plan->points, &plan->cap, need, sizeof *plan->points) != 0) {
                rc = qd_cli_fail("out of memory");
                break;
            }
            plan->points[plan->n++] =
                (qd_plan_point){n, 0, QD_PLAN_ACTIVATION, -1, "--include", "input", 0.0f};
            int axis;
            if (n->n_inputs > 1 && n->inputs[1] && n->inputs[1]->konst &&
                qd_qdq_weight_axis(g, n, 1, &axis) == QD_OK)
                plan->points[plan->n++] =
                    (qd_plan_point){n, 1, QD_PLAN_WEIGHT, axis, "--include", "weight", 0.0f};
        }
    }
    if (exclude && rc == 0) {
        size_t w = 0;
        for (size_t k = 0; k < plan->n; k++)
            if (!node_matches(&exc, plan->points[k].consumer))
                plan->points[w++] = plan->points[k];
        plan->n = w;
    }
    if (include)
        regfree(&inc);
    if (exclude)
        regfree(&exc);
    return rc;
}

/* The calibrated plan as JSON: what goes where, and why. */
static int write_plan(const char *path, const qd_qdq_plan *plan)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    qd_json j;
    qd_json_init(&j, f, 1);
    qd_json_begin_object(&j);
    qd_json_key(&j, "points");
    qd_json_begin_array(&j);
    for (size_t i = 0; i < plan->n; i++) {
        const qd_plan_point *p = &plan->points[i];
        qd_json_begin_object(&j);
        qd_json_key(&j, "node");
        qd_json_string(&j, p->consumer->name);
        qd_json_key(&j, "op");
        qd_json_string(&j, p->consumer->op_type);
        qd_json_key(&j, "input");
        qd_json_int(&j, p->input);
        qd_json_key(&j, "tensor");
        qd_json_string(&j, p->consumer->inputs[p->input]->name);
        qd_json_key(&j, "kind");
        qd_json_string(&j, p->kind == QD_PLAN_WEIGHT ? "weight" : "activation");
        qd_json_key(&j, "module");
        qd_json_string(&j, p->module);
        qd_json_key(&j, "why");
        qd_json_string(&j, p->why);
        if (p->kind == QD_PLAN_WEIGHT) {
            qd_json_key(&j, "axis");
            qd_json_int(&j, p->axis);
        } else {
            qd_json_key(&j, "amax");
            qd_json_double(&j, p->amax);
            qd_json_key(&j, "scale");
            qd_json_double(&j, qd_observer_scale(p->amax));
        }
        qd_json_end_object(&j);
    }
    qd_json_end_array(&j);
    qd_json_key(&j, "linear_kept_high_precision");
    qd_json_int(&j, plan->linear_kept_high);
    qd_json_end_object(&j);
    int bad = ferror(f);
    return (fclose(f) != 0 || bad) ? -1 : 0;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int qd_cli_quantize(int argc, char **argv)
{
    const char *model = NULL, *out = NULL, *calib = NULL, *target = "tensorrt", *policy = "mixed";
    const char *method = NULL, *exclude = NULL, *include = NULL, *dump_plan = NULL;
    qd_calibration_options copt;
    qd_calibration_options_init(&copt);
    qd_dataset_options dopt;
    qd_dataset_options_init(&dopt);
    float stdv[QD_PREPROCESS_MAX_CHANNELS];
    int n_std = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && v)
            out = argv[++i];
        else if (!strcmp(a, "--calib") && v)
            calib = argv[++i];
        else if (!strcmp(a, "--target") && v)
            target = argv[++i];
        else if (!strcmp(a, "--policy") && v)
            policy = argv[++i];
        else if (!strcmp(a, "--method") && v)
            method = argv[++i];
        else if (!strcmp(a, "--calib-batches") && v)
            copt.batches = atoi(argv[++i]);
        else if (!strcmp(a, "--batch-size") && v)
            copt.batch_size = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v)
            copt.threads = atoi(argv[++i]);
        else if (!strcmp(a, "--resize-size") && v)
            dopt.resize_size = atoi(argv[++i]);
        else if (!strcmp(a, "--crop-size") && v)
            dopt.crop_size = atoi(argv[++i]);
        else if (!strcmp(a, "--skip-bad"))
            dopt.skip_bad = 1;
        else if (!strcmp(a, "--exclude") && v)
            exclude = argv[++i];
        else if (!strcmp(a, "--include") && v)
            include = argv[++i];
        else if (!strcmp(a, "--dump-plan") && v)
            dump_plan = argv[++i];
        else if (!strcmp(a, "--mean") && v) {
            if ((dopt.n_mean = parse_floats(argv[++i], dopt.mean, QD_PREPROCESS_MAX_CHANNELS)) < 1)
                return qd_cli_fail("--mean takes numbers separated by commas");
        } else if (!strcmp(a, "--std") && v) {
            if ((n_std = parse_floats(argv[++i], stdv, QD_PREPROCESS_MAX_CHANNELS)) < 1)
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
    if (!model || !out || !calib) {
        usage(stderr);
        return 2;
    }
    if (n_std != dopt.n_mean)
        return qd_cli_fail("--mean and --std need the same number of values");
    memcpy(dopt.std, stdv, sizeof stdv);
    if (copt.batches < 1 || copt.batch_size < 1)
        return qd_cli_fail("--calib-batches and --batch-size take positive numbers");
    if (strcmp(target, "tensorrt") != 0)
        return qd_cli_fail("unknown target '%s' (known: tensorrt)", target);
    int uniform = !strcmp(policy, "uniform");
    if (!uniform && strcmp(policy, "mixed") != 0)
        return qd_cli_fail("unknown policy '%s' (mixed or uniform)", policy);
    if (!method)
        method = uniform ? "max" : "entropy";
    if (qd_observer_kind_parse(method, &copt.method) != 0)
        return qd_cli_fail("unknown calibration method '%s' (entropy, max, percentile, mse)",
                           method);
    if (!strcmp(model, out) || same_file(model, out))
        return qd_cli_fail("%s: the output path is the input model", out);
    copt.progress = isatty(STDERR_FILENO);

    qd_graph *g = NULL;
    qd_dataset *ds = NULL;
    qd_match_list matches = {0};
    qd_qdq_plan plan = {0};
    qd_error err = {0};
    int rc = 1;
    qd_status st = qd_graph_load(model, &g);
    if (st == QD_OK && (st = qd_graph_infer_shapes(g)) == QD_OK &&
        (st = qd_graph_simplify(g)) == QD_OK)
        st = qd_match_patterns(g, uniform ? "uniform" : target, &matches);
    if (st != QD_OK) {
        rc = qd_cli_fail_model(model, g, st);
        goto done;
    }
    if ((st = qd_plan_build(g, &matches, uniform ? "uniform" : target, &plan)) != QD_OK) {
        rc = qd_cli_fail_model(model, g, st);
        goto done;
    }
    if ((rc = apply_user_rules(g, &plan, include, exclude)) != 0)
        goto done;
    rc = 1;
    if (plan.n == 0) {
        rc = qd_cli_fail("%s: no operation worth quantizing for target '%s' (policy %s)", model,
                         target, policy);
        goto done;
    }
    if ((st = qd_dataset_open(calib, &dopt, &ds, &err)) != QD_OK ||
        (st = qd_calibrate(g, &plan, ds, &copt, &err)) != QD_OK) {
        rc = qd_cli_fail("%s", err.message);
        goto done;
    }
    /* Before insertion rewires the consumers: the plan names the float tensors. */
    if (dump_plan && write_plan(dump_plan, &plan) != 0) {
        rc = qd_cli_fail("%s: cannot write the plan", dump_plan);
        goto done;
    }
    int n_act = 0, n_wei = 0, n_res = 0;
    for (size_t i = 0; i < plan.n && st == QD_OK; i++) {
        qd_plan_point *p = &plan.points[i];
        if (p->kind == QD_PLAN_WEIGHT) {
            st = qd_qdq_insert_weight(g, p->consumer, p->input, p->axis);
            n_wei++;
        } else {
            st = qd_qdq_insert_activation(g, p->consumer, p->input, p->amax);
            n_act++;
            n_res += !strcmp(p->why, "residual input");
        }
    }
    if (st == QD_OK)
        st = qd_graph_save(g, out);
    if (st != QD_OK) {
        rc = qd_cli_fail_model(model, g, st);
        goto done;
    }
    printf("%s -> %s (target %s, policy %s, %s calibration)\n\n", model, out, target, policy,
           method);
    qd_match_report(&matches, stdout);
    printf("\nQDQ pairs: %d activation inputs (%d residual inputs), %d per-channel weights",
           n_act, n_res, n_wei);
    if (plan.linear_kept_high)
        printf("; %d Linear layers kept in high precision (K*N/(K+N) < %.0f)",
               plan.linear_kept_high, QD_LINEAR_MIN_INTENSITY);
    printf("\n");
    rc = 0;
done:
    qd_plan_free(&plan);
    qd_match_list_free(&matches);
    qd_dataset_delete(ds);
    qd_graph_delete(g);
    return rc;
}
