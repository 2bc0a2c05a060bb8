#include "report/json.h"

#include <inttypes.h>
#include <math.h>

void qd_json_init(qd_json *j, FILE *out, int pretty)
{
    j->out = out;
    j->depth = 0;
    j->count[0] = 0;
    j->pretty = pretty;
    j->after_key = 0;
}

static void newline(qd_json *j)
{
    if (!j->pretty)
        return;
    fputc('\n', j->out);
    for (int i = 0; i < j->depth; i++)
        fputs("  ", j->out);
}

/* Called before every value: a comma after the previous item of the level,
 * unless the value follows its key. */
static void before_value(qd_json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (j->depth > 0) {
        if (j->count[j->depth]++)
            fputc(',', j->out);
        newline(j);
    }
}

static void open(qd_json *j, char c)
{
    before_value(j);
    fputc(c, j->out);
    if (j->depth + 1 < QD_JSON_MAX_DEPTH)
        j->depth++;
    j->count[j->depth] = 0;
}

static void close_(qd_json *j, char c)
{
    int had_items = j->count[j->depth] > 0;
    if (j->depth > 0)
        j->depth--;
    if (had_items)
        newline(j);
    fputc(c, j->out);
    if (j->depth == 0 && j->pretty)
        fputc('\n', j->out);
}

void qd_json_begin_object(qd_json *j) { open(j, '{'); }
void qd_json_end_object(qd_json *j) { close_(j, '}'); }
void qd_json_begin_array(qd_json *j) { open(j, '['); }
void qd_json_end_array(qd_json *j) { close_(j, ']'); }

static void write_escaped(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (*p < 0x20)
                fprintf(out, "\\u%04x", *p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}

void qd_json_key(qd_json *j, const char *key)
{
    before_value(j);
    write_escaped(j->out, key);
    fputs(j->pretty ? ": " : ":", j->out);
    j->after_key = 1;
}

void qd_json_string(qd_json *j, const char *s)
{
    before_value(j);
    write_escaped(j->out, s);
}

void qd_json_int(qd_json *j, int64_t v)
{
    before_value(j);
    fprintf(j->out, "%" PRId64, v);
}

void qd_json_double(qd_json *j, double v)
{
    before_value(j);
    if (isfinite(v))
        fprintf(j->out, "%.9g", v);
    else
        fputs("null", j->out);
}

void qd_json_bool(qd_json *j, int v)
{
    before_value(j);
    fputs(v ? "true" : "false", j->out);
}

void qd_json_null(qd_json *j)
{
    before_value(j);
    fputs("null", j->out);
}
