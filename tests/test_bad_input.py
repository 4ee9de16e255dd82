"""Bad input found by a careful new user (issue 45), through the real command lines: each case
gives one line naming the flag or file and exit 2, and leaves nothing behind; or it works.

infer.py runs as a subprocess (it needs no TensorFlow, so it starts in about a second); the tools
that import TensorFlow run in-process through their own main(argv), the same parsers and code.
"""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import ROOT, write_image, write_native

import train
from handnet import dataset, evaluate
from handnet.annotations import DatasetError, load_samples

SHIPPED = ROOT / "models" / "handnet-fast-int8.tflite"


def run_infer(*args, cwd=ROOT):
    done = subprocess.run([sys.executable, str(ROOT / "infer.py"), "--headless", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def one_clear_line(err: str, *words: str) -> None:
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    for word in words:
        assert word in last, f"{word!r} not in {last!r}"


@pytest.fixture
def image(tmp_path):
    return write_image(tmp_path / "frame.jpg", 120, 160)


@pytest.mark.parametrize("fraction", [0, 0.1, 0.5, 0.9])
def test_a_truncated_model_is_named_not_a_traceback(tmp_path, image, fraction):
    data = SHIPPED.read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: max(8, int(len(data) * fraction))])
    code, _, err = run_infer("--model", cut, "--source", image)
    assert code == 2
    one_clear_line(err, str(cut))
    from handnet.runtime import HandDetector

    with pytest.raises(ValueError, match="cut.tflite"):
        HandDetector(cut)


@pytest.mark.parametrize("args, words", [
    (["--threshold", "-1"], ["--threshold"]),
    (["--threshold", "0"], ["--threshold"]),
    (["--threshold", "2"], ["--threshold"]),
    (["--threshold", "inf"], ["--threshold"]),
    (["--threshold", "nan"], ["--threshold"]),
    (["--min-cutoff", "0"], ["min_cutoff"]),
    (["--min-cutoff", "-5"], ["min_cutoff"]),
    (["--beta", "-1"], ["beta"]),
    (["--beta", "nan"], ["beta"]),
    (["--threads", "0"], ["--threads"]),
    (["--save", "out.txt"], ["--save", "video"]),
])
def test_bad_infer_flags_stop_before_anything_is_written(tmp_path, image, args, words):
    jsonl = tmp_path / "hands.jsonl"
    code, _, err = run_infer("--source", image, "--json", jsonl, *args, cwd=tmp_path)
    assert code == 2
    one_clear_line(err, *words)
    assert not jsonl.exists() and not (tmp_path / "out.txt").exists()


def test_a_missing_gesture_model_is_named_without_a_hint_about_the_detector(image):
    code, _, err = run_infer("--source", image, "--gestures", "/nope.tflite")
    assert code == 2
    one_clear_line(err, "/nope.tflite")
    assert "--model" not in err


def test_an_unreadable_or_cut_image_as_the_source_is_bad_input(tmp_path, image):
    (tmp_path / "zero.jpg").write_bytes(b"")
    data = image.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    for name, problem in (("zero.jpg", "empty file"), ("cut.jpg", "truncated JPEG")):
        code, out, err = run_infer("--source", tmp_path / name, "--json", tmp_path / f"{name}.jsonl")
        assert code == 2, name
        assert "no readable image" in err.splitlines()[-1] and problem in err
        assert json.loads((tmp_path / f"{name}.jsonl").read_text())["error"].startswith(problem)


def test_a_folder_of_images_with_one_bad_file_is_still_scored(tmp_path):
    folder = tmp_path / "frames"
    write_image(folder / "a.jpg", 120, 160)
    (folder / "b.jpg").write_bytes(b"")
    code, out, err = run_infer("--source", folder)
    assert code == 0 and "1 unreadable image " in out


def test_a_video_that_opencv_cannot_write_is_one_line_and_no_file(tmp_path, image):
    # A folder where the video should go: the writer opens nothing.
    (tmp_path / "taken.mp4").mkdir()
    code, _, err = run_infer("--source", image, "--save", tmp_path / "taken.mp4")
    assert code == 2
    one_clear_line(err, "taken.mp4")
    assert not list(tmp_path.glob("*.partial*"))


