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
  The plain cache render (frame s's points drawn at the commanded poses, no generator) is the row to
  beat; the section is informative only for backends whose frames are not renders of the cache
  (:func:`frames_are_cache_renders`): for those, exact depth at exactly the commanded pose makes it
  unable to fail.
* ``consistency``: :mod:`~worldstereo_ros.evaluation.consistency` for no memory / GGM / GGM+SSM: both
  routes' views against the truth (real check frames the runs never saw; the procedural room's true
  render) beside route-vs-route agreement, and the z-buffer + Telea level.
* ``fill``: the forward-backward fill protocol (:mod:`~worldstereo_ros.evaluation.fill_protocol`) for Telea,
  every registered backend (and, for backends that read references, the same without the partner
  reference), on seeded pairs of the data and of the procedural room.
* ``fidelity``: views at ground-truth poses vs the real frames, with the one-pixel z-buffer + Telea
  baseline side by side (:mod:`~worldstereo_ros.evaluation.view_fidelity`): PSNR, SSIM, sharpness.
* ``stereo``: the right view of the Middlebury pair synthesised from the left image and its ground-truth
  depth, against the real right image, with the same baseline.
* ``speed``: a demo-sized run (procedural snapshot, 4 trajectories) per backend: per-stage seconds, frames
  per second and peak resident memory.

Every backend is deterministic for a seed, so two runs give the same numbers except in ``speed`` (and the
``seconds`` columns). Across machines, the thread counts of torch, OpenCV and BLAS change the order of
floating-point sums (and OpenCV's parallel loops), so the bench fixes them (:data:`BENCH_THREADS`,
:func:`fixed_threads`) and records the library versions in ``config["environment"]``.

Tuning discipline: ``frames`` restricts every start, target, check frame and pair to one range of the
sequence. The reported numbers come from 7-Scenes frames 200-299 (the shared data's report split); defaults
are tuned on 0-199 and 300-599 only.
"""

from __future__ import annotations

import contextlib
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from worldstereo_ros.datasets.rgbd_folder import RgbdFolder, RgbdFrame
from worldstereo_ros.datasets.tum_rgbd import TumSequence, open_rgbd_sequence
from worldstereo_ros.errors import InputError, WorldStereoError
from worldstereo_ros.evaluation.camera_accuracy import estimate_path, path_errors
from worldstereo_ros.evaluation.consistency import consistency_rows, room_checks, sequence_checks
from worldstereo_ros.evaluation.reconstruction import fuse_reference, reconstruction_score
from worldstereo_ros.evaluation.resources import PeakRss
from worldstereo_ros.evaluation.view_fidelity import baseline_view, evaluate_start, score_view
from worldstereo_ros.generation.base import resolve_backend
from worldstereo_ros.snapshot import Snapshot

THRESHOLDS_M = (0.02, 0.05, 0.10)
SECTIONS = ("geometry", "camera", "consistency", "fill", "fidelity", "stereo", "speed")
#: Threads torch, OpenCV and BLAS use inside the bench (the numbers must not depend on the machine's cores).
BENCH_THREADS = 1
#: The report split of the shared 7-Scenes data (its README): the bench's default frame range.
REPORT_FRAMES = (200, 299)
#: Backends whose frames are the cache rendered at exactly the commanded pose wherever it covers the view.
CACHE_RENDER_BACKENDS = ("render_fill",)


def frames_are_cache_renders(backend: str) -> bool:
    """Whether ``backend``'s frames are renders of the cache (a class attribute ``frames_are_cache_renders``
    decides when the backend sets one; else :data:`CACHE_RENDER_BACKENDS`)."""
    try:
        flag = getattr(resolve_backend(backend), "frames_are_cache_renders", None)
    except WorldStereoError:  # unknown or not importable here: fall back to the table
        flag = None
    return bool(flag) if flag is not None else backend in CACHE_RENDER_BACKENDS


@contextlib.contextmanager
def fixed_threads(n: int = BENCH_THREADS):
    """Run the block with ``n`` threads in torch, OpenCV and (through threadpoolctl, when installed) BLAS and
    OpenMP, restoring the previous counts after."""
    import cv2

    before_torch, before_cv = torch.get_num_threads(), cv2.getNumThreads()
    limits = contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(n)
    except ImportError:  # numpy's BLAS then keeps its own count; the bench's maths is torch and OpenCV
        pass
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    try:
        with limits:
            yield
    finally:
        torch.set_num_threads(before_torch)
        cv2.setNumThreads(before_cv)


def environment() -> dict:
    """Library versions and thread counts that the numbers may depend on (stored with the results)."""
    import cv2
    import open3d
    import skimage

    return dict(python=platform.python_version(), numpy=np.__version__, torch=torch.__version__,
                opencv=cv2.__version__, open3d=open3d.__version__, scikit_image=skimage.__version__,
                threads=BENCH_THREADS, **_checkout())


def _checkout() -> dict:
    """The commit of the checkout the code runs from and whether tracked files differ from it."""
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return dict(commit=None, uncommitted_changes=None)
    return dict(commit=commit, uncommitted_changes=bool(dirty))


def data_fingerprint(folder: Path) -> str:
    """SHA-256 over the names and bytes of every file under ``folder`` (sorted): two machines that disagree
    on a deterministic number first compare this, the versions and the commit."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def parse_frames(text: str | None) -> tuple[int, int] | None:
    """``"200-299"`` -> (200, 299) (inclusive); ``"all"`` or None -> None. Raises InputError naming ``frames``."""
    if text is None or text == "all":
        return None
    try:
        lo, hi = (int(v) for v in str(text).split("-"))
    except ValueError as exc:
        raise InputError("frames", f"expected FIRST-LAST (e.g. 200-299) or 'all', got {text!r}") from exc
    if not 0 <= lo < hi:
        raise InputError("frames", f"expected 0 <= FIRST < LAST, got {text!r}")
    return lo, hi


