/* ONNX loader and saver: models built in memory with protobuf-c, loaded,
 * saved, reloaded; corrupt input, external data, out-of-memory faults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir/graph.h"
#include "onnx/onnx_io.h"
#include "qdeploy.h"

/* ---- a tiny model: x[1,3,4,4] -> Conv(w, b) -> Relu -> y ---- */

typedef struct model_buf {
    uint8_t *data;
    size_t size;
} model_buf;

static float W[2 * 3 * 3 * 3];
static float B[2] = {0.5f, -0.25f};

enum { BIAS_RAW, BIAS_TYPED };

/* Packs a Conv+Relu model. external_location != NULL stores W externally. */
static model_buf make_model(int bias_form, const char *external_location, int64_t ext_offset)
{
    for (int i = 0; i < 54; i++)
        W[i] = (float)i * 0.01f - 0.2f;

    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = 17;
    Onnx__OperatorSetIdProto *opsets[] = {&opset};
    m.has_ir_version = 1;
    m.ir_version = 8;
    m.producer_name = "test";
    m.n_opset_import = 1;
    m.opset_import = opsets;
    m.graph = &g;
    g.name = "tiny";

    /* initializers */
    Onnx__TensorProto w = ONNX__TENSOR_PROTO__INIT, b = ONNX__TENSOR_PROTO__INIT;
    int64_t wdims[] = {2, 3, 3, 3}, bdims[] = {2};
    w.name = "w";
    w.n_dims = 4;
    w.dims = wdims;
    w.has_data_type = 1;
    w.data_type = 1;
    Onnx__StringStringEntryProto loc = ONNX__STRING_STRING_ENTRY_PROTO__INIT,
                                 off = ONNX__STRING_STRING_ENTRY_PROTO__INIT;
    Onnx__StringStringEntryProto *ext[] = {&loc, &off};
    char offbuf[32];
    if (external_location) {
        loc.key = "location";
        loc.value = (char *)external_location;
        off.key = "offset";
        snprintf(offbuf, sizeof offbuf, "%lld", (long long)ext_offset);
        off.value = offbuf;
        w.n_external_data = 2;
        w.external_data = ext;
        w.has_data_location = 1;
        w.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    } else {
        w.has_raw_data = 1;
        w.raw_data.data = (uint8_t *)W;
        w.raw_data.len = sizeof W;
    }
    b.name = "b";
    b.n_dims = 1;
    b.dims = bdims;
    b.has_data_type = 1;
    b.data_type = 1;
    if (bias_form == BIAS_RAW) {
        b.has_raw_data = 1;
        b.raw_data.data = (uint8_t *)B;
        b.raw_data.len = sizeof B;
    } else {
        b.n_float_data = 2;
        b.float_data = B;
    }
    Onnx__TensorProto *inits[] = {&w, &b};
    g.n_initializer = 2;
    g.initializer = inits;

    /* input and output */
    Onnx__TensorShapeProto__Dimension d0 = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT, d1 = d0,
                                      d2 = d0, d3 = d0;
    d0.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    d0.dim_param = "batch";
    d1.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d1.dim_value = 3;
    d2.value_case = d3.value_case = d1.value_case;
    d2.dim_value = d3.dim_value = 4;
    Onnx__TensorShapeProto__Dimension *dims[] = {&d0, &d1, &d2, &d3};
    Onnx__TensorShapeProto shape = ONNX__TENSOR_SHAPE_PROTO__INIT;
    shape.n_dim = 4;
    shape.dim = dims;
    Onnx__TypeProto__Tensor tt = ONNX__TYPE_PROTO__TENSOR__INIT;
    tt.has_elem_type = 1;
    tt.elem_type = 1;
    tt.shape = &shape;
    Onnx__TypeProto type = ONNX__TYPE_PROTO__INIT;
    type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type.tensor_type = &tt;
    Onnx__ValueInfoProto x = ONNX__VALUE_INFO_PROTO__INIT, y = ONNX__VALUE_INFO_PROTO__INIT;
    x.name = "x";
    x.type = &type;
    y.name = "y";
    Onnx__ValueInfoProto *ins[] = {&x}, *outs[] = {&y};
    g.n_input = 1;
    g.input = ins;
    g.n_output = 1;
    g.output = outs;

    /* nodes */
    Onnx__AttributeProto pads = ONNX__ATTRIBUTE_PROTO__INIT, ks = ONNX__ATTRIBUTE_PROTO__INIT;
    int64_t pad_v[] = {1, 1, 1, 1}, ks_v[] = {3, 3};
    pads.name = "pads";
    pads.has_type = 1;
    pads.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    pads.n_ints = 4;
    pads.ints = pad_v;
    ks.name = "kernel_shape";
    ks.has_type = 1;
    ks.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    ks.n_ints = 2;
    ks.ints = ks_v;
    Onnx__AttributeProto *conv_attrs[] = {&pads, &ks};
    Onnx__NodeProto conv = ONNX__NODE_PROTO__INIT, relu = ONNX__NODE_PROTO__INIT;
    char *conv_in[] = {"x", "w", "b"}, *conv_out[] = {"h"}, *relu_in[] = {"h"},
         *relu_out[] = {"y"};
    conv.name = "conv0";
    conv.op_type = "Conv";
    conv.n_input = 3;
    conv.input = conv_in;
    conv.n_output = 1;
    conv.output = conv_out;
    conv.n_attribute = 2;
    conv.attribute = conv_attrs;
    relu.name = "relu0";
    relu.op_type = "Relu";
    relu.n_input = 1;
    relu.input = relu_in;
    relu.n_output = 1;
    relu.output = relu_out;
    /* Relu first: the loader must accept nodes out of topological order. */
    Onnx__NodeProto *nodes[] = {&relu, &conv};
    g.n_node = 2;
    g.node = nodes;

    model_buf mb;
    mb.size = onnx__model_proto__get_packed_size(&m);
    mb.data = malloc(mb.size);
    onnx__model_proto__pack(&m, mb.data);
    return mb;
}

