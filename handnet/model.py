"""Model presets: functional Keras builders, one per preset, rebuilt from Config.

Every model takes `image`: (B, H, W, 3) float32 BGR pixels in [0, 255] (OpenCV's frame order,
normalised inside the model, so a game feeds frames as they come) and returns (B, H/8, W/8, C)
float32 in [0, 1]: channel 0 (`heatmap`) bright where open hands are, and with Config.hand_map
channel 1 (`every_hand`) bright where any hand is, open or not, and channel 2 (`openness`, with
Config.openness_weight) the chance that a hand there is open (output `heatmaps`;
Config.map_channels).

- `seed`: the seed network. VGG16 blocks 1-2 under keras.applications' layer names (so ImageNet
  weights load by name), then three 3x3 Conv2D(512), a max-pool and a 1x1 Conv2D to one channel.
- `fast`: a 4x4 stride-4 "patch" stem (its batch-norm normalises the raw pixels), then plain 3x3
  conv + batch-norm blocks down to 1/16 (a receptive field wider than a near hand) and one
  upsampling step back to 1/8; about 0.34 M parameters. The 1/4 stage (the stem and the 3x3
  block after it) is Config.stem_channels wide. The patch stem and a single 3x3 block at 1/4
  replace a 3x3 stride-2 stem and two 1/4 blocks: full-resolution layers cost far more time than
  their multiply-adds (memory traffic, batch-norm), so training and int8 frames are faster for a
  similar F1 per epoch (docs/default-run.md, docs/performance.md). On CPUs (oneDNN) dense 3x3
  convolutions of few channels train about as fast as depthwise-separable ones and learned far
  more per epoch in our trials.
- `palm`: MediaPipe's BlazePalm-lite network with handnet's heads (handnet.palm_preset).
"""

from __future__ import annotations

import math
import os
import zipfile

import keras
import numpy as np

from handnet.config import HEAD_OUTPUTS, PRESET_SIZE_MULTIPLES, PRESET_STRIDES, TRAINING_HEADS, Config
from handnet.palm_preset import build_palm, load_palm_weights

VGG_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications' caffe-style VGG preprocessing
VGG_LAYERS = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2")
# The heatmap starts dark: a prior of 1% hand pixels keeps early focal and BCE losses sane
# (CenterNet's initialisation).
HEATMAP_BIAS = -math.log((1 - 0.01) / 0.01)


def build_model(config: Config, flexible: bool = False, k=keras, **options) -> keras.Model:
    """The preset's network for config.input_size; flexible=True leaves height and width open
    (None), as training on crops and evaluating on whole frames needs. k: the Keras package to
    build with; handnet.qat passes tf_keras for the same network with the same layer names."""
    check_size(config.preset, config.input_size, "--input-size")
    if config.preset == "fast":
        options = {"stem_channels": config.stem_channels, **options}
    model = PRESETS[config.preset]((None, None) if flexible else config.input_size, k, **options)
    if config.deploys_hand_map:
        model = with_hand_map(model, k, openness=len(config.map_channels) > 2)
    if config.backbone_weights != "none":
        load_backbone_weights(model, config.backbone_weights)
    return model


