#!/usr/bin/python3
"""check_inspect.py MODEL_NAME JSON_FILE [ONNX_FILE]

Validates the output of `qdeploy inspect MODEL --json`:
  1. the schema (keys, types; extra keys are allowed);
  2. internal consistency (histogram sums to node_count, MACs add up, largest
     tensors sorted by bytes, bytes = numel x element size, ...);
  3. MODEL_NAME's figures, verified with torch (see EXPECTED);
  4. with ONNX_FILE: everything that can be read from the file itself with the
     onnx package (ir_version, producer, opsets, inputs/outputs, op histogram,
     parameter count, largest tensors).

Run with Debian's python: /usr/bin/python3 (onnx 1.12). Exits 1 listing every
failed check.

Where the expected numbers come from (torch 1.13 / torchvision 0.14, models
built with weights=None, exported by tools/fixtures/export_torchvision.py):
  parameters  = sum(p.numel() for p in model.parameters()); the ONNX files'
                float initializers minus BatchNormalization inputs 3 and 4 give
                the same numbers.
  MACs        = counted by a TorchDispatchMode on a 1x3x224x224 forward pass:
                aten.convolution: out.numel() * (C_in/groups) * prod(kernel);
                aten.mm/addmm/bmm: M*N*K (incl. ViT's attention QK^T and AV).
                Counting Conv and MatMul/Gemm nodes of the exported ONNX
                (out numel * K after onnx.shape_inference) gives identical
                numbers. torchvision's own tables: resnet50 4.09, convnext_tiny
                4.46, vit_b_16 17.56 GFLOPS (they mean MACs).
"""
import json
import math
import os
import sys

EXPECTED = {
    "resnet50": {
        "parameters": 25557032,
        "macs_conv": 4087136256,
        "macs_matmul_gemm": 2048000,
        "macs_total_range": (4.0e9, 4.2e9),
        "ops": {"Conv": 53, "BatchNormalization": 53, "Gemm": 1},
    },
    "convnext_tiny": {
        "parameters": 28589128,
        "macs_conv": 292965120,
        "macs_matmul_gemm": 4162566144,  # the block MLPs are Linear -> MatMul
        "macs_total_range": (4455531264 * 0.97, 4455531264 * 1.03),
        "ops": {"Conv": 22},
    },
    "vit_b_16": {
        "parameters": 86567656,
        "macs_conv": 115605504,  # patch embedding
        "macs_matmul_gemm": 17448222720,
        "macs_total_range": (17563828224 * 0.97, 17563828224 * 1.03),
        "ops": {"Conv": 1, "Softmax": 12},
    },
}
# conv / matmul_gemm separately: same formula as above, so nearly exact.
PART_TOLERANCE = 0.01

INPUT_SHAPE = [1, 3, 224, 224]
OUTPUT_SHAPE = [1, 1000]

DTYPE_SIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "uint8": 1,
              "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8,
              "bool": 1}
ONNX_DTYPE = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
              7: "int64", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
              16: "bfloat16"}


class Checker:
    def __init__(self):
        self.errors = []

    def fail(self, msg):
        self.errors.append(msg)

    def expect(self, cond, msg):
        if not cond:
            self.fail(msg)
        return cond


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def check_type(c, obj, key, typ, where):
    if not isinstance(obj, dict) or key not in obj:
        c.fail(f"{where}: missing key '{key}'")
        return False
    v = obj[key]
    ok = is_int(v) if typ is int else isinstance(v, typ) and not isinstance(v, bool)
    return c.expect(ok, f"{where}.{key}: expected {getattr(typ, '__name__', typ)}, got {v!r:.80}")


def check_shape(c, shape, where):
    if not c.expect(isinstance(shape, list), f"{where}.shape: expected a list, got {shape!r:.80}"):
        return False
    ok = True
    for i, d in enumerate(shape):
        if is_int(d):
            ok &= c.expect(d >= 0, f"{where}.shape[{i}] = {d} is negative")
        else:
            ok &= c.expect(isinstance(d, str) and d != "",
                           f"{where}.shape[{i}]: expected int or symbolic name, got {d!r}")
    return ok


