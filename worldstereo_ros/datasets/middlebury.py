"""Read a Middlebury rectified stereo pair with ground-truth disparity, in any of its published layouts.

Layouts (found by the files present; the first that matches wins):

* 2014 (and 2021): ``im0.png`` / ``im1.png``, ground truth ``disp0.pfm`` (or ``disp0GT.pfm``, or an 8/16-bit
  ``disp0.png``) and ``calib.txt`` (``cam0=[f 0 cx; 0 f cy; 0 0 1]``, ``cam1=...``, ``doffs=``,
  ``baseline=`` in mm, ...);
* 2005 / 2006: ``view1.png`` / ``view5.png`` and ``disp1.png`` (8-bit, 0 = unknown); these ship without a
  ``calib.txt`` (focal length and ``doffs`` come with the dataset's notes), so the calibration is given;
* scikit-image's copy: ``<name>_left.png`` / ``<name>_right.png`` / ``<name>_disp.npz`` (float, ``inf`` =
  unknown), the layout of ``shared/data/middlebury-motorcycle``.

Calibration: read from ``calib.txt`` when the folder has one; otherwise given as arguments. The only
built-in values are those of the scikit-image Motorcycle copy (:data:`KNOWN_CALIBRATIONS`, from the shared
data's README), whose ``calib.txt`` is not shipped; any other pair without ``calib.txt`` needs them given.
Without a ``cam0`` matrix the principal point is the image centre ``((W - 1) / 2, (H - 1) / 2)``, an
assumption that does not enter the depth.

Unknown disparity: ``inf`` / NaN in float files, 0 in 8/16-bit PNGs (Middlebury's convention there). Depth
follows ``Z = f * baseline / (d + doffs)``, where ``doffs = cx_right - cx_left``: a left pixel ``(x, y)``
with disparity ``d`` is seen at ``(x - d, y)`` in the right image.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from worldstereo_ros.errors import InputError
from worldstereo_ros.validation import check_positive

#: Array names tried, in order, in the disparity ``.npz`` when it holds more than one array.
_DISP_KEYS = ("disparity", "disp", "arr_0")
#: Calibrations of pairs shipped without calib.txt, by file prefix: (focal px, baseline mm, doffs px).
KNOWN_CALIBRATIONS = {"motorcycle": (994.978, 193.001, 31.086)}


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


def _read_rgb(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError("folder", f"{path.name} is missing ({path})")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError("folder", f"{path.name} is not a readable image ({path})")
    if bgr.dtype != np.uint8:  # 16-bit PNGs are read as uint16 by IMREAD_COLOR in some builds
        raise InputError("folder", f"{path.name}: expected 8-bit colour, got {bgr.dtype}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _read_pfm(path: Path) -> np.ndarray:
    """A single-channel PFM (``Pf``), rows stored bottom to top; ``inf`` stays ``inf``."""
    with open(path, "rb") as fh:
        kind = fh.readline().strip()
        dims = fh.readline().split()
        scale_line = fh.readline().strip()
        try:
            w, h = int(dims[0]), int(dims[1])
            scale = float(scale_line)
        except (IndexError, ValueError) as exc:
            raise InputError("folder", f"{path.name}: not a readable PFM header") from exc
        if kind != b"Pf":
            raise InputError("folder", f"{path.name}: expected a single-channel PFM ('Pf'), got {kind!r}")
        data = np.frombuffer(fh.read(), dtype="<f4" if scale < 0 else ">f4")
    if data.size != w * h:
        raise InputError("folder", f"{path.name}: expected {w * h} values for {w}x{h}, got {data.size}")
    return np.flipud(data.reshape(h, w)).astype(np.float32)


def _read_png_disparity(path: Path, scale: float) -> np.ndarray:
    """An 8/16-bit PNG disparity: value / ``scale`` pixels, 0 = unknown (-> NaN)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise InputError("folder", f"{path.name} is not a readable image ({path})")
    if raw.ndim == 3:  # some copies store the grey map as RGB
        raw = raw[..., 0]
    if raw.dtype not in (np.uint8, np.uint16):
        raise InputError("folder", f"{path.name}: expected an 8- or 16-bit disparity PNG, got {raw.dtype}")
    disp = raw.astype(np.float32) / np.float32(scale)
    disp[raw == 0] = np.nan
    return disp


def _parse_calib(path: Path) -> dict:
    """calib.txt -> {"K": (3, 3) or None, "focal_px", "baseline_mm", "doffs_px"} (only the keys present)."""
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    out = {}
    try:
        if "cam0" in values:
            K = np.array([[float(v) for v in row.split()] for row in values["cam0"].strip("[]").split(";")])
            if K.shape != (3, 3):
                raise ValueError(f"cam0 has shape {K.shape}")
            out["K"], out["focal_px"] = K, float(K[0, 0])
        if "baseline" in values:
            out["baseline_mm"] = float(values["baseline"])
        if "doffs" in values:
            out["doffs_px"] = float(values["doffs"])
    except ValueError as exc:
        raise InputError("folder", f"{path.name}: cannot parse ({exc})") from exc
    return out


