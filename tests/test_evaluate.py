"""python -m handnet.evaluate --worst: the images with the most mistakes, as a grid and a list
the annotation tool opens."""

import json
import shutil

import cv2
import numpy as np
import pytest

from handnet import evaluate
from handnet.annotate import Annotator


@pytest.fixture
def doctored(toy, tmp_path):
    """Twelve toy disk frames; in one a disk lost its annotation (a detection there is a false
    positive), in another a hand was added where there is no disk (a miss)."""
    _, config, _ = toy
    src = config.data[0]
    doc = json.loads(open(f"{src}/hands.json").read())
    root = tmp_path / "disks"
    root.mkdir()
    entries = doc["images"][:12]
    for entry in entries:
        shutil.copy(f"{src}/{entry['file']}", root / entry["file"])
    entries[3]["hands"] = entries[3]["hands"][1:]
    x = 4.0 if entries[7]["hands"][0]["x"] > 40 else 90.0
    entries[7]["hands"].append({"x": x, "y": 4.0, "radius": 4.0, "label": "open"})
    (root / "hands.json").write_text(json.dumps({"images": entries}))
    return root, entries[3]["file"], entries[7]["file"]


@pytest.mark.parametrize("model_file", ["model.keras", "model-int8.tflite"])
def test_worst_images_become_a_grid_and_a_list_for_the_annotator(toy_run, doctored, tmp_path, model_file, capsys):
    root, extra_disk, phantom = doctored
    out = tmp_path / "new" / "m.json"  # a folder that does not exist yet is made
    assert evaluate.main(["--model", str(toy_run / model_file), "--data", str(root), "--out", str(out),
                          "--worst", "5", "--group-size", "2"]) == 0
    listing = (out.parent / "worst-disks.txt").read_text().split()
    names = [p.rsplit("/", 1)[-1] for p in listing]
    assert extra_disk in names and phantom in names
    assert len(names) <= 5
    metrics = json.loads(out.read_text())
    assert metrics["false_positives"] >= 1 and metrics["recall"] < 1
    low, high = metrics["f1_interval"]  # the figure's spread over groups of files like these
    printed = capsys.readouterr().out
    assert 0 <= low < high <= 1 and "F1 95% bootstrap interval" in printed and "worst-disks.txt" in printed
    grid = cv2.imread(str(out.parent / "worst-disks.png"))
    assert grid is not None and grid.shape[1] == min(4, len(names)) * 320
    assert Annotator(root, files=listing).files == sorted(names, key=names.index)  # opens just those


def test_split_scores_only_the_images_declared_on_that_side(toy_run, doctored, tmp_path, capsys):
    root, _, _ = doctored
    doc = json.loads((root / "hands.json").read_text())
    undeclared = tmp_path / "undeclared.json"
    assert evaluate.main(["--model", str(toy_run / "model.keras"), "--data", str(root), "--split", "val",
                          "--out", str(undeclared)]) == 2
    assert "no image declares split 'val'" in capsys.readouterr().err and not undeclared.exists()
    for k, entry in enumerate(doc["images"]):
        entry["split"] = "val" if k < 4 else "train"
    (root / "hands.json").write_text(json.dumps(doc))
    for side, count in (("val", 4), ("train", 8)):
        out = tmp_path / f"{side}.json"
        assert evaluate.main(["--model", str(toy_run / "model.keras"), "--data", str(root), "--split", side,
                              "--out", str(out)]) == 0
        assert json.loads(out.read_text())["images"] == count


def test_annotate_model_pre_annotates_with_a_trained_detector(toy_run, doctored):
    from handnet.annotate import model_proposer

    root, _, _ = doctored
    truth = json.loads((root / "hands.json").read_text())["images"]
    (root / "hands.json").unlink()  # nothing annotated yet
    tool = Annotator(root, propose=model_proposer(str(toy_run / "model-int8.tflite")))
    expected = truth[0]["hands"]
    assert len(tool.hands) == len(expected)
    for hand in expected:  # every disk proposed close to where it was drawn
        assert min(abs(p["x"] - hand["x"]) + abs(p["y"] - hand["y"]) for p in tool.hands) < 6
    assert {p["label"] for p in tool.hands} == {"open"}


