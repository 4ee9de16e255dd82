"""Shared fixtures: tiny datasets written in tmp_path in the real on-disk formats."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


def write_image(path: Path, height=64, width=96, value=None, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8) if value is None else np.full(
        (height, width, 3), value, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    return path


def write_native(root: Path, entries: dict[str, list[dict]], height=64, width=96) -> Path:
    """entries: file name -> [{"x", "y", "radius", "label"}]."""
    root.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(entries):
        write_image(root / name, height, width, seed=k)
    doc = {"format": "handnet", "version": 1, "images": [{"file": n, "hands": h} for n, h in entries.items()]}
    (root / "hands.json").write_text(json.dumps(doc))
    return root


@pytest.fixture
def native_dataset(tmp_path):
    return write_native(tmp_path / "native", {
        "a.jpg": [{"x": 20, "y": 30, "radius": 10, "label": "open"}],
        "b.jpg": [{"x": 50, "y": 20, "radius": 6, "label": "other"}, {"x": 80, "y": 50, "radius": 12, "label": "open"}],
        "c.jpg": [],
    })


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    from handnet.synthetic import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("syn") / "tiny", 24, (64, 96), seed=3, progress=False)


# ---------------------------------------------------------------------------------------------
# A toy detector: the fast preset trained in seconds to light up bright disks on dark noise.

TOY_SIZE = (64, 96)
DISK_COLOUR = (220, 230, 240)


def disk_scene(rng, height=TOY_SIZE[0], width=TOY_SIZE[1]):
    """A noisy dark frame with 1-2 bright disks, and their hands as [x, y, radius, role]."""
    image = rng.integers(0, 60, (height, width, 3)).astype(np.uint8)
    hands = []
    for _ in range(rng.integers(1, 3)):
        r = rng.uniform(5, 10)
        x, y = rng.uniform(r, width - r), rng.uniform(r, height - r)
        if all(np.hypot(x - a, y - b) > 3 * r for a, b, _, _ in hands):
            cv2.circle(image, (int(x), int(y)), int(r), DISK_COLOUR, -1)
            hands.append((x, y, r, 1))
    return image, np.array(hands, np.float32)


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    """(model, config, frames): a tiny fast model that has learned to light up bright disks in
    both its maps (every disk is an open hand), its config (whose data is a dataset folder of such
    scenes, for QAT), and six test frames."""
    import keras

    from handnet.config import Config
    from handnet.model import build_model
    from handnet.targets import render_targets

    folder = tmp_path_factory.mktemp("disks")
    config = Config(input_size=TOY_SIZE, data=[str(folder)], score_threshold=0.5, openness_weight=0)  # no other hands to tell apart
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images, targets, entries = [], [], []
    for index in range(96):
        image, hands = disk_scene(rng)
        cv2.imwrite(str(folder / f"{index:03d}.png"), image)
        entries.append({"file": f"{index:03d}.png", "hands": [
            {"x": float(x), "y": float(y), "radius": float(r), "label": "open"} for x, y, r, _ in hands]})
        heat, weight = render_targets(hands, config.output_size, config.stride, "gaussian",
                                      config.sigma_scale, config.min_sigma, config.ignore_margin)
        images.append(image.astype(np.float32))
        targets.append(np.stack([heat, weight], -1))
    model = build_model(config)
    model.compile(keras.optimizers.Adam(3e-3), loss=keras.losses.BinaryCrossentropy())
    heat = np.stack(targets)[..., :1]
    model.fit(np.stack(images), np.concatenate([heat, heat], -1), batch_size=8, epochs=25, verbose=0)
    (folder / "hands.json").write_text(json.dumps({"format": "handnet", "version": 1, "images": entries}))
    frames = [disk_scene(rng)[0] for _ in range(6)]
    return model, config, frames


@pytest.fixture(scope="session")
def toy_run(toy, tmp_path_factory):
    """A run folder of the toy model as train.py leaves it: model.keras, config.json and
    model-int8.tflite."""
    from handnet.export import export_model

    model, config, frames = toy
    run = tmp_path_factory.mktemp("toy_run")
    model.save(run / "model.keras")
    config.save(run / "config.json")
    export_model(model, config, "int8", run / "model-int8.tflite", frames=[f.astype(np.float32) for f in frames])
    return run


# A video for infer.py and the demo game: one disk moving right past a still one, in frames
# twice the toy model's input, so coordinates must come back in video pixels.
VIDEO_SCALE = 2
STILL = (140.0, 40.0, 16.0)  # x, y, radius in video pixels


def moving_centre(k):
    return 30.0 + 4.0 * k, 90.0, 14.0


def disk_frame(rng, disks):
    h, w = TOY_SIZE[0] * VIDEO_SCALE, TOY_SIZE[1] * VIDEO_SCALE
    image = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
    for x, y, r in disks:
        cv2.circle(image, (round(x), round(y)), round(r), DISK_COLOUR, -1)
    return image


def write_disk_video(path: Path, frames: int, fps: float = 15.0) -> Path:
    rng = np.random.default_rng(5)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps,
                             (TOY_SIZE[1] * VIDEO_SCALE, TOY_SIZE[0] * VIDEO_SCALE))
    for k in range(frames):
        writer.write(disk_frame(rng, [moving_centre(k), STILL]))
    writer.release()
    return path


# ---------------------------------------------------------------------------------------------
# Toy gestures: bright shapes on dark noise, cut the way handnet.crops frames a hand. Known:
# disk (what the toy detector finds) and square; trained as na: triangle and ring; unseen: cross.

TOY_GESTURE_SIDE = 32


def shape_crop(rng, shape: str, side: int = TOY_GESTURE_SIDE) -> np.ndarray:
    image = rng.integers(0, 60, (side, side, 3)).astype(np.uint8)
    c = side / 2 + rng.uniform(-1.5, 1.5, 2)
    r = side / 3.2 * rng.uniform(0.85, 1.1)  # a hand of radius r fills a crop of 3.2 r
    colour = tuple(int(v) for v in np.clip(np.array(DISK_COLOUR) * rng.uniform(0.8, 1.05), 0, 255))
    x, y = int(round(c[0])), int(round(c[1]))
    if shape == "disk":
        cv2.circle(image, (x, y), int(r), colour, -1)
    elif shape == "ring":
        cv2.circle(image, (x, y), int(r), colour, max(2, int(r / 3)))
    elif shape == "square":
        cv2.rectangle(image, (int(x - 0.8 * r), int(y - 0.8 * r)), (int(x + 0.8 * r), int(y + 0.8 * r)), colour, -1)
    elif shape == "triangle":
        points = np.array([[x, y - r], [x - r, y + 0.8 * r], [x + r, y + 0.8 * r]], np.int32)
        cv2.fillConvexPoly(image, points, colour)
    elif shape == "cross":
        width = max(2, int(r / 2.5))
        cv2.line(image, (int(x - r), y), (int(x + r), y), colour, width)
        cv2.line(image, (x, int(y - r)), (x, int(y + r)), colour, width)
    else:
        raise ValueError(shape)
    return image


def write_shape_folders(root: Path, per_class: int = 40, seed: int = 0) -> tuple[Path, Path]:
    """root: disk/, square/, na/ (triangles and rings); root-unseen: cross/."""
    rng = np.random.default_rng(seed)
    unseen = root.with_name(root.name + "-unseen")
    plan = [(root / "disk", "disk"), (root / "square", "square"), (root / "na", "triangle"), (root / "na", "ring"),
            (unseen / "cross", "cross")]
    for folder, shape in plan:
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(str(folder / f"{shape}_{i:03d}.png"), shape_crop(rng, shape))
    return root, unseen


@pytest.fixture(scope="session")
def toy_gestures(tmp_path_factory):
    """(run folder, results): a bce_na classifier of the toy shapes trained with train_gestures,
    as `python train.py gestures` leaves it (gestures.keras, config.json, results.json,
    confusion.png, gestures-int8.tflite)."""
    from handnet.config import GestureConfig
    from handnet.gestures import train_gestures

    data, _ = write_shape_folders(tmp_path_factory.mktemp("shapes") / "shapes")
    run = tmp_path_factory.mktemp("toy_gestures") / "run"
    config = GestureConfig(data=str(data), input_side=TOY_GESTURE_SIDE, backbone="small", width=8, epochs=20,
                           batch_size=16, learning_rate=3e-3, group_size=4, out=str(run))
    return run, train_gestures(config)
