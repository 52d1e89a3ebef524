"""imagination_node with ``generator:=remote`` (issue 14 item 7): the same camera, TF and path give the same
published views as the node with its backend in-process, with generation_node in a third process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
pytest.importorskip("worldstereo_ros.action", reason="interfaces not generated (run scripts/setup.sh)")

from rclpy.action import ActionClient  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from node_processes import start_module, stop  # noqa: E402
from test_imagination_node import Camera, Peer, _node_args, _straight_path  # noqa: E402

from worldstereo_ros.action import Imagine  # noqa: E402
from worldstereo_ros.msg import CandidatePath  # noqa: E402

FRAMES = 4


@pytest.fixture()
def viewer():
    """The test's node: camera publisher, Imagine client, subscriber of imagined/views and /diagnostics."""
    node = Peer()
    yield node
    node.close()


def imagine_once(peer: Peer, cam: Camera, extra: list[str]) -> list:
    """Start imagination_node with ``extra`` parameters, imagine one straight path, return its views, stop it."""
    node = start_module(_node_args(FRAMES, ["-p", "image_width:=0", "-p", "image_height:=0", *extra]))
    client = ActionClient(peer.node, Imagine, "imagine")
    try:
        assert peer.wait(lambda: client.server_is_ready(), 60.0), "imagine action of imagination_node not found"
        publishers = (cam.pub_image, cam.pub_depth, cam.pub_info)
        assert peer.wait(lambda: all(p.get_subscription_count() > 0 for p in publishers), 30.0), (
            "imagination_node's camera subscriptions did not match the test's publishers")
        def received_all() -> bool:  # the node's own counters, on /diagnostics
            last = peer.diagnostics[-1].status[0].values if peer.diagnostics else []
            counts = {kv.key: kv.value for kv in last}
            return all(int(counts.get(f"received.{s}", 0)) > 0 for s in ("image", "depth", "camera_info"))

        peer.diagnostics.clear()  # the previous node's
        for _ in range(30):  # best-effort input: publish until the node says it has a frame of each stream
            cam.publish()
            if peer.wait(received_all, 1.0):
                break
        assert received_all(), "imagination_node received no image + depth + camera_info within 30 s"
        path, _ = _straight_path(cam.T_world_base, 0.3, 3)
        sent = client.send_goal_async(Imagine.Goal(paths=[CandidatePath(id="p", path=path)], frames_per_path=FRAMES,
                                                   new_snapshot=True))
        assert peer.wait(sent.done, 30.0), "imagine goal not answered"
        answer = sent.result().get_result_async()
        assert peer.wait(answer.done, 120.0), "imagine result did not arrive"
        assert answer.result().result.success, answer.result().result.message
        assert peer.wait(lambda: len(peer.views) >= FRAMES, 30.0), f"{len(peer.views)} of {FRAMES} views arrived"
        assert node.poll() is None, "imagination_node exited"
    finally:
        client.destroy()
        out = stop(node)
    assert "Traceback" not in out, out[-3000:]
    views, peer.views[:] = list(peer.views), []
    return views


def test_remote_generator_node_publishes_the_local_nodes_views(viewer):
    peer = viewer
    namespace = f"/split_{uuid.uuid4().hex[:8]}"
    server = subprocess.Popen([sys.executable, "-m", "worldstereo_ros.ros.generation_node", "--ros-args", "-r",
                               f"__ns:={namespace}", "-p", "backend:=render_fill"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "FASTDDS_BUILTIN_TRANSPORTS": "UDPv4", "OMP_NUM_THREADS": "1"})
    try:
        cam = Camera(peer)
        local = imagine_once(peer, cam, [])
        remote = imagine_once(peer, cam, ["-p", "generator:=remote", "-p", f"generation_namespace:={namespace}",
                                          "-p", "generation_timeout_s:=60.0"])
    finally:
        server_log = stop(server)
    assert "Traceback" not in server_log, server_log
    assert len(local) == len(remote) == FRAMES
    for a, b in zip(local, remote):
        assert (a.path_id, a.index, a.count) == (b.path_id, b.index, b.count)
        for name in ("rgb", "depth", "imagined_mask"):
            assert np.array_equal(np.frombuffer(bytes(getattr(a, name).data), np.uint8),
                                  np.frombuffer(bytes(getattr(b, name).data), np.uint8)), f"view {a.index} {name}"
        assert a.pose == b.pose and a.imagined_fraction == b.imagined_fraction
    assert any(v.imagined_fraction > 0 for v in local)  # the views hold imagined pixels, not only renders
