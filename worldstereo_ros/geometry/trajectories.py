"""Camera trajectories relative to the snapshot camera, and planned paths resampled to N views.

All poses are ``T_world_cam`` (N, 4, 4) float64 numpy arrays in OpenCV optical axes; frame 0 is the
snapshot pose and the motion is linear in the trajectory parameter. The paper's four trajectories
(orbit, up, left, right) plus ``forward``:

- ``orbit:DEG``: around the look-at point on the optical axis at ``radius_m`` (default: the scene's median
  depth), about the camera's up axis; positive degrees move the camera to its right, it keeps looking
  at the point.
- ``up:DEG``: the same orbit about the camera's horizontal axis: the camera rises and tilts down.
- ``left:M`` / ``right:M``: sideways by M metres, orientation kept.
- ``forward:M``: along the optical axis by M metres (negative = backwards).

Amounts left out take scene-scaled defaults (:data:`DEFAULT_AMOUNTS`: degrees, or a share of the median
depth for the metric ones).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.poses import matrix_to_quat_xyzw, quat_xyzw_to_matrix, slerp

#: name -> (default amount, unit); "depth" amounts are multiplied by the median depth.
DEFAULT_AMOUNTS: dict[str, tuple[float, str]] = {
    "orbit": (30.0, "deg"),
    "up": (15.0, "deg"),
    "left": (0.25, "depth"),
    "right": (0.25, "depth"),
    "forward": (0.3, "depth"),
}

#: The trajectories the demo, ``worldstereo-ros run``/``imagine`` and the bench's speed run imagine when none
#: are given (the paper's four, with the demo's amounts).
DEFAULT_TRAJECTORIES = "orbit:30,up:10,left:0.5,right:0.5"


@dataclass(frozen=True)
class TrajectorySpec:
    """One trajectory of a spec string: ``name`` and ``amount`` (degrees or metres; None = default)."""

    name: str
    amount: float | None = None

    def __str__(self) -> str:
        return self.name if self.amount is None else f"{self.name}:{self.amount:g}"


def _pose(T) -> np.ndarray:
    T = np.asarray(T.detach().cpu() if isinstance(T, torch.Tensor) else T, dtype=np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise InputError("T_world_cam0", f"expected a finite (4, 4) pose, got shape {T.shape}")
    return T


def _check_n(n: int) -> None:
    if int(n) != n or n < 1:
        raise InputError("n", f"number of views must be a positive integer, got {n}")


def _rotate_about(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    q = np.concatenate([axis * math.sin(angle_rad / 2), [math.cos(angle_rad / 2)]])
    return quat_xyzw_to_matrix(torch.from_numpy(q)).numpy()


def _orbit_about(T0: np.ndarray, n: int, angle_deg: float, axis_cam: np.ndarray, radius_m: float) -> np.ndarray:
    """Rotate the camera about the line through the look-at point with direction ``axis_cam`` (camera frame)."""
    if not (radius_m > 0 and math.isfinite(radius_m)):
        raise InputError("radius_m", f"orbit radius must be a finite positive distance, got {radius_m}")
    R0, c0 = T0[:3, :3], T0[:3, 3]
    pivot = c0 + R0[:, 2] * radius_m
    axis = R0 @ axis_cam
    out = np.empty((n, 4, 4))
    for i, a in enumerate(np.linspace(0.0, 1.0, n)):
        R = _rotate_about(axis, math.radians(angle_deg) * a)
        out[i] = np.eye(4)
        out[i, :3, :3] = R @ R0
        out[i, :3, 3] = pivot + R @ (c0 - pivot)
    return out


def _radius(radius_m: float | None, depth_median_m: float | None) -> float:
    radius = radius_m if radius_m is not None else depth_median_m
    if radius is None:
        raise InputError("radius_m", "give radius_m or depth_median_m")
    return radius


def orbit(T_world_cam0, n: int, angle_deg: float, radius_m: float | None = None,
          depth_median_m: float | None = None) -> np.ndarray:
    """(n, 4, 4) orbit about the camera's up axis around the look-at point (module doc)."""
    _check_n(n)
    radius = _radius(radius_m, depth_median_m)
    # camera up is -y; rotating about -y by a positive angle moves the camera towards +x (its right)
    return _orbit_about(_pose(T_world_cam0), n, angle_deg, np.array([0.0, -1.0, 0.0]), radius)


