/* MatMul (any rank, ONNX batch broadcasting, 1-D operands) and Gemm
 * (transA/transB, alpha, beta, C) in float32 on the oneDNN matmul
 * primitive, with the fused chain as post-ops.
 *
 * A constant B is packed once into the layout oneDNN prefers
 * (format_tag_any), with Gemm's alpha folded in. Gemm's beta*C is kept
 * broadcast to a row [1, N] (when C is constant along M) or to [M, N]:
 * once for a constant C, at each run for a runtime C (a runtime [N] with
 * beta 1 is used in place). A row becomes the matmul bias when no alpha is
 * left to apply; otherwise C is a binary-add post-op after a linear one.
 * (oneDNN's brg matmul has no per-row broadcast, hence no [M, 1] operand.)
 *
 * In bfloat16 (the engine's high_precision_bf16), a constant B is packed as
 * bf16 and A is converted into a bf16 scratch copy at each run; the product
 * accumulates and is written in float32. */
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/dnnl/dnnl_common.h"

typedef struct mm_state {
    qd_dnnl_state_head head;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst;
    dnnl_memory_t src_bf16;      /* bf16 only: A's scratch copy */
    dnnl_primitive_t to_bf16;    /* A -> src_bf16 */
    int reserved;                /* scratch slot 0 is reserved for src_bf16 */
    dnnl_memory_t cmem; /* Gemm's beta*C operand (bias or binary) */
    dnnl_memory_t bin[QD_DNNL_MAX_BINARY];
    int b_const;   /* wei holds the packed constant B */
    int c_as_bias; /* cmem is DNNL_ARG_BIAS, else a binary post-op at c_pos */
    int c_pos;
    int c_direct;  /* cmem points at the runtime C itself */
    int c_refresh; /* cmem is rebuilt from the runtime C at each run */
    int64_t c2[2], c_rows;
    float beta;
    qd_dnnl_chain chain;
    int a_rank, b_rank, y_rank;
    int64_t a_dims[QD_MAX_RANK], b_dims[QD_MAX_RANK], y_dims[QD_MAX_RANK];
} mm_state;

static void mm_release(void *p)
{
    mm_state *s = p;
    if (!s)
        return;
    if (s->prim)
        dnnl_primitive_destroy(s->prim);
    if (s->to_bf16)
        dnnl_primitive_destroy(s->to_bf16);
    if (s->reserved)
        qd_dnnl_scratch_unreserve(0);
    dnnl_memory_t mems[] = {s->src, s->wei, s->dst, s->cmem, s->src_bf16};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
    for (int i = 0; i < QD_DNNL_MAX_BINARY; i++)
        if (s->bin[i])
            dnnl_memory_destroy(s->bin[i]);
    qd_free(s);
}

static mm_state *new_state(const qd_kernel_args *a)
{
    mm_state *s = qd_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->c_pos = -1;
    const qd_tensor *A = a->inputs[0], *B = a->inputs[1], *Y = a->outputs[0];
    s->a_rank = A->rank;
    s->b_rank = B->rank;
    s->y_rank = Y->rank;
    memcpy(s->a_dims, A->dims, sizeof s->a_dims);
    memcpy(s->b_dims, B->dims, sizeof s->b_dims);
    memcpy(s->y_dims, Y->dims, sizeof s->y_dims);
    return s;
}

/* Builds the primitive from descriptors and post-ops, packs a constant B
 * and creates the memory objects. po is consumed. */
