"""Issue 16: stereo_node's message builders and parameter checks, without DDS."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
pytest.importorskip("stereo_msgs.msg", reason="stereo_msgs not generated (run scripts/setup.sh)")
from std_msgs.msg import Header  # noqa: E402

from worldstereo_ros.errors import ConfigError  # noqa: E402
from worldstereo_ros.geometry.stereo_rig import StereoRig  # noqa: E402
from worldstereo_ros.ros.conversions.image import image_to_numpy  # noqa: E402
from worldstereo_ros.ros.stereo_node import (  # noqa: E402
    STEREO_NODE_PARAMS,
    camera_info_for,
    disparity_message,
    settings_from,
    validate,
)

K = np.array([[200.0, 0.0, 63.5], [0.0, 200.0, 47.5], [0.0, 0.0, 1.0]])


def test_right_camera_info_carries_the_baseline_in_p():
    rig = StereoRig(K, 0.05)
    info = camera_info_for(rig.K_right, rig.P_right, 128, 96, Header(frame_id="cam_right"))
    P = np.array(info.p).reshape(3, 4)
    assert P[0, 3] == pytest.approx(-10.0)  # -fx * B
    assert list(info.r) == np.eye(3).reshape(-1).tolist() and list(info.d) == [0.0] * 5


def test_disparity_message_fields_and_invalid_pixels():
    disp = np.array([[2.0, 4.5], [np.nan, 3.0]], np.float32)
    msg = disparity_message(disp, 200.0, 0.05, Header(frame_id="cam"))
    img = image_to_numpy(msg.image)
    assert msg.image.encoding == "32FC1" and img[1, 0] < msg.min_disparity
    assert (msg.min_disparity, msg.max_disparity) == (2.0, 5.0)
    assert msg.f == 200.0 and msg.t == pytest.approx(0.05)
    np.testing.assert_allclose(msg.f * msg.t / img[0, 1], 200.0 * 0.05 / 4.5)
    assert np.isnan(disp[1, 0])  # input untouched


def test_parameter_checks():
    defaults = {p.name: p.default for p in STEREO_NODE_PARAMS}
    assert settings_from(validate(defaults)).baseline_m == 0.065
    with pytest.raises(ConfigError, match="fill"):
        validate({"fill": "magic"})
    for fill in ("render_fill", "learned"):  # the generator fills the node offers
        assert settings_from({**defaults, **validate({"fill": fill})}).fill == fill
    with pytest.raises(ConfigError, match="baseline_m"):
        validate({"baseline_m": -0.1})
    with pytest.raises(ConfigError, match="nonsense"):
        validate({"nonsense": 1})
    assert all(p.description for p in STEREO_NODE_PARAMS)


@pytest.mark.parametrize("fill", ["render_fill", "learned"])
def test_node_processes_a_frame_with_each_generator_fill(fill):
    # the node's whole per-frame path (decode, process, publish) in this process, no DDS transport
    import rclpy
    import torch
    from rclpy.parameter import Parameter

    from worldstereo_ros.ros.conversions.camera_info import intrinsics_to_camera_info
    from worldstereo_ros.ros.conversions.image import depth_to_image, numpy_to_image
    from worldstereo_ros.ros.frame_sync import SyncedFrame
    from worldstereo_ros.ros.stereo_node import StereoNode

    torch.set_num_threads(1)
    h, w = 96, 128
    rgb = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    depth = np.full((h, w), 2.0, np.float32)
    depth[30:60, 40:80] = 0.8  # a near block: occlusions to fill
    header = Header(frame_id="camera_optical")
    header.stamp.sec = 7
    frame = SyncedFrame(7, numpy_to_image(rgb, "rgb8", header), depth_to_image(depth, "32FC1", header),
                        intrinsics_to_camera_info(K, w, h, header))
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = StereoNode(context=context, parameter_overrides=[Parameter("fill", value=fill),
                                                                Parameter("baseline_m", value=0.05)])
        try:
            node._process(frame)
            assert node.stats["frames_published"] == 1
            assert node.processor.settings.fill == fill
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
