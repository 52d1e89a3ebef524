"""`worldstereo-ros replay` (issue 15): --ros-args reach the node, and --help lists the node's parameters."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from worldstereo_ros.cli import main as cli_main
from worldstereo_ros.ros.parameters import REPLAY_NODE_PARAMS


def test_replay_help_lists_the_node_parameters(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["replay", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for spec in REPLAY_NODE_PARAMS:
        assert f"  {spec.name} ({spec.type_name}, default {spec.default!r})" in out, spec.name
    assert "--ros-args -p NAME:=VALUE" in out


def test_replay_passes_ros_args_to_the_node(tmp_path):
    # the README's `worldstereo-ros replay --ros-args -p folder:=PATH` failed with "unrecognized arguments";
    # a missing folder now reaches the node, which refuses it in one line with exit code 2
    pytest.importorskip("rclpy", reason="rclpy not installed")
    missing = tmp_path / "missing"
    out = subprocess.run([sys.executable, "-m", "worldstereo_ros.cli", "replay", "--ros-args", "-p",
                          f"folder:={missing}", "-p", f"allowed_roots:=['{tmp_path}']", "-p", "rate_hz:=5.0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "unrecognized arguments" not in out.stderr
    assert out.stderr.strip().splitlines() == [f"replay_node: path: {missing} is not a folder"]


def test_the_node_declares_exactly_the_table(tmp_path):
    rclpy = pytest.importorskip("rclpy", reason="rclpy not installed")
    from rclpy.parameter import Parameter

    from worldstereo_ros.datasets.rgbd_folder import write_rgbd_frame
    from worldstereo_ros.ros.replay_node import ReplayNode

    write_rgbd_frame(tmp_path, 0, np.zeros((4, 6, 3), np.uint8), np.ones((4, 6), np.float32), np.eye(4),
                     np.array([[5.0, 0, 2.5], [0, 5.0, 1.5], [0, 0, 1]]))
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = ReplayNode(context=context, parameter_overrides=[Parameter("folder", value=str(tmp_path)),
                                                                Parameter("allowed_roots", value=[str(tmp_path)])])
        declared = set(node._parameters) - {"use_sim_time", "start_type_description_service"}  # rclpy's own
        assert declared == {spec.name for spec in REPLAY_NODE_PARAMS}
        assert node.frames == [0] and node.rate_hz == 10.0
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
