'use strict';
// Keras Applications backbones (include_top=False, pooling=None, channels_last)
// rebuilt with TensorFlow.js's Keras implementation (@tensorflow/tfjs-layers).
//
// The builders below are transcribed from Keras' own source
// (keras/applications/xception.py, inception_resnet_v2.py, nasnet.py and
// imagenet_utils.py::correct_pad): same order of layer creation, same
// explicit names, same padding/strides/use_bias/BatchNormalization arguments.
//
// Every layer gets an explicit name. Where Keras gives none, the name is the
// one Keras generated for the published weight files: snake_case of the class
// name + "_" + a per-class counter starting at 1, counted over the unnamed
// layers of one model build in the order they are constructed
// (conv2d_1, batch_normalization_1, activation_1, add_1, ...).

const tf = require('@tensorflow/tfjs-core');
const tfl = require('@tensorflow/tfjs-layers');

// ---------------------------------------------------------------------------
// Keras Lambda(lambda inputs, scale: inputs[0] + inputs[1] * scale)
// as used by InceptionResNetV2's inception_resnet_block.
class ScaledResidual extends tfl.layers.Layer {
  constructor(config) {
    super(config);
    this.scale = config.scale;
  }

  computeOutputShape(inputShape) {
    // output_shape=K.int_shape(x)[1:], i.e. the shape of inputs[0].
    return inputShape[0];
  }

  call(inputs) {
    return tf.tidy(() => {
      const a = Array.isArray(inputs) ? inputs[0] : inputs;
      const b = inputs[1];
      return tf.add(a, tf.mul(b, tf.scalar(this.scale, 'float32')));
    });
  }

  getConfig() {
    return Object.assign({}, super.getConfig(), {scale: this.scale});
  }
}
// Reported under Keras' class name for this layer.
ScaledResidual.className = 'Lambda';
tf.serialization.registerClass(ScaledResidual);

// ---------------------------------------------------------------------------
// A Keras-like layer namespace for one model build. Arguments follow Keras'
// names and defaults; unnamed layers get the Keras auto-generated names.
function kerasLayers() {
  const counters = new Map();
  const autoName = (prefix, name) => {
    if (name !== undefined && name !== null) return name;
    const n = (counters.get(prefix) || 0) + 1;
    counters.set(prefix, n);
    return `${prefix}_${n}`;
  };
  const pair = (v) => (Array.isArray(v) ? v.slice() : [v, v]);

  const L = {
    Input({shape, name}) {
      return tfl.input({shape, name: autoName('input', name), dtype: 'float32'});
    },

    Conv2D(filters, kernel_size,
           {strides = [1, 1], padding = 'valid', use_bias = true, name} = {}) {
      return tfl.layers.conv2d({
        filters,
        kernelSize: pair(kernel_size),
        strides: pair(strides),
        padding,
        dataFormat: 'channelsLast',
        useBias: use_bias,
        name: autoName('conv2d', name),
      });
    },

    SeparableConv2D(filters, kernel_size,
                    {strides = [1, 1], padding = 'valid', use_bias = true,
                     name} = {}) {
      return tfl.layers.separableConv2d({
        filters,
        kernelSize: pair(kernel_size),
        strides: pair(strides),
        padding,
        dataFormat: 'channelsLast',
        depthMultiplier: 1,
        useBias: use_bias,
        name: autoName('separable_conv2d', name),
      });
    },

    BatchNormalization({axis = -1, momentum = 0.99, epsilon = 1e-3,
                        center = true, scale = true, name} = {}) {
      return tfl.layers.batchNormalization({
        axis, momentum, epsilon, center, scale,
        name: autoName('batch_normalization', name),
      });
    },

    Activation(activation, {name} = {}) {
      return tfl.layers.activation({activation, name: autoName('activation', name)});
    },

    MaxPooling2D(pool_size, {strides = null, padding = 'valid', name} = {}) {
      return tfl.layers.maxPooling2d({
        poolSize: pair(pool_size),
        strides: pair(strides === null ? pool_size : strides),
        padding,
        dataFormat: 'channelsLast',
        name: autoName('max_pooling2d', name),
      });
    },

    AveragePooling2D(pool_size, {strides = null, padding = 'valid', name} = {}) {
      return tfl.layers.averagePooling2d({
        poolSize: pair(pool_size),
        strides: pair(strides === null ? pool_size : strides),
        padding,
        dataFormat: 'channelsLast',
        name: autoName('average_pooling2d', name),
      });
    },

    ZeroPadding2D({padding, name} = {}) {
      return tfl.layers.zeroPadding2d({
        padding, dataFormat: 'channelsLast', name: autoName('zero_padding2d', name),
      });
    },

    Cropping2D({cropping, name} = {}) {
      return tfl.layers.cropping2D({
        cropping, dataFormat: 'channelsLast', name: autoName('cropping2d', name),
      });
    },

    Concatenate({axis = -1, name} = {}) {
      return tfl.layers.concatenate({axis, name: autoName('concatenate', name)});
    },

    Add({name} = {}) {
      return tfl.layers.add({name: autoName('add', name)});
    },

    Lambda({scale, name}) {
      return new ScaledResidual({scale, name: autoName('lambda', name)});
    },

    // Functional helpers: layers.add([...]) / layers.concatenate([...])
    // construct an Add / Concatenate layer at that point.
    add(inputs, {name} = {}) {
      return L.Add({name}).apply(inputs);
    },
    concatenate(inputs, {axis = -1, name} = {}) {
      return L.Concatenate({axis, name}).apply(inputs);
    },
  };
  return L;
}

