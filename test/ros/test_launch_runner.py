"""More of the launch-file runner (``worldstereo_ros.ros.launch_subset``): a launch file exercising the whole
supported subset, child failure, and replay.launch.py run end to end on a synthetic folder."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_rgbd import write_tiny_sequence

from worldstereo_ros.errors import ConfigError
from worldstereo_ros.ros.launch_subset import NodeSpec, find_launch_file, load_launch_file, run_nodes

SUBSET_LAUNCH = '''
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("ns", default_value="/robot1"),
        DeclareLaunchArgument("rate", default_value="2.5"),
        DeclareLaunchArgument("mode", default_value="fast", choices=["fast", "slow"]),
        DeclareLaunchArgument("cam", description="camera prefix"),
        Node(package="worldstereo_ros", executable="replay_node", name="player",
             namespace=LaunchConfiguration("ns"),
             parameters=["/cfg/a.yaml", {"rate_hz": LaunchConfiguration("rate"), "label": "it's \\"quoted\\"",
                                         "frames": "[1, 2]", "loop": True, "mode": LaunchConfiguration("mode"),
                                         "topic": [LaunchConfiguration("cam"), "/image"]}],
             remappings=[("image", [LaunchConfiguration("cam"), "/color"]), ("depth", "/d")],
             arguments=["--verbose"], output="screen"),
    ])
'''


@pytest.fixture()
def subset_file(tmp_path) -> Path:
    path = tmp_path / "subset.launch.py"
    path.write_text(SUBSET_LAUNCH)
    return path


def _after(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, c in enumerate(cmd[:-1]) if c == flag]


def test_every_supported_feature_reaches_the_command_line(subset_file):
    [node] = load_launch_file(subset_file, {"cam": "/front", "mode": "slow"})
    assert isinstance(node, NodeSpec)
    cmd = node.command()
    assert cmd[:3] == [sys.executable, "-m", "worldstereo_ros.ros.replay_node"]
    assert cmd.index("--verbose") < cmd.index("--ros-args")  # node arguments precede --ros-args
    assert _after(cmd, "-r") == ["__node:=player", "__ns:=/robot1", "image:=/front/color", "depth:=/d"]
    assert _after(cmd, "--params-file") == ["/cfg/a.yaml"]
    params = dict(p.split(":=", 1) for p in _after(cmd, "-p"))
    assert params["rate_hz"] == "2.5"  # substituted text typed as YAML, like launch_ros: a double
    assert params["mode"] == '"slow"' and params["topic"] == '"/front/image"'  # strings stay strings
    assert params["frames"] == '"[1, 2]"' and params["loop"] == "true"  # a literal str is not YAML-typed
    import yaml

    assert yaml.safe_load(params["label"]) == 'it\'s "quoted"'


def test_rcl_reads_the_parameters_back_with_their_types(subset_file):
    rclpy = pytest.importorskip("rclpy")
    [node] = load_launch_file(subset_file, {"cam": "/front"})
    cmd = node.command()
    ros_args = cmd[cmd.index("--ros-args"):]
    i = ros_args.index("--params-file")  # /cfg/a.yaml does not exist
    del ros_args[i:i + 2]
    context = rclpy.Context()
    rclpy.init(args=ros_args, context=context)
    try:
        probe = rclpy.create_node("probe", context=context, automatically_declare_parameters_from_overrides=True)
        values = {name: probe.get_parameter(name).value for name in ("rate_hz", "label", "frames", "loop", "topic")}
        probe.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    assert values == {"rate_hz": 2.5, "label": 'it\'s "quoted"', "frames": "[1, 2]", "loop": True,
                      "topic": "/front/image"}


def _one_node(tmp_path, node_kwargs: str):
    path = tmp_path / "one.launch.py"
    path.write_text("from launch import LaunchDescription\nfrom launch_ros.actions import Node\n"
                    "def generate_launch_description():\n"
                    f"    return LaunchDescription([Node(package='worldstereo_ros', executable='replay_node', "
                    f"{node_kwargs})])\n")
    [node] = load_launch_file(path, {})
    return node.command()


def test_relative_namespace_is_made_absolute(tmp_path):
    assert "__ns:=/robot1" in _one_node(tmp_path, "namespace='robot1'")


def test_array_parameter_stays_an_array(tmp_path):
    cmd = _one_node(tmp_path, "parameters=[{'base_to_camera': [1.5, 2]}]")
    assert "base_to_camera:=[1.5, 2]" in cmd


def test_substituted_null_and_date_values_stay_text(tmp_path):
    path = tmp_path / "odd.launch.py"
    path.write_text("from launch import LaunchDescription\nfrom launch.actions import DeclareLaunchArgument\n"
                    "from launch.substitutions import LaunchConfiguration\nfrom launch_ros.actions import Node\n"
                    "def generate_launch_description():\n"
                    "    return LaunchDescription([DeclareLaunchArgument('a', default_value='2026-11-30'),\n"
                    "        DeclareLaunchArgument('b', default_value='~'),\n"
                    "        Node(package='worldstereo_ros', executable='replay_node',\n"
                    "             parameters=[{'day': LaunchConfiguration('a'), 'none': LaunchConfiguration('b')}])])\n")  # noqa: E501 (the launch file text as written)
    [node] = load_launch_file(path, {})
    params = dict(p.split(":=", 1) for p in _after(node.command(), "-p"))
    assert params == {"day": '"2026-11-30"', "none": '"~"'}


def test_argument_errors(subset_file):
    with pytest.raises(ConfigError, match="cam"):  # required, no default
        load_launch_file(subset_file, {})
    with pytest.raises(ConfigError, match=r"typo.*declared: ns, rate, mode, cam"):
        load_launch_file(subset_file, {"cam": "/c", "typo": "1"})
    with pytest.raises(ConfigError, match="fast, slow"):
        load_launch_file(subset_file, {"cam": "/c", "mode": "medium"})


def test_stand_ins_do_not_leak_into_sys_modules(subset_file):
    before = {name: sys.modules.get(name) for name in ("launch", "launch.actions", "launch_ros", "launch_ros.actions")}
    load_launch_file(subset_file, {"cam": "/c"})
    assert {name: sys.modules.get(name) for name in before} == before


def test_a_failing_node_stops_the_run_with_its_exit_code(tmp_path, capsys):
    pytest.importorskip("rclpy")
    [bad] = load_launch_file(find_launch_file("replay.launch.py"), {"folder": str(tmp_path / "missing")})
    sleeper = NodeSpec(name="sleeper", module="this_module_is_replaced")
    sleeper.command = lambda: [sys.executable, "-c", "import time; time.sleep(30)"]
    t0 = time.monotonic()
    assert run_nodes([bad, sleeper]) == 2  # replay_node refuses a missing folder with exit code 2
    assert time.monotonic() - t0 < 15, "the other node was not stopped"
    assert "[replay_node]" in capsys.readouterr().out


def test_replay_launch_file_runs_on_the_ros_graph(tmp_path):
    rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo

    K = np.array([[17.0, 0.0, 7.5], [0.0, 19.0, 5.5], [0.0, 0.0, 1.0]])  # recognisable: this run's node
    write_tiny_sequence(tmp_path / "seq", K, frames=3, seed=3)
    proc = subprocess.Popen([sys.executable, "-m", "worldstereo_ros.ros.launch_subset", "replay.launch.py",
                             f"folder:={tmp_path / 'seq'}", f"allowed_roots:=['{tmp_path}']", "rate_hz:=20.0",
                             "loop:=true"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rclpy.init()
    node = rclpy.create_node("launch_runner_probe")
    infos = []
    node.create_subscription(CameraInfo, "/camera_info", infos.append, qos_profile_sensor_data)
    expected = {"/image": ["sensor_msgs/msg/Image"], "/depth": ["sensor_msgs/msg/Image"],
                "/camera_info": ["sensor_msgs/msg/CameraInfo"]}
    try:
        deadline = time.monotonic() + 90  # a loaded machine takes tens of seconds to start a node process
        found_node = found_topics = False
        while time.monotonic() < deadline and not (found_node and found_topics and infos) and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
            found_node = ("replay_node", "/") in node.get_node_names_and_namespaces()
            topics = dict(node.get_topic_names_and_types())
            found_topics = all(topics.get(t) == v for t, v in expected.items())
        assert found_node, f"replay_node not on the graph within 90 s: {node.get_node_names_and_namespaces()}"
        assert found_topics, f"replay_node's topics not all on the graph within 90 s: {topics}"
        assert infos, "no /camera_info from replay_node within 90 s"
        assert (infos[0].width, infos[0].height) == (16, 12)
        np.testing.assert_allclose(np.reshape(infos[0].k, (3, 3)), K)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert "[replay_node]" in out and "replaying 3 frames" in out and "Traceback" not in out, out[-3000:]
