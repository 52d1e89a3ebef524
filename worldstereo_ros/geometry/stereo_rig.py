"""A rectified stereo rig made from one pinhole camera: the left camera is the real one, the right camera
sits ``baseline_m`` along the left camera's +x axis with the same orientation and focal lengths.

Conventions (OpenCV optical axes, x right, y down, z forward, as the ROS ``*_optical_frame``):

* ``T_left_right`` maps points from the right camera's frame to the left camera's frame: a pure
  translation ``[+B, 0, 0]``.
* Disparity ``d = x_left - x_right`` in pixels; a left pixel ``(x, y)`` at depth ``Z`` metres is seen at
  ``(x - d, y)`` in the right image with ``d = fx * B / Z - doffs`` and ``doffs = cx_right - cx_left``
  (the Middlebury convention; 0 for a synthetic rig, where both cameras share the principal point).
* ROS projection matrices (sensor_msgs/CameraInfo ``P``, 3x4 row-major): ``P_left = [K | 0]``,
  ``P_right = [K_right | (Tx, 0, 0)]`` with ``Tx = -fx * B`` (metres times pixels), which is what
  stereo_image_proc reads the baseline from (``B = -Tx / fx``).

Stereo deviation strength (SpatialDreamer's ``s``, the discrepancy between the two views): here the
*disparity range* of the scene as a fraction of the image width, ``s = (d_near - d_far) / W`` with
``d_near, d_far`` the disparities of the scene's near and far depth percentiles. Fixing ``s`` instead of
the baseline gives near and far scenes a comparable 3D effect: :func:`baseline_for_strength` solves
``B = s * W / (fx * (1 / z_near - 1 / z_far))``. For a scene without depth range (a wall) the far term
is dropped (``z_far -> inf``), which bounds the disparity of the nearest point instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from worldstereo_ros.errors import InputError

#: Depth percentiles that stand for "near" and "far" in :func:`baseline_for_strength` (robust to outliers).
NEAR_PERCENTILE = 5.0
FAR_PERCENTILE = 95.0


def _finite_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise InputError(name, f"expected a finite number > 0, got {value!r}")
    return float(value)


def _check_K(K) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise InputError("K", f"expected shape (3, 3), got {K.shape}")
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError("K", f"expected finite entries and fx, fy > 0, got {K.tolist()}")
    if abs(K[0, 1]) > 1e-9 or abs(K[1, 0]) > 1e-9 or np.abs(K[2] - [0.0, 0.0, 1.0]).max() > 1e-9:
        raise InputError("K", f"expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")
    return K


@dataclass(frozen=True)
class StereoRig:
    """A rectified pair: the left camera ``K`` and a right camera ``baseline_m`` to its right.

    Attributes:
        K: (3, 3) float64 intrinsics of the left camera, pixels.
        baseline_m: distance between the optical centres, metres (> 0).
        doffs_px: ``cx_right - cx_left``, pixels (0 for a synthetic rig; Middlebury pairs ship one).
    """

    K: np.ndarray
    baseline_m: float
    doffs_px: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "K", _check_K(self.K))
        object.__setattr__(self, "baseline_m", _finite_positive("baseline_m", self.baseline_m))
        if isinstance(self.doffs_px, bool) or not isinstance(self.doffs_px, (int, float, np.integer, np.floating)) \
                or not math.isfinite(self.doffs_px):
            raise InputError("doffs_px", f"expected a finite number, got {self.doffs_px!r}")
        object.__setattr__(self, "doffs_px", float(self.doffs_px))

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def T_left_right(self) -> np.ndarray:
        """(4, 4) float64: maps right-camera points to the left camera's frame (translation ``[B, 0, 0]``)."""
        T = np.eye(4)
        T[0, 3] = self.baseline_m
        return T

    @property
    def K_right(self) -> np.ndarray:
        """(3, 3) float64 intrinsics of the right camera: ``K`` with ``cx + doffs``."""
        K = self.K.copy()
        K[0, 2] += self.doffs_px
        return K

    @property
    def P_left(self) -> np.ndarray:
        """(3, 4) float64 ROS projection of the left camera, ``[K | 0]``."""
        return np.hstack([self.K, np.zeros((3, 1))])

    @property
    def P_right(self) -> np.ndarray:
        """(3, 4) float64 ROS projection of the right camera, ``[K_right | (Tx, 0, 0)]``, ``Tx = -fx * B``."""
        P = np.hstack([self.K_right, np.zeros((3, 1))])
        P[0, 3] = -self.fx * self.baseline_m
        return P

    def disparity_from_depth(self, depth_m: np.ndarray) -> np.ndarray:
        """(H, W) float32 disparity in pixels (``x_left - x_right``) of a left depth map.

        Args:
            depth_m: (H, W) depth along the left optical axis, metres; 0 or NaN = unknown.
        Returns:
            (H, W) float32; NaN where the depth is unknown.
        """
        depth = np.asarray(depth_m, dtype=np.float32)
        if depth.ndim != 2:
            raise InputError("depth_m", f"expected shape (H, W), got {depth.shape}")
        with np.errstate(divide="ignore", invalid="ignore"):
            disp = np.float32(self.fx * self.baseline_m) / depth - np.float32(self.doffs_px)
        return np.where(np.isfinite(depth) & (depth > 0), disp, np.float32(np.nan)).astype(np.float32)

    def depth_from_disparity(self, disparity_px: np.ndarray) -> np.ndarray:
        """(H, W) float32 depth in metres of a left disparity map; 0 where ``d + doffs <= 0`` or NaN."""
        disp = np.asarray(disparity_px, dtype=np.float64)
        shifted = disp + self.doffs_px
        ok = np.isfinite(shifted) & (shifted > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = np.where(ok, self.fx * self.baseline_m / shifted, 0.0)
        return depth.astype(np.float32)


def scene_depth_range(depth_m: np.ndarray) -> tuple[float, float]:
    """(z_near, z_far) in metres: the :data:`NEAR_PERCENTILE` / :data:`FAR_PERCENTILE` of the valid depths.

    Raises:
        InputError: no valid (finite, > 0) depth.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    valid = depth[np.isfinite(depth) & (depth > 0)]
    if valid.size == 0:
        raise InputError("depth_m", "has no valid (finite, > 0) depth to measure the scene's range from")
    near, far = np.percentile(valid, [NEAR_PERCENTILE, FAR_PERCENTILE])
    return float(near), float(far)


def baseline_for_strength(strength: float, depth_m: np.ndarray, fx: float, width: int) -> float:
    """The baseline in metres that gives a scene the stereo deviation strength ``strength`` (module doc).

    Args:
        strength: target disparity range as a fraction of the image width, in (0, 1) (0.03 is a
            comfortable 3D effect on a screen).
        depth_m: (H, W) left depth, metres, 0 or NaN = unknown.
        fx: focal length, pixels. width: image width, pixels.
    Returns:
        B in metres with ``fx * B * (1/z_near - 1/z_far) = strength * width``; when ``z_far - z_near`` is
        below 1 % of ``z_near`` the far term is dropped (``fx * B / z_near = strength * width``).
    """
    strength = _finite_positive("strength", strength)
    if strength >= 1.0:
        raise InputError("strength", f"expected a fraction of the image width in (0, 1), got {strength}")
    fx = _finite_positive("fx", fx)
    width = int(_finite_positive("width", width))
    z_near, z_far = scene_depth_range(depth_m)
    inv_range = 1.0 / z_near - 1.0 / z_far
    if z_far - z_near < 0.01 * z_near:
        inv_range = 1.0 / z_near
    return strength * width / (fx * inv_range)


def deviation_strength(disparity_px: np.ndarray, width: int) -> float:
    """The measured deviation strength of a disparity map: (near - far percentile disparity) / width.

    ``near`` / ``far`` use the same percentiles as :func:`scene_depth_range` (on disparity, the high one
    is near). NaN entries are ignored; raises InputError when none is finite.
    """
    disp = np.asarray(disparity_px, dtype=np.float32)
    valid = disp[np.isfinite(disp)]
    if valid.size == 0:
        raise InputError("disparity_px", "has no finite disparity")
    lo, hi = np.percentile(valid, [NEAR_PERCENTILE, FAR_PERCENTILE])
    return float(hi - lo) / float(width)
