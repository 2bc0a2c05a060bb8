/* Building small graphs in unit tests (cmocka): a graph input, a one-output
 * node, a graph output; running them through the engine; and comparing an
 * INT8 run with its reference. Included by the tests that build graphs for
 * the engine. */
#ifndef QD_TEST_GRAPH_BUILD_H
#define QD_TEST_GRAPH_BUILD_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/graph.h"
#include "qdeploy.h"

/* A graph input named name, of dtype dt and shape dims. */
static inline qd_value *tg_input(qd_graph *g, const char *name, qd_dtype dt, int rank,
                                 const int64_t *dims)
{
    qd_value *v = qd_graph_new_value(g, name, name);
    qd_value_set_shape(v, dt, rank, dims);
    assert_int_equal(qd_graph_add_input(g, v), QD_OK);
    return v;
}

/* op(ins) with one output, named after op; returns the output. */
static inline qd_value *tg_node1(qd_graph *g, const char *op, qd_value **ins, int n_in)
{
    qd_value *y = qd_graph_new_value(g, NULL, op);
    qd_graph_add_node(g, op, "", NULL, ins, n_in, &y, 1);
    return y;
}

static inline void tg_output(qd_graph *g, qd_value *v)
{
    assert_int_equal(qd_graph_add_output(g, v), QD_OK);
}

/* An engine for g with opt; a failure fails the test with the engine's
 * message. */
static inline qd_engine *tg_engine(qd_graph *g, const qd_engine_options *opt)
{
    qd_engine *e = NULL;
    if (qd_engine_create(g, opt, &e) != QD_OK)
        fail_msg("engine: %s", qd_engine_error(e));
    return e;
}

/* Runs e (its inputs set) and returns a malloc'd copy of output 0's data;
 * *info describes it (dtype, shape, nbytes). */
static inline void *tg_run_output0(qd_engine *e, qd_tensor_info *info)
{
    assert_int_equal(qd_engine_run(e), QD_OK);
    assert_int_equal(qd_engine_output_info(e, 0, info), QD_OK);
    void *out = malloc(info->nbytes);
    memcpy(out, info->data, info->nbytes);
    return out;
}

/* An INT8 output against its reference (as written, or the reference
 * kernels): with step > 0 (a requantized output) within one quantization
 * step, and off by more than float rounding in at most 1% of the values
 * (where oneDNN's float scaling rounds across a boundary the reference does
 * not); with step 0 (a float output) within 1e-4 of the magnitude. */
static inline void tg_compare(const float *fast, const float *ref, int64_t n, float step,
                              const char *what)
{
    double max_ref = 0, max_diff = 0;
    int64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        max_ref = fmax(max_ref, fabs(ref[i]));
        double d = fabs(fast[i] - ref[i]);
        max_diff = fmax(max_diff, d);
        off += d > 1e-6 * fmax(1.0, fabs(ref[i]));
    }
    double tol = step > 0 ? step * 1.001 : 1e-4 * fmax(1.0, max_ref);
    if (max_diff > tol || (step > 0 && off > n / 100 + 1))
        fail_msg("%s: max |int8 - reference| %g (tolerance %g), %lld of %lld differ, max |ref| %g",
                 what, max_diff, tol, (long long)off, (long long)n, max_ref);
}

#endif
