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
int qd_cli_compare(int argc, char **argv);

/* Prints "qdeploy: <message>" on stderr and returns 1. */
int qd_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports a failed library call on a graph (its message), returns 1. */
int qd_cli_fail_graph(const qd_graph *g, qd_status st);
/* Same, naming the model file first unless the message already does. */
int qd_cli_fail_model(const char *path, const qd_graph *g, qd_status st);

/* Helpers the verbs share (quantize.c). */
#include <stdio.h>

/* Parses "a,b,c" into out (at most max values): the count, or -1. */
int qd_cli_parse_floats(const char *s, float *out, int max);
/* Parses a whole decimal integer >= min: 0, or -1. */
int qd_cli_int(const char *s, int min, int *out);
/* --high-precision VALUE: "fp32" (the default) or "bf16" into opt: 0, or
 * -1 after printing what it takes. */
int qd_cli_high_precision(const char *value, qd_engine_options *opt);
/* 1 when a and b name the same file (or the same string). */
int qd_cli_same_file(const char *a, const char *b);
/* Writes a file atomically: write(ctx, f) into a temporary file beside
 * path, then a rename; nothing is left behind on failure. 0 or -1. */
typedef int (*qd_cli_writer)(const void *ctx, FILE *f);
int qd_cli_write_file(const char *path, qd_cli_writer write, const void *ctx);

#endif
