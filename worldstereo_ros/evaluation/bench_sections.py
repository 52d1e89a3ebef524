"""The sections of the bench (:mod:`~worldstereo_ros.evaluation.benchmark` says what each measures): every
function appends its rows to a :class:`~worldstereo_ros.evaluation.bench_config.BenchResults`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from worldstereo_ros.datasets.middlebury import read_middlebury
from worldstereo_ros.datasets.procedural_scene import build_scene, procedural_snapshot
from worldstereo_ros.datasets.rgbd_folder import RgbdFolder, RgbdFrame
from worldstereo_ros.datasets.tum_rgbd import TumSequence
from worldstereo_ros.errors import InputError, WorldStereoError
from worldstereo_ros.evaluation.bench_config import THRESHOLDS_M, BenchConfig, BenchResults
from worldstereo_ros.evaluation.camera_accuracy import estimate_path, path_errors
from worldstereo_ros.evaluation.consistency import consistency_rows, room_checks, sequence_checks
from worldstereo_ros.evaluation.fill_protocol import fill_rows, protocol_pairs
from worldstereo_ros.evaluation.procedural_sequence import ProceduralSequence
from worldstereo_ros.evaluation.reconstruction import fuse_reference, reconstruction_score
from worldstereo_ros.evaluation.resources import PeakRss
from worldstereo_ros.evaluation.view_fidelity import baseline_view, evaluate_start, score_view
from worldstereo_ros.generation.base import available_backends, create_backend, resolve_backend
from worldstereo_ros.geometry.projection import depth_to_points
from worldstereo_ros.geometry.trajectories import DEFAULT_TRAJECTORIES, build_trajectory, parse_trajectory_spec
from worldstereo_ros.pipeline import STAGES, ImaginationPipeline, PipelineConfig, Trajectory
from worldstereo_ros.snapshot import Snapshot


def frames_are_cache_renders(backend: str) -> bool:
    """Whether ``backend``'s frames are renders of the cache (its class attribute ``frames_are_cache_renders``)."""
    try:
        return bool(getattr(resolve_backend(backend), "frames_are_cache_renders", False))
    except WorldStereoError:  # unknown or not importable here: nothing says its frames are renders
        return False


def _pipeline_config(backend: str, settings: PipelineConfig, **kw) -> PipelineConfig:
    """``settings`` (the run's, :meth:`BenchConfig.pipeline`) with ``backend`` and the section's overrides."""
    return replace(settings, backend=backend, **kw)


def _snapshot(frame: RgbdFrame) -> Snapshot:
    return Snapshot.create(frame.rgb, frame.depth, frame.K, frame.T_world_cam)


def _score_row(score, **head) -> dict:
    row = dict(head, accuracy_cm=100 * score.accuracy_m, completeness_cm=100 * score.completeness_m,
               chamfer_cm=100 * score.chamfer_m, points=score.n_pred)
    for t in THRESHOLDS_M:
        row[f"f1_{round(100 * t)}cm"] = score.f1[t]
    return row


def _in_range(index: int, frames: tuple[int, int] | None) -> bool:
    return frames is None or frames[0] <= index <= frames[1]


def plain_cache_render(first: RgbdFrame, T_world_cam: np.ndarray,
                       settings: PipelineConfig) -> tuple[np.ndarray, np.ndarray]:
    """The start frame's cache (as the pipeline builds it) drawn at each pose with no generator: rgb
    (N, H, W, 3) float32 and depth (N, H, W) float32 metres, holes black with depth 0."""
    pipe = ImaginationPipeline(_pipeline_config("render_fill", settings, memory="none")).initialize(_snapshot(first))
    h, w = first.depth.shape
    K = torch.as_tensor(first.K).expand(T_world_cam.shape[0], 3, 3)
    out = pipe.cache.render(K, torch.linalg.inv(torch.as_tensor(T_world_cam)), h, w, splat_px=pipe.config.splat_px)
    return out.rgb.numpy(), out.depth.numpy()


