/* Depthwise 2-D convolution, float32, channels-last, AVX-512; optionally
 * with the LayerNormalization over channels that follows it (ConvNeXt's
 * dwconv 7x7 -> permute -> LayerNorm), written as float32 or int8.
 *
 * Why our own: oneDNN 2.6 runs a channels-last depthwise conv on its
 * brdgmm kernel well below the FMA peak, and the LayerNorm after it is
 * one more pass over the tensor. Here a block of output pixels' channels
 * is computed into a small per-thread buffer (64 KiB on the stack) and
 * normalized (and quantized) there, so the float conv output never
 * reaches memory.
 *
 * Register blocking: 8 output pixels x 2 output rows x 16 channels per
 * block: each of the K + 1 input rows is loaded once (8 + K - 1 vectors)
 * and feeds the K taps of both output rows. Cases: K = 3, 5, 7, stride 1,
 * dilation 1, pads K/2 ("same"), group = C_in = C_out, constant weights,
 * optional constant bias. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/x86/x86_common.h"
#include "engine/kernels/x86/x86_math_avx512.h"

#define DW_PIX 8               /* output pixels per register block */
#define DW_BUF_FLOATS 16384    /* the per-thread LayerNorm buffer (64 KiB) */

typedef struct dw_state {
    int k;          /* kernel size (K x K) */
    int64_t c, cp;  /* channels, rounded up to 16 */
    /* [cp/16][K*K][16], zero padded, 64-byte aligned inside w_mem: a
     * channel block's taps in consecutive lines (with a stride of C floats
     * they would share a few L1 sets with the input's lines) */
    float *w;
    void *w_mem;
    float *b;       /* [cp], zeros without a bias */
} dw_state;

typedef struct dw_ctx {
    const dw_state *s;
    const float *x; /* [N][H][W][C] */
    int64_t h, w;   /* spatial size (input = output) */
    int64_t chunk, n_chunks; /* pixels of a row per work item */
    int64_t row_pairs;       /* ceil(H / 2) */
    float *y;       /* float output [N][H][W][C] */
    int8_t *yq;     /* int8 output (fused LayerNorm + QuantizeLinear), else NULL */
    /* the LayerNorm over C after the conv; ln_scale NULL: none */
    const float *ln_scale, *ln_bias;
    double eps;
    float qscale;
} dw_ctx;

/* One block: DW_PIX output pixels from ow0 (npix of them stored) of output
 * rows oh and, when two_rows, oh + 1; channels [cb, cb + 16) under mask m;
 * into dst0 / dst1 (pixel stride ldd floats). Each input row is loaded
 * once and feeds both output rows: half the loads per FMA, and 16
 * independent accumulator chains to cover the FMA latency. */
