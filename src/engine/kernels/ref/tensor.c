/* Reference layout and shape-computation kernels: data movement by element
 * size, so one implementation serves every dtype. Outputs come shaped; each
 * kernel recomputes what it needs from attributes and inputs and checks it
 * against the output's dims before touching memory. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/ref/ref_elementwise.h"
#include "engine/kernels/ref/ref_ew_types.h"
#include "engine/kernels/ref/ref_tensor.h"

/* ---- helpers ---- */

static void contiguous_strides(int rank, const int64_t *dims, int64_t *st)
{
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        st[d] = s;
        s *= dims[d];
    }
}

static qd_status need_in(const qd_kernel_args *a, int i)
{
    if (a->n_inputs <= i || !qd_ref_tensor_ok(a->inputs[i]))
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "input %d missing or malformed", i);
    return QD_OK;
}

static qd_status need_out(const qd_kernel_args *a, int i)
{
    if (a->n_outputs <= i || !qd_ref_tensor_ok(a->outputs[i]))
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "output %d missing or malformed", i);
    return QD_OK;
}

/* The optional input i, or NULL when absent or omitted. */
static const qd_tensor *opt_in(const qd_kernel_args *a, int i)
{
    return a->n_inputs > i ? a->inputs[i] : NULL;
}

/* Reads a rank <= 1 int32/int64 tensor into out (at most cap values). */
static qd_status read_ints(const qd_kernel_args *a, const qd_tensor *t, const char *what,
                           int64_t *out, int cap, int *count)
{
    if (!qd_ref_tensor_ok(t) || t->rank > 1 || (t->dtype != QD_DT_INT64 && t->dtype != QD_DT_INT32))
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "'%s' must be a 1-D int32/int64 tensor",
                           what);
    int64_t n = qd_numel(t->rank, t->dims);
    if (n > cap)
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "'%s' has %lld values, at most %d", what,
                           (long long)n, cap);
    for (int64_t i = 0; i < n; i++)
        out[i] = t->dtype == QD_DT_INT64 ? ((const int64_t *)t->data)[i]
                                         : ((const int32_t *)t->data)[i];
    *count = (int)n;
    return QD_OK;
}

/* An integer list given as input `idx` (newer opsets) or attribute `attr`
 * (older ones). *count = -1 when neither is given. */
static qd_status int_list(const qd_kernel_args *a, int idx, const char *attr, int64_t *out,
                          int cap, int *count)
{
    *count = -1;
    const qd_tensor *t = opt_in(a, idx);
    if (t)
        return read_ints(a, t, attr, out, cap, count);
    const int64_t *v;
    size_t n;
    qd_status st = qd_node_attr_ints(a->graph, a->node, attr, &v, &n);
    if (st != QD_OK || !qd_node_attr(a->node, attr))
        return st;
    if (n > (size_t)cap)
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "'%s' has %zu values, at most %d", attr, n,
                           cap);
    if (n)
        memcpy(out, v, n * sizeof *v);
    *count = (int)n;
    return QD_OK;
}

static qd_status norm_axis(const qd_kernel_args *a, int64_t axis, int rank, int *out)
{
    if (axis < -(int64_t)rank || axis >= rank)
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "axis %lld out of range for rank %d",
                           (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return QD_OK;
}

/* Copies elements of size es into a contiguous dst of shape dims, reading
 * src (already at the first element) with element strides st (0 to
 * broadcast, negative to walk backwards). Dims of 1 are dropped and dims
 * that stay contiguous merged; a trailing 2-D transpose goes by tiles so
 * that both sides stay in cache. */
#define TILE 32
#define GEN_TILE(T)                                                                                \
    static void tile2d_##T(T *dst, const T *src, int64_t m, int64_t n, int64_t sn)                 \
    {                                                                                              \
        for (int64_t i0 = 0; i0 < m; i0 += TILE)                                                   \
            for (int64_t j0 = 0; j0 < n; j0 += TILE) {                                             \
                int64_t i1 = i0 + TILE < m ? i0 + TILE : m, j1 = j0 + TILE < n ? j0 + TILE : n;    \
                for (int64_t i = i0; i < i1; i++)                                                  \
                    for (int64_t j = j0; j < j1; j++)                                              \
                        dst[i * n + j] = src[i + j * sn];                                          \
            }                                                                                      \
    }                                                                                              \
    static void row_##T(T *dst, const T *src, int64_t n, int64_t s)                                \
    {                                                                                              \
        for (int64_t j = 0; j < n; j++)                                                            \
            dst[j] = src[j * s];                                                                   \
    }
GEN_TILE(uint8_t)
GEN_TILE(uint16_t)
GEN_TILE(uint32_t)
GEN_TILE(uint64_t)

static void strided_copy(const qd_kernel_args *a, void *dst, const void *src, size_t es, int rank,
                         const int64_t *dims_in, const int64_t *st_in)
{
    int64_t dims[QD_MAX_RANK], st[QD_MAX_RANK];
    int r = 0;
    int64_t numel = 1;
    for (int d = 0; d < rank; d++) {
        numel *= dims_in[d];
        if (dims_in[d] == 1)
            continue;
        if (r > 0 && st[r - 1] == st_in[d] * dims_in[d]) {
            dims[r - 1] *= dims_in[d];
            st[r - 1] = st_in[d];
        } else {
            dims[r] = dims_in[d];
            st[r] = st_in[d];
            r++;
        }
    }
    if (numel == 0)
        return;
    if (r == 0) {
        memcpy(dst, src, es);
        return;
    }
    /* The unit of work: a 2-D tile block (m x n) or a row (n). */
    const int tiled =
        r >= 2 && st[r - 2] == 1 && st[r - 1] != 1 && (es == 1 || es == 2 || es == 4 || es == 8);
    const int inner_dims = tiled ? 2 : 1;
    const int64_t m = tiled ? dims[r - 2] : 1, n = dims[r - 1];
    const int64_t rows = numel / (m * n);
    int nt = qd_ref_nthreads(a);
    (void)nt;
    QD_REF_OMP_FOR(numel >= QD_REF_PAR_MIN && rows > 1, nt)
    for (int64_t row = 0; row < rows; row++) {
        int64_t off = 0, rem = row;
        for (int d = r - 1 - inner_dims; d >= 0 && rem; d--) {
            off += (rem % dims[d]) * st[d];
            rem /= dims[d];
        }
        const char *s = (const char *)src + off * (int64_t)es;
        char *o = (char *)dst + (size_t)(row * m * n) * es;
        if (tiled) {
            switch (es) {
            case 1: tile2d_uint8_t((uint8_t *)o, (const uint8_t *)s, m, n, st[r - 1]); break;
            case 2: tile2d_uint16_t((uint16_t *)o, (const uint16_t *)s, m, n, st[r - 1]); break;
            case 4: tile2d_uint32_t((uint32_t *)o, (const uint32_t *)s, m, n, st[r - 1]); break;
            default: tile2d_uint64_t((uint64_t *)o, (const uint64_t *)s, m, n, st[r - 1]); break;
            }
        } else if (st[r - 1] == 1) {
            memcpy(o, s, (size_t)n * es);
        } else {
            switch (es) {
            case 1: row_uint8_t((uint8_t *)o, (const uint8_t *)s, n, st[r - 1]); break;
            case 2: row_uint16_t((uint16_t *)o, (const uint16_t *)s, n, st[r - 1]); break;
            case 4: row_uint32_t((uint32_t *)o, (const uint32_t *)s, n, st[r - 1]); break;
            case 8: row_uint64_t((uint64_t *)o, (const uint64_t *)s, n, st[r - 1]); break;
            default:
                for (int64_t j = 0; j < n; j++)
                    memcpy(o + (size_t)j * es, s + j * st[r - 1] * (int64_t)es, es);
                break;
            }
        }
    }
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze ---- */

qd_status qd_ref_reshape(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_in(a, 0);
    if (st == QD_OK)
        st = need_out(a, 0);
    if (st != QD_OK)
        return st;
    const qd_tensor *x = a->inputs[0];
    qd_tensor *y = a->outputs[0];
    if (x->dtype != y->dtype || x->nbytes != y->nbytes)
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR,
                           "output (%s, %zu bytes) does not match input (%s, %zu bytes)",
                           qd_dtype_name(y->dtype), y->nbytes, qd_dtype_name(x->dtype), x->nbytes);
    if (y->nbytes && y->data != x->data)
        memcpy(y->data, x->data, y->nbytes);
    return QD_OK;
}

/* ---- Transpose ---- */

qd_status qd_ref_transpose(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_in(a, 0);
    if (st == QD_OK)
        st = need_out(a, 0);
    if (st != QD_OK)
        return st;
    const qd_tensor *x = a->inputs[0];
    qd_tensor *y = a->outputs[0];
    const int r = x->rank;
    const int64_t *perm_attr;
    size_t n_perm;
    st = qd_node_attr_ints(a->graph, a->node, "perm", &perm_attr, &n_perm);
    if (st != QD_OK)
        return st;
    int perm[QD_MAX_RANK], seen[QD_MAX_RANK] = {0};
    if (perm_attr && n_perm != (size_t)r)
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "perm has %zu entries, rank is %d", n_perm,
                           r);
    for (int i = 0; i < r; i++) {
        int64_t p = perm_attr ? perm_attr[i] : r - 1 - i; /* default: reverse */
        if (p < 0)
            p += r;
        if (p < 0 || p >= r || seen[p])
            return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "perm is not a permutation");
        seen[p] = 1;
        perm[i] = (int)p;
    }
    if (y->dtype != x->dtype || y->rank != r)
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR,
                           "output dtype or rank differs from the input's");
    int64_t ist[QD_MAX_RANK], sst[QD_MAX_RANK];
    contiguous_strides(r, x->dims, ist);
    for (int i = 0; i < r; i++) {
        if (y->dims[i] != x->dims[perm[i]])
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "output dim %d is %lld, expected %lld", i,
                               (long long)y->dims[i], (long long)x->dims[perm[i]]);
        sst[i] = ist[perm[i]];
    }
    strided_copy(a, y->data, x->data, qd_dtype_size(x->dtype), r, y->dims, sst);
    return QD_OK;
}

