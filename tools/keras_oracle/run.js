'use strict';
// Reference outputs of Keras Applications backbones (Xception,
// InceptionResNetV2, NASNetMobile; include_top=False, pooling=None) computed
// with TensorFlow.js's Keras implementation on the CPU backend, from
// deterministic weights and inputs (see README.md for the formula).
//
// Usage: node run.js [output_dir] [model ...]
//   output_dir defaults to tests/data/keras_oracle in the repository.
//   model: xception | inception_resnet_v2 | nasnet_mobile (default: all).

const fs = require('fs');
const path = require('path');

const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const apps = require('./keras_apps');

// ---------------------------------------------------------------------------
// Deterministic values.

// 32-bit FNV-1a of the UTF-8 bytes of s.
function seedOf(s) {
  let h = 0x811C9DC5;
  for (const byte of Buffer.from(s, 'utf8')) {
    h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

// Element i of the stream with the given seed, a double in [-1, 1).
function unitValue(seed, i) {
  let x = (seed + Math.imul(i, 0x9E3779B1)) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x85EBCA6B) >>> 0;
  x = (x ^ (x >>> 13)) >>> 0;
  x = Math.imul(x, 0xC2B2AE35) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return x / 4294967296 * 2 - 1;
}

const prod = (a) => a.reduce((p, v) => p * v, 1);

// value = fround(f(u)) per weight name.
function weightTransform(weightName, shape) {
  switch (weightName) {
    case 'kernel':
    case 'pointwise_kernel': {
      const fanIn = prod(shape.slice(0, -1));
      const s = Math.sqrt(6 / fanIn);
      return (u) => u * s;
    }
    case 'depthwise_kernel': {
      const s = Math.sqrt(6 / (shape[0] * shape[1]));
      return (u) => u * s;
    }
    case 'bias':
    case 'beta':
    case 'moving_mean':
      return (u) => 0.1 * u;
    case 'gamma':
      return (u) => 1 + 0.2 * u;
    case 'moving_variance':
      return (u) => 1 + 0.5 * u;
    default:
      throw new Error('unknown weight name ' + weightName);
  }
}

function makeValues(key, shape, transform) {
  const n = prod(shape);
  const out = new Float32Array(n);  // storing rounds to float32 (Math.fround)
  const seed = seedOf(key);
  for (let i = 0; i < n; i++) out[i] = Math.fround(transform(unitValue(seed, i)));
  return out;
}

function makeWeight(layerName, weightName, shape) {
  return makeValues(`${layerName}/${weightName}`, shape, weightTransform(weightName, shape));
}

function makeInput(shape) {
  return makeValues('input', shape, (u) => u);
}

// ---------------------------------------------------------------------------
// Weights: expected weight names per class, in Keras order.

function expectedWeightNames(layer) {
  const cls = layer.getClassName();
  const c = layer.getConfig();
  switch (cls) {
    case 'Conv2D':
      return c.useBias ? ['kernel', 'bias'] : ['kernel'];
    case 'SeparableConv2D':
      return c.useBias ? ['depthwise_kernel', 'pointwise_kernel', 'bias']
                       : ['depthwise_kernel', 'pointwise_kernel'];
    case 'BatchNormalization':
      return [].concat(c.scale ? ['gamma'] : [], c.center ? ['beta'] : [],
                       ['moving_mean', 'moving_variance']);
    default:
      return [];
  }
}

// Sets every weight of every layer; returns the manifest and parameter count.
function setAllWeights(model) {
  const manifest = [];
  let total = 0;
  for (const layer of model.layers) {
    const vars = layer.weights;
    const names = vars.map((v) => {
      const full = v.originalName;
      const slash = full.lastIndexOf('/');
      const prefix = full.slice(0, slash);
      if (prefix !== layer.name) {
        throw new Error(`weight ${full} does not belong to layer ${layer.name}`);
      }
      return full.slice(slash + 1);
    });
    const expected = expectedWeightNames(layer);
    if (names.join(',') !== expected.join(',')) {
      throw new Error(`layer ${layer.name} (${layer.getClassName()}): weights ` +
                      `[${names}] but expected [${expected}]`);
    }
    const entries = [];
    if (vars.length > 0) {
      const generated = [];
      const tensors = vars.map((v, k) => {
        const shape = v.shape.slice();
        const values = makeWeight(layer.name, names[k], shape);
        generated.push(values);
        total += values.length;
        entries.push({name: names[k], shape});
        return tf.tensor(values, shape, 'float32');
      });
      layer.setWeights(tensors);  // checks count and shapes against tfjs' list
      tensors.forEach((t) => t.dispose());
      // Read back and compare a few elements.
      const back = layer.getWeights();
      if (back.length !== vars.length) throw new Error(`layer ${layer.name}: weight count`);
      back.forEach((t, k) => {
        if (t.shape.join(',') !== entries[k].shape.join(',')) {
          throw new Error(`layer ${layer.name}/${names[k]}: shape mismatch`);
        }
        const got = t.dataSync();
        const want = generated[k];
        for (const idx of [0, 1, got.length - 1]) {
          if (idx >= 0 && idx < got.length && got[idx] !== want[idx]) {
            throw new Error(`layer ${layer.name}/${names[k]}: value not set`);
          }
        }
      });
    }
    manifest.push({name: layer.name, class: layer.getClassName(), weights: entries});
  }
  if (model.weights.length !== manifest.reduce((a, l) => a + l.weights.length, 0)) {
    throw new Error('model weight list does not match the per-layer lists');
  }
  return {manifest, total};
}

// ---------------------------------------------------------------------------
// Structural checks against facts from the Keras models.

const EXPECTED_PARAMS = {
  xception: 20861480,
  inception_resnet_v2: 54336736,
  nasnet_mobile: 4269716,
};

const AUTO_PREFIXES = ['input', 'conv2d', 'separable_conv2d', 'batch_normalization',
                       'activation', 'add', 'concatenate', 'zero_padding2d',
                       'cropping2d', 'max_pooling2d', 'average_pooling2d', 'lambda'];

function autoNamed(manifest) {
  const byPrefix = {};
  for (const l of manifest) {
    const m = /^([a-z0-9_]+?)_(\d+)$/.exec(l.name);
    if (!m || !AUTO_PREFIXES.includes(m[1])) continue;
    (byPrefix[m[1]] = byPrefix[m[1]] || []).push({index: Number(m[2]), layer: l});
  }
  return byPrefix;
}

function check(cond, msg) {
  if (!cond) throw new Error('check failed: ' + msg);
}

function checkStructure(key, manifest, total) {
  check(total === EXPECTED_PARAMS[key],
        `${key}: ${total} parameters, Keras has ${EXPECTED_PARAMS[key]}`);
  const names = new Set(manifest.map((l) => l.name));
  check(names.size === manifest.length, `${key}: duplicate layer names`);
  const auto = autoNamed(manifest);
  // Each auto-named family must be numbered 1..n without gaps.
  const counts = {};
  for (const [prefix, list] of Object.entries(auto)) {
    const idx = list.map((e) => e.index).sort((a, b) => a - b);
    idx.forEach((v, i) => check(v === i + 1, `${key}: ${prefix} numbering has a gap`));
    counts[prefix] = idx.length;
  }
  const byName = new Map(manifest.map((l) => [l.name, l]));
  const kshape = (n) => byName.get(n).weights[0].shape.join('x');
  if (key === 'xception') {
    check(counts.conv2d === 4, 'xception: 4 auto-named Conv2D');
    check(counts.batch_normalization === 4, 'xception: 4 auto-named BatchNormalization');
    check(kshape('conv2d_1') === '1x1x64x128', 'xception: conv2d_1 64->128');
    check(kshape('conv2d_2') === '1x1x128x256', 'xception: conv2d_2 128->256');
    check(kshape('conv2d_3') === '1x1x256x728', 'xception: conv2d_3 256->728');
    check(kshape('conv2d_4') === '1x1x728x1024', 'xception: conv2d_4 728->1024');
  } else if (key === 'inception_resnet_v2') {
    check(counts.conv2d === 203, 'inception_resnet_v2: conv2d_1..conv2d_203');
    check(counts.batch_normalization === 203,
          'inception_resnet_v2: batch_normalization_1..203');
    check(kshape('conv2d_203') === '3x1x224x256',
          'inception_resnet_v2: conv2d_203 is the [3,1] 224->256 conv');
    check(byName.has('block8_10') && byName.get('block8_10').class === 'Lambda',
          'inception_resnet_v2: block8_10 Lambda');
  } else if (key === 'nasnet_mobile') {
    for (const list of Object.values(auto)) {
      for (const e of list) {
        check(e.layer.weights.length === 0,
              `nasnet_mobile: auto-named weighted layer ${e.layer.name}`);
      }
    }
    // Cell 5 follows reduce_4, so its previous path is spatially larger and
    // goes through the adjust_conv_1/2 branch; projections start at cell 6.
    // (adjust_conv_projection_5 exists in NASNetLarge, num_blocks=6.)
    for (const n of ['stem_conv1', 'stem_bn1', 'reduction_bn_1_stem_1',
                     'separable_conv_1_normal_left1_0', 'adjust_conv_1_5',
                     'adjust_conv_2_5', 'adjust_conv_projection_6',
                     'adjust_conv_projection_reduce_4', 'normal_conv_1_0']) {
      check(byName.has(n) && byName.get(n).weights.length > 0, `nasnet_mobile: ${n}`);
    }
  }
  return counts;
}

// ---------------------------------------------------------------------------

const MODELS = [
  {key: 'xception', build: apps.Xception, sizes: [71, 96]},
  {key: 'inception_resnet_v2', build: apps.InceptionResNetV2, sizes: [75, 107]},
  {key: 'nasnet_mobile', build: apps.NASNetMobile, sizes: [32, 47]},
];

function stats(values) {
  let sum = 0;
  let sq = 0;
  let maxAbs = 0;
  let finite = true;
  let nonzero = 0;
  for (const v of values) {
    if (!Number.isFinite(v)) finite = false;
    sum += v;
    sq += v * v;
    if (Math.abs(v) > maxAbs) maxAbs = Math.abs(v);
    if (v !== 0) nonzero++;
  }
  const n = values.length;
  const mean = sum / n;
  return {mean, std: Math.sqrt(Math.max(0, sq / n - mean * mean)), maxAbs, finite,
          nonzeroFraction: nonzero / n};
}

function writeF32LE(file, values) {
  const buf = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) buf.writeFloatLE(values[i], i * 4);
  fs.writeFileSync(file, buf);
}

