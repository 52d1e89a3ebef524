"""View frusta for reference retrieval: corners, shared visible volume, view-angle penalty.

The public WorldStereo code scores two views by the IoU of the axis-aligned boxes around their frusta
(:func:`aabb_iou`, kept as a baseline). Boxes grow with the frustum's diagonal orientation and count
space neither camera sees; :func:`frustum_overlap` measures the volume both cameras actually see,
as intersection over union of the two truncated pyramids, from deterministic quasi-random samples.
"""

from __future__ import annotations

import math

import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.cameras import PinholeCamera
from worldstereo_ros.geometry.poses import invert


def _check_range(near_m: float, far_m: float) -> None:
    if not (near_m > 0 and far_m > near_m and math.isfinite(far_m)):
        raise InputError("far_m", f"need 0 < near_m < far_m < inf, got near_m={near_m}, far_m={far_m}")


def frustum_corners(camera: PinholeCamera, T_world_cam: torch.Tensor, near_m: float = 0.1,
                    far_m: float = 10.0) -> torch.Tensor:
    """(*, 8, 3) world corners: the near rectangle (4, image-corner order TL, TR, BR, BL) then the far one."""
    _check_range(near_m, far_m)
    T = torch.as_tensor(T_world_cam, dtype=torch.float64)
    u = torch.tensor([-0.5, camera.width - 0.5, camera.width - 0.5, -0.5], dtype=torch.float64)
    v = torch.tensor([-0.5, -0.5, camera.height - 0.5, camera.height - 0.5], dtype=torch.float64)
    rays = torch.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, torch.ones(4, dtype=torch.float64)],
                       -1)
    cam = torch.cat([rays * near_m, rays * far_m])
    return cam @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]


def frustum_volume(camera: PinholeCamera, near_m: float, far_m: float) -> float:
    """Volume of the truncated pyramid between ``near_m`` and ``far_m``, cubic metres."""
    _check_range(near_m, far_m)
    area_at_1m = (camera.width / camera.fx) * (camera.height / camera.fy)
    return area_at_1m * (far_m ** 3 - near_m ** 3) / 3.0


def sample_frustum(camera: PinholeCamera, T_world_cam: torch.Tensor, near_m: float, far_m: float,
                   samples: int, seed: int = 0) -> torch.Tensor:
    """(samples, 3) world points uniformly distributed in the frustum's volume (scrambled Sobol, deterministic)."""
    _check_range(near_m, far_m)
    if samples < 1:
        raise InputError("samples", f"must be >= 1, got {samples}")
    q = torch.quasirandom.SobolEngine(3, scramble=True, seed=seed).draw(samples, dtype=torch.float64)
    # the area of a slice grows as z^2, so the inverse CDF of z is the cube root
    z = (near_m ** 3 + q[:, 2] * (far_m ** 3 - near_m ** 3)) ** (1.0 / 3.0)
    u = q[:, 0] * camera.width - 0.5
    v = q[:, 1] * camera.height - 0.5
    cam = torch.stack([(u - camera.cx) / camera.fx * z, (v - camera.cy) / camera.fy * z, z], -1)
    T = torch.as_tensor(T_world_cam, dtype=torch.float64)
    return cam @ T[:3, :3].T + T[:3, 3]


def inside_frustum(points: torch.Tensor, camera: PinholeCamera, T_world_cam: torch.Tensor, near_m: float,
                   far_m: float) -> torch.Tensor:
    """(N,) bool: which world points (N, 3) lie in the camera's frustum between ``near_m`` and ``far_m``."""
    T_cw = invert(torch.as_tensor(T_world_cam, dtype=torch.float64))
    p = points.to(torch.float64) @ T_cw[:3, :3].T + T_cw[:3, 3]
    z = p[:, 2]
    ok = (z >= near_m) & (z <= far_m)
    zs = torch.where(ok, z, torch.ones_like(z))
    u = camera.fx * p[:, 0] / zs + camera.cx
    v = camera.fy * p[:, 1] / zs + camera.cy
    return ok & (u >= -0.5) & (u <= camera.width - 0.5) & (v >= -0.5) & (v <= camera.height - 0.5)


def frustum_overlap(cam_a: PinholeCamera, T_world_a: torch.Tensor, cam_b: PinholeCamera, T_world_b: torch.Tensor,
                    near_m: float = 0.1, far_m: float = 10.0, samples: int = 4096, seed: int = 0) -> float:
    """Intersection over union of the volumes two cameras see between ``near_m`` and ``far_m``, in [0, 1].

    The intersection is estimated from both sides (share of A's samples inside B times A's volume, and the
    reverse) and averaged, which halves the variance; the volumes are exact.
    """
    vol_a, vol_b = frustum_volume(cam_a, near_m, far_m), frustum_volume(cam_b, near_m, far_m)
    in_b = inside_frustum(sample_frustum(cam_a, T_world_a, near_m, far_m, samples, seed), cam_b, T_world_b,
                          near_m, far_m)
    in_a = inside_frustum(sample_frustum(cam_b, T_world_b, near_m, far_m, samples, seed + 1), cam_a, T_world_a,
                          near_m, far_m)
    inter = 0.5 * (float(in_b.double().mean()) * vol_a + float(in_a.double().mean()) * vol_b)
    inter = min(inter, vol_a, vol_b)
    return inter / (vol_a + vol_b - inter)


def optical_axis_angle_deg(T_world_a: torch.Tensor, T_world_b: torch.Tensor) -> float:
    """Angle between the two cameras' viewing directions (their z axes), degrees in [0, 180]."""
    za = torch.as_tensor(T_world_a, dtype=torch.float64)[:3, 2]
    zb = torch.as_tensor(T_world_b, dtype=torch.float64)[:3, 2]
    cos = float((za @ zb) / (torch.linalg.vector_norm(za) * torch.linalg.vector_norm(zb)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def view_angle_penalty(T_world_a: torch.Tensor, T_world_b: torch.Tensor) -> float:
    """``clip(exp(5 (90 - dtheta) / 180), 0, 1)`` with dtheta the optical-axis angle in degrees (the public
    code's penalty: 1 up to 90 degrees apart, falling to exp(-2.5) ~ 0.08 for opposite views)."""
    d_theta = optical_axis_angle_deg(T_world_a, T_world_b)
    return min(1.0, max(0.0, math.exp(5.0 * (90.0 - d_theta) / 180.0)))


def aabb_iou(corners_a: torch.Tensor, corners_b: torch.Tensor) -> float:
    """IoU of the axis-aligned boxes around two sets of frustum corners (8, 3) (the public code's score)."""
    lo_a, hi_a = corners_a.min(0).values, corners_a.max(0).values
    lo_b, hi_b = corners_b.min(0).values, corners_b.max(0).values
    inter = (torch.minimum(hi_a, hi_b) - torch.maximum(lo_a, lo_b)).clamp_min(0).prod()
    union = (hi_a - lo_a).prod() + (hi_b - lo_b).prod() - inter
    return float(inter / union) if float(union) > 0 else 0.0
