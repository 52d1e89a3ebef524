"""The launch-file runner for installs without the launch package: parsing, and a real start through the CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from worldstereo_ros.errors import ConfigError
from worldstereo_ros.ros.launch_subset import find_launch_file, load_launch_file

REPO = Path(__file__).resolve().parents[2]


def test_imagination_launch_file_resolves_arguments_and_remaps():
    launch_file = find_launch_file("imagination.launch.py")
    [node] = load_launch_file(launch_file, {"image": "/cam/color"})
    assert node.name == "imagination_node" and node.module == "worldstereo_ros.ros.imagination_node"
    assert ("image", "/cam/color") in node.remappings and ("depth", "/camera/depth") in node.remappings
    # the config beside the launch file: the repository's, or the installed share's when the ament index
    # (AMENT_PREFIX_PATH, as scripts/test.sh sets it) finds the package, which is the same file
    [config] = node.parameters
    assert config == str(launch_file.parent.parent / "config" / "worldstereo.yaml")
    assert Path(config).samefile(REPO / "config" / "worldstereo.yaml")
    cmd = node.command()
    assert cmd[1:3] == ["-m", "worldstereo_ros.ros.imagination_node"]
    assert cmd[cmd.index("--params-file") + 1].endswith("config/worldstereo.yaml")
    assert "image:=/cam/color" in cmd


def test_replay_launch_file_parameters_become_typed_overrides():
    [node] = load_launch_file(find_launch_file("replay.launch.py"), {"folder": "/data/x", "rate_hz": "5.0"})
    cmd = node.command()
    assert 'folder:="/data/x"' in cmd and "rate_hz:=5.0" in cmd and "loop:=false" in cmd


def test_argument_errors_name_the_argument(tmp_path):
    with pytest.raises(ConfigError, match="folder"):
        load_launch_file(find_launch_file("replay.launch.py"), {})
    with pytest.raises(ConfigError, match="nonsense"):
        load_launch_file(find_launch_file("replay.launch.py"), {"folder": "x", "nonsense": "1"})
    with pytest.raises(ConfigError, match="launch_file"):
        find_launch_file("no_such.launch.py")
    bad = tmp_path / "bad.launch.py"
    bad.write_text("from launch import LaunchDescription\nfrom launch_ros.actions import Node\n"
                   "def generate_launch_description():\n"
                   "    return LaunchDescription([Node(package='worldstereo_ros', executable='no_such_node')])\n")
    with pytest.raises(ConfigError, match="no_such_node"):
        load_launch_file(bad, {})


def test_cli_launch_starts_the_node_on_the_ros_graph():
    rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
    proc = subprocess.Popen([sys.executable, "-m", "worldstereo_ros.cli", "launch", "imagination.launch.py",
                             "image:=/test_cam/image"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    rclpy.init()
    node = rclpy.create_node("launch_test_probe")
    try:
        deadline = time.monotonic() + 120  # under load the node's start (torch import, warm-up) takes long
        found_node = found_topics = False
        while time.monotonic() < deadline and not (found_node and found_topics):
            rclpy.spin_once(node, timeout_sec=0.1)
            found_node = ("imagination_node", "/") in node.get_node_names_and_namespaces()
            topics = dict(node.get_topic_names_and_types())
            found_topics = {"/test_cam/image", "/global_cache", "/imagined/views"} <= set(topics)
        assert found_node, "imagination_node not on the graph within 120 s"
        assert found_topics, ("imagination_node's topics not on the graph within 120 s: "
                              f"{sorted(dict(node.get_topic_names_and_types()))}")
        assert topics["/global_cache"] == ["sensor_msgs/msg/PointCloud2"]
        # On the graph is not yet logging: under load the node's first log line comes after its topics, and a
        # SIGINT before it would leave nothing to relay (wait on the output, not on a fixed sleep).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("[imagination_node]" in line for line in list(lines)):
            time.sleep(0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode == 0, out[-3000:]
    assert "[imagination_node]" in out and "Traceback" not in out, out[-3000:]
