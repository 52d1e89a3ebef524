"""The types the memories own: :class:`Keyframe` (what the memory bank stores) and :class:`Reference` (what
it hands to a generator for one target frame). Here, below ``generation/``, so the memory layer never reaches
up for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.projection import backproject_depth


@dataclass
class Reference:
    """A keyframe retrieved from the memory bank for one target frame (spatial-stereo memory).

    Attributes:
        rgb: (H, W, 3) float32 in [0, 1].
        depth: (H, W) float32 metres, 0 = unknown.
        pointmap: (H, W, 3) float32 world-frame points of each pixel (0 where depth is 0): the 3D
            correspondences between the reference and any target camera.
        K: (3, 3) float64 intrinsics. T_world_cam: (4, 4) float64 pose.
        score: retrieval score in [0, 1] (frustum overlap x view-angle penalty).
        keyframe_id: id of the keyframe in the bank.
    """

    rgb: np.ndarray
    depth: np.ndarray
    pointmap: np.ndarray
    K: np.ndarray
    T_world_cam: np.ndarray
    score: float
    keyframe_id: int



@dataclass(frozen=True)
class Keyframe:
    """One remembered view.

    Attributes:
        rgb: (H, W, 3) float32 in [0, 1].
        depth: (H, W) float32 metres along the optical axis, 0 = unknown.
        pointmap: (H, W, 3) float32 world-frame point of each pixel, 0 where depth is 0.
        K: (3, 3) float64 intrinsics (pixel centres at integer coordinates).
        T_world_cam: (4, 4) float64 pose of the optical frame in the world.
        keyframe_id: unique id (the bank refuses duplicates).
        trajectory_id: the trajectory the view belongs to ("snapshot" for the real frame).
    """

    rgb: np.ndarray
    depth: np.ndarray
    pointmap: np.ndarray
    K: np.ndarray
    T_world_cam: np.ndarray
    keyframe_id: int
    trajectory_id: str = ""

    def __post_init__(self) -> None:
        h, w = np.shape(self.depth)[:2] if np.ndim(self.depth) == 2 else (-1, -1)
        if h < 2 or w < 2:
            raise InputError("depth", f"expected shape (H, W) with H, W >= 2, got {np.shape(self.depth)}")
        for name, shape in (("rgb", (h, w, 3)), ("pointmap", (h, w, 3)), ("K", (3, 3)), ("T_world_cam", (4, 4))):
            if np.shape(getattr(self, name)) != shape:
                raise InputError(name, f"expected shape {shape}, got {np.shape(getattr(self, name))}")
        if isinstance(self.keyframe_id, bool) or not isinstance(self.keyframe_id, (int, np.integer)):
            raise InputError("keyframe_id", f"expected an int, got {self.keyframe_id!r}")

    @property
    def width(self) -> int:
        return int(self.depth.shape[1])

    @property
    def height(self) -> int:
        return int(self.depth.shape[0])

    @classmethod
    def from_frame(cls, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, T_world_cam: np.ndarray,
                   keyframe_id: int, trajectory_id: str = "") -> "Keyframe":
        """A keyframe whose pointmap is the back-projection of ``depth`` (H, W) metres at ``T_world_cam``.

        Copies its inputs (as float32 images, float64 K and pose), so later changes to them do not reach the
        bank.
        """
        depth = np.array(depth, dtype=np.float32)
        K = np.array(K, dtype=np.float64)
        T = np.array(T_world_cam, dtype=np.float64)
        if depth.ndim != 2:
            raise InputError("depth", f"expected shape (H, W), got {depth.shape}")
        if K.shape != (3, 3) or T.shape != (4, 4):
            raise InputError("K", f"expected K (3, 3) and T_world_cam (4, 4), got {K.shape} and {T.shape}")
        pointmap = backproject_depth(torch.from_numpy(depth), torch.from_numpy(K), torch.from_numpy(T))
        pointmap = pointmap.to(torch.float32).numpy()
        return cls(np.array(rgb, dtype=np.float32), depth, pointmap, K, T, int(keyframe_id), str(trajectory_id))
