import numpy as np
import pytest

from handnet.letterbox import fit_letterbox
from handnet.peaks import detect_hands, find_peaks
from handnet.targets import ROLE_CODES, render_targets

STRIDE, SCALE, MIN_SIGMA = 8, 0.35, 0.8


def _gaussian(shape, cx, cy, sigma, amplitude=1.0):
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    return amplitude * np.exp(-((cols + 0.5 - cx) ** 2 + (rows + 0.5 - cy) ** 2) / (2 * sigma**2))


@pytest.mark.parametrize("cx,cy,sigma", [(10.5, 7.5, 1.5), (10.8, 7.2, 2.0), (4.3, 20.7, 3.0), (30.1, 3.9, 1.2)])
def test_subcell_centre_and_sigma_of_known_gaussians(cx, cy, sigma):
    heatmap = _gaussian((30, 40), cx, cy, sigma, 0.9)
    (x, y, radius, score), = find_peaks(heatmap, 0.3, STRIDE, SCALE, MIN_SIGMA)
    assert x == pytest.approx(cx * STRIDE, abs=0.01) and y == pytest.approx(cy * STRIDE, abs=0.01)
    assert radius == pytest.approx(sigma * STRIDE / SCALE, rel=0.01)
    assert score == pytest.approx(heatmap.max())


def test_nms_threshold_and_order():
    heatmap = np.maximum.reduce([
        _gaussian((30, 40), 5.5, 5.5, 1.0, 0.9),
        _gaussian((30, 40), 20.5, 15.5, 1.0, 0.6),
        _gaussian((30, 40), 35.5, 25.5, 1.0, 0.2),
    ])
    peaks = find_peaks(heatmap, 0.3, STRIDE, SCALE, MIN_SIGMA)
    assert peaks[:, 3] == pytest.approx([0.9, 0.6], abs=1e-6)
    assert peaks[:, :2] == pytest.approx(np.array([[44, 44], [164, 124]]), abs=0.01)


def test_flat_plateau_gives_one_peak():
    heatmap = np.zeros((10, 10), np.float32)
    heatmap[4:6, 4:6] = 0.8
    assert len(find_peaks(heatmap, 0.5, STRIDE, SCALE, MIN_SIGMA)) == 1


def test_rendered_targets_decode_back_to_their_hands():
    hands = np.array([[101.0, 61.0, 30.0, ROLE_CODES["positive"]], [250.0, 180.0, 50.0, ROLE_CODES["positive"]]])
    heatmap, _ = render_targets(hands, (30, 40), STRIDE, sigma_scale=SCALE, min_sigma=MIN_SIGMA)
    peaks = find_peaks(heatmap, 0.5, STRIDE, SCALE, MIN_SIGMA)
    found = peaks[np.argsort(peaks[:, 0])]
    assert np.abs(found[:, :2] - hands[:, :2]).max() < 2.5  # within a third of a cell
    np.testing.assert_allclose(found[:, 2], hands[:, 2], rtol=0.25)


def test_detections_are_in_frame_pixels():
    box = fit_letterbox((480, 640), (240, 320))  # scale 0.5, no bars
    heatmap = _gaussian((30, 40), 20.5, 10.5, 1.5)
    (det,) = detect_hands(heatmap, box, "open", 0.5, STRIDE, SCALE, MIN_SIGMA)
    assert (det.x, det.y) == pytest.approx((328, 168), abs=0.01)
    assert det.radius == pytest.approx(2 * 1.5 * STRIDE / SCALE, rel=0.01)
    assert det.label == "open"


def test_radius_knots_scale_each_radius_by_its_interpolated_factor():
    from handnet.peaks import calibrate_radius

    knots = ((10.0, 40.0), (0.5, 2.0))
    radii = np.array([5.0, 10.0, 25.0, 40.0, 80.0])
    # Below the first knot and above the last the end factors hold; between them, linear.
    np.testing.assert_allclose(calibrate_radius(radii, knots), [2.5, 5.0, 31.25, 80.0, 160.0])
    np.testing.assert_array_equal(calibrate_radius(radii, ()), radii)
    heatmap = _gaussian((30, 40), 20.5, 10.5, 1.5)
    box = fit_letterbox((480, 640), (240, 320))
    plain = detect_hands(heatmap, box, "open", 0.5, STRIDE, SCALE, MIN_SIGMA)
    scaled = detect_hands(heatmap, box, "open", 0.5, STRIDE, SCALE, MIN_SIGMA, ((1.0, 100.0), (1.5, 1.5)))
    assert len(plain) == len(scaled) == 1
    assert scaled[0].radius == pytest.approx(1.5 * plain[0].radius) and scaled[0].x == plain[0].x