// backend.int_shape
function intShape(x) {
  return x.shape.slice();
}

// keras/applications/imagenet_utils.py::correct_pad (channels_last)
function correctPad(inputs, kernel_size) {
  const img_dim = 1;
  const input_size = intShape(inputs).slice(img_dim, img_dim + 2);
  if (!Array.isArray(kernel_size)) kernel_size = [kernel_size, kernel_size];
  let adjust;
  if (input_size[0] === null) {
    adjust = [1, 1];
  } else {
    adjust = [1 - (input_size[0] % 2), 1 - (input_size[1] % 2)];
  }
  const correct = [Math.floor(kernel_size[0] / 2), Math.floor(kernel_size[1] / 2)];
  return [[correct[0] - adjust[0], correct[0]],
          [correct[1] - adjust[1], correct[1]]];
}

function sameTuple(a, b) {
  a = Array.isArray(a) ? a : [a, a];
  b = Array.isArray(b) ? b : [b, b];
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

// ===========================================================================
// Xception (keras/applications/xception.py)
function Xception(input_shape) {
  const layers = kerasLayers();
  const img_input = layers.Input({shape: input_shape});
  const channel_axis = -1;

  let x = layers.Conv2D(32, [3, 3], {strides: [2, 2], use_bias: false,
                                     name: 'block1_conv1'}).apply(img_input);
  x = layers.BatchNormalization({axis: channel_axis, name: 'block1_conv1_bn'}).apply(x);
  x = layers.Activation('relu', {name: 'block1_conv1_act'}).apply(x);
  x = layers.Conv2D(64, [3, 3], {use_bias: false, name: 'block1_conv2'}).apply(x);
  x = layers.BatchNormalization({axis: channel_axis, name: 'block1_conv2_bn'}).apply(x);
  x = layers.Activation('relu', {name: 'block1_conv2_act'}).apply(x);

  let residual = layers.Conv2D(128, [1, 1], {strides: [2, 2], padding: 'same',
                                             use_bias: false}).apply(x);
  residual = layers.BatchNormalization({axis: channel_axis}).apply(residual);

  x = layers.SeparableConv2D(128, [3, 3], {padding: 'same', use_bias: false,
                                           name: 'block2_sepconv1'}).apply(x);
  x = layers.BatchNormalization({axis: channel_axis, name: 'block2_sepconv1_bn'}).apply(x);
  x = layers.Activation('relu', {name: 'block2_sepconv2_act'}).apply(x);
  x = layers.SeparableConv2D(128, [3, 3], {padding: 'same', use_bias: false,
                                           name: 'block2_sepconv2'}).apply(x);
  x = layers.BatchNormalization({axis: channel_axis, name: 'block2_sepconv2_bn'}).apply(x);

  x = layers.MaxPooling2D([3, 3], {strides: [2, 2], padding: 'same',
                                   name: 'block2_pool'}).apply(x);
  x = layers.add([x, residual]);

  residual = layers.Conv2D(256, [1, 1], {strides: [2, 2], padding: 'same',
                                         use_bias: false}).apply(x);
  residual = layers.BatchNormalization({axis: channel_axis}).apply(residual);

  x = layers.Activation('relu', {name: 'block3_sepconv1_act'}).apply(x);
  x = layers.SeparableConv2D(256, [3, 3], {padding: 'same', use_bias: false,
                                           name: 'block3_sepconv1'}).apply(x);
  x = layers.BatchNormalization({axis: channel_axis, name: 'block3_sepconv1_bn'}).apply(x);
  x = layers.Activation('relu', {name: 'block3_sepconv2_act'}).apply(x);
  x = layers.SeparableConv2D(256, [3, 3], {padding: 'same', use_bias: false,
                                           name: 'block3_sepconv2'}).apply(x);
  x = layers.BatchNormalization({axis: channel_axis, name: 'block3_sepconv2_bn'}).apply(x);

  x = layers.MaxPooling2D([3, 3], {strides: [2, 2], padding: 'same',
                                   name: 'block3_pool'}).apply(x);
  x = layers.add([x, residual]);

  residual = layers.Conv2D(728, [1, 1], {strides: [2, 2], padding: 'same',
                                         use_bias: false}).apply(x);
  residual = layers.BatchNormalization({axis: channel_axis}).apply(residual);

  x = layers.Activation('relu', {name: 'block4_sepconv1_act'}).apply(x);
  x = layers.SeparableConv2D(728, [3, 3], {padding: 'same', use_bias: false,
                                           name: 'block4_sepconv1'}).apply(x);
  x = layers.BatchNormalization({axis: channel_axis, name: 'block4_sepconv1_bn'}).apply(x);
  x = layers.Activation('relu', {name: 'block4_sepconv2_act'}).apply(x);
  x = layers.SeparableConv2D(728, [3, 3], {padding: 'same', use_bias: false,
                                           name: 'block4_sepconv2'}).apply(x);
  x = layers.BatchNormalization({axis: channel_axis, name: 'block4_sepconv2_bn'}).apply(x);

  x = layers.MaxPooling2D([3, 3], {strides: [2, 2], padding: 'same',
                                   name: 'block4_pool'}).apply(x);
  x = layers.add([x, residual]);

  for (let i = 0; i < 8; i++) {
    residual = x;
    const prefix = 'block' + String(i + 5);

    x = layers.Activation('relu', {name: prefix + '_sepconv1_act'}).apply(x);
    x = layers.SeparableConv2D(728, [3, 3], {padding: 'same', use_bias: false,
                                             name: prefix + '_sepconv1'}).apply(x);
    x = layers.BatchNormalization({axis: channel_axis,
                                   name: prefix + '_sepconv1_bn'}).apply(x);
    x = layers.Activation('relu', {name: prefix + '_sepconv2_act'}).apply(x);
    x = layers.SeparableConv2D(728, [3, 3], {padding: 'same', use_bias: false,
                                             name: prefix + '_sepconv2'}).apply(x);
    x = layers.BatchNormalization({axis: channel_axis,
                                   name: prefix + '_sepconv2_bn'}).apply(x);
    x = layers.Activation('relu', {name: prefix + '_sepconv3_act'}).apply(x);
    x = layers.SeparableConv2D(728, [3, 3], {padding: 'same', use_bias: false,
                                             name: prefix + '_sepconv3'}).apply(x);
    x = layers.BatchNormalization({axis: channel_axis,
                                   name: prefix + '_sepconv3_bn'}).apply(x);

    x = layers.add([x, residual]);
  }

  residual = layers.Conv2D(1024, [1, 1], {strides: [2, 2], padding: 'same',
                                          use_bias: false}).apply(x);
  residual = layers.BatchNormalization({axis: channel_axis}).apply(residual);

  x = layers.Activation('relu', {name: 'block13_sepconv1_act'}).apply(x);
  x = layers.SeparableConv2D(728, [3, 3], {padding: 'same', use_bias: false,
                                           name: 'block13_sepconv1'}).apply(x);
  x = layers.BatchNormalization({axis: channel_axis, name: 'block13_sepconv1_bn'}).apply(x);
  x = layers.Activation('relu', {name: 'block13_sepconv2_act'}).apply(x);
  x = layers.SeparableConv2D(1024, [3, 3], {padding: 'same', use_bias: false,
                                            name: 'block13_sepconv2'}).apply(x);
  x = layers.BatchNormalization({axis: channel_axis, name: 'block13_sepconv2_bn'}).apply(x);

  x = layers.MaxPooling2D([3, 3], {strides: [2, 2], padding: 'same',
                                   name: 'block13_pool'}).apply(x);
  x = layers.add([x, residual]);

  x = layers.SeparableConv2D(1536, [3, 3], {padding: 'same', use_bias: false,
                                            name: 'block14_sepconv1'}).apply(x);
  x = layers.BatchNormalization({axis: channel_axis, name: 'block14_sepconv1_bn'}).apply(x);
  x = layers.Activation('relu', {name: 'block14_sepconv1_act'}).apply(x);

  x = layers.SeparableConv2D(2048, [3, 3], {padding: 'same', use_bias: false,
                                            name: 'block14_sepconv2'}).apply(x);
  x = layers.BatchNormalization({axis: channel_axis, name: 'block14_sepconv2_bn'}).apply(x);
  x = layers.Activation('relu', {name: 'block14_sepconv2_act'}).apply(x);

  // include_top=False, pooling=None: no head.
  return tfl.model({inputs: img_input, outputs: x, name: 'xception'});
}

// ===========================================================================
// InceptionResNetV2 (keras/applications/inception_resnet_v2.py)
function InceptionResNetV2(input_shape) {
  const layers = kerasLayers();

  function conv2d_bn(x, filters, kernel_size,
                     {strides = 1, padding = 'same', activation = 'relu',
                      use_bias = false, name = null} = {}) {
    x = layers.Conv2D(filters, kernel_size, {strides, padding, use_bias, name}).apply(x);
    if (!use_bias) {
      const bn_axis = 3;
      const bn_name = name === null ? null : name + '_bn';
      x = layers.BatchNormalization({axis: bn_axis, scale: false, name: bn_name}).apply(x);
    }
    if (activation !== null) {
      const ac_name = name === null ? null : name + '_ac';
      x = layers.Activation(activation, {name: ac_name}).apply(x);
    }
    return x;
  }

  function inception_resnet_block(x, scale, block_type, block_idx,
                                  activation = 'relu') {
    let branches;
    if (block_type === 'block35') {
      const branch_0 = conv2d_bn(x, 32, 1);
      let branch_1 = conv2d_bn(x, 32, 1);
      branch_1 = conv2d_bn(branch_1, 32, 3);
      let branch_2 = conv2d_bn(x, 32, 1);
      branch_2 = conv2d_bn(branch_2, 48, 3);
      branch_2 = conv2d_bn(branch_2, 64, 3);
      branches = [branch_0, branch_1, branch_2];
    } else if (block_type === 'block17') {
      const branch_0 = conv2d_bn(x, 192, 1);
      let branch_1 = conv2d_bn(x, 128, 1);
      branch_1 = conv2d_bn(branch_1, 160, [1, 7]);
      branch_1 = conv2d_bn(branch_1, 192, [7, 1]);
      branches = [branch_0, branch_1];
    } else if (block_type === 'block8') {
      const branch_0 = conv2d_bn(x, 192, 1);
      let branch_1 = conv2d_bn(x, 192, 1);
      branch_1 = conv2d_bn(branch_1, 224, [1, 3]);
      branch_1 = conv2d_bn(branch_1, 256, [3, 1]);
      branches = [branch_0, branch_1];
    } else {
      throw new Error('Unknown Inception-ResNet block type: ' + block_type);
    }

    const block_name = block_type + '_' + String(block_idx);
    const channel_axis = 3;
    const mixed = layers.Concatenate({axis: channel_axis,
                                      name: block_name + '_mixed'}).apply(branches);
    const up = conv2d_bn(mixed, intShape(x)[channel_axis], 1,
                         {activation: null, use_bias: true, name: block_name + '_conv'});

    x = layers.Lambda({scale, name: block_name}).apply([x, up]);
    if (activation !== null) {
      x = layers.Activation(activation, {name: block_name + '_ac'}).apply(x);
    }
    return x;
  }

  const img_input = layers.Input({shape: input_shape});

  // Stem block: 35 x 35 x 192
  let x = conv2d_bn(img_input, 32, 3, {strides: 2, padding: 'valid'});
  x = conv2d_bn(x, 32, 3, {padding: 'valid'});
  x = conv2d_bn(x, 64, 3);
  x = layers.MaxPooling2D(3, {strides: 2}).apply(x);
  x = conv2d_bn(x, 80, 1, {padding: 'valid'});
  x = conv2d_bn(x, 192, 3, {padding: 'valid'});
  x = layers.MaxPooling2D(3, {strides: 2}).apply(x);

  // Mixed 5b (Inception-A block): 35 x 35 x 320
  let branch_0 = conv2d_bn(x, 96, 1);
  let branch_1 = conv2d_bn(x, 48, 1);
  branch_1 = conv2d_bn(branch_1, 64, 5);
  let branch_2 = conv2d_bn(x, 64, 1);
  branch_2 = conv2d_bn(branch_2, 96, 3);
  branch_2 = conv2d_bn(branch_2, 96, 3);
  let branch_pool = layers.AveragePooling2D(3, {strides: 1, padding: 'same'}).apply(x);
  branch_pool = conv2d_bn(branch_pool, 64, 1);
  let branches = [branch_0, branch_1, branch_2, branch_pool];
  const channel_axis = 3;
  x = layers.Concatenate({axis: channel_axis, name: 'mixed_5b'}).apply(branches);

  // 10x block35 (Inception-ResNet-A block): 35 x 35 x 320
  for (let block_idx = 1; block_idx < 11; block_idx++) {
    x = inception_resnet_block(x, 0.17, 'block35', block_idx);
  }

  // Mixed 6a (Reduction-A block): 17 x 17 x 1088
  branch_0 = conv2d_bn(x, 384, 3, {strides: 2, padding: 'valid'});
  branch_1 = conv2d_bn(x, 256, 1);
  branch_1 = conv2d_bn(branch_1, 256, 3);
  branch_1 = conv2d_bn(branch_1, 384, 3, {strides: 2, padding: 'valid'});
  branch_pool = layers.MaxPooling2D(3, {strides: 2, padding: 'valid'}).apply(x);
  branches = [branch_0, branch_1, branch_pool];
  x = layers.Concatenate({axis: channel_axis, name: 'mixed_6a'}).apply(branches);

  // 20x block17 (Inception-ResNet-B block): 17 x 17 x 1088
  for (let block_idx = 1; block_idx < 21; block_idx++) {
    x = inception_resnet_block(x, 0.1, 'block17', block_idx);
  }

  // Mixed 7a (Reduction-B block): 8 x 8 x 2080
  branch_0 = conv2d_bn(x, 256, 1);
  branch_0 = conv2d_bn(branch_0, 384, 3, {strides: 2, padding: 'valid'});
  branch_1 = conv2d_bn(x, 256, 1);
  branch_1 = conv2d_bn(branch_1, 288, 3, {strides: 2, padding: 'valid'});
  branch_2 = conv2d_bn(x, 256, 1);
  branch_2 = conv2d_bn(branch_2, 288, 3);
  branch_2 = conv2d_bn(branch_2, 320, 3, {strides: 2, padding: 'valid'});
  branch_pool = layers.MaxPooling2D(3, {strides: 2, padding: 'valid'}).apply(x);
  branches = [branch_0, branch_1, branch_2, branch_pool];
  x = layers.Concatenate({axis: channel_axis, name: 'mixed_7a'}).apply(branches);

  // 10x block8 (Inception-ResNet-C block): 8 x 8 x 2080
  for (let block_idx = 1; block_idx < 10; block_idx++) {
    x = inception_resnet_block(x, 0.2, 'block8', block_idx);
  }
  x = inception_resnet_block(x, 1.0, 'block8', 10, null);

  // Final convolution block: 8 x 8 x 1536
  x = conv2d_bn(x, 1536, 1, {name: 'conv_7b'});

  // include_top=False, pooling=None: no head.
  return tfl.model({inputs: img_input, outputs: x, name: 'inception_resnet_v2'});
}

// ===========================================================================
// NASNet (keras/applications/nasnet.py)
function NASNet(input_shape, {penultimate_filters = 4032, num_blocks = 6,
                              stem_block_filters = 96, skip_reduction = true,
                              filter_multiplier = 2, name = 'NASNet'} = {}) {
  const layers = kerasLayers();
  const channel_dim = -1;

  function _separable_conv_block(ip, filters,
                                 {kernel_size = [3, 3], strides = [1, 1],
                                  block_id = null} = {}) {
    let x = layers.Activation('relu').apply(ip);
    let conv_pad;
    if (sameTuple(strides, [2, 2])) {
      x = layers.ZeroPadding2D({padding: correctPad(x, kernel_size),
                                name: `separable_conv_1_pad_${block_id}`}).apply(x);
      conv_pad = 'valid';
    } else {
      conv_pad = 'same';
    }
    x = layers.SeparableConv2D(filters, kernel_size, {
      strides, name: `separable_conv_1_${block_id}`, padding: conv_pad,
      use_bias: false}).apply(x);
    x = layers.BatchNormalization({axis: channel_dim, momentum: 0.9997, epsilon: 1e-3,
                                   name: `separable_conv_1_bn_${block_id}`}).apply(x);
    x = layers.Activation('relu').apply(x);
    x = layers.SeparableConv2D(filters, kernel_size, {
      name: `separable_conv_2_${block_id}`, padding: 'same',
      use_bias: false}).apply(x);
    x = layers.BatchNormalization({axis: channel_dim, momentum: 0.9997, epsilon: 1e-3,
                                   name: `separable_conv_2_bn_${block_id}`}).apply(x);
    return x;
  }

  function _adjust_block(p, ip, filters, block_id = null) {
    const img_dim = -2;  // as in Keras: compares widths (channels_last)
    const at = (shape, i) => shape[i < 0 ? shape.length + i : i];

    const ip_shape = intShape(ip);
    let p_shape;
    if (p !== null) p_shape = intShape(p);

    if (p === null) {
      p = ip;
    } else if (at(p_shape, img_dim) !== at(ip_shape, img_dim)) {
      p = layers.Activation('relu', {name: `adjust_relu_1_${block_id}`}).apply(p);
      let p1 = layers.AveragePooling2D([1, 1], {strides: [2, 2], padding: 'valid',
                                                name: `adjust_avg_pool_1_${block_id}`}).apply(p);
      p1 = layers.Conv2D(Math.floor(filters / 2), [1, 1], {
        padding: 'same', use_bias: false, name: `adjust_conv_1_${block_id}`}).apply(p1);

      let p2 = layers.ZeroPadding2D({padding: [[0, 1], [0, 1]]}).apply(p);
      p2 = layers.Cropping2D({cropping: [[1, 0], [1, 0]]}).apply(p2);
      p2 = layers.AveragePooling2D([1, 1], {strides: [2, 2], padding: 'valid',
                                            name: `adjust_avg_pool_2_${block_id}`}).apply(p2);
      p2 = layers.Conv2D(Math.floor(filters / 2), [1, 1], {
        padding: 'same', use_bias: false, name: `adjust_conv_2_${block_id}`}).apply(p2);

      p = layers.concatenate([p1, p2], {axis: channel_dim});
      p = layers.BatchNormalization({axis: channel_dim, momentum: 0.9997, epsilon: 1e-3,
                                     name: `adjust_bn_${block_id}`}).apply(p);
    } else if (at(p_shape, channel_dim) !== filters) {
      p = layers.Activation('relu').apply(p);
      p = layers.Conv2D(filters, [1, 1], {
        strides: [1, 1], padding: 'same', name: `adjust_conv_projection_${block_id}`,
        use_bias: false}).apply(p);
      p = layers.BatchNormalization({axis: channel_dim, momentum: 0.9997, epsilon: 1e-3,
                                     name: `adjust_bn_${block_id}`}).apply(p);
    }
    return p;
  }

  function _normal_a_cell(ip, p, filters, block_id = null) {
    p = _adjust_block(p, ip, filters, block_id);

    let h = layers.Activation('relu').apply(ip);
    h = layers.Conv2D(filters, [1, 1], {
      strides: [1, 1], padding: 'same', name: `normal_conv_1_${block_id}`,
      use_bias: false}).apply(h);
    h = layers.BatchNormalization({axis: channel_dim, momentum: 0.9997, epsilon: 1e-3,
                                   name: `normal_bn_1_${block_id}`}).apply(h);

    // block_1
    const x1_1 = _separable_conv_block(h, filters, {kernel_size: [5, 5],
                                                    block_id: `normal_left1_${block_id}`});
    const x1_2 = _separable_conv_block(p, filters, {block_id: `normal_right1_${block_id}`});
    const x1 = layers.add([x1_1, x1_2], {name: `normal_add_1_${block_id}`});

    // block_2
    const x2_1 = _separable_conv_block(p, filters, {kernel_size: [5, 5],
                                                    block_id: `normal_left2_${block_id}`});
    const x2_2 = _separable_conv_block(p, filters, {kernel_size: [3, 3],
                                                    block_id: `normal_right2_${block_id}`});
    const x2 = layers.add([x2_1, x2_2], {name: `normal_add_2_${block_id}`});

    // block_3
    let x3 = layers.AveragePooling2D([3, 3], {strides: [1, 1], padding: 'same',
                                              name: `normal_left3_${block_id}`}).apply(h);
    x3 = layers.add([x3, p], {name: `normal_add_3_${block_id}`});

    // block_4
    const x4_1 = layers.AveragePooling2D([3, 3], {strides: [1, 1], padding: 'same',
                                                  name: `normal_left4_${block_id}`}).apply(p);
    const x4_2 = layers.AveragePooling2D([3, 3], {strides: [1, 1], padding: 'same',
                                                  name: `normal_right4_${block_id}`}).apply(p);
    const x4 = layers.add([x4_1, x4_2], {name: `normal_add_4_${block_id}`});

    // block_5
    let x5 = _separable_conv_block(h, filters, {block_id: `normal_left5_${block_id}`});
    x5 = layers.add([x5, h], {name: `normal_add_5_${block_id}`});

    const x = layers.concatenate([p, x1, x2, x3, x4, x5],
                                 {axis: channel_dim, name: `normal_concat_${block_id}`});
    return [x, ip];
  }

  function _reduction_a_cell(ip, p, filters, block_id = null) {
    p = _adjust_block(p, ip, filters, block_id);

    let h = layers.Activation('relu').apply(ip);
    h = layers.Conv2D(filters, [1, 1], {
      strides: [1, 1], padding: 'same', name: `reduction_conv_1_${block_id}`,
      use_bias: false}).apply(h);
    h = layers.BatchNormalization({axis: channel_dim, momentum: 0.9997, epsilon: 1e-3,
                                   name: `reduction_bn_1_${block_id}`}).apply(h);
    const h3 = layers.ZeroPadding2D({padding: correctPad(h, 3),
                                     name: `reduction_pad_1_${block_id}`}).apply(h);

    // block_1
    const x1_1 = _separable_conv_block(h, filters, {
      kernel_size: [5, 5], strides: [2, 2], block_id: `reduction_left1_${block_id}`});
    const x1_2 = _separable_conv_block(p, filters, {
      kernel_size: [7, 7], strides: [2, 2], block_id: `reduction_right1_${block_id}`});
    const x1 = layers.add([x1_1, x1_2], {name: `reduction_add_1_${block_id}`});

    // block_2
    const x2_1 = layers.MaxPooling2D([3, 3], {strides: [2, 2], padding: 'valid',
                                              name: `reduction_left2_${block_id}`}).apply(h3);
    const x2_2 = _separable_conv_block(p, filters, {
      kernel_size: [7, 7], strides: [2, 2], block_id: `reduction_right2_${block_id}`});
    const x2 = layers.add([x2_1, x2_2], {name: `reduction_add_2_${block_id}`});

    // block_3
    const x3_1 = layers.AveragePooling2D([3, 3], {strides: [2, 2], padding: 'valid',
                                                  name: `reduction_left3_${block_id}`}).apply(h3);
    const x3_2 = _separable_conv_block(p, filters, {
      kernel_size: [5, 5], strides: [2, 2], block_id: `reduction_right3_${block_id}`});
    const x3 = layers.add([x3_1, x3_2], {name: `reduction_add3_${block_id}`});

    // block_4
    let x4 = layers.AveragePooling2D([3, 3], {strides: [1, 1], padding: 'same',
                                              name: `reduction_left4_${block_id}`}).apply(x1);
    x4 = layers.add([x2, x4]);

    // block_5
    const x5_1 = _separable_conv_block(x1, filters, {
      kernel_size: [3, 3], block_id: `reduction_left4_${block_id}`});
    const x5_2 = layers.MaxPooling2D([3, 3], {strides: [2, 2], padding: 'valid',
                                              name: `reduction_right5_${block_id}`}).apply(h3);
    const x5 = layers.add([x5_1, x5_2], {name: `reduction_add4_${block_id}`});

    const x = layers.concatenate([x2, x3, x4, x5],
                                 {axis: channel_dim, name: `reduction_concat_${block_id}`});
    return [x, ip];
  }

  const img_input = layers.Input({shape: input_shape});

  if (penultimate_filters % (24 * (filter_multiplier ** 2)) !== 0) {
    throw new Error('penultimate_filters must be a multiple of 24 * filter_multiplier**2');
  }

  const filters = Math.floor(penultimate_filters / 24);

  let x = layers.Conv2D(stem_block_filters, [3, 3], {
    strides: [2, 2], padding: 'valid', use_bias: false, name: 'stem_conv1'}).apply(img_input);

  x = layers.BatchNormalization({axis: channel_dim, momentum: 0.9997, epsilon: 1e-3,
                                 name: 'stem_bn1'}).apply(x);

  let p = null;
  let p0;
  [x, p] = _reduction_a_cell(x, p, Math.floor(filters / (filter_multiplier ** 2)), 'stem_1');
  [x, p] = _reduction_a_cell(x, p, Math.floor(filters / filter_multiplier), 'stem_2');

  for (let i = 0; i < num_blocks; i++) {
    [x, p] = _normal_a_cell(x, p, filters, `${i}`);
  }

  [x, p0] = _reduction_a_cell(x, p, filters * filter_multiplier, `reduce_${num_blocks}`);

  p = !skip_reduction ? p0 : p;

  for (let i = 0; i < num_blocks; i++) {
    [x, p] = _normal_a_cell(x, p, filters * filter_multiplier, `${num_blocks + i + 1}`);
  }

  [x, p0] = _reduction_a_cell(x, p, filters * filter_multiplier ** 2,
                              `reduce_${2 * num_blocks}`);

  p = !skip_reduction ? p0 : p;

  for (let i = 0; i < num_blocks; i++) {
    [x, p] = _normal_a_cell(x, p, filters * filter_multiplier ** 2,
                            `${2 * num_blocks + i + 1}`);
  }

  x = layers.Activation('relu').apply(x);

  // include_top=False, pooling=None: no head.
  return tfl.model({inputs: img_input, outputs: x, name});
}

function NASNetMobile(input_shape) {
  return NASNet(input_shape, {
    penultimate_filters: 1056,
    num_blocks: 4,
    stem_block_filters: 32,
    skip_reduction: false,
    filter_multiplier: 2,
    name: 'NASNet',
  });
}

module.exports = {
  Xception,
  InceptionResNetV2,
  NASNetMobile,
  NASNet,
  ScaledResidual,
  correctPad,
};
