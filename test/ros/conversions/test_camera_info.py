"""CameraInfo <-> intrinsics (issue 2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CameraInfo

from worldstereo_ros.errors import ConversionError
from worldstereo_ros.ros.conversions.camera_info import camera_info_to_intrinsics, intrinsics_to_camera_info

K = np.array([[585.0, 0, 320], [0, 585.0, 240], [0, 0, 1]])


def test_round_trip_and_projection_matrix():
    msg = intrinsics_to_camera_info(K, 640, 480)
    assert list(msg.p) == [585.0, 0, 320, 0, 0, 585.0, 240, 0, 0, 0, 1, 0]
    intr = camera_info_to_intrinsics(msg)
    np.testing.assert_array_equal(intr.K, K)
    assert (intr.width, intr.height, intr.distortion_model, intr.is_distorted) == (640, 480, "plumb_bob", False)


def test_rejects_bad_focal_and_size_and_reports_distortion():
    msg = intrinsics_to_camera_info(K, 640, 480)
    msg.k = [0.0, 0, 320, 0, 585, 240, 0, 0, 1]
    with pytest.raises(ConversionError, match="k: focal lengths must be positive, got fx=0.0"):
        camera_info_to_intrinsics(msg)
    msg = intrinsics_to_camera_info(K, 640, 480)
    msg.width = 0
    with pytest.raises(ConversionError, match="width: image size must be positive"):
        camera_info_to_intrinsics(msg)
    msg = intrinsics_to_camera_info(K, 640, 480)
    msg.d = [0.1, 0, 0, 0, 0]
    assert camera_info_to_intrinsics(msg).is_distorted
    with pytest.raises(ConversionError, match="K: expected a finite"):
        intrinsics_to_camera_info(-K, 640, 480)


@settings(max_examples=150, deadline=None)
@given(k=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=9, max_size=9),
       w=st.integers(0, 5000), h=st.integers(0, 5000))
def test_random_camera_info_raises_only_conversion_error(k, w, h):
    msg = CameraInfo(width=w, height=h)
    msg.k = k
    try:
        intr = camera_info_to_intrinsics(msg)
        assert intr.K[0, 0] > 0 and intr.K[1, 1] > 0 and np.isfinite(intr.K).all()
    except ConversionError:
        pass
