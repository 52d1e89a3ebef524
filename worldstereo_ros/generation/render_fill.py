"""``render_fill``: the default generator backend, CPU only, no weights.

Every target frame is built in layers, each one filling only the pixels that the layers before it left
empty (a pixel that the global cache render covers is never changed):

1. cache: the global cache rendered into the target camera (``cond_*`` of the request).
2. ssm (spatial-stereo memory): the retrieved reference keyframes' pointmaps, z-buffer rendered with their
   own colours into the target camera (a small splat closes the cracks). Colour and depth come from real 3D
   correspondences, not from a guess. All references of a frame are drawn in one render, so the nearest
   reference point wins where they overlap. Where the cache does cover a pixel and the reference sees the
   same surface there (depths within ``detail_tolerance``), the reference's colour replaces the cache's
   voxel-fused one (``reference_detail``): the memory supplies the fine texture, the cache the geometry.
3. temporal: the pixels imagined in the previous frame (layers 2-4 there), back-projected with their
   completed depth and drawn into this frame. A surface imagined once is thereby carried along the
   trajectory instead of being re-imagined (differently) in every frame, so fills do not flicker; only
   newly revealed pixels reach layer 4. (SpatialDreamer fuses occlusion masks across neighbouring frames
   for the same reason.)
4. complete: depth completion plus depth-guided colour inpainting of what is still empty. Holes left by
   reprojection are mostly disocclusions (background revealed beside a foreground edge), so every hole
   pixel looks for the nearest filled pixel in each of the four row/column directions, continues each
   candidate's surface to the pixel, drops the candidates that belong to the occluder (those continuing the
   nearest surface, when another candidate lies farther by more than ``occluder_tolerance``) and takes the
   nearest remaining one in pixels: the fill comes from the far side of the hole boundary, while a hole
   inside one surface (a crack, a slanted floor) is filled from its nearest side.
   Depth continues that surface: inverse depth (affine in the image for a plane) is extrapolated with the
   slope measured just behind the boundary, bounded by ``slope_limit``. Colour is copied, not blurred: the
   pixel ``d`` steps into the hole takes the colour mirrored ``d`` steps back into the same surface run
   (a run stops at a hole or a depth jump, and is at most ``mirror_max_px`` long), which carries the
   background texture into the hole with its sharpness. Pixels that no direction reaches (a row and a
   column both empty) are filled by a further pass from the pixels the previous pass filled. Finally the
   completed colours deeper than a few pixels inside a hole are averaged over a window that grows with the
   distance to the boundary (``smooth_px``): far from any observation a copied texture is a guess, and
   its local average is the estimate with the least expected error (measured on 7-Scenes, see
   ``benchmarks/bench_view_fidelity.py``). That is ``colour_fill="mirror"``; the default ``"inpaint"`` keeps
   the completed depth but takes the colour from OpenCV's Telea inpainting, with the occluder's pixels
   (nearer than the completed depth beside them) hidden from it; that measured better there.

Colours of the reference keyframes are pulled, not pushed: once a pixel has its depth, its 3D point is
projected into the references and their images are sampled bilinearly where they see that point, so the
keyframe's texture lands with sub-pixel accuracy (``reference_detail`` extends this to the cache's pixels).

``imagined`` is exactly ``~cond_mask``: every pixel that the cache render did not give. If a frame has
nothing to start from at all (empty cache render, no references, no previous frame), its pixels keep depth 0
(unknown) and black colour. Everything is vectorised torch; no randomness is used, so the output depends on
the request only (the ``generator`` argument is accepted for the interface).
"""

from __future__ import annotations

import math
import time

import cv2
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
from worldstereo_ros.geometry.inpaint import telea_inpaint
from worldstereo_ros.geometry.render import render_points
from worldstereo_ros.validation import check_bool, check_float, check_int, check_positive

_FAR = torch.iinfo(torch.int64).max // 4  # "no candidate" distance (stays positive after small sums)
#: colour of the completed pixels: OpenCV inpainting, or the depth-guided mirror copy (module doc)
COLOUR_FILLS = ("inpaint", "mirror")


