"""Camera inputs: Plücker rays, the normalisations and camera_qt match the release's values (issue 13)."""

from __future__ import annotations

import math

import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.diffusion.camera import (
    camera_center_normalization,
    camera_qt,
    plucker_rays,
    target_and_reference_tokens,
    unified_camera_normalization,
)


def _yaw_w2c(deg: float, tx: float) -> torch.Tensor:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, 0, s, tx], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1.0]])


@pytest.fixture
def cams():
    w2c = torch.stack([_yaw_w2c(0, 0), _yaw_w2c(10, -0.2), _yaw_w2c(20, -0.4)])
    K = torch.tensor([[40.0, 0, 24], [0, 40, 16], [0, 0, 1]]).expand(3, 3, 3)
    return K, w2c


def test_plucker_matches_release(cams):
    K, w2c = cams
    rays = plucker_rays(K, w2c, 32, 48)
    assert rays.shape == (1, 6, 3, 32, 48)
    # Release value 3166.149451; float32 ray maths differ in the 7th significant digit.
    assert rays.double().sum().item() == pytest.approx(3166.149451, rel=1e-6)
    expected = [-0.742960, -0.313756, 0.591242, 0.250688, -1.690717, -0.582201]
    assert rays[0, :, 2, 0, 0].tolist() == pytest.approx(expected, abs=1e-5)
    directions = rays[0, :3]
    assert torch.allclose(directions.norm(dim=0), torch.ones(3, 32, 48), atol=1e-5)


def test_camera_qt_matches_release(cams):
    _, w2c = cams
    qt, qt_ref = target_and_reference_tokens(w2c, w2c[:1])
    expected = [[1, 0, 0, 0, 1.915941, 0, 0.573732],
                [0.996195, 0, 0.087156, 0, -0.020325, 0, 0.232317],
                [0.984808, 0, 0.173648, 0, -2.016949, 0, -0.116158]]
    assert qt.tolist()[0] == pytest.approx(expected[0], abs=1e-5)
    for row, exp in zip(qt.tolist(), expected):
        assert row == pytest.approx(exp, abs=1e-5)
    assert torch.allclose(qt_ref, qt[:1], atol=1e-6)


def test_normalisations_closed_form(cams):
    _, w2c = cams
    norm = camera_center_normalization(w2c)
    assert torch.allclose(norm[0, :3, :3], torch.eye(3), atol=1e-6)
    centres = torch.linalg.inv(norm)[:, :3, 3]
    assert centres[0].norm().item() == pytest.approx(2.0, abs=1e-5)
    assert torch.allclose(centres.mean(0), torch.zeros(3), atol=1e-5)
    # References do not move the centre or the scale: only the targets define them.
    far_ref = _yaw_w2c(90, 30.0)[None]
    tgt, ref = unified_camera_normalization(w2c, far_ref)
    assert torch.allclose(tgt, norm, atol=1e-5)
    assert ref.shape == (1, 4, 4)
    assert torch.equal(w2c, torch.stack([_yaw_w2c(0, 0), _yaw_w2c(10, -0.2), _yaw_w2c(20, -0.4)]))  # input unchanged


def test_camera_qt_keeps_w_non_negative():
    flip = torch.diag(torch.tensor([-1.0, -1.0, 1.0, 1.0]))[None]  # 180 deg about z: w = 0 boundary
    q = camera_qt(flip @ _yaw_w2c(30, 0)[None])
    assert q[0, 0] >= 0
    assert q[0, :4].norm().item() == pytest.approx(1.0, abs=1e-6)


def test_bad_shapes_raise(cams):
    K, w2c = cams
    with pytest.raises(InputError, match=r"w2c: expected shape \(F, 4, 4\)"):
        plucker_rays(K, w2c[:, :3], 32, 48)
    with pytest.raises(InputError, match=r"K: expected shape \(3, 3, 3\)"):
        plucker_rays(K[:2], w2c, 32, 48)
