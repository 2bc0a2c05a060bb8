/* The HTML report: the embedded template with the compare JSON spliced into
 * its data element, written atomically. The browser does the rendering
 * (src/report/html_template.html); this file only guarantees that the page is
 * complete, that the JSON parses, and that nothing in it ends the script. */
#include "report/html.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"

/* Generated at build time from html_template.html (cmake/embed_file.cmake);
 * NUL-terminated, size without the NUL. */
extern const unsigned char qd_html_template[];
extern const size_t qd_html_template_size;

/* Where the JSON goes: the template's data element holds exactly this. */
#define DATA_MARKER "@QD_COMPARE_JSON@"
#define JSON_MAX_DEPTH 256

/* ---- well-formedness check (RFC 8259), reporting the first bad byte ---- */

typedef struct json_check {
    const char *s;
    size_t i;
    const char *expected; /* what was expected at s[i] when it failed */
} json_check;

static void skip_ws(json_check *c)
{
    while (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' || c->s[c->i] == '\r')
        c->i++;
}

static int fail_at(json_check *c, const char *expected)
{
    c->expected = expected;
    return 0;
}

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static int is_hex(char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static int check_string(json_check *c)
{
    c->i++; /* opening quote */
    for (;;) {
        unsigned char ch = (unsigned char)c->s[c->i];
        if (ch == '"') {
            c->i++;
            return 1;
        }
        if (ch == '\0')
            return fail_at(c, "closing '\"'");
        if (ch < 0x20)
            return fail_at(c, "no control character inside a string");
        if (ch == '\\') {
            char e = c->s[++c->i];
            if (e == 'u') {
                for (int k = 1; k <= 4; k++)
                    if (!is_hex(c->s[c->i + (size_t)k]))
                        return fail_at(c, "four hex digits after \\u");
                c->i += 4;
            } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
                return fail_at(c, "a valid escape after '\\'");
            }
        }
        c->i++;
    }
}

static int check_number(json_check *c)
{
    if (c->s[c->i] == '-')
        c->i++;
    if (c->s[c->i] == '0')
        c->i++;
    else if (is_digit(c->s[c->i]))
        while (is_digit(c->s[c->i]))
            c->i++;
    else
        return fail_at(c, "a digit");
    if (c->s[c->i] == '.') {
        c->i++;
        if (!is_digit(c->s[c->i]))
            return fail_at(c, "a digit after '.'");
        while (is_digit(c->s[c->i]))
            c->i++;
    }
    if (c->s[c->i] == 'e' || c->s[c->i] == 'E') {
        c->i++;
        if (c->s[c->i] == '+' || c->s[c->i] == '-')
            c->i++;
        if (!is_digit(c->s[c->i]))
            return fail_at(c, "a digit in the exponent");
        while (is_digit(c->s[c->i]))
            c->i++;
    }
    return 1;
}

static int check_value(json_check *c, int depth)
{
    skip_ws(c);
    const char *s = c->s + c->i;
    if (*s == '"')
        return check_string(c);
    if (*s == '-' || is_digit(*s))
        return check_number(c);
    if (!strncmp(s, "true", 4) || !strncmp(s, "null", 4)) {
        c->i += 4;
        return 1;
    }
    if (!strncmp(s, "false", 5)) {
        c->i += 5;
        return 1;
    }
    if (*s != '{' && *s != '[')
        return fail_at(c, "a value");
    if (depth >= JSON_MAX_DEPTH)
        return fail_at(c, "less nesting");
    char close = *s == '{' ? '}' : ']';
    c->i++;
    skip_ws(c);
    if (c->s[c->i] == close) {
        c->i++;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            skip_ws(c);
            if (c->s[c->i] != '"')
                return fail_at(c, "a key string");
            if (!check_string(c))
                return 0;
            skip_ws(c);
            if (c->s[c->i] != ':')
                return fail_at(c, "':'");
            c->i++;
        }
        if (!check_value(c, depth + 1))
            return 0;
        skip_ws(c);
        if (c->s[c->i] == close) {
            c->i++;
            return 1;
        }
        if (c->s[c->i] != ',')
            return fail_at(c, close == '}' ? "',' or '}'" : "',' or ']'");
        c->i++;
    }
}

