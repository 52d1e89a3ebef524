"""Back-projection of depth images to 3D points and projection of points to pixels.

Depth is metres along the optical axis (camera z) for pinhole images and along the ray for
equirectangular ones; 0 means unknown everywhere (callers map NaN/inf/negative to 0 first, as
:class:`~worldstereo_ros.snapshot.Snapshot` does). Camera axes are OpenCV's; pixel centres are at integer
coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.cameras import EquirectCamera

#: Default relative depth jump between neighbouring pixels that marks a depth edge (0.08 = 8 %). A plane
#: seen at 70° incidence changes by about 0.5 % per pixel at VGA resolution, so planes stay whole.
DEFAULT_EDGE_THRESHOLD = 0.08


@dataclass
class PointSet:
    """Coloured 3D points from an image.

    Attributes:
        xyz: (N, 3) float32 metres. rgb: (N, 3) float32 in [0, 1]. confidence: (N,) float32.
        pixel: (N,) int64 flat index ``v * W + u`` of the source pixel, -1 when unknown.
    """

    xyz: torch.Tensor
    rgb: torch.Tensor
    confidence: torch.Tensor
    pixel: torch.Tensor

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def to(self, device: torch.device | str) -> "PointSet":
        return PointSet(self.xyz.to(device), self.rgb.to(device), self.confidence.to(device), self.pixel.to(device))

    def select(self, mask: torch.Tensor) -> "PointSet":
        """The points where ``mask`` (N,) bool (or an index tensor) selects."""
        return PointSet(self.xyz[mask], self.rgb[mask], self.confidence[mask], self.pixel[mask])


def _tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError) as exc:
        raise InputError(name, f"expected an array or tensor, got {type(value).__name__}") from exc


def pixel_grid(height: int, width: int, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H, W, 2) pixel centre coordinates (u, v)."""
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                          torch.arange(width, dtype=dtype, device=device), indexing="ij")
    return torch.stack([u, v], dim=-1)


def backproject_depth(depth: torch.Tensor, K: torch.Tensor, T_world_cam: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pixel 3D points of a pinhole depth image.

    Args:
        depth: (*, H, W) metres along z, 0 = unknown. K: (*, 3, 3) or (3, 3).
        T_world_cam: (*, 4, 4) or (4, 4) camera pose, or None for camera-frame points.
    Returns:
        (*, H, W, 3) pointmap in ``depth``'s dtype (world frame when a pose is given); pixels with 0 depth
        give the camera centre in the world frame when posed (they have no point: mask them with ``depth > 0``)
        and 0 in the camera frame.
    """
    depth = _tensor(depth, "depth")
    K = _tensor(K, "K").to(depth.device)
    if depth.ndim < 2:
        raise InputError("depth", f"expected shape (*, H, W), got {tuple(depth.shape)}")
    if K.shape[-2:] != (3, 3):
        raise InputError("K", f"expected shape (*, 3, 3), got {tuple(K.shape)}")
    dtype = depth.dtype if depth.is_floating_point() else torch.float32
    depth = depth.to(dtype)
    h, w = depth.shape[-2:]
    uv = pixel_grid(h, w, depth.device, dtype)
    Kd = K.to(dtype)
    fx, fy = Kd[..., 0, 0, None, None], Kd[..., 1, 1, None, None]
    cx, cy = Kd[..., 0, 2, None, None], Kd[..., 1, 2, None, None]
    x = (uv[..., 0] - cx) / fx * depth
    y = (uv[..., 1] - cy) / fy * depth
    points = torch.stack([x, y, depth], dim=-1)
    if T_world_cam is None:
        return points
    T = _tensor(T_world_cam, "T_world_cam").to(depth.device, dtype)
    if T.shape[-2:] != (4, 4):
        raise InputError("T_world_cam", f"expected shape (*, 4, 4), got {tuple(T.shape)}")
    R, t = T[..., :3, :3], T[..., :3, 3]
    return torch.einsum("...ij,...hwj->...hwi", R, points) + t[..., None, None, :]


def project_points(p_world: torch.Tensor, K: torch.Tensor,
                   T_cam_world: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates and depth of world points.

    Args:
        p_world: (*, N, 3). K: (*, 3, 3). T_cam_world: (*, 4, 4) world-to-camera.
    Returns:
        uv (*, N, 2) pixel coordinates (meaningless where z <= 0) and z (*, N) depth along the optical axis.
    """
    p_world = _tensor(p_world, "p_world")
    K = _tensor(K, "K").to(p_world.device, p_world.dtype)
    T = _tensor(T_cam_world, "T_cam_world").to(p_world.device, p_world.dtype)
    p_cam = p_world @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]
    z = p_cam[..., 2]
    safe = torch.where(z.abs() < 1e-12, torch.full_like(z, 1e-12), z)
    u = K[..., None, 0, 0] * p_cam[..., 0] / safe + K[..., None, 0, 2]
    v = K[..., None, 1, 1] * p_cam[..., 1] / safe + K[..., None, 1, 2]
    return torch.stack([u, v], dim=-1), z


