"""Heatmap -> hands: non-maximum suppression, sub-cell refinement, radius, frame coordinates.

NumPy and OpenCV only, so the TFLite runtime and games use it without TensorFlow.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from handnet.letterbox import Letterbox


OPEN, OTHER = "open", "other"  # the labels of a model with a hand map
FLAT_STEP = 1 / 256  # heatmap values closer than a uint8 step at a blob's top are one flat top
SATURATED = 253 / 256  # and values this high are all one: an int8 sigmoid output stops at 255 / 256


@dataclasses.dataclass(frozen=True)
class Detection:
    x: float  # centre, frame pixels
    y: float
    radius: float
    score: float  # heatmap value at the peak, in [0, 1]: the every-hand map's where the model has one
    label: str  # "open" or "other" with a hand map; else the one thing the model finds
    gesture: str | None = None  # set by handnet.runtime.GestureClassifier.label
    gesture_score: float = 0.0
    open_score: float | None = None  # the open-hand map at the hand, in [0, 1]; None: not a handnet detection

    @property
    def openness(self) -> float:
        """How open the hand looks: open_score, or the score of a detector with one map."""
        return self.score if self.open_score is None else self.open_score


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

    A saturated blob has a flat top: neighbouring cells within FLAT_STEP of each other at the
    top, or all above SATURATED, which a uint8 output cannot tell apart. Such touching cells are
    one peak, at their centroid, so a float model and its int8 file find the same hand once each.
    """
    heatmap = np.asarray(heatmap, np.float32)
    pooled = cv2.dilate(heatmap, np.ones((3, 3), np.uint8))
    tops = (((heatmap >= pooled - FLAT_STEP) | (heatmap >= SATURATED)) & (heatmap >= threshold)).astype(np.uint8)
    count, component = cv2.connectedComponents(tops, connectivity=8)
    peaks = []  # (score, row, column, centre row, centre column, cells) per flat top or single peak
    for k in range(1, count):
        rows, cols = np.nonzero(component == k)
        values = heatmap[rows, cols]
        best = int(np.argmax(values))
        if values[best] < pooled[rows[best], cols[best]]:
            continue  # a slope beside a higher peak, not a top
        near = int(np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2))
        peaks.append((float(values[best]), int(rows[near]), int(cols[near]), rows.mean(), cols.mean(), len(rows)))
    peaks.sort(key=lambda p: (-p[0], p[1], p[2]))
    kept = []
    for peak in peaks:
        if all((peak[3] - other[3]) ** 2 + (peak[4] - other[4]) ** 2 >= min_distance**2 for other in kept):
            kept.append(peak)
            if len(kept) == max_peaks:
                break
    log = np.log(np.maximum(heatmap, 1e-6))
    out = np.zeros((len(kept), 4), np.float32)
    for n, (score, i, j, centre_i, centre_j, size) in enumerate(kept):
        dx, var_x = _parabola(log[i, j - 1 : j + 2]) if 0 < j < log.shape[1] - 1 else (0.0, np.nan)
        dy, var_y = _parabola(log[i - 1 : i + 2, j]) if 0 < i < log.shape[0] - 1 else (0.0, np.nan)
        sigma = np.sqrt(np.nanmean([var_x, var_y])) if not np.isnan([var_x, var_y]).all() else min_sigma
        radius = max(sigma, min_sigma) * stride / sigma_scale
        if size > 1:  # a flat top: no parabola through one cell finds its centre or width
            dx, dy = centre_j - j, centre_i - i
            radius = max(_half_max_sigma(heatmap, i, j, score), min_sigma) * stride / sigma_scale
        out[n] = ((j + 0.5 + dx) * stride, (i + 0.5 + dy) * stride, radius, score)
    return out


def _half_max_sigma(heatmap: np.ndarray, i: int, j: int, score: float) -> float:
    """The sigma, in cells, of the Gaussian whose area above half its peak is the blob's around
    cell (i, j): area = 2 pi ln 2 sigma^2, which holds however flat its top has saturated."""
    _, blob = cv2.connectedComponents((heatmap >= score / 2).astype(np.uint8), connectivity=8)
    return float(np.sqrt(np.count_nonzero(blob == blob[i, j]) / (2 * np.pi * np.log(2))))


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
                 sigma_scale: float, min_sigma: float, radius_knots=(), open_threshold: float = 0.5
                 ) -> list[Detection]:
    """Peaks of a model's heatmaps as Detections in the original frame's pixels, each radius
    calibrated by radius_knots (calibrate_radius) where the model has them, highest score first.

    heatmap: (Ho, Wo) or (Ho, Wo, 1), one map of the hands to find, whose peaks are labelled
    `label` (open_score = score); or (Ho, Wo, 2 or 3), the open-hand map, the every-hand map and
    the openness map (config.MAP_CHANNELS). Then hands are the every-hand map's peaks, and each
    one's open_score is the openness map at its peak cell, or without one the open-hand map's
    highest value in the 3x3 cells around it (the two maps' blobs need not peak in the same
    cell); label "open" when open_score reaches open_threshold, else "other"."""
    heatmap = np.asarray(heatmap, np.float32)
    maps = heatmap if heatmap.ndim == 3 else heatmap[..., None]
    hands_map = maps[..., min(1, maps.shape[-1] - 1)]
    peaks = find_peaks(hands_map, threshold, stride, sigma_scale, min_sigma)
    rows = np.clip((peaks[:, 1] // stride).astype(int), 0, hands_map.shape[0] - 1)
    cols = np.clip((peaks[:, 0] // stride).astype(int), 0, hands_map.shape[1] - 1)
    x, y, r = box.to_frame(peaks[:, 0], peaks[:, 1], calibrate_radius(peaks[:, 2], radius_knots))
    if maps.shape[-1] == 1:
        return [Detection(float(a), float(b), float(c), float(s), label, open_score=float(s))
                for a, b, c, s in zip(x, y, r, peaks[:, 3])]
    if maps.shape[-1] > 2:
        openness = maps[rows, cols, 2]
    else:
        openness = cv2.dilate(maps[..., 0], np.ones((3, 3), np.uint8))[rows, cols]
    labels = [OPEN if o >= open_threshold else OTHER for o in openness]
    return [Detection(float(a), float(b), float(c), float(s), name, open_score=float(o))
            for a, b, c, s, name, o in zip(x, y, r, peaks[:, 3], labels, openness)]
