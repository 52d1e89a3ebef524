"""What the bench measures and what it returns: the sections, the frame range, :class:`BenchConfig` (the CLI's
two presets), :class:`BenchResults` (rows per section) and the helpers that read them (start frames, the
timing-free JSON used by reproducibility checks). The sections themselves are in
:mod:`~worldstereo_ros.evaluation.bench_sections`; the run in :mod:`~worldstereo_ros.evaluation.benchmark`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from worldstereo_ros.errors import InputError
from worldstereo_ros.pipeline.config import PipelineConfig

THRESHOLDS_M = (0.02, 0.05, 0.10)
SECTIONS = ("geometry", "camera", "consistency", "fill", "fidelity", "stereo", "speed")
#: The report split of the shared 7-Scenes data (its README): the bench's default frame range.
REPORT_FRAMES = (200, 299)


def parse_frames(text: str | None) -> tuple[int, int] | None:
    """``"200-299"`` -> (200, 299) (inclusive); ``"all"`` or None -> None. Raises InputError naming ``frames``."""
    if text is None or text == "all":
        return None
    try:
        lo, hi = (int(v) for v in str(text).split("-"))
    except ValueError as exc:
        raise InputError("frames", f"expected FIRST-LAST (e.g. 200-299) or 'all', got {text!r}") from exc
    if not 0 <= lo < hi:
        raise InputError("frames", f"expected 0 <= FIRST < LAST, got {text!r}")
    return lo, hi


@dataclass
class BenchConfig:
    """What to measure. :meth:`full` and :meth:`quick` are the two presets of the CLI.

    Attributes:
        data: 7-Scenes-style folder (rgb, depth, pose per frame, ``camera-intrinsics.txt``) or TUM RGB-D
            sequence (:func:`~worldstereo_ros.datasets.tum_rgbd.open_rgbd_sequence`).
        middlebury: Middlebury folder (:func:`~worldstereo_ros.datasets.middlebury.read_middlebury`) or None.
        middlebury_calibration: ``focal_px`` / ``baseline_mm`` / ``doffs_px`` for a pair without calib.txt.
        backends: generator backends to measure (the fill section measures every registered one).
        frames: inclusive (first, last) frame range that every start, target, check frame and pair stays in;
            None = the whole sequence.
        starts: start frames (geometry, camera and consistency use the first ``geometry_starts`` of them);
            None = the range's first frame and (full preset) the one 40 frames later.
        geometry_starts: how many of ``starts`` the geometry, camera and consistency sections use.
        offsets: frame offsets of the fidelity section.
        span, step: the geometry reference fuses frames s..s+span every ``step``; the same poses are imagined.
        consistency_frames: poses per route in the consistency section.
        check_offsets: the real check frames of the consistency section, frames after each start.
        room_size: (width, height) of the procedural room's consistency and fill runs.
        fill_pairs, fill_room_pairs: seeded pairs of the fill protocol on the data / the procedural room.
        fill_room_frames: frames of the procedural sequence the room's pairs come from.
        speed_frames: poses per trajectory of the speed run. speed_size: (width, height) of the speed run.
        depth_max_m: depth beyond this is left out of the reference fusion (metres).
        seed: pipeline seed.
        voxel_size_m: voxel edge of every pipeline's global cache (metres; the pipeline's default unless set).
    """

    data: Path
    middlebury: Path | None = None
    middlebury_calibration: dict = field(default_factory=dict)
    backends: list[str] = field(default_factory=lambda: ["render_fill"])
    frames: tuple[int, int] | None = REPORT_FRAMES
    starts: list[int] | None = None
    geometry_starts: int = 2
    offsets: list[int] = field(default_factory=lambda: [5, 10, 20, 40, 60])
    span: int = 100
    step: int = 4
    consistency_frames: int = 25
    check_offsets: list[int] = field(default_factory=lambda: [25, 50])
    room_size: tuple[int, int] = (640, 480)
    fill_pairs: int = 30
    fill_room_pairs: int = 30
    fill_room_frames: int = 90
    speed_frames: int = 25
    speed_size: tuple[int, int] = (640, 480)
    depth_max_m: float = 6.0
    seed: int = 0
    voxel_size_m: float = PipelineConfig.voxel_size_m

    def pipeline(self) -> PipelineConfig:
        """The settings every pipeline of the run starts from (each section sets the backend and its own
        overrides); raises ConfigError naming an invalid one."""
        return PipelineConfig(seed=self.seed, voxel_size_m=self.voxel_size_m).validate()

    @classmethod
    def full(cls, data, middlebury=None, **overrides) -> "BenchConfig":
        return cls(Path(data), None if middlebury is None else Path(middlebury), **overrides)

    @classmethod
    def quick(cls, data, middlebury=None, **overrides) -> "BenchConfig":
        """About a tenth of the work: one start, a 40-frame span, short routes, one real check frame, few pairs."""
        base = dict(geometry_starts=1, offsets=[5, 20, 60], span=40, step=4, consistency_frames=8,
                    check_offsets=[15], room_size=(320, 240), fill_pairs=6, fill_room_pairs=12,
                    speed_frames=8, speed_size=(320, 240))
        base.update(overrides)
        return cls(Path(data), None if middlebury is None else Path(middlebury), **base)


@dataclass
class BenchResults:
    """Rows per section (see the module doc), the config as a dict and the run's wall time (s)."""

    config: dict
    geometry: list[dict] = field(default_factory=list)
    camera: list[dict] = field(default_factory=list)
    consistency: list[dict] = field(default_factory=list)
    fill: list[dict] = field(default_factory=list)
    fidelity: list[dict] = field(default_factory=list)
    stereo: list[dict] = field(default_factory=list)
    speed: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    #: backends the fill section could not construct: [{"method", "reason"}]
    fill_skipped: list[dict] = field(default_factory=list)
    #: (real, baseline, ours) images per offset of the first start, first backend (not in the JSON)
    images: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "images"}


def resolve_starts(config: BenchConfig, indices) -> list[int]:
    """The start frames: ``config.starts``, or the range's first frame (and, when ``geometry_starts`` > 1 and
    the range holds it, the one 40 frames later). Raises InputError for a start outside the data or the range."""
    available = set(indices)
    lo, hi = config.frames if config.frames is not None else (min(available), max(available))
    starts = config.starts
    if starts is None:
        starts = [lo] + ([lo + 40] if config.geometry_starts > 1 and lo + 40 in available and lo + 40 <= hi else [])
    bad = [s for s in starts if s not in available or not lo <= s <= hi]
    if bad:
        raise InputError("starts", f"{bad} not in the data or outside the frame range {lo}-{hi}")
    return list(starts)


def without_timings(results: dict) -> dict:
    """The JSON of a run without the fields that measure time or memory (for reproducibility checks)."""
    def plain(v):  # NaN != NaN: compare it as text
        if isinstance(v, float) and math.isnan(v):
            return "nan"
        return [plain(x) for x in v] if isinstance(v, list) else v

    out = {}
    for section, rows in results.items():
        if section in ("speed", "seconds", "config", "fill_skipped"):
            continue
        out[section] = [{k: plain(v) for k, v in row.items() if k != "seconds"} for row in rows]
    return out
