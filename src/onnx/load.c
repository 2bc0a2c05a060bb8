/* ONNX ModelProto -> graph IR. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "onnx/onnx_io.h"

static char *dup_or_empty(qd_graph *g, const char *s, int *oom)
{
    char *d = qd_strdup(s ? s : "");
    if (!d)
        *oom = 1;
    (void)g;
    return d;
}

/* Reads a ValueInfoProto's tensor type into v. */
static qd_status read_value_info(qd_graph *g, const Onnx__ValueInfoProto *vi, qd_value *v)
{
    const Onnx__TypeProto *tp = vi->type;
    if (!tp)
        return QD_OK; /* type unknown: inference fills it */
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                             "tensor '%s': only tensor types are supported (sequence, map and "
                             "optional values are not)",
                             v->name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (!tt)
        return QD_OK;
    if (tt->has_elem_type) {
        if (tt->elem_type != 0 && qd_dtype_size((qd_dtype)tt->elem_type) == 0 &&
            tt->elem_type != QD_DT_STRING)
            return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "tensor '%s': unknown element type %d",
                                 v->name, (int)tt->elem_type);
        v->dtype = (qd_dtype)tt->elem_type;
    }
    if (!tt->shape)
        return QD_OK;
    if (tt->shape->n_dim > QD_MAX_RANK)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED, "tensor '%s': rank %zu exceeds %d", v->name,
                             tt->shape->n_dim, QD_MAX_RANK);
    v->rank = (int)tt->shape->n_dim;
    for (int i = 0; i < v->rank; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        v->dims[i] = -1;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                                     "tensor '%s': negative dimension %" PRId64, v->name,
                                     d->dim_value);
            v->dims[i] = d->dim_value;
        } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                   d->dim_param && d->dim_param[0]) {
            v->dim_params[i] = qd_strdup(d->dim_param);
            if (!v->dim_params[i])
                return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        }
    }
    return QD_OK;
}

static qd_value *get_or_create(qd_graph *g, const char *name)
{
    qd_value *v = qd_graph_find_value(g, name);
    return v ? v : qd_graph_new_value(g, name, NULL);
}

static qd_status read_attribute(qd_graph *g, const qd_node *n, Onnx__AttributeProto *ap,
                                qd_attr *a)
{
    memset(a, 0, sizeof *a);
    a->name = qd_strdup(ap->name ? ap->name : "");
    if (!a->name)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    qd_attr_type type = ap->has_type ? (qd_attr_type)ap->type : QD_ATTR_UNDEFINED;
    if (type == QD_ATTR_UNDEFINED) { /* IR < 3 models leave type unset: infer it */
        if (ap->has_f) type = QD_ATTR_FLOAT;
        else if (ap->has_i) type = QD_ATTR_INT;
        else if (ap->has_s) type = QD_ATTR_STRING;
        else if (ap->t) type = QD_ATTR_TENSOR;
        else if (ap->g) type = QD_ATTR_GRAPH;
        else if (ap->n_floats) type = QD_ATTR_FLOATS;
        else if (ap->n_ints) type = QD_ATTR_INTS;
        else if (ap->n_strings) type = QD_ATTR_STRINGS;
        else if (ap->n_graphs) type = QD_ATTR_GRAPHS;
        else if (ap->n_tensors) type = QD_ATTR_TENSORS;
    }
    a->type = type;
    char what[512];
    switch (type) {
    case QD_ATTR_FLOAT: a->f = ap->f; break;
    case QD_ATTR_INT: a->i = ap->i; break;
    case QD_ATTR_STRING:
        a->s = qd_strndup(ap->s.data ? (const char *)ap->s.data : "", ap->s.len);
        a->s_len = ap->s.len;
        if (!a->s)
            return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        break;
    case QD_ATTR_TENSOR:
        if (!ap->t)
            return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                                 "node '%s' (%s): attribute '%s' is a TENSOR without a tensor",
                                 n->name, n->op_type, a->name);
        snprintf(what, sizeof what, "node '%s' (%s): attribute '%s'", n->name, n->op_type,
                 a->name);
        return qd_tensor_from_proto(g, ap->t, what, &a->t);
    case QD_ATTR_FLOATS:
        a->floats = qd_malloc(ap->n_floats * sizeof(float) + 1);
        if (!a->floats)
            return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        if (ap->n_floats)
            memcpy(a->floats, ap->floats, ap->n_floats * sizeof(float));
        a->n = ap->n_floats;
        break;
    case QD_ATTR_INTS:
        a->ints = qd_malloc(ap->n_ints * sizeof(int64_t) + 1);
        if (!a->ints)
            return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        if (ap->n_ints)
            memcpy(a->ints, ap->ints, ap->n_ints * sizeof(int64_t));
        a->n = ap->n_ints;
        break;
    case QD_ATTR_STRINGS:
        a->strings = qd_calloc(ap->n_strings + 1, sizeof(char *));
        if (!a->strings)
            return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        a->n = ap->n_strings;
        for (size_t i = 0; i < ap->n_strings; i++) {
            a->strings[i] = qd_strndup(ap->strings[i].data ? (const char *)ap->strings[i].data : "",
                                       ap->strings[i].len);
            if (!a->strings[i])
                return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        }
        break;
    case QD_ATTR_GRAPH:
    case QD_ATTR_GRAPHS:
    case QD_ATTR_TENSORS:
    case QD_ATTR_SPARSE_TENSOR:
    case QD_ATTR_SPARSE_TENSORS:
    case QD_ATTR_TYPE_PROTO:
    case QD_ATTR_TYPE_PROTOS: {
        /* Not modelled: keep the packed attribute to write it back as it was. */
        size_t len = onnx__attribute_proto__get_packed_size(ap);
        a->raw = qd_malloc(len ? len : 1);
        if (!a->raw)
            return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        a->raw_len = onnx__attribute_proto__pack(ap, a->raw);
        break;
    }
    default:
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                             "node '%s' (%s): attribute '%s' has unknown type %d", n->name,
                             n->op_type, a->name, (int)type);
    }
    return QD_OK;
}