@dataclass
class BenchConfig:
    """What to measure. :meth:`full` and :meth:`quick` are the two presets of the CLI.

    Attributes:
        data: 7-Scenes-style folder (rgb, depth, pose per frame, ``camera-intrinsics.txt``) or TUM RGB-D
            sequence (:func:`~worldstereo_ros.datasets.tum_rgbd.open_rgbd_sequence`).
        middlebury: Middlebury folder (:func:`~worldstereo_ros.datasets.middlebury.read_middlebury`) or None.
        middlebury_calibration: ``focal_px`` / ``baseline_mm`` / ``doffs_px`` for a pair without calib.txt.
        backends: generator backends to measure (the fill section measures every registered one).
        frames: inclusive (first, last) frame range that every start, target, check frame and pair stays in;
            None = the whole sequence.
        starts: start frames (geometry, camera and consistency use the first ``geometry_starts`` of them);
            None = the range's first frame and (full preset) the one 40 frames later.
        geometry_starts: how many of ``starts`` the geometry, camera and consistency sections use.
        offsets: frame offsets of the fidelity section.
        span, step: the geometry reference fuses frames s..s+span every ``step``; the same poses are imagined.
        consistency_frames: poses per route in the consistency section.
        check_offsets: the real check frames of the consistency section, frames after each start.
        room_size: (width, height) of the procedural room's consistency and fill runs.
        fill_pairs, fill_room_pairs: seeded pairs of the fill protocol on the data / the procedural room.
        fill_room_frames: frames of the procedural sequence the room's pairs come from.
        speed_frames: poses per trajectory of the speed run. speed_size: (width, height) of the speed run.
        depth_max_m: depth beyond this is left out of the reference fusion (metres).
        seed: pipeline seed.
    """

    data: Path
    middlebury: Path | None = None
    middlebury_calibration: dict = field(default_factory=dict)
    backends: list[str] = field(default_factory=lambda: ["render_fill"])
    frames: tuple[int, int] | None = REPORT_FRAMES
    starts: list[int] | None = None
    geometry_starts: int = 2
    offsets: list[int] = field(default_factory=lambda: [5, 10, 20, 40, 60])
    span: int = 100
    step: int = 4
    consistency_frames: int = 25
    check_offsets: list[int] = field(default_factory=lambda: [25, 50])
    room_size: tuple[int, int] = (640, 480)
    fill_pairs: int = 30
    fill_room_pairs: int = 30
    fill_room_frames: int = 90
    speed_frames: int = 25
    speed_size: tuple[int, int] = (640, 480)
    depth_max_m: float = 6.0
    seed: int = 0

    @classmethod
    def full(cls, data, middlebury=None, **overrides) -> "BenchConfig":
        return cls(Path(data), None if middlebury is None else Path(middlebury), **overrides)

    @classmethod
    def quick(cls, data, middlebury=None, **overrides) -> "BenchConfig":
        """About a tenth of the work: one start, a 40-frame span, short routes, one real check frame, few pairs."""
        base = dict(geometry_starts=1, offsets=[5, 20, 60], span=40, step=4, consistency_frames=8,
                    check_offsets=[15], room_size=(320, 240), fill_pairs=6, fill_room_pairs=12,
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
    fill: list[dict] = field(default_factory=list)
    fidelity: list[dict] = field(default_factory=list)
    stereo: list[dict] = field(default_factory=list)
    speed: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    #: backends the fill section could not construct: [{"method", "reason"}]
    fill_skipped: list[dict] = field(default_factory=list)
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


def _in_range(index: int, frames: tuple[int, int] | None) -> bool:
    return frames is None or frames[0] <= index <= frames[1]


def plain_cache_render(first: RgbdFrame, T_world_cam: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The start frame's cache (as the pipeline builds it) drawn at each pose with no generator: rgb
    (N, H, W, 3) float32 and depth (N, H, W) float32 metres, holes black with depth 0."""
    from worldstereo_ros.pipeline import ImaginationPipeline

    pipe = ImaginationPipeline(_pipeline_config("render_fill", seed, memory="none")).initialize(_snapshot(first))
    h, w = first.depth.shape
    K = torch.as_tensor(first.K).expand(T_world_cam.shape[0], 3, 3)
    out = pipe.cache.render(K, torch.linalg.inv(torch.as_tensor(T_world_cam)), h, w, splat_px=pipe.config.splat_px)
    return out.rgb.numpy(), out.depth.numpy()


def geometry_and_camera(folder: RgbdFolder | TumSequence, start: int, span: int, step: int, backends: list[str], seed: int,
                        results: BenchResults, depth_max_m: float = 6.0,
                        frames_range: tuple[int, int] | None = None) -> None:
    """The geometry rows (floor + one per backend) and camera rows of one start frame (frames in
    ``frames_range`` only)."""
    from worldstereo_ros.geometry.projection import depth_to_points
    from worldstereo_ros.pipeline import ImaginationPipeline, Trajectory

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
    plain_rgb, plain_depth = plain_cache_render(first, commanded, seed)
    results.camera.append(_camera_row(start, "plain cache render, no generator (to beat)",
                                      estimate_path(plain_rgb, plain_depth, first.K), commanded))
    for backend in backends:
        t0 = time.perf_counter()
        pipe = ImaginationPipeline(_pipeline_config(backend, seed)).initialize(_snapshot(first))
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


def fidelity(folder: RgbdFolder | TumSequence, starts: list[int], offsets: list[int], backends: list[str], seed: int,
             results: BenchResults, frames_range: tuple[int, int] | None = None) -> None:
    """Per start, offset and backend: both methods' scores against the real frame (targets in range only)."""
    for b_i, backend in enumerate(backends):
        for s_i, start in enumerate(starts):
            keep = b_i == 0 and s_i == 0
            mine = [o for o in offsets if _in_range(start + o, frames_range)]
            if not mine:
                continue
            r = evaluate_start(folder, start, mine, _pipeline_config(backend, seed), keep_images=keep)
            if keep:
                results.images = r.images
            for offset, base, ours, holes in zip(r.offsets, r.baseline, r.ours, r.hole_fraction):
                for method, score in (("baseline (z-buffer + Telea)", base), (backend, ours)):
                    if method.startswith("baseline") and b_i > 0:
                        continue
                    results.fidelity.append(dict(start=start, offset=offset, method=method, holes=holes,
                                                 **asdict(score)))


def consistency(folder, starts: list[int], config: "BenchConfig", results: BenchResults,
                say: Callable[[str], None]) -> None:
    """Consistency v2 rows from each start of the data and from the procedural room, per backend."""
    from worldstereo_ros.datasets.procedural_scene import build_scene, procedural_snapshot

    for start in starts:
        checks = sequence_checks(folder, start, [start + o for o in config.check_offsets], config.consistency_frames,
                                 frame_range=config.frames)
        snapshot = _snapshot(folder.read(start))
        for backend in config.backends:
            say(f"consistency ({backend}) from frame {start}")
            rows = consistency_rows(snapshot, checks, _pipeline_config(backend, config.seed))
            results.consistency += [dict(source=f"data, frame {start}", backend=backend, **asdict(r)) for r in rows]
    w, h = config.room_size
    snapshot = procedural_snapshot(w, h)
    checks = room_checks(snapshot, build_scene(0, 0.01), config.consistency_frames)
    for backend in config.backends:
        say(f"consistency ({backend}) on the procedural room")
        rows = consistency_rows(snapshot, checks, _pipeline_config(backend, config.seed))
        results.consistency += [dict(source="procedural room", backend=backend, **asdict(r)) for r in rows]


def fill_backends(names: list[str]) -> tuple[dict, list[dict]]:
    """Every registered backend (and ``names``), constructed with its defaults: ({name: backend}, rows saying
    why a backend could not be constructed, e.g. missing weights)."""
    from worldstereo_ros.errors import WorldStereoError
    from worldstereo_ros.generation.base import available_backends, create_backend

    backends, skipped = {}, []
    for name in dict.fromkeys([*available_backends(), *names]):
        try:
            backends[name] = create_backend(name)
        except (WorldStereoError, ImportError, OSError, RuntimeError, ValueError) as exc:
            skipped.append(dict(method=name, reason=f"{type(exc).__name__}: {exc}"))
    return backends, skipped


def fill(folder, config: "BenchConfig", results: BenchResults, say: Callable[[str], None]) -> None:
    """The fill protocol on seeded pairs of the data and of the procedural room (module doc)."""
    from worldstereo_ros.evaluation.fill_protocol import fill_rows, protocol_pairs
    from worldstereo_ros.evaluation.procedural_sequence import ProceduralSequence

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


def stereo(middlebury: Path, backends: list[str], seed: int, results: BenchResults,
           calibration: dict | None = None) -> None:
    """The right view of the stereo pair from the left image + ground-truth depth, for each backend."""
    from worldstereo_ros.datasets.middlebury import read_middlebury
    from worldstereo_ros.pipeline import ImaginationPipeline, Trajectory

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


def resolve_starts(config: BenchConfig, indices) -> list[int]:
    """The start frames: ``config.starts``, or the range's first frame (and, when ``geometry_starts`` > 1 and
    the range holds it, the one 40 frames later). Raises InputError for a start outside the data or the range."""
    available = set(indices)
    lo, hi = config.frames if config.frames is not None else (min(available), max(available))
    starts = config.starts
    if starts is None:
        starts = [lo] + ([lo + 40] if config.geometry_starts > 1 and lo + 40 in available and lo + 40 <= hi else [])
    bad = [s for s in starts if s not in available or not lo <= s <= hi]
    if bad:
        raise InputError("starts", f"{bad} not in the data or outside the frame range {lo}-{hi}")
    return list(starts)


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
    starts = resolve_starts(config, folder.indices)
    cfg = asdict(config)
    cfg.update(data=str(config.data), middlebury=None if config.middlebury is None else str(config.middlebury),
               starts=starts, environment=dict(environment(), data_sha256=data_fingerprint(config.data)))
    results = BenchResults(config=cfg)
    t0 = time.perf_counter()
    geometry_starts = starts[:config.geometry_starts]
    with fixed_threads():
        if "geometry" in sections or "camera" in sections:
            for start in geometry_starts:
                say(f"geometry and camera accuracy from frame {start}")
                geometry_and_camera(folder, start, config.span, config.step, config.backends, config.seed, results,
                                    config.depth_max_m, config.frames)
        if "consistency" in sections:
            consistency(folder, geometry_starts, config, results, say)
        if "fill" in sections:
            fill(folder, config, results, say)
        if "fidelity" in sections:
            say(f"view fidelity from frames {starts}")
            fidelity(folder, starts, config.offsets, config.backends, config.seed, results, config.frames)
        if "stereo" in sections and config.middlebury is not None:
            say(f"stereo view synthesis on {config.middlebury}")
            stereo(config.middlebury, config.backends, config.seed, results, config.middlebury_calibration)
        if "speed" in sections:
            say("speed")
            speed(config.backends, config.speed_frames, config.speed_size, config.seed, results)
    results.seconds = time.perf_counter() - t0
    return results


def without_timings(results: dict) -> dict:
    """The JSON of a run without the fields that measure time or memory (for reproducibility checks)."""
    def plain(v):  # NaN != NaN: compare it as text
        if isinstance(v, float) and math.isnan(v):
            return "nan"
        return [plain(x) for x in v] if isinstance(v, list) else v

    out = {}
    for section, rows in results.items():
        if section in ("speed", "seconds", "config", "fill_skipped"):
            continue
        out[section] = [{k: plain(v) for k, v in row.items() if k != "seconds"} for row in rows]
    return out


__all__ = ["BenchConfig", "BenchResults", "SECTIONS", "run_benchmark", "without_timings"]
