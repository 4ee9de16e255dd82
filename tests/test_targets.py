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


def test_the_openness_head_learns_inside_hands_alone():
    """Open map: open hands to find, other hands ignored. Every-hand map: both to find. Openness:
    1 inside open hands, 0 inside other ones, and no say anywhere else."""
    from handnet.config import Config
    from handnet.targets import training_targets

    config = Config(input_size=(64, 96), negative_weight=0, segment_weight=0)
    hands = np.array([[20.0, 20.0, 8.0, POS], [68.0, 44.0, 8.0, IGN], [84.0, 8.0, 5.0, ROLE_CODES["negative"]]])
    y = training_targets(hands, (64, 96), config)
    assert y.shape == (8, 12, 6)  # open + weight, every hand + weight, openness + weight
    open_cell, other_cell = (2, 2), (5, 8)
    assert y[(*open_cell, 0)] == 1.0 and y[(*other_cell, 1)] == 0.0  # the open map ignores the other hand
    assert y[(*open_cell, 2)] == y[(*other_cell, 2)] == 1.0  # every hand
    assert y[(*open_cell, 4)] == 1.0 and y[(*other_cell, 4)] == 0.0
    assert y[(*open_cell, 5)] == y[(*other_cell, 5)] == 1.0
    assert y[1, 10, 5] == 0.0 and y[7, 0, 5] == 0.0  # the face and the background have no say
    assert 2 <= y[..., 5].sum() <= 10  # two disks of one cell's radius: at most 5 cells each
    # where an open and an other hand overlap, neither answer is right: no say there either
    overlap = training_targets(np.array([[40.0, 32.0, 12.0, POS], [48.0, 32.0, 12.0, IGN]]), (64, 96), config)
    assert overlap[4, 5, 5] == 0.0
