"""GenerationRequest -> the WorldStereo model's per-chunk inputs (before VAE/encoders), in numpy/torch.

The model makes exactly ``nframe`` (21) keyframes per call, frame 0 a real image. A request of N poses becomes:

- **chunks**: N <= nframe: one chunk holding every requested pose. N > nframe: chunks of ``nframe`` requested poses
  chained on the previous chunk's last pose (chunk c starts where chunk c-1 ended; its frame 0 is then that chunk's
  last *generated* frame, filled in by the backend).
- **pose superset**: each chunk's requested poses are placed at ``round(linspace(0, nframe-1, n))`` and the slots
  between them get poses interpolated between their requested neighbours (linear position, slerp rotation). Those
  inserted frames have no cache render in the request: they get the nearest requested frame's covered pixels
  re-rendered at the inserted pose (z-buffered point splat), the rest are holes.
- **bucket**: the frames are resized to the ``scale_map`` bucket nearest the request's aspect ratio; K is rescaled
  with pixel centres at integers (``c' = (c + 0.5) s - 0.5``, ``f' = f s``).
- **colours and masks**: render colours in [0, 1] with holes mid-grey (0.5, i.e. 0 in the model's [-1, 1]);
  ``render_mask`` 1 = hole; frame 0 is the real start image with mask 0.
- **references**: per requested frame at superset slot p >= 1 its best-scoring reference, deduplicated by
  ``keyframe_id`` (first slot wins), ``ref_index = p - 1``, at most ``max_references`` (highest scores kept);
  a chunk with none uses its start image at ``ref_index`` 0 (the memory model needs one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.base import GenerationRequest, Reference
from worldstereo_ros.geometry.poses import interpolate_poses
from worldstereo_ros.geometry.projection import depth_to_points
from worldstereo_ros.geometry.render import render_points

HOLE_GREY = 0.5


@dataclass
class ChunkPlan:
    """Which requested frames a chunk makes and where they sit in its ``nframe`` slots.

    Attributes:
        requested: (n,) indices into the request's frames, ascending; ``requested[0]`` is the start pose.
        slots: (n,) superset slot of each requested frame; ``slots[0] == 0``, ``slots[-1] == nframe - 1`` when n > 1.
    """

    requested: np.ndarray
    slots: np.ndarray


@dataclass
class ChunkInputs:
    """Model inputs of one chunk at the bucket size (numpy; the backend encodes them).

    Attributes:
        K: (F, 3, 3) float64 bucket intrinsics. T_world_cam: (F, 4, 4) float64 superset poses.
        render_rgb: (F, Hb, Wb, 3) float32 in [0, 1], holes grey, frame 0 = ``start_rgb``.
        render_mask: (F, Hb, Wb) float32, 1 = hole, frame 0 = 0.
        start_rgb: (Hb, Wb, 3) float32 in [0, 1] (None for a chained chunk until the previous one is generated).
        ref_rgb: (R, Hb, Wb, 3) float32; ref_T_world_cam: (R, 4, 4); ref_index: (R,) int64 in [0, F-2].
        plan: the chunk's slots.
    """

    K: np.ndarray
    T_world_cam: np.ndarray
    render_rgb: np.ndarray
    render_mask: np.ndarray
    start_rgb: np.ndarray | None
    ref_rgb: np.ndarray
    ref_T_world_cam: np.ndarray
    ref_index: np.ndarray
    plan: ChunkPlan
    notes: list[str] = field(default_factory=list)


def nearest_bucket(height: int, width: int, buckets: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """The (height, width) bucket whose aspect ratio is nearest (in log) to ``width / height``."""
    if not buckets:
        raise InputError("scale_map", "no resolution bucket configured")
    aspect = np.log(width / height)
    return min(buckets, key=lambda b: (abs(np.log(b[1] / b[0]) - aspect), -b[0] * b[1]))


def rescale_K(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """(..., 3, 3) intrinsics of an image resized by (sx, sy), pixel centres at integer coordinates."""
    K = np.array(K, dtype=np.float64, copy=True)
    K[..., 0, 0] *= sx
    K[..., 0, 1] *= sx
    K[..., 1, 1] *= sy
    K[..., 0, 2] = (K[..., 0, 2] + 0.5) * sx - 0.5
    K[..., 1, 2] = (K[..., 1, 2] + 0.5) * sy - 0.5
    return K


def resize(img: np.ndarray, height: int, width: int, nearest: bool = False) -> np.ndarray:
    """(H, W[, C]) image resized with OpenCV (area when shrinking, linear when growing, nearest for masks)."""
    if img.shape[:2] == (height, width):
        return img.copy()
    shrink = height * width < img.shape[0] * img.shape[1]
    mode = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.resize(img, (width, height), interpolation=mode)


def plan_chunks(n: int, nframe: int) -> list[ChunkPlan]:
    """Chunks of at most ``nframe`` requested frames, each starting at the previous chunk's last frame."""
    if n < 1:
        raise InputError("T_world_cam", "a trajectory needs at least one frame")
    if nframe < 2:
        raise InputError("nframe", f"expected >= 2, got {nframe}")
    plans, start = [], 0
    while True:
        stop = min(n, start + nframe)
        idx = np.arange(start, stop)
        slots = np.round(np.linspace(0, nframe - 1, len(idx))).astype(np.int64)  # one frame: slot 0
        plans.append(ChunkPlan(idx, slots))
        if stop >= n:
            return plans
        start = stop - 1