def test_outputs_under_a_file_are_refused_before_the_work(tmp_path, native_dataset, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert dataset.main(["stats", str(native_dataset), "--png", str(blocker / "x.png")]) == 2
    one_clear_line(capsys.readouterr().err, "--png", "x.png")
    assert dataset.main(["preview", str(native_dataset), "--labels", "*=positive", "--out",
                         str(blocker / "x.png")]) == 2
    one_clear_line(capsys.readouterr().err, "--out")


@pytest.mark.parametrize("args, words", [
    (["--input-size", "7", "7"], ["--input-size 7 7"]),
    (["--count", "0"], ["--count 0"]),
])
def test_preview_refuses_sizes_and_counts_it_cannot_draw(tmp_path, native_dataset, args, words, capsys):
    out = tmp_path / "p.png"
    assert dataset.main(["preview", str(native_dataset), "--labels", "*=positive", "--out", str(out), *args]) == 2
    one_clear_line(capsys.readouterr().err, *words)
    assert not out.exists()


def test_dataset_outputs_that_are_inputs_are_refused(native_dataset, capsys):
    before = (native_dataset / "hands.json").read_bytes()
    assert dataset.main(["stats", str(native_dataset), "--json", str(native_dataset / "hands.json")]) == 2
    one_clear_line(capsys.readouterr().err, "--json", "input")
    assert dataset.main(["preview", str(native_dataset), "--labels", "*=positive", "--out",
                         str(native_dataset / "a.jpg")]) == 2
    assert (native_dataset / "hands.json").read_bytes() == before


def test_evaluate_refuses_a_nan_threshold_and_its_own_model_as_output(native_dataset, capsys):
    with pytest.raises(SystemExit) as stop:
        evaluate.main(["--model", str(SHIPPED), "--data", str(native_dataset), "--threshold", "nan"])
    assert stop.value.code == 2
    assert evaluate.main(["--model", str(SHIPPED), "--data", str(native_dataset), "--labels", "*=positive",
                          "--out", str(SHIPPED)]) == 2
    one_clear_line(capsys.readouterr().err, "--out", "input")


def test_a_damaged_keras_file_says_so_not_file_not_found(tmp_path, native_dataset, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"garbage")
    (run / "config.json").write_text("{}")
    assert evaluate.main(["--model", str(run / "model.keras"), "--data", str(native_dataset)]) == 2
    err = capsys.readouterr().err
    one_clear_line(err, "model.keras", "not a Keras model")
    assert "File not found" not in err


def test_a_json_that_is_not_json_is_named_when_no_format_is_found(tmp_path):
    write_image(tmp_path / "set" / "a.jpg")
    (tmp_path / "set" / "annotations.json").write_text("{not json")
    with pytest.raises(DatasetError, match="annotations.json: not a COCO annotation file"):
        load_samples(tmp_path / "set", "*=positive")


def test_reversed_voc_and_negative_yolo_boxes_are_errors_not_other_hands(tmp_path):
    voc = tmp_path / "voc"
    write_image(voc / "a.jpg", 100, 100)
    (voc / "a.xml").write_text("<annotation><filename>a.jpg</filename><object><name>hand</name><bndbox>"
                               "<xmin>60</xmin><ymin>10</ymin><xmax>20</xmax><ymax>50</ymax></bndbox></object>"
                               "</annotation>")
    with pytest.raises(DatasetError, match="a.xml.*negative width or height"):
        load_samples(voc, "*=positive")
    yolo = tmp_path / "yolo"
    write_image(yolo / "images" / "a.jpg", 100, 100)
    (yolo / "labels").mkdir()
    (yolo / "labels" / "a.txt").write_text("0 0.5 0.5 -0.2 0.3\n")
    with pytest.raises(DatasetError, match="a.txt: line 1.*negative width"):
        load_samples(yolo, "*=positive")


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--epochs", "-1"], ["gestures", "--epochs", "0"]])
def test_zero_or_negative_epochs_are_refused_and_leave_no_run_folder(tmp_path, argv, capsys):
    out = tmp_path / "run"
    argv = [*argv, "--out", str(out)] if argv[0] != "gestures" else ["gestures", *argv[1:], "--out", str(out)]
    with pytest.raises(SystemExit) as stop:
        train.main(argv)
    assert stop.value.code == 2
    one_clear_line(capsys.readouterr().err, "epochs")
    assert not out.exists()


def test_a_truncated_model_as_init_is_one_line(tmp_path, capsys):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(SHIPPED.read_bytes()[:20000])
    data = write_native(tmp_path / "d", {"a.jpg": [{"x": 20, "y": 30, "radius": 10, "label": "open"}]})
    assert train.main(["--data", str(data), "--labels", "*=positive", "--init", str(cut), "--epochs", "1",
                       "--out", str(tmp_path / "run")]) == 2
    one_clear_line(capsys.readouterr().err, "cut.tflite")


def test_the_runtime_refuses_thresholds_outside_0_1():
    from handnet.runtime import HandDetector

    for value in (-1, 0, 1, 2, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="score_threshold"):
            HandDetector(SHIPPED, score_threshold=value)
        with pytest.raises(ValueError, match="open_threshold"):
            HandDetector(SHIPPED, open_threshold=value)


def test_native_start_up_lines_are_quiet_by_default(image):
    rc, _, err = run_infer("--source", image)
    assert rc == 0 and "XNNPACK" not in err
    code = "import handnet, tensorflow as tf; tf.constant(1) + 1"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_every_writing_tool_refuses_an_output_that_is_an_input(tmp_path, native_dataset, toy_run, capsys):
    from handnet import capture, export, teacher

    # export: the run's own config.json as --out
    config = (toy_run / "config.json").read_bytes()
    assert export.main(["--model", str(toy_run / "model.keras"), "--out", str(toy_run / "config.json")]) == 2
    one_clear_line(capsys.readouterr().err, "--out", "input")
    assert (toy_run / "config.json").read_bytes() == config
    # teacher: --json inside the folder it reads
    before = (native_dataset / "hands.json").read_bytes()
    assert teacher.main([str(native_dataset), "--agree", "--json", str(native_dataset / "hands.json")]) == 2
    one_clear_line(capsys.readouterr().err, "--json", "input")
    assert (native_dataset / "hands.json").read_bytes() == before
    # capture: --out naming the video it would read
    video = tmp_path / "clip.avi"
    video.write_bytes(b"not really a video")
    assert capture.main(["--out", str(video), "--source", str(video), "--headless", "--count", "1"]) == 2
    one_clear_line(capsys.readouterr().err, "--out", "input")
    assert video.read_bytes() == b"not really a video"


def test_a_video_under_a_file_or_of_frames_too_large_is_one_line(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    code, _, err = run_infer("--source", write_image(tmp_path / "f.jpg", 120, 160), "--save", blocker / "o.mp4")
    assert code == 2
    one_clear_line(err, "--save")
    huge = tmp_path / "huge.png"
    cv2.imwrite(str(huge), np.zeros((10000, 10000, 3), np.uint8))
    code, _, err = run_infer("--source", huge, "--save", tmp_path / "huge.mp4")
    assert code == 2
    one_clear_line(err, "huge.mp4", "cannot write this video")
    assert not (tmp_path / "huge.mp4").exists() and not list(tmp_path.glob("*.partial*"))