def check_values(c, doc, key):
    if not c.expect(isinstance(doc.get(key), list) and doc.get(key),
                    f"{key}: expected a non-empty list"):
        return []
    for i, v in enumerate(doc[key]):
        w = f"{key}[{i}]"
        check_type(c, v, "name", str, w)
        if check_type(c, v, "dtype", str, w):
            c.expect(v["dtype"] in DTYPE_SIZE, f"{w}.dtype: unknown dtype {v['dtype']!r}")
        if c.expect("shape" in v, f"{w}: missing key 'shape'"):
            check_shape(c, v["shape"], w)
    return doc[key]


def numel(shape):
    if not all(is_int(d) for d in shape):
        return None
    return math.prod(shape)


def check_schema(c, doc):
    if not c.expect(isinstance(doc, dict), "top level: expected an object"):
        return
    for key, typ in (("model", str), ("ir_version", int), ("producer", str), ("opset", int),
                     ("node_count", int), ("parameters", int), ("parameter_bytes", int)):
        check_type(c, doc, key, typ, "$")
    if c.expect(isinstance(doc.get("opsets"), list) and doc.get("opsets"),
                "opsets: expected a non-empty list"):
        for i, o in enumerate(doc["opsets"]):
            check_type(c, o, "domain", str, f"opsets[{i}]")
            check_type(c, o, "version", int, f"opsets[{i}]")
    check_values(c, doc, "inputs")
    check_values(c, doc, "outputs")
    h = doc.get("op_histogram")
    if c.expect(isinstance(h, dict) and h, "op_histogram: expected a non-empty object"):
        for k, v in h.items():
            c.expect(is_int(v) and v > 0, f"op_histogram[{k!r}]: expected a positive int, got {v!r}")
    macs = doc.get("macs")
    if c.expect(isinstance(macs, dict), "macs: expected an object"):
        for k in ("conv", "matmul_gemm", "other", "total"):
            if check_type(c, macs, k, int, "macs"):
                c.expect(macs[k] >= 0, f"macs.{k} = {macs[k]} is negative")
    lt = doc.get("largest_tensors")
    if c.expect(isinstance(lt, list) and lt, "largest_tensors: expected a non-empty list"):
        for i, t in enumerate(lt):
            w = f"largest_tensors[{i}]"
            check_type(c, t, "name", str, w)
            if check_type(c, t, "kind", str, w):
                c.expect(t["kind"] in ("initializer", "activation"),
                         f"{w}.kind: {t['kind']!r} is not 'initializer' or 'activation'")
            if check_type(c, t, "dtype", str, w):
                c.expect(t["dtype"] in DTYPE_SIZE, f"{w}.dtype: unknown dtype {t['dtype']!r}")
            if c.expect("shape" in t, f"{w}: missing key 'shape'"):
                check_shape(c, t["shape"], w)
            check_type(c, t, "bytes", int, w)


