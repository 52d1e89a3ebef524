"""Cross-trajectory consistency: do two routes to the same pose show the same view there?

Four trajectories from one snapshot, in pairs that end at the same check pose by different routes:
``orbit`` (30 degrees about the scene's median depth) and ``orbit_direct`` (straight to the orbit's end pose,
turning on the way), then ``up`` (a 15 degree tilt-orbit) and ``up_direct``. The second trajectory of each
pair runs after the first, so with memory it can reuse what the first imagined. The two views at each check
pose are compared (PSNR and SSIM over the whole view); with the method's memories working, consistency
rises from no memory to the global cache (GGM) to GGM plus keyframe references (SSM).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from worldstereo_ros.evaluation.image_metrics import psnr, ssim
from worldstereo_ros.geometry.poses import interpolate_poses
from worldstereo_ros.geometry.trajectories import orbit, tilt_up
from worldstereo_ros.snapshot import Snapshot

#: (first, second) trajectory ids of each check pose
PAIRS = (("orbit", "orbit_direct"), ("up", "up_direct"))


@dataclass
class ConsistencyRow:
    """One memory mode: per-pair PSNR (dB) and SSIM at the check poses, their means, the share of the second
    views' pixels that were imagined, and the run's time (s)."""

    memory: str
    psnr_db: list[float]
    ssim: list[float]
    mean_psnr_db: float
    mean_ssim: float
    imagined_fraction: float
    seconds: float


def check_pose_trajectories(snapshot: Snapshot, frames: int) -> list:
    """The four trajectories (two pairs ending at shared check poses) of ``snapshot``, ``frames`` poses each."""
    from worldstereo_ros.pipeline import Trajectory

    T0 = snapshot.T_world_cam
    depth_median = float(np.median(snapshot.depth[snapshot.depth > 0]))
    a = orbit(T0, frames, 30.0, depth_median_m=depth_median)
    c = tilt_up(T0, frames, 15.0, depth_median_m=depth_median)
    alphas = torch.linspace(0.0, 1.0, frames, dtype=torch.float64)

    def direct(end: np.ndarray) -> np.ndarray:
        return interpolate_poses(torch.from_numpy(T0), torch.from_numpy(end), alphas).numpy()

    return [Trajectory("orbit", a), Trajectory("orbit_direct", direct(a[-1])),
            Trajectory("up", c), Trajectory("up_direct", direct(c[-1]))]


def consistency_row(snapshot: Snapshot, memory: str, frames: int = 25, config=None) -> ConsistencyRow:
    """Run the four trajectories with ``memory`` and compare each pair's views at its check pose.

    Args:
        snapshot: the start snapshot (pinhole RGB-D).
        memory: ``"none"``, ``"ggm"`` or ``"ggm+ssm"``.
        frames: poses per trajectory (>= 2).
        config: a PipelineConfig to start from (its ``memory`` is replaced); None = defaults.
    """
    from dataclasses import replace

    from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig

    cfg = replace(config or PipelineConfig(), memory=memory)
    t0 = time.perf_counter()
    pipe = ImaginationPipeline(cfg).initialize(snapshot)
    results = {r.id: r for r in pipe.run(check_pose_trajectories(snapshot, frames))}
    seconds = time.perf_counter() - t0
    p = [psnr(results[a].rgb[-1], results[b].rgb[-1]) for a, b in PAIRS]
    s = [ssim(results[a].rgb[-1], results[b].rgb[-1]) for a, b in PAIRS]
    imagined = float(np.mean([results[b].imagined[-1].mean() for _, b in PAIRS]))
    return ConsistencyRow(memory, p, s, float(np.mean(p)), float(np.mean(s)), imagined, seconds)


def consistency_rows(snapshot: Snapshot, frames: int = 25, config=None) -> list[ConsistencyRow]:
    """:func:`consistency_row` for no memory, GGM and GGM+SSM, in that order."""
    return [consistency_row(snapshot, m, frames, config) for m in ("none", "ggm", "ggm+ssm")]


def rises(rows: list[ConsistencyRow]) -> bool:
    """True when the mean PSNR strictly rises along ``rows`` (none -> GGM -> GGM+SSM)."""
    values = [r.mean_psnr_db for r in rows]
    return all(a < b for a, b in zip(values, values[1:]))
