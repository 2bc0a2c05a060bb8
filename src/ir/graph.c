#include "ir/graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "base/alloc.h"

qd_graph *qd_graph_new(void)
{
    qd_graph *g = qd_calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->opset = -1;
    return g;
}

qd_status qd_graph_fail(qd_graph *g, qd_status status, const char *fmt, ...)
{
    if (!g)
        return status;
    g->err.status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err.message, sizeof g->err.message, fmt, ap);
    va_end(ap);
    return status;
}

const char *qd_graph_error(const qd_graph *g)
{
    if (!g)
        return "out of memory";
    return g->err.message;
}

static void value_delete(qd_value *v)
{
    if (!v)
        return;
    qd_free(v->name);
    for (int i = 0; i < QD_MAX_RANK; i++)
        qd_free(v->dim_params[i]);
    qd_tensor_delete(v->konst);
    qd_free(v->uses);
    qd_free(v->doc_string);
    qd_free(v);
}

void qd_attr_clear(qd_attr *a)
{
    qd_free(a->name);
    qd_free(a->s);
    qd_tensor_delete(a->t);
    qd_free(a->floats);
    qd_free(a->ints);
    if (a->strings)
        for (size_t i = 0; i < a->n; i++)
            qd_free(a->strings[i]);
    qd_free(a->strings);
    qd_free(a->raw);
    memset(a, 0, sizeof *a);
}

static void node_delete(qd_node *n)
{
    if (!n)
        return;
    qd_free(n->name);
    qd_free(n->op_type);
    qd_free(n->domain);
    qd_free(n->inputs);
    qd_free(n->outputs);
    for (int i = 0; i < n->n_attrs; i++)
        qd_attr_clear(&n->attrs[i]);
    qd_free(n->attrs);
    qd_free(n->doc_string);
    qd_free(n);
}

void qd_graph_delete(qd_graph *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_nodes; i++)
        node_delete(g->nodes[i]);
    qd_free(g->nodes);
    for (size_t i = 0; i < g->n_values; i++)
        value_delete(g->values[i]);
    qd_free(g->values);
    qd_strmap_free(&g->value_by_name);
    qd_free(g->inputs);
    qd_free(g->outputs);
    qd_free(g->initializers);
    for (size_t i = 0; i < g->n_opsets; i++)
        qd_free(g->opsets[i].domain);
    qd_free(g->opsets);
    for (size_t i = 0; i < g->n_meta; i++) {
        qd_free(g->meta_keys[i]);
        qd_free(g->meta_values[i]);
    }
    qd_free(g->meta_keys);
    qd_free(g->meta_values);
    /* Tensors may point into these mappings: unmap after the values. */
    for (size_t i = 0; i < g->n_mappings; i++)
        munmap(g->mappings[i].addr, g->mappings[i].len);
    qd_free(g->mappings);
    if (g->file_buffer) {
        if (g->file_mapped)
            munmap(g->file_buffer, g->file_size);
        else
            qd_free(g->file_buffer);
    }
    qd_free(g->producer_name);
    qd_free(g->producer_version);
    qd_free(g->model_domain);
    qd_free(g->model_doc);
    qd_free(g->name);
    qd_free(g->doc_string);
    qd_free(g->path);
    qd_free(g->base_dir);
    qd_free(g);
}

/* ---- values ---- */

qd_value *qd_graph_find_value(const qd_graph *g, const char *name)
{
    return qd_strmap_get(&g->value_by_name, name);
}

qd_value *qd_graph_new_value(qd_graph *g, const char *name, const char *hint)
{
    char buf[256];
    if (!name) {
        do {
            snprintf(buf, sizeof buf, "%s_qd%d", hint ? hint : "v", g->unique_counter++);
        } while (qd_graph_find_value(g, buf));
        name = buf;
    } else if (qd_graph_find_value(g, name)) {
        qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "tensor '%s' is defined more than once", name);
        return NULL;
    }
    qd_value *v = qd_calloc(1, sizeof *v);
    if (!v || !(v->name = qd_strdup(name)) ||
        qd_grow((void **)&g->values, &g->values_cap, g->n_values + 1, sizeof *g->values) != 0 ||
        qd_strmap_put(&g->value_by_name, v->name, v) != 0) {
        value_delete(v);
        qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory creating tensor '%s'", name);
        return NULL;
    }
    v->rank = -1;
    for (int i = 0; i < QD_MAX_RANK; i++)
        v->dims[i] = -1;
    v->id = (int)g->n_values;
    g->values[g->n_values++] = v;
    return v;
}

