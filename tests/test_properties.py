"""Property-based tests (hypothesis): target rendering, letterbox coordinate round trips, and the
format readers, which must answer any file with samples or a DatasetError, nothing else."""

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import write_image
from handnet.annotations import DatasetError, read_dataset
from handnet.letterbox import fit_letterbox
from handnet.targets import ROLE_CODES, render_targets

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

hands_strategy = st.lists(
    st.tuples(st.floats(-20, 140), st.floats(-20, 100), st.floats(0.1, 120), st.sampled_from(list(ROLE_CODES.values()))),
    max_size=6,
)


@FAST
@given(hands=hands_strategy, kind=st.sampled_from(["gaussian", "disk"]))
def test_targets_are_bounded_and_every_visible_positive_hand_peaks_at_one(hands, kind):
    out_h, out_w, stride = 10, 15, 8
    hands = np.asarray(hands, np.float32).reshape(-1, 4)  # the float32 centres the targets see
    heatmap, weight = render_targets(hands, (out_h, out_w), stride, kind)
    assert heatmap.shape == weight.shape == (out_h, out_w)
    assert heatmap.min() >= 0 and heatmap.max() <= 1
    assert set(np.unique(weight)) <= {0.0, 1.0}
    for x, y, _, role in hands:
        u, v = x / stride, y / stride
        if role == ROLE_CODES["positive"] and 0 <= u < out_w and 0 <= v < out_h:
            assert heatmap[int(v), int(u)] == 1.0 and weight[int(v), int(u)] == 1.0
    if not any(role == ROLE_CODES["positive"] for *_, role in hands):
        assert heatmap.max() == 0  # only positive hands draw anything


@FAST
@given(frame=st.tuples(st.integers(1, 4000), st.integers(1, 4000)),
       net=st.tuples(st.integers(16, 1024), st.integers(16, 1024)),
       point=st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 500)))
def test_letterbox_maps_frame_points_there_and_back(frame, net, point):
    box = fit_letterbox(frame, net)
    x, y, r = point[0] * frame[1], point[1] * frame[0], point[2]
    ix, iy = box.to_input(x, y)
    # The frame lands inside the input, keeping its aspect ratio within a rounding pixel.
    assert -1e-6 <= ix <= net[1] + 1e-6 and -1e-6 <= iy <= net[0] + 1e-6
    assert abs(box.scale_x * frame[1] - round(box.scale_x * frame[1])) < 1e-6
    fx, fy, fr = box.to_frame(ix, iy, r * np.sqrt(box.scale_x * box.scale_y))
    assert np.isclose(fx, x, rtol=1e-9, atol=1e-6) and np.isclose(fy, y, rtol=1e-9, atol=1e-6)
    assert np.isclose(fr, r, rtol=1e-9, atol=1e-6)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 1000) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["images", "file", "hands", "x", "y", "radius", "label", "annotations", "categories",
                         "id", "bbox", "image_id", "category_id", "file_name", "name"]), inner, max_size=5),
    max_leaves=20,
)


def read_fuzzed(files: dict) -> None:
    """Write the files into a fresh folder beside one real image and read it both ways."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_image(root / "a.jpg", 16, 16)
        write_image(root / "images" / "a.jpg", 16, 16)
        for name, content in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
        for problems in (None, []):
            try:
                samples = read_dataset(root, problems)
            except DatasetError:
                continue
            assert all(isinstance(s.path, str) for s in samples)
            assert all(isinstance(p, DatasetError) for p in problems or [])


@FAST
@given(doc=json_values)
def test_native_reader_survives_any_json(doc):
    read_fuzzed({"hands.json": json.dumps(doc)})


@FAST
@given(doc=json_values)
def test_coco_reader_survives_any_json_shaped_like_coco(doc):
    base = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [], "categories": []}
    if isinstance(doc, dict):
        base.update(doc)
    read_fuzzed({"ann.json": json.dumps(base)})


yolo_token = st.sampled_from(["0", "1", "7", "-1", "0.5", "1.5", "1e9", "nan", "inf", "x", "2.0"])
yolo_line = st.tuples(st.integers(-1, 3), *[st.floats(-1, 2) | st.just(float("nan"))] * 4).map(
    lambda t: " ".join(map(str, t))) | st.lists(yolo_token, max_size=6).map(" ".join)
yolo_lines = st.lists(yolo_line, max_size=4).map("\n".join)
yolo_names = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.lists(
    st.text(max_size=5) | st.integers(), max_size=3) | st.dictionaries(st.integers(-1, 3), st.text(max_size=5), max_size=3)


@settings(max_examples=200, deadline=None)
@given(text=yolo_lines | st.text(max_size=100), names=yolo_names)
def test_yolo_reader_survives_any_label_file_and_names(text, names):
    read_fuzzed({"labels/a.txt": text, "data.yaml": "names: " + json.dumps(names) + "\n"})


def test_yolo_names_that_are_not_a_list_or_mapping_are_a_clear_error():
    for names in ("5", "true", "1.5"):  # found by the test above before the reader checked them
        read_fuzzed({"labels/a.txt": "0 0.5 0.5 0.1 0.1", "data.yaml": f"names: {names}\n"})


@FAST
@given(body=st.binary(max_size=300) | st.text(max_size=300).map(
    lambda t: f"<annotation><filename>a.jpg</filename><object><name>{t}</name><bndbox>{t}</bndbox></object></annotation>"))
def test_voc_reader_survives_any_xml(body):
    read_fuzzed({"a.xml": body})
