#include "base/strmap.h"

#include <stdint.h>
#include <string.h>

#include "base/alloc.h"

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static size_t find_slot(const qd_strmap *map, const char *key)
{
    size_t mask = map->cap - 1;
    size_t i = (size_t)hash_str(key) & mask;
    while (map->keys[i] && strcmp(map->keys[i], key) != 0)
        i = (i + 1) & mask;
    return i;
}

void *qd_strmap_get(const qd_strmap *map, const char *key)
{
    if (!map->cap || !key)
        return NULL;
    size_t i = find_slot(map, key);
    return map->keys[i] ? map->values[i] : NULL;
}

static int rehash(qd_strmap *map, size_t new_cap)
{
    qd_strmap bigger = {qd_calloc(new_cap, sizeof(char *)), qd_calloc(new_cap, sizeof(void *)),
                        new_cap, 0};
    if (!bigger.keys || !bigger.values) {
        qd_free(bigger.keys);
        qd_free(bigger.values);
        return -1;
    }
    for (size_t i = 0; i < map->cap; i++) {
        if (map->keys[i]) {
            size_t j = find_slot(&bigger, map->keys[i]);
            bigger.keys[j] = map->keys[i];
            bigger.values[j] = map->values[i];
            bigger.count++;
        }
    }
    qd_strmap_free(map);
    *map = bigger;
    return 0;
}

int qd_strmap_put(qd_strmap *map, const char *key, void *value)
{
    if ((map->count + 1) * 2 > map->cap && rehash(map, map->cap ? map->cap * 2 : 64) != 0)
        return -1;
    size_t i = find_slot(map, key);
    if (!map->keys[i])
        map->count++;
    map->keys[i] = key;
    map->values[i] = value;
    return 0;
}

void qd_strmap_remove(qd_strmap *map, const char *key)
{
    if (!map->cap)
        return;
    size_t i = find_slot(map, key);
    if (!map->keys[i])
        return;
    map->keys[i] = NULL;
    map->count--;
    /* Re-insert the rest of the cluster so lookups keep finding them. */
    size_t mask = map->cap - 1;
    for (size_t j = (i + 1) & mask; map->keys[j]; j = (j + 1) & mask) {
        const char *k = map->keys[j];
        void *v = map->values[j];
        map->keys[j] = NULL;
        size_t s = find_slot(map, k);
        map->keys[s] = k;
        map->values[s] = v;
    }
}

void qd_strmap_free(qd_strmap *map)
{
    qd_free(map->keys);
    qd_free(map->values);
    map->keys = NULL;
    map->values = NULL;
    map->cap = map->count = 0;
}
