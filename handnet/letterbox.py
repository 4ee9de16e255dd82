"""Fit a frame of any size into the network input without distortion, and map points back.

Coordinates are continuous: pixel i covers [i, i + 1), so a point maps by one scale and offset
per axis. Used alike by the training pipeline, the Keras evaluator and the TFLite runtime.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

PAD_VALUE = 0  # the letterbox bars are black, in training and at inference alike


@dataclasses.dataclass(frozen=True)
class Letterbox:
    """input = frame * scale + offset, per axis."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def to_input(self, x, y):
        return x * self.scale_x + self.offset_x, y * self.scale_y + self.offset_y

    def to_frame(self, x, y, radius):
        return (
            (x - self.offset_x) / self.scale_x,
            (y - self.offset_y) / self.scale_y,
            radius / np.sqrt(self.scale_x * self.scale_y),
        )


def fit_letterbox(frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> Letterbox:
    (h, w), (H, W) = frame_hw, input_hw
    scale = min(H / h, W / w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    return Letterbox(new_w / w, new_h / h, float((W - new_w) // 2), float((H - new_h) // 2))


def apply_letterbox(frame: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """(h, w, 3) uint8 -> ((H, W, 3) uint8, Letterbox). Area interpolation when shrinking."""
    box = fit_letterbox(frame.shape[:2], input_hw)
    new_w = round(frame.shape[1] * box.scale_x)
    new_h = round(frame.shape[0] * box.scale_y)
    shrinking = new_w < frame.shape[1]
    resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    out = np.full((*input_hw, frame.shape[2]), PAD_VALUE, dtype=frame.dtype)
    ox, oy = int(box.offset_x), int(box.offset_y)
    out[oy : oy + new_h, ox : ox + new_w] = resized
    return out, box
