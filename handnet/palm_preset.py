"""The `palm` preset: MediaPipe's BlazePalm-lite network with handnet's heads.

BlazePalm (palm_detection_lite.tflite, Apache-2.0) learnt its features from far more people and
rooms than handnet's licence-clean sets hold. This preset is its network layer for layer: a 5x5
stride-2 stem, residual BlazeBlocks (5x5 depthwise + 1x1 convolution, added to the input, PReLU;
a stride-2 block adds a max-pooled, zero-padded shortcut) down to 1/32, and its feature pyramid
back up to 1/8 (bilinear upsampling, 1x1 convolution, PReLU, added to the 1/16 and 1/8 features,
two blocks each). Where BlazePalm puts its SSD box and score convolutions on the 1/8 features,
handnet puts one trainable block (`head`: 5x5 depthwise, 1x1 to 64, batch-norm, ReLU) and its
1x1 heatmap heads. Inputs are any multiple of 32 (192 x 256 by default: BlazePalm's 192 rows).

Config.backbone_weights names the .tflite (`../shared/anchors/palm_detection_lite.tflite`);
load_palm_weights copies every BlazePalm layer from it and freezes them, as the seed preset's
VGG16 blocks are. Without it the same network trains from scratch.
"""

from __future__ import annotations

import os

import keras
import numpy as np

# (stride of the stage, channels, BlazeBlocks at that stride after the one that enters it)
PALM_STAGES = ((2, 32, 3), (4, 64, 3), (8, 128, 3), (16, 256, 3), (32, 256, 3))
PYRAMID_BLOCKS = 2  # blocks after each upsampling merge (1/16, then 1/8)


@keras.saving.register_keras_serializable(package="handnet")
class ChannelPad(keras.layers.Layer):
    """Zeros appended to the channels, up to `channels`: a stride-2 BlazeBlock's shortcut."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, x):
        return keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, self.channels - x.shape[-1]]])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def build_palm(input_size, k=keras) -> keras.Model:
    layers = k.layers
    image = k.Input((*input_size, 3), name="image")
    # BlazePalm takes RGB in [0, 1]; load_palm_weights folds the channel order and the scale into
    # the stem kernel, so the network takes handnet's BGR 0-255 pixels as they come.
    x = layers.Conv2D(32, 5, 2, padding="same", name="palm_stem")(image)
    x = layers.PReLU(shared_axes=[1, 2], name="palm_stem_prelu")(x)
    features = {}
    for stage, (stride, channels, blocks) in enumerate(PALM_STAGES):
        if stage:
            x = blaze_block(x, channels, 2, f"palm_s{stride}_in", k)
        for i in range(blocks):
            x = blaze_block(x, channels, 1, f"palm_s{stride}_b{i}", k)
        features[stride] = x
    for stride, channels in ((16, 256), (8, 128)):
        up = layers.UpSampling2D(2, interpolation="bilinear", name=f"palm_up{stride}")(x)
        up = layers.Conv2D(channels, 1, name=f"palm_up{stride}_conv")(up)
        up = layers.PReLU(shared_axes=[1, 2], name=f"palm_up{stride}_prelu")(up)
        x = layers.Add(name=f"palm_up{stride}_add")([features[stride], up])
        for i in range(PYRAMID_BLOCKS):
            x = blaze_block(x, channels, 1, f"palm_p{stride}_b{i}", k)
    x = layers.DepthwiseConv2D(5, padding="same", use_bias=False, name="head_dw")(x)
    x = layers.Conv2D(64, 1, use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(name="head_bn")(x)
    x = layers.ReLU(name="head_relu")(x)
    from handnet.model import _heatmap_layer  # noqa: PLC0415 (model.py registers this preset)

    return k.Model(image, _heatmap_layer(k)(x), name="handnet_palm")


def blaze_block(x, channels: int, stride: int, name: str, k=keras):
    layers = k.layers
    y = layers.DepthwiseConv2D(5, stride, padding="same", name=f"{name}_dw")(x)
    y = layers.Conv2D(channels, 1, name=f"{name}_pw")(y)
    if stride == 2:
        x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
        if x.shape[-1] != channels:
            x = ChannelPad(channels, name=f"{name}_pad")(x)
    x = layers.Add(name=f"{name}_add")([x, y])
    return layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)


def palm_layer_names() -> list[str]:
    """The layers that hold BlazePalm's weights, in the order its .tflite computes them."""
    blocks = [f"palm_s{stride}_{part}" for stage, (stride, _, count) in enumerate(PALM_STAGES)
              for part in (["in"] if stage else []) + [f"b{i}" for i in range(count)]]
    blocks_of = lambda name: [f"{name}_dw", f"{name}_pw", f"{name}_prelu"]  # noqa: E731
    names = ["palm_stem", "palm_stem_prelu"] + [n for block in blocks for n in blocks_of(block)]
    for stride in (16, 8):
        names += [f"palm_up{stride}_conv", f"palm_up{stride}_prelu"]
        names += [n for i in range(PYRAMID_BLOCKS) for n in blocks_of(f"palm_p{stride}_b{i}")]
    return names


