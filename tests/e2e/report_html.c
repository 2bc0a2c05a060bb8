/* qd_report_html IN.json OUT.html: the HTML report of a compare document,
 * through qd_report_html_write. Used by check_report_html.py, which renders
 * the page in headless Chromium. */
#include <stdio.h>
#include <stdlib.h>

#include "report/html.h"

static char *read_all(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, fp);
        if (n < cap - 1)
            break;
        char *grown = realloc(buf, cap *= 2);
        if (!grown)
            free(buf);
        buf = grown;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (buf)
        buf[n] = '\0';
    if (bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: qd_report_html IN.json OUT.html\n");
        return 2;
    }
    char *json = read_all(argv[1]);
    if (!json) {
        fprintf(stderr, "qd_report_html: %s: cannot read\n", argv[1]);
        return 1;
    }
    qd_error err = {0};
    qd_status st = qd_report_html_write(argv[2], json, &err);
    if (st != QD_OK)
        fprintf(stderr, "qd_report_html: %s\n", err.message);
    free(json);
    return st == QD_OK ? 0 : 1;
}
