"""Consistency v2: two routes to the same check pose, each view scored against the truth there.

Agreement between two routes alone proves nothing: a second route that copies the first (from the cache,
or from a keyframe taken at the identical pose) agrees perfectly and can still be wrong. So every row
reports, per memory setting (no memory / GGM / GGM+SSM), both routes' views at each check pose scored
against an independent truth, beside the route-vs-route agreement:

* procedural room (:func:`room_checks`): the truth is the room rendered at the check pose;
* real RGB-D data (:func:`sequence_checks`): the check poses are real ground-truth frames that the runs
  never saw (only the start frame's image enters the pipeline), and the truth is that real frame.

Per check pose there are two routes from the start frame: route A (an orbit / tilt on the procedural
room; the ground-truth camera path on real data) and route B (straight to the check pose, turning on the
way). A runs first; B runs after it and may reuse what A imagined: that is what the memories are for.
Neither route ends at its check pose: each passes it at an index that is not a keyframe index and goes on
a few frames, so no keyframe is ever taken at a check pose (:func:`check_pose_is_no_keyframe` refuses a
layout where one would be) and route B cannot retrieve a view of A at the identical pose.

The memory target is accuracy against the truth rising none < GGM < GGM+SSM (:func:`accuracy_rises`).
The one-pixel z-buffer + Telea view of the start frame at each check pose is the level to beat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from worldstereo_ros.datasets.rgbd_folder import RgbdFrame
from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation.image_metrics import psnr, ssim
from worldstereo_ros.evaluation.view_fidelity import baseline_view
from worldstereo_ros.geometry.poses import interpolate_poses
from worldstereo_ros.geometry.trajectories import orbit, tilt_up
from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig, Trajectory
from worldstereo_ros.snapshot import Snapshot

MEMORIES = ("none", "ggm", "ggm+ssm")
#: Method name of the generator-free row.
BASELINE = "z-buffer + Telea (no generator)"
#: Frames each route goes on past its check pose.
FRAMES_PAST_CHECK = 2


@dataclass
class CheckPose:
    """One check pose and its two routes.

    Attributes:
        name: label ("orbit", "up", "frame 225", ...).
        T_world_cam: (4, 4) float64 the check pose. truth: (H, W, 3) float32 in [0, 1], the true view there.
        route_a, route_b: (N, 4, 4) float64 camera paths; both pass the check pose at ``index``.
        index: frame index of the check pose in both routes (never a keyframe index).
    """

    name: str
    T_world_cam: np.ndarray
    truth: np.ndarray
    route_a: np.ndarray
    route_b: np.ndarray
    index: int


@dataclass
class ConsistencyRow:
    """One memory setting (or the baseline) over all check poses.

    Attributes:
        memory: ``none`` / ``ggm`` / ``ggm+ssm``, or :data:`BASELINE`.
        checks: the check poses' names.
        psnr_a_db, psnr_b_db: per check pose, route A's / B's view against the truth, dB.
        ssim_a, ssim_b: the same as SSIM.
        agreement_db: per check pose, PSNR between A's and B's views (None for the baseline: one view).
        accuracy_db: mean of ``psnr_a_db`` and ``psnr_b_db``. mean_agreement_db: mean of ``agreement_db``.
        imagined_fraction: share of the check views' pixels that were imagined (the cache did not give).
        seconds: time of the run.
    """

    memory: str
    checks: list[str]
    psnr_a_db: list[float]
    psnr_b_db: list[float]
    ssim_a: list[float]
    ssim_b: list[float]
    agreement_db: list[float | None] = field(default_factory=list)
    accuracy_db: float = float("nan")
    mean_agreement_db: float | None = None
    imagined_fraction: float = float("nan")
    seconds: float = 0.0


def _check_index(n: int, stride: int) -> int:
    """Index of the check pose in an n-frame route: the last one leaving FRAMES_PAST_CHECK frames after it
    that is not a keyframe index (every stride-th frame and the last, as the pipeline banks them)."""
    for idx in range(n - 1 - FRAMES_PAST_CHECK, 0, -1):
        if (idx + 1) % stride != 0:
            return idx
    raise InputError("frames", f"a route of {n} frames has no check index that is not a keyframe (stride {stride})")


def keyframe_indices(n: int, stride: int) -> list[int]:
    """Frames of an n-frame trajectory the pipeline banks as keyframes: every ``stride``-th and the last."""
    return sorted(set(range(stride - 1, n, stride)) | {n - 1})


def check_pose_is_no_keyframe(check: CheckPose, stride: int, snapshot_pose: np.ndarray) -> None:
    """Raise InputError when a keyframe of either route (or the snapshot) sits at ``check``'s pose."""
    poses = [snapshot_pose]
    for route in (check.route_a, check.route_b):
        poses += [route[k] for k in keyframe_indices(len(route), stride)]
    for T in poses:
        dt = float(np.linalg.norm(T[:3, 3] - check.T_world_cam[:3, 3]))
        dr = float(np.abs(T[:3, :3] - check.T_world_cam[:3, :3]).max())
        if dt < 1e-4 and dr < 1e-4:
            raise InputError("checks", f"check pose {check.name!r} coincides with a keyframe pose")


