"""Z-buffered point rendering: coloured world points into one or more pinhole views.

Each visible point lands on the pixel whose centre is nearest to its projection (pixel ``(u, v)``
covers ``[u - 0.5, u + 0.5] x [v - 0.5, v + 0.5]``) and the nearest point along the optical axis wins.
The per-pixel minimum is one ``scatter_reduce("amin")`` over an int64 key that packs the float32
depth bits above the point index: positive float32 bit patterns order like the floats, so the
smallest key is the nearest point (ties go to the lower index) and its low 32 bits say which point.

Crack closing (``splat_px > 0`` or ``"auto"``) is a screen-space dilation of that one-pixel z-buffer:
every point that won its own pixel also covers the ``(2r+1) x (2r+1)`` square around it, z-tested like
the centres but with its depth raised by ``depth_tolerance`` (relative) in the test only. A
neighbour's footprint on the same surface therefore never takes a pixel that a point hit directly,
while a surface nearer by more than the tolerance covers the far points that show through its gaps.
Points hidden at their own pixel draw no footprint (they would lose the z-test there anyway), which
also makes the cost depend on the image size, not on the number of points.

Depth is float32 metres along the optical axis (camera z), 0 = empty pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from worldstereo_ros.errors import InputError

_EMPTY = torch.iinfo(torch.int64).max
_INDEX_BITS = 32
_INDEX_MASK = (1 << _INDEX_BITS) - 1


@dataclass
class RenderOutput:
    """What the renderer draws, always with a leading view dimension ``B`` (1 for a single view).

    Attributes:
        rgb: (B, H, W, 3) float32 in [0, 1], zeros on empty pixels (and when no colours were given).
        depth: (B, H, W) float32 metres along the optical axis, 0 on empty pixels.
        mask: (B, H, W) bool, True where some point is drawn.
        index: (B, H, W) int64 index into the input points of the point drawn there, -1 on empty.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    mask: torch.Tensor
    index: torch.Tensor

    def to(self, device: torch.device | str) -> "RenderOutput":
        """The same images on another device."""
        return RenderOutput(self.rgb.to(device), self.depth.to(device), self.mask.to(device),
                            self.index.to(device))


