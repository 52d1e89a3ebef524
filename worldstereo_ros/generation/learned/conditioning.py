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

import numpy as np
import torch

from worldstereo_ros.geometry.inpaint import telea_inpaint
from worldstereo_ros.geometry.render import render_points

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
    ok = np.isfinite(depth) & (depth > 0)
    out = np.zeros(depth.shape, np.float32)
    out[ok] = np.minimum(scale / depth[ok], 10.0)
    return out


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
    hole = hole.astype(bool)
    rgb = np.where(hole[..., None], 0.0, np.clip(cond_rgb, 0.0, 1.0)).astype(np.float32)
    depth = np.where(hole, 0.0, cond_depth).astype(np.float32)
    if scale is None:
        scale = depth_scale(depth)
    prior = telea_inpaint(rgb, hole)
    ref_valid = ref_valid.astype(bool)
    x = np.concatenate([
        rgb.transpose(2, 0, 1),
        hole[None].astype(np.float32),
        inverse_depth(depth, scale)[None],
        prior.transpose(2, 0, 1),
        np.where(ref_valid[..., None], ref_rgb, 0.0).astype(np.float32).transpose(2, 0, 1),
        ref_valid[None].astype(np.float32),
        inverse_depth(np.where(ref_valid, ref_depth, 0.0), scale)[None],
    ])
    return np.ascontiguousarray(x, dtype=np.float32), float(scale)
