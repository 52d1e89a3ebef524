"""The generator interface every backend implements, and the registry that picks one by name.

A backend turns the conditions of one trajectory (target cameras, the global cache rendered into
them, retrieved reference keyframes, the source snapshot) into rgb + depth per target frame and a
mask of imagined pixels. Backends: ``render_fill`` (CPU, no weights, the default); later the
WorldStereo video-diffusion model and SpatialDreamer stereo synthesis, loaded from local weights.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from worldstereo_ros.errors import BackendError, InputError
from worldstereo_ros.snapshot import Snapshot

#: on_frame(index, rgb (H, W, 3) float32, depth (H, W) float32, imagined (H, W) bool): called by a
#: backend as soon as frame ``index`` is final, so callers can stream views before the whole
#: trajectory is done (a video model that denoises all frames jointly calls it at the end).
FrameCallback = Callable[[int, np.ndarray, np.ndarray, np.ndarray], None]


@dataclass
class Reference:
    """A keyframe retrieved from the memory bank for one target frame (spatial-stereo memory).

    Attributes:
        rgb: (H, W, 3) float32 in [0, 1].
        depth: (H, W) float32 metres, 0 = unknown.
        pointmap: (H, W, 3) float32 world-frame points of each pixel (0 where depth is 0): the 3D
            correspondences between the reference and any target camera.
        K: (3, 3) float64 intrinsics. T_world_cam: (4, 4) float64 pose.
        score: retrieval score in [0, 1] (frustum overlap x view-angle penalty).
        keyframe_id: id of the keyframe in the bank.
    """

    rgb: np.ndarray
    depth: np.ndarray
    pointmap: np.ndarray
    K: np.ndarray
    T_world_cam: np.ndarray
    score: float
    keyframe_id: int


@dataclass
class GenerationRequest:
    """Everything a backend needs to generate one trajectory of N frames of size H x W.

    Attributes:
        K: (N, 3, 3) float64 target intrinsics.
        T_world_cam: (N, 4, 4) float64 target poses (OpenCV optical frames).
        height, width: target image size in pixels.
        cond_rgb: (N, H, W, 3) float32 global cache rendered into each target camera.
        cond_depth: (N, H, W) float32 metres, 0 where the cache sees nothing.
        cond_mask: (N, H, W) bool, True where the render has a point.
        cond_index: (N, H, W) int64 index of the rendered cache point, -1 where none.
        references: per target frame, the retrieved references (possibly empty lists).
        source: the snapshot the run started from.
        trajectory_id: name of the trajectory (for logs and seeds).
    """

    K: np.ndarray
    T_world_cam: np.ndarray
    height: int
    width: int
    cond_rgb: np.ndarray
    cond_depth: np.ndarray
    cond_mask: np.ndarray
    cond_index: np.ndarray
    references: list[list[Reference]]
    source: Snapshot
    trajectory_id: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.T_world_cam.shape[0])

    def check(self) -> None:
        """Raise InputError naming the first field whose shape disagrees with (N, H, W)."""
        n, h, w = self.num_frames, self.height, self.width
        expected = {
            "K": (n, 3, 3),
            "T_world_cam": (n, 4, 4),
            "cond_rgb": (n, h, w, 3),
            "cond_depth": (n, h, w),
            "cond_mask": (n, h, w),
            "cond_index": (n, h, w),
        }
        for name, shape in expected.items():
            actual = tuple(getattr(self, name).shape)
            if actual != shape:
                raise InputError(name, f"expected shape {shape}, got {actual}")
        if n < 1:
            raise InputError("T_world_cam", "a trajectory needs at least one frame")
        if len(self.references) != n:
            raise InputError("references", f"expected one list per frame ({n}), got {len(self.references)}")


@dataclass
class GeneratedFrames:
    """A backend's output for one trajectory.

    Attributes:
        rgb: (N, H, W, 3) float32 in [0, 1].
        depth: (N, H, W) float32, 0 = unknown; metres when ``depth_is_metric``, else up to scale.
        imagined: (N, H, W) bool, True where the pixel was imagined (not observed by the memories).
        depth_is_metric: whether depth shares the cache's metric scale (else the pipeline aligns Sim(3)).
        timings_s: per-stage seconds, summed over the trajectory.
    """

    rgb: np.ndarray
    depth: np.ndarray
    imagined: np.ndarray
    depth_is_metric: bool = True
    timings_s: dict[str, float] = field(default_factory=dict)
    confidence: np.ndarray | None = None  # (N, H, W) float32 in [0, 1] per-pixel confidence of imagined pixels; None = backend gives none


class Generator(abc.ABC):
    """A generator backend. Subclasses set ``name`` and implement :meth:`generate`."""

    name: str = ""
    #: Whether the backend reads ``references`` (spatial-stereo memory); the pipeline skips
    #: retrieval for backends that don't.
    uses_references: bool = True

    @abc.abstractmethod
    def generate(
        self,
        request: GenerationRequest,
        generator: torch.Generator | None = None,
        on_frame: FrameCallback | None = None,
    ) -> GeneratedFrames:
        """Generate every frame of ``request``; deterministic for a given ``generator`` seed.

        Implementations call ``request.check()`` first and ``on_frame`` once per frame, in order.
        """


_BACKENDS: dict[str, type[Generator]] = {}


def register_backend(cls: type[Generator]) -> type[Generator]:
    """Class decorator: make a backend available to :func:`create_backend` under ``cls.name``."""
    if not cls.name:
        raise BackendError(f"{cls.__name__} has no name")
    _BACKENDS[cls.name] = cls
    return cls


def available_backends() -> list[str]:
    """Names accepted by :func:`create_backend`."""
    _import_builtin_backends()
    return sorted(_BACKENDS)


def create_backend(name: str, **options) -> Generator:
    """Instantiate the backend called ``name`` with its options.

    Raises:
        InputError: for an unknown name, listing the valid ones.
    """
    _import_builtin_backends()
    if name not in _BACKENDS:
        raise InputError("backend", f"unknown generator backend {name!r}; valid: {', '.join(sorted(_BACKENDS))}")
    return _BACKENDS[name](**options)


def _import_builtin_backends() -> None:
    # Imported on first use so that importing the interface never pulls in a backend's dependencies.
    from worldstereo_ros.generation import render_fill  # noqa: F401
    from worldstereo_ros.generation.learned import backend  # noqa: F401
