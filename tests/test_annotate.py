"""The annotation tool, driven through its event handlers; the saved hands.json is what counts.
One end-to-end test runs the real window under Xvfb where xvfb-run and xdotool exist."""

import json
import os
import shutil
import subprocess
import sys
import time

import cv2
import pytest
from conftest import ROOT, write_image

from handnet.annotate import KEY_LEFT, KEY_RIGHT, Annotator
from handnet.annotations import load_samples


@pytest.fixture
def frames(tmp_path):
    root = tmp_path / "mine"
    for k in range(4):
        write_image(root / f"frame_{k:06d}.jpg", 120, 160, seed=k)
    return root


def saved(root):
    doc = json.loads((root / "hands.json").read_text())
    return {e["file"]: e["hands"] for e in doc["images"]}, doc["labels"]


def draw(tool, x, y, radius):
    tool.mouse_down(x, y)
    tool.mouse_move(x + radius / 2, y)
    tool.mouse_up(x + radius, y)


def test_drag_draws_a_hand_and_saves_it_at_once(frames):
    tool = Annotator(frames)
    assert not (frames / "hands.json").exists()  # nothing written before the first change
    draw(tool, 50, 40, 12)
    entries, labels = saved(frames)
    assert entries == {"frame_000000.jpg": [{"x": 50.0, "y": 40.0, "radius": 12.0, "label": "open"}]}
    assert labels == ["open", "other"]
    assert not list(frames.glob("*.tmp"))  # written through a temporary file that was renamed
    samples = load_samples(frames, "open=positive,other=ignore")  # the trainer reads it
    assert [(s.hands[0].x, s.hands[0].radius) for s in samples] == [(50.0, 12.0)]


def test_click_places_a_hand_of_the_last_size(frames):
    tool = Annotator(frames)
    draw(tool, 50, 40, 15)
    tool.mouse_down(120, 80)
    tool.mouse_up(120, 80)
    entries, _ = saved(frames)
    assert [h["radius"] for h in entries["frame_000000.jpg"]] == [15.0, 15.0]


def test_move_resize_label_and_delete(frames):
    tool = Annotator(frames)
    draw(tool, 50, 40, 12)
    tool.mouse_down(52, 41)  # inside: move by (+20, +10)
    tool.mouse_move(62, 46)
    tool.mouse_up(72, 51)
    hand = saved(frames)[0]["frame_000000.jpg"][0]
    assert (hand["x"], hand["y"], hand["radius"]) == (70.0, 50.0, 12.0)
    tool.mouse_down(82, 50)  # on the rim (12 px right of the centre): resize
    tool.mouse_up(90, 50)
    assert saved(frames)[0]["frame_000000.jpg"][0]["radius"] == 20.0
    tool.key(ord("2"))  # selected hand becomes 'other'
    assert saved(frames)[0]["frame_000000.jpg"][0]["label"] == "other"
    draw(tool, 20, 20, 6)  # new hands take the last chosen label
    assert saved(frames)[0]["frame_000000.jpg"][1]["label"] == "other"
    tool.key(ord("x"))  # delete the selected (newest) hand
    assert len(saved(frames)[0]["frame_000000.jpg"]) == 1
    tool.on_mouse(cv2.EVENT_RBUTTONDOWN, 70, 50 + 40, 0)  # right-click in window pixels (status bar 40 px)
    assert saved(frames)[0]["frame_000000.jpg"] == []  # the frame stays annotated, hand-free


def test_hands_stay_inside_the_image(frames):
    tool = Annotator(frames)
    tool.mouse_down(-30, 500)
    tool.mouse_up(-10, 500)
    hand = saved(frames)[0]["frame_000000.jpg"][0]
    assert (hand["x"], hand["y"]) == (0.0, 120.0)
    assert load_samples(frames, "open=positive,other=ignore")  # still a valid dataset


def test_undo_restores_each_previous_state(frames):
    tool = Annotator(frames)
    draw(tool, 50, 40, 12)
    tool.key(ord("2"))
    tool.key(ord("u"))
    assert saved(frames)[0]["frame_000000.jpg"][0]["label"] == "open"
    tool.key(26)  # Ctrl-Z
    assert saved(frames)[0] == {}  # before the first hand the frame was not annotated
    tool.key(ord("u"))
    assert tool.message == "nothing to undo"


def test_navigation_accept_and_resume(frames):
    tool = Annotator(frames)
    tool.key(ord(" "))  # accept frame 0 as hand-free
    assert tool.file == "frame_000001.jpg"
    draw(tool, 30, 30, 10)
    tool.key(next(iter(KEY_RIGHT)))
    tool.key(next(iter(KEY_RIGHT)))
    assert tool.file == "frame_000003.jpg"
    tool.key(next(iter(KEY_LEFT)))
    assert tool.file == "frame_000002.jpg"
    tool.key(ord("f"))  # first frame not annotated yet
    assert tool.file == "frame_000002.jpg"
    assert tool.key(ord("q")) is False
    entries, _ = saved(frames)
    assert entries == {"frame_000000.jpg": [], "frame_000001.jpg": [{"x": 30.0, "y": 30.0, "radius": 10.0, "label": "open"}]}
    again = Annotator(frames)  # a restart resumes where work stopped
    assert again.file == "frame_000002.jpg"
    assert again.hands == []
    again.key(ord("p"))
    assert again.hands == entries["frame_000001.jpg"]