/* ---- Concat, Split ---- */

/* The parts of a Concat (inputs) or Split (outputs) against the whole: one
 * dtype and rank, equal dims off the axis, sizes along it summing up. */
static qd_status check_parts(const qd_kernel_args *a, const qd_tensor *whole,
                             const qd_tensor *const *parts, int n_parts, int axis,
                             const char *part_word, const char *whole_word)
{
    int64_t total = 0;
    for (int i = 0; i < n_parts; i++) {
        const qd_tensor *p = parts[i];
        if (p->dtype != whole->dtype || p->rank != whole->rank)
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "%s %d dtype or rank differs from the %s's",
                               part_word, i, whole_word);
        for (int d = 0; d < whole->rank; d++)
            if (d != axis && p->dims[d] != whole->dims[d])
                return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "%s %d dim %d is %lld, %s's %lld",
                                   part_word, i, d, (long long)p->dims[d], whole_word,
                                   (long long)whole->dims[d]);
        total += p->dims[axis];
    }
    if (total != whole->dims[axis])
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "%ss sum to %lld along axis %d, %s has %lld",
                           part_word, (long long)total, axis, whole_word,
                           (long long)whole->dims[axis]);
    return QD_OK;
}

qd_status qd_ref_concat(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_out(a, 0);
    if (st != QD_OK)
        return st;
    qd_tensor *y = a->outputs[0];
    int64_t axis_attr;
    int axis = 0;
    st = qd_node_attr_int(a->graph, a->node, "axis", 0, &axis_attr);
    if (st == QD_OK)
        st = norm_axis(a, axis_attr, y->rank, &axis);
    if (st != QD_OK)
        return st;
    if (a->n_inputs < 1)
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "no inputs");
    for (int i = 0; i < a->n_inputs; i++)
        if ((st = need_in(a, i)) != QD_OK)
            return st;
    if ((st = check_parts(a, y, a->inputs, a->n_inputs, axis, "input", "output")) != QD_OK)
        return st;
    const size_t es = qd_dtype_size(y->dtype);
    int64_t outer = qd_numel(axis, y->dims);
    int64_t inner = qd_numel(y->rank - axis - 1, y->dims + axis + 1);
    const size_t out_row = (size_t)(y->dims[axis] * inner) * es;
    size_t col = 0;
    for (int i = 0; i < a->n_inputs; i++) {
        const qd_tensor *x = a->inputs[i];
        const size_t in_row = (size_t)(x->dims[axis] * inner) * es;
        if (in_row)
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)y->data + (size_t)o * out_row + col,
                       (const char *)x->data + (size_t)o * in_row, in_row);
        col += in_row;
    }
    return QD_OK;
}

/* The part sizes are the outputs' dims along the axis (shape inference
 * derived them from 'split', num_outputs or an even split). */
