"""Read (and write) RGB-D sequences in the 7-Scenes layout.

A folder holds ``frame-XXXXXX.color.(jpg|png)`` (RGB), ``frame-XXXXXX.depth.png`` (uint16 millimetres,
0 = invalid), ``frame-XXXXXX.pose.txt`` (4x4 camera-to-world, OpenCV optical axes) and
``camera-intrinsics.txt`` (3x3 K). Depth is returned as float32 metres, 0 = unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.depth_units import depth_m_to_units, depth_units_to_m
from worldstereo_ros.geometry.rotations import nearest_rotation

#: Largest |R R^T - I| entry of a pose file's rotation block that is still taken as a (rounded) rotation.
ROTATION_TOLERANCE = 2e-2

_FRAME = re.compile(r"frame-(\d+)\.depth\.png$")


@dataclass(frozen=True)
class RgbdFrame:
    """rgb (H, W, 3) uint8; depth (H, W) float32 m; T_world_cam (4, 4) float64; K (3, 3) float64."""

    index: int
    rgb: np.ndarray
    depth: np.ndarray
    T_world_cam: np.ndarray
    K: np.ndarray


def nearest_rigid(T: np.ndarray, field: str = "T_world_cam") -> np.ndarray:
    """``T`` with its rotation block replaced by the nearest rotation, bottom row [0, 0, 0, 1].

    Ground-truth files store rounded or drift-accumulated matrices (7-Scenes rotations are off
    orthonormal by up to 2e-4), which strict consumers such as the TF conversions reject. Blocks farther
    than :data:`ROTATION_TOLERANCE` from orthonormal are refused.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise InputError(field, f"expected a finite 4x4 matrix, got shape {T.shape}")
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = nearest_rotation(T[:3, :3], ROTATION_TOLERANCE, field), T[:3, 3]
    return out


class RgbdFolder:
    """Random access to the frames of a 7-Scenes-style folder."""

    def __init__(self, path: str | Path, depth_scale_m: float = 0.001) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError("path", f"{self.path} is not a folder")
        self.indices = sorted(int(m.group(1)) for p in self.path.iterdir() if (m := _FRAME.search(p.name)))
        if not self.indices:
            raise InputError("path", f"no frame-XXXXXX.depth.png files in {self.path}")
        k_file = self.path / "camera-intrinsics.txt"
        if not k_file.is_file():
            raise InputError("path", f"{k_file} is missing")
        self.K = np.loadtxt(k_file, dtype=np.float64).reshape(3, 3)
        self.depth_scale_m = depth_scale_m

    def __len__(self) -> int:
        return len(self.indices)

    def _file(self, index: int, suffix: str) -> Path:
        return self.path / f"frame-{index:06d}.{suffix}"

    def _read_pose(self, index: int) -> np.ndarray:
        """(4, 4) float64 T_world_cam of frame ``index`` as stored (not yet made rigid)."""
        pose_file = self._file(index, "pose.txt")
        field = pose_file.name
        if not pose_file.is_file():
            # an identity pose would silently put this frame at the world origin (issue 14 item 9)
            raise InputError(field, f"missing in {self.path}: every frame needs its camera-to-world pose")
        try:
            values = np.loadtxt(pose_file, dtype=np.float64)
        except ValueError as err:
            raise InputError(field, f"not a matrix of numbers: {err}") from None
        if values.size != 16:
            raise InputError(field, f"expected 16 numbers (a 4x4 matrix), got {values.size}")
        return values.reshape(4, 4)

    def read(self, index: int) -> RgbdFrame:
        """Frame ``index`` (the number in its file name).

        Raises:
            InputError: naming the file: an unknown index, a missing or unreadable colour/depth image, or a
                missing or malformed pose file.
        """
        if index not in self.indices:
            raise InputError("index", f"frame {index} not in {self.path} ({self.indices[0]}..{self.indices[-1]})")
        candidates = (self._file(index, "color.jpg"), self._file(index, "color.png"))
        colour = next((p for p in candidates if p.is_file()), None)
        if colour is None:
            raise InputError("path", f"no colour image for frame {index}")
        bgr = cv2.imread(str(colour), cv2.IMREAD_COLOR)
        depth_raw = cv2.imread(str(self._file(index, "depth.png")), cv2.IMREAD_UNCHANGED)
        if bgr is None or depth_raw is None or depth_raw.dtype != np.uint16:
            raise InputError("path", f"frame {index}: unreadable colour or non-uint16 depth")
        depth = depth_units_to_m(depth_raw, self.depth_scale_m)  # 7-Scenes marks invalid depth as 0 or 65535
        T = nearest_rigid(self._read_pose(index), f"frame-{index:06d}.pose.txt")
        return RgbdFrame(index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), depth.astype(np.float32), T, self.K.copy())


def write_rgbd_frame(folder: str | Path, index: int, rgb: np.ndarray, depth_m: np.ndarray, T_world_cam: np.ndarray,
                     K: np.ndarray | None = None) -> None:
    """Write one frame (PNG colour, uint16 mm depth, pose text) and, if given, the intrinsics."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"frame-{index:06d}.color.png"), cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / f"frame-{index:06d}.depth.png"), depth_m_to_units(depth_m))
    np.savetxt(folder / f"frame-{index:06d}.pose.txt", np.asarray(T_world_cam, dtype=np.float64))
    if K is not None:
        np.savetxt(folder / "camera-intrinsics.txt", np.asarray(K, dtype=np.float64))
