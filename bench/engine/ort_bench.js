// ort_bench.js: times ONNX Runtime (npm onnxruntime-node) the way engine_bench.c times vigil.
//
//   node ort_bench.js MODEL.onnx BATCH.npy [--single N] [--warmup N] [--batch-runs N]
//                     [--async-single N] [--out-dir DIR --name NAME] [--profile PREFIX]
//
// One session per model, single-threaded (intraOpNumThreads 1, interOpNumThreads 1, sequential
// execution, all graph optimisations on), like a vigil session.
// - batch: the whole [rows, ...] float32 tensor per run; one warm-up, then --batch-runs
//   timed runs; median / rows. --batch-runs 0 skips it (vision models have batch 1).
// - single row: [1, ...] views of the first 256 rows in turn; --warmup untimed runs, then
//   --single runs each timed alone with process.hrtime; median, mean and 90th percentile.
// The timed call is the binding's synchronous InferenceSession.run: the public
// `await session.run()` wraps that very call in a Promise and a setImmediate, which adds
// event-loop latency that is not ONNX Runtime's; its median is reported too (single_us_async).
// Even the synchronous call carries the N-API crossing and the creation of the output JS arrays:
// run.sh measures that floor with an Identity model.
// With --out-dir, the batch outputs go to DIR/NAME.ort.<output>.npy for run.sh to compare (without
// a batch run: the single-row outputs of the first rows, stacked).
// --profile PREFIX: ONNX Runtime's own profiler (enableProfiling) on a separate session that runs
// the single-row loop once more; the JSON trace (per-node times) path is printed on stderr and
// returned as "profile" (the timed figures never come from the profiled session).
// Output: one JSON object on stdout.
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');
const { binding, initOrt } = require('onnxruntime-node/dist/binding');

const SINGLE_ROWS = 256;

function parseArgs(argv) {
  const a = { single: 20000, warmup: 2000, batchRuns: 5, asyncSingle: 2000, outDir: null,
    name: 'model', profile: null, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => { if (i + 1 >= argv.length) throw new Error(`${k} needs a value`); return argv[++i]; };
    if (k === '--single') a.single = parseInt(v(), 10);
    else if (k === '--warmup') a.warmup = parseInt(v(), 10);
    else if (k === '--batch-runs') a.batchRuns = parseInt(v(), 10);
    else if (k === '--async-single') a.asyncSingle = parseInt(v(), 10);
    else if (k === '--out-dir') a.outDir = v();
    else if (k === '--name') a.name = v();
    else if (k === '--profile') a.profile = v();
    else if (k.startsWith('-')) throw new Error(`unknown option ${k}`);
    else a.files.push(k);
  }
  if (a.files.length !== 2) throw new Error('usage: ort_bench.js MODEL.onnx BATCH.npy [options]');
  return a;
}

// Reads a little-endian float32, C-order .npy (what make_models.py writes).
function readNpyF32(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + hlen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header)) {
    throw new Error(`${file}: want a C-order <f4 array, header ${header.trim()}`);
  }
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').map((s) => s.trim())
    .filter((s) => s.length).map((s) => parseInt(s, 10));
  const n = shape.reduce((x, y) => x * y, 1);
  if (buf.length - start !== n * 4) throw new Error(`${file}: size does not match its header`);
  // Copy into an aligned buffer: Float32Array views need 4-byte alignment.
  const data = new Float32Array(n);
  Buffer.from(data.buffer).set(buf.subarray(start));
  return { shape, data };
}

const NPY_DESCR = { float32: '<f4', float64: '<f8', int64: '<i8', int32: '<i4', int8: '|i1',
  uint8: '|u1', bool: '|b1' };

function writeNpy(file, tensor) {
  const descr = NPY_DESCR[tensor.type];
  if (!descr) throw new Error(`cannot write ${tensor.type} to .npy`);
  const dims = tensor.dims.map(Number);
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const pre = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(pre);
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const d = tensor.data;
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'),
    Buffer.from(d.buffer, d.byteOffset, d.byteLength)]));
}

function quantile(v, q) {
  const s = Float64Array.from(v).sort();
  return s[Math.round(q * (s.length - 1))];
}

