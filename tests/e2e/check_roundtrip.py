#!/usr/bin/python3
"""check_roundtrip.py ORIGINAL SAVED

Checks that SAVED (written by qdeploy's saver after loading ORIGINAL) is the
same model:
  * onnx.checker.check_model(SAVED) passes (by path, so external data is
    resolved relative to the file);
  * the opset imports are the same;
  * the node lists are identical, in order: name, domain, op_type, inputs,
    outputs, and attributes compared by value (attribute order is free);
  * the same initializers (by name) with the same dtype, dims and bytes;
  * graph inputs and outputs: same names in the same order, same element types
    and shapes (dim values / dim params).
value_info, doc strings and metadata are not compared (the saver may add
inferred shapes). Exits 1 with one line per mismatch (at most 20 shown).

Run with Debian's python: /usr/bin/python3 (onnx 1.12).
"""
import sys

import numpy as np
import onnx
from onnx import AttributeProto, numpy_helper

MAX_SHOWN = 20


class Mismatch(Exception):
    pass


def tensor_key(t):
    arr = numpy_helper.to_array(t)
    return (t.data_type, tuple(t.dims), arr.dtype.str, arr.tobytes())


def attr_value(a, where):
    t = a.type
    if t == AttributeProto.FLOAT:
        return ("f", np.float32(a.f).tobytes())
    if t == AttributeProto.INT:
        return ("i", a.i)
    if t == AttributeProto.STRING:
        return ("s", a.s)
    if t == AttributeProto.TENSOR:
        return ("t", tensor_key(a.t))
    if t == AttributeProto.GRAPH:
        return ("g", graph_key(a.g, where + "/" + a.name))
    if t == AttributeProto.FLOATS:
        return ("floats", np.asarray(a.floats, dtype=np.float32).tobytes())
    if t == AttributeProto.INTS:
        return ("ints", tuple(a.ints))
    if t == AttributeProto.STRINGS:
        return ("strings", tuple(a.strings))
    if t == AttributeProto.TENSORS:
        return ("tensors", tuple(tensor_key(x) for x in a.tensors))
    if t == AttributeProto.GRAPHS:
        return ("graphs", tuple(graph_key(g, where + "/" + a.name) for g in a.graphs))
    return ("other", a.SerializeToString())


def attr_type_name(t):
    return AttributeProto.AttributeType.Name(t)


def node_key(n, where):
    return {
        "name": n.name,
        "domain": n.domain if n.domain != "ai.onnx" else "",
        "op_type": n.op_type,
        "inputs": list(n.input),
        "outputs": list(n.output),
        "attributes": {a.name: (attr_type_name(a.type), attr_value(a, where)) for a in n.attribute},
    }


def graph_key(g, where):
    """Comparable form of a subgraph (for If/Loop/Scan attributes)."""
    return (tuple(repr(node_key(n, where)) for n in g.node),
            tuple(sorted((t.name,) + tensor_key(t) for t in g.initializer)),
            tuple(value_info_key(v) for v in g.input),
            tuple(value_info_key(v) for v in g.output))


def value_info_key(v):
    t = v.type
    if t.HasField("tensor_type"):
        tt = t.tensor_type
        shape = None
        if tt.HasField("shape"):
            shape = tuple(d.dim_value if d.HasField("dim_value")
                          else (d.dim_param if d.HasField("dim_param") else "?")
                          for d in tt.shape.dim)
        return (v.name, "tensor", onnx.TensorProto.DataType.Name(tt.elem_type), shape)
    return (v.name, t.WhichOneof("value"), t.SerializeToString())


def describe_attr(v):
    typ, val = v
    if val[0] in ("f", "floats"):
        return f"{typ} {np.frombuffer(val[1], dtype=np.float32).tolist()}"
    if val[0] == "t":
        return f"{typ} tensor dtype={val[1][0]} dims={list(val[1][1])}"
    s = repr(val[1])
    return f"{typ} {s[:80]}"


def diff_node(label, ka, kb):
    out = []
    for field in ("name", "domain", "op_type", "inputs", "outputs"):
        if ka[field] != kb[field]:
            out.append(f"{label}: {field} differs: original {ka[field]!r}, saved {kb[field]!r}")
    aa, ab = ka["attributes"], kb["attributes"]
    for name in sorted(set(aa) | set(ab)):
        if name not in ab:
            out.append(f"{label}: attribute '{name}' missing in saved")
        elif name not in aa:
            out.append(f"{label}: attribute '{name}' added in saved")
        elif aa[name] != ab[name]:
            out.append(f"{label}: attribute '{name}' differs: original "
                       f"{describe_attr(aa[name])}, saved {describe_attr(ab[name])}")
    return out


