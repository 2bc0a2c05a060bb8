/* The fusion table: the fused modules the target compilers build, one row
 * each, with the QDQ points every target declares for them. Adding a
 * pattern or a target is adding rows (or a column of qdq entries). The
 * matcher (pattern.c) prefers longer matches, then earlier rows.
 *
 * tensorrt (issue 4, --policy mixed): INPUT and per-channel WEIGHT on
 * compute-bound convs and linears, RESIDUAL_INPUT on the residual operand of
 * FusedConvBNAddReLU; nothing on depthwise convs, global average pooling,
 * LayerNorm. Attention: the inputs of its two activation MatMuls.
 * x86 (the CPU: qdeploy's engine, onnxruntime): the tensorrt points, but
 * every Linear is INT8 (placement applies TensorRT's K*N/(K+N) rule only
 * for tensorrt: on a CPU at batch 1 a vision model's Linears run on
 * hundreds of tokens and are compute-bound, and a GEMV head reads 4x
 * fewer weight bytes in int8).
 * uniform (ModelOpt INT8_DEFAULT_CFG): every Conv (depthwise too) and every
 * Linear gets INPUT and WEIGHT, average pooling its input, attention MatMuls
 * stay float. */
#include <string.h>

#include "ir/graph.h"
#include "passes/pattern.h"

const char *const qd_fusion_targets[] = {"tensorrt", "x86", "uniform", NULL};

/* ---- predicates ------------------------------------------------------------ */

static int64_t conv_group(qd_graph *g, const qd_node *n)
{
    int64_t group = 1;
    if (qd_node_attr_int(g, n, "group", 1, &group) != QD_OK)
        return -1;
    return group;
}

/* Input channels of Conv n, or -1 when unknown. */
static int64_t conv_in_channels(qd_graph *g, const qd_node *n)
{
    const qd_value *x = n->inputs[0];
    if (x && x->rank >= 2 && x->dims[1] > 0)
        return x->dims[1];
    const qd_value *w = n->n_inputs > 1 ? n->inputs[1] : NULL;
    int64_t group = conv_group(g, n);
    if (w && w->rank >= 2 && w->dims[1] > 0 && group > 0)
        return w->dims[1] * group;
    return -1;
}

/* A depthwise conv: group == input channels > 1. */
static int depthwise_conv(qd_graph *g, const qd_node *n)
{
    int64_t group = conv_group(g, n), c = conv_in_channels(g, n);
    return group > 1 && group == c;
}

static int dense_conv(qd_graph *g, const qd_node *n) { return !depthwise_conv(g, n); }

/* The ResNet stem: a 7x7 Conv on 3 channels. */
static int stem_conv(qd_graph *g, const qd_node *n)
{
    const int64_t *k = NULL;
    size_t n_k = 0;
    if (qd_node_attr_ints(g, n, "kernel_shape", &k, &n_k) != QD_OK)
        return 0;
    int64_t kh, kw;
    if (n_k == 2) {
        kh = k[0];
        kw = k[1];
    } else {
        const qd_value *w = n->n_inputs > 1 ? n->inputs[1] : NULL;
        if (!w || w->rank != 4)
            return 0;
        kh = w->dims[2];
        kw = w->dims[3];
    }
    return kh == 7 && kw == 7 && conv_in_channels(g, n) == 3 && dense_conv(g, n);
}

/* A linear layer: Gemm or MatMul whose weight (input 1) is a constant
 * (2-D for MatMul). */
static int linear_weight(qd_graph *g, const qd_node *n)
{
    const qd_value *w = n->n_inputs > 1 ? n->inputs[1] : NULL;
    if (!w || !w->konst)
        return 0;
    return n->op == QD_OP_GEMM || w->konst->rank == 2;
}

/* A Linear written as a Conv: 1x1 kernel, one group, no padding, on an
 * N x C x 1 x 1 input with a constant weight. FlattenGemmToConv
 * (qd_graph_convert_for_fusion) turns a classifier head into one; it stays
 * a FusedLinear (and the Linear intensity rule applies to it). */
