"""tf.data input pipeline: read, augment, letterbox, render targets, batch, prefetch.

Images stream from disk one at a time (memory does not grow with the dataset). Each element is
(image, y_true):

- image: (H, W, 3) float32 BGR in [0, 255], the model input (the model normalises it itself);
- y_true: (H/s, W/s, 2) float32, channel 0 the heatmap target in [0, 1], channel 1 the per-pixel
  loss weight in {0, 1} (packed together because Keras passes losses one y_true); then a target
  and weight for each training head (handnet.targets.training_targets; the segment head has one
  per role, then a weight).

Augmentation draws from a generator seeded by (seed, draw number), so a run is repeatable.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from handnet.annotations import Sample, read_image
from handnet.config import PRESET_SIZE_MULTIPLES, Config
from handnet.letterbox import PAD_VALUE
from handnet.targets import (
    ROLE_CODES, hands_array, letterboxed_input, letterboxed_roles, role_image, target_channels, training_targets,
)

# tf.data already runs loads in parallel; OpenCV threads on top only oversubscribe the cores.
cv2.setNumThreads(1)


def random_affine(rng, frame_hw, input_hw, crop_hw=None, scale_range=(0.7, 1.4), flip=True,
                  focus=None) -> np.ndarray:
    """A letterbox with random zoom, shift and flip, then a random crop_hw window of the input:
    (2, 3) crop = A @ [x, y, 1], continuous coords. focus: an (x, y) frame point the crop window
    must hold, somewhere inside its middle 70%, instead of a window anywhere in the input."""
    (h, w), (H, W) = frame_hw, input_hw
    scale = min(H / h, W / w) * math.exp(rng.uniform(*np.log(scale_range)))
    # Shift anywhere that keeps at least part of the frame in view.
    max_dx = abs(w * scale - W) / 2 + 0.15 * W
    max_dy = abs(h * scale - H) / 2 + 0.15 * H
    cx, cy = W / 2 + rng.uniform(-max_dx, max_dx), H / 2 + rng.uniform(-max_dy, max_dy)
    sx = -scale if flip and rng.random() < 0.5 else scale
    crop_h, crop_w = crop_hw or input_hw
    tx, ty = cx - sx * w / 2, cy - scale * h / 2
    if focus is None:
        x0, y0 = rng.uniform(0, W - crop_w), rng.uniform(0, H - crop_h)
    else:
        x0 = sx * focus[0] + tx - rng.uniform(0.15, 0.85) * crop_w
        y0 = scale * focus[1] + ty - rng.uniform(0.15, 0.85) * crop_h
    return np.array([[sx, 0, tx - x0], [0, scale, ty - y0]], np.float64)


def warp(frame: np.ndarray, matrix: np.ndarray, input_hw) -> np.ndarray:
    """Apply a continuous-coordinate affine; large reductions go through an area resize first."""
    scale = abs(matrix[0, 0])
    if scale < 0.5:
        h, w = frame.shape[:2]
        new_w, new_h = max(1, round(w * 2 * scale)), max(1, round(h * 2 * scale))
        frame = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)
        # A resize scales continuous coordinates by new size / old size on each axis.
        matrix = matrix @ np.diag([w / new_w, h / new_h, 1.0])
    # OpenCV addresses pixel centres at integers, so shift by half a pixel on both sides.
    cv_matrix = matrix.copy()
    cv_matrix[:, 2] += 0.5 * (matrix[:, 0] + matrix[:, 1]) - 0.5
    return cv2.warpAffine(frame, cv_matrix, (input_hw[1], input_hw[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE,) * 3)


def transform_hands(hands: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    out = hands.copy()
    out[:, :2] = hands[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    out[:, 2] = hands[:, 2] * abs(matrix[1, 1])
    return out


def jitter_colours(rng, image: np.ndarray) -> np.ndarray:
    """Brightness, contrast, saturation, a small hue shift, then maybe blur and noise. float32."""
    image = image.astype(np.float32)
    grey = image.mean(axis=2, keepdims=True)
    image = grey + (image - grey) * rng.uniform(0.6, 1.4)  # saturation
    image = (image - image.mean()) * rng.uniform(0.7, 1.3) + image.mean() * rng.uniform(0.7, 1.3)
    image = image * rng.uniform(0.9, 1.1, 3).astype(np.float32)  # white balance
    if rng.random() < 0.25:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.3:
        image = image + rng.normal(0, rng.uniform(1, 6), image.shape).astype(np.float32)
    return np.clip(image, 0, 255)


def make_example(sample: Sample, config: Config, rng=None, pool=()) -> tuple[np.ndarray, np.ndarray]:
    """One (image, y_true) pair as documented above. With rng, a training example: an augmented
    crop of config.train_size when config.augment (a mosaic of it and samples drawn from `pool`, a
    config.mosaic share of the time), else the letterboxed input mirrored at random when
    config.flip, then cut to a crop (cut_crop) when config.crop_size. With rng=None, the whole
    letterboxed input, unaugmented. The sample's label mask, where it has one and the segment head
    trains, goes through the same geometry."""
    if rng is not None and config.augment and len(pool) and rng.random() < config.mosaic:
        return make_mosaic(sample, config, rng, pool)
    segment = bool(sample.mask) and config.segment_weight > 0
    if rng is None or not config.augment:
        image, hands = letterboxed_input(sample, config)
        roles = letterboxed_roles(sample, config) if segment else None
        if draws_flip(rng, config):
            image, hands = mirror(image, hands)
            roles = None if roles is None else np.ascontiguousarray(roles[:, ::-1])
        image, y_true = cut_crop(rng, image, training_targets(hands, config.input_size, config, roles), config)
        return image.astype(np.float32), y_true
    frame = read_image(sample.path)
    hands = hands_array(sample)
    # Hand-centred crops: a random crop holds a positive hand only now and then, and those
    # are what the focal loss learns from.
    positives = hands[hands[:, 3] == ROLE_CODES["positive"]]
    focus = None
    if len(positives) and config.focus_crops > 0 and rng.random() < config.focus_crops:
        focus = positives[rng.integers(len(positives)), :2]
    size = config.train_size
    matrix = random_affine(rng, frame.shape[:2], config.input_size, size, focus=focus)
    image = jitter_colours(rng, warp(frame, matrix, size))
    roles = warp(role_image(sample), matrix, size) if segment else None
    return image, training_targets(transform_hands(hands, matrix), size, config, roles)


MOSAIC_GRIDS = (2, 3)  # cells per side: hands 2-3x smaller than in a whole augmented frame


def make_mosaic(sample: Sample, config: Config, rng, pool) -> tuple[np.ndarray, np.ndarray]:
    """An augmented training example made of a k x k grid (k in MOSAIC_GRIDS) of augmented
    images, the sample's in a random cell and the others drawn from `pool`: each image is
    letterboxed into its cell with the usual random zoom, shift and flip, so hands come out k
    times smaller, among real rooms, faces and bodies rather than on a plain border (the people
    at 1-4 m that a letterboxed webcam or phone frame makes small). A hand whose centre falls
    outside its own cell is dropped; the cells' edges cut it off."""
    size = config.train_size
    k = int(rng.choice(MOSAIC_GRIDS))
    edges_y = np.linspace(0, size[0], k + 1).round().astype(int)
    edges_x = np.linspace(0, size[1], k + 1).round().astype(int)
    members = [pool[i] for i in rng.integers(len(pool), size=k * k)]
    members[rng.integers(k * k)] = sample
    image = np.empty((*size, 3), np.uint8)
    all_hands = []
    for cell, member in enumerate(members):
        (y0, y1), (x0, x1) = edges_y[cell // k : cell // k + 2], edges_x[cell % k : cell % k + 2]
        cell_hw = (int(y1 - y0), int(x1 - x0))
        frame = read_image(member.path)
        matrix = random_affine(rng, frame.shape[:2], cell_hw)
        image[y0:y1, x0:x1] = warp(frame, matrix, cell_hw)
        hands = transform_hands(hands_array(member), matrix)
        inside = (hands[:, 0] >= 0) & (hands[:, 0] < cell_hw[1]) & (hands[:, 1] >= 0) & (hands[:, 1] < cell_hw[0])
        all_hands.append(hands[inside] + np.array([x0, y0, 0, 0], np.float32))
    # No label masks: cells of masked and unmasked images side by side would teach the segment
    # head that an unmasked photo shows nothing, so a mosaic does not train it.
    return jitter_colours(rng, image), training_targets(np.concatenate(all_hands), size, config, None)


def draws_flip(rng, config: Config) -> bool:
    """Whether an unaugmented training example is mirrored: one draw from its rng when config.flip."""
    return rng is not None and config.flip and rng.random() < 0.5


def cut_crop(rng, image: np.ndarray, y_true: np.ndarray, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """An unaugmented training example cut to a random config.train_size window (the example
    itself where rng is None or config.crop_size is unset). Windows lie on the grid of the preset's
    size multiple, so the crop's heatmap cells are cells of the whole input's heatmap and its y_true
    is a slice of the whole one: a hand the window cuts keeps the visible part of its blob. With
    probability config.focus_crops the window holds a random positive peak (y_true channel 0
    exactly 1) in its middle 70%, else it lies anywhere. Slicing views: no copy."""
    if rng is None or not config.crop_size:
        return image, y_true
    stride = config.stride
    step = PRESET_SIZE_MULTIPLES[config.preset] // stride  # in output cells
    (rows, cols), (crop_rows, crop_cols) = y_true.shape[:2], config.heatmap_size(config.train_size)
    last_row, last_col = (rows - crop_rows) // step, (cols - crop_cols) // step  # in steps
    peaks = np.argwhere(y_true[..., 0] >= 1.0) if config.focus_crops > 0 else ()
    if len(peaks) and rng.random() < config.focus_crops:
        row, col = peaks[rng.integers(len(peaks))]
        row0 = _start_around(row, rng.uniform(0.15, 0.85) * crop_rows, crop_rows, step, last_row)
        col0 = _start_around(col, rng.uniform(0.15, 0.85) * crop_cols, crop_cols, step, last_col)
    else:
        row0, col0 = int(rng.integers(last_row + 1)), int(rng.integers(last_col + 1))
    row0, col0 = row0 * step, col0 * step
    y, x = row0 * stride, col0 * stride
    return (image[y:y + crop_rows * stride, x:x + crop_cols * stride],
            y_true[row0:row0 + crop_rows, col0:col0 + crop_cols])


def _start_around(cell: int, offset: float, size: int, step: int, last: int) -> int:
    """In steps: the start nearest cell - offset of a window of `size` cells that holds `cell`."""
    lowest, highest = -(-(cell - size + 1) // step), cell // step
    return int(np.clip(np.clip(round((cell - offset) / step), lowest, highest), 0, last))


def mirror(image: np.ndarray, hands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image mirrored left-right, and its (N, 4) hands with them (continuous x -> width - x)."""
    flip = np.array([[-1.0, 0.0, image.shape[1]], [0.0, 1.0, 0.0]])
    return np.ascontiguousarray(image[:, ::-1]), transform_hands(hands, flip)


class PreparedExamples:
    """The unaugmented examples of some samples (make_example with rng=None), computed once and
    kept in two memory-mapped .npy files: images as uint8 (as read: the letterbox of a uint8
    frame), y_true as float32. Reading one back costs a copy instead of a JPEG decode, a mask
    decode and the targets' rendering, which on a 2-core CPU compete with training for the cores
    (docs/default-run.md). Memory stays flat: the files live on disk, about 280 KB per 240 x 320
    image with all training heads, and the operating system pages them in as they are read."""

    def __init__(self, samples: list[Sample], config: Config, folder: Path, label: str = "preparing"):
        distinct = {sample.path: sample for sample in samples}  # a repeated image (--data-repeats) gets one row
        self.config, self.row_of = config, {path: row for row, path in enumerate(distinct)}
        image_shape = (*config.input_size, 3)
        target_shape = (*config.heatmap_size(config.input_size), target_channels(config))
        needed = len(distinct) * (math.prod(image_shape) + 4 * math.prod(target_shape))
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
        if needed > free:  # a memory-mapped write to a full disk would crash, not raise
            raise OSError(f"{folder}: preparing {len(distinct)} examples needs {needed / 1e6:,.0f} MB of disk, "
                          f"{free / 1e6:,.0f} MB free (--no-prepare makes them afresh every epoch instead)")
        self.images = np.lib.format.open_memmap(folder / "images.npy", "w+", np.uint8, (len(distinct), *image_shape))
        self.targets = np.lib.format.open_memmap(folder / "targets.npy", "w+", np.float32,
                                                 (len(distinct), *target_shape))
        # The validation stream: the same examples in the same order, loaded in parallel.
        batches = make_dataset(list(distinct.values()), config, training=False).as_numpy_iterator()
        row = 0
        total = math.ceil(len(distinct) / config.batch_size)
        for images, targets in tqdm(batches, desc=label, unit="batch", total=total, mininterval=5):
            self.images[row:row + len(images)] = images  # whole numbers: uint8 holds them exactly
            self.targets[row:row + len(images)] = targets
            row += len(images)

    def example(self, sample: Sample, rng=None) -> tuple[np.ndarray, np.ndarray]:
        """make_example(sample, config, rng) for an unaugmented config. A mirrored example
        mirrors the stored image and y_true, which matches the targets rendered for the mirrored
        image to about 1e-6, except where a hand's centre lies exactly on a cell boundary: of the
        two cells equally near it, the mirror sets the other one to 1 as its peak."""
        row = self.row_of[sample.path]
        image, y_true = self.images[row], self.targets[row]
        if draws_flip(rng, self.config):  # make_example's draws, so both streams flip and crop alike
            image, y_true = image[:, ::-1], y_true[:, ::-1]
        image, y_true = cut_crop(rng, image, y_true, self.config)  # views: only the crop is copied below
        return image.astype(np.float32), np.array(y_true)


def make_dataset(samples: list[Sample], config: Config, training: bool, skip: int = 0,
                 prepared: PreparedExamples | None = None) -> tf.data.Dataset:
    """Batched, prefetched dataset. Training: shuffled, augmented and repeated forever (give
    Keras steps_per_epoch); validation: one pass in file order, letterboxed only. skip: training
    examples already used (a resumed run), so that the stream goes on exactly where it was.
    prepared: read the examples from there instead of making each (unaugmented configs only)."""
    if not samples:
        raise ValueError("no samples to build a dataset from")
    augment = training and config.augment
    if augment and prepared is not None:
        raise ValueError("prepared examples are unaugmented; --augment needs every frame read afresh")
    randomised = training and (config.augment or config.flip or bool(config.crop_size))  # draws from a seeded rng
    height, width = config.train_size if training else config.input_size
    out_h, out_w = config.heatmap_size((height, width))
    channels = target_channels(config)

    def load(index, draw):
        rng = np.random.default_rng([config.seed, int(draw)]) if randomised else None
        if prepared is not None:
            return prepared.example(samples[int(index)], rng)
        image, y_true = make_example(samples[int(index)], config, rng, pool=samples if augment else ())
        return image.astype(np.float32), y_true.astype(np.float32)

    def tf_load(index, draw):
        image, y_true = tf.numpy_function(load, [index, draw], [tf.float32, tf.float32], stateful=False)
        image.set_shape((height, width, 3))
        y_true.set_shape((out_h, out_w, channels))
        return image, y_true

    ds = tf.data.Dataset.range(len(samples))
    if training:
        ds = ds.shuffle(len(samples), seed=config.seed, reshuffle_each_iteration=True).repeat()
    ds = ds.enumerate().skip(skip)  # skipping indices, before anything is loaded
    ds = ds.map(lambda draw, index: tf_load(index, draw), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(config.batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
