"""handnet.teacher: landmarks -> handnet hands, open by finger extension, and a folder labelled
without touching a person's annotations. MediaPipe itself runs only where it is installed
(requirements-teacher.txt); the rest needs NumPy and OpenCV."""

import importlib.util
import json

import numpy as np
import pytest

from conftest import SHARED_DATASETS, write_image, write_native
from handnet import teacher
from handnet.annotations import load_samples

HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None


def open_hand(cx=100.0, cy=100.0, size=40.0) -> np.ndarray:
    """21 landmarks of an upright open hand: wrist below, fingers straight up, thumb out left."""
    points = np.zeros((21, 2))
    points[0] = (cx, cy + size)
    points[1:5] = [(cx - 0.3 * size, cy + 0.7 * size), (cx - 0.6 * size, cy + 0.5 * size),
                   (cx - 0.8 * size, cy + 0.3 * size), (cx - size, cy + 0.1 * size)]
    for finger, x in enumerate((-0.3, -0.1, 0.1, 0.3)):
        base = 5 + 4 * finger
        points[base : base + 4] = [(cx + x * size, cy + (0.3 - 0.35 * k) * size) for k in range(4)]
    return points


def fist(points: np.ndarray) -> np.ndarray:
    """The same hand with its four fingers curled: each tip back beside its knuckle."""
    curled = points.copy()
    for base in (5, 9, 13, 17):
        curled[base + 2] = points[base] + (0, -0.05 * 40)
        curled[base + 3] = points[base] + (0, 0.1 * 40)
    return curled


def test_an_open_hand_is_open_and_curled_fingers_or_a_folded_thumb_are_not():
    hand = open_hand()
    assert teacher.is_open(hand)
    assert not teacher.is_open(fist(hand))
    folded = hand.copy()
    folded[4] = hand[17] + (-2, 0)  # the thumb's tip across the palm, beside the little finger's knuckle
    assert not teacher.is_open(folded)


def test_a_hands_centre_and_radius_are_its_landmarks_box_by_the_box_rule():
    x, y, radius, box = teacher.hand_from_landmarks(open_hand(100, 100, 40))
    x0, y0, x1, y1 = box
    assert (x0, x1, y0, y1) == pytest.approx((60, 112, 70, 140))  # thumb tip, little finger, fingertips, wrist
    assert (x, y) == pytest.approx(((x0 + x1) / 2, (y0 + y1) / 2))
    assert radius == pytest.approx(teacher.RADIUS_SCALE * min(x1 - x0, y1 - y0) / 2)


class FakeTeacher:
    """MediaPipe's part, fixed: one hand at (30, 30) and one at (70, 40) in every frame."""

    def hands(self, frame):
        return [{"x": 30.0, "y": 30.0, "radius": 8.0, "label": "open", "teacher": 0.9, "box": (22, 22, 38, 38)},
                {"x": 70.0, "y": 40.0, "radius": 6.0, "label": "other", "teacher": 0.8, "box": (64, 34, 76, 46)}]


def test_a_folder_keeps_every_hand_a_person_annotated_and_gains_the_rest(native_dataset):
    before = json.loads((native_dataset / "hands.json").read_text())
    counts = teacher.label_folder(native_dataset, native_dataset, FakeTeacher(), progress=False)
    after = json.loads((native_dataset / "hands.json").read_text())
    for old in before["images"]:
        new = next(e for e in after["images"] if e["file"] == old["file"])
        assert new["hands"][: len(old["hands"])] == old["hands"], "a person's hands stay as they were"
        for hand in new["hands"][len(old["hands"]):]:
            assert hand["teacher"] and "box" not in hand
            assert not any(np.hypot(hand["x"] - h["x"], hand["y"] - h["y"]) <= h["radius"] for h in old["hands"])
    assert counts["kept"] == sum(len(e["hands"]) for e in before["images"])
    assert counts["added"] == sum(len(e["hands"]) for e in after["images"]) - counts["kept"] > 0
    # the folder still loads, and a second pass adds nothing: the teacher's hands are annotated now
    assert len(load_samples(native_dataset, "open=positive,*=ignore")) == len(after["images"])
    assert teacher.label_folder(native_dataset, native_dataset, FakeTeacher(), progress=False)["added"] == 0
    assert json.loads((native_dataset / "hands.json").read_text()) == after


def test_a_folder_of_boxes_is_labelled_into_a_new_folder_pointing_back_at_it(tmp_path):
    root = tmp_path / "voc"
    write_image(root / "a.jpg", 64, 96)
    (root / "a.xml").write_text("<annotation><filename>a.jpg</filename><object><name>fist</name><bndbox>"
                                "<xmin>20</xmin><ymin>20</ymin><xmax>40</xmax><ymax>40</ymax></bndbox></object></annotation>")
    out = tmp_path / "taught"
    assert teacher.main([str(root)]) == 2  # its VOC files are not turned into a hands.json
    out.mkdir()
    counts = teacher.label_folder(root, out, FakeTeacher(), progress=False)
    assert counts == {"images": 1, "kept": 1, "added": 1, "unreadable": 0}  # the hand at (30, 30) is in the box
    (sample,) = load_samples(out, "open=positive,*=ignore")
    assert sample.path.endswith("a.jpg") and [(h.label, h.x) for h in sample.hands] == [("fist", 30), ("other", 70)]


def test_bad_input_is_refused_before_anything_is_written(native_dataset, tmp_path, capsys):
    assert teacher.main([str(tmp_path / "missing")]) == 2
    assert teacher.main([str(native_dataset), str(native_dataset)]) == 2
    assert teacher.main([str(native_dataset), "--out", str(tmp_path / "elsewhere")]) == 2
    assert not (tmp_path / "elsewhere").exists()
    if not HAS_MEDIAPIPE:
        assert teacher.main([str(native_dataset)]) == 2
        assert "requirements-teacher.txt" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_MEDIAPIPE or not SHARED_DATASETS.is_dir(), reason="needs mediapipe and ../shared/datasets")
def test_mediapipe_finds_the_open_palm_of_a_real_webcam_frame():
    from handnet.annotations import read_image

    sample = next(s for s in load_samples(SHARED_DATASETS / "linto-webcam-gestures", "open-other")
                  if any(h.role == "positive" for h in s.hands))
    found = teacher.Teacher().hands(read_image(sample.path))
    x0, y0, x1, y1 = next(h for h in sample.hands if h.role == "positive").box
    assert any(x0 <= h["x"] <= x1 and y0 <= h["y"] <= y1 and h["label"] == "open" for h in found)
