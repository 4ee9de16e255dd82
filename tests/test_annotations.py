import json

import pytest

from conftest import write_image, write_native
from handnet.annotations import (
    DatasetError, Hand, box_to_hand, detect_format, group_key, load_samples, split_samples, train_val_split,
)
from handnet.config import DEFAULT_LABELS


def test_native_reader_maps_default_roles(native_dataset):
    samples = load_samples(native_dataset, DEFAULT_LABELS)
    assert [len(s.hands) for s in samples] == [1, 2, 0]
    b = samples[1]
    assert (b.width, b.height) == (96, 64)
    assert [(h.label, h.role) for h in b.hands] == [("other", "ignore"), ("open", "positive")]
    assert b.hands[1] == Hand(80, 50, 12, "open", "positive")


def test_label_override_with_wildcard(native_dataset):
    samples = load_samples(native_dataset, "other=positive,*=negative")
    roles = [(h.label, h.role) for s in samples for h in s.hands]
    assert roles == [("open", "negative"), ("other", "positive"), ("open", "negative")]


def test_box_rule_is_centre_and_half_shorter_side():
    assert box_to_hand(10, 20, 50, 120, "hello") == Hand(30, 70, 20, "hello", box=(10, 20, 50, 120))
    # Swapped corners are a broken box (VOC xmax < xmin, YOLO negative width), not another hand.
    with pytest.raises(ValueError, match="negative width"):
        box_to_hand(50, 120, 10, 20, "hello")
    with pytest.raises(ValueError, match="not finite"):
        box_to_hand(10, 20, float("nan"), 120, "hello")


def test_voc_reader(tmp_path):
    root = tmp_path / "voc"
    write_image(root / "hello.1.jpg", 480, 640)
    (root / "hello.1.xml").write_text(
        "<annotation><filename>hello.1.jpg</filename><size><width>640</width><height>480</height></size>"
        "<object><name>hello</name><bndbox><xmin>100</xmin><ymin>50</ymin><xmax>200</xmax><ymax>250</ymax>"
        "</bndbox></object><object><name>fist</name><bndbox><xmin>300</xmin><ymin>300</ymin><xmax>340</xmax>"
        "<ymax>360</ymax></bndbox></object></annotation>")
    assert detect_format(root) == "voc"
    (sample,) = load_samples(root, "hello=positive,*=ignore")
    assert sample.hands == (Hand(150, 150, 50, "hello", "positive", (100, 50, 200, 250)),
                            Hand(320, 330, 20, "fist", "ignore", (300, 300, 340, 360)))


def test_yolo_reader_with_splits_and_missing_label_files(tmp_path):
    root = tmp_path / "yolo"
    (root / "data.yaml").parent.mkdir(parents=True)
    (root / "data.yaml").write_text("names: ['five', 'fist']\n")
    write_image(root / "train/images/a.jpg", 100, 200)
    write_image(root / "valid/images/b.jpg", 100, 200)
    (root / "train/labels").mkdir(parents=True)
    (root / "train/labels/a.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.25 0.25 0.1 0.1\n")
    assert detect_format(root) == "yolo"
    a, b = load_samples(root, "five=positive,fist=ignore")
    assert a.hands == (Hand(100, 50, 20, "five", "positive", (80, 30, 120, 70)),
                       Hand(50, 25, 5, "fist", "ignore", (40, 20, 60, 30)))
    assert b.hands == ()  # no label file: no hands, by YOLO's convention
    # a split folder is a dataset of its own, its classes named by the set's data.yaml above it
    (only,) = load_samples(root / "train", "five=positive,fist=ignore")
    assert only.hands == a.hands


def test_coco_reader(tmp_path):
    root = tmp_path / "coco"
    write_image(root / "x.jpg", 100, 100)
    (root / "_annotations.coco.json").write_text(json.dumps({
        "images": [{"id": 7, "file_name": "x.jpg", "width": 100, "height": 100}],
        "annotations": [{"image_id": 7, "category_id": 1, "bbox": [10, 20, 30, 40]}],
        "categories": [{"id": 1, "name": "open"}],
    }))
    assert detect_format(root) == "coco"
    (sample,) = load_samples(root, DEFAULT_LABELS)
    assert sample.hands == (Hand(25, 40, 15, "open", "positive", (10, 20, 40, 60)),)


def _expect_error(root, match, labels=DEFAULT_LABELS):
    with pytest.raises(DatasetError, match=match) as info:
        load_samples(root, labels)
    return str(info.value)


