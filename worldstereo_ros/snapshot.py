"""The input of an imagination run: one RGB-D frame (or an equirectangular panorama) with its pose.

Depth is float32 metres, 0 = unknown (NaN, inf and negative values are mapped to 0 here, once).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from worldstereo_ros.errors import InputError


@dataclass(frozen=True)
class Snapshot:
    """One camera snapshot.

    Attributes:
        rgb: (H, W, 3) float32 in [0, 1].
        depth: (H, W) float32 metres along the optical axis (pinhole) or along the ray
            (equirectangular); 0 = unknown.
        K: (3, 3) float64 pinhole intrinsics, or None for an equirectangular panorama.
        T_world_cam: (4, 4) float64 pose of the optical frame in the world (fixed) frame.
        stamp_ns: capture time in nanoseconds (0 when unknown).
        frame_id: the camera's optical frame name (for ROS).
        depth_is_metric: False when depth is only known up to scale (e.g. monocular estimates).
    """

    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray | None
    T_world_cam: np.ndarray = field(default_factory=lambda: np.eye(4))
    stamp_ns: int = 0
    frame_id: str = "camera_optical_frame"
    depth_is_metric: bool = True

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def is_panorama(self) -> bool:
        return self.K is None

    @classmethod
    def create(
        cls,
        rgb: np.ndarray,
        depth: np.ndarray,
        K: np.ndarray | None,
        T_world_cam: np.ndarray | None = None,
        **kwargs,
    ) -> "Snapshot":
        """Validate and normalise inputs: uint8 or float rgb, depth with NaN/inf/negative → 0.

        Raises:
            InputError: naming the field (``rgb``, ``depth``, ``K``, ``T_world_cam``) and the problem.
        """
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 2 or rgb.shape[1] < 2:
            raise InputError("rgb", f"expected shape (H, W, 3) with H, W >= 2, got {rgb.shape}")
        if rgb.dtype == np.uint8:
            rgb = rgb.astype(np.float32) / 255.0
        elif np.issubdtype(rgb.dtype, np.floating):
            rgb = rgb.astype(np.float32)
            if not np.isfinite(rgb).all() or rgb.min() < 0.0 or rgb.max() > 1.0:
                raise InputError("rgb", "float images must be finite and within [0, 1]")
        else:
            raise InputError("rgb", f"expected uint8 or float dtype, got {rgb.dtype}")
        depth = np.asarray(depth)
        if depth.shape != rgb.shape[:2]:
            raise InputError("depth", f"expected shape {rgb.shape[:2]} to match rgb, got {depth.shape}")
        if not np.issubdtype(depth.dtype, np.floating):
            raise InputError("depth", f"expected float metres, got dtype {depth.dtype} (convert mm at the boundary)")
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
        if not (depth > 0).any():
            raise InputError("depth", "no valid depth (every pixel is 0, NaN, inf or negative)")
        if K is not None:
            K = np.asarray(K, dtype=np.float64)
            if K.shape != (3, 3) or not np.isfinite(K).all():
                raise InputError("K", f"expected a finite (3, 3) matrix, got shape {K.shape}")
            if K[0, 0] <= 0 or K[1, 1] <= 0:
                raise InputError("K", f"focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
        elif rgb.shape[1] != 2 * rgb.shape[0]:
            raise InputError("rgb", f"a panorama (K=None) must be equirectangular, width = 2 x height, "
                                    f"got {rgb.shape[:2]}")
        T = np.eye(4) if T_world_cam is None else np.asarray(T_world_cam, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise InputError("T_world_cam", f"expected a finite (4, 4) matrix, got shape {T.shape}")
        R = T[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
            raise InputError("T_world_cam", "rotation part is not a proper rotation matrix")
        return cls(rgb=rgb, depth=depth, K=K, T_world_cam=T, **kwargs)
