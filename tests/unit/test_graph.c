/* The graph IR: building, use lists, rewriting, sorting, attributes,
 * verify, tensors and fp16/bf16 conversion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strmap.h"
#include "ir/graph.h"

static qd_value *input(qd_graph *g, const char *name)
{
    qd_value *v = qd_graph_new_value(g, name, NULL);
    int64_t dims[] = {1, 4};
    qd_value_set_shape(v, QD_DT_FLOAT, 2, dims);
    assert_int_equal(qd_graph_add_input(g, v), QD_OK);
    return v;
}

static void output(qd_graph *g, qd_value *v)
{
    assert_int_equal(qd_graph_add_output(g, v), QD_OK);
}

static qd_node *unary(qd_graph *g, const char *op, const char *name, qd_value *in, qd_value *out)
{
    return qd_graph_add_node(g, op, "", name, &in, 1, &out, 1);
}

static void test_build_and_uses(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_value *x = input(g, "x");
    qd_value *a = qd_graph_new_value(g, "a", NULL);
    qd_value *b = qd_graph_new_value(g, "b", NULL);
    qd_node *relu = unary(g, "Relu", "relu", x, a);
    qd_value *ab[] = {x, a};
    qd_node *add = qd_graph_add_node(g, "Add", "", "add", ab, 2, &b, 1);
    output(g, b);
    assert_int_equal(relu->op, QD_OP_RELU);
    assert_int_equal(add->op, QD_OP_ADD);
    assert_int_equal(x->n_uses, 2);
    assert_ptr_equal(a->producer, relu);
    assert_int_equal(a->uses[0].input, 1);
    /* Duplicate names are refused. */
    assert_null(qd_graph_new_value(g, "a", NULL));
    assert_non_null(strstr(qd_graph_error(g), "'a'"));
    /* Generated names are unique. */
    qd_value *t1 = qd_graph_new_value(g, NULL, "tmp");
    qd_value *t2 = qd_graph_new_value(g, NULL, "tmp");
    assert_string_not_equal(t1->name, t2->name);
    char t1_name[64];
    snprintf(t1_name, sizeof t1_name, "%s", t1->name);

    /* Bypass the relu: add reads x twice. */
    qd_graph_replace_uses(g, a, x);
    assert_int_equal(a->n_uses, 0);
    assert_int_equal(x->n_uses, 3);
    qd_graph_remove_node(g, relu);
    assert_int_equal(g->n_nodes, 1);
    assert_int_equal(x->n_uses, 2);
    qd_graph_prune_values(g);
    assert_null(qd_graph_find_value(g, "a"));
    assert_null(qd_graph_find_value(g, t1_name)); /* unused: pruned */
    assert_non_null(qd_graph_find_value(g, "b"));
    assert_int_equal(qd_graph_verify(g), QD_OK);
    qd_graph_delete(g);
}

static void test_toposort_and_cycle(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_value *x = input(g, "x");
    qd_value *a = qd_graph_new_value(g, "a", NULL);
    qd_value *b = qd_graph_new_value(g, "b", NULL);
    qd_value *c = qd_graph_new_value(g, "c", NULL);
    /* Added in reverse order. */
    unary(g, "Relu", "third", b, c);
    unary(g, "Relu", "second", a, b);
    unary(g, "Relu", "first", x, a);
    output(g, c);
    assert_int_equal(qd_graph_toposort(g), QD_OK);
    assert_string_equal(g->nodes[0]->name, "first");
    assert_string_equal(g->nodes[1]->name, "second");
    assert_string_equal(g->nodes[2]->name, "third");
    assert_int_equal(g->nodes[2]->id, 2);
    /* Close a cycle: first reads c. */
    qd_node_set_input(g->nodes[0], 0, c);
    assert_int_equal(qd_graph_verify(g), QD_STATUS_INVALID_MODEL);
    assert_non_null(strstr(qd_graph_error(g), "cycle"));
    qd_graph_delete(g);
}

static void test_verify_errors(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_value *x = input(g, "x");
    qd_value *nowhere = qd_graph_new_value(g, "nowhere", NULL);
    qd_value *y = qd_graph_new_value(g, "y", NULL);
    qd_value *in2[] = {x, nowhere};
    qd_graph_add_node(g, "Add", "", "add_dangling", in2, 2, &y, 1);
    output(g, y);
    assert_int_equal(qd_graph_verify(g), QD_STATUS_INVALID_MODEL);
    assert_non_null(strstr(qd_graph_error(g), "add_dangling"));
    assert_non_null(strstr(qd_graph_error(g), "nowhere"));
    /* Make 'nowhere' an int64 input: now a type mismatch. */
    nowhere->is_input = 1;
    nowhere->dtype = QD_DT_INT64;
    assert_int_equal(qd_graph_verify(g), QD_STATUS_INVALID_MODEL);
    assert_non_null(strstr(qd_graph_error(g), "int64"));
    nowhere->dtype = QD_DT_FLOAT;
    assert_int_equal(qd_graph_verify(g), QD_OK);
    /* Unknown ops are named. */
    qd_value *z = qd_graph_new_value(g, "z", NULL);
    unary(g, "FrobnicateV2", "mystery", y, z);
    assert_int_equal(qd_graph_verify(g), QD_STATUS_UNSUPPORTED);
    assert_non_null(strstr(qd_graph_error(g), "mystery"));
    assert_non_null(strstr(qd_graph_error(g), "FrobnicateV2"));
    qd_graph_delete(g);
}