def _layout(folder: Path, name: str | None) -> tuple[str, Path, Path, Path]:
    """(layout, left, right, disparity file) of the first layout whose left image exists."""
    if name is None and (folder / "im0.png").is_file():
        disp = next((folder / f for f in ("disp0.pfm", "disp0GT.pfm", "disp0.png") if (folder / f).is_file()),
                    folder / "disp0.pfm")
        return "2014", folder / "im0.png", folder / "im1.png", disp
    if name is None and (folder / "view1.png").is_file():
        return "2005", folder / "view1.png", folder / "view5.png", folder / "disp1.png"
    if name is None:
        found = sorted(p.name.rsplit("_", 1)[0] for suffix in ("_left.png", "_right.png", "_disp.npz")
                       for p in folder.glob(f"*{suffix}"))
        if not found:
            raise InputError("folder", f"no Middlebury pair in {folder}: expected im0.png/im1.png/disp0.pfm, "
                                       "view1.png/view5.png/disp1.png or <name>_left.png/_right.png/_disp.npz")
        name = found[0]
    return ("prefix:" + name, folder / f"{name}_left.png", folder / f"{name}_right.png",
            folder / f"{name}_disp.npz")


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


def read_middlebury(folder, name: str | None = None, focal_px: float | None = None,
                    baseline_mm: float | None = None, doffs_px: float | None = None,
                    disparity_scale: float = 1.0) -> StereoPair:
    """Read a Middlebury pair in any layout of the module doc.

    Args:
        folder: the pair's folder.
        name: file prefix of the ``<name>_left.png`` layout (None: the layout is found from the files).
        focal_px, baseline_mm, doffs_px: calibration at the images' resolution (pixels, millimetres,
            pixels). Each given value overrides ``calib.txt``; without ``calib.txt`` all three are needed
            (except for the pairs of :data:`KNOWN_CALIBRATIONS`).
        disparity_scale: PNG disparity units per pixel (e.g. 256 for 16-bit maps stored x256); ignored for
            float files.
    Returns:
        StereoPair. Unknown disparities (non-finite, 0 in a PNG, or with ``d + doffs <= 0``) are NaN in
        ``disparity`` and 0 in ``depth_m``; ``depth_m = focal_px * baseline_mm / (d + doffs_px) / 1000``.
    Raises:
        InputError: a missing folder or file (the message names the file), a missing calibration (naming
            calib.txt), images and disparity of different sizes (naming the file), bad calibration values.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("folder", f"{folder} is not a folder")
    if name is not None and (not isinstance(name, str) or not name):
        raise InputError("name", f"expected a non-empty file prefix, got {name!r}")
    disparity_scale = check_positive("disparity_scale", disparity_scale)
    layout, left_file, right_file, disp_file = _layout(folder, name)
    calib = _parse_calib(folder / "calib.txt") if (folder / "calib.txt").is_file() else {}
    known = KNOWN_CALIBRATIONS.get(layout.partition(":")[2]) if not calib else None
    if known is not None:
        calib = dict(zip(("focal_px", "baseline_mm", "doffs_px"), known))
    given = {"focal_px": focal_px, "baseline_mm": baseline_mm, "doffs_px": doffs_px}
    calib.update({k: v for k, v in given.items() if v is not None})
    missing = [k for k in given if k not in calib]
    if missing:
        raise InputError("folder", f"no calibration for {', '.join(missing)}: {folder / 'calib.txt'} is missing "
                                   "and the values were not given")
    focal_px = check_positive("focal_px", calib["focal_px"])
    baseline_mm = check_positive("baseline_mm", calib["baseline_mm"])
    doffs_px = calib["doffs_px"]
    if isinstance(doffs_px, bool) or not isinstance(doffs_px, (int, float, np.floating, np.integer)) \
            or not math.isfinite(doffs_px):
        raise InputError("doffs_px", f"expected a finite number, got {doffs_px!r}")

    left = _read_rgb(left_file)
    right = _read_rgb(right_file)
    if not disp_file.is_file():
        raise InputError("folder", f"{disp_file.name} is missing ({disp_file})")
    if disp_file.suffix == ".npz":
        disp = _read_disparity(disp_file)
    elif disp_file.suffix == ".pfm":
        disp = _read_pfm(disp_file)
    else:
        disp = _read_png_disparity(disp_file, disparity_scale)
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
    K = calib.get("K")
    if K is None:
        K = np.array([[focal_px, 0.0, (w - 1) / 2.0], [0.0, focal_px, (h - 1) / 2.0], [0.0, 0.0, 1.0]])
    else:
        K = np.asarray(K, dtype=np.float64).copy()
        K[0, 0] = K[1, 1] = focal_px  # a given focal length overrides cam0's
    return StereoPair(left, right, disparity, depth.astype(np.float32), K, baseline_mm / 1000.0,
                      float(doffs_px))
