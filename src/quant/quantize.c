/* The quantization pipeline (see quantize.h). */
#include "quant/quantize.h"

#include <json-c/json.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "passes/passes.h"
#include "quant/observer.h"
#include "quant/qdq_insert.h"
#include "report/json.h"

/* ---- names ---------------------------------------------------------------- */

const char *qd_quantize_policy_name(qd_quantize_policy policy)
{
    return policy == QD_POLICY_UNIFORM ? "uniform" : "mixed";
}

int qd_quantize_policy_parse(const char *name, qd_quantize_policy *out)
{
    if (name && !strcmp(name, "mixed"))
        *out = QD_POLICY_MIXED;
    else if (name && !strcmp(name, "uniform"))
        *out = QD_POLICY_UNIFORM;
    else
        return -1;
    return 0;
}

static const char *const HP_NAMES[QD_HP_REASON_COUNT] = {
    [QD_HP_EXCLUDED] = "excluded by --exclude",
    [QD_HP_DEPTHWISE] = "depthwise conv",
    [QD_HP_GLOBAL_POOL] = "global average pool",
    [QD_HP_LAYERNORM] = "LayerNorm",
    [QD_HP_SOFTMAX] = "Softmax",
    [QD_HP_GELU] = "GELU",
    [QD_HP_SMALL_LINEAR] = "Linear with K*N/(K+N) < 256",
    [QD_HP_NOT_IN_PLAN] = "not in the plan file",
    [QD_HP_POLICY] = "no QDQ for this module in the policy",
    [QD_HP_NO_PATTERN] = "no pattern",
};

static const char *const HP_KEYS[QD_HP_REASON_COUNT] = {
    [QD_HP_EXCLUDED] = "excluded",       [QD_HP_DEPTHWISE] = "depthwise",
    [QD_HP_GLOBAL_POOL] = "global_pool", [QD_HP_LAYERNORM] = "layernorm",
    [QD_HP_SOFTMAX] = "softmax",         [QD_HP_GELU] = "gelu",
    [QD_HP_SMALL_LINEAR] = "small_linear", [QD_HP_NOT_IN_PLAN] = "not_in_plan",
    [QD_HP_POLICY] = "policy",           [QD_HP_NO_PATTERN] = "no_pattern",
};

const char *qd_hp_reason_name(qd_hp_reason reason)
{
    return (unsigned)reason < QD_HP_REASON_COUNT ? HP_NAMES[reason] : "?";
}

const char *qd_hp_reason_key(qd_hp_reason reason)
{
    return (unsigned)reason < QD_HP_REASON_COUNT ? HP_KEYS[reason] : "?";
}

void qd_quantize_options_init(qd_quantize_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->target = "tensorrt";
    opt->policy = QD_POLICY_MIXED;
    opt->method = -1;
    opt->input_max = 1;
    qd_calibration_options_init(&opt->calib);
    qd_dataset_options_init(&opt->data);
}

void qd_quantize_result_free(qd_quantize_result *r)
{
    if (!r)
        return;
    qd_match_list_free(&r->matches);
    qd_free(r->fusions);
    for (size_t i = 0; i < r->n_points; i++) {
        qd_free(r->points[i].node);
        qd_free(r->points[i].op);
        qd_free(r->points[i].tensor);
        qd_free(r->points[i].channel_scale);
    }
    qd_free(r->points);
    for (size_t i = 0; i < r->n_high; i++) {
        qd_free(r->high[i].node);
        qd_free(r->high[i].op);
    }
    qd_free(r->high);
    memset(r, 0, sizeof *r);
}

/* The graph's message, naming the model file first unless it already does. */
static qd_status graph_error(qd_error *err, const qd_graph *g, qd_status st)
{
    const char *msg = qd_graph_error(g);
    if (!msg || !msg[0])
        msg = qd_status_name(st);
    size_t n = g->path ? strlen(g->path) : 0;
    if (!n || (!strncmp(msg, g->path, n) && msg[n] == ':'))
        return qd_error_set(err, st, "%s", msg);
    return qd_error_set(err, st, "%s: %s", g->path, msg);
}

static qd_status oom(qd_error *err)
{
    return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "out of memory");
}

/* ---- prepare ---------------------------------------------------------------- */

/* counts (may be NULL): what the conversions for fusion did. */
static qd_status prepare(qd_graph *g, qd_conversion_counts *counts, qd_error *err)
{
    qd_status st = qd_graph_infer_shapes(g);
    if (st == QD_OK)
        st = qd_graph_simplify(g);
    /* Conversions for fusion (Flatten -> Gemm into a 1x1 Conv, attention
     * decomposition), between simplify and matching. */
    if (st == QD_OK)
        st = qd_graph_convert_for_fusion(g, counts);
    return st == QD_OK ? QD_OK : graph_error(err, g, st);
}

qd_status qd_quantize_prepare(qd_graph *g, qd_error *err) { return prepare(g, NULL, err); }

/* ---- node helpers ----------------------------------------------------------- */

/* Index of n in g->nodes (the graph keeps node->id in step with it). */
static size_t node_index(const qd_graph *g, const qd_node *n)
{
    if (n->id >= 0 && (size_t)n->id < g->n_nodes && g->nodes[n->id] == n)
        return (size_t)n->id;
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i] == n)
            return i;
    return (size_t)-1;
}

static int is_depthwise(qd_graph *g, const qd_node *n)
{
    if (n->op != QD_OP_CONV)
        return 0;
    int64_t group = 1;
    if (qd_node_attr_int(g, n, "group", 1, &group) != QD_OK || group <= 1)
        return 0;
    const qd_value *x = n->inputs[0];
    int64_t c = x && x->rank >= 2 ? x->dims[1] : -1;
    const qd_value *w = n->n_inputs > 1 ? n->inputs[1] : NULL;
    if (c <= 0 && w && w->rank >= 2 && w->dims[1] > 0)
        c = w->dims[1] * group;
    return group == c;
}

/* ---- --include / --exclude ---------------------------------------------------- */

static int node_matches(const regex_t *re, const qd_node *n)
{
    return (n->name && regexec(re, n->name, 0, NULL, 0) == 0) ||
           regexec(re, n->op_type, 0, NULL, 0) == 0;
}