class RenderFillGenerator(Generator):
    """Cache render + reference reprojection + temporal carry-over + far-side completion (module doc).

    Args:
        ssm: fill holes from the retrieved references' pointmaps (False: references are ignored).
        temporal: carry the previous frame's imagined pixels into the next frame before completion.
        reference_splat_px: footprint half-width (pixels) of the reference render, closes its cracks.
        temporal_splat_px: footprint half-width (pixels) of the previous-frame render.
        occluder_tolerance: completion candidates whose continued depth is within this fraction of the
            nearest one's belong to the occluder (when some candidate lies farther than that); the
            others are background, and the nearest of those in pixels is used. In [0, 1).
        edge_tolerance: relative depth step between neighbouring pixels that ends a surface run
            (mirrored colours never cross it). > 0.
        mirror_max_px: longest stretch of a surface mirrored into a hole, pixels.
        slope_px: baseline (pixels behind the boundary) of the inverse-depth slope; 0 = constant depth.
        slope_limit: largest relative change of inverse depth that extrapolation may make, in [0, 1).
        max_passes: completion passes (each reaches pixels sharing a row or column with a filled one).
        reference_detail: also take colour from the references on pixels the cache covers when the
            reference's depth there agrees with the cache's within ``detail_tolerance`` (relative): the
            cache is voxel-fused and coarser than a keyframe, whose pixels carry the fine texture (the
            point of WorldStereo's spatial-stereo memory). These pixels stay "observed".
        detail_tolerance: relative depth agreement for ``reference_detail``, in (0, 1).
        smooth_px: colours completed deep inside a hole are averaged over a window that grows with the
            distance to the hole's boundary, up to this Gaussian sigma in pixels (0 = copied colours only).
            A copied texture far from its source is a guess; its average is the estimate with the least
            expected error, while pixels near the boundary keep their copied detail.
        colour_fill: colour of the pixels completed in layer 4: ``"inpaint"`` (OpenCV's Telea inpainting
            from the pixels around each hole, the occluder's pixels hidden from it) or ``"mirror"`` (the
            depth-guided far-side copy above, sharper; ``smooth_px`` applies to it). On 7-Scenes views 5-60
            frames away, inpainting scores higher PSNR on those pixels: a copied texture is usually misplaced
            by a few pixels, which costs more than a smooth guess (``benchmarks/bench_view_fidelity.py``).
        device: torch device to compute on.

    Raises:
        InputError: naming the option, for a bad value or an unknown option.
    """

    name = "render_fill"
    uses_references = True
    frames_are_cache_renders = True

    def __init__(self, ssm: bool = True, temporal: bool = True, reference_splat_px: int = 1,
                 temporal_splat_px: int = 1, occluder_tolerance: float = 0.1, edge_tolerance: float = 0.1,
                 mirror_max_px: int = 4, slope_px: int = 8, slope_limit: float = 0.3, max_passes: int = 4,
                 reference_detail: bool = True, detail_tolerance: float = 0.03, smooth_px: float = 8.0,
                 colour_fill: str = "inpaint", device: str | torch.device = "cpu", **unknown) -> None:
        if unknown:
            raise InputError(sorted(unknown)[0], "unknown option of the render_fill backend; valid: "
                             "ssm, temporal, reference_splat_px, temporal_splat_px, occluder_tolerance, "
                             "edge_tolerance, mirror_max_px, slope_px, slope_limit, max_passes, reference_detail, "
                             "detail_tolerance, smooth_px, colour_fill, device")
        self.ssm = check_bool("ssm", ssm)
        self.temporal = check_bool("temporal", temporal)
        self.reference_splat_px = check_int("reference_splat_px", reference_splat_px, 0, 8)
        self.temporal_splat_px = check_int("temporal_splat_px", temporal_splat_px, 0, 8)
        self.occluder_tolerance = check_float("occluder_tolerance", occluder_tolerance, 0.0, 1.0, lo_open=False,
                                              hi_open=True)
        self.edge_tolerance = check_positive("edge_tolerance", edge_tolerance)
        self.mirror_max_px = check_int("mirror_max_px", mirror_max_px, 1, 4096)
        self.slope_px = check_int("slope_px", slope_px, 0, 4096)
        self.slope_limit = check_float("slope_limit", slope_limit, 0.0, 1.0, lo_open=False, hi_open=True)
        self.max_passes = check_int("max_passes", max_passes, 1, 64)
        self.reference_detail = check_bool("reference_detail", reference_detail)
        self.detail_tolerance = check_float("detail_tolerance", detail_tolerance, 0.0, 1.0, lo_open=False, hi_open=True)
        self.smooth_px = check_float("smooth_px", smooth_px, 0.0, 64.0, lo_open=False, hi_open=True)
        if colour_fill not in COLOUR_FILLS:
            raise InputError("colour_fill", f"expected one of {', '.join(COLOUR_FILLS)}, got {colour_fill!r}")
        self.colour_fill = colour_fill
        try:
            self.device = torch.device(device)
        except (TypeError, RuntimeError) as exc:
            raise InputError("device", f"not a torch device: {device!r}") from exc

    # ------------------------------------------------------------------ generate

    def generate(self, request: GenerationRequest, generator: torch.Generator | None = None,
                 on_frame: FrameCallback | None = None) -> GeneratedFrames:
        """Fill every frame of ``request`` in order (module doc); ``generator`` is unused (no randomness)."""
        request.check()
        n, h, w = request.num_frames, request.height, request.width
        dev = self.device
        K_all = np.asarray(request.K, dtype=np.float64)
        T_wc_all = np.asarray(request.T_world_cam, dtype=np.float64)
        T_cw_all = np.linalg.inv(T_wc_all)
        out_rgb = np.empty((n, h, w, 3), dtype=np.float32)
        out_depth = np.empty((n, h, w), dtype=np.float32)
        out_imagined = np.empty((n, h, w), dtype=bool)
        timings = {"ssm": 0.0, "temporal": 0.0, "complete": 0.0}
        ref_points: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        previous: tuple[torch.Tensor, torch.Tensor] | None = None  # imagined points of frame i - 1

        for i in range(n):
            K = torch.as_tensor(K_all[i], device=dev)
            T_cw = torch.as_tensor(T_cw_all[i], device=dev)
            cond_mask = torch.as_tensor(np.asarray(request.cond_mask[i], dtype=bool), device=dev)
            rgb = torch.as_tensor(np.asarray(request.cond_rgb[i], dtype=np.float32), device=dev).clone()
            depth = torch.as_tensor(np.asarray(request.cond_depth[i], dtype=np.float32), device=dev).clone()
            valid = cond_mask & (depth > 0)
            rgb[~valid] = 0.0
            depth[~valid] = 0.0

            t0 = time.perf_counter()
            if self.ssm and request.references[i] and (self.reference_detail or not bool(valid.all())):
                pts, cols = self._reference_points(request.references[i], ref_points)
                if pts.shape[0]:
                    layer = render_points(pts, cols, K, T_cw, h, w, splat_px=self.reference_splat_px)
                    filled = layer.mask[0] & ~valid
                    valid = self._fill_from(layer, valid, rgb, depth)
                    detail = valid if self.reference_detail else filled
                    self.pull_reference_colours(request.references[i], K, T_wc_all[i], depth, detail, rgb)
            t1 = time.perf_counter()
            timings["ssm"] += t1 - t0

            if self.temporal and previous is not None and previous[0].shape[0] and not bool(valid.all()):
                layer = render_points(previous[0], previous[1], K, T_cw, h, w,
                                      splat_px=self.temporal_splat_px)
                valid = self._fill_from(layer, valid, rgb, depth)
            t2 = time.perf_counter()
            timings["temporal"] += t2 - t1

            before = valid.clone()
            self._complete(rgb, depth, valid)
            if self.colour_fill == "inpaint":
                _inpaint(rgb, ~before & valid)
            elif self.colour_fill == "mirror" and self.smooth_px > 0:
                self._smooth_deep_fills(rgb, ~before)
            t3 = time.perf_counter()
            timings["complete"] += t3 - t2

            imagined = ~cond_mask
            if self.temporal and i + 1 < n:
                previous = _back_project(rgb, depth, imagined & (depth > 0), K_all[i], T_wc_all[i])
            timings["temporal"] += time.perf_counter() - t3

            out_rgb[i] = rgb.clamp_(0.0, 1.0).cpu().numpy()
            out_depth[i] = depth.cpu().numpy()
            out_imagined[i] = imagined.cpu().numpy()
            if on_frame is not None:
                on_frame(i, out_rgb[i], out_depth[i], out_imagined[i])
        return GeneratedFrames(rgb=out_rgb, depth=out_depth, imagined=out_imagined, depth_is_metric=True,
                               timings_s=timings)

    # ------------------------------------------------------------------ layers

    def _reference_points(self, references: list[Reference],
                          cache: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]]
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """Valid pointmap points and colours of all ``references`` (float32, concatenated; memoised)."""
        pts, cols = [], []
        for ref in references:
            key = (int(ref.keyframe_id), id(ref.pointmap))
            if key not in cache:
                pointmap = np.asarray(ref.pointmap, dtype=np.float32).reshape(-1, 3)
                colours = np.asarray(ref.rgb, dtype=np.float32).reshape(-1, 3)
                depth = np.asarray(ref.depth, dtype=np.float32).reshape(-1)
                if pointmap.shape[0] != depth.shape[0] or colours.shape[0] != depth.shape[0]:
                    raise InputError("references", f"keyframe {ref.keyframe_id}: rgb {np.shape(ref.rgb)}, "
                                     f"depth {np.shape(ref.depth)} and pointmap {np.shape(ref.pointmap)} "
                                     "disagree")
                keep = (depth > 0) & np.isfinite(pointmap).all(axis=1)
                cache[key] = (torch.as_tensor(pointmap[keep], device=self.device),
                              torch.as_tensor(np.clip(colours[keep], 0.0, 1.0), device=self.device))
            pts.append(cache[key][0])
            cols.append(cache[key][1])
        if len(pts) == 1:
            return pts[0], cols[0]
        return torch.cat(pts), torch.cat(cols)

    def pull_reference_colours(self, references: list[Reference], K: torch.Tensor, T_world_cam: np.ndarray,
                                depth: torch.Tensor, mask: torch.Tensor, rgb: torch.Tensor) -> None:
        """Resample the references' images at the 3D correspondences of the ``mask`` pixels, in place.

        Each pixel's point (from its depth) is projected into every reference, best score first; where the
        reference sees that point (its own depth there agrees within ``detail_tolerance``) the pixel takes the
        reference colour, sampled bilinearly at the sub-pixel position. Pulling colour backwards samples the
        keyframe at the exact correspondence, where a forward point render snaps every point to the nearest
        target pixel (half a pixel of error, jagged edges): on 7-Scenes this is worth about 1 dB PSNR on the
        observed pixels of views 5-10 frames away (``benchmarks/bench_view_fidelity.py``).
        """
        v, u = mask.nonzero(as_tuple=True)
        if v.numel() == 0:
            return
        z = depth[v, u].to(torch.float64)
        K64 = K.to(torch.float64)
        x_cam = torch.stack([(u.to(torch.float64) - K64[0, 2]) / K64[0, 0] * z,
                             (v.to(torch.float64) - K64[1, 2]) / K64[1, 1] * z, z])  # (3, M)
        pending = torch.ones_like(z, dtype=torch.bool)
        for ref in sorted(references, key=lambda r: -r.score):
            T_ref_target = np.linalg.inv(np.asarray(ref.T_world_cam, np.float64)) @ T_world_cam
            R = torch.as_tensor(T_ref_target[:3, :3], device=z.device)
            t = torch.as_tensor(T_ref_target[:3, 3:], device=z.device)
            x_ref = torch.addmm(t, R, x_cam)
            Kr = np.asarray(ref.K, np.float64)
            zr = x_ref[2]
            ur = x_ref[0] / zr * Kr[0, 0] + Kr[0, 2]
            vr = x_ref[1] / zr * Kr[1, 1] + Kr[1, 2]
            ref_depth = torch.as_tensor(np.asarray(ref.depth, np.float32), device=z.device)
            hr, wr = ref_depth.shape
            inside = pending & (zr > 0) & (ur >= 0) & (ur <= wr - 1) & (vr >= 0) & (vr <= hr - 1)
            ui = ur.round().long().clamp_(0, wr - 1)
            vi = vr.round().long().clamp_(0, hr - 1)
            seen = ref_depth[vi, ui].to(torch.float64)
            visible = inside & (seen > 0) & ((seen - zr).abs() <= self.detail_tolerance * zr)
            if not bool(visible.any()):
                continue
            image = torch.as_tensor(np.asarray(ref.rgb, np.float32), device=z.device).permute(2, 0, 1)[None]
            grid = torch.stack([ur[visible] / (wr - 1) * 2 - 1, vr[visible] / (hr - 1) * 2 - 1], -1)
            sampled = torch.nn.functional.grid_sample(image, grid.to(torch.float32)[None, None], mode="bilinear",
                                                      align_corners=True)[0, :, 0].T  # (m, 3)
            rgb[v[visible], u[visible]] = sampled.clamp_(0.0, 1.0)
            pending &= ~visible
            if not bool(pending.any()):
                return

    @staticmethod
    def _fill_from(layer, valid: torch.Tensor, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """Copy ``layer`` (a one-view RenderOutput) into the still-empty pixels; returns the new mask."""
        take = layer.mask[0] & ~valid
        rgb[take] = layer.rgb[0][take]
        depth[take] = layer.depth[0][take]
        return valid | take

    def _complete(self, rgb: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor) -> None:
        """Far-side depth completion and depth-guided colour copy of ``~valid``, in place (module doc).

        Only whole-line prefix scans touch every pixel of the rows / columns that hold holes; everything
        else is computed at the hole pixels alone.
        """
        h, w = depth.shape
        dev = depth.device
        for _ in range(self.max_passes):
            holes = ~valid
            if not bool(holes.any()) or not bool(valid.any()):
                return
            hv, hu = holes.nonzero(as_tuple=True)  # (M,) each, row-major
            rows = holes.any(1).nonzero().squeeze(1)
            cols = holes.any(0).nonzero().squeeze(1)
            line_of_row = torch.empty(h, dtype=torch.int64, device=dev)
            line_of_row[rows] = torch.arange(rows.numel(), device=dev)
            line_of_col = torch.empty(w, dtype=torch.int64, device=dev)
            line_of_col[cols] = torch.arange(cols.numel(), device=dev)
            horizontal = (valid[rows], depth[rows], line_of_row[hv], hu)
            vertical = (valid[:, cols].T.contiguous(), depth[:, cols].T.contiguous(), line_of_col[hu], hv)
            zb, dist, fz, frgb = [], [], [], []
            for is_row, (lines_valid, lines_depth, line, pos) in ((True, horizontal), (False, vertical)):
                n = lines_valid.shape[1]
                for flip in (False, True):
                    if flip:
                        lines_valid, lines_depth, pos = lines_valid.flip(1), lines_depth.flip(1), n - 1 - pos
                    b_depth, b_dist, b_fill, src = self._scan(lines_valid, lines_depth, line, pos)
                    if flip:
                        src = n - 1 - src
                    colour = rgb[hv, src] if is_row else rgb[src, hu]
                    zb.append(b_depth)
                    dist.append(b_dist)
                    fz.append(b_fill)
                    frgb.append(colour)
            zb, dist, fz, frgb = torch.stack(zb), torch.stack(dist), torch.stack(fz), torch.stack(frgb)
            # the occluder: the candidates continuing the nearest surface, when another is farther than that
            has = zb > 0
            near = torch.where(has, fz, math.inf).amin(0)
            occluder = fz <= near * (1.0 + self.occluder_tolerance)
            spread = (torch.where(has, fz, 0.0).amax(0) > near * (1.0 + self.occluder_tolerance))
            ok = has & ~(occluder & spread)
            best = torch.where(ok, dist, _FAR).argmin(0, keepdim=True)  # the first direction on ties
            take = ok.any(0)
            hv, hu = hv[take], hu[take]
            depth[hv, hu] = fz.gather(0, best)[0][take]
            rgb[hv, hu] = frgb.gather(0, best[..., None].expand(1, -1, 3))[0][take]
            valid[hv, hu] = True

    def _smooth_deep_fills(self, rgb: torch.Tensor, completed: torch.Tensor) -> None:
        """Average the completed colours over a window growing with the distance to the hole boundary."""
        if not bool(completed.any()):
            return
        mask = completed.cpu().numpy()
        dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
        image = rgb.cpu().numpy()
        out = image.copy()
        # a few blur levels, each pixel takes the level matching half its distance to the boundary
        sigmas = [s for s in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0) if s <= self.smooth_px] or [self.smooth_px]
        for k, sigma in enumerate(sigmas):
            lower = 2.0 * sigma
            upper = math.inf if k == len(sigmas) - 1 else 2.0 * sigmas[k + 1]
            band = mask & (dist >= lower) & (dist < upper)
            if band.any():
                out[band] = cv2.GaussianBlur(image, (0, 0), sigma)[band]
        rgb.copy_(torch.from_numpy(out).to(rgb.device))

    def _scan(self, valid: torch.Tensor, depth: torch.Tensor, line: torch.Tensor, pos: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the nearest valid pixel before ``pos`` on ``line`` proposes, for each hole (line, pos).

        ``valid``, ``depth``: (L, n) lines scanned from index 0 upwards. Returns per hole (M,): the boundary
        depth (0 where no valid pixel precedes it), the distance to it (``_FAR`` where none), the depth
        continued from it and the position on the line whose colour it takes (mirrored into the surface).
        """
        n = valid.shape[1]
        ar = torch.arange(n, device=valid.device)
        last_valid = torch.where(valid, ar, -1).cummax(1).values
        # surface runs: a run starts at a valid pixel whose predecessor is empty or a depth step away
        prev_d, cur_d = depth[:, :-1], depth[:, 1:]
        same = valid[:, :-1] & ((cur_d - prev_d).abs_() <= self.edge_tolerance * torch.maximum(cur_d, prev_d))
        starts = valid.clone()
        starts[:, 1:] &= ~same
        run_start = torch.where(starts, ar, -1).cummax(1).values
        lc = last_valid[line, pos]
        has = lc >= 0
        lc.clamp_(min=0)
        dist = pos - lc
        length = torch.where(has, lc - run_start[line, lc] + 1, 1).clamp_(1, self.mirror_max_px)
        # mirror: d = 1, 2, ... steps into the hole read lc, lc - 1, ..., lc - length + 1, then back again
        t = (dist - 1).clamp_(min=0).remainder_(2 * length)
        src = lc - torch.where(t < length, t, 2 * length - 1 - t)
        zb = torch.where(has, depth[line, lc], 0.0)
        ib = torch.where(has, torch.reciprocal(zb), 0.0)
        base = (length - 1).clamp_(max=self.slope_px)
        ib_back = torch.where(has, torch.reciprocal(depth[line, lc - base]), 0.0)
        slope = (ib - ib_back) / base.clamp(min=1).to(ib.dtype)
        fill_inv = torch.minimum(torch.maximum(ib + slope * dist.to(ib.dtype), ib * (1.0 - self.slope_limit)),
                                 ib * (1.0 + self.slope_limit))
        fill = torch.where(has, torch.reciprocal(fill_inv), 0.0)
        return zb, torch.where(has, dist, _FAR), fill, src


def _inpaint(rgb: torch.Tensor, holes: torch.Tensor) -> None:
    """Replace the colours (H, W, 3) float32 of ``holes`` (H, W) bool by Telea inpainting (in place)."""
    if bool(holes.any()):
        rgb.copy_(torch.from_numpy(telea_inpaint(rgb.cpu().numpy(), holes.cpu().numpy())).to(rgb.device))


def _back_project(rgb: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor, K: np.ndarray,
                  T_world_cam: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """World points (M, 3) float32 and colours (M, 3) of the pixels in ``mask`` (depth along the axis)."""
    v, u = mask.nonzero(as_tuple=True)
    z = depth[v, u].to(torch.float64)
    pix = torch.stack([u.to(torch.float64), v.to(torch.float64), torch.ones_like(z)])  # (3, M)
    M = torch.as_tensor(T_world_cam[:3, :3] @ np.linalg.inv(K), device=depth.device)
    t = torch.as_tensor(T_world_cam[:3, 3:], device=depth.device)
    xyz = torch.addmm(t, M, pix * z).T.to(torch.float32).contiguous()
    return xyz, rgb[v, u].contiguous()
