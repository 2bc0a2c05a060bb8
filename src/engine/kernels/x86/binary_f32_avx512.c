/* Add, Sub, Mul, Div on float32 with AVX-512, for the broadcast patterns
 * of ConvNeXt/ViT/ResNet graphs:
 *   SAME     both operands have the output's shape (a flat loop);
 *   SCALAR   one operand has one element;
 *   CHANNEL  one operand F has the output's shape, the other G varies
 *            along one run of dims only: the output is [outer, C, inner]
 *            with G[c] (G = [.., C] against [M, C] is inner = 1, a row:
 *            a bias or layer scale in channels-last; G = [C, 1, 1]
 *            against [N, C, H, W] is a per-channel value over blocks of
 *            H*W). Either operand may be G (Sub and Div keep the order).
 * Other patterns (both operands broadcast, ...) are not claimed.
 * Results are bitwise those of the reference kernel (one IEEE operation
 * per element). The output is cut into one contiguous range per
 * thread. */
#include <immintrin.h>
#include <string.h>

#include "engine/kernels/ref/ref_elementwise.h"
#include "engine/kernels/x86/x86_common.h"
#include "engine/kernels/x86/x86_math_avx512.h"

typedef enum bkind { BK_NONE = 0, BK_SAME, BK_SCALAR, BK_CHANNEL } bkind;

typedef struct bplan {
    bkind kind;
    int g_is_a; /* SCALAR/CHANNEL: the small operand is input 0 */
    int64_t numel, outer, c, inner;
} bplan;

/* Classifies the broadcast of a (ra, da) and b (rb, db) into the output
 * (ro, dout). Returns the kind (BK_NONE when not one of the patterns). */
static bkind classify(int ra, const int64_t *da, int rb, const int64_t *db, int ro,
                      const int64_t *dout, bplan *p)
{
    memset(p, 0, sizeof *p);
    if (ra > ro || rb > ro || ro > QD_MAX_RANK || ra < 0 || rb < 0)
        return BK_NONE;
    /* Per output dim (dims of 1 dropped): is each operand full there (1)
     * or broadcast (0); runs of equal flags merged. */
    int fa[QD_MAX_RANK], fb[QD_MAX_RANK], r = 0;
    int64_t d[QD_MAX_RANK], numel = 1;
    for (int od = 0; od < ro; od++) {
        const int ia = od - (ro - ra), ib = od - (ro - rb);
        const int64_t xa = ia >= 0 ? da[ia] : 1, xb = ib >= 0 ? db[ib] : 1, xo = dout[od];
        if (xo < 0 || (xa != xo && xa != 1) || (xb != xo && xb != 1))
            return BK_NONE;
        numel *= xo;
        if (xo == 1)
            continue;
        const int a_full = xa == xo, b_full = xb == xo;
        if (r > 0 && fa[r - 1] == a_full && fb[r - 1] == b_full) {
            d[r - 1] *= xo;
        } else {
            fa[r] = a_full;
            fb[r] = b_full;
            d[r] = xo;
            r++;
        }
    }
    p->numel = numel;
    if (r == 0 || (r == 1 && fa[0] && fb[0]))
        return p->kind = BK_SAME;
    /* F: full everywhere; G: the other. */
    int a_all = 1, b_all = 1;
    for (int k = 0; k < r; k++) {
        a_all &= fa[k];
        b_all &= fb[k];
    }
    if (!a_all && !b_all)
        return BK_NONE;
    p->g_is_a = !a_all;
    const int *g = p->g_is_a ? fa : fb;
    if (r == 1) /* G broadcast over everything: one element */
        return p->kind = BK_SCALAR;
    /* The merged G flags alternate; G must be full on one run only. */
    if (r == 2) {
        p->outer = g[0] ? 1 : d[0];
        p->c = g[0] ? d[0] : d[1];
        p->inner = g[0] ? d[1] : 1;
    } else if (r == 3 && !g[0]) {
        p->outer = d[0];
        p->c = d[1];
        p->inner = d[2];
    } else {
        return BK_NONE;
    }
    return p->kind = BK_CHANNEL;
}

typedef struct bin_ctx {
    qd_op op;
    bplan plan;
    const float *f, *g; /* F and G (SAME: inputs 0 and 1) */
    float *y;
} bin_ctx;

/* The op on vectors a (left) and b (right). */
#define BIN_OP(op, a, b)                                                                           \
    ((op) == QD_OP_ADD   ? _mm512_add_ps((a), (b))                                                 \
     : (op) == QD_OP_SUB ? _mm512_sub_ps((a), (b))                                                 \
     : (op) == QD_OP_MUL ? _mm512_mul_ps((a), (b))                                                 \
                         : _mm512_div_ps((a), (b)))

/* out[0..n) = L op R with L, R loaded by LOAD_L(i, mask) / LOAD_R. */
#define BIN_SEG(OP, LOAD_L, LOAD_R)                                                                \
    do {                                                                                           \
        int64_t i = 0;                                                                             \
        for (; i + 16 <= n; i += 16) {                                                             \
            const __mmask16 m_ = 0xFFFF;                                                           \
            (void)m_;                                                                              \
            _mm512_storeu_ps(out + i, BIN_OP(OP, LOAD_L(i, m_), LOAD_R(i, m_)));                   \
        }                                                                                          \
        if (i < n) {                                                                               \
            const __mmask16 m_ = qd_x86_tail_mask(n - i);                                          \
            _mm512_mask_storeu_ps(out + i, m_, BIN_OP(OP, LOAD_L(i, m_), LOAD_R(i, m_)));          \
        }                                                                                          \
    } while (0)