qd_status qd_graph_add_input(qd_graph *g, qd_value *v)
{
    if (qd_grow((void **)&g->inputs, &g->inputs_cap, g->n_inputs + 1, sizeof *g->inputs) != 0)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    v->is_input = 1;
    g->inputs[g->n_inputs++] = v;
    return QD_OK;
}

qd_status qd_graph_add_output(qd_graph *g, qd_value *v)
{
    if (qd_grow((void **)&g->outputs, &g->outputs_cap, g->n_outputs + 1, sizeof *g->outputs) != 0)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    v->is_output = 1;
    g->outputs[g->n_outputs++] = v;
    return QD_OK;
}

qd_value *qd_graph_add_initializer(qd_graph *g, const char *hint, qd_tensor *t)
{
    qd_value *v = qd_graph_find_value(g, hint) ? qd_graph_new_value(g, NULL, hint)
                                               : qd_graph_new_value(g, hint, NULL);
    if (!v || qd_grow((void **)&g->initializers, &g->initializers_cap, g->n_initializers + 1,
                      sizeof *g->initializers) != 0) {
        qd_tensor_delete(t);
        if (v)
            qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    qd_value_set_const(v, t);
    v->is_initializer = 1;
    g->initializers[g->n_initializers++] = v;
    return v;
}

void qd_value_set_const(qd_value *v, qd_tensor *t)
{
    if (v->konst != t)
        qd_tensor_delete(v->konst);
    v->konst = t;
    if (t)
        qd_value_set_shape(v, t->dtype, t->rank, t->dims);
}

void qd_value_set_shape(qd_value *v, qd_dtype dtype, int rank, const int64_t *dims)
{
    v->dtype = dtype;
    v->rank = rank;
    for (int i = 0; i < QD_MAX_RANK; i++) {
        int64_t d = (i < rank && dims) ? dims[i] : -1;
        /* A known dimension replaces a symbol; an unknown one keeps it. */
        if (d >= 0 && v->dim_params[i]) {
            qd_free(v->dim_params[i]);
            v->dim_params[i] = NULL;
        }
        if (i >= rank && v->dim_params[i]) {
            qd_free(v->dim_params[i]);
            v->dim_params[i] = NULL;
        }
        v->dims[i] = d;
    }
}

int qd_value_shape_known(const qd_value *v)
{
    if (v->rank < 0)
        return 0;
    for (int i = 0; i < v->rank; i++)
        if (v->dims[i] < 0)
            return 0;
    return 1;
}

int64_t qd_value_numel(const qd_value *v)
{
    if (!qd_value_shape_known(v))
        return -1;
    return qd_numel(v->rank, v->dims);
}

const char *qd_value_shape_str(const qd_value *v, char *buf, size_t size)
{
    if (v->rank < 0) {
        snprintf(buf, size, "?");
        return buf;
    }
    if (v->rank == 0) {
        snprintf(buf, size, "scalar");
        return buf;
    }
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < v->rank && off < size; i++) {
        const char *sep = i ? "x" : "";
        int w;
        if (v->dims[i] >= 0)
            w = snprintf(buf + off, size - off, "%s%lld", sep, (long long)v->dims[i]);
        else if (v->dim_params[i])
            w = snprintf(buf + off, size - off, "%s%s", sep, v->dim_params[i]);
        else
            w = snprintf(buf + off, size - off, "%s?", sep);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    return buf;
}

/* ---- uses ---- */

static int add_use(qd_value *v, qd_node *n, int input)
{
    if (qd_grow((void **)&v->uses, &v->uses_cap, v->n_uses + 1, sizeof *v->uses) != 0)
        return -1;
    v->uses[v->n_uses++] = (qd_use){n, input};
    return 0;
}

static void remove_use(qd_value *v, const qd_node *n, int input)
{
    for (size_t i = 0; i < v->n_uses; i++) {
        if (v->uses[i].node == n && v->uses[i].input == input) {
            memmove(&v->uses[i], &v->uses[i + 1], (v->n_uses - i - 1) * sizeof *v->uses);
            v->n_uses--;
            return;
        }
    }
}

/* ---- nodes ---- */

qd_node *qd_graph_add_node(qd_graph *g, const char *op_type, const char *domain, const char *name,
                           qd_value *const *inputs, int n_inputs, qd_value *const *outputs,
                           int n_outputs)
{
    char buf[256];
    if (!name || !name[0]) {
        snprintf(buf, sizeof buf, "%s_qd%d", op_type, g->unique_counter++);
        name = buf;
    }
    qd_node *n = qd_calloc(1, sizeof *n);
    if (!n)
        goto oom;
    n->name = qd_strdup(name);
    n->op_type = qd_strdup(op_type);
    n->domain = qd_strdup(domain ? domain : "");
    n->inputs = qd_calloc((size_t)n_inputs + 1, sizeof *n->inputs);
    n->outputs = qd_calloc((size_t)n_outputs + 1, sizeof *n->outputs);
    if (!n->name || !n->op_type || !n->domain || !n->inputs || !n->outputs)
        goto oom;
    if (qd_grow((void **)&g->nodes, &g->nodes_cap, g->n_nodes + 1, sizeof *g->nodes) != 0)
        goto oom;
    n->op = qd_op_lookup(n->domain, n->op_type);
    for (int i = 0; i < n_inputs; i++) {
        if (inputs[i] && add_use(inputs[i], n, i) != 0) {
            for (int j = 0; j < i; j++)
                if (inputs[j])
                    remove_use(inputs[j], n, j);
            goto oom;
        }
        n->inputs[i] = inputs[i];
    }
    n->n_inputs = n_inputs;
    for (int i = 0; i < n_outputs; i++) {
        n->outputs[i] = outputs[i];
        if (outputs[i]) {
            outputs[i]->producer = n;
            outputs[i]->producer_output = i;
        }
    }
    n->n_outputs = n_outputs;
    n->id = (int)g->n_nodes;
    g->nodes[g->n_nodes++] = n;
    return n;
oom:
    node_delete(n);
    qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory adding node '%s'", name);
    return NULL;
}

void qd_graph_remove_node(qd_graph *g, qd_node *n)
{
    for (int i = 0; i < n->n_inputs; i++)
        if (n->inputs[i])
            remove_use(n->inputs[i], n, i);
    for (int i = 0; i < n->n_outputs; i++)
        if (n->outputs[i] && n->outputs[i]->producer == n)
            n->outputs[i]->producer = NULL;
    size_t k = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i] != n) {
            g->nodes[k] = g->nodes[i];
            g->nodes[k]->id = (int)k;
            k++;
        }
    }
    g->n_nodes = k;
    node_delete(n);
}

