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
