/* Top-k counting (src/eval/topk.c): ranks with ties and NaN, hits at k = 1
 * and 5 against a brute-force sort, label errors; and qd_eval_topk running
 * a small model on the engine over a .npy dataset whose size is not a
 * multiple of the batch (the padded rows must not count). */
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
#include "data/dataset.h"
#include "data/npy.h"
#include "eval/topk.h"
#include "ir/graph.h"
#include "qdeploy.h"

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffffff;
}

/* Rank by a full stable descending sort (the definition in topk.h). */
static int64_t rank_by_sort(const float *s, int64_t classes, int64_t label)
{
    int64_t order[64];
    for (int64_t i = 0; i < classes; i++)
        order[i] = i;
    /* insertion sort: descending score, NaN last, ties by index */
    for (int64_t i = 1; i < classes; i++)
        for (int64_t j = i; j > 0; j--) {
            float a = s[order[j - 1]], b = s[order[j]];
            int swap = (isnan(a) && !isnan(b)) || (!isnan(a) && !isnan(b) && b > a);
            if (!swap)
                break;
            int64_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int64_t i = 0; i < classes; i++)
        if (order[i] == label)
            return i;
    return -1;
}

static void test_rank_simple(void **state)
{
    (void)state;
    const float s[5] = {0.1f, 3.0f, -2.0f, 3.0f, 1.0f};
    assert_int_equal(qd_topk_rank(s, 5, 1), 0); /* ties: the lower index first */
    assert_int_equal(qd_topk_rank(s, 5, 3), 1);
    assert_int_equal(qd_topk_rank(s, 5, 4), 2);
    assert_int_equal(qd_topk_rank(s, 5, 0), 3);
    assert_int_equal(qd_topk_rank(s, 5, 2), 4);
    const float n[3] = {NAN, 1.0f, NAN};
    assert_int_equal(qd_topk_rank(n, 3, 1), 0);
    assert_int_equal(qd_topk_rank(n, 3, 0), 1);
    assert_int_equal(qd_topk_rank(n, 3, 2), 2);
}

static void test_rank_random(void **state)
{
    (void)state;
    unsigned seed = 7;
    float s[37];
    for (int trial = 0; trial < 500; trial++) {
        int64_t classes = 1 + next_rand(&seed) % 37;
        for (int64_t c = 0; c < classes; c++) {
            unsigned r = next_rand(&seed);
            /* few distinct values, so ties are common; a NaN now and then */
            s[c] = r % 23 == 0 ? NAN : (float)(r % 7) - 3.0f;
        }
        for (int64_t label = 0; label < classes; label++)
            assert_int_equal(qd_topk_rank(s, classes, label), rank_by_sort(s, classes, label));
    }
}

static void test_add_counts(void **state)
{
    (void)state;
    unsigned seed = 3;
    enum { N = 200, C = 10 };
    float *logits = malloc(sizeof(float) * N * C);
    int64_t labels[N];
    int64_t want1 = 0, want5 = 0;
    for (int i = 0; i < N; i++) {
        for (int c = 0; c < C; c++)
            logits[i * C + c] = (float)(next_rand(&seed) % 1000) / 100.0f;
        labels[i] = next_rand(&seed) % C;
        int64_t r = rank_by_sort(logits + i * C, C, labels[i]);
        want1 += r < 1;
        want5 += r < 5;
    }
    qd_topk acc = {0};
    qd_error err = {0};
    /* in two calls: counts accumulate */
    assert_int_equal(qd_topk_add(&acc, logits, 120, C, labels, 0, &err), QD_OK);
    assert_int_equal(qd_topk_add(&acc, logits + 120 * C, N - 120, C, labels + 120, 120, &err),
                     QD_OK);
    assert_int_equal(acc.total, N);
    assert_int_equal(acc.top1, want1);
    assert_int_equal(acc.top5, want5);
    assert_true(acc.top1 <= acc.top5);
    assert_true(fabs(qd_topk_percent(acc.top1, acc.total) - 100.0 * (double)want1 / N) < 1e-12);
    assert_true(qd_topk_percent(0, 0) == 0.0);

    /* fewer than 5 classes: every item is a top-5 hit */
    qd_topk small = {0};
    assert_int_equal(qd_topk_add(&small, logits, 3, 3, (int64_t[]){0, 1, 2}, 0, &err), QD_OK);
    assert_int_equal(small.top5, 3);

    /* a label out of range: an error naming the item, nothing counted */
    qd_topk bad = {0};
    int64_t wrong[4] = {1, 2, 10, 3};
    assert_int_equal(qd_topk_add(&bad, logits, 4, C, wrong, 40, &err), QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "item 42"));
    assert_non_null(strstr(err.message, "label 10"));
    assert_int_equal(bad.total, 0);
    int64_t none[2] = {1, -1};
    assert_int_equal(qd_topk_add(&bad, logits, 2, C, none, 0, &err), QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "item 1 has no label"));
    free(logits);
}

