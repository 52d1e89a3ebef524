"""``learned``: the compact generator trained here (FillNet), CPU-fast, shipped with its weights.

Per target frame, in order:

1. condition: the cache render (``cond_*``) gives the observed pixels; every pixel outside ``cond_mask`` is to
   be imagined. The retrieved references (SSM) are z-buffered into the target through their pointmaps in one
   render (nearest wins); with ``temporal``, the previous frame's confidently imagined pixels are drawn into
   this one too, where no reference landed, so a surface imagined once is carried along the path instead of
   re-imagined differently (no flicker). This is the same reference channel the network was trained on.
2. network: :class:`~.model.FillNet` predicts rgb, normalised inverse depth and a confidence for every pixel;
   only the imagined ones are used (observed pixels pass through: the cache render, with ``reference_detail``
   its colours sharpened from the references as ``render_fill`` does, never the network's output).
3. depth the cache can trust: imagined depth is clamped to the range of depths the memories (cache render and
   references) hold within ``support_window_px`` of the pixel; where they hold none, depth is 0 (unknown)
   and confidence 0. Where a retrieved reference sees the pixel, the depth is that reference's measurement
   (``reference_depth``). The confidence the pipeline merges by is ``reference_confidence`` (1; or the network's)
   only where a retrieved reference sees the pixel, else 0: pixels supported by the temporal carry alone (the
   model's own earlier guess) or by nothing never reach the cache (on the geometry section's tuning starts
   those carried pixels were 86 % of the merged ones, with a median depth error of 15 %, and cost the map 0.1
   in F1@2cm). The carry itself still selects by the network's confidence. ``confidence`` of observed pixels is 1.

Depth is float32 metres (metric: it continues the cache's metric depth), 0 = unknown. The network is
deterministic; ``generator`` is accepted for the interface.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.base import (
    FrameCallback,
    GeneratedFrames,
    GenerationRequest,
    Generator,
    Reference,
)
from worldstereo_ros.generation.learned.conditioning import (
    PRIORS,
    build_input_hwc,
    prior_fill,
    reproject_points,
    support_range,
)
from worldstereo_ros.generation.learned.model import TILE, pad_to_multiple
from worldstereo_ros.generation.learned.weights import load_model
from worldstereo_ros.generation.render_fill import RenderFillGenerator

_OPTIONS = ("model_path", "ssm", "temporal", "temporal_min_confidence", "support_window_px", "reference_detail",
            "reference_depth", "detail_to_network", "prior", "prefetch", "agreement", "reference_confidence", "threads",
            "device")


@dataclass
class _FrameCondition:
    """What :meth:`LearnedGenerator._condition` prepares for one frame (shapes as in the request)."""

    K: np.ndarray
    T_world_cam: np.ndarray
    imagined: np.ndarray
    cond_rgb: np.ndarray
    network_rgb: np.ndarray
    cond_depth: np.ndarray
    prior_rgb: np.ndarray | None
    references: tuple[np.ndarray, np.ndarray, np.ndarray] | None


class LearnedGenerator(Generator):
    """FillNet over the cache render and the references (module doc).

    Args:
        model_path: safetensors weights; None = the shipped ``weights/learned_fill.safetensors``.
        ssm: use the retrieved references (False: ignore them).
        temporal: carry the previous frame's imagined pixels into the next frame's reference channel.
        temporal_min_confidence: only imagined pixels at least this confident are carried, in [0, 1].
        support_window_px: side of the neighbourhood whose observed depths bound imagined depth, pixels (>= 5).
        reference_detail: before imagining, the cache's (voxel-fused, coarse) colours are replaced by the
            references' where a reference sees the same surface, sampled at the exact 3D correspondence (the
            same step as ``render_fill``'s ``reference_detail``); these pixels stay observed, and only this
            step ever changes them.
        reference_depth: where a retrieved reference sees an imagined pixel, its depth is the reference's
            measurement drawn into the view, not the network's estimate (on the geometry section's tuning starts
            the network's depth there has a median relative error of about 10 %, the reference's about 1 %).
        detail_to_network: the network sees the observed colours after ``reference_detail`` (True) or the cache
            render's own (False, as in training); the output's observed pixels carry the detail either way. On the
            tuning frames False fills holes 0.30 dB better (fill protocol with references, 19.62 vs 19.32 dB) and
            leaves the pipeline's views at ground-truth poses unchanged (17.84 vs 17.85 dB full frame).
        prior: the network's classical prior channel: ``"telea"`` (OpenCV Telea radius 3, as in training),
            ``"telea_r2"`` (radius 2; tuning split fill protocol +0.08 dB without references, -0.10 dB with, about
            20 ms less per 640 x 480 view) or ``"fast"`` (:func:`~.conditioning.fast_telea`: half-resolution Telea
            with a full-resolution band along the hole boundary; -0.25 dB without references, about 30 ms less).
        agreement: when set, a reference-seen imagined pixel keeps its confidence only where the network's depth
            and the reference's agree within this relative difference (two independent estimates; None: the
            reference seeing the pixel is enough).
        reference_confidence: the confidence of an imagined pixel that a retrieved reference measures (and the
            memories support): its depth is then that measurement (``reference_depth``), so the merge gate need not
            hang on the network's estimate of its own depth error; None: the network's confidence there. On the
            geometry section's tuning starts 1.0 raised F1@2cm above the floor (0: 0.739 vs 0.733, 300: 0.628 vs
            0.625) where the network's confidence left it at or below (0.732, 0.624).
        prefetch: build the next frame's condition (reference detail, prior, references) on a second thread
            while the network runs on this one (same outputs; 1.42x the views per second on this 2-core machine,
            ``benchmarks/bench_learned_speed.py --without-prefetch``).
        threads: torch CPU threads while generating (None: leave torch's setting).
        device: torch device of the network.
    Raises:
        InputError: naming the option, for a bad value or an unknown option.
        BackendError: naming the file (and key) when the weights cannot be loaded.
    """

    name = "learned"
    uses_references = True

    def __init__(self, model_path: str | Path | None = None, ssm: bool = True, temporal: bool = True,
                 temporal_min_confidence: float = 0.5, support_window_px: int = 65, reference_detail: bool = True,
                 reference_depth: bool = True, detail_to_network: bool = False, prior: str = "telea",
                 prefetch: bool = True, agreement: float | None = None, reference_confidence: float | None = 1.0,
                 threads: int | None = None, device: str | torch.device = "cpu", **unknown) -> None:
        if unknown:
            raise InputError(sorted(unknown)[0], f"unknown option of the learned backend; valid: {', '.join(_OPTIONS)}")
        for name, value in (("ssm", ssm), ("temporal", temporal), ("reference_detail", reference_detail),
                            ("reference_depth", reference_depth), ("detail_to_network", detail_to_network),
                            ("prefetch", prefetch)):
            if not isinstance(value, (bool, np.bool_)):
                raise InputError(name, f"expected a bool, got {value!r}")
        if isinstance(temporal_min_confidence, bool) or not isinstance(temporal_min_confidence, (int, float)) \
                or not 0.0 <= temporal_min_confidence <= 1.0:
            raise InputError("temporal_min_confidence", f"expected a float in [0, 1], got {temporal_min_confidence!r}")
        if isinstance(support_window_px, bool) or not isinstance(support_window_px, (int, np.integer)) \
                or support_window_px < 5:
            raise InputError("support_window_px", f"expected an int >= 5 pixels, got {support_window_px!r}")
        if prior not in PRIORS:
            raise InputError("prior", f"expected one of {', '.join(PRIORS)}, got {prior!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InputError("threads", f"expected None or an int >= 1, got {threads!r}")
        try:
            self.device = torch.device(device)
        except (TypeError, RuntimeError) as exc:
            raise InputError("device", f"not a torch device: {device!r}") from exc
        self.ssm, self.temporal = bool(ssm), bool(temporal)
        self.temporal_min_confidence = float(temporal_min_confidence)
        self.support_window_px = int(support_window_px)
        self.threads = threads
        self.reference_detail = bool(reference_detail)
        self.prior = prior
        self.prefetch = bool(prefetch)
        if agreement is not None and (isinstance(agreement, bool) or not isinstance(agreement, (int, float))
                                      or not 0.0 < agreement <= 1.0):
            raise InputError("agreement", f"expected None or a float in (0, 1], got {agreement!r}")
        self.agreement = None if agreement is None else float(agreement)
        if reference_confidence is not None and (isinstance(reference_confidence, bool)
                                                 or not isinstance(reference_confidence, (int, float))
                                                 or not 0.0 <= reference_confidence <= 1.0):
            raise InputError("reference_confidence", f"expected None or a float in [0, 1], got {reference_confidence}")
        self.reference_confidence = None if reference_confidence is None else float(reference_confidence)
        self.reference_depth = bool(reference_depth)
        self.detail_to_network = bool(detail_to_network)
        # render_fill owns the sub-pixel colour pull from references; reuse it rather than keep a second copy
        self._detail = RenderFillGenerator(device=self.device) if self.reference_detail else None
        # channels-last convolutions are about 20 % faster on this CPU (oneDNN), same weights
        self.model = load_model(model_path).to(self.device).to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ generate

    def generate(self, request: GenerationRequest, generator: torch.Generator | None = None,
                 on_frame: FrameCallback | None = None) -> GeneratedFrames:
        """Imagine the pixels outside ``cond_mask`` of every frame, in order (module doc)."""
        request.check()
        n, h, w = request.num_frames, request.height, request.width
        out_rgb = np.empty((n, h, w, 3), np.float32)
        out_depth = np.empty((n, h, w), np.float32)
        out_conf = np.empty((n, h, w), np.float32)
        imagined_all = ~np.asarray(request.cond_mask, dtype=bool)
        timings = {"condition": 0.0, "network": 0.0}
        previous: tuple[np.ndarray, np.ndarray] | None = None  # world points and colours carried forward
        memo: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}  # references' valid points
        saved_threads = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        # The condition of frame i + 1 (detail, prior, references) does not depend on frame i, so with
        # ``prefetch`` it is built on a second thread while the network runs: OpenCV, numpy and torch release
        # the GIL, and the two stages take the two cores of a small computer.
        pool = ThreadPoolExecutor(1, thread_name_prefix="learned-condition") if self.prefetch and n > 1 else None
        try:
            t_first = time.perf_counter()
            pending = self._submit(pool, request, 0, imagined_all[0], memo)
            timings["condition"] += time.perf_counter() - t_first
            for i in range(n):
                t0 = time.perf_counter()
                frame = pending.result() if isinstance(pending, Future) else pending
                if i + 1 < n:
                    pending = self._submit(pool, request, i + 1, imagined_all[i + 1], memo)
                K, T_wc, imagined = frame.K, frame.T_world_cam, frame.imagined
                cond_rgb, cond_depth = frame.cond_rgb, frame.cond_depth
                if not imagined.any():  # nothing to imagine: the frame is the cache render
                    out_rgb[i], out_depth[i], out_conf[i] = cond_rgb, cond_depth, 1.0
                    previous = None
                    timings["condition"] += time.perf_counter() - t0
                    if on_frame is not None:
                        on_frame(i, out_rgb[i], out_depth[i], imagined)
                    continue
                ref_rgb, ref_depth, ref_valid = self._with_carry(frame.references, previous, K, T_wc, h, w)
                from_reference = frame.references[2]
                x, scale = build_input_hwc(frame.network_rgb, cond_depth, imagined, ref_rgb, ref_depth, ref_valid,
                                           prior=self.prior, prior_rgb=frame.prior_rgb)
                # the memories' depth at every pixel (cache render first, then references): what bounds imagined depth
                observed = np.where(cond_depth > 0, cond_depth, np.where(ref_valid, np.maximum(ref_depth, 0.0), 0.0))
                t1 = time.perf_counter()
                with torch.inference_mode():
                    # (H, W, C) memory viewed as (1, C, H, W): channels-last, no copy
                    xt, _ = pad_to_multiple(torch.from_numpy(x).to(self.device).permute(2, 0, 1)[None])
                    tiles = self.model.infer_tiles(xt)
                    values = tiles.values.cpu().numpy()
                    tile_of = np.full((xt.shape[2] // TILE, xt.shape[3] // TILE), -1, np.int64)
                    tile_of[tiles.ty.cpu().numpy(), tiles.tx.cpu().numpy()] = np.arange(len(values))
                t2 = time.perf_counter()
                # only the imagined pixels are read from here on: work on their flat indices
                idx = np.flatnonzero(imagined)
                v, u = np.divmod(idx, w)
                pred = values[tile_of[v // TILE, u // TILE], :, v % TILE, u % TILE]  # (N, 5): rgb, inv depth, conf
                lo, hi = support_range(observed, self.support_window_px)
                lo_p, hi_p = lo[v // 4, u // 4], hi[v // 4, u // 4]
                supported = hi_p > 0
                depth_p = np.where(supported, np.clip(np.float32(scale) / np.maximum(pred[:, 3], 1e-3), lo_p, hi_p),
                                   0.0).astype(np.float32)
                # evidence is a retrieved reference seeing the pixel: the carried previous frame is the model's own
                # guess, and counting it would let a guess confirm itself along the path (module doc, step 3)
                seen = from_reference.reshape(-1)[idx]
                if self.agreement is not None:
                    ref_p = ref_depth.reshape(-1)[idx]
                    seen = seen & (np.abs(depth_p - ref_p) <= np.float32(self.agreement) * ref_p)
                conf_net = np.where(supported, pred[:, 4], 0.0).astype(np.float32)
                conf_seen = conf_net if self.reference_confidence is None else \
                    np.where(supported, np.float32(self.reference_confidence), np.float32(0.0))
                conf_p = np.where(seen, conf_seen, 0.0).astype(np.float32)
                if self.reference_depth:
                    depth_p = np.where(seen, ref_depth.reshape(-1)[idx], depth_p).astype(np.float32)
                frame_rgb, frame_depth, frame_conf = out_rgb[i], out_depth[i], out_conf[i]
                frame_rgb[...] = cond_rgb
                frame_rgb.reshape(-1, 3)[idx] = pred[:, :3]
                frame_depth[...] = cond_depth
                frame_depth.reshape(-1)[idx] = depth_p
                frame_conf[...] = 1.0
                frame_conf.reshape(-1)[idx] = conf_p
                if self.temporal and i + 1 < n:
                    sure = (conf_net >= self.temporal_min_confidence) & (depth_p > 0)
                    previous = self._carry(frame_rgb.reshape(-1, 3)[idx[sure]], depth_p[sure], v[sure], u[sure],
                                           K, T_wc)
                timings["condition"] += t1 - t0  # on this thread: waiting for the prefetch, the carry, the input
                timings["network"] += t2 - t1
                if on_frame is not None:
                    on_frame(i, out_rgb[i], out_depth[i], imagined)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(saved_threads)
        return GeneratedFrames(rgb=out_rgb, depth=out_depth, imagined=imagined_all, depth_is_metric=True,
                               timings_s=timings, confidence=out_conf)

    def _submit(self, pool: ThreadPoolExecutor | None, request: GenerationRequest, i: int, imagined: np.ndarray,
                memo: dict) -> "Future[_FrameCondition] | _FrameCondition":
        if pool is None:
            return self._condition(request, i, imagined, memo)
        return pool.submit(self._condition, request, i, imagined, memo)

    def _condition(self, request: GenerationRequest, i: int, imagined: np.ndarray, memo: dict) -> "_FrameCondition":
        """Everything of frame ``i`` that does not depend on frame ``i - 1``: observed colours and depth, the
        prior channel and the retrieved references drawn into the target."""
        h, w = request.height, request.width
        K = np.asarray(request.K[i], np.float64)
        T_wc = np.asarray(request.T_world_cam[i], np.float64)
        cond_rgb = network_rgb = np.asarray(request.cond_rgb[i], np.float32)
        if self._detail is not None and self.ssm and request.references[i] and not imagined.all():
            cond_rgb = self._pull_detail(request.references[i], K, T_wc, cond_rgb, request.cond_depth[i], ~imagined)
        cond_depth = np.where(imagined, 0.0, np.nan_to_num(np.asarray(request.cond_depth[i], np.float32)))
        cond_depth = np.maximum(cond_depth, 0.0).astype(np.float32)
        if self.detail_to_network:
            network_rgb = cond_rgb
        prior_rgb = references = None
        if imagined.any():
            prior_rgb = prior_fill(network_rgb, imagined, self.prior)
            references = self._references_drawn(request.references[i], K, T_wc, h, w, memo)
        return _FrameCondition(K, T_wc, imagined, cond_rgb, network_rgb, cond_depth, prior_rgb, references)

    def _pull_detail(self, references: list[Reference], K: np.ndarray, T_world_cam: np.ndarray, rgb: np.ndarray,
                     depth: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """``rgb`` with observed pixels resampled from the references that see the same surface (a copy)."""
        rgb_t = torch.from_numpy(rgb.copy()).to(self.device)
        depth_t = torch.from_numpy(np.nan_to_num(np.asarray(depth, np.float32))).to(self.device)
        mask = torch.from_numpy(observed).to(self.device) & (depth_t > 0)
        self._detail.pull_reference_colours(references, torch.as_tensor(K, device=self.device), T_world_cam,
                                             depth_t, mask, rgb_t)
        return rgb_t.cpu().numpy()

    def _references_drawn(self, references: list[Reference], K: np.ndarray, T_world_cam: np.ndarray, h: int, w: int,
                          memo: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]]
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The retrieved references drawn into the target in one z-buffer: rgb (H, W, 3), depth (H, W) m and
        valid (H, W) bool.

        ``memo`` keeps each reference's valid points across the frames of one request (the frames of a
        trajectory mostly share their keyframes)."""
        pts, cols = [], []
        if self.ssm:
            for ref in references:
                key = (int(ref.keyframe_id), id(ref.pointmap))
                if key not in memo:
                    depth = torch.as_tensor(np.asarray(ref.depth, np.float32)).reshape(-1)
                    pointmap = torch.as_tensor(np.asarray(ref.pointmap, np.float32)).reshape(-1, 3)
                    colours = torch.as_tensor(np.asarray(ref.rgb, np.float32)).reshape(-1, 3)
                    if pointmap.shape[0] != depth.shape[0] or colours.shape[0] != depth.shape[0]:
                        raise InputError("references", f"keyframe {ref.keyframe_id}: rgb {np.shape(ref.rgb)}, depth "
                                         f"{np.shape(ref.depth)} and pointmap {np.shape(ref.pointmap)} disagree")
                    keep = (depth > 0) & torch.isfinite(pointmap).all(dim=1)
                    memo[key] = (pointmap[keep], colours[keep])
                pts.append(memo[key][0])
                cols.append(memo[key][1])
        if not pts:
            return np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32), np.zeros((h, w), bool)
        return reproject_points(pts[0] if len(pts) == 1 else torch.cat(pts),
                                cols[0] if len(cols) == 1 else torch.cat(cols), K, T_world_cam, h, w)

    @staticmethod
    def _with_carry(layer: tuple[np.ndarray, np.ndarray, np.ndarray], previous: tuple[np.ndarray, np.ndarray] | None,
                    K: np.ndarray, T_world_cam: np.ndarray, h: int, w: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The reference layer with the carried previous frame drawn where no reference landed."""
        if previous is None or not previous[0].shape[0]:
            return layer
        carried = reproject_points(previous[0], previous[1], K, T_world_cam, h, w)
        take = carried[2] & ~layer[2]
        return (np.where(take[..., None], carried[0], layer[0]), np.where(take, carried[1], layer[1]),
                layer[2] | take)

    @staticmethod
    def _carry(rgb: np.ndarray, depth: np.ndarray, v: np.ndarray, u: np.ndarray, K: np.ndarray,
               T_world_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (M, 3) float32 and colours (M, 3) of pixels (v, u) with colours rgb (M, 3) and depth
        (M,) metres along the optical axis."""
        z = depth.astype(np.float32)
        cam = np.stack([(u - K[0, 2]).astype(np.float32) * np.float32(1.0 / K[0, 0]) * z,
                        (v - K[1, 2]).astype(np.float32) * np.float32(1.0 / K[1, 1]) * z, z], 1)
        world = cam @ T_world_cam[:3, :3].T.astype(np.float32) + T_world_cam[:3, 3].astype(np.float32)
        return world.astype(np.float32), rgb.astype(np.float32)
