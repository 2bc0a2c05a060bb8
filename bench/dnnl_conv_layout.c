/* Float32 conv through the oneDNN kernels (src/engine/kernels/dnnl) with the
 * activations in NCHW (computed plain, or channels-last inside with
 * reorders) or in NHWC, on ResNet-50-like layers; and two ViT-B matmuls
 * for scale. Prints ms and GFLOP/s
 * (best of many timed batches, so that a busy machine hurts less).
 *
 * Build (from the repository, after building the library in build/):
 *   cc -O2 -std=c11 -D_DEFAULT_SOURCE -fopenmp -Iinclude -Isrc bench/dnnl_conv_layout.c \
 *      build/libqdeploy.a -ldnnl -lprotobuf-c -lz -lm -o /tmp/dnnl_conv_layout
 *   OMP_NUM_THREADS=2 /tmp/dnnl_conv_layout [substring of the layer names to run]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/kernels/dnnl/dnnl_kernels.h"
#include "ir/graph.h"

typedef struct layer {
    const char *name;
    int64_t c, h, m, k, s, group;
    int residual_relu; /* fused Add(residual) + Relu, else fused Relu */
} layer;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static qd_value *val(qd_graph *g, int rank, const int64_t *dims)
{
    qd_value *v = qd_graph_new_value(g, NULL, "v");
    qd_value_set_shape(v, QD_DT_FLOAT, rank, dims);
    return v;
}

static void fill(qd_tensor *t)
{
    float *p = t->data;
    for (int64_t i = 0; i < qd_numel(t->rank, t->dims); i++)
        p[i] = (float)((i * 7919) % 2001 - 1000) / 1000.f;
}

/* Best ms per conv over `reps` batches of ~50 ms each. */
static double time_layer(const layer *L, qd_dnnl_layout layout, qd_dnnl_conv_policy policy,
                         const char **impl_name)
{
    qd_graph *g = qd_graph_new();
    int64_t pad = L->k / 2, oh = (L->h + 2 * pad - L->k) / L->s + 1;
    int64_t xd[4] = {1, L->c, L->h, L->h}, wd[4] = {L->m, L->c / L->group, L->k, L->k},
            yd[4] = {1, L->m, oh, oh};
    qd_tensor *xt = qd_tensor_new(QD_DT_FLOAT, 4, xd), *wt = qd_tensor_new(QD_DT_FLOAT, 4, wd);
    qd_tensor *yt = qd_tensor_new(QD_DT_FLOAT, 4, yd), *rt = qd_tensor_new(QD_DT_FLOAT, 4, yd);
    fill(xt);
    fill(wt);
    fill(rt);
    qd_value *x = val(g, 4, xd), *w = val(g, 4, wd), *y = val(g, 4, yd);
    qd_value_set_const(w, wt);
    qd_value *ins[2] = {x, w};
    qd_node *conv = qd_graph_add_node(g, "Conv", "", "conv", ins, 2, &y, 1);
    int64_t pads[4] = {pad, pad, pad, pad}, strides[2] = {L->s, L->s};
    qd_node_set_attr_ints(conv, "pads", pads, 4);
    qd_node_set_attr_ints(conv, "strides", strides, 2);
    if (L->group > 1)
        qd_node_set_attr_int(conv, "group", L->group);
    const qd_node *fused[2];
    int n_fused = 0;
    const qd_tensor *in[3] = {xt, wt, rt};
    int n_in = 2;
    qd_value *cur = y;
    if (L->residual_relu) {
        qd_value *r = val(g, 4, yd), *a = val(g, 4, yd);
        qd_value *add_in[2] = {cur, r};
        fused[n_fused++] = qd_graph_add_node(g, "Add", "", "add", add_in, 2, &a, 1);
        in[n_in++] = rt;
        cur = a;
    }
    qd_value *out = val(g, 4, yd);
    fused[n_fused++] = qd_graph_add_node(g, "Relu", "", "relu", &cur, 1, &out, 1);
    qd_dnnl_set_activation_layout(layout);
    qd_dnnl_set_conv_policy(policy);
    qd_kernel_impl impl = qd_dnnl_impl(conv);
    qd_tensor *outs[1] = {yt};
    qd_kernel_args a = {conv, g, n_in, in, 1, outs, 2, NULL, fused, n_fused};
    void *state = NULL;
    if (impl.prepare(&a, &state) != QD_OK) {
        fprintf(stderr, "%s\n", qd_graph_error(g));
        exit(1);
    }
    a.state = state;
    static char keep[8][64]; /* the name lives in the primitive */
    static int kn;
    snprintf(keep[kn % 8], sizeof keep[0], "%s", qd_dnnl_state_impl(state));
    *impl_name = keep[kn++ % 8];
    for (int i = 0; i < 3; i++)
        impl.run(&a);
    double best = 1e30;
    for (int r = 0; r < 15; r++) {
        int n = 0;
        double t0 = now_ms(), t;
        do {
            impl.run(&a);
            n++;
            t = now_ms() - t0;
        } while (t < 50);
        if (t / n < best)
            best = t / n;
    }
    impl.release(state);
    qd_tensor_delete(xt);
    qd_tensor_delete(yt);
    qd_tensor_delete(rt);
    qd_graph_delete(g);
    qd_dnnl_set_activation_layout(QD_DNNL_NCHW);
    qd_dnnl_set_conv_policy(QD_DNNL_CONV_AUTO);
    return best;
}

