"""Camera models: pinhole (from K or field of view, with resize and crop) and equirectangular (360°).

Pixel convention: pixel ``(u, v)`` has its centre at integer coordinates and covers
``[u - 0.5, u + 0.5] x [v - 0.5, v + 0.5]`` (OpenCV's convention), so resizing by ``s`` maps
``c -> (c + 0.5) * s - 0.5``. Camera axes are OpenCV's (x right, y down, z forward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from worldstereo_ros.errors import InputError


@dataclass(frozen=True)
class PinholeCamera:
    """A pinhole camera without distortion.

    Attributes:
        fx, fy: focal lengths in pixels. cx, cy: principal point in pixels.
        width, height: image size in pixels.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise InputError(name, f"must be finite, got {value}")
        if self.fx <= 0 or self.fy <= 0:
            raise InputError("fx" if self.fx <= 0 else "fy", f"focal length must be > 0, got {self.fx}, {self.fy}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise InputError(name, f"must be a positive integer, got {value}")

    @classmethod
    def from_K(cls, K, width: int, height: int) -> "PinholeCamera":
        """From a (3, 3) intrinsic matrix (array or tensor) and the image size."""
        K = np.asarray(K.detach().cpu() if isinstance(K, torch.Tensor) else K, dtype=np.float64)
        if K.shape != (3, 3):
            raise InputError("K", f"expected shape (3, 3), got {K.shape}")
        if not np.isfinite(K).all():
            raise InputError("K", "has NaN or infinite entries")
        if abs(K[0, 1]) > 1e-9 or np.abs(K[2] - [0, 0, 1]).max() > 1e-9 or abs(K[1, 0]) > 1e-9:
            raise InputError("K", f"expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height))

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float, vfov_deg: float | None = None) -> "PinholeCamera":
        """Centred camera with horizontal field of view ``hfov_deg`` (and ``vfov_deg``; default: square pixels)."""
        if not 0 < hfov_deg < 180:
            raise InputError("hfov_deg", f"must be in (0, 180), got {hfov_deg}")
        if vfov_deg is not None and not 0 < vfov_deg < 180:
            raise InputError("vfov_deg", f"must be in (0, 180), got {vfov_deg}")
        fx = width / 2 / math.tan(math.radians(hfov_deg) / 2)
        fy = fx if vfov_deg is None else height / 2 / math.tan(math.radians(vfov_deg) / 2)
        return cls(fx, fy, (width - 1) / 2, (height - 1) / 2, int(width), int(height))

    @property
    def K(self) -> torch.Tensor:
        """(3, 3) float64 intrinsic matrix."""
        return torch.tensor([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]],
                            dtype=torch.float64)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    def hfov_deg(self) -> float:
        """Horizontal field of view in degrees (of a centred principal point)."""
        return math.degrees(2 * math.atan(self.width / 2 / self.fx))

    def vfov_deg(self) -> float:
        """Vertical field of view in degrees (of a centred principal point)."""
        return math.degrees(2 * math.atan(self.height / 2 / self.fy))

    def resized(self, width: int, height: int) -> "PinholeCamera":
        """The same camera for the image resized to ``width`` x ``height`` (any aspect change is a stretch)."""
        if width < 1 or height < 1:
            raise InputError("width" if width < 1 else "height", f"must be >= 1, got {width}x{height}")
        sx, sy = width / self.width, height / self.height
        return PinholeCamera(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
                             int(width), int(height))

    def cropped(self, x0: int, y0: int, width: int, height: int) -> "PinholeCamera":
        """The camera of the crop whose top-left pixel is ``(x0, y0)`` of this image."""
        if x0 < 0 or y0 < 0 or x0 + width > self.width or y0 + height > self.height or width < 1 or height < 1:
            raise InputError("crop", f"({x0}, {y0}, {width}x{height}) is not inside the "
                                     f"{self.width}x{self.height} image")
        return PinholeCamera(self.fx, self.fy, self.cx - x0, self.cy - y0, int(width), int(height))


@dataclass(frozen=True)
class EquirectCamera:
    """An equirectangular (360° x 180°) camera of ``width`` x ``height`` pixels, ``width == 2 * height``.

    Longitude ``lon`` in [-pi, pi) turns about the camera's up axis (-y, OpenCV y points down) and is 0 along
    +z (forward), positive towards +x (right): ``u = (lon / (2 pi) + 0.5) * width - 0.5``. Latitude ``lat`` in
    [-pi/2, pi/2] is positive up: ``v = (0.5 - lat / pi) * height - 0.5``. The ray of (lon, lat) is
    ``(cos(lat) sin(lon), -sin(lat), cos(lat) cos(lon))``.
    """

    width: int
    height: int

    def __post_init__(self) -> None:
        if self.height < 1 or self.width != 2 * self.height:
            raise InputError("width", f"an equirectangular image must be 2:1, got {self.width}x{self.height}")

    def pixel_to_ray(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Unit ray directions (*, 3) in the camera frame for pixel coordinates ``u``, ``v`` (*)."""
        lon = ((u + 0.5) / self.width - 0.5) * (2 * math.pi)
        lat = (0.5 - (v + 0.5) / self.height) * math.pi
        return torch.stack([torch.cos(lat) * torch.sin(lon), -torch.sin(lat), torch.cos(lat) * torch.cos(lon)], -1)

    def ray_to_pixel(self, dirs: torch.Tensor) -> torch.Tensor:
        """Pixel coordinates (*, 2) (u, v) of camera-frame directions (*, 3) (need not be unit length)."""
        x, y, z = dirs.unbind(-1)
        lon = torch.atan2(x, z)
        lat = torch.atan2(-y, torch.sqrt(x * x + z * z))
        u = (lon / (2 * math.pi) + 0.5) * self.width - 0.5
        v = (0.5 - lat / math.pi) * self.height - 0.5
        return torch.stack([u, v], -1)

    def rays(self, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
        """(H, W, 3) unit ray of every pixel centre."""
        v, u = torch.meshgrid(torch.arange(self.height, dtype=dtype, device=device),
                              torch.arange(self.width, dtype=dtype, device=device), indexing="ij")
        return self.pixel_to_ray(u, v)
