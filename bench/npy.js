'use strict';
// Minimal .npy reader/writer for the benchmarks: little-endian numeric arrays
// in C order (what qdeploy and numpy write by default). Versions 1.0-3.0.

const fs = require('fs');

const DTYPES = {
  '<f4': Float32Array, '<f8': Float64Array,
  '|i1': Int8Array, '|u1': Uint8Array, '<i2': Int16Array, '<u2': Uint16Array,
  '<i4': Int32Array, '<u4': Uint32Array, '<i8': BigInt64Array, '<u8': BigUint64Array,
};

function descrOf(array) {
  for (const [descr, ctor] of Object.entries(DTYPES))
    if (array instanceof ctor) return descr;
  throw new Error('npy: unsupported array type ' + array.constructor.name);
}

// Writes `data` (a typed array) with shape `dims` as a version 1.0 .npy file.
function writeNpy(path, data, dims) {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length)
    throw new Error(`npy: shape [${dims}] needs ${count} values, got ${data.length}`);
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descrOf(data)}', 'fortran_order': False, 'shape': ${shape}, }`;
  const pad = (64 - ((10 + header.length + 1) % 64)) % 64;
  header += ' '.repeat(pad) + '\n';
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0,
                           header.length & 0xff, header.length >> 8]);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

// Returns {data, dims, descr}.
function readNpy(path) {
  const b = fs.readFileSync(path);
  if (b.length < 10 || b.toString('latin1', 1, 6) !== 'NUMPY' || b[0] !== 0x93)
    throw new Error(`${path}: not a .npy file`);
  const major = b[6];
  let hlen, hstart;
  if (major === 1) { hlen = b.readUInt16LE(8); hstart = 10; }
  else if (major === 2 || major === 3) { hlen = b.readUInt32LE(8); hstart = 12; }
  else throw new Error(`${path}: unknown .npy version ${major}`);
  const header = b.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header);
  const order = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !order || !shape) throw new Error(`${path}: bad .npy header ${header}`);
  if (order[1] !== 'False') throw new Error(`${path}: Fortran order is not supported`);
  const ctor = DTYPES[descr[1]];
  if (!ctor) throw new Error(`${path}: unsupported dtype ${descr[1]}`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const count = dims.reduce((a, c) => a * c, 1);
  const off = hstart + hlen;
  if (b.length - off < count * ctor.BYTES_PER_ELEMENT)
    throw new Error(`${path}: truncated data`);
  // Copy so the typed array is aligned whatever the header length.
  const data = new ctor(count);
  Buffer.from(data.buffer).set(b.subarray(off, off + count * ctor.BYTES_PER_ELEMENT));
  return { data, dims, descr: descr[1] };
}

module.exports = { writeNpy, readNpy };
