"""Pinhole and equirectangular cameras, and the optical/body/OpenGL frame helpers."""

import math

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.cameras import EquirectCamera, PinholeCamera
from worldstereo_ros.geometry.frames import (
    T_LINK_OPTICAL,
    link_to_optical,
    opencv_to_opengl,
    opengl_to_opencv,
    optical_to_link,
)


def test_from_fov_and_back():
    cam = PinholeCamera.from_fov(640, 480, 90.0)
    assert cam.fx == pytest.approx(320.0)
    assert cam.hfov_deg() == pytest.approx(90.0)
    assert (cam.cx, cam.cy) == (319.5, 239.5)
    again = PinholeCamera.from_K(cam.K, 640, 480)
    assert again == cam


def test_resize_keeps_the_rays_of_pixel_corners():
    cam = PinholeCamera(500.0, 510.0, 320.0, 240.0, 640, 480)
    half = cam.resized(320, 240)
    # the ray through the image's left edge (u = -0.5) is the same in both images
    assert (-0.5 - cam.cx) / cam.fx == pytest.approx((-0.5 - half.cx) / half.fx)
    assert (479.5 - cam.cy) / cam.fy == pytest.approx((239.5 - half.cy) / half.fy)
    crop = cam.cropped(100, 50, 200, 100)
    assert (crop.cx, crop.cy, crop.width, crop.height) == (220.0, 190.0, 200, 100)
    with pytest.raises(InputError, match="crop"):
        cam.cropped(600, 0, 100, 100)


@pytest.mark.parametrize("kwargs, field", [
    (dict(fx=0.0, fy=1.0, cx=0, cy=0, width=4, height=4), "fx"),
    (dict(fx=1.0, fy=1.0, cx=math.nan, cy=0, width=4, height=4), "cx"),
    (dict(fx=1.0, fy=1.0, cx=0, cy=0, width=0, height=4), "width"),
])
def test_bad_pinhole_is_rejected(kwargs, field):
    with pytest.raises(InputError, match=field):
        PinholeCamera(**kwargs)


def test_from_K_rejects_skew_and_bad_shapes():
    with pytest.raises(InputError, match="K"):
        PinholeCamera.from_K(np.eye(4), 10, 10)
    with pytest.raises(InputError, match="K"):
        PinholeCamera.from_K([[1, 0.5, 0], [0, 1, 0], [0, 0, 1]], 10, 10)


def test_equirect_pixel_ray_round_trip_and_axes():
    cam = EquirectCamera(64, 32)
    rays = cam.rays()
    uv = cam.ray_to_pixel(rays)
    v, u = torch.meshgrid(torch.arange(32.0, dtype=torch.float64), torch.arange(64.0, dtype=torch.float64),
                          indexing="ij")
    np.testing.assert_allclose(uv[..., 0].numpy(), u.numpy(), atol=1e-9)
    np.testing.assert_allclose(uv[..., 1].numpy(), v.numpy(), atol=1e-9)
    # the image centre looks forward (+z), the top row looks up (-y), the right quarter looks right (+x)
    fwd = cam.ray_to_pixel(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    np.testing.assert_allclose(fwd.numpy(), [31.5, 15.5], atol=1e-9)
    right = cam.ray_to_pixel(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    np.testing.assert_allclose(right.numpy(), [47.5, 15.5], atol=1e-9)
    assert float(rays[0, 0, 1]) < -0.99
    with pytest.raises(InputError, match="2:1"):
        EquirectCamera(60, 32)


def test_rep103_optical_frame():
    # optical z (forward) is body x, optical x (right) is body -y, optical y (down) is body -z
    np.testing.assert_allclose(T_LINK_OPTICAL[:3, 2], [1, 0, 0])
    np.testing.assert_allclose(T_LINK_OPTICAL[:3, 0], [0, -1, 0])
    np.testing.assert_allclose(T_LINK_OPTICAL[:3, 1], [0, 0, -1])
    T = torch.randn(4, 4, dtype=torch.float64)
    np.testing.assert_allclose(optical_to_link(link_to_optical(T)).numpy(), T.numpy(), atol=1e-12)
    np.testing.assert_allclose(opengl_to_opencv(opencv_to_opengl(T)).numpy(), T.numpy(), atol=1e-12)
    gl = opencv_to_opengl(torch.eye(4, dtype=torch.float64))
    np.testing.assert_allclose(gl[:3, 2].numpy(), [0, 0, -1])  # OpenGL looks down its -z
