"""Gesture folders, crops cut from detection datasets, and the synthetic finger gestures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import write_native
from handnet.annotations import DatasetError
from handnet.gesture_data import (
    Example, cut_crops, load_gesture_folder, load_unseen_folder, main, make_gesture_dataset, merge_folders,
    mix_crops, regroup_folders, split_examples, unseen_dir,
)
from handnet.gestures import gesture_targets
from handnet.synthetic import FINGERS, KNOWN_GESTURES, UNKNOWN_GESTURES, UNSEEN_GESTURES, generate_gesture_crop, \
    generate_gesture_folders


@pytest.fixture
def boxes(tmp_path):
    return write_native(tmp_path / "frames", {
        "f000.jpg": [{"x": 20, "y": 30, "radius": 10, "label": "hello"}, {"x": 70, "y": 30, "radius": 8, "label": "fist"}],
        "f001.jpg": [{"x": 40, "y": 20, "radius": 12, "label": "okay"}],
        "f002.jpg": [{"x": 50, "y": 40, "radius": 9, "label": "hello"}, {"x": 80, "y": 50, "radius": 6, "label": "yes"}],
        "f003.jpg": [],
    })


def test_crops_sort_every_hand_into_gestures_na_and_unseen(boxes, tmp_path):
    out = tmp_path / "gestures"
    counts = cut_crops([str(boxes)], ["hello"], out, unseen=["okay"], side=48)
    assert counts == {"gestures/hello": 2, "gestures/na": 2, "gestures-unseen/okay": 1}
    known, examples = load_gesture_folder(out)
    assert known == ["hello"]
    assert sorted(e.gesture for e in examples) == ["hello", "hello", "na", "na"]
    assert [p.name for p in sorted((out / "hello").iterdir())] == ["f000_0.png", "f002_0.png"]
    assert cv2.imread(str(out / "hello" / "f000_0.png")).shape == (48, 48, 3)
    unseen = load_unseen_folder(unseen_dir(out))
    assert [(e.gesture, e.path.endswith("f001_0.png")) for e in unseen] == [("okay", True)]
    assert not list(tmp_path.glob("*.partial")), "nothing half-built left behind"


def test_crops_refuse_contradictions_and_missing_labels(boxes, tmp_path):
    with pytest.raises(ValueError, match="both known and unseen"):
        cut_crops([str(boxes)], ["hello"], tmp_path / "a", unseen=["hello"])
    with pytest.raises(ValueError, match="'na'"):
        cut_crops([str(boxes)], ["na"], tmp_path / "b")
    with pytest.raises(DatasetError, match="no hands labelled thumbs"):
        cut_crops([str(boxes)], ["hello", "thumbs"], tmp_path / "c")
    assert not (tmp_path / "c").exists() and not (tmp_path / "c.partial").exists()


def test_crops_cli_prints_counts_and_exits_2_on_bad_input(boxes, tmp_path, capsys):
    assert main(["crops", "--data", str(boxes), "--gestures", "hello,yes", "--out", str(tmp_path / "g")]) == 0
    assert "g/hello: 2" in capsys.readouterr().out
    assert main(["crops", "--data", str(tmp_path / "none"), "--gestures", "hello", "--out", str(tmp_path / "x")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["crops", "--data", str(boxes), "--gestures", "hello", "--out", str(tmp_path / "y"),
                 "--detector", str(tmp_path / "missing.tflite")]) == 2
    assert "missing.tflite" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_crops_with_a_detector_add_the_framing_infer_py_sees(toy_run, tmp_path, capsys):
    import json

    from conftest import DISK_COLOUR, TOY_SIZE
    from handnet.annotations import group_key

    frames = tmp_path / "disks"
    frames.mkdir()
    image = np.random.default_rng(1).integers(0, 60, (*TOY_SIZE, 3)).astype(np.uint8)
    cv2.circle(image, (30, 30), 9, DISK_COLOUR, -1)
    cv2.imwrite(str(frames / "f000.png"), image)
    # The box of the disk is 4 px off its centre; the second hand shows nothing a detector finds.
    hands = [{"x": 34, "y": 30, "radius": 9, "label": "hello"}, {"x": 75, "y": 40, "radius": 8, "label": "fist"}]
    (frames / "hands.json").write_text(json.dumps({"format": "handnet", "version": 1,
                                                   "images": [{"file": "f000.png", "hands": hands}]}))
    out = tmp_path / "g"
    cut_crops([str(frames)], ["hello"], out, side=48, detector=str(toy_run / "model-int8.tflite"))
    assert sorted(p.name for p in (out / "hello").iterdir()) == ["f000_0.det.png", "f000_0.png"]
    assert [p.name for p in (out / "na").iterdir()] == ["f000_1.png"]  # nothing found there: one crop
    assert "the detector framed 1 of 2 hands" in capsys.readouterr().out

    def disk_centre_x(name):
        bright = cv2.imread(str(out / "hello" / name)).min(axis=2) > 150
        return np.nonzero(bright)[1].mean()

    assert abs(disk_centre_x("f000_0.det.png") - 24) < abs(disk_centre_x("f000_0.png") - 24)  # centred on the disk
    # Both crops of a hand are one frame to the split, so they never straddle train and validation.
    assert group_key(str(out / "hello" / "f000_0.det.png")) == group_key(str(out / "hello" / "f000_0.png"))


def test_split_keeps_runs_of_consecutive_frames_together_per_gesture(tmp_path):
    png = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    for gesture in ("a", "b", "na"):
        (tmp_path / "g" / gesture).mkdir(parents=True)
        for i in range(40):
            (tmp_path / "g" / gesture / f"frame{i:03d}.png").write_bytes(png)
    _, examples = load_gesture_folder(tmp_path / "g")
    train, val = split_examples(examples, 0.25, 8, seed=0)
    assert len(train) + len(val) == 120 and not {e.path for e in train} & {e.path for e in val}
    for gesture in ("a", "b", "na"):
        picked = sorted(int(e.path[-7:-4]) for e in val if e.gesture == gesture)
        assert len(picked) == 10 or len(picked) == 16  # whole runs of 8 files, about a quarter of 40
        assert all(i // 8 == j // 8 for run in (picked[k : k + 8] for k in range(0, len(picked), 8))
                   for i, j in zip(run, run[1:]))


def test_synthetic_gestures_are_deterministic_and_differ_by_fingers():
    assert set(KNOWN_GESTURES) | set(UNKNOWN_GESTURES) | set(UNSEEN_GESTURES) == set(FINGERS)
    a = generate_gesture_crop(0, 3, "victory", 64)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, generate_gesture_crop(0, 3, "victory", 64))
    assert not np.array_equal(a, generate_gesture_crop(0, 3, "palm", 64))
    with pytest.raises(ValueError, match="unknown synthetic gesture"):
        generate_gesture_crop(0, 0, "wave")


def test_synthetic_gesture_folders_have_the_training_layout(tmp_path):
    out, unseen = generate_gesture_folders(tmp_path / "syn", per_class=3, side=32)
    known, examples = load_gesture_folder(out)
    assert known == sorted(KNOWN_GESTURES)
    assert sum(e.gesture == "na" for e in examples) == 3 * len(UNKNOWN_GESTURES)
    assert sorted({e.gesture for e in load_unseen_folder(unseen)}) == sorted(UNSEEN_GESTURES)
    assert unseen == unseen_dir(out)


def test_regroup_turns_a_folder_per_gesture_into_the_training_layout(tmp_path):
    for gesture in ("0", "1", "4", "5"):
        for i in range(3):
            (tmp_path / "digits" / gesture).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / "digits" / gesture / f"IMG_{i}.JPG"), np.full((8, 8, 3), i, np.uint8))
    counts = regroup_folders(tmp_path / "digits", ["0", "1"], tmp_path / "out", unseen=["5"])
    assert counts == {"out/0": 3, "out/1": 3, "out/na": 3, "out-unseen/5": 3}
    known, examples = load_gesture_folder(tmp_path / "out")
    assert known == ["0", "1"]
    assert sorted(p.name for p in (tmp_path / "out" / "na").iterdir()) == ["4_IMG_0.JPG", "4_IMG_1.JPG", "4_IMG_2.JPG"]
    with pytest.raises(DatasetError, match="no folder of images named 7"):
        regroup_folders(tmp_path / "digits", ["0", "7"], tmp_path / "bad")


def gesture_folder(root, counts):
    for gesture, n in counts.items():
        (root / gesture).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / gesture / f"IMG_{i}.png"), np.full((8, 8, 3), i, np.uint8))
    return root


def test_merge_keeps_sets_apart_by_prefix_and_pools_na(tmp_path):
    fc = gesture_folder(tmp_path / "fc", {"one": 2, "five": 3, "na": 1})
    digits = gesture_folder(tmp_path / "digits", {"5": 2, "one": 1, "na": 2})
    counts = merge_folders([fc, digits], tmp_path / "all", ["fc_", "digit_"])
    assert counts == {"all/digit_5": 2, "all/digit_one": 1, "all/fc_five": 3, "all/fc_one": 2, "all/na": 3}
    known, examples = load_gesture_folder(tmp_path / "all")
    assert known == ["digit_5", "digit_one", "fc_five", "fc_one"] and len(examples) == 11
    # Files keep their source in their name: same-named images of two sets never clash.
    assert sorted(p.name for p in (tmp_path / "all" / "na").iterdir()) == [
        "digits_IMG_0.png", "digits_IMG_1.png", "fc_IMG_0.png"]
    # Without prefixes, same-named gestures are pooled.
    assert merge_folders([fc, digits], tmp_path / "pooled")["pooled/one"] == 3


def test_merge_as_na_adds_another_sets_gestures_to_the_unknowns(tmp_path, capsys):
    mine = gesture_folder(tmp_path / "mine", {"hello": 2, "na": 1})
    fc = gesture_folder(tmp_path / "fc", {"three": 2, "four": 1, "five": 1})
    assert main(["merge", "--data", str(mine), str(fc), "--prefix", "", "fc_", "--as-na", "fc_three,fc_four",
                 "--leave-out", "fc_five", "--out", str(tmp_path / "out")]) == 0
    known, examples = load_gesture_folder(tmp_path / "out")
    assert known == ["hello"] and len(examples) == 6
    assert sorted(p.name for p in (tmp_path / "out" / "na").iterdir()) == [
        "fc_four_IMG_0.png", "fc_three_IMG_0.png", "fc_three_IMG_1.png", "mine_IMG_0.png"]
    # A name no folder holds is a typo to report, before anything is written.
    assert main(["merge", "--data", str(fc), "--prefix", "fc_", "--as-na", "three",
                 "--out", str(tmp_path / "typo")]) == 2
    assert "--as-na names three" in capsys.readouterr().err and not (tmp_path / "typo").exists()
    with pytest.raises(ValueError, match="none is left to recognise"):
        merge_folders([fc], tmp_path / "empty", ["fc_"], as_na=["fc_three", "fc_four"], leave_out=["fc_five"])


def test_merge_refuses_a_prefix_count_mismatch_and_writing_over_its_input(tmp_path, capsys):
    fc = gesture_folder(tmp_path / "fc", {"one": 1})
    with pytest.raises(ValueError, match="one prefix per --data folder"):
        merge_folders([fc], tmp_path / "out", ["a_", "b_"])
    assert main(["merge", "--data", str(fc), "--out", str(fc)]) == 2
    assert "must not be one of the --data folders" in capsys.readouterr().err
    assert sorted(p.name for p in (fc / "one").iterdir()) == ["IMG_0.png"]
    assert main(["merge", "--data", str(fc), str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert "missing" in capsys.readouterr().err and not (tmp_path / "out").exists()
    # Two folders named alike would write one file name twice: an error, not an overwrite.
    twin = gesture_folder(tmp_path / "elsewhere" / "fc", {"one": 1})
    with pytest.raises(ValueError, match="would both be fc_IMG_0.png"):
        merge_folders([fc, twin], tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_mixed_crop_takes_each_pixel_from_one_crop_and_splits_left_from_right():
    first, second = np.full((32, 32, 3), 10, np.uint8), np.full((32, 32, 3), 200, np.uint8)
    for seed in range(20):
        mixed = mix_crops(np.random.default_rng(seed), first, second)
        from_first = mixed[..., 0] == 10
        assert np.all(from_first | (mixed[..., 0] == 200))
        assert 0.25 < from_first.mean() < 0.75  # both crops contribute
        # The cut is roughly upright: one crop holds the left edge's middle, the other the right's.
        assert from_first[16, 0] != from_first[16, 31]


@pytest.mark.parametrize("loss", ["ce", "bce_na"])
def test_mixing_replaces_na_draws_by_two_known_gestures_and_keeps_the_na_target(tmp_path, loss):
    examples = []
    for gesture, value in (("fist", 0), ("palm", 255), ("na", 128)):
        (tmp_path / gesture).mkdir()
        for i in range(4):
            path = tmp_path / gesture / f"{i}.png"
            cv2.imwrite(str(path), np.full((16, 16, 3), value, np.uint8))
            examples.append(Example(str(path), gesture))
    targets = gesture_targets([{"fist": 0, "palm": 1, "na": 2}[e.gesture] for e in examples], 2, loss)
    dataset = make_gesture_dataset(examples, targets, 16, 600, training=True, augment=False, mix_unknowns=0.5)
    images, batch_targets = (np.asarray(t) for t in next(iter(dataset)))
    fist, palm, na = (np.all(images == value, axis=(1, 2, 3)) for value in (0, 255, 128))
    mixed = (images.min(axis=(1, 2, 3)) == 0) & (images.max(axis=(1, 2, 3)) == 255)
    assert np.all(fist | palm | na | mixed)
    # A third of the 600 draws are na, half of those mixed (bounds 5 standard deviations wide).
    assert 0.3 < mixed.sum() / (mixed.sum() + na.sum()) < 0.7
    assert 140 < fist.sum() < 260 and 140 < palm.sum() < 260  # known draws stay as they were
    assert np.all(batch_targets[mixed | na] == targets[-1])
    assert np.all(batch_targets[fist] == targets[0]) and np.all(batch_targets[palm] == targets[4])
    with pytest.raises(ValueError, match="two known gestures"):
        make_gesture_dataset(examples[4:], targets[4:], 16, 8, training=True, mix_unknowns=0.5)
