/* Transpose of float32 and 8-bit (int8/uint8: INT8 plans) tensors on AVX-512.
 *
 * The permutation is reduced first: output dims of 1 dropped, output dims
 * that stay adjacent in the input merged. Then either
 *   - the last output dim is contiguous in the input: rows are copied
 *     (ViT's (0, 2, 1, 3), Swin's window partitions); or
 *   - some other output dim P is the input's contiguous one: for every
 *     combination of the remaining dims, the (P, last) plane is a 2-D
 *     transpose, done in 16x16 register blocks (masked at the edges)
 *     ((0, 2, 3, 1) NCHW->NHWC, (0, 3, 1, 2), (1, 0), (0, 2, 1)).
 * Work items are (outer index, TR_ROWS rows of P, TR_COLS columns of
 * last), one contiguous run of items per thread. Bitwise copies; 8-bit
 * planes are transposed by a plain loop over the same blocks. */
#include <immintrin.h>
#include <string.h>

#include "engine/kernels/ref/ref_tensor.h"
#include "engine/kernels/x86/x86_common.h"
#include "engine/kernels/x86/x86_math_avx512.h"

/* A work item: TR_ROWS rows of P by TR_COLS columns of the last dim. */
#ifndef TR_ROWS
#define TR_ROWS 16
#endif
#ifndef TR_COLS
#define TR_COLS 256
#endif

typedef struct tr_ctx {
    const char *x;
    char *y;
    size_t esize; /* bytes per element: 4 or 1 */
    /* outer dims (all but P and the last, in output order) */
    int n_outer;
    int64_t odims[QD_MAX_RANK], ist[QD_MAX_RANK], ost[QD_MAX_RANK];
    int64_t P, L;   /* tiled: rows (input-contiguous) and columns */
    int64_t src_ld; /* input stride of the last output dim */
    int64_t dst_ld; /* output stride of P */
    int64_t pblocks, lblocks;
    int tiled;
} tr_ctx;