static inline QD_X86_AVX512 __attribute__((always_inline)) void
dw_block(const dw_ctx *c, const float *x_img, int64_t oh, int two_rows, int64_t ow0,
         int64_t npix, int64_t cb, __mmask16 m, float *dst0, float *dst1, int64_t ldd,
         const int K)
{
    const dw_state *s = c->s;
    const int64_t C = s->c, W = c->w, pad = K / 2;
    const float *wblk = s->w + (cb / 16) * K * K * 16;
    __m512 acc0[DW_PIX], acc1[DW_PIX];
    const __m512 bias = _mm512_loadu_ps(s->b + cb);
#pragma GCC unroll 8
    for (int j = 0; j < DW_PIX; j++)
        acc0[j] = acc1[j] = bias;
    for (int r = 0; r <= K; r++) {
        const int64_t ih = oh - pad + r;
        if (ih < 0 || ih >= c->h || (r == K && !two_rows))
            continue;
        const float *row = x_img + ih * W * C + cb;
        __m512 in[DW_PIX + 6];
        /* a masked-off load touches no memory: the padding reads zeros */
#pragma GCC unroll 14
        for (int i = 0; i < DW_PIX + K - 1; i++) {
            const int64_t iw = ow0 - pad + i;
            in[i] = _mm512_maskz_loadu_ps(iw >= 0 && iw < W ? m : 0, row + iw * C);
        }
        /* the next block's new pixels of this row, into L1 meanwhile */
#pragma GCC unroll 8
        for (int q = 0; q < DW_PIX; q++)
            _mm_prefetch((const char *)(row + (ow0 + DW_PIX + K - 1 - pad + q) * C),
                         _MM_HINT_T0);
        if (r < K) { /* kernel row r of output row oh */
#pragma GCC unroll 7
            for (int kw = 0; kw < K; kw++) {
                const __m512 wv = _mm512_load_ps(wblk + (r * K + kw) * 16);
#pragma GCC unroll 8
                for (int j = 0; j < DW_PIX; j++)
                    acc0[j] = _mm512_fmadd_ps(in[j + kw], wv, acc0[j]);
            }
        }
        if (r > 0 && two_rows) { /* kernel row r - 1 of output row oh + 1 */
#pragma GCC unroll 7
            for (int kw = 0; kw < K; kw++) {
                const __m512 wv = _mm512_load_ps(wblk + ((r - 1) * K + kw) * 16);
#pragma GCC unroll 8
                for (int j = 0; j < DW_PIX; j++)
                    acc1[j] = _mm512_fmadd_ps(in[j + kw], wv, acc1[j]);
            }
        }
    }
    /* constant indices only, so that the accumulators stay in registers */
#pragma GCC unroll 8
    for (int j = 0; j < DW_PIX; j++)
        if (j < npix) {
            _mm512_mask_storeu_ps(dst0 + j * ldd + cb, m, acc0[j]);
            if (two_rows)
                _mm512_mask_storeu_ps(dst1 + j * ldd + cb, m, acc1[j]);
        }
}

/* Pixels [ow0, ow1) of output rows oh (and oh + 1 when two_rows) of
 * image img, every channel, into dst0 (and dst1). */
static QD_X86_AVX512 void dw_pixels(const dw_ctx *c, int64_t img, int64_t oh, int two_rows,
                                    int64_t ow0, int64_t ow1, float *dst0, float *dst1,
                                    int64_t ldd)
{
    const dw_state *s = c->s;
    const int64_t C = s->c;
    const float *x_img = c->x + img * c->h * c->w * C;
    for (int64_t cb = 0; cb < C; cb += 16) {
        const __mmask16 m = qd_x86_tail_mask(C - cb < 16 ? C - cb : 16);
        for (int64_t ow = ow0; ow < ow1; ow += DW_PIX) {
            const int64_t np = ow1 - ow < DW_PIX ? ow1 - ow : DW_PIX;
            float *d0 = dst0 + (ow - ow0) * ldd, *d1 = dst1 + (ow - ow0) * ldd;
            /* constant K: the tap loops unroll and `in` stays in registers */
            if (s->k == 7)
                dw_block(c, x_img, oh, two_rows, ow, np, cb, m, d0, d1, ldd, 7);
            else if (s->k == 5)
                dw_block(c, x_img, oh, two_rows, ow, np, cb, m, d0, d1, ldd, 5);
            else
                dw_block(c, x_img, oh, two_rows, ow, np, cb, m, d0, d1, ldd, 3);
        }
    }
}

