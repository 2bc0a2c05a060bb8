/* The library's allocation entry points; all go through the qd_allocator hook. */
#ifndef QD_BASE_ALLOC_H
#define QD_BASE_ALLOC_H
#include <stddef.h>

void *qd_malloc(size_t size);
void *qd_calloc(size_t count, size_t size);
void *qd_realloc(void *ptr, size_t size);
void qd_free(void *ptr);
char *qd_strdup(const char *s);
char *qd_strndup(const char *s, size_t n);

/* Grows *array (of *cap elements of elem_size) so it holds at least need.
 * Returns 0 on success, -1 on out of memory (array unchanged). */
int qd_grow(void **array, size_t *cap, size_t need, size_t elem_size);

#endif