static qd_status finish(const qd_kernel_args *a, mm_state *s, const dnnl_memory_desc_t *amd,
                        const dnnl_memory_desc_t *bmd_user, const void *b_const_data,
                        const dnnl_memory_desc_t *bias_md, const dnnl_memory_desc_t *ymd,
                        dnnl_post_ops_t po)
{
    qd_status st = QD_OK;
    qd_graph *g = a->graph;
    const qd_node *n = a->node;
    dnnl_engine_t eng;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    if ((st = qd_dnnl_get(g, n, &eng, NULL)) != QD_OK)
        goto fail;
    if ((st = qd_dnnl_chain_post_ops(a, po, ymd, ymd, QD_DNNL_RESIDUAL_SUM, 1, a->n_fused,
                                     &s->chain)) != QD_OK)
        goto fail;
    int bf16 = a->bf16 && b_const_data;
    dnnl_memory_desc_t amd_run = *amd; /* what the primitive reads */
    if (bf16)
        amd_run.data_type = dnnl_bf16; /* same dims and strides (in elements) */
    dnnl_memory_desc_t bmd = *bmd_user;
    if (b_const_data)
        QD_DNNL_TRY(g, n,
                    dnnl_memory_desc_init_by_tag(&bmd, bmd_user->ndims, bmd_user->dims,
                                                 bf16 ? dnnl_bf16 : dnnl_f32,
                                                 dnnl_format_tag_any));
    dnnl_matmul_desc_t md;
    QD_DNNL_TRY(g, n, dnnl_matmul_desc_init(&md, &amd_run, &bmd, bias_md, ymd));
    QD_DNNL_TRY(g, n, dnnl_primitive_attr_create(&attr));
    QD_DNNL_TRY(g, n, dnnl_primitive_attr_set_post_ops(attr, po));
    QD_DNNL_TRY(g, n, dnnl_primitive_desc_create(&pd, &md, attr, eng, NULL));
    if (b_const_data) {
        const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        if ((st = qd_dnnl_reorder_const(g, n, bmd_user, b_const_data, w, &s->wei)) != QD_OK)
            goto fail;
        s->b_const = 1;
    } else {
        QD_DNNL_TRY(g, n, dnnl_memory_create(&s->wei, bmd_user, eng, DNNL_MEMORY_NONE));
    }
    QD_DNNL_TRY(g, n, dnnl_memory_create(&s->src, amd, eng, DNNL_MEMORY_NONE));
    QD_DNNL_TRY(g, n, dnnl_memory_create(&s->dst, ymd, eng, DNNL_MEMORY_NONE));
    if (bf16) {
        size_t bytes = dnnl_memory_desc_get_size(&amd_run);
        if (qd_dnnl_scratch_reserve(0, bytes) != 0) {
            st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY,
                               "node '%s' (%s): out of memory for %zu bytes of scratch", n->name,
                               n->op_type, bytes);
            goto fail;
        }
        s->reserved = 1;
        QD_DNNL_TRY(g, n, dnnl_memory_create(&s->src_bf16, &amd_run, eng, DNNL_MEMORY_NONE));
        if ((st = qd_dnnl_reorder_prim(g, n, amd, &amd_run, &s->to_bf16)) != QD_OK)
            goto fail;
    }
    if ((st = qd_dnnl_create_binary(a, pd, &s->chain, s->bin)) != QD_OK)
        goto fail;
    QD_DNNL_TRY(g, n, dnnl_primitive_create(&s->prim, pd));
    const_dnnl_primitive_desc_t ppd;
    QD_DNNL_TRY(g, n, dnnl_primitive_get_primitive_desc(s->prim, &ppd));
    s->head.impl = qd_dnnl_impl_name(ppd);
fail:
    qd_dnnl_destroy_desc(pd, attr, po);
    return st;
}

static qd_status bad_operands(const qd_kernel_args *a)
{
    return qd_graph_fail(a->graph, QD_STATUS_UNSUPPORTED,
                         "node '%s' (%s): the oneDNN matmul needs float32 operands of "
                         "matching shapes",
                         a->node->name, a->node->op_type);
}

/* ---- MatMul ---- */

