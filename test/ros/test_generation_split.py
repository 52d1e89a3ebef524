"""The generator on another process / host (issue 14 item 7): the imagination pipeline with render_fill in this
process and through generation_node in another process over real DDS gives the same views; cancel, timeout and
the server's errors reach the robot; and the same across two network namespaces joined by a veth pair."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
pytest.importorskip("worldstereo_ros.action", reason="interfaces not generated (run scripts/setup.sh)")

import torch  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import split_scenario  # noqa: E402
from node_processes import stop  # noqa: E402

from worldstereo_ros.errors import BackendError  # noqa: E402
from worldstereo_ros.generation.base import GenerationCancelled, create_backend  # noqa: E402
from worldstereo_ros.ros import remote_generator  # noqa: E402
from worldstereo_ros.ros.launch_subset import find_launch_file, load_launch_file  # noqa: E402
from worldstereo_ros.ros.remote_generator import RemoteGenerator, action_name, node_generator  # noqa: E402

torch.set_num_threads(1)
#: Data over UDP (loopback here), not Fast DDS's shared memory: what a second host would use.
UDP_ONLY = {"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4", "OMP_NUM_THREADS": "1"}


def server_command(namespace: str) -> list[str]:
    return [sys.executable, "-m", "worldstereo_ros.ros.generation_node", "--ros-args", "-r", f"__ns:={namespace}",
            "-p", "backend:=render_fill"]


@pytest.fixture(scope="module")
def server():
    """generation_node in its own process and a unique namespace (other tests' DDS traffic cannot answer)."""
    namespace = f"/split_{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(server_command(namespace), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **UDP_ONLY})
    yield namespace
    out = stop(proc)
    assert "Traceback" not in out, out


@pytest.fixture(scope="module")
def robot():
    """The robot's node, spun by a multi-threaded executor as imagination_node's is."""
    rclpy.init()
    node = rclpy.create_node("split_robot_test")
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()


def assert_same_views(local: split_scenario.Views, split: split_scenario.Views) -> None:
    for kind in ("streamed", "results"):
        for name in ("rgb", "depth", "imagined"):
            a, b = getattr(local, kind)[name], getattr(split, kind)[name]
            assert a.shape == b.shape and a.dtype == b.dtype, (kind, name, a.shape, b.shape)
            assert np.array_equal(a, b), f"{kind} {name}: max difference {np.abs(a.astype(float) - b).max()}"
    assert local.results["imagined"].any() and (~local.results["imagined"]).any()  # both kinds of pixel occur


def test_split_views_equal_the_single_process_views(server, robot):
    local = split_scenario.run(create_backend("render_fill"))
    split = split_scenario.run(RemoteGenerator(robot, server, timeout_s=60.0))
    assert len(split.streamed["rgb"]) == 2 * split_scenario.FRAMES  # every view streamed as it came
    assert_same_views(local, split)


def test_rgb8_split_equals_the_single_process_with_the_same_rounding(server, robot):
    local = split_scenario.run(split_scenario.QuantisedWire())
    split = split_scenario.run(RemoteGenerator(robot, server, timeout_s=60.0, rgb_encoding="rgb8"))
    assert_same_views(local, split)
    assert not np.array_equal(local.results["rgb"], split_scenario.run(create_backend("render_fill")).results["rgb"])


def test_cancel_stops_the_remote_goal_and_the_server_serves_the_next(server, robot):
    remote = RemoteGenerator(robot, server, timeout_s=60.0)
    seen = []
    remote.should_cancel = lambda: len(seen) >= 1
    with pytest.raises(GenerationCancelled):
        split_scenario.run_request(remote, on_frame=lambda *frame: seen.append(frame[0]))
    remote.should_cancel = None
    frames = split_scenario.run_request(remote)
    assert frames.rgb.shape[0] == split_scenario.FRAMES


def test_no_server_times_out_with_a_clear_error(robot):
    remote = RemoteGenerator(robot, f"/nobody_{uuid.uuid4().hex[:8]}", timeout_s=1.0)
    with pytest.raises(BackendError, match=r"no generation server answers on action '/nobody_\w+/generate' within "
                                           r"generation_timeout_s=1 s"):
        split_scenario.run_request(remote)


def test_the_servers_error_reaches_the_robot(server, robot, monkeypatch):
    real = remote_generator.request_to_goal

    def spoiled(*args, **kwargs):
        goal = real(*args, **kwargs)
        goal.cond_depth = list(goal.cond_depth)[:-1]  # the server refuses it, naming the field
        return goal

    monkeypatch.setattr(remote_generator, "request_to_goal", spoiled)
    with pytest.raises(BackendError, match=r"generation server failed on trajectory 'probe': bad request: "
                                           r"cond_depth: expected one image per pose"):
        split_scenario.run_request(RemoteGenerator(robot, server, timeout_s=60.0))


def test_the_generator_parameter_chooses_local_or_remote(robot):
    p = {"generator": "remote", "generation_namespace": "/gpu", "generation_timeout_s": 5.0, "backend": "render_fill",
         "generation_rgb_encoding": "rgb8"}
    remote = node_generator(robot, p)
    assert isinstance(remote, RemoteGenerator) and remote.action == "/gpu/generate" and remote.timeout_s == 5.0
    assert remote.rgb_encoding == "rgb8"
    remote.destroy()
    assert type(node_generator(robot, {**p, "generator": "local"})).__name__ == "RenderFillGenerator"
    assert action_name("") == "generate" and action_name("/") == "/generate" and action_name("gpu/") == "gpu/generate"
    with pytest.raises(ValueError, match="generation_namespace"):
        action_name("/bad name")


# ------------------------------------------------------------------ two hosts: network namespaces + veth
def _netns_problem() -> str | None:
    """Why two network namespaces cannot be made here, or None."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = f"wsr{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"'ip netns add' refused (needs root / CAP_SYS_ADMIN + CAP_NET_ADMIN): {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@pytest.fixture
def two_hosts():
    """Namespaces gpu and robot, joined by a veth pair 10.77.0.1 <-> 10.77.0.2 with a multicast route (DDS
    discovery); yields their names and removes them afterwards."""
    problem = _netns_problem()
    if problem:
        pytest.skip(problem)
    tag = uuid.uuid4().hex[:6]
    gpu, robot_ns = f"wsr_gpu_{tag}", f"wsr_robot_{tag}"
    commands = [
        ["ip", "netns", "add", gpu], ["ip", "netns", "add", robot_ns],
        ["ip", "link", "add", f"vg{tag}", "type", "veth", "peer", "name", f"vr{tag}"],
        ["ip", "link", "set", f"vg{tag}", "netns", gpu], ["ip", "link", "set", f"vr{tag}", "netns", robot_ns],
    ]
    for ns, dev, addr in ((gpu, f"vg{tag}", "10.77.0.1/24"), (robot_ns, f"vr{tag}", "10.77.0.2/24")):
        commands += [["ip", "-n", ns, "addr", "add", addr, "dev", dev], ["ip", "-n", ns, "link", "set", dev, "up"],
                     ["ip", "-n", ns, "link", "set", "lo", "up"],
                     ["ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", dev]]
    try:
        for cmd in commands:
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"network namespaces not permitted here: {' '.join(cmd)}: {done.stderr.strip()}")
        yield gpu, robot_ns
    finally:
        for ns in (gpu, robot_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_split_across_two_network_namespaces(two_hosts, tmp_path):
    gpu, robot_ns = two_hosts
    namespace = f"/split_{uuid.uuid4().hex[:8]}"
    # the conftest keeps discovery on localhost (ROS_AUTOMATIC_DISCOVERY_RANGE); these two hosts need the subnet
    env = {**os.environ, **UDP_ONLY, "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    proc = subprocess.Popen(["ip", "netns", "exec", gpu, *server_command(namespace)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        out = tmp_path / "views.npz"
        client = subprocess.run(["ip", "netns", "exec", robot_ns, sys.executable, str(HERE / "split_scenario.py"),
                                 "--namespace", namespace, "--out", str(out), "--timeout-s", "90"],
                                capture_output=True, text=True, env=env, timeout=400)
        assert client.returncode == 0, f"robot side failed:\n{client.stdout}\n{client.stderr}"
    finally:
        server_log = stop(proc)
    assert "generation_node ready" in server_log, server_log
    saved = np.load(out)
    split = split_scenario.Views({k: saved[f"streamed_{k}"] for k in ("rgb", "depth", "imagined")},
                                 {k: saved[f"results_{k}"] for k in ("rgb", "depth", "imagined")})
    assert_same_views(split_scenario.run(create_backend("render_fill")), split)


def test_the_split_launch_file_starts_generation_node_in_its_namespace():
    [node] = load_launch_file(find_launch_file("split_generation.launch.py"),
                              {"backend": "render_fill", "allowed_roots": "['/models', '.']"})
    assert node.module == "worldstereo_ros.ros.generation_node" and node.namespace == "generation"
    [params] = node.parameters
    assert params["allowed_roots"] == ["/models", "."] and params["backend"] == "render_fill"
    assert params["model_path"] == "" and "__ns:=/generation" in node.command()


def test_frames_lost_before_the_dds_match_are_asked_for_again(server, robot, monkeypatch):
    # feedback published before the server's writer matched a new reader is lost; simulate losing frame 0 once
    real, dropped = remote_generator._Call.feedback, []

    def lossy(self, msg):
        if msg.has_frame and msg.index == 0 and not dropped:
            dropped.append(msg.index)
            return
        real(self, msg)

    monkeypatch.setattr(remote_generator._Call, "feedback", lossy)
    monkeypatch.setattr(remote_generator, "STRAGGLER_S", 0.5)
    seen = []
    frames = split_scenario.run_request(RemoteGenerator(robot, server, timeout_s=60.0),
                                        on_frame=lambda index, *rest: seen.append(index))
    assert dropped == [0] and seen == list(range(split_scenario.FRAMES))  # in order, each once
    expected = split_scenario.run_request(create_backend("render_fill"))
    assert np.array_equal(frames.rgb, expected.rgb) and np.array_equal(frames.depth, expected.depth)