static qd_status read_node(qd_graph *g, Onnx__NodeProto *np, size_t index)
{
    char fallback[64];
    const char *name = np->name;
    if (!name || !name[0]) {
        snprintf(fallback, sizeof fallback, "node_%zu", index);
        name = fallback;
    }
    if (!np->op_type || !np->op_type[0])
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "node '%s': no op_type", name);
    if (np->n_input > INT_MAX / 2 || np->n_output > INT_MAX / 2)
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "node '%s': too many inputs", name);

    qd_value **ins = qd_calloc(np->n_input + 1, sizeof *ins);
    qd_value **outs = qd_calloc(np->n_output + 1, sizeof *outs);
    qd_status st = QD_OK;
    if (!ins || !outs) {
        st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < np->n_input; i++) {
        if (!np->input[i][0])
            continue; /* omitted optional input */
        if (!(ins[i] = get_or_create(g, np->input[i]))) {
            st = g->err.status;
            goto done;
        }
    }
    for (size_t i = 0; i < np->n_output; i++) {
        if (!np->output[i][0])
            continue;
        qd_value *v = get_or_create(g, np->output[i]);
        if (!v) {
            st = g->err.status;
            goto done;
        }
        if (v->producer || v->is_initializer || v->is_input) {
            st = qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                               "node '%s' (%s): output '%s' is already defined", name,
                               np->op_type, v->name);
            goto done;
        }
        for (size_t j = 0; j < i; j++) {
            if (outs[j] == v) {
                st = qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                                   "node '%s' (%s): output '%s' appears twice", name,
                                   np->op_type, v->name);
                goto done;
            }
        }
        outs[i] = v;
    }
    qd_node *n = qd_graph_add_node(g, np->op_type, np->domain, name, ins, (int)np->n_input, outs,
                                   (int)np->n_output);
    if (!n) {
        st = g->err.status;
        goto done;
    }
    if (np->doc_string && np->doc_string[0] && !(n->doc_string = qd_strdup(np->doc_string))) {
        st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    if (np->n_attribute) {
        n->attrs = qd_calloc(np->n_attribute, sizeof *n->attrs);
        if (!n->attrs) {
            st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < np->n_attribute; i++) {
            n->n_attrs = (int)i + 1; /* so a failure frees what was read */
            st = read_attribute(g, n, np->attribute[i], &n->attrs[i]);
            if (st != QD_OK)
                goto done;
            for (size_t j = 0; j < i; j++) {
                if (strcmp(n->attrs[j].name, n->attrs[i].name) == 0) {
                    st = qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                                       "node '%s' (%s): attribute '%s' appears twice", n->name,
                                       n->op_type, n->attrs[i].name);
                    goto done;
                }
            }
        }
    }
