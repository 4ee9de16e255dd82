"""Hand crops: the same framing for training crops and run-time crops."""

from __future__ import annotations

import numpy as np

from handnet.crops import CROP_SCALE, crop_hand, fit_square


def test_a_crop_is_centred_on_the_hand_and_scaled_to_its_radius():
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[50:70, 90:110] = 255  # a 20 px square around (100, 60)
    crop = crop_hand(frame, 100, 60, radius=10, side=64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    lit = np.argwhere(crop[..., 0] > 127)
    centre = lit.mean(axis=0)
    np.testing.assert_allclose(centre, [31.5, 31.5], atol=1.0)
    # The crop spans 2 * CROP_SCALE radii, so the 2-radius square covers 1 / CROP_SCALE of it.
    assert np.ptp(lit[:, 1]) + 1 == round(64 / CROP_SCALE)


def test_parts_outside_the_frame_are_black():
    frame = np.full((40, 40, 3), 200, np.uint8)
    crop = crop_hand(frame, 0, 0, radius=10, side=32)  # top-left quarter lies outside
    assert crop[:14, :14].max() == 0
    assert crop[20:, 20:].min() == 200
    assert crop_hand(frame, -500, -500, 5, 16).max() == 0  # wholly outside: all black, no error


def test_fit_square_letterboxes_without_distortion():
    image = np.full((50, 100, 3), 255, np.uint8)
    square = fit_square(image, 32)
    assert square.shape == (32, 32, 3)
    assert square[0].max() == 0 and square[16].min() == 255  # bars above and below, image in the middle
