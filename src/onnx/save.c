/* Graph IR -> ONNX ModelProto, streamed to a file written atomically. The
 * proto borrows the IR's strings and tensor data: nothing large is copied. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "onnx/onnx_io.h"

/* Every allocation made while building the proto, freed in one place. */
typedef struct builder {
    void **ptrs;
    size_t n, cap;
    Onnx__AttributeProto **unpacked; /* attributes restored from raw bytes */
    size_t n_unpacked, unpacked_cap;
    int oom;
} builder;

static void *b_alloc(builder *b, size_t count, size_t size)
{
    void *p = qd_calloc(count ? count : 1, size);
    if (!p || qd_grow((void **)&b->ptrs, &b->cap, b->n + 1, sizeof *b->ptrs) != 0) {
        qd_free(p);
        b->oom = 1;
        return NULL;
    }
    b->ptrs[b->n++] = p;
    return p;
}

static void b_free(builder *b)
{
    for (size_t i = 0; i < b->n; i++)
        qd_free(b->ptrs[i]);
    qd_free(b->ptrs);
    for (size_t i = 0; i < b->n_unpacked; i++)
        onnx__attribute_proto__free_unpacked(b->unpacked[i], &qd_protobuf_allocator);
    qd_free(b->unpacked);
}

static Onnx__TensorProto *make_tensor(builder *b, const qd_tensor *t, const char *name)
{
    Onnx__TensorProto *tp = b_alloc(b, 1, sizeof *tp);
    if (!tp)
        return NULL;
    onnx__tensor_proto__init(tp);
    qd_tensor_to_proto(t, name, tp);
    return tp;
}

static Onnx__ValueInfoProto *make_value_info(builder *b, const qd_value *v)
{
    Onnx__ValueInfoProto *vi = b_alloc(b, 1, sizeof *vi);
    Onnx__TypeProto *tp = b_alloc(b, 1, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = b_alloc(b, 1, sizeof *tt);
    if (!vi || !tp || !tt)
        return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    vi->name = v->name;
    vi->doc_string = v->doc_string;
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    if (v->dtype != QD_DT_UNDEFINED) {
        tt->has_elem_type = 1;
        tt->elem_type = (int32_t)v->dtype;
    }
    if (v->rank >= 0) {
        Onnx__TensorShapeProto *sp = b_alloc(b, 1, sizeof *sp);
        Onnx__TensorShapeProto__Dimension **dims = b_alloc(b, (size_t)v->rank, sizeof *dims);
        if (!sp || !dims)
            return NULL;
        onnx__tensor_shape_proto__init(sp);
        sp->n_dim = (size_t)v->rank;
        sp->dim = dims;
        for (int i = 0; i < v->rank; i++) {
            Onnx__TensorShapeProto__Dimension *d = b_alloc(b, 1, sizeof *d);
            if (!d)
                return NULL;
            onnx__tensor_shape_proto__dimension__init(d);
            if (v->dims[i] >= 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = v->dims[i];
            } else if (v->dim_params[i]) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = v->dim_params[i];
            }
            dims[i] = d;
        }
        tt->shape = sp;
    }
    return vi;
}

