"""imagination_node end to end over real DDS, in separate processes (issue 5, items 4 and 5).

Processes: replay_node (7-Scenes frames, map -> base_link on /tf, base_link -> camera on /tf_static),
imagination_node, and this test's own node that sends paths and receives the outputs. The bad-input test
plays the camera itself (a small procedural RGB-D frame) so it can send broken messages.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from nav_msgs.msg import Path  # noqa: E402
from node_processes import start_module, stop  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from spun_node import SpunNode  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from worldstereo_ros.action import Imagine  # noqa: E402
from worldstereo_ros.msg import CandidatePath, ImaginedView  # noqa: E402
from worldstereo_ros.ros.conversions.camera_info import intrinsics_to_camera_info  # noqa: E402
from worldstereo_ros.ros.conversions.image import depth_to_image, numpy_to_image, rgb_to_image  # noqa: E402
from worldstereo_ros.ros.conversions.pointcloud2 import pointcloud2_to_xyzrgb  # noqa: E402
from worldstereo_ros.ros.conversions.transforms import make_transform_stamped, matrix_to_pose, pose_to_matrix  # noqa: E402
from worldstereo_ros.ros.imagination_node import LATCHED_QOS, VIEWS_QOS  # noqa: E402
from worldstereo_ros.ros.tf import TfBroadcaster  # noqa: E402

T_BASE_CAM = np.array([[0.0, 0.0, 1.0, 0.10], [-1.0, 0.0, 0.0, 0.02], [0.0, -1.0, 0.0, 0.45], [0, 0, 0, 1.0]])
EXTRINSIC = "[0.10, 0.02, 0.45, -0.5, 0.5, -0.5, 0.5]"  # the same as T_BASE_CAM: REP 103 optical axes


def _node_args(frames: int, extra: list[str] = ()) -> list[str]:
    return ["worldstereo_ros.ros.imagination_node", "--ros-args", "-p", "fixed_frame:=map",
            "-p", "base_frame:=base_link",
            "-p", f"frames_per_path:={frames}", "-p", "image_width:=320", "-p", "image_height:=240",
            "-p", "sync_tolerance_s:=0.01", "-p", "tf_timeout_s:=0.5", "-p", "diagnostics_period_s:=0.2", *extra]


class Peer(SpunNode):
    """The test's own ROS node, spun on a background thread."""

    def __init__(self) -> None:
        super().__init__("imagination_test_peer")
        self.views: list[ImaginedView] = []
        self.clouds: list[PointCloud2] = []
        self.local: list[PointCloud2] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(ImaginedView, "imagined/views", self.views.append, VIEWS_QOS)
        self.node.create_subscription(PointCloud2, "global_cache", self.clouds.append, LATCHED_QOS)
        self.node.create_subscription(PointCloud2, "local_cache", self.local.append, qos_profile_sensor_data)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.pub_path = self.node.create_publisher(Path, "planned_path", 10)
        self.start()


@pytest.fixture()
def peer():
    p = Peer()
    yield p
    p.close()


def _straight_path(T_world_base0: np.ndarray, length_m: float, n: int) -> tuple[Path, np.ndarray]:
    header = Header(frame_id="map")
    path = Path(header=header)
    poses = []
    for i in range(n):
        step = np.eye(4)
        step[0, 3] = length_m * i / (n - 1)  # along base x: forward
        T = T_world_base0 @ step
        poses.append(T)
        path.poses.append(PoseStamped(header=header, pose=matrix_to_pose(T)))
    return path, np.stack(poses)


