"""Occlusion fillers: the pluggable last stage of :func:`~worldstereo_ros.stereo.synthesis.synthesize_right`.

In a rectified rig every occlusion of the right view is a *background disocclusion*: the right camera
sees a strip of background that a nearer surface hid from the left camera. A filler must therefore draw
on the background side of each hole, never on the foreground edge beside it (which is what a plain
inpainting smears in, and what keeps a one-pixel warp + Telea low on occluded pixels).

* :class:`BackgroundPushPullFiller` (``classical``, CPU, the default): the occluder's edge is hidden
  (covered pixels within ``band_px`` on the row of a hole whose disparity is more than ``fg_margin_px``
  above the hole's background disparity), then a push-pull pyramid fills the hole from the background
  around it. Better than Telea on Middlebury occlusions and a few times faster.
* :class:`BackgroundTeleaFiller` (``background-telea``): the same hiding, Telea inpainting instead.
* :class:`GeneratorFiller`: any :class:`~worldstereo_ros.generation.base.Generator` backend (``learned``:
  the FillNet as the occlusion refiner, as SpatialDreamer's refiner; ``render_fill`` through
  :class:`RenderFillStereoFiller`) fills the disocclusions from a one-frame request, optionally at a reduced
  size, with the occluder's edge hidden and the out-of-view border strip left to row-edge replication
  (:data:`GENERATOR_FILL_OPTIONS`).
"""

from __future__ import annotations

import abc

import cv2
import numpy as np

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.base import GenerationRequest, Generator, available_backends, create_backend
from worldstereo_ros.generation.render_fill import RenderFillGenerator
from worldstereo_ros.geometry.inpaint import telea_inpaint
from worldstereo_ros.snapshot import Snapshot


class OcclusionFiller(abc.ABC):
    """Fills the occluded pixels of a synthesised right view."""

    #: Short name used in reports, the CLI and the ROS parameter ``fill``.
    name: str = ""

    @abc.abstractmethod
    def fill(self, rgb: np.ndarray, occlusion: np.ndarray, disparity: np.ndarray,
             observed_disparity: np.ndarray) -> np.ndarray:
        """Return a filled copy of ``rgb``.

        Args:
            rgb: (H, W, 3) float32 in [0, 1], the right view; occluded pixels are 0. Not modified.
            occlusion: (H, W) bool, pixels to fill.
            disparity: (H, W) float32 right-view disparity, pixels, complete (occlusions carry the
                background's disparity).
            observed_disparity: (H, W) float32, the same with NaN on occluded pixels.
        Returns:
            (H, W, 3) float32 in [0, 1]; equal to ``rgb`` outside ``occlusion``.
        """


def _check_band(radius_px: float | None, band_px: int, fg_margin_px: float) -> None:
    if radius_px is not None and not (np.isfinite(radius_px) and radius_px > 0):
        raise InputError("radius_px", f"expected a finite number > 0, got {radius_px!r}")
    if isinstance(band_px, bool) or not isinstance(band_px, int) or band_px < 1:
        raise InputError("band_px", f"expected an integer >= 1, got {band_px!r}")
    if not (np.isfinite(fg_margin_px) and fg_margin_px >= 0):
        raise InputError("fg_margin_px", f"expected a finite number >= 0, got {fg_margin_px!r}")


def foreground_beside_holes(occlusion: np.ndarray, disparity: np.ndarray, observed_disparity: np.ndarray,
                            band_px: int, fg_margin_px: float) -> np.ndarray:
    """(H, W) bool: covered pixels within ``band_px`` on the row of a hole whose observed disparity exceeds
    the largest background disparity of the holes there by more than ``fg_margin_px`` (the occluder's edge)."""
    kernel = np.ones((1, 2 * band_px + 1), np.uint8)
    near_hole = cv2.dilate(occlusion.astype(np.uint8), kernel).astype(bool) & ~occlusion
    hole_bg = cv2.dilate(np.where(occlusion, disparity, -np.inf).astype(np.float32), kernel)
    observed = np.nan_to_num(observed_disparity, nan=-np.inf)
    return near_hole & (observed > hole_bg + fg_margin_px)