def check_size(preset: str, size, flag: str) -> None:
    """Raise ValueError unless the preset can take (height, width) inputs of this size."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    multiple = PRESET_SIZE_MULTIPLES[preset]
    if any(v < 2 * multiple for v in size) or (multiple > PRESET_STRIDES[preset] and any(v % multiple for v in size)):
        raise ValueError(f"{flag} {size[0]} {size[1]}: preset '{preset}' needs both sides multiples of "
                         f"{multiple} and at least {2 * multiple}")


def build_seed(input_size, k=keras) -> keras.Model:
    layers = k.layers
    image = k.Input((*input_size, 3), name="image")
    x = layers.Normalization(mean=VGG_MEAN_BGR, variance=(1.0, 1.0, 1.0), name="vgg_preprocess")(image)
    for block, (filters, convs) in enumerate(((64, 2), (128, 2)), start=1):
        for i in range(1, convs + 1):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    for i in range(1, 4):
        x = layers.Conv2D(512, 3, padding="same", activation="relu", name=f"head_conv{i}")(x)
    x = layers.MaxPooling2D(2, name="head_pool")(x)
    heatmap = _heatmap_layer(k)(x)
    return k.Model(image, heatmap, name="handnet_seed")


def build_fast(input_size, k=keras, unit_pixels: bool = False, stem_channels: int = 24) -> keras.Model:
    """unit_pixels: scale pixels to [0, 1] first (handnet.qat's twin, whose fake-quantizers
    train badly on 0-255 inputs; it multiplies the stem kernel by 255 to compute the same).
    stem_channels: Config.stem_channels."""
    layers = k.layers
    image = k.Input((*input_size, 3), name="image")
    x = layers.Rescaling(1 / 255, name="unit_pixels")(image) if unit_pixels else image
    s8, x = fast_features(x, k, stem_channels)
    x = conv_bn(x, 64, 1, 1, "s16_reduce", k)
    x = layers.UpSampling2D(2, interpolation="nearest", name="s16_up")(x)
    x = layers.Add(name="merge")([s8, x])
    x = conv_bn(x, 64, 3, 1, "head", k)
    heatmap = _heatmap_layer(k)(x)
    return k.Model(image, heatmap, name="handnet_fast")


def fast_features(x, k=keras, stem_channels: int = 24):
    """The `fast` preset's layers from pixels to 1/16: (1/8 features (64 channels), 1/16 features
    (96 channels)); the 1/4 stage has stem_channels. The gesture classifier's `fast` backbone is
    the same layers, so a detector's weights can start it."""
    x = conv_bn(x, stem_channels, 4, 4, "stem", k)  # 1/4, non-overlapping patches; its batch-norm normalises the pixels
    x = conv_bn(x, stem_channels, 3, 1, "s4", k)
    x = conv_bn(x, 64, 3, 2, "s8_a", k)  # 1/8
    s8 = conv_bn(x, 64, 3, 1, "s8_b", k)
    x = conv_bn(s8, 96, 3, 2, "s16_a", k)  # 1/16: context for near hands
    x = conv_bn(x, 96, 3, 1, "s16_b", k)
    return s8, conv_bn(x, 96, 3, 1, "s16_c", k)


def _heatmap_layer(k, name="heatmap", channels=1):
    # float32 even under mixed precision: a float16 sigmoid rounds small scores to zero.
    return k.layers.Conv2D(channels, 1, activation="sigmoid", name=name, dtype="float32",
                           bias_initializer=k.initializers.Constant(HEATMAP_BIAS))


def with_hand_map(model, k=keras, openness: bool = True):
    """The network with more output channels, 1x1 heads on the heatmap's features (training
    heads, kept): `every_hand` lights up every hand, open or not, and with `openness` the chance
    that a hand is open, read at each hand. Output `heatmaps` (B, H', W', 2 or 3), the open-hand
    heatmap first."""
    heatmap = model.get_layer("heatmap")
    heads = [_heatmap_layer(k, name)(heatmap.input) for name in ("every_hand", "openness")[: 1 + openness]]
    stacked = k.layers.Concatenate(name="heatmaps", dtype="float32")([heatmap.output, *heads])
    return k.Model(model.input, stacked, name=model.name)


def with_training_heads(model: keras.Model, heads) -> keras.Model:
    """The network as it trains: beside the heatmap, a 1x1 head on the heatmap's features for each
    name in `heads` (Config.training_heads' names, in their order): `every_hand` lights up every
    annotated hand, open or not (the model's own hand map where it has one); `negatives` lights
    up annotated negatives such as faces and arms; `segment` gives, per role, the share of each
    cell that shows things of that role. Outputs (B, H', W', 1 + the heads' HEAD_OUTPUTS), the
    heatmap first. The heads share every other layer; copying the weights into build_model's network
    (training.plain_copy) keeps the ones it deploys."""
    unknown = set(heads) - set(TRAINING_HEADS)
    if unknown:
        raise ValueError(f"unknown training heads {sorted(unknown)} (choose from {', '.join(TRAINING_HEADS)})")
    if not heads:
        return model
    heatmap = model.get_layer("heatmap")
    names = {layer.name for layer in model.layers}
    outputs = [model.get_layer(name).output if name in names
               else _heatmap_layer(keras, name, HEAD_OUTPUTS[name])(heatmap.input) for name in heads]
    stacked = keras.layers.Concatenate(name="heatmap_and_heads", dtype="float32")([heatmap.output, *outputs])
    return keras.Model(model.input, stacked, name=model.name)


