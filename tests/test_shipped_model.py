"""The pretrained model in models/: it loads without TensorFlow, describes itself, finds clear
hands in fresh synthetic scenes, labels real fists other and real open palms open, and is
infer.py's default."""

import json
import math

import cv2
import pytest

import infer
from conftest import SHARED_DATASETS
from handnet.annotations import Hand, load_samples, read_image
from handnet.config import DEFAULT_LABELS, parse_labels
from handnet.evaluate import task_detections, task_hands
from handnet.metrics import evaluate_matches, match_image, within
from handnet.runtime import HandDetector
from handnet.synthetic import generate_scene

MODEL = infer.DEFAULT_MODEL
ROLES = parse_labels(DEFAULT_LABELS)  # faces and arms are background


def test_it_ships_as_a_small_self_describing_int8_file():
    assert MODEL.is_file() and MODEL.stat().st_size < 2 * 1024 * 1024
    info = HandDetector(MODEL).info
    assert info.mode == "int8" and info.preset == "fast" and info.labels == ("open", "other")
    assert info.channels == ("open", "hand", "openness")
    assert info.input_size == (240, 320) and 0 < info.score_threshold < 1
    assert (MODEL.parent / "README.md").is_file(), "the model card"


def test_it_finds_near_hands_and_open_hands_in_scenes_it_never_saw():
    detector = HandDetector(MODEL, num_threads=1, score_threshold=0.05)
    open_hands, every_hand = [], []
    for index in range(60):
        image, hands = generate_scene(seed=12345, index=index)  # training used seed 0
        truth = [Hand(h["x"], h["y"], h["radius"], h["label"], ROLES[h["label"]]) for h in hands]
        found = detector.detect(image)
        open_hands.append(match_image(task_detections(found, "open", detector.info.score_threshold), truth, image.shape[:2]))
        every_hand.append(match_image(found, task_hands(truth, "every"), image.shape[:2]))
    for per_image, threshold in ((open_hands, detector.info.open_threshold), (every_hand, detector.info.score_threshold)):
        near = evaluate_matches(per_image, threshold)["near"]
        assert near["hands"] >= 20
        assert near["recall"] >= 0.5 and near["precision"] >= 0.7, near


@pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason="../shared/datasets is absent")
def test_it_calls_real_fists_other_and_real_open_palms_open():
    """The held-back webcam frames of subhih-hands-webcam (it trained on train/ alone): of the fists
    (`0-hand`) and open palms (`5-hand`) it finds, what each is called."""
    detector = HandDetector(MODEL, num_threads=2)
    called = {"0-hand": [], "5-hand": []}
    for sample in load_samples([str(SHARED_DATASETS / "subhih-hands-webcam" / "test")], "open-other"):
        found = detector.detect(read_image(sample.path))
        for hand in (h for h in sample.hands if h.label in called):
            near = [d for d in found if within(d, hand, rule="box")]
            if near:
                called[hand.label].append(min(near, key=lambda d: math.hypot(d.x - hand.x, d.y - hand.y)).label)
    fists, palms = called["0-hand"], called["5-hand"]
    assert len(fists) >= 80 and len(palms) >= 60  # the shipped file finds 94 of 109 and 67 of 67 (models/README.md)
    assert fists.count("other") / len(fists) >= 0.9  # and calls all 94 of those fists other
    assert palms.count("open") / len(palms) >= 0.85  # and 60 of those palms open


def test_infer_runs_with_it_by_default(tmp_path):
    image, _ = generate_scene(seed=12345, index=0)
    cv2.imwrite(str(tmp_path / "scene.png"), image)
    assert infer.main(["--source", str(tmp_path / "scene.png"), "--headless", "--json", str(tmp_path / "h.jsonl")]) == 0
    line = json.loads((tmp_path / "h.jsonl").read_text())
    assert line["image"] == "scene.png" and isinstance(line["hands"], list)