def push_pull(rgb: np.ndarray, known: np.ndarray, fill: np.ndarray | None = None) -> np.ndarray:
    """Fill unknown pixels from a weighted image pyramid (push-pull): each level averages the known pixels
    below it, and unknown pixels take the coarser level's value, so holes get the mean colour of their
    nearest known surroundings at the scale of the hole.

    Args:
        rgb: (H, W, 3) float32. known: (H, W) bool. fill: (H, W) bool, the pixels to return (default: all
            unknown ones); only those are computed at full resolution.
    Returns:
        (N, 3) float32 colours of the ``fill`` pixels, in row-major order.
    """
    w = known.astype(np.float32)
    level0 = np.empty(rgb.shape[:2] + (4,), np.float32)
    np.multiply(rgb, w[..., None], out=level0[..., :3])
    level0[..., 3] = w
    pyramid = [cv2.pyrDown(level0)]
    while min(pyramid[-1].shape[:2]) > 4:
        pyramid.append(cv2.pyrDown(pyramid[-1]))
    filled = pyramid[-1]
    for level in pyramid[-2::-1]:
        coarse = cv2.pyrUp(filled, dstsize=(level.shape[1], level.shape[0]))
        filled = level + (1.0 - np.minimum(level[..., 3:], 1.0)) * coarse
    # full resolution: unknown pixels have weight 0 there, so they are the upsampled coarse value
    top = cv2.pyrUp(filled, dstsize=(rgb.shape[1], rgb.shape[0]))
    sel = top[~known if fill is None else fill]
    return sel[:, :3] / np.maximum(sel[:, 3:], 1e-6)


