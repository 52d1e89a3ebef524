"""Right-eye view synthesis for a rectified rig (:mod:`worldstereo_ros.geometry.stereo_rig`).

Everything happens along scanlines, because in a rectified rig a left pixel ``(x, y)`` with disparity
``d`` appears at ``(x - d, y)`` in the right image. Disparity is in pixels, float32, NaN = unknown.
Images are (H, W, 3) float32 RGB in [0, 1].

Stages of :func:`synthesize_right`:

1. **Complete the left disparity** (:func:`complete_disparity_background`): pixels without depth (sensor
   holes, Middlebury's unknown ground truth, mostly half-occluded background) take the smaller (farther)
   of the nearest known disparities left and right on their row.
2. **Right-view disparity by scanline rasterisation** (:func:`right_view_disparity`): neighbouring left
   pixels whose right positions are at most ``max_span_px`` apart are one surface; every right pixel
   centre between them gets the linearly interpolated disparity, z-buffered (largest disparity = nearest
   wins). Wider gaps are depth discontinuities: the right pixels there see background the left camera
   cannot, the *occlusion mask*.
3. **Backward sampling**: each covered right pixel samples the left image bilinearly at ``x + d`` (no
   forward-warp aliasing or cracks).
4. **Occlusions**: their disparity is the background's (the farther of the row neighbours), their colour
   comes from an :class:`~worldstereo_ros.stereo.fill.OcclusionFiller`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.stereo.fill import BackgroundPushPullFiller


@dataclass
class StereoView:
    """One synthesised right view.

    Attributes:
        right: (H, W, 3) float32 RGB in [0, 1], the right eye with occlusions filled.
        occlusion: (H, W) bool, right pixels the left view does not show (filled, not observed).
        disparity: (H, W) float32 disparity of the *right* view, pixels (``x_left = x_right + d``), complete.
        left_disparity: (H, W) float32 completed disparity of the left view, pixels.
    """

    right: np.ndarray
    occlusion: np.ndarray
    disparity: np.ndarray
    left_disparity: np.ndarray


def check_rgb(rgb: np.ndarray, field: str = "rgb") -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from uint8 or float input; raises InputError otherwise."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 2:
        raise InputError(field, f"expected shape (H, W, 3) with W >= 2, got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(field, f"expected uint8 or float in [0, 1], got {arr.dtype}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise InputError(field, "has NaN or infinite values")
    return arr


def check_disparity(disparity: np.ndarray, shape: tuple[int, int], field: str = "disparity") -> np.ndarray:
    """(H, W) float32 copy with every non-finite entry as NaN; raises InputError on a bad shape or dtype."""
    arr = np.asarray(disparity)
    if arr.shape != tuple(shape):
        raise InputError(field, f"expected shape {tuple(shape)}, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(field, f"expected a numeric array, got {arr.dtype}")
    arr = arr.astype(np.float32, copy=True)
    arr[~np.isfinite(arr)] = np.nan
    return arr


def _nearest_known(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the column of the nearest valid pixel at or left of it (-1: none) and at or right of it
    (W: none), on the same row. valid: (H, W) bool. int32 keeps the running max/min cheap."""
    h, w = valid.shape
    cols = np.arange(w, dtype=np.int32)[None, :]
    left = np.maximum.accumulate(np.where(valid, cols, np.int32(-1)), axis=1)
    right = np.minimum.accumulate(np.where(valid, cols, np.int32(w))[:, ::-1], axis=1)[:, ::-1]
    return left, right


