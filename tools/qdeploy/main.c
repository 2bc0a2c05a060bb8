/* qdeploy: make ONNX vision models deployment-ready in INT8. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct verb {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} verb;

static const verb VERBS[] = {
    {"inspect", qd_cli_inspect, "inputs, outputs, ops, parameters and MACs of a model"},
    {"run", qd_cli_run, "run a model on .npy inputs, write .npy outputs"},
    {"bench", qd_cli_bench, "latency of a model (median/min/max) and a per-op profile"},
    {"quantize", qd_cli_quantize, "write a QDQ model calibrated on real data (pattern-aware)"},
    {"compare", qd_cli_compare, "float vs mixed vs uniform INT8: Top-1/Top-5, latency, SQNR"},
};

int qd_cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("qdeploy: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int qd_cli_fail_graph(const qd_graph *g, qd_status st)
{
    const char *msg = qd_graph_error(g);
    return qd_cli_fail("%s", msg && msg[0] ? msg : qd_status_name(st));
}

int qd_cli_fail_model(const char *path, const qd_graph *g, qd_status st)
{
    const char *msg = qd_graph_error(g);
    if (!msg || !msg[0])
        msg = qd_status_name(st);
    size_t n = strlen(path);
    if (!strncmp(msg, path, n) && msg[n] == ':')
        return qd_cli_fail("%s", msg);
    return qd_cli_fail("%s: %s", path, msg);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: qdeploy COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof VERBS / sizeof VERBS[0]; i++)
        fprintf(out, "  %-10s %s\n", VERBS[i].name, VERBS[i].summary);
    fprintf(out, "\n'qdeploy COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("qdeploy %s\n", QDEPLOY_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof VERBS / sizeof VERBS[0]; i++)
        if (!strcmp(argv[1], VERBS[i].name))
            return VERBS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "qdeploy: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
