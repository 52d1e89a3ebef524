"""Batched rigid (SE(3)) and similarity (Sim(3)) transforms as 4x4 matrices, and quaternions.

Conventions:
- ``T_a_b`` maps points from frame ``b`` to frame ``a``: ``p_a = T_a_b @ p_b``. Camera poses are
  ``T_world_cam`` (camera-to-world) in OpenCV optical axes (x right, y down, z forward).
- A Sim(3) matrix has ``s * R`` as its upper-left block; its scale is the cube root of that block's
  determinant.
- Quaternions are ``(x, y, z, w)``, the order of ROS messages. transforms3d uses ``(w, x, y, z)``; the
  functions here are written in torch so they run batched on any device, and the tests check them
  against transforms3d.

Every function takes leading batch dimensions ``*`` and keeps the dtype and device of its input.
"""

from __future__ import annotations

import torch

from worldstereo_ros.errors import InputError


def _check(T: torch.Tensor, name: str, shape: tuple[int, ...]) -> None:
    if not isinstance(T, torch.Tensor):
        raise InputError(name, f"expected a torch tensor, got {type(T).__name__}")
    if tuple(T.shape[-len(shape):]) != shape:
        raise InputError(name, f"expected shape (*, {', '.join(map(str, shape))}), got {tuple(T.shape)}")


def make_pose(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(*, 4, 4) transform from rotation (or s*R) ``R`` (*, 3, 3) and translation ``t`` (*, 3)."""
    _check(R, "R", (3, 3))
    _check(t, "t", (3,))
    batch = torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    T = torch.zeros(*batch, 4, 4, dtype=R.dtype, device=R.device)
    T[..., :3, :3] = R
    T[..., :3, 3] = t.to(R.dtype)
    T[..., 3, 3] = 1.0
    return T


def sim3(scale: float | torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(*, 4, 4) similarity ``p -> scale * R p + t``."""
    scale = torch.as_tensor(scale, dtype=R.dtype, device=R.device)
    return make_pose(scale[..., None, None] * R, t)


def sim3_scale(T: torch.Tensor) -> torch.Tensor:
    """(*,) scale of Sim(3) matrices (1 for SE(3))."""
    _check(T, "T", (4, 4))
    det = torch.linalg.det(T[..., :3, :3])
    return torch.sign(det) * det.abs().pow(1.0 / 3.0)


def compose(T_ab: torch.Tensor, T_bc: torch.Tensor) -> torch.Tensor:
    """``T_ac = T_ab @ T_bc`` (*, 4, 4)."""
    _check(T_ab, "T_ab", (4, 4))
    _check(T_bc, "T_bc", (4, 4))
    return T_ab @ T_bc


def invert(T: torch.Tensor) -> torch.Tensor:
    """Inverse of SE(3) or Sim(3) matrices (*, 4, 4), in closed form (no general matrix inverse)."""
    _check(T, "T", (4, 4))
    sR = T[..., :3, :3]
    s2 = (sR * sR).sum(dim=-2, keepdim=True)  # squared column norms = s^2 for s*R
    inv_block = sR.transpose(-1, -2) / s2.transpose(-1, -2)
    return make_pose(inv_block, -(inv_block @ T[..., :3, 3:4])[..., 0])


def transform_points(T_ab: torch.Tensor, p_b: torch.Tensor) -> torch.Tensor:
    """Points ``p_b`` (*, N, 3) in frame b to frame a through ``T_ab`` (*, 4, 4)."""
    _check(T_ab, "T_ab", (4, 4))
    _check(p_b, "p_b", (3,))
    T = T_ab.to(p_b.dtype)
    return p_b @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]