done:
    qd_free(ins);
    qd_free(outs);
    return st;
}

static qd_status read_graph(qd_graph *g, Onnx__ModelProto *mp)
{
    int oom = 0;
    qd_status st;
    g->ir_version = mp->has_ir_version ? mp->ir_version : 0;
    g->model_version = mp->has_model_version ? mp->model_version : 0;
    g->producer_name = dup_or_empty(g, mp->producer_name, &oom);
    g->producer_version = dup_or_empty(g, mp->producer_version, &oom);
    g->model_domain = dup_or_empty(g, mp->domain, &oom);
    g->model_doc = dup_or_empty(g, mp->doc_string, &oom);
    if (oom)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");

    g->opsets = qd_calloc(mp->n_opset_import + 1, sizeof *g->opsets);
    if (!g->opsets)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *op = mp->opset_import[i];
        g->opsets[i].domain = dup_or_empty(g, op->domain, &oom);
        g->opsets[i].version = op->has_version ? op->version : 0;
        g->n_opsets = i + 1;
        if (oom)
            return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
        if (!op->domain || !op->domain[0] || strcmp(op->domain, "ai.onnx") == 0)
            g->opset = g->opsets[i].version;
    }
    if (g->opset < 0)
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                             "no opset_import for the default ONNX domain");
    g->n_meta = 0;
    g->meta_keys = qd_calloc(mp->n_metadata_props + 1, sizeof(char *));
    g->meta_values = qd_calloc(mp->n_metadata_props + 1, sizeof(char *));
    if (!g->meta_keys || !g->meta_values)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; i < mp->n_metadata_props; i++) {
        g->meta_keys[i] = dup_or_empty(g, mp->metadata_props[i]->key, &oom);
        g->meta_values[i] = dup_or_empty(g, mp->metadata_props[i]->value, &oom);
        g->n_meta = i + 1;
    }
    if (oom)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");

    Onnx__GraphProto *gp = mp->graph;
    if (!gp)
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "the model has no graph");
    g->name = dup_or_empty(g, gp->name, &oom);
    g->doc_string = dup_or_empty(g, gp->doc_string, &oom);
    if (oom)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    if (gp->n_sparse_initializer)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                             "sparse initializers are not supported ('%s')",
                             gp->sparse_initializer[0]->values && gp->sparse_initializer[0]->values->name
                                 ? gp->sparse_initializer[0]->values->name
                                 : "?");

    /* Initializers first, so inputs that repeat them (IR < 4) are skipped. */
    g->initializers = qd_calloc(gp->n_initializer + 1, sizeof *g->initializers);
    g->initializers_cap = gp->n_initializer + 1;
    if (!g->initializers)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; i < gp->n_initializer; i++) {
        Onnx__TensorProto *tp = gp->initializer[i];
        if (!tp->name || !tp->name[0])
            return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "initializer #%zu has no name", i);
        qd_value *v = qd_graph_new_value(g, tp->name, NULL);
        if (!v)
            return g->err.status;
        char what[512];
        snprintf(what, sizeof what, "initializer '%s'", tp->name);
        qd_tensor *t;
        if ((st = qd_tensor_from_proto(g, tp, what, &t)) != QD_OK)
            return st;
        qd_value_set_const(v, t);
        v->is_initializer = 1;
        g->initializers[g->n_initializers++] = v;
    }
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !vi->name[0])
            return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "graph input #%zu has no name", i);
        qd_value *v = qd_graph_find_value(g, vi->name);
        if (v && v->is_initializer)
            continue;
        if (v)
            return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "graph input '%s' is listed twice",
                                 vi->name);
        if (!(v = qd_graph_new_value(g, vi->name, NULL)))
            return g->err.status;
        if ((st = read_value_info(g, vi, v)) != QD_OK)
            return st;
        if ((st = qd_graph_add_input(g, v)) != QD_OK)
            return st;
    }
    for (size_t i = 0; i < gp->n_node; i++)
        if ((st = read_node(g, gp->node[i], i)) != QD_OK)
            return st;
    for (size_t i = 0; i < gp->n_output; i++) {
        const Onnx__ValueInfoProto *vi = gp->output[i];
        if (!vi->name || !vi->name[0])
            return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "graph output #%zu has no name", i);
        qd_value *v = get_or_create(g, vi->name);
        if (!v)
            return g->err.status;
        if ((st = read_value_info(g, vi, v)) != QD_OK)
            return st;
        if ((st = qd_graph_add_output(g, v)) != QD_OK)
            return st;
    }
    for (size_t i = 0; i < gp->n_value_info; i++) {
        const Onnx__ValueInfoProto *vi = gp->value_info[i];
        qd_value *v = vi->name ? qd_graph_find_value(g, vi->name) : NULL;
        if (v && !v->is_initializer && (st = read_value_info(g, vi, v)) != QD_OK)
            return st;
    }
    if (mp->n_functions)
        for (size_t i = 0; i < gp->n_node; i++)
            for (size_t f = 0; f < mp->n_functions; f++)
                if (mp->functions[f]->name && gp->node[i]->op_type &&
                    strcmp(mp->functions[f]->name, gp->node[i]->op_type) == 0)
                    return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                                         "node '%s': model-local functions ('%s') are not "
                                         "supported",
                                         gp->node[i]->name ? gp->node[i]->name : "?",
                                         gp->node[i]->op_type);
    return QD_OK;
}