static Onnx__AttributeProto *make_attr(builder *b, const qd_attr *a)
{
    if (a->raw) {
        Onnx__AttributeProto *ap =
            onnx__attribute_proto__unpack(&qd_protobuf_allocator, a->raw_len, a->raw);
        if (!ap || qd_grow((void **)&b->unpacked, &b->unpacked_cap, b->n_unpacked + 1,
                           sizeof *b->unpacked) != 0) {
            if (ap)
                onnx__attribute_proto__free_unpacked(ap, &qd_protobuf_allocator);
            b->oom = 1;
            return NULL;
        }
        b->unpacked[b->n_unpacked++] = ap;
        return ap;
    }
    Onnx__AttributeProto *ap = b_alloc(b, 1, sizeof *ap);
    if (!ap)
        return NULL;
    onnx__attribute_proto__init(ap);
    ap->name = a->name;
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)a->type;
    switch (a->type) {
    case QD_ATTR_FLOAT: ap->has_f = 1; ap->f = a->f; break;
    case QD_ATTR_INT: ap->has_i = 1; ap->i = a->i; break;
    case QD_ATTR_STRING:
        ap->has_s = 1;
        ap->s.data = (uint8_t *)a->s;
        ap->s.len = a->s_len;
        break;
    case QD_ATTR_TENSOR:
        if (!(ap->t = make_tensor(b, a->t, NULL)))
            return NULL;
        break;
    case QD_ATTR_FLOATS: ap->n_floats = a->n; ap->floats = a->floats; break;
    case QD_ATTR_INTS: ap->n_ints = a->n; ap->ints = a->ints; break;
    case QD_ATTR_STRINGS:
        ap->n_strings = a->n;
        ap->strings = b_alloc(b, a->n, sizeof *ap->strings);
        if (!ap->strings)
            return NULL;
        for (size_t i = 0; i < a->n; i++) {
            ap->strings[i].data = (uint8_t *)a->strings[i];
            ap->strings[i].len = strlen(a->strings[i]);
        }
        break;
    default: break;
    }
    return ap;
}

static Onnx__NodeProto *make_node(builder *b, const qd_node *n)
{
    Onnx__NodeProto *np = b_alloc(b, 1, sizeof *np);
    char **ins = b_alloc(b, (size_t)n->n_inputs, sizeof *ins);
    char **outs = b_alloc(b, (size_t)n->n_outputs, sizeof *outs);
    Onnx__AttributeProto **attrs = b_alloc(b, (size_t)n->n_attrs, sizeof *attrs);
    if (!np || !ins || !outs || !attrs)
        return NULL;
    onnx__node_proto__init(np);
    static char empty[] = "";
    for (int i = 0; i < n->n_inputs; i++)
        ins[i] = n->inputs[i] ? n->inputs[i]->name : empty;
    for (int i = 0; i < n->n_outputs; i++)
        outs[i] = n->outputs[i] ? n->outputs[i]->name : empty;
    for (int i = 0; i < n->n_attrs; i++)
        if (!(attrs[i] = make_attr(b, &n->attrs[i])))
            return NULL;
    np->n_input = (size_t)n->n_inputs;
    np->input = ins;
    np->n_output = (size_t)n->n_outputs;
    np->output = outs;
    np->name = n->name;
    np->op_type = n->op_type;
    np->domain = n->domain && n->domain[0] ? n->domain : NULL;
    np->n_attribute = (size_t)n->n_attrs;
    np->attribute = attrs;
    np->doc_string = n->doc_string;
    return np;
}

/* Constants that are not initializers (folded values) are not written: the
 * nodes that compute them still exist. Values with an inferred shape and a
 * producer are written as value_info so readers see the shapes. */
