"""BlazePalm as a reference detector: anchors, decoding and NMS by hand; the real model where
../shared holds it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import SHARED_DATASETS

from handnet.annotations import load_samples, read_image
from handnet.blazepalm import DEFAULT_MODEL, decode_palms, main, palm_anchors, weighted_nms

LINTO = SHARED_DATASETS / "linto-webcam-gestures"


def test_anchors_follow_mediapipes_grid_order():
    anchors = palm_anchors()
    assert anchors.shape == (2016, 2)
    # stride 8: 24 x 24 cells, two anchors each, row by row
    np.testing.assert_allclose(anchors[0], anchors[1])
    np.testing.assert_allclose(anchors[0], [0.5 / 24, 0.5 / 24])
    np.testing.assert_allclose(anchors[2], [1.5 / 24, 0.5 / 24])
    np.testing.assert_allclose(anchors[48], [0.5 / 24, 1.5 / 24])
    # stride 16: 12 x 12 cells, six anchors each (three layers share the stride)
    np.testing.assert_allclose(anchors[1152:1158], [[0.5 / 12, 0.5 / 12]] * 6)
    np.testing.assert_allclose(anchors[1158], [1.5 / 12, 0.5 / 12])
    np.testing.assert_allclose(anchors[-1], [11.5 / 12, 11.5 / 12])


def test_decode_offsets_boxes_from_their_anchor_and_merges_overlaps():
    anchors = palm_anchors()
    boxes = np.zeros((2016, 18), np.float32)
    logits = np.full(2016, -8.0, np.float32)
    # anchor 100: a 48 px box moved 12 px right; anchor 101 (same cell): the same box 4 px lower, weaker
    boxes[100, :4] = [12, 0, 48, 48]
    boxes[101, :4] = [12, 4, 48, 48]
    logits[100], logits[101] = 3.0, 1.0
    # anchor 2000: a far-off palm of its own
    boxes[2000, :4] = [0, 0, 32, 32]
    logits[2000] = 2.0
    rows = decode_palms(boxes, logits, anchors, min_score=0.5)
    assert len(rows) == 3 - 1  # the two overlapping boxes are one palm
    s100, s101 = 1 / (1 + math.exp(-3.0)), 1 / (1 + math.exp(-1.0))
    cx = anchors[100, 0] + 12 / 192
    cy = anchors[100, 1] + (4 / 192) * s101 / (s100 + s101)  # score-weighted average of the two
    np.testing.assert_allclose(rows[0], [cx - 0.125, cy - 0.125, cx + 0.125, cy + 0.125, s100], atol=1e-6)
    np.testing.assert_allclose(rows[1, :4], [*(anchors[2000] - 1 / 12), *(anchors[2000] + 1 / 12)], atol=1e-6)
    assert len(decode_palms(boxes, logits, anchors, min_score=0.9)) == 1


def test_nms_keeps_boxes_that_overlap_too_little():
    rows = np.array([[0, 0, 0.2, 0.2, 0.9], [0.15, 0, 0.35, 0.2, 0.8]], np.float32)  # IoU 1/7
    np.testing.assert_allclose(weighted_nms(rows, 0.3), rows)


def test_cli_names_a_missing_model(tmp_path, native_dataset, capsys):
    missing = tmp_path / "palm.tflite"
    assert main(["--model", str(missing), "--data", str(native_dataset), "--labels", "open=positive,*=ignore"]) == 2
    assert str(missing) in capsys.readouterr().err


@pytest.mark.skipif(not (DEFAULT_MODEL.is_file() and LINTO.is_dir()), reason="needs ../shared anchors and datasets")
def test_real_blazepalm_finds_an_open_hand_on_a_webcam_frame():
    from handnet.blazepalm import PalmDetector

    sample = next(s for s in load_samples([LINTO], "hello=positive,*=ignore")
                  if any(h.role == "positive" for h in s.hands))
    hand = next(h for h in sample.hands if h.role == "positive")
    detections = PalmDetector().detect(read_image(sample.path))
    assert any(math.hypot(d.x - hand.x, d.y - hand.y) <= hand.radius and d.score >= 0.5 for d in detections)
