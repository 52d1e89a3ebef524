"""The storage of the global cache: int64 voxel keys and the per-point arrays sorted by them, and the one
fusion and eviction steps that make new arrays from them (rules in :mod:`worldstereo_ros.memory.global_cache`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Bits per axis of a voxel key: 2^20 voxels on each side of the origin.
AXIS_BITS = 21
AXIS_OFFSET = 1 << (AXIS_BITS - 1)
AXIS_MASK = (1 << AXIS_BITS) - 1
#: The per-point arrays, in the order :class:`VoxelArrays` holds them.
FIELDS = ("keys", "xyz", "rgb", "confidence", "count", "view_id")


def pack_voxel_keys(ijk: torch.Tensor) -> torch.Tensor:
    """Pack integer voxel coordinates (*, 3) int64 into int64 keys (*,), x-major (sorting keys sorts by
    x, then y, then z). Each coordinate must lie in [-2^20, 2^20).
    """
    ijk = ijk + AXIS_OFFSET
    return (ijk[..., 0] << (2 * AXIS_BITS)) | (ijk[..., 1] << AXIS_BITS) | ijk[..., 2]


def unpack_voxel_keys(keys: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_voxel_keys`: (*,) int64 keys to (*, 3) int64 voxel coordinates."""
    return torch.stack([(keys >> (2 * AXIS_BITS)) & AXIS_MASK, (keys >> AXIS_BITS) & AXIS_MASK,
                        keys & AXIS_MASK], dim=-1) - AXIS_OFFSET


@dataclass
class VoxelArrays:
    """The per-point arrays of a cache (:data:`FIELDS`), sorted by voxel key."""

    keys: torch.Tensor  # (M,) int64, sorted, unique
    xyz: torch.Tensor  # (M, 3) float32
    rgb: torch.Tensor  # (M, 3) float16
    confidence: torch.Tensor  # (M,) float32
    count: torch.Tensor  # (M,) int32
    view_id: torch.Tensor  # (M,) int32

    @classmethod
    def empty(cls, device: torch.device) -> "VoxelArrays":
        return cls(torch.empty(0, dtype=torch.int64, device=device),
                   torch.empty((0, 3), dtype=torch.float32, device=device),
                   torch.empty((0, 3), dtype=torch.float16, device=device),
                   torch.empty(0, dtype=torch.float32, device=device),
                   torch.empty(0, dtype=torch.int32, device=device),
                   torch.empty(0, dtype=torch.int32, device=device))

    def tensors(self) -> list[torch.Tensor]:
        return [getattr(self, name) for name in FIELDS]

    def select(self, index_or_mask: torch.Tensor) -> "VoxelArrays":
        return VoxelArrays(*[t[index_or_mask] for t in self.tensors()])


