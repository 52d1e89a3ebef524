"""The imagination node serves a request with the ``worldstereo`` backend over DDS (issue 13, tiny release)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "ros"))  # the node test's DDS helpers

from node_processes import start_module, stop  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from test_imagination_node import Camera, _node_args, _straight_path  # noqa: E402

from worldstereo_ros.action import Imagine  # noqa: E402
from worldstereo_ros.msg import CandidatePath  # noqa: E402


def test_node_serves_a_request_with_the_worldstereo_backend(peer, tiny_release):
    node = start_module(_node_args(3, ["-p", "image_width:=0", "-p", "image_height:=0", "-p", "backend:=worldstereo",
                                 "-p", f"model_path:={tiny_release}", "-p", "prompt:=w3 w4",
                                 "-p", f"allowed_roots:=['{tiny_release.parent}']"]))  # issue 14 item 8
    cam = Camera(peer)
    client = ActionClient(peer.node, Imagine, "imagine")
    try:
        assert peer.wait(lambda: client.server_is_ready(), 60.0), "imagine action not found"
        # the action server can match before the camera topics do: frames sent earlier are lost (under load
        # the goal then found "no snapshot yet")
        cam_pubs = (cam.pub_image, cam.pub_depth, cam.pub_info)
        assert peer.wait(lambda: all(p.get_subscription_count() > 0 for p in cam_pubs), 30.0), (
            "imagination_node did not subscribe to image, depth and camera_info")
        for _ in range(3):
            cam.publish()
        path, _ = _straight_path(cam.T_world_base, 0.3, 3)
        fut = client.send_goal_async(Imagine.Goal(paths=[CandidatePath(id="p", path=path)], frames_per_path=3,
                                                  new_snapshot=True))
        assert peer.wait(fut.done, 10.0)
        res = fut.result().get_result_async()
        assert peer.wait(res.done, 120.0)
        result = res.result().result
        assert result.success, result.message
        assert result.views_published == 3 and result.cache_points > 0
        assert peer.wait(lambda: len(peer.views) >= 3, 10.0)
        assert node.poll() is None, "imagination_node exited"
    finally:
        out = stop(node)
    assert "Traceback" not in out, out[-3000:]
    assert "warm-up failed" not in out, out[-3000:]
    assert "backend worldstereo" in out, out[-3000:]