qd_status qd_ref_split(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_in(a, 0);
    if (st != QD_OK)
        return st;
    const qd_tensor *x = a->inputs[0];
    int64_t axis_attr;
    int axis = 0;
    st = qd_node_attr_int(a->graph, a->node, "axis", 0, &axis_attr);
    if (st == QD_OK)
        st = norm_axis(a, axis_attr, x->rank, &axis);
    if (st != QD_OK)
        return st;
    if (a->n_outputs < 1)
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "no outputs");
    for (int i = 0; i < a->n_outputs; i++)
        if ((st = need_out(a, i)) != QD_OK)
            return st;
    if ((st = check_parts(a, x, (const qd_tensor *const *)a->outputs, a->n_outputs, axis,
                          "output", "input")) != QD_OK)
        return st;
    /* An explicit 'split' (input 1, or attribute before opset 13) must
     * agree with the outputs. */
    int64_t parts[64];
    int np;
    if ((st = int_list(a, 1, "split", parts, 64, &np)) != QD_OK)
        return st;
    if (np >= 0) {
        int same = np == a->n_outputs;
        for (int i = 0; same && i < np; i++)
            same = parts[i] == a->outputs[i]->dims[axis];
        if (!same)
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR,
                               "'split' does not match the outputs' sizes");
    }
    const size_t es = qd_dtype_size(x->dtype);
    int64_t outer = qd_numel(axis, x->dims);
    int64_t inner = qd_numel(x->rank - axis - 1, x->dims + axis + 1);
    const size_t in_row = (size_t)(x->dims[axis] * inner) * es;
    size_t col = 0;
    for (int i = 0; i < a->n_outputs; i++) {
        qd_tensor *y = a->outputs[i];
        const size_t out_row = (size_t)(y->dims[axis] * inner) * es;
        if (out_row)
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)y->data + (size_t)o * out_row,
                       (const char *)x->data + (size_t)o * in_row + col, out_row);
        col += out_row;
    }
    return QD_OK;
}

/* ---- Slice ---- */

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

qd_status qd_ref_slice(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_in(a, 0);
    if (st == QD_OK)
        st = need_out(a, 0);
    if (st != QD_OK)
        return st;
    const qd_tensor *x = a->inputs[0];
    qd_tensor *y = a->outputs[0];
    const int r = x->rank;
    int64_t starts[QD_MAX_RANK], ends[QD_MAX_RANK], axes[QD_MAX_RANK], steps[QD_MAX_RANK];
    int ns, ne, na, nst;
    if ((st = int_list(a, 1, "starts", starts, QD_MAX_RANK, &ns)) != QD_OK ||
        (st = int_list(a, 2, "ends", ends, QD_MAX_RANK, &ne)) != QD_OK ||
        (st = int_list(a, 3, "axes", axes, QD_MAX_RANK, &na)) != QD_OK ||
        (st = int_list(a, 4, "steps", steps, QD_MAX_RANK, &nst)) != QD_OK)
        return st;
    if (ns < 0 || ns != ne || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL,
                           "starts, ends, axes, steps differ in length");
    if (y->dtype != x->dtype || y->rank != r)
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR,
                           "output dtype or rank differs from the input's");
    /* Per input dim: first element and step; untouched dims take all. */
    int64_t first[QD_MAX_RANK], step[QD_MAX_RANK], count[QD_MAX_RANK];
    int sliced[QD_MAX_RANK] = {0};
    for (int d = 0; d < r; d++) {
        first[d] = 0;
        step[d] = 1;
        count[d] = x->dims[d];
    }
    for (int i = 0; i < ns; i++) {
        int ax = 0;
        if ((st = norm_axis(a, na >= 0 ? axes[i] : i, r, &ax)) != QD_OK)
            return st;
        if (sliced[ax])
            return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "axis %d repeated", ax);
        sliced[ax] = 1;
        const int64_t dim = x->dims[ax];
        const int64_t s = nst >= 0 ? steps[i] : 1;
        if (s == 0)
            return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "step 0 on axis %d", ax);
        int64_t b = starts[i], e = ends[i];
        if (b < 0) /* cannot overflow: dim >= 0 */
            b += dim;
        if (e < 0)
            e += dim;
        int64_t c;
        if (s > 0) {
            b = clamp64(b, 0, dim);
            e = clamp64(e, 0, dim);
            c = e > b ? (e - b + s - 1) / s : 0;
        } else {
            b = clamp64(b, 0, dim - 1);
            e = clamp64(e, -1, dim - 1);
            c = b > e ? (b - e + (-s) - 1) / (-s) : 0;
        }
        first[ax] = b;
        step[ax] = s;
        count[ax] = c;
    }
    int64_t ist[QD_MAX_RANK], sst[QD_MAX_RANK];
    contiguous_strides(r, x->dims, ist);
    int64_t base = 0;
    for (int d = 0; d < r; d++) {
        if (count[d] != y->dims[d])
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "output dim %d is %lld, slice gives %lld",
                               d, (long long)y->dims[d], (long long)count[d]);
        sst[d] = step[d] * ist[d];
        if (count[d])
            base += first[d] * ist[d];
    }
    if (qd_numel(r, y->dims) == 0)
        return QD_OK;
    strided_copy(a, y->data, (const char *)x->data + base * (int64_t)qd_dtype_size(x->dtype),
                 qd_dtype_size(x->dtype), r, y->dims, sst);
    return QD_OK;
}

/* ---- Gather ---- */

qd_status qd_ref_gather(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_in(a, 0);
    if (st == QD_OK)
        st = need_in(a, 1);
    if (st == QD_OK)
        st = need_out(a, 0);
    if (st != QD_OK)
        return st;
    const qd_tensor *x = a->inputs[0], *idx = a->inputs[1];
    qd_tensor *y = a->outputs[0];
    int64_t axis_attr;
    int axis = 0;
    st = qd_node_attr_int(a->graph, a->node, "axis", 0, &axis_attr);
    if (st == QD_OK)
        st = norm_axis(a, axis_attr, x->rank, &axis);
    if (st != QD_OK)
        return st;
    if (idx->dtype != QD_DT_INT64 && idx->dtype != QD_DT_INT32)
        return qd_ref_fail(a, QD_STATUS_UNSUPPORTED, "indices must be int32 or int64, got %s",
                           qd_dtype_name(idx->dtype));
    /* Output shape: data[:axis] + indices + data[axis+1:]. */
    int ok = y->dtype == x->dtype && y->rank == x->rank - 1 + idx->rank;
    for (int d = 0; ok && d < y->rank; d++) {
        int64_t want = d < axis ? x->dims[d]
                       : d < axis + idx->rank ? idx->dims[d - axis]
                                              : x->dims[d - idx->rank + 1];
        ok = y->dims[d] == want;
    }
    if (!ok)
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR,
                           "output shape does not match data and indices");
    const int64_t n = x->dims[axis], ni = qd_numel(idx->rank, idx->dims);
    const int64_t outer = qd_numel(axis, x->dims);
    const size_t inner =
        (size_t)qd_numel(x->rank - axis - 1, x->dims + axis + 1) * qd_dtype_size(x->dtype);
    int64_t *ix = qd_malloc(ni ? (size_t)ni * sizeof *ix : 1);
    if (!ix)
        return qd_ref_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int64_t j = 0; j < ni; j++) {
        int64_t v = idx->dtype == QD_DT_INT64 ? ((const int64_t *)idx->data)[j]
                                              : ((const int32_t *)idx->data)[j];
        if (v < -n || v >= n) {
            qd_free(ix);
            return qd_ref_fail(a, QD_STATUS_INVALID_ARGUMENT,
                               "index %lld out of range [-%lld, %lld)", (long long)v, (long long)n,
                               (long long)n);
        }
        ix[j] = v < 0 ? v + n : v;
    }
    const int64_t total = outer * ni;
    int nt = qd_ref_nthreads(a);
    (void)nt;
    QD_REF_OMP_FOR(total * (int64_t)inner >= 4 * QD_REF_PAR_MIN, nt)
    for (int64_t t = 0; t < total; t++) {
        int64_t o = t / ni, j = t % ni;
        memcpy((char *)y->data + (size_t)t * inner,
               (const char *)x->data + (size_t)(o * n + ix[j]) * inner, inner);
    }
    qd_free(ix);
    return QD_OK;
}

