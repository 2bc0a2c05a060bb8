#!/usr/bin/env node
'use strict';
// qdeploy's INT8 execution vs its float32 and vs onnxruntime on the same QDQ
// models (CPU, batch 1), interleaved in one run.
//
//   node bench/int8_vs_ort.js [--models "resnet50 convnext_tiny"] [--cache DIR]
//        [--qdeploy PATH] [--threads T] [--rounds R] [--warmup W] [--iters I]
//        [--results FILE | --no-results]
//
// Per model NAME.onnx, two QDQ models are made once, next to it:
// NAME.mixed.onnx and NAME.uniform.onnx (`qdeploy quantize --policy mixed|uniform`,
// default target and calibration methods), made again only when missing or older
// than NAME.onnx, the calibration file or the qdeploy binary. Calibration uses
// random inputs, not images: calib_normal_8x3x224x224.npy in the same folder, 8
// seeded standard normal float32 inputs (qdeploy takes a float32 .npy as model
// input values), `--calib-batches 2 --batch-size 4`. Such scales are good for
// timing only; accuracy is measured elsewhere.
//
// Then R rounds of six rows, the order rotating by one row per round: qdeploy on
// NAME.onnx, NAME.mixed.onnx and NAME.uniform.onnx (one `qdeploy bench` child
// process per round, as engine_vs_ort.js runs it) and onnxruntime on the same three
// files (one session per file, kept across rounds). A row's figure is the median
// of its round medians. The table gives the INT8 speedups over qdeploy FP32 and
// the qdeploy/onnxruntime ratios on the same QDQ file, then the goals of issue 5
// with PASS/MISS, then per model qdeploy's plan line for both QDQ models and the
// five biggest op types of the mixed model's profile (its median round).
// The section goes to stdout and, between the markers below, into bench/RESULTS.md.

const fs = require('fs');
const path = require('path');

const ortb = require('./ort_bench');
const { writeNpy } = require('./npy');
const ev = require('./engine_vs_ort');

const BEGIN = '<!-- int8-vs-ort:begin -->';
const END = '<!-- int8-vs-ort:end -->';
const POLICIES = ['mixed', 'uniform'];
const CALIB = { dims: [8, 3, 224, 224], seed: 1234, batches: 2, batchSize: 4 };
// The rows in round 1's order; `variant` is the file: fp32 = NAME.onnx.
const ROWS = [
  { key: 'qdFp32', engine: 'qdeploy', variant: 'fp32', label: 'qdeploy FP32' },
  { key: 'qdMixed', engine: 'qdeploy', variant: 'mixed', label: 'qdeploy INT8 mixed' },
  { key: 'qdUniform', engine: 'qdeploy', variant: 'uniform', label: 'qdeploy INT8 uniform' },
  { key: 'ortFp32', engine: 'ort', variant: 'fp32', label: 'onnxruntime FP32' },
  { key: 'ortMixed', engine: 'ort', variant: 'mixed', label: 'onnxruntime mixed QDQ' },
  { key: 'ortUniform', engine: 'ort', variant: 'uniform', label: 'onnxruntime uniform QDQ' },
];
const PROFILE_TOP = 5;

function usage(out) {
  out.write('usage: node bench/int8_vs_ort.js [--models "M1 M2 ..."] [--cache DIR] ' +
            '[--qdeploy PATH]\n' +
            '         [--threads T] [--rounds R] [--warmup W] [--iters I]\n' +
            '         [--results FILE | --no-results]\n' +
            `  models: names in the cache (default: ${ev.ALL_MODELS.join(' ')}) or .onnx paths\n`);
}

function qdqPath(file, policy) {
  return file.replace(/\.onnx$/, '') + `.${policy}.onnx`;
}

// The seeded standard normal calibration inputs, written once per folder.
function ensureCalib(dir) {
  const file = path.join(dir, `calib_normal_${CALIB.dims.join('x')}.npy`);
  if (fs.existsSync(file)) return file;
  const data = new Float32Array(CALIB.dims.reduce((a, b) => a * b, 1));
  const u = ortb.rng(CALIB.seed), normal = ortb.normalFill();
  for (let k = 0; k < data.length; k++) data[k] = normal(u);
  const tmp = `${file}.tmp.${process.pid}`;
  writeNpy(tmp, data, CALIB.dims);
  fs.renameSync(tmp, file);
  return file;
}

