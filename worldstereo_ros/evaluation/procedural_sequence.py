"""An RGB-D sequence of the procedural room with exact depth, poses and colour: the truth is a render.

The camera walks a smooth path through the room (1.2 m sideways and back a little, its gaze sweeping over
the table and the doorway), so frames 5-60 apart see the furniture from clearly different sides. It reads
like :class:`~worldstereo_ros.datasets.rgbd_folder.RgbdFolder` (``indices``, ``read(i)``), and :meth:`truth` renders
any other pose, which is what the benchmark scores imagined views against.

World frame z up, metres; cameras OpenCV optical axes; ``rgb`` uint8 like the real readers.
"""

from __future__ import annotations

import math

import numpy as np

from worldstereo_ros.datasets.procedural_scene import build_scene, default_camera, look_at
from worldstereo_ros.datasets.rgbd_folder import RgbdFrame
from worldstereo_ros.errors import InputError


class ProceduralSequence:
    """``frames`` views of the procedural room along a fixed path (module doc), rendered on demand.

    Args:
        frames: number of frames (>= 2). width, height: image size, pixels.
        seed, spacing_m: of :func:`~worldstereo_ros.datasets.procedural_scene.build_scene`.
    """

    def __init__(self, frames: int = 90, width: int = 320, height: int = 240, seed: int = 0,
                 spacing_m: float = 0.01) -> None:
        if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 2:
            raise InputError("frames", f"expected an int >= 2, got {frames!r}")
        self.scene = build_scene(seed, spacing_m)
        self.K, T0 = default_camera(width, height)
        self.width, self.height = int(width), int(height)
        self.indices = list(range(int(frames)))
        eye0 = T0[:3, 3]
        self._poses = []
        for k in self.indices:
            a = k / max(1, frames - 1)
            # sideways 1.2 m (world y), a gentle forward-back bob, and a gaze that sweeps across the room
            eye = eye0 + np.array([0.35 * math.sin(math.pi * a), 1.2 * a - 0.2, 0.1 * math.sin(2 * math.pi * a)])
            target = np.array([3.6, 0.2 + 0.8 * math.sin(2 * math.pi * a), 0.75])
            self._poses.append(look_at(eye, target))

    def __len__(self) -> int:
        return len(self.indices)

    def pose(self, index: int) -> np.ndarray:
        """(4, 4) float64 T_world_cam of frame ``index``."""
        if index not in self.indices:
            raise InputError("index", f"frame {index} not in the procedural sequence (0..{len(self) - 1})")
        return self._poses[index].copy()

    def truth(self, K: np.ndarray, T_world_cam: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """The true view at any pose: rgb (H, W, 3) float32 in [0, 1], depth (H, W) float32 metres."""
        return self.scene.render(K, T_world_cam, width, height)

    def read(self, index: int) -> RgbdFrame:
        """Frame ``index`` as the real readers give it (rgb uint8, depth float32 m, poses float64)."""
        T = self.pose(index)
        rgb, depth = self.truth(self.K, T, self.width, self.height)
        return RgbdFrame(index, (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), depth, T, self.K.copy())
