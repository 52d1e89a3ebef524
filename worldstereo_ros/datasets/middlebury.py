"""Read a Middlebury-style rectified stereo pair with ground-truth disparity (e.g. 2014 "Motorcycle").

A folder holds ``<name>_left.png`` and ``<name>_right.png`` (rectified colour images of the same size) and
``<name>_disp.npz`` (one float array: the left view's disparity in pixels, ``inf`` = unknown), the layout
of the copy in ``shared/data/middlebury-motorcycle`` (as shipped with scikit-image).

Depth follows the Middlebury convention ``Z = f * baseline / (d + doffs)``, where ``doffs = cx_right -
cx_left`` is the difference of the two principal points: it already accounts for the principal points not
being the same, so a left pixel ``(x, y)`` with disparity ``d`` is seen at ``(x - d, y)`` in the right image.

The default calibration is that of the 741 x 500 Motorcycle pair in ``shared/data`` (f = 994.978 px,
baseline = 193.001 mm, doffs = 31.086 px). Its principal point is not shipped with the files, so ``K``
uses the image centre ``((W - 1) / 2, (H - 1) / 2)``: an assumption, not a calibrated value (it does not
enter the depth, only the back-projection of pixels to 3D).
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from worldstereo_ros.errors import InputError

#: Array names tried, in order, in the disparity ``.npz`` when it holds more than one array.
_DISP_KEYS = ("disparity", "disp", "arr_0")


@dataclass(frozen=True)
class StereoPair:
    """A rectified stereo pair with the left view's ground truth.

    Attributes:
        left, right: (H, W, 3) uint8 RGB.
        disparity: (H, W) float32 disparity of the left view, pixels (x_right = x_left - d); NaN = unknown.
        depth_m: (H, W) float32 depth of the left view along the optical axis, metres; 0 = unknown.
        K: (3, 3) float64 intrinsics of the left camera (principal point: image centre, module doc).
        baseline_m: distance between the camera centres, metres.
        doffs_px: x-difference of the principal points (right minus left), pixels.
    """

    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    depth_m: np.ndarray
    K: np.ndarray
    baseline_m: float
    doffs_px: float


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value) or value <= 0:
        raise InputError(name, f"expected a finite number > 0, got {value!r}")
    return float(value)


def _read_rgb(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError("folder", f"{path.name} is missing ({path})")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError("folder", f"{path.name} is not a readable image ({path})")
    if bgr.dtype != np.uint8:  # 16-bit PNGs are read as uint16 by IMREAD_COLOR in some builds
        raise InputError("folder", f"{path.name}: expected 8-bit colour, got {bgr.dtype}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _read_disparity(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError("folder", f"{path.name} is missing ({path})")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError("folder", f"{path.name} is not a readable .npz file ({exc})") from exc
    keys = list(arrays)
    key = keys[0] if len(keys) == 1 else next((k for k in _DISP_KEYS if k in keys), None)
    if key is None:
        raise InputError("folder", f"{path.name}: expected one array or one named {_DISP_KEYS}, got {keys}")
    disp = arrays[key]
    if disp.ndim != 2 or not np.issubdtype(disp.dtype, np.number):
        raise InputError("folder", f"{path.name}: expected a 2D numeric disparity, got {disp.dtype} "
                                   f"{disp.shape}")
    return disp.astype(np.float32)


def read_middlebury(folder, name: str = "motorcycle", focal_px: float = 994.978, baseline_mm: float = 193.001,
                    doffs_px: float = 31.086) -> StereoPair:
    """Read ``<name>_left.png``, ``<name>_right.png`` and ``<name>_disp.npz`` from ``folder``.

    Args:
        folder: the data folder.
        name: file name prefix.
        focal_px: focal length of both (rectified) cameras at the images' resolution, pixels.
        baseline_mm: baseline, millimetres.
        doffs_px: principal-point x-offset ``cx_right - cx_left``, pixels (at the images' resolution).
    Returns:
        StereoPair. Disparities that are not finite, or with ``d + doffs <= 0`` (no positive depth), are
        unknown: NaN in ``disparity``, 0 in ``depth_m``. ``depth_m = focal_px * baseline_mm / (d + doffs_px)
        / 1000``.
    Raises:
        InputError: a missing or unreadable folder or file (the message names the file), images and
            disparity of different sizes (naming the file that disagrees), bad calibration values.
    """
    focal_px = _positive("focal_px", focal_px)
    baseline_mm = _positive("baseline_mm", baseline_mm)
    if isinstance(doffs_px, bool) or not isinstance(doffs_px, (int, float, np.floating, np.integer)) \
            or not math.isfinite(doffs_px):
        raise InputError("doffs_px", f"expected a finite number, got {doffs_px!r}")
    if not isinstance(name, str) or not name:
        raise InputError("name", f"expected a non-empty file prefix, got {name!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("folder", f"{folder} is not a folder")

    left_file, right_file = folder / f"{name}_left.png", folder / f"{name}_right.png"
    disp_file = folder / f"{name}_disp.npz"
    left = _read_rgb(left_file)
    right = _read_rgb(right_file)
    disp = _read_disparity(disp_file)
    h, w = left.shape[:2]
    if right.shape != left.shape:
        raise InputError("folder", f"{right_file.name} is {right.shape[1]}x{right.shape[0]}, "
                                   f"{left_file.name} is {w}x{h}")
    if disp.shape != (h, w):
        raise InputError("folder", f"{disp_file.name} has shape {disp.shape}, the images are {w}x{h} "
                                   f"(expected ({h}, {w}))")

    valid = np.isfinite(disp) & (disp + np.float32(doffs_px) > 0)
    disparity = np.where(valid, disp, np.float32(np.nan)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(valid, focal_px * baseline_mm / 1000.0 / (disp.astype(np.float64) + float(doffs_px)),
                         0.0)
    K = np.array([[focal_px, 0.0, (w - 1) / 2.0], [0.0, focal_px, (h - 1) / 2.0], [0.0, 0.0, 1.0]])
    return StereoPair(left, right, disparity, depth.astype(np.float32), K, baseline_mm / 1000.0,
                      float(doffs_px))