def out_of_view(occlusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The strip at the right border of the right view that the left camera never sees: the occluded pixels
    right of the last covered pixel of their row (as opposed to disocclusions beside foreground edges, which
    have background on both sides).

    Args:
        occlusion: (H, W) bool.
    Returns:
        (strip (H, W) bool, last covered column per row (H,) int32, -1 for rows without any).
    """
    occlusion = np.asarray(occlusion, dtype=bool)
    cols = np.arange(occlusion.shape[1], dtype=np.int32)[None, :]
    last_covered = np.where(occlusion, np.int32(-1), cols).max(axis=1)
    return (cols > last_covered[:, None]) & (last_covered[:, None] >= 0), last_covered


class BackgroundPushPullFiller(OcclusionFiller):
    """Push-pull filling from the background side only (module doc): the occluder's edge beside each hole
    is hidden from the pyramid, so the hole takes the colour of the background around it.

    Args:
        band_px: how far along the row from a hole a foreground edge is hidden, pixels.
        fg_margin_px: a covered pixel counts as foreground when its disparity exceeds the nearby hole's
            background disparity by more than this, pixels.
    """

    name = "classical"

    def __init__(self, band_px: int = 9, fg_margin_px: float = 1.0) -> None:
        _check_band(None, band_px, fg_margin_px)
        self.band_px = band_px
        self.fg_margin_px = float(fg_margin_px)

    def fill(self, rgb, occlusion, disparity, observed_disparity):
        occlusion = np.asarray(occlusion, dtype=bool)
        out = np.array(rgb, dtype=np.float32, copy=True)
        if not occlusion.any():
            return out
        hidden = occlusion | foreground_beside_holes(occlusion, disparity, observed_disparity, self.band_px,
                                                     self.fg_margin_px)
        out[occlusion] = push_pull(out, ~hidden, occlusion)
        return out


class BackgroundTeleaFiller(OcclusionFiller):
    """Telea inpainting that only sees the background side of each occlusion (module doc).

    Args:
        radius_px: Telea neighbourhood radius, pixels.
        band_px, fg_margin_px: as :class:`BackgroundPushPullFiller`.
    """

    name = "background-telea"

    def __init__(self, radius_px: float = 3.0, band_px: int = 9, fg_margin_px: float = 1.0) -> None:
        _check_band(radius_px, band_px, fg_margin_px)
        self.radius_px = float(radius_px)
        self.band_px = band_px
        self.fg_margin_px = float(fg_margin_px)

    def fill(self, rgb, occlusion, disparity, observed_disparity):
        occlusion = np.asarray(occlusion, dtype=bool)
        if not occlusion.any():
            return np.array(rgb, dtype=np.float32, copy=True)
        mask = occlusion | foreground_beside_holes(occlusion, disparity, observed_disparity, self.band_px,
                                                   self.fg_margin_px)
        painted = telea_inpaint(np.where(mask[..., None], 0.0, rgb), mask, self.radius_px)
        out = np.array(rgb, dtype=np.float32, copy=True)
        out[occlusion] = painted[occlusion]
        return out


class TeleaFiller(OcclusionFiller):
    """Plain Telea inpainting of the occlusions (the classical reference, no background bias)."""

    name = "telea"

    def __init__(self, radius_px: float = 3.0) -> None:
        if not (np.isfinite(radius_px) and radius_px > 0):
            raise InputError("radius_px", f"expected a finite number > 0, got {radius_px!r}")
        self.radius_px = float(radius_px)

    def fill(self, rgb, occlusion, disparity, observed_disparity):
        occlusion = np.asarray(occlusion, dtype=bool)
        return telea_inpaint(rgb, occlusion, self.radius_px)


class GeneratorFiller(OcclusionFiller):
    """Fill with a generator backend (:mod:`worldstereo_ros.generation`): the right view, its depth
    (from the complete disparity) and the covered mask become a one-frame generation request.

    Args:
        backend: a :class:`~worldstereo_ros.generation.base.Generator` or a backend name.
        K_right: (3, 3) right intrinsics. fx_baseline: ``fx * B`` (pixels x metres). doffs_px: principal
            point offset (depth = fx * B / (d + doffs)).
        scale: the request is made at this fraction of the image size, in (0, 1] (the rgb area-averaged,
            a pixel is a hole when any pixel of its footprint is, K scaled), and the fill is resized back
            bilinearly and used on the occluded pixels only. Disocclusions are smooth background, so half
            size loses little there and a network costs a quarter as much.
        hide_foreground: the occluder's edge beside each hole (:func:`foreground_beside_holes`) is a hole in
            the request too, so the backend fills from the background side (module doc); only the occluded
            pixels take the fill. On Middlebury motorcycle: occluded-pixel PSNR +0.6 dB for the learned fill
            at half size, +0.3 dB for render_fill.
        fill_border: the backend also fills the strip at the right border that the left camera never sees
            (:func:`out_of_view`: 60-80 % of the occluded pixels of a 7-Scenes frame at a 65 mm baseline).
            False: each row of that strip repeats the row's last covered pixel and is known context for the
            backend, which then fills the disocclusions only (the refiner's job in SpatialDreamer). No stereo
            matcher reads that strip (no left pixel maps there) and a generator could only extrapolate it.
        band_px, fg_margin_px: as :class:`BackgroundPushPullFiller`.
    """

    def __init__(self, backend, K_right: np.ndarray, fx_baseline: float, doffs_px: float = 0.0,
                 scale: float = 1.0, hide_foreground: bool = True, fill_border: bool = True, band_px: int = 9,
                 fg_margin_px: float = 1.0) -> None:
        _check_band(None, band_px, fg_margin_px)
        self.hide_foreground, self.band_px, self.fg_margin_px = bool(hide_foreground), band_px, float(fg_margin_px)
        self.fill_border = bool(fill_border)

        self.backend = create_backend(backend) if isinstance(backend, str) else backend
        if not isinstance(self.backend, Generator):
            raise InputError("backend", f"expected a Generator or a backend name, got {type(backend).__name__}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.0 < scale <= 1.0:
            raise InputError("scale", f"expected a number in (0, 1], got {scale!r}")
        self.name = self.backend.name
        self.K_right = np.asarray(K_right, dtype=np.float64)
        self.fx_baseline = float(fx_baseline)
        self.doffs_px = float(doffs_px)
        self.scale = float(scale)

    def _split(self, rgb, occlusion: np.ndarray, disparity, observed_disparity
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb copy, with the out-of-view strip filled unless ``fill_border``; the request's holes (H, W)
        bool; the pixels that take the backend's output (H, W) bool)."""
        out = np.array(rgb, dtype=np.float32, copy=True)
        hidden = occlusion
        if self.hide_foreground:
            hidden = occlusion | foreground_beside_holes(occlusion, disparity, observed_disparity, self.band_px,
                                                         self.fg_margin_px)
        target = occlusion
        if not self.fill_border:
            strip, last = out_of_view(occlusion)
            if strip.any():
                rows = np.nonzero(strip)[0]
                out[strip] = out[rows, last[rows]]
                hidden, target = hidden & ~strip, occlusion & ~strip
        return out, hidden, target

    def fill(self, rgb, occlusion, disparity, observed_disparity):

        occlusion = np.asarray(occlusion, dtype=bool)
        if not occlusion.any():
            return np.array(rgb, dtype=np.float32, copy=True)
        out, hidden, target = self._split(rgb, occlusion, disparity, observed_disparity)
        if not target.any():
            return out
        h, w = occlusion.shape
        shifted = np.asarray(disparity, dtype=np.float64) + self.doffs_px
        depth = np.where(np.isfinite(shifted) & (shifted > 0), self.fx_baseline / np.maximum(shifted, 1e-6), 0.0)
        depth = depth.astype(np.float32)
        src, hole, K = out, hidden, self.K_right
        if self.scale < 1.0:
            size = (max(2, round(w * self.scale)), max(2, round(h * self.scale)))
            sx, sy = size[0] / w, size[1] / h
            src = cv2.resize(out, size, interpolation=cv2.INTER_AREA)
            # any hole pixel in the footprint makes a hole: a mixed pixel would carry the zeros of the hole
            hole = cv2.resize(hidden.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
            depth = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)
            K = K.copy()
            K[0] *= sx
            K[1] *= sy
            K[0, 2] += 0.5 * sx - 0.5  # pixel centres: (x + 0.5) * s - 0.5
            K[1, 2] += 0.5 * sy - 0.5
        filled = self._generate(src, hole, depth, K)
        if self.scale < 1.0:
            filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
        out[target] = filled[target]
        return out

    def _generate(self, rgb: np.ndarray, hole: np.ndarray, depth: np.ndarray, K: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32: the backend's frame for one request at this size."""
        h, w = hole.shape
        covered = ~hole
        request = GenerationRequest(
            K=K[None], T_world_cam=np.eye(4)[None], height=h, width=w,
            cond_rgb=np.where(covered[..., None], rgb, 0.0).astype(np.float32)[None],
            cond_depth=np.where(covered, depth, 0.0)[None],
            cond_mask=covered[None], cond_index=np.where(covered, np.arange(h * w).reshape(h, w), -1)[None],
            references=[[]], source=Snapshot(rgb, depth, K), trajectory_id="stereo_right")
        return self.backend.generate(request).rgb[0]


class RenderFillStereoFiller(GeneratorFiller):
    """The ``render_fill`` backend as stereo's occlusion filler, without the work whose result stereo drops.

    For a one-frame request with no references and no previous frame, render_fill runs only its layer 4:
    a depth completion of the holes, then (``colour_fill="inpaint"``, its default) Telea inpainting of the
    completed pixels from the covered ones. Stereo keeps only the colour (the rig's complete disparity
    already gives every occluded pixel its background depth), so this filler computes that colour directly,
    Telea of the holes (the occlusions and covered pixels without depth, which render_fill treats as
    holes too, and the occluder's edge when ``hide_foreground``), skipping the completion: the same pixels
    (``test_render_fill_fast_path_equals_the_backend``) at a fraction of the time, which keeps stereo_node at
    >= 10 Hz. With any other backend configuration (``colour_fill="mirror"``) or a request ``scale`` < 1 the
    backend itself runs (:class:`GeneratorFiller`).
    """

    def __init__(self, K_right: np.ndarray, fx_baseline: float, doffs_px: float = 0.0, scale: float = 1.0,
                 hide_foreground: bool = False, fill_border: bool = True, **options) -> None:
        super().__init__(create_backend("render_fill", **options), K_right, fx_baseline, doffs_px, scale,
                         hide_foreground, fill_border)
        self._direct = getattr(self.backend, "colour_fill", None) == "inpaint"

    def fill(self, rgb, occlusion, disparity, observed_disparity):
        if not self._direct or self.scale < 1.0:  # the backend's own path (a resized request)
            return super().fill(rgb, occlusion, disparity, observed_disparity)
        occlusion = np.asarray(occlusion, dtype=bool)
        if not occlusion.any():
            return np.array(rgb, dtype=np.float32, copy=True)
        out, hidden, target = self._split(rgb, occlusion, disparity, observed_disparity)
        if not target.any():
            return out
        shifted = np.asarray(disparity, dtype=np.float64) + self.doffs_px
        holes = hidden | ~(np.isfinite(shifted) & (shifted > 0))  # depth 0: render_fill fills these as well
        painted = telea_inpaint(np.where(holes[..., None], np.float32(0.0), out), holes)
        out[target] = painted[target]
        return out


#: Stereo options of each generator backend's fill (:class:`GeneratorFiller`); others take the class defaults.
#: Both leave the out-of-view border strip to row-edge replication (render_fill 2-3x faster per fill on 7-Scenes,
#: which keeps stereo_node at 10 Hz; Middlebury motorcycle occluded PSNR -0.07 dB render_fill, -0.26 dB learned).
#: learned: 0.4 of the size (>= 5 Hz at 640 x 480 on a loaded CPU; 0.5 costs 0.1 dB less on Middlebury
#: occluded pixels and 30 % more time) with the occluder hidden (+0.6 dB on occluded pixels).
#: render_fill: the backend's own colours otherwise (Telea of the holes; hiding the occluder would make it the
#: ``background-telea`` filler).
GENERATOR_FILL_OPTIONS: dict[str, dict] = {
    "learned": dict(scale=0.4, hide_foreground=True, fill_border=False),
    "render_fill": dict(scale=1.0, hide_foreground=False, fill_border=False),
}


def create_filler(name: str, K_right: np.ndarray | None = None, fx_baseline: float | None = None,
                  doffs_px: float = 0.0, scale: float | None = None) -> OcclusionFiller:
    """A filler by name: ``classical`` (background push-pull), ``background-telea``, ``telea``, or any
    generator backend name (then ``K_right`` and ``fx_baseline`` are required; ``scale`` is the request
    scale of :class:`GeneratorFiller`; other options from :data:`GENERATOR_FILL_OPTIONS`)."""
    if name == BackgroundPushPullFiller.name:
        return BackgroundPushPullFiller()
    if name == BackgroundTeleaFiller.name:
        return BackgroundTeleaFiller()
    if name == TeleaFiller.name:
        return TeleaFiller()

    if name in available_backends():
        if K_right is None or fx_baseline is None:
            raise InputError("fill", f"the {name!r} backend needs the rig (K_right, fx_baseline)")
        options = dict(GENERATOR_FILL_OPTIONS.get(name, {}))
        if scale is not None:
            options["scale"] = scale
        if name == RenderFillGenerator.name:
            return RenderFillStereoFiller(K_right, fx_baseline, doffs_px, **options)
        return GeneratorFiller(name, K_right, fx_baseline, doffs_px, **options)
    raise InputError("fill", f"unknown filler {name!r}; valid: classical, background-telea, telea, "
                           f"{', '.join(available_backends())}")
