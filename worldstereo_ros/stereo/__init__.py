"""Stereo from one camera (SpatialDreamer-style): a right eye, its occlusion mask and disparity per frame.

* :mod:`~worldstereo_ros.stereo.synthesis`: one frame, classical scanline synthesis.
* :mod:`~worldstereo_ros.stereo.fill`: pluggable occlusion fillers (classical, generator backends).
* :mod:`~worldstereo_ros.stereo.video`: frames in sequence, masks and fills propagated by optical flow.
"""

from worldstereo_ros.stereo.fill import (
           BackgroundPushPullFiller,
           BackgroundTeleaFiller,
           GeneratorFiller,
           OcclusionFiller,
           create_filler,
)
from worldstereo_ros.stereo.synthesis import StereoView, synthesize_right

__all__ = ["BackgroundPushPullFiller", "BackgroundTeleaFiller", "GeneratorFiller", "OcclusionFiller", "StereoView",
           "create_filler",
           "synthesize_right"]