static char tmpdir[256];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qd_test_loader.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
}

static void check_tiny(qd_graph *g)
{
    assert_int_equal(g->n_nodes, 2);
    assert_int_equal(g->n_inputs, 1);
    assert_int_equal(g->n_outputs, 1);
    assert_int_equal(g->n_initializers, 2);
    assert_int_equal(g->opset, 17);
    qd_value *x = qd_graph_find_value(g, "x");
    assert_non_null(x);
    assert_int_equal(x->rank, 4);
    assert_int_equal(x->dims[0], -1);
    assert_string_equal(x->dim_params[0], "batch");
    assert_int_equal(x->dims[1], 3);
    qd_value *w = qd_graph_find_value(g, "w");
    assert_non_null(w->konst);
    assert_int_equal(w->konst->nbytes, sizeof W);
    assert_memory_equal(w->konst->data, W, sizeof W);
    qd_value *b = qd_graph_find_value(g, "b");
    assert_memory_equal(b->konst->data, B, sizeof B);
    qd_value *h = qd_graph_find_value(g, "h");
    assert_non_null(h->producer);
    assert_string_equal(h->producer->name, "conv0");
    assert_int_equal(h->n_uses, 1);
    assert_string_equal(h->uses[0].node->name, "relu0");
    const qd_attr *pads = qd_node_attr(h->producer, "pads");
    assert_non_null(pads);
    assert_int_equal(pads->type, QD_ATTR_INTS);
    assert_int_equal(pads->n, 4);
}

static void test_load_buffer(void **state)
{
    (void)state;
    for (int form = BIAS_RAW; form <= BIAS_TYPED; form++) {
        model_buf mb = make_model(form, NULL, 0);
        qd_graph *g = NULL;
        assert_int_equal(qd_graph_load_buffer(mb.data, mb.size, "tiny", NULL, &g), QD_OK);
        check_tiny(g);
        /* Sorting puts conv0 before relu0. */
        assert_int_equal(qd_graph_toposort(g), QD_OK);
        assert_string_equal(g->nodes[0]->name, "conv0");
        qd_graph_delete(g);
        free(mb.data);
    }
}

