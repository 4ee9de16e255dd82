"""handnet.benchmark: both detectors, both tasks, one rule, on the sets a model did not train on."""

import json

import cv2
import numpy as np
import pytest

from conftest import ROOT, disk_scene
from handnet import benchmark
from handnet.annotations import load_samples
from handnet.config import Config
from handnet.evaluate import match_samples_tflite
from handnet.metrics import evaluate_matches

ANCHORS = ROOT.parent / "shared" / "anchors"


@pytest.fixture(scope="module")
def unseen(tmp_path_factory):
    """32 new disk scenes, in a folder the toy model never trained on."""
    folder = tmp_path_factory.mktemp("unseen")
    rng = np.random.default_rng(11)
    entries = []
    for index in range(32):
        image, hands = disk_scene(rng)
        cv2.imwrite(str(folder / f"{index:03d}.png"), image)
        entries.append({"file": f"{index:03d}.png", "hands": [
            {"x": float(x), "y": float(y), "radius": float(r), "label": "open"} for x, y, r, _ in hands]})
    (folder / "hands.json").write_text(json.dumps({"format": "handnet", "version": 1, "images": entries}))
    return folder


def test_sets_the_model_trained_on_or_that_are_absent_are_skipped(tmp_path):
    for folder in ("a/train", "a/test", "b", "c"):
        (tmp_path / folder).mkdir(parents=True)
    sets = (benchmark.BenchSet("a-test", ("a/test",), ""), benchmark.BenchSet("b", ("b",), ""),
            benchmark.BenchSet("c", ("c",), ""), benchmark.BenchSet("gone", ("missing",), ""))
    lines = []
    picked = benchmark.pick_sets(tmp_path, [str(tmp_path / "a/train"), str(tmp_path / "b")], sets, lines.append)
    assert [bench.name for bench, _ in picked] == ["a-test", "c"]  # trained on a/train, not a/test
    assert lines == ["b: the model trained on it, skipped", f"gone: not found under {tmp_path}, skipped"]
    assert benchmark.trained_on(tmp_path / "b/sub", [str(tmp_path / "b")])  # a part of a set trained on
    assert benchmark.trained_on(tmp_path / "a", [str(tmp_path / "a/train")])  # a set holding what it trained on


def test_the_toy_model_is_scored_on_both_tasks_with_its_own_figures(toy, toy_run, unseen, tmp_path, capsys):
    _, config, _ = toy
    model = toy_run / "model-int8.tflite"
    out = tmp_path / "bench"
    assert benchmark.main(["--model", str(model), "--set", f"seen={config.data[0]}", "--set", f"toy={unseen}",
                           "--no-blazepalm", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "seen: the model trained on it, skipped" in printed.err and "wrote" in printed.out
    result = json.loads((out / "benchmark.json").read_text())
    (entry,) = result["sets"]
    assert entry["name"] == "toy" and entry["images"] == 32
    # The toy set's hands are all open disks without boxes (the rule falls back to their radius),
    # so the benchmark's figures are evaluate's, for either task.
    samples = load_samples([str(unseen)], "open-other")
    matched = match_samples_tflite(model, samples, Config.from_dict(json.loads((toy_run / "config.json").read_text())),
                                   tasks=("open", "every"))
    for task in ("open", "every"):
        want = evaluate_matches(matched[task], config.open_threshold if task == "open" else config.score_threshold)
        got = entry["rows"][task]["handnet"]
        assert got["f1"] == pytest.approx(want["f1"]) and got["ap"] == pytest.approx(want["ap"])
        assert got["hands"] == want["hands"] > 32
    table = (out / "benchmark.md").read_text()
    assert "| toy | 32 | every hand |" in table and "| toy | 32 | open hands |" in table
    assert (out / "pr-curves.png").stat().st_size > 1000


@pytest.mark.skipif(not (ANCHORS / "palm_detection_full.tflite").is_file(), reason="../shared/anchors is absent")
def test_blazepalm_is_scored_beside_it_on_the_same_images(toy_run, unseen, tmp_path):
    out = tmp_path / "bench"
    assert benchmark.main(["--model", str(toy_run / "model-int8.tflite"), "--set", f"toy={unseen}",
                           "--limit", "12", "--out", str(out)]) == 0
    (entry,) = json.loads((out / "benchmark.json").read_text())["sets"]
    assert entry["images"] == 12 and set(entry["ms"]) == {"handnet", "blazepalm"}
    assert entry["rows"]["every"]["blazepalm"]["hands"] == entry["rows"]["every"]["handnet"]["hands"]
    assert "blazepalm P" in (out / "benchmark.md").read_text()


def test_bad_flags_and_no_data_are_clear(toy_run, tmp_path, capsys):
    with pytest.raises(SystemExit):
        benchmark.main(["--set", "no-folder"])
    assert benchmark.main(["--model", str(toy_run / "model-int8.tflite"), "--datasets", str(tmp_path / "none")]) == 0
    assert "nothing to score" in capsys.readouterr().err
    assert benchmark.main(["--model", str(tmp_path / "missing.tflite"), "--set", f"x={tmp_path}"]) == 2
