/* The comparison (see compare.h). */
#include "eval/compare.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/strmap.h"
#include "base/progress.h"
#include "quant/observer.h"
#include "report/json.h"

void qd_compare_options_init(qd_compare_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->policies = "fp32,mixed,uniform";
    opt->method = -1;
    opt->calib_batches = 32;
    opt->batch_size = 32;
    qd_dataset_options_init(&opt->data_opt);
    opt->out_dir = "out/compare";
    opt->warmup = 5;
    opt->iters = 50;
    opt->profile_iters = 20;
    opt->sqnr = 1;
    opt->target = "tensorrt";
}

void qd_compare_result_free(qd_compare_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_variants; i++) {
        qd_compare_variant *v = &r->variants[i];
        qd_free(v->qdq_model);
        qd_quantize_result_free(&v->q);
        qd_free(v->sqnr);
        qd_free(v->node_ms);
    }
    qd_free(r->variants);
    qd_match_list_free(&r->matches);
    qd_free(r->fusions);
    qd_free(r->node_group);
    qd_graph_delete(r->graph);
    memset(r, 0, sizeof *r);
}

static qd_status oom(qd_error *err)
{
    return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "out of memory");
}

/* The graph's message, naming the file first unless it already does. */
static qd_status graph_fail(qd_error *err, const char *path, const qd_graph *g, qd_status st)
{
    const char *msg = g ? qd_graph_error(g) : NULL;
    if (!msg || !msg[0])
        msg = qd_status_name(st);
    size_t n = strlen(path);
    if (!strncmp(msg, path, n) && msg[n] == ':')
        return qd_error_set(err, st, "%s", msg);
    return qd_error_set(err, st, "%s: %s", path, msg);
}

qd_status qd_compare_load_for_engine(const char *path, qd_graph **out, qd_error *err)
{
    qd_graph *g = NULL;
    qd_status st = qd_graph_load(path, &g);
    if (st == QD_OK && (st = qd_graph_infer_shapes(g)) == QD_OK &&
        (st = qd_graph_simplify(g)) == QD_OK)
        st = qd_graph_canonicalize(g);
    if (st != QD_OK) {
        graph_fail(err, path, g, st);
        qd_graph_delete(g);
        g = NULL;
    }
    *out = g;
    return st;
}

/* ---- variants ------------------------------------------------------------------ */

static qd_status parse_policies(const qd_compare_options *opt, qd_compare_result *r,
                                qd_error *err)
{
    const char *s = opt->policies && opt->policies[0] ? opt->policies : "fp32,mixed,uniform";
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    r->variants = qd_calloc(n, sizeof *r->variants);
    if (!r->variants)
        return oom(err);
    while (*s) {
        size_t len = strcspn(s, ",");
        char item[64];
        if (len == 0 || len >= sizeof item)
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                "--policies: bad item '%.*s' (fp32, mixed, uniform, each with "
                                "an optional :method)",
                                (int)len, s);
        memcpy(item, s, len);
        item[len] = '\0';
        s += len + (s[len] == ',');
        char *colon = strchr(item, ':');
        const char *method = NULL;
        if (colon) {
            *colon = '\0';
            method = colon + 1;
        }
        qd_compare_variant *v = &r->variants[r->n_variants];
        v->method = -1;
        if (!strcmp(item, "fp32") || !strcmp(item, "float")) {
            if (method)
                return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                    "--policies: the float baseline takes no method ('%s:%s')",
                                    item, method);
            v->is_float = 1;
            snprintf(v->label, sizeof v->label, "Baseline FP32");
        } else if (qd_quantize_policy_parse(item, &v->policy) == 0) {
            qd_observer_kind k;
            if (method && qd_observer_kind_parse(method, &k) != 0)
                return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                    "--policies: unknown calibration method '%s' (entropy, max, "
                                    "percentile, mse)",
                                    method);
            v->method = method ? (int)k
                        : opt->method >= 0 ? opt->method
                        : v->policy == QD_POLICY_UNIFORM ? QD_OBSERVER_MAX
                                                          : QD_OBSERVER_ENTROPY;
            snprintf(v->label, sizeof v->label, "%s%s%s%s",
                     v->policy == QD_POLICY_MIXED ? "qdeploy Mixed-Precision" : "Uniform INT8",
                     method ? " (" : "", method ? method : "", method ? ")" : "");
        } else {
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                "--policies: unknown policy '%s' (fp32, mixed, uniform, each with "
                                "an optional :method)",
                                item);
        }
        snprintf(v->name, sizeof v->name, "%s%s%s", v->is_float ? "fp32" : item,
                 method ? ":" : "", method ? method : "");
        for (size_t k = 0; k < r->n_variants; k++)
            if (!strcmp(r->variants[k].name, v->name))
                return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                    "--policies: '%s' is listed twice", v->name);
        r->n_variants++;
    }
    if (!r->n_variants)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "--policies: no variant");
    r->baseline = 0;
    for (size_t k = 0; k < r->n_variants; k++)
        if (r->variants[k].is_float) {
            r->baseline = k;
            break;
        }
    return QD_OK;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return -1;
            *p = c;
            if (!c)
                break;
        }
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* "<out_dir>/<model stem>.<variant>.qdq.onnx", ':' of the name as '-'. */
static char *qdq_path(const char *out_dir, const char *model, const char *variant)
{
    const char *base = strrchr(model, '/');
    base = base ? base + 1 : model;
    size_t stem = strlen(base);
    if (stem > 5 && !strcmp(base + stem - 5, ".onnx"))
        stem -= 5;
    size_t size = strlen(out_dir) + stem + strlen(variant) + 16;
    char *p = qd_malloc(size);
    if (!p)
        return NULL;
    snprintf(p, size, "%s/%.*s.%s.qdq.onnx", out_dir, (int)stem, base, variant);
    for (char *c = p + strlen(out_dir); *c; c++)
        if (*c == ':')
            *c = '-';
    return p;
}

