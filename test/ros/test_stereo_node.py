"""stereo_node over real DDS, two processes (issue 16): the test plays an RGB-D camera and consumes the stereo
outputs the way stereo_image_proc does (baseline from the right P, depth = f * T / d from DisparityImage).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
stereo_msgs = pytest.importorskip("stereo_msgs.msg", reason="stereo_msgs not generated (run scripts/setup.sh)")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from node_processes import stop  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from spun_node import SpunNode  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from worldstereo_ros.ros.conversions.camera_info import intrinsics_to_camera_info  # noqa: E402
from worldstereo_ros.ros.conversions.image import depth_to_image, image_to_numpy, numpy_to_image  # noqa: E402
from worldstereo_ros.ros.stereo_node import OUTPUT_QOS  # noqa: E402
from worldstereo_ros.ros.tf import TF_STATIC_QOS  # noqa: E402

W, H, BASELINE = 80, 60, 0.12
K = np.array([[70.0, 0.0, 39.5], [0.0, 70.0, 29.5], [0.0, 0.0, 1.0]])


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A textured wall at 3 m with a box at 1.2 m, a few pixels without depth."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(30, 220, (H, W, 3), dtype=np.uint8)
    depth = np.full((H, W), 3.0, np.float32)
    depth[20:40, 30:50] = 1.2
    depth[5:8, 5:8] = 0.0
    return rgb, depth


class Consumer(SpunNode):
    """The test's own node: a camera publisher and a stereo consumer, spun on a background thread."""

    def __init__(self) -> None:
        super().__init__("stereo_test_consumer")
        self.got: dict[str, list] = {k: [] for k in ("left", "right", "left_info", "right_info", "disparity",
                                                        "occlusion", "diag", "tf")}
        n = self.node
        n.create_subscription(Image, "left/image_rect", self.got["left"].append, OUTPUT_QOS)
        n.create_subscription(Image, "right/image_rect", self.got["right"].append, OUTPUT_QOS)
        n.create_subscription(CameraInfo, "left/camera_info", self.got["left_info"].append, OUTPUT_QOS)
        n.create_subscription(CameraInfo, "right/camera_info", self.got["right_info"].append, OUTPUT_QOS)
        n.create_subscription(Image, "right/occlusion", self.got["occlusion"].append, OUTPUT_QOS)
        n.create_subscription(stereo_msgs.DisparityImage, "disparity", self.got["disparity"].append, OUTPUT_QOS)
        n.create_subscription(DiagnosticArray, "/diagnostics", self.got["diag"].append, 10)
        n.create_subscription(TFMessage, "/tf_static", self.got["tf"].append, TF_STATIC_QOS)
        self.pub_image = n.create_publisher(Image, "image", 5)
        self.pub_depth = n.create_publisher(Image, "depth", 5)
        self.pub_info = n.create_publisher(CameraInfo, "camera_info", 5)
        self.start()

    def publish(self, sec: int, rgb: np.ndarray, depth: np.ndarray, info_size=(W, H), depth_encoding="32FC1") -> Header:
        header = Header(frame_id="camera_optical")
        header.stamp.sec, header.stamp.nanosec = sec, 250_000_000
        self.pub_info.publish(intrinsics_to_camera_info(K, info_size[0], info_size[1], header))
        if depth_encoding == "16UC1":
            self.pub_depth.publish(numpy_to_image((depth * 1000).astype(np.uint16), "16UC1", header))
        else:
            self.pub_depth.publish(depth_to_image(depth, "32FC1", header))
        self.pub_image.publish(numpy_to_image(rgb, "rgb8", header))
        return header

    def node_is_up(self) -> bool:
        """stereo_node subscribes to all three camera streams and these publishers have matched them."""
        return all(p.get_subscription_count() > 0 for p in (self.pub_image, self.pub_depth, self.pub_info))


@pytest.fixture()
def consumer():
    c = Consumer()
    yield c
    c.close()


def _start_node() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "worldstereo_ros.ros.stereo_node", "--ros-args",
                             "-p", f"baseline_m:={BASELINE}", "-p", "input_reliability:=reliable",
                             "-p", "sync_tolerance_s:=0.001", "-p", "diagnostics_period_s:=0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stamp(header) -> tuple[int, int]:
    return header.stamp.sec, header.stamp.nanosec


