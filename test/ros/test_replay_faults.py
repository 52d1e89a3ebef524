"""replay_node, RgbdFolder and the launch runner under faults (issue 14 item 9): a corrupt frame is skipped and
counted, out-of-range parameters are refused by name, a missing pose file is an error (not an identity pose),
and stopping ends within 5 s without busy-spinning even when children ignore SIGINT (and SIGTERM)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_rgbd import write_tiny_sequence

from worldstereo_ros.datasets.rgbd_folder import RgbdFolder
from worldstereo_ros.errors import ConfigError, InputError
from worldstereo_ros.ros.launch_subset import NodeSpec, run_nodes

K = np.array([[17.0, 0.0, 7.5], [0.0, 19.0, 5.5], [0.0, 0.0, 1.0]])


def _sequence(folder: Path, frames: int = 4) -> None:
    write_tiny_sequence(folder, K, frames, seed=5)


def test_missing_pose_file_is_an_error_naming_the_file(tmp_path):
    _sequence(tmp_path, 2)
    (tmp_path / "frame-000001.pose.txt").unlink()
    folder = RgbdFolder(tmp_path)
    assert folder.read(0).T_world_cam[0, 3] == pytest.approx(0.0)
    with pytest.raises(InputError, match=r"frame-000001\.pose\.txt: missing"):
        folder.read(1)


def test_malformed_pose_file_is_an_error_naming_the_file(tmp_path):
    _sequence(tmp_path, 2)
    (tmp_path / "frame-000000.pose.txt").write_text("1 0 0\n0 1 0\n")
    (tmp_path / "frame-000001.pose.txt").write_text("not a number\n")
    folder = RgbdFolder(tmp_path)
    with pytest.raises(InputError, match=r"frame-000000\.pose\.txt: expected 16 numbers"):
        folder.read(0)
    with pytest.raises(InputError, match=r"frame-000001\.pose\.txt: not a matrix"):
        folder.read(1)


@pytest.fixture()
def ros_context():
    rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
    rclpy.init()
    yield rclpy
    rclpy.try_shutdown()


def _replay(folder: Path, **overrides):
    from rclpy.parameter import Parameter

    from worldstereo_ros.ros.replay_node import ReplayNode

    params = [Parameter("folder", value=str(folder)), Parameter("allowed_roots", value=[str(folder)]),
              *(Parameter(k, value=v) for k, v in overrides.items())]
    return ReplayNode(parameter_overrides=params)


def test_corrupt_frames_are_skipped_and_counted(tmp_path, ros_context):
    _sequence(tmp_path, 4)
    (tmp_path / "frame-000001.color.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # undecodable colour
    (tmp_path / "frame-000002.pose.txt").unlink()
    node = _replay(tmp_path, rate_hz=0.01)  # the timer never fires in this test: ticks are called directly
    try:
        for _ in range(4):
            node._tick()
        assert (node.published, node.skipped) == (2, 2)
        assert node.problems.count("frame.unreadable") == 2
    finally:
        node.destroy_node()


@pytest.mark.parametrize(("name", "value"), [("stride", 0), ("stride", -3), ("first_frame", -1), ("rate_hz", 0.0),
                                             ("max_frames", -1)])
def test_out_of_range_parameters_are_refused_by_name(tmp_path, ros_context, name, value):
    _sequence(tmp_path, 2)
    with pytest.raises(ConfigError, match=rf"^{name}: .*out of range"):
        _replay(tmp_path, **{name: value})


def test_parameters_have_descriptors_with_ranges(tmp_path, ros_context):
    _sequence(tmp_path, 2)
    node = _replay(tmp_path, stride=2)
    try:
        assert node.frames == [0]
        [desc] = node.describe_parameters(["stride"])
        assert desc.integer_range[0].from_value == 1 and "n-th frame" in desc.description
    finally:
        node.destroy_node()


def test_rgb_to_compressed_round_trips(tmp_path):
    from worldstereo_ros.ros.conversions.image import compressed_to_numpy, rgb_to_compressed

    y, x = np.mgrid[0:12, 0:16]
    smooth = np.stack([x * 15, y * 20, np.full_like(x, 128)], axis=-1).astype(np.uint8)  # JPEG keeps gradients
    for fmt, tolerance in (("png", 0), ("jpeg", 6)):  # PNG is lossless
        msg = rgb_to_compressed(smooth, fmt)
        assert msg.format == fmt
        error = np.abs(compressed_to_numpy(msg).astype(int) - smooth.astype(int)).mean()
        assert error <= tolerance, f"{fmt}: mean error {error:.1f} grey levels"


# ---------------------------------------------------------------------------------------- launch runner
def _child(name: str, ready: Path, ignore: tuple[str, ...]) -> NodeSpec:
    """A child that ignores the named signals, creates ``ready`` once it does, then sleeps."""
    code = ("import signal, time, pathlib\n"
            + "".join(f"signal.signal(signal.{s}, signal.SIG_IGN)\n" for s in ignore)
            + f"pathlib.Path({str(ready)!r}).touch()\ntime.sleep(120)\n")
    spec = NodeSpec(name=name, module="replaced_by_the_command_below")
    spec.command = lambda: [sys.executable, "-c", code]
    return spec


def test_stop_escalates_and_ends_within_5_s_without_busy_spinning(tmp_path):
    ready = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    nodes = [_child("polite", ready[0], ()), _child("deaf_to_sigint", ready[1], ("SIGINT",)),
             _child("deaf_to_both", ready[2], ("SIGINT", "SIGTERM"))]
    sent = {}

    def interrupt() -> None:
        deadline = time.monotonic() + 60
        while not all(r.exists() for r in ready) and time.monotonic() < deadline:
            time.sleep(0.05)
        sent["t"], sent["cpu"] = time.monotonic(), time.process_time()
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would; run_nodes' handler takes it

    threading.Thread(target=interrupt, daemon=True).start()
    code = run_nodes(nodes)
    stop_s, cpu_s = time.monotonic() - sent["t"], time.process_time() - sent["cpu"]
    assert all(r.exists() for r in ready), "a child never signalled that it was ready"
    assert code == 0
    assert stop_s < 5.0, f"stopping took {stop_s:.1f} s"
    # the old loop spun at 100 % of a core while waiting for children to end
    assert cpu_s < 0.5 * stop_s + 0.2, f"{cpu_s:.2f} s of CPU in {stop_s:.2f} s of stopping: busy-waiting"


def test_escalation_times_are_checked():
    with pytest.raises(ConfigError, match="sigkill_after_s"):
        run_nodes([], sigterm_after_s=3.0, sigkill_after_s=1.0)


def test_rgb_to_compressed_refuses_bad_input_by_name():
    from worldstereo_ros.errors import ConversionError
    from worldstereo_ros.ros.conversions.image import rgb_to_compressed

    rgb = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(ConversionError, match=r"^rgb: expected \(H, W, 3\) uint8"):
        rgb_to_compressed(rgb.astype(np.float32))
    with pytest.raises(ConversionError, match="^format: expected jpeg or png"):
        rgb_to_compressed(rgb, "bmp")
    with pytest.raises(ConversionError, match="^jpeg_quality"):
        rgb_to_compressed(rgb, "jpeg", jpeg_quality=0)
    assert rgb_to_compressed(rgb, "png").format == "png"