static int linear_conv(qd_graph *g, const qd_node *n)
{
    const qd_value *x = n->inputs[0];
    const qd_value *w = n->n_inputs > 1 ? n->inputs[1] : NULL;
    if (!x || x->rank != 4 || x->dims[2] != 1 || x->dims[3] != 1 || !w || !w->konst ||
        w->konst->rank != 4 || w->konst->dims[2] != 1 || w->konst->dims[3] != 1 ||
        conv_group(g, n) != 1)
        return 0;
    const int64_t *pads = NULL;
    size_t n_pads = 0;
    if (qd_node_attr_ints(g, n, "pads", &pads, &n_pads) != QD_OK)
        return 0;
    for (size_t i = 0; i < n_pads; i++)
        if (pads[i])
            return 0;
    const char *auto_pad = "NOTSET";
    if (qd_node_attr_string(g, n, "auto_pad", "NOTSET", &auto_pad) != QD_OK)
        return 0;
    return !strcmp(auto_pad, "NOTSET") || !strcmp(auto_pad, "VALID");
}

/* A dense Conv that is not a Linear (alone, those are FusedLinear). */
static int dense_conv_not_linear(qd_graph *g, const qd_node *n)
{
    return dense_conv(g, n) && !linear_conv(g, n);
}

/* ReduceMean over the spatial axes of a 4-D tensor: {2,3} or {-2,-1}. */
static int reduces_hw(qd_graph *g, const qd_node *n)
{
    const qd_value *x = n->inputs[0];
    if (!x || x->rank != 4)
        return 0;
    int64_t axes[2];
    const int64_t *a = NULL;
    size_t n_a = 0;
    if (qd_node_attr_ints(g, n, "axes", &a, &n_a) != QD_OK)
        return 0;
    if (n_a == 2) {
        axes[0] = a[0];
        axes[1] = a[1];
    } else if (!a && n->n_inputs > 1 && n->inputs[1] && n->inputs[1]->konst &&
               qd_numel(n->inputs[1]->konst->rank, n->inputs[1]->konst->dims) == 2) {
        axes[0] = qd_tensor_get_i64(n->inputs[1]->konst, 0); /* opset 18: axes input */
        axes[1] = qd_tensor_get_i64(n->inputs[1]->konst, 1);
    } else {
        return 0;
    }
    for (int k = 0; k < 2; k++)
        if (axes[k] < 0)
            axes[k] += 4;
    return (axes[0] == 2 && axes[1] == 3) || (axes[0] == 3 && axes[1] == 2);
}

/* ---- op sets --------------------------------------------------------------- */

static const qd_op CONV[] = {QD_OP_CONV};
static const qd_op BN[] = {QD_OP_BATCH_NORMALIZATION};
static const qd_op ADD[] = {QD_OP_ADD};
static const qd_op DIV[] = {QD_OP_DIV};
static const qd_op MUL[] = {QD_OP_MUL};
static const qd_op MAXPOOL[] = {QD_OP_MAX_POOL};
static const qd_op GAP[] = {QD_OP_GLOBAL_AVERAGE_POOL};
static const qd_op REDUCE_MEAN[] = {QD_OP_REDUCE_MEAN};
static const qd_op LINEAR[] = {QD_OP_GEMM, QD_OP_MATMUL};
static const qd_op MATMUL[] = {QD_OP_MATMUL};
static const qd_op SOFTMAX[] = {QD_OP_SOFTMAX};
static const qd_op LAYERNORM[] = {QD_OP_LAYER_NORMALIZATION};
/* The activations TensorRT fuses into a conv (SiLU, x * Sigmoid(x), through
 * the QD_STEP_SILU fork). */
static const qd_op ACT[] = {QD_OP_RELU,    QD_OP_CLIP,       QD_OP_LEAKY_RELU,
                            QD_OP_ELU,     QD_OP_GELU,       QD_OP_SIGMOID,
                            QD_OP_HARD_SWISH, QD_OP_HARD_SIGMOID};

