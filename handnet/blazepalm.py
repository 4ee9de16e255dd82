"""MediaPipe's BlazePalm palm detector as a reference: scored on the same frames, by the same rule.

    python -m handnet.blazepalm --data ../shared/datasets/linto-webcam-gestures --labels hello=positive,*=ignore
    python -m handnet.blazepalm --model ../shared/anchors/palm_detection_lite.tflite --data DIR --labels hand=positive

MediaPipe Hands starts every track with this detector, so it is the accuracy reference for
handnet's detector as it is already the speed reference (handnet.bench). The model file is not
part of handnet (`../shared/anchors/`, Apache-2.0); this module decodes it the way MediaPipe's
palm_detection graph (mediapipe 0.10) does: the frame letterboxed onto a black 192 x 192 square,
RGB in [0, 1]; 2016 SSD anchors (strides 8, 16, 16, 16, unit size); a sigmoid score per anchor;
weighted non-maximum suppression at IoU 0.3; MediaPipe's own score threshold is 0.5. Each palm
box becomes a Detection like handnet's: centre, radius = half the box's shorter side (the rule of
annotations.box_to_hand), label "palm".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from handnet.annotations import DatasetError, load_samples, read_image
from handnet.bench import ANCHORS
from handnet.config import Config
from handnet.letterbox import apply_letterbox
from handnet.metrics import evaluate_matches, match_image
from handnet.peaks import Detection

DEFAULT_MODEL = ANCHORS / "palm_detection_full.tflite"
INPUT_SIDE = 192
STRIDES = (8, 16, 16, 16)  # SsdAnchorsCalculator: 4 layers; layers of one stride share a grid
SCORE_THRESHOLD = 0.5  # MediaPipe's min_score_thresh for palms
NMS_IOU = 0.3


def palm_anchors() -> np.ndarray:
    """(2016, 2) anchor centres (x, y) in [0, 1]: per cell of each stride's grid, two anchors per
    layer with that stride (24 x 24 x 2 at stride 8, then 12 x 12 x 6 at stride 16)."""
    centres = []
    layer = 0
    while layer < len(STRIDES):
        stride = STRIDES[layer]
        repeats = 0
        while layer < len(STRIDES) and STRIDES[layer] == stride:
            repeats += 2  # aspect ratio 1 plus the interpolated scale, fixed anchor size
            layer += 1
        side = INPUT_SIDE // stride
        ys, xs = np.meshgrid((np.arange(side) + 0.5) / side, (np.arange(side) + 0.5) / side, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(centres).astype(np.float32)


def decode_palms(boxes: np.ndarray, logits: np.ndarray, anchors: np.ndarray, min_score: float) -> np.ndarray:
    """boxes (N, 18) raw regressors (dx, dy, w, h, 7 keypoints) in input pixels, logits (N,) ->
    (K, 5) rows (x0, y0, x1, y1, score) in [0, 1] input units, after weighted NMS, best first."""
    scores = 1 / (1 + np.exp(-np.clip(logits, -100, 100)))
    keep = scores >= min_score
    cx = boxes[keep, 0] / INPUT_SIDE + anchors[keep, 0]
    cy = boxes[keep, 1] / INPUT_SIDE + anchors[keep, 1]
    w, h = boxes[keep, 2] / INPUT_SIDE, boxes[keep, 3] / INPUT_SIDE
    candidates = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, scores[keep]], axis=1)
    return weighted_nms(candidates[np.argsort(-candidates[:, 4])], NMS_IOU)


def weighted_nms(rows: np.ndarray, iou_threshold: float) -> np.ndarray:
    """rows (K, 5) (x0, y0, x1, y1, score) sorted by score -> one row per cluster: the boxes
    overlapping the best by more than iou_threshold, averaged by score (MediaPipe's WEIGHTED
    algorithm), with the best one's score."""
    out = []
    remaining = rows
    while len(remaining):
        best = remaining[0]
        overlap = _iou(best[:4], remaining[:, :4]) > iou_threshold
        cluster = remaining[overlap]
        box = (cluster[:, :4] * cluster[:, 4:]).sum(axis=0) / cluster[:, 4].sum()
        out.append([*box, best[4]])
        remaining = remaining[~overlap]
    return np.array(out, dtype=np.float32).reshape(-1, 5)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area - inter, 1e-9)


