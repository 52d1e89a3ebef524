"""Occlusion fillers: the pluggable last stage of :func:`~worldstereo_ros.stereo.synthesis.synthesize_right`.

In a rectified rig every occlusion of the right view is a *background disocclusion*: the right camera
sees a strip of background that a nearer surface hid from the left camera. A filler must therefore draw
on the background side of each hole, never on the foreground edge beside it (which is what a plain
inpainting smears in, and what keeps a one-pixel warp + Telea low on occluded pixels).

* :class:`BackgroundTeleaFiller` (classical, CPU, the default): Telea inpainting with the foreground
  protected: covered pixels within ``band_px`` on the row of a hole whose disparity is more than
  ``fg_margin_px`` above the hole's background disparity join the inpainting mask, so Telea only
  propagates background colour into the hole; they are restored afterwards.
* :class:`GeneratorFiller`: any :class:`~worldstereo_ros.generation.base.Generator` backend (render_fill
  now; the learned generator when it lands) fills the right view from its render, as the refiner of
  SpatialDreamer does. The deviation strength is passed on for backends that can condition on it.
"""

from __future__ import annotations

import abc

import cv2
import numpy as np

from worldstereo_ros.errors import InputError


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


def _to_u8(rgb: np.ndarray) -> np.ndarray:
    return (rgb * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


class BackgroundTeleaFiller(OcclusionFiller):
    """Telea inpainting that only sees the background side of each occlusion (module doc).

    Args:
        radius_px: Telea neighbourhood radius, pixels.
        band_px: how far along the row from a hole a foreground edge is protected, pixels.
        fg_margin_px: a covered pixel counts as foreground when its disparity exceeds the nearby hole's
            background disparity by more than this, pixels.
    """

    name = "classical"

    def __init__(self, radius_px: float = 3.0, band_px: int = 9, fg_margin_px: float = 1.0) -> None:
        if not (np.isfinite(radius_px) and radius_px > 0):
            raise InputError("radius_px", f"expected a finite number > 0, got {radius_px!r}")
        if isinstance(band_px, bool) or not isinstance(band_px, int) or band_px < 1:
            raise InputError("band_px", f"expected an integer >= 1, got {band_px!r}")
        if not (np.isfinite(fg_margin_px) and fg_margin_px >= 0):
            raise InputError("fg_margin_px", f"expected a finite number >= 0, got {fg_margin_px!r}")
        self.radius_px = float(radius_px)
        self.band_px = band_px
        self.fg_margin_px = float(fg_margin_px)

    def fill(self, rgb, occlusion, disparity, observed_disparity):
        occlusion = np.asarray(occlusion, dtype=bool)
        if not occlusion.any():
            return np.array(rgb, dtype=np.float32, copy=True)
        kernel = np.ones((1, 2 * self.band_px + 1), np.uint8)
        near_hole = cv2.dilate(occlusion.astype(np.uint8), kernel).astype(bool) & ~occlusion
        # The largest background disparity among the holes within the band: anything nearer is foreground.
        hole_bg = cv2.dilate(np.where(occlusion, disparity, -np.inf).astype(np.float32), kernel)
        observed = np.nan_to_num(observed_disparity, nan=-np.inf)
        foreground = near_hole & (observed > hole_bg + self.fg_margin_px)
        mask = occlusion | foreground
        src = _to_u8(np.where(mask[..., None], 0.0, rgb))
        painted = cv2.inpaint(src, mask.astype(np.uint8) * 255, self.radius_px, cv2.INPAINT_TELEA)
        out = np.array(rgb, dtype=np.float32, copy=True)
        out[occlusion] = painted[occlusion].astype(np.float32) / np.float32(255.0)
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
        painted = cv2.inpaint(_to_u8(rgb), occlusion.astype(np.uint8) * 255, self.radius_px, cv2.INPAINT_TELEA)
        out = np.array(rgb, dtype=np.float32, copy=True)
        out[occlusion] = painted[occlusion].astype(np.float32) / np.float32(255.0)
        return out


class GeneratorFiller(OcclusionFiller):
    """Fill with a generator backend (:mod:`worldstereo_ros.generation`): the right view, its depth
    (from the complete disparity) and the covered mask become a one-frame generation request.

    Args:
        backend: a :class:`~worldstereo_ros.generation.base.Generator` or a backend name.
        K_right: (3, 3) right intrinsics. fx_baseline: ``fx * B`` (pixels x metres). doffs_px: principal
            point offset (depth = fx * B / (d + doffs)).
    """

    def __init__(self, backend, K_right: np.ndarray, fx_baseline: float, doffs_px: float = 0.0) -> None:
        from worldstereo_ros.generation.base import Generator, create_backend

        self.backend = create_backend(backend) if isinstance(backend, str) else backend
        if not isinstance(self.backend, Generator):
            raise InputError("backend", f"expected a Generator or a backend name, got {type(backend).__name__}")
        self.name = self.backend.name
        self.K_right = np.asarray(K_right, dtype=np.float64)
        self.fx_baseline = float(fx_baseline)
        self.doffs_px = float(doffs_px)

    def fill(self, rgb, occlusion, disparity, observed_disparity):
        from worldstereo_ros.generation.base import GenerationRequest
        from worldstereo_ros.snapshot import Snapshot

        occlusion = np.asarray(occlusion, dtype=bool)
        h, w = occlusion.shape
        shifted = np.asarray(disparity, dtype=np.float64) + self.doffs_px
        depth = np.where(np.isfinite(shifted) & (shifted > 0), self.fx_baseline / np.maximum(shifted, 1e-6), 0.0)
        depth = depth.astype(np.float32)
        covered = ~occlusion
        request = GenerationRequest(
            K=self.K_right[None], T_world_cam=np.eye(4)[None], height=h, width=w,
            cond_rgb=np.asarray(rgb, dtype=np.float32)[None], cond_depth=np.where(covered, depth, 0.0)[None],
            cond_mask=covered[None], cond_index=np.where(covered, np.arange(h * w).reshape(h, w), -1)[None],
            references=[[]], source=Snapshot(np.asarray(rgb, dtype=np.float32), depth, self.K_right),
            trajectory_id="stereo_right")
        frames = self.backend.generate(request)
        out = np.array(rgb, dtype=np.float32, copy=True)
        out[occlusion] = frames.rgb[0][occlusion]
        return out


def create_filler(name: str, K_right: np.ndarray | None = None, fx_baseline: float | None = None,
                  doffs_px: float = 0.0) -> OcclusionFiller:
    """A filler by name: ``classical`` (background Telea), ``telea``, or any generator backend name
    (then ``K_right`` and ``fx_baseline`` are required)."""
    if name == BackgroundTeleaFiller.name:
        return BackgroundTeleaFiller()
    if name == TeleaFiller.name:
        return TeleaFiller()
    from worldstereo_ros.generation.base import available_backends

    if name in available_backends():
        if K_right is None or fx_baseline is None:
            raise InputError("fill", f"the {name!r} backend needs the rig (K_right, fx_baseline)")
        return GeneratorFiller(name, K_right, fx_baseline, doffs_px)
    raise InputError("fill", f"unknown filler {name!r}; valid: classical, telea, {', '.join(available_backends())}")
