"""Frustum corners, shared-volume overlap and the view-angle penalty."""

import math

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.cameras import PinholeCamera
from worldstereo_ros.geometry.frustum import (
    aabb_iou,
    frustum_corners,
    frustum_overlap,
    frustum_volume,
    inside_frustum,
    sample_frustum,
    view_angle_penalty,
)
from worldstereo_ros.geometry.poses import make_pose, rotation_about_axis

CAM = PinholeCamera.from_fov(64, 48, 90.0)


def _yawed(deg: float, t=(0.0, 0.0, 0.0)) -> torch.Tensor:
    R = rotation_about_axis(torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64), math.radians(deg))
    return make_pose(R, torch.tensor(t, dtype=torch.float64))


def test_corners_span_the_image_at_near_and_far():
    corners = frustum_corners(CAM, torch.eye(4, dtype=torch.float64), 0.5, 4.0)
    assert corners.shape == (8, 3)
    np.testing.assert_allclose(corners[:4, 2].numpy(), 0.5)
    np.testing.assert_allclose(corners[4:, 2].numpy(), 4.0)
    # 90 degree horizontal field of view: half-width equals depth
    np.testing.assert_allclose(corners[5, 0].numpy(), 4.0, atol=1e-9)


def test_samples_fill_the_frustum_uniformly_by_volume():
    pts = sample_frustum(CAM, torch.eye(4, dtype=torch.float64), 0.1, 2.0, 4096)
    assert bool(inside_frustum(pts, CAM, torch.eye(4, dtype=torch.float64), 0.1, 2.0).all())
    # half the volume lies beyond z = 2 * 0.5^(1/3) (for near << far)
    assert float((pts[:, 2] > 2.0 * 0.5 ** (1 / 3)).double().mean()) == pytest.approx(0.5, abs=0.02)


def test_overlap_of_identical_and_disjoint_views():
    I = torch.eye(4, dtype=torch.float64)  # noqa: E741 (the identity's usual name)
    assert frustum_overlap(CAM, I, CAM, I, 0.1, 3.0) == pytest.approx(1.0, abs=1e-9)
    assert frustum_overlap(CAM, I, CAM, _yawed(180.0), 0.1, 3.0) == 0.0


def test_overlap_matches_the_analytic_volume_of_a_shifted_camera():
    # two identical cameras shifted along the optical axis by d: the shared volume is the far part of the
    # front camera's frustum, from near + d ... far (for these ranges)
    near, far, d = 0.5, 3.0, 1.0
    front = make_pose(torch.eye(3, dtype=torch.float64), torch.tensor([0.0, 0.0, d], dtype=torch.float64))
    shared = frustum_volume(CAM, near, far - d)  # the front camera sees [near, far - d] of its own z
    # the rear camera sees [near + d, far] in the front's frame minus what lies outside the rear's cone:
    # for a pure forward shift the front frustum's slice z' in [near, far-d] lies inside the rear's cone
    # (rear z = z' + d has a wider cross-section), so the intersection is the front's [near, far-d] part
    expected = shared / (2 * frustum_volume(CAM, near, far) - shared)
    got = frustum_overlap(CAM, torch.eye(4, dtype=torch.float64), CAM, front, near, far, samples=16384)
    assert got == pytest.approx(expected, abs=0.01)


def test_overlap_falls_with_rotation_and_beats_the_box_iou_at_ranking():
    I = torch.eye(4, dtype=torch.float64)  # noqa: E741 (the identity's usual name)
    scores = [frustum_overlap(CAM, I, CAM, _yawed(a), 0.1, 3.0) for a in (0, 20, 45, 80)]
    assert all(a > b for a, b in zip(scores, scores[1:]))
    # the box IoU cannot tell a camera turned by 90 degrees from one shifted sideways that sees the same
    # volume of space, it only sees boxes: it scores a view facing away well above zero
    boxes = aabb_iou(frustum_corners(CAM, I, 0.1, 3.0), frustum_corners(CAM, _yawed(180.0, (0, 0, 3.0)), 0.1, 3.0))
    assert boxes > 0.05
    assert frustum_overlap(CAM, I, CAM, _yawed(180.0, (0, 0, 3.0)), 0.1, 3.0) < 0.2


def test_view_angle_penalty_is_the_public_formula():
    I = torch.eye(4, dtype=torch.float64)  # noqa: E741 (the identity's usual name)
    assert view_angle_penalty(I, _yawed(30.0)) == 1.0
    assert view_angle_penalty(I, _yawed(180.0)) == pytest.approx(math.exp(-2.5))
    assert view_angle_penalty(I, _yawed(135.0)) == pytest.approx(math.exp(5 * (90 - 135) / 180))


def test_bad_range_is_rejected():
    with pytest.raises(InputError, match="far_m"):
        frustum_overlap(CAM, torch.eye(4), CAM, torch.eye(4), near_m=2.0, far_m=1.0)