def with_teacher(model: keras.Model, teacher: keras.Model, multiple: int = 32) -> keras.Model:
    """The training network with a frozen teacher beside it: outputs (B, H', W', the model's
    channels + the teacher's), the teacher's maps last, on the same cells. The teacher sees the
    image padded at the bottom and right to a multiple of `multiple` (a preset's size multiple),
    and its maps are cut back to the model's grid, which the padding leaves aligned."""
    import tensorflow as tf  # noqa: PLC0415 (training only)

    teacher.trainable = False

    def padded(image):
        h, w = tf.shape(image)[1], tf.shape(image)[2]
        return tf.pad(image, [[0, 0], [0, (-h) % multiple], [0, (-w) % multiple], [0, 0]])

    def cut(pair):
        maps, like = pair
        return maps[:, : tf.shape(like)[1], : tf.shape(like)[2]]

    image = model.input
    maps = teacher(keras.layers.Lambda(padded, name="teacher_pad")(image), training=False)
    maps = keras.layers.Lambda(cut, name="teacher_cut")([maps, model.output])
    maps = keras.layers.Activation("linear", dtype="float32", name="teacher_maps")(maps)
    stacked = keras.layers.Concatenate(name="with_teacher", dtype="float32")([model.output, maps])
    return keras.Model(image, stacked, name=model.name)


def copy_weights(source: keras.Model, target: keras.Model, missing=()) -> list[str]:
    """Set every layer of `target` that has weights from the layer of the same name in `source`
    (layer order may differ: a training network's heads come in another order). Layers named in
    `missing` may be absent from `source` and keep their own weights. Returns the names copied;
    ValueError for any other absent layer or a shape that differs."""
    sources = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in target.layers:
        if not layer.weights:
            continue
        if layer.name not in sources:
            if layer.name in missing:
                continue
            raise ValueError(f"no weights for layer '{layer.name}'")
        layer.set_weights(sources[layer.name].get_weights())  # Keras refuses other counts or shapes
        copied.append(layer.name)
    return copied


def conv_bn(x, filters, kernel, stride, name, k=keras):
    x = k.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = k.layers.BatchNormalization(name=f"{name}_bn")(x)
    return k.layers.ReLU(name=f"{name}_relu")(x)


PRESETS = {"seed": build_seed, "fast": build_fast, "palm": build_palm}


def load_backbone_weights(model: keras.Model, weights: str) -> None:
    """Copy pretrained weights into the model's backbone and freeze it: for `seed`, VGG16's
    block 1-2 weights by layer name; for `palm`, BlazePalm-lite's from its .tflite.

    weights: "imagenet" (Keras' own download, where the network allows) or the path of a local
    notop VGG16 weights file (vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5); for `palm`
    the path of palm_detection_lite.tflite.
    """
    if model.name == "handnet_palm":
        load_palm_weights(model, weights)
        return
    if not all(name in {layer.name for layer in model.layers} for name in VGG_LAYERS):
        raise ValueError(f"preset '{model.name}' has no VGG16 backbone; use --backbone-weights none")
    if weights != "imagenet" and not os.path.isfile(weights):
        raise FileNotFoundError(f"--backbone-weights: no such file '{weights}' (imagenet | none | PATH.h5)")
    try:
        vgg = keras.applications.VGG16(include_top=False, weights=weights, input_shape=(None, None, 3))
    except Exception as err:  # download or HDF5 errors come in many types
        hint = " (no network? pass a local notop .h5 instead)" if weights == "imagenet" else ""
        raise RuntimeError(f"--backbone-weights {weights}: could not load VGG16 weights{hint}: {err}") from err
    for name in VGG_LAYERS:
        layer = model.get_layer(name)
        layer.set_weights(vgg.get_layer(name).get_weights())
        layer.trainable = False


