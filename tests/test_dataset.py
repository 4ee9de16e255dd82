"""python -m handnet.dataset: check lists every problem, stats counts right, preview draws the
targets, convert moves between all four formats without losing a hand or a label."""

import json
import shutil

import cv2
import pytest
from conftest import write_image, write_native

from handnet import dataset
from handnet.annotations import detect_format, read_dataset
from handnet.dataset import check, convert, dataset_stats


def test_check_lists_every_problem_and_exits_non_zero(tmp_path, capsys):
    root = write_native(tmp_path / "bad", {
        "ok.jpg": [{"x": 20, "y": 30, "radius": 10, "label": "open"}],
        "outside.jpg": [{"x": 500, "y": 30, "radius": 10, "label": "open"}],
        "negative.jpg": [{"x": 20, "y": 30, "radius": -3, "label": "other"}],
        "truncated.jpg": [],
        "gone.jpg": [],
        "fist.jpg": [{"x": 20, "y": 30, "radius": 5, "label": "fist"}],
    })
    data = (root / "truncated.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "gone.jpg").unlink()
    doc = json.loads((root / "hands.json").read_text())
    doc["images"].append(doc["images"][0])  # listed twice
    doc["images"].append({"file": "no-hands-key-is-fine.jpg", "hands": [{"x": 1}]})  # a hand without fields
    (root / "hands.json").write_text(json.dumps(doc))
    write_image(root / "not-yet.jpg")  # not listed: waiting for annotation, not a problem

    assert dataset.main(["check", str(root), "--labels", "open=positive,other=ignore"]) == 1
    out = capsys.readouterr().out
    for file, reason in [("outside.jpg", "outside the image"), ("negative.jpg", "negative radius"),
                         ("truncated.jpg", "truncated JPEG"), ("gone.jpg", "cannot read image"),
                         ("fist.jpg", "label 'fist' is not in --labels"), ("ok.jpg", "listed twice"),
                         ("hands.json", "image entry 7")]:
        assert any(file in line and reason in line for line in out.splitlines()), (file, reason, out)
    assert "1 image(s) not annotated yet" in out
    assert "1 good images, 1 hands, 7 problem(s)" in out  # only ok.jpg is clean


def test_check_passes_a_clean_dataset(native_dataset, capsys):
    assert dataset.main(["check", str(native_dataset)]) == 0
    assert "3 good images, 3 hands, 0 problem(s)" in capsys.readouterr().out


def test_check_of_a_missing_folder(tmp_path, capsys):
    assert dataset.main(["check", str(tmp_path / "nope")]) == 1
    assert "dataset folder not found" in capsys.readouterr().out


def test_stats_counts_labels_sizes_and_hands_per_image(native_dataset, tmp_path, capsys):
    png, js = tmp_path / "stats.png", tmp_path / "stats.json"
    assert dataset.main(["stats", str(native_dataset), "--png", str(png), "--json", str(js)]) == 0
    stats = json.loads(js.read_text())
    assert stats["images"] == 3 and stats["hands"] == 3 and stats["hand_free_images"] == 1
    assert stats["labels"] == {"open": 2, "other": 1}
    assert stats["hands_per_image"] == {"0": 1, "1": 1, "2": 1}
    assert stats["radius"]["open"] == {"min": 10.0, "median": 11.0, "max": 12.0}
    # far: radius under 1/12 of the shorter side (64 px -> 5.33): none of these
    assert stats["far"] == {"open": 0, "other": 0}
    assert stats["radius_histogram"]["open"] == [0, 2, 0, 0, 0, 0, 0]  # 10 and 12 px: both in [8, 16)
    assert cv2.imread(str(png)).shape[0] > 100
    assert "open" in capsys.readouterr().out


def test_preview_writes_a_grid_of_images_and_targets(tiny_synthetic, tmp_path):
    out = tmp_path / "preview.png"
    assert dataset.main(["preview", str(tiny_synthetic), "--out", str(out), "--count", "4",
                         "--input-size", "64", "96"]) == 0
    grid = cv2.imread(str(out))
    # 4 images, 3 (image, target) pairs per row -> 2 rows of 64 px under a 22 px caption bar
    assert grid.shape == (22 + 2 * 64, 6 * 96, 3)


@pytest.mark.parametrize("chain", [("voc", "yolo", "coco", "native"), ("coco", "voc"), ("yolo", "native")])
def test_convert_round_trips_every_hand_and_label(tmp_path, chain):
    src = write_native(tmp_path / "src", {
        "a.jpg": [{"x": 20.5, "y": 30.25, "radius": 10, "label": "open"}],
        "sub/b.jpg": [{"x": 2, "y": 3, "radius": 6, "label": "fist"}, {"x": 80, "y": 50, "radius": 12, "label": "open"}],
        "c.jpg": [],  # a hand-free frame must stay one
    })
    expected = {p.rsplit("/", 1)[-1]: s for p, s in _hands_by_file(src).items()}
    current = src
    for k, fmt in enumerate(chain):
        out = tmp_path / f"step{k}-{fmt}"
        convert(current, out, fmt)
        assert detect_format(out) == fmt
        got = {p.rsplit("/", 1)[-1]: s for p, s in _hands_by_file(out).items()}
        assert got == expected, fmt
        current = out


def _hands_by_file(root):
    return {s.path.replace(str(root), ""): sorted((round(h.x, 2), round(h.y, 2), round(h.radius, 2), h.label)
                                                  for h in s.hands) for s in read_dataset(root)}


def test_convert_refuses_to_overwrite_and_bad_sources(native_dataset, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x.txt").write_text("mine")
    assert dataset.main(["convert", str(native_dataset), str(tmp_path / "taken"), "--to", "yolo"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "taken" / "x.txt").read_text() == "mine"
    (native_dataset / "a.jpg").write_bytes(b"")
    assert dataset.main(["convert", str(native_dataset), str(tmp_path / "new"), "--to", "voc"]) == 2
    assert "empty file" in capsys.readouterr().err
    assert not (tmp_path / "new").exists() and not (tmp_path / "new.partial").exists()


def test_stats_skip_problems_with_a_note(tmp_path, capsys):
    root = write_native(tmp_path / "d", {"a.jpg": [{"x": 5, "y": 5, "radius": 3, "label": "open"}],
                                         "b.jpg": [{"x": 500, "y": 5, "radius": 3, "label": "open"}]})
    assert dataset.main(["stats", str(root), "--png", str(tmp_path / "s.png")]) == 0
    captured = capsys.readouterr()
    assert "1 images, 1 hands" in captured.out and "1 problem(s) skipped" in captured.err
    assert dataset_stats(check(root)[0])["hands"] == 1


def test_label_masks_are_checked_and_carried_by_native_conversion(tiny_synthetic, tmp_path):
    """The synthetic set's masks: check reads them, they are not unannotated frames, and a
    native-to-native conversion copies them and points at them."""
    tiny_synthetic = shutil.copytree(tiny_synthetic, tmp_path / "syn")  # the fixture is shared: break a copy
    samples, problems = check(tiny_synthetic)
    assert not problems and all(s.mask for s in samples)
    assert dataset.unannotated_images(tiny_synthetic) == []
    out = tmp_path / "copy"
    convert(tiny_synthetic, out, "native")
    copied = read_dataset(out)
    assert [s.mask.replace(str(out), "") for s in copied] == [s.mask.replace(str(tiny_synthetic), "") for s in samples]
    assert all(open(a.mask, "rb").read() == open(b.mask, "rb").read() for a, b in zip(samples, copied))
    assert check(out)[1] == []
    broken = cv2.imread(samples[0].mask, cv2.IMREAD_UNCHANGED)[:10]
    cv2.imwrite(samples[0].mask, broken)
    assert str(check(tiny_synthetic)[1][0]) == f"{samples[0].mask}: mask is 96x10, its image 96x64"