static Onnx__ModelProto *make_model(builder *b, qd_graph *g)
{
    Onnx__ModelProto *mp = b_alloc(b, 1, sizeof *mp);
    Onnx__GraphProto *gp = b_alloc(b, 1, sizeof *gp);
    if (!mp || !gp)
        return NULL;
    onnx__model_proto__init(mp);
    onnx__graph_proto__init(gp);
    mp->has_ir_version = 1;
    /* ir_version 8 goes with opset 17-18; keep the model's if it had one. */
    mp->ir_version = g->ir_version ? g->ir_version : 8;
    mp->producer_name = g->producer_name;
    mp->producer_version = g->producer_version;
    mp->domain = g->model_domain && g->model_domain[0] ? g->model_domain : NULL;
    mp->doc_string = g->model_doc && g->model_doc[0] ? g->model_doc : NULL;
    if (g->model_version) {
        mp->has_model_version = 1;
        mp->model_version = g->model_version;
    }
    mp->n_opset_import = g->n_opsets;
    mp->opset_import = b_alloc(b, g->n_opsets, sizeof *mp->opset_import);
    if (!mp->opset_import)
        return NULL;
    for (size_t i = 0; i < g->n_opsets; i++) {
        Onnx__OperatorSetIdProto *op = b_alloc(b, 1, sizeof *op);
        if (!op)
            return NULL;
        onnx__operator_set_id_proto__init(op);
        op->domain = g->opsets[i].domain;
        op->has_version = 1;
        op->version = g->opsets[i].version;
        mp->opset_import[i] = op;
    }
    mp->n_metadata_props = g->n_meta;
    mp->metadata_props = b_alloc(b, g->n_meta, sizeof *mp->metadata_props);
    if (!mp->metadata_props)
        return NULL;
    for (size_t i = 0; i < g->n_meta; i++) {
        Onnx__StringStringEntryProto *e = b_alloc(b, 1, sizeof *e);
        if (!e)
            return NULL;
        onnx__string_string_entry_proto__init(e);
        e->key = g->meta_keys[i];
        e->value = g->meta_values[i];
        mp->metadata_props[i] = e;
    }
    mp->graph = gp;
    gp->name = g->name && g->name[0] ? g->name : (char *)"qdeploy";
    gp->doc_string = g->doc_string && g->doc_string[0] ? g->doc_string : NULL;

    gp->node = b_alloc(b, g->n_nodes, sizeof *gp->node);
    gp->initializer = b_alloc(b, g->n_initializers, sizeof *gp->initializer);
    gp->input = b_alloc(b, g->n_inputs, sizeof *gp->input);
    gp->output = b_alloc(b, g->n_outputs, sizeof *gp->output);
    gp->value_info = b_alloc(b, g->n_values, sizeof *gp->value_info);
    if (!gp->node || !gp->initializer || !gp->input || !gp->output || !gp->value_info)
        return NULL;
    for (size_t i = 0; i < g->n_nodes; i++)
        if (!(gp->node[gp->n_node++] = make_node(b, g->nodes[i])))
            return NULL;
    for (size_t i = 0; i < g->n_initializers; i++) {
        qd_value *v = g->initializers[i];
        if (!(gp->initializer[gp->n_initializer++] = make_tensor(b, v->konst, v->name)))
            return NULL;
    }
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!(gp->input[gp->n_input++] = make_value_info(b, g->inputs[i])))
            return NULL;
    for (size_t i = 0; i < g->n_outputs; i++)
        if (!(gp->output[gp->n_output++] = make_value_info(b, g->outputs[i])))
            return NULL;
    for (size_t i = 0; i < g->n_values; i++) {
        qd_value *v = g->values[i];
        if (!v->producer || v->is_output || v->rank < 0 || v->dtype == QD_DT_UNDEFINED)
            continue;
        if (!(gp->value_info[gp->n_value_info++] = make_value_info(b, v)))
            return NULL;
    }
    return mp;
}

typedef struct file_sink {
    ProtobufCBuffer base;
    FILE *fp;
} file_sink;

static void sink_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data)
{
    file_sink *s = (file_sink *)buffer;
    if (len)
        fwrite(data, 1, len, s->fp);
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* protobuf messages are limited to 2 GiB; larger models need external data. */
#define PROTOBUF_LIMIT ((size_t)2147483647)

qd_status qd_graph_save(qd_graph *g, const char *path)
{
    if (!g)
        return QD_STATUS_INVALID_ARGUMENT;
    if (!path || !path[0])
        return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT, "no output path given");
    if (same_file(path, g->path))
        return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT,
                             "%s: refusing to overwrite the model's own input file", path);
    builder b = {0};
    qd_status st = QD_OK;
    Onnx__ModelProto *mp = make_model(&b, g);
    if (!mp || b.oom) {
        b_free(&b);
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "%s: out of memory building the model",
                             path);
    }
    size_t size = onnx__model_proto__get_packed_size(mp);
    if (size > PROTOBUF_LIMIT) {
        b_free(&b);
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                             "%s: the model is %zu bytes, over protobuf's 2 GiB limit; writing "
                             "external data is not supported yet",
                             path, size);
    }
    qd_atomic_file af;
    st = qd_atomic_open(g, path, &af);
    if (st == QD_OK) {
        file_sink sink = {{sink_append}, af.fp};
        onnx__model_proto__pack_to_buffer(mp, &sink.base);
        st = qd_atomic_commit(g, &af);
    }
    b_free(&b);
    return st;
}
