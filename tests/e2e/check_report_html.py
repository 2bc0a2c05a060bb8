#!/usr/bin/python3
"""The HTML report in a real browser.

check_report_html.py WRITER OUTDIR

Writes compare documents (realistic: ~60 nodes with fused groups, three
variants, SQNR and per-layer latency; minimal: only `variants`; odd: wrong
types for optional parts; hostile: markup and script-closing strings in
every user-controlled name), turns each into a page with WRITER
(qd_report_html IN.json OUT.html, i.e. qd_report_html_write), renders it with
headless Chromium (--dump-dom) and checks the DOM after the script ran:
data-rendered="ok", an empty #qd-error, one table row per variant, one SVG
group per graph node coloured for the default policy, one SQNR bar per finite
measurement, one latency row per layer, and no element the page did not make.
"""
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

HOSTILE = [
    "</script><script>alert(1)</script>",
    '<img src=x onerror="document.body.dataset.pwned=1">',
    "<!--<script>",
    "\"quotes' & <qd-evil>ampersands</qd-evil>",
    "caf\u00e9/\u2192\u2713 \\u003c",
]
# The template's own scripts: the data element and the renderer.
TEMPLATE_SCRIPTS = 2


def fail(msg):
    print("check_report_html: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


# ---- sample documents ------------------------------------------------------

class GraphBuilder:
    """A small float graph in the schema's node form, with fused groups and
    per-policy precision decided the way the tensorrt (mixed) and uniform
    targets decide it."""

    def __init__(self):
        self.nodes = []
        self.groups = 0

    def group(self):
        self.groups += 1
        return self.groups - 1

    def add(self, name, op, inputs, module=None, group=None, mixed=None, uniform=None,
            n_out=1):
        outs = [name + "_output_%d" % k for k in range(n_out)]
        node = {"name": name, "op": op, "inputs": inputs, "outputs": outs,
                "module": module, "group": group, "precision": {}, "why": {}}
        for policy, why in (("mixed", mixed), ("uniform", uniform)):
            node["precision"][policy] = "int8" if why and not why.startswith("high") else "float"
            node["why"][policy] = why or "no QDQ point in its pattern"
        self.nodes.append(node)
        return outs[0] if n_out == 1 else outs

    def conv_relu(self, prefix, x, module="FusedConvBNReLU"):
        g = self.group()
        y = self.add(prefix + "/Conv", "Conv", [x, prefix + ".weight", prefix + ".bias"],
                     module, g, "input", "input")
        return self.add(prefix + "/Relu", "Relu", [y], module, g)

    def basic_block(self, prefix, x, downsample=False):
        y = self.conv_relu(prefix + "/conv1", x)
        skip = x
        if downsample:
            g = self.group()
            skip = self.add(prefix + "/downsample/Conv", "Conv", [x, prefix + ".ds.weight"],
                            "FusedConvBN", g, "input", "input")
        g = self.group()
        y = self.add(prefix + "/conv2/Conv", "Conv", [y, prefix + ".conv2.weight"],
                     "FusedConvBNAddReLU", g, "input", "input")
        y = self.add(prefix + "/Add", "Add", [y, skip], "FusedConvBNAddReLU", g,
                     "residual", None)
        return self.add(prefix + "/Relu", "Relu", [y], "FusedConvBNAddReLU", g)

    def convnext_block(self, prefix, x):
        y = self.add(prefix + "/dwconv/Conv", "Conv", [x, prefix + ".dw.weight"], None, None,
                     "high precision: depthwise", "input")
        y = self.add(prefix + "/Transpose", "Transpose", [y])
        y = self.add(prefix + "/norm/LayerNormalization", "LayerNormalization",
                     [y, prefix + ".norm.weight", prefix + ".norm.bias"], None, None,
                     "high precision: LayerNorm", None)
        g = self.group()
        y = self.add(prefix + "/pwconv1/MatMul", "MatMul", [y, prefix + ".fc1.weight"],
                     "FusedMatMulGELU", g, "input", "input")
        y = self.add(prefix + "/act/Gelu", "Gelu", [y], "FusedMatMulGELU", g)
        y = self.add(prefix + "/pwconv2/MatMul", "MatMul", [y, prefix + ".fc2.weight"], None,
                     None, "input", "input")
        y = self.add(prefix + "/Mul", "Mul", [y, prefix + ".gamma"])
        y = self.add(prefix + "/Transpose_1", "Transpose", [y])
        return self.add(prefix + "/Add", "Add", [y, x], None, None, None, None)

    def attention(self, prefix, x):
        y = self.add(prefix + "/ln/LayerNormalization", "LayerNormalization", [x], None, None,
                     "high precision: LayerNorm", None)
        qkv = self.add(prefix + "/qkv/MatMul", "MatMul", [y, prefix + ".qkv.weight"], None,
                       None, "input", "input")
        q, k, v = self.add(prefix + "/Split", "Split", [qkv], n_out=3)
        g = self.group()
        s = self.add(prefix + "/MatMul", "MatMul", [q, k], "FusedAttention", g, "input", "input")
        s = self.add(prefix + "/Softmax", "Softmax", [s], "FusedAttention", g)
        o = self.add(prefix + "/MatMul_1", "MatMul", [s, v], "FusedAttention", g, "input",
                     "input")
        o = self.add(prefix + "/proj/MatMul", "MatMul", [o, prefix + ".proj.weight"], None, None,
                     "input", "input")
        return self.add(prefix + "/Add", "Add", [o, x], None, None, "residual", None)


def realistic_doc(seed=7):
    rnd = random.Random(seed)
    b = GraphBuilder()
    g = b.group()
    x = b.add("/stem/conv/Conv", "Conv", ["input", "stem.weight"], "FusedConvBNReLUMaxPool", g,
              "input", "input")
    x = b.add("/stem/relu/Relu", "Relu", [x], "FusedConvBNReLUMaxPool", g)
    x = b.add("/stem/maxpool/MaxPool", "MaxPool", [x], "FusedConvBNReLUMaxPool", g)
    x = b.basic_block("/layer1/layer1.0", x)
    x = b.basic_block("/layer1/layer1.1", x)
    x = b.basic_block("/layer2/layer2.0", x, downsample=True)
    x = b.basic_block("/layer2/layer2.1", x)
    for k in range(3):
        x = b.convnext_block("/stages.2/%d" % k, x)
    x = b.attention("/blocks.0/attn", x)
    x = b.add("/head/GlobalAveragePool", "GlobalAveragePool", [x], None, None,
              "high precision: pooling", "input")
    x = b.add("/head/Flatten", "Flatten", [x])
    x = b.add("/head/fc/Gemm", "Gemm", [x, "fc.weight", "fc.bias"], None, None, "input", "input")
    nodes = b.nodes

    variants = [
        {"name": "fp32", "label": "Baseline FP32", "policy": None, "top1": 91.23, "top5": 99.71,
         "latency_ms": 1.234, "speedup": 1.0, "top1_drop_pp": 0.0, "qdq_model": None,
         "qdq_pairs": {"activation": 0, "residual": 0, "weight": 0}},
        {"name": "mixed", "label": "qdeploy Mixed-Precision", "policy": "mixed", "top1": 91.05,
         "top5": 99.70, "latency_ms": 0.851, "speedup": 1.234 / 0.851, "top1_drop_pp": 0.18,
         "qdq_model": "out/demo/model.mixed.qdq.onnx",
         "qdq_pairs": {"activation": 24, "residual": 5, "weight": 24}},
        {"name": "uniform", "label": "Uniform INT8", "policy": "uniform", "top1": 90.41,
         "top5": 99.52, "latency_ms": 1.102, "speedup": 1.234 / 1.102, "top1_drop_pp": 0.82,
         "qdq_model": "out/demo/model.uniform.qdq.onnx",
         "qdq_pairs": {"activation": 31, "residual": 0, "weight": 31}},
    ]
    modules = {}
    for n in nodes:
        if n["group"] is not None:
            modules.setdefault(n["group"], n["module"])
    counts = {}
    for m in modules.values():
        counts[m] = counts.get(m, 0) + 1
    fusions = [{"module": m, "count": c} for m, c in sorted(counts.items())]

    sqnr = []
    for policy in ("mixed", "uniform"):
        for n in nodes:
            if n["precision"][policy] != "int8":
                continue
            kind = "residual" if n["op"] == "Add" else "activation"
            sqnr.append({"policy": policy, "tensor": n["inputs"][0], "node": n["name"],
                         "kind": kind, "scale": round(rnd.uniform(0.002, 0.05), 5),
                         "amax": round(rnd.uniform(0.5, 8.0), 3),
                         "sqnr_db": round(rnd.uniform(14.0, 45.0), 2)})
            if n["op"] in ("Conv", "MatMul", "Gemm") and len(n["inputs"]) > 1 \
                    and "." in n["inputs"][1]:
                sqnr.append({"policy": policy, "tensor": n["inputs"][1], "node": n["name"],
                             "kind": "weight", "scale": round(rnd.uniform(0.001, 0.01), 5),
                             "amax": round(rnd.uniform(0.1, 1.0), 3),
                             "sqnr_db": round(rnd.uniform(30.0, 52.0), 2)})
    # A tensor quantized exactly (infinite SQNR) is written as null.
    sqnr[-1]["sqnr_db"] = None

    layer_latency = []
    for n in nodes:
        base = rnd.uniform(0.002, 0.12)
        ms = {"fp32": round(base, 5)}
        for policy in ("mixed", "uniform"):
            f = rnd.uniform(0.3, 0.6) if n["precision"][policy] == "int8" else rnd.uniform(0.9, 1.3)
            ms[policy] = round(base * f, 5)
        layer_latency.append({"node": n["name"], "op": n["op"], "ms": ms})

    return {
        "qdeploy_compare": 1,
        "model": "tests/fixtures/convnext_fmnist.onnx",
        "data": {"path": "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
                 "count": 10000, "kind": "idx"},
        "calib": {"path": "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                  "batches": 32, "batch_size": 32, "method": "entropy"},
        "machine": "Intel(R) Xeon(R) CPU (2 threads)",
        "baseline": "fp32",
        "variants": variants,
        "fusions": fusions,
        "graph": {"nodes": nodes},
        "sqnr": sqnr,
        "layer_latency": layer_latency,
        "future_key": {"ignored": True},
    }


def minimal_doc():
    return {"variants": [{"name": "fp32", "top1": 90.0, "latency_ms": 2.0},
                         {"name": "mixed", "policy": "mixed", "top1": 89.8, "latency_ms": 1.5}]}


def odd_doc():
    """Optional parts present with the wrong types: the page must not throw."""
    return {"variants": [{"name": "fp32", "top1": "n/a", "speedup": None},
                         {"label": 5, "policy": "mixed", "qdq_pairs": [1, 2]}, 7, None],
            "fusions": None, "graph": {"nodes": "none"}, "sqnr": {"x": 1},
            "layer_latency": [{"node": "a", "ms": None}, 3], "data": [], "calib": "x",
            "baseline": {"a": 1}}


def hostile_doc():
    doc = realistic_doc(seed=11)
    rename = {}
    nodes = doc["graph"]["nodes"]
    for k, evil in enumerate(HOSTILE):
        n = nodes[3 + 7 * k]
        rename[n["name"]] = evil
        n["name"] = evil
        n["module"] = n["module"] and evil
        n["why"]["mixed"] = evil
    # A hostile tensor name on a real edge keeps the edge.
    old = nodes[1]["outputs"][0]
    new = HOSTILE[0] + "/tensor"
    nodes[1]["outputs"][0] = new
    for n in nodes:
        n["inputs"] = [new if t == old else t for t in n["inputs"]]
    for e in doc["sqnr"]:
        e["node"] = rename.get(e["node"], e["node"])
        if e["tensor"] == old:
            e["tensor"] = new
    doc["sqnr"][0]["tensor"] = HOSTILE[1]
    for e in doc["layer_latency"]:
        e["node"] = rename.get(e["node"], e["node"])
    doc["model"] = HOSTILE[0]
    doc["machine"] = HOSTILE[1]
    doc["variants"][1]["label"] = HOSTILE[0]
    doc["fusions"][0]["module"] = HOSTILE[2]
    return doc


# ---- the rendered DOM -------------------------------------------------------

class Dom(HTMLParser):
    """Start tags in order, and the text of #qd-error."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.body = {}
        self.error_depth = 0
        self.error_text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "body":
            self.body = a
        if self.error_depth:
            self.error_depth += tag == "div"
        elif a.get("id") == "qd-error":
            self.error_depth = 1

    def handle_endtag(self, tag):
        if self.error_depth and tag == "div":
            self.error_depth -= 1

    def handle_data(self, data):
        if self.error_depth:
            self.error_text += data

    def having(self, tag=None, cls=None, **want):
        out = []
        for t, a in self.tags:
            if tag and t != tag:
                continue
            if cls and cls not in (a.get("class") or "").split():
                continue
            if any(a.get(k.replace("_", "-")) != v for k, v in want.items()):
                continue
            out.append(a)
        return out


def render(chromium, page, workdir):
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-dev-shm-usage", "--user-data-dir=" + profile, "--enable-logging=stderr",
           "--virtual-time-budget=5000", "--dump-dom", Path(page).resolve().as_uri()]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        fail("%s: chromium did not finish in 180 s" % page)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if r.returncode != 0 or "<body" not in r.stdout:
        fail("%s: chromium failed (exit %d):\n%s" % (page, r.returncode, r.stderr[-3000:]))
    # Console errors the page's own handler could not see (syntax errors).
    for line in r.stderr.splitlines():
        if "CONSOLE" in line and ("Uncaught" in line or "Error" in line):
            fail("%s: script error in the browser: %s" % (page, line))
    dom = Dom()
    dom.feed(r.stdout)
    dom.close()
    Path(str(page) + ".dom.html").write_text(r.stdout)
    return dom


def edge_count(nodes):
    producer = {}
    for i, n in enumerate(nodes):
        for t in n["outputs"]:
            producer.setdefault(t, i)
    pairs = set()
    for i, n in enumerate(nodes):
        for t in n["inputs"]:
            p = producer.get(t)
            if p is not None and p != i:
                pairs.add((p, i))
    return len(pairs)


def check_common(name, dom):
    if dom.body.get("data-rendered") != "ok":
        fail("%s: data-rendered=%r, #qd-error: %r" % (name, dom.body.get("data-rendered"),
                                                      dom.error_text.strip()))
    if dom.error_text.strip():
        fail("%s: #qd-error says %r" % (name, dom.error_text.strip()))
    scripts = dom.having("script")
    if len(scripts) != TEMPLATE_SCRIPTS:
        fail("%s: %d script elements, expected the template's %d" %
             (name, len(scripts), TEMPLATE_SCRIPTS))
    if "data-pwned" in dom.body or dom.having("img") or dom.having("qd-evil"):
        fail("%s: markup from the document became elements" % name)


def check_full(name, doc, dom):
    check_common(name, dom)
    want = [v["name"] for v in doc["variants"]]
    got = [a.get("data-variant") for a in dom.having("tr", "qd-variant-row")]
    if got != want:
        fail("%s: variant rows %r, expected %r" % (name, got, want))
    if len(dom.having("li", "qd-summary-item")) != len(want) - 1:
        fail("%s: summary lines for %d non-baseline variants missing" % (name, len(want) - 1))
    if len(dom.having("tr", "qd-fusion-row")) != len(doc["fusions"]):
        fail("%s: fusion rows != %d" % (name, len(doc["fusions"])))

    nodes = doc["graph"]["nodes"]
    svgs = dom.having("svg", id="qd-graph-svg")
    if len(svgs) != 1:
        fail("%s: %d graph SVGs" % (name, len(svgs)))
    got_nodes = [a.get("data-node") for a in dom.having("g", "qd-node")]
    if sorted(got_nodes) != sorted(n["name"] for n in nodes):
        missing = set(n["name"] for n in nodes) ^ set(got_nodes)
        fail("%s: %d node elements for %d nodes; differ: %r" %
             (name, len(got_nodes), len(nodes), sorted(missing)[:5]))
    policy = svgs[0].get("data-policy")
    if policy != "mixed":
        fail("%s: the graph is coloured for %r, expected mixed first" % (name, policy))
    int8 = sum(n["precision"]["mixed"] == "int8" for n in nodes)
    if len(dom.having("g", "qd-prec-int8")) != int8:
        fail("%s: %d INT8 nodes drawn, %d in the document" %
             (name, len(dom.having("g", "qd-prec-int8")), int8))
    if len(dom.having("g", "qd-prec-float")) != len(nodes) - int8:
        fail("%s: high-precision node count" % name)
    groups = {n["group"] for n in nodes if n["group"] is not None}
    if len(dom.having("g", "qd-group-box")) != len(groups):
        fail("%s: %d group boxes for %d fused groups" %
             (name, len(dom.having("g", "qd-group-box")), len(groups)))
    if len(dom.having("path", "qd-edge")) != edge_count(nodes):
        fail("%s: %d edges drawn, %d in the graph" %
             (name, len(dom.having("path", "qd-edge")), edge_count(nodes)))
    if len(dom.having("select", id="qd-policy")) != 1 or len(dom.having("option")) < 2:
        fail("%s: no policy selector" % name)

    sq = doc["sqnr"]
    if len(dom.having("g", "qd-sqnr-row")) != len(sq):
        fail("%s: %d SQNR rows for %d entries" % (name, len(dom.having("g", "qd-sqnr-row")),
                                                  len(sq)))
    finite = [e for e in sq if isinstance(e["sqnr_db"], (int, float))
              and math.isfinite(e["sqnr_db"])]
    bars = dom.having("rect", "qd-sqnr-bar")
    if len(bars) != len(finite):
        fail("%s: %d SQNR bars for %d finite values" % (name, len(bars), len(finite)))
    for policy in sorted({e["policy"] for e in sq}):
        n_pol = sum(e["policy"] == policy and e in finite for e in sq)
        charts = dom.having("div", "qd-sqnr-chart", data_policy=policy)
        if len(charts) != 1:
            fail("%s: no SQNR chart for policy %s" % (name, policy))
        if n_pol == 0:
            fail("%s: sample has no SQNR for %s" % (name, policy))
    widths = [float(a["width"]) for a in bars]
    if not all(w >= 0 for w in widths) or max(widths) <= 0:
        fail("%s: SQNR bar widths %r" % (name, widths[:5]))

    rows = dom.having("tr", "qd-latency-row")
    if [a.get("data-node") for a in rows] != [e["node"] for e in doc["layer_latency"]]:
        fail("%s: latency rows differ from the document's layers" % name)
    if len(dom.having("div", "qd-latency-bar")) != 3 * len(rows):
        fail("%s: latency bars != 3 per row" % name)


def check_minimal(name, doc, dom):
    check_common(name, dom)
    got = [a.get("data-variant") for a in dom.having("tr", "qd-variant-row")]
    if got != [v["name"] for v in doc["variants"]]:
        fail("%s: variant rows %r" % (name, got))
    for cls, tag in (("qd-node", "g"), ("qd-sqnr-bar", "rect"), ("qd-latency-row", "tr")):
        if dom.having(tag, cls):
            fail("%s: %s elements without data" % (name, cls))


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    writer, outdir = sys.argv[1], Path(sys.argv[2])
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        fail("chromium is not installed: run `make deps` (scripts/install-deps.sh installs "
             "Debian's chromium)")
    outdir.mkdir(parents=True, exist_ok=True)
    cases = [("realistic", realistic_doc(), check_full),
             ("minimal", minimal_doc(), check_minimal),
             ("odd", odd_doc(), lambda name, doc, dom: check_common(name, dom)),
             ("hostile", hostile_doc(), check_full)]
    for name, doc, check in cases:
        src = outdir / ("report_%s.json" % name)
        page = outdir / ("report_%s.html" % name)
        src.write_text(json.dumps(doc, indent=1, ensure_ascii=False))
        if page.exists():
            page.unlink()
        r = subprocess.run([writer, str(src), str(page)], capture_output=True, text=True)
        if r.returncode != 0:
            fail("%s: %s exited %d: %s" % (name, writer, r.returncode, r.stderr.strip()))
        text = page.read_text()
        if "</script><script>alert" in text or "<!--<script>" in text:
            fail("%s: a raw script-closing string reached the page" % name)
        dom = render(chromium, page, outdir)
        check(name, doc, dom)
        print("check_report_html: %s: ok (%d nodes, %d SQNR entries, %d latency rows)" %
              (name, len(doc.get("graph", {}).get("nodes", []) if isinstance(doc.get("graph"), dict)
                         and isinstance(doc["graph"].get("nodes"), list) else []),
               len(doc["sqnr"]) if isinstance(doc.get("sqnr"), list) else 0,
               len(doc["layer_latency"]) if isinstance(doc.get("layer_latency"), list) else 0))
    print("check_report_html: all pages render")


if __name__ == "__main__":
    main()
