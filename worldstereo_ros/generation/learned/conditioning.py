"""The learned generator's input tensor, built the same way at training and at inference.

Per target frame the network sees, at full resolution (channels of :data:`INPUT_CHANNELS`):

* GGM condition: the cache render's rgb (holes black), the hole mask (1 = to imagine) and the render's
  depth as normalised inverse depth ``scale / depth`` (0 where unknown);
* a classical prior: OpenCV Telea inpainting (radius 3) of the render, so the network learns a
  correction of a fill that is already reasonable instead of colour from nothing;
* SSM condition: the reference keyframes (and, at inference, the previous frame's imagined pixels)
  reprojected into the target through their pointmaps: rgb, validity and normalised inverse depth.

``scale`` is the median observed depth of the frame (metres), so depth enters and leaves the network
without units and the same weights serve a kitchen and a hall.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.inpaint import TELEA_RADIUS_PX, telea_inpaint
from worldstereo_ros.geometry.render import render_points

#: the classical prior channel's variants (:func:`build_input_hwc`)
PRIORS = ("telea", "telea_r2", "fast")

#: names of the input channels, in order
INPUT_CHANNELS = ("cond_r", "cond_g", "cond_b", "hole", "cond_invdepth", "telea_r", "telea_g", "telea_b",
                  "ref_r", "ref_g", "ref_b", "ref_valid", "ref_invdepth")


def reproject_points(xyz: np.ndarray | torch.Tensor, rgb: np.ndarray | torch.Tensor, K: np.ndarray,
                     T_world_cam: np.ndarray, height: int, width: int, splat_px: int = 1
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer world points (M, 3) metres with colours (M, 3) into a target camera.

    Returns rgb (H, W, 3) float32, depth (H, W) float32 metres (0 = empty) and valid (H, W) bool.
    """
    xyz_t = torch.as_tensor(np.asarray(xyz, dtype=np.float32) if not isinstance(xyz, torch.Tensor) else xyz)
    rgb_t = torch.as_tensor(np.asarray(rgb, dtype=np.float32) if not isinstance(rgb, torch.Tensor) else rgb)
    if xyz_t.shape[0] == 0:
        return (np.zeros((height, width, 3), np.float32), np.zeros((height, width), np.float32),
                np.zeros((height, width), bool))
    T_cw = torch.as_tensor(np.linalg.inv(np.asarray(T_world_cam, dtype=np.float64)), dtype=torch.float32)
    out = render_points(xyz_t.float(), rgb_t.float().clamp(0, 1), torch.as_tensor(np.asarray(K), dtype=torch.float32),
                        T_cw, height, width, splat_px=splat_px)
    return out.rgb[0].numpy(), out.depth[0].numpy(), out.mask[0].numpy()


def depth_scale(depth: np.ndarray) -> float:
    """Median of the positive finite depths (metres); 1.0 when there are none."""
    d = depth[np.isfinite(depth) & (depth > 0)]
    return float(np.median(d)) if d.size else 1.0


def inverse_depth(depth: np.ndarray, scale: float) -> np.ndarray:
    """``scale / depth`` (float32) where depth > 0, else 0; clipped to [0, 10] (depths below scale / 10)."""
    depth = np.asarray(depth, np.float32)
    ok = np.isfinite(depth) & (depth > 0)
    out = np.zeros(depth.shape, np.float32)
    np.divide(np.float32(scale), depth, out=out, where=ok)
    return np.minimum(out, np.float32(10.0), out=out)


def support_range(observed: np.ndarray, window_px: int = 65) -> tuple[np.ndarray, np.ndarray]:
    """The range of observed depths around each 4 x 4 cell: the bounds imagined depth is clamped to.

    Args:
        observed: (H, W) float32 metres of the memories, 0 = unknown.
        window_px: side of the square neighbourhood, pixels (odd).
    Returns:
        lo, hi: (ceil(H / 4), ceil(W / 4)) float32 metres, the smallest and largest observed depth within about
        ``window_px`` of the cell (pixel (v, u) reads cell (v // 4, u // 4)); hi is 0 and lo 1e9 where
        nothing is observed there.
    """
    # computed on a 4x coarser grid: a full-resolution 65 x 65 filter would cost more than the network;
    # OpenCV's min/max filters (anchored at the cell's first pixel, then every 4th taken) are the block pooling
    observed = np.ascontiguousarray(observed, dtype=np.float32)
    block = np.ones((4, 4), np.uint8)
    hi = cv2.dilate(np.where(observed > 0, observed, np.float32(0.0)), block, anchor=(0, 0),
                    borderType=cv2.BORDER_CONSTANT, borderValue=0.0)[::4, ::4]
    lo = cv2.erode(np.where(observed > 0, observed, np.float32(1e9)), block, anchor=(0, 0),
                   borderType=cv2.BORDER_CONSTANT, borderValue=1e9)[::4, ::4]
    k = max(1, window_px // 4) | 1
    window = np.ones((k, k), np.uint8)
    hi = cv2.dilate(np.ascontiguousarray(hi), window, borderType=cv2.BORDER_CONSTANT, borderValue=0.0)
    lo = cv2.erode(np.ascontiguousarray(lo), window, borderType=cv2.BORDER_CONSTANT, borderValue=1e9)
    return lo, hi


def fast_telea(rgb: np.ndarray, hole: np.ndarray, band_px: int = 3) -> np.ndarray:
    """An approximation of :func:`telea_inpaint` (radius 3) at about a third of its cost on large holes.

    Telea's cost grows with the number of hole pixels, and far from the hole's boundary its fill is smooth
    anyway; so the hole is filled at half resolution (2 x 2 blocks with any hole pixel count as holes; radius
    2 there), upsampled bilinearly, and only the hole pixels within ``band_px`` of an observed pixel are
    Telea-filled at full resolution (radius 3) from the observed pixels and that coarse fill.

    Args:
        rgb: (H, W, 3) float32 in [0, 1] (hole pixels ignored). hole: (H, W) bool, True = to fill.
        band_px: width of the full-resolution band along the hole boundary, pixels (>= 1).
    Returns:
        (H, W, 3) float32 in [0, 1]: ``rgb`` outside the hole, the fill inside (8-bit rounded, as Telea's).
    """
    h, w = hole.shape
    if not hole.any():
        return np.asarray(rgb, np.float32).copy()
    image = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if h % 2 or w % 2:  # the half-resolution pass needs even sides: exact Telea on odd frames
        return telea_inpaint(rgb, hole)
    coarse_hole = hole.reshape(h // 2, 2, w // 2, 2).any(axis=(1, 3))
    small = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    small = cv2.inpaint(small, coarse_hole.astype(np.uint8) * 255, 2, cv2.INPAINT_TELEA)
    coarse = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * band_px + 1, 2 * band_px + 1))
    band = hole & (cv2.dilate((~hole).astype(np.uint8), kernel) > 0)
    seeded = np.where((hole & ~band)[..., None], coarse, image)
    filled = cv2.inpaint(seeded, band.astype(np.uint8) * 255, TELEA_RADIUS_PX, cv2.INPAINT_TELEA)
    out = np.asarray(rgb, np.float32).copy()
    out[hole] = filled[hole].astype(np.float32) / 255.0
    return out


