"""replay_node: publish a folder of RGB-D frames + poses as a camera would, so demos and tests need none.

Publishes ``image`` (rgb8), ``depth`` (16UC1, mm), ``camera_info`` (sensor-data QoS, all three with
the same stamp and the camera's optical frame) and the camera pose on /tf, at ``rate_hz``. With
``base_frame`` empty the pose is ``fixed_frame`` -> ``camera_frame``; otherwise the folder's camera
poses are replayed as a robot would publish them: ``fixed_frame`` -> ``base_frame`` on /tf and the
mounting extrinsic ``base_frame`` -> ``camera_frame`` (``base_to_camera``: x, y, z, qx, qy, qz, qw; the
default is a camera at the base origin with REP 103 optical axes) on /tf_static.

A frame that cannot be read (corrupt image, missing or malformed pose file) is skipped: nothing is
published for it, ``skipped`` counts it and a throttled warning names the file (``frame.unreadable``).
Parameters are declared with typed descriptors and ranges; a value out of range (``stride`` 0, a
negative ``first_frame``) stops the node with exit code 2 and one line naming the parameter.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, Pose, Quaternion
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from worldstereo_ros.datasets.tum_rgbd import open_rgbd_sequence
from worldstereo_ros.errors import WorldStereoError
from worldstereo_ros.ros.conversions.camera_info import intrinsics_to_camera_info
from worldstereo_ros.ros.conversions.image import depth_to_image, numpy_to_image
from worldstereo_ros.ros.conversions.transforms import make_transform_stamped, pose_to_matrix
from worldstereo_ros.ros.diagnostics import ProblemLog
from worldstereo_ros.ros.node_main import run_node
from worldstereo_ros.ros.parameters import REPLAY_NODE_PARAMS, declare_params
from worldstereo_ros.ros.path_parameters import confine_path_parameters
from worldstereo_ros.ros.tf import TfBroadcaster


class ReplayNode(Node):
    """Replays frames ``first_frame``, ``first_frame + stride``, ... of ``folder``."""

    def __init__(self, **kwargs) -> None:
        super().__init__("replay_node", **kwargs)
        # ConfigError naming the parameter when out of range or when folder lies outside allowed_roots
        value = confine_path_parameters(declare_params(self, REPLAY_NODE_PARAMS))
        self.folder_path = value["folder"]
        self.rate_hz = value["rate_hz"]
        self.fixed_frame = value["fixed_frame"]
        self.camera_frame = value["camera_frame"]
        self.first_frame = value["first_frame"]
        self.stride = value["stride"]
        self.max_frames = value["max_frames"]
        self.loop = value["loop"]
        self.base_frame = value["base_frame"]
        extrinsic = list(value["base_to_camera"])
        self.problems = ProblemLog(self.get_logger())
        self.folder = open_rgbd_sequence(self.folder_path)
        self.frames = [i for i in self.folder.indices if i >= self.first_frame][:: self.stride]
        if self.max_frames > 0:
            self.frames = self.frames[: self.max_frames]
        self.pub_image = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.pub_depth = self.create_publisher(Image, "depth", qos_profile_sensor_data)
        self.pub_info = self.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.tf = TfBroadcaster(self)
        self.T_base_cam = None
        if self.base_frame:
            if len(extrinsic) != 7:
                raise WorldStereoError(f"base_to_camera: expected 7 numbers (x y z qx qy qz qw), got {len(extrinsic)}")
            self.T_base_cam = pose_to_matrix(Pose(position=Point(x=extrinsic[0], y=extrinsic[1], z=extrinsic[2]),
                                                  orientation=Quaternion(x=extrinsic[3], y=extrinsic[4],
                                                                         z=extrinsic[5], w=extrinsic[6])),
                                             "base_to_camera")
            self.tf.send_static([make_transform_stamped(self.base_frame, self.camera_frame, self.T_base_cam,
                                                        self.get_clock().now().to_msg())])
        self.published = 0
        self.skipped = 0
        self._cursor = 0
        self.create_timer(1.0 / self.rate_hz, self._tick)
        self.get_logger().info(f"replaying {len(self.frames)} frames of {self.folder_path} at {self.rate_hz} Hz")

    def _tick(self) -> None:
        if self._cursor >= len(self.frames):
            if not self.loop:
                return
            self._cursor = 0
        index = self.frames[self._cursor]
        self._cursor += 1
        try:
            frame = self.folder.read(index)
        except (WorldStereoError, OSError, ValueError) as err:
            # one bad file on disk must not end a replay that a demo or a test depends on
            self.skipped += 1
            self.problems.report("frame.unreadable", f"frame {index} skipped: {err}")
            return
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.camera_frame)
        # TF first, so a subscriber pairing the images finds the pose at their stamp.
        if self.T_base_cam is None:
            self.tf.send([make_transform_stamped(self.fixed_frame, self.camera_frame, frame.T_world_cam, header.stamp)])
        else:
            T_world_base = frame.T_world_cam @ np.linalg.inv(self.T_base_cam)
            self.tf.send([make_transform_stamped(self.fixed_frame, self.base_frame, T_world_base, header.stamp)])
        self.pub_info.publish(intrinsics_to_camera_info(frame.K, frame.rgb.shape[1], frame.rgb.shape[0], header))
        self.pub_depth.publish(depth_to_image(frame.depth, "16UC1", header))
        self.pub_image.publish(numpy_to_image(frame.rgb, "rgb8", header))
        self.published += 1


def main(args: list[str] | None = None) -> int:
    return run_node(ReplayNode, "replay_node", args)


if __name__ == "__main__":
    raise SystemExit(main())