/* --exclude drops plan points of matching nodes (marking them in
 * excluded[], by node index); --include adds input and weight points for
 * matching Conv/Gemm/MatMul nodes the plan left float. given[] (room for
 * plan->n + 2 * g->n_nodes entries) follows the points. */
static qd_status apply_user_rules(qd_graph *g, qd_qdq_plan *plan, int *given, const char *include,
                                  const char *exclude, unsigned char *excluded, qd_error *err)
{
    regex_t inc, exc;
    int have_inc = 0, have_exc = 0;
    qd_status st = QD_OK;
    if (include) {
        if (regcomp(&inc, include, REG_EXTENDED | REG_NOSUB) != 0)
            return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                                "--include: '%s' is not a regular expression", include);
        have_inc = 1;
    }
    if (exclude) {
        if (regcomp(&exc, exclude, REG_EXTENDED | REG_NOSUB) != 0) {
            st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                              "--exclude: '%s' is not a regular expression", exclude);
            goto done;
        }
        have_exc = 1;
    }
    if (have_inc) {
        for (size_t i = 0; i < g->n_nodes; i++) {
            qd_node *n = g->nodes[i];
            if ((n->op != QD_OP_CONV && n->op != QD_OP_GEMM && n->op != QD_OP_MATMUL) ||
                !node_matches(&inc, n))
                continue;
            int has = 0;
            for (size_t k = 0; k < plan->n; k++)
                has |= plan->points[k].consumer == n;
            if (has)
                continue;
            if (qd_grow((void **)&plan->points, &plan->cap, plan->n + 2, sizeof *plan->points) != 0) {
                st = oom(err);
                goto done;
            }
            given[plan->n] = given[plan->n + 1] = 0;
            plan->points[plan->n++] =
                (qd_plan_point){n, 0, QD_PLAN_ACTIVATION, -1, "--include", "input", 0.0f};
            int axis;
            if (n->n_inputs > 1 && n->inputs[1] && n->inputs[1]->konst &&
                qd_qdq_weight_axis(g, n, 1, &axis) == QD_OK)
                plan->points[plan->n++] =
                    (qd_plan_point){n, 1, QD_PLAN_WEIGHT, axis, "--include", "weight", 0.0f};
        }
    }
    if (have_exc) {
        size_t w = 0;
        for (size_t k = 0; k < plan->n; k++) {
            qd_node *n = plan->points[k].consumer;
            if (node_matches(&exc, n)) {
                size_t idx = node_index(g, n);
                if (idx != (size_t)-1)
                    excluded[idx] = 1;
                continue;
            }
            given[w] = given[k];
            plan->points[w++] = plan->points[k];
        }
        plan->n = w;
    }
done:
    if (have_inc)
        regfree(&inc);
    if (have_exc)
        regfree(&exc);
    return st;
}

/* ---- plan file ------------------------------------------------------------------- */

/* The static string among the fusion table's names equal to s, else
 * `fallback` (the plan keeps borrowed strings). */
static const char *intern_module(const char *s, const char *fallback)
{
    if (!s)
        return fallback;
    for (size_t i = 0; i < qd_fusion_pattern_count; i++)
        if (!strcmp(qd_fusion_patterns[i].name, s))
            return qd_fusion_patterns[i].name;
    if (!strcmp(s, "--include"))
        return "--include";
    return fallback;
}

/* Line and column (1-based) of byte offset off in buf. */
static void line_col(const char *buf, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && buf[i]; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static char *read_whole_file(const char *path, size_t *size, qd_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        qd_error_set(err, QD_STATUS_IO_ERROR, "%s: cannot open the plan file", path);
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (qd_grow((void **)&buf, &cap, n + 65536 + 1, 1) != 0) {
            qd_free(buf);
            fclose(f);
            oom(err);
            return NULL;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        qd_free(buf);
        qd_error_set(err, QD_STATUS_IO_ERROR, "%s: cannot read the plan file", path);
        return NULL;
    }
    buf[n] = '\0';
    *size = n;
    return buf;
}

/* A number member of a plan entry: 1 and *out when present, 0 when absent,
 * -1 when present but not a number. */
static int get_number(json_object *o, const char *key, double *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !v)
        return 0;
    if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
        return -1;
    *out = json_object_get_double(v);
    return 1;
}

/* A string member: the string, NULL when absent; *bad = 1 when not a string. */
static const char *get_string(json_object *o, const char *key, int *bad)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !v)
        return NULL;
    if (!json_object_is_type(v, json_type_string)) {
        *bad = 1;
        return NULL;
    }
    return json_object_get_string(v);
}

/* The amax whose scale (amax / 127 in float, as insertion computes it) is
 * exactly s, when one is near s * 127. */
static float amax_for_scale(float s)
{
    float a = s * 127.0f;
    for (int k = 0; k < 4 && qd_observer_scale(a) != s; k++)
        a = nextafterf(a, qd_observer_scale(a) < s ? INFINITY : 0.0f);
    return a;
}

qd_status qd_quantize_plan_read(qd_graph *g, const char *path, qd_qdq_plan *plan, int **given_out,
                                qd_error *err)
{
    memset(plan, 0, sizeof *plan);
    if (given_out)
        *given_out = NULL;
    size_t size = 0;
    char *buf = read_whole_file(path, &size, err);
    if (!buf)
        return err ? err->status : QD_STATUS_IO_ERROR;
    json_tokener *tok = json_tokener_new();
    json_object *root = NULL;
    int *given = NULL;
    size_t given_cap = 0;
    qd_strmap by_name = {0};
    qd_status st = QD_OK;
    if (!tok) {
        st = oom(err);
        goto done;
    }
    root = json_tokener_parse_ex(tok, buf, (int)size);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (!root || jerr != json_tokener_success) {
        int line, col;
        line_col(buf, end, &line, &col);
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "%s:%d:%d: not valid JSON (%s)", path, line, col,
                          jerr == json_tokener_continue ? "unexpected end of file"
                                                        : json_tokener_error_desc(jerr));
        goto done;
    }
    for (size_t i = end; i < size; i++)
        if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r') {
            int line, col;
            line_col(buf, i, &line, &col);
            st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                              "%s:%d:%d: not valid JSON (text after the document)", path, line,
                              col);
            goto done;
        }
    json_object *points;
    if (!json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "points", &points) ||
        !json_object_is_type(points, json_type_array)) {
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                          "%s: a plan is an object with a \"points\" array (as --dump-plan "
                          "writes)",
                          path);
        goto done;
    }
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->name && g->nodes[i]->name[0] &&
            qd_strmap_put(&by_name, g->nodes[i]->name, g->nodes[i]) != 0) {
            st = oom(err);
            goto done;
        }
    size_t n = json_object_array_length(points);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(points, i);
