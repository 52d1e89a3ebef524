"""The imagination pipeline: settings (:mod:`.config`), inputs and results (:mod:`.types`) and the
multi-trajectory loop that owns a cache, a bank and a backend (:mod:`.loop`, whose module doc walks through
the stages). Import from here: the names below are the package's public API.
"""

from worldstereo_ros.pipeline.config import MEMORY_MODES, PipelineConfig
from worldstereo_ros.pipeline.loop import PANORAMA_TARGET_HFOV_DEG, PANORAMA_TARGET_SIZE, ImaginationPipeline
from worldstereo_ros.pipeline.types import (
    STAGES,
    Cancelled,
    FrameCallback,
    Progress,
    ProgressCallback,
    Trajectory,
    TrajectoryResult,
)

__all__ = [
    "MEMORY_MODES", "PANORAMA_TARGET_HFOV_DEG", "PANORAMA_TARGET_SIZE", "STAGES", "Cancelled", "FrameCallback",
    "ImaginationPipeline", "PipelineConfig", "Progress", "ProgressCallback", "Trajectory", "TrajectoryResult",
]