// NAME.POLICY.onnx, quantized again when missing or older than what it is made of.
function ensureQdq(o, name, file, policy, calib) {
  const out = qdqPath(file, policy);
  const mtime = (p) => fs.statSync(p).mtimeMs;
  if (fs.existsSync(out) && mtime(out) >= Math.max(mtime(file), mtime(calib), mtime(o.qdeploy))) {
    console.log(`${name}: ${path.basename(out)} is up to date`);
    return out;
  }
  const args = ['quantize', file, '-o', out, '--calib', calib, '--policy', policy,
                '--calib-batches', String(CALIB.batches), '--batch-size', String(CALIB.batchSize),
                '--threads', String(o.threads)];
  const t0 = Date.now();
  ev.runQdeploy(o, args);
  console.log(`${name}: ${path.basename(out)} made in ${((Date.now() - t0) / 1000).toFixed(0)} s ` +
              `(qdeploy ${args.map((a) => path.relative(process.cwd(), a) || a).join(' ')})`);
  return out;
}

function fail(row, name, e) {
  row.error = e.message.split('\n')[0];
  console.log(`${name}, ${row.label}: ${row.error}`);
}

async function benchModel(o, m) {
  const file = ev.modelPath(o, m), name = ev.modelName(m);
  const res = { name, rows: {} };
  for (const r of ROWS) res.rows[r.key] = { label: r.label, rounds: [], error: null, figure: null };
  const rowsOf = (variant) => ROWS.filter((r) => r.variant === variant).map((r) => res.rows[r.key]);
  if (!fs.existsSync(file)) {
    for (const r of Object.values(res.rows)) r.error = `${file} not found`;
    console.log(`${name}: ${file} not found`);
    return res;
  }
  const files = { fp32: file }, sessions = {}, feeds = {};
  try {
    let calib = null;
    try {
      calib = ensureCalib(path.dirname(file));
    } catch (e) {
      for (const p of POLICIES) for (const r of rowsOf(p)) fail(r, name, e);
    }
    for (const p of POLICIES) {
      if (!calib) break;
      try {
        files[p] = ensureQdq(o, name, file, p, calib);
      } catch (e) {
        for (const r of rowsOf(p)) fail(r, name, e);
      }
    }
    for (const r of ROWS.filter((x) => x.engine === 'ort' && files[x.variant])) {
      try {
        sessions[r.variant] = await ortb.openSession(files[r.variant], o.threads);
        feeds[r.variant] = ortb.makeFeeds(sessions[r.variant]);
      } catch (e) {  // e.g. onnxruntime cannot load the model
        fail(res.rows[r.key], name, e);
      }
    }
    for (let round = 0; round < o.rounds; round++) {
      const k = round % ROWS.length, order = [...ROWS.slice(k), ...ROWS.slice(0, k)];
      const line = {};
      for (const r of order) {
        const row = res.rows[r.key];
        if (row.error) continue;
        try {
          const st = r.engine === 'qdeploy' ? ev.qdeployRound(o, files[r.variant])
            : ortb.summary(await ortb.timeRound(sessions[r.variant], feeds[r.variant],
                                                o.warmup, o.iters));
          row.rounds.push(st);
          line[r.key] = st.median;
        } catch (e) {
          fail(row, name, e);
        }
      }
      const f = (key) => (line[key] === undefined ? '-' : line[key].toFixed(3));
      console.log(`${name} round ${round + 1}/${o.rounds} (${order[0].label} first): ` +
                  `qdeploy FP32 ${f('qdFp32')}, mixed ${f('qdMixed')}, uniform ${f('qdUniform')} ms; ` +
                  `onnxruntime FP32 ${f('ortFp32')}, mixed ${f('ortMixed')}, ` +
                  `uniform ${f('ortUniform')} ms`);
    }
  } finally {
    for (const s of Object.values(sessions)) await s.release();
  }
  for (const row of Object.values(res.rows))
    row.figure = row.error || !row.rounds.length ? null
      : ev.median(row.rounds.map((s) => s.median));
  return res;
}

// qdeploy bench's output of the round closest to the row's figure.
function medianRoundOutput(row) {
  if (row.figure === null) return '';
  let best = row.rounds[0];
  for (const s of row.rounds)
    if (Math.abs(s.median - row.figure) < Math.abs(best.median - row.figure)) best = s;
  return best.out || '';
}

function planLine(out) {
  const m = /^plan: .*$/m.exec(out);
  return m ? m[0] : null;
}

