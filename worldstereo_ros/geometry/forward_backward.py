"""Forward–backward disocclusion holes: fill problems with a perfectly registered answer.

SpatialDreamer's depth-based view generation (DVG) makes training and test data without labels: take
frame ``i`` with metric depth, move to a partner pose ``j`` and back. The pixels of ``i`` whose surface
point is hidden in ``j`` (behind a nearer surface of the same frame) or falls outside ``j``'s image are
exactly what a generator standing at ``j`` would have to imagine when returning to ``i``. Frame ``i``
itself is the answer, in the same camera, so a fill is scored without any registration error.

Visibility is decided by a z-test, not by winner-takes-all resampling: the frame's points are drawn
into ``j`` with crack-closing footprints (:func:`~worldstereo_ros.geometry.render.render_points`,
``splat_px="auto"``), and a point counts as seen from ``j`` when its depth there is within
``depth_tolerance`` (relative) of the z-buffer. Several points sharing one pixel of ``j`` when it is
farther away therefore stay visible, so the holes are disocclusions and out-of-view regions only.

Depth is float32 metres along the optical axis, 0 = unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.poses import invert
from worldstereo_ros.geometry.projection import backproject_depth, project_points
from worldstereo_ros.geometry.render import render_points


@dataclass
class ForwardBackward:
    """One forward–backward fill problem in the camera of frame ``i``.

    Attributes:
        rgb: (H, W, 3) float32 in [0, 1]: frame i with the holes set to 0 (the condition).
        depth: (H, W) float32 metres: frame i's depth with the holes set to 0.
        hole: (H, W) bool: valid pixels of frame i that the round trip through pose j lost.
        valid: (H, W) bool: pixels of frame i with known depth (where a fill can be scored in depth).
    """

    rgb: np.ndarray
    depth: np.ndarray
    hole: np.ndarray
    valid: np.ndarray

    @property
    def hole_fraction(self) -> float:
        """Fraction of the image's pixels in the hole."""
        return float(self.hole.mean())


def forward_backward_holes(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, T_world_i: np.ndarray,
                           T_world_j: np.ndarray, depth_tolerance: float = 0.03,
                           max_splat_px: int = 8) -> ForwardBackward:
    """The disocclusion holes of frame ``i`` seen from pose ``j`` and back.

    Args:
        rgb: (H, W, 3) float in [0, 1], frame i. depth: (H, W) metres, 0 or non-finite = unknown.
        K: (3, 3) pinhole intrinsics shared by both poses, pixels.
        T_world_i, T_world_j: (4, 4) camera-to-world poses (OpenCV optical axes), metres.
        depth_tolerance: relative depth margin within which a point still counts as visible from j.
        max_splat_px: largest footprint half-width of the crack-closing render into j.
    Returns:
        :class:`ForwardBackward` in frame i's camera. Pixels with unknown depth are never holes (nothing
        says where their surface is), so score fills on ``hole`` and depth on ``hole & valid``.
    Raises:
        InputError: on shapes that disagree or a non-positive tolerance.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise InputError("depth", f"expected shape (H, W), got {depth.shape}")
    h, w = depth.shape
    if rgb.shape != (h, w, 3):
        raise InputError("rgb", f"expected shape ({h}, {w}, 3) to match depth, got {rgb.shape}")
    for name, T in (("T_world_i", T_world_i), ("T_world_j", T_world_j)):
        if np.asarray(T).shape != (4, 4):
            raise InputError(name, f"expected shape (4, 4), got {np.asarray(T).shape}")
    if np.asarray(K).shape != (3, 3):
        raise InputError("K", f"expected shape (3, 3), got {np.asarray(K).shape}")
    if not depth_tolerance > 0:
        raise InputError("depth_tolerance", f"must be > 0, got {depth_tolerance}")

    valid = np.isfinite(depth) & (depth > 0)
    K_t = torch.as_tensor(np.asarray(K), dtype=torch.float64)
    T_i = torch.as_tensor(np.asarray(T_world_i), dtype=torch.float64)
    T_j_world = invert(torch.as_tensor(np.asarray(T_world_j), dtype=torch.float64))
    pointmap = backproject_depth(torch.from_numpy(np.where(valid, depth, 0.0)).double(), K_t, T_i)
    flat = torch.from_numpy(valid.reshape(-1))
    xyz = pointmap.reshape(-1, 3)[flat]

    # Each point's spacing to its image neighbour is depth / focal: the footprint that closes cracks in j.
    focal = float(max(K[0][0], K[1][1]))
    spacing = torch.from_numpy(depth[valid].astype(np.float32) / focal)
    drawn = render_points(xyz.float(), None, K_t.float(), T_j_world.float(), h, w, splat_px="auto",
                          point_spacing_m=spacing, max_splat_px=max_splat_px)
    zbuf = drawn.depth[0]

    uv, z = project_points(xyz, K_t, T_j_world)
    col = torch.round(uv[:, 0]).long()
    row = torch.round(uv[:, 1]).long()
    inside = (z > 1e-3) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    seen = torch.zeros_like(inside)
    idx = torch.nonzero(inside)[:, 0]
    front = zbuf[row[idx], col[idx]].double()
    seen[idx] = (front > 0) & (z[idx] <= front * (1.0 + depth_tolerance))

    hole = np.zeros(h * w, dtype=bool)
    hole[np.flatnonzero(valid.reshape(-1))] = ~seen.numpy()
    hole = hole.reshape(h, w)
    return ForwardBackward(rgb=np.where(hole[..., None], 0.0, rgb).astype(np.float32),
                           depth=np.where(hole, 0.0, np.where(valid, depth, 0.0)).astype(np.float32),
                           hole=hole, valid=valid)


def sample_pairs(frames: range | list[int], count: int, min_offset: int = 5, max_offset: int = 60,
                 seed: int = 0) -> list[tuple[int, int]]:
    """A fixed, seeded set of (i, j) frame pairs with ``min_offset <= |j - i| <= max_offset``.

    Both frames of every pair come from ``frames``, so a tuning split never leaks into a report split.
    Args:
        frames: the frame indices allowed (e.g. ``range(200, 300)``).
        count: number of pairs. min_offset, max_offset: bounds of |j - i| in frames.
        seed: numpy seed; the same arguments always give the same pairs.
    Returns:
        ``count`` pairs (i, j), in draw order (duplicates are possible when few pairs exist).
    Raises:
        InputError: when no pair satisfies the bounds within ``frames``.
    """
    allowed = sorted(set(int(f) for f in frames))
    if count < 1:
        raise InputError("count", f"must be >= 1, got {count}")
    if not 1 <= min_offset <= max_offset:
        raise InputError("min_offset", f"need 1 <= min_offset <= max_offset, got {min_offset}, {max_offset}")
    members = set(allowed)
    candidates = [(i, i + s * d) for i in allowed for d in range(min_offset, max_offset + 1) for s in (1, -1)
                  if i + s * d in members]
    if not candidates:
        raise InputError("frames", f"no pair {min_offset}..{max_offset} frames apart among {len(allowed)} frames")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(candidates), size=count, replace=count > len(candidates))
    return [candidates[int(k)] for k in picks]
