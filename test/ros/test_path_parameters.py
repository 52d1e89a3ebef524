"""Path parameters stay inside ``allowed_roots`` (issue 14 item 8): '..' and symlinks out are refused, and a node
given such a path stops at start-up with one line and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worldstereo_ros.errors import ConfigError, InputError
from worldstereo_ros.ros.parameters import ALLOWED_ROOTS, PARAMS_BY_NAME, validate
from worldstereo_ros.ros.path_parameters import PATH_PARAMETERS, confine_path_parameters


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An allowed folder with a model folder, and a sibling folder outside it with a symlink into it."""
    allowed = tmp_path / "allowed"
    (allowed / "weights").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (allowed / "escape").symlink_to(outside, target_is_directory=True)
    return allowed


def test_paths_inside_resolve_and_the_input_is_unchanged(root):
    values = {"allowed_roots": [str(root)], "model_path": str(root / "weights" / ".." / "weights"),
              "base_model_path": "", "depth_model_path": str(root / "not_yet_there")}
    before = dict(values)
    out = confine_path_parameters(values)
    assert values == before
    assert out["model_path"] == str(root.resolve() / "weights")
    assert out["depth_model_path"] == str(root.resolve() / "not_yet_there")  # may not exist yet
    assert out["base_model_path"] == ""  # empty = unused, not checked


@pytest.mark.parametrize("name", PATH_PARAMETERS)
def test_dotdot_and_symlinks_out_are_refused_naming_the_parameter(root, name):
    for bad in (str(root / ".." / "outside"), str(root / "escape" / "weights"), "/etc"):
        with pytest.raises(InputError, match=rf"^{name}: .* outside the allowed roots"):
            confine_path_parameters({"allowed_roots": [str(root)], name: bad})


def test_relative_roots_and_paths_use_the_working_directory(root, monkeypatch):
    monkeypatch.chdir(root)
    out = confine_path_parameters({"allowed_roots": ["."], "model_path": "weights"})
    assert out["model_path"] == str(root.resolve() / "weights")
    with pytest.raises(InputError, match="model_path"):
        confine_path_parameters({"allowed_roots": ["."], "model_path": "../outside"})


def test_malformed_allowed_roots_are_refused():
    for roots, problem in (("/tmp", "string\\[\\]"), ([], "no allowed roots"), (["/tmp", " "], "empty folder name")):
        error = ConfigError if problem != "no allowed roots" else InputError
        with pytest.raises(error, match=problem):
            confine_path_parameters({"allowed_roots": roots, "model_path": "x"})


def test_the_parameter_is_declared_with_its_default():
    assert PARAMS_BY_NAME["allowed_roots"] is ALLOWED_ROOTS
    assert ALLOWED_ROOTS.type_name == "string[]" and ALLOWED_ROOTS.read_only
    assert validate({"allowed_roots": ["/data"]}) == {"allowed_roots": ["/data"]}
    assert validate({"generator": "remote"})["generator"] == "remote"
    with pytest.raises(ConfigError, match="generator: must be one of local, remote"):
        validate({"generator": "cloud"})


@pytest.mark.parametrize("module,name", [("worldstereo_ros.ros.generation_node", "generation_node"),
                                         ("worldstereo_ros.ros.imagination_node", "imagination_node")])
def test_a_node_given_a_path_outside_stops_with_one_line_and_code_2(root, module, name):
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python wheels) not installed")
    out = subprocess.run([sys.executable, "-m", module, "--ros-args", "-p", f"allowed_roots:=['{root}']",
                          "-p", f"model_path:={root / 'escape'}"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{name}: model_path: "), out.stderr
    assert "outside the allowed roots" in lines[0] and "symlinks" in lines[0]


def test_replay_node_refuses_a_folder_outside_allowed_roots(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    out = subprocess.run([sys.executable, "-m", "worldstereo_ros.ros.replay_node", "--ros-args", "-p",
                          f"folder:={root}/../outside", "-p", f"allowed_roots:=['{root}']"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("replay_node: folder:") and "outside the allowed roots" in line
