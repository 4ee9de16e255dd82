"""The pretrained model in models/: it loads without TensorFlow, describes itself, finds clear
open hands in fresh synthetic scenes, and is infer.py's default."""

import json

import cv2

import infer
from handnet.annotations import Hand
from handnet.config import DEFAULT_LABELS, parse_labels
from handnet.metrics import evaluate_matches, match_image
from handnet.runtime import HandDetector
from handnet.synthetic import generate_scene

MODEL = infer.DEFAULT_MODEL
ROLES = parse_labels(DEFAULT_LABELS)  # faces and arms are background


def test_it_ships_as_a_small_self_describing_int8_file():
    assert MODEL.is_file() and MODEL.stat().st_size < 2 * 1024 * 1024
    info = HandDetector(MODEL).info
    assert info.mode == "int8" and info.preset == "fast" and info.labels == ("open",)
    assert info.input_size == (240, 320) and 0 < info.score_threshold < 1
    assert (MODEL.parent / "README.md").is_file(), "the model card"


def test_it_finds_near_open_hands_in_scenes_it_never_saw():
    detector = HandDetector(MODEL, num_threads=1, score_threshold=0.05)
    per_image = []
    for index in range(60):
        image, hands = generate_scene(seed=12345, index=index)  # training used seed 0
        truth = [Hand(h["x"], h["y"], h["radius"], h["label"], ROLES[h["label"]]) for h in hands]
        per_image.append(match_image(detector.detect(image), truth, image.shape[:2]))
    near = evaluate_matches(per_image, detector.info.score_threshold)["near"]
    assert near["hands"] >= 20
    assert near["recall"] >= 0.5 and near["precision"] >= 0.7, near


def test_infer_runs_with_it_by_default(tmp_path):
    image, _ = generate_scene(seed=12345, index=0)
    cv2.imwrite(str(tmp_path / "scene.png"), image)
    assert infer.main(["--source", str(tmp_path / "scene.png"), "--headless", "--json", str(tmp_path / "h.jsonl")]) == 0
    line = json.loads((tmp_path / "h.jsonl").read_text())
    assert line["image"] == "scene.png" and isinstance(line["hands"], list)