#define ENTRY_FAIL(...)                                                                       \
    do {                                                                                      \
        char what_[512];                                                                      \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                           \
        st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "%s: points[%zu]: %s", path, i,    \
                          what_);                                                             \
        goto done;                                                                            \
    } while (0)
        if (!json_object_is_type(e, json_type_object))
            ENTRY_FAIL("not an object");
        int bad = 0;
        const char *name = get_string(e, "node", &bad);
        const char *kind = get_string(e, "kind", &bad);
        const char *op = get_string(e, "op", &bad);
        const char *tensor = get_string(e, "tensor", &bad);
        const char *module = get_string(e, "module", &bad);
        const char *why = get_string(e, "why", &bad);
        if (bad)
            ENTRY_FAIL("node, kind, op, tensor, module and why are strings");
        if (!name)
            ENTRY_FAIL("no \"node\"");
        json_object *jin;
        if (!json_object_object_get_ex(e, "input", &jin) || !json_object_is_type(jin, json_type_int))
            ENTRY_FAIL("node '%s': \"input\" must be an integer input index", name);
        int64_t input = json_object_get_int64(jin);
        if (!kind || (strcmp(kind, "activation") != 0 && strcmp(kind, "weight") != 0))
            ENTRY_FAIL("node '%s': \"kind\" must be \"activation\" or \"weight\"", name);
        qd_node *node = qd_strmap_get(&by_name, name);
        if (!node)
            ENTRY_FAIL("no node named '%s' in the model", name);
        if (op && strcmp(op, node->op_type) != 0)
            ENTRY_FAIL("node '%s' is a %s, the plan says %s", name, node->op_type, op);
        if (input < 0 || input >= node->n_inputs || !node->inputs[input])
            ENTRY_FAIL("node '%s' (%s) has no input %lld", name, node->op_type, (long long)input);
        qd_value *v = node->inputs[input];
        if (tensor && strcmp(tensor, v->name) != 0)
            ENTRY_FAIL("input %lld of node '%s' is tensor '%s', the plan says '%s'",
                       (long long)input, name, v->name, tensor);
        if (v->dtype != QD_DT_UNDEFINED && v->dtype != QD_DT_FLOAT)
            ENTRY_FAIL("input %lld of node '%s' ('%s') is %s; only float32 is quantized",
                       (long long)input, name, v->name, qd_dtype_name(v->dtype));
        for (size_t k = 0; k < plan->n; k++)
            if (plan->points[k].consumer == node && plan->points[k].input == (int)input)
                ENTRY_FAIL("node '%s' input %lld is listed twice", name, (long long)input);
        qd_plan_point p = {node, (int)input, QD_PLAN_ACTIVATION, -1, NULL, NULL, 0.0f};
        int has_amax = 0;
        if (!strcmp(kind, "weight")) {
            if (!v->konst || v->producer)
                ENTRY_FAIL("input %lld of node '%s' ('%s') is not a constant weight",
                           (long long)input, name, v->name);
            p.kind = QD_PLAN_WEIGHT;
            double axis;
            int r = get_number(e, "axis", &axis);
            if (r < 0 || (r > 0 && axis != floor(axis)))
                ENTRY_FAIL("node '%s': \"axis\" must be an integer", name);
            if (r > 0) {
                if (axis < -1 || axis >= v->konst->rank)
                    ENTRY_FAIL("node '%s': axis %g is out of range for weight '%s' of rank %d",
                               name, axis, v->name, v->konst->rank);
                p.axis = (int)axis;
            } else if (qd_qdq_weight_axis(g, node, (int)input, &p.axis) != QD_OK) {
                ENTRY_FAIL("%s (give \"axis\")", qd_graph_error(g));
            }
            p.why = "weight";
        } else {
            double amax = 0, scale = 0;
            int ra = get_number(e, "amax", &amax), rs = get_number(e, "scale", &scale);
            if (ra < 0 || rs < 0)
                ENTRY_FAIL("node '%s': \"amax\" and \"scale\" must be numbers", name);
            if ((ra > 0 && !(amax >= 0 && isfinite(amax))) ||
                (rs > 0 && !(scale > 0 && isfinite(scale))))
                ENTRY_FAIL("node '%s': amax must be finite and >= 0, scale finite and > 0", name);
            if (ra > 0) {
                p.amax = (float)amax;
                if (rs > 0 && fabs(qd_observer_scale(p.amax) - scale) > 1e-6 * scale)
                    ENTRY_FAIL("node '%s': amax %g and scale %g disagree (scale = amax / 127); "
                               "give one of them",
                               name, amax, scale);
            } else if (rs > 0) {
                p.amax = amax_for_scale((float)scale);
            }
            has_amax = ra > 0 || rs > 0;
            p.why = why && !strcmp(why, "residual input") ? "residual input" : "input";
        }
        p.module = intern_module(module, "plan file");
        if (qd_grow((void **)&plan->points, &plan->cap, plan->n + 1, sizeof *plan->points) != 0 ||
            qd_grow((void **)&given, &given_cap, plan->n + 1, sizeof *given) != 0) {
            st = oom(err);
            goto done;
        }
        given[plan->n] = has_amax;
        plan->points[plan->n++] = p;
#undef ENTRY_FAIL
    }