static void read_machine(char *buf, size_t size, int threads)
{
    char model[200] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) != 0)
                continue;
            const char *colon = strchr(line, ':');
            if (colon) {
                snprintf(model, sizeof model, "%s", colon + 1 + (colon[1] == ' '));
                model[strcspn(model, "\n")] = '\0';
            }
            break;
        }
        fclose(f);
    }
    if (threads <= 0)
        threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(buf, size, "%s (%d thread%s)", model, threads, threads == 1 ? "" : "s");
}

/* ---- per-layer latency --------------------------------------------------------------- */

/* The float-graph node index a profile step counts for, or -1. */
static int step_node(const qd_strmap *float_nodes, const qd_strmap *engine_nodes,
                     const qd_profile_entry *e)
{
    void *hit = e->node ? qd_strmap_get(float_nodes, e->node) : NULL;
    for (int k = 0; !hit && k < e->n_fused; k++)
        if (e->fused_nodes[k])
            hit = qd_strmap_get(float_nodes, e->fused_nodes[k]);
    if (hit)
        return (int)((intptr_t)hit - 1);
    /* A Quantize/DequantizeLinear step: the node its output feeds. */
    const qd_node *n = e->node ? qd_strmap_get(engine_nodes, e->node) : NULL;
    for (int hops = 0; n && hops < 4; hops++) {
        if (n->op != QD_OP_QUANTIZE_LINEAR && n->op != QD_OP_DEQUANTIZE_LINEAR) {
            hit = n->name ? qd_strmap_get(float_nodes, n->name) : NULL;
            return hit ? (int)((intptr_t)hit - 1) : -1;
        }
        const qd_value *y = n->n_outputs > 0 ? n->outputs[0] : NULL;
        n = y && y->n_uses > 0 ? y->uses[0].node : NULL;
    }
    return -1;
}

static qd_status profile_variant(const qd_compare_options *opt, qd_graph *g,
                                 const qd_strmap *float_nodes, size_t n_float,
                                 qd_compare_variant *v, qd_error *err)
{
    qd_engine *e = NULL;
    qd_strmap engine_nodes = {0};
    double *t = NULL, *col = NULL;
    qd_status st = QD_OK;
    int iters = opt->profile_iters;
    v->node_ms = qd_malloc((n_float + 1) * sizeof *v->node_ms);
    if (!v->node_ms)
        return oom(err);
    for (size_t i = 0; i < n_float; i++)
        v->node_ms[i] = NAN;
    qd_engine_options eo = {.threads = opt->threads, .batch = 1, .profile = 1};
    if ((st = qd_engine_create(g, &eo, &e)) != QD_OK) {
        qd_error_set(err, st, "%s: %s", v->name, qd_engine_error(e));
        goto done;
    }
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->name && qd_strmap_put(&engine_nodes, g->nodes[i]->name, g->nodes[i]) != 0) {
            st = oom(err);
            goto done;
        }
    qd_latency_fill_inputs(e);
    for (int w = 0; w < 2; w++)
        if ((st = qd_engine_run(e)) != QD_OK) {
            qd_error_set(err, st, "%s: %s", v->name, qd_engine_error(e));
            goto done;
        }
    qd_engine_profile_reset(e);
    int steps = 0;
    for (int it = 0; it < iters; it++) {
        if ((st = qd_engine_run(e)) != QD_OK) {
            qd_error_set(err, st, "%s: %s", v->name, qd_engine_error(e));
            goto done;
        }
        if (it == 0) {
            steps = qd_engine_profile_count(e);
            t = qd_calloc((size_t)steps * (size_t)iters + 1, sizeof *t);
            col = qd_calloc((size_t)iters + 1, sizeof *col);
            if (!t || !col) {
                st = oom(err);
                goto done;
            }
        }
        for (int s = 0; s < steps; s++) {
            qd_profile_entry pe;
            if (qd_engine_profile_entry(e, s, &pe) == QD_OK)
                t[(size_t)s * (size_t)iters + (size_t)it] = pe.ms_per_run;
        }
        qd_engine_profile_reset(e);
    }
    for (int s = 0; s < steps; s++) {
        qd_profile_entry pe;
        if (qd_engine_profile_entry(e, s, &pe) != QD_OK)
            continue;
        memcpy(col, t + (size_t)s * (size_t)iters, (size_t)iters * sizeof *col);
        double ms = qd_median(col, iters);
        if (!pe.node) {
            v->layout_ms += ms;
            continue;
        }
        int k = step_node(float_nodes, &engine_nodes, &pe);
        if (k < 0 || (size_t)k >= n_float) {
            v->other_ms += ms;
            continue;
        }
        v->node_ms[k] = isnan(v->node_ms[k]) ? ms : v->node_ms[k] + ms;
    }
    v->profiled = steps > 0;
