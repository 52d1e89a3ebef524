"""Evaluation of stereo from one camera (issue 16): fidelity on real stereo pairs, temporal consistency on
real video, and throughput.

* :func:`evaluate_pair`: a Middlebury pair (left image + ground-truth disparity -> right view) against the
  real right image, side by side with the classical one-pixel forward warp + Telea of the bench
  (:func:`~worldstereo_ros.evaluation.view_fidelity.baseline_view`). Scores: PSNR / SSIM / sharpness ratio
  on the full frame and on the *occluded* pixels, i.e. the pixels the one-pixel forward warp leaves
  empty (the same split the bench uses, so both methods are scored on the same pixels).
* :func:`temporal_consistency`: E_warp on an RGB-D video (7-Scenes), per-frame processing vs flow-based
  propagation (:class:`~worldstereo_ros.stereo.video.StereoVideo`). E_warp of frame t = mean absolute
  difference (RGB in [0, 1]) between the right frame t and right frame t-1 warped to t by optical flow,
  over the pixels where that flow passes a forward-backward check. The flow is method-independent: OpenCV
  DIS (medium preset) between the *input* left frames, carried into the right view through the per-frame
  method's right disparity (an occluded right pixel moves like its background neighbour). Reported on
  three pixel sets: all, filled (occluded in the per-frame mask: where fills can flicker) and observed
  (the rest, which are resampled input pixels), plus the same E_warp of the input left video on its own
  pixels (the floor that sensor noise, JPEG and lighting set).
* :func:`pan_video_psnr`: the per-frame PSNR cost of propagation, measured where a real right video
  exists: a Middlebury pair cropped by a window sliding one pixel per frame (a rectified stereo video
  of a static scene with the principal point panning); PSNR of every synthesised right frame against the
  real right crop, per-frame vs propagated.
* :func:`throughput`: frames per second of :class:`~worldstereo_ros.stereo.processor.StereoProcessor`
  (what the ROS node runs per message) on real 640 x 480 RGB-D frames.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from worldstereo_ros.datasets.middlebury import read_middlebury
from worldstereo_ros.datasets.rgbd_folder import RgbdFrame
from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation.image_metrics import psnr, sharpness_ratio, ssim
from worldstereo_ros.evaluation.procedural_sequence import ProceduralSequence
from worldstereo_ros.evaluation.view_fidelity import baseline_view
from worldstereo_ros.geometry.stereo_rig import StereoRig, baseline_for_strength
from worldstereo_ros.stereo.fill import OcclusionFiller, TeleaFiller, create_filler
from worldstereo_ros.stereo.processor import StereoProcessor, StereoSettings
from worldstereo_ros.stereo.synthesis import StereoView, background_neighbours, synthesize_right
from worldstereo_ros.stereo.video import StereoVideo, TemporalConfig, forward_backward_flow

#: Targets of issue 16.
TARGET_PSNR_GAIN_DB = 1.0
TARGET_EWARP_REDUCTION = 0.25
TARGET_PSNR_LOSS_DB = 0.2
TARGET_NODE_HZ = 10.0  # with the render_fill fill
TARGET_LEARNED_NODE_HZ = 5.0  # with the learned fill


@dataclass
class PairScore:
    """One method on one stereo pair (PSNR in dB; occluded = the baseline's empty pixels)."""

    pair: str
    method: str
    psnr_full: float
    psnr_occluded: float
    ssim_full: float
    ssim_occluded: float
    sharpness_full: float
    sharpness_occluded: float
    occluded_fraction: float
    seconds: float


def _score(pair: str, method: str, pred: np.ndarray, real: np.ndarray, occluded: np.ndarray,
           seconds: float) -> PairScore:
    return PairScore(pair, method, psnr(pred, real), psnr(pred, real, occluded), ssim(pred, real),
                     ssim(pred, real, occluded), sharpness_ratio(pred, real), sharpness_ratio(pred, real, occluded),
                     float(occluded.mean()), seconds)


def evaluate_pair(folder, fillers: list[OcclusionFiller] | None = None,
                  generator_fills: tuple[str, ...] = ()) -> list[PairScore]:
    """Right view of a Middlebury pair: the warp + Telea baseline first, then ours with each filler.

    Args:
        folder: a pair in any Middlebury layout (2014 ``im0.png`` / ``im1.png`` / ``disp0.pfm`` /
            ``calib.txt``, 2005/2006, or ``<name>_left.png`` / ``_right.png`` / ``_disp.npz``), read with
            :func:`~worldstereo_ros.datasets.middlebury.read_middlebury` and its calibration.
        fillers: occlusion fillers to score (default: background push-pull, background Telea, plain Telea).
        generator_fills: generator backend names (``render_fill``, ``learned``) scored after ``fillers``, made
            with this pair's rig and their stereo defaults (:func:`~worldstereo_ros.stereo.fill.create_filler`).
    Returns:
        [baseline, ours per filler, ours per generator fill] PairScores.
    """

    folder = Path(folder)
    pair = read_middlebury(folder)
    rig = StereoRig(pair.K, pair.baseline_m, pair.doffs_px)
    real = pair.right.astype(np.float32) / np.float32(255.0)
    t0 = time.perf_counter()
    base, occluded = baseline_view(RgbdFrame(0, pair.left, pair.depth_m, np.eye(4), pair.K), rig.K_right,
                                   rig.T_left_right)
    rows = [_score(folder.name, "warp + Telea (baseline)", base, real, occluded, time.perf_counter() - t0)]
    fillers = list(fillers or [create_filler("classical"), create_filler("background-telea"), TeleaFiller()])
    fillers += [create_filler(name, rig.K_right, rig.fx * rig.baseline_m, rig.doffs_px) for name in generator_fills]
    for filler in fillers:
        t0 = time.perf_counter()
        view = synthesize_right(pair.left, pair.disparity, filler=filler)
        rows.append(_score(folder.name, f"ours ({filler.name} fill)", view.right, real, occluded,
                           time.perf_counter() - t0))
    return rows


def pair_targets_met(rows: list[PairScore]) -> bool:
    """The first ``ours`` row (the default filler) beats the baseline by the targets on this pair."""
    base, ours = rows[0], rows[1]
    return ours.psnr_full >= base.psnr_full + TARGET_PSNR_GAIN_DB and ours.psnr_occluded > base.psnr_occluded


# ---------------------------------------------------------------------------------------- temporal


def _grey(rgb_u8: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb_u8, cv2.COLOR_RGB2GRAY)


def _right_flow(flow: np.ndarray, trusted: np.ndarray, view: StereoView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The left frames' backward flow carried into the right view (module doc): (map_x, map_y, trusted)."""
    h, w = trusted.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    _, col = background_neighbours(np.where(view.occlusion, np.nan, view.disparity).astype(np.float32))
    base = np.where(view.occlusion & (col >= 0), col.astype(np.float32), xs)
    src_x = (base + view.disparity).astype(np.float32)
    fx = cv2.remap(np.ascontiguousarray(flow[..., 0]), src_x, ys, cv2.INTER_LINEAR, borderValue=np.nan)
    fy = cv2.remap(np.ascontiguousarray(flow[..., 1]), src_x, ys, cv2.INTER_LINEAR, borderValue=np.nan)
    ok = cv2.remap(trusted.astype(np.uint8), src_x, ys, cv2.INTER_NEAREST).astype(bool) & np.isfinite(fx)
    return (xs + np.nan_to_num(fx, nan=-1e4)).astype(np.float32), (ys + np.nan_to_num(fy, nan=-1e4)).astype(
        np.float32), ok


def _warp_error(cur: np.ndarray, prev: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, ok: np.ndarray,
                region: np.ndarray) -> tuple[float, int]:
    warped = cv2.remap(prev, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    sel = ok & region & np.isfinite(warped).all(axis=2)
    if not sel.any():
        return 0.0, 0
    return float(np.abs(cur - warped).mean(axis=2)[sel].sum()), int(sel.sum())


@dataclass
class TemporalRow:
    """E_warp of one method over a video (mean absolute difference, RGB in [0, 1])."""

    method: str
    ewarp_all: float
    ewarp_filled: float
    ewarp_observed: float
    seconds_per_frame: float
    psnr: float = math.nan  # mean per-frame PSNR against the true right video, dB (NaN: no truth)


def temporal_consistency(frames, K: np.ndarray, strength: float = 0.03, baseline_m: float | None = None,
                         fill: str = "classical", config: TemporalConfig | None = None,
                         truth: list[np.ndarray] | None = None) -> tuple[list[TemporalRow], float, float]:
    """E_warp per-frame vs propagated on an RGB-D video (module doc).

    Args:
        frames: sequence of objects with ``rgb`` (H, W, 3) uint8 and ``depth`` (H, W) float32 metres
            (0 = unknown), consecutive video frames (e.g. RgbdFolder frames).
        K: (3, 3) intrinsics. strength: stereo deviation strength (fraction of the width) mapped to a
            baseline from the first frame's depth range, unless ``baseline_m`` is given.
        config: options of the propagated mode (default :class:`TemporalConfig`); ``propagate`` is set per mode.
        truth: the true right frames ((H, W, 3) float32 in [0, 1], one per frame) when the video has them:
            each row's ``psnr`` is then the mean per-frame PSNR against them.
    Returns:
        ([per-frame row, propagated row, input-video floor row], baseline_m, measured floor E_warp on the
        left video).
    """
    frames = list(frames)
    if len(frames) < 2:
        raise InputError("frames", f"need at least 2 frames, got {len(frames)}")
    if truth is not None and len(truth) != len(frames):
        raise InputError("truth", f"expected one right frame per frame ({len(frames)}), got {len(truth)}")
    h, w = frames[0].depth.shape
    if baseline_m is None:
        baseline_m = baseline_for_strength(strength, frames[0].depth, float(K[0, 0]), w)
    rig = StereoRig(K, baseline_m)
    outputs: dict[str, list[StereoView]] = {}
    seconds: dict[str, float] = {}
    for method, propagate in (("per-frame", False), ("propagated (flow-fused masks + fills)", True)):
        video = StereoVideo(create_filler(fill, rig.K_right, rig.fx * rig.baseline_m),
                            replace(config or TemporalConfig(), propagate=propagate))
        t0 = time.perf_counter()
        outputs[method] = [video.process(f.rgb, rig.disparity_from_depth(f.depth)) for f in frames]
        seconds[method] = (time.perf_counter() - t0) / len(frames)
    reference = outputs["per-frame"]
    sums = {m: np.zeros((3, 2)) for m in outputs}
    floor = np.zeros(2)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    for t in range(1, len(frames)):
        flow, trusted = forward_backward_flow(_grey(frames[t - 1].rgb), _grey(frames[t].rgb), "medium", 1.0)
        map_x, map_y, ok = _right_flow(flow, trusted, reference[t])
        filled = reference[t].occlusion
        for m, outs in outputs.items():
            for i, region in enumerate((np.ones_like(filled), filled, ~filled)):
                s, n = _warp_error(outs[t].right, outs[t - 1].right, map_x, map_y, ok, region)
                sums[m][i] += (s, n)
        cur = frames[t].rgb.astype(np.float32) / 255.0
        prev = frames[t - 1].rgb.astype(np.float32) / 255.0
        s, n = _warp_error(cur, prev, xs + flow[..., 0], ys + flow[..., 1], trusted, np.ones_like(trusted))
        floor += (s, n)
    psnrs = {m: (float(np.mean([psnr(v.right, r) for v, r in zip(outs, truth, strict=True)])) if truth is not None
                 else math.nan) for m, outs in outputs.items()}
    rows = [TemporalRow(m, *(float(s / max(n, 1)) for s, n in sums[m]), seconds[m], psnrs[m]) for m in outputs]
    floor_e = float(floor[0] / max(floor[1], 1))
    return rows, float(baseline_m), floor_e


def procedural_stereo_video(frames: int = 60, width: int = 640, height: int = 480, strength: float = 0.03
                            ) -> tuple[list[RgbdFrame], list[np.ndarray], np.ndarray, float]:
    """A video with a true right eye: the procedural room along its camera path
    (:class:`~worldstereo_ros.evaluation.procedural_sequence.ProceduralSequence`, exact depth), the right
    frames rendered at the right-eye pose ``T_world_left @ T_left_right`` of the rig whose baseline the
    ``strength`` gives on the first frame.

    Returns:
        (left RgbdFrames (rgb uint8, depth float32 m), true right frames (H, W, 3) float32 in [0, 1],
         K (3, 3), baseline_m).
    """
    seq = ProceduralSequence(frames=frames, width=width, height=height)
    lefts = [seq.read(i) for i in seq.indices]
    baseline = baseline_for_strength(strength, lefts[0].depth, float(seq.K[0, 0]), width)
    rig = StereoRig(seq.K, baseline)
    rights = [np.clip(seq.truth(rig.K_right, f.T_world_cam @ rig.T_left_right, width, height)[0], 0.0, 1.0)
              .astype(np.float32) for f in lefts]
    return lefts, rights, seq.K, float(baseline)


def pan_video_psnr(folder, frames: int = 40, width: int = 640, step_px: int = 1,
                   fill: str = "classical") -> dict[str, float]:
    """Mean PSNR of the right frames of a panning crop video of a Middlebury pair (module doc).

    Returns:
        {method: mean PSNR in dB} for ``per-frame`` and ``propagated``, and ``ewarp_*`` of each on the
        (exact, integer) crop motion: a right pixel at x in frame t was at x + step_px in frame t-1.
    """

    folder = Path(folder)
    pair = read_middlebury(folder)
    w_full = pair.left.shape[1]
    if width + step_px * (frames - 1) > w_full:
        raise InputError("frames", f"{frames} frames of width {width} step {step_px} exceed the image width {w_full}")
    rig = StereoRig(pair.K, pair.baseline_m, pair.doffs_px)
    out: dict[str, float] = {}
    for method, propagate in (("per-frame", False), ("propagated", True)):
        video = StereoVideo(create_filler(fill, rig.K_right, rig.fx * rig.baseline_m, rig.doffs_px),
                            TemporalConfig(propagate=propagate))
        scores, prev, errs = [], None, []
        for t in range(frames):
            x0 = t * step_px
            view = video.process(pair.left[:, x0:x0 + width], pair.disparity[:, x0:x0 + width])
            real = pair.right[:, x0:x0 + width].astype(np.float32) / 255.0
            scores.append(psnr(view.right, real))
            if prev is not None:  # the crop moved right by step_px: pixel x now was x + step_px before
                errs.append(float(np.abs(view.right[:, : width - step_px] - prev[:, step_px:]).mean()))
            prev = view.right
        out[method] = float(np.mean(scores))
        out[f"ewarp_{method}"] = float(np.mean(errs)) if errs else math.nan
    return out


def throughput(frames, K: np.ndarray, fill: str = "classical", baseline_m: float = 0.065, propagate: bool = False,
               repeats: int = 1) -> float:
    """Frames per second of :class:`~worldstereo_ros.stereo.processor.StereoProcessor` on ``frames``
    (objects with uint8 ``rgb`` and metre ``depth``), after one warm-up frame."""

    frames = list(frames)
    proc = StereoProcessor(StereoSettings(baseline_m=baseline_m, fill=fill, temporal=propagate))
    proc.process(frames[0].rgb, frames[0].depth, K)
    t0 = time.perf_counter()
    n = 0
    for _ in range(repeats):
        for f in frames:
            proc.process(f.rgb, f.depth, K)
            n += 1
    return n / (time.perf_counter() - t0)


def as_dicts(rows) -> list[dict]:
    return [asdict(r) for r in rows]
