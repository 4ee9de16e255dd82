"""Find hands with an exported .tflite: LiteRT, NumPy and OpenCV only (no TensorFlow, no Keras).

    import cv2
    from handnet.runtime import HandDetector, HandTracker

    detector = HandDetector("models/handnet-fast-int8.tflite", num_threads=2)
    ok, frame = cv2.VideoCapture(0).read()           # any size, BGR uint8
    for hand in detector.detect(frame):               # x, y, radius in the frame's pixels
        print(hand.x, hand.y, hand.radius, hand.score, hand.label)

    tracker = HandTracker()                           # stable ids and smoothing, for games
    hands = tracker.update(detector.detect(frame))    # TrackedHand: ... plus track_id

Everything the detector needs (input size, stride, label, threshold) comes from the `handnet`
metadata record that handnet.export embeds in the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from handnet.letterbox import Letterbox, apply_letterbox
from handnet.peaks import Detection, detect_hands
from handnet.tracking import HandTracker, TrackedHand, TrackerConfig  # noqa: F401 (part of the runtime API)

METADATA_NAME = "handnet"  # handnet.export writes it under this name
TFLITE_IDENTIFIER = b"TFL3"


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """The handnet metadata of a .tflite file."""

    preset: str
    mode: str
    input_size: tuple[int, int]  # (height, width)
    stride: int
    labels: tuple[str, ...]
    score_threshold: float
    sigma_scale: float
    min_sigma: float
    raw: dict  # the whole record, as stored

    @classmethod
    def from_record(cls, record: dict) -> "ModelInfo":
        return cls(
            preset=record["preset"], mode=record["mode"],
            input_size=(int(record["input"]["height"]), int(record["input"]["width"])),
            stride=int(record["output"]["stride"]), labels=tuple(record["labels"]),
            score_threshold=float(record["score_threshold"]), sigma_scale=float(record["sigma_scale"]),
            min_sigma=float(record["min_sigma"]), raw=record,
        )


def read_model_info(model: str | os.PathLike | bytes) -> ModelInfo:
    """The handnet metadata of a .tflite path or its bytes. ValueError when the file is not a
    TFLite model or carries no handnet record."""
    if isinstance(model, (bytes, bytearray)):
        return _info_from_bytes(bytes(model), "model")
    return _info_from_bytes(_read_file(model), str(model))


def _info_from_bytes(data: bytes, name: str) -> ModelInfo:
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ValueError(f"{name}: not a TFLite model (no TFL3 identifier)")
    try:
        root = schema.Model.GetRootAs(data, 0)
        for i in range(root.MetadataLength()):
            entry = root.Metadata(i)
            if entry.Name() in (METADATA_NAME, METADATA_NAME.encode()):
                record = json.loads(root.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
                return ModelInfo.from_record(record)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        raise ValueError(f"{name}: unreadable handnet metadata ({err})") from err
    raise ValueError(f"{name}: no handnet metadata; export the model with python -m handnet.export")


def _read_file(path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    return path.read_bytes()


class HandDetector:
    """A .tflite hand detector. detect(frame) -> [Detection(x, y, radius, score, label)].

    Handles float, uint8 and int8 models alike (the input is quantized and the heatmap
    dequantized with the file's own parameters). num_threads: CPU threads for the interpreter
    (None lets LiteRT choose). score_threshold: None uses the one saved in the model.
    """

    def __init__(self, model_path: str | os.PathLike, num_threads: int | None = None,
                 score_threshold: float | None = None):
        data = _read_file(model_path)
        self.info = _info_from_bytes(data, str(model_path))
        self.path = str(model_path)
        self.score_threshold = self.info.score_threshold if score_threshold is None else float(score_threshold)
        self.timings: dict[str, float] = {}  # milliseconds of the last frame: preprocess, inference, peaks
        try:
            self._interpreter = Interpreter(model_content=data, num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ValueError(f"{model_path}: LiteRT cannot load it: {err}") from err
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        expected = (1, *self.info.input_size, 3)
        if tuple(self._input["shape"]) != expected:
            raise ValueError(f"{model_path}: input shape {tuple(self._input['shape'])} does not match "
                             f"its metadata {expected}")

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    def heatmap(self, frame: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """(Ho, Wo) float32 heatmap in [0, 1] of a BGR uint8 frame, and the letterbox used."""
        check_frame(frame)
        started = time.perf_counter()
        image, box = apply_letterbox(frame, self.info.input_size)
        self._interpreter.set_tensor(self._input["index"], _quantize(image[None], self._input))
        invoked = time.perf_counter()
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._output["index"])[0, ..., 0]
        self.timings["preprocess"] = 1000 * (invoked - started)
        self.timings["inference"] = 1000 * (time.perf_counter() - invoked)
        return _dequantize(raw, self._output), box

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Hands in the frame, in its pixels, highest score first."""
        heatmap, box = self.heatmap(frame)
        started = time.perf_counter()
        info = self.info
        hands = detect_hands(heatmap, box, info.labels[0], self.score_threshold, info.stride,
                             info.sigma_scale, info.min_sigma)
        self.timings["peaks"] = 1000 * (time.perf_counter() - started)
        return hands


def check_frame(frame) -> None:
    """TypeError/ValueError unless frame is an (H, W, 3) uint8 BGR image, as OpenCV delivers."""
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame must be a numpy array (H, W, 3) uint8 BGR, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 BGR, got dtype {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3 or min(frame.shape[:2]) < 1:
        raise ValueError(f"frame must have shape (H, W, 3) (BGR), got {frame.shape}")


def _quantize(image: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return image.astype(dtype)
    scale, zero = detail["quantization"]
    if scale == 1.0 and zero == 0 and dtype == np.uint8:
        return image  # uint8 pixels are the model's input already
    info = np.iinfo(dtype)
    return np.clip(np.round(image.astype(np.float32) / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return values.astype(np.float32)
    scale, zero = detail["quantization"]
    return (values.astype(np.float32) - zero) * np.float32(scale)
