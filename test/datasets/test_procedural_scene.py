"""The procedural room: seeded, textured, with exact depth for a closed-form pixel."""

from __future__ import annotations

import numpy as np
import pytest

from worldstereo_ros.datasets.procedural_scene import ROOM_X, build_scene, look_at, procedural_snapshot
from worldstereo_ros.errors import InputError


def test_same_seed_same_scene_other_seed_other_textures():
    a, b = build_scene(0, 0.05), build_scene(0, 0.05)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    c = build_scene(1, 0.05)
    np.testing.assert_array_equal(a.xyz, c.xyz)
    assert not np.array_equal(a.rgb, c.rgb)
    assert not a.xyz.flags.writeable  # shared between callers: nobody may change it


def test_look_at_axes_are_opencv():
    T = look_at((0, 0, 1), (1, 0, 1))
    np.testing.assert_allclose(T[:3, 2], [1, 0, 0], atol=1e-12)  # z forward
    np.testing.assert_allclose(T[:3, 0], [0, -1, 0], atol=1e-12)  # x right = world -y (y is left)
    np.testing.assert_allclose(T[:3, 1], [0, 0, -1], atol=1e-12)  # y down
    with pytest.raises(InputError, match="up"):
        look_at((0, 0, 0), (0, 0, 1))


def test_render_of_the_back_wall_has_the_exact_depth():
    scene = build_scene(0, 0.02)
    K = np.array([[40.0, 0, 15.5], [0, 40.0, 11.5], [0, 0, 1]])
    T = look_at((ROOM_X - 1.5, -1.2, 1.8), (ROOM_X, -1.2, 1.8))  # 1.5 m in front of the back wall, beside the door
    rgb, depth = scene.render(K, T, 32, 24)
    assert (depth > 0).all()
    np.testing.assert_allclose(depth[12, 16], 1.5, atol=1e-4)
    assert rgb.std() > 0.01


def test_snapshot_is_valid_and_dense():
    snap = procedural_snapshot(160, 120)
    assert snap.rgb.shape == (120, 160, 3) and snap.depth_is_metric
    assert (snap.depth > 0).mean() > 0.99
    assert 0.5 < float(np.median(snap.depth)) < 6.0
    with pytest.raises(InputError, match="width"):
        procedural_snapshot(4, 120)