done:
    qd_strmap_free(&by_name);
    if (root)
        json_object_put(root);
    if (tok)
        json_tokener_free(tok);
    qd_free(buf);
    if (st != QD_OK) {
        qd_plan_free(plan);
        qd_free(given);
        given = NULL;
    }
    if (given_out)
        *given_out = given;
    else
        qd_free(given);
    return st;
}

/* ---- high-precision analysis ------------------------------------------------- */

typedef struct hp_ctx {
    qd_graph *g;
    const qd_match_list *m;
    const qd_qdq_plan *plan;
    const char *target;
    int mixed, from_file;
    const unsigned char *excluded;
    int *match_of;            /* node index -> match index, -1 */
    unsigned char *quantized; /* node index -> has a plan point */
} hp_ctx;

/* 1 with *reason when node i stays in high precision and is worth listing. */
static int hp_reason_of(hp_ctx *c, size_t i, qd_hp_reason *reason)
{
    qd_node *n = c->g->nodes[i];
    if (c->quantized[i])
        return 0;
    if (c->excluded[i]) {
        *reason = QD_HP_EXCLUDED;
        return 1;
    }
    const qd_match *mt = c->match_of[i] >= 0 ? &c->m->items[c->match_of[i]] : NULL;
    unsigned points = mt ? qd_pattern_qdq_points(mt->pattern, c->target) : 0;
    int anchor = mt && mt->nodes[0] == n;
    /* Every node of a quantized module that is not an anchor (BN, the
     * activation, the residual Add) runs in the module's INT8 group. */
    int group_quantized = 0;
    if (mt)
        for (int k = 0; k < mt->n_nodes; k++) {
            size_t j = node_index(c->g, mt->nodes[k]);
            group_quantized |= j != (size_t)-1 && c->quantized[j];
        }
    switch (n->op) {
    case QD_OP_SOFTMAX:
        *reason = QD_HP_SOFTMAX;
        return 1;
    case QD_OP_LAYER_NORMALIZATION:
        *reason = QD_HP_LAYERNORM;
        return 1;
    case QD_OP_GELU:
    case QD_OP_ERF:
        if (group_quantized)
            return 0;
        *reason = QD_HP_GELU;
        return 1;
    case QD_OP_GLOBAL_AVERAGE_POOL:
        *reason = QD_HP_GLOBAL_POOL;
        return 1;
    case QD_OP_REDUCE_MEAN:
        if (mt && !strcmp(mt->pattern->name, "FusedAdaptiveAvgPool2d")) {
            *reason = QD_HP_GLOBAL_POOL;
            return 1;
        }
        return 0;
    case QD_OP_CONV:
        if (is_depthwise(c->g, n) && (!points || c->mixed)) {
            *reason = QD_HP_DEPTHWISE;
            return 1;
        }
        break;
    case QD_OP_CONV_TRANSPOSE:
    case QD_OP_GEMM:
    case QD_OP_MATMUL:
        break;
    default:
        return 0;
    }
    /* A Conv, Gemm or MatMul without a QDQ point. */
    if (!mt) {
        *reason = QD_HP_NO_PATTERN;
        return 1;
    }
    if (!anchor && mt->pattern->name && strcmp(mt->pattern->name, "Attention") != 0 &&
        group_quantized)
        return 0;
    if (points && mt->pattern->name && !strcmp(mt->pattern->name, "FusedLinear") && c->mixed &&
        qd_plan_linear_stays_high(c->g, n, c->target))
        *reason = QD_HP_SMALL_LINEAR;
    else if (points && c->from_file)
        *reason = QD_HP_NOT_IN_PLAN;
    else
        *reason = QD_HP_POLICY;
    return 1;
}

static qd_status analyze_high_precision(qd_graph *g, const qd_match_list *m,
                                        const qd_qdq_plan *plan, const char *target, int mixed,
                                        int from_file, const unsigned char *excluded,
                                        qd_quantize_result *r, qd_error *err)
{
    hp_ctx c = {g, m, plan, target, mixed, from_file, excluded, NULL, NULL};
    qd_status st = QD_OK;
    c.match_of = qd_malloc((g->n_nodes + 1) * sizeof *c.match_of);
    c.quantized = qd_calloc(g->n_nodes + 1, 1);
    r->high = qd_calloc(g->n_nodes + 1, sizeof *r->high);
    if (!c.match_of || !c.quantized || !r->high) {
        st = oom(err);
        goto done;
    }
    for (size_t i = 0; i < g->n_nodes; i++)
        c.match_of[i] = -1;
    for (size_t k = 0; k < m->n; k++)
        for (int j = 0; j < m->items[k].n_nodes; j++) {
            size_t idx = node_index(g, m->items[k].nodes[j]);
            if (idx != (size_t)-1)
                c.match_of[idx] = (int)k;
        }
    for (size_t k = 0; k < plan->n; k++) {
        size_t idx = node_index(g, plan->points[k].consumer);
        if (idx != (size_t)-1)
            c.quantized[idx] = 1;
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        qd_hp_reason reason;
        if (!hp_reason_of(&c, i, &reason))
            continue;
        qd_node *n = g->nodes[i];
        qd_hp_node *h = &r->high[r->n_high];
        h->node = qd_strdup(n->name ? n->name : "");
        h->op = qd_strdup(n->op_type);
        h->reason = reason;
        h->module = c.match_of[i] >= 0 ? m->items[c.match_of[i]].pattern->name : NULL;
        r->n_high++;
        if (!h->node || !h->op) {
            st = oom(err);
            goto done;
        }
        r->high_by_reason[reason]++;
    }
done:
    qd_free(c.match_of);
    qd_free(c.quantized);
    return st;
}

/* ---- recording the points ------------------------------------------------------ */

