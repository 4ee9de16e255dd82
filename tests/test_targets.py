import numpy as np

from handnet.targets import ROLE_CODES, render_targets

POS, IGN = ROLE_CODES["positive"], ROLE_CODES["ignore"]


def test_gaussian_peak_is_exactly_one_on_the_hand_cell():
    heatmap, weight = render_targets(np.array([[100.0, 60.0, 24.0, POS]]), (30, 40), 8)
    assert heatmap[7, 12] == 1.0  # y 60 // 8, x 100 // 8
    assert np.count_nonzero(heatmap == 1.0) == 1
    assert heatmap[7, 20] < 1e-3 and heatmap.min() >= 0
    assert np.all(weight == 1)


def test_blob_size_follows_radius():
    small, _ = render_targets(np.array([[160.0, 120.0, 8.0, POS]]), (30, 40), 8)
    large, _ = render_targets(np.array([[160.0, 120.0, 80.0, POS]]), (30, 40), 8)
    assert (large > 0.5).sum() > 5 * (small > 0.5).sum()


def test_ignore_hand_gets_zero_weight_and_no_blob():
    heatmap, weight = render_targets(np.array([[100.0, 60.0, 16.0, IGN]]), (30, 40), 8)
    assert heatmap.max() == 0
    assert weight[7, 12] == 0 and weight[7, 11] == 0 and weight[0, 0] == 1


def test_positive_wins_where_it_overlaps_an_ignore_hand():
    hands = np.array([[100.0, 60.0, 16.0, POS], [116.0, 60.0, 16.0, IGN]])
    heatmap, weight = render_targets(hands, (30, 40), 8)
    assert weight[7, 12] == 1 and heatmap[7, 12] == 1.0
    assert weight[7, 15] == 0


def test_cut_off_positive_hand_becomes_ignore():
    heatmap, weight = render_targets(np.array([[-4.0, 60.0, 20.0, POS]]), (30, 40), 8)
    assert heatmap.max() == 0 and weight[7, 0] == 0


def test_disk_target_is_flat_with_radius():
    heatmap, _ = render_targets(np.array([[164.0, 124.0, 24.0, POS]]), (30, 40), 8, kind="disk")
    assert set(np.unique(heatmap)) == {0.0, 1.0}
    assert 20 <= heatmap.sum() <= 36  # about pi * 3^2 cells
