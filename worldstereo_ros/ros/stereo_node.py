"""stereo_node: a stereo camera made from one RGB-D camera, for stereo_image_proc and stereo-only consumers.

Subscribes ``image`` (rgb8/bgr8/mono8), ``depth`` (32FC1 metres or 16UC1 millimetres, registered to the
image) and ``camera_info`` (rectified: zero distortion), paired by stamp. Per matched frame it runs
:class:`~worldstereo_ros.stereo.processor.StereoProcessor` and publishes, all with the input image's stamp:

* ``left/image_rect`` (rgb8), ``left/camera_info`` (``P = [K | 0]``) in the image's frame;
* ``right/image_rect`` (rgb8), ``right/camera_info`` (``P = [K | (Tx, 0, 0)]``, ``Tx = -fx * baseline_m``,
  as stereo_image_proc reads the baseline) in ``right_frame`` (default ``<image frame>_right``), which is
  published on /tf_static as the left frame shifted by ``+baseline_m`` along x;
* ``right/occlusion`` (mono8, 255 = filled, not observed);
* ``disparity`` (stereo_msgs/DisparityImage of the *left* view, 32FC1 pixels, ``f = fx``, ``t = baseline``),
  the field layout stereo_image_proc's point_cloud node consumes.

Bad input (wrong encoding, size mismatch, distortion, no valid depth) is logged (throttled), counted on
/diagnostics and dropped; it never stops the node. Parameters: :data:`STEREO_NODE_PARAMS`.
"""

from __future__ import annotations

import collections
import threading

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, RegionOfInterest
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from worldstereo_ros.errors import WorldStereoError
from worldstereo_ros.ros.conversions.image import numpy_to_image
from worldstereo_ros.ros.conversions.rgbd import rgbd_from_messages
from worldstereo_ros.ros.diagnostics import ProblemLog
from worldstereo_ros.ros.frame_sync import FrameSynchronizer, SyncedFrame
from worldstereo_ros.ros.node_main import run_node
from worldstereo_ros.ros.parameters import ParamSpec, declare_params, validate_params
from worldstereo_ros.ros.parameters import markdown_table as parameters_table
from worldstereo_ros.ros.tf import TfBroadcaster, stamp_to_ns
from worldstereo_ros.stereo.processor import StereoProcessor, StereoSettings

STEREO_NODE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("baseline_m", 0.065, "Baseline of the virtual stereo rig; 0 = derive it from strength "
              "(once, from the first frame's depth range).", "m", 0.0, 2.0),
    ParamSpec("strength", 0.03, "Stereo deviation strength: the scene's disparity range as a fraction of "
              "the image width (used when baseline_m is 0).", "", 0.001, 0.5),
    ParamSpec("fill", "classical", "Occlusion filler: classical (background push-pull), background-telea, "
              "telea, the render_fill generator backend, or learned (the learned FillNet as the occlusion "
              "refiner, run at 0.4 of the image size: >= 5 Hz at 640x480).",
              choices=("classical", "background-telea", "telea", "render_fill", "learned")),
    ParamSpec("temporal", False, "Propagate occlusion masks and fills along the video by optical flow and "
              "filter the whole right view recurrently (flow-warped previous output): about 40 % less flicker "
              "(E_warp) at about half the frame rate; off by default so a 640x480 camera keeps 10 Hz on a small "
              "CPU."),
    ParamSpec("right_frame", "", "Frame id of the right camera; empty = <image frame>_right."),
    ParamSpec("publish_tf", True, "Publish the left -> right camera transform on /tf_static."),
    ParamSpec("sync_tolerance_s", 0.02, "Largest stamp difference between image, depth and camera_info "
              "paired into one frame.", "s", 0.0, 1.0),
    ParamSpec("input_reliability", "best_effort", "Reliability of the camera subscriptions.",
              choices=("best_effort", "reliable"), read_only=True),
    ParamSpec("input_depth", 2, "History depth of the camera subscriptions (small: the node keeps up or "
              "drops the oldest frames).", "messages", 1, 100, read_only=True),
    ParamSpec("diagnostics_period_s", 1.0, "Period of /diagnostics.", "s", 0.1, 60.0),
)
#: Outputs: reliable, a short history; consumers that fall behind lose the oldest frames.
OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def validate(values: dict) -> dict:
    """Check a full or partial stereo_node parameter dict; unknown names and bad values raise ConfigError."""
    return validate_params(STEREO_NODE_PARAMS, values)