def read_palm_weights(path: str | os.PathLike) -> list[list[np.ndarray]]:
    """Every CONV_2D, DEPTHWISE_CONV_2D and PRELU of a BlazePalm-lite .tflite up to its 1/8
    features, in graph order, as Keras weight lists (kernel, bias) or (alpha,). The SSD box and
    score convolutions that read the 1/8 and 1/16 features are left out."""
    from ai_edge_litert import schema_py_generated as schema  # noqa: PLC0415

    from handnet.export import read_tflite_graph  # noqa: PLC0415

    graph, codes, stored, values = read_tflite_graph(path)
    op = schema.BuiltinOperator
    constant = lambda index: values(stored(index))  # noqa: E731

    weights = []
    for operator in graph.operators:
        code = codes[operator.opcodeIndex]
        out_channels = graph.tensors[operator.outputs[0]].shape[-1]
        if code == op.CONV_2D and out_channels in (2, 6, 36, 108):  # SSD scores and boxes: not ours
            continue
        if code in (op.CONV_2D, op.DEPTHWISE_CONV_2D):
            # (O, kh, kw, I) -> Keras' (kh, kw, I, O); depthwise (1, kh, kw, C) -> (kh, kw, C, 1)
            kernel = constant(operator.inputs[1]).transpose(1, 2, 3, 0)
            weights.append([kernel, constant(operator.inputs[2])])
        elif code == op.PRELU:
            weights.append([constant(operator.inputs[1]).reshape(1, 1, -1)])
    return weights


def load_palm_weights(model: keras.Model, path: str | os.PathLike, freeze: bool = True) -> None:
    """Copy BlazePalm-lite's weights into the `palm` preset's layers and freeze them (freeze)."""
    if not any(layer.name == "palm_stem" for layer in model.layers):
        raise ValueError(f"preset '{model.name}' has no BlazePalm layers; use --backbone-weights none")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--backbone-weights: no such file '{path}' (palm_detection_lite.tflite)")
    names = palm_layer_names()
    weights = read_palm_weights(path)
    if len(weights) != len(names):
        raise ValueError(f"{path}: {len(weights)} weighted layers, the palm preset has {len(names)}; "
                         "is it palm_detection_lite.tflite?")
    for name, values in zip(names, weights):
        layer = model.get_layer(name)
        if name == "palm_stem":  # RGB in [0, 1] -> BGR in [0, 255]
            values = [values[0][:, :, ::-1, :] / 255.0, values[1]]
        try:
            layer.set_weights(values)
        except ValueError as err:
            raise ValueError(f"{path}: weights of {name} do not fit ({err})") from None
        layer.trainable = not freeze
