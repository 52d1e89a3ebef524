"""A tiny RGB-D sequence on disk (7-Scenes layout) for the replay and launch tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worldstereo_ros.datasets.rgbd_folder import write_rgbd_frame


def write_tiny_sequence(folder: Path, K: np.ndarray, frames: int, seed: int) -> None:
    """``frames`` frames of 16 x 12 random colours at 1.5 m depth, the camera 0.1 m further along x each frame."""
    rng = np.random.default_rng(seed)
    for k in range(frames):
        T = np.eye(4)
        T[0, 3] = 0.1 * k
        write_rgbd_frame(folder, k, rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
                         np.full((12, 16), 1.5, np.float32), T, K)