function manifestJson(obj) {
  const head = JSON.stringify({model: obj.model, cases: obj.cases});
  const lines = obj.layers.map((l) => JSON.stringify(l));
  return head.slice(0, -1) + ',"layers":[\n' + lines.join(',\n') + '\n]}\n';
}

function bitsHex(f) {
  const b = Buffer.alloc(4);
  b.writeFloatLE(f, 0);
  return '0x' + b.readUInt32LE(0).toString(16).padStart(8, '0');
}

async function main() {
  const args = process.argv.slice(2);
  const outDir = path.resolve(args[0] || path.join(__dirname, '..', '..', 'tests', 'data',
                                                   'keras_oracle'));
  const only = args.slice(1);
  fs.mkdirSync(outDir, {recursive: true});

  await tf.setBackend('cpu');
  await tf.ready();
  console.log(`tfjs-core ${tf.version_core}, backend ${tf.getBackend()}`);

  let ok = true;
  const formulaCheck = {};
  for (const spec of MODELS) {
    if (only.length && !only.includes(spec.key)) continue;
    const cases = [];
    let layers = null;
    for (const size of spec.sizes) {
      const t0 = Date.now();
      const model = spec.build([size, size, 3]);
      const tBuilt = Date.now();
      const {manifest, total} = setAllWeights(model);
      const tWeights = Date.now();
      const counts = checkStructure(spec.key, manifest, total);

      if (spec.key === 'inception_resnet_v2' && size === spec.sizes[0]) {
        const first = makeWeight('conv2d_1', 'kernel', [3, 3, 3, 32]).slice(0, 4);
        console.log('  inception_resnet_v2 conv2d_1/kernel[0:4] = ' +
                    Array.from(first).map((v) => `${v} (${bitsHex(v)})`).join(', '));
        formulaCheck['conv2d_1/kernel'] = {shape: [3, 3, 3, 32], first: Array.from(first)};
        formulaCheck['input'] = {shape: [2, size, size, 3],
                                 first: Array.from(makeInput([2, size, size, 3]).slice(0, 4))};
      }

      const inputShape = [2, size, size, 3];
      const x = tf.tensor(makeInput(inputShape), inputShape, 'float32');
      const y = model.predict(x, {batchSize: 2});
      const outShape = y.shape.slice();
      const values = y.dataSync();
      const tPred = Date.now();

      const base = `${spec.key}_${size}`;
      writeF32LE(path.join(outDir, base + '.f32'), values);
      cases.push({input_shape: inputShape, output_shape: outShape, features: base + '.f32'});
      // The layer and weight list does not depend on the input size: one manifest per model.
      if (layers === null) layers = manifest;
      check(JSON.stringify(layers) === JSON.stringify(manifest), `${spec.key}: same layers at ${size}`);

      const s = stats(values);
      const autoSummary = Object.entries(counts).map(([k, v]) => `${k}:${v}`).join(' ');
      console.log(`${base}: ${manifest.length} layers, ${model.weights.length} weights, ` +
                  `${total} parameters`);
      console.log(`  auto-named: ${autoSummary}`);
      console.log(`  output ${JSON.stringify(outShape)} mean ${s.mean.toPrecision(6)} ` +
                  `std ${s.std.toPrecision(6)} max|x| ${s.maxAbs.toPrecision(6)} ` +
                  `nonzero ${(100 * s.nonzeroFraction).toFixed(1)}%`);
      console.log(`  time: build ${((tBuilt - t0) / 1000).toFixed(1)} s, weights ` +
                  `${((tWeights - tBuilt) / 1000).toFixed(1)} s, predict ` +
                  `${((tPred - tWeights) / 1000).toFixed(1)} s, total ` +
                  `${((tPred - t0) / 1000).toFixed(1)} s`);
      if (!s.finite) { console.log('  WARNING: non-finite output'); ok = false; }
      if (s.maxAbs === 0) { console.log('  WARNING: output is all zero'); ok = false; }
      if (s.maxAbs > 1e6) {
        // Not an error: the weight formula is fixed and this is what the graph
        // computes (e.g. Xception's unnormalised residual sums grow large).
        // Compare such outputs with a relative tolerance.
        console.log('  NOTE: output magnitude exceeds 1e6');
      }
      if (s.maxAbs < 1e-6) { console.log('  WARNING: output vanishes'); ok = false; }

      tf.dispose([x, y]);
      model.dispose();
    }
    fs.writeFileSync(path.join(outDir, spec.key + '.json'),
                     manifestJson({model: spec.key, cases, layers}));
  }
  if (Object.keys(formulaCheck).length) {
    fs.writeFileSync(path.join(outDir, 'formula_check.json'), JSON.stringify(formulaCheck) + '\n');
  }
  if (!ok) process.exitCode = 1;
}

module.exports = {seedOf, unitValue, makeWeight, makeInput};

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