done:
    qd_free(t);
    qd_free(col);
    qd_strmap_free(&engine_nodes);
    qd_engine_delete(e);
    return st;
}

/* ---- SQNR -------------------------------------------------------------------------- */

typedef struct sqnr_acc {
    size_t variant, point;
    float scale;
    double signal, noise;
    long next; /* next accumulator on the same tensor, -1 */
} sqnr_acc;

typedef struct sqnr_state {
    qd_strmap first; /* tensor name -> (index + 1) of its first accumulator */
    sqnr_acc *acc;
    size_t n;
} sqnr_state;

/* Adds the error of fake-quantizing x (int8, zero point 0, scale s, as
 * QuantizeLinear then DequantizeLinear compute it). */
static void fq_accumulate(sqnr_acc *a, const float *x, size_t n)
{
    double sig = 0.0, noise = 0.0;
    float s = a->scale;
    for (size_t i = 0; i < n; i++) {
        float q = rintf(x[i] / s);
        q = q < -128.0f ? -128.0f : q > 127.0f ? 127.0f : q;
        double d = (double)x[i] - (double)(q * s);
        sig += (double)x[i] * x[i];
        noise += d * d;
    }
    a->signal += sig;
    a->noise += noise;
}

static void sqnr_observe(void *user, const qd_tensor_info *v)
{
    sqnr_state *s = user;
    if (v->dtype != QD_FLOAT32 || !v->name)
        return;
    intptr_t k = (intptr_t)qd_strmap_get(&s->first, v->name);
    for (long i = (long)k - 1; i >= 0; i = s->acc[i].next)
        fq_accumulate(&s->acc[i], v->data, v->nbytes / sizeof(float));
}

static double sqnr_db(double signal, double noise)
{
    if (noise <= 0.0)
        return signal > 0.0 ? INFINITY : NAN;
    if (signal <= 0.0)
        return NAN;
    return 10.0 * log10(signal / noise);
}

/* Weight SQNR: per channel scales as stored (clamped to +-127). */
static double weight_sqnr(const qd_graph *g, const qd_quant_point *p)
{
    const qd_value *w = qd_graph_find_value(g, p->tensor);
    const qd_tensor *t = w ? w->konst : NULL;
    if (!t || t->dtype != QD_DT_FLOAT || !p->channel_scale)
        return NAN;
    int64_t outer = 1, C = 1, inner = 1;
    for (int d = 0; d < t->rank; d++) {
        if (p->axis < 0 || d > p->axis)
            inner *= t->dims[d];
        else if (d < p->axis)
            outer *= t->dims[d];
        else
            C = t->dims[d];
    }
    if (C != p->channels)
        return NAN;
    const float *x = t->data;
    double sig = 0.0, noise = 0.0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < C; c++) {
            float s = p->channel_scale[c];
            for (int64_t i = 0; i < inner; i++) {
                float xv = x[(o * C + c) * inner + i];
                float q = rintf(xv / s);
                q = q < -127.0f ? -127.0f : q > 127.0f ? 127.0f : q;
                double d = (double)xv - (double)(q * s);
                sig += (double)xv * xv;
                noise += d * d;
            }
        }
    return sqnr_db(sig, noise);
}

static int first_on_tensor(const qd_quantize_result *q, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (q->points[k].kind == q->points[i].kind && !strcmp(q->points[k].tensor, q->points[i].tensor))
            return 0;
    return 1;
}

