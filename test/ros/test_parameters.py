"""The parameter table, config/worldstereo.yaml and the validation agree (issue 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from worldstereo_ros.errors import ConfigError
from worldstereo_ros.ros import parameters

CONFIG = Path(__file__).resolve().parents[2] / "config" / "worldstereo.yaml"


def test_yaml_holds_every_default_and_nothing_else():
    values = yaml.safe_load(CONFIG.read_text())["imagination_node"]["ros__parameters"]
    assert values == parameters.defaults()


def test_validation_names_the_parameter():
    with pytest.raises(ConfigError, match="frames_per_path: must be >= 2"):
        parameters.validate({"frames_per_path": 1})
    with pytest.raises(ConfigError, match="memory: must be one of none, ggm, ggm\\+ssm"):
        parameters.validate({"memory": "all"})
    with pytest.raises(ConfigError, match="voxel_size_m: expected double, got str"):
        parameters.validate({"voxel_size_m": "1cm"})
    with pytest.raises(ConfigError, match="no_such: unknown parameter"):
        parameters.validate({"no_such": 1})
    assert parameters.validate({"voxel_size_m": 1}) == {"voxel_size_m": 1.0}


def test_markdown_table_lists_every_parameter():
    table = parameters.markdown_table()
    for spec in parameters.IMAGINATION_NODE_PARAMS:
        assert f"`{spec.name}`" in table


def test_rgb_only_camera_needs_a_depth_model_folder(tmp_path):
    values = parameters.defaults()
    parameters.check_startup(values)  # the defaults: measured depth, no model needed
    values["use_depth"] = False
    with pytest.raises(ConfigError, match="depth_model_path: required when use_depth is false"):
        parameters.check_startup(values)
    values["depth_model_path"] = str(tmp_path)
    with pytest.raises(ConfigError, match="depth_model_path: no config.json"):
        parameters.check_startup(values)
    (tmp_path / "config.json").write_text("{}")
    parameters.check_startup(values)
    with pytest.raises(ConfigError, match="camera_height_m: must be >= 0"):
        parameters.validate({"camera_height_m": -1.0})


def test_limits_are_checked_against_the_values_they_bound():
    values = parameters.defaults()
    parameters.check_limits(values)
    values["max_frames_per_path"] = 10
    with pytest.raises(ConfigError, match="frames_per_path: must be <= max_frames_per_path = 10"):
        parameters.check_limits(values)
    values = {**parameters.defaults(), "image_width": 4096, "image_height": 4096}
    with pytest.raises(ConfigError, match="image_width: .* exceeds max_image_pixels"):
        parameters.check_limits(values)


def test_string_array_parameter_and_read_only_marking():
    spec = parameters.PARAMS_BY_NAME["allowed_roots"]
    assert spec.type_name == "string[]" and spec.read_only
    assert spec.check(("/a", "b")) == ["/a", "b"]
    with pytest.raises(ConfigError, match="allowed_roots: expected string\\[\\]"):
        spec.check([1.0])
    # the timers' periods are live, the ones that shape the executor, subscriptions or files are not
    for name in ("diagnostics_period_s", "local_rate_hz", "snapshot_period_s", "sync_tolerance_s",
                 "save_period_s", "problem_window_s", "frames_per_path", "max_frames_per_path"):
        assert not parameters.PARAMS_BY_NAME[name].read_only, name
    for name in ("queue_size", "state_dir", "restore_on_start", "allowed_roots", "use_compressed", "backend"):
        assert parameters.PARAMS_BY_NAME[name].read_only, name
    assert "Start-up only (read-only)." in parameters.markdown_table()
