#!/usr/bin/env node
'use strict';
// qdeploy's CPU engine vs onnxruntime (float32, batch 1), interleaved in one run.
//
//   node bench/engine_vs_ort.js [--models "resnet50 convnext_tiny"] [--cache DIR]
//        [--qdeploy PATH] [--threads T] [--rounds R] [--warmup W] [--iters I]
//        [--check] [--results FILE | --no-results]
//
// For each model, R rounds; in each round both engines run W warm-up and I timed
// inferences, the engine going first alternating from round to round. qdeploy
// rounds are `qdeploy bench` child processes (one per round: the model is loaded
// and planned each round, but only qd_engine_run is timed); onnxruntime rounds run
// in this process on one session kept across rounds. Per round both engines'
// medians are taken the way `qdeploy bench` prints them (sorted[I/2]); the figure
// per engine is the median of its R round medians, and the ratio is qdeploy/ort
// (< 1: qdeploy is faster).
//
// --check runs both engines once on the same seeded normal input (qdeploy through
// `qdeploy run` and .npy files) and prints max |qdeploy - ort| per output.
//
// Models are names in the cache made by tools/fixtures/export_torchvision.py
// (CACHE/NAME.onnx; bench/run_engine_vs_ort.sh exports them) or paths to .onnx files.
// The table goes to stdout and, between the markers below, into bench/RESULTS.md.
// The helpers (options, qdeploy rounds, medians, run metadata, the marked
// section of RESULTS.md) are exported for int8_vs_ort.js.

const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ortb = require('./ort_bench');
const { writeNpy, readNpy } = require('./npy');

const ROOT = path.resolve(__dirname, '..');
const BEGIN = '<!-- engine-vs-ort:begin -->';
const END = '<!-- engine-vs-ort:end -->';
const ALL_MODELS = ['resnet50', 'convnext_tiny', 'convnext_base', 'convnext_large', 'vit_b_16'];

function usage(out) {
  out.write('usage: node bench/engine_vs_ort.js [--models "M1 M2 ..."] [--cache DIR] ' +
            '[--qdeploy PATH]\n' +
            '         [--threads T] [--rounds R] [--warmup W] [--iters I] [--check]\n' +
            '         [--results FILE | --no-results]\n' +
            `  models: names in the cache (default: ${ALL_MODELS.join(' ')}) or .onnx paths\n`);
}

// The options the drivers share; `flags` maps a driver's own boolean options
// to their keys in the result (false unless given).
function parseArgs(argv, { prog = 'engine_vs_ort', use = usage,
                           flags = { '--check': 'check' } } = {}) {
  const o = {
    models: [], cache: path.join(ROOT, '.cache', 'torchvision'),
    qdeploy: path.join(ROOT, 'build', 'qdeploy'), threads: ortb.defaultThreads(),
    rounds: 5, warmup: 3, iters: 10,
    results: path.join(ROOT, 'bench', 'RESULTS.md'),
  };
  for (const key of Object.values(flags)) o[key] = false;
  const fail = (msg) => {
    process.stderr.write(`${prog}: ${msg}\n`);
    use(process.stderr);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? argv[++i] : fail(`${a} needs a value`));
    const num = (min) => {
      const s = val(), v = Number(s);
      if (!Number.isInteger(v) || v < min) fail(`${a}: bad value '${s}'`);
      return v;
    };
    if (a === '--models') o.models.push(...val().split(/[\s,]+/).filter((s) => s));
    else if (a === '--cache') o.cache = path.resolve(val());
    else if (a === '--qdeploy') o.qdeploy = path.resolve(val());
    else if (a === '--threads') o.threads = num(1);
    else if (a === '--rounds') o.rounds = num(1);
    else if (a === '--warmup') o.warmup = num(0);
    else if (a === '--iters') o.iters = num(1);
    else if (Object.prototype.hasOwnProperty.call(flags, a)) o[flags[a]] = true;
    else if (a === '--results') o.results = path.resolve(val());
    else if (a === '--no-results') o.results = null;
    else if (a === '--help' || a === '-h') { use(process.stdout); process.exit(0); }
    else if (!a.startsWith('-')) o.models.push(a);
    else fail(`unknown option ${a}`);
  }
  if (!o.models.length) o.models = ALL_MODELS.slice();
  return o;
}