static qd_status record_points(qd_graph *g, const qd_qdq_plan *plan, const int *given,
                               qd_quantize_result *r, qd_error *err)
{
    r->points = qd_calloc(plan->n + 1, sizeof *r->points);
    if (!r->points)
        return oom(err);
    for (size_t i = 0; i < plan->n; i++) {
        const qd_plan_point *p = &plan->points[i];
        qd_quant_point *q = &r->points[r->n_points++];
        const qd_value *v = p->consumer->inputs[p->input];
        q->node = qd_strdup(p->consumer->name ? p->consumer->name : "");
        q->op = qd_strdup(p->consumer->op_type);
        q->tensor = qd_strdup(v->name);
        if (!q->node || !q->op || !q->tensor)
            return oom(err);
        q->input = p->input;
        q->kind = p->kind;
        q->axis = p->kind == QD_PLAN_WEIGHT ? p->axis : -1;
        q->module = p->module;
        q->why = p->why;
        q->given = given ? given[i] : 0;
        q->channels = 1;
        if (p->kind == QD_PLAN_ACTIVATION) {
            q->amax = p->amax;
            q->scale = qd_observer_scale(p->amax);
            if (!strcmp(p->why, "residual input"))
                r->pairs_residual++;
            else
                r->pairs_activation++;
            continue;
        }
        r->pairs_weight++;
        /* Per-channel scales as insertion computes them: max |W[c]| / 127. */
        const qd_tensor *t = v->konst;
        if (!t || t->dtype != QD_DT_FLOAT)
            continue; /* insertion reports it */
        int64_t outer = 1, C = 1, inner = 1;
        for (int d = 0; d < t->rank; d++) {
            if (p->axis < 0 || d > p->axis)
                inner *= t->dims[d];
            else if (d < p->axis)
                outer *= t->dims[d];
            else
                C = t->dims[d];
        }
        q->channel_scale = qd_malloc((size_t)C * sizeof *q->channel_scale);
        if (!q->channel_scale)
            return oom(err);
        q->channels = (int)C;
        const float *w = t->data;
        for (int64_t ch = 0; ch < C; ch++) {
            float amax = 0.0f;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t k = 0; k < inner; k++) {
                    float a = fabsf(w[(o * C + ch) * inner + k]);
                    if (a > amax)
                        amax = a;
                }
            q->channel_scale[ch] = qd_observer_scale(amax);
            if (amax > q->amax)
                q->amax = amax;
        }
        q->scale = qd_observer_scale(q->amax);
    }
    return QD_OK;
}

qd_status qd_quantize_count_fusions(const qd_match_list *m, qd_fusion_count **out, size_t *n,
                                    qd_error *err)
{
    *n = 0;
    *out = qd_calloc(m->n_patterns + 1, sizeof **out);
    if (!*out)
        return oom(err);
    for (size_t k = 0; k < m->n_patterns; k++) {
        const char *name = m->patterns[k].name;
        int seen = 0;
        for (size_t q = 0; q < k && !seen; q++)
            seen = !strcmp(m->patterns[q].name, name);
        size_t count = seen ? 0 : qd_match_count(m, name);
        if (count)
            (*out)[(*n)++] = (qd_fusion_count){name, (int)count};
    }
    return QD_OK;
}

/* ---- the pipeline -------------------------------------------------------------------- */

/* The graph inputs' shapes (symbolic dims included): calibration binds the
 * batch dim to run the engine, and the QDQ model must keep it symbolic. */
typedef struct input_shapes {
    size_t n;
    int64_t (*dims)[QD_MAX_RANK];
    char *(*params)[QD_MAX_RANK];
} input_shapes;

static int input_shapes_save(const qd_graph *g, input_shapes *s)
{
    memset(s, 0, sizeof *s);
    s->dims = qd_calloc(g->n_inputs + 1, sizeof *s->dims);
    s->params = qd_calloc(g->n_inputs + 1, sizeof *s->params);
    if (!s->dims || !s->params)
        return -1;
    s->n = g->n_inputs;
    for (size_t i = 0; i < g->n_inputs; i++)
        for (int d = 0; d < QD_MAX_RANK; d++) {
            const qd_value *v = g->inputs[i];
            s->dims[i][d] = v->dims[d];
            if (v->dim_params[d] && !(s->params[i][d] = qd_strdup(v->dim_params[d])))
                return -1;
        }
    return 0;
}

static void input_shapes_free(input_shapes *s)
{
    for (size_t i = 0; s->params && i < s->n; i++)
        for (int d = 0; d < QD_MAX_RANK; d++)
            qd_free(s->params[i][d]);
    qd_free(s->dims);
    qd_free(s->params);
    memset(s, 0, sizeof *s);
}

/* Puts the saved input shapes back and infers the rest again from them. */
static qd_status input_shapes_restore(qd_graph *g, input_shapes *s, qd_error *err)
{
    int changed = 0;
    for (size_t i = 0; i < s->n && i < g->n_inputs; i++)
        for (int d = 0; d < QD_MAX_RANK; d++)
            changed |= g->inputs[i]->dims[d] != s->dims[i][d];
    if (!changed)
        return QD_OK;
    /* With every input dim fixed, binding "*" binds nothing and only forgets
     * what inference derived from the bound batch (folded shapes too). */
    qd_status st = qd_graph_bind_dim(g, "*", 1);
    for (size_t i = 0; st == QD_OK && i < s->n && i < g->n_inputs; i++)
        for (int d = 0; d < QD_MAX_RANK; d++) {
            qd_value *v = g->inputs[i];
            v->dims[d] = s->dims[i][d];
            qd_free(v->dim_params[d]);
            v->dim_params[d] = s->params[i][d];
            s->params[i][d] = NULL;
        }
    if (st == QD_OK)
        st = qd_graph_infer_shapes(g);
    return st == QD_OK ? QD_OK : graph_error(err, g, st);
}

/* max |x| of model input `in` over the calibration items, read as
 * qd_calibrate reads them (the first batches * batch_size items). */
