"""The imagination pipeline: from one snapshot, imagine views along several trajectories, one after another,
keeping them consistent through the two memories.

:meth:`ImaginationPipeline.initialize` back-projects the snapshot (pinhole RGB-D or equirectangular panorama)
into a fresh :class:`~worldstereo_ros.memory.global_cache.GlobalCache`; a pinhole snapshot also becomes the
first (pinned) keyframe of the :class:`~worldstereo_ros.memory.memory_bank.MemoryBank`. :meth:`run` then
handles each trajectory in numbered stages:

1. render: the cache drawn into every target camera in one batched call (global-geometric memory, GGM).
2. retrieve: per target frame, the best keyframes of the bank (spatial-stereo memory, SSM; ``ggm+ssm`` only,
   and only for backends that read references).
3. generate: the backend turns the conditions into rgb, depth and an imagined-pixel mask per frame.
4. reconstruct: generated depth back-projected at the known poses. Only imagined pixels are kept by default
   (``merge_observed=False``): the observed ones are the cache's own points drawn back, and re-adding them
   would only thicken surfaces along the splat footprints. Imagined points get confidence
   ``imagined_confidence`` (< 1, the snapshot's points have 1), so real observations dominate where they meet.
   Pixels on depth edges are dropped (``drop_depth_edges``): they fall between foreground and background.
   So are imagined pixels farther than ``max_imagined_distance_px`` from every observed pixel of their frame:
   the farther a fill is from evidence, the more its depth is a guess (on 7-Scenes the median error of
   completed depth grows from 1.5 cm next to an observed pixel to 35 cm beyond 40 px), and the cache is what
   planners read. The frames keep them; only the shared map leaves them out.
5. align: for backends whose depth is not metric, one Sim(3) per trajectory from render-based
   correspondences (generated point at an observed pixel <-> the cache point drawn there), robust to
   outliers; skipped for metric backends such as ``render_fill``.
6. merge: the points fused into the cache (not for ``memory="none"``). Two kinds of imagined points are
   dropped first. Those that a later keyframe of the same trajectory saw through (they lie in front of what
   that view showed, by more than ``free_space_tolerance``;
   :func:`~worldstereo_ros.geometry.visibility.seen_through`): fills guessed from one viewpoint that the
   trajectory itself contradicted later, which in the cache would float in front of what it showed. And
   (``protect_observed``) those that fall into a voxel holding an observation (confidence >= 1), which
   they could only blur.
7. bank: every ``keyframe_stride``-th frame and the last become keyframes (``ggm+ssm`` only).

Memory ablation (``memory``): ``"ggm+ssm"`` is the full method; ``"ggm"`` merges into the cache but retrieves
no references; ``"none"`` conditions every trajectory on the initial cloud only: nothing is merged or banked,
so after a run the cache still holds just the snapshot (callers that want the union of the trajectories
fuse the returned frames themselves, e.g. :func:`reconstruct_points`).

Runs are deterministic for a given ``seed``: trajectory ``k`` generates with a ``torch.Generator`` seeded
with ``seed + k``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from worldstereo_ros.errors import ConfigError, InputError, WorldStereoError
from worldstereo_ros.generation.base import GeneratedFrames, GenerationRequest, Generator, Reference
from worldstereo_ros.snapshot import Snapshot

MEMORY_MODES = ("none", "ggm", "ggm+ssm")
#: Stages reported through :class:`Progress`, in the order they run for each trajectory.
STAGES = ("render", "retrieve", "generate", "reconstruct", "align", "merge", "bank", "done")
#: Horizontal field of view of target cameras for panorama snapshots when no K is given, degrees.
PANORAMA_TARGET_HFOV_DEG = 90.0
#: Target image size for panorama snapshots when the config gives none, pixels.
PANORAMA_TARGET_SIZE = (640, 480)
#: Imagined pixels whose backend confidence (``GeneratedFrames.confidence``) is below this are not merged.
MIN_IMAGINED_CONFIDENCE = 0.5


class Cancelled(WorldStereoError):
    """Raised by :meth:`ImaginationPipeline.run` when ``should_cancel()`` returned True."""


@dataclass
class PipelineConfig:
    """Settings of one :class:`ImaginationPipeline` (the same names as the node's parameters where they exist).

    Attributes:
        backend: generator backend name (:func:`~worldstereo_ros.generation.base.available_backends`).
        backend_options: keyword options of the backend.
        memory: ``"none"``, ``"ggm"`` or ``"ggm+ssm"`` (module doc).
        voxel_size_m: voxel edge of the global cache, metres.
        max_cache_points: point budget of the cache.
        bank_capacity: keyframes kept in the memory bank.
        keyframe_stride: every n-th imagined frame (and the last) becomes a keyframe.
        width, height: target image size, pixels; None = the snapshot's (set both or neither).
        splat_px: footprint half-width of the cache render (int >= 0 or ``"auto"``).
        drop_depth_edges: drop depth-edge pixels when back-projecting (snapshot and imagined frames).
        seed: seed of the generators.
        device: torch device of the cache and the renders.
        imagined_confidence: confidence of imagined points in the cache, in (0, 1].
        merge_observed: also merge generated pixels the cache already covered (module doc, stage 4).
        references_per_frame: most references retrieved per target frame.
        min_reference_score: keyframes scoring below this are not retrieved, in [0, 1].
        reconstruct_stride: back-project every n-th pixel in each direction (1 = all).
        edge_threshold: relative depth jump between neighbours that marks a depth edge (``depth_edge_mask``).
        free_space_tolerance: imagined points that a keyframe of their trajectory saw through by more than
            this fraction of their depth are not merged (module doc, stage 6); None keeps them all.
        max_imagined_distance_px: only imagined pixels within this distance (pixels) of an observed pixel of
            their frame are reconstructed into the cache (module doc, stage 4); None keeps them all.
        protect_observed: imagined points are not merged into voxels that hold an observation (module doc,
            stage 6).
    """

    backend: str = "render_fill"
    backend_options: dict = field(default_factory=dict)
    memory: str = "ggm+ssm"
    voxel_size_m: float = 0.01
    max_cache_points: int = 5_000_000
    bank_capacity: int = 8
    keyframe_stride: int = 5
    width: int | None = None
    height: int | None = None
    splat_px: int | str = "auto"
    drop_depth_edges: bool = True
    seed: int = 0
    device: str = "cpu"
    imagined_confidence: float = 0.5
    merge_observed: bool = False
    references_per_frame: int = 1
    min_reference_score: float = 0.05
    reconstruct_stride: int = 1
    edge_threshold: float = 0.08
    free_space_tolerance: float | None = 0.02
    max_imagined_distance_px: float | None = 20.0
    protect_observed: bool = True

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "PipelineConfig":
        """A validated config from a mapping; unknown keys raise ConfigError listing the valid ones."""
        if not isinstance(values, Mapping):
            raise ConfigError("config", f"expected a mapping, got {type(values).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                raise ConfigError(str(key), f"unknown key; valid: {', '.join(names)}")
        config = cls(**dict(values))
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (JSON-friendly)."""
        return dataclasses.asdict(self)

    def validate(self, check_backend: bool = True) -> "PipelineConfig":
        """Raise ConfigError naming the first invalid key (with the valid options); return self.

        ``check_backend=False`` skips the backend-name check (for a backend instance given directly).
        """
        from worldstereo_ros.generation.base import available_backends

        def integer(name: str, lo: int, hi: int | None = None) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
                bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
                raise ConfigError(name, f"expected an int {bound}, got {v!r}")

        def real(name: str, lo: float, hi: float, lo_open: bool = True) -> None:
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (v > lo if lo_open else v >= lo) and v <= hi
            if not ok:
                raise ConfigError(name, f"expected a float in {'(' if lo_open else '['}{lo}, {hi}], got {v!r}")

        if check_backend and (not isinstance(self.backend, str) or self.backend not in available_backends()):
            raise ConfigError("backend", f"unknown backend {self.backend!r}; valid: {', '.join(available_backends())}")
        if not isinstance(self.backend_options, dict):
            raise ConfigError("backend_options", f"expected a dict, got {type(self.backend_options).__name__}")
        if self.memory not in MEMORY_MODES:
            raise ConfigError("memory", f"expected one of {', '.join(MEMORY_MODES)}; got {self.memory!r}")
        real("voxel_size_m", 0.0, 10.0)
        integer("max_cache_points", 1)
        integer("bank_capacity", 1)
        integer("keyframe_stride", 1)
        if (self.width is None) != (self.height is None):
            raise ConfigError("width", f"set both width and height or neither, got {self.width} x {self.height}")
        if self.width is not None:
            integer("width", 2, 8192)
            integer("height", 2, 8192)
        if self.splat_px != "auto":
            integer("splat_px", 0, 16)
        if not isinstance(self.drop_depth_edges, bool):
            raise ConfigError("drop_depth_edges", f"expected a bool, got {self.drop_depth_edges!r}")
        integer("seed", 0, 2**62)
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError("device", f"not a torch device: {self.device!r} (e.g. cpu, cuda, cuda:1)") from exc
        real("imagined_confidence", 0.0, 1.0)
        if not isinstance(self.merge_observed, bool):
            raise ConfigError("merge_observed", f"expected a bool, got {self.merge_observed!r}")
        integer("references_per_frame", 1, 16)
        real("min_reference_score", 0.0, 1.0, lo_open=False)
        integer("reconstruct_stride", 1, 64)
        real("edge_threshold", 0.0, 100.0)
        if self.free_space_tolerance is not None:
            real("free_space_tolerance", 0.0, 1.0)
        if self.max_imagined_distance_px is not None:
            real("max_imagined_distance_px", 0.0, 1e6)
        if not isinstance(self.protect_observed, bool):
            raise ConfigError("protect_observed", f"expected a bool, got {self.protect_observed!r}")
        return self


@dataclass
class Trajectory:
    """A named camera path to imagine.

    Attributes:
        id: name (unique within a run; used in file names and ROS frame names).
        T_world_cam: (N, 4, 4) float64 target poses of the OpenCV optical frame in the snapshot's world frame.
        K: (3, 3) intrinsics of the targets at the run's image size, or None = the snapshot's K rescaled to
            that size (panoramas: a 90 degree horizontal field of view).
    """

    id: str
    T_world_cam: np.ndarray
    K: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or any(c.isspace() or c in "/\\" for c in self.id):
            raise InputError("id", f"expected a non-empty name without spaces or slashes, got {self.id!r}")
        T = np.asarray(self.T_world_cam, dtype=np.float64)
        if T.ndim != 3 or T.shape[1:] != (4, 4) or T.shape[0] < 1:
            raise InputError("T_world_cam", f"trajectory {self.id!r}: expected shape (N, 4, 4) with N >= 1, got "
                                            f"{T.shape}")
        if not np.isfinite(T).all():
            raise InputError("T_world_cam", f"trajectory {self.id!r}: poses must be finite")
        R = T[:, :3, :3]
        if not np.allclose(R @ np.transpose(R, (0, 2, 1)), np.eye(3), atol=1e-4) or (np.linalg.det(R) < 0).any():
            raise InputError("T_world_cam", f"trajectory {self.id!r}: rotation parts must be proper rotations")
        self.T_world_cam = T
        if self.K is not None:
            K = np.asarray(self.K, dtype=np.float64)
            if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
                raise InputError("K", f"trajectory {self.id!r}: expected a finite (3, 3) K with positive focal "
                                      f"lengths, got shape {K.shape}")
            self.K = K

    def __len__(self) -> int:
        return int(self.T_world_cam.shape[0])


@dataclass(frozen=True)
class Progress:
    """Where a run stands: trajectory ``trajectory_index`` (0-based) of ``trajectory_count``, ``frame_index``
    frames of ``frame_count`` generated, in ``stage`` (one of :data:`STAGES`)."""

    trajectory_index: int
    trajectory_count: int
    trajectory_id: str
    frame_index: int
    frame_count: int
    stage: str

    @property
    def fraction(self) -> float:
        """Share of the run's frames generated, in [0, 1] (trajectories count equally)."""
        if self.trajectory_count <= 0:
            return 1.0
        within = self.frame_index / self.frame_count if self.frame_count > 0 else 1.0
        return min(1.0, max(0.0, (self.trajectory_index + within) / self.trajectory_count))


@dataclass
class TrajectoryResult:
    """The imagined views of one trajectory.

    Attributes:
        id: the trajectory's name.
        rgb: (N, H, W, 3) float32 in [0, 1].
        depth: (N, H, W) float32 metres (after alignment), 0 = unknown.
        imagined: (N, H, W) bool, True where the pixel was imagined.
        T_world_cam: (N, 4, 4) float64 poses. K: (3, 3) float64 intrinsics.
        timings_s: seconds per stage (:data:`STAGES` without ``done``) plus the backend's own
            ``generate.<name>`` entries.
        cache_points_after: points in the cache after this trajectory.
        reference_ids: per frame, the ids of the keyframes given to the backend.
        T_cache_generated: (4, 4) Sim(3) applied to the generated geometry (identity for metric backends).
    """

    id: str
    rgb: np.ndarray
    depth: np.ndarray
    imagined: np.ndarray
    T_world_cam: np.ndarray
    K: np.ndarray
    timings_s: dict[str, float]
    cache_points_after: int
    reference_ids: list[list[int]] = field(default_factory=list)
    T_cache_generated: np.ndarray = field(default_factory=lambda: np.eye(4))

    @property
    def num_frames(self) -> int:
        return int(self.T_world_cam.shape[0])

    @property
    def height(self) -> int:
        return int(self.depth.shape[1])

    @property
    def width(self) -> int:
        return int(self.depth.shape[2])


ProgressCallback = Callable[[Progress], None]
#: on_frame(trajectory_id, index, rgb (H, W, 3) float32, depth (H, W) float32 m, imagined (H, W) bool,
#: T_world_cam (4, 4), K (3, 3)), called as soon as the backend finishes a frame (before alignment: for
#: non-metric backends the depth is the backend's own).
FrameCallback = Callable[[str, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]


def reconstruct_points(rgb: np.ndarray, depth: np.ndarray, imagined: np.ndarray, K: np.ndarray,
                       T_world_cam: np.ndarray, imagined_confidence: float = 0.5, imagined_only: bool = True,
                       drop_edges: bool = True, edge_threshold: float = 0.08, stride: int = 1,
                       device: str | torch.device = "cpu", return_sources: bool = False,
                       max_imagined_distance_px: float | None = None) -> tuple[torch.Tensor, ...]:
    """Back-project generated frames into coloured world points with confidences.

    Args:
        rgb: (N, H, W, 3) float32 in [0, 1]. depth: (N, H, W) float32 metres, 0 = unknown.
        imagined: (N, H, W) bool. K: (3, 3) or (N, 3, 3). T_world_cam: (N, 4, 4) OpenCV optical frames.
        imagined_confidence: confidence of imagined pixels (observed ones get 1).
        imagined_only: keep only imagined pixels.
        drop_edges: drop pixels on depth edges (:func:`~worldstereo_ros.geometry.projection.depth_edge_mask`).
        edge_threshold: threshold of that mask.
        stride: keep every ``stride``-th pixel along each image axis.
        device: torch device of the outputs.
        return_sources: also return each point's frame index (M,) int64 and imagined flag (M,) bool.
        max_imagined_distance_px: keep only the imagined pixels within this distance (pixels) of an observed
            pixel of their frame; None keeps all.
    Returns:
        xyz (M, 3) float32 world metres, rgb (M, 3) float32, confidence (M,) float32 (and the sources).
    """
    from worldstereo_ros.geometry.projection import backproject_depth, depth_edge_mask

    depth_t = torch.as_tensor(np.asarray(depth, dtype=np.float32), device=device)
    n, h, w = depth_t.shape
    keep = depth_t > 0
    imagined_t = torch.as_tensor(np.asarray(imagined, dtype=bool), device=device)
    if imagined_only:
        keep &= imagined_t
    if drop_edges:
        for i in range(n):
            if bool(keep[i].any()):
                keep[i] &= ~depth_edge_mask(depth_t[i], edge_threshold).to(device)
    if max_imagined_distance_px is not None:
        import cv2

        for i in range(n):
            mask = np.asarray(imagined[i], dtype=np.uint8)
            if mask.any():
                dist = torch.as_tensor(cv2.distanceTransform(mask, cv2.DIST_L2, 3), device=device)
                keep[i] &= ~imagined_t[i] | (dist <= max_imagined_distance_px)
    if stride > 1:
        grid = torch.zeros((h, w), dtype=torch.bool, device=device)
        grid[::stride, ::stride] = True
        keep &= grid
    K_t = torch.as_tensor(np.asarray(K, dtype=np.float64), device=device)
    K_t = K_t.expand(n, 3, 3) if K_t.ndim == 2 else K_t
    T_t = torch.as_tensor(np.asarray(T_world_cam, dtype=np.float64), device=device)
    rows = []
    for i in range(n):  # frame by frame: only the kept pixels are transformed
        if not bool(keep[i].any()):
            continue
        cam = backproject_depth(depth_t[i].to(torch.float64), K_t[i], None)[keep[i]]
        rows.append((cam @ T_t[i, :3, :3].T + T_t[i, :3, 3]).to(torch.float32))
    if not rows:
        empty = torch.zeros((0, 3), dtype=torch.float32, device=device)
        out = empty, empty.clone(), torch.zeros(0, dtype=torch.float32, device=device)
        if return_sources:
            return (*out, torch.zeros(0, dtype=torch.int64, device=device),
                    torch.zeros(0, dtype=torch.bool, device=device))
        return out
    xyz = torch.cat(rows)
    colours = torch.as_tensor(np.asarray(rgb, dtype=np.float32), device=device)[keep]
    conf = torch.where(imagined_t[keep], torch.tensor(float(imagined_confidence), device=device),
                       torch.tensor(1.0, device=device))
    if return_sources:
        frame = torch.arange(n, device=device)[:, None, None].expand(n, h, w)[keep]
        return xyz, colours, conf.to(torch.float32), frame, imagined_t[keep]
    return xyz, colours, conf.to(torch.float32)


class ImaginationPipeline:
    """Owns a global cache, a memory bank and a backend; imagines trajectories (see the module doc).

    Args:
        config: the settings (validated here).
        backend: an already constructed backend to use instead of ``create_backend(config.backend, ...)``.
    """

    def __init__(self, config: PipelineConfig | None = None, backend: Generator | None = None) -> None:
        from worldstereo_ros.generation.base import create_backend

        self.config = config or PipelineConfig()
        if backend is None:
            self.config.validate()
            self.backend = create_backend(self.config.backend, **self.config.backend_options)
        else:
            if not isinstance(backend, Generator):
                raise InputError("backend", f"expected a Generator, got {type(backend).__name__}")
            self.config.validate(check_backend=False)
            self.backend = backend
        self.device = torch.device(self.config.device)
        self.snapshot: Snapshot | None = None
        self.cache = None
        self.bank = None
        self.depth_median_m: float = math.nan
        self._next_keyframe_id = 0
        self._trajectories_done = 0

    # ------------------------------------------------------------------ set-up
    def _new_memories(self) -> None:
        from worldstereo_ros.memory.global_cache import GlobalCache
        from worldstereo_ros.memory.memory_bank import MemoryBank

        self.cache = GlobalCache(voxel_size_m=self.config.voxel_size_m, max_points=self.config.max_cache_points,
                                 device=self.device)
        self.bank = MemoryBank(capacity=self.config.bank_capacity, seed=self.config.seed)
        self._next_keyframe_id = 0
        self._trajectories_done = 0

    def initialize(self, snapshot: Snapshot) -> "ImaginationPipeline":
        """Start over from ``snapshot``: a fresh cache holding its back-projection, a fresh bank holding it as
        the first (pinned) keyframe (pinhole snapshots only). Returns self."""
        from worldstereo_ros.geometry.projection import depth_to_points
        from worldstereo_ros.memory.memory_bank import Keyframe

        if not isinstance(snapshot, Snapshot):
            raise InputError("snapshot", f"expected a Snapshot, got {type(snapshot).__name__}")
        self.snapshot = snapshot
        self._new_memories()
        valid = snapshot.depth[snapshot.depth > 0]
        self.depth_median_m = float(np.median(valid))
        T = torch.as_tensor(snapshot.T_world_cam)
        if snapshot.is_panorama:
            self.cache.init_from_panorama(snapshot.rgb, snapshot.depth, T, view_id=0)
            return self
        points = depth_to_points(torch.as_tensor(snapshot.depth), torch.as_tensor(snapshot.K), T,
                                 rgb=torch.as_tensor(snapshot.rgb), drop_edges=self.config.drop_depth_edges,
                                 edge_threshold=self.config.edge_threshold)
        self.cache.merge(points.to(self.device), view_id=0, viewpoint=snapshot.T_world_cam[:3, 3])
        if self.config.memory == "ggm+ssm":
            kf = Keyframe.from_frame(snapshot.rgb, snapshot.depth, snapshot.K, snapshot.T_world_cam,
                                     self._take_keyframe_id(), "snapshot")
            self.bank.add(kf, pinned=self.config.bank_capacity > 1)
        return self

    def reset(self) -> "ImaginationPipeline":
        """Forget everything imagined since :meth:`initialize` (same snapshot). Returns self."""
        if self.snapshot is None:
            raise InputError("snapshot", "reset() needs initialize(snapshot) first")
        return self.initialize(self.snapshot)

    def _take_keyframe_id(self) -> int:
        self._next_keyframe_id += 1
        return self._next_keyframe_id - 1

    def target_size(self) -> tuple[int, int]:
        """(width, height) of the imagined views."""
        if self.config.width is not None:
            return int(self.config.width), int(self.config.height)
        if self.snapshot is None:
            raise InputError("snapshot", "call initialize(snapshot) first")
        if self.snapshot.is_panorama:
            return PANORAMA_TARGET_SIZE
        return self.snapshot.width, self.snapshot.height

    def target_K(self, trajectory: Trajectory | None = None) -> np.ndarray:
        """(3, 3) intrinsics of a trajectory's views at :meth:`target_size`."""
        from worldstereo_ros.geometry.cameras import PinholeCamera

        if trajectory is not None and trajectory.K is not None:
            return trajectory.K
        width, height = self.target_size()
        if self.snapshot.is_panorama:
            return PinholeCamera.from_fov(width, height, PANORAMA_TARGET_HFOV_DEG).K.numpy()
        cam = PinholeCamera.from_K(self.snapshot.K, self.snapshot.width, self.snapshot.height)
        if (width, height) != (cam.width, cam.height):
            cam = cam.resized(width, height)
        return np.asarray(cam.K, dtype=np.float64)

    # ------------------------------------------------------------------ run
    def run(self, trajectories: Sequence[Trajectory], progress: ProgressCallback | None = None,
            on_frame: FrameCallback | None = None,
            should_cancel: Callable[[], bool] | None = None) -> list[TrajectoryResult]:
        """Imagine every trajectory in order (module doc); each sees what the previous ones added.

        Args:
            trajectories: the paths, in the order to imagine them (ids unique).
            progress: called with a :class:`Progress` at every stage and after every generated frame.
            on_frame: called with each frame as soon as the backend finishes it (see :data:`FrameCallback`).
            should_cancel: polled before each trajectory and after each frame; when it returns True the run
                stops with :class:`Cancelled`. Trajectories finished before stay in the cache and the bank;
                the interrupted one leaves no trace.
        Returns:
            one :class:`TrajectoryResult` per trajectory, in order.
        """
        if self.snapshot is None:
            raise InputError("snapshot", "call initialize(snapshot) before run()")
        trajectories = list(trajectories)
        for i, t in enumerate(trajectories):
            if not isinstance(t, Trajectory):
                raise InputError("trajectories", f"item {i}: expected a Trajectory, got {type(t).__name__}")
        ids = [t.id for t in trajectories]
        if len(set(ids)) != len(ids):
            raise InputError("trajectories", f"trajectory ids must be unique, got {ids}")
        results = []
        for k, trajectory in enumerate(trajectories):
            if should_cancel is not None and should_cancel():
                raise Cancelled(f"cancelled before trajectory {trajectory.id!r} ({k + 1} of {len(trajectories)})")
            results.append(self._run_one(k, len(trajectories), trajectory, progress, on_frame, should_cancel))
        return results

    def _run_one(self, k: int, count: int, trajectory: Trajectory, progress: ProgressCallback | None,
                 on_frame: FrameCallback | None, should_cancel: Callable[[], bool] | None) -> TrajectoryResult:
        cfg = self.config
        n = len(trajectory)
        width, height = self.target_size()
        K = self.target_K(trajectory)
        T_world_cam = trajectory.T_world_cam
        timings = {stage: 0.0 for stage in STAGES[:-1]}

        def report(stage: str, frame_index: int) -> None:
            if progress is not None:
                progress(Progress(k, count, trajectory.id, frame_index, n, stage))

        # 1. render the cache into every target camera
        report("render", 0)
        t0 = time.perf_counter()
        K_t = torch.as_tensor(K, device=self.device)
        T_cam_world = torch.linalg.inv(torch.as_tensor(T_world_cam, device=self.device))
        cond = self.cache.render(K_t, T_cam_world, height, width, splat_px=cfg.splat_px)
        cond_index = cond.index.cpu().numpy()
        timings["render"] = time.perf_counter() - t0

        # 2. references from the memory bank
        report("retrieve", 0)
        t0 = time.perf_counter()
        references: list[list[Reference]] = [[] for _ in range(n)]
        if cfg.memory == "ggm+ssm" and self.backend.uses_references and len(self.bank):
            references = [self.bank.retrieve(K, T_world_cam[i], width, height, k=cfg.references_per_frame,
                                             min_score=cfg.min_reference_score) for i in range(n)]
        timings["retrieve"] = time.perf_counter() - t0

        # 3. generate
        request = GenerationRequest(K=np.broadcast_to(K, (n, 3, 3)).copy(), T_world_cam=T_world_cam.copy(),
                                    height=height, width=width, cond_rgb=cond.rgb.cpu().numpy(),
                                    cond_depth=cond.depth.cpu().numpy(), cond_mask=cond.mask.cpu().numpy(),
                                    cond_index=cond_index, references=references, source=self.snapshot,
                                    trajectory_id=trajectory.id)
        report("generate", 0)

        def frame_done(index: int, rgb: np.ndarray, depth: np.ndarray, imagined: np.ndarray) -> None:
            if on_frame is not None:
                on_frame(trajectory.id, index, rgb, depth, imagined, T_world_cam[index], K)
            report("generate", index + 1)
            if should_cancel is not None and should_cancel():
                raise Cancelled(f"cancelled in trajectory {trajectory.id!r} after frame {index + 1} of {n}")

        t0 = time.perf_counter()
        generator = torch.Generator().manual_seed(cfg.seed + k)
        frames = self.backend.generate(request, generator=generator, on_frame=frame_done)
        timings["generate"] = time.perf_counter() - t0
        for name, seconds in frames.timings_s.items():
            timings[f"generate.{name}"] = float(seconds)
        self._check_frames(frames, n, height, width)

        # 4. reconstruct
        report("reconstruct", n)
        t0 = time.perf_counter()
        depth = np.asarray(frames.depth, dtype=np.float32)
        merge_depth = depth
        if frames.confidence is not None:
            # only confidently imagined pixels reach the cache (issue 12); the views keep every pixel
            unsure = np.asarray(frames.imagined, dtype=bool) & (np.asarray(frames.confidence) < MIN_IMAGINED_CONFIDENCE)
            merge_depth = np.where(unsure, 0.0, depth).astype(np.float32)
        xyz, rgb, conf, frame, is_imagined = reconstruct_points(
            frames.rgb, merge_depth, frames.imagined, K, T_world_cam, cfg.imagined_confidence, not cfg.merge_observed,
            cfg.drop_depth_edges, cfg.edge_threshold, cfg.reconstruct_stride, self.device, return_sources=True,
            max_imagined_distance_px=cfg.max_imagined_distance_px)
        timings["reconstruct"] = time.perf_counter() - t0

        # 5. align non-metric depth to the cache
        report("align", n)
        t0 = time.perf_counter()
        T_fix = np.eye(4)
        if not frames.depth_is_metric:
            T_fix = self._align(frames, depth, cond.mask.cpu().numpy(), cond_index, K, T_world_cam)
            xyz = xyz @ torch.as_tensor(T_fix[:3, :3].T, dtype=xyz.dtype, device=xyz.device) \
                + torch.as_tensor(T_fix[:3, 3], dtype=xyz.dtype, device=xyz.device)
            depth = self._aligned_depth(depth, K, T_world_cam, T_fix)
        timings["align"] = time.perf_counter() - t0

        # 6. merge
        report("merge", n)
        t0 = time.perf_counter()
        if cfg.memory != "none" and xyz.shape[0]:
            drop = torch.zeros_like(is_imagined)
            if cfg.free_space_tolerance is not None:
                from worldstereo_ros.geometry.visibility import seen_through

                views = self._keyframe_indices(n)
                drop |= is_imagined & seen_through(
                    xyz, torch.as_tensor(depth[views], device=xyz.device),
                    torch.as_tensor(np.asarray(K, np.float64), device=xyz.device),
                    torch.as_tensor(T_world_cam[views], device=xyz.device), cfg.free_space_tolerance, frame,
                    torch.as_tensor(views, device=xyz.device))
            if cfg.protect_observed:
                # an imagined point never edits a voxel that holds an observation: there it can only be worse
                drop |= is_imagined & (self.cache.confidence_at(xyz) >= 1.0)
            xyz, rgb, conf = xyz[~drop], rgb[~drop], conf[~drop]
        if cfg.memory != "none" and xyz.shape[0]:
            self.cache.merge(xyz, rgb=rgb, confidence=conf, view_id=self._trajectories_done + 1,
                             viewpoint=T_world_cam[:, :3, 3].mean(axis=0))
        timings["merge"] = time.perf_counter() - t0

        # 7. keyframes
        report("bank", n)
        t0 = time.perf_counter()
        if cfg.memory == "ggm+ssm":
            self._add_keyframes(trajectory.id, frames.rgb, depth, K, T_world_cam)
        timings["bank"] = time.perf_counter() - t0
        self._trajectories_done += 1
        report("done", n)
        return TrajectoryResult(trajectory.id, np.asarray(frames.rgb, dtype=np.float32), depth,
                                np.asarray(frames.imagined, dtype=bool), T_world_cam.copy(), np.array(K),
                                timings, len(self.cache), [[r.keyframe_id for r in refs] for refs in references],
                                T_fix)

    @staticmethod
    def _check_frames(frames: GeneratedFrames, n: int, height: int, width: int) -> None:
        for name, shape in (("rgb", (n, height, width, 3)), ("depth", (n, height, width)),
                            ("imagined", (n, height, width))):
            actual = tuple(np.shape(getattr(frames, name)))
            if actual != shape:
                raise InputError(f"backend.{name}", f"expected shape {shape}, got {actual}")

    def _align(self, frames: GeneratedFrames, depth: np.ndarray, cond_mask: np.ndarray, cond_index: np.ndarray,
               K: np.ndarray, T_world_cam: np.ndarray) -> np.ndarray:
        """Sim(3) (4, 4) mapping the generated geometry onto the cache, from pixels the cache covered."""
        from worldstereo_ros.geometry.align import robust_umeyama
        from worldstereo_ros.geometry.projection import backproject_depth

        src, dst = [], []
        cache_xyz = self.cache.xyz.cpu()
        gen = np.random.default_rng(self.config.seed)
        per_frame = max(64, 20_000 // depth.shape[0])
        for i in range(depth.shape[0]):
            ok = cond_mask[i] & ~np.asarray(frames.imagined[i], dtype=bool) & (depth[i] > 0)
            pix = np.flatnonzero(ok)
            if pix.size == 0:
                continue
            if pix.size > per_frame:
                pix = np.sort(gen.choice(pix, per_frame, replace=False))
            cam = backproject_depth(torch.as_tensor(depth[i], dtype=torch.float64), torch.as_tensor(K), None)
            p_cam = cam.reshape(-1, 3)[torch.as_tensor(pix)]
            T = torch.as_tensor(T_world_cam[i])
            src.append(p_cam @ T[:3, :3].T + T[:3, 3])
            dst.append(cache_xyz[torch.as_tensor(cond_index[i].reshape(-1)[pix])].to(torch.float64))
        if not src or sum(s.shape[0] for s in src) < 3:
            raise InputError("depth", "a non-metric backend needs pixels the cache covers to align its depth; "
                                      "none were found")
        src_t, dst_t = torch.cat(src), torch.cat(dst)
        # inliers within a few voxels, or a share of the scene depth for coarse caches
        threshold = max(3.0 * self.config.voxel_size_m, 0.02 * self.depth_median_m)
        T, _ = robust_umeyama(src_t, dst_t, with_scale=True, inlier_threshold_m=threshold, seed=self.config.seed)
        return T.numpy()

    @staticmethod
    def _aligned_depth(depth: np.ndarray, K: np.ndarray, T_world_cam: np.ndarray, T_fix: np.ndarray) -> np.ndarray:
        """Depth (N, H, W) of the aligned geometry seen from the (unchanged) target poses."""
        from worldstereo_ros.geometry.projection import backproject_depth

        out = np.zeros_like(depth)
        for i in range(depth.shape[0]):
            cam = backproject_depth(torch.as_tensor(depth[i], dtype=torch.float64), torch.as_tensor(K), None).numpy()
            world = cam @ T_world_cam[i, :3, :3].T + T_world_cam[i, :3, 3]
            moved = world @ T_fix[:3, :3].T + T_fix[:3, 3]
            T_cw = np.linalg.inv(T_world_cam[i])
            z = (moved @ T_cw[:3, :3].T + T_cw[:3, 3])[..., 2]
            out[i] = np.where(depth[i] > 0, z, 0.0).astype(np.float32)
        return out

    def _keyframe_indices(self, n: int) -> list[int]:
        """Frames of an n-frame trajectory that become keyframes: every ``keyframe_stride``-th and the last
        (where the trajectory ended up, and where the next one may pick up)."""
        return sorted(set(range(self.config.keyframe_stride - 1, n, self.config.keyframe_stride)) | {n - 1})

    def _add_keyframes(self, trajectory_id: str, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray,
                       T_world_cam: np.ndarray) -> None:
        from worldstereo_ros.memory.memory_bank import Keyframe

        for i in self._keyframe_indices(depth.shape[0]):
            kf = Keyframe.from_frame(rgb[i], depth[i], K, T_world_cam[i], self._take_keyframe_id(), trajectory_id)
            self.bank.add(kf)
