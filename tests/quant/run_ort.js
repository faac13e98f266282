// run_ort.js: records ONNX Runtime's outputs for the int8 test graphs (see README.md).
//
//   node tests/quant/run_ort.js CASE_DIR...
//
// For each CASE_DIR (model.onnx + test_data_set_0/input_N.pb, as make_graphs.py writes them):
// one ONNX Runtime session (onnxruntime-node from tests/quant/node_modules), single-threaded
// (intraOpNumThreads 1, interOpNumThreads 1, sequential, all graph optimisations), runs the
// inputs and writes output_N.pb (TensorProto with raw_data) in graph output order. A case with
// a file `expected_is_exact` keeps its output_N.pb (the exact result) and gets ONNX Runtime's as
// ort_output_N.pb, and the comparison is printed.
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

// TensorProto.DataType numbers <-> onnxruntime-node type names and typed arrays.
const TYPES = {
  1: ['float32', Float32Array],
  2: ['uint8', Uint8Array],
  3: ['int8', Int8Array],
  6: ['int32', Int32Array],
  7: ['int64', BigInt64Array],
};
const TYPE_NUM = Object.fromEntries(Object.entries(TYPES).map(([k, v]) => [v[0], Number(k)]));

function readVarint(buf, pos) {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    const b = buf[pos++];
    v |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [v, pos];
    shift += 7n;
  }
}

// The TensorProto fields numpy_helper.from_array writes: dims (1), data_type (2), name (8),
// raw_data (9). Anything else is skipped.
function decodeTensor(buf) {
  const t = { dims: [], type: 0, name: '', raw: null };
  let pos = 0;
  while (pos < buf.length) {
    let key;
    [key, pos] = readVarint(buf, pos);
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      let v;
      [v, pos] = readVarint(buf, pos);
      if (field === 1) t.dims.push(Number(v));
      else if (field === 2) t.type = Number(v);
    } else if (wire === 2) {
      let len;
      [len, pos] = readVarint(buf, pos);
      const end = pos + Number(len);
      if (field === 1) {
        while (pos < end) {
          let v;
          [v, pos] = readVarint(buf, pos);
          t.dims.push(Number(v));
        }
      } else if (field === 8) {
        t.name = buf.toString('utf8', pos, end);
      } else if (field === 9) {
        t.raw = buf.subarray(pos, end);
      }
      pos = end;
    } else if (wire === 5) {
      pos += 4;
    } else if (wire === 1) {
      pos += 8;
    } else {
      throw new Error(`unsupported protobuf wire type ${wire}`);
    }
  }
  if (!TYPES[t.type] || !t.raw) throw new Error(`tensor '${t.name}': want raw_data of a known type`);
  const Arr = TYPES[t.type][1];
  const copy = Buffer.from(t.raw); // aligned copy
  const data = new Arr(copy.buffer, copy.byteOffset, copy.length / Arr.BYTES_PER_ELEMENT);
  return new ort.Tensor(TYPES[t.type][0], data, t.dims);
}

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}

function field(num, wire) {
  return varint((num << 3) | wire);
}

function encodeTensor(t, name) {
  const parts = [];
  for (const d of t.dims) parts.push(field(1, 0), varint(d));
  parts.push(field(2, 0), varint(TYPE_NUM[t.type]));
  const nm = Buffer.from(name, 'utf8');
  parts.push(field(8, 2), varint(nm.length), nm);
  const raw = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  parts.push(field(9, 2), varint(raw.length), raw);
  return Buffer.concat(parts);
}

async function runCase(dir) {
  const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const set = path.join(dir, 'test_data_set_0');
  const feeds = {};
  session.inputNames.forEach((name, i) => {
    feeds[name] = decodeTensor(fs.readFileSync(path.join(set, `input_${i}.pb`)));
  });
  const results = await session.run(feeds);
  const exact = fs.existsSync(path.join(dir, 'expected_is_exact'));
  session.outputNames.forEach((name, i) => {
    const out = results[name];
    const file = path.join(set, `${exact ? 'ort_' : ''}output_${i}.pb`);
    fs.writeFileSync(file, encodeTensor(out, name));
    if (exact) {
      const want = decodeTensor(fs.readFileSync(path.join(set, `output_${i}.pb`)));
      const same = want.data.every((v, k) => v === out.data[k]);
      console.log(`${path.basename(dir)}: exact output ${Array.from(want.data).join(',')}, ` +
        `ONNX Runtime gives ${Array.from(out.data).join(',')}` +
        (same ? ' (no int16 saturation on this CPU)' : ' (its u8s8 kernel saturated)'));
    }
  });
  await session.release();
}

async function main() {
  const dirs = process.argv.slice(2);
  if (!dirs.length) throw new Error('usage: run_ort.js CASE_DIR...');
  for (const d of dirs) await runCase(d);
}

main().catch((e) => {
  console.error(`run_ort.js: ${e.message}`);
  process.exit(1);
});
