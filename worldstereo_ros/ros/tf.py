"""TF for the nodes: lookups through tf2_ros when installed, else through :class:`TransformTree`
fed by /tf and /tf_static; and a broadcaster with tf2's QoS conventions.

tf2's conventions: /tf is reliable, volatile, depth 100; /tf_static is reliable, transient-local
(late joiners get every static transform), and a static broadcaster republishes its whole set.
"""

from __future__ import annotations

import time

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from tf2_msgs.msg import TFMessage

from worldstereo_ros.ros.conversions.transforms import matrix_to_transform, transform_to_matrix
from worldstereo_ros.ros.transform_tree import TransformLookupError, TransformTree

TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                    history=HistoryPolicy.KEEP_LAST)
TF_STATIC_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)
TF_STATIC_LISTENER_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                    durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)

try:  # a full ROS 2 install
    import tf2_ros

    HAVE_TF2_ROS = True
except ImportError:  # the PyPI wheels
    HAVE_TF2_ROS = False


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class TfLookup:
    """``lookup(target, source, stamp_ns, timeout_s) -> T_target_source (4, 4)``, waiting up to the timeout.

    Raises TransformLookupError (with tf2_ros: its exceptions are translated) naming the frames.
    """

    def __init__(self, node: Node, cache_time_s: float = 30.0, force_builtin: bool = False) -> None:
        self._node = node
        self.uses_tf2_ros = HAVE_TF2_ROS and not force_builtin
        if self.uses_tf2_ros:
            self._buffer = tf2_ros.Buffer(cache_time=Duration(seconds=cache_time_s))
            self._listener = tf2_ros.TransformListener(self._buffer, node, spin_thread=False)
        else:
            self.tree = TransformTree(cache_time_s=cache_time_s)
            node.create_subscription(TFMessage, "/tf", lambda m: self._on_tf(m, False), TF_QOS)
            node.create_subscription(TFMessage, "/tf_static", lambda m: self._on_tf(m, True),
                                     TF_STATIC_LISTENER_QOS)
        self.rejected = 0

    def _on_tf(self, msg: TFMessage, static: bool) -> None:
        for t in msg.transforms:
            try:
                self.tree.set_transform(t.header.frame_id, t.child_frame_id, transform_to_matrix(t.transform),
                                        stamp_to_ns(t.header.stamp), static)
            except Exception as err:  # a bad transform from someone else must not stop the node
                self.rejected += 1
                self._node.get_logger().warn(f"ignored a TF transform: {err}", throttle_duration_sec=5.0)

    def lookup(self, target: str, source: str, stamp_ns: int = 0, timeout_s: float = 0.0) -> np.ndarray:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self._lookup_once(target, source, stamp_ns)
            except TransformLookupError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _lookup_once(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        if not self.uses_tf2_ros:
            return self.tree.lookup(target, source, stamp_ns)
        try:
            t = self._buffer.lookup_transform(target, source, Time(nanoseconds=stamp_ns))
        except tf2_ros.TransformException as err:
            raise TransformLookupError(str(err)) from None
        return transform_to_matrix(t.transform)


class TfBroadcaster:
    """Publishes dynamic transforms on /tf and keeps + republishes static ones on /tf_static."""

    def __init__(self, node: Node) -> None:
        self._pub = node.create_publisher(TFMessage, "/tf", TF_QOS)
        self._static_pub = node.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
        self._static: dict[str, TransformStamped] = {}

    @staticmethod
    def make(parent: str, child: str, T_parent_child: np.ndarray, stamp) -> TransformStamped:
        t = TransformStamped()
        t.header.frame_id, t.child_frame_id = parent, child
        t.header.stamp = stamp
        t.transform = matrix_to_transform(T_parent_child)
        return t

    def send(self, transforms: list[TransformStamped]) -> None:
        if transforms:
            self._pub.publish(TFMessage(transforms=transforms))

    def send_static(self, transforms: list[TransformStamped]) -> None:
        for t in transforms:
            self._static[t.child_frame_id] = t
        self._static_pub.publish(TFMessage(transforms=list(self._static.values())))
