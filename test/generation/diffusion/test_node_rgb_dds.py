"""imagination_node with an RGB-only camera over DDS (issue 13, item 5): ``use_depth:=false``, depth from the tiny
depth model, the render_fill backend; and the start-up error when no depth model is given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "ros"))  # the node test's DDS helpers

from node_processes import start_module, stop  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from test_imagination_node import Camera, Peer, _node_args, _straight_path  # noqa: E402

from worldstereo_ros.action import Imagine  # noqa: E402
from worldstereo_ros.msg import CandidatePath  # noqa: E402
from worldstereo_ros.ros.conversions.camera_info import intrinsics_to_camera_info  # noqa: E402
from worldstereo_ros.ros.conversions.image import rgb_to_image  # noqa: E402
from worldstereo_ros.ros.conversions.transforms import make_transform_stamped  # noqa: E402


@pytest.fixture()
def depth_model(tmp_path):
    from worldstereo_ros.generation.diffusion.tiny import write_tiny_depth_model

    return write_tiny_depth_model(tmp_path / "depth_model")


def _publish_rgb_only(cam: Camera) -> None:
    """One image + camera_info pair and the robot's pose on /tf: no depth topic at all."""
    stamp = cam.node.get_clock().now().to_msg()
    header = Header(stamp=stamp, frame_id="camera_optical")
    cam.tf.send([make_transform_stamped("map", "base_link", cam.T_world_base, stamp)])
    cam.pub_info.publish(intrinsics_to_camera_info(cam.snap.K, 64, 48, header))
    cam.pub_image.publish(rgb_to_image(cam.snap.rgb, header))


def _diag_values(peer: Peer) -> dict[str, str]:
    return {kv.key: kv.value for kv in peer.diagnostics[-1].status[0].values} if peer.diagnostics else {}


def test_rgb_only_camera_serves_a_path_with_estimated_depth(peer, depth_model):
    node = start_module(_node_args(3, ["-p", "image_width:=0", "-p", "image_height:=0", "-p", "use_depth:=false",
                                 "-p", f"depth_model_path:={depth_model}",
                                 "-p", f"allowed_roots:=['{depth_model.parent}']"]))  # issue 14 item 8
    cam = Camera(peer)
    client = ActionClient(peer.node, Imagine, "imagine")
    try:
        assert peer.wait(lambda: client.server_is_ready(), 60.0), "imagine action not found"
        assert peer.node.count_subscribers("depth") == 0, "an RGB-only node must not subscribe to depth"
        assert peer.wait(lambda: peer.node.count_subscribers("image") > 0
                         and peer.node.count_subscribers("camera_info") > 0, 10.0)
        # a camera streaming at 10 Hz: the first messages may go out before DDS has matched the node's subscriptions
        peer.node.create_timer(0.1, lambda: _publish_rgb_only(cam))
        assert peer.wait(lambda: _diag_values(peer).get("received.image", "0") != "0", 10.0), _diag_values(peer)
        path, _ = _straight_path(cam.T_world_base, 0.3, 3)
        fut = client.send_goal_async(Imagine.Goal(paths=[CandidatePath(id="p", path=path)], frames_per_path=3,
                                                  new_snapshot=True))
        assert peer.wait(fut.done, 10.0)
        res = fut.result().get_result_async()
        assert peer.wait(res.done, 60.0)
        result = res.result().result
        assert result.success, result.message
        assert result.views_published == 3 and result.cache_points > 0
        assert peer.wait(lambda: len(peer.views) >= 3, 10.0)
        assert {v.index for v in peer.views} == {0, 1, 2}
        # no scale given: the depth is relative, and /diagnostics says so
        assert peer.wait(lambda: _diag_values(peer).get("depth_is_metric") == "False", 5.0), _diag_values(peer)
        assert "relative" in _diag_values(peer)["depth"]
        assert node.poll() is None, "imagination_node exited"
    finally:
        out = stop(node)
    assert "Traceback" not in out, out[-3000:]
    assert out.count("estimated depth is relative") == 1, out[-3000:]  # said once in the log
    assert "RGB-only" in out, out[-3000:]


def test_rgb_only_camera_without_a_depth_model_is_a_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "worldstereo_ros.ros.imagination_node", "--ros-args",
                           "-p", "use_depth:=false"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "depth_model_path: required when use_depth is false" in lines[0], proc.stderr