static qd_status compute_sqnr(const qd_compare_options *opt, qd_compare_result *r,
                              qd_dataset *calib, qd_error *err)
{
    sqnr_state s = {0};
    size_t cap = 0;
    qd_graph *g = NULL;
    qd_engine *e = NULL;
    float *batch = NULL;
    qd_status st = QD_OK;
    /* Entries: every variant's quantized tensors, once each. */
    for (size_t vi = 0; vi < r->n_variants; vi++) {
        qd_compare_variant *v = &r->variants[vi];
        if (v->is_float)
            continue;
        v->sqnr = qd_calloc(v->q.n_points + 1, sizeof *v->sqnr);
        if (!v->sqnr)
            return oom(err);
        for (size_t i = 0; i < v->q.n_points; i++) {
            const qd_quant_point *p = &v->q.points[i];
            if (!first_on_tensor(&v->q, i))
                continue;
            qd_compare_sqnr *out = &v->sqnr[v->n_sqnr++];
            out->point = i;
            out->sqnr_db = p->kind == QD_PLAN_WEIGHT ? weight_sqnr(r->graph, p) : NAN;
            if (p->kind == QD_PLAN_WEIGHT)
                continue;
            if (qd_grow((void **)&s.acc, &cap, s.n + 1, sizeof *s.acc) != 0) {
                st = oom(err);
                goto done;
            }
            intptr_t head = (intptr_t)qd_strmap_get(&s.first, p->tensor);
            s.acc[s.n] = (sqnr_acc){vi, v->n_sqnr - 1, p->scale, 0.0, 0.0, (long)head - 1};
            if (qd_strmap_put(&s.first, v->q.points[i].tensor, (void *)(intptr_t)(s.n + 1)) != 0) {
                st = oom(err);
                goto done;
            }
            s.n++;
        }
    }
    if (s.n == 0 || !calib)
        goto done;
    /* Activations: the float model, unfused, over the calibration batches. */
    if ((st = qd_graph_load(opt->model, &g)) != QD_OK) {
        graph_fail(err, opt->model, g, st);
        goto done;
    }
    if ((st = qd_quantize_prepare(g, err)) != QD_OK)
        goto done;
    if (g->n_inputs != 1 || g->inputs[0]->rank != 4) {
        st = qd_error_set(err, QD_STATUS_UNSUPPORTED, "%s: SQNR needs one NCHW input", opt->model);
        goto done;
    }
    qd_engine_options eo = {.threads = opt->threads, .batch = opt->batch_size, .unfused = 1};
    if ((st = qd_engine_create(g, &eo, &e)) != QD_OK) {
        qd_error_set(err, st, "%s: %s", opt->model, qd_engine_error(e));
        goto done;
    }
    qd_tensor_info in;
    if ((st = qd_engine_input_info(e, 0, &in)) != QD_OK) {
        qd_error_set(err, st, "%s", qd_engine_error(e));
        goto done;
    }
    qd_engine_set_observer(e, sqnr_observe, &s);
    int64_t b = in.dims[0], c = in.dims[1], h = in.dims[2], w = in.dims[3];
    int64_t wanted = (int64_t)opt->calib_batches * opt->batch_size, count = qd_dataset_count(calib);
    if (wanted <= 0 || wanted > count)
        wanted = count;
    size_t item = (size_t)(c * h * w);
    batch = qd_malloc((size_t)b * item * sizeof *batch);
    if (!batch) {
        st = oom(err);
        goto done;
    }
    intptr_t in_head = (intptr_t)qd_strmap_get(&s.first, in.name);
    qd_progress bar;
    qd_progress_begin(&bar, opt->progress, "SQNR on calibration data", wanted);
    int64_t dims[4] = {b, c, h, w};
    for (int64_t start = 0; start < wanted;) {
        int64_t want = wanted - start < b ? wanted - start : b, n_read = 0, next = start;
        if ((st = qd_dataset_read(calib, start, want, (int)c, (int)h, (int)w, batch, NULL, &n_read,
                                  &next, err)) != QD_OK)
            break;
        if (n_read <= 0)
            break;
        for (int64_t k = n_read; k < b; k++)
            memcpy(batch + k * item, batch, item * sizeof *batch);
        /* The engine does not report its own inputs. */
        for (long i = (long)in_head - 1; i >= 0; i = s.acc[i].next)
            fq_accumulate(&s.acc[i], batch, (size_t)n_read * item);
        if ((st = qd_engine_set_input(e, in.name, QD_FLOAT32, 4, dims, batch)) != QD_OK ||
            (st = qd_engine_run(e)) != QD_OK) {
            qd_error_set(err, st, "%s: %s", opt->model, qd_engine_error(e));
            break;
        }
        start = next;
        qd_progress_update(&bar, start);
    }
    qd_progress_end(&bar);
    if (st != QD_OK)
        goto done;
    for (size_t i = 0; i < s.n; i++)
        r->variants[s.acc[i].variant].sqnr[s.acc[i].point].sqnr_db =
            sqnr_db(s.acc[i].signal, s.acc[i].noise);
done:
    qd_free(batch);
    qd_engine_delete(e);
    qd_graph_delete(g);
    qd_strmap_free(&s.first);
    qd_free(s.acc);
    return st;
}

/* ---- the run ------------------------------------------------------------------------- */

static qd_status quantize_variant(const qd_compare_options *opt, qd_compare_variant *v,
                                  qd_dataset *calib, qd_error *err)
{
    qd_graph *g = NULL;
    qd_quantize_options qo;
    qd_quantize_options_init(&qo);
    qo.target = opt->target;
    qo.policy = v->policy;
    qo.method = v->method;
    qo.calib.batches = opt->calib_batches;
    qo.calib.batch_size = opt->batch_size;
    qo.calib.threads = opt->threads;
    qo.calib.progress = opt->progress;
    qd_status st = qd_graph_load(opt->model, &g);
    if (st != QD_OK) {
        graph_fail(err, opt->model, g, st);
        goto done;
    }
    if (opt->progress)
        fprintf(stderr, "%s: quantizing (%s calibration)\n", v->name,
                qd_observer_kind_name((qd_observer_kind)v->method));
    if ((st = qd_quantize_graph(g, calib, &qo, &v->q, err)) != QD_OK) {
        qd_error_prefix(err, "%s: ", v->name);
        goto done;
    }
    if (!(v->qdq_model = qdq_path(opt->out_dir, opt->model, v->name))) {
        st = oom(err);
        goto done;
    }
    if ((st = qd_graph_save(g, v->qdq_model)) != QD_OK)
        graph_fail(err, v->qdq_model, g, st);
done:
    qd_graph_delete(g);
    return st;
}