def _angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    c = (np.trace(Ra.T @ Rb) - 1) / 2
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def test_replayed_7scenes_path_to_views_and_cache(redkitchen_dir, peer):
    from worldstereo_ros.datasets.rgbd_folder import RgbdFolder

    replay = start_module(["worldstereo_ros.ros.replay_node", "--ros-args", "-p", f"folder:={redkitchen_dir}",
                     "-p", f"allowed_roots:=['{redkitchen_dir}']",
                     "-p", "rate_hz:=5.0", "-p", "max_frames:=5", "-p", "loop:=true", "-p", "base_frame:=base_link",
                     "-p", f"base_to_camera:={EXTRINSIC}"])
    node = start_module(_node_args(10))
    try:
        T_world_base0 = RgbdFolder(redkitchen_dir).read(0).T_world_cam @ np.linalg.inv(T_BASE_CAM)
        path, T_world_base = _straight_path(T_world_base0, 3.0, 10)
        # the node needs a synced frame and TF before the path arrives: resend until views come
        sent = time.monotonic()
        assert peer.wait(lambda: peer.node.count_subscribers("planned_path") > 0, 20.0), "imagination_node not up"
        time.sleep(1.5)  # a few replayed frames
        deadline = time.monotonic() + 60.0
        while not peer.views and time.monotonic() < deadline:  # a path before the first frame is refused
            peer.pub_path.publish(path)
            peer.wait(lambda: bool(peer.views), 5.0)
        assert peer.wait(lambda: len(peer.views) >= 10, 60.0), (
            f"received {len(peer.views)} views; node output:\n{stop(node)[-3000:]}")
        assert peer.wait(lambda: len(peer.clouds) >= 1, 10.0), "no global_cache"
        elapsed = time.monotonic() - sent
        views = sorted(peer.views[:10], key=lambda v: v.index)
        assert [v.index for v in views] == list(range(10))
        assert all(v.count == 10 and v.path_id == "planned_path" for v in views)
        assert all(v.header.frame_id == "map" for v in views)
        # every view of the rollout carries its snapshot's stamp (a replayed camera frame's), not now()
        stamps = {v.header.stamp.sec * 10**9 + v.header.stamp.nanosec for v in peer.views[:10]}
        assert len(stamps) == 1 and stamps.pop() > 0
        for v in views:
            assert (v.rgb.width, v.rgb.height, v.rgb.encoding) == (320, 240, "rgb8")
            assert (v.depth.encoding, v.imagined_mask.encoding) == ("32FC1", "mono8")
            assert (v.camera_info.width, v.camera_info.height) == (320, 240)
            assert 0.0 <= v.imagined_fraction <= 1.0
            # the imagined camera is where the camera will be: path pose composed with the extrinsic
            expected = T_world_base[v.index] @ T_BASE_CAM
            got = pose_to_matrix(v.pose)
            assert np.linalg.norm(got[:3, 3] - expected[:3, 3]) <= 1e-3
            assert _angle_deg(got[:3, :3], expected[:3, :3]) <= 0.1
        cloud = peer.clouds[-1]
        assert cloud.header.frame_id == "map"
        assert [(f.name, f.datatype, f.offset) for f in cloud.fields] == [
            ("x", 7, 0), ("y", 7, 4), ("z", 7, 8), ("rgb", 7, 12)]
        xyz, rgb = pointcloud2_to_xyzrgb(cloud)
        assert xyz.shape[0] > 10_000 and np.isfinite(xyz).all()
        # local_cache: the cache within local_radius_m (4 m) of the robot, in the robot's frame
        assert peer.wait(lambda: any(c.width > 1000 for c in peer.local), 10.0), "no local_cache"
        local = next(c for c in peer.local if c.width > 1000)
        assert local.header.frame_id == "base_link"
        local_xyz, _ = pointcloud2_to_xyzrgb(local)
        assert np.linalg.norm(local_xyz, axis=1).max() <= 4.0 + 1e-3
        print(f"path -> 10 views + cache ({xyz.shape[0]} points) in {elapsed:.1f} s")
    finally:
        stop(node)
        stop(replay)


