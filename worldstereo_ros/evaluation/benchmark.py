"""The benchmark suite behind ``worldstereo-ros bench``: geometry, camera accuracy, cross-path consistency,
image fidelity and speed of every generator backend on real RGB-D data (and one real stereo pair).

Sections (each a list of flat rows, so the report can print and plot them and the JSON stays plain):

* ``geometry``: the ground-truth frames s, s+step, ..., s+span are TSDF-fused into a reference
  (:func:`~worldstereo_ros.evaluation.reconstruction.fuse_reference`); the pipeline, started from frame s
  alone, imagines the views at the other frames' ground-truth poses and its global cache is scored against
  the reference (accuracy, completeness, F1 at 2/5/10 cm, Chamfer). Frame s's own points are the floor.
* ``camera``: the camera path is estimated from the generated frames alone
  (:func:`~worldstereo_ros.evaluation.camera_accuracy.estimate_path`) and compared with the commanded path
  (RotErr, TransErr, ATE); the same frames against the path run backwards show that a generator ignoring its
  path would be caught, and the real frames give the estimator's own error.
* ``consistency``: :mod:`~worldstereo_ros.evaluation.consistency` for no memory / GGM / GGM+SSM.
* ``fidelity``: views at ground-truth poses vs the real frames, with the one-pixel z-buffer + Telea
  baseline side by side (:mod:`~worldstereo_ros.evaluation.view_fidelity`): PSNR, SSIM, sharpness.
* ``stereo``: the right view of the Middlebury pair synthesised from the left image and its ground-truth
  depth, against the real right image, with the same baseline.
* ``speed``: a demo-sized run (procedural snapshot, 4 trajectories) per backend: per-stage seconds, frames
  per second and peak resident memory.

Every backend is deterministic for a seed, so two runs give the same numbers except in ``speed`` (and the
``seconds`` columns).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from worldstereo_ros.datasets.rgbd_folder import RgbdFolder, RgbdFrame
from worldstereo_ros.datasets.tum_rgbd import TumSequence, open_rgbd_sequence
from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation.camera_accuracy import estimate_path, path_errors
from worldstereo_ros.evaluation.consistency import consistency_rows
from worldstereo_ros.evaluation.reconstruction import fuse_reference, reconstruction_score
from worldstereo_ros.evaluation.resources import PeakRss
from worldstereo_ros.evaluation.view_fidelity import baseline_view, evaluate_start, score_view
from worldstereo_ros.snapshot import Snapshot

THRESHOLDS_M = (0.02, 0.05, 0.10)
SECTIONS = ("geometry", "camera", "consistency", "fidelity", "stereo", "speed")


@dataclass
class BenchConfig:
    """What to measure. :meth:`full` and :meth:`quick` are the two presets of the CLI.

    Attributes:
        data: 7-Scenes-style folder (rgb, depth, pose per frame, ``camera-intrinsics.txt``) or TUM RGB-D
            sequence (:func:`~worldstereo_ros.datasets.tum_rgbd.open_rgbd_sequence`).
        middlebury: Middlebury folder (``<name>_left.png``, ``_right.png``, ``_disp.npz``) or None.
        backends: generator backends to measure.
        starts: start frames (geometry, camera and consistency use the first ``geometry_starts`` of them).
        geometry_starts: how many of ``starts`` the geometry, camera and consistency sections use.
        offsets: frame offsets of the fidelity section.
        span, step: the geometry reference fuses frames s..s+span every ``step``; the same poses are imagined.
        consistency_frames: poses per trajectory in the consistency section.
        speed_frames: poses per trajectory of the speed run. speed_size: (width, height) of the speed run.
        depth_max_m: depth beyond this is left out of the reference fusion (metres).
        seed: pipeline seed.
    """

    data: Path
    middlebury: Path | None = None
    backends: list[str] = field(default_factory=lambda: ["render_fill"])
    starts: list[int] = field(default_factory=lambda: [0, 100, 200])
    geometry_starts: int = 3
    offsets: list[int] = field(default_factory=lambda: [5, 10, 20, 40, 60])
    span: int = 100
    step: int = 4
    consistency_frames: int = 25
    speed_frames: int = 25
    speed_size: tuple[int, int] = (640, 480)
    depth_max_m: float = 6.0
    seed: int = 0

    @classmethod
    def full(cls, data, middlebury=None, **overrides) -> "BenchConfig":
        return cls(Path(data), None if middlebury is None else Path(middlebury), **overrides)

    @classmethod
    def quick(cls, data, middlebury=None, **overrides) -> "BenchConfig":
        """About a tenth of the work: one start, a 40-frame span, short trajectories."""
        base = dict(starts=[0], geometry_starts=1, offsets=[5, 20, 60], span=40, step=4, consistency_frames=8,
                    speed_frames=8, speed_size=(320, 240))
        base.update(overrides)
        return cls(Path(data), None if middlebury is None else Path(middlebury), **base)


@dataclass
class BenchResults:
    """Rows per section (see the module doc), the config as a dict and the run's wall time (s)."""

    config: dict
    geometry: list[dict] = field(default_factory=list)
    camera: list[dict] = field(default_factory=list)
    consistency: list[dict] = field(default_factory=list)
    fidelity: list[dict] = field(default_factory=list)
    stereo: list[dict] = field(default_factory=list)
    speed: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    #: (real, baseline, ours) images per offset of the first start, first backend (not in the JSON)
    images: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "images"}


