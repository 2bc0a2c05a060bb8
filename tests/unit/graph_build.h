/* Building small graphs in unit tests (cmocka): a graph input, a one-output
 * node, a graph output. Included by the tests that build QDQ graphs. */
#ifndef QD_TEST_GRAPH_BUILD_H
#define QD_TEST_GRAPH_BUILD_H

#include "ir/graph.h"

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

#endif
