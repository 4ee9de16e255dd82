"""Keras model -> self-describing .tflite, for games, phones and boards.

    python -m handnet.export --model runs/fast/model.keras --mode int8
    python -m handnet.export --model runs/fast/model.keras --mode qat --qat-epochs 2 --out hands.tflite

Modes:
- fp32: the float network as it is.
- fp16: float16 weights (half the file), float arithmetic.
- dynamic: int8 weights, float activations (dynamic-range quantization).
- int8: full-integer post-training quantization; a representative set of training frames (hand-free
  ones included) calibrates every activation. Input is uint8 BGR pixels, output a uint8 heatmap.
- qat: quantization-aware fine-tuning (tensorflow-model-optimization), then int8 as above.

Every file carries a JSON record under the TFLite metadata name `handnet` (input size and pixel
format, stride, label, score threshold, preset, mode, versions), so one file is the whole
deliverable; handnet.runtime reads it without TensorFlow.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import struct
import sys
from pathlib import Path

import numpy as np

from handnet import __version__, native_logs_quieted
from handnet.atomic import write_bytes
from handnet.config import Config
from handnet.peaks import OPEN, OTHER
from handnet.runtime import METADATA_NAME

# TFLite tensor types of weights, as numpy dtypes (schema.TensorType: FLOAT32, FLOAT16, INT32, INT8)
TENSOR_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 9: np.int8}

MODES = ("fp32", "fp16", "dynamic", "int8", "qat")
METADATA_VERSION = 1
REPRESENTATIVE_FRAMES = 200


def model_metadata(config: Config, mode: str, label: str) -> dict:
    """What a game needs to use the file; handnet.runtime.ModelInfo reads it back. With a hand map
    the output has two or three channels, the open-hand, every-hand and openness maps
    (Config.map_channels); hands are the every-hand map's peaks above score_threshold, labelled
    open where their open score (the openness map's, else the open map's) reaches
    open_threshold, else other."""
    if config.deploys_hand_map:
        return {**_metadata(config, mode, [OPEN, OTHER]), "open_threshold": config.open_threshold,
                "output": {"name": "heatmaps", "stride": config.stride, "activation": "sigmoid",
                           "channels": list(config.map_channels)}}
    return _metadata(config, mode, [label])


def _metadata(config: Config, mode: str, labels: list[str]) -> dict:
    return {
        "format": "handnet-tflite",
        "metadata_version": METADATA_VERSION,
        "handnet_version": __version__,
        "task": "hands",
        "preset": config.preset,
        "mode": mode,
        "input": {"height": config.input_size[0], "width": config.input_size[1], "channels": 3,
                  "color": "BGR", "range": [0, 255], "resize": "letterbox", "pad_value": 0},
        "output": {"name": "heatmap", "stride": config.stride, "activation": "sigmoid"},
        "labels": labels,
        "score_threshold": config.score_threshold,
        "sigma_scale": config.sigma_scale,
        "min_sigma": config.min_sigma,
        "radius_knots": config.radius_knots,
        "config": json.loads(config.to_json()),
    }


def representative_frames(config: Config, count: int = REPRESENTATIVE_FRAMES) -> list[np.ndarray]:
    """Letterboxed training frames, spread over the set, as (H, W, 3) float32 BGR; frames without
    hands come along as they fall, so the calibration sees empty scenes too."""
    from handnet.annotations import load_samples, read_image, spread, train_val_split  # noqa: PLC0415
    from handnet.letterbox import apply_letterbox  # noqa: PLC0415

    samples = load_samples(config.data, config.labels)
    train_samples, _ = train_val_split(samples, config.val_fraction, config.group_size, config.seed)
    return [apply_letterbox(read_image(s.path), config.input_size)[0].astype(np.float32)
            for s in spread(train_samples or samples, count)]


def fixed_size_model(model, config: Config):
    """The same network with its input fixed at config.input_size (TFLite wants static shapes)."""
    from handnet.model import build_model, copy_weights  # noqa: PLC0415

    fixed = build_model(dataclasses.replace(config, backbone_weights="none"))
    copy_weights(model, fixed)
    return fixed


def convert(model, mode: str, frames: list[np.ndarray] | None = None) -> bytes:
    """A fixed-size Keras model (fixed_size_model) -> TFLite bytes, builtin ops only. frames: the
    representative set, needed by int8 (qat models pass theirs too)."""
    import tempfile  # noqa: PLC0415

    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    if mode not in MODES:
        raise ValueError(f"unknown mode '{mode}' (choose from {', '.join(MODES)})")
    if mode in ("int8", "qat") and not frames:
        raise ValueError(f"mode {mode} needs representative frames")
    height, width = model.input_shape[1:3]
    if not isinstance(model, keras.Model):  # tf_keras, from handnet.qat
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        _configure(converter, mode, frames)
        with native_logs_quieted():  # the converter's C++ notices (NodeDef attributes, quantizer lines)
            return converter.convert()
    # Keras 3 -> SavedModel -> converter, the route Keras' own LiteRT export takes (it freezes the
    # weights); done by hand so that only builtin ops are allowed (no Flex ops in a game).
    with tempfile.TemporaryDirectory() as saved:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda image: model(image, training=False),
                             input_signature=[tf.TensorSpec((1, height, width, 3), tf.float32, name="image")])
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        _configure(converter, mode, frames)
        with native_logs_quieted():  # the converter's C++ notices (NodeDef attributes, quantizer lines)
            return converter.convert()


def _configure(converter, mode: str, frames) -> None:
    import tensorflow as tf  # noqa: PLC0415

    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode in ("int8", "qat"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([frame[None]] for frame in frames)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Camera pixels are uint8 already, and sigmoid (or softmax) outputs fit uint8's 1/256 steps.
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8


def embed_metadata(tflite: bytes, metadata: dict) -> bytes:
    """Add (or replace) the `handnet` JSON record in a TFLite flatbuffer's metadata table."""
    from ai_edge_litert import schema_py_generated as schema  # noqa: PLC0415
    from ai_edge_litert.tools import flatbuffer_utils  # noqa: PLC0415

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    data = np.frombuffer(json.dumps(metadata).encode(), np.uint8)
    model.metadata = model.metadata or []
    for record in model.metadata:
        if record.name in (METADATA_NAME, METADATA_NAME.encode()):  # a record already there: its buffer is reused
            model.buffers[record.buffer].data = data
            break
    else:
        buffer = schema.BufferT()
        buffer.data = data
        model.buffers.append(buffer)
        record = schema.MetadataT()
        record.name, record.buffer = METADATA_NAME, len(model.buffers) - 1
        model.metadata.append(record)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_tflite_graph(path: str | os.PathLike) -> tuple:
    """(graph, codes, stored, values) of a .tflite's first subgraph: codes[i] is the builtin
    operator code of operator i; stored(index) the tensor that holds an input's values (fp16
    files keep float16 weights behind a DEQUANTIZE); values(index) a stored constant tensor as
    float32, dequantized with the file's own scales. ValueError for a truncated file or a tensor
    that is not a readable constant."""
    from ai_edge_litert import schema_py_generated as schema  # noqa: PLC0415
    from ai_edge_litert.tools import flatbuffer_utils  # noqa: PLC0415

    try:
        model = flatbuffer_utils.read_model(str(path))
    except struct.error:  # an offset past the end of the data
        raise ValueError(f"{path}: truncated or damaged TFLite file") from None
    graph = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    producer = {out: op for op in graph.operators for out in op.outputs}

    def stored(index: int) -> int:
        op = producer.get(index)
        if op is not None and codes[op.opcodeIndex] == schema.BuiltinOperator.DEQUANTIZE:
            return stored(op.inputs[0])
        return index

    def values(index: int) -> np.ndarray:
        tensor = graph.tensors[index]
        data = model.buffers[tensor.buffer].data
        if data is None:
            raise ValueError(f"{path}: {tensor.name.decode()} is not a constant; cannot read its weights")
        if tensor.type not in TENSOR_DTYPES:
            raise ValueError(f"{path}: {tensor.name.decode()} is stored as TFLite tensor type {tensor.type}, "
                             f"which handnet cannot read weights from")
        array = np.frombuffer(data.tobytes(), TENSOR_DTYPES[tensor.type]).reshape(tensor.shape).astype(np.float32)
        quant = tensor.quantization
        if quant is not None and quant.scale is not None and len(quant.scale):
            shape = [1] * array.ndim
            shape[quant.quantizedDimension if len(quant.scale) > 1 else 0] = -1
            array = (array - np.reshape(quant.zeroPoint, shape)) * np.reshape(quant.scale, shape)
        return array

    return graph, codes, stored, values