function modelPath(o, m) {
  return m.endsWith('.onnx') ? path.resolve(m) : path.join(o.cache, m + '.onnx');
}

function modelName(m) {
  return path.basename(m).replace(/\.onnx$/, '');
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b), n = s.length;
  return n % 2 ? s[n >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

// "min–max" of round medians, for judging the noise behind a median.
function range(xs) {
  return xs.length ? `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}` : '-';
}

function firstLine(s) {
  return String(s || '').trim().split('\n')[0];
}

function runQdeploy(o, args) {
  try {
    return execFileSync(o.qdeploy, args, {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20,
    });
  } catch (e) {
    const msg = firstLine(e.stderr) || firstLine(e.stdout) || e.message;
    throw new Error(`qdeploy ${args[0]} failed: ${msg}`);
  }
}

// One `qdeploy bench` round: {median, min, max} from its first line, and the
// whole output (plan line, per-op profile) as `out`.
function qdeployRound(o, file, extra = []) {
  const out = runQdeploy(o, ['bench', file, '--threads', String(o.threads),
                             '--warmup', String(o.warmup), '--iters', String(o.iters), ...extra]);
  const m = /(\d+) runs: median ([\d.]+) ms, min ([\d.]+) ms, max ([\d.]+) ms/.exec(out);
  if (!m || Number(m[1]) !== o.iters)
    throw new Error(`cannot parse qdeploy bench output: ${firstLine(out)}`);
  return { median: Number(m[2]), min: Number(m[3]), max: Number(m[4]), out };
}

// Same seeded standard normal input through both engines; max |diff| per output.
async function check(o, file, session) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qd-engine-vs-ort-'));
  try {
    const feeds = ortb.makeFeeds(session, { seed: 1234, fill: ortb.normalFill() });
    const args = ['run', file, '--threads', String(o.threads)];
    session.inputNames.forEach((name, i) => {
      const p = path.join(dir, `x${i}.npy`);
      writeNpy(p, feeds[name].data, feeds[name].dims);
      args.push('--input', `${name}=${p}`);
    });
    session.outputNames.forEach((name, i) => args.push('--output', `${name}=${path.join(dir, `y${i}.npy`)}`));
    runQdeploy(o, args);
    const ref = await session.run(feeds);
    return session.outputNames.map((name, i) => {
      const y = readNpy(path.join(dir, `y${i}.npy`));
      const r = ref[name];
      if (y.dims.join('x') !== r.dims.join('x'))
        throw new Error(`output ${name}: qdeploy shape ${y.dims.join('x')}, ort ${r.dims.join('x')}`);
      let maxDiff = 0, maxRef = 0;
      for (let k = 0; k < r.data.length; k++) {
        const d = Math.abs(Number(y.data[k]) - Number(r.data[k]));
        maxDiff = Number.isNaN(d) || d > maxDiff ? (Number.isNaN(d) ? Infinity : d) : maxDiff;
        maxRef = Math.max(maxRef, Math.abs(Number(r.data[k])));
      }
      return { name, maxDiff, maxRef };
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function fmtCheck(c) {
  return c.map((x) => `${x.name} ${x.maxDiff.toExponential(2)} (max |ort| ${x.maxRef.toPrecision(3)})`)
          .join(', ');
}

async function benchModel(o, m) {
  const file = modelPath(o, m), name = modelName(m);
  const res = { name, qd: [], ort: [], ortTimes: [], check: null, error: null };
  if (!fs.existsSync(file)) { res.error = `${file} not found`; return res; }
  const session = await ortb.openSession(file, o.threads);
  try {
    if (o.check) {
      try {
        res.check = await check(o, file, session);
        console.log(`${name}: check max |qdeploy - ort|: ${fmtCheck(res.check)}`);
      } catch (e) {
        res.check = e.message;
        console.log(`${name}: check failed: ${e.message}`);
      }
    }
    const feeds = ortb.makeFeeds(session);
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 === 0 ? ['qdeploy', 'ort'] : ['ort', 'qdeploy'];
      const line = {};
      for (const engine of order) {
        if (engine === 'qdeploy') {
          if (res.error) continue;
          try {
            const st = qdeployRound(o, file);
            res.qd.push(st);
            line.qdeploy = st.median;
          } catch (e) {
            res.error = e.message;
            console.log(`${name}: ${e.message}`);
          }
        } else {
          const times = await ortb.timeRound(session, feeds, o.warmup, o.iters);
          res.ortTimes.push(...times);
          res.ort.push(ortb.summary(times));
          line.ort = res.ort[res.ort.length - 1].median;
        }
      }
      const f = (v) => (v === undefined ? '-' : v.toFixed(3));
      console.log(`${name} round ${r + 1}/${o.rounds} (${order[0]} first): ` +
                  `qdeploy ${f(line.qdeploy)} ms, onnxruntime ${f(line.ort)} ms`);
    }
  } finally {
    await session.release();
  }
  return res;
}

function cpuInfo() {
  let model = os.cpus()[0] ? os.cpus()[0].model : 'unknown', flags = [];
  try {
    const txt = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const mm = /^model name\s*:\s*(.*)$/m.exec(txt);
    if (mm) model = mm[1].trim();
    const fm = /^flags\s*:\s*(.*)$/m.exec(txt);
    if (fm) {
      const have = new Set(fm[1].split(/\s+/));
      flags = ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_int8']
        .filter((f) => have.has(f));
    }
  } catch (e) { /* not Linux */ }
  return `${model}, ${os.cpus().length} logical CPUs` + (flags.length ? ` (${flags.join(', ')})` : '');
}

function gitRev() {
  try {
    const rev = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'],
                             { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no'],
                               { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return rev + (dirty ? ' (with uncommitted changes)' : '');
  } catch (e) {
    return 'unknown';
  }
}

function shellQuote(a) {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

function table(o, results) {
  const rows = ['| model | qdeploy ms | onnxruntime ms | qdeploy/ort | qdeploy round medians | ' +
                'onnxruntime round medians |' + (o.check ? ' max abs diff |' : ''),
                '|---|---:|---:|---:|---|---|' + (o.check ? '---:|' : '')];
  for (const r of results) {
    const qd = r.qd.length ? median(r.qd.map((s) => s.median)) : null;
    const ort = r.ort.length ? median(r.ort.map((s) => s.median)) : null;
    const qdCell = r.error ? `failed: ${r.error.replace(/\|/g, '\\|').slice(0, 120)}`
                           : qd.toFixed(2);
    let row = `| ${r.name} | ${qdCell} | ${ort === null ? '-' : ort.toFixed(2)} | ` +
              `${!r.error && ort ? (qd / ort).toFixed(2) : '-'} | ` +
              `${r.error ? '-' : range(r.qd.map((s) => s.median))} | ` +
              `${range(r.ort.map((s) => s.median))} |`;
    if (o.check)
      row += ` ${typeof r.check === 'string' ? 'failed'
                : r.check ? Math.max(...r.check.map((c) => c.maxDiff)).toExponential(1) : '-'} |`;
    rows.push(row);
  }
  return rows.join('\n');
}

// The notes every section starts with: when, where, with what.
function metaLines(o, meta) {
  return [
    `- date: ${meta.date}`,
    `- machine: ${meta.cpu}; load average at start ${meta.load}`,
    `- threads: ${o.threads} (qdeploy \`--threads ${o.threads}\`; onnxruntime intra-op ` +
      `${o.threads}, inter-op 1, sequential, graphOptimizationLevel 'all')`,
    `- onnxruntime: onnxruntime-node ${meta.ortVersion} (npm, its bundled CPU library)`,
    `- qdeploy: git ${meta.git}` + (meta.env ? `; environment: ${meta.env}` : ''),
  ];
}

function section(o, results, meta) {
  return [
    BEGIN,
    '## qdeploy engine vs onnxruntime (CPU, float32, batch 1)',
    '',
    ...metaLines(o, meta),
    `- method: per model ${o.rounds} rounds, engines alternating (which goes first alternates ` +
      `too); each round ${o.warmup} warm-up + ${o.iters} timed runs on one uniform [-1, 1) input; ` +
      'an engine\'s figure is the median of its round medians; ratio < 1: qdeploy is faster. ' +
      'Models: torchvision, random weights (tools/fixtures/export_torchvision.py), 1x3x224x224, opset 17.' +
      (o.check ? ' max abs diff: largest |qdeploy - onnxruntime| over the output on one seeded ' +
                 'normal input.' : ''),
    `- command: \`${meta.command}\``,
    '',
    table(o, results),
    END,
  ].join('\n');
}

// Replaces the text between `begin` and `end` in `file` (which `text` starts and
// ends with), or appends it; the file is replaced atomically.
function writeResults(file, text, begin = BEGIN, end = END) {
  let old = '';
  try { old = fs.readFileSync(file, 'utf8'); } catch (e) {
    old = '# qdeploy benchmarks\n\nWritten by the scripts in this folder; each section is ' +
          'replaced by the script that made it.\n';
  }
  const b = old.indexOf(begin), e = old.indexOf(end);
  const next = b >= 0 && e > b ? old.slice(0, b) + text + old.slice(e + end.length)
                               : old.replace(/\n*$/, '\n\n') + text + '\n';
  const tmp = `${file}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, next);
  fs.renameSync(tmp, file);
}

// What the section's notes say about this run; `script` is the driver's file.
function runMeta(argv, script) {
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpu: cpuInfo(),
    load: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    ortVersion: ortb.ortVersion(),
    git: gitRev(),
    // Threading settings inherited by qdeploy (OpenMP, oneDNN) change its figures.
    env: Object.keys(process.env).filter((k) => /^(OMP_|GOMP_|KMP_|ONEDNN_|DNNL_)/.test(k)).sort()
      .map((k) => `${k}=${process.env[k]}`).join(' '),
    command: process.env.QD_BENCH_COMMAND ||
             ['node', path.relative(process.cwd(), script) || script, ...argv]
               .map(shellQuote).join(' '),
  };
}

function needQdeploy(o) {
  if (!fs.existsSync(o.qdeploy))
    throw new Error(`${o.qdeploy} not found: build first (cmake -S . -B build && cmake --build build)`);
}

async function main() {
  const argv = process.argv.slice(2);
  const o = parseArgs(argv);
  needQdeploy(o);
  const meta = runMeta(argv, __filename);
  console.log(`engine vs onnxruntime ${meta.ortVersion}: ${meta.cpu}, ${o.threads} threads, ` +
              `${o.rounds} rounds x (${o.warmup} warm-up + ${o.iters} runs)`);
  const results = [];
  for (const m of o.models) {
    try {
      results.push(await benchModel(o, m));
    } catch (e) {  // e.g. onnxruntime cannot load the model
      console.log(`${modelName(m)}: ${e.message}`);
      results.push({ name: modelName(m), qd: [], ort: [], ortTimes: [], check: null,
                     error: e.message.split('\n')[0] });
    }
  }
  const text = section(o, results, meta);
  console.log('\n' + text.split('\n').filter((l) => !l.startsWith('<!--')).join('\n'));
  if (o.results) {
    writeResults(o.results, text);
    console.log(`\nwritten to ${path.relative(process.cwd(), o.results) || o.results}`);
  }
  return results.some((r) => r.error) ? 1 : 0;
}

module.exports = {
  ROOT, ALL_MODELS, parseArgs, modelPath, modelName, median, range, firstLine, runQdeploy,
  qdeployRound, runMeta, metaLines, needQdeploy, writeResults,
};

if (require.main === module) {
  main().then((rc) => process.exit(rc), (e) => {
    console.error('engine_vs_ort: ' + (e && e.message ? e.message : e));
    process.exit(1);
  });
}
