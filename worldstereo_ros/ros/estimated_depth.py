"""Depth of an RGB-only camera's snapshots (imagination_node, ``use_depth`` false), without rclpy.

The depth model (:class:`~worldstereo_ros.generation.diffusion.depth.DepthEstimator`, the same component as the
CLI's ``imagine --rgb`` without ``--depth``) is loaded once, at the first snapshot, so a node that never takes a
snapshot never imports transformers. Scale per the depth module: ``camera_height_m``, else ``median_depth_m``
(0 = unused, as a ROS double parameter cannot be null), else relative: then the first estimate warns once and
:meth:`EstimatedDepth.status` says so for /diagnostics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from worldstereo_ros.errors import ConfigError

if TYPE_CHECKING:  # the depth module imports transformers at its top
    from worldstereo_ros.generation.diffusion.depth import DepthEstimate, DepthEstimator

RELATIVE_WARNING = ("RGB-only camera without scale: estimated depth is relative (median 1), so the cache, views "
                    "and paths are not in metres; set camera_height_m or median_depth_m")


class Logger(Protocol):
    def info(self, message: str) -> Any: ...

    def warning(self, message: str) -> Any: ...


class EstimatedDepth:
    """Lazily loaded depth model of an RGB-only camera; call it as ``estimate_depth(rgb, K)``.

    Args:
        params: the node's live parameter dict (``depth_model_path``, ``device``, ``camera_height_m``,
            ``median_depth_m``); the scale is read at every call, so a changed parameter applies to the next
            snapshot.
        logger: the node's logger; ``warning`` gets :data:`RELATIVE_WARNING` once.
    """

    def __init__(self, params: Mapping[str, Any], logger: Logger) -> None:
        self.params, self.logger = params, logger
        self._estimator: DepthEstimator | None = None
        self._said_relative = False
        self.last_note = ""  # how the last estimate was scaled
        logger.info(f"RGB-only camera: snapshot depth from {params['depth_model_path']} (loaded at the first "
                    "snapshot)")

    def __call__(self, rgb: np.ndarray, K: np.ndarray) -> DepthEstimate:
        """Depth of ``rgb`` ((H, W, 3) float32 in [0, 1]) seen through ``K`` ((3, 3), pixels).

        Returns:
            DepthEstimate: (H, W) float32 depth along the optical axis, metres when a scale > 0 is given or the
            model is metric, else relative (median 1, ``is_metric`` False).
        Raises:
            ConfigError: naming ``depth_model_path`` when the model cannot be loaded, or ``camera_height_m``
                when no floor plane fits.
        """
        if self._estimator is None:
            # lazy: transformers and the model load only for an RGB-only camera, and only once
            from worldstereo_ros.generation.diffusion.depth import DepthEstimator

            path = self.params["depth_model_path"]
            try:
                self._estimator = DepthEstimator(path, self.params["device"])
            except Exception as err:  # BackendError, or transformers' OSError/ValueError for an unreadable folder
                raise ConfigError("depth_model_path", f"cannot load {path!r}: {type(err).__name__}: {err}") from None
            self.logger.info(f"depth model loaded from {path}")
        est = self._estimator.estimate(rgb, K, self.params["camera_height_m"] or None,
                                       self.params["median_depth_m"] or None)
        self.last_note = est.note
        if not est.is_metric and not self._said_relative:
            self._said_relative = True
            self.logger.warning(RELATIVE_WARNING)
        return est

    def status(self) -> str:
        """One line for /diagnostics: the model and how the last snapshot's depth was scaled."""
        return f"estimated by {self.params['depth_model_path']}: {self.last_note or 'no snapshot yet'}"

    def close(self) -> None:
        if self._estimator is not None:
            self._estimator.close()
            self._estimator = None
