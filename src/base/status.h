/* Error messages kept on handles: one line saying what and where. */
#ifndef QD_BASE_STATUS_H
#define QD_BASE_STATUS_H
#include <stddef.h>

#include "qdeploy.h"

#define QD_ERROR_MAX 1024

typedef struct qd_error {
    qd_status status;
    char message[QD_ERROR_MAX];
} qd_error;

/* Records status and a printf-style message on err; returns status so that
 * callers can write `return qd_error_set(err, QD_STATUS_X, "...")`. */
qd_status qd_error_set(qd_error *err, qd_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with more context ("file.onnx: " ...). */
void qd_error_prefix(qd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void qd_error_clear(qd_error *err);

#endif
