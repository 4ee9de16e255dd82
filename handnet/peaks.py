"""Heatmap -> hands: non-maximum suppression, sub-cell refinement, radius, frame coordinates.

NumPy and OpenCV only, so the TFLite runtime and games use it without TensorFlow.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from handnet.letterbox import Letterbox


@dataclasses.dataclass(frozen=True)
class Detection:
    x: float  # centre, frame pixels
    y: float
    radius: float
    score: float  # heatmap value at the peak, in [0, 1]
    label: str
    gesture: str | None = None  # set by handnet.runtime.GestureClassifier.label
    gesture_score: float = 0.0


def find_peaks(
    heatmap: np.ndarray,
    threshold: float,
    stride: int,
    sigma_scale: float,
    min_sigma: float,
    max_peaks: int = 64,
    min_distance: float = 1.5,
) -> np.ndarray:
    """heatmap: (Ho, Wo) float in [0, 1]. Returns (N, 4) float32 [x, y, radius, score] in
    network-input pixels, highest score first.

    A peak is a cell no smaller than its 3x3 neighbourhood (max-pool NMS) and at least
    `threshold`; peaks closer than `min_distance` cells to a stronger one (flat tops) are dropped.
    Position and size come from a parabola through the log of the peak and its neighbours, which
    is exact for the Gaussian blobs the network is trained to draw: its vertex gives the sub-cell
    offset and its curvature the Gaussian's sigma, hence the radius.
    """
    heatmap = np.asarray(heatmap, np.float32)
    pooled = cv2.dilate(heatmap, np.ones((3, 3), np.uint8))
    rows, cols = np.nonzero((heatmap >= pooled) & (heatmap >= threshold))
    order = np.argsort(-heatmap[rows, cols], kind="stable")
    kept: list[tuple[int, int]] = []
    for i, j in zip(rows[order], cols[order]):
        if all((i - a) ** 2 + (j - b) ** 2 >= min_distance**2 for a, b in kept):
            kept.append((int(i), int(j)))
            if len(kept) == max_peaks:
                break
    log = np.log(np.maximum(heatmap, 1e-6))
    out = np.zeros((len(kept), 4), np.float32)
    for n, (i, j) in enumerate(kept):
        dx, var_x = _parabola(log[i, j - 1 : j + 2]) if 0 < j < log.shape[1] - 1 else (0.0, np.nan)
        dy, var_y = _parabola(log[i - 1 : i + 2, j]) if 0 < i < log.shape[0] - 1 else (0.0, np.nan)
        sigma = np.sqrt(np.nanmean([var_x, var_y])) if not np.isnan([var_x, var_y]).all() else min_sigma
        radius = max(sigma, min_sigma) * stride / sigma_scale
        out[n] = ((j + 0.5 + dx) * stride, (i + 0.5 + dy) * stride, radius, heatmap[i, j])
    return out


def calibrate_radius(radius: np.ndarray, knots) -> np.ndarray:
    """Radii in network-input pixels times a factor interpolated in `knots`, ((radius, ...),
    (factor, ...)) with radii ascending, as fit_radius_knots measures them after training:
    a blob's width says a hand's size only roughly (far hands come out large, near ones small).
    No knots: the radii as they are."""
    if not len(knots) or not len(knots[0]):
        return radius
    return radius * np.interp(radius, knots[0], knots[1])


def _parabola(samples: np.ndarray) -> tuple[float, float]:
    """Vertex offset in [-0.5, 0.5] and variance of a Gaussian through three log samples
    (left, centre, right); the variance is NaN where they are flat (a plateau)."""
    left, centre, right = samples
    curvature = left - 2 * centre + right
    if curvature >= -1e-6:
        return 0.0, float("nan")
    offset = float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    return offset, -1.0 / curvature


def detect_hands(heatmap: np.ndarray, box: Letterbox, label: str, threshold: float, stride: int,
                 sigma_scale: float, min_sigma: float, radius_knots=()) -> list[Detection]:
    """Peaks of one heatmap as Detections in the original frame's pixels, each radius calibrated
    by radius_knots (calibrate_radius) where the model has them."""
    peaks = find_peaks(heatmap, threshold, stride, sigma_scale, min_sigma)
    x, y, r = box.to_frame(peaks[:, 0], peaks[:, 1], calibrate_radius(peaks[:, 2], radius_knots))
    return [Detection(float(a), float(b), float(c), float(s), label) for a, b, c, s in zip(x, y, r, peaks[:, 3])]