def fuse(a: VoxelArrays, keys: torch.Tensor, xyz: torch.Tensor, rgb: torch.Tensor, conf: torch.Tensor,
         count: torch.Tensor, view: torch.Tensor, max_confidence: float) -> tuple[VoxelArrays, int, int]:
    """Fuse per-point observations into ``a``: (new arrays, points fused into old voxels, new voxels).

    ``keys`` (N,) int64 voxel keys of ``xyz`` (N, 3) float32 metres; ``rgb`` (N, 3) float32 in [0, 1];
    ``conf`` (N,) float32 > 0; ``count`` (N,) int32 observations per input point, ``view`` (N,) int32 view ids
    (the largest id of a voxel's new points wins within one call). Confidences are capped at
    ``max_confidence``. ``a`` is never written to (readers on other threads may hold it, see
    :mod:`worldstereo_ros.memory.global_cache`): the result is new arrays, sharing unchanged ones with ``a``.
    """
    if keys.numel() == 0:
        return a, 0, 0
    # 1. reduce the new points per voxel: confidence-weighted sums
    ukeys, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    u = ukeys.shape[0]
    sums = torch.zeros((u, 7), dtype=torch.float32, device=keys.device)
    sums.index_add_(0, inverse, torch.cat([xyz * conf[:, None], rgb * conf[:, None], conf[:, None]], 1))
    ucount = torch.zeros(u, dtype=torch.int32, device=keys.device).index_add_(0, inverse, count)
    uview = torch.full((u,), -2**31, dtype=torch.int32, device=keys.device)
    uview.scatter_reduce_(0, inverse, view, "amax")

    # 2. voxels already stored: weighted mean with the stored point
    m = a.keys.shape[0]
    pos = torch.searchsorted(a.keys, ukeys)
    found = a.keys[pos.clamp(max=max(m - 1, 0))] == ukeys if m else torch.zeros(u, dtype=torch.bool,
                                                                                    device=keys.device)
    n_fused = 0
    if bool(found.any()):
        # copy-on-write: the published arrays stay as they were (``keys`` does not change here)
        a = VoxelArrays(a.keys, *[t.clone() for t in a.tensors()[1:]])
        rows = pos[found]
        s = sums[found]
        c_old = a.confidence[rows]
        total = c_old + s[:, 6]
        a.xyz[rows] = (a.xyz[rows] * c_old[:, None] + s[:, 0:3]) / total[:, None]
        a.rgb[rows] = ((a.rgb[rows].to(torch.float32) * c_old[:, None] + s[:, 3:6])
                       / total[:, None]).clamp_(0.0, 1.0).to(torch.float16)
        a.confidence[rows] = total.clamp_(max=max_confidence)
        c = ucount[found]
        a.count[rows] = (a.count[rows].to(torch.int64) + c).clamp_(max=2**31 - 1).to(torch.int32)
        a.view_id[rows] = uview[found]
        n_fused = int(c.sum())

    # 3. new voxels: interleave them into the sorted arrays in one gather per array
    new = ~found
    k = int(new.sum())
    if k == 0:
        return a, n_fused, 0
    s = sums[new]
    c_new = s[:, 6]
    added = VoxelArrays(ukeys[new], s[:, 0:3] / c_new[:, None],
                    (s[:, 3:6] / c_new[:, None]).clamp_(0.0, 1.0).to(torch.float16),
                    c_new.clamp(max=max_confidence), ucount[new], uview[new])
    if m == 0:
        return added, n_fused, k
    # output slot of new voxel j is pos_j + j; old rows fill the remaining slots in order
    is_new = torch.zeros(m + k, dtype=torch.bool, device=keys.device)
    is_new[pos[new] + torch.arange(k, device=keys.device)] = True
    n_before = torch.cumsum(is_new, 0)
    source = torch.where(is_new, n_before + (m - 1), torch.arange(m + k, device=keys.device) - n_before)
    out = VoxelArrays(*[torch.cat([old, extra]).index_select(0, source)
                        for old, extra in zip(a.tensors(), added.tensors())])
    return out, n_fused, k


def evict(a: VoxelArrays, max_points: int, reference: torch.Tensor | None) -> tuple[VoxelArrays, int]:
    """``a`` without the points over ``max_points`` (lowest confidence first, then, among equal confidences,
    farthest from ``reference`` (3,) float32 world metres, the origin if None), and how many were dropped.
    ``a`` is not written to."""
    excess = int(a.keys.shape[0]) - max_points
    if excess <= 0:
        return a, 0
    conf = a.confidence
    threshold = torch.kthvalue(conf.cpu(), excess).values.to(conf.device)
    drop = conf < threshold
    ties = torch.nonzero(conf == threshold).squeeze(1)
    still = excess - int(drop.sum())
    if still > 0:
        ref = reference if reference is not None else torch.zeros(3)
        dist = (a.xyz[ties] - ref.to(conf.device)).norm(dim=1)
        drop[ties[torch.topk(dist, still).indices]] = True
    return a.select(~drop), excess


def radius_indices(a: VoxelArrays, center: torch.Tensor, radius_m: float, voxel_size_m: float) -> torch.Tensor:
    """Indices (K,) int64, ascending, of the points of ``a`` within ``radius_m`` of ``center`` (3,) float32
    metres, on ``a``'s device; ``voxel_size_m`` is the edge the keys were made with."""
    # keys sort by x first: only the slab of voxels whose x overlaps the sphere needs a check (one
    # voxel wider on each side, for float32 rounding at voxel borders)
    x_lo = math.floor((float(center[0]) - radius_m) / voxel_size_m) + AXIS_OFFSET - 1
    x_hi = math.floor((float(center[0]) + radius_m) / voxel_size_m) + AXIS_OFFSET + 2
    if x_lo >= (1 << AXIS_BITS) or x_hi <= 0:
        return torch.empty(0, dtype=torch.int64, device=a.keys.device)
    slab = torch.tensor([max(x_lo, 0), min(x_hi, (1 << AXIS_BITS) - 1)], device=a.keys.device)
    start, stop = torch.searchsorted(a.keys, slab << (2 * AXIS_BITS)).tolist()
    if x_hi >= (1 << AXIS_BITS):
        stop = int(a.keys.shape[0])
    d2 = (a.xyz[start:stop] - center).square().sum(dim=1)
    return torch.nonzero(d2 <= radius_m * radius_m).squeeze(1) + start
