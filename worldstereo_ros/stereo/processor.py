"""One object that turns (rgb, depth, K) frames into stereo frames: what the ROS node and the CLI run.

The rig is fixed per scene: with ``strength`` set, the baseline is derived from the first frame's depth
range (:func:`~worldstereo_ros.geometry.stereo_rig.baseline_for_strength`) and kept until :meth:`reset`
(a per-frame baseline would make the 3D effect pump as the scene's depth range changes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from worldstereo_ros.errors import ConfigError, InputError
from worldstereo_ros.geometry.stereo_rig import StereoRig, baseline_for_strength
from worldstereo_ros.stereo.fill import create_filler
from worldstereo_ros.stereo.synthesis import StereoView
from worldstereo_ros.stereo.video import StereoVideo, TemporalConfig


@dataclass(frozen=True)
class StereoSettings:
    """Options shared by the node parameters, the CLI flags and the bench.

    Attributes:
        baseline_m: rig baseline, metres; 0 = derive it from ``strength``.
        strength: stereo deviation strength, the disparity range as a fraction of the image width
            (:mod:`~worldstereo_ros.geometry.stereo_rig`); used when ``baseline_m`` is 0.
        fill: occlusion filler: ``classical`` (background push-pull), ``background-telea``, ``telea`` or a
            generator backend name.
        temporal: propagate disparity, masks and fills along the video by optical flow.
    """

    baseline_m: float = 0.065
    strength: float = 0.03
    fill: str = "classical"
    temporal: bool = True

    def __post_init__(self) -> None:
        for name in ("baseline_m", "strength"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(name, f"expected a finite number >= 0, got {value!r}")
        if self.baseline_m == 0 and not 0 < self.strength < 1:
            raise ConfigError("strength", f"with baseline_m = 0 the strength must be in (0, 1), got {self.strength}")
        if not isinstance(self.fill, str) or not self.fill:
            raise ConfigError("fill", f"expected a filler name, got {self.fill!r}")


@dataclass
class StereoFrame:
    """A processed frame: the view and the rig it was made with."""

    view: StereoView
    rig: StereoRig


class StereoProcessor:
    """Frames in, stereo frames out (module doc)."""

    def __init__(self, settings: StereoSettings | None = None) -> None:
        self.settings = settings or StereoSettings()
        self.reset()

    def reset(self) -> None:
        """Forget the rig and the previous frame (new scene or new camera)."""
        self._rig: StereoRig | None = None
        self._video: StereoVideo | None = None

    @property
    def rig(self) -> StereoRig | None:
        """The rig in use (None before the first frame)."""
        return self._rig

    def _setup(self, depth_m: np.ndarray, K: np.ndarray, width: int) -> None:
        s = self.settings
        baseline = s.baseline_m or baseline_for_strength(s.strength, depth_m, float(K[0, 0]), width)
        rig = StereoRig(K, baseline)
        filler = create_filler(s.fill, rig.K_right, rig.fx * rig.baseline_m)
        self._rig = rig
        self._video = StereoVideo(filler, TemporalConfig(propagate=s.temporal))

    def process(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray) -> StereoFrame:
        """The stereo frame of one (rgb, depth, K).

        Args:
            rgb: (H, W, 3) uint8 or float32 [0, 1] RGB. depth_m: (H, W) float32 metres, 0 or NaN = unknown.
            K: (3, 3) intrinsics of the rgb camera (the left camera of the rig).
        Raises:
            InputError: bad shapes, no valid depth, bad K. The processor stays usable afterwards.
        """
        rgb = np.asarray(rgb)
        depth = np.asarray(depth_m, dtype=np.float32)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError("rgb", f"expected shape (H, W, 3), got {rgb.shape}")
        if depth.shape != rgb.shape[:2]:
            raise InputError("depth_m", f"expected shape {rgb.shape[:2]} (the rgb's), got {depth.shape}")
        K = np.asarray(K, dtype=np.float64)
        if self._rig is None or not np.array_equal(self._rig.K, K):
            self._setup(depth, K, rgb.shape[1])  # validates K and the depth
        view = self._video.process(rgb, self._rig.disparity_from_depth(depth))
        return StereoFrame(view, self._rig)