def background_neighbours(disparity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel, the farther (smaller-disparity) of its nearest known row neighbours.

    Args:
        disparity: (H, W) float32, NaN = unknown.
    Returns:
        (value (H, W) float32: that neighbour's disparity, NaN on rows without any known pixel;
         column (H, W) int32: its column, -1 where none). Known pixels return themselves.
    """
    h, w = disparity.shape
    flat = np.ascontiguousarray(disparity, dtype=np.float32).ravel()
    valid = np.isfinite(disparity)
    value = flat.reshape(h, w).copy()
    column = np.broadcast_to(np.arange(w, dtype=np.int32)[None, :], (h, w)).copy()
    rows, cols = np.nonzero(~valid)  # only unknown pixels need a neighbour: usually a few per cent
    if rows.size == 0:
        return value, column
    left, right = _nearest_known(valid)
    left, right = left[rows, cols], right[rows, cols]
    start = rows.astype(np.int64) * w
    d_left = np.where(left >= 0, flat[start + np.maximum(left, 0)], np.inf)
    d_right = np.where(right < w, flat[start + np.minimum(right, w - 1)], np.inf)
    use_left = d_left <= d_right
    v = np.where(use_left, d_left, d_right)
    c = np.where(use_left, left, right)
    none = np.isinf(v)
    value[rows, cols] = np.where(none, np.nan, v)
    column[rows, cols] = np.where(none, -1, c)
    return value, column


def complete_disparity_background(disparity: np.ndarray) -> np.ndarray:
    """Fill unknown (NaN) disparities with the background neighbour on their row.

    Unknown depth next to a depth edge is nearly always background the other camera hid (the half
    occlusion), so the smaller of the two nearest known disparities is the better guess than a blend.
    Rows without any known pixel take the median of the known disparities of the image.

    Args:
        disparity: (H, W) float disparity, pixels, NaN = unknown. Not modified.
    Returns:
        (H, W) float32, finite everywhere when any pixel is known (else all NaN).
    """
    disp = np.asarray(disparity, dtype=np.float32)
    out, _ = background_neighbours(disp)  # known pixels return themselves
    missing = ~np.isfinite(out)
    if missing.any() and np.isfinite(disp).any():
        out[missing] = np.float32(np.nanmedian(disp))
    return out


def right_view_disparity(left_disparity: np.ndarray, max_span_px: float = 2.0) -> np.ndarray:
    """Z-buffered disparity of the right view by scanline rasterisation of the left disparity.

    Args:
        left_disparity: (H, W) float32 left disparity, pixels, NaN = unknown (those pixels draw nothing).
        max_span_px: neighbours whose right-view positions are further apart are a depth discontinuity
            (a disparity drop of more than ``max_span_px - 1`` pixels), not one surface.
    Returns:
        (H, W) float32 right-view disparity, pixels; NaN where no left surface lands (occlusions and the
        strip the left camera does not see).
    """
    disp = np.asarray(left_disparity, dtype=np.float32)
    if disp.ndim != 2 or disp.shape[1] < 2:
        raise InputError("left_disparity", f"expected shape (H, W) with W >= 2, got {disp.shape}")
    if not (np.isfinite(max_span_px) and max_span_px >= 1.0):
        raise InputError("max_span_px", f"expected a finite number >= 1, got {max_span_px!r}")
    h, w = disp.shape
    row_start = (np.arange(h, dtype=np.int64) * w)[:, None]
    x_right = np.arange(w, dtype=np.float32)[None, :] - disp
    keys, values = [], []
    # Each sample on its own (nearest right pixel): covers thin structures and a surface's last pixel.
    near = np.rint(x_right)
    ok = (near >= 0) & (near <= w - 1)  # NaN compares False
    keys.append((row_start + near.astype(np.int64))[ok])
    values.append(disp[ok])
    # Spans between row neighbours: every right pixel centre in [x0, x1) gets the interpolated disparity
    # (half-open: the next span draws x1), so a span of at most max_span_px covers ceil(max_span_px) pixels.
    x0, x1 = x_right[:, :-1], x_right[:, 1:]
    d0, dd = disp[:, :-1], disp[:, 1:] - disp[:, :-1]
    span = x1 - x0
    surface = (span > 0) & (span <= max_span_px)
    inv_span = np.where(surface, 1.0 / np.where(surface, span, 1.0), 0.0).astype(np.float32)
    first = np.ceil(x0)
    for k in range(int(np.ceil(max_span_px))):
        px = first + k
        ok = surface & (px < x1) & (px >= 0) & (px <= w - 1)
        keys.append((row_start + px.astype(np.int64))[ok])
        values.append((d0 + (px - x0) * inv_span * dd)[ok])
    index = torch.from_numpy(np.concatenate(keys))
    vals = torch.from_numpy(np.concatenate(values).astype(np.float32))
    zbuf = torch.full((h * w,), float("-inf"), dtype=torch.float32)
    zbuf = zbuf.scatter_reduce(0, index, vals, reduce="amax", include_self=True)
    out = zbuf.numpy().reshape(h, w)
    out[~np.isfinite(out)] = np.nan
    return out


def sample_left(left_rgb: np.ndarray, right_disparity: np.ndarray) -> np.ndarray:
    """Backward warp: right pixel ``(x, y)`` takes the left image at ``(x + d, y)``, bilinear.

    Args:
        left_rgb: (H, W, 3) float32. right_disparity: (H, W) float32, pixels; NaN samples give 0.
    Returns:
        (H, W, 3) float32.
    """
    h, w = right_disparity.shape
    map_x = (np.arange(w, dtype=np.float32)[None, :] + np.nan_to_num(right_disparity, nan=-1e4)).astype(np.float32)
    map_y = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)).astype(np.float32)
    return cv2.remap(left_rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass
class RightWarp:
    """The right view before its occlusions are filled (rectified rig, disparities in pixels).

    Attributes:
        rgb: (H, W, 3) float32 [0, 1], the left image sampled at the covered pixels; 0 on ``occlusion``.
        occlusion: (H, W) bool, right pixels no left pixel lands on.
        right_observed: (H, W) float32 rasterised right disparity, NaN on ``occlusion``.
        right_full: (H, W) float32 right disparity everywhere: occlusions take their background (farther)
            row neighbour's, rows without any surface the left image's median.
        background_col: (H, W) int32 column of that background neighbour (-1 where there is none).
    """

    rgb: np.ndarray
    occlusion: np.ndarray
    right_observed: np.ndarray
    right_full: np.ndarray
    background_col: np.ndarray


def warp_to_right(left: np.ndarray, left_full: np.ndarray, max_span_px: float) -> RightWarp:
    """Forward-warp ``left`` (H, W, 3) float32 through its completed disparity ``left_full`` (H, W) float32
    pixels into the right camera (steps 2-4 of the module doc, before the fill)."""
    right_obs = right_view_disparity(left_full, max_span_px)
    occlusion = ~np.isfinite(right_obs)
    # occluded pixels see the background: take the farther row neighbour's disparity
    right_full, bg_col = background_neighbours(right_obs)  # known pixels return themselves
    unknown = ~np.isfinite(right_full)  # only on rows without any surface
    if unknown.any():
        right_full[unknown] = np.float32(np.nanmedian(left_full))
    warped = sample_left(left, right_full)
    warped[occlusion] = 0.0
    return RightWarp(warped, occlusion, right_obs, right_full, bg_col)


def synthesize_right(left_rgb: np.ndarray, left_disparity: np.ndarray, filler=None,
                     max_span_px: float = 2.0) -> StereoView:
    """The right view of a rectified rig from the left image and its disparity (module doc, stages 1-4).

    Args:
        left_rgb: (H, W, 3) uint8 or float32 in [0, 1] RGB of the left camera.
        left_disparity: (H, W) disparity of the left view, pixels (``x_right = x_left - d``); NaN or inf =
            unknown (completed from the background). Use :meth:`StereoRig.disparity_from_depth` for depth.
        filler: an :class:`~worldstereo_ros.stereo.fill.OcclusionFiller`; None = the classical
            :class:`~worldstereo_ros.stereo.fill.BackgroundPushPullFiller`.
        max_span_px: see :func:`right_view_disparity`.
    Returns:
        StereoView. Inputs are not modified.
    Raises:
        InputError: bad shapes or dtypes, or a disparity with no known pixel.
    """

    # 1. check inputs
    left = check_rgb(left_rgb, "left_rgb")
    disp = check_disparity(left_disparity, left.shape[:2], "left_disparity")
    if not np.isfinite(disp).any():
        raise InputError("left_disparity", "has no known (finite) disparity")
    filler = filler or BackgroundPushPullFiller()
    # 2. complete the left disparity, rasterise the right view's
    left_full = complete_disparity_background(disp)
    warp = warp_to_right(left, left_full, max_span_px)
    # 3. background disparity in the occlusions, sample the covered pixels; 4. fill the occluded ones
    filled = filler.fill(warp.rgb, warp.occlusion, warp.right_full, warp.right_observed)
    return StereoView(filled, warp.occlusion, warp.right_full, left_full)
