/* A small streaming JSON writer: commas and escaping handled here so
 * callers only say what they write. */
#ifndef QD_REPORT_JSON_H
#define QD_REPORT_JSON_H
#include <stdint.h>
#include <stdio.h>

#define QD_JSON_MAX_DEPTH 32

typedef struct qd_json {
    FILE *out;
    int depth;
    int count[QD_JSON_MAX_DEPTH]; /* items written at each level */
    int pretty;
    int after_key; /* the next value follows its key: no comma */
} qd_json;

void qd_json_init(qd_json *j, FILE *out, int pretty);
void qd_json_begin_object(qd_json *j);
void qd_json_end_object(qd_json *j);
void qd_json_begin_array(qd_json *j);
void qd_json_end_array(qd_json *j);
/* Inside an object, write the key before each value. */
void qd_json_key(qd_json *j, const char *key);
void qd_json_string(qd_json *j, const char *s);
void qd_json_int(qd_json *j, int64_t v);
void qd_json_double(qd_json *j, double v); /* non-finite values become null */
void qd_json_bool(qd_json *j, int v);
void qd_json_null(qd_json *j);

#endif