def check_consistency(c, doc):
    h = doc.get("op_histogram") or {}
    if is_int(doc.get("node_count")) and all(is_int(v) for v in h.values()):
        c.expect(sum(h.values()) == doc["node_count"],
                 f"op_histogram sums to {sum(h.values())}, node_count is {doc['node_count']}")
    macs = doc.get("macs") or {}
    if all(is_int(macs.get(k)) for k in ("conv", "matmul_gemm", "other", "total")):
        s = macs["conv"] + macs["matmul_gemm"] + macs["other"]
        c.expect(s == macs["total"], f"macs: conv+matmul_gemm+other = {s}, total = {macs['total']}")
    if is_int(doc.get("opset")) and isinstance(doc.get("opsets"), list):
        default = [o.get("version") for o in doc["opsets"]
                   if isinstance(o, dict) and o.get("domain") in ("", "ai.onnx")]
        c.expect(default == [doc["opset"]],
                 f"opset {doc['opset']} is not the default domain's version in opsets {default}")
    if is_int(doc.get("parameters")) and is_int(doc.get("parameter_bytes")):
        c.expect(doc["parameter_bytes"] >= doc["parameters"],
                 f"parameter_bytes {doc['parameter_bytes']} < parameters {doc['parameters']}")
    if "nodes_with_unknown_shapes" in doc:
        c.expect(doc["nodes_with_unknown_shapes"] == 0,
                 f"nodes_with_unknown_shapes = {doc['nodes_with_unknown_shapes']}: MACs incomplete")
    lt = doc.get("largest_tensors")
    if isinstance(lt, list):
        sizes = [t.get("bytes") for t in lt if isinstance(t, dict)]
        if all(is_int(b) for b in sizes):
            c.expect(sizes == sorted(sizes, reverse=True),
                     f"largest_tensors not sorted by bytes, largest first: {sizes}")
        names = [t.get("name") for t in lt if isinstance(t, dict)]
        c.expect(len(set(names)) == len(names), "largest_tensors lists a tensor twice")
        for i, t in enumerate(lt):
            if not isinstance(t, dict) or not isinstance(t.get("shape"), list):
                continue
            n = numel(t["shape"])
            size = DTYPE_SIZE.get(t.get("dtype"))
            if n is not None and size and is_int(t.get("bytes")):
                c.expect(t["bytes"] == n * size,
                         f"largest_tensors[{i}] '{t.get('name')}': bytes {t['bytes']} != "
                         f"{n} elements x {size}")


def check_io(c, doc):
    ins, outs = doc.get("inputs") or [], doc.get("outputs") or []
    if c.expect(len(ins) == 1, f"expected 1 input, got {len(ins)}") and isinstance(ins[0], dict):
        i = ins[0]
        c.expect(i.get("dtype") == "float32", f"input dtype {i.get('dtype')!r} != 'float32'")
        shp = i.get("shape")
        c.expect(isinstance(shp, list) and len(shp) == 4 and shp[1:] == INPUT_SHAPE[1:]
                 and (shp[0] == 1 or isinstance(shp[0], str)),
                 f"input shape {shp} != {INPUT_SHAPE} (dim 0 may be symbolic)")
    if c.expect(len(outs) == 1, f"expected 1 output, got {len(outs)}") and isinstance(outs[0], dict):
        o = outs[0]
        c.expect(o.get("dtype") == "float32", f"output dtype {o.get('dtype')!r} != 'float32'")
        shp = o.get("shape")
        c.expect(isinstance(shp, list) and len(shp) == 2 and shp[1] == OUTPUT_SHAPE[1]
                 and (shp[0] == 1 or isinstance(shp[0], str)),
                 f"output shape {shp} != {OUTPUT_SHAPE} (dim 0 may be symbolic)")


def check_model_figures(c, name, doc):
    exp = EXPECTED.get(name)
    if exp is None:
        print(f"check_inspect: note: no verified figures for '{name}', schema checks only",
              file=sys.stderr)
        return
    check_io(c, doc)
    if is_int(doc.get("parameters")):
        c.expect(doc["parameters"] == exp["parameters"],
                 f"parameters = {doc['parameters']:,}, torchvision {name} has {exp['parameters']:,}")
        if is_int(doc.get("parameter_bytes")):
            c.expect(doc["parameter_bytes"] >= 4 * exp["parameters"],
                     f"parameter_bytes = {doc['parameter_bytes']:,} < 4 x {exp['parameters']:,}")
    macs = doc.get("macs") or {}
    lo, hi = exp["macs_total_range"]
    if is_int(macs.get("total")):
        c.expect(lo <= macs["total"] <= hi,
                 f"macs.total = {macs['total']:,} ({macs['total'] / 1e9:.3f} G) outside "
                 f"{lo / 1e9:.3f}..{hi / 1e9:.3f} G")
    for key, ekey in (("conv", "macs_conv"), ("matmul_gemm", "macs_matmul_gemm")):
        if is_int(macs.get(key)):
            e = exp[ekey]
            c.expect(abs(macs[key] - e) <= PART_TOLERANCE * e,
                     f"macs.{key} = {macs[key]:,}, expected {e:,} (+-{PART_TOLERANCE:.0%})")
    h = doc.get("op_histogram") or {}
    for op, n in exp["ops"].items():
        c.expect(h.get(op) == n, f"op_histogram[{op!r}] = {h.get(op)}, expected {n}")