def geometry_and_camera(folder: RgbdFolder | TumSequence, start: int, span: int, step: int, backends: list[str],
                        settings: PipelineConfig, results: BenchResults, depth_max_m: float = 6.0,
                        frames_range: tuple[int, int] | None = None) -> None:
    """The geometry rows (floor + one per backend) and camera rows of one start frame (frames in
    ``frames_range`` only)."""
    indices = [i for i in range(start, start + span + 1, step) if i in folder.indices and _in_range(i, frames_range)]
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
    plain_rgb, plain_depth = plain_cache_render(first, commanded, settings)
    results.camera.append(_camera_row(start, "plain cache render, no generator (to beat)",
                                      estimate_path(plain_rgb, plain_depth, first.K), commanded))
    for backend in backends:
        t0 = time.perf_counter()
        pipe = ImaginationPipeline(_pipeline_config(backend, settings)).initialize(_snapshot(first))
        [run] = pipe.run([Trajectory("gt_path", commanded)])
        seconds = time.perf_counter() - t0
        results.geometry.append(_score_row(reconstruction_score(pipe.cache.xyz.cpu().numpy(), ref_xyz,
                                                                THRESHOLDS_M),
                                           start=start, frames=span_text, method=backend, seconds=seconds))
        est = estimate_path(run.rgb, run.depth, run.K)
        informative = not frames_are_cache_renders(backend)
        results.camera.append(_camera_row(start, backend, est, commanded, informative))
        results.camera.append(_camera_row(start, f"{backend} vs the path reversed (must fail)", est,
                                          commanded[::-1].copy(), informative))


def _camera_row(start: int, method: str, estimate: tuple[np.ndarray, np.ndarray], commanded: np.ndarray,
                informative: bool = True) -> dict:
    T_est, tracked = estimate
    e = path_errors(T_est, commanded, tracked)
    return dict(start=start, method=method, rot_err_deg=e.rot_err_deg, trans_err=e.trans_err,
                ate_cm=100 * e.ate_m, tracked=e.tracked_fraction, frames=e.n_frames, informative=informative)


def fidelity(folder: RgbdFolder | TumSequence, starts: list[int], offsets: list[int], backends: list[str],
             settings: PipelineConfig, results: BenchResults, frames_range: tuple[int, int] | None = None) -> None:
    """Per start, offset and backend: both methods' scores against the real frame (targets in range only)."""
    for b_i, backend in enumerate(backends):
        for s_i, start in enumerate(starts):
            keep = b_i == 0 and s_i == 0
            mine = [o for o in offsets if _in_range(start + o, frames_range)]
            if not mine:
                continue
            r = evaluate_start(folder, start, mine, _pipeline_config(backend, settings), keep_images=keep)
            if keep:
                results.images = r.images
            for offset, base, ours, holes in zip(r.offsets, r.baseline, r.ours, r.hole_fraction):
                for method, score in (("baseline (z-buffer + Telea)", base), (backend, ours)):
                    if method.startswith("baseline") and b_i > 0:
                        continue
                    results.fidelity.append(dict(start=start, offset=offset, method=method, holes=holes,
                                                 **asdict(score)))


def consistency(folder, starts: list[int], config: BenchConfig, results: BenchResults,
                say: Callable[[str], None]) -> None:
    """Consistency v2 rows from each start of the data and from the procedural room, per backend."""
    settings = config.pipeline()
    for start in starts:
        checks = sequence_checks(folder, start, [start + o for o in config.check_offsets], config.consistency_frames,
                                 frame_range=config.frames)
        snapshot = _snapshot(folder.read(start))
        for backend in config.backends:
            say(f"consistency ({backend}) from frame {start}")
            rows = consistency_rows(snapshot, checks, _pipeline_config(backend, settings))
            results.consistency += [dict(source=f"data, frame {start}", backend=backend, **asdict(r)) for r in rows]
    w, h = config.room_size
    snapshot = procedural_snapshot(w, h)
    checks = room_checks(snapshot, build_scene(0, 0.01), config.consistency_frames)
    for backend in config.backends:
        say(f"consistency ({backend}) on the procedural room")
        rows = consistency_rows(snapshot, checks, _pipeline_config(backend, settings))
        results.consistency += [dict(source="procedural room", backend=backend, **asdict(r)) for r in rows]


def fill_backends(names: list[str]) -> tuple[dict, list[dict]]:
    """Every registered backend (and ``names``), constructed with its defaults: ({name: backend}, rows saying
    why a backend could not be constructed, e.g. missing weights)."""
    backends, skipped = {}, []
    for name in dict.fromkeys([*available_backends(), *names]):
        try:
            backends[name] = create_backend(name)
        except (WorldStereoError, ImportError, OSError, RuntimeError, ValueError) as exc:
            skipped.append(dict(method=name, reason=f"{type(exc).__name__}: {exc}"))
    return backends, skipped


