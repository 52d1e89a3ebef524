"""sensor_msgs/CameraInfo <-> pinhole intrinsics."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sensor_msgs.msg import CameraInfo

from worldstereo_ros.errors import ConversionError


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics from a CameraInfo.

    Attributes:
        K: (3, 3) float64. width, height: pixels.
        distortion_model: as in the message ("" when none).
        D: (n,) float64 distortion coefficients.
    """

    K: np.ndarray
    width: int
    height: int
    distortion_model: str = ""
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def is_distorted(self) -> bool:
        """True when any distortion coefficient is non-zero: callers must undistort first."""
        return bool(np.any(self.D != 0))


def camera_info_to_intrinsics(msg: CameraInfo) -> Intrinsics:
    """Validate and convert; rejects zero size, non-finite K and non-positive focal lengths."""
    if msg.width <= 0 or msg.height <= 0:
        raise ConversionError("width" if msg.width <= 0 else "height",
                              f"image size must be positive, got {msg.width}x{msg.height}")
    K = np.asarray(msg.k, dtype=np.float64)
    if K.shape != (9,) or not np.isfinite(K).all():
        raise ConversionError("k", "expected 9 finite values")
    K = K.reshape(3, 3)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ConversionError("k", f"focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
    if not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
        raise ConversionError("k", f"not a pinhole matrix: last row {K[2].tolist()}, k[3]={K[1, 0]}")
    D = np.asarray(msg.d, dtype=np.float64)
    if not np.isfinite(D).all():
        raise ConversionError("d", "distortion coefficients must be finite")
    return Intrinsics(K=K, width=int(msg.width), height=int(msg.height),
                      distortion_model=str(msg.distortion_model), D=D)


def intrinsics_to_camera_info(K: np.ndarray, width: int, height: int, header=None) -> CameraInfo:
    """CameraInfo for an undistorted pinhole camera (plumb_bob, zero D, identity R, P = [K | 0])."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ConversionError("K", f"expected a finite (3, 3) matrix with positive focal lengths, got {K.tolist()}")
    if width <= 0 or height <= 0:
        raise ConversionError("width" if width <= 0 else "height", f"must be positive, got {width}x{height}")
    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = K.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg.p = P.reshape(-1).tolist()
    return msg