def markdown_table() -> str:
    """The README's parameter table of stereo_node (``python -m worldstereo_ros.ros.stereo_node --params``)."""
    return parameters_table(STEREO_NODE_PARAMS)


def settings_from(p: dict) -> StereoSettings:
    return StereoSettings(baseline_m=p["baseline_m"], strength=p["strength"], fill=p["fill"], temporal=p["temporal"])


def camera_info_for(K: np.ndarray, P: np.ndarray, width: int, height: int, header: Header) -> CameraInfo:
    """A rectified CameraInfo: zero distortion, identity R, the given K (3x3) and P (3x4)."""
    msg = CameraInfo(header=header, width=int(width), height=int(height), distortion_model="plumb_bob")
    msg.d = [0.0] * 5
    msg.k = np.asarray(K, dtype=np.float64).reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = np.asarray(P, dtype=np.float64).reshape(-1).tolist()
    return msg


def disparity_message(disparity: np.ndarray, fx: float, baseline_m: float, header: Header) -> DisparityImage:
    """stereo_msgs/DisparityImage of a left-view disparity (H, W) float32 pixels; NaN pixels become -1
    (below min_disparity, which stereo consumers treat as invalid)."""
    disp = np.asarray(disparity, dtype=np.float32)
    valid = np.isfinite(disp) & (disp > 0)
    lo = float(np.floor(disp[valid].min())) if valid.any() else 0.0
    hi = float(np.ceil(disp[valid].max())) if valid.any() else 1.0
    msg = DisparityImage(header=header, f=float(fx), t=float(baseline_m))
    msg.image = numpy_to_image(np.where(valid, disp, np.float32(-1.0)).astype(np.float32), "32FC1", header)
    msg.valid_window = RegionOfInterest(x_offset=0, y_offset=0, height=disp.shape[0], width=disp.shape[1])
    msg.min_disparity, msg.max_disparity = max(lo, 0.0), max(hi, lo + 1.0)
    msg.delta_d = 1.0 / 16.0  # sub-pixel: disparities come from metric depth, not a block matcher
    return msg


