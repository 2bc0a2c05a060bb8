/* External data: tensors stored in files beside the model. Each tensor's
 * pages are mapped copy-on-write (so passes may edit tensors in place) and
 * stay mapped for the graph's life; nothing is copied. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "onnx/onnx_io.h"

static int path_within(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    return strncmp(dir, path, n) == 0 && (path[n] == '/' || (n == 1 && dir[0] == '/'));
}

qd_status qd_external_data_map(qd_graph *g, const char *location, int64_t offset, int64_t length,
                               const char *what, void **data, size_t *size)
{
    if (!g->base_dir)
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                             "%s: external data '%s' but the model was not loaded from a file",
                             what, location);
    if (location[0] == '/')
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                             "%s: external data path '%s' is absolute; it must be relative to "
                             "the model's folder",
                             what, location);
    char joined[PATH_MAX], resolved[PATH_MAX], base[PATH_MAX];
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", g->base_dir, location) >= sizeof joined)
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "%s: external data path too long", what);
    if (!realpath(g->base_dir, base))
        return qd_graph_fail(g, QD_STATUS_IO_ERROR, "%s: %s", g->base_dir, strerror(errno));
    if (!realpath(joined, resolved))
        return qd_graph_fail(g, QD_STATUS_IO_ERROR, "%s: external data file '%s': %s", what,
                             joined, strerror(errno));
    if (!path_within(base, resolved))
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                             "%s: external data path '%s' escapes the model's folder %s", what,
                             location, base);

    struct stat sb;
    int fd = open(resolved, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qd_graph_fail(g, QD_STATUS_IO_ERROR, "%s: external data file '%s': %s", what,
                             resolved, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return qd_graph_fail(g, QD_STATUS_IO_ERROR, "%s: external data '%s' is not a regular file",
                             what, resolved);
    }
    if (offset < 0 || length < 0 || offset > sb.st_size || length > sb.st_size - offset) {
        close(fd);
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                             "%s: external data [%" PRId64 ", +%" PRId64
                             ") lies outside '%s' (%lld bytes)",
                             what, offset, length, resolved, (long long)sb.st_size);
    }
    /* Map only the pages this tensor needs; offsets must be page-aligned. */
    long page = sysconf(_SC_PAGESIZE);
    int64_t map_off = offset - offset % page;
    size_t map_len = (size_t)(length + (offset - map_off));
    if (map_len == 0) {
        close(fd);
        static char empty;
        *data = &empty;
        *size = 0;
        return QD_OK;
    }
    void *addr = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, (off_t)map_off);
    close(fd);
    if (addr == MAP_FAILED)
        return qd_graph_fail(g, QD_STATUS_IO_ERROR, "%s: cannot map '%s': %s", what, resolved,
                             strerror(errno));
    if (qd_grow((void **)&g->mappings, &g->mappings_cap, g->n_mappings + 1,
                sizeof *g->mappings) != 0) {
        munmap(addr, map_len);
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", what);
    }
    g->mappings[g->n_mappings++] = (qd_mapping){addr, map_len};
    *data = (char *)addr + (offset - map_off);
    *size = (size_t)length;
    return QD_OK;
}