def test_model_proposals_are_saved_only_when_accepted_or_edited(frames):
    tool = Annotator(frames, propose=lambda image: [(40.0, 50.0, 9.0, "open"), (100.0, 60.0, 14.0, "fist")])
    assert len(tool.hands) == 2 and not tool.annotated
    assert "fist" in tool.labels
    tool.key(ord("d"))  # moving on without accepting keeps nothing
    assert not (frames / "hands.json").exists()
    tool.key(ord("a"))
    tool.key(ord("\r"))  # accept
    entries, labels = saved(frames)
    assert [h["label"] for h in entries["frame_000000.jpg"]] == ["open", "fist"]
    assert labels == ["open", "other", "fist"]
    tool.key(ord("a"))  # an annotated frame shows what was saved, not new proposals
    assert tool.hands == entries["frame_000000.jpg"]


def test_existing_labels_and_other_keys_are_kept(frames):
    doc = {"format": "handnet", "version": 1, "labels": ["hello", "yes"], "source": "camera 0",
           "images": [{"file": "frame_000001.jpg", "hands": [{"x": 5, "y": 6, "radius": 7, "label": "no"}]}]}
    (frames / "hands.json").write_text(json.dumps(doc))
    tool = Annotator(frames)
    assert tool.labels == ["hello", "yes", "no"]
    assert tool.file == "frame_000000.jpg"
    tool.key(ord("3"))
    draw(tool, 50, 40, 12)
    doc = json.loads((frames / "hands.json").read_text())
    assert doc["source"] == "camera 0"
    assert [e["file"] for e in doc["images"]] == ["frame_000000.jpg", "frame_000001.jpg"]
    assert doc["images"][0]["hands"][0]["label"] == "no"


def test_a_broken_annotation_file_is_refused_not_overwritten(frames):
    (frames / "hands.json").write_text("{not json")
    with pytest.raises(ValueError, match="will not overwrite"):
        Annotator(frames)
    assert (frames / "hands.json").read_text() == "{not json"


def test_files_list_limits_the_frames(frames):
    listing = [str(frames / "frame_000002.jpg"), "frame_000003.jpg"]
    tool = Annotator(frames, files=listing)
    assert tool.files == ["frame_000002.jpg", "frame_000003.jpg"]
    with pytest.raises(ValueError, match="none of the 1 listed"):
        Annotator(frames, files=["nothing.jpg"])


def test_render_shows_the_frame_below_a_status_bar(frames):
    tool = Annotator(frames)
    draw(tool, 50, 40, 12)
    view = tool.render()
    assert view.shape == (120 + 40, 160, 3)
    assert (view[40:] != cv2.imread(str(frames / "frame_000000.jpg"))).any()  # the circle is drawn


XVFB = shutil.which("xvfb-run")
XDOTOOL = shutil.which("xdotool")


@pytest.mark.skipif(not (XVFB and XDOTOOL), reason="needs xvfb-run and xdotool (Debian: apt install xvfb xdotool)")
def test_real_window_under_xvfb(frames, tmp_path):
    """Start the tool in a virtual X server, drag out a hand, accept, quit; check hands.json."""
    script = tmp_path / "drive.sh"
    script.write_text(f"""
set -e
{sys.executable} -m handnet.annotate {frames} &
tool=$!
for i in $(seq 100); do
  win=$(xdotool search --name "handnet annotate" 2>/dev/null | head -1) && [ -n "$win" ] && break
  sleep 0.2
done
sleep 1
xdotool mousemove --window $win 60 90; sleep 0.2; xdotool mousedown 1; sleep 0.3
xdotool mousemove --window $win 70 90; sleep 0.3
xdotool mousemove --window $win 75 90; sleep 0.2; xdotool mouseup 1; sleep 0.5
xdotool key --window $win space
sleep 0.5
xdotool key --window $win q
wait $tool
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "xcb"}
    env.pop("DISPLAY", None)
    started = time.time()
    result = subprocess.run([XVFB, "-a", "bash", str(script)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    entries, _ = saved(frames)
    (hand,) = entries["frame_000000.jpg"]
    assert abs(hand["x"] - 60) <= 2 and abs(hand["y"] - 50) <= 2  # 90 - 40 px of status bar
    assert abs(hand["radius"] - 15) <= 2
    assert time.time() - started < 120


def test_label_masks_stay_attached_and_are_not_frames(frames):
    """A folder with label masks (the synthetic set's kind): the masks are not offered as frames
    to annotate, and editing a frame keeps its mask."""
    (frames / "masks").mkdir()
    cv2.imwrite(str(frames / "masks" / "frame_000000.png"), cv2.imread(str(frames / "frame_000000.jpg"), 0) * 0)
    doc = {"format": "handnet", "version": 1, "mask_labels": ["open"],
           "images": [{"file": "frame_000000.jpg", "mask": "masks/frame_000000.png", "hands": []}]}
    (frames / "hands.json").write_text(json.dumps(doc))
    tool = Annotator(frames)
    assert "masks/frame_000000.png" not in tool.files and len(tool.files) == 4
    tool.go(0)
    draw(tool, 50, 40, 12)
    (entry,) = [e for e in json.loads((frames / "hands.json").read_text())["images"] if e["file"] == "frame_000000.jpg"]
    assert entry["mask"] == "masks/frame_000000.png" and len(entry["hands"]) == 1
    (sample,) = load_samples(frames, "*=positive")
    assert sample.mask.endswith("masks/frame_000000.png")