void qd_node_set_input(qd_node *n, int index, qd_value *v)
{
    if (n->inputs[index])
        remove_use(n->inputs[index], n, index);
    n->inputs[index] = v;
    /* Out of memory here would lose a use; use lists are small and grown in
     * place, so treat it as the allocator's fatal case by leaving v unused. */
    if (v && add_use(v, n, index) != 0)
        n->inputs[index] = NULL;
}

void qd_graph_replace_uses(qd_graph *g, qd_value *from, qd_value *to)
{
    while (from->n_uses) {
        qd_use u = from->uses[from->n_uses - 1];
        qd_node_set_input(u.node, u.input, to);
    }
    for (size_t i = 0; i < g->n_outputs; i++) {
        if (g->outputs[i] == from) {
            g->outputs[i] = to;
            to->is_output = 1;
            from->is_output = 0;
        }
    }
}

void qd_graph_prune_values(qd_graph *g)
{
    /* Initializers nothing reads any more are dropped too. */
    size_t w = 0;
    for (size_t i = 0; i < g->n_initializers; i++) {
        qd_value *v = g->initializers[i];
        if (!v->n_uses && !v->is_output)
            v->is_initializer = 0;
        else
            g->initializers[w++] = v;
    }
    g->n_initializers = w;
    size_t k = 0;
    for (size_t i = 0; i < g->n_values; i++) {
        qd_value *v = g->values[i];
        if (!v->producer && !v->n_uses && !v->is_input && !v->is_output && !v->is_initializer) {
            qd_strmap_remove(&g->value_by_name, v->name);
            value_delete(v);
            continue;
        }
        v->id = (int)k;
        g->values[k++] = v;
    }
    g->n_values = k;
}

/* A binary min-heap of node indices: ready nodes leave in file order. */
static void heap_push(size_t *heap, size_t *n, size_t v)
{
    size_t i = (*n)++;
    heap[i] = v;
    while (i > 0 && heap[(i - 1) / 2] > heap[i]) {
        size_t p = (i - 1) / 2, t = heap[p];
        heap[p] = heap[i];
        heap[i] = t;
        i = p;
    }
}