def superset_poses(T_req: np.ndarray, plan: ChunkPlan, nframe: int) -> np.ndarray:
    """(nframe, 4, 4) poses: requested poses at their slots, interpolated ones between (last pose repeated after
    the end when the chunk holds a single frame)."""
    T = np.repeat(np.asarray(T_req[plan.requested[-1]], dtype=np.float64)[None], nframe, axis=0)
    for j, slot in enumerate(plan.slots):
        T[slot] = T_req[plan.requested[j]]
        if j + 1 < len(plan.slots):
            gap = plan.slots[j + 1] - slot
            if gap > 1:
                alphas = torch.arange(1, gap, dtype=torch.float64) / gap
                T[slot + 1: plan.slots[j + 1]] = interpolate_poses(
                    torch.as_tensor(T_req[plan.requested[j]]), torch.as_tensor(T_req[plan.requested[j + 1]]),
                    alphas).numpy()
    return T


def _rerender(rgb: np.ndarray, depth: np.ndarray, mask: np.ndarray, K_src: np.ndarray, T_src: np.ndarray,
              K_dst: np.ndarray, T_dst: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A covered frame's pixels drawn at another pose: (rgb (h, w, 3), covered (h, w) bool)."""
    d = np.where(mask, depth, 0).astype(np.float32)
    pts = depth_to_points(torch.as_tensor(d), torch.as_tensor(K_src), torch.as_tensor(T_src),
                          rgb=torch.as_tensor(rgb.astype(np.float32)), drop_edges=False)
    if pts.xyz.shape[0] == 0:
        return np.full((h, w, 3), HOLE_GREY, np.float32), np.zeros((h, w), bool)
    out = render_points(pts.xyz, pts.rgb, torch.as_tensor(K_dst, dtype=torch.float32),
                        torch.linalg.inv(torch.as_tensor(T_dst, dtype=torch.float32)), h, w, splat_px=1)
    return out.rgb[0].numpy(), out.mask[0].numpy()


def select_references(refs_per_frame: list[list[Reference]], plan: ChunkPlan,
                      max_references: int) -> tuple[list[Reference], np.ndarray]:
    """Best reference per requested frame at slot >= 1, deduplicated by keyframe, <= ``max_references``.

    Returns (references, ref_index (R,) int64 = slot - 1 of the first frame that retrieved each one).
    """
    chosen: dict[int, tuple[Reference, int]] = {}
    for j, slot in enumerate(plan.slots):
        refs = refs_per_frame[plan.requested[j]]
        if slot < 1 or not refs:
            continue
        best = max(refs, key=lambda r: r.score)
        if best.keyframe_id not in chosen:
            chosen[best.keyframe_id] = (best, int(slot) - 1)
    items = list(chosen.values())
    if len(items) > max_references:
        # Keep the best-scoring ones, then restore slot order (deterministic).
        items = sorted(sorted(items, key=lambda it: -it[0].score)[:max_references], key=lambda it: it[1])
    return [it[0] for it in items], np.array([it[1] for it in items], dtype=np.int64)


def chunk_inputs(request: GenerationRequest, plan: ChunkPlan, nframe: int, bucket: tuple[int, int],
                 start_rgb: np.ndarray | None, max_references: int = 8) -> ChunkInputs:
    """Everything of one chunk at the bucket size (module doc). ``start_rgb`` at the request's size or None."""
    hb, wb = bucket
    sy, sx = hb / request.height, wb / request.width
    K_req = rescale_K(request.K, sx, sy)
    T = superset_poses(request.T_world_cam, plan, nframe)
    slot_of = {int(s): int(r) for s, r in zip(plan.slots, plan.requested)}
    K = np.empty((nframe, 3, 3))
    render = np.empty((nframe, hb, wb, 3), np.float32)
    hole = np.empty((nframe, hb, wb), np.float32)
    for slot in range(nframe):
        if slot in slot_of:
            i = slot_of[slot]
            K[slot] = K_req[i]
            rgb = resize(np.asarray(request.cond_rgb[i], np.float32), hb, wb)
            covered = resize(np.asarray(request.cond_mask[i], np.uint8), hb, wb, nearest=True).astype(bool)
        else:
            # Nearest requested frame (ties: the earlier one) re-rendered at the inserted pose.
            src_slot = min(slot_of, key=lambda s: (abs(s - slot), s))
            i = slot_of[src_slot]
            K[slot] = K_req[i]
            rgb, covered = _rerender(np.asarray(request.cond_rgb[i]), np.asarray(request.cond_depth[i]),
                                     np.asarray(request.cond_mask[i], bool), request.K[i], request.T_world_cam[i],
                                     K[slot], T[slot], hb, wb)
        render[slot] = np.where(covered[..., None], rgb, HOLE_GREY)
        hole[slot] = (~covered).astype(np.float32)
    start = None
    if start_rgb is not None:
        start = resize(np.asarray(start_rgb, np.float32), hb, wb)
        render[0] = start
    hole[0] = 0.0
    refs, ref_index = select_references(request.references, plan, max_references)
    if refs:
        ref_rgb = np.stack([resize(np.asarray(r.rgb, np.float32), hb, wb) for r in refs])
        ref_T = np.stack([np.asarray(r.T_world_cam, np.float64) for r in refs])
    else:
        ref_rgb = np.empty((0, hb, wb, 3), np.float32)
        ref_T = np.empty((0, 4, 4))
    return ChunkInputs(K=K, T_world_cam=T, render_rgb=render, render_mask=hole, start_rgb=start, ref_rgb=ref_rgb,
                       ref_T_world_cam=ref_T, ref_index=ref_index, plan=plan)