def tilt_up(T_world_cam0, n: int, angle_deg: float, radius_m: float | None = None,
            depth_median_m: float | None = None) -> np.ndarray:
    """(n, 4, 4) orbit about the camera's horizontal axis: rises and looks down at the look-at point."""
    _check_n(n)
    radius = _radius(radius_m, depth_median_m)
    # rotating about -x by a positive angle takes the camera centre (behind the pivot, at -z) towards -y (up)
    return _orbit_about(_pose(T_world_cam0), n, angle_deg, np.array([-1.0, 0.0, 0.0]), radius)


def _translate(T0: np.ndarray, n: int, offset_cam: np.ndarray) -> np.ndarray:
    out = np.repeat(T0[None], n, axis=0)
    out[:, :3, 3] += np.linspace(0.0, 1.0, n)[:, None] * (T0[:3, :3] @ offset_cam)[None]
    return out


def lateral(T_world_cam0, n: int, distance_m: float, direction: str = "left") -> np.ndarray:
    """(n, 4, 4) sideways move of ``distance_m`` metres to the camera's left or right, orientation kept."""
    _check_n(n)
    if direction not in ("left", "right"):
        raise InputError("direction", f"expected 'left' or 'right', got {direction!r}")
    sign = -1.0 if direction == "left" else 1.0
    return _translate(_pose(T_world_cam0), n, np.array([sign * distance_m, 0.0, 0.0]))


def dolly(T_world_cam0, n: int, distance_m: float) -> np.ndarray:
    """(n, 4, 4) move of ``distance_m`` metres along the optical axis (negative = backwards)."""
    _check_n(n)
    return _translate(_pose(T_world_cam0), n, np.array([0.0, 0.0, distance_m]))


