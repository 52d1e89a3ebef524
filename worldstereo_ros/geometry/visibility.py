"""Free-space tests of points against depth maps.

A depth map says more than where surfaces are: the ray of every pixel is empty up to its depth. A point that
lies on such a ray, clearly in front of the depth the pixel saw, contradicts that view: had it been there,
the camera would have seen it. Fusion systems use this to drop floaters (points in observed free space);
the pipeline uses it to keep imagined points that a later view of the same trajectory saw through out of
the global cache, so the next trajectory does not render them in front of what the first one showed.
"""

from __future__ import annotations

import torch

from worldstereo_ros.errors import InputError


def seen_through(xyz: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, T_world_cam: torch.Tensor,
                 tolerance: float = 0.02, point_time: torch.Tensor | None = None,
                 view_time: torch.Tensor | None = None) -> torch.Tensor:
    """Which points some depth map saw through (they lie in its observed free space).

    Every point is projected into every view on its own (no z-buffer, so floaters hidden behind other
    floaters are found too); it is seen through when the depth of the pixel it lands on is farther than the
    point by more than ``tolerance`` (relative, so noise may grow with distance).

    Args:
        xyz: (M, 3) world points, metres.
        depth: (V, H, W) depth maps, metres along the optical axis, 0 = unknown (never frees space).
        K: (3, 3) or (V, 3, 3) intrinsics, pixels. T_world_cam: (V, 4, 4) camera poses (OpenCV optical axes).
        tolerance: relative depth margin, in [0, 1).
        point_time, view_time: (M,) and (V,) times (e.g. frame indices) of the points and the views: a view
            then only tests the points older than itself, so where views disagree the newest one wins.
    Returns:
        (M,) bool, True where at least one view saw through the point.
    Raises:
        InputError: for shapes that do not match or a tolerance outside [0, 1).
    """
    if xyz.ndim != 2 or xyz.shape[-1] != 3:
        raise InputError("xyz", f"expected shape (M, 3), got {tuple(xyz.shape)}")
    if depth.ndim != 3:
        raise InputError("depth", f"expected shape (V, H, W), got {tuple(depth.shape)}")
    v, h, w = depth.shape
    K = torch.as_tensor(K, dtype=torch.float64)
    K = K.expand(v, 3, 3) if K.shape == (3, 3) else K
    if K.shape != (v, 3, 3):
        raise InputError("K", f"expected shape (3, 3) or ({v}, 3, 3), got {tuple(K.shape)}")
    if T_world_cam.shape != (v, 4, 4):
        raise InputError("T_world_cam", f"expected shape ({v}, 4, 4), got {tuple(T_world_cam.shape)}")
    if not 0.0 <= tolerance < 1.0:
        raise InputError("tolerance", f"expected a float in [0, 1), got {tolerance!r}")
    if (point_time is None) != (view_time is None):
        raise InputError("point_time", "give both point_time and view_time, or neither")
    if point_time is not None and (point_time.shape != (xyz.shape[0],) or view_time.shape != (v,)):
        raise InputError("point_time", f"expected shapes ({xyz.shape[0]},) and ({v},), got "
                                       f"{tuple(point_time.shape)} and {tuple(view_time.shape)}")
    out = torch.zeros(xyz.shape[0], dtype=torch.bool, device=xyz.device)
    if xyz.shape[0] == 0 or v == 0:
        return out
    p = xyz.to(torch.float64)
    T_cam_world = torch.linalg.inv(T_world_cam.to(torch.float64))
    for i in range(v):
        cam = p @ T_cam_world[i, :3, :3].T + T_cam_world[i, :3, 3]
        z = cam[:, 2]
        front = z > 1e-6
        if point_time is not None:
            front &= point_time.to(xyz.device) < view_time[i]
        zs = torch.where(front, z, 1.0)
        u = torch.where(front, cam[:, 0] / zs * K[i, 0, 0] + K[i, 0, 2], -1.0).round()
        r = torch.where(front, cam[:, 1] / zs * K[i, 1, 1] + K[i, 1, 2], -1.0).round()
        idx = (front & (u >= 0) & (u < w) & (r >= 0) & (r < h)).nonzero().squeeze(1)
        seen = depth[i, r[idx].long(), u[idx].long()].to(torch.float64)
        out[idx[(seen > 0) & (seen > z[idx] * (1.0 + tolerance))]] = True
    return out