static qd_status input_max(qd_graph *g, const qd_value *in, qd_dataset *ds,
                           const qd_calibration_options *o, float *amax, qd_error *err)
{
    if (in->rank != 4 || in->dims[1] < 1 || in->dims[2] < 1 || in->dims[3] < 1)
        return qd_error_set(err, QD_STATUS_SHAPE_ERROR,
                            "input '%s': channels, height and width must be fixed", in->name);
    int c = (int)in->dims[1], h = (int)in->dims[2], w = (int)in->dims[3];
    int64_t count = qd_dataset_count(ds), wanted = (int64_t)o->batches * o->batch_size;
    if (wanted <= 0 || wanted > count)
        wanted = count;
    const int64_t chunk = 64;
    size_t item = (size_t)c * (size_t)h * (size_t)w;
    float *buf = qd_malloc((size_t)chunk * item * sizeof *buf);
    if (!buf)
        return oom(err);
    qd_status st = QD_OK;
    float m = 0.0f;
    for (int64_t start = 0; start < wanted;) {
        int64_t want = wanted - start < chunk ? wanted - start : chunk, n_read = 0, next = start;
        if ((st = qd_dataset_read(ds, start, want, c, h, w, buf, NULL, &n_read, &next, err)) !=
                QD_OK ||
            n_read <= 0)
            break;
        for (size_t k = 0; k < (size_t)n_read * item; k++) {
            float a = fabsf(buf[k]);
            if (a > m && isfinite(a))
                m = a;
        }
        start = next;
    }
    qd_free(buf);
    if (st == QD_OK)
        *amax = m;
    return st;
}

static int known_target(const char *t)
{
    for (int i = 0; qd_fusion_targets[i]; i++)
        if (!strcmp(qd_fusion_targets[i], t) && strcmp(t, "uniform") != 0)
            return 1;
    return 0;
}

qd_status qd_quantize_graph(qd_graph *g, qd_dataset *calib, const qd_quantize_options *opt_in,
                            qd_quantize_result *r, qd_error *err)
{
    qd_quantize_options defaults;
    if (!opt_in) {
        qd_quantize_options_init(&defaults);
        opt_in = &defaults;
    }
    const qd_quantize_options *opt = opt_in;
    const char *target = opt->target ? opt->target : "tensorrt";
    if (!known_target(target))
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                            "unknown target '%s' (known: tensorrt, x86)", target);
    int uniform = opt->policy == QD_POLICY_UNIFORM;
    const char *ptarget = uniform ? "uniform" : target;
    qd_calibration_options copt = opt->calib;
    int method = opt->method >= 0 ? opt->method : uniform ? QD_OBSERVER_MAX : QD_OBSERVER_ENTROPY;
    if (method >= QD_OBSERVER_KIND_COUNT)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT, "unknown calibration method %d",
                            method);
    copt.method = (qd_observer_kind)method;
    r->target = ptarget;
    r->policy = opt->policy;
    r->method = method;

    qd_qdq_plan plan = {0}, sub = {0};
    int *given = NULL;
    unsigned char *excluded = NULL;
    qd_dataset *owned = NULL;
    input_shapes shapes = {0};
    qd_status st = prepare(g, &r->conversions, err);
    if (st != QD_OK)
        goto done;
    if ((st = qd_match_patterns(g, ptarget, &r->matches)) != QD_OK) {
        graph_error(err, g, st);
        goto done;
    }
    if ((st = qd_quantize_count_fusions(&r->matches, &r->fusions, &r->n_fusions, err)) != QD_OK)
        goto done;
    if (opt->plan_path) {
        if ((st = qd_quantize_plan_read(g, opt->plan_path, &plan, &given, err)) != QD_OK)
            goto done;
    } else if ((st = qd_plan_build(g, &r->matches, ptarget, &plan)) != QD_OK) {
        graph_error(err, g, st);
        goto done;
    }
    {
        /* Room for the points --include may add (two per node). */
        size_t room = plan.n + 2 * g->n_nodes + 1, keep = given ? plan.n : 0;
        int *gv = qd_realloc(given, room * sizeof *gv);
        if (!gv) {
            st = oom(err);
            goto done;
        }
        given = gv;
        memset(given + keep, 0, (room - keep) * sizeof *given);
    }
    if (!(excluded = qd_calloc(g->n_nodes + 1, 1))) {
        st = oom(err);
        goto done;
    }
    if ((st = apply_user_rules(g, &plan, given, opt->include, opt->exclude, excluded, err)) !=
        QD_OK)
        goto done;
    if (plan.n == 0) {
        st = qd_error_set(err, QD_STATUS_UNSUPPORTED,
                          "no operation worth quantizing for target '%s' (policy %s)", target,
                          qd_quantize_policy_name(opt->policy));
        goto done;
    }
    if ((st = analyze_high_precision(g, &r->matches, &plan, ptarget, !uniform,
                                     opt->plan_path != NULL, excluded, r, err)) != QD_OK)
        goto done;

    /* Calibrate the activation points the plan file did not fix. */
    sub.points = qd_calloc(plan.n + 1, sizeof *sub.points);
    if (!sub.points) {
        st = oom(err);
        goto done;
    }
    sub.cap = plan.n + 1;
    for (size_t i = 0; i < plan.n; i++)
        if (plan.points[i].kind == QD_PLAN_ACTIVATION && !given[i])
            sub.points[sub.n++] = plan.points[i];
    if (sub.n > 0) {
        if (!calib && opt->calib_path &&
            (st = qd_dataset_open(opt->calib_path, &opt->data, &owned, err)) != QD_OK)
            goto done;
        if (!calib)
            calib = owned;
        if (!calib) {
            st = qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                              "%zu activation points need calibration data", sub.n);
            goto done;
        }
        if (input_shapes_save(g, &shapes) != 0) {
            st = oom(err);
            goto done;
        }
        st = qd_calibrate(g, &sub, calib, &copt, err);
        qd_error keep = err ? *err : (qd_error){0};
        qd_status rst = input_shapes_restore(g, &shapes, err);
        if (st != QD_OK && err)
            *err = keep;
        if (st == QD_OK)
            st = rst;
        if (st != QD_OK)
            goto done;
        for (size_t k = 0; k < sub.n && st == QD_OK && opt->input_max &&
                           copt.method != QD_OBSERVER_MAX;
             k++) {
            qd_value *v = sub.points[k].consumer->inputs[sub.points[k].input];
            if (v->is_input)
                st = input_max(g, v, calib, &copt, &sub.points[k].amax, err);
        }
        if (st != QD_OK)
            goto done;
        int64_t wanted = (int64_t)copt.batches * copt.batch_size, count = qd_dataset_count(calib);
        r->calib_images = wanted > 0 && wanted < count ? wanted : count;
        for (size_t i = 0, k = 0; i < plan.n; i++)
            if (plan.points[i].kind == QD_PLAN_ACTIVATION && !given[i])
                plan.points[i].amax = sub.points[k++].amax;
    }
    /* Before insertion rewires the consumers: the plan names the float tensors. */
    if ((st = record_points(g, &plan, given, r, err)) != QD_OK)
        goto done;
    for (size_t i = 0; i < plan.n && st == QD_OK; i++) {
        qd_plan_point *p = &plan.points[i];
        st = p->kind == QD_PLAN_WEIGHT ? qd_qdq_insert_weight(g, p->consumer, p->input, p->axis)
                                       : qd_qdq_insert_activation(g, p->consumer, p->input, p->amax);
        if (st != QD_OK)
            graph_error(err, g, st);
    }