def test_a_saturated_top_is_one_peak_at_its_centroid():
    """An int8 sigmoid stops at 255/256, so a near hand's blob can have a ragged flat top; its
    touching cells are one hand, found where their middle is."""
    heatmap = _gaussian((12, 16), 8.0, 5.0, 1.2) * 0.9
    top = [(4, 7), (4, 8), (5, 6), (5, 7), (5, 8), (6, 7)]
    for i, j in top:
        heatmap[i, j] = 255 / 256 - 0.002 * (i + j) % 0.003  # within a uint8 step or two, not equal
    (x, y, radius, score), = find_peaks(heatmap, 0.5, STRIDE, SCALE, MIN_SIGMA)
    rows, cols = np.array(top).T
    assert (x, y) == pytest.approx(((cols.mean() + 0.5) * STRIDE, (rows.mean() + 0.5) * STRIDE))
    assert score == pytest.approx(heatmap.max())
    # its width from the area above half the peak, as a Gaussian's: sigma 1.2 cells, roughly
    assert radius == pytest.approx(1.2 * STRIDE / SCALE, rel=0.25)


def test_with_a_hand_map_every_hand_is_found_and_labelled_by_the_open_map():
    box = fit_letterbox((240, 320), (240, 320))
    open_map = _gaussian((30, 40), 10.5, 10.5, 1.5, 0.9)  # one open hand; the fist has no open blob
    hand_map = np.maximum(_gaussian((30, 40), 10.5, 10.5, 1.5, 0.95), _gaussian((30, 40), 30.5, 20.5, 1.5, 0.7))
    maps = np.stack([open_map, hand_map], -1)
    found = detect_hands(maps, box, "ignored", 0.5, STRIDE, SCALE, MIN_SIGMA, (), open_threshold=0.6)
    assert [(d.label, round(d.x), round(d.y)) for d in found] == [("open", 84, 84), ("other", 244, 164)]
    assert found[0].score == pytest.approx(0.95, abs=1e-4) and found[0].open_score == pytest.approx(0.9, abs=1e-4)
    assert found[1].open_score < 0.01 and found[1].openness == found[1].open_score
    # the open map may peak a cell away from the hand map: the nearest 3x3 cells count
    shifted = np.stack([_gaussian((30, 40), 11.5, 10.5, 1.0, 0.9), hand_map], -1)
    assert detect_hands(shifted, box, "", 0.5, STRIDE, SCALE, MIN_SIGMA, (), 0.6)[0].open_score == pytest.approx(0.9, abs=1e-3)
    assert [d.label for d in detect_hands(maps, box, "", 0.8, STRIDE, SCALE, MIN_SIGMA, (), 0.6)] == ["open"]


def test_with_an_openness_map_each_hand_is_labelled_by_its_value_at_the_peak():
    box = fit_letterbox((240, 320), (240, 320))
    hand_map = np.maximum(_gaussian((30, 40), 10.5, 10.5, 1.5, 0.95), _gaussian((30, 40), 30.5, 20.5, 1.5, 0.9))
    # the open map lights both (it ignores other hands in training); the openness map tells them apart
    open_map = np.maximum(_gaussian((30, 40), 10.5, 10.5, 1.5, 0.9), _gaussian((30, 40), 30.5, 20.5, 1.5, 0.8))
    openness = np.full((30, 40), 0.5, np.float32)
    openness[10, 10], openness[20, 30] = 0.9, 0.2
    found = detect_hands(np.stack([open_map, hand_map, openness], -1), box, "", 0.5, STRIDE, SCALE, MIN_SIGMA, (), 0.6)
    assert [d.label for d in found] == ["open", "other"]
    assert [d.open_score for d in found] == pytest.approx([0.9, 0.2])