def _pipeline_config(backend: str, seed: int, **kw):
    from worldstereo_ros.pipeline import PipelineConfig

    return PipelineConfig(backend=backend, seed=seed, **kw)


def _snapshot(frame: RgbdFrame) -> Snapshot:
    return Snapshot.create(frame.rgb, frame.depth, frame.K, frame.T_world_cam)


def _score_row(score, **head) -> dict:
    row = dict(head, accuracy_cm=100 * score.accuracy_m, completeness_cm=100 * score.completeness_m,
               chamfer_cm=100 * score.chamfer_m, points=score.n_pred)
    for t in THRESHOLDS_M:
        row[f"f1_{round(100 * t)}cm"] = score.f1[t]
    return row


def geometry_and_camera(folder: RgbdFolder | TumSequence, start: int, span: int, step: int, backends: list[str], seed: int,
                        results: BenchResults, depth_max_m: float = 6.0) -> None:
    """The geometry rows (floor + one per backend) and camera rows of one start frame."""
    from worldstereo_ros.geometry.projection import depth_to_points
    from worldstereo_ros.pipeline import ImaginationPipeline, Trajectory

    indices = [i for i in range(start, start + span + 1, step) if i in folder.indices]
    if len(indices) < 3:
        raise InputError("data", f"frames {start}..{start + span} (every {step}) give fewer than 3 frames")
    frames = [folder.read(i) for i in indices]
    ref_xyz, _ = fuse_reference(frames, depth_max_m=depth_max_m)
    first = frames[0]
    floor = depth_to_points(torch.from_numpy(first.depth), torch.from_numpy(first.K),
                            torch.from_numpy(first.T_world_cam), drop_edges=False).xyz.numpy()
    span_text = f"{indices[0]}..{indices[-1]}/{step}"
    results.geometry.append(_score_row(reconstruction_score(floor, ref_xyz, THRESHOLDS_M), start=start,
                                       frames=span_text, method=f"frame {start} only (floor)", seconds=0.0))
    commanded = np.stack([f.T_world_cam for f in frames[1:]])
    real = estimate_path(np.stack([f.rgb for f in frames[1:]]), np.stack([f.depth for f in frames[1:]]), first.K)
    results.camera.append(_camera_row(start, "real frames (estimator floor)", real, commanded))
    for backend in backends:
        t0 = time.perf_counter()
        pipe = ImaginationPipeline(_pipeline_config(backend, seed)).initialize(_snapshot(first))
        [run] = pipe.run([Trajectory("gt_path", commanded)])
        seconds = time.perf_counter() - t0
        results.geometry.append(_score_row(reconstruction_score(pipe.cache.xyz.cpu().numpy(), ref_xyz,
                                                                THRESHOLDS_M),
                                           start=start, frames=span_text, method=backend, seconds=seconds))
        est = estimate_path(run.rgb, run.depth, run.K)
        results.camera.append(_camera_row(start, backend, est, commanded))
        results.camera.append(_camera_row(start, f"{backend} vs the path reversed (must fail)", est,
                                          commanded[::-1].copy()))


def _camera_row(start: int, method: str, estimate: tuple[np.ndarray, np.ndarray], commanded: np.ndarray) -> dict:
    T_est, tracked = estimate
    e = path_errors(T_est, commanded, tracked)
    return dict(start=start, method=method, rot_err_deg=e.rot_err_deg, trans_err=e.trans_err,
                ate_cm=100 * e.ate_m, tracked=e.tracked_fraction, frames=e.n_frames)


def fidelity(folder: RgbdFolder | TumSequence, starts: list[int], offsets: list[int], backends: list[str], seed: int,
             results: BenchResults) -> None:
    """Per start, offset and backend: both methods' scores against the real frame."""
    for b_i, backend in enumerate(backends):
        for s_i, start in enumerate(starts):
            keep = b_i == 0 and s_i == 0
            r = evaluate_start(folder, start, offsets, _pipeline_config(backend, seed), keep_images=keep)
            if keep:
                results.images = r.images
            for offset, base, ours, holes in zip(r.offsets, r.baseline, r.ours, r.hole_fraction):
                for method, score in (("baseline (z-buffer + Telea)", base), (backend, ours)):
                    if method.startswith("baseline") and b_i > 0:
                        continue
                    results.fidelity.append(dict(start=start, offset=offset, method=method, holes=holes,
                                                 **asdict(score)))


