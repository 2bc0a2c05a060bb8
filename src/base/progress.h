/* A progress bar on stderr for long loops (calibration, evaluation):
 *   mixed: evaluating [##########..........]  5120/10000
 * drawn only when enabled (the CLI enables it when stderr is a terminal),
 * redrawn at most every 100 ms, and finished with a newline. */
#ifndef QD_BASE_PROGRESS_H
#define QD_BASE_PROGRESS_H
#include <stdint.h>

typedef struct qd_progress {
    int enabled;
    char label[96];
    int64_t total, done;
    double last_ms; /* when last drawn */
    int drawn;
} qd_progress;

void qd_progress_begin(qd_progress *p, int enabled, const char *label, int64_t total);
void qd_progress_update(qd_progress *p, int64_t done);
/* Draws the final state and ends the line (when anything was drawn). */
void qd_progress_end(qd_progress *p);

#endif
