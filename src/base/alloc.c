#include "base/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qdeploy.h"

static qd_allocator g_allocator = {malloc, realloc, free};

void qd_set_allocator(const qd_allocator *allocator)
{
    if (allocator && allocator->malloc_fn && allocator->realloc_fn && allocator->free_fn)
        g_allocator = *allocator;
    else
        g_allocator = (qd_allocator){malloc, realloc, free};
}

void *qd_malloc(size_t size) { return g_allocator.malloc_fn(size ? size : 1); }

void *qd_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = qd_malloc(count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

void *qd_realloc(void *ptr, size_t size) { return g_allocator.realloc_fn(ptr, size ? size : 1); }

void qd_free(void *ptr)
{
    if (ptr)
        g_allocator.free_fn(ptr);
}

char *qd_strndup(const char *s, size_t n)
{
    char *d = qd_malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *qd_strdup(const char *s) { return s ? qd_strndup(s, strlen(s)) : NULL; }

int qd_grow(void **array, size_t *cap, size_t need, size_t elem_size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    if (n > SIZE_MAX / elem_size)
        return -1;
    void *p = qd_realloc(*array, n * elem_size);
    if (!p)
        return -1;
    *array = p;
    *cap = n;
    return 0;
}