def stereo(middlebury: Path, backends: list[str], seed: int, results: BenchResults) -> None:
    """The right view of the stereo pair from the left image + ground-truth depth, for each backend."""
    from worldstereo_ros.datasets.middlebury import read_middlebury
    from worldstereo_ros.pipeline import ImaginationPipeline, Trajectory

    pair = read_middlebury(middlebury)
    T_left = np.eye(4)
    T_right = np.eye(4)
    T_right[0, 3] = pair.baseline_m  # the right camera sits one baseline along the left camera's x axis
    K_right = pair.K.copy()
    K_right[0, 2] += pair.doffs_px  # doffs = cx_right - cx_left
    left = RgbdFrame(0, pair.left, pair.depth_m, T_left, pair.K)
    real = pair.right.astype(np.float32) / 255.0
    base, holes = baseline_view(left, K_right, T_right)
    results.stereo.append(dict(pair=middlebury.name, method="baseline (z-buffer + Telea)", holes=float(holes.mean()),
                               **asdict(score_view(base, real, holes))))
    for backend in backends:
        pipe = ImaginationPipeline(_pipeline_config(backend, seed)).initialize(_snapshot(left))
        [run] = pipe.run([Trajectory("right", T_right[None], K=K_right)])
        results.stereo.append(dict(pair=middlebury.name, method=backend, holes=float(holes.mean()),
                                   **asdict(score_view(run.rgb[0], real, holes))))


def speed(backends: list[str], frames: int, size: tuple[int, int], seed: int, results: BenchResults) -> None:
    """A demo-sized run per backend: per-stage seconds, frames per second, peak RSS."""
    from worldstereo_ros.datasets.procedural_scene import procedural_snapshot
    from worldstereo_ros.geometry.trajectories import DEFAULT_TRAJECTORIES, build_trajectory, parse_trajectory_spec
    from worldstereo_ros.pipeline import STAGES, ImaginationPipeline, Trajectory

    w, h = size
    snapshot = procedural_snapshot(w, h)
    depth_median = float(np.median(snapshot.depth[snapshot.depth > 0]))
    trajectories = [Trajectory(s.name, build_trajectory(s, snapshot.T_world_cam, frames, depth_median))
                    for s in parse_trajectory_spec(DEFAULT_TRAJECTORIES)]
    for backend in backends:
        with PeakRss() as mem:
            t0 = time.perf_counter()
            pipe = ImaginationPipeline(_pipeline_config(backend, seed)).initialize(snapshot)
            t_init = time.perf_counter() - t0
            runs = pipe.run(trajectories)
            total = time.perf_counter() - t0
        n = sum(r.rgb.shape[0] for r in runs)
        row = dict(backend=backend, views=n, size=f"{w}x{h}", total_s=total, fps=n / total, initialize_s=t_init,
                   peak_rss_mb=mem.peak_mb, rss_growth_mb=mem.growth_mb)
        for stage in STAGES[:-1]:
            row[f"{stage}_s"] = float(sum(r.timings_s.get(stage, 0.0) for r in runs))
        results.speed.append(row)


def run_benchmark(config: BenchConfig, sections: tuple[str, ...] = SECTIONS,
                  progress: Callable[[str], None] | None = None) -> BenchResults:
    """Measure the ``sections`` of ``config`` (module doc); ``progress`` gets a line before each step."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise InputError("sections", f"unknown {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    from worldstereo_ros.generation.base import available_backends

    unknown = [b for b in config.backends if b not in available_backends()]
    if unknown or not config.backends:
        raise InputError("backends", f"unknown {unknown or 'none given'}; valid: {', '.join(available_backends())}")
    say = progress or (lambda _: None)
    folder = open_rgbd_sequence(config.data)
    cfg = asdict(config)
    cfg.update(data=str(config.data), middlebury=None if config.middlebury is None else str(config.middlebury))
    results = BenchResults(config=cfg)
    t0 = time.perf_counter()
    if "geometry" in sections or "camera" in sections:
        for start in config.starts[:config.geometry_starts]:
            say(f"geometry and camera accuracy from frame {start}")
            geometry_and_camera(folder, start, config.span, config.step, config.backends, config.seed, results,
                                config.depth_max_m)
    if "consistency" in sections:
        for start in config.starts[:config.geometry_starts]:
            snapshot = _snapshot(folder.read(start))
            for backend in config.backends:
                say(f"consistency ({backend}) from frame {start}")
                rows = consistency_rows(snapshot, config.consistency_frames, _pipeline_config(backend, config.seed))
                results.consistency += [dict(backend=backend, start=start, **asdict(r)) for r in rows]
    if "fidelity" in sections:
        say(f"view fidelity from frames {config.starts}")
        fidelity(folder, config.starts, config.offsets, config.backends, config.seed, results)
    if "stereo" in sections and config.middlebury is not None:
        say(f"stereo view synthesis on {config.middlebury}")
        stereo(config.middlebury, config.backends, config.seed, results)
    if "speed" in sections:
        say("speed")
        speed(config.backends, config.speed_frames, config.speed_size, config.seed, results)
    results.seconds = time.perf_counter() - t0
    return results


def without_timings(results: dict) -> dict:
    """The JSON of a run without the fields that measure time or memory (for reproducibility checks)."""
    out = {}
    for section, rows in results.items():
        if section in ("speed", "seconds", "config"):
            continue
        out[section] = [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
    return out


__all__ = ["BenchConfig", "BenchResults", "SECTIONS", "run_benchmark", "without_timings"]
