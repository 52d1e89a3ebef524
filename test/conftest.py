"""Shared test fixtures: the real-data folder and DDS isolation for multi-process ROS tests."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from worldstereo_ros.datasets.shared_data import shared_data_dir

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[1]

# Each test session gets its own DDS domain so concurrent runs on one machine never see each
# other's topics; subprocesses inherit it. Traffic stays on loopback.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(scope="session")
def redkitchen_dir() -> Path:
    """7-Scenes redkitchen folder; skips the test when it is absent."""
    path = shared_data_dir() / "7scenes-redkitchen"
    if not (path / "frame-000000.depth.png").is_file():
        pytest.skip(f"real data not found at {path} (set WORLDSTEREO_DATA to the shared data folder)")
    return path


def _corner_room_points(spacing: float = 0.01) -> torch.Tensor:
    """Three walls of a 1 m corner and a 0.3 m box on the floor (z up), world metres."""
    import torch  # here: every test session loads this conftest, most of them without needing torch

    a = torch.arange(0.0, 1.0, spacing)
    u, v = torch.meshgrid(a, a, indexing="ij")
    u, v = u.reshape(-1), v.reshape(-1)
    zero = torch.zeros_like(u)
    parts = [torch.stack([u, v, zero], 1), torch.stack([u, zero, v], 1), torch.stack([zero, u, v], 1)]
    b = torch.arange(0.0, 0.3, spacing)
    bu, bv = torch.meshgrid(b, b, indexing="ij")
    bu, bv = bu.reshape(-1), bv.reshape(-1)
    for face in (torch.stack([bu + 0.5, bv + 0.5, torch.full_like(bu, 0.3)], 1),
                 torch.stack([torch.full_like(bu, 0.5), bu + 0.5, bv], 1),
                 torch.stack([bu + 0.5, torch.full_like(bu, 0.5), bv], 1)):
        parts.append(face)
    return torch.cat(parts) + 0.003  # off the voxel borders


@pytest.fixture(scope="session")
def corner_room_points():
    """``spacing (m) -> (N, 3) float32`` world points of a corner room (see ``_corner_room_points``), shared
    by the cache tests of memory/ and io/."""
    return _corner_room_points
