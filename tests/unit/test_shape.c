/* Shape and dtype inference, symbolic dims, and folding of shape
 * subgraphs, on graphs built by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/alloc.h"
#include "ir/graph.h"
#include "ir/shape.h"

/* ---- building graphs ---- */

static qd_graph *new_graph(int64_t opset)
{
    qd_graph *g = qd_graph_new();
    assert_non_null(g);
    g->opset = opset;
    return g;
}

/* A graph input; dims < 0 take the symbol from syms (NULL: unknown). */
static qd_value *input_sym(qd_graph *g, const char *name, qd_dtype dt, int rank,
                           const int64_t *dims, const char *const *syms)
{
    qd_value *v = qd_graph_new_value(g, name, NULL);
    assert_non_null(v);
    qd_value_set_shape(v, dt, rank, dims);
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0 && syms && syms[i])
            v->dim_params[i] = qd_strdup(syms[i]);
    assert_int_equal(qd_graph_add_input(g, v), QD_OK);
    return v;
}

static qd_value *input(qd_graph *g, const char *name, qd_dtype dt, int rank, const int64_t *dims)
{
    return input_sym(g, name, dt, rank, dims, NULL);
}

/* A constant int64 initializer of rank 1 (rank 0 when scalar is set). */
static qd_value *const_i64(qd_graph *g, const char *name, const int64_t *vals, int count,
                           int scalar)
{
    qd_value *v = qd_graph_new_value(g, name, NULL);
    assert_non_null(v);
    int64_t dims[1] = {count};
    qd_tensor *t = qd_tensor_new(QD_DT_INT64, scalar ? 0 : 1, dims);
    assert_non_null(t);
    for (int i = 0; i < count; i++)
        qd_tensor_set_i64(t, i, vals[i]);
    qd_value_set_const(v, t);
    v->is_initializer = 1;
    return v;
}

static qd_value *weight(qd_graph *g, const char *name, int rank, const int64_t *dims)
{
    qd_value *v = qd_graph_new_value(g, name, NULL);
    assert_non_null(v);
    qd_value_set_const(v, qd_tensor_new(QD_DT_FLOAT, rank, dims));
    v->is_initializer = 1;
    return v;
}

/* Adds a node with fresh outputs named "<name>_out<i>"; returns it. */
static qd_node *node(qd_graph *g, const char *op, const char *name, qd_value *const *ins, int n_in,
                     int n_out)
{
    qd_value *outs[8];
    char buf[128];
    for (int i = 0; i < n_out; i++) {
        snprintf(buf, sizeof buf, "%s_out%d", name, i);
        outs[i] = qd_graph_new_value(g, buf, NULL);
        assert_non_null(outs[i]);
    }
    qd_node *n = qd_graph_add_node(g, op, "", name, ins, n_in, outs, n_out);
    assert_non_null(n);
    return n;
}

static qd_value *out0(const qd_node *n) { return n->outputs[0]; }

static void infer_ok(qd_graph *g)
{
    qd_status st = qd_graph_infer_shapes(g);
    if (st != QD_OK)
        fail_msg("inference failed: %s", qd_graph_error(g));
}

static void infer_fails(qd_graph *g, qd_status want, const char *needle)
{
    qd_status st = qd_graph_infer_shapes(g);
    if (st != want)
        fail_msg("status %d, want %d (%s)", st, want, qd_graph_error(g));
    if (needle && !strstr(qd_graph_error(g), needle))
        fail_msg("message '%s' lacks '%s'", qd_graph_error(g), needle);
}

/* Checks v's shape as a string ("batchx192", "scalar", "?"). */
static void assert_shape(const qd_value *v, const char *want)
{
    char buf[256];
    qd_value_shape_str(v, buf, sizeof buf);
    if (strcmp(buf, want) != 0)
        fail_msg("'%s' has shape %s, want %s", v->name, buf, want);
}

/* ---- convolution and linear ---- */

