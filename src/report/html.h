/* The self-contained HTML report of `qdeploy compare --report out.html`.
 *
 * The page is one file with inline CSS, JavaScript and SVG (no network). It
 * embeds the compare JSON document (schema: `qdeploy compare --json`) verbatim
 * in <script type="application/json" id="qd-data"> and renders it in the
 * browser: the comparison table and summary, the fusion table, the model graph
 * coloured by precision per policy, per-tensor SQNR bars and per-layer latency.
 * The template is src/report/html_template.html, embedded at build time. */
#ifndef QD_REPORT_HTML_H
#define QD_REPORT_HTML_H

#include "base/status.h"

/* Writes the report for compare_json (a NUL-terminated JSON object) to path,
 * atomically: a temporary file in the same folder, then rename, so readers
 * never see a partial page and a failure leaves no file behind. The JSON is
 * checked for well-formedness (not for the schema: the page tolerates missing
 * optional parts) and escaped so that no string in it can end the script
 * element ("</" becomes "<\/", "<!--" becomes "\u003c!--").
 * Errors (on err, which may be NULL): QD_STATUS_INVALID_ARGUMENT for NULL
 * arguments or malformed JSON, QD_STATUS_IO_ERROR naming path when it cannot
 * be written, QD_STATUS_OUT_OF_MEMORY. */
qd_status qd_report_html_write(const char *path, const char *compare_json, qd_error *err);

#endif
