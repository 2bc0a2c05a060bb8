#include "base/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *qd_status_name(qd_status status)
{
    switch (status) {
    case QD_OK: return "ok";
    case QD_STATUS_IO_ERROR: return "I/O error";
    case QD_STATUS_INVALID_MODEL: return "invalid model";
    case QD_STATUS_UNSUPPORTED: return "unsupported";
    case QD_STATUS_INVALID_ARGUMENT: return "invalid argument";
    case QD_STATUS_SHAPE_ERROR: return "shape error";
    case QD_STATUS_OUT_OF_MEMORY: return "out of memory";
    }
    return "unknown status";
}

qd_status qd_error_set(qd_error *err, qd_status status, const char *fmt, ...)
{
    if (!err)
        return status;
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return status;
}

void qd_error_prefix(qd_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[QD_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[2 * QD_ERROR_MAX];
    snprintf(joined, sizeof joined, "%s%s", prefix, err->message);
    snprintf(err->message, sizeof err->message, "%.*s", QD_ERROR_MAX - 1, joined);
}

void qd_error_clear(qd_error *err)
{
    if (!err)
        return;
    err->status = QD_OK;
    err->message[0] = '\0';
}
