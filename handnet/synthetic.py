"""The procedural hand dataset: handnet's default training data and the tests' fixture.

    python -m handnet.synthetic --out datasets/synthetic --count 9600      # the default run's set
    python -m handnet.synthetic --out /tmp/tiny --count 8 --size 64 96 --plain

Each scene is a crop of a real photograph shipped with scikit-image, with skin-coloured
distractors and procedural hands: open and facing (label `open`), or fists, side views and partly
hidden hands (label `other`), from about 6 px to a third of the frame in radius. The distractors
are written down too, as `face` and `arm` (Config's default labels make them `negative`: background
to the heatmap, and what a training head learns to point at, handnet.model.with_training_heads).
Each scene's label mask (masks/NNNNNN.png) marks the pixels each hand, face and arm shows, for the
segment training head. Lighting, blur, noise and JPEG compression finish it. A scene depends only on
(seed, index) and whether it is dense, so a dataset is the same bytes wherever it is generated.

A webcam frame shows a few hands, and most of what the network sees in it is background. So the
default run's set declares its own split: its training scenes are dense (2-9 hands of any size,
then 2-6 more small ones, 6-20 px in radius, and 4-8 faces or arms: DENSE_HAND_COUNTS,
DENSE_SMALL_HAND_COUNTS, DENSE_SMALL_RADII and DENSE_DISTRACTOR_COUNTS), so that every training
step teaches about four times the hands and four times the faces and arms, far hands above all,
and its validation scenes are drawn as frames are (0-5 hands, 0-3 faces or arms). Each scene's
entry in hands.json says which (`"split": "train"` or `"val"`), and train.py's split honours it
(annotations.train_val_split). With the same training steps, dense scenes lifted the default
run's F1 by 4.4 points on the same validation scenes, and the small hands by 0.7 more
(docs/default-run.md).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from handnet.annotations import NATIVE_FILE
from handnet.atomic import building_folders
from handnet.config import Config

BACKGROUNDS = (
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
    "grass.png", "gravel.png", "motorcycle_left.png", "motorcycle_right.png", "page.png",
    "rocket.jpg", "text.png", "color.png",
)
# BGR skin tones from light to dark; each hand jitters around one of them.
SKIN_TONES = np.array(
    [[189, 208, 244], [160, 190, 234], [140, 175, 225], [110, 150, 205], [90, 128, 190],
     [70, 105, 160], [55, 85, 130], [40, 62, 98], [130, 160, 200], [150, 180, 230]],
    np.float32,
)
POSES = ("open", "open", "open", "fist", "side", "partial")
# Hands and distractors per scene, each count drawn uniformly from these: a frame's, and a dense
# training scene's (module docstring).
HAND_COUNTS = (0, 1, 2, 2, 3, 3, 4, 5)
DISTRACTOR_COUNTS = (0, 1, 1, 2, 2, 3)
DENSE_HAND_COUNTS = (2, 3, 4, 5, 6, 7, 8, 9)
DENSE_DISTRACTOR_COUNTS = (4, 5, 5, 6, 6, 7, 7, 8)
# ... and then as many more small hands (far from the camera) in each dense training scene.
DENSE_SMALL_HAND_COUNTS = (2, 3, 4, 5, 6)
DENSE_SMALL_RADII = (6, 20)  # pixels, drawn log-uniformly
DISTRACTOR_LABELS = ("face", "arm")
MASK_LABELS = ("open", "other", *DISTRACTOR_LABELS)  # hands.json's mask_labels: mask value v is MASK_LABELS[v - 1]
MASK_FOLDER = "masks"
SUPERSAMPLE = 4
# Bump whenever scenes change, so that train.py regenerates a stale default dataset.
GENERATOR_VERSION = 8  # 6: faces and arms annotated; 7: label masks written (the images did not change); 8: small hands in dense scenes
PARALLEL_MIN = 256  # scenes; fewer are drawn in this process (starting workers costs a second)


@functools.lru_cache(maxsize=1)
def load_backgrounds() -> tuple[np.ndarray, ...]:
    from skimage import data as skdata  # noqa: PLC0415

    images = []
    for name in BACKGROUNDS:
        image = cv2.imread(os.path.join(skdata.data_dir, name), cv2.IMREAD_COLOR)
        if image is not None:
            images.append(image)
    if not images:
        raise RuntimeError(f"no background photographs found in {skdata.data_dir}; reinstall scikit-image")
    return tuple(images)


def generate_scene(seed: int, index: int, size=(240, 320), radii=None, with_mask: bool = False,
                   dense: bool = False):
    """One scene: ((H, W, 3) uint8 BGR, [{"x", "y", "radius", "label"}, ...]): the hands (label
    `open` or `other`), then the distractors a hand does not cover (label `face` or `arm`; radius
    about half the face's height, or 0.4 of the arm's length). radii: (min, max) hand radius in
    pixels, drawn log-uniformly; default 6 px to a third of the shorter side. with_mask: return
    also the (H, W) uint8 mask of what each pixel shows: 0 the background, v the v-th of
    MASK_LABELS (a hand's visible pixels, a face's or an arm's, whether annotated or covered).
    dense: as many hands and distractors as a dense training scene holds (module docstring)."""
    rng = np.random.default_rng([seed, index])
    height, width = size
    image = _background(rng, height, width)
    mask = np.zeros((height, width), np.uint8)
    short = min(height, width)
    hands = []
    # Distractors first, so hands may cover them as they would cover a face.
    distractor_count = rng.choice(DENSE_DISTRACTOR_COUNTS if dense else DISTRACTOR_COUNTS)
    distractors = [_draw_distractor(rng, image, short, mask) for _ in range(distractor_count)]
    count = rng.choice(DENSE_HAND_COUNTS if dense else HAND_COUNTS)
    _place_hands(rng, image, mask, hands, count, radii or (6, short / 3))
    if dense:
        _place_hands(rng, image, mask, hands, rng.choice(DENSE_SMALL_HAND_COUNTS), DENSE_SMALL_RADII)
    uncovered = [d for d in distractors
                 if all(math.hypot(d["x"] - h["x"], d["y"] - h["y"]) > h["radius"] for h in hands)]
    image = _finish(rng, image)
    return (image, hands + uncovered, mask) if with_mask else (image, hands + uncovered)


def _place_hands(rng, image, mask, hands: list[dict], count: int, radii) -> None:
    """Draw up to `count` more hands into image and mask, radii log-uniform in (min, max), each
    clear of the hands already there (50 tries in all), and append them to hands."""
    height, width = image.shape[:2]
    target = len(hands) + count
    for _ in range(50):
        if len(hands) == target:
            break
        radius = float(np.exp(rng.uniform(*np.log(radii))))
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if any(math.hypot(x - h["x"], y - h["y"]) < 0.9 * (radius + h["radius"]) for h in hands):
            continue
        pose = POSES[rng.integers(len(POSES))]
        label = "open" if pose == "open" else "other"
        _draw_hand(rng, image, x, y, radius, pose, mask, MASK_LABELS.index(label) + 1)
        hands.append({"x": round(x, 2), "y": round(y, 2), "radius": round(radius, 2), "label": label})


def generate_dataset(out: str | os.PathLike, count: int, size=(240, 320), seed: int = 0, progress=True,
                     workers: int | None = None, dense_train: int = 0) -> Path:
    """Write `count` scenes as JPEGs plus hands.json; built in a temporary folder, then renamed.
    workers: processes drawing scenes (default: one per CPU core; small sets use one).
    dense_train: if > 0, the first dense_train scenes are dense training scenes and the rest
    validation scenes, each declared in hands.json (module docstring); 0 declares no split.
    Scenes depend only on (seed, index) and density, so the folder is the same bytes whatever the
    count."""
    if not 0 <= dense_train <= count:
        raise ValueError(f"dense_train must be between 0 and the {count} scenes, got {dense_train}")
    out = Path(out)
    workers = 1 if count < PARALLEL_MIN else (workers or os.cpu_count() or 1)
    with building_folders(out) as (tmp,):
        (tmp / MASK_FOLDER).mkdir()
        jobs = [(str(tmp), seed, index, tuple(size), index < dense_train if dense_train else None)
                for index in range(count)]
        pool = None
        if workers > 1:
            # spawn, not fork: the parent may run TensorFlow's threads already.
            pool = multiprocessing.get_context("spawn").Pool(workers)
            entries = pool.imap(_write_scene, jobs, chunksize=32)
        else:
            entries = map(_write_scene, jobs)
        try:
            if progress:
                from tqdm import tqdm  # noqa: PLC0415

                entries = tqdm(entries, total=count, desc=f"synthetic -> {out}", unit="img", file=sys.stdout,
                               mininterval=0.5 if sys.stdout.isatty() else 15)
            entries = list(entries)
        finally:
            if pool is not None:
                pool.terminate()
        doc = {"format": "handnet", "version": 1, "labels": ["open", "other", *DISTRACTOR_LABELS],
               "mask_labels": list(MASK_LABELS),
               "generator": generator_record(seed, count, size, dense_train),
               "images": entries}
        (tmp / NATIVE_FILE).write_text(json.dumps(doc, indent=1) + "\n")
    return out


def dense_train_count(count: int, val_fraction: float) -> int:
    """How many of `count` scenes are dense training scenes when val_fraction of them validate."""
    return count - round(count * val_fraction)


def generator_record(seed: int, count: int, size, dense_train: int = 0) -> dict:
    """hands.json's `generator` entry: what made the set, so train.py regenerates a stale one."""
    record = {"name": "handnet.synthetic", "version": GENERATOR_VERSION, "seed": seed, "count": count,
              "size": list(size)}
    return {**record, "dense_train": dense_train} if dense_train else record


def _write_scene(job) -> dict:
    """One scene of generate_dataset, written as JPEG with its label mask as PNG; returns its
    hands.json entry. dense: True for a training scene, False for a validation one, None where
    the set declares no split."""
    folder, seed, index, size, dense = job
    image, hands, mask = generate_scene(seed, index, size, with_mask=True, dense=bool(dense))
    name, mask_name = f"{index:06d}.jpg", f"{MASK_FOLDER}/{index:06d}.png"
    quality = 70 + (index * 7919 + seed) % 26
    cv2.imwrite(os.path.join(folder, name), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    cv2.imwrite(os.path.join(folder, mask_name), mask)
    entry = {"file": name, "mask": mask_name, "width": size[1], "height": size[0], "hands": hands}
    return entry if dense is None else {**entry, "split": "train" if dense else "val"}


# ---------------------------------------------------------------------------------------------
# Gesture crops: one hand per square image, for handnet.gestures

# Finger states (thumb, index, middle, ring, pinky), 1 = extended. The default gesture sets split
# them into gestures to recognise, unknown ones trained as `na`, and unseen ones never trained on.
FINGERS = {
    "fist": (0, 0, 0, 0, 0), "point": (0, 1, 0, 0, 0), "victory": (0, 1, 1, 0, 0), "palm": (1, 1, 1, 1, 1),
    "thumb": (1, 0, 0, 0, 0), "three": (0, 1, 1, 1, 0), "four": (0, 1, 1, 1, 1), "callme": (1, 0, 0, 0, 1),
    "rock": (0, 1, 0, 0, 1), "gun": (1, 1, 0, 0, 0), "pinky": (0, 0, 0, 0, 1), "german_three": (1, 1, 1, 0, 0),
}
KNOWN_GESTURES = ("fist", "point", "victory", "palm")
UNKNOWN_GESTURES = ("thumb", "three", "four", "callme")
UNSEEN_GESTURES = ("rock", "gun", "pinky", "german_three")


def generate_gesture_crop(seed: int, index: int, gesture: str, side: int = 64) -> np.ndarray:
    """(side, side, 3) uint8 BGR: one hand showing `gesture` (a FINGERS key), framed the way
    handnet.crops frames a detected hand, on a patch of a background photograph."""
    if gesture not in FINGERS:
        raise ValueError(f"unknown synthetic gesture '{gesture}' (choose from {', '.join(FINGERS)})")
    rng = np.random.default_rng([seed, index, *gesture.encode()])
    # A hand held up to a webcam is near and in focus; the room behind it is not.
    image = cv2.GaussianBlur(_background(rng, side, side), (0, 0), rng.uniform(1.5, 4) * side / 64)
    from handnet.crops import CROP_SCALE  # noqa: PLC0415

    radius = side / (2 * CROP_SCALE) * rng.uniform(1.3, 1.6)  # the drawn hand spans about 1.3 radii
    x, y = side / 2 + rng.normal(0, 0.08) * radius, side / 2 + rng.normal(0, 0.08) * radius
    _draw_fingers(rng, image, x, y, radius, FINGERS[gesture])
    return _finish(rng, image)


def generate_gesture_folders(out: str | os.PathLike, per_class: int = 150, side: int = 64, seed: int = 0,
                             unseen_out: str | os.PathLike | None = None, na_name: str = "na") -> tuple[Path, Path]:
    """Write the default gesture sets as image folders: `out` holds one folder per known gesture
    plus `na_name/` (the unknown gestures, per_class of each), `unseen_out` (default:
    `<out>-unseen`) one folder per unseen gesture. Built under .partial names, then renamed."""
    out = Path(out)
    unseen_out = Path(unseen_out) if unseen_out else out.with_name(out.name + "-unseen")
    plan = [(out, g, g) for g in KNOWN_GESTURES] + [(out, na_name, g) for g in UNKNOWN_GESTURES]
    plan += [(unseen_out, g, g) for g in UNSEEN_GESTURES]
    with building_folders(out, unseen_out) as partials:
        partial_of = dict(zip((out, unseen_out), partials))
        for root, folder, gesture in plan:
            target = partial_of[root] / folder
            target.mkdir(exist_ok=True)
            for index in range(per_class):
                cv2.imwrite(str(target / f"{gesture}_{index:05d}.png"), generate_gesture_crop(seed, index, gesture, side))
    return out, unseen_out


def _draw_fingers(rng, image, x, y, radius, fingers):
    """A hand facing the camera with each finger extended (1) or folded (0)."""
    tone = _skin(rng)
    thumb_out, *straight = fingers
    spread = rng.uniform(0.6, 1.3)
    lengths = np.array([0.5, 0.62, 0.58, 0.46]) * rng.uniform(0.9, 1.1, 4)
    bases = [-0.27, -0.09, 0.09, 0.26]
    thumb_angle = math.radians(rng.uniform(40, 80))

    def shape(canvas, point, scale):
        _ellipse(canvas, point(0, 0.05), (scale(0.4) * 16, scale(0.42) * 16))
        _capsule(canvas, point(0, 0.4), point(0, 0.95), scale(0.46))  # wrist
        for up, base, length, fan in zip(straight, bases, lengths, (-14, -5, 4, 13)):
            if up:
                a = math.radians(fan * spread)
                _capsule(canvas, point(base, -0.25), point(base + math.sin(a) * length, -0.3 - math.cos(a) * length),
                         scale(0.16))
            else:  # folded: a knuckle above the palm
                _ellipse(canvas, point(base, -0.3), (scale(0.12) * 16, scale(0.12) * 16))
        if thumb_out:
            _capsule(canvas, point(0.3, 0.12),
                     point(0.3 + math.sin(thumb_angle) * 0.42, 0.12 - math.cos(thumb_angle) * 0.42), scale(0.19))
        else:  # across the palm
            _capsule(canvas, point(0.35, 0.15), point(0.0, -0.05), scale(0.17))

    def creases(canvas, point, scale):
        for up, base in zip(straight, bases):
            if not up:
                _capsule(canvas, point(base, -0.38), point(base, -0.2), scale(0.03))
        _capsule(canvas, point(-0.25, 0.0), point(0.2, -0.05), scale(0.025))

    _stamp(rng, image, x, y, radius, tone, shape, creases)


# ---------------------------------------------------------------------------------------------
# Scene parts


def _background(rng, height, width) -> np.ndarray:
    photos = load_backgrounds()
    photo = photos[rng.integers(len(photos))]
    ph, pw = photo.shape[:2]
    crop = rng.uniform(0.35, 1.0)
    ch = int(min(ph, pw * height / width) * crop)
    cw = int(ch * width / height)
    y0, x0 = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    image = cv2.resize(photo[y0 : y0 + ch, x0 : x0 + cw], (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    tint = rng.uniform(0.8, 1.2, 3).astype(np.float32)
    return np.clip(image.astype(np.float32) * tint, 0, 255)


def _skin(rng) -> np.ndarray:
    return SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.85, 1.12, 3).astype(np.float32)


def _overlap(image_hw, patch_hw, x0, y0):
    """(image slices, patch slices) of where a patch placed at (x0, y0) lies inside the image, or
    None where it lies wholly outside."""
    (H, W), (h, w) = image_hw, patch_hw
    ax0, ay0, ax1, ay1 = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    if ax0 >= ax1 or ay0 >= ay1:
        return None
    return (slice(ay0, ay1), slice(ax0, ax1)), (slice(ay0 - y0, ay1 - y0), slice(ax0 - x0, ax1 - x0))


def _composite(image, mask, colour_layer, x0, y0):
    """Alpha-blend a (h, w) mask in [0, 1] with its (h, w, 3) colours into image at (x0, y0)."""
    overlap = _overlap(image.shape[:2], mask.shape, x0, y0)
    if overlap is None:
        return
    inside, patch = overlap
    m = mask[patch][..., None]
    image[inside] = image[inside] * (1 - m) + colour_layer[patch] * m


def _stamp(rng, image, x, y, radius, tone, draw_shape, darken=None):
    """Draw a shape supersampled in a local patch, shade it, and blend it in at (x, y).

    draw_shape(canvas, point, scale) paints 255 into a uint8 mask; point(u, v) maps hand units
    (radius = 1, y down) to patch pixels. darken, drawn the same way, marks creases and gaps.
    Returns (the shape's coverage of the patch in [0, 1], the patch's top-left x, y in image).
    """
    half = int(math.ceil(1.6 * radius)) + 2
    k = SUPERSAMPLE
    side = 2 * half * k
    angle = rng.uniform(-0.7, 0.7) if rng.random() < 0.85 else rng.uniform(-math.pi, math.pi)
    cos, sin = math.cos(angle), math.sin(angle)
    mirror = -1 if rng.random() < 0.5 else 1

    def point(u, v):
        u *= mirror
        return (int(round((half + (u * cos - v * sin) * radius) * k * 16)),
                int(round((half + (u * sin + v * cos) * radius) * k * 16)))

    def scale(t):
        return max(1, int(round(t * radius * k)))

    canvas = np.zeros((side, side), np.uint8)
    draw_shape(canvas, point, scale)
    mask = cv2.resize(canvas, (2 * half, 2 * half), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    # Shading: light from a random side, plus darker creases between fingers.
    yy, xx = np.mgrid[-1 : 1 : 2j * half, -1 : 1 : 2j * half].astype(np.float32)
    light_angle = rng.uniform(0, 2 * math.pi)
    shade = 1 + rng.uniform(0.1, 0.3) * (xx * math.cos(light_angle) + yy * math.sin(light_angle))
    colour = np.clip(tone[None, None, :] * shade[..., None], 0, 255)
    if darken is not None:
        lines = np.zeros((side, side), np.uint8)
        darken(lines, point, scale)
        lines = cv2.resize(lines, (2 * half, 2 * half), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        colour *= 1 - 0.35 * lines[..., None]
    x0, y0 = int(round(x)) - half, int(round(y)) - half
    _composite(image, mask, colour, x0, y0)
    return mask, x0, y0


def _label(mask, stamped, value):
    """Mark in the scene's label mask the pixels a _stamp result covers at least half."""
    coverage, x0, y0 = stamped
    overlap = _overlap(mask.shape, coverage.shape, x0, y0)
    if overlap is not None:
        inside, patch = overlap
        mask[inside][coverage[patch] >= 0.5] = value


def _capsule(canvas, p0, p1, width, value=255):
    cv2.line(canvas, p0, p1, value, width, cv2.LINE_AA, shift=4)


def _ellipse(canvas, centre, axes_px, angle_deg=0, value=255):
    cv2.ellipse(canvas, centre, axes_px, angle_deg, 0, 360, value, -1, cv2.LINE_AA, shift=4)


def _draw_hand(rng, image, x, y, radius, pose, mask, value):
    """Draw a hand of `pose` and mark its visible pixels `value` in the label mask."""
    tone = _skin(rng)
    spread = rng.uniform(0.6, 1.3)
    lengths = np.array([0.5, 0.62, 0.58, 0.46]) * rng.uniform(0.9, 1.1, 4)
    bases = [-0.27, -0.09, 0.09, 0.26]

    def fingers(canvas, point, scale, width=0.16):
        for base, length, fan in zip(bases, lengths, (-14, -5, 4, 13)):
            a = math.radians(fan * spread)
            tip = (base + math.sin(a) * length, -0.3 - math.cos(a) * length)
            _capsule(canvas, point(base, -0.25), point(*tip), scale(width))
        thumb = math.radians(rng_thumb)
        _capsule(canvas, point(0.3, 0.12), point(0.3 + math.sin(thumb) * 0.42, 0.12 - math.cos(thumb) * 0.42),
                 scale(0.19))

    def palm(canvas, point, scale, wide=0.4, tall=0.42):
        _ellipse(canvas, point(0, 0.05), (scale(wide) * 16, scale(tall) * 16))
        _capsule(canvas, point(0, 0.4), point(0, 0.95), scale(0.46))  # wrist

    rng_thumb = rng.uniform(40, 80)
    if pose in ("open", "partial"):
        def shape(canvas, point, scale):
            palm(canvas, point, scale)
            fingers(canvas, point, scale)

        def creases(canvas, point, scale):
            for base in (-0.18, 0.0, 0.18):
                _capsule(canvas, point(base, -0.22), point(base, -0.32), scale(0.03))
            _capsule(canvas, point(-0.25, 0.0), point(0.2, -0.05), scale(0.025))

        _label(mask, _stamp(rng, image, x, y, radius, tone, shape, creases), value)
        if pose == "partial":
            _occlude(rng, image, x, y, radius, mask)
    elif pose == "fist":
        def shape(canvas, point, scale):
            palm(canvas, point, scale, wide=0.42, tall=0.4)
            for base in bases:
                _ellipse(canvas, point(base, -0.3), (scale(0.12) * 16, scale(0.12) * 16))
            _capsule(canvas, point(0.35, 0.15), point(0.0, -0.05), scale(0.17))

        def knuckles(canvas, point, scale):
            for base in bases[:-1]:
                _capsule(canvas, point(base + 0.09, -0.38), point(base + 0.09, -0.15), scale(0.025))

        _label(mask, _stamp(rng, image, x, y, radius * 0.8, tone, shape, knuckles), value)
    else:  # side view: the edge of a flat hand, thumb out
        def shape(canvas, point, scale):
            _ellipse(canvas, point(0, -0.15), (scale(0.15) * 16, scale(0.7) * 16))
            _capsule(canvas, point(0.05, 0.2), point(0.4, -0.2), scale(0.16))
            _capsule(canvas, point(0, 0.4), point(0, 0.95), scale(0.36))

        _label(mask, _stamp(rng, image, x, y, radius, tone, shape), value)


def _occlude(rng, image, x, y, radius, mask):
    """Hide part of a hand behind a flat, background-coloured bar (a cup, an edge of a desk);
    the label mask shows background there."""
    h, w = image.shape[:2]
    colour = image[int(np.clip(y - radius, 0, h - 1)), int(np.clip(x - 1.5 * radius, 0, w - 1))].copy()
    angle = rng.uniform(0, math.pi)
    offset = rng.uniform(-0.2, 0.3) * radius
    cx, cy = x + offset * math.cos(angle), y + offset * math.sin(angle)
    # Short enough never to reach a neighbouring hand (hands keep 0.9 radii sums apart).
    half_len, half_wid = 1.1 * radius, rng.uniform(0.3, 0.5) * radius
    corners = np.array([[-half_len, -half_wid], [half_len, -half_wid], [half_len, half_wid], [-half_len, half_wid]])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    poly = (corners @ rot.T + [cx, cy]).astype(np.int32)
    cv2.fillConvexPoly(image, poly, colour.tolist(), cv2.LINE_AA)
    cv2.fillConvexPoly(mask, poly, 0)


def _draw_distractor(rng, image, short, mask) -> dict:
    """A skin-coloured face or arm, marked in the label mask; returns it as an annotation (label
    `face` or `arm`)."""
    tone = _skin(rng)
    h, w = image.shape[:2]
    x, y = rng.uniform(0, w), rng.uniform(0, h)
    size = float(np.exp(rng.uniform(np.log(8), np.log(short / 2.5))))
    kind = rng.choice(["face", "arm"])
    if kind == "face":
        def shape(canvas, point, scale):
            _ellipse(canvas, point(0, 0), (scale(0.62) * 16, scale(0.85) * 16))
            _capsule(canvas, point(0, 0.8), point(0, 1.4), scale(0.5))  # neck

        def features(canvas, point, scale):
            for ex in (-0.25, 0.25):
                _ellipse(canvas, point(ex, -0.1), (scale(0.1) * 16, scale(0.05) * 16), value=255)
            _capsule(canvas, point(-0.2, 0.45), point(0.2, 0.45), scale(0.05))
            _ellipse(canvas, point(0, -0.75), (scale(0.6) * 16, scale(0.25) * 16))  # hairline

        stamped = _stamp(rng, image, x, y, size * 0.6, tone, shape, features)
    else:
        def shape(canvas, point, scale):
            _capsule(canvas, point(0, -1.0), point(0, 1.0), scale(0.3))

        stamped = _stamp(rng, image, x, y, size, tone, shape)
    _label(mask, stamped, MASK_LABELS.index(str(kind)) + 1)
    radius = size * (0.5 if kind == "face" else 0.4)
    return {"x": round(x, 2), "y": round(y, 2), "radius": round(radius, 2), "label": str(kind)}


def _finish(rng, image) -> np.ndarray:
    """Lighting, blur and sensor noise, then back to uint8."""
    h, w = image.shape[:2]
    gain = rng.uniform(0.6, 1.35)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    gradient = 1 + rng.uniform(0, 0.35) * ((xx / w - 0.5) * math.cos(a) + (yy / h - 0.5) * math.sin(a))
    image = image * gain * gradient[..., None]
    gamma_curve = 255 * (np.arange(256, dtype=np.float32) / 255) ** rng.uniform(0.75, 1.3)
    image = cv2.LUT(np.clip(image + 0.5, 0, 255).astype(np.uint8), gamma_curve)  # float32 again
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.4))
    elif rng.random() < 0.3:
        length = int(rng.integers(3, 8))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1 / length
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1)
        image = cv2.filter2D(image, -1, cv2.warpAffine(kernel, rot, (length, length)))
    image = image + rng.uniform(0, 7) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handnet.synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="dataset folder to (re)create")
    parser.add_argument("--count", type=int, default=Config.synthetic_count)
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=Config.val_fraction,
                        help="share of scenes drawn as validation scenes (default %(default)s); the rest are "
                             "dense training scenes")
    parser.add_argument("--plain", action="store_true",
                        help="every scene drawn as a frame (0-5 hands), no split declared (train.py --no-dense-scenes)")
    args = parser.parse_args(argv)
    if args.count < 1 or min(args.size) < 32:
        parser.error("--count must be >= 1 and --size at least 32x32")
    if not 0 <= args.val_fraction < 1:
        parser.error(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    dense_train = 0 if args.plain else dense_train_count(args.count, args.val_fraction)
    generate_dataset(args.out, args.count, tuple(args.size), args.seed, dense_train=dense_train)
    return 0


if __name__ == "__main__":
    sys.exit(main())