static qd_status evaluate_variant(const qd_compare_options *opt, qd_compare_variant *v,
                                  qd_dataset *val, qd_error *err)
{
    const char *path = v->qdq_model ? v->qdq_model : opt->model;
    qd_graph *g = NULL;
    qd_engine *e = NULL;
    qd_status st = qd_compare_load_for_engine(path, &g, err);
    if (st != QD_OK)
        return st;
    qd_engine_options eo = {.threads = opt->threads, .batch = opt->batch_size};
    if ((st = qd_engine_create(g, &eo, &e)) != QD_OK) {
        qd_error_set(err, st, "%s: %s", path, qd_engine_error(e));
        goto done;
    }
    char label[160];
    snprintf(label, sizeof label, "%s: evaluating", v->name);
    qd_eval_options eval = {.limit = opt->limit, .progress = opt->progress, .label = label};
    if ((st = qd_eval_topk(e, val, &eval, &v->topk, err)) != QD_OK)
        qd_error_prefix(err, "%s: ", path);
done:
    qd_engine_delete(e);
    qd_graph_delete(g);
    return st;
}

qd_status qd_compare_run(const qd_compare_options *opt_in, qd_compare_result *r, qd_error *err)
{
    qd_compare_options defaults;
    if (!opt_in) {
        qd_compare_options_init(&defaults);
        opt_in = &defaults;
    }
    r->opt = *opt_in;
    qd_compare_options *opt = &r->opt;
    if (!opt->out_dir)
        opt->out_dir = "out/compare";
    if (!opt->target)
        opt->target = "tensorrt";
    if (!opt->model || !opt->data)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "compare: a model and --data are needed");
    if (opt->batch_size < 1 || opt->calib_batches < 1 || opt->iters < 1 || opt->warmup < 0 ||
        opt->profile_iters < 0)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                            "compare: batch size, calibration batches and iterations must be "
                            "positive");
    read_machine(r->machine, sizeof r->machine, opt->threads);
    qd_dataset *val = NULL, *calib = NULL;
    qd_graph **lat_graphs = NULL;
    qd_engine **lat_engines = NULL;
    qd_latency *lat = NULL;
    qd_strmap float_nodes = {0};
    qd_status st = parse_policies(opt, r, err);
    if (st != QD_OK)
        goto done;
    int quantizes = 0;
    for (size_t i = 0; i < r->n_variants; i++)
        quantizes |= !r->variants[i].is_float;
    if (quantizes && !opt->calib) {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "--calib DATA is needed to quantize (calibration data, e.g. the "
                          "training split)");
        goto done;
    }

    /* Data first: a missing file or labels fail before any work. */
    qd_dataset_options dopt = opt->data_opt;
    dopt.labels = opt->labels;
    if ((st = qd_dataset_open(opt->data, &dopt, &val, err)) != QD_OK)
        goto done;
    if (!qd_dataset_has_labels(val)) {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "%s: no labels: an image folder labels by class sub-folder; an IDX or "
                          ".npy/.npz file needs --labels (e.g. t10k-labels-idx1-ubyte.gz)",
                          opt->data);
        goto done;
    }
    r->data_kind = qd_dataset_kind_name(qd_dataset_get_kind(val));
    r->data_count = qd_dataset_count(val);
    if (opt->limit > 0 && opt->limit < r->data_count)
        r->data_count = opt->limit;
    if (quantizes) {
        qd_dataset_options copt = opt->data_opt;
        copt.labels = NULL;
        if ((st = qd_dataset_open(opt->calib, &copt, &calib, err)) != QD_OK)
            goto done;
        int64_t wanted = (int64_t)opt->calib_batches * opt->batch_size;
        r->calib_images = wanted < qd_dataset_count(calib) ? wanted : qd_dataset_count(calib);
        if (make_dirs(opt->out_dir) != 0) {
            st = qd_error_set(err, QD_STATUS_IO_ERROR, "%s: cannot create the output folder",
                              opt->out_dir);
            goto done;
        }
    }

    /* The float model as quantization sees it: the graph and fusions. */
    if ((st = qd_graph_load(opt->model, &r->graph)) != QD_OK) {
        graph_fail(err, opt->model, r->graph, st);
        goto done;
    }
    if ((st = qd_quantize_prepare(r->graph, err)) != QD_OK)
        goto done;
    if ((st = qd_match_patterns(r->graph, opt->target, &r->matches)) != QD_OK) {
        graph_fail(err, opt->model, r->graph, st);
        goto done;
    }
    if ((st = qd_quantize_count_fusions(&r->matches, &r->fusions, &r->n_fusions, err)) != QD_OK)
        goto done;
    qd_graph *fg = r->graph;
    if (!(r->node_group = qd_malloc((fg->n_nodes + 1) * sizeof *r->node_group))) {
        st = oom(err);
        goto done;
    }
    for (size_t i = 0; i < fg->n_nodes; i++) {
        r->node_group[i] = -1;
        if (fg->nodes[i]->name && qd_strmap_put(&float_nodes, fg->nodes[i]->name,
                                                (void *)(intptr_t)(i + 1)) != 0) {
            st = oom(err);
            goto done;
        }
    }
    for (size_t k = 0; k < r->matches.n; k++)
        for (int j = 0; j < r->matches.items[k].n_nodes; j++) {
            const qd_node *n = r->matches.items[k].nodes[j];
            for (size_t i = 0; i < fg->n_nodes; i++)
                if (fg->nodes[i] == n) {
                    r->node_group[i] = (int)k;
                    break;
                }
        }

    /* Quantize and evaluate each variant. */
    for (size_t i = 0; i < r->n_variants; i++) {
        qd_compare_variant *v = &r->variants[i];
        if (!v->is_float && (st = quantize_variant(opt, v, calib, err)) != QD_OK)
            goto done;
        if ((st = evaluate_variant(opt, v, val, err)) != QD_OK)
            goto done;
    }

    /* Latency at batch 1, interleaved; then the per-layer profile. */
    size_t n = r->n_variants;
    lat_graphs = qd_calloc(n, sizeof *lat_graphs);
    lat_engines = qd_calloc(n, sizeof *lat_engines);
    lat = qd_calloc(n, sizeof *lat);
    if (!lat_graphs || !lat_engines || !lat) {
        st = oom(err);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        qd_compare_variant *v = &r->variants[i];
        const char *path = v->qdq_model ? v->qdq_model : opt->model;
        if ((st = qd_compare_load_for_engine(path, &lat_graphs[i], err)) != QD_OK)
            goto done;
        qd_engine_options eo = {.threads = opt->threads, .batch = 1};
        if ((st = qd_engine_create(lat_graphs[i], &eo, &lat_engines[i])) != QD_OK) {
            qd_error_set(err, st, "%s: %s", path, qd_engine_error(lat_engines[i]));
            goto done;
        }
    }
    if (opt->progress)
        fprintf(stderr, "latency: %d runs of each variant (batch 1, interleaved)\n", opt->iters);
    if ((st = qd_latency_measure(lat_engines, (int)n, opt->warmup, opt->iters, lat, err)) != QD_OK)
        goto done;
    for (size_t i = 0; i < n; i++) {
        r->variants[i].latency = lat[i];
        qd_engine_delete(lat_engines[i]);
        lat_engines[i] = NULL;
    }
    if (opt->profile_iters > 0)
        for (size_t i = 0; i < n; i++)
            if ((st = profile_variant(opt, lat_graphs[i], &float_nodes, fg->n_nodes,
                                      &r->variants[i], err)) != QD_OK)
                goto done;
    const qd_compare_variant *base = &r->variants[r->baseline];
    for (size_t i = 0; i < n; i++) {
        qd_compare_variant *v = &r->variants[i];
        v->speedup = v->latency.median_ms > 0 ? base->latency.median_ms / v->latency.median_ms : 0;
        v->top1_drop_pp = qd_topk_percent(base->topk.top1, base->topk.total) -
                          qd_topk_percent(v->topk.top1, v->topk.total);
    }
    if (opt->sqnr && quantizes)
        st = compute_sqnr(opt, r, calib, err);
