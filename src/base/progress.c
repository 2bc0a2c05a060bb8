#include "base/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define BAR_WIDTH 30

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void draw(qd_progress *p)
{
    int64_t total = p->total > 0 ? p->total : 1;
    int64_t done = p->done < 0 ? 0 : p->done > total ? total : p->done;
    int fill = (int)(done * BAR_WIDTH / total);
    char bar[BAR_WIDTH + 1];
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(BAR_WIDTH - fill));
    bar[BAR_WIDTH] = '\0';
    fprintf(stderr, "\r%s [%s] %lld/%lld", p->label, bar, (long long)done, (long long)p->total);
    fflush(stderr);
    p->drawn = 1;
    p->last_ms = now_ms();
}

void qd_progress_begin(qd_progress *p, int enabled, const char *label, int64_t total)
{
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    if (enabled)
        draw(p);
}

void qd_progress_update(qd_progress *p, int64_t done)
{
    p->done = done;
    if (p->enabled && now_ms() - p->last_ms >= 100.0)
        draw(p);
}

void qd_progress_end(qd_progress *p)
{
    if (!p->enabled)
        return;
    draw(p);
    fputc('\n', stderr);
    p->enabled = 0;
}
