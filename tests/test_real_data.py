"""The real datasets in ../shared/datasets load with their documented label mappings.
Skipped where that folder is absent (a user's fresh clone)."""

import pytest

from conftest import SHARED_DATASETS
from handnet.annotations import detect_format, load_samples, split_samples

pytestmark = pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason="../shared/datasets is absent")

CASES = [
    ("roboflow-hands", "yolo", "hand=positive", 188),
    ("roboflow-finger-counts", "yolo", "five=positive,*=ignore", 754),
    ("linto-webcam-gestures", "voc", "hello=positive,*=ignore", 668),
]


@pytest.mark.parametrize("name,fmt,labels,images", CASES)
def test_shared_dataset_loads(name, fmt, labels, images):
    root = SHARED_DATASETS / name
    assert detect_format(root) == fmt
    samples = load_samples(root, labels)
    assert len(samples) == images
    assert sum(h.role == "positive" for s in samples for h in s.hands) > 50
    train, val = split_samples(samples, 0.2, 16, 0)
    assert {s.path for s in train}.isdisjoint(s.path for s in val)
