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
