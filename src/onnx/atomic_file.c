/* Writing a file so that readers see either the old file or the complete new
 * one: write a temporary file in the same folder, fsync, rename. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "onnx/onnx_io.h"

qd_status qd_atomic_open(qd_graph *g, const char *path, qd_atomic_file *af)
{
    memset(af, 0, sizeof *af);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return qd_graph_fail(g, QD_STATUS_IO_ERROR, "%s: is a directory", path);
    size_t n = strlen(path) + 32;
    af->final_path = qd_strdup(path);
    af->temp_path = qd_malloc(n);
    if (!af->final_path || !af->temp_path) {
        qd_atomic_abort(af);
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    snprintf(af->temp_path, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->temp_path);
    if (fd < 0) {
        int e = errno;
        qd_free(af->temp_path);
        af->temp_path = NULL;
        qd_atomic_abort(af);
        return qd_graph_fail(g, QD_STATUS_IO_ERROR, "%s: cannot create: %s", path, strerror(e));
    }
    fchmod(fd, 0644);
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        close(fd);
        qd_atomic_abort(af);
        return qd_graph_fail(g, QD_STATUS_IO_ERROR, "%s: cannot open: %s", path, strerror(errno));
    }
    return QD_OK;
}

qd_status qd_atomic_commit(qd_graph *g, qd_atomic_file *af)
{
    int failed = ferror(af->fp) || fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0;
    int e = errno;
    if (fclose(af->fp) != 0 && !failed) {
        failed = 1;
        e = errno;
    }
    af->fp = NULL;
    if (failed) {
        qd_status st = qd_graph_fail(g, QD_STATUS_IO_ERROR, "%s: write failed: %s",
                                     af->final_path, strerror(e));
        qd_atomic_abort(af);
        return st;
    }
    if (rename(af->temp_path, af->final_path) != 0) {
        qd_status st = qd_graph_fail(g, QD_STATUS_IO_ERROR, "%s: cannot rename into place: %s",
                                     af->final_path, strerror(errno));
        qd_atomic_abort(af);
        return st;
    }
    qd_free(af->temp_path);
    qd_free(af->final_path);
    memset(af, 0, sizeof *af);
    return QD_OK;
}

void qd_atomic_abort(qd_atomic_file *af)
{
    if (af->fp)
        fclose(af->fp);
    if (af->temp_path)
        unlink(af->temp_path);
    qd_free(af->temp_path);
    qd_free(af->final_path);
    memset(af, 0, sizeof *af);
}