def test_stereo_outputs_as_stereo_image_proc_reads_them(consumer):
    node = _start_node()
    try:
        assert consumer.wait(consumer.node_is_up, 90.0), f"stereo_node not up within 90 s\n{stop(node)[-3000:]}"
        rgb, depth = _scene()
        sec = 100
        while not consumer.got["disparity"]:  # discovery may lose the first frames: resend until outputs come
            consumer.publish(sec, rgb, depth)
            if consumer.wait(lambda: bool(consumer.got["disparity"]), 3.0) or sec > 110:
                break
            sec += 1
        assert consumer.wait(lambda: all(consumer.got[k] for k in ("left", "right", "left_info", "right_info",
                                                                    "disparity", "occlusion")), 60.0), (
            f"outputs missing: { {k: len(v) for k, v in consumer.got.items()} }\n{stop(node)[-3000:]}")
        info_l, info_r = consumer.got["left_info"][-1], consumer.got["right_info"][-1]
        disp = consumer.got["disparity"][-1]
        right = consumer.got["right"][-1]
        stamp = _stamp(disp.header)
        # every output carries an input stamp
        sent = {(s, 250_000_000) for s in range(100, sec + 1)}
        for msg in (info_l, info_r, disp, disp.image, right, consumer.got["left"][-1]):
            assert _stamp(msg.header) in sent
        # frames: left outputs in the camera's frame, right ones in <frame>_right
        assert info_l.header.frame_id == disp.header.frame_id == "camera_optical"
        assert info_r.header.frame_id == right.header.frame_id == "camera_optical_right"
        # CameraInfo as stereo_image_proc's StereoCameraModel reads it: baseline = -Tx / fx
        P_l, P_r = np.array(info_l.p).reshape(3, 4), np.array(info_r.p).reshape(3, 4)
        np.testing.assert_allclose(P_l[:, :3], K)
        assert P_l[0, 3] == 0.0
        assert P_r[0, 3] == pytest.approx(-K[0, 0] * BASELINE)
        assert -P_r[0, 3] / P_r[0, 0] == pytest.approx(BASELINE)
        np.testing.assert_allclose(P_r[:, :3], K)  # same principal point: zero doffs
        assert (info_r.width, info_r.height) == (W, H) and list(info_r.d) == [0.0] * 5
        # DisparityImage fields
        assert (disp.image.encoding, disp.image.width, disp.image.height) == ("32FC1", W, H)
        assert disp.f == pytest.approx(K[0, 0]) and disp.t == pytest.approx(BASELINE)
        assert (disp.valid_window.width, disp.valid_window.height) == (W, H)
        assert 0 <= disp.min_disparity < disp.max_disparity and disp.delta_d > 0
        d = image_to_numpy(disp.image)
        valid = d >= disp.min_disparity
        assert valid.mean() > 0.95
        # depth = f * T / d gives back the input depth wherever it was measured
        known = depth > 0
        np.testing.assert_allclose(disp.f * disp.t / d[known], depth[known], rtol=1e-4)
        # the near box shifts left by f * T / 1.2 = 7 px in the right image
        r = image_to_numpy(right)
        np.testing.assert_array_equal(r[30, 30 - 7 + 2], rgb[30, 32])
        # the right camera frame on /tf_static
        assert consumer.wait(lambda: any(t.child_frame_id == "camera_optical_right" for m in consumer.got["tf"]
                                         for t in m.transforms), 5.0)
        tf = next(t for m in consumer.got["tf"] for t in m.transforms if t.child_frame_id == "camera_optical_right")
        assert tf.header.frame_id == "camera_optical"
        assert tf.transform.translation.x == pytest.approx(BASELINE)
        print(f"stamp {stamp}: stereo outputs checked")
    finally:
        stop(node)


def test_bad_input_is_logged_counted_and_never_fatal(consumer):
    node = _start_node()
    try:
        assert consumer.wait(consumer.node_is_up, 90.0), f"stereo_node not up within 90 s\n{stop(node)[-3000:]}"
        # the node's own publishers matched too (its diagnostics arrive), rather than a fixed sleep
        assert consumer.wait(lambda: bool(consumer.got["diag"]), 60.0), (
            f"no /diagnostics from stereo_node within 60 s\n{stop(node)[-3000:]}")
        rgb, depth = _scene()
        def dropped() -> int:
            for arr in consumer.got["diag"][::-1]:
                for status in arr.status:
                    values = {v.key: v.value for v in status.values}
                    if "frames_dropped" in values:
                        return int(values["frames_dropped"])
            return 0

        # one at a time: the node's input history is 2 frames deep, a burst would drop the oldest in DDS
        bad = [dict(depth=depth[:, :-1]),  # depth of another size
               dict(depth=np.zeros_like(depth)),  # no valid depth
               dict(depth=depth, info_size=(W + 2, H))]  # camera_info of another size
        for i, kwargs in enumerate(bad):
            consumer.publish(200 + i, rgb, **kwargs)
            assert consumer.wait(lambda: dropped() >= i + 1, 60.0), (
                f"bad frame {i} not counted in frames_dropped within 60 s (dropped={dropped()})\n{stop(node)[-3000:]}")
        assert node.poll() is None, "stereo_node exited on bad input"
        assert not consumer.got["disparity"]
        sec = 210
        while not consumer.got["disparity"] and sec < 220:  # a good frame (16UC1 depth) still works
            consumer.publish(sec, rgb, depth, depth_encoding="16UC1")
            consumer.wait(lambda: bool(consumer.got["disparity"]), 3.0)
            sec += 1
        assert consumer.got["disparity"], stop(node)[-3000:]
        assert _stamp(consumer.got["disparity"][-1].header)[0] >= 210
    finally:
        out = stop(node)
    assert "frame dropped" in out  # logged, with the field named
    assert "depth" in out
