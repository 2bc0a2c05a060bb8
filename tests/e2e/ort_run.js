'use strict';
// ort_run.js MODEL X.npy Y.npy: runs MODEL in onnxruntime (npm
// onnxruntime-node, the test peer) on X and writes its first output to Y.
const path = require('path');
const ort = require(path.join(__dirname, '..', '..', 'node_modules', 'onnxruntime-node'));
const npy = require(path.join(__dirname, '..', '..', 'bench', 'npy.js'));

(async () => {
  const [model, xPath, yPath] = process.argv.slice(2);
  const x = npy.readNpy(xPath);
  const session = await ort.InferenceSession.create(model, {intraOpNumThreads: 1});
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor('float32', x.data, x.dims);
  const out = (await session.run(feeds))[session.outputNames[0]];
  npy.writeNpy(yPath, out.data, out.dims.map(Number));
})().catch((e) => {
  console.error(`ort_run: ${e.message}`);
  process.exit(1);
});
