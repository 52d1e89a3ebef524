"""Read RGB-D sequences in the TUM RGB-D benchmark layout, and open either layout by looking at the folder.

A TUM sequence folder holds ``rgb.txt`` and ``depth.txt`` (lines ``timestamp path``, ``#`` comments),
``groundtruth.txt`` (lines ``timestamp tx ty tz qx qy qz qw``: the colour camera's optical frame in the world,
metres and a unit quaternion) and the images they name (8-bit colour PNG; uint16 depth PNG, 5000 units per
metre, 0 = invalid). Colour, depth and pose are sampled at different instants: each colour image is paired
with the nearest depth image within ``max_dt_s`` and with the pose interpolated at its timestamp (linear
position, spherical rotation), and is dropped when either is missing. The intrinsics are not part of the
layout: they come from the ``K`` argument, else a ``camera-intrinsics.txt`` (3x3) in the folder, else the
published calibration of the Freiburg camera named in the folder's name (``freiburg1/2/3``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from worldstereo_ros.datasets.rgbd_folder import RgbdFolder, RgbdFrame, nearest_rigid
from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.depth_units import depth_units_to_m
from worldstereo_ros.geometry.rotations import interpolate_pose, quat_xyzw_to_matrix

#: fx, fy, cx, cy of the Kinects of the TUM RGB-D benchmark (its "intrinsic camera parameters" page)
FREIBURG_INTRINSICS = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
}


def _read_list(path: Path) -> tuple[np.ndarray, list[str]]:
    """(timestamps (N,) float64 s, the rest of each line) of a TUM list file, comments skipped."""
    if not path.is_file():
        raise InputError("path", f"{path} is missing")
    stamps, rest = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        try:
            stamps.append(float(parts[0]))
        except ValueError:
            raise InputError("path", f"{path.name}:{n}: expected 'timestamp ...', got {line!r}") from None
        rest.append(parts[1] if len(parts) > 1 else "")
    return np.asarray(stamps, dtype=np.float64), rest


def _intrinsics(folder: Path, K) -> np.ndarray:
    if K is not None:
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3) or not np.isfinite(K).all():
            raise InputError("K", f"expected a finite (3, 3) matrix, got shape {K.shape}")
        return K
    k_file = folder / "camera-intrinsics.txt"
    if k_file.is_file():
        return np.loadtxt(k_file, dtype=np.float64).reshape(3, 3)
    for name, (fx, fy, cx, cy) in FREIBURG_INTRINSICS.items():
        if name in folder.name:
            return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    raise InputError("K", f"no intrinsics for {folder}: pass K, add camera-intrinsics.txt, or name the folder "
                          "after its camera (freiburg1/2/3)")


class TumSequence:
    """Random access to the associated frames of a TUM RGB-D sequence (module doc).

    Args:
        path: the sequence folder.
        K: (3, 3) intrinsics (default: see the module doc).
        depth_scale_m: metres per depth unit (TUM: 1/5000).
        max_dt_s: largest time between a colour image and its depth image, seconds.
    Attributes:
        indices: frame numbers 0..n-1 of the associated frames (in colour-timestamp order).
        timestamps: (n,) colour timestamps, seconds. K: (3, 3) intrinsics.
    """

    def __init__(self, path: str | Path, K=None, depth_scale_m: float = 1.0 / 5000.0, max_dt_s: float = 0.02) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError("path", f"{self.path} is not a folder")
        self.K = _intrinsics(self.path, K)
        self.depth_scale_m = float(depth_scale_m)
        t_rgb, rgb_files = _read_list(self.path / "rgb.txt")
        t_depth, depth_files = _read_list(self.path / "depth.txt")
        t_gt, gt_rows = _read_list(self.path / "groundtruth.txt")
        if len(t_rgb) == 0 or len(t_depth) == 0 or len(t_gt) < 2:
            raise InputError("path", f"{self.path}: rgb.txt, depth.txt need a line each and groundtruth.txt two")
        rows = []
        for k, row in enumerate(gt_rows):
            try:
                values = [float(v) for v in row.split()]
            except ValueError:
                values = []
            if len(values) != 7 or not np.isfinite(values).all() or not any(values[3:]):
                raise InputError("path", f"groundtruth.txt, pose {k + 1}: expected 7 numbers 'tx ty tz qx qy qz qw' "
                                         f"(a non-zero quaternion) after the timestamp, got {row!r}")
            rows.append(values)
        gt = np.asarray(rows, dtype=np.float64)
        order = np.argsort(t_gt)
        t_gt, gt = t_gt[order], gt[order]
        d_order = np.argsort(t_depth)
        t_depth_sorted = t_depth[d_order]
        j = np.clip(np.searchsorted(t_depth_sorted, t_rgb), 1, len(t_depth_sorted) - 1) if len(t_depth) > 1 \
            else np.zeros(len(t_rgb), dtype=np.int64)
        if len(t_depth) > 1:
            j = np.where(np.abs(t_depth_sorted[j - 1] - t_rgb) <= np.abs(t_depth_sorted[j] - t_rgb), j - 1, j)
        near_depth = np.abs(t_depth_sorted[j] - t_rgb) <= max_dt_s
        covered = (t_rgb >= t_gt[0]) & (t_rgb <= t_gt[-1])
        keep = np.nonzero(near_depth & covered)[0]
        keep = keep[np.argsort(t_rgb[keep], kind="stable")]
        if keep.size == 0:
            raise InputError("path", f"{self.path}: no colour image has a depth image within {max_dt_s} s and a "
                                     "ground-truth pose around it")
        self.timestamps = t_rgb[keep]
        self._rgb = [self.path / rgb_files[i] for i in keep]
        self._depth = [self.path / depth_files[d_order[j[i]]] for i in keep]
        self._poses = self._interpolate(t_gt, gt, self.timestamps)
        self.indices = list(range(len(keep)))

    @staticmethod
    def _interpolate(t_gt: np.ndarray, gt: np.ndarray, t: np.ndarray) -> np.ndarray:
        """(n, 4, 4) camera-to-world poses at times ``t``, interpolated between the ground-truth samples."""
        T = np.tile(np.eye(4), (len(gt), 1, 1))
        T[:, :3, :3] = quat_xyzw_to_matrix(gt[:, 3:7], "groundtruth.txt")
        T[:, :3, 3] = gt[:, :3]
        hi = np.clip(np.searchsorted(t_gt, t, side="right"), 1, len(t_gt) - 1)
        lo = hi - 1
        span = np.maximum(t_gt[hi] - t_gt[lo], 1e-12)
        alpha = np.clip((t - t_gt[lo]) / span, 0.0, 1.0)
        out = np.empty((len(t), 4, 4))
        for k in range(len(t)):
            out[k] = interpolate_pose(T[lo[k]], T[hi[k]], float(alpha[k]))
        return out

    def __len__(self) -> int:
        return len(self.indices)

    def read(self, index: int) -> RgbdFrame:
        """Associated frame ``index`` (0..n-1): rgb uint8, depth float32 metres, interpolated pose, K."""
        if index not in self.indices:
            raise InputError("index", f"frame {index} not in {self.path} (0..{len(self.indices) - 1})")
        bgr = cv2.imread(str(self._rgb[index]), cv2.IMREAD_COLOR)
        raw = cv2.imread(str(self._depth[index]), cv2.IMREAD_UNCHANGED)
        if bgr is None or raw is None or raw.dtype != np.uint16:
            raise InputError("path", f"frame {index}: unreadable colour {self._rgb[index].name} or non-uint16 depth "
                                     f"{self._depth[index].name}")
        depth = depth_units_to_m(raw, self.depth_scale_m)
        T = nearest_rigid(self._poses[index], f"groundtruth.txt at {self.timestamps[index]:.6f}")
        return RgbdFrame(index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), depth, T, self.K.copy())


def open_rgbd_sequence(path: str | Path, **kwargs) -> RgbdFolder | TumSequence:
    """A TUM sequence when ``path`` holds ``rgb.txt``, else a 7-Scenes-style :class:`RgbdFolder`."""
    path = Path(path)
    if (path / "rgb.txt").is_file():
        return TumSequence(path, **kwargs)
    return RgbdFolder(path, **kwargs)
