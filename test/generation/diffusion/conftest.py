"""Fixtures of the diffusion tests (issue 13): one torch thread, the release-parity inputs."""

from __future__ import annotations

import pytest
import torch
from ws_tiny import parity_inputs  # the test directory is on sys.path (test dirs are not packages)


@pytest.fixture(autouse=True)
def _one_thread():
    # With the other engineers' processes on 2 cores, the default thread count makes tiny loops ~100x slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def parity():
    return parity_inputs()


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory):
    """A tiny random release (memory-dmd + camera variants) in the released layout, written once per session."""
    from worldstereo_ros.generation.diffusion.tiny import write_tiny_release

    return write_tiny_release(tmp_path_factory.mktemp("ws_release"), ("memory-dmd", "camera"), nframe=5)


@pytest.fixture()
def peer():
    """The imagination-node tests' spun peer node (DDS tests only: rclpy is imported when a test asks for it)."""
    pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
    from test_imagination_node import Peer  # lazy: only the DDS tests need rclpy

    p = Peer()
    yield p
    p.close()
