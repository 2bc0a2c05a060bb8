/* qd_roundtrip IN OUT: load, infer shapes, verify, save. Used by the
 * round-trip tests, which compare IN and OUT with python3-onnx. */
#include <stdio.h>

#include "qdeploy.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: qd_roundtrip IN.onnx OUT.onnx\n");
        return 2;
    }
    qd_graph *g = NULL;
    qd_status st = qd_graph_load(argv[1], &g);
    if (st == QD_OK)
        st = qd_graph_infer_shapes(g);
    if (st == QD_OK)
        st = qd_graph_verify(g);
    if (st == QD_OK)
        st = qd_graph_save(g, argv[2]);
    if (st != QD_OK)
        fprintf(stderr, "qd_roundtrip: %s\n", qd_graph_error(g));
    qd_graph_delete(g);
    return st == QD_OK ? 0 : 1;
}
