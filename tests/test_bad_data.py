"""Collected data is messy: --skip-bad trains anyway and reports every file it leaves out; without
it the run stops at the first bad file, naming it. Odd but valid images are read, not skipped."""

import json
import struct

import cv2
import numpy as np
import pytest
from conftest import write_image

import train
from handnet.annotations import DatasetError, load_samples, read_image


def exif_rotated_jpeg(path, height, width, orientation=6):
    """A JPEG stored as height x width whose EXIF says: rotate 90 degrees clockwise to show."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 4] = 255
    data = cv2.imencode(".jpg", image)[1].tobytes()
    tiff = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01" + struct.pack(">H", orientation) + b"\x00" * 6
    app1 = b"Exif\x00\x00" + tiff
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:])


def messy_dataset(root):
    """Twelve good frames, five odd but valid images, and one file of each kind of breakage."""
    hand = [{"x": 30, "y": 30, "radius": 12, "label": "open"}]
    entries = {}
    for k in range(12):
        write_image(root / f"good{k:02d}.jpg", 64, 96, seed=k)
        entries[f"good{k:02d}.jpg"] = hand
    cv2.imwrite(str(root / "grey.png"), np.full((64, 96), 128, np.uint8))
    cv2.imwrite(str(root / "rgba.png"), np.full((64, 96, 4), 200, np.uint8))
    cv2.imwrite(str(root / "deep.png"), np.full((64, 96, 3), 50000, np.uint16))
    exif_rotated_jpeg(root / "rotated.jpg", 96, 64)  # shown as 64 x 96
    write_image(root / "huge.jpg", 3000, 4500)
    entries |= {name: hand for name in ("grey.png", "rgba.png", "deep.png", "rotated.jpg", "huge.jpg")}
    write_image(root / "truncated.jpg", 64, 96)
    data = (root / "truncated.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "garbage.jpg").write_bytes(b"\xff\xd8 this is not a picture \xff\xd9")
    write_image(root / "outside.jpg", 64, 96)
    entries |= {"truncated.jpg": hand, "empty.jpg": hand, "garbage.jpg": hand,
                "outside.jpg": [{"x": 300, "y": 30, "radius": 12, "label": "open"}]}
    images = [{"file": name, "hands": hands} for name, hands in entries.items()]
    images.append({"file": "good00.jpg", "hands": "not a list"})
    (root / "hands.json").write_text(json.dumps({"images": images}))
    return root


BAD = {"truncated.jpg": "truncated JPEG", "empty.jpg": "empty file", "garbage.jpg": "unreadable image",
       "outside.jpg": "outside the image", "hands.json": "image entry 21"}


def test_odd_but_valid_images_are_read_as_8_bit_bgr(tmp_path):
    root = messy_dataset(tmp_path / "messy")
    for name, shape in (("grey.png", (64, 96)), ("rgba.png", (64, 96)), ("deep.png", (64, 96)),
                        ("rotated.jpg", (64, 96)), ("huge.jpg", (3000, 4500))):
        image = read_image(root / name)
        assert image.shape == (*shape, 3) and image.dtype == np.uint8, name
    assert read_image(root / "deep.png").max() == 50000 // 256  # scaled to 8 bits, not clipped
    assert read_image(root / "rotated.jpg")[:5].mean() > 200  # the EXIF rotation was applied


def test_a_jpeg_padded_after_its_end_marker_is_read_and_a_cut_one_is_not(tmp_path):
    # Some phones pad their JPEGs with zeros after the end-of-image marker; decoders ignore them.
    write_image(tmp_path / "plain.jpg", 64, 96)
    data = (tmp_path / "plain.jpg").read_bytes()
    (tmp_path / "padded.jpg").write_bytes(data + bytes(218_000))
    np.testing.assert_array_equal(read_image(tmp_path / "padded.jpg"), read_image(tmp_path / "plain.jpg"))
    (tmp_path / "cut-padded.jpg").write_bytes(data[: len(data) * 2 // 3] + bytes(5000))
    with pytest.raises(DatasetError, match="cut-padded.jpg: truncated JPEG"):
        read_image(tmp_path / "cut-padded.jpg")


def test_skip_bad_trains_anyway_and_reports_every_file(tmp_path, capsys):
    root = messy_dataset(tmp_path / "messy")
    out = tmp_path / "run"
    assert train.main(["--data", str(root), "--out", str(out), "--skip-bad", "--input-size", "64", "96",
                       "--epochs", "1", "--batch-size", "4", "--no-export", "--val-fraction", "0"]) == 0
    printed = capsys.readouterr().out
    listed = (out / "skipped.txt").read_text().splitlines()
    assert len(listed) == len(BAD)
    for name, reason in BAD.items():
        assert any(name in line and reason in line for line in listed), (name, listed)
        assert any(line.startswith("skipped") and name in line for line in printed.splitlines()), name
    assert "17 images" in printed and "5 bad file(s) skipped" in printed  # 12 good + 5 odd ones
    assert (out / "model.keras").is_file()


def test_without_skip_bad_the_first_bad_file_stops_the_run(tmp_path, capsys):
    root = messy_dataset(tmp_path / "messy")
    out = tmp_path / "run"
    assert train.main(["--data", str(root), "--out", str(out), "--input-size", "64", "96", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {root / 'hands.json'}") and "image entry 21" in err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_skipping_everything_is_still_an_error(tmp_path):
    root = tmp_path / "all-bad"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"")
    (root / "hands.json").write_text(json.dumps({"images": [{"file": "a.jpg", "hands": []}]}))
    skipped = []
    with pytest.raises(DatasetError, match="no usable images"):
        load_samples(root, "open=positive", skipped=skipped)
    assert len(skipped) == 1
