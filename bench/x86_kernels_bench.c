/* The AVX-512 kernels (src/engine/kernels/x86) against the reference
 * kernels on ViT-B/16, ConvNeXt-T and ResNet-50 sizes: LayerNorm, Softmax,
 * GELU, Erf, Add (three broadcast patterns), Transpose, GlobalAveragePool,
 * MaxPool. Per case, R rounds alternate the two kernels (which goes first
 * alternates too); a round times one kernel over a ~20 ms batch of calls.
 * Reports each kernel's median and best ms per call, the speedup (ratio of
 * medians) and the x86 kernel's effective bandwidth, GB/s = (bytes read +
 * bytes written) / median time, against the median round. The machine is
 * shared: look at best and median together.
 *
 * Build (from the repository, after building the library in build/):
 *   cc -O2 -std=c11 -D_DEFAULT_SOURCE -fopenmp -Iinclude -Isrc bench/x86_kernels_bench.c \
 *      build/libqdeploy.a -ldnnl -lprotobuf-c -lz -lm -o /tmp/x86_kernels_bench
 *   /tmp/x86_kernels_bench [--threads N] [--rounds R] [--results bench/RESULTS.md] [filter]
 * --results replaces the <!-- x86-kernels:begin/end --> section of the
 * file (appending it when absent). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "engine/kernel.h"
#include "engine/kernels/x86/x86_kernels.h"
#include "ir/graph.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static uint32_t g_rng = 1;
static float frand(void)
{
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)((g_rng >> 8) & 0xffff) / 16384.0f - 2.0f;
}

/* ---- one case: a node and its tensors ---- */

#define MAXIN 3

typedef struct bcase {
    const char *name;
    qd_graph *g;
    qd_node *n;
    qd_tensor *in[MAXIN];
    int nin;
    qd_tensor *out;
    double bytes;
} bcase;

static qd_tensor *tensor(int rank, const int64_t *dims)
{
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, rank, dims);
    if (!t) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    float *p = t->data;
    for (int64_t i = 0; i < qd_numel(rank, dims); i++)
        p[i] = frand();
    return t;
}

/* A node `op` with inputs of the given shapes (dims lists) and output
 * shape od. */
static bcase make(const char *name, const char *op, int64_t opset, int nin, const int *ranks,
                  const int64_t *const *dims, int ro, const int64_t *od)
{
    bcase c = {0};
    c.name = name;
    c.g = qd_graph_new();
    c.g->opset = opset;
    qd_value *iv[MAXIN], *ov = qd_graph_new_value(c.g, NULL, "y");
    for (int i = 0; i < nin; i++) {
        iv[i] = qd_graph_new_value(c.g, NULL, "x");
        qd_value_set_shape(iv[i], QD_DT_FLOAT, ranks[i], dims[i]);
        c.in[i] = tensor(ranks[i], dims[i]);
        c.bytes += (double)c.in[i]->nbytes;
    }
    qd_value_set_shape(ov, QD_DT_FLOAT, ro, od);
    c.out = tensor(ro, od);
    c.bytes += (double)c.out->nbytes;
    c.n = qd_graph_add_node(c.g, op, "", name, iv, nin, &ov, 1);
    c.nin = nin;
    return c;
}

static void free_case(bcase *c)
{
    for (int i = 0; i < c->nin; i++)
        qd_tensor_delete(c->in[i]);
    qd_tensor_delete(c->out);
    qd_graph_delete(c->g);
}

static int g_threads = 2, g_rounds = 9;

