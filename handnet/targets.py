"""Hands -> heatmap target and per-pixel weight mask, at the network's output stride. NumPy only.

Each positive hand becomes a blob whose size follows its radius: a Gaussian (default) or the
seed's flat disk. The Gaussian is centred on the hand's exact position, so its neighbours carry
the sub-cell offset that peak refinement reads back, and the hand's own output cell is set to
exactly 1.0, which is what the focal loss counts as a positive. Around ignore hands the weight
is 0, so the network is free to light them up a little; positive blobs keep weight 1 where the
two overlap.

Training can add more targets, each a heatmap and weight after the heatmap's in y_true
(handnet.model.with_training_heads): every annotated hand, ignore ones included, as positive
blobs (Config.aux_weight > 0), for a head that learns what any hand looks like; inside every
hand, 1 on open and 0 on other hands, weight 0 elsewhere (openness_targets, Config.openness_weight
> 0); then the
annotated negatives (the synthetic set's faces and arms) as positive blobs (Config.negative_weight
> 0), for a head that learns what the false alarms look like.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from handnet.annotations import Sample, read_image, read_mask
from handnet.config import ROLES
from handnet.letterbox import apply_letterbox

ROLE_CODES = {"negative": 0, "positive": 1, "ignore": 2}


def hands_array(sample: Sample) -> np.ndarray:
    """(N, 4) float32 [x, y, radius, role code] in frame pixels."""
    rows = [(h.x, h.y, h.radius, ROLE_CODES[h.role]) for h in sample.hands]
    return np.asarray(rows, np.float32).reshape(-1, 4)


def config_targets(hands: np.ndarray, size_hw, config) -> tuple[np.ndarray, np.ndarray]:
    """render_targets for a network input of size_hw with a Config's stride and target settings."""
    return render_targets(hands, config.heatmap_size(size_hw), config.stride, config.target, config.sigma_scale,
                          config.min_sigma, config.ignore_margin)


# What each heatmap-like training head makes of the annotations, by role code: the role each
# becomes in its target (positive: a blob to light up, ignore: zero weight around it); roles not
# listed are background. The `segment` head learns from label masks instead (segment_targets).
HEAD_ROLES = {
    "every_hand": {ROLE_CODES["positive"]: ROLE_CODES["positive"], ROLE_CODES["ignore"]: ROLE_CODES["positive"]},
    "negatives": {ROLE_CODES["negative"]: ROLE_CODES["positive"]},  # faces, arms: hands are background
}


def target_channels(config) -> int:
    """Channels of y_true: heatmap and weight, then each training head's targets and a weight
    (Config.training_heads, HEAD_OUTPUTS)."""
    return 2 + sum(outputs + 1 for _, _, outputs in config.training_heads)


def training_targets(hands: np.ndarray, size_hw, config, roles: np.ndarray | None = None) -> np.ndarray:
    """y_true for a network input of size_hw: (Ho, Wo, target_channels(config)) float32.
    roles: the input's role image (role_image, transformed as the input was), or None where the
    sample has no mask, which leaves the segment head's weight 0."""
    hands = np.asarray(hands, np.float32).reshape(-1, 4)
    channels = list(config_targets(hands, size_hw, config))
    for name, _, _ in config.training_heads:
        if name == "segment":
            channels += segment_targets(roles, config.heatmap_size(size_hw))
            continue
        if name == "openness":
            channels += openness_targets(hands, config.heatmap_size(size_hw), config.stride)
            continue
        becomes = HEAD_ROLES[name]
        shown = np.array([(x, y, r, becomes[code]) for x, y, r, code in hands if code in becomes], np.float32)
        channels += config_targets(shown.reshape(-1, 4), size_hw, config)
    return np.stack(channels, axis=-1)


def openness_targets(hands: np.ndarray, out_hw, stride: int) -> list[np.ndarray]:
    """The openness head's y_true channels: 1 inside each open (positive) hand and 0 inside each
    other (ignore) hand, out to its radius and always on its own cell, then the weight: 1 there,
    0 elsewhere and where an open and an other hand overlap (neither answer is right there)."""
    rows, cols = np.mgrid[0 : out_hw[0], 0 : out_hw[1]].astype(np.float32)
    inside = {ROLE_CODES["positive"]: np.zeros(out_hw, bool), ROLE_CODES["ignore"]: np.zeros(out_hw, bool)}
    for x, y, radius, role in np.asarray(hands, np.float32).reshape(-1, 4):
        u, v = x / stride, y / stride
        if role not in inside or not (0 <= u < out_hw[1] and 0 <= v < out_hw[0]):
            continue  # a hand cut off by a crop says nothing about the cells left
        disk = (cols + 0.5 - u) ** 2 + (rows + 0.5 - v) ** 2 <= max(radius / stride, 0.5) ** 2
        disk[int(v), int(u)] = True
        inside[role] |= disk
    is_open, is_other = inside[ROLE_CODES["positive"]], inside[ROLE_CODES["ignore"]]
    return [is_open.astype(np.float32), (is_open ^ is_other).astype(np.float32)]


