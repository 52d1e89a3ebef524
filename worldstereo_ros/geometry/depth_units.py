"""Depth units at the boundary, in one place: float32 metres inside (0 = unknown), uint16 millimetres (or
another fixed scale) in PNG files and 16UC1 images.

Reading: 0 and 65535 mean "no reading" (7-Scenes and the Kinect drivers use both). Writing: NaN, infinities
and negative depths become 0; depths are rounded to the nearest unit and saturate at :data:`MAX_DEPTH_UNITS`
(65534, one below the "no reading" marker, so a far depth is never read back as unknown).
"""

from __future__ import annotations

import numpy as np

from worldstereo_ros.errors import InputError

#: Metres per unit of millimetre depth images.
MM_IN_M = 0.001
#: The largest depth value written: 65.534 m at millimetre scale.
MAX_DEPTH_UNITS = 65534
#: The uint16 value that means "no reading" besides 0.
NO_READING = 65535


def depth_units_to_m(raw: np.ndarray, scale_m: float = MM_IN_M) -> np.ndarray:
    """(H, W) float32 metres (0 = unknown) from uint16 depth units of ``scale_m`` metres each (module doc)."""
    raw = np.asarray(raw)
    if raw.dtype != np.uint16:
        raise InputError("depth", f"expected uint16 depth units, got {raw.dtype}")
    if not (isinstance(scale_m, (int, float)) and 0 < scale_m < np.inf):
        raise InputError("depth_scale_m", f"expected a finite float > 0 metres per unit, got {scale_m!r}")
    return np.where((raw > 0) & (raw < NO_READING), raw * np.float32(scale_m), 0).astype(np.float32)


def depth_m_to_units(depth_m: np.ndarray, scale_m: float = MM_IN_M) -> np.ndarray:
    """uint16 depth units of ``scale_m`` metres from (H, W) float metres (0, NaN, inf, negative = unknown, 0)."""
    if not (isinstance(scale_m, (int, float)) and 0 < scale_m < np.inf):
        raise InputError("depth_scale_m", f"expected a finite float > 0 metres per unit, got {scale_m!r}")
    d = np.nan_to_num(np.asarray(depth_m, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.round(d / scale_m), 0, MAX_DEPTH_UNITS).astype(np.uint16)
