"""infer.py end to end on the toy disk detector: a generated video, a folder, a live stream that
dies, Ctrl-C, bad input, and no TensorFlow import for .tflite models."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import infer
from conftest import ROOT, STILL, VIDEO_SCALE, TOY_SIZE, disk_frame, moving_centre, write_disk_video
from handnet.live import open_detector, run_live
from handnet.sources import Frame, Source
from handnet.tracking import HandTracker

FRAMES = 12


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_disk_video(tmp_path_factory.mktemp("video") / "disks.avi", FRAMES)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def near(hand, centre):
    """Within 0.75 radii: a hit by the evaluation's match rule, with room for the toy model's
    flat-topped peaks (half an output cell is 8 video pixels)."""
    return np.hypot(hand["x"] - centre[0], hand["y"] - centre[1]) <= 0.75 * centre[2]


@pytest.mark.parametrize("model_file", ["model-int8.tflite", "model.keras"])
def test_a_video_goes_through_headless_with_json_and_video_out(toy_run, video, tmp_path, model_file, capsys):
    jsonl, out = tmp_path / "hands.jsonl", tmp_path / "out.mp4"
    rc = infer.main(["--model", str(toy_run / model_file), "--source", str(video), "--headless",
                     "--json", str(jsonl), "--save", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "end of video" in printed and "fps end to end" in printed and "fps model only" in printed
    lines = read_jsonl(jsonl)
    assert [line["frame"] for line in lines] == list(range(FRAMES))
    assert lines[3]["image"] is None and lines[3]["time"] == pytest.approx(3 / 15.0, abs=1e-3)
    moving_ids, still_ids = set(), set()
    for k, line in enumerate(lines):
        assert set(line["hands"][0]) == {"x", "y", "radius", "score", "label", "open_score", "track_id"}
        moving = [h for h in line["hands"] if near(h, moving_centre(k))]
        still = [h for h in line["hands"] if near(h, STILL)]
        assert len(moving) == 1 and len(still) == 1 and len(line["hands"]) == 2, line
        moving_ids.add(moving[0]["track_id"])
        still_ids.add(still[0]["track_id"])
    assert len(moving_ids) == 1 and len(still_ids) == 1 and moving_ids != still_ids, "stable track ids"
    saved = cv2.VideoCapture(str(out))
    assert int(saved.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    assert saved.read()[1].shape == (TOY_SIZE[0] * VIDEO_SCALE, TOY_SIZE[1] * VIDEO_SCALE, 3)


def test_a_folder_gets_a_line_per_image_even_without_hands(toy_run, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(2)
    cv2.imwrite(str(folder / "a_hand.png"), disk_frame(rng, [STILL]))
    cv2.imwrite(str(folder / "b_empty.png"), disk_frame(rng, []))
    (folder / "c_broken.jpg").write_bytes(b"\xff\xd8 truncated")
    jsonl = tmp_path / "folder.jsonl"
    rc = infer.main(["--model", str(toy_run / "model-int8.tflite"), "--source", str(folder), "--headless",
                     "--json", str(jsonl), "--no-track"])
    assert rc == 0
    lines = read_jsonl(jsonl)
    assert [line["image"] for line in lines] == ["a_hand.png", "b_empty.png", "c_broken.jpg"]
    assert len(lines[0]["hands"]) == 1 and near(lines[0]["hands"][0], STILL)
    assert lines[0]["hands"][0]["track_id"] is None
    assert lines[1]["hands"] == [] and lines[2]["hands"] == [] and "truncated JPEG" in lines[2]["error"]


def test_a_folder_of_photos_gives_each_image_the_hands_it_has_alone(toy_run, tmp_path):
    """Photos are not a video: no tracking or smoothing across them (it pulled one photo's hand
    towards the last photo's, by wall-clock time), so a folder run equals each image run alone."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(4)
    for k, disks in enumerate([[STILL], [(60.0, 100.0, 15.0)], [STILL, (60.0, 100.0, 15.0)]]):
        cv2.imwrite(str(folder / f"{k}.png"), disk_frame(rng, disks))
    model = str(toy_run / "model-int8.tflite")
    runs = []
    for name in ("first", "second"):
        assert infer.main(["--model", model, "--source", str(folder), "--headless", "--json", str(tmp_path / f"{name}.jsonl")]) == 0
        runs.append(read_jsonl(tmp_path / f"{name}.jsonl"))
    hands = lambda lines: [line["hands"] for line in lines]  # noqa: E731 (times differ from run to run)
    assert hands(runs[0]) == hands(runs[1])
    alone = []
    for k in range(3):
        assert infer.main(["--model", model, "--source", str(folder / f"{k}.png"), "--headless",
                           "--json", str(tmp_path / f"{k}.jsonl")]) == 0
        alone += read_jsonl(tmp_path / f"{k}.jsonl")
    assert hands(runs[0]) == hands(alone)
    assert all(h["track_id"] is None for line in runs[0] for h in line["hands"])
    assert [len(line["hands"]) for line in runs[0]] == [1, 1, 2]
    assert all(h["label"] == "open" and 0 <= h["open_score"] <= 1 for line in runs[0] for h in line["hands"])


def test_a_stream_that_stops_delivering_exits_with_a_summary(toy_run, video, tmp_path, capsys):
    jsonl = tmp_path / "live.jsonl"
    rc = infer.main(["--model", str(toy_run / "model-int8.tflite"), "--source", f"file://{video}",
                     "--headless", "--json", str(jsonl)])
    assert rc == 3
    assert "stopped delivering" in capsys.readouterr().out
    lines = read_jsonl(jsonl)
    assert 1 <= len(lines) <= FRAMES and [line["frame"] for line in lines] == list(range(len(lines)))


class InterruptedSource(Source):
    """Three frames, then Ctrl-C."""

    fps = 10.0

    def __iter__(self):
        rng = np.random.default_rng(0)
        for k in range(3):
            yield Frame(disk_frame(rng, [moving_centre(k)]), k, k / self.fps)
        raise KeyboardInterrupt


def test_ctrl_c_closes_the_writers_and_leaves_valid_files(toy_run, tmp_path):
    jsonl, out = tmp_path / "cut.jsonl", tmp_path / "cut.mp4"
    detector = open_detector(toy_run / "model-int8.tflite")
    summary = run_live(detector, InterruptedSource(), HandTracker(), show=False, save=str(out), json_path=str(jsonl))
    assert summary.end_reason.startswith("interrupted") and summary.frames == 3
    assert len(read_jsonl(jsonl)) == 3
    saved = cv2.VideoCapture(str(out))
    assert int(saved.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert not list(tmp_path.glob("*.partial*"))


@pytest.mark.parametrize("args, message", [
    (["--source", "99"], "camera 99: cannot open"),
    (["--source", "missing.mp4"], "no such file"),
    (["--model", "missing.tflite"], "not found"),
])
def test_bad_input_gets_a_clear_error_and_exit_code(toy_run, video, args, message, capsys):
    base = {"--model": str(toy_run / "model-int8.tflite"), "--source": str(video)}
    base.update(dict(zip(args[::2], args[1::2])))
    assert infer.main([*sum(base.items(), ()), "--headless"]) == 2
    assert message in capsys.readouterr().err


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(toy_run, video, tmp_path, capsys):
    """--json or --save naming the image, the video, the model or a file in the source folder
    (by any path or link) stops before anything is opened for writing."""
    import shutil

    model = tmp_path / "m.tflite"
    shutil.copy(toy_run / "model-int8.tflite", model)
    folder = tmp_path / "photos"
    folder.mkdir()
    image = folder / "a.png"
    cv2.imwrite(str(image), disk_frame(np.random.default_rng(3), [STILL]))
    (tmp_path / "link.png").symlink_to(image)
    kept = {path: path.read_bytes() for path in (model, image, video)}
    for args in (["--source", str(image), "--json", str(image)],
                 ["--source", str(image), "--json", str(tmp_path / "link.png")],
                 ["--source", str(folder), "--json", str(model)],
                 ["--source", str(folder), "--json", str(folder / "a.png")],
                 ["--source", str(video), "--save", str(video)]):
        assert infer.main(["--model", str(model), *args, "--headless"]) == 2, args
        assert "that is an input" in capsys.readouterr().err
    assert all(path.read_bytes() == data for path, data in kept.items())
    assert infer.main(["--model", str(model), "--source", str(image), "--headless", "--json", str(tmp_path / "h.jsonl")]) == 0


def test_no_display_without_headless_is_a_clear_error(toy_run, video, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    jsonl = tmp_path / "never.jsonl"
    assert infer.main(["--model", str(toy_run / "model-int8.tflite"), "--source", str(video), "--json", str(jsonl)]) == 2
    assert "--headless" in capsys.readouterr().err
    assert not jsonl.exists(), "nothing half-written"


def test_a_tflite_run_never_imports_tensorflow(toy_run, video, tmp_path):
    code = ("import sys, infer; "
            f"rc = infer.main(['--model', {str(toy_run / 'model-int8.tflite')!r}, '--source', {str(video)!r}, "
            f"'--headless', '--json', {str(tmp_path / 'x.jsonl')!r}]); "
            "print(rc, sorted(m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []"


def test_gestures_label_every_tracked_hand(toy_run, toy_gestures, video, tmp_path, capsys):
    """The toy classifier knows the toy detector's disks as "disk": every hand of the video gets it."""
    gestures_run, _ = toy_gestures
    jsonl = tmp_path / "hands.jsonl"
    rc = infer.main(["--model", str(toy_run / "model-int8.tflite"), "--source", str(video), "--headless",
                     "--json", str(jsonl), "--gestures", str(gestures_run / "gestures-int8.tflite")])
    assert rc == 0
    assert "gestures" in capsys.readouterr().out  # its milliseconds are in the summary
    hands = [h for line in read_jsonl(jsonl) for h in line["hands"]]
    assert len(hands) == 2 * FRAMES
    assert all(0 <= h["gesture_score"] <= 1 for h in hands)
    assert sum(h["gesture"] == "disk" for h in hands) >= 0.9 * len(hands)


def test_a_detector_file_is_refused_as_a_gesture_classifier(toy_run, video, capsys):
    rc = infer.main(["--model", str(toy_run / "model-int8.tflite"), "--source", str(video), "--headless",
                     "--gestures", str(toy_run / "model-int8.tflite")])
    assert rc == 2
    assert "hand detector, not a gesture classifier" in capsys.readouterr().err