// The first n rows of qdeploy bench's op-type profile (sorted largest first).
function topOps(out, n) {
  const lines = out.split('\n');
  const h = lines.findIndex((l) => /^op\s+kernel\s+nodes\s+ms\/run\s+share\s*$/.test(l));
  const rows = [];
  for (let i = h + 1; h >= 0 && i < lines.length && rows.length < n; i++) {
    const m = /^(\S+)\s+(?:(\S+)\s+)?(\d+)\s+([\d.]+)\s+([\d.]+)%\s*$/.exec(lines[i]);
    if (!m) break;
    rows.push({ op: m[1], kernel: m[2] || '', nodes: Number(m[3]), ms: Number(m[4]), share: m[5] });
  }
  return rows;
}

const fig = (res, key) => res.rows[key].figure;
const ms = (v) => (v === null ? 'failed' : v.toFixed(2));
const ratio = (a, b) => (a === null || b === null ? '-' : (a / b).toFixed(2));

function table(results) {
  const rows = ['| model | qdeploy FP32 ms | qdeploy INT8 mixed ms (speedup) | ' +
                'qdeploy INT8 uniform ms (speedup) | onnxruntime FP32 ms | onnxruntime mixed ms | ' +
                'onnxruntime uniform ms | mixed qdeploy/ort | uniform qdeploy/ort |',
                '|---|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of results) {
    const fp32 = fig(r, 'qdFp32');
    const int8 = (key) => ms(fig(r, key)) +
      (fp32 !== null && fig(r, key) !== null ? ` (${ratio(fp32, fig(r, key))}x)` : '');
    rows.push(`| ${r.name} | ${ms(fp32)} | ${int8('qdMixed')} | ${int8('qdUniform')} | ` +
              `${ms(fig(r, 'ortFp32'))} | ${ms(fig(r, 'ortMixed'))} | ${ms(fig(r, 'ortUniform'))} | ` +
              `${ratio(fig(r, 'qdMixed'), fig(r, 'ortMixed'))} | ` +
              `${ratio(fig(r, 'qdUniform'), fig(r, 'ortUniform'))} |`);
  }
  const failures = [];
  for (const r of results)
    for (const row of Object.values(r.rows))
      if (row.error)
        failures.push(`- ${r.name}, ${row.label} failed: ` +
                      row.error.replace(/\|/g, '\\|').slice(0, 200));
  return rows.concat(failures.length ? ['', ...failures] : []).join('\n');
}

// The goals of issue 5, each checked on this run's figures: PASS, MISS, or n/a
// when the model was not run.
function goals(results) {
  const by = new Map(results.map((r) => [r.name, r]));
  const out = [];
  const add = (goal, r, measure) => {
    if (!r) { out.push({ goal, measured: 'not run', mark: 'n/a' }); return; }
    const [ok, measured] = measure(r);
    out.push({ goal, measured: ok === null ? 'no figure' : measured, mark: ok ? 'PASS' : 'MISS' });
  };
  // [ok | null when a figure is missing, what was measured]
  const faster = (a, b, what) => (r) => (fig(r, a) === null || fig(r, b) === null ? [null]
    : [fig(r, a) < fig(r, b), `${fig(r, a).toFixed(2)} vs ${fig(r, b).toFixed(2)} ms${what}`]);
  for (const [model, min] of [['resnet50', 2.5], ['convnext_tiny', 2], ['vit_b_16', 2]])
    add(`${model}: qdeploy INT8 mixed >= ${min}x qdeploy FP32`, by.get(model), (r) => {
      const fp32 = fig(r, 'qdFp32'), mixed = fig(r, 'qdMixed');
      return fp32 === null || mixed === null ? [null]
        : [fp32 / mixed >= min, `${ratio(fp32, mixed)}x`];
    });
  const convnexts = ['convnext_tiny', 'convnext_base', 'convnext_large'];
  for (const r of results)
    if (r.name.startsWith('convnext') && !convnexts.includes(r.name)) convnexts.push(r.name);
  for (const model of convnexts)
    add(`${model}: qdeploy INT8 mixed faster than uniform`, by.get(model),
        faster('qdMixed', 'qdUniform', ''));
  for (const r of results)
    for (const p of POLICIES) {
      const P = p[0].toUpperCase() + p.slice(1);
      add(`${r.name}: qdeploy INT8 ${p} faster than onnxruntime on the same QDQ file`, r,
          faster(`qd${P}`, `ort${P}`, ` (ratio ${ratio(fig(r, `qd${P}`), fig(r, `ort${P}`))})`));
    }
  return out;
}

