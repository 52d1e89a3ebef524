"""geometry/inpaint.telea_inpaint: the one Telea fill (render_fill, learned prior, stereo fillers, baselines)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.inpaint import telea_inpaint


@pytest.fixture()
def scene() -> tuple[np.ndarray, np.ndarray]:
    rgb = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    holes = np.zeros((20, 30), bool)
    holes[5:9, 10:15] = True
    return rgb, holes


def test_holes_take_opencvs_telea_and_known_pixels_stay(scene):
    rgb, holes = scene
    reference = cv2.inpaint((rgb * 255.0 + 0.5).astype(np.uint8), holes.astype(np.uint8) * 255, 3.0,
                            cv2.INPAINT_TELEA)
    out = telea_inpaint(rgb, holes)
    assert out.dtype == np.float32 and out.shape == rgb.shape
    np.testing.assert_array_equal(out[holes] * 255.0, reference[holes].astype(np.float32))
    np.testing.assert_array_equal(out[~holes], rgb[~holes])
    np.testing.assert_array_equal(telea_inpaint(rgb, holes, keep_known=False) * 255.0, reference.astype(np.float32))


def test_no_holes_and_uint8_input(scene):
    rgb, holes = scene
    np.testing.assert_array_equal(telea_inpaint(rgb, np.zeros_like(holes)), rgb)
    u8 = (rgb * 255).astype(np.uint8)
    out = telea_inpaint(u8, holes)
    np.testing.assert_array_equal(out[~holes] * 255.0, u8[~holes].astype(np.float32))
    assert not np.shares_memory(telea_inpaint(rgb, holes), rgb)


def test_bad_input_names_the_field(scene):
    rgb, holes = scene
    with pytest.raises(InputError, match="holes"):
        telea_inpaint(rgb, holes[:, :5])
    with pytest.raises(InputError, match="rgb"):
        telea_inpaint(rgb[..., 0], holes)
    with pytest.raises(InputError, match="radius_px"):
        telea_inpaint(rgb, holes, radius_px=0)