class Camera:
    """Publishes a small RGB-D camera from the test process (so it can also publish broken frames)."""

    def __init__(self, peer: Peer) -> None:
        from worldstereo_ros.datasets.procedural_scene import procedural_snapshot

        self.snap = procedural_snapshot(64, 48)
        self.stamps: list[tuple[int, int]] = []  # (sec, nanosec) of every frame published, in order
        n = peer.node
        self.node = n
        self.pub_image = n.create_publisher(Image, "image", 5)
        self.pub_depth = n.create_publisher(Image, "depth", 5)
        self.pub_info = n.create_publisher(CameraInfo, "camera_info", 5)
        self.tf = TfBroadcaster(n)
        self.T_world_base = self.snap.T_world_cam @ np.linalg.inv(T_BASE_CAM)
        self.tf.send_static([make_transform_stamped("base_link", "camera_optical", T_BASE_CAM,
                                                    n.get_clock().now().to_msg())])

    def publish(self, rgb=None, depth=None, info=True, encoding=None) -> None:
        stamp = self.node.get_clock().now().to_msg()
        self.last_stamp = stamp
        self.stamps.append((stamp.sec, stamp.nanosec))
        header = Header(stamp=stamp, frame_id="camera_optical")
        self.tf.send([make_transform_stamped("map", "base_link", self.T_world_base, stamp)])
        rgb = self.snap.rgb if rgb is None else rgb
        depth = self.snap.depth if depth is None else depth
        if info:
            self.pub_info.publish(intrinsics_to_camera_info(self.snap.K, 64, 48, header))
        self.pub_depth.publish(depth_to_image(depth, "32FC1", header))
        if encoding is None:
            self.pub_image.publish(rgb_to_image(rgb, header))
        else:
            img = numpy_to_image((rgb * 255).astype(np.uint8), "rgb8", header)
            img.encoding = encoding
            self.pub_image.publish(img)


def _diag_counts(peer: Peer) -> dict[str, int]:
    if not peer.diagnostics:
        return {}
    values = {kv.key: kv.value for kv in peer.diagnostics[-1].status[0].values}
    return {k[len("problem."):-len(".count")]: int(v) for k, v in values.items() if k.endswith(".count")}


def test_bad_input_never_stops_the_node(peer):
    node = start_module(_node_args(3, ["-p", "image_width:=0", "-p", "image_height:=0",
                                       "-p", "sync_tolerance_s:=0.001"]))
    cam = Camera(peer)
    client = ActionClient(peer.node, Imagine, "imagine")
    try:
        assert peer.wait(lambda: client.server_is_ready(), 30.0), "imagine action not found"

        def imagine(path: Path, new_snapshot=True):
            goal = Imagine.Goal(paths=[CandidatePath(id="p", path=path)], frames_per_path=3, new_snapshot=new_snapshot)
            fut = client.send_goal_async(goal)
            assert peer.wait(fut.done, 10.0)
            res = fut.result().get_result_async()
            assert peer.wait(res.done, 30.0)
            return res.result().result

        good_path, _ = _straight_path(cam.T_world_base, 0.3, 3)
        # 1. nothing received yet: the request fails with a reason, the node lives on
        r = imagine(good_path)
        assert not r.success and "no snapshot" in r.message
        # 2. camera_info missing: only image + depth arrive
        for _ in range(3):
            cam.publish(info=False)
            time.sleep(0.05)
        r = imagine(good_path)
        assert not r.success and "camera_info" in r.message
        # 3. wrong encoding
        cam.publish(encoding="yuv422_yuy2")
        time.sleep(0.3)
        r = imagine(good_path)
        assert not r.success and "encoding" in r.message
        # 4. depth of another size
        cam.publish(depth=np.ones((24, 32), np.float32))
        time.sleep(0.3)
        r = imagine(good_path)
        assert not r.success and "depth" in r.message
        # 5. all-NaN depth
        cam.publish(depth=np.full((48, 64), np.nan, np.float32))
        time.sleep(0.3)
        r = imagine(good_path)
        assert not r.success and "depth" in r.message
        # 6. a good frame now; then bad paths against it
        cam.publish()
        time.sleep(0.3)
        empty = Path(header=Header(frame_id="map"))
        assert "no poses" in imagine(empty).message
        one, _ = _straight_path(cam.T_world_base, 0.0, 2)
        one.poses = one.poses[:1]
        assert "one pose" in imagine(one).message
        elsewhere, _ = _straight_path(cam.T_world_base, 0.3, 3)
        elsewhere.header.frame_id = "odom_that_does_not_exist"
        r = imagine(elsewhere)
        assert not r.success and "odom_that_does_not_exist" in r.message
        bad_quat, _ = _straight_path(cam.T_world_base, 0.3, 3)
        bad_quat.poses[1].pose.orientation.w = float("nan")
        r = imagine(bad_quat)
        assert not r.success and "poses[1]" in r.message
        # a broken message on the plain topic: no result to read, but it is counted
        peer.pub_path.publish(empty)
        # 7. and the node still serves a good request
        r = imagine(good_path, new_snapshot=False)
        assert r.success, r.message
        assert r.views_published == 3 and r.cache_points > 0
        assert peer.wait(lambda: {"snapshot.no_frame", "snapshot.encoding", "snapshot.depth", "path.empty",
                                  "path.short", "tf.path", "path.pose"} <= set(_diag_counts(peer)), 5.0), \
        _diag_counts(peer)
        # 8. cancel: a long rollout stops between frames and the goal ends CANCELED
        from action_msgs.msg import GoalStatus

        long_path, _ = _straight_path(cam.T_world_base, 0.5, 3)
        feedback = []
        fut = client.send_goal_async(Imagine.Goal(paths=[CandidatePath(id="long", path=long_path)],
                                                  frames_per_path=400, new_snapshot=False),
                                     feedback_callback=lambda fb: feedback.append(fb.feedback))
        assert peer.wait(fut.done, 10.0)
        handle = fut.result()
        assert peer.wait(lambda: any(f.stage == "generate" for f in feedback), 30.0), "no feedback"
        cancel = handle.cancel_goal_async()
        assert peer.wait(cancel.done, 10.0)
        res = handle.get_result_async()
        assert peer.wait(res.done, 30.0)
        assert res.result().status == GoalStatus.STATUS_CANCELED, res.result().result.message
        assert res.result().result.views_published < 400
        assert node.poll() is None, "imagination_node exited"
    finally:
        out = stop(node)
    assert "Traceback" not in out, out[-3000:]


