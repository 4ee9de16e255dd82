"""Find hands with an exported .tflite: LiteRT, NumPy and OpenCV only (no TensorFlow, no Keras).

    import cv2
    from handnet.runtime import HandDetector, HandTracker

    detector = HandDetector("models/handnet-fast-int8.tflite", num_threads=2)
    ok, frame = cv2.VideoCapture(0).read()           # any size, BGR uint8
    for hand in detector.detect(frame):               # x, y, radius in the frame's pixels
        print(hand.x, hand.y, hand.radius, hand.score, hand.label, hand.open_score)  # "open" / "other"

    tracker = HandTracker()                           # stable ids and smoothing, for games
    hands = tracker.update(detector.detect(frame))    # TrackedHand: ... plus track_id

    gestures = GestureClassifier("runs/gestures/gestures-int8.tflite")
    hands = gestures.label(frame, detector.detect(frame))   # ... plus gesture ("na": none known)

Everything a model needs (input size, stride, labels, threshold) comes from the `handnet`
metadata record that handnet.export embeds in the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import time
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from handnet import native_logs_quieted

from handnet.crops import crop_hand
from handnet.letterbox import Letterbox, apply_letterbox
from handnet.metrics import decide_gestures
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
    radius_knots: tuple = ()  # peaks.calibrate_radius; files from before 2026-12-04 have none
    # Files with a hand map: output channels ("open", "hand"[, "openness"]) and the threshold of the
    # open score, which labels each hand open or other (peaks.detect_hands); files from before
    # have one channel.
    channels: tuple[str, ...] = ("open",)
    open_threshold: float = 0.5

    @property
    def hand_map(self) -> bool:
        return len(self.channels) > 1

    @classmethod
    def from_record(cls, record: dict) -> "ModelInfo":
        return cls(
            preset=record["preset"], mode=record["mode"],
            input_size=(int(record["input"]["height"]), int(record["input"]["width"])),
            stride=int(record["output"]["stride"]), labels=tuple(record["labels"]),
            score_threshold=float(record["score_threshold"]), sigma_scale=float(record["sigma_scale"]),
            min_sigma=float(record["min_sigma"]), raw=record,
            radius_knots=tuple(tuple(map(float, row)) for row in record.get("radius_knots", [])),
            channels=tuple(record["output"].get("channels", record["labels"][:1])),
            open_threshold=float(record.get("open_threshold", 0.5)),
        )


@dataclasses.dataclass(frozen=True)
class GestureInfo:
    """The handnet metadata of a gesture classifier's .tflite file."""

    mode: str
    side: int  # crops are side x side
    labels: tuple[str, ...]  # known gestures, then na
    na: str
    score_threshold: float
    raw: dict

    @property
    def input_size(self) -> tuple[int, int]:
        return self.side, self.side

    @classmethod
    def from_record(cls, record: dict) -> "GestureInfo":
        return cls(mode=record["mode"], side=int(record["input"]["height"]), labels=tuple(record["labels"]),
                   na=record["na"], score_threshold=float(record["score_threshold"]), raw=record)


def read_model_info(model: str | os.PathLike | bytes) -> ModelInfo | GestureInfo:
    """The handnet metadata of a .tflite path or its bytes: ModelInfo for a hand detector,
    GestureInfo for a gesture classifier. ValueError when the file is not a TFLite model or
    carries no handnet record."""
    if isinstance(model, (bytes, bytearray)):
        return _info_from_bytes(bytes(model), "model")
    return _info_from_bytes(_read_file(model), str(model))


def _info_from_bytes(data: bytes, name: str, task: str | None = None) -> ModelInfo | GestureInfo:
    """task: "hands" or "gestures" to insist on one kind of model; None takes either."""
    record = _read_record(data, name)
    found = record.get("task", "hands")  # files from before gesture classifiers carry no task
    if task and found != task:
        kinds = {"hands": "a hand detector", "gestures": "a gesture classifier"}
        raise ValueError(f"{name}: this is {kinds.get(found, repr(found))}, not {kinds[task]}")
    try:
        return (GestureInfo if found == "gestures" else ModelInfo).from_record(record)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{name}: unreadable handnet metadata (missing or bad {err})") from err


