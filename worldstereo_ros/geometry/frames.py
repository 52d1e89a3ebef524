"""Axis conventions: OpenCV optical frames inside the library, ROS body frames and OpenGL at the edges.

- OpenCV / ROS optical frame (``*_optical_frame``): x right, y down, z forward. Everything in the library.
- ROS body frame (REP 103, e.g. ``camera_link``): x forward, y left, z up. The optical frame is
  ``rpy(-pi/2, 0, -pi/2)`` from it, i.e. ``T_LINK_OPTICAL`` below.
- OpenGL camera (Blender, NeRF-style datasets): x right, y up, z backward.

Functions take poses ``T_world_X`` (*, 4, 4) torch tensors and return ``T_world_Y``.
"""

from __future__ import annotations

import numpy as np
import torch

from worldstereo_ros.geometry.rotations import euler_to_matrix

#: (4, 4) pose of the optical frame in the camera's body frame: rpy(-pi/2, 0, -pi/2) (REP 103).
T_LINK_OPTICAL = np.eye(4)
T_LINK_OPTICAL[:3, :3] = euler_to_matrix((-np.pi / 2, 0.0, -np.pi / 2), "sxyz")
T_LINK_OPTICAL = np.round(T_LINK_OPTICAL, 12)
T_LINK_OPTICAL.setflags(write=False)

#: (4, 4) OpenGL camera axes expressed in OpenCV camera axes (flip y and z); its own inverse.
T_OPENCV_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
T_OPENCV_OPENGL.setflags(write=False)


def _const(M: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(M, dtype=like.dtype, device=like.device)


def link_to_optical(T_world_link: torch.Tensor) -> torch.Tensor:
    """Pose of the optical frame (*, 4, 4) from the pose of the camera's body frame (REP 103)."""
    return T_world_link @ _const(T_LINK_OPTICAL, T_world_link)


def optical_to_link(T_world_optical: torch.Tensor) -> torch.Tensor:
    """Pose of the camera's body frame (*, 4, 4) from the pose of its optical frame (REP 103)."""
    return T_world_optical @ _const(T_LINK_OPTICAL.T, T_world_optical)


def opencv_to_opengl(T_world_cv: torch.Tensor) -> torch.Tensor:
    """OpenGL camera pose (*, 4, 4) of the same camera as the OpenCV pose ``T_world_cv``."""
    return T_world_cv @ _const(T_OPENCV_OPENGL, T_world_cv)


def opengl_to_opencv(T_world_gl: torch.Tensor) -> torch.Tensor:
    """OpenCV camera pose (*, 4, 4) of the same camera as the OpenGL pose ``T_world_gl``."""
    return T_world_gl @ _const(T_OPENCV_OPENGL, T_world_gl)