static qd_status matmul_prepare(const qd_kernel_args *a, void **state)
{
    qd_status st = QD_OK;
    qd_graph *g = a->graph;
    const qd_node *n = a->node;
    *state = NULL;
    if (a->n_inputs < 2 || a->n_outputs < 1 || !a->inputs[0] || !a->inputs[1] || !a->outputs[0])
        return bad_operands(a);
    const qd_tensor *A = a->inputs[0], *B = a->inputs[1], *Y = a->outputs[0];
    if (A->dtype != QD_DT_FLOAT || B->dtype != QD_DT_FLOAT || Y->dtype != QD_DT_FLOAT ||
        A->rank < 1 || B->rank < 1)
        return bad_operands(a);
    /* ONNX: a 1-D A gets a leading 1, a 1-D B a trailing 1; batch dims are
     * right-aligned and broadcast. */
    int64_t ad[DNNL_MAX_NDIMS], bd[DNNL_MAX_NDIMS], yd[DNNL_MAX_NDIMS];
    int ra = A->rank < 2 ? 2 : A->rank, rb = B->rank < 2 ? 2 : B->rank;
    int r = ra > rb ? ra : rb;
    if (r > DNNL_MAX_NDIMS)
        return bad_operands(a);
    for (int i = 0; i < r; i++)
        ad[i] = bd[i] = 1;
    if (A->rank == 1) {
        ad[r - 1] = A->dims[0];
    } else {
        for (int i = 0; i < A->rank; i++)
            ad[r - A->rank + i] = A->dims[i];
    }
    if (B->rank == 1) {
        bd[r - 2] = B->dims[0];
    } else {
        for (int i = 0; i < B->rank; i++)
            bd[r - B->rank + i] = B->dims[i];
    }
    if (ad[r - 1] != bd[r - 2])
        return bad_operands(a);
    int64_t y_numel = 1;
    for (int i = 0; i < r - 2; i++) {
        if (ad[i] != bd[i] && ad[i] != 1 && bd[i] != 1)
            return bad_operands(a);
        yd[i] = ad[i] > bd[i] ? ad[i] : bd[i];
        y_numel *= yd[i];
    }
    yd[r - 2] = ad[r - 2];
    yd[r - 1] = bd[r - 1];
    y_numel *= yd[r - 2] * yd[r - 1];
    if (y_numel != qd_numel(Y->rank, Y->dims))
        return bad_operands(a);
    /* B shared by every batch (a weight): fold A's batch dims into its rows,
     * one [M', K] x [K, N] product on the same memory instead of many thin
     * ones (ViT's [197, 1, 768] x [768, 2304] would be 197 products of M=1). */
    int b_batched = 0;
    for (int i = 0; i < r - 2; i++)
        b_batched |= bd[i] != 1;
    /* Fused operands (after the anchor's own inputs) must still fit the
     * 2-D output: per-column vectors only. */
    for (int j = n->n_inputs; j < a->n_inputs; j++)
        if (a->inputs[j] && a->inputs[j]->rank > 1)
            b_batched = 1;
    if (r > 2 && !b_batched) {
        int64_t rows = 1;
        for (int i = 0; i < r - 1; i++)
            rows *= ad[i];
        ad[0] = yd[0] = rows;
        ad[1] = ad[r - 1];
        bd[0] = bd[r - 2];
        bd[1] = bd[r - 1];
        yd[1] = yd[r - 1];
        r = 2;
    }

    mm_state *s = new_state(a);
    dnnl_post_ops_t po = NULL;
    if (!s)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "node '%s' (%s): out of memory", n->name,
                             n->op_type);
    dnnl_memory_desc_t amd, bmd, ymd;
    QD_DNNL_TRY(g, n, qd_dnnl_md_plain(&amd, r, ad));
    QD_DNNL_TRY(g, n, qd_dnnl_md_plain(&bmd, r, bd));
    QD_DNNL_TRY(g, n, qd_dnnl_md_plain(&ymd, r, yd));
    QD_DNNL_TRY(g, n, dnnl_post_ops_create(&po));
    const qd_value *bv = n->inputs[1];
    const void *b_const = bv && bv->konst && B->data ? B->data : NULL;
    st = finish(a, s, &amd, &bmd, b_const, NULL, &ymd, po);
    po = NULL;
    if (st != QD_OK)
        goto fail;
    s->head.in_place_input = s->chain.sum_input;
    *state = s;
    return QD_OK;
fail:
    if (po)
        dnnl_post_ops_destroy(po);
    mm_release(s);
    return st;
}

/* ---- Gemm ---- */

static int gemm_attrs(const qd_node *n, int64_t *ta, int64_t *tb, float *alpha, float *beta)
{
    const char *in[] = {"transA", "transB"};
    int64_t *iv[] = {ta, tb};
    for (int i = 0; i < 2; i++) {
        const qd_attr *at = qd_node_attr(n, in[i]);
        if (at && at->type != QD_ATTR_INT)
            return -1;
        *iv[i] = at ? at->i : 0;
    }
    const char *fn[] = {"alpha", "beta"};
    float *fv[] = {alpha, beta};
    for (int i = 0; i < 2; i++) {
        const qd_attr *at = qd_node_attr(n, fn[i]);
        if (at && at->type != QD_ATTR_FLOAT)
            return -1;
        *fv[i] = at ? at->f : 1.0f;
    }
    return 0;
}