def compare_nodes(na_list, nb_list):
    """Node lists must be equal, in order. With unique node names, differences
    are reported by name (missing, added, changed, then order) rather than
    as a cascade of positional mismatches."""
    errors = []
    ka = [node_key(n, "graph") for n in na_list]
    kb = [node_key(n, "graph") for n in nb_list]
    if ka == kb:
        return errors
    names_a = [k["name"] for k in ka]
    names_b = [k["name"] for k in kb]
    unique = (all(names_a) and all(names_b) and len(set(names_a)) == len(names_a)
              and len(set(names_b)) == len(names_b))
    if len(ka) != len(kb):
        errors.append(f"node count differs: original {len(ka)}, saved {len(kb)}")
    if not unique:
        for i, (x, y) in enumerate(zip(ka, kb)):
            if x != y:
                errors += diff_node(f"node #{i} '{x['name']}' ({x['op_type']})", x, y)
        return errors
    by_a = {k["name"]: k for k in ka}
    by_b = {k["name"]: k for k in kb}
    for name in names_a:
        if name not in by_b:
            errors.append(f"node '{name}' ({by_a[name]['op_type']}) missing in saved")
    for name in names_b:
        if name not in by_a:
            errors.append(f"node '{name}' ({by_b[name]['op_type']}) added in saved")
    for name in names_a:
        if name in by_b and by_a[name] != by_b[name]:
            errors += diff_node(f"node '{name}' ({by_a[name]['op_type']})", by_a[name], by_b[name])
    if not errors and names_a != names_b:
        i = next(i for i, (x, y) in enumerate(zip(names_a, names_b)) if x != y)
        moved = sum(1 for x, y in zip(names_a, names_b) if x != y)
        errors.append(f"same nodes but in a different order ({moved} of {len(names_a)} positions "
                      f"differ); first at #{i}: original '{names_a[i]}', saved '{names_b[i]}'")
    return errors


def compare(orig_path, saved_path):
    errors = []
    try:
        onnx.checker.check_model(saved_path)
    except Exception as e:  # noqa: BLE001 - any checker failure is a failure
        msg = " ".join(str(e).split()) or type(e).__name__
        errors.append(f"onnx.checker rejects {saved_path}: {msg[:300]}")
    a = onnx.load(orig_path)
    b = onnx.load(saved_path)

    def norm_opsets(m):
        return {("" if o.domain == "ai.onnx" else o.domain): o.version for o in m.opset_import}

    oa, ob = norm_opsets(a), norm_opsets(b)
    if oa != ob:
        errors.append(f"opset imports differ: original {oa}, saved {ob}")
    if a.ir_version != b.ir_version:
        print(f"check_roundtrip: note: ir_version {a.ir_version} -> {b.ir_version}", file=sys.stderr)

    ga, gb = a.graph, b.graph
    errors += compare_nodes(ga.node, gb.node)

    ia = {t.name: t for t in ga.initializer}
    ib = {t.name: t for t in gb.initializer}
    if len(ia) != len(ga.initializer):
        errors.append("original has duplicate initializer names")
    if len(ib) != len(gb.initializer):
        errors.append(f"saved has duplicate initializer names ({len(gb.initializer)} entries, "
                      f"{len(ib)} names)")
    for name in sorted(set(ia) - set(ib)):
        errors.append(f"initializer '{name}' missing in saved")
    for name in sorted(set(ib) - set(ia)):
        errors.append(f"initializer '{name}' added in saved")
    for name in sorted(set(ia) & set(ib)):
        ta, tb = ia[name], ib[name]
        if ta.data_type != tb.data_type:
            errors.append(f"initializer '{name}': data type {ta.data_type} -> {tb.data_type}")
        elif list(ta.dims) != list(tb.dims):
            errors.append(f"initializer '{name}': dims {list(ta.dims)} -> {list(tb.dims)}")
        else:
            xa, xb = numpy_helper.to_array(ta), numpy_helper.to_array(tb)
            if xa.tobytes() != xb.tobytes():
                diff = np.flatnonzero(xa.reshape(-1).view(np.uint8) != xb.reshape(-1).view(np.uint8))
                errors.append(f"initializer '{name}': bytes differ ({diff.size} bytes, first at "
                              f"byte {int(diff[0]) if diff.size else -1})")

    for kind, la, lb in (("input", ga.input, gb.input), ("output", ga.output, gb.output)):
        va = [value_info_key(v) for v in la]
        vb = [value_info_key(v) for v in lb]
        if [v[0] for v in va] != [v[0] for v in vb]:
            errors.append(f"graph {kind} names differ: original {[v[0] for v in va]}, "
                          f"saved {[v[0] for v in vb]}")
            continue
        for x, y in zip(va, vb):
            if x != y:
                errors.append(f"graph {kind} '{x[0]}' differs: original {x[1:]}, saved {y[1:]}")
    return errors


def main(argv):
    if len(argv) != 3:
        print("usage: check_roundtrip.py ORIGINAL SAVED", file=sys.stderr)
        return 2
    errors = compare(argv[1], argv[2])
    if errors:
        for e in errors[:MAX_SHOWN]:
            print(f"check_roundtrip: {e}", file=sys.stderr)
        if len(errors) > MAX_SHOWN:
            print(f"check_roundtrip: ... and {len(errors) - MAX_SHOWN} more", file=sys.stderr)
        print(f"check_roundtrip: FAIL {argv[2]} is not a faithful copy of {argv[1]} "
              f"({len(errors)} mismatches)", file=sys.stderr)
        return 1
    print(f"check_roundtrip: OK {argv[2]} matches {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
