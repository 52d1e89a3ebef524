"""The RGB-only camera's depth in imagination_node (issue 13, item 5), rclpy-free: lazy load, scale, relative once."""

from __future__ import annotations

import numpy as np
import pytest

from worldstereo_ros.errors import ConfigError
from worldstereo_ros.ros import parameters
from worldstereo_ros.ros.estimated_depth import RELATIVE_WARNING, EstimatedDepth

K = np.array([[40.0, 0.0, 31.5], [0.0, 40.0, 23.5], [0.0, 0.0, 1.0]])


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))


@pytest.fixture(scope="module")
def depth_model(tmp_path_factory):
    from worldstereo_ros.generation.diffusion.tiny import write_tiny_depth_model

    return write_tiny_depth_model(tmp_path_factory.mktemp("depth_model"))


def test_loads_once_scales_live_and_says_relative_once(depth_model):
    params = {**parameters.defaults(), "use_depth": False, "depth_model_path": str(depth_model)}
    log = _Log()
    depth = EstimatedDepth(params, log)
    assert depth._estimator is None and "no snapshot yet" in depth.status()  # nothing loaded before a snapshot
    rgb = np.random.default_rng(0).random((48, 64, 3), dtype=np.float32)
    relative = depth(rgb, K)
    loaded = depth._estimator
    assert relative.depth.shape == (48, 64) and relative.depth.dtype == np.float32 and not relative.is_metric
    assert np.median(relative.depth) == pytest.approx(1.0, rel=1e-3)
    assert "relative" in depth.status()
    depth(rgb, K)
    assert [m for level, m in log.lines if level == "warning"] == [RELATIVE_WARNING]
    params["median_depth_m"] = 2.5  # a live parameter change applies to the next snapshot
    metric = depth(rgb, K)
    assert depth._estimator is loaded, "the model must be loaded once"
    assert metric.is_metric and np.median(metric.depth) == pytest.approx(2.5, rel=1e-3)
    assert np.allclose(metric.depth, relative.depth * 2.5, rtol=1e-3)
    assert "median depth of 2.5 m" in depth.status()
    depth.close()


def test_an_unloadable_model_names_depth_model_path(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # passes the start-up check, but is no model
    params = {**parameters.defaults(), "use_depth": False, "depth_model_path": str(tmp_path)}
    with pytest.raises(ConfigError, match="depth_model_path: cannot load"):
        EstimatedDepth(params, _Log())(np.zeros((8, 8, 3), np.float32), K)