done:
    input_shapes_free(&shapes);
    qd_dataset_delete(owned);
    qd_free(sub.points);
    qd_free(excluded);
    qd_free(given);
    qd_plan_free(&plan);
    return st;
}

/* ---- reports ------------------------------------------------------------------------- */

qd_status qd_quantize_plan_write(const qd_quantize_result *r, FILE *f)
{
    qd_json j;
    qd_json_init(&j, f, 1);
    qd_json_begin_object(&j);
    qd_json_key(&j, "points");
    qd_json_begin_array(&j);
    for (size_t i = 0; i < r->n_points; i++) {
        const qd_quant_point *p = &r->points[i];
        qd_json_begin_object(&j);
        qd_json_key(&j, "node");
        qd_json_string(&j, p->node);
        qd_json_key(&j, "op");
        qd_json_string(&j, p->op);
        qd_json_key(&j, "input");
        qd_json_int(&j, p->input);
        qd_json_key(&j, "tensor");
        qd_json_string(&j, p->tensor);
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
            qd_json_double(&j, p->scale);
        }
        qd_json_end_object(&j);
    }
    qd_json_end_array(&j);
    qd_json_key(&j, "linear_kept_high_precision");
    qd_json_int(&j, r->high_by_reason[QD_HP_SMALL_LINEAR]);
    qd_json_end_object(&j);
    fputc('\n', f);
    return ferror(f) ? QD_STATUS_IO_ERROR : QD_OK;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* 1 when point i is the first point on its tensor (of its kind). */
static int first_on_tensor(const qd_quantize_result *r, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (r->points[k].kind == r->points[i].kind && !strcmp(r->points[k].tensor, r->points[i].tensor))
            return 0;
    return 1;
}

typedef struct scale_summary {
    size_t count;
    float min, median, max;
} scale_summary;

/* Activation tensors (kind 0) by their scale, or weight channels (kind 1). */
static int summarize(const qd_quantize_result *r, qd_plan_kind kind, scale_summary *s)
{
    memset(s, 0, sizeof *s);
    size_t n = 0;
    for (size_t i = 0; i < r->n_points; i++)
        if (r->points[i].kind == kind && first_on_tensor(r, i))
            n += kind == QD_PLAN_WEIGHT && r->points[i].channel_scale ? (size_t)r->points[i].channels
                                                                     : 1;
    if (!n)
        return 0;
    float *v = qd_malloc(n * sizeof *v);
    if (!v)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < r->n_points; i++) {
        const qd_quant_point *p = &r->points[i];
        if (p->kind != kind || !first_on_tensor(r, i))
            continue;
        if (kind == QD_PLAN_WEIGHT && p->channel_scale)
            for (int c = 0; c < p->channels; c++)
                v[k++] = p->channel_scale[c];
        else
            v[k++] = p->scale;
    }
    qsort(v, n, sizeof *v, cmp_float);
    s->count = n;
    s->min = v[0];
    s->max = v[n - 1];
    s->median = n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
    qd_free(v);
    return 0;
}

static size_t count_tensors(const qd_quantize_result *r, qd_plan_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_points; i++)
        n += r->points[i].kind == kind && first_on_tensor(r, i);
    return n;
}

void qd_quantize_report_text(const qd_quantize_result *r, FILE *out)
{
    if (qd_conversion_total(&r->conversions)) {
        qd_conversion_report(&r->conversions, out);
        fputc('\n', out);
    }
    qd_match_report(&r->matches, out);
    fprintf(out, "\nQDQ pairs: %d activation inputs, %d residual inputs, %d per-channel weights\n",
            r->pairs_activation, r->pairs_residual, r->pairs_weight);
    if (r->n_high) {
        fprintf(out, "\n| Kept in high precision | Nodes |\n|---|---:|\n");
        for (int k = 0; k < QD_HP_REASON_COUNT; k++)
            if (r->high_by_reason[k])
                fprintf(out, "| %s | %d |\n", qd_hp_reason_name((qd_hp_reason)k),
                        r->high_by_reason[k]);
    }
    scale_summary a, w;
    if (summarize(r, QD_PLAN_ACTIVATION, &a) == 0 && a.count)
        fprintf(out, "\nScales: %zu activation tensors, min %.4g / median %.4g / max %.4g\n",
                a.count, (double)a.min, (double)a.median, (double)a.max);
    if (summarize(r, QD_PLAN_WEIGHT, &w) == 0 && w.count)
        fprintf(out, "%s%zu weights (%zu channels), min %.4g / median %.4g / max %.4g\n",
                a.count ? "        " : "\nScales: ", count_tensors(r, QD_PLAN_WEIGHT), w.count,
                (double)w.min, (double)w.median, (double)w.max);
}

static void json_summary(qd_json *j, const scale_summary *s)
{
    qd_json_begin_object(j);
    qd_json_key(j, "count");
    qd_json_int(j, (int64_t)s->count);
    qd_json_key(j, "min");
    qd_json_double(j, s->count ? s->min : NAN);
    qd_json_key(j, "median");
    qd_json_double(j, s->count ? s->median : NAN);
    qd_json_key(j, "max");
    qd_json_double(j, s->count ? s->max : NAN);
    qd_json_end_object(j);
}

