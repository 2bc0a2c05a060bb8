/* The HTML report writer (src/report/html.c): the JSON spliced into the
 * template's data element so that no string in it ends the script, the JSON
 * well-formedness check, atomic writes (no partial or temporary files on any
 * failure), and errors naming the path. The page in a browser is tested by
 * tests/e2e/check_report_html.py. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qdeploy.h"
#include "report/html.h"

static char g_tmp[256];

static int setup(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/qd_test_report_html_XXXXXX");
    return mkdtemp(g_tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(g_tmp);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", g_tmp, e->d_name);
        remove(p);
    }
    if (d)
        closedir(d);
    return rmdir(g_tmp);
}

static const char *tmp_path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", g_tmp, name);
    return p;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Files in the temporary folder (a failed write must leave none behind). */
static int n_files(void)
{
    DIR *d = opendir(g_tmp);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Undoes the two escapes in place. */
static void unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (!strncmp(r, "<\\/", 3)) {
            memcpy(w, "</", 2), w += 2, r += 3;
        } else if (!strncmp(r, "\\u003c!--", 9)) {
            memcpy(w, "<!--", 4), w += 4, r += 9;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

static void test_embeds_json_escaped(void **state)
{
    (void)state;
    const char *json =
        "{\"qdeploy_compare\": 1, \"model\": \"</script><script>alert(1)</script>\",\n"
        " \"variants\": [{\"name\": \"fp32\", \"label\": \"<!--<script>\", \"top1\": 91.5}],\n"
        " \"graph\": {\"nodes\": [{\"name\": \"a</SCRIPT b\", \"op\": \"Conv\"}]}}";
    qd_error err = {0};
    const char *out = tmp_path("report.html");
    assert_int_equal(qd_report_html_write(out, json, &err), QD_OK);
    char *page = slurp(out);
    assert_non_null(page);
    assert_int_equal(strncmp(page, "<!DOCTYPE html>", 15), 0);
    assert_null(strstr(page, "@QD_COMPARE_JSON@"));
    /* Only the template's two script elements close; "<script" inside the
     * data is plain text unless "<!--" precedes it. */
    assert_int_equal(count(page, "</script"), 2);
    assert_null(strstr(page, "</SCRIPT"));
    assert_null(strstr(page, "<!--<script>"));

    /* The data element holds the document, byte for byte once unescaped. */
    const char *open = "<script type=\"application/json\" id=\"qd-data\">";
    char *start = strstr(page, open);
    assert_non_null(start);
    start += strlen(open);
    char *end = strstr(start, "</script>");
    assert_non_null(end);
    *end = '\0';
    unescape(start);
    assert_string_equal(start, json);
    assert_int_equal(n_files(), 1);
    free(page);
}

static void test_overwrites_atomically(void **state)
{
    (void)state;
    const char *out = tmp_path("report.html");
    FILE *fp = fopen(out, "w");
    assert_non_null(fp);
    fputs("old", fp);
    fclose(fp);
    qd_error err = {0};
    /* A bad document leaves the old file as it was. */
    assert_int_equal(qd_report_html_write(out, "{\"variants\": [", &err),
                     QD_STATUS_INVALID_ARGUMENT);
    char *page = slurp(out);
    assert_string_equal(page, "old");
    free(page);
    assert_int_equal(qd_report_html_write(out, "{\"variants\": []}", &err), QD_OK);
    page = slurp(out);
    assert_non_null(strstr(page, "{\"variants\": []}"));
    free(page);
    struct stat sb;
    assert_int_equal(stat(out, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    assert_int_equal(n_files(), 1);
}

static void test_accepts_valid_json(void **state)
{
    (void)state;
    const char *docs[] = {
        "{}",
        " \n\t{ } \n",
        "{\"a\": [1, -0.5, 2e10, -3.25E-2, 0, true, false, null, \"\\u00e9\\n\\\"\\\\\\/\"]}",
        "{\"a\": {\"b\": [[[]], {}], \"c\": \"\xc3\xa9 \xe2\x86\x92 <b>&amp;</b>\"}}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        qd_error err = {0};
        if (qd_report_html_write(tmp_path("ok.html"), docs[i], &err) != QD_OK)
            fail_msg("document %zu rejected: %s", i, err.message);
    }
}

static void test_rejects_malformed_json(void **state)
{
    (void)state;
    char deep[1200];
    size_t k = 0;
    deep[k++] = '{';
    deep[k++] = '"', deep[k++] = 'a', deep[k++] = '"', deep[k++] = ':';
    for (int i = 0; i < 300; i++)
        deep[k++] = '[';
    for (int i = 0; i < 300; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    deep[k] = '\0';
    const char *docs[] = {
        "", "   ", "[]", "\"s\"", "42", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":1 \"b\":2}",
        "{a:1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":-}", "{\"a\":1e}", "{\"a\":NaN}",
        "{\"a\":tru}", "{\"a\":\"x\x01y\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12g4\"}",
        "{\"a\":\"unterminated}", "{} {}", "{}x", "{\"a\":[1,2}", deep,
    };
    const char *out = tmp_path("bad.html");
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        qd_error err = {0};
        qd_status st = qd_report_html_write(out, docs[i], &err);
        if (st != QD_STATUS_INVALID_ARGUMENT)
            fail_msg("document %zu (%.40s) not rejected (status %d)", i, docs[i], st);
        assert_non_null(strstr(err.message, out));
        assert_non_null(strstr(err.message, "compare JSON"));
        assert_int_equal(n_files(), 0);
    }
    qd_error err = {0};
    assert_int_equal(qd_report_html_write(out, "{\"a\":\"\\x\"}", &err), QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "byte 7"));
}

static void test_io_errors_name_the_path(void **state)
{
    (void)state;
    qd_error err = {0};
    const char *out = tmp_path("missing-dir/report.html");
    assert_int_equal(qd_report_html_write(out, "{}", &err), QD_STATUS_IO_ERROR);
    assert_non_null(strstr(err.message, out));
    assert_int_equal(qd_report_html_write(g_tmp, "{}", &err), QD_STATUS_IO_ERROR);
    assert_non_null(strstr(err.message, g_tmp));
    assert_non_null(strstr(err.message, "directory"));
    if (geteuid() != 0) { /* root writes anywhere */
        chmod(g_tmp, 0555);
        assert_int_equal(qd_report_html_write(tmp_path("ro.html"), "{}", &err),
                         QD_STATUS_IO_ERROR);
        chmod(g_tmp, 0700);
    }
    assert_int_equal(n_files(), 0);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    qd_error err = {0};
    assert_int_equal(qd_report_html_write(NULL, "{}", &err), QD_STATUS_INVALID_ARGUMENT);
    assert_int_equal(qd_report_html_write("", "{}", &err), QD_STATUS_INVALID_ARGUMENT);
    assert_int_equal(qd_report_html_write(tmp_path("x.html"), NULL, &err),
                     QD_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "no JSON"));
    /* err may be NULL. */
    assert_int_equal(qd_report_html_write(tmp_path("x.html"), "[", NULL),
                     QD_STATUS_INVALID_ARGUMENT);
    assert_int_equal(n_files(), 0);
}

static void *failing_malloc(size_t n)
{
    (void)n;
    return NULL;
}
static void *failing_realloc(void *p, size_t n)
{
    (void)p, (void)n;
    return NULL;
}

static void test_out_of_memory(void **state)
{
    (void)state;
    qd_allocator a = {failing_malloc, failing_realloc, free};
    qd_error err = {0};
    qd_set_allocator(&a);
    qd_status st = qd_report_html_write(tmp_path("oom.html"), "{}", &err);
    qd_set_allocator(NULL);
    assert_int_equal(st, QD_STATUS_OUT_OF_MEMORY);
    assert_int_equal(n_files(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_embeds_json_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overwrites_atomically, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accepts_valid_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_malformed_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_errors_name_the_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
