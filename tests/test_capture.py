"""Frame capture: numbering that never overwrites, countdowns and the recording timer, and the
headless CLI recording from a video file as it would from a webcam."""

import numpy as np
import pytest
from conftest import write_disk_video, write_image

from handnet import capture
from handnet.capture import FrameWriter, Recorder


def frame(value=0):
    return np.full((24, 32, 3), value, np.uint8)


def test_numbering_continues_after_existing_frames_and_never_overwrites(tmp_path):
    write_image(tmp_path / "frame_000007.jpg", 8, 8)
    write_image(tmp_path / "holiday.jpg", 8, 8)
    before = (tmp_path / "frame_000007.jpg").read_bytes()
    writer = FrameWriter(tmp_path)
    assert writer.write(frame()).name == "frame_000008.jpg"
    write_image(tmp_path / "frame_000009.jpg", 8, 8)  # another recorder took the next name meanwhile
    taken = (tmp_path / "frame_000009.jpg").read_bytes()
    assert writer.write(frame()).name == "frame_000010.jpg"
    assert (tmp_path / "frame_000007.jpg").read_bytes() == before
    assert (tmp_path / "frame_000009.jpg").read_bytes() == taken


def test_a_shot_waits_for_its_countdown(tmp_path):
    rec = Recorder(FrameWriter(tmp_path), every_ms=100, countdown=3)
    rec.shot(now=10.0)
    assert rec.step(frame(), 12.9) is None
    assert "in 0.1 s" in rec.status(12.9)
    assert rec.step(frame(1), 13.0).name == "frame_000000.jpg"
    assert rec.step(frame(), 14.0) is None  # one shot, one frame


def test_recording_keeps_its_interval_until_stopped(tmp_path):
    rec = Recorder(FrameWriter(tmp_path), every_ms=500, countdown=1)
    rec.toggle_recording(now=0.0)
    times = np.arange(0, 4.01, 0.1)  # a 10 fps camera
    saved = [t for t in times if rec.step(frame(), float(t)) is not None]
    assert np.allclose(saved, [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
    rec.toggle_recording(now=4.05)
    assert rec.step(frame(), 4.6) is None and not rec.recording


def test_recording_does_not_burst_after_a_stall(tmp_path):
    rec = Recorder(FrameWriter(tmp_path), every_ms=100, countdown=0)
    rec.toggle_recording(0.0)
    rec.step(frame(), 0.0)
    assert rec.step(frame(), 2.0) is not None  # the camera stalled for two seconds
    assert rec.step(frame(), 2.05) is None  # no catching up on the twenty frames missed


def test_bad_interval_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--every"):
        Recorder(FrameWriter(tmp_path), every_ms=0)


def test_headless_cli_records_a_video_into_a_folder(tmp_path, capsys):
    video = write_disk_video(tmp_path / "clip.avi", 30, fps=10.0)
    out = tmp_path / "mine"
    assert capture.main(["--out", str(out), "--source", str(video), "--headless", "--every", "500",
                         "--countdown", "0.5"]) == 0
    names = sorted(p.name for p in out.iterdir())
    # 3 s of video: frames at 0.5, 1.0, 1.5, 2.0, 2.5 s (timed by the video's own clock)
    assert names == [f"frame_{k:06d}.jpg" for k in range(5)]
    assert "5 frames saved" in capsys.readouterr().out
    assert capture.main(["--out", str(out), "--source", str(video), "--headless", "--every", "100",
                         "--countdown", "0", "--count", "3"]) == 0
    assert len(list(out.iterdir())) == 8  # a second session adds, never replaces


def test_missing_source_is_a_clear_error(tmp_path, capsys):
    assert capture.main(["--out", str(tmp_path / "x"), "--source", str(tmp_path / "none.mp4"), "--headless"]) == 2
    assert "no such file" in capsys.readouterr().err
