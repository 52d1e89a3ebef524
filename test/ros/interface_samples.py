"""Deterministic sample messages of every interface in msg/ and action/, plus a TFMessage.

Shared by the test process and its DDS peer (``interface_peer.py``) so both sides build the same
content independently and the test can compare what crossed the wire field by field.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseStamped, TransformStamped
from nav_msgs.msg import Path
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from worldstereo_ros.msg import CandidatePath, CandidatePaths, ImaginedView

STAMP = Time(sec=1_700_000_000, nanosec=123_456_789)


def _path(n: int, dx: float) -> Path:
    path = Path(header=Header(stamp=STAMP, frame_id="map"))
    for i in range(n):
        ps = PoseStamped(header=path.header)
        ps.pose.position.x = i * dx
        ps.pose.position.y = 0.25 * i
        ps.pose.orientation.z = float(np.sin(0.05 * i))
        ps.pose.orientation.w = float(np.cos(0.05 * i))
        path.poses.append(ps)
    return path


def sample_candidate_path() -> CandidatePath:
    return CandidatePath(id="left_aisle", path=_path(5, 0.5))


def sample_candidate_paths() -> CandidatePaths:
    return CandidatePaths(
        header=Header(stamp=STAMP, frame_id="map"),
        paths=[sample_candidate_path(), CandidatePath(id="right_aisle", path=_path(3, -0.4))],
    )


def sample_imagined_view() -> ImaginedView:
    h, w = 6, 8
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 4.0, size=(h, w)).astype(np.float32)
    mask = (rng.random((h, w)) > 0.7).astype(np.uint8) * 255
    cam_header = Header(stamp=STAMP, frame_id="imagined/left_aisle/3")
    info = CameraInfo(header=cam_header, height=h, width=w, distortion_model="plumb_bob")
    info.d = [0.0] * 5
    info.k = [5.0, 0.0, 4.0, 0.0, 5.0, 3.0, 0.0, 0.0, 1.0]
    info.p = [5.0, 0.0, 4.0, 0.0, 0.0, 5.0, 3.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    return ImaginedView(
        header=Header(stamp=STAMP, frame_id="map"),
        path_id="left_aisle",
        index=3,
        count=25,
        rgb=Image(header=cam_header, height=h, width=w, encoding="rgb8", step=w * 3, data=rgb.tobytes()),
        depth=Image(header=cam_header, height=h, width=w, encoding="32FC1", step=w * 4, data=depth.tobytes()),
        imagined_mask=Image(header=cam_header, height=h, width=w, encoding="mono8", step=w, data=mask.tobytes()),
        camera_info=info,
        pose=Pose(),
        imagined_fraction=float(np.float32((mask > 0).mean())),  # float32 on the wire
    )


def sample_tf_message() -> TFMessage:
    t = TransformStamped(header=Header(stamp=STAMP, frame_id="map"), child_frame_id="worldstereo_cache")
    t.transform.translation.x = 1.5
    t.transform.rotation.z = float(np.sin(0.3))
    t.transform.rotation.w = float(np.cos(0.3))
    return TFMessage(transforms=[t])


# topic -> (type, builder); the peer publishes each, the test checks each.
SAMPLES = {
    "candidate_path": (CandidatePath, sample_candidate_path),
    "candidate_paths": (CandidatePaths, sample_candidate_paths),
    "imagined_view": (ImaginedView, sample_imagined_view),
    "tf_sample": (TFMessage, sample_tf_message),
}