function details(results) {
  const lines = [];
  for (const r of results) {
    const rounds = (key) => ev.range(r.rows[key].rounds.map((s) => s.median));
    lines.push('', `#### ${r.name}`, '',
               `- round medians, ms (min–max): qdeploy FP32 ${rounds('qdFp32')}, ` +
               `mixed ${rounds('qdMixed')}, uniform ${rounds('qdUniform')}; onnxruntime FP32 ` +
               `${rounds('ortFp32')}, mixed ${rounds('ortMixed')}, uniform ${rounds('ortUniform')}`);
    for (const p of POLICIES) {
      const plan = planLine(medianRoundOutput(r.rows[p === 'mixed' ? 'qdMixed' : 'qdUniform']));
      lines.push(`- qdeploy plan, ${p}: ${plan ? `\`${plan}\`` : '-'}`);
    }
    const top = topOps(medianRoundOutput(r.rows.qdMixed), PROFILE_TOP);
    if (!top.length) continue;
    lines.push(`- biggest costs of qdeploy INT8 mixed (op types, top ${top.length}, from its ` +
               'median round\'s profile; share of the profiled time):', '',
               '| op | kernel | nodes | ms/run | share |', '|---|---|---:|---:|---:|',
               ...top.map((t) => `| \`${t.op}\` | ${t.kernel} | ${t.nodes} | ${t.ms.toFixed(2)} | ` +
                                 `${t.share}% |`));
  }
  return lines;
}

function section(o, results, meta) {
  const g = goals(results);
  const count = (mark) => g.filter((x) => x.mark === mark).length;
  return [
    BEGIN,
    '## qdeploy INT8 vs float32 and vs onnxruntime on the same QDQ models (CPU, batch 1)',
    '',
    ...ev.metaLines(o, meta),
    '- models: torchvision, random weights (tools/fixtures/export_torchvision.py), 1x3x224x224, ' +
      'opset 17; QDQ models NAME.mixed.onnx / NAME.uniform.onnx by `qdeploy quantize --policy ' +
      'mixed|uniform` (default target and calibration methods).',
    `- calibration: **random inputs**, not images: ${CALIB.dims[0]} seeded standard normal ` +
      `${CALIB.dims.slice(1).join('x')} float32 inputs (\`--calib-batches ${CALIB.batches} ` +
      `--batch-size ${CALIB.batchSize}\`). The figures are latency only; accuracy is measured ` +
      'elsewhere.',
    `- method: per model ${o.rounds} rounds of the six rows, the order rotating by one row per ` +
      `round; each round ${o.warmup} warm-up + ${o.iters} timed runs on one uniform [-1, 1) input ` +
      '(qdeploy: one `qdeploy bench` process per round, INT8 kernels for the QDQ groups; ' +
      'onnxruntime: one session per file kept across rounds); a row\'s figure is the median of ' +
      'its round medians. Speedup: qdeploy FP32 / qdeploy INT8 (> 1: INT8 is faster); ' +
      'qdeploy/ort: on the same QDQ file (< 1: qdeploy is faster).',
    `- command: \`${meta.command}\``,
    '',
    table(results),
    '',
    `### Goals (issue 5): ${count('PASS')} PASS, ${count('MISS')} MISS` +
      (count('n/a') ? `, ${count('n/a')} not run` : ''),
    '',
    '| goal | measured | result |',
    '|---|---|---|',
    ...g.map((x) => `| ${x.goal} | ${x.measured} | ${x.mark} |`),
    '',
    '### Per model: qdeploy plans and the biggest remaining costs',
    ...details(results),
    END,
  ].join('\n');
}

async function main() {
  const argv = process.argv.slice(2);
  const o = ev.parseArgs(argv, { prog: 'int8_vs_ort', use: usage, flags: {} });
  ev.needQdeploy(o);
  const meta = ev.runMeta(argv, __filename);
  console.log(`INT8 vs onnxruntime ${meta.ortVersion}: ${meta.cpu}, ${o.threads} threads, ` +
              `${o.rounds} rounds x (${o.warmup} warm-up + ${o.iters} runs)`);
  const results = [];
  for (const m of o.models) results.push(await benchModel(o, m));
  const text = section(o, results, meta);
  console.log('\n' + text.split('\n').filter((l) => !l.startsWith('<!--')).join('\n'));
  if (o.results) {
    ev.writeResults(o.results, text, BEGIN, END);
    console.log(`\nwritten to ${path.relative(process.cwd(), o.results) || o.results}`);
  }
  return results.some((r) => Object.values(r.rows).some((row) => row.error)) ? 1 : 0;
}

main().then((rc) => process.exit(rc), (e) => {
  console.error('int8_vs_ort: ' + (e && e.message ? e.message : e));
  process.exit(1);
});