def check_init_file(path: str) -> None:
    """Raise FileNotFoundError unless `path` (train.py --init) is a file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--init: no such file '{path}' (a model.keras, .weights.h5 or exported .tflite)")


def read_keras_model(path) -> keras.Model:
    """The network saved in a `.keras` file, uncompiled. ValueError naming the file when it is
    not a whole Keras archive (Keras itself says "File not found" for a damaged one)."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a Keras model (a .keras file is a zip archive; this one is damaged, "
                         "truncated or something else)")
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: Keras cannot load it ({err})") from None


def load_init_weights(model: keras.Model, path: str, frames=None) -> None:
    """Start `model` from the weights of a trained network of the same preset: a `.keras` model
    (a run's model.keras), a `.weights.h5` file, or an exported detector `.tflite` (the shipped
    model too), whose weights load_folded_weights unfolds with `frames` ((N, H, W, 3) float32
    pixels, letterboxed training images). Raises FileNotFoundError or ValueError, naming the
    file, when it is missing or holds another network."""
    check_init_file(path)
    try:
        if path.endswith(".tflite"):
            from handnet.export import read_conv_weights  # noqa: PLC0415

            preset, weights = read_conv_weights(path)
            if f"handnet_{preset}" != model.name:
                raise ValueError(f"it holds the '{preset}' preset, not '{model.name.removeprefix('handnet_')}'")
            check_stem(model, stem_channels_of(weights))
            load_folded_weights(model, weights, frames)
        elif path.endswith(".keras"):
            source = read_keras_model(path)
            if source.name != model.name:
                raise ValueError(f"it holds '{source.name}', not '{model.name}'")
            check_stem(model, stem_channels_of(source))
            _say_new_heads(model, copy_weights(source, model, missing=TRAINING_HEADS))
        else:
            model.load_weights(path)
    except (ValueError, OSError) as err:
        raise ValueError(f"--init {path}: cannot start '{model.name}' from it: {err}") from err


def stem_channels_of(network) -> int | None:
    """The channels of a `fast` network's 1/4 stage (Config.stem_channels); None without one.
    network: a keras.Model, or the {layer name: (kernel, bias)} of export.read_conv_weights."""
    if isinstance(network, dict):
        return int(network["stem_conv"][0].shape[-1]) if "stem_conv" in network else None
    names = {layer.name for layer in network.layers}
    return int(network.get_layer("stem_conv").kernel.shape[-1]) if "stem_conv" in names else None


def stem_channels_in(path: str) -> int | None:
    """The stem_channels of the network saved at `path` (a .keras model, or an exported .tflite
    detector); None for a .weights.h5 file or a network without a `fast` 1/4 stage. ValueError,
    naming the file, when it holds no readable network."""
    try:
        if path.endswith(".tflite"):
            from handnet.export import read_conv_weights  # noqa: PLC0415

            return stem_channels_of(read_conv_weights(path)[1])
        if path.endswith(".keras"):
            return stem_channels_of(read_keras_model(path))
    except (ValueError, OSError) as err:
        raise ValueError(f"{path}: cannot read a network from it: {err}") from err
    return None


def adopt_stem_channels(config, path: str, flag: str) -> None:
    """A run that starts from the network at `path` (--init, --init-from) builds its 1/4 stage as
    wide as that network's, whatever config.stem_channels said, and says so."""
    found = stem_channels_in(path)
    if found is not None and found != config.stem_channels:
        print(f"{flag} {path}: its 1/4 stage has {found} channels, so this network's has too (stem_channels {found})")
        config.stem_channels = found


