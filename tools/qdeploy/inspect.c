/* qdeploy inspect MODEL [--json] [--batch N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qdeploy inspect MODEL [--json] [--batch N]\n"
            "  Prints inputs/outputs with shapes, opsets, the op histogram, the parameter\n"
            "  count, MACs by op type and the largest tensors.\n"
            "  --json      machine-readable output\n"
            "  --batch N   value for symbolic input dimensions (default 1)\n");
}

int qd_cli_inspect(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0;
    long batch = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            char *end;
            batch = strtol(argv[++i], &end, 10);
            if (*end || batch < 1)
                return qd_cli_fail("--batch takes a positive whole number, not '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            usage(stderr);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    qd_graph *g = NULL;
    qd_status st = qd_graph_load(path, &g);
    int rc = 0;
    if (st != QD_OK)
        goto fail;
    /* Symbolic dimensions (a dynamic batch) are fixed so MACs are counted. */
    if ((st = qd_graph_bind_dim(g, "*", batch)) != QD_OK ||
        (st = qd_graph_infer_shapes(g)) != QD_OK || (st = qd_graph_verify(g)) != QD_OK ||
        (st = qd_graph_inspect(g, stdout, json)) != QD_OK)
        goto fail;
    qd_graph_delete(g);
    return 0;
fail:
    rc = qd_cli_fail_model(path, g, st);
    qd_graph_delete(g);
    return rc;
}