def test_missing_folder_and_empty_dataset(tmp_path):
    _expect_error(tmp_path / "nope", "dataset folder not found")
    (tmp_path / "empty").mkdir()
    _expect_error(tmp_path / "empty", "no hands.json")
    write_native(tmp_path / "none", {})
    _expect_error(tmp_path / "none", "no annotated images")


def test_unknown_label_names_file_and_label(tmp_path):
    root = write_native(tmp_path / "d", {"a.jpg": [{"x": 5, "y": 5, "radius": 3, "label": "fist"}]})
    message = _expect_error(root, "unknown label 'fist'")
    assert message.startswith(str(root / "a.jpg"))


def test_annotation_outside_image_and_negative_radius(tmp_path):
    root = write_native(tmp_path / "out", {"a.jpg": [{"x": 500, "y": 5, "radius": 3, "label": "open"}]})
    _expect_error(root, "annotation outside the image")
    root = write_native(tmp_path / "neg", {"a.jpg": [{"x": 5, "y": 5, "radius": -3, "label": "open"}]})
    _expect_error(root, "negative radius")


def test_unreadable_and_truncated_images(tmp_path):
    root = write_native(tmp_path / "bad", {"a.jpg": [], "b.jpg": []})
    (root / "a.jpg").write_bytes(b"this is not an image")
    _expect_error(root, "a.jpg: unreadable image")
    root = write_native(tmp_path / "cut", {"a.jpg": []})
    data = (root / "a.jpg").read_bytes()
    (root / "a.jpg").write_bytes(data[: len(data) // 2])
    _expect_error(root, "a.jpg: truncated JPEG")


def test_broken_annotation_file(tmp_path):
    root = write_native(tmp_path / "d", {"a.jpg": []})
    (root / "hands.json").write_text("{not json")
    _expect_error(root, "hands.json: not a handnet annotation file")


def test_declared_splits_are_kept_and_the_rest_split_by_groups(tmp_path):
    root = write_native(tmp_path / "d", {f"f{i:03d}.jpg": [] for i in range(40)})
    doc = json.loads((root / "hands.json").read_text())
    for k, entry in enumerate(doc["images"]):
        if k < 20:
            entry["split"] = "train" if k % 2 else "val"
    (root / "hands.json").write_text(json.dumps(doc))
    samples = load_samples(root, DEFAULT_LABELS)
    assert [s.split for s in samples[:3]] == ["val", "train", "val"] and samples[25].split == ""
    train, val = train_val_split(samples, 0.5, group_size=5, seed=0)
    name = lambda s: int(s.path[-7:-4])  # noqa: E731
    assert sorted(map(name, train + val)) == list(range(40))
    assert {k for k in range(20) if k % 2} <= set(map(name, train)) and set(range(0, 20, 2)) <= set(map(name, val))
    # The 20 undeclared images: half of them validate, in whole groups of 5 consecutive files.
    undeclared_val = {name(s) // 5 for s in val if name(s) >= 20}
    assert len([s for s in val if name(s) >= 20]) == 10 and not undeclared_val & {name(s) // 5 for s in train}
    # Only declared images: nothing left to split, and no error for it.
    declared = [s for s in samples if s.split]
    assert [len(part) for part in train_val_split(declared, 0.2, 5, 0)] == [10, 10]


def test_an_unknown_declared_split_names_the_file(tmp_path):
    root = write_native(tmp_path / "d", {"a.jpg": []})
    doc = json.loads((root / "hands.json").read_text())
    doc["images"][0]["split"] = "test"
    (root / "hands.json").write_text(json.dumps(doc))
    _expect_error(root, "hands.json: image entry 0 .*split 'test' is not one of train, val")


def test_split_keeps_groups_of_consecutive_frames_together(tmp_path):
    from handnet.annotations import Sample

    samples = [Sample(f"/d/frame{i:04d}.jpg", ()) for i in range(200)]
    train, val = split_samples(samples, 0.2, group_size=10, seed=1)
    assert len(train) + len(val) == 200 and 30 <= len(val) <= 50
    index = {s.path: i // 10 for i, s in enumerate(samples)}
    assert not {index[s.path] for s in train} & {index[s.path] for s in val}
    # Roboflow copies of one frame share a group key, so they land on one side together.
    assert group_key("/d/IMG_1_jpg.rf.0123456789abcdef0123456789abcdef.jpg") == group_key(
        "/d/IMG_1_jpg.rf.fedcba9876543210fedcba9876543210.jpg")
