"""The imagination pipeline: from one snapshot, imagine views along several trajectories, one after another,
keeping them consistent through the two memories.

:meth:`ImaginationPipeline.initialize` back-projects the snapshot (pinhole RGB-D or equirectangular panorama)
into a fresh :class:`~worldstereo_ros.memory.global_cache.GlobalCache`; a pinhole snapshot also becomes the
first (pinned) keyframe of the :class:`~worldstereo_ros.memory.memory_bank.MemoryBank`. :meth:`run` then
handles each trajectory in numbered stages:

1. render: the cache drawn into every target camera in one batched call per chunk (global-geometric
   memory, GGM).
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
6. merge: the points fused into the cache (not for ``memory="none"``). Three kinds of imagined points are
   dropped first. Those farther along their view's optical axis than the farthest cache point drawn into
   that view (stage 1's render): the memories hold no geometry that deep in that direction, so such depth
   is extrapolated from nothing, and in the cache it would reach far beyond what any camera saw (on the
   7-Scenes demo, points 12.8 m from a camera whose depth reaches 3.5 m). The render is the bound because it
   is exactly what the memories support in that view, whatever the scene's scale. Those that a later
   keyframe of the same trajectory saw through (they lie in front of what that view showed, by more than
   ``free_space_tolerance``; :func:`~worldstereo_ros.geometry.visibility.seen_through`): fills guessed from
   one viewpoint that the trajectory itself contradicted later, which in the cache would float in front of
   what it showed. And (``protect_observed``) those that fall into a voxel holding an observation
   (confidence >= 1), which they could only blur.
7. bank: every ``keyframe_stride``-th frame and the last become keyframes (``ggm+ssm`` only).

Chunks (``chunk_frames`` > 0): stages 1-7 run on ``chunk_frames`` views at a time, so the renders, frames
and points held at once do not grow with the trajectory's length. Every chunk renders (stage 1) and
retrieves (stage 2) from the memories as the trajectory found them (an O(1) cache snapshot and a copy of
the bank's list), exactly what an unchunked run uses; merges and keyframes go to the live memories after
each chunk. So views are the same chunked or not for a backend that keeps no state from frame to frame
(``render_fill(temporal=False)``); ``render_fill``'s temporal carry-over and a video model's clip start
again at each chunk. What the cache keeps differs slightly: stage 6 sees the keyframes of the chunk (not of
the whole trajectory) and alignment (stage 5) is one Sim(3) per chunk. A cancelled trajectory leaves no
trace either way (the memories it found are put back).

Memory ablation (``memory``): ``"ggm+ssm"`` is the full method; ``"ggm"`` merges into the cache but retrieves
no references; ``"none"`` conditions every trajectory on the initial cloud only: nothing is merged or banked,
so after a run the cache still holds just the snapshot (callers that want the union of the trajectories
fuse the returned frames themselves, e.g. :func:`~worldstereo_ros.geometry.reconstruct.reconstruct_points`).

Runs are deterministic for a given ``seed``: trajectory ``k`` generates with a ``torch.Generator`` seeded
with ``seed + k``.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.base import (
    GeneratedFrames,
    GenerationCancelled,
    GenerationRequest,
    Generator,
    create_backend,
)
from worldstereo_ros.geometry.align import robust_umeyama
from worldstereo_ros.geometry.cameras import PinholeCamera
from worldstereo_ros.geometry.projection import backproject_depth, depth_to_points
from worldstereo_ros.geometry.reconstruct import reconstruct_points
from worldstereo_ros.geometry.visibility import seen_through
from worldstereo_ros.memory.global_cache import GlobalCache
from worldstereo_ros.memory.memory_bank import MemoryBank
from worldstereo_ros.memory.types import Keyframe, Reference
from worldstereo_ros.pipeline.config import PipelineConfig
from worldstereo_ros.pipeline.stages import aligned_depth, beyond_rendered_depth, check_frames
from worldstereo_ros.pipeline.types import (
    STAGES,
    Cancelled,
    FrameCallback,
    Progress,
    ProgressCallback,
    Trajectory,
    TrajectoryResult,
)
from worldstereo_ros.snapshot import Snapshot

#: Horizontal field of view of target cameras for panorama snapshots when no K is given, degrees.
PANORAMA_TARGET_HFOV_DEG = 90.0
#: Target image size for panorama snapshots when the config gives none, pixels.
PANORAMA_TARGET_SIZE = (640, 480)
#: Imagined pixels whose backend confidence (``GeneratedFrames.confidence``) is below this are not merged.
MIN_IMAGINED_CONFIDENCE = 0.5


class ImaginationPipeline:
    """Owns a global cache, a memory bank and a backend; imagines trajectories (see the module doc).

    Args:
        config: the settings (validated here).
        backend: an already constructed backend to use instead of ``create_backend(config.backend, ...)``.
    """

    def __init__(self, config: PipelineConfig | None = None, backend: Generator | None = None) -> None:
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
        self.cache = GlobalCache(voxel_size_m=self.config.voxel_size_m, max_points=self.config.max_cache_points,
                                 device=self.device)
        self.bank = MemoryBank(capacity=self.config.bank_capacity, seed=self.config.seed)
        self._next_keyframe_id = 0
        self._trajectories_done = 0

    def adopt_memories(self, cache: GlobalCache, bank: MemoryBank) -> "ImaginationPipeline":
        """Use ``cache`` and ``bank`` (e.g. restored from files) as this pipeline's memories; the next
        :meth:`initialize` with ``keep_memories=True`` merges its snapshot into them. Keyframe ids continue
        after the bank's largest. Returns self.

        Raises:
            InputError: ``cache`` is not a GlobalCache or its voxel size differs from ``voxel_size_m``, or
                ``bank`` is not a MemoryBank.
        """
        if not isinstance(cache, GlobalCache):
            raise InputError("cache", f"expected a GlobalCache, got {type(cache).__name__}")
        if not isinstance(bank, MemoryBank):
            raise InputError("bank", f"expected a MemoryBank, got {type(bank).__name__}")
        if not math.isclose(cache.voxel_size_m, self.config.voxel_size_m):
            raise InputError("cache", f"voxel size {cache.voxel_size_m} m differs from the config's "
                                      f"voxel_size_m = {self.config.voxel_size_m} m")
        self.cache, self.bank = cache, bank
        self._next_keyframe_id = max(bank.ids, default=-1) + 1
        self._trajectories_done = int(cache.view_id.max()) if len(cache) else 0
        return self

    def initialize(self, snapshot: Snapshot, keep_memories: bool = False) -> "ImaginationPipeline":
        """Start over from ``snapshot``: a fresh cache holding its back-projection, a fresh bank holding it as
        the first (pinned) keyframe (pinhole snapshots only). With ``keep_memories`` (and memories present,
        e.g. from :meth:`adopt_memories`) the snapshot is merged into the existing cache and added to the
        existing bank instead (pinned while the bank has room for another pinned keyframe). Returns self."""
        if not isinstance(snapshot, Snapshot):
            raise InputError("snapshot", f"expected a Snapshot, got {type(snapshot).__name__}")
        self.snapshot = snapshot
        if not (keep_memories and self.cache is not None and self.bank is not None):
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
            self.bank.add(kf, pinned=self.bank.pinned_count + 1 < self.bank.capacity)
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
        timings = {stage: 0.0 for stage in STAGES[:-1]}

        def report(stage: str, frame_index: int) -> None:
            if progress is not None:
                progress(Progress(k, count, trajectory.id, frame_index, n, stage))

        # the memories as this trajectory found them: every chunk renders and retrieves from these (an O(1)
        # cache snapshot and a list copy), so chunking changes no view; merges go to the live memories
        start_cache, start_bank = self.cache.snapshot(), self.bank.copy()
        chunks = [(s, min(n, s + cfg.chunk_frames)) for s in range(0, n, cfg.chunk_frames)] if cfg.chunk_frames \
            else [(0, n)]
        generator = torch.Generator().manual_seed(cfg.seed + k)  # one stream across the chunks
        kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        reference_ids: list[list[int]] = []
        T_fix = np.eye(4)
        try:
            for start, stop in chunks:
                rgb, depth, imagined, refs, T_fix = self._run_chunk(
                    k, trajectory, start, stop, start_cache, start_bank, generator, timings, report, on_frame,
                    should_cancel)
                reference_ids += refs
                if cfg.keep_frames:
                    kept.append((rgb, depth, imagined))
        except Cancelled:
            # the interrupted trajectory leaves no trace, also when earlier chunks were merged already
            self.cache, self.bank = start_cache, start_bank
            raise
        self._trajectories_done += 1
        report("done", n)
        width, height = self.target_size()
        if kept:
            rgb, depth, imagined = (np.concatenate(arrays) for arrays in zip(*kept))
        else:  # keep_frames=False: the frames went to on_frame only
            rgb, depth, imagined = (np.zeros((0, height, width, 3), np.float32),
                                    np.zeros((0, height, width), np.float32), np.zeros((0, height, width), bool))
        return TrajectoryResult(trajectory.id, rgb, depth, imagined, trajectory.T_world_cam.copy(),
                                np.array(self.target_K(trajectory)), timings, len(self.cache), reference_ids, T_fix,
                                trajectory.timestamps_s)

    def _run_chunk(self, k: int, trajectory: Trajectory, start: int, stop: int, cache: GlobalCache, bank: MemoryBank,
                   generator: torch.Generator, timings: dict[str, float], report: Callable[[str, int], None],
                   on_frame: FrameCallback | None, should_cancel: Callable[[], bool] | None):
        """Stages 1-7 for frames ``start:stop`` of ``trajectory``, rendering from ``cache`` and retrieving from
        ``bank`` (the memories at the trajectory's start); merges into ``self.cache``, adds keyframes to
        ``self.bank``. Returns (rgb, depth, imagined, reference ids per frame, Sim(3) applied)."""
        cfg = self.config
        n = stop - start
        width, height = self.target_size()
        K = self.target_K(trajectory)
        T_world_cam = trajectory.T_world_cam[start:stop]

        # 1. render the cache into every target camera of the chunk
        report("render", start)
        t0 = time.perf_counter()
        K_t = torch.as_tensor(K, device=self.device)
        T_cam_world = torch.linalg.inv(torch.as_tensor(T_world_cam, device=self.device))
        cond = cache.render(K_t, T_cam_world, height, width, splat_px=cfg.splat_px)
        cond_index = cond.index.cpu().numpy()
        timings["render"] += time.perf_counter() - t0

        # 2. references from the memory bank
        report("retrieve", start)
        t0 = time.perf_counter()
        references: list[list[Reference]] = [[] for _ in range(n)]
        if cfg.memory == "ggm+ssm" and self.backend.uses_references and len(bank):
            references = [bank.retrieve(K, T_world_cam[i], width, height, k=cfg.references_per_frame,
                                        min_score=cfg.min_reference_score) for i in range(n)]
        timings["retrieve"] += time.perf_counter() - t0

        # 3. generate (image-to-video backends get the real image when pose 0 is the snapshot's own view)
        snap = self.snapshot
        same_view = (start == 0 and snap.K is not None and snap.rgb.shape[:2] == (height, width)
                     and np.allclose(K, snap.K) and np.allclose(T_world_cam[0], snap.T_world_cam, atol=1e-6))
        request = GenerationRequest(K=np.broadcast_to(K, (n, 3, 3)).copy(), T_world_cam=T_world_cam.copy(),
                                    height=height, width=width, cond_rgb=cond.rgb.cpu().numpy(),
                                    cond_depth=cond.depth.cpu().numpy(), cond_mask=cond.mask.cpu().numpy(),
                                    cond_index=cond_index, references=references, source=self.snapshot,
                                    trajectory_id=trajectory.id, start_rgb=snap.rgb if same_view else None)
        report("generate", start)

        def frame_done(index: int, rgb: np.ndarray, depth: np.ndarray, imagined: np.ndarray) -> None:
            if on_frame is not None:
                on_frame(trajectory.id, start + index, rgb, depth, imagined, T_world_cam[index], K)
            report("generate", start + index + 1)
            if should_cancel is not None and should_cancel():
                raise Cancelled(f"cancelled in trajectory {trajectory.id!r} after frame {start + index + 1} of "
                                f"{len(trajectory)}")

        t0 = time.perf_counter()
        if hasattr(self.backend, "on_step"):  # iterative backends: progress and cancel between denoising steps
            # No frame is final before the last step; report the share of steps as frames so feedback moves.
            self.backend.on_step = lambda step, total: report("generate", start + min(n - 1, n * step // max(total, 1)))
            self.backend.should_cancel = should_cancel
        try:
            frames = self.backend.generate(request, generator=generator, on_frame=frame_done)
        except GenerationCancelled as exc:
            raise Cancelled(f"cancelled in trajectory {trajectory.id!r}: {exc}") from exc
        finally:
            if hasattr(self.backend, "on_step"):  # no stale hooks of this run on a shared backend
                self.backend.on_step = self.backend.should_cancel = None
        timings["generate"] += time.perf_counter() - t0
        for name, seconds in frames.timings_s.items():
            timings[f"generate.{name}"] = timings.get(f"generate.{name}", 0.0) + float(seconds)
        check_frames(frames, n, height, width)

        # 4. reconstruct
        report("reconstruct", stop)
        t0 = time.perf_counter()
        depth = np.asarray(frames.depth, dtype=np.float32)
        merge_depth, unsure = depth, None
        if frames.confidence is not None:
            # only confidently imagined pixels reach the cache and the keyframes (issue 12); the views keep every pixel
            unsure = np.asarray(frames.imagined, dtype=bool) & (np.asarray(frames.confidence) < MIN_IMAGINED_CONFIDENCE)
            merge_depth = np.where(unsure, 0.0, depth).astype(np.float32)
        xyz, rgb, conf, frame, is_imagined = reconstruct_points(
            frames.rgb, merge_depth, frames.imagined, K, T_world_cam, cfg.imagined_confidence, not cfg.merge_observed,
            cfg.drop_depth_edges, cfg.edge_threshold, cfg.reconstruct_stride, self.device, return_sources=True,
            max_imagined_distance_px=cfg.max_imagined_distance_px)
        timings["reconstruct"] += time.perf_counter() - t0

        # 5. align non-metric depth to the cache (one Sim(3) per chunk)
        report("align", stop)
        t0 = time.perf_counter()
        T_fix = np.eye(4)
        if not frames.depth_is_metric:
            T_fix = self._align(frames, depth, cond.mask.cpu().numpy(), cond_index, K, T_world_cam, cache=cache)
            xyz = xyz @ torch.as_tensor(T_fix[:3, :3].T, dtype=xyz.dtype, device=xyz.device) \
                + torch.as_tensor(T_fix[:3, 3], dtype=xyz.dtype, device=xyz.device)
            depth = aligned_depth(depth, K, T_world_cam, T_fix)
        timings["align"] += time.perf_counter() - t0

        # 6. merge
        report("merge", stop)
        t0 = time.perf_counter()
        keyframes = [i - start for i in self._keyframe_indices(len(trajectory)) if start <= i < stop]
        if cfg.memory != "none" and xyz.shape[0]:
            drop = is_imagined & beyond_rendered_depth(xyz, frame, T_cam_world, cond)
            if cfg.free_space_tolerance is not None and keyframes:
                drop |= is_imagined & seen_through(
                    xyz, torch.as_tensor(depth[keyframes], device=xyz.device),
                    torch.as_tensor(np.asarray(K, np.float64), device=xyz.device),
                    torch.as_tensor(T_world_cam[keyframes], device=xyz.device), cfg.free_space_tolerance, frame,
                    torch.as_tensor(keyframes, device=xyz.device))
            if cfg.protect_observed:
                # an imagined point never edits a voxel that holds an observation: there it can only be worse
                drop |= is_imagined & (cache.confidence_at(xyz) >= 1.0)
            xyz, rgb, conf = xyz[~drop], rgb[~drop], conf[~drop]
        if cfg.memory != "none" and xyz.shape[0]:
            self.cache.merge(xyz, rgb=rgb, confidence=conf, view_id=self._trajectories_done + 1,
                             viewpoint=trajectory.T_world_cam[:, :3, 3].mean(axis=0))
        timings["merge"] += time.perf_counter() - t0

        # 7. keyframes
        report("bank", stop)
        t0 = time.perf_counter()
        if cfg.memory == "ggm+ssm":
            for i in keyframes:
                # a keyframe is evidence for later views: unsure imagined pixels would let a guess confirm itself
                kf_depth = depth[i] if unsure is None else np.where(unsure[i], 0.0, depth[i])
                self.bank.add(Keyframe.from_frame(frames.rgb[i], kf_depth, K, T_world_cam[i], self._take_keyframe_id(),
                                                  trajectory.id))
        timings["bank"] += time.perf_counter() - t0
        return (np.asarray(frames.rgb, dtype=np.float32), depth, np.asarray(frames.imagined, dtype=bool),
                [[r.keyframe_id for r in refs] for refs in references], T_fix)

    def _align(self, frames: GeneratedFrames, depth: np.ndarray, cond_mask: np.ndarray, cond_index: np.ndarray,
               K: np.ndarray, T_world_cam: np.ndarray, cache: GlobalCache | None = None) -> np.ndarray:
        """Sim(3) (4, 4) mapping the generated geometry onto the cache, from pixels the cache covered;
        ``cond_index`` indexes ``cache`` (the one rendered; default: the pipeline's)."""
        src, dst = [], []
        cache_xyz = (self.cache if cache is None else cache).xyz.cpu()
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

    def _keyframe_indices(self, n: int) -> list[int]:
        """Frames of an n-frame trajectory that become keyframes: every ``keyframe_stride``-th and the last
        (where the trajectory ended up, and where the next one may pick up)."""
        return sorted(set(range(self.config.keyframe_stride - 1, n, self.config.keyframe_stride)) | {n - 1})
