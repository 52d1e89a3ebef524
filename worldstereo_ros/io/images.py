"""Image files of imagined frames: 8-bit colour PNG, 16-bit millimetre depth PNG, imagined-pixel masks,
depth previews and contact sheets.

Depth PNGs follow the 7-Scenes/TUM convention of the input side: uint16 millimetres, 0 = unknown (depths
beyond 65.534 m are clipped to 65534 mm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.depth_units import depth_m_to_units


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) float in [0, 1] (or uint8, returned as is) to uint8, rounded."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return rgb
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def _imwrite(path: str | Path, image: np.ndarray) -> Path:
    """Write ``image`` (OpenCV layout: BGR or single channel) to ``path``, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise InputError("path", f"OpenCV could not write {path}")
    return path


def write_rgb_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) RGB image (float in [0, 1] or uint8) as 8-bit PNG."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError("rgb", f"expected shape (H, W, 3), got {rgb.shape}")
    return _imwrite(path, cv2.cvtColor(to_uint8(rgb), cv2.COLOR_RGB2BGR))


def write_depth_png(path: str | Path, depth_m: np.ndarray) -> Path:
    """Write an (H, W) depth map in metres as a uint16 millimetre PNG."""
    if np.ndim(depth_m) != 2:
        raise InputError("depth", f"expected shape (H, W), got {np.shape(depth_m)}")
    return _imwrite(path, depth_m_to_units(depth_m))


def write_mask_png(path: str | Path, mask: np.ndarray) -> Path:
    """Write an (H, W) bool mask as an 8-bit PNG (255 = True)."""
    if np.ndim(mask) != 2:
        raise InputError("mask", f"expected shape (H, W), got {np.shape(mask)}")
    return _imwrite(path, np.asarray(mask, dtype=bool).astype(np.uint8) * 255)


def depth_preview(depth_m: np.ndarray, max_m: float | None = None) -> np.ndarray:
    """(H, W) metres to an (H, W, 3) uint8 RGB colour map (near = warm); unknown pixels black."""
    depth = np.asarray(depth_m, dtype=np.float32)
    valid = depth > 0
    top = max_m if max_m is not None else (float(np.percentile(depth[valid], 98)) if valid.any() else 1.0)
    scaled = np.clip(depth / max(top, 1e-6), 0.0, 1.0)
    colour = cv2.applyColorMap((255 - scaled * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    colour[~valid] = 0
    return cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)


def tint_imagined(rgb: np.ndarray, imagined: np.ndarray, strength: float = 0.35) -> np.ndarray:
    """(H, W, 3) uint8 copy of ``rgb`` with the imagined pixels blended towards magenta."""
    out = to_uint8(rgb).astype(np.float32)
    m = np.asarray(imagined, dtype=bool)
    out[m] = (1.0 - strength) * out[m] + strength * np.array([255.0, 0.0, 255.0])
    return np.round(out).astype(np.uint8)


def contact_sheet(rows: Sequence[tuple[str, np.ndarray]], columns: int = 5, thumb_width: int = 192,
                  label_px: int = 22, show_indices: bool = True) -> np.ndarray:
    """A grid of thumbnails, one row per labelled sequence, ``columns`` frames evenly spread over each.

    Args:
        rows: (label, frames (N, H, W, 3) float in [0, 1] or uint8) per row.
        columns: thumbnails per row (fewer if a row has fewer frames).
        thumb_width: thumbnail width, pixels (height keeps the aspect ratio).
        label_px: height of the label strip above each row.
        show_indices: append the indices of the frames shown to each label.
    Returns:
        (H', W', 3) uint8 RGB image.
    """
    if not rows:
        raise InputError("rows", "expected at least one row")
    if columns < 1 or thumb_width < 8:
        raise InputError("columns", f"expected columns >= 1 and thumb_width >= 8, got {columns}, {thumb_width}")
    strips = []
    for label, frames in rows:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[0] < 1:
            raise InputError("rows", f"row {label!r}: expected frames (N, H, W, 3), got {frames.shape}")
        n, h, w = frames.shape[:3]
        th = max(1, round(h * thumb_width / w))
        picks = np.unique(np.round(np.linspace(0, n - 1, min(columns, n))).astype(int))
        thumbs = [cv2.resize(to_uint8(frames[i]), (thumb_width, th), interpolation=cv2.INTER_AREA) for i in picks]
        thumbs += [np.zeros_like(thumbs[0])] * (columns - len(thumbs))
        sep = np.full((th, 2, 3), 255, np.uint8)
        body = np.concatenate([x for t in thumbs for x in (t, sep)][:-1], axis=1)
        head = np.full((label_px, body.shape[1], 3), 255, np.uint8)
        text = f"{label}  (frames {', '.join(str(i) for i in picks)} of {n})" if show_indices else label
        cv2.putText(head, text, (4, label_px - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        strips.append(np.concatenate([head, body], axis=0))
    width = max(s.shape[1] for s in strips)
    strips = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
    return np.concatenate(strips, axis=0)
