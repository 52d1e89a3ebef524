"""Read one RGB-D snapshot from files: colour image, depth image or array, intrinsics, optional pose.

Depth: a uint16 PNG (``depth_scale_m`` metres per unit, default 0.001 = millimetres; 0 and 65535 =
unknown) or a float32 ``.npy`` array in metres (``depth_scale_m`` multiplies it when given; NaN = unknown).
Intrinsics: ``"fx,fy,cx,cy"``, a text file holding a 3x3 matrix (e.g. 7-Scenes' camera-intrinsics.txt), or a
text file holding the four numbers. Pose: a text file holding the 4x4 camera-to-world matrix (OpenCV optical
axes), identity when absent.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from worldstereo_ros.datasets.rgbd_folder import nearest_rigid
from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.depth_units import MM_IN_M, depth_units_to_m
from worldstereo_ros.snapshot import Snapshot


def parse_intrinsics(spec: str | Path) -> np.ndarray:
    """K (3, 3) float64 from ``"fx,fy,cx,cy"`` or from a file with a 3x3 matrix or those four numbers."""
    text = str(spec).strip()
    path = Path(text)
    if path.is_file():
        source = f"file {path}"
        try:
            values = np.array(path.read_text().replace(",", " ").split(), dtype=np.float64)
        except ValueError as exc:
            raise InputError("intrinsics", f"{path} does not hold numbers") from exc
    else:
        source = repr(text)
        try:
            values = np.array([v for v in text.replace(",", " ").split()], dtype=np.float64)
        except ValueError as exc:
            raise InputError("intrinsics", f"expected 'fx,fy,cx,cy' or an existing file, got {text!r}") from exc
    if values.size == 9:
        K = values.reshape(3, 3)
        if not np.allclose(K[2], [0.0, 0.0, 1.0]) or K[1, 0] != 0.0:
            raise InputError("intrinsics", f"{source}: a 3x3 K must have last row 0 0 1, got {K.tolist()}")
    elif values.size == 4:
        fx, fy, cx, cy = values
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    else:
        raise InputError("intrinsics", f"{source}: expected 4 numbers (fx,fy,cx,cy) or 9 (3x3 K), got {values.size}")
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError("intrinsics", f"{source}: focal lengths must be finite and positive, got {K.tolist()}")
    return K


def read_depth(path: str | Path, depth_scale_m: float | None = None) -> np.ndarray:
    """(H, W) float32 metres, 0 = unknown, from a uint16 PNG (default scale 0.001) or a float ``.npy``
    (metres, default scale 1)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("depth", f"no such file: {path}")
    if depth_scale_m is not None and not (isinstance(depth_scale_m, (int, float)) and depth_scale_m > 0):
        raise InputError("depth_scale", f"expected a float > 0 metres per unit, got {depth_scale_m!r}")
    if path.suffix.lower() == ".npy":
        raw = np.load(path, allow_pickle=False)
        if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.floating):
            raise InputError("depth", f"{path}: expected a 2-D float array of metres, got {raw.shape} {raw.dtype}")
        depth = raw.astype(np.float64) * (1.0 if depth_scale_m is None else depth_scale_m)
        return np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise InputError("depth", f"{path}: not a readable image")
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise InputError("depth", f"{path}: expected a single-channel uint16 image, got {raw.shape} {raw.dtype}")
    return depth_units_to_m(raw, MM_IN_M if depth_scale_m is None else depth_scale_m)


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any image file OpenCV reads."""
    path = Path(path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if bgr is None:
        raise InputError("rgb", f"{path}: no such file or not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_pose(path: str | Path) -> np.ndarray:
    """(4, 4) float64 camera-to-world matrix from a text file of 16 numbers, its rotation block taken to the
    nearest rotation as the dataset readers do (:func:`~worldstereo_ros.datasets.rgbd_folder.nearest_rigid`:
    7-Scenes pose files are off orthonormal by ~2e-4)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("pose", f"no such file: {path}")
    try:
        values = np.array(path.read_text().replace(",", " ").split(), dtype=np.float64)
    except ValueError as exc:
        raise InputError("pose", f"{path} does not hold numbers") from exc
    if values.size != 16:
        raise InputError("pose", f"{path}: expected 16 numbers (4x4), got {values.size}")
    return nearest_rigid(values.reshape(4, 4), f"pose ({path.name})")


def load_snapshot(rgb_path: str | Path, depth_path: str | Path, intrinsics: str | Path,
                  pose_path: str | Path | None = None, depth_scale_m: float | None = None) -> Snapshot:
    """A validated :class:`~worldstereo_ros.snapshot.Snapshot` from files (formats in the module doc).

    The depth is resized (nearest neighbour) to the colour image when the sizes differ, and K is then taken
    to belong to the colour image.
    """
    rgb = read_rgb(rgb_path)
    depth = read_depth(depth_path, depth_scale_m)
    if depth.shape != rgb.shape[:2]:
        depth = cv2.resize(depth, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST)
    K = parse_intrinsics(intrinsics)
    T = np.eye(4) if pose_path is None else read_pose(pose_path)
    return Snapshot.create(rgb, depth, K, T)