def _direct(T0: np.ndarray, T1: np.ndarray, n: int) -> np.ndarray:
    alphas = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    return interpolate_poses(torch.from_numpy(T0), torch.from_numpy(T1), alphas).numpy()


def _routes(T0: np.ndarray, path: np.ndarray, idx: int) -> tuple[np.ndarray, np.ndarray]:
    """Route A = ``path`` (passing the check pose ``path[idx]``); route B = straight from T0 to it, then on
    along A's last poses."""
    b = np.concatenate([_direct(T0, path[idx], idx + 1), path[idx + 1:]])
    return path.copy(), b


def room_checks(snapshot: Snapshot, scene, frames: int = 25, stride: int = 5) -> list[CheckPose]:
    """Two check poses on the procedural room: on a 30 degree orbit and on a 15 degree tilt about the scene's
    median depth; the truth is ``scene.render`` there."""
    T0 = snapshot.T_world_cam
    depth_median = float(np.median(snapshot.depth[snapshot.depth > 0]))
    idx = _check_index(frames, stride)
    out = []
    for name, path in (("orbit", orbit(T0, frames, 30.0, depth_median_m=depth_median)),
                       ("up", tilt_up(T0, frames, 15.0, depth_median_m=depth_median))):
        path = np.asarray(path, dtype=np.float64)
        a, b = _routes(T0, path, idx)
        truth, _ = scene.render(snapshot.K, path[idx], snapshot.width, snapshot.height)
        out.append(CheckPose(name, path[idx].copy(), truth, a, b, idx))
    return out


def sequence_checks(sequence, start: int, check_frames: list[int], frames: int = 25, stride: int = 5,
                    frame_range: tuple[int, int] | None = None) -> list[CheckPose]:
    """Check poses at real ground-truth frames of ``sequence`` (read(i) -> RgbdFrame) from frame ``start``.

    Route A follows the ground-truth camera path from ``start`` through each check frame and
    FRAMES_PAST_CHECK frames beyond (every few frames, so it has ``frames`` poses); route B goes straight to
    the check pose. The truth is the real check frame, which the runs never see.
    Raises:
        InputError: a check frame not after the start, or one whose path leaves the sequence or ``frame_range``.
    """
    idx = _check_index(frames, stride)
    indices = set(sequence.indices)
    lo, hi = frame_range if frame_range is not None else (min(indices), max(indices))
    T0 = sequence.read(start).T_world_cam
    out = []
    for c in check_frames:
        if c <= start + idx:
            raise InputError("check_frames", f"frame {c} must be more than {idx} frames after the start {start}")
        # idx steps from start to c, then the same step past c
        before = np.round(np.linspace(start, c, idx + 1)).astype(int)
        step = max(1, int(round((c - start) / idx)))
        after = [c + step * (k + 1) for k in range(frames - idx - 1)]
        path_idx = [*before.tolist(), *after]
        missing = [i for i in path_idx if i not in indices or not lo <= i <= hi]
        if missing:
            raise InputError("check_frames", f"route to frame {c} needs frames {missing} outside the data or the "
                                             f"frame range {lo}-{hi}")
        path = np.stack([sequence.read(i).T_world_cam for i in path_idx])
        a, b = _routes(T0, path, idx)
        real = sequence.read(c)
        out.append(CheckPose(f"frame {c}", real.T_world_cam.copy(), real.rgb.astype(np.float32) / 255.0, a, b, idx))
    return out


