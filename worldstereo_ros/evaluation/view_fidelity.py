"""View fidelity on real RGB-D: synthesise the views at ground-truth poses from one start frame and compare
them with the real frames, side by side with a classical baseline.

Baseline: the start frame's points drawn with a one-pixel z-buffer, holes filled by OpenCV's Telea
inpainting (radius 3). Ours: :class:`~worldstereo_ros.pipeline.ImaginationPipeline` initialised from the start
frame, one trajectory through the target poses.

Both methods are scored on the same pixel split: "imagined" = the pixels the start frame's one-pixel
render leaves empty (what neither method can copy from an observation), "observed" = the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from worldstereo_ros.datasets.rgbd_folder import RgbdFolder, RgbdFrame
from worldstereo_ros.evaluation.image_metrics import psnr, sharpness_ratio, ssim
from worldstereo_ros.geometry.inpaint import telea_inpaint
from worldstereo_ros.geometry.poses import invert
from worldstereo_ros.geometry.projection import depth_to_points
from worldstereo_ros.geometry.render import render_points
from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig, Trajectory
from worldstereo_ros.snapshot import Snapshot


@dataclass
class ViewScore:
    """Scores of one synthesised view against the real frame."""

    psnr_full: float
    psnr_observed: float
    psnr_imagined: float
    ssim_full: float
    ssim_observed: float
    ssim_imagined: float
    sharpness_imagined: float


@dataclass
class StartResult:
    """Per-offset scores of both methods from one start frame, and our pipeline's time."""

    start: int
    offsets: list[int]
    baseline: list[ViewScore] = field(default_factory=list)
    ours: list[ViewScore] = field(default_factory=list)
    hole_fraction: list[float] = field(default_factory=list)
    ours_seconds: float = 0.0
    images: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)  # real, baseline, ours


def score_view(pred: np.ndarray, real: np.ndarray, imagined: np.ndarray) -> ViewScore:
    observed = ~imagined
    return ViewScore(psnr(pred, real), psnr(pred, real, observed), psnr(pred, real, imagined),
                     ssim(pred, real), ssim(pred, real, observed), ssim(pred, real, imagined),
                     sharpness_ratio(pred, real, imagined))


def baseline_view(start: RgbdFrame, target_K: np.ndarray, T_world_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (H, W, 3) float32, hole mask (H, W) bool): one-pixel z-buffer render + Telea inpainting."""
    h, w = start.depth.shape
    points = depth_to_points(torch.from_numpy(start.depth), torch.from_numpy(start.K), torch.from_numpy(start.T_world_cam),
                             rgb=torch.from_numpy(start.rgb.astype(np.float32) / 255.0), drop_edges=False)
    out = render_points(points.xyz, points.rgb, torch.from_numpy(target_K), invert(torch.from_numpy(T_world_target)),
                        h, w, splat_px=0)
    holes = ~out.mask[0].numpy()
    return telea_inpaint(out.rgb[0].numpy(), holes, keep_known=False), holes


def evaluate_start(folder: RgbdFolder, start: int, offsets: list[int], config=None, keep_images: bool = False) -> StartResult:
    """Both methods from frame ``start`` at the poses of ``start + offset`` (offsets past the folder are skipped)."""
    first = folder.read(start)
    offsets = [o for o in offsets if start + o in folder.indices]
    targets = [folder.read(start + o) for o in offsets]
    result = StartResult(start, offsets)
    snapshot = Snapshot.create(first.rgb, first.depth, first.K, first.T_world_cam)
    t0 = time.perf_counter()
    pipeline = ImaginationPipeline(config or PipelineConfig()).initialize(snapshot)
    [ours] = pipeline.run([Trajectory("gt", np.stack([t.T_world_cam for t in targets]))])
    result.ours_seconds = time.perf_counter() - t0
    for i, target in enumerate(targets):
        real = target.rgb.astype(np.float32) / 255.0
        base, holes = baseline_view(first, target.K, target.T_world_cam)
        result.baseline.append(score_view(base, real, holes))
        result.ours.append(score_view(ours.rgb[i], real, holes))
        result.hole_fraction.append(float(holes.mean()))
        if keep_images:
            result.images.append((real, base, ours.rgb[i]))
    return result
