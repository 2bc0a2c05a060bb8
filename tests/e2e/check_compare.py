#!/usr/bin/python3
"""check_compare.py COMPARE.json [--policies fp32,mixed,uniform] [--max-drop-pp 0.5]
   [--data-count N] [--fixtures fashion_mnist_fixtures.json --model NAME]

Checks the `qdeploy compare --json` document against its schema (the shared
one the HTML report reads: qdeploy_compare 1) and the accuracy claim: the
mixed-precision variant loses at most --max-drop-pp Top-1 points against the
fp32 baseline. With --fixtures, the fp32 Top-1 must also agree with the
float Top-1 torch measured when the fixture was trained (within 0.1 pp: the
engine and torch compute the same model on the same preprocessed images).
"""
import argparse
import json
import math
import os
import sys


def fail(msg):
    print(f"FAIL {msg}")
    sys.exit(1)


def need(cond, msg):
    if not cond:
        fail(msg)


def is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--policies", default="fp32,mixed,uniform")
    ap.add_argument("--max-drop-pp", type=float, default=0.5)
    ap.add_argument("--data-count", type=int, default=None)
    ap.add_argument("--fixtures", default=None)
    ap.add_argument("--model", default=None)
    a = ap.parse_args()

    with open(a.json) as f:
        d = json.load(f)
    need(isinstance(d, dict), "the document is an object")
    need(d.get("qdeploy_compare") == 1, "qdeploy_compare is 1")
    for k in ("model", "machine", "baseline"):
        need(isinstance(d.get(k), str) and d[k], f"'{k}' is a non-empty string")
    data, calib = d.get("data"), d.get("calib")
    need(isinstance(data, dict) and isinstance(data.get("path"), str), "data.path")
    need(isinstance(data.get("count"), int) and data["count"] > 0, "data.count > 0")
    need(data.get("kind") in ("folder", "idx", "npy", "npz"), f"data.kind {data.get('kind')}")
    if a.data_count is not None:
        need(data["count"] == a.data_count, f"data.count {data['count']} != {a.data_count}")
    need(isinstance(calib, dict), "calib is an object")
    for k in ("batches", "batch_size"):
        need(isinstance(calib.get(k), int) and calib[k] > 0, f"calib.{k}")

    names = a.policies.split(",")
    variants = d.get("variants")
    need(isinstance(variants, list), "variants is a list")
    need([v.get("name") for v in variants] == names,
         f"variants {[v.get('name') for v in variants]} in --policies order {names}")
    by = {v["name"]: v for v in variants}
    need(d["baseline"] in by, "the baseline is a variant")
    base = by[d["baseline"]]
    for v in variants:
        n = v["name"]
        need(isinstance(v.get("label"), str) and v["label"], f"{n}: label")
        quantized = v.get("policy") is not None
        need(v.get("policy") in (None, "mixed", "uniform"), f"{n}: policy {v.get('policy')}")
        for k in ("top1", "top5", "latency_ms", "speedup", "top1_drop_pp"):
            need(is_num(v.get(k)), f"{n}: {k} is a number ({v.get(k)})")
        need(0 <= v["top1"] <= v["top5"] <= 100, f"{n}: 0 <= top1 <= top5 <= 100")
        need(v["latency_ms"] > 0, f"{n}: latency > 0")
        need(abs(v["speedup"] - base["latency_ms"] / v["latency_ms"]) <= 1e-6 * max(1, v["speedup"]),
             f"{n}: speedup is baseline latency / latency")
        need(abs(v["top1_drop_pp"] - (base["top1"] - v["top1"])) < 1e-6,
             f"{n}: top1_drop_pp is baseline top1 - top1")
        pairs = v.get("qdq_pairs")
        need(isinstance(pairs, dict) and all(isinstance(pairs.get(k), int)
                                              for k in ("activation", "residual", "weight")),
             f"{n}: qdq_pairs")
        if quantized:
            need(isinstance(v.get("qdq_model"), str) and os.path.isfile(v["qdq_model"]),
                 f"{n}: qdq_model is a written file")
            need(pairs["activation"] + pairs["residual"] > 0 and pairs["weight"] > 0,
                 f"{n}: QDQ pairs inserted")
        else:
            need(v.get("qdq_model") is None, f"{n}: no qdq_model")

    fusions = d.get("fusions")
    need(isinstance(fusions, list) and fusions, "fusions is a non-empty list")
    for fu in fusions:
        need(isinstance(fu.get("module"), str) and isinstance(fu.get("count"), int)
             and fu["count"] > 0, f"fusion row {fu}")

    quant_names = [v["name"] for v in variants if v.get("policy") is not None]
    nodes = d.get("graph", {}).get("nodes")
    need(isinstance(nodes, list) and nodes, "graph.nodes is a non-empty list")
    node_names = set()
    groups = {}
    for nd in nodes:
        need(isinstance(nd.get("name"), str) and isinstance(nd.get("op"), str), f"node {nd}")
        need(isinstance(nd.get("inputs"), list) and isinstance(nd.get("outputs"), list),
             f"node {nd['name']}: inputs/outputs")
        need(nd.get("module") is None or isinstance(nd["module"], str), f"node {nd['name']}: module")
        need((nd.get("group") is None) == (nd.get("module") is None), f"node {nd['name']}: group")
        if nd.get("group") is not None:
            groups.setdefault(nd["group"], set()).add(nd["module"])
        prec = nd.get("precision")
        need(isinstance(prec, dict) and sorted(prec) == sorted(quant_names)
             and all(p in ("int8", "float") for p in prec.values()),
             f"node {nd['name']}: precision {prec}")
        need(isinstance(nd.get("why", {}), dict), f"node {nd['name']}: why")
        node_names.add(nd["name"])
    need(all(len(m) == 1 for m in groups.values()), "the nodes of a group share one module")
    for q in quant_names:
        need(any(nd["precision"][q] == "int8" for nd in nodes), f"{q}: some node is int8")

    sqnr = d.get("sqnr")
    need(isinstance(sqnr, list), "sqnr is a list")
    for q in quant_names:
        rows = [s for s in sqnr if s.get("policy") == q]
        need(rows, f"sqnr rows for {q}")
        need(any(s["kind"] == "activation" for s in rows) and any(s["kind"] == "weight" for s in rows),
             f"{q}: sqnr of activations and weights")
        for s in rows:
            need(s.get("node") in node_names, f"sqnr node {s.get('node')} is a graph node")
            need(isinstance(s.get("tensor"), str) and is_num(s.get("scale")) and s["scale"] > 0
                 and is_num(s.get("amax")), f"sqnr row {s}")
            need(s.get("sqnr_db") is None or is_num(s["sqnr_db"]), f"sqnr_db {s.get('sqnr_db')}")
        measured = [s["sqnr_db"] for s in rows if s.get("sqnr_db") is not None]
        need(measured and sorted(measured)[len(measured) // 2] > 10,
             f"{q}: median SQNR above 10 dB ({sorted(measured)[len(measured) // 2] if measured else None})")

    lat = d.get("layer_latency")
    need(isinstance(lat, list) and lat, "layer_latency is a non-empty list")
    for row in lat:
        need(row.get("node") in node_names, f"layer_latency node {row.get('node')} is a graph node")
        need(isinstance(row.get("ms"), dict) and all(is_num(x) and x >= 0 for x in row["ms"].values()),
             f"layer_latency ms {row.get('ms')}")

    if "mixed" in by and "fp32" in by:
        drop = by["fp32"]["top1"] - by["mixed"]["top1"]
        need(drop <= a.max_drop_pp,
             f"mixed loses {drop:.2f} pp Top-1 against fp32 (at most {a.max_drop_pp})")
        print(f"ok   mixed Top-1 {by['mixed']['top1']:.2f}% vs fp32 {by['fp32']['top1']:.2f}%: "
              f"{drop:.2f} pp drop (<= {a.max_drop_pp})")
    if a.fixtures and a.model and "fp32" in by:
        with open(a.fixtures) as f:
            fx = json.load(f)
        entry = fx.get(a.model) or fx.get("models", {}).get(a.model)
        need(isinstance(entry, dict), f"{a.fixtures} has an entry for {a.model}")
        torch_top1 = entry.get("top1")
        need(is_num(torch_top1), f"{a.fixtures}: {a.model}.top1")
        if torch_top1 <= 1.0:  # a fraction
            torch_top1 *= 100.0
        need(abs(torch_top1 - by["fp32"]["top1"]) <= 0.1,
             f"fp32 Top-1 {by['fp32']['top1']:.2f}% differs from torch's {torch_top1:.2f}%")
        print(f"ok   fp32 Top-1 {by['fp32']['top1']:.2f}% = torch's {torch_top1:.2f}% (within 0.1 pp)")
    print(f"ok   {a.json}: schema qdeploy_compare 1, {len(variants)} variants, "
          f"{len(nodes)} nodes, {len(sqnr)} SQNR rows, {len(lat)} layer latencies")


if __name__ == "__main__":
    main()