def quat_xyzw_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(*, 3, 3) rotation matrices from quaternions (*, 4) in (x, y, z, w) order (normalised here).

    Raises:
        InputError: for a zero or non-finite quaternion.
    """
    _check(q, "q", (4,))
    if not torch.isfinite(q).all():
        raise InputError("q", "quaternion has NaN or infinite components")
    # scale by the largest component first so that huge components do not overflow the norm
    q = q / q.abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny)
    norm = torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    if (norm == 0).any():
        raise InputError("q", "quaternion has zero norm")
    x, y, z, w = (q / norm).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat_xyzw(R: torch.Tensor) -> torch.Tensor:
    """(*, 4) unit quaternions (x, y, z, w) with w >= 0 from rotation matrices (*, 3, 3).

    Uses the numerically stable branch per matrix (largest of w, x, y, z first).
    """
    _check(R, "R", (3, 3))
    m = R
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # 4 * q_i^2 for each of w, x, y, z; the largest gives the stable branch
    four_sq = torch.stack([
        1 + trace,
        1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
        1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
        1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
    ], dim=-1)
    best = four_sq.argmax(dim=-1)
    r = torch.sqrt(four_sq.clamp_min(0).gather(-1, best[..., None]))[..., 0]  # 2 |q_best|
    a = m[..., 2, 1] - m[..., 1, 2]
    b = m[..., 0, 2] - m[..., 2, 0]
    c = m[..., 1, 0] - m[..., 0, 1]
    d = m[..., 0, 1] + m[..., 1, 0]
    e = m[..., 0, 2] + m[..., 2, 0]
    f = m[..., 1, 2] + m[..., 2, 1]
    # (w, x, y, z) * 2r for each branch
    cands = torch.stack([
        torch.stack([r * r, a, b, c], dim=-1),
        torch.stack([a, r * r, d, e], dim=-1),
        torch.stack([b, d, r * r, f], dim=-1),
        torch.stack([c, e, f, r * r], dim=-1),
    ], dim=-2)
    wxyz = cands.gather(-2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :] / (2 * r[..., None])
    wxyz = torch.where(wxyz[..., :1] < 0, -wxyz, wxyz)
    wxyz = wxyz / torch.linalg.vector_norm(wxyz, dim=-1, keepdim=True)
    return torch.cat([wxyz[..., 1:], wxyz[..., :1]], dim=-1)


def slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation of unit quaternions (x, y, z, w) along the shorter arc.

    Args:
        q0, q1: (*, 4). t: scalar or (*,) in [0, 1] (broadcast against the batch).
    Returns:
        (*, 4) unit quaternions.
    """
    _check(q0, "q0", (4,))
    _check(q1, "q1", (4,))
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)[..., None]
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    near = sin_theta < 1e-6  # nearly equal rotations: linear interpolation is exact enough
    safe = torch.where(near, torch.ones_like(sin_theta), sin_theta)
    w0 = torch.where(near, 1 - t, torch.sin((1 - t) * theta) / safe)
    w1 = torch.where(near, t, torch.sin(t * theta) / safe)
    q = w0 * q0 + w1 * q1
    return q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)


def interpolate_poses(T0: torch.Tensor, T1: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """(K, 4, 4) SE(3) poses between ``T0`` and ``T1`` (4, 4): linear in position, slerp in rotation.

    Args:
        alphas: (K,) interpolation weights, 0 gives T0 and 1 gives T1.
    """
    _check(T0, "T0", (4, 4))
    _check(T1, "T1", (4, 4))
    alphas = torch.as_tensor(alphas, dtype=T0.dtype, device=T0.device).reshape(-1)
    q = slerp(matrix_to_quat_xyzw(T0[:3, :3]).expand(len(alphas), 4),
              matrix_to_quat_xyzw(T1[:3, :3]).expand(len(alphas), 4), alphas)
    t = T0[:3, 3] + alphas[:, None] * (T1[:3, 3] - T0[:3, 3])
    return make_pose(quat_xyzw_to_matrix(q), t)


def rotation_angle_deg(R_a: torch.Tensor, R_b: torch.Tensor) -> torch.Tensor:
    """(*,) angle in degrees of the relative rotation ``R_a^T R_b`` (robust near 0 and 180 degrees)."""
    _check(R_a, "R_a", (3, 3))
    _check(R_b, "R_b", (3, 3))
    rel = R_a.transpose(-1, -2) @ R_b
    q = matrix_to_quat_xyzw(rel)
    return torch.rad2deg(2 * torch.atan2(torch.linalg.vector_norm(q[..., :3], dim=-1), q[..., 3].abs()))


def rotation_about_axis(axis: torch.Tensor, angle_rad: float | torch.Tensor) -> torch.Tensor:
    """(3, 3) rotation by ``angle_rad`` about the unit ``axis`` (3,) (Rodrigues)."""
    axis = axis / torch.linalg.vector_norm(axis)
    half = torch.as_tensor(angle_rad, dtype=axis.dtype, device=axis.device) / 2
    q = torch.cat([axis * torch.sin(half), torch.cos(half)[None]])
    return quat_xyzw_to_matrix(q)


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """(4, 4) OpenCV camera pose T_world_cam at ``eye`` with its z axis towards ``target``.

    ``up`` (3,) is the world direction that should appear up in the image (camera -y); it must not be
    parallel to the viewing direction.
    """
    z = target - eye
    if float(torch.linalg.vector_norm(z)) < 1e-12:
        raise InputError("target", "look-at target coincides with the eye")
    z = z / torch.linalg.vector_norm(z)
    x = torch.linalg.cross(z, up)
    if float(torch.linalg.vector_norm(x)) < 1e-9:
        raise InputError("up", "up vector is parallel to the viewing direction")
    x = x / torch.linalg.vector_norm(x)
    y = torch.linalg.cross(z, x)
    return make_pose(torch.stack([x, y, z], dim=-1), eye)


__all__ = [
    "make_pose", "sim3", "sim3_scale", "compose", "invert", "transform_points", "quat_xyzw_to_matrix",
    "matrix_to_quat_xyzw", "slerp", "interpolate_poses", "rotation_angle_deg", "rotation_about_axis", "look_at",
]

