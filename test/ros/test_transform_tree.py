"""TransformTree: the tf2-style lookups used where tf2_ros is not installed (issue 5)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from worldstereo_ros.ros.transform_tree import TransformLookupError, TransformTree

S = 1_000_000_000  # one second in ns


def pose(x=0.0, y=0.0, z=0.0, yaw_deg=0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    T[:3, 3] = (x, y, z)
    return T


def test_chain_and_inverse_lookup_compose_like_tf2():
    tree = TransformTree()
    tree.set_transform("map", "odom", pose(x=1.0), 0, static=True)
    tree.set_transform("odom", "base_link", pose(y=2.0, yaw_deg=90), 5 * S, static=False)
    tree.set_transform("base_link", "camera_link", pose(x=0.5), 0, static=True)
    T_map_cam = tree.lookup("map", "camera_link", 5 * S)
    # camera 0.5 m ahead of a base at (1, 2) facing +y: at (1, 2.5)
    np.testing.assert_allclose(T_map_cam[:3, 3], [1.0, 2.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(tree.lookup("camera_link", "map", 5 * S), np.linalg.inv(T_map_cam), atol=1e-12)
    # between two siblings of a common ancestor
    tree.set_transform("map", "landmark", pose(x=1.0, y=3.0), 0, static=True)
    p_cam = tree.lookup("camera_link", "landmark", 5 * S)[:3, 3]
    # landmark is 0.5 m ahead of the camera (camera x axis is map +y)
    np.testing.assert_allclose(p_cam, [0.5, 0.0, 0.0], atol=1e-12)


def test_interpolates_translation_and_rotation_between_stamps():
    tree = TransformTree()
    tree.set_transform("map", "base", pose(x=0.0, yaw_deg=0), 1 * S, static=False)
    tree.set_transform("map", "base", pose(x=2.0, yaw_deg=90), 3 * S, static=False)
    T = tree.lookup("map", "base", 2 * S)
    np.testing.assert_allclose(T[:3, 3], [1.0, 0.0, 0.0], atol=1e-12)
    yaw = Rotation.from_matrix(T[:3, :3]).as_euler("xyz", degrees=True)[2]
    assert yaw == pytest.approx(45.0)
    # time 0 = the latest common time
    np.testing.assert_allclose(tree.lookup("map", "base")[:3, 3], [2.0, 0.0, 0.0])


def test_errors_name_the_frames_and_the_problem():
    tree = TransformTree()
    tree.set_transform("map", "base", pose(), 1 * S, static=False)
    tree.set_transform("map", "base", pose(x=1), 2 * S, static=False)
    tree.set_transform("other_root", "camera", pose(), 0, static=True)
    with pytest.raises(TransformLookupError, match="'nowhere' does not exist"):
        tree.lookup("map", "nowhere")
    with pytest.raises(TransformLookupError, match="not connected"):
        tree.lookup("map", "camera")
    with pytest.raises(TransformLookupError, match="extrapolation"):
        tree.lookup("map", "base", 5 * S)
    with pytest.raises(TransformLookupError, match="own parent"):
        tree.set_transform("a", "a", pose(), 0, static=True)
    with pytest.raises(TransformLookupError, match="finite 4x4"):
        tree.set_transform("map", "x", np.full((4, 4), np.nan), 0, static=True)
    assert not tree.can_transform("map", "camera")


def test_tolerance_and_cache_time():
    tree = TransformTree(cache_time_s=1.0, extrapolation_tolerance_s=0.1)
    for k in range(30):
        tree.set_transform("map", "base", pose(x=float(k)), k * S // 10, static=False)
    # kept only the last second: 2.9 s back to 1.9 s
    with pytest.raises(TransformLookupError):
        tree.lookup("map", "base", 1 * S)
    # 50 ms past the newest sample is within tolerance
    np.testing.assert_allclose(tree.lookup("map", "base", 2_950_000_000)[:3, 3], [29.0, 0, 0])


def test_input_matrix_is_copied_not_aliased():
    tree = TransformTree()
    T = pose(x=1.0)
    tree.set_transform("map", "base", T, 0, static=True)
    T[0, 3] = 99.0
    assert tree.lookup("map", "base")[0, 3] == 1.0