/* C of rank 0..2 as a 2-D broadcast shape; -1 if it does not broadcast to
 * [M, N]. */
static int c_shape(int rank, const int64_t *dims, int64_t m, int64_t nn, int64_t *c2)
{
    if (rank > 2)
        return -1;
    c2[0] = rank == 2 ? dims[0] : 1;
    c2[1] = rank >= 1 ? dims[rank - 1] : 1;
    if ((c2[0] != 1 && c2[0] != m) || (c2[1] != 1 && c2[1] != nn))
        return -1;
    return 0;
}

/* cmem <- beta * C broadcast to [c_rows, N]. */
static void fill_c(mm_state *s, const float *c)
{
    void *h = NULL;
    dnnl_memory_get_data_handle(s->cmem, &h);
    float *dst = h;
    int64_t nn = s->y_dims[1];
    for (int64_t r = 0; r < s->c_rows; r++)
        for (int64_t j = 0; j < nn; j++)
            dst[r * nn + j] =
                s->beta * c[(s->c2[0] == 1 ? 0 : r) * s->c2[1] + (s->c2[1] == 1 ? 0 : j)];
}

static qd_status gemm_prepare(const qd_kernel_args *a, void **state)
{
    qd_status st = QD_OK;
    qd_graph *g = a->graph;
    const qd_node *n = a->node;
    *state = NULL;
    if (a->n_inputs < 2 || a->n_outputs < 1 || !a->inputs[0] || !a->inputs[1] || !a->outputs[0])
        return bad_operands(a);
    const qd_tensor *A = a->inputs[0], *B = a->inputs[1], *Y = a->outputs[0];
    const qd_tensor *C = n->n_inputs > 2 ? a->inputs[2] : NULL;
    int64_t ta, tb;
    float alpha, beta;
    if (gemm_attrs(n, &ta, &tb, &alpha, &beta) != 0 || A->dtype != QD_DT_FLOAT ||
        B->dtype != QD_DT_FLOAT || Y->dtype != QD_DT_FLOAT || (C && C->dtype != QD_DT_FLOAT) ||
        A->rank != 2 || B->rank != 2 || Y->rank != 2)
        return bad_operands(a);
    int64_t m = ta ? A->dims[1] : A->dims[0], k = ta ? A->dims[0] : A->dims[1];
    int64_t kb = tb ? B->dims[1] : B->dims[0], nn = tb ? B->dims[0] : B->dims[1];
    int64_t c2[2] = {1, 1};
    if (k != kb || Y->dims[0] != m || Y->dims[1] != nn ||
        (C && c_shape(C->rank, C->dims, m, nn, c2) != 0))
        return bad_operands(a);
    if (beta == 0.f)
        C = NULL;

    mm_state *s = new_state(a);
    dnnl_post_ops_t po = NULL;
    float *scaled = NULL;
    dnnl_engine_t eng;
    if (!s)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "node '%s' (%s): out of memory", n->name,
                             n->op_type);
    if ((st = qd_dnnl_get(g, n, &eng, NULL)) != QD_OK)
        goto fail;
    dnnl_memory_desc_t amd, bmd, ymd;
    dnnl_dims_t adims = {m, k}, bdims = {k, nn}, ydims = {m, nn};
    dnnl_dims_t astr = {ta ? 1 : k, ta ? m : 1}, bstr = {tb ? 1 : nn, tb ? k : 1};
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_strides(&amd, 2, adims, dnnl_f32, astr));
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_strides(&bmd, 2, bdims, dnnl_f32, bstr));
    QD_DNNL_TRY(g, n, qd_dnnl_md_plain(&ymd, 2, ydims));
    QD_DNNL_TRY(g, n, dnnl_post_ops_create(&po));

    /* A constant B is packed with alpha folded in (in float32 only: in
     * bf16 alpha*B would round once more, so alpha stays a post-op). */
    const qd_value *bv = n->inputs[1];
    const void *b_const = bv && bv->konst && B->data ? B->data : NULL;
    if (b_const && alpha != 1.f && !a->bf16) {
        size_t cnt = (size_t)(k * nn);
        scaled = qd_malloc(cnt * sizeof *scaled);
        if (!scaled) {
            st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "node '%s' (%s): out of memory", n->name,
                               n->op_type);
            goto fail;
        }
        const float *src = b_const;
        for (size_t i = 0; i < cnt; i++)
            scaled[i] = alpha * src[i];
        b_const = scaled;
    }
    float alpha_left = scaled ? 1.f : alpha; /* still to apply after the product */
    const dnnl_memory_desc_t *bias_md = NULL;
    dnnl_memory_desc_t opmd;
    if (C) {
        /* C's operand: a row [1, N] when C is constant along M, else the
         * full [M, N], with beta applied; once for a constant C, at each
         * run for a runtime C unless usable as it is. */
        const qd_value *cv = n->inputs[2];
        int c_is_const = cv && cv->konst && C->data;
        s->c_rows = c2[0] == 1 ? 1 : m;
        s->c2[0] = c2[0];
        s->c2[1] = c2[1];
        s->beta = beta;
        dnnl_dims_t opd = {s->c_rows, nn};
        QD_DNNL_TRY(g, n, qd_dnnl_md_plain(&opmd, 2, opd));
        s->c_direct = !c_is_const && beta == 1.f && c2[1] == nn;
        s->c_refresh = !c_is_const && !s->c_direct;
        QD_DNNL_TRY(g, n,
                    dnnl_memory_create(&s->cmem, &opmd, eng,
                                       s->c_direct ? DNNL_MEMORY_NONE : DNNL_MEMORY_ALLOCATE));
        if (c_is_const)
            fill_c(s, C->data);
        if (alpha_left == 1.f && s->c_rows == 1) {
            bias_md = &opmd; /* the matmul bias: per column, before post-ops */
            s->c_as_bias = 1;
        } else {
            if (alpha_left != 1.f)
                QD_DNNL_TRY(
                    g, n,
                    dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_linear, alpha_left, 0.f));
            QD_DNNL_TRY(g, n, dnnl_post_ops_append_binary(po, dnnl_binary_add, &opmd));
            s->c_pos = dnnl_post_ops_len(po) - 1;
        }
    } else if (alpha_left != 1.f) {
        QD_DNNL_TRY(g, n,
                    dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_linear, alpha_left, 0.f));
    }
    st = finish(a, s, &amd, &bmd, b_const, bias_md, &ymd, po);
    po = NULL;
    if (st != QD_OK)
        goto fail;
    qd_free(scaled);
    s->head.in_place_input = s->chain.sum_input;
    *state = s;
    return QD_OK;
