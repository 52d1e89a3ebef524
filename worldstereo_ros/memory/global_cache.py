"""The global point cache (WorldStereo's "global-geometric memory"): one fused point per voxel.

Storage: every occupied voxel of edge ``voxel_size_m`` holds one point, kept in arrays sorted by an
int64 voxel key (``pack_voxel_keys``), so a merge finds existing voxels with ``searchsorted`` and
inserts new ones with one O(M) interleave, without Python-level hashing. Per point (38 bytes):

==============  ==========  =======================================================================
attribute       dtype       meaning
==============  ==========  =======================================================================
key             int64       voxel key of ``floor(xyz / voxel_size_m)``
xyz             float32     fused position, world frame, metres
rgb             float16     fused colour in [0, 1] (half precision: 2^-11 steps, below 8-bit noise)
confidence      float32     fused confidence (see below)
count           int32       number of observations fused into the point
view_id         int32       id of the latest view that observed the voxel
==============  ==========  =======================================================================

Fusion rule: the points of one merge that fall into one voxel, and the point already stored there,
are averaged with their confidences as weights (position and colour); the confidence of the result
is the *sum* of the fused confidences, capped at ``max_confidence`` (so repeated observations make a
point harder to move, like TSDF weights); ``count`` adds the observations; ``view_id`` becomes the
merging view's id. Points with a non-positive or non-finite confidence, non-finite coordinates, or
outside ``[bounds_min, bounds_max]`` are dropped on merge.

Budget: after a merge that leaves more than ``max_points`` voxels, the lowest-confidence points are
evicted first and, among equal confidences, those farthest from the reference point: the ``viewpoint``
of the latest merge, or the centroid of its points when it gave none.

Alignment is not the cache's job: callers register new geometry first (the pipeline's render-based Sim(3),
:mod:`worldstereo_ros.pipeline.loop`). Files: :mod:`worldstereo_ros.io.cache_files` (``.npz``, lossless, and
PLY), through :meth:`GlobalCache.state` / :meth:`GlobalCache.from_state` / :meth:`GlobalCache.fuse_records`.

Threads: immutable snapshots swapped atomically. A writer (``merge``, ``fuse_records``, serialised by a
per-cache lock so no merge is lost) builds the whole new ``VoxelArrays`` (fusion and eviction) aside, never
writing into published tensors, and publishes it in one assignment; every query reads ``self._a`` once. Chosen
over a lock that readers take too because the properties hand tensors out, which no lock can guard once
returned. For several reads of one state (``radius_query`` then ``xyz``) query :meth:`GlobalCache.snapshot`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.projection import PointSet, equirect_depth_to_points
from worldstereo_ros.geometry.render import RenderOutput, render_points
from worldstereo_ros.memory.voxel_arrays import (
    AXIS_OFFSET,
    FIELDS,
    VoxelArrays,
    evict,
    fuse,
    pack_voxel_keys,
    radius_indices,
)


@dataclass
class MergeReport:
    """What one :meth:`GlobalCache.merge` did.

    Attributes:
        n_input: points given.
        n_dropped: points ignored (non-finite, confidence <= 0, or outside the bounds).
        n_fused: points fused into voxels that were already in the cache.
        n_new_voxels: voxels added.
        n_evicted: points evicted by the budget.
        n_points: points in the cache afterwards.
    """

    n_input: int
    n_dropped: int
    n_fused: int
    n_new_voxels: int
    n_evicted: int
    n_points: int


def _tensor(value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def _bounds(value, field: str) -> torch.Tensor | None:
    if value is None:
        return None
    t = torch.as_tensor(np.asarray(value, dtype=np.float64)).to(torch.float32)
    if t.shape != (3,) or not bool(torch.isfinite(t).all()):
        raise InputError(field, f"expected 3 finite numbers (metres), got {value!r}")
    return t


class GlobalCache:
    """Voxel-hashed store of fused, coloured points with confidence (see the module doc).

    Args:
        voxel_size_m: voxel edge, metres (> 0).
        max_points: point budget (>= 1); merges evict down to it.
        bounds_min, bounds_max: optional (3,) world-frame box, metres; points outside are dropped.
        device: torch device of the arrays.
        max_confidence: cap of the accumulated confidence of a point (> 0, default no cap).

    Keys cover 2^20 voxels on each side of the origin (10.5 km at 1 cm); points beyond raise InputError.
    The tensor properties are the cache's own arrays (``rgb`` excepted): treat them as read-only. A merge
    never writes into them but replaces them (module doc, Threads), so indices into them (``render``'s
    ``index``, ``radius_query``) hold for the arrays of the same :meth:`snapshot`.
    """

    def __init__(self, voxel_size_m: float = 0.01, max_points: int = 5_000_000, bounds_min=None,
                 bounds_max=None, device: str | torch.device = "cpu", max_confidence: float = math.inf):
        if isinstance(voxel_size_m, bool) or not isinstance(voxel_size_m, (int, float)) \
                or not 0 < voxel_size_m < math.inf:
            raise InputError("voxel_size_m", f"expected a finite float > 0, got {voxel_size_m!r}")
        if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) or max_points < 1:
            raise InputError("max_points", f"expected an int >= 1, got {max_points!r}")
        if not (isinstance(max_confidence, (int, float)) and max_confidence > 0):
            raise InputError("max_confidence", f"expected a float > 0, got {max_confidence!r}")
        self.voxel_size_m = float(voxel_size_m)
        self.max_points = int(max_points)
        self.max_confidence = float(max_confidence)
        self.device = torch.device(device)
        self.bounds_min = _bounds(bounds_min, "bounds_min")
        self.bounds_max = _bounds(bounds_max, "bounds_max")
        if self.bounds_min is not None and self.bounds_max is not None \
                and bool((self.bounds_min > self.bounds_max).any()):
            raise InputError("bounds_min", f"must not exceed bounds_max: {bounds_min} vs {bounds_max}")
        self.reference_point: torch.Tensor | None = None  # (3,) float32, world metres
        self._a = VoxelArrays.empty(self.device)
        self._write_lock = threading.Lock()

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return int(self._a.keys.shape[0])

    def __repr__(self) -> str:
        return (f"GlobalCache({len(self)} points, voxel_size_m={self.voxel_size_m}, "
                f"max_points={self.max_points}, device={self.device})")

    @property
    def keys(self) -> torch.Tensor:
        """(M,) int64 sorted voxel keys (:func:`pack_voxel_keys`)."""
        return self._a.keys

    @property
    def xyz(self) -> torch.Tensor:
        """(M, 3) float32 fused positions, world frame, metres (sorted by voxel key)."""
        return self._a.xyz

    @property
    def rgb(self) -> torch.Tensor:
        """(M, 3) float32 fused colours in [0, 1] (a new tensor, converted from half precision)."""
        return self._a.rgb.to(torch.float32)

    @property
    def rgb_half(self) -> torch.Tensor:
        """(M, 3) float16 fused colours as stored."""
        return self._a.rgb

    @property
    def confidence(self) -> torch.Tensor:
        """(M,) float32 accumulated confidence."""
        return self._a.confidence

    @property
    def count(self) -> torch.Tensor:
        """(M,) int32 number of fused observations."""
        return self._a.count

    @property
    def view_id(self) -> torch.Tensor:
        """(M,) int32 id of the latest view that observed each point."""
        return self._a.view_id

    def snapshot(self) -> "GlobalCache":
        """A cache sharing the current arrays (no copy, O(1)): every query on it sees one merge state, whatever
        other threads merge into this cache meanwhile. Merging into the snapshot leaves this cache alone."""
        other = self._empty_like()
        other._a = self._a
        return other

    def memory_bytes(self) -> int:
        """Bytes held by the point arrays (38 per point) plus the small fixed state."""
        fixed = sum(t.numel() * t.element_size() for t in (self.bounds_min, self.bounds_max,
                                                           self.reference_point) if t is not None)
        a = self._a
        return sum(t.numel() * t.element_size() for t in a.tensors()) + fixed

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_points(cls, xyz, rgb=None, confidence=None, view_id: int = 0, **kwargs) -> "GlobalCache":
        """A new cache (``kwargs`` as for the constructor) holding the fused ``xyz`` (N, 3) points.

        ``rgb`` (N, 3) in [0, 1] or None, ``confidence`` (N,) or None (1 each): see :meth:`merge`.
        """
        cache = cls(**kwargs)
        cache.merge(xyz, rgb=rgb, confidence=confidence, view_id=view_id)
        return cache

    def copy(self) -> "GlobalCache":
        """An independent copy (arrays cloned)."""
        other = self._empty_like()
        a = self._a
        other._a = VoxelArrays(*[t.clone() for t in a.tensors()])
        return other

    def init_from_panorama(self, rgb, depth, T_world_cam=None, view_id: int = 0) -> MergeReport:
        """Merge the points of an equirectangular RGB-D panorama (usually into an empty cache).

        Args:
            rgb: (H, W, 3) float colours in [0, 1], W = 2H.
            depth: (H, W) float32 distance along each pixel's ray, metres; 0 (or NaN) = unknown.
            T_world_cam: (4, 4) pose of the panorama's camera in the world (identity if None); its
                position becomes the eviction reference point.
            view_id: id recorded for the points.
        Returns:
            MergeReport of the merge.
        The back-projection is ``geometry.projection.equirect_depth_to_points`` (its docstring gives the
        longitude/latitude convention).
        """
        T = _tensor(np.eye(4) if T_world_cam is None else T_world_cam).to(torch.float64)
        if T.shape != (4, 4):
            raise InputError("T_world_cam", f"expected shape (4, 4), got {tuple(T.shape)}")
        points = equirect_depth_to_points(rgb, depth, T)
        return self.merge(points, view_id=view_id, viewpoint=T[:3, 3])

    def _empty_like(self) -> "GlobalCache":
        other = GlobalCache.__new__(GlobalCache)
        other.voxel_size_m, other.max_points, other.max_confidence = (self.voxel_size_m, self.max_points,
                                                                       self.max_confidence)
        other.device, other.bounds_min, other.bounds_max = self.device, self.bounds_min, self.bounds_max
        other.reference_point = self.reference_point
        other._a = VoxelArrays.empty(self.device)
        other._write_lock = threading.Lock()
        return other

    # ------------------------------------------------------------------ merge
    def _voxel_keys(self, xyz: torch.Tensor, voxel_size_m: float | None = None) -> torch.Tensor:
        ijk = torch.floor(xyz / (voxel_size_m or self.voxel_size_m)).to(torch.int64)
        if ijk.numel() and (int(ijk.min()) < -AXIS_OFFSET or int(ijk.max()) >= AXIS_OFFSET):
            limit = AXIS_OFFSET * (voxel_size_m or self.voxel_size_m)
            raise InputError("xyz", f"points must lie within +-{limit:.1f} m of the origin on each axis "
                                    f"at voxel_size_m={voxel_size_m or self.voxel_size_m}")
        return pack_voxel_keys(ijk)

    def _inputs(self, points, rgb, confidence) -> tuple[torch.Tensor, ...]:
        """(xyz (N,3), rgb (N,3), confidence (N,)) float32 and pixel (N,) int64 or None, on the cache's
        device, from a PointSet or from arrays."""
        pixel = None
        if hasattr(points, "xyz") and not isinstance(points, torch.Tensor):  # a PointSet
            if rgb is not None or confidence is not None:
                raise InputError("rgb", "pass either a PointSet or xyz/rgb/confidence arrays, not both")
            xyz, rgb, confidence = points.xyz, points.rgb, points.confidence
            pixel = getattr(points, "pixel", None)
        else:
            xyz = points
        xyz = _tensor(xyz)
        if xyz.ndim != 2 or xyz.shape[1] != 3 or not xyz.is_floating_point():
            raise InputError("xyz", f"expected float (N, 3), got {tuple(xyz.shape)} {xyz.dtype}")
        n = xyz.shape[0]
        if rgb is None:
            rgb = torch.full((n, 3), 0.5)
        rgb = _tensor(rgb)
        if rgb.shape != (n, 3) or not rgb.is_floating_point():
            raise InputError("rgb", f"expected float (N, 3) = ({n}, 3) in [0, 1], got {tuple(rgb.shape)} "
                                    f"{rgb.dtype}")
        confidence = _tensor(torch.ones(n) if confidence is None else confidence)
        if confidence.shape != (n,):
            raise InputError("confidence", f"expected shape ({n},), got {tuple(confidence.shape)}")
        if pixel is not None:
            pixel = _tensor(pixel)
            if pixel.shape != (n,) or pixel.is_floating_point():
                raise InputError("pixel", f"expected int (N,) = ({n},), got {tuple(pixel.shape)} "
                                          f"{pixel.dtype}")
            pixel = pixel.to(self.device, torch.int64)
        return (*(t.to(self.device, torch.float32) for t in (xyz, rgb, confidence)), pixel)

    def merge(self, points: PointSet | torch.Tensor | np.ndarray, rgb=None, confidence=None, view_id: int = 0,
              viewpoint=None) -> MergeReport:
        """Fuse new points into the cache (the module doc gives the fusion and eviction rules).

        Args:
            points: a PointSet (xyz, rgb, confidence used) or an (N, 3) float array of world points, m.
            rgb: (N, 3) colours in [0, 1] with an xyz array; None = mid grey.
            confidence: (N,) weights with an xyz array; None = 1 each.
            view_id: id recorded for the voxels these points touch.
            viewpoint: (3,) world position of the camera that saw the points; it becomes the reference
                point for eviction by distance.
        Returns:
            MergeReport.
        Raises:
            InputError: bad shapes or points beyond the key range.
        """
        if isinstance(view_id, bool) or not isinstance(view_id, (int, np.integer)) \
                or not -2**31 <= view_id < 2**31:
            raise InputError("view_id", f"expected an int32, got {view_id!r}")
        xyz, rgb, confidence, pixel = self._inputs(points, rgb, confidence)
        n_input = xyz.shape[0]
        # one row sum is non-finite exactly when some entry is (or the sum overflows: far out of range)
        keep = torch.isfinite(xyz.sum(dim=1) + rgb.sum(dim=1) + confidence) & (confidence > 0)
        if self.bounds_min is not None:
            keep &= (xyz >= self.bounds_min.to(self.device)).all(dim=1)
        if self.bounds_max is not None:
            keep &= (xyz <= self.bounds_max.to(self.device)).all(dim=1)
        if not bool(keep.all()):
            xyz, rgb, confidence = xyz[keep], rgb[keep], confidence[keep]
            pixel = None if pixel is None else pixel[keep]
        n_dropped = n_input - xyz.shape[0]
        reference = None
        if viewpoint is not None:
            reference = torch.as_tensor(np.asarray(viewpoint, dtype=np.float32)).to(self.device)
            if reference.shape != (3,) or not bool(torch.isfinite(reference).all()):
                raise InputError("viewpoint", f"expected 3 finite numbers, got {viewpoint!r}")
        elif xyz.shape[0]:
            reference = xyz.mean(dim=0)
        keys = self._voxel_keys(xyz)
        n = torch.ones(xyz.shape[0], dtype=torch.int32, device=self.device)
        view = torch.full((xyz.shape[0],), int(view_id), dtype=torch.int32, device=self.device)
        with self._write_lock:
            if reference is not None:
                self.reference_point = reference
            n_fused, n_new, n_evicted, n_points = self._fuse_and_publish(keys, xyz, rgb, confidence, n, view)
        return MergeReport(n_input, n_dropped, n_fused, n_new, n_evicted, n_points)

    def _fuse_and_publish(self, keys: torch.Tensor, xyz: torch.Tensor, rgb: torch.Tensor, conf: torch.Tensor,
                          count: torch.Tensor, view: torch.Tensor) -> tuple[int, int, int, int]:
        """Fuse per-point observations (:func:`~worldstereo_ros.memory.voxel_arrays.fuse`, which never writes
        into its input arrays), apply the budget, then publish the result in one assignment. Call with the
        write lock held. Returns (points fused into old voxels, new voxels, evicted, points afterwards)."""
        a, n_fused, n_new = fuse(self._a, keys, xyz, rgb, conf, count, view, self.max_confidence)
        a, n_evicted = evict(a, self.max_points, self.reference_point)
        self._a = a
        return n_fused, n_new, n_evicted, int(a.keys.shape[0])

    # ------------------------------------------------------------------ queries
    def render(self, K, T_cam_world, height: int, width: int, splat_px: int | str = 0,
               near_m: float = 1e-3) -> RenderOutput:
        """Render the cache into B views (see :func:`render_points`; ``"auto"`` uses the voxel size as
        the point spacing). ``index`` indexes the cache's arrays."""
        a = self._a
        return render_points(a.xyz, a.rgb.to(torch.float32), K, T_cam_world, height, width, splat_px=splat_px,
                             near_m=near_m, point_spacing_m=self.voxel_size_m)

    def crop(self, bounds_min, bounds_max) -> "GlobalCache":
        """A new cache with the points inside the box [bounds_min, bounds_max] (3,) metres (inclusive);
        same voxel size and budget, the box as its bounds."""
        lo, hi = _bounds(bounds_min, "bounds_min"), _bounds(bounds_max, "bounds_max")
        if lo is None or hi is None:
            raise InputError("bounds_min", "crop needs both bounds_min and bounds_max")
        a = self._a
        inside = ((a.xyz >= lo.to(self.device)) & (a.xyz <= hi.to(self.device))).all(dim=1)
        other = self._empty_like()
        other.bounds_min, other.bounds_max = lo, hi
        other._a = a.select(inside)
        return other

    def confidence_at(self, xyz) -> torch.Tensor:
        """Stored confidence (N,) float32 of the voxel each of ``xyz`` (N, 3) world metres falls in, 0 where
        the voxel is empty."""
        p = _tensor(xyz).to(self.device, torch.float32)
        if p.ndim != 2 or p.shape[1] != 3:
            raise InputError("xyz", f"expected shape (N, 3), got {tuple(p.shape)}")
        out = torch.zeros(p.shape[0], dtype=torch.float32, device=self.device)
        a = self._a
        m = int(a.keys.shape[0])
        if m == 0 or p.shape[0] == 0:
            return out
        keys = self._voxel_keys(p)
        pos = torch.searchsorted(a.keys, keys).clamp_(max=m - 1)
        found = a.keys[pos] == keys
        out[found] = a.confidence[pos[found]]
        return out

    def radius_query(self, center, radius_m: float) -> torch.Tensor:
        """Indices (K,) int64, ascending, of the points within ``radius_m`` of ``center`` (3,) metres."""
        c = torch.as_tensor(np.asarray(center, dtype=np.float64)).to(torch.float32)
        if c.shape != (3,) or not bool(torch.isfinite(c).all()):
            raise InputError("center", f"expected 3 finite numbers, got {center!r}")
        if not (isinstance(radius_m, (int, float)) and 0 <= radius_m < math.inf):
            raise InputError("radius_m", f"expected a finite float >= 0, got {radius_m!r}")
        return radius_indices(self._a, c.to(self.device), float(radius_m), self.voxel_size_m)

    def voxel_downsampled(self, voxel_size_m: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Confidence-weighted means on a coarser grid: (xyz (K, 3) float32, rgb (K, 3) float32).

        A ``voxel_size_m`` at or below the cache's own returns copies of ``xyz`` and ``rgb``.
        """
        if not (isinstance(voxel_size_m, (int, float)) and 0 < voxel_size_m < math.inf):
            raise InputError("voxel_size_m", f"expected a finite float > 0, got {voxel_size_m!r}")
        a = self._a
        rgb = a.rgb.to(torch.float32)
        if voxel_size_m <= self.voxel_size_m or a.keys.shape[0] == 0:
            return a.xyz.clone(), rgb
        _, inverse = torch.unique(self._voxel_keys(a.xyz, voxel_size_m), return_inverse=True)
        k = int(inverse.max()) + 1
        w = a.confidence[:, None]
        sums = torch.zeros((k, 7), dtype=torch.float32, device=self.device)
        sums.index_add_(0, inverse, torch.cat([a.xyz * w, rgb * w, w], dim=1))
        return sums[:, 0:3] / sums[:, 6:7], sums[:, 3:6] / sums[:, 6:7]

    # ------------------------------------------------------------------ state (for io.cache_files)
    def state(self) -> dict[str, np.ndarray | float | int | None]:
        """Every array and setting as numpy values (CPU copies); :meth:`from_state` restores the cache exactly.

        Keys: :data:`FIELDS` (the per-point arrays, see the module doc), ``voxel_size_m``, ``max_points``,
        ``max_confidence``, ``bounds_min``, ``bounds_max``, ``reference_point`` ((3,) float32 or None).
        """
        a = self._a
        out: dict = {name: t.cpu().numpy() for name, t in zip(FIELDS, a.tensors())}
        out.update(voxel_size_m=self.voxel_size_m, max_points=self.max_points, max_confidence=self.max_confidence,
                   bounds_min=None if self.bounds_min is None else self.bounds_min.numpy(),
                   bounds_max=None if self.bounds_max is None else self.bounds_max.numpy(),
                   reference_point=None if self.reference_point is None else self.reference_point.cpu().numpy())
        return out

    @classmethod
    def from_state(cls, state: dict, device: str | torch.device = "cpu") -> "GlobalCache":
        """The cache :meth:`state` described (arrays taken as they are: sorted unique keys, their dtypes)."""
        missing = [k for k in (*FIELDS, "voxel_size_m", "max_points", "max_confidence") if k not in state]
        if missing:
            raise InputError("state", f"missing entries: {', '.join(missing)}")
        cache = cls(float(state["voxel_size_m"]), int(state["max_points"]), state.get("bounds_min"),
                    state.get("bounds_max"), device, float(state["max_confidence"]))
        ref = state.get("reference_point")
        cache.reference_point = None if ref is None else torch.as_tensor(np.asarray(ref, np.float32)).to(cache.device)
        cache._a = VoxelArrays(*[torch.as_tensor(np.asarray(state[name])).to(cache.device) for name in FIELDS])
        n = len(cache)
        for name, t in zip(FIELDS, cache._a.tensors()):
            if t.shape[0] != n:
                raise InputError(name, f"expected {n} rows like keys, got {t.shape[0]}")
        return cache

    def fuse_records(self, xyz: torch.Tensor, rgb: torch.Tensor, confidence: torch.Tensor, count: torch.Tensor,
                     view_id: torch.Tensor) -> None:
        """Fuse stored point records (e.g. read from a file) as the module doc's fusion rule says, keeping each
        record's ``count`` and ``view_id``, then apply the budget.

        Args: xyz (N, 3) float32 world metres, rgb (N, 3) float in [0, 1], confidence (N,) float32,
            count (N,) int32, view_id (N,) int32. Records with non-finite xyz or confidence <= 0 are skipped.
        """
        keep = torch.isfinite(xyz).all(dim=1) & (confidence > 0)
        dev = self.device
        keys = self._voxel_keys(xyz[keep].to(dev))
        with self._write_lock:
            self._fuse_and_publish(keys, xyz[keep].to(dev, torch.float32), rgb[keep].to(dev, torch.float32),
                                   confidence[keep].to(dev, torch.float32), count[keep].to(dev, torch.int32),
                                   view_id[keep].to(dev, torch.int32))