/* Work items: (image, pair of output rows, chunk of pixels). */
static QD_X86_AVX512 void dw_items(void *p, int64_t i0, int64_t i1)
{
    const dw_ctx *c = p;
    const int64_t C = c->s->c;
    /* one spare cache line per pixel: with a stride of C floats the
     * buffer's lines would share few L1 sets */
    const int64_t ldb = c->s->cp + 16;
    float buf[DW_BUF_FLOATS] __attribute__((aligned(64)));
    for (int64_t it = i0; it < i1; it++) {
        const int64_t pair = it / c->n_chunks, ow0 = (it % c->n_chunks) * c->chunk;
        const int64_t ow1 = ow0 + c->chunk < c->w ? ow0 + c->chunk : c->w;
        const int64_t img = pair / c->row_pairs, oh = (pair % c->row_pairs) * 2;
        const int two_rows = oh + 1 < c->h;
        const int64_t at = ((img * c->h + oh) * c->w + ow0) * C; /* first output element */
        if (!c->ln_scale) {
            dw_pixels(c, img, oh, two_rows, ow0, ow1, c->y + at, c->y + at + c->w * C, C);
            continue;
        }
        float *b1 = buf + c->chunk * ldb;
        dw_pixels(c, img, oh, two_rows, ow0, ow1, buf, b1, ldb);
        for (int r = 0; r <= two_rows; r++) {
            const float *src = r ? b1 : buf;
            const int64_t o = at + r * c->w * C;
            for (int64_t w = 0; w < ow1 - ow0; w++)
                qd_x86_layernorm_row(src + w * ldb, C, c->ln_scale, c->ln_bias, c->eps,
                                     c->yq ? NULL : c->y + o + w * C,
                                     c->yq ? c->yq + o + w * C : NULL, c->qscale);
        }
    }
}

int qd_x86_dwconv_nhwc_supports(const qd_node *n)
{
    if (!qd_x86_cpu_avx512() || n->op != QD_OP_CONV || n->n_inputs < 2 ||
        !qd_x86_f32_known(n->inputs[0]) || !qd_x86_f32_known(qd_x86_out(n, 0)))
        return 0;
    const qd_value *x = n->inputs[0], *w = n->inputs[1], *b = qd_x86_in(n, 2);
    if (x->rank != 4 || !w->konst || w->konst->dtype != QD_DT_FLOAT || w->konst->rank != 4)
        return 0;
    const int64_t C = x->dims[1], K = w->konst->dims[2];
    if (w->konst->dims[0] != C || w->konst->dims[1] != 1 || w->konst->dims[3] != K ||
        (K != 3 && K != 5 && K != 7))
        return 0;
    if (b && (!b->konst || b->konst->dtype != QD_DT_FLOAT || qd_value_numel(b) != C))
        return 0;
    const qd_value *y = n->outputs[0];
    if (y->rank != 4 || memcmp(x->dims, y->dims, 4 * sizeof *x->dims) != 0)
        return 0;
    int64_t group;
    if (!qd_x86_attr_int(n, "group", 1, &group) || group != C)
        return 0;
    const qd_attr *a = qd_node_attr(n, "auto_pad");
    if (a && !(a->type == QD_ATTR_STRING && !strcmp(a->s, "NOTSET")))
        return 0;
    const char *ones[] = {"strides", "dilations"};
    for (int i = 0; i < 2; i++) {
        a = qd_node_attr(n, ones[i]);
        if (a && (a->type != QD_ATTR_INTS || a->n != 2 || a->ints[0] != 1 || a->ints[1] != 1))
            return 0;
    }
    a = qd_node_attr(n, "pads");
    if (!a || a->type != QD_ATTR_INTS || a->n != 4)
        return 0;
    for (int i = 0; i < 4; i++)
        if (a->ints[i] != K / 2)
            return 0;
    a = qd_node_attr(n, "kernel_shape");
    if (a && (a->type != QD_ATTR_INTS || a->n != 2 || a->ints[0] != K || a->ints[1] != K))
        return 0;
    return 1;
}

int qd_x86_dwconv_layernorm_ok(int64_t channels)
{
    return 2 * (((channels + 15) & ~(int64_t)15) + 16) * DW_PIX <= DW_BUF_FLOATS;
}

void qd_x86_dwconv_release(void *state)
{
    dw_state *s = state;
    if (!s)
        return;
    qd_free(s->w_mem);
    qd_free(s->b);
    qd_free(s);
}