fail:
    qd_free(scaled);
    if (po)
        dnnl_post_ops_destroy(po);
    mm_release(s);
    return st;
}

/* ---- run ---- */

static int dims_equal(const qd_tensor *t, int rank, const int64_t *dims)
{
    if (!t || t->rank != rank)
        return 0;
    for (int i = 0; i < rank; i++)
        if (t->dims[i] != dims[i])
            return 0;
    return 1;
}

static qd_status mm_execute(const qd_kernel_args *a, mm_state *s)
{
    qd_status st = QD_OK;
    qd_graph *g = a->graph;
    const qd_node *n = a->node;
    dnnl_stream_t strm;
    if ((st = qd_dnnl_get(g, n, NULL, &strm)) != QD_OK)
        return st;
    if (!dims_equal(a->inputs[0], s->a_rank, s->a_dims) ||
        !dims_equal(a->inputs[1], s->b_rank, s->b_dims) ||
        !dims_equal(a->outputs[0], s->y_rank, s->y_dims))
        return qd_graph_fail(g, QD_STATUS_SHAPE_ERROR,
                             "node '%s' (%s): shapes changed since the oneDNN matmul was prepared",
                             n->name, n->op_type);
    dnnl_exec_arg_t args[4 + QD_DNNL_MAX_BINARY];
    int na = 0;
    QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(s->src, a->inputs[0]->data));
    QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(s->dst, a->outputs[0]->data));
    if (!s->b_const)
        QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(s->wei, a->inputs[1]->data));
    if (s->to_bf16) {
        QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(s->src_bf16, qd_dnnl_scratch(0)));
        dnnl_exec_arg_t in[2] = {{DNNL_ARG_FROM, s->src}, {DNNL_ARG_TO, s->src_bf16}};
        QD_DNNL_TRY(g, n, dnnl_primitive_execute(s->to_bf16, strm, 2, in));
    }
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, s->to_bf16 ? s->src_bf16 : s->src};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, s->wei};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, s->dst};
    if (s->cmem) {
        if (s->c_direct)
            QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(s->cmem, a->inputs[2]->data));
        else if (s->c_refresh)
            fill_c(s, a->inputs[2]->data);
        args[na++] = (dnnl_exec_arg_t){s->c_as_bias ? DNNL_ARG_BIAS
                                                    : DNNL_ARG_ATTR_MULTIPLE_POST_OP(s->c_pos) |
                                                          DNNL_ARG_SRC_1,
                                       s->cmem};
    }
    if ((st = qd_dnnl_bind_binary(a, &s->chain, s->bin, args, &na)) != QD_OK)
        goto fail;
    /* The residual goes through `sum`, not a full-size binary operand (brg
     * matmul runs slower with one). */
    qd_dnnl_residual_to_dst(a, &s->chain);
    QD_DNNL_TRY(g, n, dnnl_primitive_execute(s->prim, strm, na, args));
    QD_DNNL_TRY(g, n, dnnl_stream_wait(strm));
    if (s->chain.tail_from < a->n_fused)
        qd_dnnl_run_tail(a, &s->chain, s->y_dims[s->y_rank - 1], 1);