#define LD_P(i, m) _mm512_maskz_loadu_ps((m), p + (i))
#define LD_Q(i, m) _mm512_maskz_loadu_ps((m), q + (i))
#define LD_S(i, m) s

/* One op per function so that the compiler sees a constant op. */
#define GEN_SEGS(name, OP)                                                                         \
    static QD_X86_AVX512 void name##_vv(const float *p, const float *q, float *out, int64_t n)    \
    {                                                                                              \
        BIN_SEG(OP, LD_P, LD_Q);                                                                   \
    }                                                                                              \
    static QD_X86_AVX512 void name##_vs(const float *p, float sc, float *out, int64_t n)          \
    {                                                                                              \
        const __m512 s = _mm512_set1_ps(sc);                                                       \
        BIN_SEG(OP, LD_P, LD_S);                                                                   \
    }                                                                                              \
    static QD_X86_AVX512 void name##_sv(float sc, const float *p, float *out, int64_t n)          \
    {                                                                                              \
        const __m512 s = _mm512_set1_ps(sc);                                                       \
        BIN_SEG(OP, LD_S, LD_P);                                                                   \
    }
GEN_SEGS(add, QD_OP_ADD)
GEN_SEGS(sub, QD_OP_SUB)
GEN_SEGS(mul, QD_OP_MUL)
GEN_SEGS(div, QD_OP_DIV)

typedef void (*vv_fn)(const float *, const float *, float *, int64_t);
typedef void (*vs_fn)(const float *, float, float *, int64_t);
typedef void (*sv_fn)(float, const float *, float *, int64_t);

static QD_X86_AVX512 void bin_range(void *pc, int64_t b, int64_t e)
{
    const bin_ctx *c = pc;
    vv_fn vv;
    vs_fn vs;
    sv_fn sv;
    switch (c->op) {
    case QD_OP_ADD: vv = add_vv, vs = add_vs, sv = add_sv; break;
    case QD_OP_SUB: vv = sub_vv, vs = sub_vs, sv = sub_sv; break;
    case QD_OP_MUL: vv = mul_vv, vs = mul_vs, sv = mul_sv; break;
    default: vv = div_vv, vs = div_vs, sv = div_sv; break;
    }
    const float *f = c->f, *g = c->g;
    float *y = c->y;
    const int ga = c->plan.g_is_a;
    switch (c->plan.kind) {
    case BK_SAME: vv(f + b, g + b, y + b, e - b); break;
    case BK_SCALAR:
        if (ga)
            sv(g[0], f + b, y + b, e - b);
        else
            vs(f + b, g[0], y + b, e - b);
        break;
    case BK_CHANNEL: {
        const int64_t C = c->plan.c, inner = c->plan.inner;
        if (inner == 1) {
            /* rows of C against g[0..C) */
            for (int64_t i = b; i < e;) {
                const int64_t j = i % C, len = C - j < e - i ? C - j : e - i;
                if (ga)
                    vv(g + j, f + i, y + i, len);
                else
                    vv(f + i, g + j, y + i, len);
                i += len;
            }
        } else {
            /* blocks of inner against one g[c] */
            for (int64_t i = b; i < e;) {
                const int64_t row = i / inner, j = i % inner;
                const int64_t len = inner - j < e - i ? inner - j : e - i;
                const float s = g[row % C];
                if (ga)
                    sv(s, f + i, y + i, len);
                else
                    vs(f + i, s, y + i, len);
                i += len;
            }
        }
        break;
    }
    default: break;
    }
}

static int is_binary_op(qd_op op)
{
    return op == QD_OP_ADD || op == QD_OP_SUB || op == QD_OP_MUL || op == QD_OP_DIV;
}

int qd_x86_binary_supports(const qd_node *n)
{
    if (!is_binary_op(n->op) || n->n_inputs != 2)
        return 0;
    const qd_value *a = n->inputs[0], *b = n->inputs[1], *y = qd_x86_out(n, 0);
    if (!qd_x86_f32_known(a) || !qd_x86_f32_known(b) || !qd_x86_f32_known(y))
        return 0;
    for (int i = 1; i < n->n_outputs; i++)
        if (n->outputs[i])
            return 0;
    /* opset < 7 broadcast attributes: leave to the reference */
    if (qd_node_attr(n, "broadcast") || qd_node_attr(n, "axis"))
        return 0;
    bplan p;
    return classify(a->rank, a->dims, b->rank, b->dims, y->rank, y->dims, &p) != BK_NONE;
}

qd_status qd_x86_binary(const qd_kernel_args *a)
{
    QD_X86_NO_FUSION(a);
    const qd_tensor *A = qd_nn_in(a, 0), *B = qd_nn_in(a, 1);
    qd_tensor *Y = qd_nn_out(a, 0);
    const qd_op op = a->node->op;
    bplan p;
    if (!qd_x86_cpu_avx512() || !is_binary_op(op) || a->n_inputs != 2 || !qd_x86_tensor_f32(A) ||
        !qd_x86_tensor_f32(B) || !qd_x86_tensor_f32(Y) ||
        classify(A->rank, A->dims, B->rank, B->dims, Y->rank, Y->dims, &p) == BK_NONE ||
        p.numel != qd_nn_numel(Y))
        return qd_ref_binary(a);
    if (p.numel == 0)
        return QD_OK;
    bin_ctx c = {op, p, A->data, B->data, Y->data};
    if (p.kind != BK_SAME && p.g_is_a) {
        c.f = B->data;
        c.g = A->data;
    }
    qd_x86_parallel(a, p.numel, p.numel, bin_range, &c);
    return QD_OK;
}