def depth_edge_mask(depth: torch.Tensor, threshold: float = DEFAULT_EDGE_THRESHOLD) -> torch.Tensor:
    """(H, W) bool, True on pixels next to a depth discontinuity.

    A pixel is on an edge when the depth of one of its 8 neighbours differs from its own by more than
    ``threshold`` relative to the nearer of the two (both valid). These are the pixels that
    back-project to "flying" points between a foreground and a background surface.
    """
    depth = _tensor(depth, "depth")
    if depth.ndim != 2:
        raise InputError("depth", f"expected shape (H, W), got {tuple(depth.shape)}")
    if threshold <= 0:
        raise InputError("threshold", f"must be > 0, got {threshold}")
    d = depth.to(torch.float32)[None, None]
    valid = d > 0
    big = torch.finfo(torch.float32).max
    # neighbourhood max/min of valid depths; invalid neighbours are ignored
    hi = F.max_pool2d(torch.where(valid, d, torch.zeros_like(d)), 3, stride=1, padding=1)
    lo = -F.max_pool2d(-torch.where(valid, d, torch.full_like(d, big)), 3, stride=1, padding=1)
    jump_up = (hi - d) / d.clamp_min(1e-9)
    jump_down = (d - lo) / lo.clamp_min(1e-9)
    edge = valid & ((jump_up > threshold) | ((lo < big) & (jump_down > threshold)))
    return edge[0, 0]


def compress_far_depth(depth: torch.Tensor, factor: float = 8.0) -> torch.Tensor:
    """Depth with far values pulled in smoothly: beyond ``m = factor * median(valid)``,
    ``d' = 2m - m^2 / d`` (continuous with slope 1 at ``m``, bounded by ``2m``). Zeros stay zero.
    Keeps sky and far background from dominating a scene's extent."""
    depth = _tensor(depth, "depth")
    valid = depth > 0
    if not bool(valid.any()):
        return depth.clone()
    m = float(factor) * torch.median(depth[valid]).item()
    far = depth > m
    out = depth.clone()
    out[far] = 2 * m - m * m / depth[far]
    return out


