/* The qdeploy command-line tool: one file per verb. */
#ifndef QD_CLI_H
#define QD_CLI_H

#include "qdeploy.h"

/* Each verb gets argv after the verb name (argv[0] is the verb) and returns
 * the process exit status: 0 ok, 1 failure, 2 usage error. */
int qd_cli_inspect(int argc, char **argv);
int qd_cli_run(int argc, char **argv);
int qd_cli_bench(int argc, char **argv);
int qd_cli_quantize(int argc, char **argv);

/* Prints "qdeploy: <message>" on stderr and returns 1. */
int qd_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports a failed library call on a graph (its message), returns 1. */
int qd_cli_fail_graph(const qd_graph *g, qd_status st);
/* Same, naming the model file first unless the message already does. */
int qd_cli_fail_model(const char *path, const qd_graph *g, qd_status st);

#endif