/* ---- qd_eval_topk on the engine -------------------------------------------- */

/* x[3,4,2,2] -> GlobalAveragePool -> Flatten -> scores[3,4]: the score of
 * class c is the mean of channel c. */
static qd_graph *pool_model(void)
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
    qd_value_set_shape(x, QD_DT_FLOAT, 4, (int64_t[]){3, 4, 2, 2});
    assert_int_equal(qd_graph_add_input(g, x), QD_OK);
    qd_value *p = qd_graph_new_value(g, "pooled", NULL), *y = qd_graph_new_value(g, "scores", NULL);
    assert_non_null(qd_graph_add_node(g, "GlobalAveragePool", "", "gap", &x, 1, &p, 1));
    qd_node *fl = qd_graph_add_node(g, "Flatten", "", "flatten", &p, 1, &y, 1);
    assert_non_null(fl);
    qd_node_set_attr_int(fl, "axis", 1);
    assert_int_equal(qd_graph_add_output(g, y), QD_OK);
    assert_int_equal(qd_graph_infer_shapes(g), QD_OK);
    return g;
}

static void test_eval_engine(void **state)
{
    (void)state;
    enum { N = 10, C = 4, HW = 4 };
    char dir[] = "/tmp/qd_test_topk_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char data_path[256], labels_path[256];
    snprintf(data_path, sizeof data_path, "%s/x.npy", dir);
    snprintf(labels_path, sizeof labels_path, "%s/y.npy", dir);

    qd_tensor *x = qd_tensor_new(QD_DT_FLOAT, 4, (int64_t[]){N, C, 2, 2});
    qd_tensor *y = qd_tensor_new(QD_DT_INT64, 1, (int64_t[]){N});
    assert_non_null(x);
    assert_non_null(y);
    unsigned seed = 11;
    float *xd = x->data;
    int64_t *yd = y->data, want1 = 0, want5 = 0;
    for (int i = 0; i < N; i++) {
        float mean[C];
        for (int c = 0; c < C; c++) {
            mean[c] = 0.0f;
            for (int k = 0; k < HW; k++) {
                float v = (float)(next_rand(&seed) % 64) / 8.0f;
                xd[(i * C + c) * HW + k] = v;
                mean[c] += v;
            }
            mean[c] /= HW;
        }
        yd[i] = next_rand(&seed) % C;
        int64_t r = rank_by_sort(mean, C, yd[i]);
        want1 += r < 1;
        want5 += r < 5;
    }
    qd_error err = {0};
    assert_int_equal(qd_npy_write(data_path, x, &err), QD_OK);
    assert_int_equal(qd_npy_write(labels_path, y, &err), QD_OK);

    qd_dataset_options dopt;
    qd_dataset_options_init(&dopt);
    dopt.labels = labels_path;
    qd_dataset *ds = NULL;
    assert_int_equal(qd_dataset_open(data_path, &dopt, &ds, &err), QD_OK);

    qd_graph *g = pool_model();
    qd_engine *e = NULL;
    qd_engine_options eo = {.threads = 1, .reference = 1};
    assert_int_equal(qd_engine_create(g, &eo, &e), QD_OK);
    qd_topk acc;
    /* batch 3, 10 items: the last batch holds one real item and two repeats */
    assert_int_equal(qd_eval_topk(e, ds, NULL, &acc, &err), QD_OK);
    assert_int_equal(acc.total, N);
    assert_int_equal(acc.top1, want1);
    assert_int_equal(acc.top5, want5); /* 4 classes: all */
    assert_int_equal(acc.top5, N);

    /* --limit */
    qd_eval_options lim = {.limit = 4};
    assert_int_equal(qd_eval_topk(e, ds, &lim, &acc, &err), QD_OK);
    assert_int_equal(acc.total, 4);

    /* unlabelled data is an error */
    qd_dataset *nolab = NULL;
    qd_dataset_options_init(&dopt);
    assert_int_equal(qd_dataset_open(data_path, &dopt, &nolab, &err), QD_OK);
    assert_int_equal(qd_eval_topk(e, nolab, NULL, &acc, &err), QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "labels"));

    qd_dataset_delete(nolab);
    qd_engine_delete(e);
    qd_graph_delete(g);
    qd_dataset_delete(ds);
    qd_tensor_delete(x);
    qd_tensor_delete(y);
    unlink(data_path);
    unlink(labels_path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_simple),
        cmocka_unit_test(test_rank_random),
        cmocka_unit_test(test_add_counts),
        cmocka_unit_test(test_eval_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