def read_conv_weights(path: str | os.PathLike) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The float weights of an exported detector, to fine-tune it (train.py --init X.tflite):
    (its preset, {Keras layer name: (kernel (kh, kw, in, out), bias (out,)) float32}) for every
    convolution, dequantized with the file's own scales. The converter folded each batch-norm
    into the convolution before it, so each bias is the folded one (handnet.model.load_init_weights
    unfolds them). ValueError for a file that is not a handnet detector."""
    from ai_edge_litert import schema_py_generated as schema  # noqa: PLC0415

    from handnet.runtime import ModelInfo, read_model_info  # noqa: PLC0415

    info = read_model_info(path)
    if not isinstance(info, ModelInfo):
        raise ValueError(f"{path}: a gesture classifier, not a hand detector")
    graph, codes, stored, values = read_tflite_graph(path)
    weights = {}
    for op in graph.operators:
        if codes[op.opcodeIndex] != schema.BuiltinOperator.CONV_2D:
            continue
        kernel, bias = stored(op.inputs[1]), stored(op.inputs[2])
        name = re.search(r"([A-Za-z0-9_]+?)(?:_\d+)?/convolution$", graph.tensors[kernel].name.decode())
        if name is None:
            raise ValueError(f"{path}: cannot tell which layer {graph.tensors[kernel].name.decode()} belongs to")
        weights[name.group(1)] = (values(kernel).transpose(1, 2, 3, 0), values(bias))  # TFLite: (out, kh, kw, in)
    return info.preset, weights


def export_model(model, config: Config, mode: str, out: str | os.PathLike, frames=None,
                 qat_epochs: int = 1, progress: bool = True) -> Path:
    """Convert, embed the metadata and write `out` atomically. For int8 and qat, frames defaults
    to representative_frames(config)."""
    from handnet.evaluate import detection_label  # noqa: PLC0415

    if mode not in MODES:
        raise ValueError(f"unknown mode '{mode}' (choose from {', '.join(MODES)})")
    out = Path(out)
    if mode in ("int8", "qat") and frames is None:
        frames = representative_frames(config)
    fixed = fixed_size_model(model, config)
    if mode == "qat":
        from handnet.qat import quantization_aware_finetune  # noqa: PLC0415

        fixed = quantization_aware_finetune(fixed, config, epochs=qat_epochs, progress=progress)
    tflite = embed_metadata(convert(fixed, mode, frames), model_metadata(config, mode, detection_label(config)))
    return write_bytes(out, tflite)


def gesture_metadata(config, mode: str) -> dict:
    """The record of a gesture classifier (handnet.gestures); handnet.runtime.GestureInfo reads it."""
    from handnet.crops import CROP_SCALE  # noqa: PLC0415

    return {
        "format": "handnet-tflite",
        "metadata_version": METADATA_VERSION,
        "handnet_version": __version__,
        "task": "gestures",
        "mode": mode,
        "input": {"height": config.input_side, "width": config.input_side, "channels": 3, "color": "BGR",
                  "range": [0, 255], "resize": "hand crop", "crop_scale": CROP_SCALE, "pad_value": 0},
        "output": {"name": "scores", "activation": "softmax" if config.loss == "ce" else "sigmoid"},
        "labels": list(config.classes),  # known gestures, then na
        "na": config.na_name,
        "score_threshold": config.threshold,
        "loss": config.loss,
        "config": json.loads(config.to_json()),
    }


def export_gesture_model(model, config, out: str | os.PathLike, examples, mode: str = "int8") -> Path:
    """A trained gesture classifier -> .tflite with its metadata, written atomically. examples:
    training crops (handnet.gesture_data.Example), of which int8 calibrates on up to
    REPRESENTATIVE_FRAMES spread over the set."""
    from handnet.annotations import spread  # noqa: PLC0415
    from handnet.gesture_data import load_crop  # noqa: PLC0415

    if mode not in ("fp32", "fp16", "dynamic", "int8"):
        raise ValueError(f"gesture classifiers export as fp32, fp16, dynamic or int8, not '{mode}'")
    frames = None
    if mode == "int8":
        frames = [load_crop(e.path, config.input_side).astype(np.float32)
                  for e in spread(examples, REPRESENTATIVE_FRAMES)]
    return write_bytes(out, embed_metadata(convert(model, mode, frames), gesture_metadata(config, mode)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handnet.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a run's model.keras (config.json beside it)")
    parser.add_argument("--mode", choices=MODES, default="int8")
    parser.add_argument("--out", help="output .tflite (default: model-<mode>.tflite beside the model)")
    parser.add_argument("--data", nargs="+", help="representative / fine-tuning data (default: the run's)")
    parser.add_argument("--qat-epochs", type=int, default=1, help="qat: epochs of quantization-aware fine-tuning")
    args = parser.parse_args(argv)

    from handnet.annotations import DatasetError  # noqa: PLC0415
    from handnet.atomic import check_output_file, refuse_inputs_as_outputs  # noqa: PLC0415
    from handnet.evaluate import load_model  # noqa: PLC0415

    try:
        model, config = load_model(args.model)
        if args.data:
            config.data = [str(d) for d in args.data]
        out = args.out or Path(args.model).parent / f"model-{args.mode}.tflite"
        refuse_inputs_as_outputs({"--out": out}, [args.model, Path(args.model).parent / "config.json", *config.data])
        check_output_file(out, "--out")
        path = export_model(model, config, args.mode, out, qat_epochs=args.qat_epochs)
    except (DatasetError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, {args.mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
