"""Batched SE(3)/Sim(3) helpers and quaternions, checked against transforms3d."""

import math

import numpy as np
import pytest
import torch
import transforms3d
from hypothesis import given, settings
from hypothesis import strategies as st

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.poses import (
    compose,
    interpolate_poses,
    invert,
    look_at,
    make_pose,
    matrix_to_quat_xyzw,
    quat_xyzw_to_matrix,
    rotation_angle_deg,
    sim3,
    sim3_scale,
    slerp,
    transform_points,
)


def _random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    q = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return quat_xyzw_to_matrix(q)


def test_quaternion_to_matrix_matches_transforms3d():
    q = torch.randn(50, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    R = quat_xyzw_to_matrix(q).numpy()
    for qi, Ri in zip(q.numpy(), R):
        expected = transforms3d.quaternions.quat2mat([qi[3], qi[0], qi[1], qi[2]])  # wxyz there
        np.testing.assert_allclose(Ri, expected, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda v: sum(x * x for x in v) > 1e-6))
def test_matrix_to_quaternion_round_trip(values):
    q = torch.tensor(values, dtype=torch.float64)
    q = q / q.norm()
    back = matrix_to_quat_xyzw(quat_xyzw_to_matrix(q))
    # q and -q are the same rotation; ours has w >= 0
    sign = 1.0 if float(q[3]) >= 0 else -1.0
    if abs(float(q[3])) < 1e-9:
        sign = float(torch.sign((back * q).sum()))
    np.testing.assert_allclose(back.numpy(), sign * q.numpy(), atol=1e-9)
    assert float(back[3]) >= 0


def test_quaternion_of_180_degree_turns_is_stable():
    for axis in np.eye(3):
        R = torch.from_numpy(transforms3d.axangles.axangle2mat(axis, math.pi))
        q = matrix_to_quat_xyzw(R)
        np.testing.assert_allclose(quat_xyzw_to_matrix(q).numpy(), R.numpy(), atol=1e-12)


def test_zero_quaternion_is_rejected():
    with pytest.raises(InputError, match="q"):
        quat_xyzw_to_matrix(torch.zeros(4))


def test_invert_and_compose_sim3():
    R = _random_rotations(8)
    t = torch.randn(8, 3, dtype=torch.float64)
    s = torch.linspace(0.5, 3.0, 8, dtype=torch.float64)
    T = sim3(s, R, t)
    np.testing.assert_allclose(compose(T, invert(T)).numpy(), np.broadcast_to(np.eye(4), (8, 4, 4)), atol=1e-12)
    np.testing.assert_allclose(invert(T).numpy(), np.linalg.inv(T.numpy()), atol=1e-12)
    np.testing.assert_allclose(sim3_scale(T).numpy(), s.numpy(), atol=1e-12)


def test_transform_points_batched():
    T = make_pose(_random_rotations(3), torch.randn(3, 3, dtype=torch.float64))
    p = torch.randn(3, 10, 3, dtype=torch.float64)
    out = transform_points(T, p)
    homo = torch.cat([p, torch.ones(3, 10, 1, dtype=torch.float64)], -1)
    np.testing.assert_allclose(out.numpy(), (homo @ T.transpose(-1, -2))[..., :3].numpy(), atol=1e-12)


def test_slerp_constant_angular_speed_and_shorter_arc():
    R1 = torch.from_numpy(transforms3d.axangles.axangle2mat([0, 0, 1], math.radians(120)))
    q0 = matrix_to_quat_xyzw(torch.eye(3, dtype=torch.float64))
    q1 = -matrix_to_quat_xyzw(R1)  # same rotation, other hemisphere: must still take the 120° way
    t = torch.linspace(0, 1, 7, dtype=torch.float64)
    q = slerp(q0.expand(7, 4), q1.expand(7, 4), t)
    angles = rotation_angle_deg(torch.eye(3, dtype=torch.float64).expand(7, 3, 3), quat_xyzw_to_matrix(q))
    np.testing.assert_allclose(angles.numpy(), np.linspace(0, 120, 7), atol=1e-9)


def test_interpolate_poses_endpoints_and_midpoint():
    T0 = torch.eye(4, dtype=torch.float64)
    T1 = make_pose(torch.from_numpy(transforms3d.axangles.axangle2mat([0, 1, 0], math.radians(90))),
                   torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64))
    out = interpolate_poses(T0, T1, torch.tensor([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(out[0].numpy(), T0.numpy(), atol=1e-12)
    np.testing.assert_allclose(out[2].numpy(), T1.numpy(), atol=1e-12)
    np.testing.assert_allclose(out[1, :3, 3].numpy(), [1.0, 0, 0], atol=1e-12)
    assert float(rotation_angle_deg(T0[:3, :3], out[1, :3, :3])) == pytest.approx(45.0)


def test_look_at_points_the_optical_axis_and_keeps_up():
    T = look_at(torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    np.testing.assert_allclose(T[:3, 2].numpy(), [1, 0, 0], atol=1e-12)   # z forward
    np.testing.assert_allclose(T[:3, 1].numpy(), [0, 0, -1], atol=1e-12)  # y down
    assert abs(float(torch.linalg.det(T[:3, :3])) - 1) < 1e-12
    with pytest.raises(InputError, match="up"):
        look_at(torch.zeros(3, dtype=torch.float64), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64),
                torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