static void test_save_and_reload(void **state)
{
    (void)state;
    model_buf mb = make_model(BIAS_TYPED, NULL, 0);
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/in.onnx", tmpdir);
    snprintf(out, sizeof out, "%s/out.onnx", tmpdir);
    write_file(in, mb.data, mb.size);
    free(mb.data);
    qd_graph *g = NULL;
    assert_int_equal(qd_graph_load(in, &g), QD_OK);
    /* Never overwrite the input. */
    assert_int_equal(qd_graph_save(g, in), QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(qd_graph_error(g), "input"));
    assert_int_equal(qd_graph_save(g, out), QD_OK);
    qd_graph_delete(g);
    assert_int_equal(qd_graph_load(out, &g), QD_OK);
    check_tiny(g);
    qd_graph_delete(g);
}

static void test_save_atomic_on_error(void **state)
{
    (void)state;
    model_buf mb = make_model(BIAS_RAW, NULL, 0);
    qd_graph *g = NULL;
    assert_int_equal(qd_graph_load_buffer(mb.data, mb.size, "tiny", NULL, &g), QD_OK);
    free(mb.data);
    char bad[512];
    snprintf(bad, sizeof bad, "%s/no/such/dir/out.onnx", tmpdir);
    assert_int_equal(qd_graph_save(g, bad), QD_STATUS_IO_ERROR);
    assert_non_null(strstr(qd_graph_error(g), "out.onnx"));
    /* A directory as the output path is an error, and leaves no temp file. */
    assert_int_equal(qd_graph_save(g, tmpdir), QD_STATUS_IO_ERROR);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", tmpdir);
    assert_int_not_equal(system(cmd), 0);
    qd_graph_delete(g);
}

static void test_corrupt_input(void **state)
{
    (void)state;
    model_buf mb = make_model(BIAS_RAW, NULL, 0);
    qd_graph *g = NULL;
    /* Every truncation is an error, never a crash. */
    for (size_t cut = 0; cut < mb.size; cut += 7) {
        qd_status st = qd_graph_load_buffer(mb.data, cut, "cut.onnx", NULL, &g);
        if (st == QD_OK) { /* a prefix can be a valid but different message */
            qd_graph_delete(g);
            continue;
        }
        assert_non_null(strstr(qd_graph_error(g), "cut.onnx"));
        qd_graph_delete(g);
    }
    /* Random bytes. */
    uint8_t noise[4096];
    srand(7);
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (uint8_t)rand();
    assert_int_not_equal(qd_graph_load_buffer(noise, sizeof noise, "noise", NULL, &g), QD_OK);
    qd_graph_delete(g);
    /* Empty. */
    assert_int_equal(qd_graph_load_buffer(noise, 0, "empty", NULL, &g), QD_STATUS_INVALID_MODEL);
    assert_non_null(strstr(qd_graph_error(g), "empty"));
    qd_graph_delete(g);
    free(mb.data);
}

static void test_missing_and_directory(void **state)
{
    (void)state;
    qd_graph *g = NULL;
    char p[512];
    snprintf(p, sizeof p, "%s/does-not-exist.onnx", tmpdir);
    assert_int_equal(qd_graph_load(p, &g), QD_STATUS_IO_ERROR);
    assert_non_null(strstr(qd_graph_error(g), "does-not-exist.onnx"));
    qd_graph_delete(g);
    assert_int_equal(qd_graph_load(tmpdir, &g), QD_STATUS_IO_ERROR);
    assert_non_null(strstr(qd_graph_error(g), "directory"));
    qd_graph_delete(g);
}

