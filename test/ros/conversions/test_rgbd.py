"""rgbd_from_messages: the one checked (image, depth, camera_info) -> numpy step of both nodes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage

from worldstereo_ros.errors import InputError
from worldstereo_ros.ros.conversions.camera_info import intrinsics_to_camera_info
from worldstereo_ros.ros.conversions.image import depth_to_image, numpy_to_image
from worldstereo_ros.ros.conversions.rgbd import rgbd_from_messages

K = np.array([[5.0, 0.0, 3.5], [0.0, 5.0, 2.5], [0.0, 0.0, 1.0]])


def _messages(depth_width: int = 8, info_width: int = 8):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return rgb, (numpy_to_image(rgb, "rgb8"), depth_to_image(np.full((6, depth_width), 1.5, np.float32)),
                 intrinsics_to_camera_info(K, info_width, 6))


def test_arrays_come_back_unchanged():
    rgb, msgs = _messages()
    out_rgb, depth, K_out = rgbd_from_messages(*msgs)
    np.testing.assert_array_equal(out_rgb, rgb)
    assert depth.dtype == np.float32 and np.all(depth == 1.5)
    np.testing.assert_allclose(K_out, K)


def test_compressed_png_colour():
    rgb, (_, depth, info) = _messages()
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    out_rgb, _, _ = rgbd_from_messages(CompressedImage(format="png", data=png.tobytes()), depth, info, True)
    np.testing.assert_array_equal(out_rgb, rgb)


@pytest.mark.parametrize("kwargs, match", [(dict(depth_width=7), "depth: size 7x6 differs"),
                                           (dict(info_width=10), "camera_info: size 10x6 differs")])
def test_sizes_that_disagree_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        rgbd_from_messages(*_messages(**kwargs)[1])


def test_distortion_is_refused():
    _, (image, depth, info) = _messages()
    info.d = [0.1, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(InputError, match="camera_info.d: distortion"):
        rgbd_from_messages(image, depth, info)