static qd_status load_from_memory(qd_graph *g, const void *data, size_t size)
{
    if (size == 0)
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "empty file, not an ONNX model");
    int alloc_failed;
    ProtobufCAllocator alloc = qd_protobuf_allocator_tracking(&alloc_failed);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(&alloc, size, data);
    if (!mp && alloc_failed)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory parsing the model");
    if (!mp)
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                             "not an ONNX model (protobuf parse failed: truncated or corrupt)");
    qd_status st = read_graph(g, mp);
    onnx__model_proto__free_unpacked(mp, &qd_protobuf_allocator);
    return st;
}

static qd_status finish(qd_graph *g, qd_status st, const char *name, qd_graph **out)
{
    if (st != QD_OK && name)
        qd_error_prefix(&g->err, "%s: ", name);
    *out = g;
    return st;
}

qd_status qd_graph_load_buffer(const void *data, size_t size, const char *name,
                               const char *base_dir, qd_graph **out)
{
    qd_graph *g = qd_graph_new();
    *out = g;
    if (!g)
        return QD_STATUS_OUT_OF_MEMORY;
    if ((name && !(g->path = qd_strdup(name))) || (base_dir && !(g->base_dir = qd_strdup(base_dir))))
        return finish(g, qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory"), name, out);
    return finish(g, load_from_memory(g, data, size), name ? name : "<buffer>", out);
}

qd_status qd_graph_load(const char *path, qd_graph **out)
{
    qd_graph *g = qd_graph_new();
    *out = g;
    if (!g)
        return QD_STATUS_OUT_OF_MEMORY;
    if (!path)
        return finish(g, qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT, "no model path given"), NULL,
                      out);
    g->path = qd_strdup(path);
    const char *slash = strrchr(path, '/');
    g->base_dir = slash ? qd_strndup(path, (size_t)(slash - path) + (slash == path)) : qd_strdup(".");
    if (!g->path || !g->base_dir)
        return finish(g, qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory"), path, out);

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return finish(g, qd_graph_fail(g, QD_STATUS_IO_ERROR, "%s", strerror(errno)), path, out);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return finish(g, qd_graph_fail(g, QD_STATUS_IO_ERROR, "%s", strerror(e)), path, out);
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return finish(g, qd_graph_fail(g, QD_STATUS_IO_ERROR, "is a directory, not a model file"),
                      path, out);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return finish(g, qd_graph_fail(g, QD_STATUS_IO_ERROR, "not a regular file"), path, out);
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) {
        close(fd);
        return finish(g, qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "empty file, not an ONNX model"),
                      path, out);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return finish(g, qd_graph_fail(g, QD_STATUS_IO_ERROR, "cannot map: %s", strerror(errno)),
                      path, out);
    /* The parser copies what it keeps; the file's mapping is dropped now. */
    qd_status st = load_from_memory(g, map, size);
    munmap(map, size);
    return finish(g, st, path, out);
}