static void test_conv(void **state)
{
    (void)state;
    qd_graph *g = new_graph(17);
    const char *syms[] = {"batch"};
    qd_value *x = input_sym(g, "x", QD_DT_FLOAT, 4, (int64_t[]){-1, 3, 32, 32}, syms);
    qd_value *w = weight(g, "w", 4, (int64_t[]){16, 3, 3, 3});
    qd_value *b = weight(g, "b", 1, (int64_t[]){16});

    qd_node *c1 = node(g, "Conv", "c1", (qd_value *[]){x, w, b}, 3, 1);
    qd_node_set_attr_ints(c1, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    qd_node_set_attr_ints(c1, "strides", (int64_t[]){2, 2}, 2);

    qd_node *c2 = node(g, "Conv", "c2", (qd_value *[]){x, w}, 2, 1);
    qd_node_set_attr_ints(c2, "dilations", (int64_t[]){2, 2}, 2);

    qd_node *c3 = node(g, "Conv", "c3", (qd_value *[]){x, w}, 2, 1);
    qd_node_set_attr_string(c3, "auto_pad", "SAME_UPPER");
    qd_node_set_attr_ints(c3, "strides", (int64_t[]){3, 3}, 2);

    /* depthwise: group = channels */
    qd_value *dw = weight(g, "dw", 4, (int64_t[]){16, 1, 3, 3});
    qd_node *c4 = node(g, "Conv", "c4", (qd_value *[]){out0(c1), dw}, 2, 1);
    qd_node_set_attr_int(c4, "group", 16);
    qd_node_set_attr_ints(c4, "kernel_shape", (int64_t[]){3, 3}, 2);

    /* 1x1 conv on unknown spatial dims keeps their symbols */
    const char *syms2[] = {"n", NULL, "h", "w"};
    qd_value *y = input_sym(g, "y", QD_DT_FLOAT, 4, (int64_t[]){-1, 3, -1, -1}, syms2);
    qd_value *pw = weight(g, "pw", 4, (int64_t[]){8, 3, 1, 1});
    qd_node *c5 = node(g, "Conv", "c5", (qd_value *[]){y, pw}, 2, 1);

    infer_ok(g);
    assert_shape(out0(c1), "batchx16x16x16");
    assert_int_equal(out0(c1)->dtype, QD_DT_FLOAT);
    assert_shape(out0(c2), "batchx16x28x28");
    assert_shape(out0(c3), "batchx16x11x11");
    assert_shape(out0(c4), "batchx16x14x14");
    assert_shape(out0(c5), "nx8xhxw");
    qd_graph_delete(g);
}

static void test_conv_channel_mismatch(void **state)
{
    (void)state;
    qd_graph *g = new_graph(17);
    qd_value *x = input(g, "x", QD_DT_FLOAT, 4, (int64_t[]){1, 4, 8, 8});
    qd_value *w = weight(g, "w", 4, (int64_t[]){8, 3, 3, 3});
    node(g, "Conv", "conv1", (qd_value *[]){x, w}, 2, 1);
    infer_fails(g, QD_STATUS_SHAPE_ERROR,
                "node 'conv1' (Conv): input channels 4 do not match weight's 3 x group 1");
    qd_graph_delete(g);
}

static void test_conv_transpose(void **state)
{
    (void)state;
    qd_graph *g = new_graph(17);
    qd_value *x = input(g, "x", QD_DT_FLOAT, 4, (int64_t[]){1, 8, 7, 7});
    qd_value *w = weight(g, "w", 4, (int64_t[]){8, 4, 3, 3});
    qd_node *ct = node(g, "ConvTranspose", "ct", (qd_value *[]){x, w}, 2, 1);
    qd_node_set_attr_ints(ct, "strides", (int64_t[]){2, 2}, 2);
    qd_node_set_attr_ints(ct, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    qd_node_set_attr_ints(ct, "output_padding", (int64_t[]){1, 1}, 2);
    infer_ok(g);
    assert_shape(out0(ct), "1x4x14x14");
    qd_graph_delete(g);
}

static void test_gemm_matmul(void **state)
{
    (void)state;
    qd_graph *g = new_graph(17);
    const char *syms[] = {"batch"};
    qd_value *a = input_sym(g, "a", QD_DT_FLOAT, 2, (int64_t[]){-1, 8}, syms);
    qd_value *b = weight(g, "b", 2, (int64_t[]){10, 8});
    qd_value *c = weight(g, "c", 1, (int64_t[]){10});
    qd_node *gemm = node(g, "Gemm", "fc", (qd_value *[]){a, b, c}, 3, 1);
    qd_node_set_attr_int(gemm, "transB", 1);

    qd_value *m1 = input(g, "m1", QD_DT_FLOAT, 4, (int64_t[]){2, 1, 4, 5});
    qd_value *m2 = input(g, "m2", QD_DT_FLOAT, 3, (int64_t[]){3, 5, 6});
    qd_node *mm = node(g, "MatMul", "mm", (qd_value *[]){m1, m2}, 2, 1);

    qd_value *v = input(g, "v", QD_DT_FLOAT, 1, (int64_t[]){5});
    qd_node *mv = node(g, "MatMul", "mv", (qd_value *[]){v, m2}, 2, 1);
    const char *s3[] = {"batch"};
    qd_value *t = input_sym(g, "t", QD_DT_FLOAT, 3, (int64_t[]){-1, 7, 5}, s3);
    qd_node *tv = node(g, "MatMul", "tv", (qd_value *[]){t, v}, 2, 1);

    infer_ok(g);
    assert_shape(out0(gemm), "batchx10");
    assert_shape(out0(mm), "2x3x4x6");
    assert_shape(out0(mv), "3x6");
    assert_shape(out0(tv), "batchx7");
    qd_graph_delete(g);

    /* inner dims must agree */
    g = new_graph(17);
    m1 = input(g, "m1", QD_DT_FLOAT, 2, (int64_t[]){4, 5});
    m2 = input(g, "m2", QD_DT_FLOAT, 2, (int64_t[]){6, 3});
    node(g, "MatMul", "bad_mm", (qd_value *[]){m1, m2}, 2, 1);
    infer_fails(g, QD_STATUS_SHAPE_ERROR, "node 'bad_mm'");
    qd_graph_delete(g);
}

/* ---- elementwise ---- */

static void test_broadcast(void **state)
{
    (void)state;
    qd_graph *g = new_graph(17);
    const char *syms[] = {"batch"};
    qd_value *x = input_sym(g, "x", QD_DT_FLOAT, 3, (int64_t[]){-1, 3, 1}, syms);
    qd_value *y = input(g, "y", QD_DT_FLOAT, 1, (int64_t[]){4});
    qd_node *add = node(g, "Add", "add", (qd_value *[]){x, y}, 2, 1);
    qd_node *eq = node(g, "Equal", "eq", (qd_value *[]){x, y}, 2, 1);
    qd_node *relu = node(g, "Relu", "relu", (qd_value *[]){out0(add)}, 1, 1);
    infer_ok(g);
    assert_shape(out0(add), "batchx3x4");
    assert_shape(out0(relu), "batchx3x4");
    assert_int_equal(out0(eq)->dtype, QD_DT_BOOL);
    qd_graph_delete(g);

    g = new_graph(17);
    x = input(g, "x", QD_DT_FLOAT, 2, (int64_t[]){2, 3});
    y = input(g, "y", QD_DT_FLOAT, 1, (int64_t[]){4});
    node(g, "Mul", "mul", (qd_value *[]){x, y}, 2, 1);
    infer_fails(g, QD_STATUS_SHAPE_ERROR, "node 'mul' (Mul): shapes 2x3 and 4 do not broadcast");
    qd_graph_delete(g);
}

/* ---- layout ---- */

static void test_reshape_flatten_transpose(void **state)
{
    (void)state;
    qd_graph *g = new_graph(17);
    const char *syms[] = {"batch"};
    qd_value *x = input_sym(g, "x", QD_DT_FLOAT, 4, (int64_t[]){-1, 3, 8, 8}, syms);
    qd_value *s1 = const_i64(g, "s1", (int64_t[]){0, -1}, 2, 0);
    qd_node *r1 = node(g, "Reshape", "r1", (qd_value *[]){x, s1}, 2, 1);
    qd_value *s2 = const_i64(g, "s2", (int64_t[]){-1, 4, 8}, 3, 0);
    qd_node *r2 = node(g, "Reshape", "r2", (qd_value *[]){x, s2}, 2, 1);
    qd_value *s3 = const_i64(g, "s3", (int64_t[]){0, 3, 64}, 3, 0);
    qd_node *r3 = node(g, "Reshape", "r3", (qd_value *[]){x, s3}, 2, 1);

    qd_node *f1 = node(g, "Flatten", "f1", (qd_value *[]){x}, 1, 1);
    qd_node *f2 = node(g, "Flatten", "f2", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_int(f2, "axis", -1);
    qd_node *f0 = node(g, "Flatten", "f0", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_int(f0, "axis", 0);

    qd_node *t1 = node(g, "Transpose", "t1", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_ints(t1, "perm", (int64_t[]){0, 2, 3, 1}, 4);
    qd_node *t2 = node(g, "Transpose", "t2", (qd_value *[]){x}, 1, 1);
    infer_ok(g);
    assert_shape(out0(r1), "batchx192");
    assert_shape(out0(r2), "?x4x8"); /* batch*3*8*8/32 has no name */
    assert_shape(out0(r3), "batchx3x64");
    assert_shape(out0(f1), "batchx192");
    assert_shape(out0(f2), "?x8");
    assert_shape(out0(f0), "1x?");
    assert_shape(out0(t1), "batchx8x8x3");
    assert_shape(out0(t2), "8x8x3xbatch");
    qd_graph_delete(g);

    g = new_graph(17);
    x = input(g, "x", QD_DT_FLOAT, 3, (int64_t[]){2, 3, 4});
    s1 = const_i64(g, "s1", (int64_t[]){-1, 4}, 2, 0);
    r1 = node(g, "Reshape", "r1", (qd_value *[]){x, s1}, 2, 1);
    s2 = const_i64(g, "s2", (int64_t[]){5, -1}, 2, 0);
    node(g, "Reshape", "bad", (qd_value *[]){x, s2}, 2, 1);
    infer_fails(g, QD_STATUS_SHAPE_ERROR, "node 'bad' (Reshape): cannot reshape 2x3x4");
    assert_shape(out0(r1), "6x4");
    qd_graph_delete(g);
}

static void test_concat_split(void **state)
{
    (void)state;
    qd_graph *g = new_graph(11);
    const char *syms[] = {"n"};
    qd_value *a = input_sym(g, "a", QD_DT_FLOAT, 2, (int64_t[]){-1, 3}, syms);
    qd_value *b = input(g, "b", QD_DT_FLOAT, 2, (int64_t[]){-1, 5});
    qd_node *cat = node(g, "Concat", "cat", (qd_value *[]){a, b}, 2, 1);
    qd_node_set_attr_int(cat, "axis", 1);
    /* opset 11: split sizes are an attribute */
    qd_node *sp = node(g, "Split", "sp", (qd_value *[]){out0(cat)}, 1, 2);
    qd_node_set_attr_int(sp, "axis", -1);
    qd_node_set_attr_ints(sp, "split", (int64_t[]){2, 6}, 2);
    /* no sizes: equal parts */
    qd_node *eq = node(g, "Split", "eq", (qd_value *[]){out0(cat)}, 1, 4);
    qd_node_set_attr_int(eq, "axis", 1);
    infer_ok(g);
    assert_shape(out0(cat), "nx8");
    assert_shape(sp->outputs[0], "nx2");
    assert_shape(sp->outputs[1], "nx6");
    assert_shape(eq->outputs[3], "nx2");
    qd_graph_delete(g);

    /* opset 13: split sizes are an input */
    g = new_graph(13);
    a = input(g, "a", QD_DT_FLOAT, 3, (int64_t[]){1, 6, 4});
    qd_value *sizes = const_i64(g, "sizes", (int64_t[]){1, 5}, 2, 0);
    sp = node(g, "Split", "sp", (qd_value *[]){a, sizes}, 2, 2);
    qd_node_set_attr_int(sp, "axis", 1);
    qd_value *bad_sizes = const_i64(g, "bad_sizes", (int64_t[]){1, 4}, 2, 0);
    qd_node *bad = node(g, "Split", "bad_split", (qd_value *[]){a, bad_sizes}, 2, 2);
    qd_node_set_attr_int(bad, "axis", 1);
    infer_fails(g, QD_STATUS_SHAPE_ERROR, "node 'bad_split'");
    assert_shape(sp->outputs[0], "1x1x4");
    assert_shape(sp->outputs[1], "1x5x4");
    qd_graph_delete(g);

    g = new_graph(17);
    a = input(g, "a", QD_DT_FLOAT, 2, (int64_t[]){2, 3});
    b = input(g, "b", QD_DT_FLOAT, 2, (int64_t[]){4, 5});
    cat = node(g, "Concat", "cat", (qd_value *[]){a, b}, 2, 1);
    qd_node_set_attr_int(cat, "axis", 1);
    infer_fails(g, QD_STATUS_SHAPE_ERROR, "node 'cat' (Concat)");
    qd_graph_delete(g);
}

static void test_slice(void **state)
{
    (void)state;
    qd_graph *g = new_graph(17);
    const char *syms[] = {"batch"};
    qd_value *x = input_sym(g, "x", QD_DT_FLOAT, 3, (int64_t[]){-1, 10, 20}, syms);
    qd_value *st = const_i64(g, "st", (int64_t[]){-3}, 1, 0);
    qd_value *en = const_i64(g, "en", (int64_t[]){INT64_MAX}, 1, 0);
    qd_value *ax = const_i64(g, "ax", (int64_t[]){1}, 1, 0);
    qd_node *s1 = node(g, "Slice", "s1", (qd_value *[]){x, st, en, ax}, 4, 1);

    /* reverse the last axis: x[..., ::-1] */
    qd_value *st2 = const_i64(g, "st2", (int64_t[]){-1}, 1, 0);
    qd_value *en2 = const_i64(g, "en2", (int64_t[]){INT64_MIN}, 1, 0);
    qd_value *ax2 = const_i64(g, "ax2", (int64_t[]){-1}, 1, 0);
    qd_value *step2 = const_i64(g, "step2", (int64_t[]){-1}, 1, 0);
    qd_node *s2 = node(g, "Slice", "s2", (qd_value *[]){x, st2, en2, ax2, step2}, 5, 1);

    /* x[:, :, 15:2:-2] and x[:, 1:, ::3] */
    qd_value *st3 = const_i64(g, "st3", (int64_t[]){15}, 1, 0);
    qd_value *en3 = const_i64(g, "en3", (int64_t[]){2}, 1, 0);
    qd_value *ax3 = const_i64(g, "ax3", (int64_t[]){2}, 1, 0);
    qd_value *step3 = const_i64(g, "step3", (int64_t[]){-2}, 1, 0);
    qd_node *s3 = node(g, "Slice", "s3", (qd_value *[]){x, st3, en3, ax3, step3}, 5, 1);
    qd_value *st4 = const_i64(g, "st4", (int64_t[]){1, 0}, 2, 0);
    qd_value *en4 = const_i64(g, "en4", (int64_t[]){INT64_MAX, INT64_MAX}, 2, 0);
    qd_value *ax4 = const_i64(g, "ax4", (int64_t[]){1, 2}, 2, 0);
    qd_value *step4 = const_i64(g, "step4", (int64_t[]){1, 3}, 2, 0);
    qd_node *s4 = node(g, "Slice", "s4", (qd_value *[]){x, st4, en4, ax4, step4}, 5, 1);
    /* axes omitted: the leading ones */
    qd_node *s5 = node(g, "Slice", "s5", (qd_value *[]){x, st, en}, 3, 1);
    infer_ok(g);
    assert_shape(out0(s1), "batchx3x20");
    assert_shape(out0(s2), "batchx10x20");
    assert_shape(out0(s3), "batchx10x7");
    assert_shape(out0(s4), "batchx9x7");
    assert_shape(out0(s5), "?x10x20");
    qd_graph_delete(g);

    /* the opset 1-9 form: starts/ends/axes as attributes */
    g = new_graph(10);
    x = input(g, "x", QD_DT_FLOAT, 2, (int64_t[]){4, 6});
    qd_node *old = node(g, "Slice", "old", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_ints(old, "starts", (int64_t[]){1}, 1);
    qd_node_set_attr_ints(old, "ends", (int64_t[]){-1}, 1);
    qd_node_set_attr_ints(old, "axes", (int64_t[]){1}, 1);
    infer_ok(g);
    assert_shape(out0(old), "4x4");
    qd_graph_delete(g);
}

static void test_gather(void **state)
{
    (void)state;
    qd_graph *g = new_graph(17);
    qd_value *data = input(g, "data", QD_DT_FLOAT, 2, (int64_t[]){5, 6});
    qd_value *i0 = const_i64(g, "i0", (int64_t[]){0}, 1, 1);
    qd_node *ga = node(g, "Gather", "ga", (qd_value *[]){data, i0}, 2, 1);
    qd_value *idx = const_i64(g, "idx", (int64_t[]){1, -1, 2}, 3, 0);
    qd_node *gb = node(g, "Gather", "gb", (qd_value *[]){data, idx}, 2, 1);
    qd_node_set_attr_int(gb, "axis", 1);
    /* Gather(Shape(data), 1) folds to the scalar 6 */
    qd_node *sh = node(g, "Shape", "sh", (qd_value *[]){data}, 1, 1);
    qd_value *i1 = const_i64(g, "i1", (int64_t[]){1}, 1, 1);
    qd_node *gc = node(g, "Gather", "gc", (qd_value *[]){out0(sh), i1}, 2, 1);
    infer_ok(g);
    assert_shape(out0(ga), "6");
    assert_shape(out0(gb), "5x3");
    assert_shape(out0(gc), "scalar");
    assert_int_equal(out0(gc)->dtype, QD_DT_INT64);
    assert_non_null(out0(gc)->konst);
    assert_int_equal(qd_tensor_get_i64(out0(gc)->konst, 0), 6);
    qd_graph_delete(g);

    g = new_graph(17);
    data = input(g, "data", QD_DT_FLOAT, 2, (int64_t[]){5, 6});
    qd_value *big = const_i64(g, "big", (int64_t[]){5}, 1, 1);
    node(g, "Gather", "oob", (qd_value *[]){data, big}, 2, 1);
    infer_fails(g, QD_STATUS_SHAPE_ERROR, "node 'oob' (Gather): index 5 is out of range");
    qd_graph_delete(g);
}

static void test_squeeze_unsqueeze(void **state)
{
    (void)state;
    /* opset 11: axes attribute */
    qd_graph *g = new_graph(11);
    const char *syms[] = {"b"};
    qd_value *x = input_sym(g, "x", QD_DT_FLOAT, 4, (int64_t[]){-1, 1, 5, 1}, syms);
    qd_node *sq = node(g, "Squeeze", "sq", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_ints(sq, "axes", (int64_t[]){1, -1}, 2);
    qd_node *un = node(g, "Unsqueeze", "un", (qd_value *[]){out0(sq)}, 1, 1);
    qd_node_set_attr_ints(un, "axes", (int64_t[]){0, -1}, 2);
    infer_ok(g);
    assert_shape(out0(sq), "bx5");
    assert_shape(out0(un), "1xbx5x1");
    qd_graph_delete(g);

    /* opset 13: axes input; no axes squeezes every 1 */
    g = new_graph(13);
    x = input(g, "x", QD_DT_FLOAT, 4, (int64_t[]){2, 1, 5, 1});
    qd_node *all = node(g, "Squeeze", "all", (qd_value *[]){x}, 1, 1);
    qd_value *axes = const_i64(g, "axes", (int64_t[]){3}, 1, 0);
    qd_node *one = node(g, "Squeeze", "one", (qd_value *[]){x, axes}, 2, 1);
    qd_value *uaxes = const_i64(g, "uaxes", (int64_t[]){1, 3}, 2, 0);
    qd_node *un2 = node(g, "Unsqueeze", "un2", (qd_value *[]){out0(all), uaxes}, 2, 1);
    qd_value *bad = const_i64(g, "bad", (int64_t[]){2}, 1, 0);
    node(g, "Squeeze", "bad_sq", (qd_value *[]){x, bad}, 2, 1);
    infer_fails(g, QD_STATUS_SHAPE_ERROR, "node 'bad_sq' (Squeeze): cannot squeeze axis 2");
    assert_shape(out0(all), "2x5");
    assert_shape(out0(one), "2x1x5");
    assert_shape(out0(un2), "2x1x5x1");
    qd_graph_delete(g);
}

/* ---- pooling, reductions, normalization ---- */

static void test_pools(void **state)
{
    (void)state;
    qd_graph *g = new_graph(17);
    qd_value *x = input(g, "x", QD_DT_FLOAT, 4, (int64_t[]){1, 64, 112, 112});
    qd_node *mp_floor = node(g, "MaxPool", "mp_floor", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_ints(mp_floor, "kernel_shape", (int64_t[]){3, 3}, 2);
    qd_node_set_attr_ints(mp_floor, "strides", (int64_t[]){2, 2}, 2);
    qd_node *mp_ceil = node(g, "MaxPool", "mp_ceil", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_ints(mp_ceil, "kernel_shape", (int64_t[]){3, 3}, 2);
    qd_node_set_attr_ints(mp_ceil, "strides", (int64_t[]){2, 2}, 2);
    qd_node_set_attr_int(mp_ceil, "ceil_mode", 1);
    /* ceil mode drops a window that would start in the padding, as torch does:
     * nn.MaxPool2d(2, 2, padding=1, ceil_mode=True) on 5x5 gives 3x3. */
    qd_value *y = input(g, "y", QD_DT_FLOAT, 4, (int64_t[]){1, 1, 5, 5});
    qd_node *mp_pad = node(g, "MaxPool", "mp_pad", (qd_value *[]){y}, 1, 2);
    qd_node_set_attr_ints(mp_pad, "kernel_shape", (int64_t[]){2, 2}, 2);
    qd_node_set_attr_ints(mp_pad, "strides", (int64_t[]){2, 2}, 2);
    qd_node_set_attr_ints(mp_pad, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    qd_node_set_attr_int(mp_pad, "ceil_mode", 1);
    qd_node *ap = node(g, "AveragePool", "ap", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_ints(ap, "kernel_shape", (int64_t[]){2, 2}, 2);
    qd_node_set_attr_ints(ap, "strides", (int64_t[]){2, 2}, 2);
    qd_node *gap = node(g, "GlobalAveragePool", "gap", (qd_value *[]){x}, 1, 1);
    infer_ok(g);
    assert_shape(out0(mp_floor), "1x64x55x55");
    assert_shape(out0(mp_ceil), "1x64x56x56");
    assert_shape(out0(mp_pad), "1x1x3x3");
    assert_int_equal(mp_pad->outputs[1]->dtype, QD_DT_INT64);
    assert_shape(out0(ap), "1x64x56x56");
    assert_shape(out0(gap), "1x64x1x1");
    qd_graph_delete(g);
}

static void test_reduce(void **state)
{
    (void)state;
    qd_graph *g = new_graph(13);
    const char *syms[] = {"batch"};
    qd_value *x = input_sym(g, "x", QD_DT_FLOAT, 3, (int64_t[]){-1, 3, 4}, syms);
    qd_node *keep = node(g, "ReduceMean", "keep", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_ints(keep, "axes", (int64_t[]){-2}, 1);
    qd_node *drop = node(g, "ReduceMean", "drop", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_ints(drop, "axes", (int64_t[]){1, 2}, 2);
    qd_node_set_attr_int(drop, "keepdims", 0);
    qd_node *all = node(g, "ReduceMax", "all", (qd_value *[]){x}, 1, 1);
    /* ReduceSum takes axes as an input from opset 13 */
    qd_value *axes = const_i64(g, "axes", (int64_t[]){2}, 1, 0);
    qd_node *sum = node(g, "ReduceSum", "sum", (qd_value *[]){x, axes}, 2, 1);
    qd_node_set_attr_int(sum, "keepdims", 0);
    qd_node *am = node(g, "ArgMax", "am", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_int(am, "axis", -1);
    qd_node_set_attr_int(am, "keepdims", 0);
    infer_ok(g);
    assert_shape(out0(keep), "batchx1x4");
    assert_shape(out0(drop), "batch");
    assert_shape(out0(all), "1x1x1");
    assert_shape(out0(sum), "batchx3");
    assert_shape(out0(am), "batchx3");
    assert_int_equal(out0(am)->dtype, QD_DT_INT64);
    qd_graph_delete(g);
}

static void test_layer_norm(void **state)
{
    (void)state;
    qd_graph *g = new_graph(17);
    const char *syms[] = {"batch"};
    qd_value *x = input_sym(g, "x", QD_DT_FLOAT, 3, (int64_t[]){-1, 197, 768}, syms);
    qd_value *scale = weight(g, "scale", 1, (int64_t[]){768});
    qd_value *bias = weight(g, "bias", 1, (int64_t[]){768});
    qd_node *ln = node(g, "LayerNormalization", "ln", (qd_value *[]){x, scale, bias}, 3, 3);
    qd_node_set_attr_int(ln, "axis", -1);
    qd_node *bn_in = node(g, "Transpose", "tr", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_ints(bn_in, "perm", (int64_t[]){0, 2, 1}, 3);
    infer_ok(g);
    assert_shape(ln->outputs[0], "batchx197x768");
    assert_shape(ln->outputs[1], "batchx197x1");
    assert_int_equal(ln->outputs[2]->dtype, QD_DT_FLOAT);
    qd_graph_delete(g);

    /* An op newer than the model's opset is refused (HardSwish: opset 14).
     * LayerNormalization is accepted at any opset: qdeploy's conversions
     * make it from the decomposed form. */
    g = new_graph(13);
    x = input(g, "x", QD_DT_FLOAT, 2, (int64_t[]){2, 4});
    node(g, "HardSwish", "hs13", (qd_value *[]){x}, 1, 1);
    infer_fails(g, QD_STATUS_UNSUPPORTED, "node 'hs13'");
    qd_graph_delete(g);
}

/* ---- folding and symbols ---- */

/* torch's x.view(x.size(0), -1):
 * Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])) */
static void test_fold_shape_subgraph(void **state)
{
    (void)state;
    qd_graph *g = new_graph(13);
    const char *syms[] = {"batch"};
    qd_value *x = input_sym(g, "x", QD_DT_FLOAT, 4, (int64_t[]){-1, 3, 8, 8}, syms);
    qd_node *sh = node(g, "Shape", "shape", (qd_value *[]){x}, 1, 1);
    qd_value *zero = const_i64(g, "zero", (int64_t[]){0}, 1, 1);
    qd_node *ga = node(g, "Gather", "gather", (qd_value *[]){out0(sh), zero}, 2, 1);
    qd_value *axes = const_i64(g, "axes", (int64_t[]){0}, 1, 0);
    qd_node *un = node(g, "Unsqueeze", "unsqueeze", (qd_value *[]){out0(ga), axes}, 2, 1);
    qd_value *minus1 = const_i64(g, "minus1", (int64_t[]){-1}, 1, 0);
    qd_node *cat = node(g, "Concat", "concat", (qd_value *[]){out0(un), minus1}, 2, 1);
    qd_node_set_attr_int(cat, "axis", 0);
    qd_node *rs = node(g, "Reshape", "reshape", (qd_value *[]){x, out0(cat)}, 2, 1);
    qd_value *w = weight(g, "w", 2, (int64_t[]){10, 192});
    qd_node *fc = node(g, "Gemm", "fc", (qd_value *[]){out0(rs), w}, 2, 1);
    qd_node_set_attr_int(fc, "transB", 1);

    infer_ok(g);
    assert_shape(out0(sh), "4");
    assert_null(out0(sh)->konst); /* the batch is not fixed yet */
    assert_shape(out0(cat), "2");
    assert_null(out0(cat)->konst);
    assert_shape(out0(rs), "batchx192");
    assert_shape(out0(fc), "batchx10");

    assert_int_equal(qd_graph_bind_dim(g, "batch", 2), QD_OK);
    assert_shape(x, "2x3x8x8");
    assert_int_equal(out0(rs)->rank, -1);
    infer_ok(g);
    assert_shape(out0(rs), "2x192");
    assert_shape(out0(fc), "2x10");
    qd_tensor *k = out0(cat)->konst;
    assert_non_null(k);
    assert_int_equal(k->dtype, QD_DT_INT64);
    assert_int_equal(qd_tensor_get_i64(k, 0), 2);
    assert_int_equal(qd_tensor_get_i64(k, 1), -1);
    assert_non_null(out0(sh)->konst);
    assert_int_equal(qd_tensor_get_i64(out0(sh)->konst, 3), 8);

    /* binding a name no input has is an error */
    assert_int_equal(qd_graph_bind_dim(g, "nope", 1), QD_STATUS_INVALID_ARGUMENT);
    qd_graph_delete(g);
}

static void test_fold_arithmetic(void **state)
{
    (void)state;
    qd_graph *g = new_graph(17);
    qd_value *a = const_i64(g, "a", (int64_t[]){-7, 7, 9}, 3, 0);
    qd_value *b = const_i64(g, "b", (int64_t[]){2}, 1, 1);
    qd_node *div = node(g, "Div", "div", (qd_value *[]){a, b}, 2, 1);
    qd_node *mul = node(g, "Mul", "mul", (qd_value *[]){a, b}, 2, 1);
    qd_node *less = node(g, "Less", "less", (qd_value *[]){a, b}, 2, 1);
    qd_node *where =
        node(g, "Where", "where", (qd_value *[]){out0(less), a, out0(mul)}, 3, 1);
    qd_node *cast = node(g, "Cast", "cast", (qd_value *[]){out0(div)}, 1, 1);
    qd_node_set_attr_int(cast, "to", QD_DT_FLOAT);
    qd_value *shape = const_i64(g, "shape", (int64_t[]){2, 3}, 2, 0);
    qd_node *cos2 = node(g, "ConstantOfShape", "cos2", (qd_value *[]){shape}, 1, 1);
    qd_tensor *one = qd_tensor_new(QD_DT_INT64, 1, (int64_t[]){1});
    qd_tensor_set_i64(one, 0, 1);
    qd_node_set_attr_tensor(cos2, "value", one);
    qd_value *r0 = const_i64(g, "r0", (int64_t[]){0}, 1, 1);
    qd_value *r1 = const_i64(g, "r1", (int64_t[]){10}, 1, 1);
    qd_value *r2 = const_i64(g, "r2", (int64_t[]){3}, 1, 1);
    qd_node *range = node(g, "Range", "range", (qd_value *[]){r0, r1, r2}, 3, 1);
    qd_node *cst = node(g, "Constant", "cst", NULL, 0, 1);
    qd_node_set_attr_ints(cst, "value_ints", (int64_t[]){4, 5}, 2);
    qd_node *prod = node(g, "ReduceProd", "prod", (qd_value *[]){out0(cst)}, 1, 1);
    qd_node_set_attr_int(prod, "keepdims", 0);
    infer_ok(g);

    qd_tensor *t = out0(div)->konst;
    assert_non_null(t);
    assert_int_equal(qd_tensor_get_i64(t, 0), -3); /* truncates toward zero */
    assert_int_equal(qd_tensor_get_i64(t, 2), 4);
    t = out0(where)->konst;
    assert_non_null(t);
    assert_int_equal(qd_tensor_get_i64(t, 0), -7);
    assert_int_equal(qd_tensor_get_i64(t, 1), 14);
    t = out0(cast)->konst;
    assert_non_null(t);
    assert_int_equal(t->dtype, QD_DT_FLOAT);
    assert_true(qd_tensor_get_f64(t, 0) == -3.0);
    t = out0(cos2)->konst;
    assert_shape(out0(cos2), "2x3");
    assert_non_null(t);
    assert_int_equal(qd_tensor_get_i64(t, 5), 1);
    assert_shape(out0(range), "4");
    assert_int_equal(qd_tensor_get_i64(out0(range)->konst, 3), 9);
    assert_shape(out0(prod), "scalar");
    assert_int_equal(qd_tensor_get_i64(out0(prod)->konst, 0), 20);
    qd_graph_delete(g);
}

/* Shapes known element by element fold while the batch is symbolic:
 * x.chunk(2, dim=1) slices at Shape(x)[1] / 2, and torch's expand(n, -1, -1)
 * goes through Where(Equal(shape, -1), 1, shape). */
static void test_partial_fold(void **state)
{
    (void)state;
    qd_graph *g = new_graph(17);
    const char *syms[] = {"batch"};
    qd_value *x = input_sym(g, "x", QD_DT_FLOAT, 4, (int64_t[]){-1, 116, 28, 28}, syms);
    qd_node *sh = node(g, "Shape", "shape", (qd_value *[]){x}, 1, 1);
    qd_value *one = const_i64(g, "one", (int64_t[]){1}, 1, 0);
    qd_node *ch = node(g, "Gather", "channels", (qd_value *[]){out0(sh), one}, 2, 1);
    qd_value *two = const_i64(g, "two", (int64_t[]){2}, 1, 0);
    qd_node *half = node(g, "Div", "half", (qd_value *[]){out0(ch), two}, 2, 1);
    qd_value *zero = const_i64(g, "zero", (int64_t[]){0}, 1, 0);
    qd_node *sl = node(g, "Slice", "chunk0", (qd_value *[]){x, zero, out0(half), one}, 4, 1);

    /* Expand(token[1,1,8], Where(Equal(s, -1), 1, s)) with s = [batch, -1, -1] */
    qd_value *token = weight(g, "token", 3, (int64_t[]){1, 1, 8});
    qd_value *i0 = const_i64(g, "i0", (int64_t[]){0}, 1, 1);
    qd_node *n0 = node(g, "Gather", "n0", (qd_value *[]){out0(sh), i0}, 2, 1);
    qd_node *un = node(g, "Unsqueeze", "un", (qd_value *[]){out0(n0), zero}, 2, 1);
    qd_value *m1 = const_i64(g, "m1", (int64_t[]){-1, -1}, 2, 0);
    qd_node *cat = node(g, "Concat", "cat", (qd_value *[]){out0(un), m1}, 2, 1);
    qd_node_set_attr_int(cat, "axis", 0);
    qd_value *minus = const_i64(g, "minus", (int64_t[]){-1}, 1, 1);
    qd_node *eq = node(g, "Equal", "eq", (qd_value *[]){out0(cat), minus}, 2, 1);
    qd_value *ones = const_i64(g, "ones", (int64_t[]){1, 1, 1}, 3, 0);
    qd_node *wh = node(g, "Where", "wh", (qd_value *[]){out0(eq), ones, out0(cat)}, 3, 1);
    qd_node *ex = node(g, "Expand", "ex", (qd_value *[]){token, out0(wh)}, 2, 1);
    infer_ok(g);
    assert_non_null(out0(ch)->konst);
    assert_non_null(out0(half)->konst);
    assert_int_equal(qd_tensor_get_i64(out0(half)->konst, 0), 58);
    assert_shape(out0(sl), "batchx58x28x28");
    assert_null(out0(cat)->konst);
    assert_shape(out0(ex), "batchx1x8");
    qd_graph_delete(g);
}

static void test_misc_ops(void **state)
{
    (void)state;
    qd_graph *g = new_graph(13);
    const char *syms[] = {"b"};
    qd_value *a = input_sym(g, "a", QD_DT_FLOAT, 3, (int64_t[]){-1, 4, 5}, syms);
    qd_value *b = input_sym(g, "b", QD_DT_FLOAT, 3, (int64_t[]){-1, 5, 6}, syms);
    qd_node *es = node(g, "Einsum", "es", (qd_value *[]){a, b}, 2, 1);
    qd_node_set_attr_string(es, "equation", "bij,bjk->bik");
    qd_node *es2 = node(g, "Einsum", "es2", (qd_value *[]){a}, 1, 1);
    qd_node_set_attr_string(es2, "equation", "...ij->...ji");

    qd_value *x = input(g, "x", QD_DT_FLOAT, 4, (int64_t[]){1, 8, 7, 9});
    qd_value *scales = qd_graph_new_value(g, "scales", NULL);
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, 1, (int64_t[]){4});
    float sv[] = {1, 1, 2, 1.5f};
    for (int i = 0; i < 4; i++)
        qd_tensor_set_f64(t, i, sv[i]);
    qd_value_set_const(scales, t);
    scales->is_initializer = 1;
    qd_node *rz = node(g, "Resize", "rz", (qd_value *[]){x, NULL, scales}, 3, 1);
    qd_value *pads = const_i64(g, "pads", (int64_t[]){0, 0, 1, 2, 0, 0, 3, 4}, 8, 0);
    qd_node *pad = node(g, "Pad", "pad", (qd_value *[]){x, pads}, 2, 1);
    qd_node *d2s = node(g, "DepthToSpace", "d2s", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_int(d2s, "blocksize", 2);
    qd_value *k = const_i64(g, "k", (int64_t[]){3}, 1, 0);
    qd_node *topk = node(g, "TopK", "topk", (qd_value *[]){x, k}, 2, 2);
    qd_value *reps = const_i64(g, "reps", (int64_t[]){2, 1, 1, 3}, 4, 0);
    qd_node *tile = node(g, "Tile", "tile", (qd_value *[]){x, reps}, 2, 1);
    qd_value *m7 = const_i64(g, "m7", (int64_t[]){-7, 7}, 2, 0);
    qd_value *m3 = const_i64(g, "m3", (int64_t[]){3}, 1, 1);
    qd_node *mod = node(g, "Mod", "mod", (qd_value *[]){m7, m3}, 2, 1);
    infer_ok(g);
    assert_shape(out0(es), "bx4x6");
    assert_shape(out0(es2), "bx5x4");
    assert_shape(out0(rz), "1x8x14x13");
    assert_shape(out0(pad), "1x8x11x15");
    assert_shape(out0(d2s), "1x2x14x18");
    assert_shape(topk->outputs[0], "1x8x7x3");
    assert_int_equal(topk->outputs[1]->dtype, QD_DT_INT64);
    assert_shape(out0(tile), "2x8x7x27");
    /* integer Mod takes the divisor's sign, like Python */
    assert_non_null(out0(mod)->konst);
    assert_int_equal(qd_tensor_get_i64(out0(mod)->konst, 0), 2);
    assert_int_equal(qd_tensor_get_i64(out0(mod)->konst, 1), 1);
    qd_graph_delete(g);
}

/* ---- errors ---- */

static void test_errors(void **state)
{
    (void)state;
    /* attribute of the wrong type */
    qd_graph *g = new_graph(17);
    qd_value *x = input(g, "x", QD_DT_FLOAT, 2, (int64_t[]){2, 3});
    qd_node *t = node(g, "Transpose", "tr", (qd_value *[]){x}, 1, 1);
    qd_node_set_attr_int(t, "perm", 1);
    infer_fails(g, QD_STATUS_INVALID_MODEL, "node 'tr' (Transpose): attribute 'perm'");
    qd_graph_delete(g);

    /* unknown op */
    g = new_graph(17);
    x = input(g, "x", QD_DT_FLOAT, 2, (int64_t[]){2, 3});
    qd_value *y = qd_graph_new_value(g, "y", NULL);
    qd_graph_add_node(g, "FusedGemm", "com.microsoft", "fg", &x, 1, &y, 1);
    infer_fails(g, QD_STATUS_UNSUPPORTED, "node 'fg': unknown op 'com.microsoft::FusedGemm'");
    qd_graph_delete(g);

    /* too few inputs */
    g = new_graph(17);
    x = input(g, "x", QD_DT_FLOAT, 4, (int64_t[]){1, 3, 8, 8});
    node(g, "Conv", "lonely", (qd_value *[]){x}, 1, 1);
    infer_fails(g, QD_STATUS_INVALID_MODEL, "node 'lonely' (Conv)");
    qd_graph_delete(g);

    /* negative dims in a ConstantOfShape shape */
    g = new_graph(17);
    qd_value *s = const_i64(g, "s", (int64_t[]){2, -3}, 2, 0);
    node(g, "ConstantOfShape", "neg", (qd_value *[]){s}, 1, 1);
    infer_fails(g, QD_STATUS_SHAPE_ERROR, "node 'neg'");
    qd_graph_delete(g);

    /* rank beyond QD_MAX_RANK */
    g = new_graph(17);
    x = input(g, "x", QD_DT_FLOAT, 8, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 2});
    qd_value *ax = const_i64(g, "ax", (int64_t[]){0}, 1, 0);
    node(g, "Unsqueeze", "deep", (qd_value *[]){x, ax}, 2, 1);
    infer_fails(g, QD_STATUS_UNSUPPORTED, "node 'deep'");
    qd_graph_delete(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_conv_channel_mismatch),
        cmocka_unit_test(test_conv_transpose),
        cmocka_unit_test(test_gemm_matmul),
        cmocka_unit_test(test_broadcast),
        cmocka_unit_test(test_reshape_flatten_transpose),
        cmocka_unit_test(test_concat_split),
        cmocka_unit_test(test_slice),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_squeeze_unsqueeze),
        cmocka_unit_test(test_pools),
        cmocka_unit_test(test_reduce),
        cmocka_unit_test(test_layer_norm),
        cmocka_unit_test(test_fold_shape_subgraph),
        cmocka_unit_test(test_fold_arithmetic),
        cmocka_unit_test(test_partial_fold),
        cmocka_unit_test(test_misc_ops),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