def role_image(sample: Sample) -> np.ndarray | None:
    """(H, W, len(ROLES)) uint8 of the sample's label mask: 255 in channel k where the pixel shows
    a thing whose role is ROLES[k], else 0. None for a sample without a mask. Letterbox, warp and
    mirror it as the image, then segment_targets."""
    if not sample.mask:
        return None
    table = np.zeros((256, 1, len(ROLES)), np.uint8)
    for value, role in enumerate(sample.mask_roles, start=1):
        table[value, 0, ROLES.index(role)] = 255
    mask = read_mask(sample)
    return cv2.LUT(cv2.merge([mask] * len(ROLES)), table)  # a per-channel table lookup, 5x numpy's gather


def segment_targets(roles: np.ndarray | None, out_hw) -> list[np.ndarray]:
    """The segment head's y_true channels at the output size: the share of each cell that shows
    each role (a role image's area average), then the weight, 1 everywhere; all zeros without a
    mask, so the sample does not train the head."""
    if roles is None:
        return [np.zeros(out_hw, np.float32)] * (len(ROLES) + 1)
    cells = cv2.resize(roles, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return [*np.moveaxis(cells.reshape(*out_hw, len(ROLES)), -1, 0), np.ones(out_hw, np.float32)]


def letterboxed_roles(sample: Sample, config) -> np.ndarray | None:
    """role_image letterboxed to config.input_size as letterboxed_input letterboxes the image."""
    roles = role_image(sample)
    return None if roles is None else apply_letterbox(roles, config.input_size)[0]


def letterboxed_input(sample: Sample, config) -> tuple[np.ndarray, np.ndarray]:
    """What evaluation feeds the network: (image (H, W, 3) uint8 letterboxed to
    config.input_size, the sample's hands (N, 4) in its pixels)."""
    image, box = apply_letterbox(read_image(sample.path), config.input_size)
    hands = hands_array(sample)
    hands[:, 0], hands[:, 1] = box.to_input(hands[:, 0], hands[:, 1])
    hands[:, 2] *= math.sqrt(box.scale_x * box.scale_y)
    return image, hands


def letterboxed_example(sample: Sample, config) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """letterboxed_input and what it is measured against: (image, hands, heatmap target, weight)."""
    image, hands = letterboxed_input(sample, config)
    return (image, hands, *config_targets(hands, config.input_size, config))


def render_targets(
    hands: np.ndarray,
    output_hw: tuple[int, int],
    stride: int,
    kind: str = "gaussian",
    sigma_scale: float = 0.35,
    min_sigma: float = 0.8,
    ignore_margin: float = 1.25,
) -> tuple[np.ndarray, np.ndarray]:
    """hands: (N, 4) float [x, y, radius, role code] in network-input pixels.

    Returns heatmap (Ho, Wo) float32 in [0, 1] and weight (Ho, Wo) float32 in {0, 1}. A positive
    hand whose centre falls outside the input has been cut off by cropping: it is treated as an
    ignore hand, since its visible part may well look like a hand.
    """
    out_h, out_w = output_hw
    heatmap = np.zeros(output_hw, np.float32)
    weight = np.ones(output_hw, np.float32)
    rows, cols = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    keep_positive = np.zeros(output_hw, bool)
    for x, y, radius, role in np.asarray(hands, np.float32).reshape(-1, 4):
        # Hand centre in output cells, continuous (cell j covers [j, j + 1)).
        u, v, r = x / stride, y / stride, max(radius / stride, 0.5)
        dist2 = (cols + 0.5 - u) ** 2 + (rows + 0.5 - v) ** 2
        inside = 0 <= u < out_w and 0 <= v < out_h
        if role == ROLE_CODES["positive"] and inside:
            ci, cj = int(v), int(u)
            if kind == "gaussian":
                sigma = max(sigma_scale * r, min_sigma)
                blob = np.exp(-dist2 / (2 * sigma**2))
            elif kind == "disk":
                blob = (dist2 <= r**2).astype(np.float32)
            else:
                raise ValueError(f"unknown target kind '{kind}' (gaussian | disk)")
            blob[ci, cj] = 1.0
            np.maximum(heatmap, blob, out=heatmap)
            keep_positive |= dist2 <= r**2
            keep_positive[ci, cj] = True
        elif role in (ROLE_CODES["ignore"], ROLE_CODES["positive"]):
            weight[dist2 <= (ignore_margin * r + 1) ** 2] = 0.0
    weight[keep_positive] = 1.0
    return heatmap, weight