def parse_trajectory_spec(spec: str) -> list[TrajectorySpec]:
    """Parse ``"orbit:30,up:10,left:0.5,right,forward:-0.4"`` into specs (amount optional).

    Raises:
        InputError: naming the bad item and listing the valid names.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError("trajectories", "expected a comma-separated list like 'orbit:30,left:0.5'")
    out = []
    for item in spec.split(","):
        item = item.strip()
        m = re.fullmatch(r"([a-z_]+)(?::([-+0-9.eE]+))?", item)
        if not m or m.group(1) not in DEFAULT_AMOUNTS:
            raise InputError("trajectories", f"bad item {item!r}; expected name[:amount] with name one of "
                                             f"{', '.join(DEFAULT_AMOUNTS)}")
        amount = None
        if m.group(2) is not None:
            try:
                amount = float(m.group(2))
            except ValueError:
                raise InputError("trajectories", f"bad amount in {item!r}") from None
            if not math.isfinite(amount):
                raise InputError("trajectories", f"amount must be finite in {item!r}")
        out.append(TrajectorySpec(m.group(1), amount))
    return out


def build_trajectory(spec: TrajectorySpec | str, T_world_cam0, n: int, depth_median_m: float) -> np.ndarray:
    """(n, 4, 4) poses of one spec (a TrajectorySpec or a single ``name[:amount]`` string)."""
    if isinstance(spec, str):
        specs = parse_trajectory_spec(spec)
        if len(specs) != 1:
            raise InputError("spec", f"expected one trajectory, got {len(specs)}")
        spec = specs[0]
    if not (depth_median_m > 0 and math.isfinite(depth_median_m)):
        raise InputError("depth_median_m", f"must be a finite positive depth, got {depth_median_m}")
    default, unit = DEFAULT_AMOUNTS[spec.name]
    amount = spec.amount if spec.amount is not None else (default * depth_median_m if unit == "depth" else default)
    if spec.name == "orbit":
        return orbit(T_world_cam0, n, amount, depth_median_m=depth_median_m)
    if spec.name == "up":
        return tilt_up(T_world_cam0, n, amount, depth_median_m=depth_median_m)
    if spec.name in ("left", "right"):
        return lateral(T_world_cam0, n, amount, spec.name)
    return dolly(T_world_cam0, n, amount)


def resample_path(T_world_poses, n: int, rotation_weight_m_per_rad: float = 0.1) -> np.ndarray:
    """(n, 4, 4) poses at constant arc length along a pose sequence (M, 4, 4), both ends kept.

    Arc length counts metres plus ``rotation_weight_m_per_rad`` metres per radian turned, so turns in place
    (a robot rotating before it drives) still get views. Positions interpolate linearly and orientations by
    slerp between the bracketing poses.
    """
    _check_n(n)
    T = np.asarray(T_world_poses.detach().cpu() if isinstance(T_world_poses, torch.Tensor) else T_world_poses,
                   dtype=np.float64)
    if T.ndim != 3 or T.shape[1:] != (4, 4) or T.shape[0] < 1:
        raise InputError("T_world_poses", f"expected shape (M, 4, 4) with M >= 1, got {T.shape}")
    if not np.isfinite(T).all():
        raise InputError("T_world_poses", "poses contain NaN or infinite values")
    if T.shape[0] == 1:
        return np.repeat(T, n, axis=0)
    q = matrix_to_quat_xyzw(torch.from_numpy(T[:, :3, :3]))
    # keep consecutive quaternions in one hemisphere so per-segment angles are the short way round
    for i in range(1, len(q)):
        if float((q[i] * q[i - 1]).sum()) < 0:
            q[i] = -q[i]
    dots = (q[1:] * q[:-1]).sum(-1).abs().clamp(max=1.0)
    seg = np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=1) + rotation_weight_m_per_rad * 2 * np.arccos(dots.numpy())
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 1e-12:
        return np.repeat(T[:1], n, axis=0)
    targets = np.linspace(0.0, s[-1], n)
    j = np.clip(np.searchsorted(s, targets, side="right") - 1, 0, len(T) - 2)
    span = np.where(seg[j] > 0, seg[j], 1.0)
    alpha = np.clip((targets - s[j]) / span, 0.0, 1.0)
    j_t = torch.from_numpy(j)
    R = quat_xyzw_to_matrix(slerp(q[j_t], q[j_t + 1], torch.from_numpy(alpha))).numpy()
    out = np.repeat(np.eye(4)[None], n, axis=0)
    out[:, :3, :3] = R
    out[:, :3, 3] = T[j, :3, 3] + alpha[:, None] * (T[j + 1, :3, 3] - T[j, :3, 3])
    return out


def camera_poses_along_path(T_fixed_path: np.ndarray, T_path_base: np.ndarray, T_base_cam: np.ndarray,
                            frames: int) -> np.ndarray:
    """(frames, 4, 4) float64 camera poses in the fixed frame along a path of robot base poses.

    Args:
        T_fixed_path: (4, 4) pose of the path's frame in the fixed frame.
        T_path_base: (M, 4, 4) base poses along the path, in the path's frame.
        T_base_cam: (4, 4) camera (optical frame) on the base: the mounting extrinsic.
        frames: views wanted; the M camera poses are resampled (:func:`resample_path`) when M differs.
    """
    T_fixed_cam = np.asarray(T_fixed_path, np.float64) @ np.asarray(T_path_base, np.float64) \
        @ np.asarray(T_base_cam, np.float64)
    if T_fixed_cam.shape[0] != frames:
        T_fixed_cam = resample_path(T_fixed_cam, frames)
    return T_fixed_cam

