"""The demo game: its rules, and a headless game played by the toy detector on a video."""

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, write_disk_video

sys.path.insert(0, str(ROOT / "examples"))
from bubbles import Bubble, BubbleGame  # noqa: E402
from handnet.tracking import TrackedHand  # noqa: E402


def hand(x, y, radius=30.0, label="open", track_id=1):
    return TrackedHand(x, y, radius, 0.9, label, track_id, 1)


def test_a_fist_grabs_a_bubble_carries_it_and_opening_pops_it_for_two():
    game = BubbleGame(400, 300, seconds=10)
    game.bubbles = [Bubble(100, 100, 20, 50, 0), Bubble(300, 100, 20, 50, 0)]
    game._until_spawn = 99.0
    assert game.update([hand(110, 100, label="other")], 0.1) == 0
    assert game.bubbles[0].held_by == 1 and game.bubbles[1].held_by is None
    game.update([hand(200, 250, label="other")], 0.1)  # carried with the fist, not rising
    assert (game.bubbles[0].x, game.bubbles[0].y) == (200, 250) and game.bubbles[1].y < 100
    assert game.update([hand(300, 95, label="other", track_id=2), hand(200, 250, label="other")], 0.1) == 0
    assert game.bubbles[1].held_by == 2, "a second fist grabs the other bubble"
    assert game.update([hand(200, 250, label="open"), hand(300, 95, label="other", track_id=2)], 0.1) == 1
    assert game.score == 2 and len(game.bubbles) == 1
    game.update([], 0.1)  # the hand that held it is gone: the bubble floats on
    assert game.bubbles[0].held_by is None and game.score == 2


def test_a_hand_on_a_bubble_pops_it_and_scores():
    game = BubbleGame(400, 300, seconds=10)
    game.bubbles = [Bubble(100, 100, 20, 0, 0), Bubble(300, 100, 20, 0, 0)]
    game._until_spawn = 99.0
    assert game.update([hand(120, 110)], 0.1) == 1
    assert game.score == 1 and [b.x for b in game.bubbles] == [300]
    assert game.update([hand(10, 290, radius=5)], 0.1) == 0 and game.score == 1


def test_bubbles_rise_spawn_and_leave_and_the_clock_ends_the_game():
    game = BubbleGame(400, 300, seconds=3, spawn_every=0.5)
    game.update([], 0.1)
    assert len(game.bubbles) == 1 and game.bubbles[0].y > 300 - 1
    start = game.bubbles[0].y
    game.update([], 0.5)
    assert game.bubbles[0].y < start and len(game.bubbles) == 2
    for _ in range(30):
        game.update([], 0.1)
    assert game.over and game.time_left == 0
    assert game.update([hand(200, 150, radius=500)], 0.1) == 0, "no scoring after the end"


def test_the_game_runs_headless_on_a_video(toy_run, tmp_path):
    video = write_disk_video(tmp_path / "play.avi", 30)
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    out = subprocess.run([sys.executable, "examples/bubbles.py", "--model", str(toy_run / "model-int8.tflite"),
                          "--source", str(video), "--seconds", "30"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    found = re.search(r"score (\d+) in (\d+) frames \((\d+) hands seen\)", out.stdout)
    assert found, out.stdout
    frames, hands = int(found[2]), int(found[3])
    assert frames == 30 and hands >= 2 * 30 * 0.9, out.stdout  # two disks in (nearly) every frame


@pytest.mark.parametrize("args", [["--source", "99"], ["--model", "missing.tflite"]])
def test_the_game_refuses_bad_input_clearly(args):
    out = subprocess.run([sys.executable, "examples/bubbles.py", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
    assert out.returncode == 2 and "error: " in out.stderr and "Traceback" not in out.stderr