class PalmDetector:
    """BlazePalm behind handnet.runtime.HandDetector's interface: detect(BGR frame) -> [Detection]."""

    def __init__(self, model_path: str | Path = DEFAULT_MODEL, num_threads: int | None = None,
                 score_threshold: float = SCORE_THRESHOLD):
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

        if not Path(model_path).is_file():
            raise FileNotFoundError(f"{model_path}: BlazePalm model not found")
        self._interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        if tuple(self._input["shape"]) != (1, INPUT_SIDE, INPUT_SIDE, 3):
            raise ValueError(f"{model_path}: input {tuple(self._input['shape'])} is not BlazePalm's (1, 192, 192, 3)")
        outputs = {tuple(d["shape"][1:]): d["index"] for d in self._interpreter.get_output_details()}
        self._anchors = palm_anchors()
        count = len(self._anchors)
        if (count, 18) not in outputs or (count, 1) not in outputs:
            raise ValueError(f"{model_path}: outputs {sorted(outputs)} are not BlazePalm's ({count}, 18) and ({count}, 1)")
        self._boxes, self._logits = outputs[(count, 18)], outputs[(count, 1)]
        self.score_threshold = score_threshold

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """(H, W, 3) uint8 BGR -> palms in frame pixels, best first."""
        square, box = apply_letterbox(frame, (INPUT_SIDE, INPUT_SIDE))
        tensor = cv2.cvtColor(square, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0
        self._interpreter.set_tensor(self._input["index"], tensor)
        self._interpreter.invoke()
        rows = decode_palms(self._interpreter.get_tensor(self._boxes)[0],
                            self._interpreter.get_tensor(self._logits)[0, :, 0], self._anchors, self.score_threshold)
        detections = []
        for x0, y0, x1, y1, score in rows:
            x, y, radius = box.to_frame(INPUT_SIDE * (x0 + x1) / 2, INPUT_SIDE * (y0 + y1) / 2,
                                        INPUT_SIDE * min(x1 - x0, y1 - y0) / 2)
            detections.append(Detection(float(x), float(y), float(radius), float(score), "palm"))
        return detections


def main(argv=None) -> int:
    from handnet.evaluate import AP_THRESHOLD, format_metrics  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m handnet.blazepalm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="BlazePalm .tflite (default: %(default)s)")
    parser.add_argument("--data", required=True, nargs="+", help="dataset folder(s)")
    parser.add_argument("--labels", required=True, help="LABEL=ROLE,...: which hands count as ones to find")
    parser.add_argument("--threshold", type=float, default=SCORE_THRESHOLD, help="score threshold (default: MediaPipe's 0.5)")
    parser.add_argument("--threads", type=int, default=None, help="LiteRT threads (default: LiteRT's choice)")
    parser.add_argument("--out", help="metrics JSON (default: blazepalm-<data>.json in the current folder)")
    args = parser.parse_args(argv)
    try:
        detector = PalmDetector(args.model, args.threads, score_threshold=AP_THRESHOLD)
        samples = load_samples(args.data, args.labels)
    except (DatasetError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    match_distance = Config().match_distance  # handnet's rule: a centre within one hand radius
    per_image = []
    for i, sample in enumerate(samples, 1):
        frame = read_image(sample.path)
        per_image.append(match_image(detector.detect(frame), sample.hands, frame.shape[:2], match_distance))
        print(f"\r{i}/{len(samples)} images", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    metrics = evaluate_matches(per_image, args.threshold)
    out = Path(args.out or f"blazepalm-{Path(args.data[0]).resolve().name}.json")
    out.write_text(json.dumps({"model": str(args.model), "threshold": args.threshold, **metrics}, indent=2) + "\n")
    print(format_metrics(metrics))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
