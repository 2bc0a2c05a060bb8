#!/usr/bin/env node
'use strict';
// onnxruntime's counterpart of `qdeploy bench`:
//
//   node bench/ort_bench.js MODEL.onnx [--batch N] [--threads T] [--warmup W] [--iters I]
//
// prints the same first line as qdeploy bench:
//
//   MODEL: batch 1, 2 threads, 20 runs: median 21.480 ms, min 21.100 ms, max 25.170 ms
//
// Session: CPU execution provider, intra-op threads T (default: all cores),
// inter-op threads 1, sequential execution, graphOptimizationLevel 'all'.
// Inputs are uniform [-1, 1) floats (fixed seed), like qdeploy bench's.
// The functions are also used by engine_vs_ort.js and int8_vs_ort.js, which
// keep their sessions alive across their measurement rounds.

const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');

function loadOrt() {
  try {
    return require(path.join(ROOT, 'node_modules', 'onnxruntime-node'));
  } catch (e) {
    throw new Error('onnxruntime-node is not installed: run `npm ci --ignore-scripts` in ' +
                    ROOT + ' (' + e.message.split('\n')[0] + ')');
  }
}

const ort = loadOrt();

function ortVersion() {
  return (ort.env.versions && ort.env.versions.node) || require(
    path.join(ROOT, 'node_modules', 'onnxruntime-node', 'package.json')).version;
}

function defaultThreads() {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism()
                                                       : os.cpus().length;
}

async function openSession(model, threads) {
  return ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

// Deterministic PRNG (mulberry32): uniform [0, 1).
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TYPED = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array,
  int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array,
  int64: BigInt64Array, uint64: BigUint64Array, bool: Uint8Array,
};

// Concrete input shapes: symbolic dimensions (strings or -1) become `batch`
// if first, 1 otherwise.
function inputShapes(session, batch) {
  const meta = session.inputMetadata;
  if (!meta) throw new Error('onnxruntime-node without inputMetadata (need >= 1.22)');
  return session.inputNames.map((name, i) => {
    const m = Array.isArray(meta) ? meta[i] : meta[name];
    if (!m || !m.isTensor) throw new Error(`input ${name}: not a tensor`);
    const dims = m.shape.map((d, k) => (typeof d === 'number' && d >= 0 ? d : k === 0 ? batch : 1));
    return { name, type: m.type, dims };
  });
}

// A `fill` for makeFeeds: standard normal values (Box-Muller on `u`, a uniform
// [0, 1) source such as rng()); one per call, a pair per two draws.
function normalFill() {
  let spare = null;
  return (u) => {
    if (spare !== null) { const s = spare; spare = null; return s; }
    const r = Math.sqrt(-2 * Math.log(1 - u())), t = 2 * Math.PI * u();
    spare = r * Math.sin(t);
    return r * Math.cos(t);
  };
}

// Inputs filled by `fill(rand)` per float element: uniform [-1, 1) by default.
// Integer inputs are zero.
function makeFeeds(session, { batch = 1, seed = 1, fill } = {}) {
  const r = rng(seed);
  const f = fill || ((u) => 2 * u() - 1);
  const feeds = {};
  for (const { name, type, dims } of inputShapes(session, batch)) {
    const ctor = TYPED[type];
    if (!ctor) throw new Error(`input ${name}: unsupported type ${type}`);
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new ctor(n);
    if (type === 'float32' || type === 'float64')
      for (let k = 0; k < n; k++) data[k] = f(r);
    feeds[name] = new ort.Tensor(type, data, dims);
  }
  return feeds;
}

// One round: `warmup` untimed runs, then `iters` timed runs. Returns the
// times in ms, in run order.
async function timeRound(session, feeds, warmup, iters) {
  for (let i = 0; i < warmup; i++) await session.run(feeds);
  const times = new Array(iters);
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times[i] = Number(process.hrtime.bigint() - t0) / 1e6;
  }
  return times;
}

// {median, min, max} the way qdeploy bench computes them (median = sorted[n/2]).
function summary(times) {
  const s = [...times].sort((a, b) => a - b);
  return { median: s[s.length >> 1], min: s[0], max: s[s.length - 1], n: s.length };
}

function formatLine(model, batch, threads, st) {
  return `${model}: batch ${batch}, ${threads} threads, ${st.n} runs: median ` +
         `${st.median.toFixed(3)} ms, min ${st.min.toFixed(3)} ms, max ${st.max.toFixed(3)} ms`;
}

function usage(out) {
  out.write('usage: node bench/ort_bench.js MODEL.onnx [--batch N] [--threads T] ' +
            '[--warmup W] [--iters I]\n');
}

async function main(argv) {
  let model = null, batch = 1, threads = defaultThreads(), warmup = 3, iters = 20;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (min) => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < min) { usage(process.stderr); process.exit(2); }
      return v;
    };
    if (a === '--batch') batch = num(1);
    else if (a === '--threads') threads = num(1);
    else if (a === '--warmup') warmup = num(0);
    else if (a === '--iters') iters = num(1);
    else if (a === '--help' || a === '-h') { usage(process.stdout); return 0; }
    else if (!a.startsWith('-') && !model) model = a;
    else { usage(process.stderr); return 2; }
  }
  if (!model) { usage(process.stderr); return 2; }
  const session = await openSession(model, threads);
  const feeds = makeFeeds(session, { batch });
  const times = await timeRound(session, feeds, warmup, iters);
  console.log(formatLine(model, batch, threads, summary(times)));
  await session.release();
  return 0;
}

module.exports = {
  ort, ortVersion, defaultThreads, openSession, inputShapes, makeFeeds, normalFill, timeRound,
  summary, formatLine, rng,
};

if (require.main === module) {
  main(process.argv.slice(2)).then((rc) => process.exit(rc), (e) => {
    console.error('ort_bench: ' + (e && e.message ? e.message : e));
    process.exit(1);
  });
}
