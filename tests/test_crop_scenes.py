"""Detection scenes from hand crops: the hand found in a crop, the wall's lighting evened out, the
crop placed at a chosen size, and the folder written in the native format."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from handnet.annotations import DatasetError, load_samples
from handnet.crop_scenes import HAND_LENGTH, find_hand, flatten_wall, main, place_crop, write_scenes

WALL = (200, 205, 210)  # BGR: a light grey wall
SKIN = (120, 150, 210)


def hand_crop(side=100, vignette=True, palm=(50, 45), width=40):
    """An upright 'hand' (palm, four fingers) with a forearm down to the bottom edge, on a wall
    that is darker towards the corners. Returns (crop, palm box without the forearm)."""
    ys, xs = np.mgrid[0:side, 0:side]
    shade = 1 - 0.35 * (((xs - side / 2) ** 2 + (ys - side / 2) ** 2) / (side / 2) ** 2) if vignette else np.ones((side, side))
    crop = (np.array(WALL, np.float32) * shade[..., None]).astype(np.uint8)
    cx, cy = palm
    cv2.ellipse(crop, (cx, cy), (width // 2, width // 2), 0, 0, 360, SKIN, -1)
    for k in range(4):  # fingers up to 20 px above the palm
        fx = cx - width // 2 + 4 + k * (width - 8) // 3
        cv2.rectangle(crop, (fx - 3, cy - width // 2 - 20), (fx + 3, cy), SKIN, -1)
    cv2.rectangle(crop, (cx - 12, cy), (cx + 12, side - 1), SKIN, -1)  # forearm
    return crop


def test_find_hand_boxes_the_hand_and_stops_above_the_forearm():
    crop = hand_crop()
    box, mask = find_hand(crop)
    x0, y0, x1, y1 = box
    assert abs(x0 - 30) <= 2 and abs(x1 - 70) <= 2  # the palm's width
    assert abs(y0 - 5) <= 2  # the fingertips
    assert y1 == y0 + round(HAND_LENGTH * (x1 - x0)) and y1 < 99  # the forearm below is left out
    assert mask[45, 50] and not mask[5, 5]


def test_find_hand_finds_nothing_on_a_bare_wall():
    assert find_hand(np.full((80, 80, 3), WALL, np.uint8)) is None


def test_flatten_wall_evens_the_lighting_and_keeps_the_hand_darker_than_the_wall():
    crop = hand_crop()
    _, mask = find_hand(crop)
    flat, wall = flatten_wall(crop, mask)
    corners = [(3, 3), (3, 96), (96, 3), (96, 96), (50, 96), (96, 50)]
    before = np.std([crop[y, x].astype(float).mean() for y, x in corners])
    after = np.std([flat[y, x].mean() for y, x in corners if not mask[y, x]])
    assert after < before / 4
    assert np.allclose(wall, flat[~mask].mean(0), atol=12)
    assert flat[45, 50].mean() < wall.mean() - 20


def test_place_crop_puts_the_hand_where_it_says_at_the_radius_asked():
    crop = hand_crop(vignette=False)
    box, _ = find_hand(crop)
    rng = np.random.default_rng(0)
    for radius in (8.0, 25.0, 60.0):
        frame, (x, y, r) = place_crop(rng, crop.astype(np.float32), box, np.array(WALL, np.float32), (240, 320), radius)
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8 and r == radius
        assert r <= x <= 320 - r and r <= y <= 240 - r
        # The hand's skin spans x - r to x + r and its fingertips are 1.25 r above the centre
        # (the box is 2r wide and 2.5r tall; the circle is in the frame, the fingertips may not be).
        ys, xs = np.nonzero(np.abs(frame.astype(float) - SKIN).max(2) < 25)
        tolerance = max(2.0, 0.08 * radius)
        assert abs(xs.min() - (x - r)) <= tolerance and abs(xs.max() + 1 - (x + r)) <= tolerance
        assert abs(ys.min() - max(0.0, y - 1.25 * r)) <= tolerance  # or cut by the frame's top
        # Away from the hand, the frame is wall.
        corner = frame[0 if y > 120 else 239, 0 if x > 160 else 319].astype(float)
        assert np.abs(corner - WALL).max() < 20


def write_crops(root, counts):
    for label, n in counts.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / label / f"img{i:02d}.jpg"), hand_crop(palm=(45 + i, 45)))


def test_write_scenes_makes_a_native_folder_with_one_hand_per_scene(tmp_path):
    write_crops(tmp_path / "crops", {"5": 3, "fist": 2})
    cv2.imwrite(str(tmp_path / "crops" / "fist" / "blank.png"), np.full((60, 60, 3), WALL, np.uint8))
    out = tmp_path / "scenes"
    result = write_scenes(tmp_path / "crops", out, size=(120, 160), radii=(10, 30), per_image=2, progress=False)
    assert result["scenes"] == 10 and [p.split("/")[-1] for p in result["no_hand"]] == ["blank.png"]
    samples = load_samples([str(out)], "5=positive,*=ignore")
    assert len(samples) == 10 and not (tmp_path / "scenes.partial").exists()
    labels = sorted(h.label for s in samples for h in s.hands)
    assert labels == ["5"] * 6 + ["fist"] * 4
    assert all(len(s.hands) == 1 and 10 <= s.hands[0].radius <= 30 for s in samples)
    assert {cv2.imread(s.path).shape for s in samples} == {(120, 160, 3)}
    # The same seed writes the same scenes.
    again = write_scenes(tmp_path / "crops", tmp_path / "again", size=(120, 160), radii=(10, 30), per_image=2, progress=False)
    assert again["scenes"] == 10
    assert (out / "hands.json").read_text() == (tmp_path / "again" / "hands.json").read_text()


def test_only_takes_the_named_folders_and_names_a_missing_one(tmp_path):
    write_crops(tmp_path / "crops", {"5": 2, "fist": 3})
    result = write_scenes(tmp_path / "crops", tmp_path / "fives", size=(120, 160), progress=False, only=["5"])
    samples = load_samples([str(tmp_path / "fives")], "5=positive")
    assert result["scenes"] == 2 and {h.label for s in samples for h in s.hands} == {"5"}
    with pytest.raises(DatasetError, match="no sub-folder of images named open"):
        write_scenes(tmp_path / "crops", tmp_path / "none", progress=False, only=["5", "open"])
    assert not (tmp_path / "none").exists() and not (tmp_path / "none.partial").exists()


def test_an_unreadable_crop_stops_it_with_the_file_named_and_nothing_written(tmp_path):
    write_crops(tmp_path / "crops", {"5": 2})
    (tmp_path / "crops" / "5" / "broken.jpg").write_bytes(b"\xff\xd8not a jpeg")
    out = tmp_path / "scenes"
    with pytest.raises(DatasetError, match="broken.jpg"):
        write_scenes(tmp_path / "crops", out, progress=False)
    assert not out.exists() and not (tmp_path / "scenes.partial").exists()


def test_cli_reports_a_missing_folder_in_one_line(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nowhere" in err and "\n" not in err
    assert not (tmp_path / "out").exists()
