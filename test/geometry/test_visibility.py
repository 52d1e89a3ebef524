"""Free-space tests (``geometry.visibility.seen_through``) against analytic planes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.visibility import seen_through

H, W, F = 40, 50, 40.0
K = torch.tensor([[F, 0.0, (W - 1) / 2], [0.0, F, (H - 1) / 2], [0.0, 0.0, 1.0]], dtype=torch.float64)


def wall_view(z_wall: float, x: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A camera at (x, 0, 0) looking down +z at a fronto-parallel wall z = z_wall: depth (1, H, W), pose."""
    T = torch.eye(4, dtype=torch.float64)
    T[0, 3] = x
    return torch.full((1, H, W), z_wall), T[None]


def test_points_in_front_of_the_seen_wall_are_seen_through():
    depth, T = wall_view(3.0)
    pts = torch.tensor([[0.0, 0.0, 1.0], [0.1, 0.1, 2.9], [0.0, 0.0, 3.0], [0.2, 0.0, 3.5], [0.0, 0.0, -1.0],
                        [40.0, 0.0, 2.0]])
    got = seen_through(pts, depth, K, T, tolerance=0.02)
    # nearer than 3 m by > 2 %: yes; on the wall, behind it, behind the camera, outside the image: no
    assert got.tolist() == [True, True, False, False, False, False]


def test_unknown_depth_frees_nothing_and_the_tolerance_is_relative():
    depth, T = wall_view(3.0)
    depth[0, :, : W // 2] = 0.0
    left, right = torch.tensor([[-0.5, 0.0, 1.0]]), torch.tensor([[0.5, 0.0, 1.0]])
    assert not seen_through(left, depth, K, T)[0]
    assert seen_through(right, depth, K, T)[0]
    near_wall = torch.tensor([[0.3, 0.0, 2.9]])  # 3.4 % in front, on the known half
    assert seen_through(near_wall, depth, K, T, tolerance=0.02)[0]
    assert not seen_through(near_wall, depth, K, T, tolerance=0.05)[0]


def test_any_view_suffices_and_only_newer_views_test_older_points():
    d1, T1 = wall_view(3.0)
    d2, T2 = wall_view(1.5, x=0.3)  # a nearer wall: sees nothing behind 1.5 m
    depth, T = torch.cat([d2, d1]), torch.cat([T2, T1])
    pts = torch.tensor([[0.0, 0.0, 2.0], [0.3, 0.0, 1.0]])
    assert seen_through(pts, depth, K, T).tolist() == [True, True]
    # the point at 2 m is only contradicted by the 3 m view (time 1): a point from time 1 is kept
    got = seen_through(pts, depth, K, T, point_time=torch.tensor([1, 0]), view_time=torch.tensor([0, 1]))
    assert got.tolist() == [False, True]


@pytest.mark.parametrize("field, kwargs", [
    ("xyz", {"xyz": torch.zeros(3)}), ("depth", {"depth": torch.zeros(H, W)}), ("K", {"K": torch.eye(4)}),
    ("T_world_cam", {"T_world_cam": torch.eye(4)}), ("tolerance", {"tolerance": 1.0}),
    ("point_time", {"point_time": torch.zeros(2)}),
])
def test_bad_input_names_the_field(field, kwargs):
    depth, T = wall_view(3.0)
    args = {"xyz": torch.zeros(2, 3), "depth": depth, "K": K, "T_world_cam": T, **kwargs}
    with pytest.raises(InputError) as info:
        seen_through(**args)
    assert info.value.field == field


def test_empty_inputs():
    depth, T = wall_view(3.0)
    assert seen_through(torch.zeros(0, 3), depth, K, T).shape == (0,)
    np.testing.assert_array_equal(seen_through(torch.zeros(2, 3), depth[:0], K, T[:0]).numpy(), [False, False])