def _read_record(data: bytes, name: str) -> dict:
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ValueError(f"{name}: not a TFLite model (no TFL3 identifier)")
    try:
        root = schema.Model.GetRootAs(data, 0)
        for i in range(root.MetadataLength()):
            entry = root.Metadata(i)
            if entry.Name() in (METADATA_NAME, METADATA_NAME.encode()):
                return json.loads(root.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    except struct.error:  # an offset past the end of the data
        raise ValueError(f"{name}: truncated or damaged TFLite file ({len(data)} bytes)") from None
    except (TypeError, ValueError, IndexError, AttributeError) as err:
        raise ValueError(f"{name}: unreadable handnet metadata ({err})") from err
    raise ValueError(f"{name}: no handnet metadata; export the model with python -m handnet.export")


def _read_file(path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    return path.read_bytes()


class HandDetector:
    """A .tflite hand detector. detect(frame) -> [Detection(x, y, radius, score, label, open_score)].

    A file with a hand map finds every hand, each labelled "open" or "other" (a fist, a side
    view); a file from before finds open hands alone. Handles float, uint8 and int8 models alike
    (the input is quantized and the heatmaps dequantized with the file's own parameters).
    num_threads: CPU threads for the interpreter (None lets LiteRT choose). score_threshold,
    open_threshold: None uses the ones saved in the model.
    """

    TASK = "hands"

    def __init__(self, model_path: str | os.PathLike, num_threads: int | None = None,
                 score_threshold: float | None = None, open_threshold: float | None = None):
        _open_model(self, model_path, num_threads, score_threshold)  # timings: preprocess, inference, peaks
        self.open_threshold = self.info.open_threshold if open_threshold is None else \
            check_threshold(open_threshold, "open_threshold")
        if self._output["shape"][-1] != len(self.info.channels):
            raise ValueError(f"{model_path}: {self._output['shape'][-1]} output channels, its metadata names "
                             f"{len(self.info.channels)} ({', '.join(self.info.channels)})")

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    def heatmap(self, frame: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The heatmaps of a BGR uint8 frame, float32 in [0, 1]: (Ho, Wo), or for a file with a hand
        map (Ho, Wo, C), its info.channels (open, hand, and openness where it has one); and the
        letterbox used."""
        check_frame(frame)
        started = time.perf_counter()
        image, box = apply_letterbox(frame, self.info.input_size)
        self._interpreter.set_tensor(self._input["index"], _quantize(image[None], self._input))
        invoked = time.perf_counter()
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._output["index"])[0]
        raw = raw if self.info.hand_map else raw[..., 0]
        self.timings["preprocess"] = 1000 * (invoked - started)
        self.timings["inference"] = 1000 * (time.perf_counter() - invoked)
        return _dequantize(raw, self._output), box

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Hands in the frame, in its pixels, highest score first."""
        heatmap, box = self.heatmap(frame)
        started = time.perf_counter()
        info = self.info
        hands = detect_hands(heatmap, box, info.labels[0], self.score_threshold, info.stride,
                             info.sigma_scale, info.min_sigma, info.radius_knots, self.open_threshold)
        self.timings["peaks"] = 1000 * (time.perf_counter() - started)
        return hands


@dataclasses.dataclass(frozen=True)
class Gesture:
    name: str  # a known gesture, or the model's na name ("none of those I know")
    score: float  # the winning score in [0, 1]; for na, the best known gesture's score
    scores: dict[str, float]  # every output, known gestures then na


class GestureClassifier:
    """A .tflite gesture classifier of hand crops (handnet.gestures). classify(frame, hand) ->
    Gesture; label(frame, hands) -> the hands with .gesture and .gesture_score filled in.

    Crops are cut around each hand as in training (handnet.crops). A top score under the
    threshold (the model's own unless score_threshold is given) means na.
    """

    TASK = "gestures"

    def __init__(self, model_path: str | os.PathLike, num_threads: int | None = None,
                 score_threshold: float | None = None):
        _open_model(self, model_path, num_threads, score_threshold)  # timings: of the last label() call

    def scores(self, crop: np.ndarray) -> np.ndarray:
        """(K + 1,) float32 scores of one (side, side, 3) uint8 BGR crop."""
        self._interpreter.set_tensor(self._input["index"], _quantize(crop[None], self._input))
        self._interpreter.invoke()
        return _dequantize(self._interpreter.get_tensor(self._output["index"])[0], self._output)

    def classify(self, frame: np.ndarray, hand) -> Gesture:
        """The gesture of one hand (anything with x, y, radius in the frame's pixels)."""
        check_frame(frame)
        scores = self.scores(crop_hand(frame, hand.x, hand.y, hand.radius, self.info.side))
        picked = int(decide_gestures(scores[None], self.score_threshold)[0])
        top = float(scores[:-1].max()) if picked == len(scores) - 1 else float(scores[picked])
        return Gesture(self.info.labels[picked], top, dict(zip(self.info.labels, map(float, scores))))

    def label(self, frame: np.ndarray, hands: list) -> list:
        """The hands (Detection or TrackedHand) with gesture and gesture_score set."""
        started = time.perf_counter()
        labelled = []
        for hand in hands:
            gesture = self.classify(frame, hand)
            labelled.append(dataclasses.replace(hand, gesture=gesture.name, gesture_score=gesture.score))
        self.timings["gestures"] = 1000 * (time.perf_counter() - started)
        return labelled


def _open_model(model, model_path, num_threads, score_threshold) -> None:
    """What HandDetector and GestureClassifier set up alike: metadata (refusing the other kind of
    model), path, threshold (the file's unless given), timings and the interpreter."""
    data = _read_file(model_path)
    model.info = _info_from_bytes(data, str(model_path), task=model.TASK)
    model.path = str(model_path)
    model.score_threshold = model.info.score_threshold if score_threshold is None else \
        check_threshold(score_threshold, "score_threshold")
    model.timings = {}  # milliseconds per stage of the last call
    model._interpreter, model._input, model._output = _load_interpreter(data, model_path, num_threads,
                                                                        model.info.input_size)


def _load_interpreter(data: bytes, model_path, num_threads, input_hw) -> tuple:
    """(interpreter, input detail, output detail), checking the input shape against the metadata."""
    if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
        raise ValueError(f"num_threads must be a whole number of at least 1, got {num_threads!r}")
    try:
        with native_logs_quieted():  # LiteRT announces its XNNPACK delegate on every load
            interpreter = Interpreter(model_content=data, num_threads=num_threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise ValueError(f"{model_path}: LiteRT cannot load it: {err}") from err
    detail_in, detail_out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    expected = (1, *input_hw, 3)
    if tuple(detail_in["shape"]) != expected:
        raise ValueError(f"{model_path}: input shape {tuple(detail_in['shape'])} does not match its metadata {expected}")
    return interpreter, detail_in, detail_out


def check_threshold(value, name: str) -> float:
    """value as a float; ValueError unless it lies strictly between 0 and 1 (a score threshold of
    0 or less finds a hand in every cell, one of 1 or more finds none, NaN compares false)."""
    value = float(value)
    if not 0 < value < 1:
        raise ValueError(f"{name} must lie between 0 and 1 (exclusive), got {value}")
    return value


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
