"""Square hand crops: what the gesture classifier sees, cut one way in training and at run time.

A hand (x, y, radius) in frame pixels gives the square of side 2 * CROP_SCALE * radius centred on
it, resized to the classifier's input side. Parts outside the frame are black, like the
letterbox bars. NumPy and OpenCV only: handnet.runtime uses it.
"""

from __future__ import annotations

import cv2
import numpy as np

from handnet.letterbox import PAD_VALUE, apply_letterbox

# Half the crop side, in hand radii. A radius is about half the hand's width (annotations.py:
# half a box's shorter side), so 1.6 radii keep spread fingers and the wrist in view.
CROP_SCALE = 1.6


def crop_hand(frame: np.ndarray, x: float, y: float, radius: float, side: int) -> np.ndarray:
    """(H, W, 3) uint8 frame -> (side, side, 3) uint8 crop around the hand."""
    half = max(CROP_SCALE * float(radius), 1.0)
    x0, y0 = int(round(x - half)), int(round(y - half))
    size = max(1, int(round(2 * half)))
    h, w = frame.shape[:2]
    # Pad only by what falls outside the frame, so a crop costs its own size, not the frame's.
    left, top = max(0, -x0), max(0, -y0)
    right, bottom = max(0, x0 + size - w), max(0, y0 + size - h)
    window = frame[max(0, y0) : min(h, y0 + size), max(0, x0) : min(w, x0 + size)]
    if window.size == 0:
        return np.full((side, side, frame.shape[2]), PAD_VALUE, frame.dtype)
    if left or top or right or bottom:
        window = cv2.copyMakeBorder(window, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return fit_square(window, side)


def fit_square(image: np.ndarray, side: int) -> np.ndarray:
    """Any (h, w, 3) uint8 image -> (side, side, 3), letterboxed (an image-folder example is
    usually a crop already, but not always a square one)."""
    return apply_letterbox(image, (side, side))[0]