static size_t heap_pop(size_t *heap, size_t *n)
{
    size_t top = heap[0];
    heap[0] = heap[--(*n)];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && heap[l] < heap[m])
            m = l;
        if (r < *n && heap[r] < heap[m])
            m = r;
        if (m == i)
            break;
        size_t t = heap[m];
        heap[m] = heap[i];
        heap[i] = t;
        i = m;
    }
    return top;
}

qd_status qd_graph_toposort(qd_graph *g)
{
    size_t n = g->n_nodes;
    if (!n)
        return QD_OK;
    for (size_t i = 0; i < n; i++)
        g->nodes[i]->id = (int)i;
    /* Kahn's algorithm; among ready nodes the earliest in the current order
     * goes first, so an already sorted graph keeps its order exactly. */
    int *pending = qd_calloc(n, sizeof *pending);
    qd_node **order = qd_calloc(n, sizeof *order);
    size_t *heap = qd_calloc(n, sizeof *heap);
    if (!pending || !order || !heap) {
        qd_free(pending);
        qd_free(order);
        qd_free(heap);
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory sorting the graph");
    }
    for (size_t i = 0; i < n; i++) {
        qd_node *nd = g->nodes[i];
        for (int j = 0; j < nd->n_inputs; j++)
            if (nd->inputs[j] && nd->inputs[j]->producer)
                pending[i]++;
    }
    size_t n_heap = 0, done = 0;
    for (size_t i = 0; i < n; i++)
        if (!pending[i])
            heap_push(heap, &n_heap, i);
    while (n_heap) {
        qd_node *nd = g->nodes[heap_pop(heap, &n_heap)];
        order[done++] = nd;
        for (int o = 0; o < nd->n_outputs; o++) {
            qd_value *v = nd->outputs[o];
            if (!v)
                continue;
            for (size_t u = 0; u < v->n_uses; u++)
                if (--pending[v->uses[u].node->id] == 0)
                    heap_push(heap, &n_heap, (size_t)v->uses[u].node->id);
        }
    }
    qd_status st = QD_OK;
    if (done != n) {
        for (size_t i = 0; i < n; i++) {
            if (pending[i]) {
                st = qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                                   "node '%s' (%s) is part of a cycle", g->nodes[i]->name,
                                   g->nodes[i]->op_type);
                break;
            }
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            g->nodes[i] = order[i];
            order[i]->id = (int)i;
        }
    }
    qd_free(pending);
    qd_free(order);
    qd_free(heap);
    return st;
}

/* ---- attributes ---- */

const char *qd_attr_type_name(qd_attr_type type)
{
    static const char *names[] = {"UNDEFINED", "FLOAT",   "INT",           "STRING",
                                  "TENSOR",    "GRAPH",   "FLOATS",        "INTS",
                                  "STRINGS",   "TENSORS", "GRAPHS",        "SPARSE_TENSOR",
                                  "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS"};
    return (unsigned)type < sizeof names / sizeof names[0] ? names[type] : "?";
}

const qd_attr *qd_node_attr(const qd_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0)
            return &n->attrs[i];
    return NULL;
}

static qd_status wrong_type(qd_graph *g, const qd_node *n, const qd_attr *a, qd_attr_type want)
{
    return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                         "node '%s' (%s): attribute '%s' must be %s, got %s", n->name, n->op_type,
                         a->name, qd_attr_type_name(want), qd_attr_type_name(a->type));
}

qd_status qd_node_attr_int(qd_graph *g, const qd_node *n, const char *name, int64_t def,
                           int64_t *out)
{
    const qd_attr *a = qd_node_attr(n, name);
    *out = def;
    if (!a)
        return QD_OK;
    if (a->type != QD_ATTR_INT)
        return wrong_type(g, n, a, QD_ATTR_INT);
    *out = a->i;
    return QD_OK;
}

qd_status qd_node_attr_float(qd_graph *g, const qd_node *n, const char *name, float def,
                             float *out)
{
    const qd_attr *a = qd_node_attr(n, name);
    *out = def;
    if (!a)
        return QD_OK;
    if (a->type != QD_ATTR_FLOAT)
        return wrong_type(g, n, a, QD_ATTR_FLOAT);
    *out = a->f;
    return QD_OK;
}