class StereoNode(Node):
    """See the module doc."""

    def __init__(self, **kwargs) -> None:
        super().__init__("stereo_node", **kwargs)
        self.p = self._declare()
        self.problems = ProblemLog(self.get_logger())
        self.stats = collections.Counter()
        self._lock = threading.Lock()
        self.processor = StereoProcessor(settings_from(self.p))
        self.sync = FrameSynchronizer(int(self.p["sync_tolerance_s"] * 1e9))
        self.tf_out = TfBroadcaster(self)
        self._tf_sent: tuple | None = None
        qos_in = QoSProfile(depth=self.p["input_depth"], history=HistoryPolicy.KEEP_LAST,
                            reliability=(ReliabilityPolicy.BEST_EFFORT if self.p["input_reliability"] == "best_effort"
                                         else ReliabilityPolicy.RELIABLE))
        for stream, kind in (("image", Image), ("depth", Image), ("camera_info", CameraInfo)):
            self.create_subscription(kind, stream, lambda m, s=stream: self._on_message(s, m), qos_in)
        self.pub_left = self.create_publisher(Image, "left/image_rect", OUTPUT_QOS)
        self.pub_right = self.create_publisher(Image, "right/image_rect", OUTPUT_QOS)
        self.pub_left_info = self.create_publisher(CameraInfo, "left/camera_info", OUTPUT_QOS)
        self.pub_right_info = self.create_publisher(CameraInfo, "right/camera_info", OUTPUT_QOS)
        self.pub_occlusion = self.create_publisher(Image, "right/occlusion", OUTPUT_QOS)
        self.pub_disparity = self.create_publisher(DisparityImage, "disparity", OUTPUT_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.p["diagnostics_period_s"], self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.get_logger().info(f"stereo_node ready: baseline {self.p['baseline_m']} m (0 = from strength "
                               f"{self.p['strength']}), fill {self.p['fill']}, temporal {self.p['temporal']}")

    # ------------------------------------------------------------------ parameters
    def _declare(self) -> dict:
        values = declare_params(self, STEREO_NODE_PARAMS)
        settings_from(values)  # an impossible combination stops the start with a ConfigError (exit code 2)
        return values

    def _validate_parameters(self, params):

        try:
            updates = validate({p.name: p.value for p in params})
            settings_from({**self.p, **updates})
        except WorldStereoError as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        with self._lock:
            self.p.update({p.name: p.value for p in params})
            if self.p["sync_tolerance_s"] * 1e9 != self.sync.tolerance_ns:
                self.sync = FrameSynchronizer(int(self.p["sync_tolerance_s"] * 1e9))
            self.processor = StereoProcessor(settings_from(self.p))  # a new rig: forget the previous frames
            self._tf_sent = None

    # ------------------------------------------------------------------ frames
    def _on_message(self, stream: str, msg) -> None:
        try:
            self.stats[f"received.{stream}"] += 1
            frame = self.sync.add(stream, stamp_to_ns(msg.header.stamp), msg)
            if frame is not None:
                self._process(frame)
        except WorldStereoError as err:
            self.stats["frames_dropped"] += 1
            self.problems.report(f"input.{getattr(err, 'field', 'frame')}", f"frame dropped: {err}")
        except Exception as err:  # a message must never stop the node
            self.stats["frames_dropped"] += 1
            self.problems.report("frame.failed", f"frame dropped: {type(err).__name__}: {err}", "error")

    def _process(self, frame: SyncedFrame) -> None:
        rgb, depth, K = rgbd_from_messages(frame.image, frame.depth, frame.camera_info)
        with self._lock:
            result = self.processor.process(rgb, depth, K)
            right_frame = self.p["right_frame"] or f"{frame.image.header.frame_id}_right"
            publish_tf = self.p["publish_tf"]
        rig, view = result.rig, result.view
        stamp = frame.image.header.stamp  # every output carries the input's stamp
        left_header = Header(stamp=stamp, frame_id=frame.image.header.frame_id)
        right_header = Header(stamp=stamp, frame_id=right_frame)
        h, w = view.occlusion.shape
        right_u8 = (view.right * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        self.pub_left.publish(numpy_to_image(rgb, "rgb8", left_header))
        self.pub_left_info.publish(camera_info_for(rig.K, rig.P_left, w, h, left_header))
        self.pub_right.publish(numpy_to_image(right_u8, "rgb8", right_header))
        self.pub_right_info.publish(camera_info_for(rig.K_right, rig.P_right, w, h, right_header))
        self.pub_occlusion.publish(numpy_to_image(view.occlusion.astype(np.uint8) * 255, "mono8", right_header))
        self.pub_disparity.publish(disparity_message(view.left_disparity, rig.fx, rig.baseline_m, left_header))
        key = (left_header.frame_id, right_frame, rig.baseline_m)
        if publish_tf and key != self._tf_sent and left_header.frame_id:
            self.tf_out.send_static([self.tf_out.make(left_header.frame_id, right_frame, rig.T_left_right, stamp)])
            self._tf_sent = key
        self.stats["frames_published"] += 1

    def _publish_diagnostics(self) -> None:
        values = {k: str(v) for k, v in sorted(self.stats.items())}
        rig = self.processor.rig
        values["baseline_m"] = f"{rig.baseline_m:.4f}" if rig is not None else "not set yet"
        self.pub_diag.publish(self.problems.diagnostic_array(self.get_clock().now().to_msg(),
                                                                f"{self.get_name()}: stereo",
                                                             self.get_fully_qualified_name(), values))


def main(args: list[str] | None = None) -> int:
    return run_node(StereoNode, "stereo_node", args)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--params"]:
        print(markdown_table())
        raise SystemExit(0)
    raise SystemExit(main())
