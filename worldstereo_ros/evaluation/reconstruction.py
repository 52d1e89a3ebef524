"""Reconstruction metrics: does the 3D come out right?

A predicted point cloud is compared with a reference surface fused (TSDF, Open3D ``VoxelBlockGrid``)
from ground-truth RGB-D frames:

* accuracy: mean distance from each predicted point to the nearest reference point (are the predicted
  points where the surface is?), completeness: mean distance from each reference point to the nearest
  predicted point (is the whole surface there?), chamfer: their mean. All in metres, lower is better.
* precision / recall / F1 at distance thresholds: the fraction of predicted (reference) points closer
  than the threshold to the other cloud, and their harmonic mean. Means are dominated by a few far
  outliers; the fractions are not, so both are reported.

Both clouds are voxel-downsampled first, so a region sampled ten times more densely does not count ten
times more, and the prediction is cropped to the reference's bounds (plus a margin), so geometry the
reference never observed is not counted as error. Points are (N, 3) float arrays in metres.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from worldstereo_ros.datasets.rgbd_folder import RgbdFrame
from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.tsdf import TsdfFusion


@dataclass(frozen=True)
class ReconstructionScore:
    """Scores of a predicted cloud against a reference; distances in metres, fractions in [0, 1].

    ``precision``, ``recall`` and ``f1`` map each threshold (m) to its value. ``n_pred`` and ``n_ref``
    count the points actually compared (after downsampling and cropping).
    """

    accuracy_m: float
    completeness_m: float
    chamfer_m: float
    precision: dict[float, float]
    recall: dict[float, float]
    f1: dict[float, float]
    n_pred: int
    n_ref: int


def _cloud(points, field: str) -> np.ndarray:
    """``points`` as an (N, 3) float64 array, checked non-empty and finite."""
    try:
        xyz = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(field, f"expected an (N, 3) array of numbers: {exc}") from None
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise InputError(field, f"expected shape (N, 3), got {xyz.shape}")
    if len(xyz) == 0:
        raise InputError(field, "point cloud is empty")
    if not np.isfinite(xyz).all():
        bad = int((~np.isfinite(xyz).all(axis=1)).sum())
        raise InputError(field, f"{bad} of {len(xyz)} points are not finite")
    return xyz


def _positive(value, field: str, allow_zero: bool = False) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(field, f"expected a number, got {value!r}") from None
    if not math.isfinite(out) or out < 0 or (out == 0 and not allow_zero):
        raise InputError(field, f"expected a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return out


def voxel_downsample(xyz: np.ndarray, voxel_size_m: float) -> np.ndarray:
    """(M, 3) centroids of the points of ``xyz`` (N, 3) falling in each cubic voxel of ``voxel_size_m``.

    Centroids rather than voxel centres, so a surface keeps its position (no quantisation error of up
    to half a voxel added to every distance).
    """
    keys = np.floor(xyz / voxel_size_m).astype(np.int64)
    keys -= keys.min(axis=0)
    dims = keys.max(axis=0) + 1
    # One int64 key per voxel is much faster to np.unique than rows; fall back to rows if it overflows.
    if float(np.prod(dims.astype(np.float64))) < 2.0**62:
        linear = (keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]
        _, inverse = np.unique(linear, return_inverse=True)
    else:
        _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse).astype(np.float64)
    return np.stack([np.bincount(inverse, weights=xyz[:, i]) / counts for i in range(3)], axis=1)


def reconstruction_score(pred_xyz, ref_xyz, thresholds_m: Sequence[float] = (0.02, 0.05, 0.10),
                         voxel_size_m: float | None = 0.01,
                         crop_margin_m: float | None = 0.10) -> ReconstructionScore:
    """Accuracy, completeness, chamfer and precision / recall / F1 of ``pred_xyz`` against ``ref_xyz``.

    Args:
        pred_xyz: (N, 3) predicted points, metres, in the reference's frame.
        ref_xyz: (M, 3) reference surface points, metres (e.g. from :func:`fuse_reference`).
        thresholds_m: distances (m, > 0) at which precision, recall and F1 are reported; a point counts
            when its nearest neighbour is strictly closer than the threshold.
        voxel_size_m: both clouds are replaced by their per-voxel centroids at this size, so sampling
            density does not weight the means; None compares the points as given.
        crop_margin_m: predicted points outside the reference's axis-aligned bounds grown by this margin
            are dropped (the reference never saw them, so they are neither right nor wrong); None keeps all.
    Returns:
        A :class:`ReconstructionScore`. If cropping leaves no predicted point, accuracy is nan (there is
        nothing to measure), completeness and chamfer are inf and every fraction is 0.
    """
    pred = _cloud(pred_xyz, "pred_xyz")
    ref = _cloud(ref_xyz, "ref_xyz")
    try:
        thresholds = [float(t) for t in thresholds_m]
    except (TypeError, ValueError):
        raise InputError("thresholds_m", f"expected a sequence of numbers, got {thresholds_m!r}") from None
    if not thresholds:
        raise InputError("thresholds_m", "expected at least one threshold")
    for t in thresholds:
        _positive(t, "thresholds_m")
    if voxel_size_m is not None:
        voxel = _positive(voxel_size_m, "voxel_size_m")
        pred, ref = voxel_downsample(pred, voxel), voxel_downsample(ref, voxel)
    if crop_margin_m is not None:
        margin = _positive(crop_margin_m, "crop_margin_m", allow_zero=True)
        lo, hi = ref.min(axis=0) - margin, ref.max(axis=0) + margin
        pred = pred[((pred >= lo) & (pred <= hi)).all(axis=1)]
    if len(pred) == 0:
        zeros = {t: 0.0 for t in thresholds}
        return ReconstructionScore(math.nan, math.inf, math.inf, dict(zeros), dict(zeros), dict(zeros),
                                   0, len(ref))

    d_pred, _ = cKDTree(ref).query(pred, k=1, workers=-1)
    d_ref, _ = cKDTree(pred).query(ref, k=1, workers=-1)
    accuracy, completeness = float(d_pred.mean()), float(d_ref.mean())
    precision, recall, f1 = {}, {}, {}
    for t in thresholds:
        p, r = float((d_pred < t).mean()), float((d_ref < t).mean())
        precision[t], recall[t] = p, r
        f1[t] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return ReconstructionScore(accuracy, completeness, (accuracy + completeness) / 2, precision, recall, f1,
                               len(pred), len(ref))


def _check_frame(frame: RgbdFrame, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(depth float32 (H, W) with non-finite / negative set to 0, rgb float32 (H, W, 3) in [0, 1],
    K float64 (3, 3), T_cam_world float64 (4, 4)) of the ``n``-th frame, checked."""
    name = f"frames[{n}]"
    depth = np.asarray(frame.depth)
    rgb = np.asarray(frame.rgb)
    K = np.asarray(frame.K, dtype=np.float64)
    T = np.asarray(frame.T_world_cam, dtype=np.float64)
    if depth.ndim != 2 or depth.size == 0:
        raise InputError(f"{name}.depth", f"expected shape (H, W), got {depth.shape}")
    if rgb.shape != (*depth.shape, 3) or rgb.dtype != np.uint8:
        raise InputError(f"{name}.rgb",
                         f"expected uint8 of shape {(*depth.shape, 3)}, got {rgb.dtype} {rgb.shape}")
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError(f"{name}.K", f"expected a finite (3, 3) pinhole matrix, fx, fy > 0, got {K.shape}")
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise InputError(f"{name}.T_world_cam", f"expected a finite (4, 4) matrix, got shape {T.shape}")
    depth = depth.astype(np.float32)
    # Unknown depth is 0 by contract; Open3D skips values <= 0, so map other invalid values there too.
    depth = np.ascontiguousarray(np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32))
    colour = np.ascontiguousarray(rgb.astype(np.float32) / 255.0)
    return depth, colour, K, np.linalg.inv(T)