/* The page renders an object; anything else is the producer's bug. */
static qd_status check_document(const char *json, const char *path, qd_error *err)
{
    json_check c = {json, 0, NULL};
    skip_ws(&c);
    if (json[c.i] != '{')
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                            "%s: compare JSON is not an object (byte %zu)", path, c.i);
    if (check_value(&c, 0)) {
        skip_ws(&c);
        if (json[c.i] == '\0')
            return QD_OK;
        c.expected = "end of document";
    }
    return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                        "%s: compare JSON is malformed at byte %zu: expected %s", path, c.i,
                        c.expected);
}

/* ---- writing ---------------------------------------------------------- */

/* The JSON, escaped for a script element's raw text: "</" would end the
 * element and "<!--" would start the double-escaped state that swallows the
 * closing tag. Both only occur inside strings, where the escapes keep the
 * JSON's meaning. */
static void write_escaped_json(FILE *fp, const char *json)
{
    const char *run = json;
    for (const char *p = json; *p; p++) {
        if (p[0] != '<')
            continue;
        if (p[1] == '/') {
            fwrite(run, 1, (size_t)(p - run), fp);
            fputs("<\\/", fp);
            run = p + 2;
            p++;
        } else if (!strncmp(p, "<!--", 4)) {
            fwrite(run, 1, (size_t)(p - run), fp);
            fputs("\\u003c!--", fp);
            run = p + 4;
            p += 3;
        }
    }
    fputs(run, fp);
}

qd_status qd_report_html_write(const char *path, const char *compare_json, qd_error *err)
{
    char *temp_path = NULL;
    FILE *fp = NULL;
    qd_status st = QD_OK;

    if (!path || !*path || !compare_json)
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                            "HTML report: %s", compare_json ? "no output path" : "no JSON document");
    const char *tpl = (const char *)qd_html_template;
    const char *marker = strstr(tpl, DATA_MARKER);
    if (!marker || strstr(marker + 1, DATA_MARKER))
        return qd_error_set(err, QD_STATUS_INVALID_ARGUMENT,
                            "%s: the built-in HTML template has no single data marker", path);
    st = check_document(compare_json, path, err);
    if (st != QD_OK)
        return st;

    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return qd_error_set(err, QD_STATUS_IO_ERROR, "%s: is a directory", path);
    size_t n = strlen(path) + 32;
    temp_path = qd_malloc(n);
    if (!temp_path)
        return qd_error_set(err, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    snprintf(temp_path, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(temp_path);
    if (fd < 0) {
        st = qd_error_set(err, QD_STATUS_IO_ERROR, "%s: cannot create: %s", path, strerror(errno));
        qd_free(temp_path);
        return st;
    }
    fchmod(fd, 0644);
    fp = fdopen(fd, "wb");
    if (!fp) {
        st = qd_error_set(err, QD_STATUS_IO_ERROR, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
        goto fail;
    }

    fwrite(tpl, 1, (size_t)(marker - tpl), fp);
    write_escaped_json(fp, compare_json);
    const char *rest = marker + strlen(DATA_MARKER);
    fwrite(rest, 1, qd_html_template_size - (size_t)(rest - tpl), fp);

    int failed = ferror(fp) || fflush(fp) != 0 || fsync(fileno(fp)) != 0;
    int e = errno;
    if (fclose(fp) != 0 && !failed) {
        failed = 1;
        e = errno;
    }
    fp = NULL;
    if (failed) {
        st = qd_error_set(err, QD_STATUS_IO_ERROR, "%s: write failed: %s", path, strerror(e));
        goto fail;
    }
    if (rename(temp_path, path) != 0) {
        st = qd_error_set(err, QD_STATUS_IO_ERROR, "%s: cannot rename into place: %s", path,
                          strerror(errno));
        goto fail;
    }
    qd_free(temp_path);
    return QD_OK;

fail:
    if (fp)
        fclose(fp);
    unlink(temp_path);
    qd_free(temp_path);
    return st;
}
