import numpy as np
import pytest

from handnet.letterbox import apply_letterbox, fit_letterbox


@pytest.mark.parametrize("frame_hw", [(480, 640), (720, 1280), (100, 100), (240, 320), (1080, 607)])
def test_point_round_trip(frame_hw):
    box = fit_letterbox(frame_hw, (240, 320))
    x, y = np.array([0.0, 12.5, frame_hw[1] - 1.0]), np.array([3.0, frame_hw[0] / 2, frame_hw[0] - 0.5])
    ix, iy = box.to_input(x, y)
    assert np.all((ix >= 0) & (ix <= 320) & (iy >= 0) & (iy <= 240))
    fx, fy, fr = box.to_frame(ix, iy, np.full(3, 10 * np.sqrt(box.scale_x * box.scale_y)))
    np.testing.assert_allclose(fx, x, atol=1e-6)
    np.testing.assert_allclose(fy, y, atol=1e-6)
    np.testing.assert_allclose(fr, 10, rtol=1e-6)


def test_image_content_lands_where_the_mapping_says():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[200:220, 400:420] = 255  # a bright square centred at (410, 210)
    image, box = apply_letterbox(frame, (240, 426))
    ix, iy = box.to_input(410.0, 210.0)
    ys, xs = np.nonzero(image[..., 0] > 127)
    assert abs(xs.mean() + 0.5 - ix) < 0.6 and abs(ys.mean() + 0.5 - iy) < 0.6
    assert image.shape == (240, 426, 3)
    assert box.offset_x > 0 and box.offset_y == 0  # bars left and right