/* In-register transpose of 16 rows of 16 floats. */
static inline __attribute__((always_inline)) QD_X86_AVX512 void tr16x16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int k = 0; k < 16; k += 2) {
        t[k] = _mm512_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm512_unpackhi_ps(r[k], r[k + 1]);
    }
    for (int m = 0; m < 16; m += 4) {
        const __m512d t0 = _mm512_castps_pd(t[m]), t1 = _mm512_castps_pd(t[m + 1]);
        const __m512d t2 = _mm512_castps_pd(t[m + 2]), t3 = _mm512_castps_pd(t[m + 3]);
        u[m] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[m + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[m + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[m + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    /* u[4m + c], 128-bit block q: column 4q + c of rows 4m..4m+3 */
    for (int c = 0; c < 4; c++) {
        const __m512 w0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
        const __m512 w1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
        const __m512 w2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
        const __m512 w3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_f32x4(w0, w2, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(w0, w2, 0xDD);
        r[8 + c] = _mm512_shuffle_f32x4(w1, w3, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(w1, w3, 0xDD);
    }
}

/* dst[i * dld + j] = src[i + j * sld] for i < ni, j < nj (both <= 16). */
static inline __attribute__((always_inline)) QD_X86_AVX512 void tr_block(const float *src, int64_t sld, float *dst, int64_t dld,
                                          int ni, int nj)
{
    __m512 r[16];
    if (ni == 16 && nj == 16) {
        for (int j = 0; j < 16; j++)
            r[j] = _mm512_loadu_ps(src + j * sld);
        tr16x16(r);
        for (int i = 0; i < 16; i++)
            _mm512_storeu_ps(dst + i * dld, r[i]);
        return;
    }
    const __mmask16 mi = qd_x86_tail_mask(ni), mj = qd_x86_tail_mask(nj);
    for (int j = 0; j < 16; j++)
        r[j] = j < nj ? _mm512_maskz_loadu_ps(mi, src + j * sld) : _mm512_setzero_ps();
    tr16x16(r);
    for (int i = 0; i < ni; i++)
        _mm512_mask_storeu_ps(dst + i * dld, mj, r[i]);
}

/* The same for bytes, scalar: 8-bit tensors are small next to the INT8
 * kernels around them. */
static void tr_block_u8(const uint8_t *src, int64_t sld, uint8_t *dst, int64_t dld, int ni, int nj)
{
    for (int i = 0; i < ni; i++)
        for (int j = 0; j < nj; j++)
            dst[i * dld + j] = src[i + j * sld];
}

/* Offsets of outer index o in the input and the output. */
static void outer_offsets(const tr_ctx *c, int64_t o, int64_t *si, int64_t *so)
{
    int64_t a = 0, b = 0;
    for (int d = c->n_outer - 1; d >= 0 && o; d--) {
        const int64_t idx = o % c->odims[d];
        o /= c->odims[d];
        a += idx * c->ist[d];
        b += idx * c->ost[d];
    }
    *si = a;
    *so = b;
}

static QD_X86_AVX512 void tr_range(void *p, int64_t b, int64_t e)
{
    const tr_ctx *c = p;
    if (!c->tiled) {
        /* items are rows of L elements; the outer index advances as an
         * odometer instead of being divided out per row */
        const int64_t L = c->L;
        int64_t idx[QD_MAX_RANK] = {0}, rem = b, si = 0;
        for (int d = c->n_outer - 1; d >= 0; d--) {
            idx[d] = rem % c->odims[d];
            rem /= c->odims[d];
            si += idx[d] * c->ist[d];
        }
        const size_t row = (size_t)L * c->esize;
        char *dst = c->y + (size_t)b * row;
        for (int64_t o = b; o < e; o++, dst += row) {
            /* glibc's memcpy measured faster than an inline zmm loop here,
             * even for ViT's 64-float rows */
            memcpy(dst, c->x + (size_t)si * c->esize, row);
            for (int d = c->n_outer - 1; d >= 0; d--) {
                si += c->ist[d];
                if (++idx[d] < c->odims[d])
                    break;
                si -= c->ist[d] * c->odims[d];
                idx[d] = 0;
            }
        }
        return;
    }
    const int64_t per_outer = c->pblocks * c->lblocks;
    for (int64_t it = b; it < e; it++) {
        const int64_t o = it / per_outer, rem = it % per_outer;
        const int64_t ib = (rem / c->lblocks) * TR_ROWS, jb = (rem % c->lblocks) * TR_COLS;
        const int64_t ie = ib + TR_ROWS < c->P ? ib + TR_ROWS : c->P;
        const int64_t je = jb + TR_COLS < c->L ? jb + TR_COLS : c->L;
        int64_t si, so;
        outer_offsets(c, o, &si, &so);
        for (int64_t j0 = jb; j0 < je; j0 += 16) {
            const int nj = (int)(je - j0 < 16 ? je - j0 : 16);
            for (int64_t i0 = ib; i0 < ie; i0 += 16) {
                const int ni = (int)(ie - i0 < 16 ? ie - i0 : 16);
                const int64_t sof = si + i0 + j0 * c->src_ld, dof = so + i0 * c->dst_ld + j0;
                if (c->esize == 4)
                    tr_block((const float *)c->x + sof, c->src_ld, (float *)c->y + dof, c->dst_ld,
                             ni, nj);
                else
                    tr_block_u8((const uint8_t *)c->x + sof, c->src_ld, (uint8_t *)c->y + dof,
                                c->dst_ld, ni, nj);
            }
        }
    }
}

/* Reads and checks perm for rank r into perm; 0 when invalid. */
static int read_perm(const qd_node *n, int r, int *perm)
{
    const qd_attr *at = qd_node_attr(n, "perm");
    int seen[QD_MAX_RANK] = {0};
    if (at && (at->type != QD_ATTR_INTS || at->n != (size_t)r))
        return 0;
    for (int i = 0; i < r; i++) {
        int64_t p = at ? at->ints[i] : r - 1 - i;
        if (p < 0)
            p += r;
        if (p < 0 || p >= r || seen[p])
            return 0;
        seen[p] = 1;
        perm[i] = (int)p;
    }
    return 1;
}

/* float32, or 8 bits (a Q moved above the Transpose, see
 * passes/propagate_quantize.c) */
static int elem_ok(qd_dtype t)
{
    return t == QD_DT_FLOAT || t == QD_DT_INT8 || t == QD_DT_UINT8;
}

int qd_x86_transpose_supports(const qd_node *n)
{
    if (n->op != QD_OP_TRANSPOSE || n->n_inputs != 1 || n->n_outputs < 1 || !n->outputs[0])
        return 0;
    for (int i = 1; i < n->n_outputs; i++)
        if (n->outputs[i])
            return 0;
    const qd_value *x = n->inputs[0], *y = n->outputs[0];
    if (!x || !qd_value_shape_known(x) || !qd_value_shape_known(y) || !elem_ok(x->dtype) ||
        y->dtype != x->dtype)
        return 0;
    int perm[QD_MAX_RANK];
    if (x->rank < 2 || x->rank > 6 || y->rank != x->rank || !read_perm(n, x->rank, perm))
        return 0;
    for (int i = 0; i < x->rank; i++)
        if (y->dims[i] != x->dims[perm[i]])
            return 0;
    return 1;
}

qd_status qd_x86_transpose(const qd_kernel_args *a)
{
    QD_X86_NO_FUSION(a);
    const qd_tensor *X = qd_nn_in(a, 0);
    qd_tensor *Y = qd_nn_out(a, 0);
    int perm[QD_MAX_RANK];
    if (!qd_x86_cpu_avx512() || !X || !Y || !X->data || !Y->data || !elem_ok(X->dtype) ||
        Y->dtype != X->dtype || X->rank < 1 || Y->rank != X->rank ||
        !read_perm(a->node, X->rank, perm) || X->data == Y->data)
        return qd_ref_transpose(a);
    const int r = X->rank;
    for (int i = 0; i < r; i++)
        if (Y->dims[i] != X->dims[perm[i]])
            return qd_ref_transpose(a);
    const int64_t numel = qd_nn_numel(X);
    if (numel == 0)
        return QD_OK;
    /* input strides per output dim, dims of 1 dropped, adjacent merged */
    int64_t xst[QD_MAX_RANK], s = 1;
    for (int d = r - 1; d >= 0; d--) {
        xst[d] = s;
        s *= X->dims[d];
    }
    int64_t dims[QD_MAX_RANK], st[QD_MAX_RANK];
    int k = 0;
    for (int i = 0; i < r; i++) {
        const int64_t dd = Y->dims[i], ss = xst[perm[i]];
        if (dd == 1)
            continue;
        if (k > 0 && st[k - 1] == ss * dd) {
            dims[k - 1] *= dd;
            st[k - 1] = ss;
        } else {
            dims[k] = dd;
            st[k] = ss;
            k++;
        }
    }
    if (k == 0 || (k == 1 && st[0] == 1)) { /* a copy */
        memcpy(Y->data, X->data, (size_t)numel * qd_dtype_size(X->dtype));
        return QD_OK;
    }
    int64_t ost[QD_MAX_RANK];
    s = 1;
    for (int d = k - 1; d >= 0; d--) {
        ost[d] = s;
        s *= dims[d];
    }
    tr_ctx c;
    memset(&c, 0, sizeof c);
    c.x = X->data;
    c.y = Y->data;
    c.esize = qd_dtype_size(X->dtype);
    c.L = dims[k - 1];
    int p = -1;
    if (st[k - 1] != 1) {
        for (int d = 0; d < k - 1; d++)
            if (st[d] == 1)
                p = d;
        if (p < 0) /* cannot happen: some dim is the input's last */
            return qd_ref_transpose(a);
        c.tiled = 1;
        c.P = dims[p];
        c.src_ld = st[k - 1];
        c.dst_ld = ost[p];
        c.pblocks = (c.P + TR_ROWS - 1) / TR_ROWS;
        c.lblocks = (c.L + TR_COLS - 1) / TR_COLS;
    }
    for (int d = 0; d < k - 1; d++) {
        if (d == p)
            continue;
        c.odims[c.n_outer] = dims[d];
        c.ist[c.n_outer] = st[d];
        c.ost[c.n_outer] = ost[d];
        c.n_outer++;
    }
    int64_t outer = 1;
    for (int d = 0; d < c.n_outer; d++)
        outer *= c.odims[d];
    const int64_t items = c.tiled ? outer * c.pblocks * c.lblocks : outer;
    qd_x86_parallel(a, items, numel, tr_range, &c);
    return QD_OK;
}