def consistency_row(snapshot: Snapshot, checks: list[CheckPose], memory: str, config=None) -> ConsistencyRow:
    """Run both routes of every check pose (A1, B1, A2, B2, ...) with ``memory``; score the check views."""
    if memory not in MEMORIES:
        raise InputError("memory", f"expected one of {', '.join(MEMORIES)}, got {memory!r}")
    cfg = replace(config or PipelineConfig(), memory=memory)
    for check in checks:
        check_pose_is_no_keyframe(check, cfg.keyframe_stride, snapshot.T_world_cam)
    trajectories = []
    for k, check in enumerate(checks):
        trajectories += [Trajectory(f"a{k}", check.route_a), Trajectory(f"b{k}", check.route_b)]
    t0 = time.perf_counter()
    pipe = ImaginationPipeline(cfg).initialize(snapshot)
    runs = {r.id: r for r in pipe.run(trajectories)}
    seconds = time.perf_counter() - t0
    row = ConsistencyRow(memory, [c.name for c in checks], [], [], [], [], seconds=seconds)
    imagined = []
    for k, check in enumerate(checks):
        va, vb = runs[f"a{k}"].rgb[check.index], runs[f"b{k}"].rgb[check.index]
        row.psnr_a_db.append(psnr(va, check.truth))
        row.psnr_b_db.append(psnr(vb, check.truth))
        row.ssim_a.append(ssim(va, check.truth))
        row.ssim_b.append(ssim(vb, check.truth))
        row.agreement_db.append(psnr(va, vb))
        imagined += [runs[f"a{k}"].imagined[check.index].mean(), runs[f"b{k}"].imagined[check.index].mean()]
    row.accuracy_db = float(np.mean(row.psnr_a_db + row.psnr_b_db))
    row.mean_agreement_db = float(np.mean(row.agreement_db))
    row.imagined_fraction = float(np.mean(imagined))
    return row


def baseline_row(snapshot: Snapshot, checks: list[CheckPose]) -> ConsistencyRow:
    """The start frame drawn with a one-pixel z-buffer at each check pose, Telea-filled, against the truth
    (both "routes" are the same view)."""
    rgb8 = (np.clip(snapshot.rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    start = RgbdFrame(0, rgb8, snapshot.depth, snapshot.T_world_cam, snapshot.K)
    t0 = time.perf_counter()
    row = ConsistencyRow(BASELINE, [c.name for c in checks], [], [], [], [])
    holes = []
    for check in checks:
        view, hole = baseline_view(start, snapshot.K, check.T_world_cam)
        p, s = psnr(view, check.truth), ssim(view, check.truth)
        row.psnr_a_db.append(p)
        row.psnr_b_db.append(p)
        row.ssim_a.append(s)
        row.ssim_b.append(s)
        row.agreement_db.append(None)
        holes.append(hole.mean())
    row.accuracy_db = float(np.mean(row.psnr_a_db))
    row.imagined_fraction = float(np.mean(holes))
    row.seconds = time.perf_counter() - t0
    return row


def consistency_rows(snapshot: Snapshot, checks: list[CheckPose], config=None) -> list[ConsistencyRow]:
    """The baseline row, then :func:`consistency_row` for no memory, GGM and GGM+SSM."""
    return [baseline_row(snapshot, checks)] + [consistency_row(snapshot, checks, m, config) for m in MEMORIES]


def _by_memory(rows) -> list:
    get = (lambda r, k: r[k]) if rows and isinstance(rows[0], dict) else getattr
    return [r for m in MEMORIES for r in rows if get(r, "memory") == m]


def accuracy_rises(rows) -> bool:
    """True when accuracy against the truth strictly rises none -> GGM -> GGM+SSM (rows or their dicts)."""
    ordered = _by_memory(rows)
    values = [r["accuracy_db"] if isinstance(r, dict) else r.accuracy_db for r in ordered]
    return len(values) == len(MEMORIES) and all(a < b for a, b in zip(values, values[1:]))


def agreement_rises(rows) -> bool:
    """True when route-vs-route agreement strictly rises none -> GGM -> GGM+SSM (proves nothing alone)."""
    ordered = _by_memory(rows)
    values = [r["mean_agreement_db"] if isinstance(r, dict) else r.mean_agreement_db for r in ordered]
    return len(values) == len(MEMORIES) and all(a < b for a, b in zip(values, values[1:]))