def _masked_rgb(cond_rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    rgb = np.clip(cond_rgb, 0.0, 1.0, dtype=np.float32)
    np.copyto(rgb, np.float32(0.0), where=hole[..., None])
    return rgb


def prior_fill(cond_rgb: np.ndarray, hole: np.ndarray, prior: str = "telea") -> np.ndarray:
    """The classical prior channel: (H, W, 3) float32 in [0, 1], ``cond_rgb`` (clipped) with ``hole`` filled.

    ``prior`` (one of :data:`PRIORS`): ``"telea"`` (:func:`telea_inpaint`, radius 3: what training uses),
    ``"telea_r2"`` (radius 2: about 40 % less Telea time) or ``"fast"`` (:func:`fast_telea`).
    """
    if prior not in PRIORS:
        raise InputError("prior", f"expected one of {', '.join(PRIORS)}, got {prior!r}")
    hole = np.asarray(hole, dtype=bool)
    rgb = _masked_rgb(cond_rgb, hole)
    if prior == "fast":
        return fast_telea(rgb, hole)
    return telea_inpaint(rgb, hole, 2.0 if prior == "telea_r2" else TELEA_RADIUS_PX)


def build_input_hwc(cond_rgb: np.ndarray, cond_depth: np.ndarray, hole: np.ndarray, ref_rgb: np.ndarray,
                    ref_depth: np.ndarray, ref_valid: np.ndarray, scale: float | None = None,
                    prior: str = "telea", prior_rgb: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """:func:`build_input` as (H, W, C) float32: the same values, laid out as channels-last convolutions read
    them (``torch.from_numpy(x).permute(2, 0, 1)[None]`` is then channels-last with no copy).

    ``prior``: the prior channel's variant (:func:`prior_fill`); ``prior_rgb``: that channel already computed
    (``prior_fill(cond_rgb, hole, prior)``, e.g. on another thread), used as given.
    """
    if prior not in PRIORS:
        raise InputError("prior", f"expected one of {', '.join(PRIORS)}, got {prior!r}")
    hole = np.asarray(hole, dtype=bool)
    h, w = hole.shape
    observed = ~hole
    rgb = _masked_rgb(cond_rgb, hole)
    depth = np.where(observed, cond_depth, np.float32(0.0)).astype(np.float32, copy=False)
    if scale is None:
        scale = depth_scale(depth)
    ref_valid = np.asarray(ref_valid, dtype=bool)
    x = np.empty((h, w, len(INPUT_CHANNELS)), np.float32)
    x[..., 0:3] = rgb
    x[..., 3] = hole
    x[..., 4] = inverse_depth(depth, scale)
    x[..., 5:8] = prior_fill(rgb, hole, prior) if prior_rgb is None else prior_rgb
    np.multiply(ref_rgb, ref_valid[..., None], out=x[..., 8:11])
    x[..., 11] = ref_valid
    x[..., 12] = inverse_depth(np.where(ref_valid, ref_depth, np.float32(0.0)), scale)
    return x, float(scale)


def build_input(cond_rgb: np.ndarray, cond_depth: np.ndarray, hole: np.ndarray, ref_rgb: np.ndarray,
                ref_depth: np.ndarray, ref_valid: np.ndarray, scale: float | None = None
                ) -> tuple[np.ndarray, float]:
    """The network input of one frame.

    Args:
        cond_rgb: (H, W, 3) float32 [0, 1] cache render (its hole pixels are ignored).
        cond_depth: (H, W) float32 metres, 0 = unknown.
        hole: (H, W) bool, pixels to imagine.
        ref_rgb, ref_depth, ref_valid: (H, W, 3), (H, W), (H, W) references reprojected into the target.
        scale: depth normaliser in metres; default the median observed depth (:func:`depth_scale`).
    Returns:
        x (C, H, W) float32 with C = len(INPUT_CHANNELS), and the scale used (metres).
    """
    x, scale = build_input_hwc(cond_rgb, cond_depth, hole, ref_rgb, ref_depth, ref_valid, scale)
    return np.ascontiguousarray(x.transpose(2, 0, 1)), scale
