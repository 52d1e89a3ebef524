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

Alignment (``merge(align="se3" | "sim3")``): the new points are first registered to the cache, by ICP
against the nearest cached points, optionally started from render-based matches (``align_view``).

Files: ``save``/``load`` write every array to ``.npz`` (lossless); ``save_ply``/``load_ply`` go through
Open3D's tensor point cloud (xyz float32, colours as 8-bit, plus ``confidence``, ``count`` and
``view_id`` attributes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.align import robust_umeyama
from worldstereo_ros.geometry.render import RenderOutput, render_points

if TYPE_CHECKING:
    from worldstereo_ros.geometry.projection import PointSet

_AXIS_BITS = 21
_AXIS_OFFSET = 1 << (_AXIS_BITS - 1)
_AXIS_MASK = (1 << _AXIS_BITS) - 1
_NPZ_FORMAT = 1
_FIELDS = ("keys", "xyz", "rgb", "confidence", "count", "view_id")


def pack_voxel_keys(ijk: torch.Tensor) -> torch.Tensor:
    """Pack integer voxel coordinates (*, 3) int64 into int64 keys (*,), x-major (sorting keys sorts by
    x, then y, then z). Each coordinate must lie in [-2^20, 2^20).
    """
    ijk = ijk + _AXIS_OFFSET
    return (ijk[..., 0] << (2 * _AXIS_BITS)) | (ijk[..., 1] << _AXIS_BITS) | ijk[..., 2]


