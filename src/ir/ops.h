/* The op table: one enum entry per row of ops.def. */
#ifndef QD_IR_OPS_H
#define QD_IR_OPS_H

typedef enum qd_op {
#define QD_OP(id, onnx_name, since, shape_fn) QD_OP_##id,
#include "ir/ops.def"
#undef QD_OP
    QD_OP_COUNT,
    QD_OP_UNKNOWN = QD_OP_COUNT
} qd_op;

/* The op for (domain, op_type); QD_OP_UNKNOWN when not in ops.def. The
 * default domain is "" or "ai.onnx". */
qd_op qd_op_lookup(const char *domain, const char *op_type);
const char *qd_op_name(qd_op op);
int qd_op_since_opset(qd_op op);

#endif
