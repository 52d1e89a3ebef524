"""geometry_msgs poses/transforms <-> 4x4 matrices, nav_msgs/Path <-> (N, 4, 4), PoseArray, TFMessage.

Quaternions are xyzw in ROS messages; matrices are float64 (4, 4) rigid transforms named by frames
(``T_parent_child`` maps points from child to parent). Input quaternions are normalised; zero-norm
or non-finite ones are rejected, and so are positions farther than :data:`MAX_ABS_POSITION_M` (finite but
absurd values such as 1e308 overflowed to inf and NaN in later arithmetic: arc lengths, inverses).
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Pose, PoseArray, PoseStamped, Quaternion, Transform, TransformStamped
from nav_msgs.msg import Path

from worldstereo_ros.errors import ConversionError, InputError
from worldstereo_ros.geometry.rotations import matrix_to_quat_xyzw, quat_xyzw_to_matrix

#: Largest coordinate accepted in a pose or transform [m]: far beyond any map (UTM northings reach 1e7 m), far
#: below where squares and sums overflow float64.
MAX_ABS_POSITION_M = 1e9


def _rotation_from_xyzw(q: np.ndarray, field: str) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    if not np.isfinite(q).all():
        raise ConversionError(field, "quaternion must be finite")
    if np.any(np.abs(q).max(axis=-1) < 1e-12):
        raise ConversionError(field, "quaternion has zero norm")
    try:
        return quat_xyzw_to_matrix(q, field)
    except InputError as err:
        raise ConversionError(field, err.problem) from None


def _check_position(p: np.ndarray, field: str) -> None:
    if not np.isfinite(p).all():
        raise ConversionError(field, "position must be finite")
    if np.abs(p).max() > MAX_ABS_POSITION_M:
        raise ConversionError(field, f"position {p.tolist()} is farther than MAX_ABS_POSITION_M = "
                                     f"{MAX_ABS_POSITION_M:g} m")


def _matrix(p, q, field: str, position_name: str, rotation_name: str) -> np.ndarray:
    position = np.array([p.x, p.y, p.z], dtype=np.float64)
    _check_position(position, f"{field}.{position_name}")
    T = np.eye(4)
    T[:3, :3] = _rotation_from_xyzw(np.array([q.x, q.y, q.z, q.w]), f"{field}.{rotation_name}")
    T[:3, 3] = position
    return T


def pose_to_matrix(pose: Pose, field: str = "pose") -> np.ndarray:
    """(4, 4) from a geometry_msgs/Pose."""
    return _matrix(pose.position, pose.orientation, field, "position", "orientation")


def transform_to_matrix(transform: Transform, field: str = "transform") -> np.ndarray:
    """(4, 4) from a geometry_msgs/Transform."""
    return _matrix(transform.translation, transform.rotation, field, "translation", "rotation")


def _check_matrix(T: np.ndarray) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise ConversionError("T", f"expected a finite (4, 4) matrix, got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or np.linalg.det(R) <= 0:
        raise ConversionError("T", "rotation part is not a proper rotation")
    return T


def _quat(T: np.ndarray) -> Quaternion:
    x, y, z, w = matrix_to_quat_xyzw(T[:3, :3])
    return Quaternion(x=float(x), y=float(y), z=float(z), w=float(w))


def matrix_to_pose(T: np.ndarray) -> Pose:
    T = _check_matrix(T)
    pose = Pose(orientation=_quat(T))
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    return pose


def matrix_to_transform(T: np.ndarray) -> Transform:
    T = _check_matrix(T)
    t = Transform(rotation=_quat(T))
    t.translation.x, t.translation.y, t.translation.z = (float(v) for v in T[:3, 3])
    return t


def path_to_matrices(path: Path) -> np.ndarray:
    """(N, 4, 4) base poses in ``path.header.frame_id``; errors name the index (``poses[3].pose.orientation``)."""
    out = np.empty((len(path.poses), 4, 4))
    for i, ps in enumerate(path.poses):
        out[i] = pose_to_matrix(ps.pose, f"poses[{i}].pose")
    return out


def matrices_to_path(T: np.ndarray, frame_id: str, stamp=None) -> Path:
    """nav_msgs/Path from (N, 4, 4); every PoseStamped gets the path's header."""
    T = np.asarray(T, dtype=np.float64)
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise ConversionError("T", f"expected shape (N, 4, 4), got {T.shape}")
    path = Path()
    path.header.frame_id = frame_id
    if stamp is not None:
        path.header.stamp = stamp
    path.poses = [PoseStamped(header=path.header, pose=matrix_to_pose(t)) for t in T]
    return path


def matrices_to_pose_array(T: np.ndarray, header=None) -> PoseArray:
    msg = PoseArray()
    if header is not None:
        msg.header = header
    msg.poses = [matrix_to_pose(t) for t in np.asarray(T, dtype=np.float64).reshape(-1, 4, 4)]
    return msg


def make_transform_stamped(parent: str, child: str, T_parent_child: np.ndarray, stamp=None) -> TransformStamped:
    if not parent or not child:
        raise ConversionError("frame_id", f"parent and child frames must be non-empty, got {parent!r}, {child!r}")
    t = TransformStamped(child_frame_id=child, transform=matrix_to_transform(T_parent_child))
    t.header.frame_id = parent
    if stamp is not None:
        t.header.stamp = stamp
    return t


def make_tf_message(transforms: list[TransformStamped]):
    """tf2_msgs/TFMessage holding ``transforms`` (tf2_msgs is generated at set-up where missing)."""
    from tf2_msgs.msg import TFMessage  # here: only TF publishers need it, and older wheel sets lack it

    return TFMessage(transforms=list(transforms))