static void test_attributes(void **state)
{
    (void)state;
    qd_graph *g = qd_graph_new();
    qd_value *x = input(g, "x");
    qd_value *y = qd_graph_new_value(g, "y", NULL);
    qd_node *n = unary(g, "Conv", "conv_bad", x, y);
    int64_t strides[] = {2, 2};
    assert_int_equal(qd_node_set_attr_ints(n, "strides", strides, 2), 0);
    assert_int_equal(qd_node_set_attr_float(n, "alpha", 0.5f), 0);
    assert_int_equal(qd_node_set_attr_string(n, "auto_pad", "SAME_UPPER"), 0);
    const int64_t *got;
    size_t count;
    assert_int_equal(qd_node_attr_ints(g, n, "strides", &got, &count), QD_OK);
    assert_int_equal(count, 2);
    assert_int_equal(got[1], 2);
    assert_int_equal(qd_node_attr_ints(g, n, "dilations", &got, &count), QD_OK);
    assert_null(got);
    int64_t i;
    assert_int_equal(qd_node_attr_int(g, n, "group", 1, &i), QD_OK);
    assert_int_equal(i, 1);
    /* Wrong type: an error naming node and attribute. */
    assert_int_equal(qd_node_attr_int(g, n, "alpha", 0, &i), QD_STATUS_INVALID_MODEL);
    assert_non_null(strstr(qd_graph_error(g), "conv_bad"));
    assert_non_null(strstr(qd_graph_error(g), "alpha"));
    /* Replacing keeps one attribute. */
    assert_int_equal(qd_node_set_attr_int(n, "alpha", 3), 0);
    assert_int_equal(n->n_attrs, 3);
    assert_int_equal(qd_node_attr_int(g, n, "alpha", 0, &i), QD_OK);
    assert_int_equal(i, 3);
    const char *s;
    assert_int_equal(qd_node_attr_string(g, n, "auto_pad", "NOTSET", &s), QD_OK);
    assert_string_equal(s, "SAME_UPPER");
    qd_graph_delete(g);
}

static void test_tensor_and_halfs(void **state)
{
    (void)state;
    int64_t dims[] = {2, 3};
    qd_tensor *t = qd_tensor_new(QD_DT_INT64, 2, dims);
    assert_int_equal(t->nbytes, 48);
    qd_tensor_set_i64(t, 5, -7);
    assert_int_equal(qd_tensor_get_i64(t, 5), -7);
    assert_true(qd_tensor_get_f64(t, 5) == -7.0);
    qd_tensor *c = qd_tensor_clone(t);
    assert_memory_equal(c->data, t->data, 48);
    qd_tensor_delete(c);
    qd_tensor_delete(t);
    /* Overflowing shapes are refused. */
    int64_t huge[] = {INT64_MAX / 2, 4};
    assert_null(qd_tensor_new(QD_DT_FLOAT, 2, huge));

    /* fp16: exact values, rounding to nearest even, overflow, subnormals. */
    assert_int_equal(qd_fp32_to_fp16(1.0f), 0x3c00);
    assert_int_equal(qd_fp32_to_fp16(-2.0f), 0xc000);
    assert_int_equal(qd_fp32_to_fp16(65504.0f), 0x7bff);
    assert_int_equal(qd_fp32_to_fp16(1e6f), 0x7c00);
    assert_int_equal(qd_fp32_to_fp16(1.0f + 1.0f / 2048), 0x3c00); /* tie -> even */
    assert_int_equal(qd_fp32_to_fp16(1.0f + 3.0f / 2048), 0x3c02); /* tie -> even */
    assert_int_equal(qd_fp32_to_fp16(5.9604645e-8f), 0x0001);
    for (uint32_t h = 0; h < 0x7c00; h++) /* every finite positive half round-trips */
        assert_int_equal(qd_fp32_to_fp16(qd_fp16_to_fp32((uint16_t)h)), h);
    assert_true(isnan(qd_fp16_to_fp32(0x7e00)));
    assert_true(qd_bf16_to_fp32(qd_fp32_to_bf16(3.0f)) == 3.0f);
    assert_int_equal(qd_fp32_to_bf16(1.0f + 1.0f / 256), 0x3f80); /* tie -> even */
}

static void test_strmap(void **state)
{
    (void)state;
    qd_strmap m = {0};
    char keys[500][16];
    for (int i = 0; i < 500; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        assert_int_equal(qd_strmap_put(&m, keys[i], (void *)(intptr_t)(i + 1)), 0);
    }
    assert_int_equal(m.count, 500);
    for (int i = 0; i < 500; i += 2)
        qd_strmap_remove(&m, keys[i]);
    for (int i = 0; i < 500; i++) {
        void *v = qd_strmap_get(&m, keys[i]);
        if (i % 2)
            assert_int_equal((intptr_t)v, i + 1);
        else
            assert_null(v);
    }
    qd_strmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_uses),  cmocka_unit_test(test_toposort_and_cycle),
        cmocka_unit_test(test_verify_errors),   cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_tensor_and_halfs), cmocka_unit_test(test_strmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
