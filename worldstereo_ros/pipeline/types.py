"""What goes into and comes out of a pipeline run: :class:`Trajectory` (a camera path to imagine),
:class:`Progress` (where a run stands), :class:`TrajectoryResult` (the imagined views of one path), the
callbacks' signatures and :class:`Cancelled`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from worldstereo_ros.errors import InputError, WorldStereoError

#: Stages reported through :class:`Progress`, in the order they run for each trajectory.
STAGES = ("render", "retrieve", "generate", "reconstruct", "align", "merge", "bank", "done")


class Cancelled(WorldStereoError):
    """Raised by :meth:`ImaginationPipeline.run` when ``should_cancel()`` returned True."""


def check_trajectory_id(value: object, field: str = "id") -> str:
    """``value`` when it can name a trajectory (a non-empty string without whitespace or slashes: it becomes
    part of file names and TF frame names), else InputError naming ``field``."""
    if not isinstance(value, str) or not value or any(c.isspace() or c in "/\\" for c in value):
        raise InputError(field, f"expected a non-empty name without spaces or slashes, got {value!r}")
    return value


@dataclass
class Trajectory:
    """A named camera path to imagine.

    Attributes:
        id: name (unique within a run; used in file names and ROS frame names).
        T_world_cam: (N, 4, 4) float64 target poses of the OpenCV optical frame in the snapshot's world frame.
        K: (3, 3) intrinsics of the targets at the run's image size, or None = the snapshot's K rescaled to
            that size (panoramas: a 90 degree horizontal field of view).
        timestamps_s: (N,) float64 seconds of the poses (e.g. from a TUM file), carried to the result and the
            pose exports; None = the frame index.
    """

    id: str
    T_world_cam: np.ndarray
    K: np.ndarray | None = None
    timestamps_s: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_trajectory_id(self.id)
        T = np.asarray(self.T_world_cam, dtype=np.float64)
        if T.ndim != 3 or T.shape[1:] != (4, 4) or T.shape[0] < 1:
            raise InputError("T_world_cam", f"trajectory {self.id!r}: expected shape (N, 4, 4) with N >= 1, got "
                                            f"{T.shape}")
        if not np.isfinite(T).all():
            raise InputError("T_world_cam", f"trajectory {self.id!r}: poses must be finite")
        R = T[:, :3, :3]
        if not np.allclose(R @ np.transpose(R, (0, 2, 1)), np.eye(3), atol=1e-4) or (np.linalg.det(R) < 0).any():
            raise InputError("T_world_cam", f"trajectory {self.id!r}: rotation parts must be proper rotations")
        self.T_world_cam = T
        if self.K is not None:
            K = np.asarray(self.K, dtype=np.float64)
            if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
                raise InputError("K", f"trajectory {self.id!r}: expected a finite (3, 3) K with positive focal "
                                      f"lengths, got shape {K.shape}")
            self.K = K
        if self.timestamps_s is not None:
            ts = np.asarray(self.timestamps_s, dtype=np.float64)
            if ts.shape != (T.shape[0],) or not np.isfinite(ts).all():
                raise InputError("timestamps_s", f"trajectory {self.id!r}: expected {T.shape[0]} finite seconds, got "
                                                 f"shape {ts.shape}")
            self.timestamps_s = ts

    def __len__(self) -> int:
        return int(self.T_world_cam.shape[0])


@dataclass(frozen=True)
class Progress:
    """Where a run stands: trajectory ``trajectory_index`` (0-based) of ``trajectory_count``, ``frame_index``
    frames of ``frame_count`` generated, in ``stage`` (one of :data:`STAGES`)."""

    trajectory_index: int
    trajectory_count: int
    trajectory_id: str
    frame_index: int
    frame_count: int
    stage: str

    @property
    def fraction(self) -> float:
        """Share of the run's frames generated, in [0, 1] (trajectories count equally)."""
        if self.trajectory_count <= 0:
            return 1.0
        within = self.frame_index / self.frame_count if self.frame_count > 0 else 1.0
        return min(1.0, max(0.0, (self.trajectory_index + within) / self.trajectory_count))


@dataclass
class TrajectoryResult:
    """The imagined views of one trajectory.

    Attributes:
        id: the trajectory's name.
        rgb: (N, H, W, 3) float32 in [0, 1].
        depth: (N, H, W) float32 metres (after alignment), 0 = unknown.
        imagined: (N, H, W) bool, True where the pixel was imagined.
        T_world_cam: (N, 4, 4) float64 poses. K: (3, 3) float64 intrinsics.
        timings_s: seconds per stage (:data:`STAGES` without ``done``) plus the backend's own
            ``generate.<name>`` entries.
        cache_points_after: points in the cache after this trajectory.
        reference_ids: per frame, the ids of the keyframes given to the backend.
        T_cache_generated: (4, 4) Sim(3) applied to the generated geometry (identity for metric backends).
        timestamps_s: (N,) float64 seconds of the poses, the trajectory's own; None = the frame index.
    """

    id: str
    rgb: np.ndarray
    depth: np.ndarray
    imagined: np.ndarray
    T_world_cam: np.ndarray
    K: np.ndarray
    timings_s: dict[str, float]
    cache_points_after: int
    reference_ids: list[list[int]] = field(default_factory=list)
    T_cache_generated: np.ndarray = field(default_factory=lambda: np.eye(4))
    timestamps_s: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.T_world_cam.shape[0])

    @property
    def height(self) -> int:
        return int(self.depth.shape[1])

    @property
    def width(self) -> int:
        return int(self.depth.shape[2])


ProgressCallback = Callable[[Progress], None]
#: on_frame(trajectory_id, index, rgb (H, W, 3) float32, depth (H, W) float32 m, imagined (H, W) bool,
#: T_world_cam (4, 4), K (3, 3)), called as soon as the backend finishes a frame (before alignment: for
#: non-metric backends the depth is the backend's own).
FrameCallback = Callable[[str, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]
