"""OpenCV Telea inpainting, the one classical fill of the package.

The render-fill backend colours its completed pixels with it, the learned generator feeds it to its
network as a prior, the stereo fillers paint occlusions with it and every benchmark compares against it;
one function keeps them inpainting the same way: colours rounded to 8 bits (OpenCV's inpainting takes
uint8) and the filled values returned as float32 in [0, 1]. It sits in ``geometry/``, the lowest layer
that all of these import. No torch here.
"""

from __future__ import annotations

import cv2
import numpy as np

from worldstereo_ros.errors import InputError
from worldstereo_ros.validation import check_positive

#: Inpainting radius of the classical fill and of the benchmarks' baseline, pixels.
TELEA_RADIUS_PX = 3


def telea_inpaint(rgb: np.ndarray, holes: np.ndarray, radius_px: float = TELEA_RADIUS_PX,
                  keep_known: bool = True) -> np.ndarray:
    """Fill ``holes`` of ``rgb`` with OpenCV's Telea inpainting of the other pixels.

    Args:
        rgb: (H, W, 3) float in [0, 1] (values outside are clipped), or uint8.
        holes: (H, W) bool, True = to fill.
        radius_px: Telea neighbourhood radius, pixels (finite, > 0).
        keep_known: True: the pixels outside ``holes`` are ``rgb``'s, unchanged (as float32; uint8 / 255);
            False: the whole image is OpenCV's output, so those pixels carry the 8-bit rounding too (what
            the benchmarks' baseline has always scored).
    Returns:
        (H, W, 3) float32 in [0, 1]. The input is not modified.
    Raises:
        InputError: on shapes that disagree or a radius that is not a finite number > 0.
    """
    rgb = np.asarray(rgb)
    holes = np.asarray(holes, dtype=bool)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError("rgb", f"expected shape (H, W, 3), got {rgb.shape}")
    if holes.shape != rgb.shape[:2]:
        raise InputError("holes", f"expected shape {rgb.shape[:2]}, got {holes.shape}")
    radius_px = check_positive("radius_px", radius_px)
    if rgb.dtype == np.uint8:
        image, known = rgb, rgb.astype(np.float32) / 255.0
    else:
        known = rgb.astype(np.float32)
        image = (np.clip(known, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if keep_known and not holes.any():
        return known
    filled = cv2.inpaint(np.ascontiguousarray(image), holes.astype(np.uint8) * 255, radius_px, cv2.INPAINT_TELEA)
    if not keep_known:
        return filled.astype(np.float32) / 255.0
    out = known  # a fresh array: astype copies
    out[holes] = filled[holes].astype(np.float32) / 255.0
    return out