def depth_to_points(depth: torch.Tensor, K: torch.Tensor, T_world_cam: torch.Tensor | None,
                    rgb: torch.Tensor | None = None, confidence: torch.Tensor | None = None,
                    drop_edges: bool = True, edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
                    stride: int = 1) -> PointSet:
    """World points of the valid pixels of a pinhole RGB-D image.

    Args:
        depth: (H, W) metres, 0 = unknown. K: (3, 3). T_world_cam: (4, 4) or None (camera frame).
        rgb: (H, W, 3) in [0, 1] (grey 0.5 when None). confidence: (H, W) (1 when None).
        drop_edges: drop pixels on depth edges (:func:`depth_edge_mask`).
        stride: keep every ``stride``-th pixel along each axis.
    Returns:
        PointSet with float32 xyz/rgb/confidence and the flat pixel index of each point.
    """
    depth = _tensor(depth, "depth")
    if depth.ndim != 2:
        raise InputError("depth", f"expected shape (H, W), got {tuple(depth.shape)}")
    h, w = depth.shape
    if stride < 1:
        raise InputError("stride", f"must be >= 1, got {stride}")
    if rgb is not None:
        rgb = _tensor(rgb, "rgb")
        if tuple(rgb.shape) != (h, w, 3):
            raise InputError("rgb", f"expected shape ({h}, {w}, 3) to match depth, got {tuple(rgb.shape)}")
    if confidence is not None:
        confidence = _tensor(confidence, "confidence")
        if tuple(confidence.shape) != (h, w):
            raise InputError("confidence", f"expected shape ({h}, {w}) to match depth, got {tuple(confidence.shape)}")
    finite = torch.isfinite(depth)
    keep = finite & (torch.where(finite, depth, torch.zeros_like(depth)) > 0)
    if drop_edges:
        keep &= ~depth_edge_mask(torch.where(keep, depth, torch.zeros_like(depth)), edge_threshold)
    if stride > 1:
        grid = torch.zeros_like(keep)
        grid[::stride, ::stride] = True
        keep &= grid
    pixel = torch.nonzero(keep.reshape(-1))[:, 0]
    pointmap = backproject_depth(depth.to(torch.float64), K, T_world_cam)
    xyz = pointmap.reshape(-1, 3)[pixel].to(torch.float32)
    colours = (torch.full((len(pixel), 3), 0.5) if rgb is None
               else rgb.reshape(-1, 3)[pixel.to(rgb.device)].to(torch.float32))
    conf = (torch.ones(len(pixel)) if confidence is None
            else confidence.reshape(-1)[pixel.to(confidence.device)].to(torch.float32))
    device = depth.device
    return PointSet(xyz.to(device), colours.to(device), conf.to(device), pixel.to(device))


def equirect_depth_to_points(rgb: torch.Tensor | None, depth: torch.Tensor,
                             T_world_cam: torch.Tensor | None = None) -> PointSet:
    """World points of an equirectangular RGB-D panorama (convention of
    :class:`~worldstereo_ros.geometry.cameras.EquirectCamera`).

    Args:
        rgb: (H, W, 3) in [0, 1] or None. depth: (H, W) metres along each pixel's ray, 0 or NaN = unknown.
        T_world_cam: (4, 4) pose of the panorama camera (identity when None).
    """
    depth = _tensor(depth, "depth")
    if depth.ndim != 2:
        raise InputError("depth", f"expected shape (H, W), got {tuple(depth.shape)}")
    h, w = depth.shape
    camera = EquirectCamera(w, h)
    depth64 = torch.nan_to_num(depth.to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
    keep = depth64.reshape(-1) > 0
    pixel = torch.nonzero(keep)[:, 0]
    rays = camera.rays(torch.float64, depth.device).reshape(-1, 3)[pixel]
    xyz = rays * depth64.reshape(-1)[pixel, None]
    if T_world_cam is not None:
        T = _tensor(T_world_cam, "T_world_cam").to(depth.device, torch.float64)
        if T.shape != (4, 4):
            raise InputError("T_world_cam", f"expected shape (4, 4), got {tuple(T.shape)}")
        xyz = xyz @ T[:3, :3].T + T[:3, 3]
    if rgb is None:
        colours = torch.full((len(pixel), 3), 0.5, device=depth.device)
    else:
        rgb = _tensor(rgb, "rgb")
        if tuple(rgb.shape) != (h, w, 3):
            raise InputError("rgb", f"expected shape ({h}, {w}, 3) to match depth, got {tuple(rgb.shape)}")
        colours = rgb.reshape(-1, 3)[pixel.to(rgb.device)].to(torch.float32).to(depth.device)
    return PointSet(xyz.to(torch.float32), colours, torch.ones(len(pixel), device=depth.device), pixel)
