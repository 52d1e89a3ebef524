"""Recording topics to MCAP in another process and reading them back with mcap_ros2 (issue 5, item 3)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
from geometry_msgs.msg import PoseArray  # noqa: E402
from mcap_ros2.reader import read_ros2_messages  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from worldstereo_ros.msg import ImaginedView  # noqa: E402
from worldstereo_ros.ros.conversions.image import rgb_to_image  # noqa: E402
from worldstereo_ros.ros.conversions.transforms import matrices_to_pose_array  # noqa: E402
from worldstereo_ros.ros.mcap_recorder import message_definition  # noqa: E402


def test_definition_has_every_dependency_once():
    text = message_definition("worldstereo_ros/msg/ImaginedView")
    blocks = [line for line in text.splitlines() if line.startswith("MSG: ")]
    assert len(blocks) == len(set(blocks))
    assert {"MSG: sensor_msgs/Image", "MSG: std_msgs/Header", "MSG: builtin_interfaces/Time",
            "MSG: geometry_msgs/Pose"} <= set(blocks)


def test_record_and_read_back(tmp_path):
    out = tmp_path / "rollout.mcap"
    rclpy.init()
    node = rclpy.create_node("mcap_test_publisher")
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub_img = node.create_publisher(Image, "rec/image", 10)
    pub_poses = node.create_publisher(PoseArray, "rec/poses", latched)
    pub_view = node.create_publisher(ImaginedView, "rec/view", 10)
    proc = subprocess.Popen([sys.executable, "-m", "worldstereo_ros.cli", "record", str(out), "/rec/image",
                             "/rec/poses", "/rec/view", "--duration", "6"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rng = np.random.default_rng(0)
    images = [rng.random((6, 8, 3), dtype=np.float32) for _ in range(4)]
    T = np.repeat(np.eye(4)[None], 3, axis=0)
    T[:, 0, 3] = [0.0, 0.5, 1.0]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (pub_img.get_subscription_count() == 0
                                               or pub_view.get_subscription_count() == 0):
            rclpy.spin_once(node, timeout_sec=0.05)
        assert pub_img.get_subscription_count() > 0 and pub_view.get_subscription_count() > 0, (
            "the recorder did not subscribe to /rec/image and /rec/view within 60 s")
        pub_poses.publish(matrices_to_pose_array(T, Header(frame_id="map")))
        for k, img in enumerate(images):
            pub_img.publish(rgb_to_image(img, Header(frame_id=f"cam{k}")))
            pub_view.publish(ImaginedView(path_id="p", index=k, count=4, imagined_fraction=0.25))
            time.sleep(0.1)
    finally:
        text, _ = proc.communicate(timeout=30)
        node.destroy_node()
        rclpy.try_shutdown()
    assert proc.returncode == 0, text
    got: dict[str, list] = {}
    for m in read_ros2_messages(str(out)):
        got.setdefault(m.channel.topic, []).append(m.ros_msg)
        assert m.schema.encoding == "ros2msg" and m.channel.message_encoding == "cdr"
    assert len(got["/rec/image"]) == 4 and len(got["/rec/view"]) == 4 and len(got["/rec/poses"]) == 1
    for k, msg in enumerate(got["/rec/image"]):
        assert msg.header.frame_id == f"cam{k}" and (msg.width, msg.height, msg.encoding) == (8, 6, "rgb8")
        pixels = np.frombuffer(bytes(msg.data), np.uint8).reshape(6, 8, 3)
        np.testing.assert_array_equal(pixels, (np.clip(images[k], 0, 1) * 255 + 0.5).astype(np.uint8))
    assert [v.index for v in got["/rec/view"]] == [0, 1, 2, 3]
    assert got["/rec/poses"][0].poses[2].position.x == pytest.approx(1.0)


def test_header_stamp_is_read_from_the_cdr_bytes():
    from rclpy.serialization import serialize_message

    from worldstereo_ros.ros.mcap_recorder import header_stamp_ns, starts_with_header

    msg = Image(header=Header(frame_id="cam"))
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_000, 123
    assert header_stamp_ns(serialize_message(msg)) == 1_700_000_000 * 10**9 + 123
    assert header_stamp_ns(b"\x00\x00\x00\x00" + (7).to_bytes(4, "big") + (9).to_bytes(4, "big")) == 7 * 10**9 + 9
    assert header_stamp_ns(serialize_message(Image())) is None  # unset stamp: the receive time is used
    assert starts_with_header("sensor_msgs/msg/Image") and starts_with_header("geometry_msgs/msg/PoseArray")
    assert not starts_with_header("std_msgs/msg/String") and not starts_with_header("geometry_msgs/msg/Pose")


def test_recorder_in_process_typed_topics_and_all_topics(tmp_path):
    """Typed topics (a wrong type is skipped), publish_time = header stamp, and None = every visible topic."""
    from std_msgs.msg import String

    from worldstereo_ros.ros.mcap_recorder import McapRecorder

    rclpy.init()
    node = rclpy.create_node("mcap_inproc")
    try:
        pub_img = node.create_publisher(Image, "inproc/image", 10)
        pub_wrong = node.create_publisher(String, "inproc/wrong", 10)
        pub_text = node.create_publisher(String, "inproc/text", 10)
        typed = McapRecorder(node, tmp_path / "typed.mcap", [("/inproc/image", "sensor_msgs/msg/Image"),
                                                             ("/inproc/wrong", "sensor_msgs/msg/Image")])
        everything = McapRecorder(node, tmp_path / "all.mcap", None)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (pub_img.get_subscription_count() < 2
                                               or pub_text.get_subscription_count() < 1):
            rclpy.spin_once(node, timeout_sec=0.05)
            typed.poll_graph()
            everything.poll_graph()
        assert pub_img.get_subscription_count() == 2 and pub_wrong.get_subscription_count() == 1
        t0 = time.time_ns()
        for k in range(3):
            msg = rgb_to_image(np.full((2, 3, 3), k / 4.0, np.float32), Header(frame_id=f"cam{k}"))
            msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + k, 7
            pub_img.publish(msg)
            pub_wrong.publish(String(data="not an image"))
            pub_text.publish(String(data=f"text{k}"))
        deadline = time.monotonic() + 60  # its own deadline: discovery may have used most of the first
        while time.monotonic() < deadline and (typed.counts["/inproc/image"] < 3 or min(
                everything.counts.get(f"/inproc/{t}", 0) for t in ("image", "wrong", "text")) < 3):
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    typed.close()
    everything.close()
    images = [m for m in read_ros2_messages(str(tmp_path / "typed.mcap"))]
    assert {m.channel.topic for m in images} == {"/inproc/image"}
    assert [m.publish_time_ns for m in images] == [(100 + k) * 10**9 + 7 for k in range(3)]
    assert all(m.log_time_ns >= t0 for m in images)
    assert [m.ros_msg.header.frame_id for m in images] == ["cam0", "cam1", "cam2"]
    assert [bytes(m.ros_msg.data)[0] for m in images] == [0, 64, 128]
    got: dict[str, list] = {}
    for m in read_ros2_messages(str(tmp_path / "all.mcap")):
        got.setdefault(m.channel.topic, []).append(m.ros_msg)
    assert [m.data for m in got["/inproc/text"]] == ["text0", "text1", "text2"]
    assert len(got["/inproc/image"]) == 3 and len(got["/inproc/wrong"]) == 3
    assert not any(part.startswith("_") for t in got for part in t.split("/"))


def test_subscriber_first_graph_is_recorded_reliably_with_qos_metadata(tmp_path):
    """Issue 15: with a subscriber on the topic before its publisher, the recorder subscribed best-effort and
    never upgraded (17 of 100 reliable images recorded), and wrote no ``offered_qos_profiles``."""
    import yaml
    from mcap.reader import make_reader

    from worldstereo_ros.ros.mcap_recorder import McapRecorder

    rclpy.init()
    node = rclpy.create_node("mcap_subscriber_first")
    try:
        # 1. only a (best-effort) subscriber: the topic is on the graph, its publishers' QoS unknown
        node.create_subscription(Image, "first/image", lambda _: None,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
        recorder = McapRecorder(node, tmp_path / "first.mcap", ["/first/image"], qos_depth=200)
        for _ in range(5):
            rclpy.spin_once(node, timeout_sec=0.02)
            recorder.poll_graph()
        # 2. the reliable publisher appears; the recorder follows its offer
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        pub = node.create_publisher(Image, "first/image", reliable)
        deadline = time.monotonic() + 60
        mine = []
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
            recorder.poll_graph()
            mine = [i for i in node.get_subscriptions_info_by_topic("/first/image")
                    if i.qos_profile.reliability == ReliabilityPolicy.RELIABLE]
            if mine and pub.get_subscription_count() == 2:
                break
        assert len(mine) == 1, "the recorder's subscription never became reliable"
        for k in range(100):  # a burst: the recorder's history (qos_depth) holds all of it until spun
            pub.publish(rgb_to_image(np.full((8, 8, 3), k / 100.0, np.float32), Header(frame_id="cam")))
        deadline = time.monotonic() + 60  # its own deadline: discovery may have used most of the first
        while time.monotonic() < deadline and recorder.counts["/first/image"] < 100:
            rclpy.spin_once(node, timeout_sec=0.05)
        assert recorder.counts["/first/image"] == 100, (
            f"{recorder.counts['/first/image']} of 100 burst messages recorded within 60 s")
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    recorder.close()
    with open(tmp_path / "first.mcap", "rb") as f:
        channels = make_reader(f).get_summary().channels
    [channel] = [c for c in channels.values() if c.topic == "/first/image"]
    [offered] = yaml.safe_load(channel.metadata["offered_qos_profiles"])
    assert offered["reliability"] == int(ReliabilityPolicy.RELIABLE)  # depth is not discovered: rmw gives 0
    assert offered["durability"] == int(DurabilityPolicy.VOLATILE) and set(offered["deadline"]) == {"sec", "nsec"}
