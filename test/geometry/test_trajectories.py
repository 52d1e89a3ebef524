"""The standard trajectories and planned-path resampling."""

import math

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.poses import look_at, matrix_to_quat_xyzw, rotation_angle_deg
from worldstereo_ros.geometry.trajectories import (
    TrajectorySpec,
    build_trajectory,
    dolly,
    lateral,
    orbit,
    parse_trajectory_spec,
    resample_path,
    tilt_up,
)

T0 = look_at(torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64), torch.tensor([1.0, 5.0, 0.5], dtype=torch.float64),
             torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)).numpy()  # looking along world +y, z up


def _angle(Ra, Rb) -> float:
    return float(rotation_angle_deg(torch.from_numpy(Ra), torch.from_numpy(Rb)))


def test_orbit_keeps_the_look_at_point_and_radius():
    T = orbit(T0, 7, 30.0, radius_m=2.0)
    assert T.shape == (7, 4, 4)
    np.testing.assert_allclose(T[0], T0, atol=1e-12)
    pivot = T0[:3, 3] + 2.0 * T0[:3, 2]
    for Ti in T:
        np.testing.assert_allclose(np.linalg.norm(Ti[:3, 3] - pivot), 2.0, atol=1e-12)
        to_pivot = (pivot - Ti[:3, 3]) / 2.0
        np.testing.assert_allclose(Ti[:3, 2], to_pivot, atol=1e-12)
    assert _angle(T0[:3, :3], T[-1][:3, :3]) == pytest.approx(30.0)
    # positive degrees move the camera to its right (+x of the snapshot camera), at constant height
    assert (T[-1, :3, 3] - T0[:3, 3]) @ T0[:3, 0] > 0
    np.testing.assert_allclose(T[:, 2, 3], 0.5, atol=1e-12)


def test_up_rises_and_looks_down():
    T = tilt_up(T0, 5, 15.0, depth_median_m=2.0)
    up = -T0[:3, 1]
    assert (T[-1, :3, 3] - T0[:3, 3]) @ up > 0.4
    assert T[-1, :3, 2] @ up < 0  # looking down now


def test_lateral_and_dolly_are_straight_moves_in_the_camera_frame():
    left = lateral(T0, 5, 0.5, "left")
    np.testing.assert_allclose(left[-1, :3, 3] - T0[:3, 3], -0.5 * T0[:3, 0], atol=1e-12)
    np.testing.assert_allclose(left[:, :3, :3], np.broadcast_to(T0[:3, :3], (5, 3, 3)))
    right = lateral(T0, 5, 0.5, "right")
    np.testing.assert_allclose(right[2, :3, 3] - T0[:3, 3], 0.25 * T0[:3, 0], atol=1e-12)
    fwd = dolly(T0, 3, -1.0)
    np.testing.assert_allclose(fwd[-1, :3, 3], [1.0, 1.0, 0.5], atol=1e-12)
    with pytest.raises(InputError, match="direction"):
        lateral(T0, 3, 0.5, "up")


def test_parse_and_build_with_scene_scaled_defaults():
    specs = parse_trajectory_spec("orbit:30, up ,left:0.5,right,forward:-0.2")
    assert specs == [TrajectorySpec("orbit", 30.0), TrajectorySpec("up", None), TrajectorySpec("left", 0.5),
                     TrajectorySpec("right", None), TrajectorySpec("forward", -0.2)]
    right = build_trajectory(specs[3], T0, 4, depth_median_m=2.0)
    np.testing.assert_allclose(np.linalg.norm(right[-1, :3, 3] - T0[:3, 3]), 0.5)  # 0.25 x median depth
    assert build_trajectory("orbit:10", T0, 3, 2.0).shape == (3, 4, 4)
    for bad in ("spin:3", "orbit:x", "", "orbit:inf"):
        with pytest.raises(InputError, match="trajectories"):
            parse_trajectory_spec(bad)


def test_resample_path_constant_arc_length_and_smooth_turns():
    # an L-shaped path with unevenly spaced poses: 2 m along x, then 1 m along y, turning 90 degrees at the corner
    poses = []
    for x in (0.0, 0.1, 0.3, 1.9, 2.0):
        poses.append(look_at(torch.tensor([x, 0, 0.0], dtype=torch.float64),
                             torch.tensor([x + 1, 0, 0.0], dtype=torch.float64),
                             torch.tensor([0, 0, 1.0], dtype=torch.float64)).numpy())
    for y in (0.5, 1.0):
        poses.append(look_at(torch.tensor([2.0, y, 0.0], dtype=torch.float64),
                             torch.tensor([2.0, y + 1, 0.0], dtype=torch.float64),
                             torch.tensor([0, 0, 1.0], dtype=torch.float64)).numpy())
    T = resample_path(np.stack(poses), 13, rotation_weight_m_per_rad=0.0)
    steps = np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=1)
    # constant spacing along the path except the step that cuts the corner
    assert np.sum(np.abs(steps - 0.25) > 1e-9) <= 1
    np.testing.assert_allclose(T[0], poses[0], atol=1e-12)
    np.testing.assert_allclose(T[-1], poses[-1], atol=1e-12)
    turns = [_angle(T[i, :3, :3], T[i + 1, :3, :3]) for i in range(12)]
    assert max(turns) <= 90.0 / 2 + 1e-6  # the 90 degree turn is spread over the 0.5 m leg
    q = matrix_to_quat_xyzw(torch.from_numpy(T[:, :3, :3]))
    assert torch.allclose(q.norm(dim=-1), torch.ones(13, dtype=torch.float64))


def test_resample_turn_in_place_gets_views():
    poses = [look_at(torch.zeros(3, dtype=torch.float64),
                     torch.tensor([math.cos(a), math.sin(a), 0.0], dtype=torch.float64),
                     torch.tensor([0, 0, 1.0], dtype=torch.float64)).numpy() for a in (0.0, math.pi / 2)]
    T = resample_path(np.stack(poses), 5)
    turns = [_angle(T[i, :3, :3], T[i + 1, :3, :3]) for i in range(4)]
    np.testing.assert_allclose(turns, 22.5, atol=1e-6)
    with pytest.raises(InputError, match="T_world_poses"):
        resample_path(np.zeros((3, 3, 3)), 4)
