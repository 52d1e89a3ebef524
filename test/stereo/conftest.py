"""Fixtures of the stereo tests: the real Middlebury pair (skips when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def middlebury_dir() -> Path:
    """The Middlebury Motorcycle folder under $WORLDSTEREO_DATA, else ``<repo>/../shared/data``."""
    path = Path(os.environ.get("WORLDSTEREO_DATA", REPO.parent / "shared" / "data")).resolve() / "middlebury-motorcycle"
    if not (path / "motorcycle_left.png").is_file():
        pytest.skip(f"Middlebury data not found at {path} (set WORLDSTEREO_DATA to the shared data folder)")
    return path
