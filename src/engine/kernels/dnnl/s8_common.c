/* What the INT8 kernels (conv2d_s8_dnnl.c, matmul_s8_dnnl.c) share: the
 * post-ops of the fused chain with the requantizing scale, the primitive
 * with its output scales, the memories it runs on, and running it. */
#include <string.h>

#include "engine/kernels/dnnl/dnnl_common.h"

qd_status qd_dnnl_s8_build(const qd_kernel_args *a, const void *op_desc,
                           const dnnl_memory_desc_t *src_md, const dnnl_memory_desc_t *dst_md,
                           const dnnl_memory_desc_t *wei_md, int n_scales, int scale_mask,
                           const float *scales, qd_dnnl_s8_prim *p, qd_dnnl_state_head *head)
{
    qd_status st = QD_OK;
    qd_graph *g = a->graph;
    const qd_node *n = a->node;
    dnnl_engine_t eng;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    if ((st = qd_dnnl_get(g, n, &eng, NULL)) != QD_OK)
        return st;
    QD_DNNL_TRY(g, n, dnnl_post_ops_create(&po));
    if ((st = qd_dnnl_chain_post_ops(a, po, dst_md, dst_md, QD_DNNL_RESIDUAL_SUM, 1, a->n_fused,
                                     &p->chain)) != QD_OK)
        goto fail;
    if (p->chain.tail_from < a->n_fused) {
        st = qd_graph_fail(g, QD_STATUS_UNSUPPORTED, "node '%s' (%s): the INT8 kernel cannot fuse '%s'",
                           n->name, n->op_type, a->fused[p->chain.tail_from]->name);
        goto fail;
    }
    if ((st = qd_dnnl_requant_post_op(a, po)) != QD_OK)
        goto fail;
    QD_DNNL_TRY(g, n, dnnl_primitive_attr_create(&attr));
    QD_DNNL_TRY(g, n, dnnl_primitive_attr_set_post_ops(attr, po));
    QD_DNNL_TRY(g, n, dnnl_primitive_attr_set_output_scales(attr, n_scales, scale_mask, scales));
    /* Zero points are runtime arguments: what oneDNN 2.6's jit int8
     * kernels take (a zero point fixed at creation sends them to ref). */
    const qd_quant_params *q = a->quant;
    int32_t zps[2] = {q ? q->src_zp : 0, q && q->dst_scale > 0.0f ? q->dst_zp : 0};
    const int32_t rt_zp = DNNL_RUNTIME_S32_VAL;
    if (zps[0])
        QD_DNNL_TRY(g, n, dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_SRC, 1, 0, &rt_zp));
    if (zps[1])
        QD_DNNL_TRY(g, n, dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_DST, 1, 0, &rt_zp));
    QD_DNNL_TRY(g, n, dnnl_primitive_desc_create(&pd, op_desc, attr, eng, NULL));
    if ((zps[0] || zps[1] || (q && q->residual_zp)) && !strncmp(qd_dnnl_impl_name(pd), "ref", 3)) {
        st = qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                           "node '%s' (%s): oneDNN has only its reference kernel for zero points "
                           "here ('%s')",
                           n->name, n->op_type, qd_dnnl_impl_name(pd));
        goto fail;
    }
    dnnl_memory_t *zp_mem[2] = {&p->zp_src, &p->zp_dst};
    for (int i = 0; i < 2; i++) {
        if (!zps[i])
            continue;
        dnnl_memory_desc_t zmd;
        dnnl_dims_t one = {1};
        void *h;
        QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&zmd, 1, one, dnnl_s32, dnnl_a));
        QD_DNNL_TRY(g, n, dnnl_memory_create(zp_mem[i], &zmd, eng, DNNL_MEMORY_ALLOCATE));
        QD_DNNL_TRY(g, n, dnnl_memory_get_data_handle(*zp_mem[i], &h));
        *(int32_t *)h = zps[i];
    }
    if (wei_md)
        QD_DNNL_TRY(g, n, dnnl_memory_create(&p->wei, wei_md, eng, DNNL_MEMORY_NONE));
    QD_DNNL_TRY(g, n, dnnl_memory_create(&p->src, src_md, eng, DNNL_MEMORY_NONE));
    QD_DNNL_TRY(g, n, dnnl_memory_create(&p->dst, dst_md, eng, DNNL_MEMORY_NONE));
    if ((st = qd_dnnl_create_binary(a, pd, &p->chain, p->bin)) != QD_OK)
        goto fail;
    QD_DNNL_TRY(g, n, dnnl_primitive_create(&p->prim, pd));
    const_dnnl_primitive_desc_t ppd;
    QD_DNNL_TRY(g, n, dnnl_primitive_get_primitive_desc(p->prim, &ppd));
    head->impl = qd_dnnl_impl_name(ppd);
    head->in_place_input = p->chain.sum_input;
    p->pd = pd;
    pd = NULL;
fail:
    qd_dnnl_destroy_desc(pd, attr, po);
    return st;
}

const dnnl_memory_desc_t *qd_dnnl_s8_weights_md(const qd_dnnl_s8_prim *p)
{
    return dnnl_primitive_desc_query_md(p->pd, dnnl_query_weights_md, 0);
}

void qd_dnnl_s8_destroy(qd_dnnl_s8_prim *p)
{
    if (p->prim)
        dnnl_primitive_destroy(p->prim);
    if (p->pd)
        dnnl_primitive_desc_destroy(p->pd);
    dnnl_memory_t mems[] = {p->src, p->dst, p->wei, p->bias, p->zp_src, p->zp_dst};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
    for (int i = 0; i < QD_DNNL_MAX_BINARY; i++)
        if (p->bin[i])
            dnnl_memory_destroy(p->bin[i]);
    memset(p, 0, sizeof *p);
}

qd_status qd_dnnl_s8_execute(const qd_kernel_args *a, qd_dnnl_s8_prim *p, const void *wei_data)
{
    qd_status st = QD_OK;
    qd_graph *g = a->graph;
    const qd_node *n = a->node;
    dnnl_stream_t strm;
    if ((st = qd_dnnl_get(g, n, NULL, &strm)) != QD_OK)
        return st;
    qd_tensor *y = a->outputs[0];
    dnnl_exec_arg_t args[6 + QD_DNNL_MAX_BINARY];
    int na = 0;
    QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(p->src, a->inputs[0]->data));
    QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(p->dst, y->data));
    if (wei_data)
        QD_DNNL_TRY(g, n, dnnl_memory_set_data_handle(p->wei, (void *)wei_data));
    if ((st = qd_dnnl_bind_binary(a, &p->chain, p->bin, args, &na)) != QD_OK)
        goto fail;
    qd_dnnl_residual_to_dst(a, &p->chain);
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, p->src};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, p->wei};
    if (p->bias)
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->bias};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, p->dst};
    if (p->zp_src)
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, p->zp_src};
    if (p->zp_dst)
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST, p->zp_dst};
    QD_DNNL_TRY(g, n, dnnl_primitive_execute(p->prim, strm, na, args));
    QD_DNNL_TRY(g, n, dnnl_stream_wait(strm));
fail:
    return st;
}