/* ms per call of fn over a batch of about 20 ms. */
static double batch(bcase *c, qd_kernel_fn fn)
{
    qd_tensor *outs[1] = {c->out};
    qd_kernel_args a = {c->n, c->g, c->nin, (const qd_tensor *const *)c->in, 1, outs,
                        g_threads, NULL, NULL, 0};
    int n = 0;
    double t0 = now_ms(), t;
    do {
        if (fn(&a) != QD_OK) {
            fprintf(stderr, "%s: %s\n", c->name, qd_graph_error(c->g));
            exit(1);
        }
        n++;
        t = now_ms() - t0;
    } while (t < 20);
    return t / n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char g_table[16384];
static size_t g_len;

static void row(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void row(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fputs(line, stdout);
    fflush(stdout);
    size_t n = strlen(line);
    if (g_len + n < sizeof g_table) {
        memcpy(g_table + g_len, line, n);
        g_len += n;
    }
}

static void run_case(bcase *c, const char *filter)
{
    if (filter && !strstr(c->name, filter)) {
        free_case(c);
        return;
    }
    if (!qd_x86_supports(c->n)) {
        fprintf(stderr, "%s: not claimed by the x86 kernels\n", c->name);
        free_case(c);
        return;
    }
    qd_kernel_fn ref = qd_ref_kernel(c->n->op), x86 = qd_x86_impl(c->n).run;
    batch(c, ref); /* warm-up */
    batch(c, x86);
    double tr[64], tx[64];
    int R = g_rounds < 64 ? g_rounds : 64;
    for (int r = 0; r < R; r++) {
        if (r & 1) {
            tx[r] = batch(c, x86);
            tr[r] = batch(c, ref);
        } else {
            tr[r] = batch(c, ref);
            tx[r] = batch(c, x86);
        }
    }
    qsort(tr, (size_t)R, sizeof *tr, cmp_double);
    qsort(tx, (size_t)R, sizeof *tx, cmp_double);
    double mr = tr[R / 2], mx = tx[R / 2];
    row("| %s | %.4f | %.4f | %.4f | %.4f | %.1fx | %.1f |\n", c->name, mr, tr[0], mx, tx[0],
        mr / mx, c->bytes / (mx * 1e6));
    free_case(c);
}

/* Writes the table into path between the markers. */
static void write_results(const char *path, const char *header)
{
    static const char *begin = "<!-- x86-kernels:begin -->", *end = "<!-- x86-kernels:end -->";
    char *old = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        old = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
        len = fread(old, 1, (size_t)(n > 0 ? n : 0), f);
        fclose(f);
    }
    char *b = old ? strstr(old, begin) : NULL, *e = b ? strstr(b, end) : NULL;
    f = fopen(path, "wb");
    if (!f) {
        perror(path);
        free(old);
        return;
    }
    if (b && e) {
        fwrite(old, 1, (size_t)(b - old), f);
    } else if (old) {
        fwrite(old, 1, len, f);
        if (len && old[len - 1] != '\n')
            fputc('\n', f);
        fputc('\n', f);
    }
    fprintf(f, "%s\n%s%.*s%s", begin, header, (int)g_len, g_table, end);
    if (b && e)
        fputs(e + strlen(end), f);
    else
        fputc('\n', f);
    fclose(f);
    free(old);
}

int main(int argc, char **argv)
{
    const char *filter = NULL, *results = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            g_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            g_rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--results") && i + 1 < argc)
            results = argv[++i];
        else
            filter = argv[i];
    }
    if (!qd_x86_cpu_avx512()) {
        printf("this CPU has no AVX-512: nothing to compare\n");
        return 0;
    }
    if (g_rounds < 1)
        g_rounds = 1;
#ifdef _OPENMP
    /* the reference kernels use OpenMP's default team size */
    omp_set_num_threads(g_threads);
#endif
    char header[1024];
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    snprintf(header, sizeof header,
             "## x86 AVX-512 kernels vs reference kernels (float32)\n\n"
             "- date: %s; threads: %d; rounds: %d (kernels alternating, ~20 ms batches); "
             "command: `x86_kernels_bench --threads %d --rounds %d`\n"
             "- ms per call: median and best round; speedup: ratio of medians; GB/s: (bytes "
             "read + written) / x86 median\n\n"
             "| case | ref ms | ref best | x86 ms | x86 best | speedup | x86 GB/s |\n"
             "|---|---:|---:|---:|---:|---:|---:|\n",
             date, g_threads, g_rounds, g_threads, g_rounds);
    fputs(header, stdout);

    /* LayerNorm: ViT-B tokens, ConvNeXt-T stage 1 (channels-last) */
    {
        int64_t x[3] = {1, 197, 768}, s[1] = {768};
        const int64_t *d[3] = {x, s, s};
        int r[3] = {3, 1, 1};
        bcase c = make("LayerNorm 197x768", "LayerNormalization", 17, 3, r, d, 3, x);
        run_case(&c, filter);
        int64_t y[4] = {1, 56, 56, 96}, t[1] = {96};
        const int64_t *e[3] = {y, t, t};
        int q[3] = {4, 1, 1};
        c = make("LayerNorm 56x56x96", "LayerNormalization", 17, 3, q, e, 4, y);
        run_case(&c, filter);
    }
    /* Softmax: ViT-B attention */
    {
        int64_t x[4] = {1, 12, 197, 197};
        const int64_t *d[1] = {x};
        int r[1] = {4};
        bcase c = make("Softmax 12x197x197", "Softmax", 17, 1, r, d, 4, x);
        run_case(&c, filter);
    }
    /* GELU (erf, tanh) and Erf: ViT-B MLP */
    {
        int64_t x[3] = {1, 197, 3072};
        const int64_t *d[1] = {x};
        int r[1] = {3};
        bcase c = make("Gelu 197x3072", "Gelu", 20, 1, r, d, 3, x);
        run_case(&c, filter);
        c = make("Gelu tanh 197x3072", "Gelu", 20, 1, r, d, 3, x);
        qd_node_set_attr_string(c.n, "approximate", "tanh");
        run_case(&c, filter);
        c = make("Erf 197x3072", "Erf", 17, 1, r, d, 3, x);
        run_case(&c, filter);
    }
    /* Add: same shape (residual), bias row, per-channel [C,1,1] */
    {
        int64_t x[3] = {1, 197, 768}, b[1] = {768};
        const int64_t *d[2] = {x, x};
        int r[2] = {3, 3};
        bcase c = make("Add 197x768 + 197x768", "Add", 17, 2, r, d, 3, x);
        run_case(&c, filter);
        const int64_t *e[2] = {x, b};
        int q[2] = {3, 1};
        c = make("Add 197x768 + 768", "Add", 17, 2, q, e, 3, x);
        run_case(&c, filter);
        int64_t y[4] = {1, 96, 56, 56}, ch[3] = {96, 1, 1};
        const int64_t *f[2] = {y, ch};
        int p[2] = {4, 3};
        c = make("Mul 96x56x56 * 96x1x1", "Mul", 17, 2, p, f, 4, y);
        run_case(&c, filter);
    }
    /* Transpose: ConvNeXt NCHW<->NHWC, ViT heads */
    {
        int64_t x[4] = {1, 96, 56, 56}, y[4] = {1, 56, 56, 96};
        const int64_t *d[1] = {x};
        int r[1] = {4};
        static const int64_t p0231[4] = {0, 2, 3, 1}, p0312[4] = {0, 3, 1, 2};
        static const int64_t p0213[4] = {0, 2, 1, 3};
        bcase c = make("Transpose 96x56x56 (0,2,3,1)", "Transpose", 17, 1, r, d, 4, y);
        qd_node_set_attr_ints(c.n, "perm", p0231, 4);
        run_case(&c, filter);
        const int64_t *e[1] = {y};
        c = make("Transpose 56x56x96 (0,3,1,2)", "Transpose", 17, 1, r, e, 4, x);
        qd_node_set_attr_ints(c.n, "perm", p0312, 4);
        run_case(&c, filter);
        int64_t v[4] = {1, 197, 12, 64}, w[4] = {1, 12, 197, 64};
        const int64_t *f[1] = {v};
        c = make("Transpose 197x12x64 (0,2,1,3)", "Transpose", 17, 1, r, f, 4, w);
        qd_node_set_attr_ints(c.n, "perm", p0213, 4);
        run_case(&c, filter);
        /* torchvision ViT's attention: K^T straight from [L, heads, d] */
        static const int64_t p120[3] = {1, 2, 0};
        int64_t k[3] = {197, 12, 64}, kt[3] = {12, 64, 197};
        const int64_t *g[1] = {k};
        int r3[1] = {3};
        c = make("Transpose 197x12x64 (1,2,0)", "Transpose", 17, 1, r3, g, 3, kt);
        qd_node_set_attr_ints(c.n, "perm", p120, 3);
        run_case(&c, filter);
    }
    /* GlobalAveragePool (ResNet-50 head), MaxPool (ResNet-50 stem) */
    {
        int64_t x[4] = {1, 2048, 7, 7}, y[4] = {1, 2048, 1, 1};
        const int64_t *d[1] = {x};
        int r[1] = {4};
        bcase c = make("GlobalAveragePool 2048x7x7", "GlobalAveragePool", 17, 1, r, d, 4, y);
        run_case(&c, filter);
        int64_t p[4] = {1, 64, 112, 112}, q[4] = {1, 64, 56, 56};
        const int64_t *e[1] = {p};
        c = make("MaxPool 3x3/2 64x112x112", "MaxPool", 17, 1, r, e, 4, q);
        int64_t k[2] = {3, 3}, s[2] = {2, 2}, pads[4] = {1, 1, 1, 1};
        qd_node_set_attr_ints(c.n, "kernel_shape", k, 2);
        qd_node_set_attr_ints(c.n, "strides", s, 2);
        qd_node_set_attr_ints(c.n, "pads", pads, 4);
        run_case(&c, filter);
    }
    if (results)
        write_results(results, header);
    return 0;
}
