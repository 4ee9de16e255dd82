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


# Every set's classes as open / other by the one mapping (config.OPEN_OTHER_LABELS): (folder, open
# hands, other hands) as the sets hold them.
STATES = [
    ("roboflow-finger-counts", 349, 405),
    ("subhih-hands-webcam", 339, 1391),
    ("asl-letters-roboflow", 0, 720),
    ("roboflow-hand-pose-pd", 0, 52),
    ("hagrid-eval-only", 29, 235),  # palm, stop, stop_inverted open; no_gesture and 15 gestures other
    ("linto-webcam-gestures", 75, 667),
]


@pytest.mark.parametrize("name,open_hands,other_hands", STATES)
def test_every_set_maps_to_open_and_other_hands(name, open_hands, other_hands):
    hands = [h for s in load_samples(SHARED_DATASETS / name, "open-other") for h in s.hands]
    assert sum(h.role == "positive" for h in hands) == open_hands
    assert sum(h.role == "ignore" for h in hands) == other_hands
    assert all(h.box for h in hands), "box formats keep each hand's box for the benchmark's rule"