/* ---- Pad ---- */

typedef enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } pad_mode;

/* The input index that output position i (already shifted by the begin pad)
 * reads along a dim of n, or -1 for the constant. */
static int64_t pad_src(int64_t i, int64_t n, pad_mode mode)
{
    if (i >= 0 && i < n)
        return i;
    switch (mode) {
    case PAD_EDGE: return i < 0 ? 0 : n - 1;
    case PAD_WRAP: return ((i % n) + n) % n;
    case PAD_REFLECT: {
        if (n == 1)
            return 0;
        int64_t period = 2 * (n - 1);
        i = ((i % period) + period) % period;
        return i < n ? i : period - i;
    }
    default: return -1;
    }
}

qd_status qd_ref_pad(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_in(a, 0);
    if (st == QD_OK)
        st = need_out(a, 0);
    if (st != QD_OK)
        return st;
    const qd_tensor *x = a->inputs[0];
    qd_tensor *y = a->outputs[0];
    const int r = x->rank;
    const size_t es = qd_dtype_size(x->dtype);
    const char *mode_s;
    if ((st = qd_node_attr_string(a->graph, a->node, "mode", "constant", &mode_s)) != QD_OK)
        return st;
    pad_mode mode;
    if (strcmp(mode_s, "constant") == 0)
        mode = PAD_CONSTANT;
    else if (strcmp(mode_s, "reflect") == 0)
        mode = PAD_REFLECT;
    else if (strcmp(mode_s, "edge") == 0)
        mode = PAD_EDGE;
    else if (strcmp(mode_s, "wrap") == 0)
        mode = PAD_WRAP;
    else
        return qd_ref_fail(a, QD_STATUS_UNSUPPORTED, "mode '%s'", mode_s);

    int64_t pads[2 * QD_MAX_RANK], axes_v[QD_MAX_RANK];
    int np, na = -1;
    if ((st = int_list(a, 1, "pads", pads, 2 * QD_MAX_RANK, &np)) != QD_OK)
        return st;
    const qd_tensor *axes_t = opt_in(a, 3);
    if (axes_t && (st = read_ints(a, axes_t, "axes", axes_v, QD_MAX_RANK, &na)) != QD_OK)
        return st;
    int naxes = na >= 0 ? na : r;
    if (np != 2 * naxes)
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "pads has %d values, expected %d", np,
                           2 * naxes);
    int64_t begin[QD_MAX_RANK] = {0}, end[QD_MAX_RANK] = {0};
    for (int i = 0; i < naxes; i++) {
        int ax = i;
        if (na >= 0 && (st = norm_axis(a, axes_v[i], r, &ax)) != QD_OK)
            return st;
        begin[ax] = pads[i];
        end[ax] = pads[naxes + i];
    }
    if (y->dtype != x->dtype || y->rank != r)
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR,
                           "output dtype or rank differs from the input's");
    for (int d = 0; d < r; d++) {
        if (y->dims[d] != x->dims[d] + begin[d] + end[d] || y->dims[d] < 0)
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR,
                               "output dim %d is %lld, padding gives %lld", d,
                               (long long)y->dims[d], (long long)(x->dims[d] + begin[d] + end[d]));
        if (mode != PAD_CONSTANT && x->dims[d] == 0 && y->dims[d] > 0)
            return qd_ref_fail(a, QD_STATUS_INVALID_ARGUMENT, "cannot %s-pad an empty dim", mode_s);
    }
    /* The fill value, one element in the output's dtype. */
    uint64_t fill = 0;
    const qd_tensor *cv = opt_in(a, 2);
    if (cv) {
        if (!qd_ref_tensor_ok(cv) || cv->dtype != x->dtype || qd_numel(cv->rank, cv->dims) != 1)
            return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "constant_value must be one %s",
                               qd_dtype_name(x->dtype));
        memcpy(&fill, cv->data, es);
    } else if (qd_node_attr(a->node, "value")) { /* opset < 11 */
        float f;
        if ((st = qd_node_attr_float(a->graph, a->node, "value", 0, &f)) != QD_OK)
            return st;
        if (qd_ref_convert(&f, QD_DT_FLOAT, &fill, x->dtype, 1) < 0)
            return qd_ref_fail(a, QD_STATUS_UNSUPPORTED, "dtype %s", qd_dtype_name(x->dtype));
    }
    int64_t numel = qd_numel(r, y->dims);
    if (numel == 0)
        return QD_OK;
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return QD_OK;
    }
    int64_t ist[QD_MAX_RANK];
    contiguous_strides(r, x->dims, ist);
    const int64_t n_out = y->dims[r - 1], n_in = x->dims[r - 1], b = begin[r - 1];
    const int64_t rows = numel / n_out;
    /* The run of output columns that read the input row in order. */
    const int64_t mid0 = clamp64(b, 0, n_out), mid1 = clamp64(b + n_in, 0, n_out);
    int nt = qd_ref_nthreads(a);
    (void)nt;
    QD_REF_OMP_FOR(numel >= QD_REF_PAR_MIN, nt)
    for (int64_t row = 0; row < rows; row++) {
        char *o = (char *)y->data + (size_t)(row * n_out) * es;
        int64_t off = 0, rem = row;
        int constant_row = 0;
        for (int d = r - 2; d >= 0; d--) {
            int64_t i = pad_src(rem % y->dims[d] - begin[d], x->dims[d], mode);
            rem /= y->dims[d];
            if (i < 0)
                constant_row = 1;
            else
                off += i * ist[d];
        }
        const char *s = (const char *)x->data + (size_t)off * es;
        for (int64_t j = 0; j < n_out; j++) {
            if (!constant_row && j >= mid0 && j < mid1) {
                memcpy(o + (size_t)j * es, s + (size_t)(j - b) * es, (size_t)(mid1 - mid0) * es);
                j = mid1 - 1;
                continue;
            }
            int64_t i = constant_row ? -1 : pad_src(j - b, n_in, mode);
            memcpy(o + (size_t)j * es, i < 0 ? (const char *)&fill : s + (size_t)i * es, es);
        }
    }
    return QD_OK;
}

