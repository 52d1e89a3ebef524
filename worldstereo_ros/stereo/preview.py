"""Viewing helpers for stereo pairs: red-cyan anaglyph, side-by-side frame, disparity colour map.

Images are (H, W, 3) uint8 or float32 in [0, 1] RGB; outputs are uint8 RGB.
"""

from __future__ import annotations

import cv2
import numpy as np

from worldstereo_ros.errors import InputError


def _u8(rgb: np.ndarray, field: str) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(field, f"expected shape (H, W, 3), got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    return (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def anaglyph(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Red-cyan anaglyph: red from the left eye, green and blue from the right (red filter on the left eye).

    Args:
        left, right: (H, W, 3) RGB of the same size.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    lft, r = _u8(left, "left"), _u8(right, "right")
    if lft.shape != r.shape:
        raise InputError("right", f"expected shape {lft.shape} (the left's), got {r.shape}")
    out = r.copy()
    out[..., 0] = lft[..., 0]
    return out


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(H, 2W, 3) uint8: left eye on the left half (parallel viewing, as VR players expect)."""
    lft, r = _u8(left, "left"), _u8(right, "right")
    if lft.shape != r.shape:
        raise InputError("right", f"expected shape {lft.shape} (the left's), got {r.shape}")
    return np.concatenate([lft, r], axis=1)


def disparity_colour(disparity: np.ndarray, max_px: float | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB: disparity through OpenCV's TURBO colour map (near = red), NaN = black."""
    d = np.asarray(disparity, dtype=np.float32)
    if d.ndim != 2:
        raise InputError("disparity", f"expected shape (H, W), got {d.shape}")
    valid = np.isfinite(d)
    top = max_px if max_px is not None else (float(d[valid].max()) if valid.any() else 1.0)
    scaled = np.where(valid, np.clip(d / max(top, 1e-6), 0, 1) * 255.0, 0).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def disparity_png16(disparity: np.ndarray) -> np.ndarray:
    """(H, W) uint16 disparity * 256 (the KITTI convention), 0 = unknown, for lossless PNG files."""
    d = np.asarray(disparity, dtype=np.float32)
    valid = np.isfinite(d) & (d > 0)
    return np.where(valid, np.clip(d * 256.0 + 0.5, 1, 65535), 0).astype(np.uint16)
