#include "ir/ops.h"

#include <assert.h>
#include <string.h>

typedef struct op_row {
    const char *name;
    int since;
} op_row;

static const op_row OPS[] = {
#define QD_OP(id, onnx_name, since, shape_fn) {onnx_name, since},
#include "ir/ops.def"
#undef QD_OP
};

/* Adding a row to ops.def must keep the enum and the table in step. */
static_assert(sizeof OPS / sizeof OPS[0] == QD_OP_COUNT, "ops.def and qd_op disagree");

qd_op qd_op_lookup(const char *domain, const char *op_type)
{
    if (domain && domain[0] && strcmp(domain, "ai.onnx") != 0)
        return QD_OP_UNKNOWN;
    if (!op_type)
        return QD_OP_UNKNOWN;
    for (int i = 0; i < QD_OP_COUNT; i++)
        if (strcmp(OPS[i].name, op_type) == 0)
            return (qd_op)i;
    return QD_OP_UNKNOWN;
}

const char *qd_op_name(qd_op op) { return op < QD_OP_COUNT ? OPS[op].name : "?"; }

int qd_op_since_opset(qd_op op) { return op < QD_OP_COUNT ? OPS[op].since : 0; }