const nowUs = () => Number(process.hrtime.bigint()) / 1e3;

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const [modelPath, batchPath] = a.files;
  const opts = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all' };
  initOrt();
  const sess = new binding.InferenceSession();
  sess.loadModel(modelPath, opts);
  const inputName = sess.inputMetadata[0].name;
  const fetches = {};
  for (const o of sess.outputMetadata) fetches[o.name] = null;
  const runOpts = {};

  const batch = readNpyF32(batchPath);
  const rows = batch.shape[0];
  const rowShape = batch.shape.slice(1);
  const features = rowShape.reduce((x, y) => x * y, 1); // elements per row
  const batchTensor = new ort.Tensor('float32', batch.data, batch.shape);

  const times = [];
  let out = null;
  for (let r = a.batchRuns > 0 ? -1 : 0; r < a.batchRuns; r++) {
    const t0 = nowUs();
    out = sess.run({ [inputName]: batchTensor }, fetches, runOpts);
    const t1 = nowUs();
    if (r >= 0) times.push(t1 - t0);
  }
  const batchRowUs = a.batchRuns > 0 ? quantile(times, 0.5) / rows : null;
  if (a.outDir && a.batchRuns > 0) {
    for (const [name, t] of Object.entries(out)) {
      writeNpy(path.join(a.outDir, `${a.name}.ort.${name}.npy`), t);
    }
  }

  const nRows = Math.min(rows, SINGLE_ROWS);
  const rowTensors = [];
  for (let k = 0; k < nRows; k++) {
    rowTensors.push(new ort.Tensor('float32', batch.data.subarray(k * features, (k + 1) * features),
      [1, ...rowShape]));
  }
  if (a.outDir && a.batchRuns === 0) {
    // Single-row outputs of every row, stacked along the first dimension.
    const stacked = {};
    for (let k = 0; k < nRows; k++) {
      const o = sess.run({ [inputName]: rowTensors[k] }, fetches, runOpts);
      for (const [name, t] of Object.entries(o)) {
        if (!stacked[name]) {
          stacked[name] = { type: t.type, dims: [t.dims[0] * nRows, ...t.dims.slice(1)],
            data: new t.data.constructor(t.data.length * nRows) };
        }
        stacked[name].data.set(t.data, k * t.data.length);
      }
    }
    for (const [name, t] of Object.entries(stacked)) {
      writeNpy(path.join(a.outDir, `${a.name}.ort.${name}.npy`), t);
    }
  }
  const single = new Float64Array(a.single);
  for (let r = -a.warmup; r < a.single; r++) {
    const feed = { [inputName]: rowTensors[(r + a.warmup) % nRows] };
    const t0 = nowUs();
    sess.run(feed, fetches, runOpts);
    const t1 = nowUs();
    if (r >= 0) single[r] = t1 - t0;
  }

  // The public API, for reference: same session options, awaited one call at a time.
  let asyncUs = null;
  if (a.asyncSingle > 0) {
    const pub = await ort.InferenceSession.create(modelPath, opts);
    const at = new Float64Array(a.asyncSingle);
    for (let r = -200; r < a.asyncSingle; r++) {
      const feed = { [inputName]: rowTensors[(r + 200) % nRows] };
      const t0 = nowUs();
      await pub.run(feed);
      const t1 = nowUs();
      if (r >= 0) at[r] = t1 - t0;
    }
    asyncUs = quantile(at, 0.5);
  }

  let profile = null;
  if (a.profile) {
    const ps = new binding.InferenceSession();
    ps.loadModel(modelPath, { ...opts, enableProfiling: true, profileFilePrefix: a.profile });
    for (let r = 0; r < Math.min(a.single, 200); r++) {
      ps.run({ [inputName]: rowTensors[r % nRows] }, fetches, runOpts);
    }
    ps.endProfiling(); // writes PREFIX_<date>.json and returns nothing: take the newest one
    const dir = path.dirname(path.resolve(a.profile));
    const base = path.basename(a.profile);
    const traces = fs.readdirSync(dir).filter((f) => f.startsWith(base) && f.endsWith('.json'))
      .map((f) => path.join(dir, f)).sort((x, y) => fs.statSync(y).mtimeMs - fs.statSync(x).mtimeMs);
    profile = traces.length ? traces[0] : null;
    process.stderr.write(`ort_bench: profile written to ${profile}\n`);
  }

  const res = { engine: 'onnxruntime-node', version: require('onnxruntime-node/package.json').version,
    model: a.name, rows, single_us: quantile(single, 0.5), single_us_p90: quantile(single, 0.9),
    single_us_mean: single.reduce((x, y) => x + y, 0) / single.length,
    single_us_async: asyncUs, batch_row_us: batchRowUs, single_runs: a.single, warmup: a.warmup,
    batch_runs: a.batchRuns, profile };
  process.stdout.write(JSON.stringify(res) + '\n');
}

main().catch((e) => {
  process.stderr.write(`ort_bench: ${e.message}\n`);
  process.exit(1);
});
