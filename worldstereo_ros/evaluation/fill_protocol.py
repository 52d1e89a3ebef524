"""The fill protocol: imagination scored against a perfectly registered truth (SpatialDreamer's
forward-backward rendering, ``shared/docs/method.md``).

For a pair of frames (i, j) of an RGB-D sequence, frame i is drawn into pose j and back
(:func:`~worldstereo_ros.geometry.forward_backward.forward_backward_holes`): the pixels of i whose surface is
hidden or out of view at j become holes. The method under test fills them and is scored against frame i
itself: same camera, same image, so nothing is lost to the colour/depth/pose misregistration that
dominates view fidelity on 7-Scenes.

Every backend is called through its ordinary interface, ``Generator.generate(GenerationRequest)``, with a
one-frame request at pose i:

* ``cond_rgb`` / ``cond_depth``: frame i with the holes (and its unknown-depth pixels) emptied;
  ``cond_mask`` True on the remaining pixels, ``cond_index`` a running index over them (the cache render's
  layout: there, too, a pixel without depth has no point);
* ``references``: frame j as the one retrieved keyframe (score 1), for backends that read references. It is
  the partner view the holes were made from, the situation of a generator that remembers where the robot
  came from; by construction it does not see the hole surfaces (up to the depth's own errors);
* ``source``: frame j as a snapshot.

The baseline is OpenCV's Telea inpainting of the same emptied pixels. Scores (:class:`FillScore`): PSNR,
SSIM and sharpness ratio on the hole pixels, and full-frame PSNR (which also shows any change a backend
makes to the pixels it was given). Pairs come from
:func:`~worldstereo_ros.geometry.forward_backward.sample_pairs` (fixed seed, offsets 5-60 frames, both
frames inside the frame range), so two runs score the same pairs.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from worldstereo_ros.datasets.rgbd_folder import RgbdFrame
from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation.image_metrics import psnr, sharpness_ratio, ssim
from worldstereo_ros.generation.base import GenerationRequest, Generator, Reference
from worldstereo_ros.geometry.forward_backward import ForwardBackward, forward_backward_holes, sample_pairs
from worldstereo_ros.geometry.inpaint import telea_inpaint
from worldstereo_ros.geometry.projection import backproject_depth
from worldstereo_ros.snapshot import Snapshot

#: Method name of the classical baseline in the rows.
BASELINE = "Telea (baseline)"
#: A pair counts as won when the hole PSNR beats the baseline's by more than this (float noise is no win), dB.
WIN_MARGIN_DB = 0.01


@dataclass(frozen=True)
class FillScore:
    """Scores of one filled frame against the real frame i.

    Attributes:
        psnr_hole: PSNR over the hole pixels, dB (peak 1). ssim_hole: mean SSIM map over them.
        sharpness_hole: gradient energy of the fill over the real frame's on the hole pixels (1 = as sharp).
        psnr_full: PSNR over the whole frame, dB.
    """

    psnr_hole: float
    ssim_hole: float
    sharpness_hole: float
    psnr_full: float


def score_fill(pred: np.ndarray, real: np.ndarray, hole: np.ndarray) -> FillScore:
    """:class:`FillScore` of ``pred`` (H, W, 3) float [0, 1] against ``real`` on ``hole`` (H, W) bool."""
    return FillScore(psnr(pred, real, hole), ssim(pred, real, hole), sharpness_ratio(pred, real, hole),
                     psnr(pred, real))


def _rgb01(frame: RgbdFrame) -> np.ndarray:
    rgb = np.asarray(frame.rgb)
    return rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)


def _reference(frame: RgbdFrame) -> Reference:
    depth = np.asarray(frame.depth, dtype=np.float32)
    pointmap = backproject_depth(torch.from_numpy(depth).double(), torch.from_numpy(frame.K),
                                 torch.from_numpy(frame.T_world_cam)).numpy().astype(np.float32)
    pointmap[depth <= 0] = 0.0
    return Reference(_rgb01(frame), depth, pointmap, frame.K.copy(), frame.T_world_cam.copy(), 1.0, 0)


def fill_request(frame_i: RgbdFrame, frame_j: RgbdFrame, fb: ForwardBackward,
                 with_references: bool) -> GenerationRequest:
    """The one-frame request at pose i whose condition is ``fb`` (module doc); frame j is the reference."""
    h, w = fb.hole.shape
    given = fb.valid & ~fb.hole
    index = np.full((h, w), -1, dtype=np.int64)
    index[given] = np.arange(int(given.sum()), dtype=np.int64)
    rgb_j = _rgb01(frame_j)
    return GenerationRequest(
        K=np.asarray(frame_i.K, np.float64)[None].copy(), T_world_cam=np.asarray(frame_i.T_world_cam)[None].copy(),
        height=h, width=w, cond_rgb=np.where(given[..., None], fb.rgb, 0.0).astype(np.float32)[None],
        cond_depth=np.where(given, fb.depth, 0.0).astype(np.float32)[None], cond_mask=given[None],
        cond_index=index[None], references=[[_reference(frame_j)] if with_references else []],
        source=Snapshot.create(rgb_j, np.asarray(frame_j.depth, np.float32), frame_j.K, frame_j.T_world_cam),
        trajectory_id=f"fill_{frame_i.index}_from_{frame_j.index}")


def fill_pair(frame_i: RgbdFrame, frame_j: RgbdFrame, backends: dict[str, Generator], seed: int = 0,
              depth_tolerance: float = 0.03) -> tuple[ForwardBackward, dict[str, np.ndarray], dict[str, float]]:
    """The forward-backward problem of (i, j) and every method's filled frame i.

    Returns:
        (problem, {method: (H, W, 3) float32 filled frame}, {method: seconds}); the baseline first.
    """
    real = _rgb01(frame_i)
    fb = forward_backward_holes(real, frame_i.depth, frame_i.K, frame_i.T_world_cam, frame_j.T_world_cam,
                                depth_tolerance=depth_tolerance)
    t0 = time.perf_counter()
    empty = ~(fb.valid & ~fb.hole)
    filled = {BASELINE: telea_inpaint(np.where(empty[..., None], 0.0, real), empty, keep_known=False)}
    seconds = {BASELINE: time.perf_counter() - t0}
    for name, backend in backends.items():
        request = fill_request(frame_i, frame_j, fb, backend.uses_references)
        t0 = time.perf_counter()
        out = backend.generate(request, generator=torch.Generator().manual_seed(seed))
        seconds[name] = time.perf_counter() - t0
        rgb = np.asarray(out.rgb)
        if rgb.shape != (1, *real.shape):
            raise InputError(f"backend.{name}.rgb", f"expected shape {(1, *real.shape)}, got {rgb.shape}")
        filled[name] = rgb[0].astype(np.float32)
    return fb, filled, seconds


def fill_rows(sequence, pairs: list[tuple[int, int]], backends: dict[str, Generator], source: str,
              seed: int = 0) -> list[dict]:
    """One row per pair and method: source, i, j, offset, hole fraction, :class:`FillScore` fields, seconds.

    Args:
        sequence: anything with ``read(index) -> RgbdFrame`` (7-Scenes folder, TUM sequence, procedural).
        pairs: (i, j) frame pairs (:func:`~worldstereo_ros.geometry.forward_backward.sample_pairs`).
        backends: name -> constructed backend.
        source: the data's name for the rows.
    """
    rows = []
    for i, j in pairs:
        frame_i, frame_j = sequence.read(i), sequence.read(j)
        fb, filled, seconds = fill_pair(frame_i, frame_j, backends, seed)
        real = _rgb01(frame_i)
        if not fb.hole.any():
            continue  # nothing to fill: the pair says nothing about a fill method
        for method, rgb in filled.items():
            rows.append(dict(source=source, i=i, j=j, offset=abs(j - i), holes=fb.hole_fraction, method=method,
                             seconds=seconds[method], **asdict(score_fill(rgb, real, fb.hole))))
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Per source and method: means over the pairs, the hole-PSNR gain over the baseline on the same pairs and
    the pairs won (gain > :data:`WIN_MARGIN_DB`)."""
    out = []
    for source in dict.fromkeys(r["source"] for r in rows):
        mine = [r for r in rows if r["source"] == source]
        base = {(r["i"], r["j"]): r for r in mine if r["method"] == BASELINE}
        for method in dict.fromkeys(r["method"] for r in mine):
            group = [r for r in mine if r["method"] == method]
            gains = [r["psnr_hole"] - base[(r["i"], r["j"])]["psnr_hole"] for r in group if (r["i"], r["j"]) in base]
            out.append(dict(source=source, method=method, pairs=len(group),
                            holes=float(np.mean([r["holes"] for r in group])),
                            psnr_hole=float(np.mean([r["psnr_hole"] for r in group])),
                            ssim_hole=float(np.mean([r["ssim_hole"] for r in group])),
                            sharpness_hole=float(np.nanmean([r["sharpness_hole"] for r in group])),
                            psnr_full=float(np.mean([r["psnr_full"] for r in group])),
                            gain_hole_db=float(np.mean(gains)) if gains else math.nan,
                            wins=int(sum(g > WIN_MARGIN_DB for g in gains))))
    return out


def protocol_pairs(indices, count: int, frames: tuple[int, int] | None = None, seed: int = 0,
                   min_offset: int = 5, max_offset: int = 60) -> list[tuple[int, int]]:
    """``count`` seeded pairs among ``indices`` (restricted to the inclusive ``frames`` range when given)."""
    allowed = [i for i in indices if frames is None or frames[0] <= i <= frames[1]]
    return sample_pairs(allowed, count, min_offset, max_offset, seed)