def fill(folder, config: BenchConfig, results: BenchResults, say: Callable[[str], None]) -> None:
    """The fill protocol on seeded pairs of the data and of the procedural room (module doc)."""
    backends, skipped = fill_backends(config.backends)
    results.fill_skipped = skipped
    methods = dict(backends)
    for name, backend in backends.items():
        if backend.uses_references:  # the same backend without the partner view: what the reference buys
            methods[f"{name} (no reference)"] = _NoReferences(backend)
    w, h = config.room_size
    room = ProceduralSequence(config.fill_room_frames, w, h)
    sources = [("procedural room", room, protocol_pairs(room.indices, config.fill_room_pairs, None, config.seed)),
               (f"data {_range_text(config.frames)}", folder,
                protocol_pairs(folder.indices, config.fill_pairs, config.frames, config.seed))]
    for source, sequence, pairs in sources:
        say(f"fill protocol on {source}: {len(pairs)} pairs, {len(methods)} methods + Telea")
        results.fill += fill_rows(sequence, pairs, methods, source, config.seed)


class _NoReferences:
    """A backend seen through a wrapper that reports ``uses_references = False`` (the request gets none)."""
    uses_references = False

    def __init__(self, backend) -> None:
        self._backend = backend

    def generate(self, request, generator=None, on_frame=None):
        return self._backend.generate(request, generator=generator, on_frame=on_frame)


def _range_text(frames: tuple[int, int] | None) -> str:
    return "all frames" if frames is None else f"frames {frames[0]}-{frames[1]}"


def stereo(middlebury: Path, backends: list[str], settings: PipelineConfig, results: BenchResults,
           calibration: dict | None = None) -> None:
    """The right view of the stereo pair from the left image + ground-truth depth, for each backend."""
    pair = read_middlebury(middlebury, **(calibration or {}))
    T_left = np.eye(4)
    T_right = np.eye(4)
    T_right[0, 3] = pair.baseline_m  # the right camera sits one baseline along the left camera's x axis
    K_right = pair.K.copy()
    K_right[0, 2] += pair.doffs_px  # doffs = cx_right - cx_left
    left = RgbdFrame(0, pair.left, pair.depth_m, T_left, pair.K)
    real = pair.right.astype(np.float32) / 255.0
    base, holes = baseline_view(left, K_right, T_right)  # the shared Telea helper fills its holes
    results.stereo.append(dict(pair=middlebury.name, method="baseline (z-buffer + Telea)", holes=float(holes.mean()),
                               **asdict(score_view(base, real, holes))))
    for backend in backends:
        pipe = ImaginationPipeline(_pipeline_config(backend, settings)).initialize(_snapshot(left))
        [run] = pipe.run([Trajectory("right", T_right[None], K=K_right)])
        results.stereo.append(dict(pair=middlebury.name, method=backend, holes=float(holes.mean()),
                                   **asdict(score_view(run.rgb[0], real, holes))))


def speed(backends: list[str], frames: int, size: tuple[int, int], settings: PipelineConfig,
          results: BenchResults) -> None:
    """A demo-sized run per backend: per-stage seconds, frames per second, peak RSS."""
    w, h = size
    snapshot = procedural_snapshot(w, h)
    depth_median = float(np.median(snapshot.depth[snapshot.depth > 0]))
    trajectories = [Trajectory(s.name, build_trajectory(s, snapshot.T_world_cam, frames, depth_median))
                    for s in parse_trajectory_spec(DEFAULT_TRAJECTORIES)]
    for backend in backends:
        with PeakRss() as mem:
            t0 = time.perf_counter()
            pipe = ImaginationPipeline(_pipeline_config(backend, settings)).initialize(snapshot)
            t_init = time.perf_counter() - t0
            runs = pipe.run(trajectories)
            total = time.perf_counter() - t0
        n = sum(r.rgb.shape[0] for r in runs)
        row = dict(backend=backend, views=n, size=f"{w}x{h}", total_s=total, fps=n / total, initialize_s=t_init,
                   peak_rss_mb=mem.peak_mb, rss_growth_mb=mem.growth_mb)
        for stage in STAGES[:-1]:
            row[f"{stage}_s"] = float(sum(r.timings_s.get(stage, 0.0) for r in runs))
        results.speed.append(row)