/* ---- Expand, Tile ---- */

qd_status qd_ref_expand(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_in(a, 0);
    if (st == QD_OK)
        st = need_out(a, 0);
    if (st != QD_OK)
        return st;
    const qd_tensor *x = a->inputs[0];
    qd_tensor *y = a->outputs[0];
    if (y->dtype != x->dtype || x->rank > y->rank)
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "output dtype or rank does not fit the input");
    int64_t ist[QD_MAX_RANK], sst[QD_MAX_RANK];
    contiguous_strides(x->rank, x->dims, ist);
    const int lead = y->rank - x->rank;
    for (int d = 0; d < y->rank; d++) {
        int id = d - lead;
        if (id < 0) {
            sst[d] = 0;
        } else if (x->dims[id] == y->dims[d]) {
            sst[d] = ist[id];
        } else if (x->dims[id] == 1) {
            sst[d] = 0;
        } else {
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR,
                               "input dim %d (%lld) does not broadcast to %lld", id,
                               (long long)x->dims[id], (long long)y->dims[d]);
        }
    }
    strided_copy(a, y->data, x->data, qd_dtype_size(x->dtype), y->rank, y->dims, sst);
    return QD_OK;
}

qd_status qd_ref_tile(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_in(a, 0);
    if (st == QD_OK)
        st = need_out(a, 0);
    if (st != QD_OK)
        return st;
    const qd_tensor *x = a->inputs[0];
    qd_tensor *y = a->outputs[0];
    const int r = x->rank;
    int64_t reps[QD_MAX_RANK];
    int nr;
    if (a->n_inputs < 2 || !a->inputs[1])
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "repeats input missing");
    if ((st = read_ints(a, a->inputs[1], "repeats", reps, QD_MAX_RANK, &nr)) != QD_OK)
        return st;
    if (nr != r || y->rank != r || y->dtype != x->dtype)
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "repeats, input and output ranks differ");
    for (int d = 0; d < r; d++)
        if (reps[d] < 0 || y->dims[d] != x->dims[d] * reps[d])
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "output dim %d is %lld, tiling gives %lld",
                               d, (long long)y->dims[d], (long long)(x->dims[d] * reps[d]));
    const size_t es = qd_dtype_size(x->dtype);
    int64_t numel = qd_numel(r, y->dims);
    if (numel == 0)
        return QD_OK;
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return QD_OK;
    }
    int64_t ist[QD_MAX_RANK];
    contiguous_strides(r, x->dims, ist);
    const int64_t n_out = y->dims[r - 1], n_in = x->dims[r - 1];
    const size_t row_bytes = (size_t)n_in * es;
    const int64_t rows = numel / n_out;
    int nt = qd_ref_nthreads(a);
    (void)nt;
    /* Each output row is the matching input row (index mod input dim)
     * repeated along the last dim. */
    QD_REF_OMP_FOR(numel >= QD_REF_PAR_MIN, nt)
    for (int64_t row = 0; row < rows; row++) {
        int64_t off = 0, rem = row;
        for (int d = r - 2; d >= 0; d--) {
            off += (rem % y->dims[d]) % x->dims[d] * ist[d];
            rem /= y->dims[d];
        }
        char *o = (char *)y->data + (size_t)(row * n_out) * es;
        for (int64_t k = 0; k < reps[r - 1]; k++)
            memcpy(o + (size_t)k * row_bytes, (const char *)x->data + (size_t)off * es, row_bytes);
    }
    return QD_OK;
}

/* ---- Shape, Size ---- */

qd_status qd_ref_shape(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_out(a, 0);
    if (st != QD_OK)
        return st;
    if (a->n_inputs < 1 || !a->inputs[0])
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "input missing");
    const qd_tensor *x = a->inputs[0];
    qd_tensor *y = a->outputs[0];
    int64_t start, end;
    if ((st = qd_node_attr_int(a->graph, a->node, "start", 0, &start)) != QD_OK ||
        (st = qd_node_attr_int(a->graph, a->node, "end", INT64_MAX, &end)) != QD_OK)
        return st;
    const int64_t r = x->rank;
    start = clamp64(start < 0 ? start + r : start, 0, r);
    end = clamp64(end < 0 ? end + r : end, 0, r);
    int64_t n = end > start ? end - start : 0;
    if (y->dtype != QD_DT_INT64 || y->rank != 1 || y->dims[0] != n)
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "output must be int64 [%lld]", (long long)n);
    for (int64_t i = 0; i < n; i++)
        ((int64_t *)y->data)[i] = x->dims[start + i];
    return QD_OK;
}

qd_status qd_ref_size(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_out(a, 0);
    if (st != QD_OK)
        return st;
    if (a->n_inputs < 1 || !a->inputs[0])
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "input missing");
    qd_tensor *y = a->outputs[0];
    if (y->dtype != QD_DT_INT64 || qd_numel(y->rank, y->dims) != 1)
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "output must be one int64");
    *(int64_t *)y->data = qd_numel(a->inputs[0]->rank, a->inputs[0]->dims);
    return QD_OK;
}

/* ---- Constant, ConstantOfShape, Range ---- */

/* Copies n elements of dtype dt from src to the output, checking that it
 * is exactly that. */
static qd_status put_const(const qd_kernel_args *a, qd_dtype dt, const void *src, int64_t n)
{
    qd_tensor *y = a->outputs[0];
    if (y->dtype != dt || qd_numel(y->rank, y->dims) != n)
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR,
                           "output (%s) does not match the value (%s, %lld elements)",
                           qd_dtype_name(y->dtype), qd_dtype_name(dt), (long long)n);
    if (y->nbytes)
        memcpy(y->data, src, y->nbytes);
    return QD_OK;
}

