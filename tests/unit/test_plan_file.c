/* Plan files (qd_quantize_plan_read / qd_quantize_plan_write, the format of
 * qdeploy quantize --plan / --dump-plan): a good file read point by point
 * (node names, inputs, kinds, axes, amax or scale as given), bad files
 * (malformed JSON, unknown nodes, wrong kinds, ...) failing with a message
 * naming the file and the entry, and a plan written after quantizing read
 * back into the same QDQ graph without calibration data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "ir/graph.h"
#include "quant/observer.h"
#include "quant/quantize.h"

static char g_dir[64];

static float frand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (float)((*seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static qd_value *weight(qd_graph *g, const char *name, int rank, const int64_t *dims,
                        unsigned seed)
{
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, rank, dims);
    assert_non_null(t);
    for (int64_t i = 0; i < qd_numel(rank, dims); i++)
        ((float *)t->data)[i] = 0.5f * frand(&seed);
    qd_value *v = qd_graph_add_initializer(g, name, t);
    assert_non_null(v);
    return v;
}

/* x[1,3,8,8] -> conv1 (3x3 pad 1) -> relu1 -> conv2 (3x3 pad 1) -> add(conv2, relu1)
 * -> relu2 -> y: a residual block. */
static qd_graph *build(void)
{
    qd_graph *g = qd_graph_new();
    assert_non_null(g);
    g->opset = 17;
    g->opsets = qd_calloc(1, sizeof *g->opsets);
    g->opsets[0].domain = qd_strdup("");
    g->opsets[0].version = 17;
    g->n_opsets = 1;
    g->ir_version = 8;
    qd_value *x = qd_graph_new_value(g, "x", NULL);
    qd_value_set_shape(x, QD_DT_FLOAT, 4, (int64_t[]){1, 3, 8, 8});
    assert_int_equal(qd_graph_add_input(g, x), QD_OK);
    qd_value *c1 = qd_graph_new_value(g, "c1", NULL), *r1 = qd_graph_new_value(g, "r1", NULL);
    qd_value *c2 = qd_graph_new_value(g, "c2", NULL), *s = qd_graph_new_value(g, "s", NULL);
    qd_value *y = qd_graph_new_value(g, "y", NULL);
    qd_value *in1[2] = {x, weight(g, "w1", 4, (int64_t[]){4, 3, 3, 3}, 1)};
    qd_node *n = qd_graph_add_node(g, "Conv", "", "conv1", in1, 2, &c1, 1);
    qd_node_set_attr_ints(n, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    qd_graph_add_node(g, "Relu", "", "relu1", &c1, 1, &r1, 1);
    qd_value *in2[2] = {r1, weight(g, "w2", 4, (int64_t[]){4, 4, 3, 3}, 2)};
    n = qd_graph_add_node(g, "Conv", "", "conv2", in2, 2, &c2, 1);
    qd_node_set_attr_ints(n, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    qd_value *in3[2] = {c2, r1};
    qd_graph_add_node(g, "Add", "", "add", in3, 2, &s, 1);
    qd_graph_add_node(g, "Relu", "", "relu2", &s, 1, &y, 1);
    assert_int_equal(qd_graph_add_output(g, y), QD_OK);
    assert_int_equal(qd_quantize_prepare(g, NULL), QD_OK);
    return g;
}

static const char *write_file(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_good_file(void **state)
{
    (void)state;
    qd_graph *g = build();
    const char *path = write_file(
        "good.json",
        "{\"points\": [\n"
        "  {\"node\": \"conv1\", \"input\": 0, \"kind\": \"activation\", \"amax\": 2.5,\n"
        "   \"op\": \"Conv\", \"tensor\": \"x\", \"module\": \"FusedConvBNReLU\"},\n"
        "  {\"node\": \"conv1\", \"input\": 1, \"kind\": \"weight\", \"axis\": 0},\n"
        "  {\"node\": \"conv2\", \"input\": 0, \"kind\": \"activation\", \"scale\": 0.013},\n"
        "  {\"node\": \"conv2\", \"input\": 1, \"kind\": \"weight\"},\n"
        "  {\"node\": \"add\", \"input\": 1, \"kind\": \"activation\", \"why\": \"residual input\",\n"
        "   \"extra\": [1, 2, 3]}\n"
        "], \"linear_kept_high_precision\": 0}\n");
    qd_qdq_plan plan = {0};
    int *given = NULL;
    qd_error err = {0};
    assert_int_equal(qd_quantize_plan_read(g, path, &plan, &given, &err), QD_OK);
    assert_int_equal(plan.n, 5);
    assert_string_equal(plan.points[0].consumer->name, "conv1");
    assert_int_equal(plan.points[0].kind, QD_PLAN_ACTIVATION);
    assert_true(plan.points[0].amax == 2.5f);
    assert_int_equal(given[0], 1);
    assert_string_equal(plan.points[0].module, "FusedConvBNReLU");
    assert_int_equal(plan.points[1].kind, QD_PLAN_WEIGHT);
    assert_int_equal(plan.points[1].axis, 0);
    assert_int_equal(given[1], 0);
    /* a scale alone: the amax whose scale is exactly that float */
    assert_true(qd_observer_scale(plan.points[2].amax) == 0.013f);
    assert_int_equal(given[2], 1);
    assert_int_equal(plan.points[3].axis, 0); /* the Conv's output-channel axis by default */
    assert_string_equal(plan.points[4].consumer->name, "add");
    assert_int_equal(plan.points[4].input, 1);
    assert_string_equal(plan.points[4].why, "residual input");
    assert_int_equal(given[4], 0); /* neither amax nor scale: calibration fills it */
    assert_string_equal(plan.points[4].module, "plan file");
    qd_plan_free(&plan);
    qd_free(given);
    qd_graph_delete(g);
}

/* Each bad file fails with INVALID_ARGUMENT (or IO_ERROR) and a message
 * holding the file name and `want`. */
static void expect_bad(qd_graph *g, const char *name, const char *text, const char *want)
{
    const char *path = text ? write_file(name, text) : name;
    char saved[128];
    snprintf(saved, sizeof saved, "%s", path);
    qd_qdq_plan plan = {0};
    int *given = (int *)1;
    qd_error err = {0};
    qd_status st = qd_quantize_plan_read(g, saved, &plan, &given, &err);
    if (st == QD_OK || !strstr(err.message, want) || !strstr(err.message, saved))
        fail_msg("%s: status %d, message '%s' (want '%s' and the file name)", name, st,
                 err.message, want);
    assert_int_equal(plan.n, 0);
    assert_null(plan.points);
    assert_null(given);
}

static void test_bad_files(void **state)
{
    (void)state;
    qd_graph *g = build();
    expect_bad(g, "trunc.json", "{\"points\": [{\"node\": \"conv1\", \"input\": 0,", "not valid JSON");
    expect_bad(g, "syntax.json", "{\"points\": [\n  {\"node\": conv1}]}", ":2:");
    expect_bad(g, "empty.json", "", "not valid JSON");
    expect_bad(g, "trailing.json", "{\"points\": []} x", "text after the document");
    expect_bad(g, "array.json", "[1, 2]", "\"points\" array");
    expect_bad(g, "nopoints.json", "{\"point\": []}", "\"points\" array");
    expect_bad(g, "unknown.json",
               "{\"points\": [{\"node\": \"conv1\", \"input\": 0, \"kind\": \"activation\"},\n"
               " {\"node\": \"conv9\", \"input\": 0, \"kind\": \"activation\"}]}",
               "points[1]: no node named 'conv9'");
    expect_bad(g, "noname.json", "{\"points\": [{\"input\": 0, \"kind\": \"weight\"}]}",
               "points[0]: no \"node\"");
    expect_bad(g, "kind.json", "{\"points\": [{\"node\": \"conv1\", \"input\": 0, \"kind\": \"bias\"}]}",
               "\"kind\" must be");
    expect_bad(g, "input.json", "{\"points\": [{\"node\": \"conv1\", \"input\": 5, \"kind\": \"activation\"}]}",
               "has no input 5");
    expect_bad(g, "input_str.json",
               "{\"points\": [{\"node\": \"conv1\", \"input\": \"0\", \"kind\": \"activation\"}]}",
               "\"input\" must be an integer");
    expect_bad(g, "op.json",
               "{\"points\": [{\"node\": \"conv1\", \"op\": \"Gemm\", \"input\": 0, \"kind\": \"activation\"}]}",
               "is a Conv, the plan says Gemm");
    expect_bad(g, "tensor.json",
               "{\"points\": [{\"node\": \"conv2\", \"tensor\": \"x\", \"input\": 0, \"kind\": \"activation\"}]}",
               "is tensor 'r1', the plan says 'x'");
    expect_bad(g, "notweight.json",
               "{\"points\": [{\"node\": \"conv2\", \"input\": 0, \"kind\": \"weight\"}]}",
               "not a constant weight");
    expect_bad(g, "axis.json",
               "{\"points\": [{\"node\": \"conv2\", \"input\": 1, \"kind\": \"weight\", \"axis\": 4}]}",
               "axis 4 is out of range");
    expect_bad(g, "dup.json",
               "{\"points\": [{\"node\": \"conv1\", \"input\": 0, \"kind\": \"activation\"},"
               " {\"node\": \"conv1\", \"input\": 0, \"kind\": \"activation\"}]}",
               "listed twice");
    expect_bad(g, "disagree.json",
               "{\"points\": [{\"node\": \"conv1\", \"input\": 0, \"kind\": \"activation\", "
               "\"amax\": 1.27, \"scale\": 0.5}]}",
               "disagree");
    expect_bad(g, "negative.json",
               "{\"points\": [{\"node\": \"conv1\", \"input\": 0, \"kind\": \"activation\", \"amax\": -1}]}",
               "must be finite");
    expect_bad(g, "amaxstr.json",
               "{\"points\": [{\"node\": \"conv1\", \"input\": 0, \"kind\": \"activation\", \"amax\": \"1\"}]}",
               "must be numbers");
    expect_bad(g, "/nonexistent/plan.json", NULL, "cannot open");
    qd_graph_delete(g);
}

/* Quantize with a plan whose activations all carry amax (no calibration
 * data), write the plan back, read it into a fresh graph: same points. */
static void test_round_trip(void **state)
{
    (void)state;
    const char *path = write_file(
        "full.json",
        "{\"points\": [\n"
        "  {\"node\": \"conv1\", \"input\": 0, \"kind\": \"activation\", \"amax\": 1.75},\n"
        "  {\"node\": \"conv1\", \"input\": 1, \"kind\": \"weight\"},\n"
        "  {\"node\": \"conv2\", \"input\": 0, \"kind\": \"activation\", \"scale\": 0.02},\n"
        "  {\"node\": \"conv2\", \"input\": 1, \"kind\": \"weight\", \"axis\": 0},\n"
        "  {\"node\": \"add\", \"input\": 1, \"kind\": \"activation\", \"amax\": 2.54,\n"
        "   \"why\": \"residual input\"}]}\n");
    char full[128];
    snprintf(full, sizeof full, "%s", path);
    qd_graph *g = build();
    qd_quantize_options opt;
    qd_quantize_options_init(&opt);
    opt.plan_path = full;
    qd_quantize_result r = {0};
    qd_error err = {0};
    assert_int_equal(qd_quantize_graph(g, NULL, &opt, &r, &err), QD_OK);
    assert_int_equal(r.n_points, 5);
    assert_int_equal(r.pairs_activation, 2);
    assert_int_equal(r.pairs_residual, 1);
    assert_int_equal(r.pairs_weight, 2);
    assert_int_equal(r.calib_images, 0);
    assert_true(r.points[2].scale == 0.02f);
    /* the QDQ graph carries the given scale exactly */
    const qd_value *sv = qd_graph_find_value(g, "r1_scale");
    assert_non_null(sv);
    assert_non_null(sv->konst);
    assert_true(((const float *)sv->konst->data)[0] == 0.02f);

    char back[128];
    snprintf(back, sizeof back, "%s/back.json", g_dir);
    FILE *f = fopen(back, "w");
    assert_non_null(f);
    assert_int_equal(qd_quantize_plan_write(&r, f), QD_OK);
    fclose(f);

    qd_graph *g2 = build();
    qd_qdq_plan plan = {0};
    int *given = NULL;
    assert_int_equal(qd_quantize_plan_read(g2, back, &plan, &given, &err), QD_OK);
    assert_int_equal(plan.n, r.n_points);
    for (size_t i = 0; i < plan.n; i++) {
        assert_string_equal(plan.points[i].consumer->name, r.points[i].node);
        assert_int_equal(plan.points[i].input, r.points[i].input);
        assert_int_equal(plan.points[i].kind, r.points[i].kind);
        if (plan.points[i].kind == QD_PLAN_ACTIVATION) {
            assert_int_equal(given[i], 1);
            assert_true(plan.points[i].amax == r.points[i].amax);
        } else {
            assert_int_equal(plan.points[i].axis, r.points[i].axis);
        }
    }
    assert_string_equal(plan.points[4].why, "residual input");
    qd_plan_free(&plan);
    qd_free(given);
    qd_graph_delete(g2);

    /* A plan point without amax and no calibration data: a clear error. */
    qd_quantize_result_free(&r);
    qd_graph *g3 = build();
    opt.plan_path = write_file("partial.json",
                               "{\"points\": [{\"node\": \"conv1\", \"input\": 0, \"kind\": "
                               "\"activation\"}]}");
    memset(&r, 0, sizeof r);
    assert_int_equal(qd_quantize_graph(g3, NULL, &opt, &r, &err), QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "need calibration data"));
    qd_quantize_result_free(&r);
    qd_graph_delete(g3);
    qd_quantize_result_free(&r);
    qd_graph_delete(g);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/qd_test_plan_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
