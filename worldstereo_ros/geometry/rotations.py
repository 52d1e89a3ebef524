"""Rotations on the numpy side, built on transforms3d: every conversion for messages, files and TF goes
through here (batched library maths on tensors is :mod:`worldstereo_ros.geometry.poses`).

Conventions:
- Quaternions are ``(x, y, z, w)`` (ROS messages, TUM files) unless a name says ``wxyz`` (transforms3d,
  COLMAP). Returned quaternions are unit and have ``w >= 0`` (q and -q are one rotation).
- Matrices are float64; ``R`` (3, 3) rotates vectors of the child frame into the parent frame, so
  ``T_parent_child[:3, :3]``.
- Inputs may carry leading batch dimensions ``(*, 4)`` / ``(*, 3, 3)``; outputs keep them.

This module imports no torch, so readers and nodes that only convert poses start fast.
"""

from __future__ import annotations

import numpy as np
import transforms3d

from worldstereo_ros.errors import InputError


def _batched(a: np.ndarray, tail: tuple[int, ...], field: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.shape[a.ndim - len(tail):] != tail:
        raise InputError(field, f"expected shape (*, {', '.join(map(str, tail))}), got {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(field, "values must be finite")
    return a


def quat_xyzw_to_matrix(q_xyzw: np.ndarray, field: str = "q_xyzw") -> np.ndarray:
    """(*, 3, 3) rotation matrices of (*, 4) xyzw quaternions, normalised first (zero norm is refused)."""
    q = _batched(q_xyzw, (4,), field)
    # scale by the largest component first so huge or tiny (but valid) quaternions neither overflow nor vanish
    peak = np.abs(q).max(axis=-1, keepdims=True)
    if np.any(peak < 1e-300):
        raise InputError(field, "quaternion has zero norm")
    q = q / peak
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    flat = q.reshape(-1, 4)
    R = np.stack([transforms3d.quaternions.quat2mat(v[[3, 0, 1, 2]]) for v in flat]) if len(flat) else \
        np.zeros((0, 3, 3))
    return R.reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat_xyzw(R: np.ndarray, field: str = "R") -> np.ndarray:
    """(*, 4) unit xyzw quaternions with ``w >= 0`` of (*, 3, 3) rotation matrices (the nearest rotation's
    quaternion when ``R`` is slightly off: transforms3d's eigenvector method)."""
    R = _batched(R, (3, 3), field)
    flat = R.reshape(-1, 3, 3)
    q = np.stack([transforms3d.quaternions.mat2quat(m) for m in flat]) if len(flat) else np.zeros((0, 4))
    q = q[:, [1, 2, 3, 0]]
    q = np.where(q[:, 3:4] < 0, -q, q)
    return q.reshape(*R.shape[:-2], 4)


def xyzw_to_wxyz(q_xyzw: np.ndarray) -> np.ndarray:
    """(*, 4) the same quaternions in ``(w, x, y, z)`` order."""
    q = np.asarray(q_xyzw, dtype=np.float64)
    return np.concatenate([q[..., 3:4], q[..., :3]], axis=-1)


def wxyz_to_xyzw(q_wxyz: np.ndarray) -> np.ndarray:
    """(*, 4) the same quaternions in ``(x, y, z, w)`` order."""
    q = np.asarray(q_wxyz, dtype=np.float64)
    return np.concatenate([q[..., 1:4], q[..., :1]], axis=-1)


def slerp_xyzw(q0_xyzw: np.ndarray, q1_xyzw: np.ndarray, alpha: float) -> np.ndarray:
    """(4,) unit xyzw quaternion ``alpha`` of the way from ``q0`` to ``q1`` (4,) along the shorter arc."""
    q0 = xyzw_to_wxyz(_batched(q0_xyzw, (4,), "q0_xyzw"))
    q1 = xyzw_to_wxyz(_batched(q1_xyzw, (4,), "q1_xyzw"))
    q0, q1 = q0 / np.linalg.norm(q0), q1 / np.linalg.norm(q1)
    if float(q0 @ q1) < 0:
        q1 = -q1
    rel = transforms3d.quaternions.qmult(transforms3d.quaternions.qinverse(q0), q1)
    q = transforms3d.quaternions.qmult(q0, transforms3d.quaternions.qpow(rel, float(alpha)))
    q = wxyz_to_xyzw(q / np.linalg.norm(q))
    return -q if q[3] < 0 else q


def interpolate_pose(T0: np.ndarray, T1: np.ndarray, alpha: float) -> np.ndarray:
    """(4, 4) pose ``alpha`` (0 gives T0, 1 gives T1) between two rigid (4, 4) poses: linear in position,
    slerp in rotation."""
    T0, T1 = _batched(T0, (4, 4), "T0"), _batched(T1, (4, 4), "T1")
    T = np.eye(4)
    T[:3, :3] = quat_xyzw_to_matrix(slerp_xyzw(matrix_to_quat_xyzw(T0[:3, :3]), matrix_to_quat_xyzw(T1[:3, :3]),
                                               alpha))
    T[:3, 3] = (1.0 - alpha) * T0[:3, 3] + alpha * T1[:3, 3]
    return T


def rotation_about_axis(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """(3, 3) rotation by ``angle_rad`` (right hand) about ``axis`` (3,) (normalised here; non-zero)."""
    axis = _batched(axis, (3,), "axis")
    if np.linalg.norm(axis) < 1e-300:
        raise InputError("axis", "the rotation axis has zero length")
    return transforms3d.axangles.axangle2mat(axis, float(angle_rad))


def euler_to_matrix(angles_rad: tuple[float, float, float], axes: str) -> np.ndarray:
    """(3, 3) float64 rotation of three Euler angles (radians) in transforms3d's ``axes`` convention: a
    4-letter code, ``s``/``r`` (static/rotating frame) then the axis order, e.g. ``"sxyz"`` for ROS roll,
    pitch, yaw and ``"ryxz"`` for yaw about y then pitch about the new x."""
    angles = _batched(angles_rad, (3,), "angles_rad")
    if angles.shape != (3,):
        raise InputError("angles_rad", f"expected three angles, got shape {angles.shape}")
    try:
        return transforms3d.euler.euler2mat(*(float(a) for a in angles), axes=axes)
    except (KeyError, TypeError) as exc:
        raise InputError("axes", f"unknown Euler axes {axes!r}; expected e.g. 'sxyz' or 'ryxz'") from exc


def nearest_rotation(R: np.ndarray, tolerance: float, field: str = "R") -> np.ndarray:
    """(*, 3, 3) the proper rotations nearest (Frobenius) to ``R``, which must be within ``tolerance`` of
    orthonormal (largest entry of ``R R^T - I``) and have a positive determinant.

    Text files round their matrices (7-Scenes' poses are off by ~2e-4): this takes them back onto SO(3)
    instead of refusing them, while anything farther off is an error naming ``field``.
    """
    R = _batched(R, (3, 3), field)
    err = np.abs(R @ np.swapaxes(R, -1, -2) - np.eye(3)).max(axis=(-2, -1))
    if np.any(err > tolerance) or np.any(np.linalg.det(R) <= 0):
        raise InputError(field, f"not a proper rotation matrix: orthonormality error {float(np.max(err)):.2e} "
                                f"(allowed {tolerance:g}) or determinant <= 0")
    U, _, Vt = np.linalg.svd(R)
    return U @ Vt