qd_status qd_ref_constant(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_out(a, 0);
    if (st != QD_OK)
        return st;
    const qd_attr *at;
    if ((at = qd_node_attr(a->node, "value"))) {
        const qd_tensor *t;
        if ((st = qd_node_attr_tensor(a->graph, a->node, "value", &t)) != QD_OK)
            return st;
        if (!qd_ref_tensor_ok(t))
            return qd_ref_fail(a, QD_STATUS_UNSUPPORTED, "value tensor of dtype %s",
                               qd_dtype_name(t ? t->dtype : QD_DT_UNDEFINED));
        return put_const(a, t->dtype, t->data, qd_numel(t->rank, t->dims));
    }
    if ((at = qd_node_attr(a->node, "value_float"))) {
        float f;
        if ((st = qd_node_attr_float(a->graph, a->node, "value_float", 0, &f)) != QD_OK)
            return st;
        return put_const(a, QD_DT_FLOAT, &f, 1);
    }
    if ((at = qd_node_attr(a->node, "value_int"))) {
        int64_t i;
        if ((st = qd_node_attr_int(a->graph, a->node, "value_int", 0, &i)) != QD_OK)
            return st;
        return put_const(a, QD_DT_INT64, &i, 1);
    }
    if ((at = qd_node_attr(a->node, "value_floats"))) {
        const float *f;
        size_t n;
        if ((st = qd_node_attr_floats(a->graph, a->node, "value_floats", &f, &n)) != QD_OK)
            return st;
        return put_const(a, QD_DT_FLOAT, f, (int64_t)n);
    }
    if ((at = qd_node_attr(a->node, "value_ints"))) {
        const int64_t *v;
        size_t n;
        if ((st = qd_node_attr_ints(a->graph, a->node, "value_ints", &v, &n)) != QD_OK)
            return st;
        return put_const(a, QD_DT_INT64, v, (int64_t)n);
    }
    return qd_ref_fail(
        a, QD_STATUS_UNSUPPORTED,
        "needs value, value_float(s) or value_int(s) (sparse and string values are not supported)");
}

qd_status qd_ref_constant_of_shape(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_out(a, 0);
    if (st != QD_OK)
        return st;
    qd_tensor *y = a->outputs[0];
    const qd_tensor *v;
    if ((st = qd_node_attr_tensor(a->graph, a->node, "value", &v)) != QD_OK)
        return st;
    float zero = 0;
    qd_dtype dt = v ? v->dtype : QD_DT_FLOAT;
    const void *val = v ? v->data : &zero;
    if (v && (!qd_ref_tensor_ok(v) || qd_numel(v->rank, v->dims) != 1))
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "value must hold one element");
    if (y->dtype != dt)
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "output is %s, value is %s",
                           qd_dtype_name(y->dtype), qd_dtype_name(dt));
    /* The shape input, when given, must agree with the output. */
    int64_t n = qd_numel(y->rank, y->dims);
    const qd_tensor *shape = opt_in(a, 0);
    if (shape) {
        int64_t dims[QD_MAX_RANK];
        int nd;
        if ((st = read_ints(a, shape, "input", dims, QD_MAX_RANK, &nd)) != QD_OK)
            return st;
        if (nd != y->rank || memcmp(dims, y->dims, (size_t)nd * sizeof *dims) != 0)
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR,
                               "output shape differs from the shape input");
    }
    const size_t es = qd_dtype_size(dt);
    char *o = y->data;
    for (int64_t i = 0; i < n; i++)
        memcpy(o + (size_t)i * es, val, es);
    return QD_OK;
}

qd_status qd_ref_range(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_out(a, 0);
    for (int i = 0; i < 3 && st == QD_OK; i++)
        st = need_in(a, i);
    if (st != QD_OK)
        return st;
    qd_tensor *y = a->outputs[0];
    const qd_dtype dt = y->dtype;
    for (int i = 0; i < 3; i++)
        if (a->inputs[i]->dtype != dt || qd_numel(a->inputs[i]->rank, a->inputs[i]->dims) != 1)
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "start, limit, delta must be %s scalars",
                               qd_dtype_name(dt));
    const int64_t n = qd_numel(y->rank, y->dims);
    if (y->rank != 1)
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "output must be 1-D");
    if (qd_dtype_is_float(dt)) {
        double s = qd_tensor_get_f64(a->inputs[0], 0), l = qd_tensor_get_f64(a->inputs[1], 0);
        double d = qd_tensor_get_f64(a->inputs[2], 0);
        double c = d != 0 ? ceil((l - s) / d) : -1;
        if (d == 0 || !(c < 9e18) || (c > 0 ? (int64_t)c : 0) != n)
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "output has %lld elements, range gives %g",
                               (long long)n, c);
        for (int64_t i = 0; i < n; i++)
            qd_tensor_set_f64(y, i, s + (double)i * d);
    } else if (dt == QD_DT_INT64 || dt == QD_DT_INT32 || dt == QD_DT_INT16) {
        int64_t s = qd_tensor_get_i64(a->inputs[0], 0), l = qd_tensor_get_i64(a->inputs[1], 0);
        int64_t d = qd_tensor_get_i64(a->inputs[2], 0);
        if (d == 0)
            return qd_ref_fail(a, QD_STATUS_INVALID_ARGUMENT, "delta is 0");
        /* ceil((l - s) / d) in exact arithmetic, guarding overflow. */
        long double q = ((long double)l - (long double)s) / (long double)d;
        int64_t c = q > 0 ? (int64_t)ceill(q) : 0;
        if (c != n)
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR,
                               "output has %lld elements, range gives %lld", (long long)n,
                               (long long)c);
        for (int64_t i = 0; i < n; i++)
            qd_tensor_set_i64(y, i, (int64_t)((uint64_t)s + (uint64_t)i * (uint64_t)d));
    } else {
        return qd_ref_fail(a, QD_STATUS_UNSUPPORTED, "dtype %s", qd_dtype_name(dt));
    }
    return QD_OK;
}

/* ---- Einsum ----
 *
 * General and naive: every output element loops over all summed labels.
 * Letters a-z, A-Z are labels 0..51; the dims an ellipsis stands for are
 * labels 52.., aligned at the right across inputs (numpy broadcasting). A
 * letter repeated within one input walks its diagonal (strides add). */

#define EIN_MAX_OPS 8
#define EIN_ELL 52
#define EIN_LABELS (EIN_ELL + QD_MAX_RANK)
#define EIN_MAX_ITEMS 64

typedef struct ein_plan {
    int n_ops, n_out, n_red;
    int64_t numel;
    int64_t out_size[QD_MAX_RANK];
    int64_t out_st[EIN_MAX_OPS][QD_MAX_RANK];
    int64_t red_size[EIN_LABELS];
    int64_t red_st[EIN_MAX_OPS][EIN_LABELS];
} ein_plan;

/* A term as parsed: label ids, -1 for "...". */
typedef struct ein_term {
    int item[EIN_MAX_ITEMS];
    int n, has_ell;
} ein_term;