def test_radius_knots_fitted_on_training_images_bring_radii_closer_to_the_annotated_ones(toy):
    import dataclasses
    import math

    import numpy as np

    from handnet.annotations import load_samples

    model, config, _ = toy
    samples = load_samples(config.data, config.labels)
    found = [(s, frame.shape[:2], d) for s, frame, _, d in evaluate.predict_samples(model, samples, config)]
    knots = evaluate.fit_radius_knots(found, config)
    assert len(knots) == 2 and len(knots[0]) == len(knots[1]) >= 2
    assert knots[0] == sorted(knots[0]) and all(f > 0 for f in knots[1])

    def log_errors(cfg):
        errors = []
        for sample, _, _, detections in evaluate.predict_samples(model, samples, cfg):
            shown = [d for d in detections if d.score >= cfg.score_threshold]
            for hand in sample.hands:
                near = [d for d in shown if math.hypot(d.x - hand.x, d.y - hand.y) <= max(hand.radius, 8)]
                if near:
                    best = min(near, key=lambda d: math.hypot(d.x - hand.x, d.y - hand.y))
                    errors.append(abs(math.log(best.radius / hand.radius)))
        return np.median(errors)

    assert log_errors(dataclasses.replace(config, radius_knots=knots)) < log_errors(config)


def test_split_on_the_models_own_folders_is_its_training_split(toy, toy_run, tmp_path, capsys):
    from handnet.annotations import load_samples, train_val_split

    _, config, _ = toy
    samples = load_samples(config.data, config.labels)
    train, val = train_val_split(samples, config.val_fraction, config.group_size, config.seed)
    assert 0 < len(val) < len(train)
    counts = {}
    for side in ("val", "train"):
        out = tmp_path / f"{side}.json"
        assert evaluate.main(["--model", str(toy_run / "model-int8.tflite"), "--data", *config.data,
                              "--split", side, "--out", str(out)]) == 0
        counts[side] = json.loads(out.read_text())["images"]
    assert counts == {"val": len(val), "train": len(train)}  # no image declares a side: the run's own split
    assert "figures include its training images" not in capsys.readouterr().err
    assert evaluate.main(["--model", str(toy_run / "model.keras"), "--data", *config.data,
                          "--out", str(tmp_path / "all.json")]) == 0
    assert "figures include its training images; --split val" in capsys.readouterr().err


def test_the_open_threshold_is_the_one_that_labels_the_reported_hands_best():
    """label_threshold: of the grid, the threshold with the best mean of open hands labelled open
    and other hands labelled other, among the hands reported at the score threshold; hands with
    no reported detection in reach do not count."""
    from handnet.annotations import Hand, Sample
    from handnet.config import Config
    from handnet.peaks import Detection

    def det(x, score, openness):
        return Detection(x, 50.0, 10.0, score, "", open_score=openness)

    hands = (Hand(20, 50, 10, "open", "positive"), Hand(60, 50, 10, "fist", "ignore"),
             Hand(100, 50, 10, "fist", "ignore"), Hand(140, 50, 10, "fist", "ignore"))
    found = [(Sample("a.jpg", hands), (100, 200),
              [det(21, 0.9, 0.7), det(61, 0.9, 0.5), det(99, 0.9, 0.3), det(140, 0.2, 0.95)])]
    config = Config(score_threshold=0.5, open_threshold=0.4)
    # open 0.7 | others 0.5, 0.3 (the third is not reported): thresholds in (0.5, 0.7] label all
    # right; ties go to the highest
    assert evaluate.label_threshold(found, config, grid=np.round(np.arange(0.05, 0.95, 0.05), 2)) == 0.7
    assert evaluate.label_threshold(found, config, keep=[False]) == 0.4  # nothing to balance: the config's
