"""Shared test fixtures: the real-data folder and DDS isolation for multi-process ROS tests."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from worldstereo_ros.datasets.shared_data import shared_data_dir

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
