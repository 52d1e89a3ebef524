"""The generator interface every backend implements, and the registry that picks one by name.

A backend turns the conditions of one trajectory (target cameras, the global cache rendered into
them, retrieved reference keyframes, the source snapshot) into rgb + depth per target frame and a
mask of imagined pixels. Backends: ``render_fill`` (CPU, no weights, the default) and ``worldstereo``
(the released WorldStereo video-diffusion model, local weights, GPU).

The seam a heavy backend needs lives here too: a lifecycle (the backend is built once, ``warmup()``
before the first request, ``close()`` frees its device memory, ``memory_estimate()`` before loading),
its device and dtype, its :class:`Capabilities` (frame-count rule, resolution buckets, whether its
depth is metric), and the registry. The registry maps a backend name to a ``"module:attribute"``
string resolved on first use, so this module never imports a backend (no import cycle with the
backends, which import this module) and listing the names costs nothing. Registering a backend is
one line in :data:`BACKEND_PATHS` (or one :func:`register_backend_path` call).
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from worldstereo_ros.errors import BackendError, InputError, WorldStereoError
from worldstereo_ros.memory.types import Reference
from worldstereo_ros.snapshot import Snapshot

#: on_frame(index, rgb (H, W, 3) float32, depth (H, W) float32, imagined (H, W) bool): called by a
#: backend as soon as frame ``index`` is final, so callers can stream views before the whole
#: trajectory is done (a video model that denoises all frames jointly calls it at the end).
FrameCallback = Callable[[int, np.ndarray, np.ndarray, np.ndarray], None]
#: on_step(step, total): called by an iterative backend after each denoising step (1-based ``step``
#: of ``total`` over the whole trajectory), so progress moves while no frame is final yet.
StepCallback = Callable[[int, int], None]
#: should_cancel() -> bool: polled by an iterative backend between steps; True stops the request
#: with :class:`GenerationCancelled`.
CancelCheck = Callable[[], bool]


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
        prompt: text describing the scene, for text-conditioned backends ("" = none).
        start_rgb: (H, W, 3) float32 in [0, 1], the real image seen at pose 0 (image-to-video backends
            need it), or None when pose 0 is not a real view (then ``cond_rgb[0]`` is used).
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
    prompt: str = ""
    start_rgb: np.ndarray | None = None

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
        if not isinstance(self.prompt, str):
            raise InputError("prompt", f"expected a str, got {type(self.prompt).__name__}")
        if self.start_rgb is not None and tuple(self.start_rgb.shape) != (h, w, 3):
            raise InputError("start_rgb", f"expected shape {(h, w, 3)}, got {tuple(self.start_rgb.shape)}")


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
    # (N, H, W) float32 in [0, 1]: per-pixel confidence of imagined pixels; None = the backend gives none
    confidence: np.ndarray | None = None


class GenerationCancelled(WorldStereoError):
    """Raised by a backend when the request's cancel check returned True between two steps."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can produce; the pipeline, CLI and node read it instead of the backend's name.

    Attributes:
        frame_rule: how many frames one model call makes: ``"any"`` (every N >= 1 directly) or
            ``"chunks:<n>"`` (the model makes exactly n frames per call, frame 0 a real image; the
            backend builds n-pose supersets and chains chunks itself, so any N is still accepted).
        resolution_buckets: (height, width) pairs in pixels the model runs at (the backend resizes to
            the nearest aspect and back, rescaling K); empty = any size.
        depth_is_metric: whether ``GeneratedFrames.depth`` shares the cache's metric scale.
        uses_prompt: whether ``GenerationRequest.prompt`` changes the output.
        needs_weights: whether the backend reads weights from disk.
    """

    frame_rule: str = "any"
    resolution_buckets: tuple[tuple[int, int], ...] = ()
    depth_is_metric: bool = True
    uses_prompt: bool = False
    needs_weights: bool = False


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a backend needs, known before (or without) loading anything.

    Attributes:
        weights_bytes: parameters resident on the device.
        activations_bytes: peak transient memory of one request on the device (estimate).
        host_bytes: memory held on the host (offloaded weights, pinned buffers).
        notes: how the numbers were obtained (dtype, offload mode, assumptions).
    """

    weights_bytes: int = 0
    activations_bytes: int = 0
    host_bytes: int = 0
    notes: str = ""

    @property
    def device_bytes(self) -> int:
        return self.weights_bytes + self.activations_bytes