def check_against_onnx(c, doc, path):
    import onnx
    from onnx import numpy_helper, shape_inference

    m = onnx.load(path)
    g = m.graph
    if isinstance(doc.get("model"), str):
        c.expect(os.path.basename(doc["model"]) == os.path.basename(path),
                 f"model = {doc['model']!r}, inspected file is {path}")
    c.expect(doc.get("ir_version") == m.ir_version,
             f"ir_version = {doc.get('ir_version')}, file has {m.ir_version}")
    c.expect(doc.get("producer") == m.producer_name,
             f"producer = {doc.get('producer')!r}, file has {m.producer_name!r}")
    want = sorted((("" if o.domain == "ai.onnx" else o.domain), o.version) for o in m.opset_import)
    got = sorted((("" if o.get("domain") == "ai.onnx" else o.get("domain")), o.get("version"))
                 for o in doc.get("opsets") or [] if isinstance(o, dict))
    c.expect(got == want, f"opsets = {got}, file has {want}")
    c.expect(doc.get("node_count") == len(g.node),
             f"node_count = {doc.get('node_count')}, file has {len(g.node)}")
    hist = {}
    for n in g.node:
        hist[n.op_type] = hist.get(n.op_type, 0) + 1
    c.expect(doc.get("op_histogram") == hist,
             f"op_histogram = {doc.get('op_histogram')}, file has {hist}")

    def vi(v):
        tt = v.type.tensor_type
        shape = None  # unknown rank
        if tt.HasField("shape"):
            shape = [d.dim_value if d.HasField("dim_value")
                     else (d.dim_param if d.HasField("dim_param") else None)
                     for d in tt.shape.dim]
        return {"name": v.name, "dtype": ONNX_DTYPE.get(tt.elem_type, str(tt.elem_type)),
                "shape": shape}

    for key, lst in (("inputs", g.input), ("outputs", g.output)):
        init_names = {t.name for t in g.initializer}
        want = [vi(v) for v in lst if v.name not in init_names]
        got = doc.get(key) or []
        c.expect([x.get("name") for x in got if isinstance(x, dict)] == [w["name"] for w in want],
                 f"{key} names = {[x.get('name') for x in got if isinstance(x, dict)]}, "
                 f"file has {[w['name'] for w in want]}")
        for x, w in zip(got, want):
            if not isinstance(x, dict):
                continue
            c.expect(x.get("dtype") == w["dtype"],
                     f"{key} '{w['name']}': dtype {x.get('dtype')!r}, file has {w['dtype']!r}")
            xs = x.get("shape")
            ok = w["shape"] is None or isinstance(xs, list) and len(xs) == len(w["shape"]) and all(
                a == b or (not is_int(b) and (is_int(a) or isinstance(a, str)))
                for a, b in zip(xs, w["shape"]))
            c.expect(ok, f"{key} '{w['name']}': shape {xs}, file has {w['shape']}")

    bn_stats = set()
    for n in g.node:
        if n.op_type == "BatchNormalization":
            bn_stats.update(n.input[3:5])
    inits = {}
    params = 0
    all_bytes = 0
    for t in g.initializer:
        arr = numpy_helper.to_array(t)
        inits[t.name] = (ONNX_DTYPE.get(t.data_type), list(t.dims), arr.nbytes)
        all_bytes += arr.nbytes
        if t.data_type in (1, 10, 11, 16) and t.name not in bn_stats:
            params += arr.size
    c.expect(doc.get("parameters") == params,
             f"parameters = {doc.get('parameters')}, the file's float initializers without "
             f"BN running stats hold {params}")
    pb = doc.get("parameter_bytes")
    if is_int(pb):
        c.expect(4 * params <= pb <= all_bytes or pb == all_bytes,
                 f"parameter_bytes = {pb:,}, expected between {4 * params:,} (parameters) and "
                 f"{all_bytes:,} (all initializers)")

    # Activation sizes from onnx shape inference (static shapes only).
    inferred = shape_inference.infer_shapes(m)
    acts = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(
            inferred.graph.output):
        if v.name in inits:
            continue
        d = vi(v)
        if d["shape"] is None:
            continue
        n = numel(d["shape"])
        if n is not None and d["dtype"] in DTYPE_SIZE:
            acts[v.name] = (d["dtype"], d["shape"], n * DTYPE_SIZE[d["dtype"]])
    true_max = max([b for _, _, b in inits.values()] + [b for _, _, b in acts.values()])
    lt = [t for t in doc.get("largest_tensors") or [] if isinstance(t, dict)]
    if lt and is_int(lt[0].get("bytes")):
        c.expect(lt[0]["bytes"] == true_max,
                 f"largest_tensors[0] has {lt[0]['bytes']:,} bytes, the largest tensor in the "
                 f"file has {true_max:,}")
    for i, t in enumerate(lt):
        name = t.get("name")
        if t.get("kind") not in ("initializer", "activation"):
            continue  # reported by the schema check
        src = inits if t.get("kind") == "initializer" else acts
        if name not in src:
            if t.get("kind") == "initializer" or name in inits:
                c.fail(f"largest_tensors[{i}] '{name}' is not a {t.get('kind')} of the file")
            continue
        dtype, shape, nbytes = src[name]
        c.expect((t.get("dtype"), t.get("shape"), t.get("bytes")) == (dtype, shape, nbytes),
                 f"largest_tensors[{i}] '{name}': {t.get('dtype')} {t.get('shape')} "
                 f"{t.get('bytes')} bytes, file has {dtype} {shape} {nbytes} bytes")


