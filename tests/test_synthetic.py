import json

import numpy as np
import pytest

from handnet.annotations import load_samples
from handnet.config import DEFAULT_LABELS
from handnet.synthetic import (DENSE_HAND_COUNTS, DENSE_SMALL_HAND_COUNTS, DENSE_SMALL_RADII, DISTRACTOR_LABELS,
                               HAND_COUNTS, MASK_LABELS, PARALLEL_MIN, generate_dataset, generate_scene)


def test_scenes_are_deterministic_and_seed_dependent():
    a_image, a_hands = generate_scene(5, 11, (120, 160))
    b_image, b_hands = generate_scene(5, 11, (120, 160))
    assert np.array_equal(a_image, b_image) and a_hands == b_hands
    c_image, _ = generate_scene(6, 11, (120, 160))
    assert not np.array_equal(a_image, c_image)


def test_dataset_bytes_are_reproducible(tmp_path):
    one = generate_dataset(tmp_path / "one", 4, (64, 96), seed=2, progress=False)
    two = generate_dataset(tmp_path / "two", 4, (64, 96), seed=2, progress=False)
    for name in ["hands.json"] + [f"{i:06d}.jpg" for i in range(4)] + [f"masks/{i:06d}.png" for i in range(4)]:
        assert (one / name).read_bytes() == (two / name).read_bytes()


def test_worker_processes_write_the_same_bytes(tmp_path):
    count = PARALLEL_MIN  # the smallest set drawn in worker processes
    serial = generate_dataset(tmp_path / "serial", count, (32, 48), seed=4, progress=False, workers=1)
    parallel = generate_dataset(tmp_path / "parallel", count, (32, 48), seed=4, progress=False, workers=2)
    names = ["hands.json"] + [f"{i:06d}.jpg" for i in range(count)] + [f"masks/{i:06d}.png" for i in range(count)]
    assert sorted(p.relative_to(parallel).as_posix() for p in parallel.rglob("*.*")) == sorted(names)
    assert all((serial / name).read_bytes() == (parallel / name).read_bytes() for name in names)
    assert not (tmp_path / "parallel.partial").exists()


def test_scenes_cover_open_and_other_hands_near_and_far():
    found = [h for i in range(150) for h in generate_scene(0, i, (240, 320))[1]]
    hands = [h for h in found if h["label"] in ("open", "other")]
    radii = np.array([h["radius"] for h in hands])
    assert {h["label"] for h in found} == {"open", "other", "face", "arm"}
    assert radii.min() < 8 and radii.max() > 60 and radii.max() <= 80
    assert all(0 <= h["x"] <= 320 and 0 <= h["y"] <= 240 for h in found)


def test_distractors_are_annotated_where_no_hand_covers_them():
    """Faces and arms are written down (label face or arm) unless a hand is drawn over their
    centre; the hands come first."""
    scenes = [generate_scene(0, i, (240, 320))[1] for i in range(150)]
    assert sum(h["label"] in DISTRACTOR_LABELS for s in scenes for h in s) > 100
    for found in scenes:
        labels = [h["label"] for h in found]
        hands = [h for h in found if h["label"] in ("open", "other")]
        assert labels[: len(hands)] == [h["label"] for h in hands]  # hands first
        for d in found[len(hands):]:
            assert d["label"] in DISTRACTOR_LABELS and 3 < d["radius"] < 50
            assert all(np.hypot(d["x"] - h["x"], d["y"] - h["y"]) > h["radius"] for h in hands)


def test_masks_mark_what_each_annotation_shows():
    """The label mask under each annotated centre shows that annotation's label (a hand drawn
    later may hide a few), the images are the same with or without a mask, and most pixels are
    background."""
    shown = total = 0
    for i in range(60):
        image, found, mask = generate_scene(0, i, (240, 320), with_mask=True)
        assert np.array_equal(image, generate_scene(0, i, (240, 320))[0])
        assert mask.shape == (240, 320) and mask.max() <= len(MASK_LABELS) and (mask == 0).mean() > 0.5
        for h in found:
            if h["label"] == "other":
                continue  # a partly hidden hand may be hidden at its centre
            total += 1
            shown += mask[min(int(h["y"]), 239), min(int(h["x"]), 319)] == MASK_LABELS.index(h["label"]) + 1
    assert total > 100 and shown / total > 0.9


def test_written_in_native_format(tiny_synthetic):
    samples = load_samples(tiny_synthetic, DEFAULT_LABELS)
    assert len(samples) == 24
    assert json.loads((tiny_synthetic / "hands.json").read_text())["generator"]["seed"] == 3
    assert all((s.width, s.height) == (96, 64) for s in samples)


def test_dense_training_scenes_hold_more_hands_and_distractors():
    def counts(dense):
        found = [generate_scene(0, i, (240, 320), dense=dense)[1] for i in range(80)]
        hands = [[h for h in f if h["label"] in ("open", "other")] for f in found]
        small = [sum(h["radius"] <= DENSE_SMALL_RADII[1] for h in hs) for hs in hands]
        return (np.mean([len(hs) for hs in hands]), np.mean([len(f) - len(hs) for f, hs in zip(found, hands)]),
                max(len(hs) for hs in hands), np.mean(small))

    plain_hands, plain_distractors, plain_most, plain_small = counts(False)
    dense_hands, dense_distractors, dense_most, dense_small = counts(True)
    assert plain_most <= max(HAND_COUNTS) < dense_most <= max(DENSE_HAND_COUNTS) + max(DENSE_SMALL_HAND_COUNTS)
    assert dense_hands > 2.5 * plain_hands and dense_distractors > 1.5 * plain_distractors
    assert dense_small > plain_small + min(DENSE_SMALL_HAND_COUNTS)  # far hands, the hard ones, on top


def test_a_dense_set_declares_dense_training_scenes_and_frame_like_validation_ones(tmp_path):
    """The first dense_train scenes are dense and declared `train`; the rest are the plain set's
    scenes, byte for byte, declared `val`; a plain set declares nothing."""
    dense = generate_dataset(tmp_path / "dense", 6, (64, 96), seed=2, progress=False, dense_train=4)
    plain = generate_dataset(tmp_path / "plain", 6, (64, 96), seed=2, progress=False)
    doc = json.loads((dense / "hands.json").read_text())
    assert [e["split"] for e in doc["images"]] == ["train"] * 4 + ["val"] * 2
    assert doc["generator"]["dense_train"] == 4
    assert not any("split" in e for e in json.loads((plain / "hands.json").read_text())["images"])
    same = [(dense / f"{i:06d}.jpg").read_bytes() == (plain / f"{i:06d}.jpg").read_bytes() for i in range(6)]
    assert same == [False] * 4 + [True] * 2
    assert [s.split for s in load_samples(dense, DEFAULT_LABELS)] == ["train"] * 4 + ["val"] * 2
    with pytest.raises(ValueError, match="between 0 and the 6 scenes"):
        generate_dataset(tmp_path / "more", 6, (64, 96), dense_train=7, progress=False)