def unpack_voxel_keys(keys: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_voxel_keys`: (*,) int64 keys to (*, 3) int64 voxel coordinates."""
    return torch.stack([(keys >> (2 * _AXIS_BITS)) & _AXIS_MASK, (keys >> _AXIS_BITS) & _AXIS_MASK,
                        keys & _AXIS_MASK], dim=-1) - _AXIS_OFFSET


def _rodrigues(omega: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (3, 3) of the rotation vector ``omega`` (3,) (axis * angle, radians)."""
    angle = float(omega.norm())
    if angle < 1e-12:
        return torch.eye(3, dtype=omega.dtype)
    k = omega / angle
    K = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]], dtype=omega.dtype)
    return torch.eye(3, dtype=omega.dtype) + math.sin(angle) * K + (1.0 - math.cos(angle)) * K @ K


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
        T_cache_new: (4, 4) float64 transform applied to the new points before fusing (``align``),
            or None.
        n_inliers: correspondences that supported the alignment (0 without alignment).
        alignment_rms_m: RMS residual of those correspondences after alignment (point-to-plane
            distance), metres (nan without).
    """

    n_input: int
    n_dropped: int
    n_fused: int
    n_new_voxels: int
    n_evicted: int
    n_points: int
    T_cache_new: torch.Tensor | None = None
    n_inliers: int = 0
    alignment_rms_m: float = math.nan


@dataclass
class _Arrays:
    keys: torch.Tensor  # (M,) int64, sorted, unique
    xyz: torch.Tensor  # (M, 3) float32
    rgb: torch.Tensor  # (M, 3) float16
    confidence: torch.Tensor  # (M,) float32
    count: torch.Tensor  # (M,) int32
    view_id: torch.Tensor  # (M,) int32

    @classmethod
    def empty(cls, device: torch.device) -> "_Arrays":
        return cls(torch.empty(0, dtype=torch.int64, device=device),
                   torch.empty((0, 3), dtype=torch.float32, device=device),
                   torch.empty((0, 3), dtype=torch.float16, device=device),
                   torch.empty(0, dtype=torch.float32, device=device),
                   torch.empty(0, dtype=torch.int32, device=device),
                   torch.empty(0, dtype=torch.int32, device=device))

    def tensors(self) -> list[torch.Tensor]:
        return [getattr(self, name) for name in _FIELDS]

    def select(self, index_or_mask: torch.Tensor) -> "_Arrays":
        return _Arrays(*[t[index_or_mask] for t in self.tensors()])


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
    The tensor properties are the cache's own arrays (``rgb`` excepted): treat them as read-only; the next
    merge updates them in place or replaces them, and indices into them (``render``'s ``index``,
    ``radius_query``) hold until then.
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
        self._a = _Arrays.empty(self.device)

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

    def memory_bytes(self) -> int:
        """Bytes held by the point arrays (38 per point) plus the small fixed state."""
        fixed = sum(t.numel() * t.element_size() for t in (self.bounds_min, self.bounds_max,
                                                           self.reference_point) if t is not None)
        return sum(t.numel() * t.element_size() for t in self._a.tensors()) + fixed

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
        other._a = _Arrays(*[t.clone() for t in self._a.tensors()])
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
        from worldstereo_ros.geometry.projection import equirect_depth_to_points

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
        other._a = _Arrays.empty(self.device)
        return other

    # ------------------------------------------------------------------ merge
    def _voxel_keys(self, xyz: torch.Tensor, voxel_size_m: float | None = None) -> torch.Tensor:
        ijk = torch.floor(xyz / (voxel_size_m or self.voxel_size_m)).to(torch.int64)
        if ijk.numel() and (int(ijk.min()) < -_AXIS_OFFSET or int(ijk.max()) >= _AXIS_OFFSET):
            limit = _AXIS_OFFSET * (voxel_size_m or self.voxel_size_m)
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
              align: str | None = None, viewpoint=None, align_view: tuple | None = None,
              align_max_distance_m: float = 0.1, align_iterations: int = 50, align_max_points: int = 20_000,
              seed: int = 0) -> MergeReport:
        """Fuse new points into the cache (the module doc gives the fusion and eviction rules).

        Args:
            points: a PointSet (xyz, rgb, confidence used) or an (N, 3) float array of world points, m.
            rgb: (N, 3) colours in [0, 1] with an xyz array; None = mid grey.
            confidence: (N,) weights with an xyz array; None = 1 each.
            view_id: id recorded for the voxels these points touch.
            align: None, ``"se3"`` or ``"sim3"``: first estimate ``T_cache_new`` and apply it to the new
                points. Matches are nearest cached points within ``align_max_distance_m`` (ICP: coarse
                :func:`robust_umeyama` steps, then point-to-plane steps; see ``_align``), which needs the
                points to start within about that distance of their place.
            viewpoint: (3,) world position of the camera that saw the points; it becomes the reference
                point for eviction by distance.
            align_view: ``(K (3,3), T_world_cam (4,4), height, width)`` of the camera whose image the
                points come from (a PointSet's ``pixel`` indexes that image). Then the alignment starts
                from render-based matches: the cache is rendered into that camera and each new point is
                paired with the cached point drawn at its pixel, solved with :func:`robust_umeyama`
                (inliers within ``align_max_distance_m``). This finds large offsets and scale errors
                (e.g. a generated depth map with the wrong scale) that ICP alone cannot reach.
            align_max_distance_m: largest correspondence distance of the alignment, metres.
            align_iterations: at most this many ICP iterations.
            align_max_points: new points sampled for the alignment.
            seed: seed of the alignment's sampling.
        Returns:
            MergeReport.
        Raises:
            InputError: bad shapes, unknown ``align``, points beyond the key range, or an alignment
                without enough correspondences.
        """
        if align not in (None, "se3", "sim3"):
            raise InputError("align", f"expected None, 'se3' or 'sim3', got {align!r}")
        if isinstance(view_id, bool) or not isinstance(view_id, (int, np.integer)) \
                or not -2**31 <= view_id < 2**31:
            raise InputError("view_id", f"expected an int32, got {view_id!r}")
        xyz, rgb, confidence, pixel = self._inputs(points, rgb, confidence)
        if align_view is not None and (align is None or pixel is None):
            raise InputError("align_view", "needs align='se3' or 'sim3' and points with pixel indices "
                                           "(a PointSet)")
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
        if viewpoint is not None:
            vp = torch.as_tensor(np.asarray(viewpoint, dtype=np.float32)).to(self.device)
            if vp.shape != (3,) or not bool(torch.isfinite(vp).all()):
                raise InputError("viewpoint", f"expected 3 finite numbers, got {viewpoint!r}")
            self.reference_point = vp

        T, n_inliers, rms = None, 0, math.nan
        if align is not None:
            T_init = None
            if align_view is not None:
                T_init = self._align_by_render(xyz, confidence, pixel, align_view, align == "sim3",
                                               align_max_distance_m, seed)
            T, n_inliers, rms = self._align(xyz, confidence, align == "sim3", align_max_distance_m,
                                            align_iterations, align_max_points, seed, T_init)
            xyz = (xyz.double() @ T[:3, :3].T.to(self.device) + T[:3, 3].to(self.device)).to(torch.float32)
            if self.bounds_min is not None or self.bounds_max is not None:
                inside = torch.ones(xyz.shape[0], dtype=torch.bool, device=self.device)
                if self.bounds_min is not None:
                    inside &= (xyz >= self.bounds_min.to(self.device)).all(dim=1)
                if self.bounds_max is not None:
                    inside &= (xyz <= self.bounds_max.to(self.device)).all(dim=1)
                n_dropped += int((~inside).sum())
                xyz, rgb, confidence = xyz[inside], rgb[inside], confidence[inside]
        if viewpoint is None and xyz.shape[0]:
            self.reference_point = xyz.mean(dim=0)

        n = torch.ones(xyz.shape[0], dtype=torch.int32, device=self.device)
        view = torch.full((xyz.shape[0],), int(view_id), dtype=torch.int32, device=self.device)
        n_fused, n_new = self._fuse(self._voxel_keys(xyz), xyz, rgb, confidence, n, view)
        n_evicted = self._evict()
        return MergeReport(n_input, n_dropped, n_fused, n_new, n_evicted, len(self), T, n_inliers, rms)

    def _fuse(self, keys: torch.Tensor, xyz: torch.Tensor, rgb: torch.Tensor, conf: torch.Tensor,
              count: torch.Tensor, view: torch.Tensor) -> tuple[int, int]:
        """Fuse per-point observations into the arrays; returns (points fused into old voxels, new voxels).

        ``count`` (N,) int32 observations per input point, ``view`` (N,) int32 view ids (the largest
        id of a voxel's new points wins within one call).
        """
        if keys.numel() == 0:
            return 0, 0
        # 1. reduce the new points per voxel: confidence-weighted sums
        ukeys, inverse = torch.unique(keys, sorted=True, return_inverse=True)
        u = ukeys.shape[0]
        sums = torch.zeros((u, 7), dtype=torch.float32, device=keys.device)
        sums.index_add_(0, inverse, torch.cat([xyz * conf[:, None], rgb * conf[:, None], conf[:, None]], 1))
        ucount = torch.zeros(u, dtype=torch.int32, device=keys.device).index_add_(0, inverse, count)
        uview = torch.full((u,), -2**31, dtype=torch.int32, device=keys.device)
        uview.scatter_reduce_(0, inverse, view, "amax")

        # 2. voxels already stored: weighted mean with the stored point
        a = self._a
        m = a.keys.shape[0]
        pos = torch.searchsorted(a.keys, ukeys)
        found = a.keys[pos.clamp(max=max(m - 1, 0))] == ukeys if m else torch.zeros(u, dtype=torch.bool,
                                                                                        device=keys.device)
        n_fused = 0
        if bool(found.any()):
            rows = pos[found]
            s = sums[found]
            c_old = a.confidence[rows]
            total = c_old + s[:, 6]
            a.xyz[rows] = (a.xyz[rows] * c_old[:, None] + s[:, 0:3]) / total[:, None]
            a.rgb[rows] = ((a.rgb[rows].to(torch.float32) * c_old[:, None] + s[:, 3:6])
                           / total[:, None]).clamp_(0.0, 1.0).to(torch.float16)
            a.confidence[rows] = total.clamp_(max=self.max_confidence)
            c = ucount[found]
            a.count[rows] = (a.count[rows].to(torch.int64) + c).clamp_(max=2**31 - 1).to(torch.int32)
            a.view_id[rows] = uview[found]
            n_fused = int(c.sum())

        # 3. new voxels: interleave them into the sorted arrays in one gather per array
        new = ~found
        k = int(new.sum())
        if k == 0:
            return n_fused, 0
        s = sums[new]
        c_new = s[:, 6]
        added = _Arrays(ukeys[new], s[:, 0:3] / c_new[:, None],
                        (s[:, 3:6] / c_new[:, None]).clamp_(0.0, 1.0).to(torch.float16),
                        c_new.clamp(max=self.max_confidence), ucount[new], uview[new])
        if m == 0:
            self._a = added
            return n_fused, k
        # output slot of new voxel j is pos_j + j; old rows fill the remaining slots in order
        is_new = torch.zeros(m + k, dtype=torch.bool, device=keys.device)
        is_new[pos[new] + torch.arange(k, device=keys.device)] = True
        n_before = torch.cumsum(is_new, 0)
        source = torch.where(is_new, n_before + (m - 1), torch.arange(m + k, device=keys.device) - n_before)
        self._a = _Arrays(*[torch.cat([old, extra]).index_select(0, source)
                            for old, extra in zip(a.tensors(), added.tensors())])
        return n_fused, k

    def _evict(self) -> int:
        """Drop points over the budget: lowest confidence first, then farthest from the reference."""
        excess = len(self) - self.max_points
        if excess <= 0:
            return 0
        conf = self._a.confidence
        threshold = torch.kthvalue(conf.cpu(), excess).values.to(conf.device)
        drop = conf < threshold
        ties = torch.nonzero(conf == threshold).squeeze(1)
        still = excess - int(drop.sum())
        if still > 0:
            ref = self.reference_point if self.reference_point is not None else torch.zeros(3)
            dist = (self._a.xyz[ties] - ref.to(self.device)).norm(dim=1)
            drop[ties[torch.topk(dist, still).indices]] = True
        self._a = self._a.select(~drop)
        return excess

    # ------------------------------------------------------------------ alignment
    def _align_by_render(self, xyz: torch.Tensor, confidence: torch.Tensor, pixel: torch.Tensor, view: tuple,
                         with_scale: bool, max_distance_m: float, seed: int) -> torch.Tensor:
        """T_cache_new (4,4) float64 from render-based matches (see ``merge(align_view=...)``)."""
        try:
            K, T_world_cam, height, width = view
        except (TypeError, ValueError) as exc:
            raise InputError("align_view", "expected (K (3,3), T_world_cam (4,4), height, width)") from exc
        T_world_cam = _tensor(T_world_cam).to(torch.float64)
        if T_world_cam.shape != (4, 4):
            raise InputError("align_view", f"expected T_world_cam of shape (4, 4), got "
                                           f"{tuple(T_world_cam.shape)}")
        drawn = self.render(K, torch.linalg.inv(T_world_cam), height, width).index[0].reshape(-1)
        inside = (pixel >= 0) & (pixel < drawn.numel())
        match = torch.full_like(pixel, -1)
        match[inside] = drawn[pixel[inside]]
        ok = match >= 0
        if int(ok.sum()) < 3:
            raise InputError("align_view", f"only {int(ok.sum())} new points fall on pixels where the cache "
                                           "is drawn")
        T, _ = robust_umeyama(xyz[ok].double().cpu(), self._a.xyz[match[ok]].double().cpu(),
                              confidence[ok].double().cpu(), with_scale=with_scale,
                              inlier_threshold_m=max_distance_m, seed=seed)
        return T

    def _align(self, xyz: torch.Tensor, confidence: torch.Tensor, with_scale: bool, max_distance_m: float,
               iterations: int, max_points: int, seed: int,
               T_init: torch.Tensor | None = None) -> tuple[torch.Tensor, int, float]:
        """ICP of the new points onto the cache: (T_cache_new (4,4) float64, inliers, rms metres).

        Correspondences are nearest cached points within a gate that starts at ``max_distance_m`` and
        shrinks towards 3x the residual RMS (not below 2 voxels).

        1. Coarse: :func:`robust_umeyama` on the raw matches (RANSAC rejects the new points that have
           no counterpart in the cache), repeated while it still moves the points by more than a voxel.
        2. Fine: point-to-plane Gauss-Newton steps (normals from the 8 nearest cached points, Tukey
           weights within the gate, scale as a 7th unknown for Sim(3)). Point-to-point matching alone
           converges slowly along walls and locks onto the voxel grid (a copy shifted by whole voxels
           along a wall matches itself exactly); distances to the tangent planes do neither.
        """
        from scipy.spatial import cKDTree  # only alignment needs it

        if not (isinstance(max_distance_m, (int, float)) and 0 < max_distance_m < math.inf):
            raise InputError("align_max_distance_m", f"expected a finite float > 0, got {max_distance_m!r}")
        if xyz.shape[0] < 3 or len(self) < 3:
            raise InputError("align", f"alignment needs 3 or more points on both sides, got {xyz.shape[0]} "
                                      f"new and {len(self)} cached")
        gen = torch.Generator().manual_seed(int(seed))
        if xyz.shape[0] > max_points:
            pick = torch.randperm(xyz.shape[0], generator=gen)[:max_points].to(self.device)
            src, w = xyz[pick], confidence[pick]
        else:
            src, w = xyz, confidence
        src = src.double().cpu()
        w = w.double().cpu()
        start = src if T_init is None else src @ T_init[:3, :3].T.cpu() + T_init[:3, 3].cpu()
        lo = start.min(dim=0).values - max_distance_m
        hi = start.max(dim=0).values + max_distance_m
        cached = self._a.xyz.cpu()
        near = ((cached >= lo.float()) & (cached <= hi.float())).all(dim=1)
        target = cached[near].double()
        if target.shape[0] < 3:
            raise InputError("align", "no cached points near the new points to align to")
        tree = cKDTree(target.numpy())
        k_normal = min(8, target.shape[0])
        T = torch.eye(4, dtype=torch.float64) if T_init is None else T_init.to(torch.float64).cpu()
        gate = max_distance_m
        coarse = True
        inliers, rms = 0, math.nan

        normals = torch.full_like(target, math.nan)

        def matches(gate_m: float):
            moved = src @ T[:3, :3].T + T[:3, 3]
            dist, idx = tree.query(moved.numpy(), distance_upper_bound=gate_m)
            ok = torch.from_numpy(np.isfinite(dist))
            if int(ok.sum()) < 3:
                raise InputError("align", f"fewer than 3 new points within {gate_m:.3f} m of the cache")
            matched = torch.from_numpy(idx[ok.numpy()])
            return moved, ok, matched, target[matched]

        for it in range(iterations):
            moved, ok, matched, q = matches(gate)
            if coarse:
                T_new, mask = robust_umeyama(src[ok], q, w[ok], with_scale=with_scale,
                                             inlier_threshold_m=gate, seed=seed + it)
                shift = (src[ok] @ (T_new[:3, :3] - T[:3, :3]).T + (T_new[:3, 3] - T[:3, 3])).norm(dim=1)
                T = T_new
                res = (src[ok][mask] @ T[:3, :3].T + T[:3, 3] - q[mask]).norm(dim=1)
                gate = max(2.0 * self.voxel_size_m, min(gate, 3.0 * float(res.square().mean().sqrt())))
                coarse = float(shift.max()) > self.voxel_size_m
                continue
            normal = normals[matched]
            todo = torch.nonzero(torch.isnan(normal[:, 0])).squeeze(1)
            if todo.numel():  # normals of cached points are computed once, when first matched
                fresh = torch.unique(matched[todo])
                _, nb = tree.query(target[fresh].numpy(), k=k_normal)
                nbrs = target[torch.from_numpy(nb.reshape(-1, k_normal))]
                centred = nbrs - nbrs.mean(dim=1, keepdim=True)
                normals[fresh] = torch.linalg.eigh(centred.transpose(1, 2) @ centred).eigenvectors[..., 0]
                normal = normals[matched]
            p = moved[ok]
            r = ((p - q) * normal).sum(dim=1)
            weight = w[ok] * (1.0 - (r / gate).square()).clamp(min=0.0).square()
            c = (weight[:, None] * p).sum(0) / weight.sum()
            d = p - c
            J = torch.cat([torch.linalg.cross(d, normal), normal] + ([(normal * d).sum(1, keepdim=True)]
                                                                      if with_scale else []), dim=1)
            A = (J * weight[:, None]).T @ J
            A += 1e-9 * A.diagonal().sum() * torch.eye(A.shape[0], dtype=torch.float64)
            xi = torch.linalg.solve(A, -(J * weight[:, None]).T @ r)
            step = torch.eye(4, dtype=torch.float64)
            step[:3, :3] = math.exp(float(xi[6]) if with_scale else 0.0) * _rodrigues(xi[0:3])
            step[:3, 3] = c + xi[3:6] - step[:3, :3] @ c
            T = step @ T
            used = weight > 0
            inliers, rms = int(used.sum()), float(r[used].square().mean().sqrt())
            gate = max(2.0 * self.voxel_size_m, min(gate, 3.0 * rms))
            # converged once a step moves no point by more than 5 % of a voxel: later steps mostly chase
            # the noise of the nearest-neighbour matches
            reach = float(d.norm(dim=1).max())
            turn = float(xi[:3].norm()) + (abs(float(xi[6])) if with_scale else 0.0)
            moved_by = float(xi[3:6].norm()) + reach * turn
            if moved_by < 0.05 * self.voxel_size_m:
                break
        if coarse or inliers == 0:  # never reached the fine stage: report the coarse residuals
            moved, ok, _, q = matches(gate)
            inliers = int(ok.sum())
            rms = float((moved[ok] - q).norm(dim=1).square().mean().sqrt())
        return T, inliers, rms

    # ------------------------------------------------------------------ queries
    def render(self, K, T_cam_world, height: int, width: int, splat_px: int | str = 0,
               near_m: float = 1e-3) -> RenderOutput:
        """Render the cache into B views (see :func:`render_points`; ``"auto"`` uses the voxel size as
        the point spacing). ``index`` indexes the cache's arrays."""
        return render_points(self._a.xyz, self.rgb, K, T_cam_world, height, width, splat_px=splat_px,
                             near_m=near_m, point_spacing_m=self.voxel_size_m)

    def crop(self, bounds_min, bounds_max) -> "GlobalCache":
        """A new cache with the points inside the box [bounds_min, bounds_max] (3,) metres (inclusive);
        same voxel size and budget, the box as its bounds."""
        lo, hi = _bounds(bounds_min, "bounds_min"), _bounds(bounds_max, "bounds_max")
        if lo is None or hi is None:
            raise InputError("bounds_min", "crop needs both bounds_min and bounds_max")
        inside = ((self._a.xyz >= lo.to(self.device)) & (self._a.xyz <= hi.to(self.device))).all(dim=1)
        other = self._empty_like()
        other.bounds_min, other.bounds_max = lo, hi
        other._a = self._a.select(inside)
        return other

    def confidence_at(self, xyz) -> torch.Tensor:
        """Stored confidence (N,) float32 of the voxel each of ``xyz`` (N, 3) world metres falls in, 0 where
        the voxel is empty."""
        p = _tensor(xyz).to(self.device, torch.float32)
        if p.ndim != 2 or p.shape[1] != 3:
            raise InputError("xyz", f"expected shape (N, 3), got {tuple(p.shape)}")
        out = torch.zeros(p.shape[0], dtype=torch.float32, device=self.device)
        m = len(self)
        if m == 0 or p.shape[0] == 0:
            return out
        keys = self._voxel_keys(p)
        pos = torch.searchsorted(self._a.keys, keys).clamp_(max=m - 1)
        found = self._a.keys[pos] == keys
        out[found] = self._a.confidence[pos[found]]
        return out

    def radius_query(self, center, radius_m: float) -> torch.Tensor:
        """Indices (K,) int64, ascending, of the points within ``radius_m`` of ``center`` (3,) metres."""
        c = torch.as_tensor(np.asarray(center, dtype=np.float64)).to(torch.float32)
        if c.shape != (3,) or not bool(torch.isfinite(c).all()):
            raise InputError("center", f"expected 3 finite numbers, got {center!r}")
        if not (isinstance(radius_m, (int, float)) and 0 <= radius_m < math.inf):
            raise InputError("radius_m", f"expected a finite float >= 0, got {radius_m!r}")
        c = c.to(self.device)
        # keys sort by x first: only the slab of voxels whose x overlaps the sphere needs a check (one
        # voxel wider on each side, for float32 rounding at voxel borders)
        x_lo = math.floor((float(c[0]) - radius_m) / self.voxel_size_m) + _AXIS_OFFSET - 1
        x_hi = math.floor((float(c[0]) + radius_m) / self.voxel_size_m) + _AXIS_OFFSET + 2
        if x_lo >= (1 << _AXIS_BITS) or x_hi <= 0:
            return torch.empty(0, dtype=torch.int64, device=self.device)
        slab = torch.tensor([max(x_lo, 0), min(x_hi, (1 << _AXIS_BITS) - 1)], device=self.device)
        start, stop = torch.searchsorted(self._a.keys, slab << (2 * _AXIS_BITS)).tolist()
        if x_hi >= (1 << _AXIS_BITS):
            stop = len(self)
        d2 = (self._a.xyz[start:stop] - c).square().sum(dim=1)
        return torch.nonzero(d2 <= radius_m * radius_m).squeeze(1) + start

    def voxel_downsampled(self, voxel_size_m: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Confidence-weighted means on a coarser grid: (xyz (K, 3) float32, rgb (K, 3) float32).

        A ``voxel_size_m`` at or below the cache's own returns copies of ``xyz`` and ``rgb``.
        """
        if not (isinstance(voxel_size_m, (int, float)) and 0 < voxel_size_m < math.inf):
            raise InputError("voxel_size_m", f"expected a finite float > 0, got {voxel_size_m!r}")
        if voxel_size_m <= self.voxel_size_m or len(self) == 0:
            return self._a.xyz.clone(), self.rgb
        _, inverse = torch.unique(self._voxel_keys(self._a.xyz, voxel_size_m), return_inverse=True)
        k = int(inverse.max()) + 1
        w = self._a.confidence[:, None]
        sums = torch.zeros((k, 7), dtype=torch.float32, device=self.device)
        sums.index_add_(0, inverse, torch.cat([self._a.xyz * w, self.rgb * w, w], dim=1))
        return sums[:, 0:3] / sums[:, 6:7], sums[:, 3:6] / sums[:, 6:7]

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """Write every array and setting to an ``.npz`` file; :meth:`load` restores it exactly."""
        a = self._a
        none = np.full(3, np.nan, dtype=np.float32)
        np.savez(Path(path), format=_NPZ_FORMAT, keys=a.keys.cpu().numpy(), xyz=a.xyz.cpu().numpy(),
                 rgb=a.rgb.cpu().numpy(), confidence=a.confidence.cpu().numpy(), count=a.count.cpu().numpy(),
                 view_id=a.view_id.cpu().numpy(), voxel_size_m=self.voxel_size_m, max_points=self.max_points,
                 max_confidence=self.max_confidence,
                 bounds_min=none if self.bounds_min is None else self.bounds_min.numpy(),
                 bounds_max=none if self.bounds_max is None else self.bounds_max.numpy(),
                 reference_point=none if self.reference_point is None else self.reference_point.cpu().numpy())

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "GlobalCache":
        """Read a cache written by :meth:`save`."""
        with np.load(Path(path)) as f:
            if "format" not in f or int(f["format"]) != _NPZ_FORMAT:
                raise InputError("path", f"{path} is not a GlobalCache file (format {_NPZ_FORMAT})")

            def opt(name):
                v = f[name]
                return None if np.isnan(v).all() else v

            cache = cls(float(f["voxel_size_m"]), int(f["max_points"]), opt("bounds_min"), opt("bounds_max"),
                        device, float(f["max_confidence"]))
            ref = opt("reference_point")
            cache.reference_point = None if ref is None else torch.from_numpy(ref).to(cache.device)
            cache._a = _Arrays(*[torch.from_numpy(f[name]).to(cache.device) for name in _FIELDS])
        return cache

    def save_ply(self, path: str | Path) -> None:
        """Write a binary PLY through Open3D: xyz float32, 8-bit colours, and ``confidence`` (float),
        ``count`` and ``view_id`` (int) per vertex."""
        import open3d as o3d

        a = self._a
        if len(self) == 0:  # Open3D refuses to write no points; the header alone is a valid PLY
            props = "".join(f"property {t} {n}\n" for t, n in (("float", "x"), ("float", "y"), ("float", "z"),
                            ("uchar", "red"), ("uchar", "green"), ("uchar", "blue"), ("float", "confidence"),
                            ("int", "count"), ("int", "view_id")))
            header = f"ply\nformat binary_little_endian 1.0\nelement vertex 0\n{props}end_header\n"
            Path(path).write_text(header)
            return
        pcd = o3d.t.geometry.PointCloud()
        pcd.point.positions = o3d.core.Tensor(a.xyz.cpu().numpy())
        pcd.point.colors = o3d.core.Tensor(
            np.round(a.rgb.cpu().numpy().astype(np.float32) * 255.0).clip(0, 255).astype(np.uint8))
        pcd.point.confidence = o3d.core.Tensor(a.confidence.cpu().numpy()[:, None])
        pcd.point.count = o3d.core.Tensor(a.count.cpu().numpy()[:, None])
        pcd.point.view_id = o3d.core.Tensor(a.view_id.cpu().numpy()[:, None])
        if not o3d.t.io.write_point_cloud(str(path), pcd, write_ascii=False):
            raise InputError("path", f"Open3D could not write {path}")

    @classmethod
    def load_ply(cls, path: str | Path, **kwargs) -> "GlobalCache":
        """A new cache (``kwargs`` as for the constructor) from a PLY file read through Open3D.

        Positions are required; colours (8-bit or float), ``confidence``, ``count`` and ``view_id`` are
        used when present (else mid grey, 1, 1, 0). Points are fused into the cache's voxels, so a file
        written by :meth:`save_ply` at the same voxel size comes back with the same points.
        """
        import open3d as o3d

        if not Path(path).is_file():
            raise InputError("path", f"no such file: {path}")
        pcd = o3d.t.io.read_point_cloud(str(path))
        if "positions" not in pcd.point or pcd.point.positions.shape[0] == 0:
            cache = cls(**kwargs)
            return cache
        xyz = torch.from_numpy(pcd.point.positions.numpy().astype(np.float32))
        n = xyz.shape[0]

        def attr(name, default, dtype):
            if name in pcd.point:
                return torch.from_numpy(np.ascontiguousarray(pcd.point[name].numpy().reshape(n, -1)[:, 0]))
            return torch.full((n,), default, dtype=dtype)

        if "colors" in pcd.point:
            colors = pcd.point.colors.numpy()
            rgb = torch.from_numpy(colors.astype(np.float32) / (255.0 if colors.dtype == np.uint8 else 1.0))
        else:
            rgb = torch.full((n, 3), 0.5)
        cache = cls(**kwargs)
        conf = attr("confidence", 1.0, torch.float32).to(torch.float32)
        count = attr("count", 1, torch.int32).to(torch.int32)
        view = attr("view_id", 0, torch.int32).to(torch.int32)
        keep = torch.isfinite(xyz).all(dim=1) & (conf > 0)
        dev = cache.device
        cache._fuse(cache._voxel_keys(xyz[keep].to(dev)), xyz[keep].to(dev), rgb[keep].to(dev),
                    conf[keep].to(dev), count[keep].to(dev), view[keep].to(dev))
        cache._evict()
        return cache