def main(argv):
    if len(argv) not in (3, 4):
        print("usage: check_inspect.py MODEL_NAME JSON_FILE [ONNX_FILE]", file=sys.stderr)
        return 2
    name, json_path = argv[1], argv[2]
    try:
        with open(json_path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        print(f"check_inspect: cannot read {json_path}: {e}", file=sys.stderr)
        return 1
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        print(f"check_inspect: {json_path} is not valid JSON: {e}", file=sys.stderr)
        print(f"check_inspect: near: {text[max(0, e.pos - 60):e.pos + 60]!r}", file=sys.stderr)
        return 1
    c = Checker()
    check_schema(c, doc)
    if isinstance(doc, dict):
        check_consistency(c, doc)
        check_model_figures(c, name, doc)
        if len(argv) == 4:
            check_against_onnx(c, doc, argv[3])
    if c.errors:
        for e in c.errors:
            print(f"check_inspect: {name}: {e}", file=sys.stderr)
        print(f"check_inspect: FAIL {name}: {len(c.errors)} check(s) failed on {json_path}",
              file=sys.stderr)
        return 1
    macs = doc["macs"]
    print(f"check_inspect: OK {name}: {doc['parameters']:,} parameters, "
          f"{macs['total'] / 1e9:.3f} GMACs (conv {macs['conv']:,}, matmul/gemm "
          f"{macs['matmul_gemm']:,}, other {macs['other']:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