def _as_tensor(value, field: str, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value if device is None else value.to(device)
    try:
        return torch.as_tensor(np.asarray(value), device=device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputError(field, f"expected a tensor or array, got {type(value).__name__}") from exc


def _views(K: torch.Tensor, T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Broadcast K (3,3)|(B,3,3) and T (4,4)|(B,4,4) to (B,3,3), (B,4,4)."""
    if K.ndim not in (2, 3) or K.shape[-2:] != (3, 3):
        raise InputError("K", f"expected shape (3, 3) or (B, 3, 3), got {tuple(K.shape)}")
    if T.ndim not in (2, 3) or T.shape[-2:] != (4, 4):
        raise InputError("T_cam_world", f"expected shape (4, 4) or (B, 4, 4), got {tuple(T.shape)}")
    K = K.reshape(-1, 3, 3)
    T = T.reshape(-1, 4, 4)
    if K.shape[0] != T.shape[0] and 1 not in (K.shape[0], T.shape[0]):
        raise InputError("K", f"batch of {K.shape[0]} intrinsics does not match {T.shape[0]} poses")
    if not (torch.isfinite(K).all() and torch.isfinite(T).all()):
        raise InputError("K", "K and T_cam_world must be finite")
    B = max(K.shape[0], T.shape[0])
    return K.expand(B, 3, 3), T.expand(B, 4, 4)


def footprint_radius_px(depth_m: torch.Tensor, spacing_m: torch.Tensor | float, focal_px: float,
                        max_radius_px: int = 8) -> torch.Tensor:
    """Footprint half-width (pixels) that closes the gaps between points ``spacing_m`` apart.

    Neighbours ``p = focal * spacing / depth`` pixels apart land at most ``ceil(p)`` pixels apart after
    rounding to pixel centres, leaving ``ceil(p) - 1`` empty pixels that the footprints from both
    sides must cover: ``r = ceil((ceil(p) - 1) / 2)``.

    Args:
        depth_m: (*) depth along the optical axis, metres (> 0).
        spacing_m: (*) or scalar distance between neighbouring points, metres.
        focal_px: focal length in pixels (the larger of fx, fy).
        max_radius_px: upper bound of the result.
    Returns:
        (*) int64 radius in pixels, in [0, max_radius_px].

    Example:
        >>> footprint_radius_px(torch.tensor([1.0, 0.7, 0.3]), 0.01, 100.0).tolist()
        [0, 1, 2]
    """
    gap = torch.ceil(focal_px * spacing_m / depth_m.clamp_min(1e-12)) - 1.0
    return torch.ceil(gap.clamp(0.0, 2.0 * max_radius_px) / 2.0).long()


def _dilate3(keys: torch.Tensor) -> torch.Tensor:
    """3x3 minimum filter of an (H, W) int64 key image (separable; outside the image counts as empty)."""
    rows = keys.clone()
    torch.minimum(rows[:, 1:], keys[:, :-1], out=rows[:, 1:])
    torch.minimum(rows[:, :-1], keys[:, 1:], out=rows[:, :-1])
    out = rows.clone()
    torch.minimum(out[1:], rows[:-1], out=out[1:])
    torch.minimum(out[:-1], rows[1:], out=out[:-1])
    return out


def _zbuffer(xyz_t: torch.Tensor, P: torch.Tensor, height: int, width: int, near_m: float,
             point_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One-pixel z-buffer of one view.

    ``xyz_t`` (3, N) world points; P (3, 4) maps them to ``(z*(u + 1.5), z*(v + 1.5), z)``: pixel
    coordinates shifted by one pixel of padding plus the 0.5 that turns rounding into truncation.
    Everything outside the image (or not in front of the camera) is clamped onto the padding ring,
    which costs less than masking it out. Returns the inner key image (H, W) int64 (a view;
    ``_EMPTY`` where nothing landed) and every point's camera z as float32 (N,).
    """
    cam = torch.addmm(P[:, 3:], P[:, :3], xyz_t)  # (3, N)
    z = cam[2]
    inv_z = torch.reciprocal(z).masked_fill_(z <= near_m, 0.0)
    # NaN (from non-finite input) goes to the padding as well: it would survive the clamp.
    u = cam[0].mul_(inv_z).nan_to_num_(0.0).clamp_(0.0, width + 1.0)
    v = cam[1].mul_(inv_z).nan_to_num_(0.0).clamp_(0.0, height + 1.0)
    pix = v.to(torch.int32).mul_(width + 2).add_(u.to(torch.int32))
    z32 = z if z.dtype == torch.float32 else z.to(torch.float32)
    key = z32.view(torch.int32).to(torch.int64).bitwise_left_shift_(_INDEX_BITS).bitwise_or_(point_ids)
    image = torch.full(((height + 2) * (width + 2),), _EMPTY, dtype=torch.int64, device=xyz_t.device)
    image.scatter_reduce_(0, pix.to(torch.int64), key, "amin")
    return image.view(height + 2, width + 2)[1:-1, 1:-1], z32


def _close_cracks(image: torch.Tensor, z32: torch.Tensor, height: int, width: int, radius: int | str,
                  spacing: torch.Tensor | float | None, focal_px: float, max_radius_px: int,
                  depth_tolerance: float) -> torch.Tensor:
    """Dilate the visible points of a key image (H, W) by their footprint radius (see module doc)."""
    image = image.reshape(-1)
    hit_pos = (image != _EMPTY).nonzero().squeeze(1)
    src_idx = image[hit_pos] & _INDEX_MASK
    src_z = z32[src_idx]
    raised = (src_z * (1.0 + depth_tolerance)).view(torch.int32).to(torch.int64)
    raised = raised.bitwise_left_shift_(_INDEX_BITS).bitwise_or_(src_idx)
    if radius == "auto":
        sp = spacing if not isinstance(spacing, torch.Tensor) or spacing.ndim == 0 else spacing[src_idx]
        src_radius = footprint_radius_px(src_z, sp, focal_px, max_radius_px)
        levels = int(src_radius.max()) if src_radius.numel() else 0
    else:
        src_radius = None
        levels = int(radius)
    if levels == 0:
        return image.view(height, width)
    sources = torch.full_like(image, _EMPTY)
    spread = None
    # Level k injects the sources whose radius is >= k and dilates once: a source of radius r enters at
    # level r and is dilated r times, i.e. it covers a (2r+1)^2 square.
    for k in range(levels, 0, -1):
        if src_radius is None:
            if spread is None:
                sources[hit_pos] = raised
                layer = sources
            else:
                layer = spread
        else:
            sel = src_radius >= k
            sources[hit_pos[sel]] = raised[sel]  # the set only grows as k falls: no reset needed
            layer = sources if spread is None else torch.minimum(spread, sources)
        spread = _dilate3(layer.view(height, width)).view(-1)
    return torch.minimum(image, spread).view(height, width)


def render_points(
    xyz,
    rgb,
    K,
    T_cam_world,
    height: int,
    width: int,
    splat_px: int | str = 0,
    near_m: float = 1e-3,
    point_spacing_m=None,
    max_splat_px: int = 8,
    depth_tolerance: float = 0.02,
) -> RenderOutput:
    """Render coloured points into B pinhole views with a z-buffer (nearest point wins).

    Args:
        xyz: (N, 3) float32/float64 points in the world frame, metres (torch or numpy). The projection
            runs in this dtype; float32 is the fast path.
        rgb: (N, 3) float colours in [0, 1], or None (the rgb output is then all zeros).
        K: (3, 3) or (B, 3, 3) pinhole intrinsics, pixels (OpenCV: pixel centres at integers).
        T_cam_world: (4, 4) or (B, 4, 4) world-to-camera transforms (OpenCV optical axes).
        height, width: image size in pixels.
        splat_px: footprint half-width r in pixels: 0 = one pixel per point, r > 0 = a (2r+1)^2 square
            (z-tested, see the module doc), or ``"auto"`` = per point r from its spacing and depth
            (:func:`footprint_radius_px`), so that points ``point_spacing_m`` apart leave no cracks.
        near_m: points with camera z <= near_m are dropped (behind or too close to the camera).
        point_spacing_m: distance between neighbouring points, metres: a float or an (N,) tensor;
            required by ``splat_px="auto"`` (a GlobalCache passes its voxel size).
        max_splat_px: largest footprint half-width ``"auto"`` may choose.
        depth_tolerance: relative depth margin by which a footprint must be nearer than a directly
            hit point to take its pixel.
    Returns:
        RenderOutput of (B, H, W) images on the device of ``xyz`` (B = 1 for one K and one pose).
    Raises:
        InputError: on bad shapes, sizes or options.

    Example:
        >>> out = render_points(torch.tensor([[0.0, 0.0, 2.0]]), None, torch.eye(3), torch.eye(4), 2, 3)
        >>> out.index[0].tolist(), float(out.depth[0, 0, 0])
        ([[0, -1, -1], [-1, -1, -1]], 2.0)
    """
    xyz = _as_tensor(xyz, "xyz")
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise InputError("xyz", f"expected shape (N, 3), got {tuple(xyz.shape)}")
    if not xyz.is_floating_point():
        raise InputError("xyz", f"expected a floating dtype, got {xyz.dtype}")
    n = xyz.shape[0]
    if n >= 2**31:
        raise InputError("xyz", f"expected at most 2**31 - 1 points, got {n}")
    device = xyz.device
    if rgb is not None:
        rgb = _as_tensor(rgb, "rgb", device)
        if rgb.shape != xyz.shape:
            raise InputError("rgb", f"expected shape {tuple(xyz.shape)}, got {tuple(rgb.shape)}")
    Ks, Ts = _views(_as_tensor(K, "K", device), _as_tensor(T_cam_world, "T_cam_world", device))
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise InputError(name, f"expected a positive int, got {value!r}")
    height, width = int(height), int(width)
    if height * width >= 2**31:
        raise InputError("height", f"an image of {height} x {width} pixels is too large")
    if splat_px != "auto" and (isinstance(splat_px, bool) or not isinstance(splat_px, (int, np.integer))
                               or splat_px < 0):
        raise InputError("splat_px", f"expected an int >= 0 or 'auto', got {splat_px!r}")
    if isinstance(near_m, bool) or not isinstance(near_m, (int, float)) or not (0 < near_m < math.inf):
        raise InputError("near_m", f"expected a finite float > 0, got {near_m!r}")
    if not (isinstance(depth_tolerance, (int, float)) and 0 <= depth_tolerance < math.inf):
        raise InputError("depth_tolerance", f"expected a finite float >= 0, got {depth_tolerance!r}")
    spacing = None
    if splat_px == "auto":
        spacing = _check_spacing(point_spacing_m, n, device)
        if isinstance(max_splat_px, bool) or not isinstance(max_splat_px, int) or max_splat_px < 0:
            raise InputError("max_splat_px", f"expected an int >= 0, got {max_splat_px!r}")
    radius = splat_px if splat_px == "auto" else int(splat_px)

    B = Ks.shape[0]
    # P maps world points to (z*(u + 1.5), z*(v + 1.5), z), see _zbuffer.
    shift = torch.tensor([[1.0, 0.0, 1.5], [0.0, 1.0, 1.5], [0.0, 0.0, 1.0]], dtype=torch.float64,
                         device=device)
    P = (shift @ Ks.to(torch.float64) @ Ts.to(torch.float64)[:, :3, :]).to(xyz.dtype)
    if n == 0:
        return RenderOutput(torch.zeros((B, height, width, 3), dtype=torch.float32, device=device),
                            torch.zeros((B, height, width), dtype=torch.float32, device=device),
                            torch.zeros((B, height, width), dtype=torch.bool, device=device),
                            torch.full((B, height, width), -1, dtype=torch.int64, device=device))
    # every pixel of these is written below
    out_rgb = (torch.empty if rgb is not None else torch.zeros)((B, height, width, 3), dtype=torch.float32,
                                                                device=device)
    out_depth = torch.empty((B, height, width), dtype=torch.float32, device=device)
    out_mask = torch.empty((B, height, width), dtype=torch.bool, device=device)
    out_index = torch.empty((B, height, width), dtype=torch.int64, device=device)

    xyz_t = xyz.T  # addmm reads the transposed view directly (a contiguous copy costs more)
    point_ids = torch.arange(n, dtype=torch.int64, device=device)
    # Row 0 of these tables is what an empty pixel gets: gathering at (index + 1) needs no masking.
    zero = torch.zeros(1, dtype=torch.float32, device=device)
    colours = None
    if rgb is not None:
        colours = torch.cat([torch.zeros((1, 3), dtype=torch.float32, device=device), rgb.to(torch.float32)])
    for b in range(B):
        keys, z32 = _zbuffer(xyz_t, P[b], height, width, near_m, point_ids)
        if radius != 0:
            focal = float(max(Ks[b, 0, 0], Ks[b, 1, 1]))
            keys = _close_cracks(keys, z32, height, width, radius, spacing, focal, max_splat_px,
                                 depth_tolerance)
        # The low 32 bits of a key are the point index; those of _EMPTY read as -1 in int32.
        index = keys.to(torch.int32).view(-1)
        out_index[b].view(-1).copy_(index)
        torch.ge(index, 0, out=out_mask[b].view(-1))
        index += 1
        torch.index_select(torch.cat([zero, z32]), 0, index, out=out_depth[b].view(-1))
        if colours is not None:
            torch.index_select(colours, 0, index, out=out_rgb[b].view(-1, 3))
    return RenderOutput(out_rgb, out_depth, out_mask, out_index)


def _check_spacing(point_spacing_m, n: int, device: torch.device) -> torch.Tensor | float:
    if point_spacing_m is None:
        raise InputError("point_spacing_m", "required by splat_px='auto' (metres between neighbours)")
    if isinstance(point_spacing_m, (int, float)) and not isinstance(point_spacing_m, bool):
        if not 0 < point_spacing_m < math.inf:
            raise InputError("point_spacing_m", f"expected a finite float > 0, got {point_spacing_m!r}")
        return float(point_spacing_m)
    spacing = _as_tensor(point_spacing_m, "point_spacing_m", device).to(torch.float32)
    if spacing.ndim != 0 and spacing.shape != (n,):
        raise InputError("point_spacing_m", f"expected a float or shape ({n},), got {tuple(spacing.shape)}")
    if not bool(((spacing > 0) & torch.isfinite(spacing)).all()):
        raise InputError("point_spacing_m", "expected finite values > 0")
    return spacing
