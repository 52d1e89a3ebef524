"""The README's main command until the pipeline lands: replay_node in another process, received and
checked here over DDS (issue 2)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")

from worldstereo_ros.datasets.rgbd_folder import RgbdFolder  # noqa: E402
from worldstereo_ros.ros.smoke import run_smoke, synthetic_frame  # noqa: E402


def test_synthetic_depth_is_the_plane():
    _, depth, T = synthetic_frame(0)
    # centre pixel ray is the optical axis: the wall n.X = 2 with n ~ (0, -0.2, 1)/|.| gives z = 2 |n| / 1
    assert depth[119:121, 159:161].mean() == pytest.approx(2.0 * np.linalg.norm([0, -0.2, 1.0]), rel=2e-3)


def test_smoke_run_receives_every_topic(tmp_path, capsys):
    assert run_smoke(tmp_path, frames=3, timeout_s=30.0) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and (tmp_path / "received.png").is_file()
    folder = RgbdFolder(tmp_path / "sequence")
    assert len(folder) == 3 and folder.read(2).T_world_cam[0, 3] == pytest.approx(0.1)


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "worldstereo_ros.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "smoke" in out and "replay" in out


def test_replay_node_rejects_missing_folder():
    res = subprocess.run([sys.executable, "-m", "worldstereo_ros.ros.replay_node", "--ros-args", "-p",
                          "folder:=/nonexistent", "-p", "allowed_roots:=['/']"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and "path: /nonexistent is not a folder" in res.stderr
    # outside the default roots (the working directory, ~/.cache/worldstereo_ros) it is refused before any read
    res = subprocess.run([sys.executable, "-m", "worldstereo_ros.ros.replay_node", "--ros-args", "-p",
                          "folder:=/nonexistent"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "folder: '/nonexistent' resolves to" in res.stderr