/* MatMul [b, m, k] x [k, n] (B constant) or [b, m, k] x [b, k, n]. */
static double time_matmul(int64_t b, int64_t m, int64_t k, int64_t n, int b_const,
                          const char **impl_name)
{
    qd_graph *g = qd_graph_new();
    int64_t ad[3] = {b, m, k}, bd3[3] = {b, k, n}, yd[3] = {b, m, n};
    int brank = b_const ? 2 : 3;
    const int64_t *bd = b_const ? bd3 + 1 : bd3;
    qd_tensor *at = qd_tensor_new(QD_DT_FLOAT, 3, ad), *bt = qd_tensor_new(QD_DT_FLOAT, brank, bd);
    qd_tensor *yt = qd_tensor_new(QD_DT_FLOAT, 3, yd);
    fill(at);
    fill(bt);
    qd_value *A = val(g, 3, ad), *B = val(g, brank, bd), *Y = val(g, 3, yd);
    if (b_const)
        qd_value_set_const(B, bt);
    qd_value *ins[2] = {A, B};
    qd_node *mm = qd_graph_add_node(g, "MatMul", "", "mm", ins, 2, &Y, 1);
    qd_kernel_impl impl = qd_dnnl_impl(mm);
    const qd_tensor *in[2] = {at, bt};
    qd_tensor *outs[1] = {yt};
    qd_kernel_args a = {mm, g, 2, in, 1, outs, 2, NULL, NULL, 0};
    void *state = NULL;
    if (impl.prepare(&a, &state) != QD_OK) {
        fprintf(stderr, "%s\n", qd_graph_error(g));
        exit(1);
    }
    a.state = state;
    static char keep[4][64];
    static int kn;
    snprintf(keep[kn % 4], sizeof keep[0], "%s", qd_dnnl_state_impl(state));
    *impl_name = keep[kn++ % 4];
    double best = 1e30;
    for (int r = 0; r < 15; r++) {
        int cnt = 0;
        double t0 = now_ms(), t;
        do {
            impl.run(&a);
            cnt++;
            t = now_ms() - t0;
        } while (t < 50);
        if (t / cnt < best)
            best = t / cnt;
    }
    impl.release(state);
    qd_tensor_delete(at);
    if (!b_const)
        qd_tensor_delete(bt);
    qd_tensor_delete(yt);
    qd_graph_delete(g);
    return best;
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    static const layer layers[] = {
        {"res2 3x3 64->64 56x56", 64, 56, 64, 3, 1, 1, 0},
        {"res2 1x1 64->256 +add", 64, 56, 256, 1, 1, 1, 1},
        {"res2 1x1 256->64", 256, 56, 64, 1, 1, 1, 0},
        {"res4 3x3 256->256 14x14", 256, 14, 256, 3, 1, 1, 0},
        {"stem 7x7/2 3->64 224", 3, 224, 64, 7, 2, 1, 0},
        {"dw 3x3 144 56x56", 144, 56, 144, 3, 1, 144, 0},
    };
    const struct {
        const char *name;
        qd_dnnl_layout layout;
        qd_dnnl_conv_policy policy;
    } modes[] = {
        {"nchw plain", QD_DNNL_NCHW, QD_DNNL_CONV_PLAIN},
        {"nchw auto", QD_DNNL_NCHW, QD_DNNL_CONV_AUTO},
        {"nhwc", QD_DNNL_NHWC, QD_DNNL_CONV_AUTO},
    };
    printf("%-26s %-11s %-26s %9s %9s\n", "layer", "activations", "oneDNN impl", "ms", "GFLOP/s");
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) {
        const layer *L = &layers[i];
        if (only && !strstr(L->name, only))
            continue;
        int64_t oh = (L->h + 2 * (L->k / 2) - L->k) / L->s + 1;
        double flop = 2.0 * (double)L->m * (double)(oh * oh) * (double)(L->c / L->group) *
                      (double)(L->k * L->k);
        for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
            const char *impl = "?";
            double ms = time_layer(L, modes[m].layout, modes[m].policy, &impl);
            printf("%-26s %-11s %-26s %9.3f %9.1f\n", L->name, modes[m].name, impl, ms,
                   flop / ms / 1e6);
        }
    }
    static const struct {
        const char *name;
        int64_t b, m, k, n;
        int b_const;
    } mms[] = {
        {"vit mlp 197x768 * 768x3072", 1, 197, 768, 3072, 1},
        {"vit attn 12x197x64 * 64x197", 12, 197, 64, 197, 0},
    };
    for (size_t i = 0; i < sizeof mms / sizeof *mms; i++) {
        if (only && !strstr(mms[i].name, only))
            continue;
        const char *impl = "?";
        double ms = time_matmul(mms[i].b, mms[i].m, mms[i].k, mms[i].n, mms[i].b_const, &impl);
        double flop = 2.0 * (double)(mms[i].b * mms[i].m * mms[i].k * mms[i].n);
        printf("%-26s %-11s %-26s %9.3f %9.1f\n", mms[i].name, "-", impl, ms, flop / ms / 1e6);
    }
    return 0;
}
