"""imagination_node with the learned backend over real DDS (issue 12): a replayed 7-Scenes camera, a path in,
imagined views out. Separate processes, every wait with a timeout."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
from geometry_msgs.msg import PoseStamped  # noqa: E402
from nav_msgs.msg import Path  # noqa: E402
from node_processes import start_module, stop, wait_until  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from worldstereo_ros.msg import ImaginedView  # noqa: E402
from worldstereo_ros.ros.conversions.transforms import matrix_to_pose  # noqa: E402
from worldstereo_ros.ros.imagination_node import VIEWS_QOS  # noqa: E402

# base_link -> camera optical frame (REP 103), as a replay_node parameter and as a matrix
EXTRINSIC = "[0.10, 0.02, 0.45, -0.5, 0.5, -0.5, 0.5]"
T_BASE_CAM = np.array([[0.0, 0.0, 1.0, 0.10], [-1.0, 0.0, 0.0, 0.02], [0.0, -1.0, 0.0, 0.45], [0, 0, 0, 1.0]])
FRAMES = 4


def test_node_imagines_with_the_learned_backend(redkitchen_dir):
    from worldstereo_ros.datasets.rgbd_folder import RgbdFolder

    replay = start_module(["worldstereo_ros.ros.replay_node", "--ros-args", "-p", f"folder:={redkitchen_dir}",
                     "-p", f"allowed_roots:=['{redkitchen_dir}']",
                     "-p", "rate_hz:=5.0", "-p", "max_frames:=3", "-p", "loop:=true", "-p", "base_frame:=base_link",
                     "-p", f"base_to_camera:={EXTRINSIC}"])
    node = start_module(["worldstereo_ros.ros.imagination_node", "--ros-args", "-p", "backend:=learned",
                   "-p", "fixed_frame:=map", "-p", "base_frame:=base_link", "-p", f"frames_per_path:={FRAMES}",
                   "-p", "image_width:=160", "-p", "image_height:=120", "-p", "sync_tolerance_s:=0.01",
                   "-p", "tf_timeout_s:=0.5"])
    rclpy.init()
    peer = rclpy.create_node("learned_backend_test_peer")
    views: list[ImaginedView] = []
    peer.create_subscription(ImaginedView, "imagined/views", views.append, VIEWS_QOS)
    pub = peer.create_publisher(Path, "planned_path", 10)
    executor = SingleThreadedExecutor()
    executor.add_node(peer)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        T_world_base0 = RgbdFolder(redkitchen_dir).read(0).T_world_cam @ np.linalg.inv(T_BASE_CAM)
        header = Header(frame_id="map")
        path = Path(header=header)
        for i in range(FRAMES):
            step = np.eye(4)
            step[1, 3] = 0.4 * i / (FRAMES - 1)  # sideways: opens disocclusions to imagine
            path.poses.append(PoseStamped(header=header, pose=matrix_to_pose(T_world_base0 @ step)))
        assert wait_until(lambda: peer.count_subscribers("planned_path") > 0, 30.0), "imagination_node not up"
        time.sleep(1.5)  # a few replayed frames before the path
        deadline = time.monotonic() + 60.0
        while not views and time.monotonic() < deadline:  # a path before the first frame is refused: resend
            pub.publish(path)
            wait_until(lambda: bool(views), 5.0)
        assert wait_until(lambda: len(views) >= FRAMES, 60.0), f"received {len(views)} views:\n{stop(node)[-3000:]}"
        got = sorted(views[:FRAMES], key=lambda v: v.index)
        assert [v.index for v in got] == list(range(FRAMES))
        assert all((v.rgb.width, v.rgb.height) == (160, 120) for v in got)
        assert any(v.imagined_fraction > 0.0 for v in got)
    finally:
        executor.shutdown()
        peer.destroy_node()
        rclpy.try_shutdown()
        stop(node)
        stop(replay)