done:
    for (size_t i = 0; lat_graphs && i < r->n_variants; i++) {
        if (lat_engines)
            qd_engine_delete(lat_engines[i]);
        qd_graph_delete(lat_graphs[i]);
    }
    qd_free(lat_graphs);
    qd_free(lat_engines);
    qd_free(lat);
    qd_strmap_free(&float_nodes);
    qd_dataset_delete(val);
    qd_dataset_delete(calib);
    return st;
}

/* ---- output --------------------------------------------------------------------------- */

void qd_compare_write_markdown(const qd_compare_result *r, FILE *out)
{
    fprintf(out, "| Variant | Top-1 | Top-5 | Latency (ms) | Speedup |\n"
                 "|---|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < r->n_variants; i++) {
        const qd_compare_variant *v = &r->variants[i];
        fprintf(out, "| %s | %.2f%% | %.2f%% | %.3f | %.2fx |\n", v->label,
                qd_topk_percent(v->topk.top1, v->topk.total),
                qd_topk_percent(v->topk.top5, v->topk.total), v->latency.median_ms, v->speedup);
    }
    int any = 0;
    for (size_t i = 0; i < r->n_variants; i++) {
        const qd_compare_variant *v = &r->variants[i];
        if (i == r->baseline)
            continue;
        if (!any++)
            fprintf(out, "\n| Policy | Speedup vs %s | Top-1 drop (pp) |\n|---|---:|---:|\n",
                    r->variants[r->baseline].name);
        fprintf(out, "| %s | %.2fx | %.2f |\n", v->name, v->speedup, v->top1_drop_pp);
    }
    fprintf(out, "\n");
    qd_match_report(&r->matches, out);
}

static void json_str_or_null(qd_json *j, const char *s)
{
    s ? qd_json_string(j, s) : qd_json_null(j);
}

/* The first point of variant v on node `name` (precision and why), or NULL;
 * *hp the high-precision entry for it, or NULL. */
static const qd_quant_point *node_point(const qd_compare_variant *v, const char *name,
                                        const qd_hp_node **hp)
{
    *hp = NULL;
    for (size_t i = 0; i < v->q.n_points; i++)
        if (!strcmp(v->q.points[i].node, name))
            return &v->q.points[i];
    for (size_t i = 0; i < v->q.n_high; i++)
        if (!strcmp(v->q.high[i].node, name)) {
            *hp = &v->q.high[i];
            break;
        }
    return NULL;
}