fail:
    return st;
}

static qd_status matmul_run(const qd_kernel_args *a)
{
    return a->state ? mm_execute(a, a->state) : qd_dnnl_run_unprepared(a, matmul_prepare, mm_release);
}

static qd_status gemm_run(const qd_kernel_args *a)
{
    return a->state ? mm_execute(a, a->state) : qd_dnnl_run_unprepared(a, gemm_prepare, mm_release);
}

/* ---- selection ---- */

int qd_dnnl_matmul_supports(const qd_node *n)
{
    if (n->n_inputs != 2 || n->n_outputs < 1)
        return 0;
    const qd_value *A = n->inputs[0], *B = n->inputs[1], *Y = n->outputs[0];
    if (!qd_dnnl_value_ok(A, 1, DNNL_MAX_NDIMS) || !qd_dnnl_value_ok(B, 1, DNNL_MAX_NDIMS) ||
        !qd_dnnl_value_ok(Y, 0, DNNL_MAX_NDIMS))
        return 0;
    int64_t ka = A->dims[A->rank - 1], kb = B->rank == 1 ? B->dims[0] : B->dims[B->rank - 2];
    if (ka != kb)
        return 0;
    /* Batch dims broadcast. */
    int ra = A->rank, rb = B->rank;
    for (int i = 3; i <= ra || i <= rb; i++) {
        int64_t da = i <= ra ? A->dims[ra - i] : 1, db = i <= rb ? B->dims[rb - i] : 1;
        if (da != db && da != 1 && db != 1)
            return 0;
    }
    return 1;
}

int qd_dnnl_gemm_supports(const qd_node *n)
{
    if (n->n_inputs < 2 || n->n_inputs > 3 || n->n_outputs < 1)
        return 0;
    const qd_value *A = n->inputs[0], *B = n->inputs[1], *Y = n->outputs[0];
    const qd_value *C = n->n_inputs > 2 ? n->inputs[2] : NULL;
    int64_t ta, tb;
    float alpha, beta;
    if (gemm_attrs(n, &ta, &tb, &alpha, &beta) != 0 || !qd_dnnl_value_ok(A, 2, 2) || !qd_dnnl_value_ok(B, 2, 2) ||
        !qd_dnnl_value_ok(Y, 2, 2))
        return 0;
    int64_t m = ta ? A->dims[1] : A->dims[0], k = ta ? A->dims[0] : A->dims[1];
    int64_t kb = tb ? B->dims[1] : B->dims[0], nn = tb ? B->dims[0] : B->dims[1];
    int64_t c2[2];
    if (k != kb || Y->dims[0] != m || Y->dims[1] != nn)
        return 0;
    if (C && (!qd_dnnl_value_ok(C, 0, 2) || c_shape(C->rank, C->dims, m, nn, c2) != 0))
        return 0;
    return 1;
}

qd_kernel_impl qd_dnnl_matmul_impl(void)
{
    return (qd_kernel_impl){"dnnl", matmul_run, matmul_prepare, mm_release, qd_dnnl_in_place_ok};
}

qd_kernel_impl qd_dnnl_gemm_impl(void)
{
    return (qd_kernel_impl){"dnnl", gemm_run, gemm_prepare, mm_release, qd_dnnl_in_place_ok};
}
