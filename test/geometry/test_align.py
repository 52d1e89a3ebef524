"""Umeyama Sim(3)/SE(3) alignment: exact recovery, reflections, weights, outliers, degenerate input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.align import robust_umeyama, umeyama


def rotation(axis, deg: float) -> torch.Tensor:
    """Rodrigues rotation matrix, float64."""
    k = torch.as_tensor(axis, dtype=torch.float64)
    k = k / k.norm()
    a = math.radians(deg)
    Kx = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + math.sin(a) * Kx + (1 - math.cos(a)) * Kx @ Kx


def sim3(s: float, R: torch.Tensor, t) -> torch.Tensor:
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = s * R
    T[:3, 3] = torch.as_tensor(t, dtype=torch.float64)
    return T


def apply(T: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return p @ T[:3, :3].T + T[:3, 3]


def angle_deg(Ra: torch.Tensor, Rb: torch.Tensor) -> float:
    c = ((Ra.T @ Rb).trace() - 1) / 2
    return math.degrees(math.acos(float(c.clamp(-1, 1))))


def decompose(T: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    s = float(torch.linalg.det(T[:3, :3]) ** (1 / 3))
    return s, T[:3, :3] / s, T[:3, 3]


def test_identity_and_pure_translation_by_hand():
    src = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    assert torch.allclose(umeyama(src, src), torch.eye(4, dtype=torch.float64), atol=1e-12)
    T = umeyama(src, src + torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
    assert torch.allclose(T[:3, 3], torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(T[:3, :3], torch.eye(3, dtype=torch.float64), atol=1e-12)
    # a 180 degree turn about z: (x, y, z) -> (-x, -y, z)
    T = umeyama(src, src * torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64))
    half_turn = torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64))
    assert torch.allclose(T[:3, :3], half_turn, atol=1e-12)


@pytest.mark.parametrize("with_weights", [False, True])
def test_recovers_known_sim3_exactly(with_weights):
    g = torch.Generator().manual_seed(0)
    src = torch.randn((50, 3), generator=g, dtype=torch.float64)
    T_true = sim3(1.7, rotation([1.0, 2.0, -0.5], 73.0), [0.3, -2.0, 5.0])
    dst = apply(T_true, src)
    weights = torch.rand(50, generator=g, dtype=torch.float64) if with_weights else None
    T = umeyama(src, dst, weights)
    assert torch.allclose(T, T_true, atol=1e-10)
    T_rigid = umeyama(src, apply(sim3(1.0, rotation([0, 1, 0], -40.0), [1, 2, 3]), src), weights,
                      with_scale=False)
    assert torch.allclose(T_rigid, sim3(1.0, rotation([0, 1, 0], -40.0), [1, 2, 3]), atol=1e-10)


def test_weights_select_the_fit():
    # the first 10 points follow T_a, the others T_b: zero weights on one group recover the other exactly
    g = torch.Generator().manual_seed(1)
    src = torch.randn((30, 3), generator=g, dtype=torch.float64)
    T_a = sim3(0.8, rotation([0, 0, 1], 30.0), [1, 0, 0])
    T_b = sim3(1.2, rotation([1, 0, 0], -60.0), [0, 1, 0])
    dst = torch.cat([apply(T_a, src[:10]), apply(T_b, src[10:])])
    w = torch.zeros(30, dtype=torch.float64)
    w[:10] = 1.0
    assert torch.allclose(umeyama(src, dst, w), T_a, atol=1e-10)
    assert torch.allclose(umeyama(src, dst, 1.0 - w), T_b, atol=1e-10)
    # unweighted, the fit is neither
    assert not torch.allclose(umeyama(src, dst), T_a, atol=1e-3)


def test_coplanar_points_do_not_give_a_reflection():
    # for coplanar points a plain SVD solution can come out as a reflection; the sign fix must not
    g = torch.Generator().manual_seed(2)
    src = torch.randn((20, 3), generator=g, dtype=torch.float64)
    src[:, 2] = 0.0
    T_true = sim3(2.0, rotation([0.3, -1, 0.2], 120.0), [0, 0, 1])
    T = umeyama(src, apply(T_true, src))
    assert torch.allclose(T, T_true, atol=1e-9)
    assert torch.linalg.det(T[:3, :3]) > 0


def test_reflected_destination_gives_the_best_proper_rotation():
    # dst mirrors src in z: no rotation maps it. The corners of a flat box (half-sizes 3, 2, 0.1) have a
    # diagonal covariance, so the best proper rotation is the identity, with s = (9 + 4 - 0.01) / 13.01
    corners = torch.tensor([[x, y, z] for x in (-3.0, 3.0) for y in (-2.0, 2.0) for z in (-0.1, 0.1)],
                           dtype=torch.float64)
    dst = corners * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    T = umeyama(corners, dst)
    s, R, t = decompose(T)
    assert torch.linalg.det(R) > 0.999
    assert torch.allclose(R, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert s == pytest.approx(12.99 / 13.01, rel=1e-12)
    assert torch.allclose(t, torch.zeros(3, dtype=torch.float64), atol=1e-12)
    # mirrored in x (the long axis): the best rotation also flips the thin axis, a half turn about y
    T = umeyama(corners, corners * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    _, R, _ = decompose(T)
    assert torch.allclose(R, torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64)), atol=1e-12)


def test_batched_matches_single_and_keeps_dtype():
    g = torch.Generator().manual_seed(4)
    src = torch.randn((3, 25, 3), generator=g)
    Ts = torch.stack([sim3(1.0 + i, rotation([1, i, 0.5], 20.0 * i), [i, 0, 0]) for i in range(3)])
    dst = (src.double() @ Ts[:, :3, :3].transpose(1, 2) + Ts[:, None, :3, 3]).float()
    T = umeyama(src, dst)
    assert T.dtype == torch.float32 and T.shape == (3, 4, 4)
    for i in range(3):
        assert torch.allclose(T[i], umeyama(src[i], dst[i]))
        assert torch.allclose(T[i].double(), Ts[i], atol=1e-4)
    assert umeyama(np.eye(3) + 1.0, np.eye(3) + 2.0).dtype == torch.float64


@pytest.mark.parametrize(
    "src, dst, weights, match",
    [
        (torch.zeros((2, 3)), torch.zeros((2, 3)), None, "src: expected at least 3 correspondences"),
        (torch.zeros((5, 2)), torch.zeros((5, 2)), None, "src: expected shape"),
        (torch.zeros((5, 3)), torch.zeros((4, 3)), None, "dst: expected the shape of src"),
        (torch.arange(15.0).reshape(5, 3), torch.arange(15.0).reshape(5, 3), None, "src: .*collinear"),
        (torch.ones((5, 3)), torch.ones((5, 3)), None, "src: .*collinear or coincident"),
        (torch.eye(3), torch.tensor([[0.0, 0, 0], [1, 1, 1], [2, 2, 2]]), None, "dst: .*collinear"),
        (torch.eye(3), torch.eye(3), torch.tensor([1.0, -1.0, 1.0]), "weights: expected finite values >= 0"),
        (torch.eye(3), torch.eye(3), torch.tensor([1.0, 0.0, 1.0]), "weights: expected at least 3"),
        (torch.eye(3), torch.eye(3), torch.ones(4), "weights: expected shape"),
        (torch.tensor([[math.nan, 0, 0], [1, 0, 0], [0, 1, 0]]), torch.eye(3), None, "src: .*finite"),
    ],
)
def test_bad_or_degenerate_input(src, dst, weights, match):
    with pytest.raises(InputError, match=match):
        umeyama(src, dst, weights)


def noisy_matches(n: int, outlier_fraction: float, sigma_m: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    src = torch.rand((n, 3), generator=g, dtype=torch.float64) * 2.0 - 1.0
    T_true = sim3(1.3, rotation([0.2, 1.0, -0.4], 35.0), [0.4, -0.2, 1.5])
    dst = apply(T_true, src) + sigma_m * torch.randn((n, 3), generator=g, dtype=torch.float64)
    outlier = torch.rand(n, generator=g) < outlier_fraction
    dst[outlier] = torch.rand((int(outlier.sum()), 3), generator=g, dtype=torch.float64) * 4.0 - 2.0
    return src, dst, T_true, ~outlier


def test_robust_recovers_transform_with_30_percent_outliers():
    src, dst, T_true, truth = noisy_matches(1000, 0.3, 0.01, seed=5)
    T, inliers = robust_umeyama(src, dst, inlier_threshold_m=0.05, seed=0)
    s, R, t = decompose(T)
    s0, R0, t0 = decompose(T_true)
    assert angle_deg(R, R0) < 1.0
    assert float((t - t0).norm()) < 0.02
    assert abs(s / s0 - 1.0) < 0.01
    assert (inliers & truth).sum() >= 0.97 * truth.sum()
    assert (inliers & ~truth).sum() <= 0.02 * (~truth).sum()
    # the plain closed form is thrown off by the same outliers
    s_ls, R_ls, _ = decompose(umeyama(src, dst))
    assert angle_deg(R_ls, R0) > 1.0 or abs(s_ls / s0 - 1) > 0.01
    # seeded: the same seed gives the same answer
    T2, inliers2 = robust_umeyama(src, dst, inlier_threshold_m=0.05, seed=0)
    assert torch.equal(T, T2) and torch.equal(inliers, inliers2)


def test_robust_rigid_and_weighted():
    src, dst, _, truth = noisy_matches(400, 0.3, 0.005, seed=6)
    T_rigid_true = sim3(1.0, rotation([1, 0, 0], 10.0), [0.1, 0.0, 0.0])
    dst[truth] = apply(T_rigid_true, src[truth])
    weights = torch.ones(400, dtype=torch.float64)
    weights[~truth] = 0.0  # zero-weight correspondences are never used
    T, inliers = robust_umeyama(src, dst, weights, with_scale=False, seed=3)
    assert torch.allclose(T, T_rigid_true, atol=1e-9)
    assert torch.equal(inliers, truth)


def test_robust_bad_input():
    src = torch.randn((10, 3))
    with pytest.raises(InputError, match="inlier_threshold_m"):
        robust_umeyama(src, src, inlier_threshold_m=0.0)
    with pytest.raises(InputError, match="iterations"):
        robust_umeyama(src, src, iterations=0)
    with pytest.raises(InputError, match="src: expected at least 3"):
        robust_umeyama(src[:2], src[:2])
    with pytest.raises(InputError, match="src: expected shape \\(N, 3\\)"):
        robust_umeyama(src[None], src[None])
    # nothing agrees: pure noise against a collinear source
    line = torch.stack([torch.arange(10.0), torch.zeros(10), torch.zeros(10)], 1)
    with pytest.raises(InputError, match="src"):
        robust_umeyama(line, torch.randn((10, 3)))