static void write_graph(const qd_compare_result *r, qd_json *j)
{
    const qd_graph *g = r->graph;
    qd_json_begin_object(j);
    qd_json_key(j, "nodes");
    qd_json_begin_array(j);
    for (size_t i = 0; g && i < g->n_nodes; i++) {
        const qd_node *n = g->nodes[i];
        const char *name = n->name ? n->name : "";
        qd_json_begin_object(j);
        qd_json_key(j, "name");
        qd_json_string(j, name);
        qd_json_key(j, "op");
        qd_json_string(j, n->op_type);
        qd_json_key(j, "inputs");
        qd_json_begin_array(j);
        for (int k = 0; k < n->n_inputs; k++)
            qd_json_string(j, n->inputs[k] ? n->inputs[k]->name : "");
        qd_json_end_array(j);
        qd_json_key(j, "outputs");
        qd_json_begin_array(j);
        for (int k = 0; k < n->n_outputs; k++)
            qd_json_string(j, n->outputs[k] ? n->outputs[k]->name : "");
        qd_json_end_array(j);
        int grp = r->node_group ? r->node_group[i] : -1;
        qd_json_key(j, "module");
        json_str_or_null(j, grp >= 0 ? r->matches.items[grp].pattern->name : NULL);
        qd_json_key(j, "group");
        if (grp >= 0)
            qd_json_int(j, grp);
        else
            qd_json_null(j);
        qd_json_key(j, "precision");
        qd_json_begin_object(j);
        for (size_t k = 0; k < r->n_variants; k++) {
            const qd_compare_variant *v = &r->variants[k];
            const qd_hp_node *hp;
            if (v->is_float)
                continue;
            qd_json_key(j, v->name);
            qd_json_string(j, node_point(v, name, &hp) ? "int8" : "float");
        }
        qd_json_end_object(j);
        qd_json_key(j, "why");
        qd_json_begin_object(j);
        for (size_t k = 0; k < r->n_variants; k++) {
            const qd_compare_variant *v = &r->variants[k];
            const qd_hp_node *hp;
            if (v->is_float)
                continue;
            const qd_quant_point *p = node_point(v, name, &hp);
            char why[160];
            if (p)
                snprintf(why, sizeof why, "%s", p->why);
            else if (hp)
                snprintf(why, sizeof why, "high precision: %s", qd_hp_reason_name(hp->reason));
            else
                continue;
            qd_json_key(j, v->name);
            qd_json_string(j, why);
        }
        qd_json_end_object(j);
        qd_json_end_object(j);
    }
    qd_json_end_array(j);
    qd_json_end_object(j);
}