static int ein_label(char c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= 'A' && c <= 'Z')
        return 26 + (c - 'A');
    return -2;
}

/* Parses s[0..len) (spaces already removed) into t; 0 or -1. */
static int ein_parse_term(const char *s, size_t len, ein_term *t)
{
    t->n = t->has_ell = 0;
    for (size_t i = 0; i < len;) {
        if (t->n == EIN_MAX_ITEMS)
            return -1;
        if (s[i] == '.') {
            if (t->has_ell || i + 3 > len || s[i + 1] != '.' || s[i + 2] != '.')
                return -1;
            t->has_ell = 1;
            t->item[t->n++] = -1;
            i += 3;
            continue;
        }
        int l = ein_label(s[i]);
        if (l < 0)
            return -1;
        t->item[t->n++] = l;
        i++;
    }
    return 0;
}

static qd_status ein_build(const qd_kernel_args *a, const char *eq_in, ein_plan *p)
{
    char eq[512];
    size_t n = 0;
    for (const char *c = eq_in; *c; c++) {
        if (*c == ' ' || *c == '\t')
            continue;
        if (n + 1 >= sizeof eq)
            return qd_ref_fail(a, QD_STATUS_UNSUPPORTED, "equation too long");
        eq[n++] = *c;
    }
    eq[n] = 0;
    const char *arrow = strstr(eq, "->");
    size_t lhs_len = arrow ? (size_t)(arrow - eq) : n;
    const int n_ops = a->n_inputs;
    if (n_ops < 1 || n_ops > EIN_MAX_OPS)
        return qd_ref_fail(a, QD_STATUS_UNSUPPORTED, "%d operands (at most %d)", n_ops,
                           EIN_MAX_OPS);
    ein_term terms[EIN_MAX_OPS], out;
    int k = 0;
    for (size_t i = 0, start = 0; i <= lhs_len; i++) {
        if (i < lhs_len && eq[i] != ',')
            continue;
        if (k == n_ops || ein_parse_term(eq + start, i - start, &terms[k]) < 0)
            return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "bad equation '%s' for %d inputs", eq_in,
                               n_ops);
        k++;
        start = i + 1;
    }
    if (k != n_ops)
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "equation '%s' has %d terms, node %d inputs",
                           eq_in, k, n_ops);

    /* Per input dim, its label; sizes agree or broadcast from 1. */
    int dim_label[EIN_MAX_OPS][QD_MAX_RANK];
    int64_t size[EIN_LABELS];
    int count[EIN_LABELS] = {0};
    for (int l = 0; l < EIN_LABELS; l++)
        size[l] = -1;
    int n_ell = 0;
    for (k = 0; k < n_ops; k++) {
        const qd_tensor *x = a->inputs[k];
        int letters = terms[k].n - terms[k].has_ell;
        int e = x->rank - letters;
        if (e < 0 || (!terms[k].has_ell && e != 0))
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "term %d does not match input rank %d", k,
                               x->rank);
        if (e > n_ell)
            n_ell = e;
    }
    for (k = 0; k < n_ops; k++) {
        const qd_tensor *x = a->inputs[k];
        int e = x->rank - (terms[k].n - terms[k].has_ell), d = 0;
        for (int i = 0; i < terms[k].n; i++) {
            if (terms[k].item[i] >= 0) {
                dim_label[k][d++] = terms[k].item[i];
                count[terms[k].item[i]]++;
            } else {
                for (int j = 0; j < e; j++)
                    dim_label[k][d++] = EIN_ELL + n_ell - e + j;
            }
        }
        for (d = 0; d < x->rank; d++) {
            int l = dim_label[k][d];
            if (size[l] < 0 || size[l] == 1)
                size[l] = x->dims[d];
            else if (x->dims[d] != size[l] && x->dims[d] != 1)
                return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "label sizes %lld and %lld disagree",
                                   (long long)size[l], (long long)x->dims[d]);
        }
    }
    /* Output labels: explicit, or (implicit) the ellipsis then the letters
     * used once, in character order. */
    int out_label[EIN_LABELS], n_out = 0, in_out[EIN_LABELS] = {0};
    if (arrow) {
        if (ein_parse_term(arrow + 2, strlen(arrow + 2), &out) < 0)
            return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "bad output term in '%s'", eq_in);
        for (int i = 0; i < out.n; i++) {
            if (out.item[i] >= 0) {
                out_label[n_out++] = out.item[i];
            } else {
                for (int j = 0; j < n_ell; j++)
                    out_label[n_out++] = EIN_ELL + j;
            }
            if (n_out > QD_MAX_RANK)
                return qd_ref_fail(a, QD_STATUS_UNSUPPORTED, "output rank above %d", QD_MAX_RANK);
        }
    } else {
        for (int j = 0; j < n_ell; j++)
            out_label[n_out++] = EIN_ELL + j;
        for (int c = 0; c < 52; c++) {
            int l = c < 26 ? 26 + c : c - 26; /* 'A'..'Z' sort before 'a'..'z' */
            if (count[l] == 1) {
                if (n_out == QD_MAX_RANK)
                    return qd_ref_fail(a, QD_STATUS_UNSUPPORTED, "output rank above %d",
                                       QD_MAX_RANK);
                out_label[n_out++] = l;
            }
        }
    }
    for (int i = 0; i < n_out; i++) {
        int l = out_label[i];
        if (in_out[l] || size[l] < 0)
            return qd_ref_fail(a, QD_STATUS_INVALID_MODEL,
                               "output label repeated or not in any input");
        in_out[l] = 1;
    }
    qd_tensor *y = a->outputs[0];
    if (y->rank != n_out)
        return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "output rank %d, equation gives %d", y->rank,
                           n_out);
    for (int i = 0; i < n_out; i++)
        if (y->dims[i] != size[out_label[i]])
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR,
                               "output dim %d is %lld, equation gives %lld", i,
                               (long long)y->dims[i], (long long)size[out_label[i]]);

    /* Strides of every label in every operand (0 where broadcast). */
    int64_t lst[EIN_MAX_OPS][EIN_LABELS];
    memset(lst, 0, sizeof lst);
    for (k = 0; k < n_ops; k++) {
        const qd_tensor *x = a->inputs[k];
        int64_t ist[QD_MAX_RANK];
        contiguous_strides(x->rank, x->dims, ist);
        for (int d = 0; d < x->rank; d++)
            if (x->dims[d] != 1)
                lst[k][dim_label[k][d]] += ist[d];
    }
    memset(p, 0, sizeof *p);
    p->n_ops = n_ops;
    p->n_out = n_out;
    p->numel = qd_numel(y->rank, y->dims);
    for (int i = 0; i < n_out; i++) {
        p->out_size[i] = size[out_label[i]];
        for (k = 0; k < n_ops; k++)
            p->out_st[k][i] = lst[k][out_label[i]];
    }
    for (int l = 0; l < EIN_LABELS; l++) {
        if (size[l] < 0 || in_out[l])
            continue;
        p->red_size[p->n_red] = size[l];
        for (k = 0; k < n_ops; k++)
            p->red_st[k][p->n_red] = lst[k][l];
        p->n_red++;
    }
    if (p->n_red == 0) { /* no sum: one step of a dummy label */
        p->red_size[0] = 1;
        p->n_red = 1;
    }
    return QD_OK;
}