class Generator(abc.ABC):
    """A generator backend. Subclasses set ``name`` and implement :meth:`generate`.

    Lifecycle: construct once (cheap or not; a heavy backend may load lazily in :meth:`warmup`),
    call :meth:`warmup` before the first request so its latency is not paid by a user, serve any
    number of :meth:`generate` calls with the same instance, and :meth:`close` to free device memory.
    A closed backend reloads on the next :meth:`warmup` or :meth:`generate`. The defaults below suit a
    light CPU backend.
    """

    name: str = ""
    #: Whether the backend reads ``references`` (spatial-stereo memory); the pipeline skips
    #: retrieval for backends that don't.
    uses_references: bool = True
    #: True when every frame is the cache rendered at exactly the requested pose wherever the cache covers the
    #: view (camera-accuracy checks cannot fail for such a backend)
    frames_are_cache_renders: bool = False

    #: Device the backend computes on (instances set their own).
    device: torch.device = torch.device("cpu")
    #: Floating dtype of the backend's main computation (instances set their own).
    dtype: torch.dtype = torch.float32

    @property
    def capabilities(self) -> Capabilities:
        """What this backend can produce (see :class:`Capabilities`)."""
        return Capabilities()

    def warmup(self) -> None:
        """Load what is needed and run anything slow once; idempotent. Default: nothing to do."""

    def close(self) -> None:
        """Free device memory (weights, caches); idempotent. Default: nothing to free."""

    def memory_estimate(self) -> MemoryEstimate:
        """Device and host bytes this backend needs, computed without loading weights."""
        return MemoryEstimate(notes="no weights")

    @abc.abstractmethod
    def generate(
        self,
        request: GenerationRequest,
        generator: torch.Generator | None = None,
        on_frame: FrameCallback | None = None,
    ) -> GeneratedFrames:
        """Generate every frame of ``request``; deterministic for a given ``generator`` seed.

        Implementations call ``request.check()`` first and ``on_frame`` once per frame, in order.
        Random numbers are drawn on the CPU from ``generator`` (then moved to the device), so a seed
        gives the same output whatever the device.
        """


def cpu_generator(generator: torch.Generator | None, seed: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator``: ``generator`` itself when it is one, else one seeded with ``seed``.

    Raises:
        InputError: for a generator on another device (its stream would differ per device).
    """
    if generator is None:
        return torch.Generator().manual_seed(seed)
    if generator.device.type != "cpu":
        raise InputError("generator", f"expected a CPU torch.Generator (noise is drawn on the CPU), got "
                         f"{generator.device}")
    return generator


#: Backend name -> ``"module:attribute"`` of its class (or factory), imported on first use.
#: Registering a backend is one line here.
BACKEND_PATHS: dict[str, str] = {
    "render_fill": "worldstereo_ros.generation.render_fill:RenderFillGenerator",
    "learned": "worldstereo_ros.generation.learned.backend:LearnedGenerator",
    "worldstereo": "worldstereo_ros.generation.diffusion.backend:WorldStereoDiffusionGenerator",
}
#: Default options per backend name, merged under the options given to :func:`create_backend` (a CLI
#: sets them once, e.g. the weights folder, for code that creates backends by name only, like the bench).
BACKEND_DEFAULTS: dict[str, dict[str, Any]] = {}
#: Classes registered at run time (decorator) or already resolved from BACKEND_PATHS.
_BACKENDS: dict[str, Callable[..., Generator]] = {}


def register_backend(cls: type[Generator]) -> type[Generator]:
    """Class decorator: make an already imported backend available under ``cls.name``."""
    if not cls.name:
        raise BackendError(f"{cls.__name__} has no name")
    _BACKENDS[cls.name] = cls
    return cls


def register_backend_path(name: str, target: str) -> None:
    """Register backend ``name`` as ``"module:attribute"`` (a Generator class or factory), resolved lazily.

    Raises:
        InputError: if ``target`` is not of the form ``"package.module:attribute"``.
    """
    module, sep, attr = target.partition(":")
    if not name or not sep or not module or not attr:
        raise InputError("target", f"expected 'package.module:attribute' for backend {name!r}, got {target!r}")
    BACKEND_PATHS[name] = target
    _BACKENDS.pop(name, None)


def available_backends() -> list[str]:
    """Names accepted by :func:`create_backend` (nothing is imported to list them)."""
    return sorted(set(BACKEND_PATHS) | set(_BACKENDS))


def resolve_backend(name: str) -> Callable[..., Generator]:
    """The class (or factory) of backend ``name``, importing its module on first use.

    Raises:
        InputError: for an unknown name, listing the valid ones.
        BackendError: if the backend's module cannot be imported (missing optional dependency).
    """
    if name in _BACKENDS:
        return _BACKENDS[name]
    if name not in BACKEND_PATHS:
        raise InputError("backend", f"unknown generator backend {name!r}; valid: {', '.join(available_backends())}")
    module_name, _, attr = BACKEND_PATHS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(f"backend {name!r}: cannot import {module_name} ({exc})") from exc
    try:
        factory = getattr(module, attr)
    except AttributeError as exc:
        raise BackendError(f"backend {name!r}: {module_name} has no attribute {attr!r}") from exc
    _BACKENDS[name] = factory
    return factory


def set_backend_defaults(name: str, **options: Any) -> None:
    """Options that every later :func:`create_backend` call for ``name`` starts from (empty: clear them)."""
    if options:
        BACKEND_DEFAULTS[name] = dict(options)
    else:
        BACKEND_DEFAULTS.pop(name, None)


def create_backend(name: str, **options: Any) -> Generator:
    """Instantiate the backend called ``name`` with its options (over :data:`BACKEND_DEFAULTS`).

    Raises:
        InputError: for an unknown name, listing the valid ones.
    """
    backend = resolve_backend(name)(**{**BACKEND_DEFAULTS.get(name, {}), **options})
    if not isinstance(backend, Generator):
        raise BackendError(f"backend {name!r}: factory returned {type(backend).__name__}, not a Generator")
    return backend