static void test_external_data(void **state)
{
    (void)state;
    char path[512], bin[512];
    /* Offset 3: misaligned, so the loader must copy rather than point. */
    const int64_t offset = 3;
    uint8_t blob[3 + sizeof W];
    memset(blob, 0xee, 3);
    memcpy(blob + 3, W, sizeof W);
    model_buf mb = make_model(BIAS_RAW, "weights.bin", offset);
    snprintf(path, sizeof path, "%s/ext.onnx", tmpdir);
    snprintf(bin, sizeof bin, "%s/weights.bin", tmpdir);
    write_file(path, mb.data, mb.size);
    free(mb.data);
    qd_graph *g = NULL;
    /* Missing data file: an error naming it. */
    unlink(bin);
    assert_int_equal(qd_graph_load(path, &g), QD_STATUS_IO_ERROR);
    assert_non_null(strstr(qd_graph_error(g), "weights.bin"));
    qd_graph_delete(g);
    write_file(bin, blob, sizeof blob);
    assert_int_equal(qd_graph_load(path, &g), QD_OK);
    check_tiny(g);
    qd_graph_delete(g);
    /* Aligned offset 0: points into the mapping. */
    mb = make_model(BIAS_RAW, "weights0.bin", 0);
    write_file(path, mb.data, mb.size);
    free(mb.data);
    snprintf(bin, sizeof bin, "%s/weights0.bin", tmpdir);
    write_file(bin, W, sizeof W);
    assert_int_equal(qd_graph_load(path, &g), QD_OK);
    check_tiny(g);
    assert_int_equal(qd_graph_find_value(g, "w")->konst->owns_data, 0);
    qd_graph_delete(g);
    /* Data past the end of the file. */
    mb = make_model(BIAS_RAW, "weights0.bin", 100);
    write_file(path, mb.data, mb.size);
    free(mb.data);
    assert_int_equal(qd_graph_load(path, &g), QD_STATUS_INVALID_MODEL);
    assert_non_null(strstr(qd_graph_error(g), "'w'"));
    qd_graph_delete(g);
    /* Paths escaping the model's folder are refused. */
    const char *escapes[] = {"../weights.bin", "/etc/passwd", "sub/../../x.bin"};
    for (int i = 0; i < 3; i++) {
        mb = make_model(BIAS_RAW, escapes[i], 0);
        write_file(path, mb.data, mb.size);
        free(mb.data);
        assert_int_not_equal(qd_graph_load(path, &g), QD_OK);
        qd_graph_delete(g);
    }
    char outside[512];
    snprintf(outside, sizeof outside, "%s/../qd_outside_%d.bin", tmpdir, (int)getpid());
    write_file(outside, W, sizeof W);
    mb = make_model(BIAS_RAW, strrchr(outside, '/') - 2, 0); /* "../qd_outside_N.bin" */
    write_file(path, mb.data, mb.size);
    free(mb.data);
    assert_int_equal(qd_graph_load(path, &g), QD_STATUS_INVALID_MODEL);
    assert_non_null(strstr(qd_graph_error(g), "escapes"));
    qd_graph_delete(g);
    unlink(outside);
}

/* Out-of-memory faults: fail the n-th allocation for every n until loading
 * succeeds; each failure must be a clean error (ASan/valgrind find leaks). */
static long alloc_budget = -1;
static void *fail_malloc(size_t n) { return alloc_budget-- == 0 ? NULL : malloc(n); }
static void *fail_realloc(void *p, size_t n) { return alloc_budget-- == 0 ? NULL : realloc(p, n); }

static void test_out_of_memory(void **state)
{
    (void)state;
    model_buf mb = make_model(BIAS_TYPED, NULL, 0);
    qd_allocator a = {fail_malloc, fail_realloc, free};
    int succeeded = 0;
    for (long n = 0; n < 5000 && !succeeded; n++) {
        qd_set_allocator(&a);
        alloc_budget = n;
        qd_graph *g = NULL;
        qd_status st = qd_graph_load_buffer(mb.data, mb.size, "oom", NULL, &g);
        if (st == QD_OK)
            st = qd_graph_infer_shapes(g);
        qd_set_allocator(NULL);
        if (st == QD_OK)
            succeeded = 1;
        else if (!(st == QD_STATUS_OUT_OF_MEMORY || g == NULL ||
                   strstr(qd_graph_error(g), "memory") != NULL))
            { fprintf(stderr, "allocation %ld: status %d: %s\n", n, (int)st, qd_graph_error(g)); fail(); }
        else
            assert_true(st == QD_STATUS_OUT_OF_MEMORY || g == NULL ||
                        strstr(qd_graph_error(g), "memory") != NULL);
        qd_graph_delete(g);
    }
    assert_true(succeeded);
    free(mb.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_buffer),
        cmocka_unit_test(test_save_and_reload),
        cmocka_unit_test(test_save_atomic_on_error),
        cmocka_unit_test(test_corrupt_input),
        cmocka_unit_test(test_missing_and_directory),
        cmocka_unit_test(test_external_data),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
