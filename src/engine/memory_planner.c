/* Activation memory: greedy-by-size placement (as TensorFlow Lite's arena
 * planner does). Largest buffers first; each goes at the lowest offset that
 * does not overlap a placed buffer whose lifetime intersects its own. */
#include <stdlib.h>

#include "base/alloc.h"
#include "engine/engine.h"

static int by_size_desc(const void *a, const void *b, void *ctx)
{
    const qd_slot *s = ctx;
    size_t x = s[*(const size_t *)a].size, y = s[*(const size_t *)b].size;
    if (x != y)
        return x < y ? 1 : -1;
    return (*(const size_t *)a > *(const size_t *)b) - (*(const size_t *)a < *(const size_t *)b);
}

/* qsort has no context argument in C11: a small insertion-merge sort. */
static void sort_indices(size_t *idx, size_t n, const qd_slot *slots)
{
    for (size_t i = 1; i < n; i++) {
        size_t v = idx[i], j = i;
        while (j > 0 && by_size_desc(&idx[j - 1], &v, (void *)slots) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

static int lifetimes_overlap(const qd_slot *a, const qd_slot *b)
{
    return a->first_step <= b->last_step && b->first_step <= a->last_step;
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

size_t qd_memory_plan(qd_slot *slots, size_t n_slots, size_t alignment)
{
    size_t *order = qd_malloc((n_slots + 1) * sizeof *order);
    size_t *placed = qd_malloc((n_slots + 1) * sizeof *placed);
    if (!order || !placed) {
        qd_free(order);
        qd_free(placed);
        return (size_t)-1;
    }
    size_t n = 0, n_placed = 0, total = 0;
    for (size_t i = 0; i < n_slots; i++)
        if (slots[i].kind == QD_SLOT_ARENA && slots[i].alias_of < 0)
            order[n++] = i;
    sort_indices(order, n, slots);
    for (size_t k = 0; k < n; k++) {
        qd_slot *s = &slots[order[k]];
        size_t size = align_up(s->size ? s->size : 1, alignment);
        /* Candidate offsets: 0 and the end of every conflicting buffer. Try
         * them in increasing order; keep the first that fits. */
        size_t best = (size_t)-1;
        for (size_t c = 0; c <= n_placed; c++) {
            size_t cand = 0;
            if (c < n_placed) {
                const qd_slot *p = &slots[placed[c]];
                if (!lifetimes_overlap(p, s))
                    continue;
                cand = align_up(p->offset + p->size, alignment);
            }
            if (cand >= best)
                continue;
            int fits = 1;
            for (size_t q = 0; q < n_placed && fits; q++) {
                const qd_slot *p = &slots[placed[q]];
                if (lifetimes_overlap(p, s) && cand < p->offset + p->size && p->offset < cand + size)
                    fits = 0;
            }
            if (fits)
                best = cand;
        }
        s->offset = best;
        placed[n_placed++] = order[k];
        if (best + size > total)
            total = best + size;
    }
    qd_free(order);
    qd_free(placed);
    return total;
}
