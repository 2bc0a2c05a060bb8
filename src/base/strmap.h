/* A string -> pointer hash map (open addressing). Keys are borrowed: they
 * must outlive their entry. */
#ifndef QD_BASE_STRMAP_H
#define QD_BASE_STRMAP_H
#include <stddef.h>

typedef struct qd_strmap {
    const char **keys;
    void **values;
    size_t cap;   /* power of two, or 0 */
    size_t count;
} qd_strmap;

void *qd_strmap_get(const qd_strmap *map, const char *key);
/* Inserts or replaces. Returns 0, or -1 on out of memory. */
int qd_strmap_put(qd_strmap *map, const char *key, void *value);
void qd_strmap_remove(qd_strmap *map, const char *key);
void qd_strmap_free(qd_strmap *map);

#endif
