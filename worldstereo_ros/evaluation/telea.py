"""The classical fill every benchmark section compares against: OpenCV's Telea inpainting.

One helper, so the fill protocol, the view-fidelity baseline and the stereo baseline inpaint the same way
(radius 3 px, colours rounded to 8 bits as OpenCV's inpainting requires).
"""

from __future__ import annotations

import cv2
import numpy as np

from worldstereo_ros.errors import InputError

#: Inpainting radius of the baseline, pixels.
TELEA_RADIUS_PX = 3


def telea_fill(rgb: np.ndarray, holes: np.ndarray, radius_px: int = TELEA_RADIUS_PX) -> np.ndarray:
    """Fill ``holes`` of ``rgb`` with OpenCV's Telea inpainting; the other pixels are returned unchanged
    (up to the 8-bit rounding that the inpainting needs).

    Args:
        rgb: (H, W, 3) float in [0, 1] (or uint8).
        holes: (H, W) bool, True = to fill.
        radius_px: inpainting radius, pixels (>= 1).
    Returns:
        (H, W, 3) float32 in [0, 1]. The input is not modified.
    Raises:
        InputError: on shapes that disagree or a radius below 1.
    """
    rgb = np.asarray(rgb)
    holes = np.asarray(holes, dtype=bool)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError("rgb", f"expected shape (H, W, 3), got {rgb.shape}")
    if holes.shape != rgb.shape[:2]:
        raise InputError("holes", f"expected shape {rgb.shape[:2]}, got {holes.shape}")
    if isinstance(radius_px, bool) or not isinstance(radius_px, (int, np.integer)) or radius_px < 1:
        raise InputError("radius_px", f"expected an int >= 1, got {radius_px!r}")
    if rgb.dtype == np.uint8:
        image = rgb
    else:
        image = (np.clip(rgb.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    filled = cv2.inpaint(np.ascontiguousarray(image), holes.astype(np.uint8) * 255, int(radius_px),
                         cv2.INPAINT_TELEA)
    return filled.astype(np.float32) / 255.0