qd_status qd_x86_dwconv_prepare(const qd_kernel_args *a, void **state)
{
    const qd_tensor *W = qd_nn_in(a, 1), *B = qd_nn_in(a, 2);
    if (!W || !qd_x86_tensor_f32(W) || W->rank != 4 || (B && !qd_x86_tensor_f32(B)))
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED, "depthwise conv: weights not float32 4-D");
    dw_state *s = qd_calloc(1, sizeof *s);
    if (!s)
        return qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->k = (int)W->dims[2];
    s->c = W->dims[0];
    s->cp = (s->c + 15) & ~(int64_t)15;
    const int64_t taps = (int64_t)s->k * s->k;
    s->w_mem = qd_calloc((size_t)(taps * s->cp + 16), sizeof *s->w);
    s->w = s->w_mem ? (float *)(((uintptr_t)s->w_mem + 63) & ~(uintptr_t)63) : NULL;
    s->b = qd_calloc((size_t)s->cp, sizeof *s->b);
    if (!s->w || !s->b) {
        qd_x86_dwconv_release(s);
        return qd_nn_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    const float *w = W->data;
    for (int64_t ch = 0; ch < s->c; ch++)
        for (int64_t t = 0; t < taps; t++)
            s->w[((ch / 16) * taps + t) * 16 + ch % 16] = w[ch * taps + t];
    if (B)
        memcpy(s->b, B->data, (size_t)s->c * sizeof *s->b);
    *state = s;
    return QD_OK;
}

qd_status qd_x86_dwconv_nhwc(const qd_kernel_args *a)
{
    const dw_state *s = a->state;
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    /* fused: [Transpose,] LayerNormalization; its Scale and B follow the
     * conv's three inputs */
    const qd_node *ln = a->n_fused ? a->fused[a->n_fused - 1] : NULL;
    const int q8 = ln && a->quant && a->quant->dst_scale > 0.0f;
    if (!s || !qd_x86_tensor_f32(X) || X->rank != 4 || X->layout != QD_LAYOUT_NHWC ||
        X->dims[1] != s->c || (q8 ? Y->dtype != QD_DT_INT8 : !qd_x86_tensor_f32(Y)) ||
        qd_nn_numel(Y) != qd_nn_numel(X) || (ln && ln->op != QD_OP_LAYER_NORMALIZATION) ||
        (ln && !qd_x86_dwconv_layernorm_ok(s->c)))
        return qd_nn_fail(a, QD_STATUS_UNSUPPORTED,
                          "depthwise conv: a case the channels-last kernel was not planned for");
    dw_ctx c = {.s = s, .x = X->data, .h = X->dims[2], .w = X->dims[3]};
    if (ln) {
        const qd_tensor *S = qd_nn_in(a, 3), *LB = qd_nn_in(a, 4);
        float eps;
        qd_status st = qd_node_attr_float(a->graph, ln, "epsilon", 1e-5f, &eps);
        if (st != QD_OK)
            return st;
        if (!S || !qd_x86_tensor_f32(S) || qd_nn_numel(S) != s->c ||
            (LB && (!qd_x86_tensor_f32(LB) || qd_nn_numel(LB) != s->c)))
            return qd_nn_fail(a, QD_STATUS_UNSUPPORTED,
                              "depthwise conv + LayerNorm: scale or bias not [C] float32");
        c.ln_scale = S->data;
        c.ln_bias = LB ? LB->data : NULL;
        c.eps = eps;
    }
    if (q8) {
        c.yq = Y->data;
        c.qscale = a->quant->dst_scale;
    } else {
        c.y = Y->data;
    }
    /* whole rows unless the LayerNorm buffer needs smaller pieces */
    c.chunk = c.w;
    if (ln && 2 * c.chunk * (s->cp + 16) > DW_BUF_FLOATS)
        c.chunk = DW_BUF_FLOATS / (2 * (s->cp + 16)) / DW_PIX * DW_PIX;
    c.n_chunks = (c.w + c.chunk - 1) / c.chunk;
    c.row_pairs = (c.h + 1) / 2;
    const int64_t items = X->dims[0] * c.row_pairs * c.n_chunks;
    qd_x86_parallel(a, items, qd_nn_numel(X) * s->k * s->k, dw_items, &c);
    return QD_OK;
}
