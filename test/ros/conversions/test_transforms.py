"""Pose/Transform/Path/PoseArray/TFMessage <-> 4x4 (issue 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_msgs.msg import Pose, PoseStamped
from hypothesis import given, settings
from hypothesis import strategies as st
from nav_msgs.msg import Path
from scipy.spatial.transform import Rotation

from worldstereo_ros.errors import ConversionError
from worldstereo_ros.ros.conversions.transforms import (
    make_tf_message,
    make_transform_stamped,
    matrices_to_path,
    matrices_to_pose_array,
    matrix_to_pose,
    matrix_to_transform,
    path_to_matrices,
    pose_to_matrix,
    transform_to_matrix,
)


def test_quarter_turn_about_z_by_hand():
    pose = Pose()
    pose.orientation.z, pose.orientation.w = math.sin(math.pi / 4), math.cos(math.pi / 4)
    pose.position.x = 2.0
    T = pose_to_matrix(pose)
    np.testing.assert_allclose(T[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(T @ [1, 0, 0, 1], [2, 1, 0, 1], atol=1e-12)


def test_unnormalised_quaternion_is_normalised():
    pose = Pose()
    pose.orientation.w = 3.0
    np.testing.assert_allclose(pose_to_matrix(pose), np.eye(4))


def test_path_errors_name_the_index():
    path = matrices_to_path(np.stack([np.eye(4)] * 4), "map")
    path.poses[2].pose.orientation.w = 0.0
    with pytest.raises(ConversionError, match=r"poses\[2\]\.pose\.orientation: quaternion has zero norm"):
        path_to_matrices(path)
    path.poses[2].pose.orientation.w = 1.0
    path.poses[3].pose.position.y = float("nan")
    with pytest.raises(ConversionError, match=r"poses\[3\]\.pose\.position: position must be finite"):
        path_to_matrices(path)
    path.poses[1].pose.orientation.x = float("inf")
    with pytest.raises(ConversionError, match=r"poses\[1\]\.pose\.orientation: quaternion must be finite"):
        path_to_matrices(path)


def test_tf_message_and_pose_array():
    T = np.eye(4)
    T[:3, 3] = (1, 2, 3)
    t = make_transform_stamped("map", "cam", T)
    msg = make_tf_message([t])
    assert msg.transforms[0].child_frame_id == "cam"
    np.testing.assert_allclose(transform_to_matrix(msg.transforms[0].transform), T)
    pa = matrices_to_pose_array(np.stack([T, np.eye(4)]))
    assert len(pa.poses) == 2 and pa.poses[0].position.z == 3.0
    with pytest.raises(ConversionError, match="frame_id: parent and child frames must be non-empty"):
        make_transform_stamped("", "cam", T)
    with pytest.raises(ConversionError, match="T: rotation part is not a proper rotation"):
        matrix_to_pose(np.diag([1.0, 1.0, -1.0, 1.0]))


@settings(max_examples=100, deadline=None)
@given(q=st.lists(st.floats(-1, 1), min_size=4, max_size=4), p=st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3))
def test_round_trips(q, p):
    if np.linalg.norm(q) < 1e-3:
        return
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(q).as_matrix()
    T[:3, 3] = p
    np.testing.assert_allclose(pose_to_matrix(matrix_to_pose(T)), T, atol=1e-9)
    np.testing.assert_allclose(transform_to_matrix(matrix_to_transform(T)), T, atol=1e-9)
    np.testing.assert_allclose(path_to_matrices(matrices_to_path(T[None], "map"))[0], T, atol=1e-9)


@settings(max_examples=150, deadline=None)
@given(vals=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=7, max_size=7))
def test_random_poses_raise_only_conversion_error(vals):
    ps = PoseStamped()
    try:
        (ps.pose.position.x, ps.pose.position.y, ps.pose.position.z, ps.pose.orientation.x,
         ps.pose.orientation.y, ps.pose.orientation.z, ps.pose.orientation.w) = vals
    except AssertionError:
        return
    try:
        T = path_to_matrices(Path(poses=[ps]))
        assert np.isfinite(T).all()
    except ConversionError:
        pass