/* One kernel per dtype; floats accumulate in double, integers in uint64
 * (wrapping, like the other integer ops). The innermost summed label runs
 * as a plain strided dot product. */
#define GEN_EINSUM(ACC, sfx, S, C, U)                                                              \
    static void einsum_##sfx(const ein_plan *p, const void *const *ins, void *out, int nt)        \
    {                                                                                              \
        const S *in[EIN_MAX_OPS];                                                                  \
        for (int k = 0; k < p->n_ops; k++)                                                         \
            in[k] = ins[k];                                                                        \
        S *o = out;                                                                                \
        const int last = p->n_red - 1;                                                             \
        const int64_t len = p->red_size[last];                                                     \
        double work = (double)p->numel; /* a threshold only: double cannot overflow */            \
        for (int d = 0; d < p->n_red; d++)                                                         \
            work *= (double)p->red_size[d];                                                        \
        (void)nt;                                                                                  \
        (void)work;                                                                                \
        QD_REF_OMP_FOR(work >= QD_REF_PAR_MIN, nt)                                                 \
        for (int64_t e = 0; e < p->numel; e++) {                                                   \
            int64_t off[EIN_MAX_OPS] = {0}, cnt[EIN_LABELS];                                       \
            int64_t rem = e;                                                                       \
            for (int d = p->n_out - 1; d >= 0; d--) {                                              \
                int64_t idx = rem % p->out_size[d];                                                \
                rem /= p->out_size[d];                                                             \
                for (int k = 0; k < p->n_ops; k++)                                                 \
                    off[k] += idx * p->out_st[k][d];                                               \
            }                                                                                      \
            for (int d = 0; d < last; d++)                                                         \
                cnt[d] = 0;                                                                        \
            ACC acc = 0;                                                                           \
            for (;;) {                                                                             \
                const int64_t s0 = p->red_st[0][last];                                             \
                const S *a0 = in[0] + off[0];                                                      \
                if (p->n_ops == 1) {                                                               \
                    for (int64_t t = 0; t < len; t++)                                              \
                        acc += (ACC)QD_REF_LD_##sfx(a0[t * s0]);                                   \
                } else if (p->n_ops == 2) {                                                        \
                    const int64_t s1 = p->red_st[1][last];                                         \
                    const S *a1 = in[1] + off[1];                                                  \
                    for (int64_t t = 0; t < len; t++)                                              \
                        acc += (ACC)QD_REF_LD_##sfx(a0[t * s0]) *                                  \
                               (ACC)QD_REF_LD_##sfx(a1[t * s1]);                                   \
                } else {                                                                           \
                    for (int64_t t = 0; t < len; t++) {                                            \
                        ACC v = (ACC)QD_REF_LD_##sfx(a0[t * s0]);                                  \
                        for (int k = 1; k < p->n_ops; k++)                                         \
                            v *= (ACC)QD_REF_LD_##sfx(in[k][off[k] + t * p->red_st[k][last]]);     \
                        acc += v;                                                                  \
                    }                                                                              \
                }                                                                                  \
                int d = last - 1;                                                                  \
                for (; d >= 0; d--) {                                                              \
                    for (int k = 0; k < p->n_ops; k++)                                             \
                        off[k] += p->red_st[k][d];                                                 \
                    if (++cnt[d] < p->red_size[d])                                                 \
                        break;                                                                     \
                    for (int k = 0; k < p->n_ops; k++)                                             \
                        off[k] -= p->red_st[k][d] * p->red_size[d];                                \
                    cnt[d] = 0;                                                                    \
                }                                                                                  \
                if (d < 0)                                                                         \
                    break;                                                                         \
            }                                                                                      \
            o[e] = QD_REF_ST_##sfx((C)acc);                                                        \
        }                                                                                          \
    }
QD_REF_TYPES_FLOAT(GEN_EINSUM, double)
QD_REF_TYPES_INT(GEN_EINSUM, uint64_t)

typedef void (*einsum_fn)(const ein_plan *p, const void *const *ins, void *out, int nt);

static einsum_fn pick_einsum(qd_dtype dt)
{
    switch (dt) {
        QD_REF_TYPES_NUM(QD_REF_CASE, einsum)
    default: return NULL;
    }
}

qd_status qd_ref_einsum(const qd_kernel_args *a)
{
    QD_REF_NO_FUSION(a);
    qd_status st = need_out(a, 0);
    for (int i = 0; i < a->n_inputs && st == QD_OK; i++)
        st = need_in(a, i);
    if (st != QD_OK)
        return st;
    qd_tensor *y = a->outputs[0];
    for (int i = 0; i < a->n_inputs; i++)
        if (a->inputs[i]->dtype != y->dtype)
            return qd_ref_fail(a, QD_STATUS_SHAPE_ERROR, "input %d is %s, output %s", i,
                               qd_dtype_name(a->inputs[i]->dtype), qd_dtype_name(y->dtype));
    einsum_fn fn = pick_einsum(y->dtype);
    if (!fn)
        return qd_ref_fail(a, QD_STATUS_UNSUPPORTED, "dtype %s", qd_dtype_name(y->dtype));
    const char *eq;
    if ((st = qd_node_attr_string(a->graph, a->node, "equation", NULL, &eq)) != QD_OK)
        return st;
    if (!eq)
        return qd_ref_fail(a, QD_STATUS_INVALID_MODEL, "missing 'equation'");
    ein_plan *p = qd_malloc(sizeof *p); /* large: keep it off the stack */
    if (!p)
        return qd_ref_fail(a, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    st = ein_build(a, eq, p);
    if (st == QD_OK) {
        int empty = 0;
        for (int d = 0; d < p->n_red; d++)
            empty |= p->red_size[d] == 0;
        if (empty) { /* a sum over nothing: zeros (all-zero bits in every dtype) */
            if (y->nbytes)
                memset(y->data, 0, y->nbytes);
        } else {
            const void *ins[EIN_MAX_OPS];
            for (int i = 0; i < a->n_inputs; i++)
                ins[i] = a->inputs[i]->data;
            fn(p, ins, y->data, qd_ref_nthreads(a));
        }
    }
    qd_free(p);
    return st;
}
