"""Similarity (Sim(3)) and rigid (SE(3)) alignment of corresponding 3D points.

``umeyama`` is the weighted closed form (Umeyama 1991): it returns the ``T_dst_src`` that minimises
``sum_i w_i |dst_i - (s R src_i + t)|^2``, with R a proper rotation (det +1) even when the best
orthogonal matrix would be a reflection. ``robust_umeyama`` adds RANSAC on minimal sets of three
correspondences and a refit on the inliers, for matches with outliers.

Transforms are (4, 4) with the upper 3x3 block ``s * R``; points are metres in their frames.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from worldstereo_ros.errors import InputError

# Below this ratio of the second to the first principal variance the points count as collinear.
_COLLINEAR_RATIO = 1e-10


def _as_float(value, field: str) -> torch.Tensor:
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t


def _check_pairs(src, dst, weights) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    src = _as_float(src, "src")
    dst = _as_float(dst, "dst").to(src.device)
    if src.ndim < 2 or src.shape[-1] != 3:
        raise InputError("src", f"expected shape (*, N, 3), got {tuple(src.shape)}")
    if dst.shape != src.shape:
        raise InputError("dst", f"expected the shape of src {tuple(src.shape)}, got {tuple(dst.shape)}")
    if src.shape[-2] < 3:
        raise InputError("src", f"expected at least 3 correspondences, got {src.shape[-2]}")
    if not (torch.isfinite(src).all() and torch.isfinite(dst).all()):
        raise InputError("src", "src and dst must be finite")
    if weights is not None:
        weights = _as_float(weights, "weights").to(src.device)
        if weights.shape != src.shape[:-1]:
            raise InputError("weights", f"expected shape {tuple(src.shape[:-1])}, got {tuple(weights.shape)}")
        if not torch.isfinite(weights).all() or bool((weights < 0).any()):
            raise InputError("weights", "expected finite values >= 0")
        if bool(((weights > 0).sum(-1) < 3).any()):
            raise InputError("weights", "expected at least 3 correspondences with a positive weight")
    return src, dst, weights


def _solve(src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor | None,
           with_scale: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched closed form in float64: (T (*,4,4), src variance ratio (*,), cross-covariance rank ratio (*,)).

    The two ratios (second / first singular value) let callers reject collinear configurations.
    """
    src = src.to(torch.float64)
    dst = dst.to(torch.float64)
    if w is None:
        w = torch.ones(src.shape[:-1], dtype=torch.float64, device=src.device)
    w = w.to(torch.float64)
    w = w / w.sum(-1, keepdim=True)
    mu_s = (w[..., None] * src).sum(-2)
    mu_d = (w[..., None] * dst).sum(-2)
    a = src - mu_s[..., None, :]
    b = dst - mu_d[..., None, :]
    cov = (b * w[..., None]).transpose(-1, -2) @ a  # (*, 3, 3) = sum w b a^T
    var_src = (w * (a * a).sum(-1)).sum(-1)
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.sign(torch.det(U) * torch.det(Vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    fix = torch.ones_like(S)
    fix[..., 2] = d
    R = (U * fix[..., None, :]) @ Vh
    if with_scale:
        scale = (S * fix).sum(-1) / var_src.clamp_min(1e-300)
    else:
        scale = torch.ones_like(var_src)
    t = mu_d - scale[..., None] * (R @ mu_s[..., None])[..., 0]
    T = torch.zeros(src.shape[:-2] + (4, 4), dtype=torch.float64, device=src.device)
    T[..., :3, :3] = scale[..., None, None] * R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    # principal variances of the (weighted) source points: collinear sets have only one
    src_var = torch.linalg.eigvalsh((a * w[..., None]).transpose(-1, -2) @ a)  # ascending
    src_ratio = src_var[..., 1] / src_var[..., 2].clamp_min(1e-300)
    cross_ratio = S[..., 1] / S[..., 0].clamp_min(1e-300)
    return T, src_ratio, cross_ratio


def umeyama(src, dst, weights=None, with_scale: bool = True) -> torch.Tensor:
    """Closed-form Sim(3) (or SE(3)) transform ``T_dst_src`` mapping ``src`` points onto ``dst``.

    Args:
        src: (*, N, 3) points in the source frame, metres (torch or numpy; N >= 3).
        dst: (*, N, 3) corresponding points in the destination frame.
        weights: (*, N) non-negative weights (at least 3 positive), or None for equal weights.
        with_scale: estimate a scale (Sim(3)); False gives a rigid transform (scale 1).
    Returns:
        (*, 4, 4) transform with upper block ``s * R`` (R proper, det +1), in the dtype of ``src``
        (float64 for integer input). Computed in float64.
    Raises:
        InputError: bad shapes, fewer than 3 points, non-finite values, or a degenerate configuration
            (collinear or coincident points, for which the rotation is not determined).

    Example:
        >>> src = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
        >>> (umeyama(src, 2 * src + torch.tensor([1.0, 0, 0]))[:3].round(decimals=6) + 0.0).tolist()
        [[2.0, 0.0, 0.0, 1.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]]
    """
    src, dst, weights = _check_pairs(src, dst, weights)
    T, src_ratio, cross_ratio = _solve(src, dst, weights, with_scale)
    if bool((src_ratio < _COLLINEAR_RATIO).any()):
        raise InputError("src", "points are collinear or coincident: the rotation is not determined")
    if bool((cross_ratio < math.sqrt(_COLLINEAR_RATIO)).any()):
        raise InputError("dst", "points are collinear or coincident: the rotation is not determined")
    return T.to(src.dtype)


def _transform(T: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Apply (*, 4, 4) to (*, N, 3)."""
    return p @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]


def robust_umeyama(
    src,
    dst,
    weights=None,
    with_scale: bool = True,
    inlier_threshold_m: float = 0.05,
    iterations: int = 256,
    seed: int = 0,
    refine_iterations: int = 10,
    max_score_points: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sim(3)/SE(3) ``T_dst_src`` from correspondences with outliers: RANSAC, then refit on the inliers.

    Each of ``iterations`` hypotheses is the closed form on three random correspondences (drawn with a
    generator seeded by ``seed``), scored by the summed weight of the correspondences it maps within
    ``inlier_threshold_m`` of their destination (on a random subset of at most ``max_score_points``).
    The best one's inliers (over all points) are refitted with :func:`umeyama`, the inliers of the
    refit recomputed, and so on until they stop changing (at most ``refine_iterations`` refits).

    Args:
        src, dst: (N, 3) corresponding points, metres (N >= 3).
        weights: (N,) non-negative weights or None.
        with_scale: Sim(3) if True, SE(3) otherwise.
        inlier_threshold_m: largest residual |T src - dst| of an inlier, in dst metres.
        iterations: number of minimal-set hypotheses.
        seed: seed of the sampling generator (same seed, same result).
        refine_iterations: at most this many refits on the inliers.
        max_score_points: hypotheses are scored on at most this many correspondences.
    Returns:
        T: (4, 4) transform in the dtype of ``src``; inlier_mask: (N,) bool of the final refit.
    Raises:
        InputError: bad shapes/options, degenerate input, or no hypothesis with 3 or more inliers.
    """
    src, dst, weights = _check_pairs(src, dst, weights)
    if src.ndim != 2:
        raise InputError("src", f"expected shape (N, 3), got {tuple(src.shape)}")
    if not (isinstance(inlier_threshold_m, (int, float)) and 0 < inlier_threshold_m < math.inf):
        raise InputError("inlier_threshold_m", f"expected a finite float > 0, got {inlier_threshold_m!r}")
    for name, value in (("iterations", iterations), ("refine_iterations", refine_iterations),
                        ("max_score_points", max_score_points)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(name, f"expected an int >= 1, got {value!r}")
    n = src.shape[0]
    device = src.device
    s64, d64 = src.to(torch.float64), dst.to(torch.float64)
    w64 = None if weights is None else weights.to(torch.float64)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))

    # 1. hypotheses from minimal sets; points with zero weight are never drawn
    if w64 is None:
        candidates = torch.arange(n)
    else:
        candidates = torch.nonzero(w64.cpu() > 0).squeeze(1)
    picks = candidates[torch.randint(len(candidates), (iterations, 3), generator=gen)].to(device)
    T_hyp, src_ratio, cross_ratio = _solve(s64[picks], d64[picks], None, with_scale)
    usable = (src_ratio > 1e-6) & (cross_ratio > 1e-3) & torch.isfinite(T_hyp).all(-1).all(-1)

    # 2. score them on a subset
    if n > max_score_points:
        subset = torch.randperm(n, generator=gen)[:max_score_points].to(device)
    else:
        subset = torch.arange(n, device=device)
    res = (_transform(T_hyp, s64[subset][None]) - d64[subset][None]).norm(dim=-1)  # (I, M)
    inlier = res < inlier_threshold_m
    score = (inlier.to(torch.float64) * (1.0 if w64 is None else w64[subset])).sum(-1)
    score = torch.where(usable, score, torch.full_like(score, -1.0))
    best = int(torch.argmax(score))
    if score[best] <= 0:
        raise InputError("src", "no minimal set gives a transform with inliers; check the correspondences")

    # 3. refit on the inliers until they settle
    T = T_hyp[best]
    mask = (_transform(T, s64) - d64).norm(dim=-1) < inlier_threshold_m
    if w64 is not None:
        mask &= w64 > 0
    for _ in range(refine_iterations):
        if int(mask.sum()) < 3:
            break
        w = None if w64 is None else w64[mask]
        T_new, sr, cr = _solve(s64[mask], d64[mask], w, with_scale)
        if not (sr > _COLLINEAR_RATIO and cr > math.sqrt(_COLLINEAR_RATIO)):
            break
        T = T_new
        new_mask = (_transform(T, s64) - d64).norm(dim=-1) < inlier_threshold_m
        if w64 is not None:
            new_mask &= w64 > 0
        if torch.equal(new_mask, mask):
            break
        mask = new_mask
    if int(mask.sum()) < 3:
        raise InputError("src", "fewer than 3 correspondences agree within inlier_threshold_m")
    return T.to(src.dtype), mask