void qd_compare_write_json(const qd_compare_result *r, FILE *out)
{
    const qd_compare_options *opt = &r->opt;
    qd_json j;
    qd_json_init(&j, out, 1);
    qd_json_begin_object(&j);
    qd_json_key(&j, "qdeploy_compare");
    qd_json_int(&j, 1);
    qd_json_key(&j, "model");
    json_str_or_null(&j, opt->model);
    qd_json_key(&j, "target");
    json_str_or_null(&j, opt->target);

    qd_json_key(&j, "data");
    qd_json_begin_object(&j);
    qd_json_key(&j, "path");
    json_str_or_null(&j, opt->data);
    qd_json_key(&j, "labels");
    json_str_or_null(&j, opt->labels);
    qd_json_key(&j, "count");
    qd_json_int(&j, r->data_count);
    qd_json_key(&j, "kind");
    char kind[16] = "";
    for (size_t i = 0; r->data_kind && r->data_kind[i] && i + 1 < sizeof kind; i++)
        kind[i] = (char)((r->data_kind[i] >= 'A' && r->data_kind[i] <= 'Z') ? r->data_kind[i] + 32
                                                                            : r->data_kind[i]);
    json_str_or_null(&j, r->data_kind ? kind : NULL);
    qd_json_end_object(&j);

    const qd_compare_variant *first_q = NULL;
    for (size_t i = 0; i < r->n_variants && !first_q; i++)
        if (!r->variants[i].is_float)
            first_q = &r->variants[i];
    qd_json_key(&j, "calib");
    qd_json_begin_object(&j);
    qd_json_key(&j, "path");
    json_str_or_null(&j, opt->calib);
    qd_json_key(&j, "batches");
    qd_json_int(&j, opt->calib_batches);
    qd_json_key(&j, "batch_size");
    qd_json_int(&j, opt->batch_size);
    qd_json_key(&j, "images");
    qd_json_int(&j, r->calib_images);
    qd_json_key(&j, "method");
    json_str_or_null(&j, first_q ? qd_observer_kind_name((qd_observer_kind)first_q->method) : NULL);
    qd_json_end_object(&j);

    qd_json_key(&j, "machine");
    qd_json_string(&j, r->machine);
    qd_json_key(&j, "latency");
    qd_json_begin_object(&j);
    qd_json_key(&j, "batch");
    qd_json_int(&j, 1);
    qd_json_key(&j, "warmup");
    qd_json_int(&j, opt->warmup);
    qd_json_key(&j, "iters");
    qd_json_int(&j, opt->iters);
    qd_json_key(&j, "profile_iters");
    qd_json_int(&j, opt->profile_iters);
    qd_json_end_object(&j);
    qd_json_key(&j, "baseline");
    qd_json_string(&j, r->n_variants ? r->variants[r->baseline].name : "");

    qd_json_key(&j, "variants");
    qd_json_begin_array(&j);
    for (size_t i = 0; i < r->n_variants; i++) {
        const qd_compare_variant *v = &r->variants[i];
        qd_json_begin_object(&j);
        qd_json_key(&j, "name");
        qd_json_string(&j, v->name);
        qd_json_key(&j, "label");
        qd_json_string(&j, v->label);
        qd_json_key(&j, "policy");
        json_str_or_null(&j, v->is_float ? NULL : qd_quantize_policy_name(v->policy));
        qd_json_key(&j, "method");
        json_str_or_null(&j, v->is_float ? NULL : qd_observer_kind_name((qd_observer_kind)v->method));
        qd_json_key(&j, "top1");
        qd_json_double(&j, qd_topk_percent(v->topk.top1, v->topk.total));
        qd_json_key(&j, "top5");
        qd_json_double(&j, qd_topk_percent(v->topk.top5, v->topk.total));
        qd_json_key(&j, "evaluated");
        qd_json_int(&j, v->topk.total);
        qd_json_key(&j, "latency_ms");
        qd_json_double(&j, v->latency.median_ms);
        qd_json_key(&j, "latency_min_ms");
        qd_json_double(&j, v->latency.min_ms);
        qd_json_key(&j, "latency_max_ms");
        qd_json_double(&j, v->latency.max_ms);
        qd_json_key(&j, "speedup");
        qd_json_double(&j, v->speedup);
        qd_json_key(&j, "top1_drop_pp");
        qd_json_double(&j, v->top1_drop_pp);
        qd_json_key(&j, "qdq_model");
        json_str_or_null(&j, v->qdq_model);
        qd_json_key(&j, "qdq_pairs");
        qd_quantize_json_pairs(&j, &v->q);
        if (!v->is_float) {
            qd_json_key(&j, "high_precision");
            qd_quantize_json_high_counts(&j, &v->q);
        }
        qd_json_end_object(&j);
    }
    qd_json_end_array(&j);

    qd_json_key(&j, "fusions");
    qd_quantize_json_fusions(&j, r->fusions, r->n_fusions);

    qd_json_key(&j, "graph");
    write_graph(r, &j);

    qd_json_key(&j, "sqnr");
    qd_json_begin_array(&j);
    for (size_t i = 0; i < r->n_variants; i++) {
        const qd_compare_variant *v = &r->variants[i];
        for (size_t k = 0; k < v->n_sqnr; k++) {
            const qd_quant_point *p = &v->q.points[v->sqnr[k].point];
            qd_json_begin_object(&j);
            qd_json_key(&j, "policy");
            qd_json_string(&j, v->name);
            qd_json_key(&j, "tensor");
            qd_json_string(&j, p->tensor);
            qd_json_key(&j, "node");
            qd_json_string(&j, p->node);
            qd_json_key(&j, "kind");
            qd_json_string(&j, p->kind == QD_PLAN_WEIGHT ? "weight" : "activation");
            qd_json_key(&j, "why");
            qd_json_string(&j, p->why);
            qd_json_key(&j, "scale");
            qd_json_double(&j, p->scale);
            qd_json_key(&j, "amax");
            qd_json_double(&j, p->amax);
            /* null when not measured, or when exact ("exact": true) */
            qd_json_key(&j, "sqnr_db");
            qd_json_double(&j, v->sqnr[k].sqnr_db);
            if (isinf(v->sqnr[k].sqnr_db)) {
                qd_json_key(&j, "exact");
                qd_json_bool(&j, 1);
            }
            qd_json_end_object(&j);
        }
    }
    qd_json_end_array(&j);

    qd_json_key(&j, "layer_latency");
    qd_json_begin_array(&j);
    for (size_t i = 0; r->graph && i < r->graph->n_nodes; i++) {
        int any = 0;
        for (size_t k = 0; k < r->n_variants; k++)
            any |= r->variants[k].node_ms && !isnan(r->variants[k].node_ms[i]);
        if (!any)
            continue;
        const qd_node *n = r->graph->nodes[i];
        qd_json_begin_object(&j);
        qd_json_key(&j, "node");
        qd_json_string(&j, n->name ? n->name : "");
        qd_json_key(&j, "op");
        qd_json_string(&j, n->op_type);
        qd_json_key(&j, "ms");
        qd_json_begin_object(&j);
        for (size_t k = 0; k < r->n_variants; k++) {
            const qd_compare_variant *v = &r->variants[k];
            if (!v->node_ms)
                continue;
            qd_json_key(&j, v->name);
            qd_json_double(&j, isnan(v->node_ms[i]) ? 0.0 : v->node_ms[i]);
        }
        qd_json_end_object(&j);
        qd_json_end_object(&j);
    }
    qd_json_end_array(&j);
    /* Time of steps no float-graph node accounts for. */
    qd_json_key(&j, "layer_latency_other");
    qd_json_begin_object(&j);
    for (size_t k = 0; k < r->n_variants; k++) {
        const qd_compare_variant *v = &r->variants[k];
        if (!v->profiled)
            continue;
        qd_json_key(&j, v->name);
        qd_json_begin_object(&j);
        qd_json_key(&j, "layout_ms");
        qd_json_double(&j, v->layout_ms);
        qd_json_key(&j, "other_ms");
        qd_json_double(&j, v->other_ms);
        qd_json_end_object(&j);
    }
    qd_json_end_object(&j);
    qd_json_end_object(&j);
    fputc('\n', out);
}