def fuse_reference(frames: Iterable[RgbdFrame], voxel_size_m: float = 0.01, sdf_trunc_m: float = 0.04,
                   depth_max_m: float = 4.0, device: str = "CPU:0", block_count: int = 4000,
                   min_observations: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """TSDF-fuse RGB-D frames and return the zero-crossing surface points.

    Args:
        frames: RGB-D frames (depth in metres, 0 = unknown; OpenCV camera-to-world poses); read once, so
            a generator works and frames need not fit in memory together.
        voxel_size_m: TSDF voxel edge (m). sdf_trunc_m: truncation distance (m), >= one voxel.
        depth_max_m: depth beyond this (m) is ignored (far depth is the noisiest).
        device: Open3D device, e.g. "CPU:0" or "CUDA:0".
        block_count: initial number of 16^3-voxel blocks (~80 KB each) to allocate. On CPU the hash map
            grows when full, so this only sizes the first allocation (100 frames spread over a 7-Scenes
            kitchen clip touch ~1,500 blocks at 1 cm); on CUDA it must cover the scene.
        min_observations: a surface voxel is extracted only when at least this many frames observed it;
            raise it to drop surfaces seen once (fewer flying pixels, less coverage).
    Returns:
        (N, 3) float32 surface points (m, world frame) and (N, 3) float32 colours in [0, 1].
    """
    for name, value in (("block_count", block_count), ("min_observations", min_observations)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(name, f"expected a positive integer, got {value!r}")
    # the one TSDF implementation (with the half-pixel fix), shared with the mesh export
    fusion = TsdfFusion(voxel_size_m, sdf_trunc_m, depth_max_m, block_resolution=16, block_count=int(block_count),
                        device=device)
    n_frames = 0
    for n, frame in enumerate(frames):
        n_frames += 1
        depth, colour, K, T_cam_world = _check_frame(frame, n)
        fusion.integrate(depth, colour, K, T_cam_world)
    if n_frames == 0:
        raise InputError("frames", "no frames given")
    if fusion.integrated == 0:
        raise InputError("frames", f"none of the {n_frames} frames has valid depth within {depth_max_m} m")
    xyz, rgb = fusion.surface_points(min_observations)
    if xyz.shape[0] == 0:
        raise InputError("frames", f"fusing {fusion.integrated} frames gave no surface points (none seen by "
                                   f"min_observations={min_observations} frames?)")
    return xyz, rgb


__all__ = ["ReconstructionScore", "reconstruction_score", "fuse_reference", "voxel_downsample"]
