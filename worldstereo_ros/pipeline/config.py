"""The settings of one imagination pipeline (:class:`PipelineConfig`) and their validation.

The same names are the imagination node's parameters and the YAML keys in ``config/``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from worldstereo_ros.errors import ConfigError
from worldstereo_ros.generation.base import available_backends
from worldstereo_ros.validation import check_float, check_int

#: Memory ablation modes (:mod:`worldstereo_ros.pipeline.loop` module doc).
MEMORY_MODES = ("none", "ggm", "ggm+ssm")


@dataclass
class PipelineConfig:
    """Settings of one :class:`~worldstereo_ros.pipeline.loop.ImaginationPipeline` (the same names as the node's
    parameters where they exist).

    Attributes:
        backend: generator backend name (:func:`~worldstereo_ros.generation.base.available_backends`).
        backend_options: keyword options of the backend.
        memory: ``"none"``, ``"ggm"`` or ``"ggm+ssm"`` (module doc).
        voxel_size_m: voxel edge of the global cache, metres.
        max_cache_points: point budget of the cache.
        bank_capacity: keyframes kept in the memory bank.
        keyframe_stride: every n-th imagined frame (and the last) becomes a keyframe.
        width, height: target image size, pixels; None = the snapshot's (set both or neither).
        splat_px: footprint half-width of the cache render (int >= 0 or ``"auto"``).
        drop_depth_edges: drop depth-edge pixels when back-projecting (snapshot and imagined frames).
        seed: seed of the generators.
        device: torch device of the cache and the renders.
        imagined_confidence: confidence of imagined points in the cache, in (0, 1].
        merge_observed: also merge generated pixels the cache already covered (module doc, stage 4).
        references_per_frame: most references retrieved per target frame.
        min_reference_score: keyframes scoring below this are not retrieved, in [0, 1].
        reconstruct_stride: back-project every n-th pixel in each direction (1 = all).
        edge_threshold: relative depth jump between neighbours that marks a depth edge (``depth_edge_mask``).
        free_space_tolerance: imagined points that a keyframe of their trajectory saw through by more than
            this fraction of their depth are not merged (module doc, stage 6); None keeps them all.
        max_imagined_distance_px: only imagined pixels within this distance (pixels) of an observed pixel of
            their frame are reconstructed into the cache (module doc, stage 4); None keeps them all. 10 px was
            chosen on 7-Scenes frames 0-199 and 300-599 (``benchmarks/tune_defaults.py``: best mean F1@5cm of
            10 / 20 / 40 px / every fill), not on the report frames 200-299.
        protect_observed: imagined points are not merged into voxels that hold an observation (module doc,
            stage 6).
        chunk_frames: views rendered, generated and merged together; a longer trajectory runs chunk by chunk
            so the per-view buffers (renders, generated frames, points) stay bounded whatever its length
            (0 = the whole trajectory at once). Every chunk renders and retrieves from the memories as the
            trajectory found them, so a backend without state across frames gives the same views
            chunked or not (loop module doc, "Chunks").
        keep_frames: return every frame in the :class:`~worldstereo_ros.pipeline.types.TrajectoryResult`;
            False returns empty frame arrays (the frames went to ``on_frame``), so nothing grows with the
            trajectory's length.
    """

    backend: str = "render_fill"
    backend_options: dict = field(default_factory=dict)
    memory: str = "ggm+ssm"
    voxel_size_m: float = 0.01
    max_cache_points: int = 5_000_000
    bank_capacity: int = 8
    keyframe_stride: int = 5
    width: int | None = None
    height: int | None = None
    splat_px: int | str = "auto"
    drop_depth_edges: bool = True
    seed: int = 0
    device: str = "cpu"
    imagined_confidence: float = 0.5
    merge_observed: bool = False
    references_per_frame: int = 1
    min_reference_score: float = 0.05
    reconstruct_stride: int = 1
    edge_threshold: float = 0.08
    free_space_tolerance: float | None = 0.02
    max_imagined_distance_px: float | None = 10.0
    protect_observed: bool = True
    chunk_frames: int = 0
    keep_frames: bool = True

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "PipelineConfig":
        """A validated config from a mapping; unknown keys raise ConfigError listing the valid ones."""
        if not isinstance(values, Mapping):
            raise ConfigError("config", f"expected a mapping, got {type(values).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                raise ConfigError(str(key), f"unknown key; valid: {', '.join(names)}")
        config = cls(**dict(values))
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (JSON-friendly)."""
        return dataclasses.asdict(self)

    def validate(self, check_backend: bool = True) -> "PipelineConfig":
        """Raise ConfigError naming the first invalid key (with the valid options); return self.

        ``check_backend=False`` skips the backend-name check (for a backend instance given directly).
        """
        def integer(name: str, lo: int, hi: int | None = None) -> None:
            check_int(name, getattr(self, name), lo, hi, error=ConfigError)

        def real(name: str, lo: float, hi: float, lo_open: bool = True) -> None:
            check_float(name, getattr(self, name), lo, hi, lo_open, error=ConfigError)

        if check_backend and (not isinstance(self.backend, str) or self.backend not in available_backends()):
            raise ConfigError("backend", f"unknown backend {self.backend!r}; valid: {', '.join(available_backends())}")
        if not isinstance(self.backend_options, dict):
            raise ConfigError("backend_options", f"expected a dict, got {type(self.backend_options).__name__}")
        if self.memory not in MEMORY_MODES:
            raise ConfigError("memory", f"expected one of {', '.join(MEMORY_MODES)}; got {self.memory!r}")
        real("voxel_size_m", 0.0, 10.0)
        integer("max_cache_points", 1)
        integer("bank_capacity", 1)
        integer("keyframe_stride", 1)
        if (self.width is None) != (self.height is None):
            raise ConfigError("width", f"set both width and height or neither, got {self.width} x {self.height}")
        if self.width is not None:
            integer("width", 2, 8192)
            integer("height", 2, 8192)
        if self.splat_px != "auto":
            integer("splat_px", 0, 16)
        if not isinstance(self.drop_depth_edges, bool):
            raise ConfigError("drop_depth_edges", f"expected a bool, got {self.drop_depth_edges!r}")
        integer("seed", 0, 2**62)
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError("device", f"not a torch device: {self.device!r} (e.g. cpu, cuda, cuda:1)") from exc
        real("imagined_confidence", 0.0, 1.0)
        if not isinstance(self.merge_observed, bool):
            raise ConfigError("merge_observed", f"expected a bool, got {self.merge_observed!r}")
        integer("references_per_frame", 1, 16)
        real("min_reference_score", 0.0, 1.0, lo_open=False)
        integer("reconstruct_stride", 1, 64)
        real("edge_threshold", 0.0, 100.0)
        if self.free_space_tolerance is not None:
            real("free_space_tolerance", 0.0, 1.0)
        if self.max_imagined_distance_px is not None:
            real("max_imagined_distance_px", 0.0, 1e6)
        if not isinstance(self.protect_observed, bool):
            raise ConfigError("protect_observed", f"expected a bool, got {self.protect_observed!r}")
        integer("chunk_frames", 0)
        if not isinstance(self.keep_frames, bool):
            raise ConfigError("keep_frames", f"expected a bool, got {self.keep_frames!r}")
        return self