def test_sigterm_with_queued_goals_exits_within_bounded_time(peer):
    """The real executable (main: executor sized from queue_size) with one long goal running and two queued
    is stopped with SIGTERM: it exits cleanly in well under the 10 s bound (issue 14, item 1)."""
    node = start_module(_node_args(3, ["-p", "image_width:=0", "-p", "image_height:=0", "-p", "queue_size:=2",
                                       "-p", "chunk_frames:=10"]))
    cam = Camera(peer)
    client = ActionClient(peer.node, Imagine, "imagine")
    try:
        assert peer.wait(client.server_is_ready, 30.0), "imagine action not found"
        long_path, _ = _straight_path(cam.T_world_base, 0.5, 3)
        goal = Imagine.Goal(paths=[CandidatePath(id="long", path=long_path)], frames_per_path=400, new_snapshot=True)
        feedback = []
        deadline = time.monotonic() + 60.0
        while not any(f.stage == "generate" for f in feedback) and time.monotonic() < deadline:
            cam.publish()  # until a snapshot succeeds and the first goal is generating
            fut = client.send_goal_async(goal, feedback_callback=lambda fb: feedback.append(fb.feedback))
            assert peer.wait(fut.done, 10.0), "no answer to the goal"
            peer.wait(lambda: any(f.stage == "generate" for f in feedback), 5.0)
        assert any(f.stage == "generate" for f in feedback), "the long goal never started generating"
        queued = [client.send_goal_async(goal) for _ in range(2)]
        assert peer.wait(lambda: all(q.done() for q in queued), 10.0), "queued goals not answered"
        assert all(q.result().accepted for q in queued)
        t0 = time.monotonic()
        node.terminate()
        out, _ = node.communicate(timeout=15)
        seconds = time.monotonic() - t0
        assert node.returncode == 0, out[-3000:]
        assert seconds < 10.0, f"exit took {seconds:.1f} s"
        print(f"SIGTERM with 1 running + 2 queued goals: exited in {seconds:.2f} s")
    finally:
        if node.poll() is None:
            stop(node)
