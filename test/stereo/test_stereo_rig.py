"""Issue 16: the rectified rig helper (T_left_right, right K, ROS projection, strength -> baseline)."""

from __future__ import annotations

import numpy as np
import pytest

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.stereo_rig import StereoRig, baseline_for_strength, deviation_strength, scene_depth_range

K = np.array([[500.0, 0.0, 320.0], [0.0, 510.0, 240.0], [0.0, 0.0, 1.0]])


def test_extrinsics_and_projection_by_hand():
    rig = StereoRig(K, 0.1)
    np.testing.assert_array_equal(rig.T_left_right[:3, 3], [0.1, 0.0, 0.0])
    np.testing.assert_array_equal(rig.T_left_right[:3, :3], np.eye(3))
    # stereo_image_proc reads the baseline back as -Tx / fx
    assert rig.P_right[0, 3] == pytest.approx(-50.0)
    assert -rig.P_right[0, 3] / rig.P_right[0, 0] == pytest.approx(0.1)
    np.testing.assert_array_equal(rig.P_left[:, 3], 0.0)
    np.testing.assert_array_equal(rig.P_right[:, :3], K)


def test_right_camera_sees_a_point_where_the_disparity_says():
    rig = StereoRig(K, 0.2, doffs_px=3.0)
    p_left = np.array([0.3, -0.1, 2.0, 1.0])
    u_left = K @ p_left[:3] / p_left[2]
    p_right = np.linalg.inv(rig.T_left_right) @ p_left
    u_right = rig.K_right @ p_right[:3] / p_right[2]
    d = rig.disparity_from_depth(np.array([[2.0]]))[0, 0]
    assert u_left[0] - u_right[0] == pytest.approx(d, abs=1e-4)
    assert u_left[1] == pytest.approx(u_right[1])
    assert rig.K_right[0, 2] == 323.0 and rig.K[0, 2] == 320.0


def test_depth_disparity_round_trip_and_unknowns():
    rig = StereoRig(K, 0.12, doffs_px=-2.0)
    depth = np.array([[0.5, 1.0, 0.0], [np.nan, 4.0, 10.0]], dtype=np.float32)
    disp = rig.disparity_from_depth(depth)
    assert np.isnan(disp[0, 2]) and np.isnan(disp[1, 0])
    back = rig.depth_from_disparity(disp)
    np.testing.assert_allclose(back[np.isfinite(disp)], depth[np.isfinite(disp)], rtol=1e-5)
    assert back[0, 2] == 0.0


def test_strength_gives_near_and_far_scenes_the_same_disparity_range():
    rng = np.random.default_rng(0)
    for near, far in ((0.5, 2.0), (5.0, 40.0)):
        depth = rng.uniform(near, far, size=(120, 160)).astype(np.float32)
        B = baseline_for_strength(0.04, depth, fx=500.0, width=160)
        disp = StereoRig(np.array([[500.0, 0, 80], [0, 500.0, 60], [0, 0, 1]]), B).disparity_from_depth(depth)
        assert deviation_strength(disp, 160) == pytest.approx(0.04, rel=1e-3)


def test_strength_on_a_flat_scene_bounds_the_nearest_disparity():
    depth = np.full((10, 10), 2.0, np.float32)
    B = baseline_for_strength(0.05, depth, fx=100.0, width=10)
    assert 100.0 * B / 2.0 == pytest.approx(0.5)


@pytest.mark.parametrize("kwargs, field", [
    (dict(K=np.eye(4), baseline_m=0.1), "K"),
    (dict(K=K, baseline_m=0.0), "baseline_m"),
    (dict(K=K, baseline_m=float("nan")), "baseline_m"),
    (dict(K=K, baseline_m=0.1, doffs_px=float("inf")), "doffs_px"),
])
def test_bad_rig_names_the_field(kwargs, field):
    with pytest.raises(InputError, match=field):
        StereoRig(**kwargs)


def test_bad_strength_and_empty_depth():
    with pytest.raises(InputError, match="strength"):
        baseline_for_strength(1.5, np.ones((2, 2)), 100.0, 2)
    with pytest.raises(InputError, match="depth_m"):
        scene_depth_range(np.zeros((3, 3)))