void qd_quantize_json_fusions(qd_json *j, const qd_fusion_count *f, size_t n)
{
    qd_json_begin_array(j);
    for (size_t i = 0; i < n; i++) {
        qd_json_begin_object(j);
        qd_json_key(j, "module");
        qd_json_string(j, f[i].module);
        qd_json_key(j, "count");
        qd_json_int(j, f[i].count);
        qd_json_end_object(j);
    }
    qd_json_end_array(j);
}

void qd_quantize_json_pairs(qd_json *j, const qd_quantize_result *r)
{
    qd_json_begin_object(j);
    qd_json_key(j, "activation");
    qd_json_int(j, r->pairs_activation);
    qd_json_key(j, "residual");
    qd_json_int(j, r->pairs_residual);
    qd_json_key(j, "weight");
    qd_json_int(j, r->pairs_weight);
    qd_json_end_object(j);
}

void qd_quantize_json_high_counts(qd_json *j, const qd_quantize_result *r)
{
    qd_json_begin_object(j);
    for (int k = 0; k < QD_HP_REASON_COUNT; k++)
        if (r->high_by_reason[k]) {
            qd_json_key(j, qd_hp_reason_name((qd_hp_reason)k));
            qd_json_int(j, r->high_by_reason[k]);
        }
    qd_json_end_object(j);
}

void qd_quantize_report_json(const qd_quantize_result *r, const char *model, const char *output,
                             FILE *out)
{
    qd_json j;
    qd_json_init(&j, out, 1);
    qd_json_begin_object(&j);
    qd_json_key(&j, "model");
    model ? qd_json_string(&j, model) : qd_json_null(&j);
    qd_json_key(&j, "output");
    output ? qd_json_string(&j, output) : qd_json_null(&j);
    qd_json_key(&j, "target");
    qd_json_string(&j, r->target);
    qd_json_key(&j, "policy");
    qd_json_string(&j, qd_quantize_policy_name(r->policy));
    qd_json_key(&j, "method");
    qd_json_string(&j, qd_observer_kind_name((qd_observer_kind)r->method));
    qd_json_key(&j, "calibration_images");
    qd_json_int(&j, r->calib_images);

    qd_json_key(&j, "conversions");
    qd_json_begin_object(&j);
    qd_json_key(&j, "FlattenGemmToConv");
    qd_json_int(&j, r->conversions.flatten_gemm_to_conv);
    qd_json_key(&j, "DecomposeMultiheadAttention");
    qd_json_int(&j, r->conversions.mha_in_proj_split);
    qd_json_end_object(&j);

    qd_json_key(&j, "fusions");
    qd_quantize_json_fusions(&j, r->fusions, r->n_fusions);
    qd_json_key(&j, "qdq_pairs");
    qd_quantize_json_pairs(&j, r);

    qd_json_key(&j, "high_precision");
    qd_json_begin_object(&j);
    qd_json_key(&j, "counts");
    qd_quantize_json_high_counts(&j, r);
    qd_json_key(&j, "nodes");
    qd_json_begin_array(&j);
    for (size_t i = 0; i < r->n_high; i++) {
        const qd_hp_node *h = &r->high[i];
        qd_json_begin_object(&j);
        qd_json_key(&j, "node");
        qd_json_string(&j, h->node);
        qd_json_key(&j, "op");
        qd_json_string(&j, h->op);
        qd_json_key(&j, "reason");
        qd_json_string(&j, qd_hp_reason_name(h->reason));
        qd_json_key(&j, "module");
        h->module ? qd_json_string(&j, h->module) : qd_json_null(&j);
        qd_json_end_object(&j);
    }
    qd_json_end_array(&j);
    qd_json_end_object(&j);

    /* One entry per quantized tensor (a tensor read by several quantized
     * consumers is listed once, with them all). */
    qd_json_key(&j, "tensors");
    qd_json_begin_array(&j);
    for (size_t i = 0; i < r->n_points; i++) {
        const qd_quant_point *p = &r->points[i];
        if (!first_on_tensor(r, i))
            continue;
        qd_json_begin_object(&j);
        qd_json_key(&j, "tensor");
        qd_json_string(&j, p->tensor);
        qd_json_key(&j, "kind");
        qd_json_string(&j, p->kind == QD_PLAN_WEIGHT ? "weight"
                           : !strcmp(p->why, "residual input") ? "residual"
                                                                : "activation");
        qd_json_key(&j, "consumers");
        qd_json_begin_array(&j);
        for (size_t k = i; k < r->n_points; k++)
            if (r->points[k].kind == p->kind && !strcmp(r->points[k].tensor, p->tensor))
                qd_json_string(&j, r->points[k].node);
        qd_json_end_array(&j);
        qd_json_key(&j, "module");
        qd_json_string(&j, p->module);
        qd_json_key(&j, "amax");
        qd_json_double(&j, p->amax);
        qd_json_key(&j, "scale");
        qd_json_double(&j, p->scale);
        if (p->kind == QD_PLAN_WEIGHT) {
            qd_json_key(&j, "axis");
            qd_json_int(&j, p->axis);
            qd_json_key(&j, "channels");
            qd_json_int(&j, p->channels);
            float lo = p->scale;
            for (int c = 0; p->channel_scale && c < p->channels; c++)
                lo = p->channel_scale[c] < lo ? p->channel_scale[c] : lo;
            qd_json_key(&j, "scale_min");
            qd_json_double(&j, lo);
        } else {
            qd_json_key(&j, "from_plan_file");
            qd_json_bool(&j, p->given);
        }
        qd_json_end_object(&j);
    }
    qd_json_end_array(&j);

    scale_summary a, w;
    qd_json_key(&j, "scales");
    qd_json_begin_object(&j);
    qd_json_key(&j, "activations");
    if (summarize(r, QD_PLAN_ACTIVATION, &a) == 0)
        json_summary(&j, &a);
    else
        qd_json_null(&j);
    qd_json_key(&j, "weight_channels");
    if (summarize(r, QD_PLAN_WEIGHT, &w) == 0)
        json_summary(&j, &w);
    else
        qd_json_null(&j);
    qd_json_end_object(&j);
    qd_json_end_object(&j);
    fputc('\n', out);
}