#define SET(a) (a), (int)(sizeof(a) / sizeof((a)[0]))
#define STEP(a) {SET(a), 0, NULL}
#define STEP_IF(a, pred) {SET(a), 0, (pred)}
#define OPT(a) {SET(a), QD_STEP_OPTIONAL, NULL}
#define ACTIVATION {SET(ACT), QD_STEP_SILU, NULL}
#define RESIDUAL_ADD {SET(ADD), QD_STEP_ANY_INPUT | QD_STEP_OTHER_ACTIVATION, NULL}

#define IN QD_QDQ_INPUT
#define RES QD_QDQ_RESIDUAL_INPUT
#define W QD_QDQ_WEIGHT

/* ---- the table ------------------------------------------------------------ */

const qd_pattern qd_fusion_patterns[] = {
    {"FusedConvBNReLUMaxPool",
     {STEP_IF(CONV, stem_conv), OPT(BN), ACTIVATION, STEP(MAXPOOL)}, 4,
     {{"tensorrt", IN | W}, {"x86", IN | W}, {"uniform", IN | W}}},
    {"FusedConvBNAddReLU",
     {STEP_IF(CONV, dense_conv), OPT(BN), RESIDUAL_ADD, ACTIVATION}, 4,
     {{"tensorrt", IN | W | RES}, {"x86", IN | W | RES}, {"uniform", IN | W}}},
    {"FusedConvBNReLU", {STEP_IF(CONV, dense_conv), OPT(BN), ACTIVATION}, 3,
     {{"tensorrt", IN | W}, {"x86", IN | W}, {"uniform", IN | W}}},
    /* Depthwise convs are memory-bound: no QDQ for tensorrt. Same names in
     * the report as their dense twins. */
    {"FusedConvBNReLU", {STEP_IF(CONV, depthwise_conv), OPT(BN), ACTIVATION}, 3,
     {{"uniform", IN | W}}},
    {"FusedConvBN", {STEP_IF(CONV, dense_conv_not_linear), OPT(BN)}, 2,
     {{"tensorrt", IN | W}, {"x86", IN | W}, {"uniform", IN | W}}},
    {"FusedConvBN", {STEP_IF(CONV, depthwise_conv), OPT(BN)}, 2, {{"uniform", IN | W}}},
    {"FusedAdaptiveAvgPool2d", {STEP(GAP)}, 1, {{"uniform", IN}}},
    {"FusedAdaptiveAvgPool2d", {STEP_IF(REDUCE_MEAN, reduces_hw)}, 1, {{"uniform", IN}}},
    {"FusedLinear",
     {STEP_IF(LINEAR, linear_weight), {SET(ADD), QD_STEP_OPTIONAL | QD_STEP_ANY_INPUT |
                                                     QD_STEP_OTHER_CONST, NULL}},
     2,
     {{"tensorrt", IN | W}, {"x86", IN | W}, {"uniform", IN | W}}},
    /* A lone Conv that is a Linear (a converted classifier head). */
    {"FusedLinear", {STEP_IF(CONV, linear_conv)}, 1, {{"tensorrt", IN | W}, {"x86", IN | W}, {"uniform", IN | W}}},
    {"LayerNorm", {STEP(LAYERNORM)}, 1, {{NULL, 0}}},
    /* Scaled dot-product attention: MatMul(Q, K^T) [/ or * scale] [+ mask]
     * Softmax MatMul(., V), every MatMul operand an activation. */
    {"Attention",
     {{SET(MATMUL), QD_STEP_OTHER_ACTIVATION, NULL},
      {SET(DIV), QD_STEP_OPTIONAL | QD_STEP_OTHER_SCALAR, NULL},
      {SET(MUL), QD_STEP_OPTIONAL | QD_STEP_ANY_INPUT | QD_STEP_OTHER_SCALAR, NULL},
      {SET(ADD), QD_STEP_OPTIONAL | QD_STEP_ANY_INPUT, NULL},
      STEP(SOFTMAX),
      {SET(MATMUL), QD_STEP_OTHER_ACTIVATION, NULL}},
     6,
     {{"tensorrt", IN}, {"x86", IN}}},
};

const size_t qd_fusion_pattern_count = sizeof qd_fusion_patterns / sizeof qd_fusion_patterns[0];
