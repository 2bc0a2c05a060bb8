#!/usr/bin/env node
'use strict';
// qdeploy's INT8 execution vs its float32 and vs onnxruntime on the same QDQ
// models (CPU, batch 1), interleaved in one run.
//
//   node bench/int8_vs_ort.js [--models "resnet50 convnext_tiny"] [--cache DIR]
//        [--qdeploy PATH] [--threads T] [--rounds R] [--warmup W] [--iters I]
//        [--results FILE | --no-results]
//
// Per model NAME.onnx, three QDQ models are made once, next to it:
// NAME.mixed.onnx and NAME.uniform.onnx (`qdeploy quantize --policy mixed|uniform`,
// default target, tensorrt) and NAME.x86.onnx (`--policy mixed --target x86`: the
// CPU's placement, tensorrt's fusion rows but every Linear INT8), all with the
// default calibration methods, each made again only when missing or older than
// NAME.onnx, the calibration file or the qdeploy binary. Calibration uses
// random inputs, not images: calib_normal_8x3x224x224.npy in the same folder, 8
// seeded standard normal float32 inputs (qdeploy takes a float32 .npy as model
// input values), `--calib-batches 2 --batch-size 4`. Such scales are good for
// timing only; accuracy is measured elsewhere.
//
// Then R rounds of eleven rows, the order rotating by one row per round: qdeploy on
// NAME.onnx, NAME.mixed.onnx, NAME.uniform.onnx and NAME.x86.onnx (one `qdeploy
// bench` child process per round, as engine_vs_ort.js runs it), qdeploy on
// NAME.onnx, NAME.uniform.onnx and NAME.x86.onnx with `--high-precision bf16`
// (what is not INT8 computes in bfloat16: the CPU's counterpart of TensorRT's
// FP16, the baseline of the benchmark page this project answers), and
// onnxruntime on the four files (one session per file, kept across rounds). A row's figure
// is the median of its round medians. The tables give the latencies with the INT8
// speedups over qdeploy FP32, then the qdeploy/onnxruntime ratios on the same QDQ
// file; then the goals of issue 5 with PASS/MISS on the tensorrt mixed model, and
// the same goals on the x86 model, marked "(x86 target)"; then per model qdeploy's
// plan line for the three QDQ models and the five biggest op types of the mixed and
// x86 models' profiles (their median rounds).
// The section goes to stdout and, between the markers below, into bench/RESULTS.md.

const fs = require('fs');
const path = require('path');

const ortb = require('./ort_bench');
const { writeNpy } = require('./npy');
const ev = require('./engine_vs_ort');

const BEGIN = '<!-- int8-vs-ort:begin -->';
const END = '<!-- int8-vs-ort:end -->';
const POLICIES = ['mixed', 'uniform'];
// The QDQ files: NAME.VARIANT.onnx and its `qdeploy quantize` placement options.
const QDQ = [
  { variant: 'mixed', args: ['--policy', 'mixed'] },
  { variant: 'uniform', args: ['--policy', 'uniform'] },
  { variant: 'x86', args: ['--policy', 'mixed', '--target', 'x86'] },
];
const CALIB = { dims: [8, 3, 224, 224], seed: 1234, batches: 2, batchSize: 4 };
// The rows in round 1's order; `variant` is the file: fp32 = NAME.onnx.
const ROWS = [
  { key: 'qdFp32', engine: 'qdeploy', variant: 'fp32', label: 'qdeploy FP32' },
  { key: 'qdMixed', engine: 'qdeploy', variant: 'mixed', label: 'qdeploy INT8 mixed' },
  { key: 'qdUniform', engine: 'qdeploy', variant: 'uniform', label: 'qdeploy INT8 uniform' },
  { key: 'qdX86', engine: 'qdeploy', variant: 'x86', label: 'qdeploy INT8 mixed (x86 target)' },
  { key: 'qdBf16', engine: 'qdeploy', variant: 'fp32', label: 'qdeploy BF16',
    extra: ['--high-precision', 'bf16'] },
  { key: 'qdUniformBf16', engine: 'qdeploy', variant: 'uniform',
    label: 'qdeploy INT8 uniform + BF16', extra: ['--high-precision', 'bf16'] },
  { key: 'qdX86Bf16', engine: 'qdeploy', variant: 'x86',
    label: 'qdeploy INT8 mixed (x86 target) + BF16', extra: ['--high-precision', 'bf16'] },
  { key: 'ortFp32', engine: 'ort', variant: 'fp32', label: 'onnxruntime FP32' },
  { key: 'ortMixed', engine: 'ort', variant: 'mixed', label: 'onnxruntime mixed QDQ' },
  { key: 'ortUniform', engine: 'ort', variant: 'uniform', label: 'onnxruntime uniform QDQ' },
  { key: 'ortX86', engine: 'ort', variant: 'x86', label: 'onnxruntime x86-target QDQ' },
];
const PROFILE_TOP = 5;