qd_status qd_node_attr_string(qd_graph *g, const qd_node *n, const char *name, const char *def,
                              const char **out)
{
    const qd_attr *a = qd_node_attr(n, name);
    *out = def;
    if (!a)
        return QD_OK;
    if (a->type != QD_ATTR_STRING)
        return wrong_type(g, n, a, QD_ATTR_STRING);
    *out = a->s;
    return QD_OK;
}

qd_status qd_node_attr_ints(qd_graph *g, const qd_node *n, const char *name,
                            const int64_t **out, size_t *count)
{
    const qd_attr *a = qd_node_attr(n, name);
    *out = NULL;
    *count = 0;
    if (!a)
        return QD_OK;
    if (a->type != QD_ATTR_INTS)
        return wrong_type(g, n, a, QD_ATTR_INTS);
    *out = a->ints;
    *count = a->n;
    return QD_OK;
}

qd_status qd_node_attr_floats(qd_graph *g, const qd_node *n, const char *name,
                              const float **out, size_t *count)
{
    const qd_attr *a = qd_node_attr(n, name);
    *out = NULL;
    *count = 0;
    if (!a)
        return QD_OK;
    if (a->type != QD_ATTR_FLOATS)
        return wrong_type(g, n, a, QD_ATTR_FLOATS);
    *out = a->floats;
    *count = a->n;
    return QD_OK;
}

qd_status qd_node_attr_tensor(qd_graph *g, const qd_node *n, const char *name,
                              const qd_tensor **out)
{
    const qd_attr *a = qd_node_attr(n, name);
    *out = NULL;
    if (!a)
        return QD_OK;
    if (a->type != QD_ATTR_TENSOR)
        return wrong_type(g, n, a, QD_ATTR_TENSOR);
    *out = a->t;
    return QD_OK;
}

/* Returns a cleared slot for attribute `name` (replacing an old one). */
static qd_attr *attr_slot(qd_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++) {
        if (strcmp(n->attrs[i].name, name) == 0) {
            char *keep = n->attrs[i].name;
            n->attrs[i].name = NULL;
            qd_attr_clear(&n->attrs[i]);
            n->attrs[i].name = keep;
            return &n->attrs[i];
        }
    }
    char *nm = qd_strdup(name);
    qd_attr *grown = nm ? qd_realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof *grown) : NULL;
    if (!grown) {
        qd_free(nm);
        return NULL;
    }
    n->attrs = grown;
    qd_attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = nm;
    return a;
}

int qd_node_set_attr_int(qd_node *n, const char *name, int64_t v)
{
    qd_attr *a = attr_slot(n, name);
    if (!a)
        return -1;
    a->type = QD_ATTR_INT;
    a->i = v;
    return 0;
}

int qd_node_set_attr_float(qd_node *n, const char *name, float v)
{
    qd_attr *a = attr_slot(n, name);
    if (!a)
        return -1;
    a->type = QD_ATTR_FLOAT;
    a->f = v;
    return 0;
}

int qd_node_set_attr_string(qd_node *n, const char *name, const char *v)
{
    qd_attr *a = attr_slot(n, name);
    if (!a)
        return -1;
    a->type = QD_ATTR_STRING;
    a->s = qd_strdup(v);
    a->s_len = strlen(v);
    return a->s ? 0 : -1;
}

int qd_node_set_attr_ints(qd_node *n, const char *name, const int64_t *v, size_t count)
{
    qd_attr *a = attr_slot(n, name);
    if (!a)
        return -1;
    a->type = QD_ATTR_INTS;
    a->ints = qd_malloc(count * sizeof *v + 1);
    if (!a->ints)
        return -1;
    if (count)
        memcpy(a->ints, v, count * sizeof *v);
    a->n = count;
    return 0;
}

int qd_node_set_attr_floats(qd_node *n, const char *name, const float *v, size_t count)
{
    qd_attr *a = attr_slot(n, name);
    if (!a)
        return -1;
    a->type = QD_ATTR_FLOATS;
    a->floats = qd_malloc(count * sizeof *v + 1);
    if (!a->floats)
        return -1;
    if (count)
        memcpy(a->floats, v, count * sizeof *v);
    a->n = count;
    return 0;
}

int qd_node_set_attr_tensor(qd_node *n, const char *name, qd_tensor *t)
{
    qd_attr *a = attr_slot(n, name);
    if (!a) {
        qd_tensor_delete(t);
        return -1;
    }
    a->type = QD_ATTR_TENSOR;
    a->t = t;
    return 0;
}