def check_stem(model: keras.Model, found: int | None) -> None:
    """ValueError, naming the flag that fixes it, when weights with a 1/4 stage of `found` channels
    cannot start `model`."""
    wanted = stem_channels_of(model)
    if found is not None and wanted is not None and int(found) != wanted:
        raise ValueError(f"its 1/4 stage has {int(found)} channels, this network's {wanted} "
                         f"(build it the same: --stem-channels {int(found)})")


def _say_new_heads(model: keras.Model, copied: list[str]) -> None:
    """A file from before the hand map starts a network that has one: say that the head is new."""
    fresh = [layer.name for layer in model.layers if layer.name in TRAINING_HEADS and layer.name not in copied]
    if fresh:
        print(f"the start file has no {', '.join(fresh)} head: it starts from fresh weights")


UNFOLD_FRAMES = 64  # training images (or crops) on which load_folded_weights unfolds batch-norms


def load_folded_weights(model: keras.Model, weights: dict, frames) -> None:
    """Set every convolution of `model` from `weights` ({layer name: (kernel, bias)}, each
    batch-norm already folded into the convolution before it, as in an exported file), and each
    such batch-norm so that the block computes exactly the folded convolution again: its moving
    mean and variance are those of the convolution's output over `frames`, and gamma and beta
    undo them. So inference starts where the file was, and training, which normalises with each
    batch's own statistics, starts close to it."""
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
             and not (layer.name in TRAINING_HEADS and layer.name not in weights)]  # a head it lacks starts afresh
    _say_new_heads(model, [layer.name for layer in convs])
    for layer in convs:
        if layer.name not in weights:
            raise ValueError(f"no weights for layer '{layer.name}'")
        kernel, bias = weights[layer.name]
        if tuple(kernel.shape) != tuple(layer.kernel.shape):
            raise ValueError(f"layer '{layer.name}' is {tuple(layer.kernel.shape)}, the file's {kernel.shape}")
        if layer.use_bias:
            layer.set_weights([kernel, bias])
            continue
        layer.set_weights([kernel])
        norm = model.get_layer(layer.name.removesuffix("_conv") + "_bn")
        norm.set_weights([np.ones_like(bias), bias, np.zeros_like(bias), np.full_like(bias, 1 - norm.epsilon)])
    folded = [layer for layer in convs if not layer.use_bias]
    if not folded:
        return
    if frames is None or not len(frames):
        raise ValueError("its batch-norms are folded into its convolutions; training frames are needed to unfold them")
    # Every batch-norm now adds its folded bias and nothing else, so the outputs below are the
    # file's network; setting each one's statistics and undoing them in gamma and beta keeps it.
    probe = keras.Model(model.input, [layer.output for layer in folded])
    outputs = probe.predict(np.asarray(frames, np.float32), batch_size=8, verbose=0)
    for layer, output in zip(folded, outputs if len(folded) > 1 else [outputs]):
        norm = model.get_layer(layer.name.removesuffix("_conv") + "_bn")
        values = np.asarray(output, np.float64).reshape(-1, output.shape[-1])
        mean, var = values.mean(0), values.var(0)
        var = np.maximum(var, norm.epsilon)  # a dead channel: any positive variance reproduces it
        bias = weights[layer.name][1]
        norm.set_weights([a.astype(np.float32) for a in (np.sqrt(var + norm.epsilon), mean + bias, mean, var)])


def describe_model(model: keras.Model) -> str:
    """Keras' summary, then which layers train and the output shapes in order."""
    lines = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line), line_length=110)
    frozen = [layer.name for layer in model.layers if layer.weights and not layer.trainable]
    lines.append("frozen (pretrained) layers: " + (", ".join(frozen) if frozen else "none; every layer trains"))
    shapes = [
        "(" + ",".join(str(d) for d in layer.output.shape[1:]) + ")"
        for layer in model.layers
        if not isinstance(layer, (keras.layers.InputLayer, keras.layers.Normalization))
    ]
    lines.append("output shapes: " + " ".join(shapes))
    return "\n".join(lines)