function usage(out) {
  out.write('usage: node bench/int8_vs_ort.js [--models "M1 M2 ..."] [--cache DIR] ' +
            '[--qdeploy PATH]\n' +
            '         [--threads T] [--rounds R] [--warmup W] [--iters I]\n' +
            '         [--results FILE | --no-results]\n' +
            `  models: names in the cache (default: ${ev.ALL_MODELS.join(' ')}) or .onnx paths\n`);
}

function qdqPath(file, variant) {
  return file.replace(/\.onnx$/, '') + `.${variant}.onnx`;
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

// NAME.VARIANT.onnx, quantized again when missing or older than what it is made of.
function ensureQdq(o, name, file, q, calib) {
  const out = qdqPath(file, q.variant);
  const mtime = (p) => fs.statSync(p).mtimeMs;
  if (fs.existsSync(out) && mtime(out) >= Math.max(mtime(file), mtime(calib), mtime(o.qdeploy))) {
    console.log(`${name}: ${path.basename(out)} is up to date`);
    return out;
  }
  const args = ['quantize', file, '-o', out, '--calib', calib, ...q.args,
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
      for (const q of QDQ) for (const r of rowsOf(q.variant)) fail(r, name, e);
    }
    for (const q of QDQ) {
      if (!calib) break;
      try {
        files[q.variant] = ensureQdq(o, name, file, q, calib);
      } catch (e) {
        for (const r of rowsOf(q.variant)) fail(r, name, e);
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
          const st = r.engine === 'qdeploy' ? ev.qdeployRound(o, files[r.variant], r.extra)
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
                  `qdeploy FP32 ${f('qdFp32')}, mixed ${f('qdMixed')}, uniform ${f('qdUniform')}, ` +
                  `x86-mixed ${f('qdX86')}, BF16 ${f('qdBf16')}, uniform+BF16 ` +
                  `${f('qdUniformBf16')}, x86-mixed+BF16 ${f('qdX86Bf16')} ms; ` +
                  `onnxruntime FP32 ${f('ortFp32')}, ` +
                  `mixed ${f('ortMixed')}, uniform ${f('ortUniform')}, x86-mixed ${f('ortX86')} ms`);
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

// Two tables: latencies (with the INT8 speedups over qdeploy FP32), then the
// qdeploy/onnxruntime ratios on the same QDQ file.
function table(results) {
  const rows = ['| model | qdeploy FP32 ms | qdeploy BF16 ms (speedup) | ' +
                'qdeploy INT8 mixed ms (speedup) | ' +
                'qdeploy INT8 uniform ms (speedup) | qdeploy x86-mixed ms (speedup) | ' +
                'qdeploy uniform + BF16 ms (speedup over BF16) | ' +
                'qdeploy x86-mixed + BF16 ms (speedup over BF16) | ' +
                'onnxruntime FP32 ms | onnxruntime mixed ms | onnxruntime uniform ms | ' +
                'onnxruntime x86-mixed ms |',
                '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of results) {
    const fp32 = fig(r, 'qdFp32');
    const over = (base, key) => ms(fig(r, key)) +
      (base !== null && fig(r, key) !== null ? ` (${ratio(base, fig(r, key))}x)` : '');
    const int8 = (key) => over(fp32, key), onBf16 = (key) => over(fig(r, 'qdBf16'), key);
    rows.push(`| ${r.name} | ${ms(fp32)} | ${int8('qdBf16')} | ${int8('qdMixed')} | ` +
              `${int8('qdUniform')} | ${int8('qdX86')} | ${onBf16('qdUniformBf16')} | ` +
              `${onBf16('qdX86Bf16')} | ` +
              `${ms(fig(r, 'ortFp32'))} | ${ms(fig(r, 'ortMixed'))} | ` +
              `${ms(fig(r, 'ortUniform'))} | ${ms(fig(r, 'ortX86'))} |`);
  }
  rows.push('', '| model | mixed qdeploy/ort | uniform qdeploy/ort | x86-mixed qdeploy/ort |',
            '|---|---:|---:|---:|');
  for (const r of results)
    rows.push(`| ${r.name} | ${ratio(fig(r, 'qdMixed'), fig(r, 'ortMixed'))} | ` +
              `${ratio(fig(r, 'qdUniform'), fig(r, 'ortUniform'))} | ` +
              `${ratio(fig(r, 'qdX86'), fig(r, 'ortX86'))} |`);
  const failures = [];
  for (const r of results)
    for (const row of Object.values(r.rows))
      if (row.error)
        failures.push(`- ${r.name}, ${row.label} failed: ` +
                      row.error.replace(/\|/g, '\\|').slice(0, 200));
  return rows.concat(failures.length ? ['', ...failures] : []).join('\n');
}

// The goals of issue 5, each checked on this run's figures: PASS, MISS, or n/a
// when the model was not run. First as issue 5 states them (the tensorrt mixed
// model), then the same goals on the x86 model, marked "(x86 target)"; `x86` says
// which set a goal belongs to.
function goals(results) {
  const by = new Map(results.map((r) => [r.name, r]));
  const out = [];
  let x86 = false;
  const add = (goal, r, measure) => {
    if (x86) goal += ' (x86 target)';
    if (!r) { out.push({ goal, x86, measured: 'not run', mark: 'n/a' }); return; }
    const [ok, measured] = measure(r);
    out.push({ goal, x86, measured: ok === null ? 'no figure' : measured,
               mark: ok ? 'PASS' : 'MISS' });
  };
  // [ok | null when a figure is missing, what was measured]
  const faster = (a, b, what) => (r) => (fig(r, a) === null || fig(r, b) === null ? [null]
    : [fig(r, a) < fig(r, b), `${fig(r, a).toFixed(2)} vs ${fig(r, b).toFixed(2)} ms${what}`]);
  const convnexts = ['convnext_tiny', 'convnext_base', 'convnext_large'];
  for (const r of results)
    if (r.name.startsWith('convnext') && !convnexts.includes(r.name)) convnexts.push(r.name);
  const sameFile = (r, p, qd, ort) =>
    add(`${r.name}: qdeploy INT8 ${p} faster than onnxruntime on the same QDQ file`, r,
        faster(qd, ort, ` (ratio ${ratio(fig(r, qd), fig(r, ort))})`));
  // mixed: the row key of the mixed model the speedup and ConvNeXt goals check.
  const mixedGoals = (mixed) => {
    for (const [model, min] of [['resnet50', 2.5], ['convnext_tiny', 2], ['vit_b_16', 2]])
      add(`${model}: qdeploy INT8 mixed >= ${min}x qdeploy FP32`, by.get(model), (r) => {
        const fp32 = fig(r, 'qdFp32'), m = fig(r, mixed);
        return fp32 === null || m === null ? [null] : [fp32 / m >= min, `${ratio(fp32, m)}x`];
      });
    for (const model of convnexts)
      add(`${model}: qdeploy INT8 mixed faster than uniform`, by.get(model),
          faster(mixed, 'qdUniform', ''));
  };
  mixedGoals('qdMixed');
  for (const r of results)
    for (const p of POLICIES) {
      const P = p[0].toUpperCase() + p.slice(1);
      sameFile(r, p, `qd${P}`, `ort${P}`);
    }
  x86 = true;
  mixedGoals('qdX86');
  for (const r of results) sameFile(r, 'mixed', 'qdX86', 'ortX86');
  // As the benchmark page compares them: both over the 16-bit baseline.
  for (const model of convnexts)
    add(`${model}: qdeploy INT8 mixed + BF16 faster than uniform + BF16`, by.get(model),
        faster('qdX86Bf16', 'qdUniformBf16', ''));
  return out;
}

function details(results) {
  const lines = [];
  for (const r of results) {
    const rounds = (key) => ev.range(r.rows[key].rounds.map((s) => s.median));
    lines.push('', `#### ${r.name}`, '',
               `- round medians, ms (min–max): qdeploy FP32 ${rounds('qdFp32')}, ` +
               `mixed ${rounds('qdMixed')}, uniform ${rounds('qdUniform')}, x86-mixed ` +
               `${rounds('qdX86')}, BF16 ${rounds('qdBf16')}, uniform+BF16 ` +
               `${rounds('qdUniformBf16')}, x86-mixed+BF16 ` +
               `${rounds('qdX86Bf16')}; onnxruntime FP32 ${rounds('ortFp32')}, mixed ` +
               `${rounds('ortMixed')}, uniform ${rounds('ortUniform')}, x86-mixed ${rounds('ortX86')}`);
    for (const [what, key] of [['mixed', 'qdMixed'], ['uniform', 'qdUniform'],
                               ['x86-mixed', 'qdX86']]) {
      const plan = planLine(medianRoundOutput(r.rows[key]));
      lines.push(`- qdeploy plan, ${what}: ${plan ? `\`${plan}\`` : '-'}`);
    }
    for (const [what, key] of [['mixed', 'qdMixed'], ['mixed (x86 target)', 'qdX86']]) {
      const top = topOps(medianRoundOutput(r.rows[key]), PROFILE_TOP);
      if (!top.length) continue;
      lines.push(`- biggest costs of qdeploy INT8 ${what} (op types, top ${top.length}, from ` +
                 'its median round\'s profile; share of the profiled time):', '',
                 '| op | kernel | nodes | ms/run | share |', '|---|---|---:|---:|---:|',
                 ...top.map((t) => `| \`${t.op}\` | ${t.kernel} | ${t.nodes} | ` +
                                   `${t.ms.toFixed(2)} | ${t.share}% |`), '');
    }
    if (lines[lines.length - 1] === '') lines.pop();
  }
  return lines;
}

function section(o, results, meta) {
  const g = goals(results);
  const counts = (x86) => {
    const n = (mark) => g.filter((x) => x.x86 === x86 && x.mark === mark).length;
    return `${n('PASS')} PASS, ${n('MISS')} MISS` + (n('n/a') ? `, ${n('n/a')} not run` : '');
  };
  return [
    BEGIN,
    '## qdeploy INT8 vs float32 and vs onnxruntime on the same QDQ models (CPU, batch 1)',
    '',
    ...ev.metaLines(o, meta),
    '- models: torchvision, random weights (tools/fixtures/export_torchvision.py), 1x3x224x224, ' +
      'opset 17; QDQ models NAME.mixed.onnx / NAME.uniform.onnx by `qdeploy quantize --policy ' +
      'mixed|uniform` (default target, tensorrt) and NAME.x86.onnx by `--policy mixed --target ' +
      'x86` (the CPU\'s placement: tensorrt\'s fusion rows, every Linear INT8); default ' +
      'calibration methods.',
    `- calibration: **random inputs**, not images: ${CALIB.dims[0]} seeded standard normal ` +
      `${CALIB.dims.slice(1).join('x')} float32 inputs (\`--calib-batches ${CALIB.batches} ` +
      `--batch-size ${CALIB.batchSize}\`). The figures are latency only; accuracy is measured ` +
      'elsewhere.',
    '- BF16 rows: `qdeploy bench --high-precision bf16`: Conv/MatMul/Gemm that are not INT8 ' +
      'compute in bfloat16 with float32 accumulation (AVX512-BF16), the CPU\'s counterpart of ' +
      'TensorRT\'s FP16 (depthwise convs stay float32: memory-bound); on NAME.onnx (BF16), ' +
      'NAME.uniform.onnx (uniform + BF16) and NAME.x86.onnx (x86-mixed + BF16), whose speedups ' +
      'are over qdeploy BF16, as the benchmark page\'s are over TensorRT FP16.',
    `- method: per model ${o.rounds} rounds of the eleven rows, the order rotating by one row per ` +
      `round; each round ${o.warmup} warm-up + ${o.iters} timed runs on one uniform [-1, 1) input ` +
      '(qdeploy: one `qdeploy bench` process per round, INT8 kernels for the QDQ groups; ' +
      'onnxruntime: one session per file kept across rounds); a row\'s figure is the median of ' +
      'its round medians. Speedup: qdeploy FP32 / qdeploy INT8 (> 1: INT8 is faster); ' +
      'qdeploy/ort: on the same QDQ file (< 1: qdeploy is faster).',
    `- command: \`${meta.command}\``,
    '',
    table(results),
    '',
    `### Goals (issue 5): ${counts(false)}; the same goals on the x86 target: ${counts(true)}`,
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
