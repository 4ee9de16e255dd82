"""handnet.sources: every kind of source, the live latest-frame policy, and clear errors."""

import time

import cv2
import numpy as np
import pytest

from handnet.sources import LiveSource, SourceError, open_source


def write_video(path, count=40, size=(32, 128), fps=20.0):
    """Frame k is black with a white column at x = k, so frames tell their index and order."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size[1], size[0]))
    for k in range(count):
        image = np.zeros((*size, 3), np.uint8)
        image[:, k] = 255
        writer.write(image)
    writer.release()
    return path


def frame_index(image):
    return int(np.argmax(image.mean(axis=(0, 2))))


def test_a_video_gives_every_frame_with_its_own_time(tmp_path):
    source = open_source(str(write_video(tmp_path / "v.avi", count=12, fps=20.0)))
    frames = list(source)
    source.close()
    assert [f.index for f in frames] == list(range(12))
    assert frames[5].time == pytest.approx(5 / 20.0)
    assert [frame_index(f.image) for f in frames] == list(range(12))
    assert "12 frames" in source.end_reason and not source.failed


def test_a_folder_gives_every_image_in_order_even_unreadable_ones(tmp_path):
    for name in ("b.png", "a.jpg"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "c.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    frames = list(open_source(str(tmp_path)))
    assert [f.name for f in frames] == ["a.jpg", "b.png", "c.jpg"]
    assert frames[2].image is None and "unreadable" in frames[2].error
    assert frames[0].image.shape == (8, 8, 3)


def test_a_single_image(tmp_path):
    cv2.imwrite(str(tmp_path / "one.png"), np.zeros((8, 8, 3), np.uint8))
    assert [f.name for f in open_source(str(tmp_path / "one.png"))] == ["one.png"]


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.mp4", "no such file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no images"),
    (lambda p: (p / "junk.mp4").write_bytes(b"junk") and p / "junk.mp4", "not a video"),
    (lambda p: "99", "camera 99: cannot open"),
])
def test_sources_that_cannot_open_say_why(tmp_path, make, message):
    with pytest.raises(SourceError, match=message):
        open_source(str(make(tmp_path)))


def test_a_live_source_hands_over_only_the_newest_frame_then_reports_a_dead_feed(tmp_path):
    # A video read as a stream stands in for a camera: a background thread reads it as fast as
    # it can; the consumer below is slow, so frames must be dropped, never queued.
    video = write_video(tmp_path / "live.avi", count=120)
    source = LiveSource(f"file://{video}", "test stream", retries=2)
    seen = []
    for frame in source:
        seen.append(frame_index(frame.image))
        time.sleep(0.02)
    source.close()
    assert seen == sorted(seen) and len(set(seen)) == len(seen), "never a stale or repeated frame"
    assert source.dropped > 0 and source.dropped + len(seen) == 120
    assert source.failed and "stopped delivering" in source.end_reason
