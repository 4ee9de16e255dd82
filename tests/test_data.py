import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from conftest import write_native
from handnet import data
from handnet.annotations import DatasetError, load_samples
from handnet.config import Config
from handnet.data import PreparedExamples, make_dataset, make_example, random_affine
from handnet.targets import target_channels


def _dot_dataset(tmp_path):
    """One 120x200 frame, black but for a white disc where the single open hand is."""
    root = write_native(tmp_path / "dot", {"a.png": [{"x": 130, "y": 40, "radius": 14, "label": "open"}]}, 120, 200)
    frame = np.zeros((120, 200, 3), np.uint8)
    cv2.circle(frame, (130, 40), 14, (255, 255, 255), -1)
    cv2.imwrite(str(root / "a.png"), frame)
    return load_samples(root, "open=positive")


def test_augmented_targets_follow_the_image(tmp_path):
    (sample,) = _dot_dataset(tmp_path)
    config = Config(input_size=(64, 96), augment=True)
    checked = 0
    for seed in range(16):
        image, y_true = make_example(sample, config, np.random.default_rng(seed))
        assert image.shape == (64, 96, 3) and y_true.shape == (8, 12, target_channels(config))
        # make_example's first draw is the geometry: where must the hand be now?
        matrix = random_affine(np.random.default_rng(seed), (120, 200), (64, 96))
        x, y = matrix @ [130, 40, 1]
        grey = image.mean(axis=2)
        ys, xs = np.nonzero(grey > grey.max() / 2)
        if not (8 < x < 88 and 8 < y < 56) or len(xs) == 0:
            continue  # cropped away or cut by the border
        checked += 1
        assert abs(xs.mean() + 0.5 - x) < 1 and abs(ys.mean() + 0.5 - y) < 1, f"seed {seed}: image moved wrongly"
        assert y_true[int(y // 8), int(x // 8), 0] == 1.0, f"seed {seed}: target peak is not on the hand"
    assert checked >= 5


def test_flipped_training_examples_mirror_image_and_targets_together(tmp_path):
    (sample,) = _dot_dataset(tmp_path)
    config = Config(input_size=(64, 96))  # no --augment: flips only
    plain_image, plain_y = make_example(sample, config)
    # The letterboxed hand (62.4, 22.2) is in cell (2, 7); mirrored, at x = 96 - 62.4 = 33.6, cell (2, 4).
    assert plain_y[2, 7, 0] == 1.0
    seen = set()
    for seed in range(12):
        image, y_true = make_example(sample, config, np.random.default_rng(seed))
        if y_true[2, 4, 0] == 1.0:
            np.testing.assert_array_equal(image, plain_image[:, ::-1])
            np.testing.assert_array_equal(y_true, plain_y[:, ::-1])
            seen.add("mirrored")
        else:
            np.testing.assert_array_equal(image, plain_image)
            np.testing.assert_array_equal(y_true, plain_y)
            seen.add("as is")
    assert seen == {"mirrored", "as is"}
    unflipped = Config(input_size=(64, 96), flip=False)
    for seed in range(4):
        np.testing.assert_array_equal(make_example(sample, unflipped, np.random.default_rng(seed))[0], plain_image)


def test_mosaics_tile_smaller_hands_whose_targets_follow_them(tmp_path):
    (sample,) = _dot_dataset(tmp_path)
    config = Config(input_size=(96, 144), augment=True, mosaic=1.0)
    whole = Config(input_size=(96, 144), augment=True)
    mosaic_peaks, whole_peaks, mosaic_areas, whole_areas = [], [], [], []

    def disc_areas(image):
        grey = image.mean(axis=2)
        count, _, stats, centres = cv2.connectedComponentsWithStats((grey > grey.max() / 2).astype(np.uint8))
        return [(stats[i, cv2.CC_STAT_AREA], centres[i]) for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] > 4]

    for seed in range(12):
        image, y_true = make_example(sample, config, np.random.default_rng(seed), pool=[sample])
        assert image.shape == (96, 144, 3) and y_true.shape == (12, 18, target_channels(config))
        discs = [centre for area, centre in disc_areas(image)]
        mosaic_areas += [area for area, _ in disc_areas(image)]
        peaks = np.argwhere(y_true[..., 0] == 1.0)
        mosaic_peaks.append(len(peaks))
        for row, col in peaks:  # each target peak sits on a white disc of the image
            assert any(abs(cx - (col + 0.5) * 8) < 8 and abs(cy - (row + 0.5) * 8) < 8 for cx, cy in discs), \
                f"seed {seed}: a target peak at cell ({row}, {col}) has no hand under it"
        image, y_true = make_example(sample, whole, np.random.default_rng(seed))
        whole_peaks.append(int((y_true[..., 0] == 1.0).sum()))
        whole_areas += [area for area, _ in disc_areas(image)]
    # A 2x2 or 3x3 grid of the one-hand frame holds several hands, 2-3x narrower.
    assert np.mean(mosaic_peaks) >= 3 and max(whole_peaks) <= 1
    assert np.median(mosaic_areas) < np.median(whole_areas) / 3
    with pytest.raises(ValueError, match="needs augment"):
        Config(mosaic=0.5)


@pytest.mark.parametrize("augment", [True, False])
def test_focus_crops_always_hold_the_hand(tmp_path, augment):
    (sample,) = _dot_dataset(tmp_path)
    focused = Config(input_size=(96, 160), crop_size=(48, 64), focus_crops=1.0, augment=augment)
    anywhere = Config(input_size=(96, 160), crop_size=(48, 64), focus_crops=0.0, augment=augment)
    peaks = {name: sum(make_example(sample, config, np.random.default_rng(seed))[1][..., 0].max() == 1.0
                       for seed in range(40))
             for name, config in (("focused", focused), ("anywhere", anywhere))}
    assert peaks["focused"] == 40, "a focused crop lost its hand"
    assert peaks["anywhere"] < 30, "random crops should often miss a hand in a third of the frame"


def test_validation_examples_are_letterboxed_without_augmentation(tmp_path):
    (sample,) = _dot_dataset(tmp_path)
    image, y_true = make_example(sample, Config(input_size=(64, 96)))
    # 120x200 -> 58x96 inside 64x96 (3 px bars); the hand at (130, 40) -> (62.4, 22.2) -> cell (2, 7)
    assert y_true[2, 7, 0] == 1.0
    assert image[0].max() == 0 and image[-1].max() == 0


def test_every_hand_channels_light_up_ignored_hands_too(tmp_path):
    """The auxiliary head's target (channels 2-3) marks every annotated hand, so it learns what
    any hand looks like; the heatmap's own target leaves the 'other' hand unweighted."""
    root = write_native(tmp_path / "two", {"a.png": [{"x": 24, "y": 24, "radius": 10, "label": "open"},
                                                     {"x": 72, "y": 40, "radius": 10, "label": "other"}]}, 64, 96)
    cv2.imwrite(str(root / "a.png"), np.zeros((64, 96, 3), np.uint8))
    (sample,) = load_samples(root, "open=positive,other=ignore")
    _, y_true = make_example(sample, Config(input_size=(64, 96), negative_weight=0.0))
    assert y_true.shape == (8, 12, 10)  # the segment head's channels (6-9) stay unweighted: no mask
    assert np.all(y_true[..., 6:] == 0.0)
    # the openness head (channels 4-5): 1 in the open hand, 0 in the other, weighted inside hands alone
    assert y_true[3, 3, 4] == 1.0 and y_true[5, 9, 4] == 0.0 and y_true[3, 3, 5] == y_true[5, 9, 5] == 1.0
    assert y_true[0, 0, 5] == 0.0 and y_true[..., 5].sum() < y_true.shape[0] * y_true.shape[1] / 2
    y_true = y_true[..., :4]
    assert y_true[3, 3, 0] == 1.0 and y_true[3, 3, 2] == 1.0  # the open hand: in both
    assert y_true[5, 9, 0] < 1e-6 and y_true[5, 9, 1] == 0.0  # the other hand: no say in the heatmap
    assert y_true[5, 9, 2] == 1.0 and y_true[5, 9, 3] == 1.0  # ... but a hand to the auxiliary head
    _, plain = make_example(sample, Config(input_size=(64, 96), aux_weight=0.0, openness_weight=0.0, negative_weight=0.0,
                                           segment_weight=0.0))
    np.testing.assert_array_equal(plain, y_true[..., :2])


def test_negatives_channels_light_up_faces_and_arms_alone(tmp_path):
    """The negatives head's target (channels 4-5) marks the annotated faces and arms, which are
    plain background to the heatmap and to the every-hand head."""
    root = write_native(tmp_path / "three", {"a.png": [{"x": 24, "y": 24, "radius": 10, "label": "open"},
                                                       {"x": 72, "y": 40, "radius": 10, "label": "other"},
                                                       {"x": 60, "y": 12, "radius": 8, "label": "face"}]}, 64, 96)
    cv2.imwrite(str(root / "a.png"), np.zeros((64, 96, 3), np.uint8))
    (sample,) = load_samples(root, Config().labels)
    _, y_true = make_example(sample, Config(input_size=(64, 96), aux_weight=1.0, openness_weight=0.0, negative_weight=1.0,
                                            segment_weight=0.0))
    assert y_true.shape == (8, 12, 6)
    assert y_true[1, 7, 4] == 1.0 and y_true[1, 7, 5] == 1.0  # the face: the negatives head's peak
    assert y_true[1, 7, 0] < 1e-3 and y_true[1, 7, 1] == 1.0  # background to the heatmap, weighted
    assert y_true[1, 7, 2] < 1e-3 and y_true[1, 7, 3] == 1.0  # ... and to the every-hand head
    assert y_true[3, 3, 4] < 1e-3 and y_true[5, 9, 4] < 1e-3  # hands are not negatives
    assert np.all(y_true[..., 5] == 1.0)  # every cell has a say
    _, no_heads = make_example(sample, Config(input_size=(64, 96), aux_weight=0.0, openness_weight=0.0,
                                              negative_weight=1.0, segment_weight=0.0))
    np.testing.assert_array_equal(no_heads, y_true[..., [0, 1, 4, 5]])  # the negatives head alone


def test_dataset_batches_and_streams(tiny_synthetic):
    samples = load_samples(tiny_synthetic, Config().labels)
    config = Config(input_size=(64, 96), batch_size=4, augment=True, aux_weight=1.0, openness_weight=0.0, negative_weight=1.0)
    images, y_true = next(iter(make_dataset(samples, config, training=True)))
    assert images.shape == (4, 64, 96, 3) and y_true.shape == (4, 8, 12, 10)  # 2 + 2 + 2 + (3 + 1)
    assert np.all(y_true[..., 9] == 1.0)  # the synthetic set has masks: the segment head learns everywhere
    assert 0 <= float(np.min(images)) and float(np.max(images)) <= 255
    val_batches = list(make_dataset(samples, config, training=False))
    assert sum(len(b[0]) for b in val_batches) == len(samples)


def test_prepared_examples_read_back_what_make_example_makes(tiny_synthetic, tmp_path):
    samples = load_samples(tiny_synthetic, Config().labels)
    config = Config(input_size=(64, 96), batch_size=4)
    # A folder repeated in an epoch (--data-repeats) lists its images twice: one row each.
    prepared = PreparedExamples(samples + samples[:5], config, tmp_path / "prepared")
    assert prepared.images.shape == (len(samples), 64, 96, 3) and prepared.images.dtype == np.uint8
    assert prepared.targets.shape == (len(samples), 8, 12, target_channels(config))
    assert {p.name for p in (tmp_path / "prepared").iterdir()} == {"images.npy", "targets.npy"}
    for sample in samples:
        image, y_true = make_example(sample, config)
        np.testing.assert_array_equal(prepared.example(sample)[0], image)
        # Exact but for Gaussian tails under 1e-38, which tf.data's threads flush to zero.
        np.testing.assert_allclose(prepared.example(sample)[1], y_true, rtol=0, atol=1e-37)
    # Training streams draw the same flips, so a run sees the same examples either way.
    streams = [make_dataset(samples, config, training=True, prepared=p).as_numpy_iterator() for p in (None, prepared)]
    for _ in range(3 * len(samples) // config.batch_size):
        (made_images, made_y), (read_images, read_y) = next(streams[0]), next(streams[1])
        np.testing.assert_array_equal(read_images, made_images)
        np.testing.assert_allclose(read_y, made_y, atol=1e-5)


def test_unaugmented_crops_are_grid_windows_of_the_whole_example(tiny_synthetic, tmp_path):
    samples = load_samples(tiny_synthetic, Config().labels)
    whole = Config(input_size=(64, 96))
    cropped = Config(input_size=(64, 96), crop_size=(32, 48), focus_crops=0.5)
    prepared = PreparedExamples(samples, cropped, tmp_path / "prepared")
    starts = set()
    for draw, sample in enumerate(samples):
        # Both configs draw the flip first, so the whole example is mirrored as the crop is.
        full_image, full_y = make_example(sample, whole, np.random.default_rng(draw))
        image, y_true = make_example(sample, cropped, np.random.default_rng(draw))
        assert image.shape == (32, 48, 3) and y_true.shape == (4, 6, full_y.shape[-1])
        # On the fast preset's 16-pixel grid, so the crop's cells are cells of the whole heatmap.
        found = [(y, x) for y in range(0, 33, 16) for x in range(0, 49, 16)
                 if np.array_equal(full_image[y:y + 32, x:x + 48], image)
                 and np.array_equal(full_y[y // 8:y // 8 + 4, x // 8:x // 8 + 6], y_true)]
        assert found, f"{sample.path.name}: the crop is no grid window of the whole example"
        starts.add(found[0])
        # Read back from prepared examples, the same crop.
        read_image, read_y = prepared.example(sample, np.random.default_rng(draw))
        np.testing.assert_array_equal(read_image, image)
        np.testing.assert_allclose(read_y, y_true, atol=1e-5)
    assert len(starts) >= 4, f"crops keep to a few windows: {sorted(starts)}"
    batch_images, batch_y = next(iter(make_dataset(samples, cropped, training=True, prepared=prepared)))
    assert batch_images.shape == (cropped.batch_size, 32, 48, 3) and batch_y.shape[1:3] == (4, 6)
    unflipped = Config(input_size=(64, 96), crop_size=(32, 48), flip=False)  # crops draw without flips too
    assert next(iter(make_dataset(samples, unflipped, training=True)))[0].shape == (unflipped.batch_size, 32, 48, 3)


def test_preparing_on_a_full_disk_is_a_clear_error(tiny_synthetic, tmp_path, monkeypatch):
    samples = load_samples(tiny_synthetic, Config().labels)
    monkeypatch.setattr(data.shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, used=10**9 - 1000, free=1000))
    with pytest.raises(OSError, match=r"24 examples needs 1 MB of disk, 0 MB free \(--no-prepare"):
        PreparedExamples(samples, Config(input_size=(64, 96)), tmp_path / "prepared")
    assert not (tmp_path / "prepared" / "images.npy").exists()


def test_prepared_examples_refuse_augmentation(tiny_synthetic, tmp_path):
    samples = load_samples(tiny_synthetic, Config().labels)
    prepared = PreparedExamples(samples, Config(input_size=(64, 96)), tmp_path / "prepared")
    with pytest.raises(ValueError, match="augment"):
        make_dataset(samples, Config(input_size=(64, 96), augment=True), training=True, prepared=prepared)


def _dot_dataset_with_mask(tmp_path):
    """_dot_dataset, plus a label mask that marks the disc `open` (a positive)."""
    (sample,) = _dot_dataset(tmp_path)
    root = tmp_path / "dot"
    mask = np.zeros((120, 200), np.uint8)
    cv2.circle(mask, (130, 40), 14, 1, -1)
    cv2.imwrite(str(root / "a-mask.png"), mask)
    doc = json.loads((root / "hands.json").read_text())
    doc["mask_labels"] = ["open"]
    doc["images"][0]["mask"] = "a-mask.png"
    (root / "hands.json").write_text(json.dumps(doc))
    return load_samples(root, "open=positive")


@pytest.mark.parametrize("augment", [True, False])
def test_segment_targets_follow_the_image(tmp_path, augment):
    """Zoomed, shifted, cropped or mirrored, the segment head's positive share of each cell is
    the share of the (white) disc in that cell of the input the network sees."""
    (sample,) = _dot_dataset_with_mask(tmp_path)
    config = Config(input_size=(64, 96), augment=augment, aux_weight=0.0, openness_weight=0.0, negative_weight=0.0)
    assert target_channels(config) == 2 + 3 + 1
    mirrored = 0
    for seed in range(12):
        image, y_true = make_example(sample, config, np.random.default_rng(seed))
        disc = cv2.resize((image.mean(axis=2) > 127).astype(np.float32), (12, 8), interpolation=cv2.INTER_AREA)
        np.testing.assert_allclose(y_true[..., 2], disc, atol=0.2)
        assert np.all(y_true[..., 3:5] == 0.0) and np.all(y_true[..., 5] == 1.0)  # no ignore, no negative; weighted
        mirrored += image[:, :48].mean() > image[:, 48:].mean()  # the disc sits right of centre unmirrored
    assert 0 < mirrored < 12  # both sides were seen
    _, unaugmented = make_example(sample, config)
    assert unaugmented[..., 2].max() > 0.5


def test_mask_problems_name_the_file(tmp_path):
    (sample,) = _dot_dataset_with_mask(tmp_path)
    root = tmp_path / "dot"
    cv2.imwrite(str(root / "a-mask.png"), np.full((120, 200), 2, np.uint8))
    with pytest.raises(DatasetError, match="a-mask.png: mask value 2 but only 1 mask_labels"):
        load_samples(root, "open=positive")
    cv2.imwrite(str(root / "a-mask.png"), np.zeros((60, 200), np.uint8))
    with pytest.raises(DatasetError, match="a-mask.png: mask is 200x60, its image 200x120"):
        load_samples(root, "open=positive")
    cv2.imwrite(str(root / "a-mask.png"), np.zeros((120, 200, 3), np.uint8))
    with pytest.raises(DatasetError, match="a-mask.png: a mask must be a single-channel 8-bit image"):
        load_samples(root, "open=positive")
    (root / "a-mask.png").unlink()
    with pytest.raises(DatasetError, match="a-mask.png: cannot read mask"):
        load_samples(root, "open=positive")
    doc = json.loads((root / "hands.json").read_text())
    doc["mask_labels"] = ["hello"]
    (root / "hands.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="unknown label 'hello'"):
        load_samples(root, "open=positive")
