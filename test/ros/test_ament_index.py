"""The virtual environment is an ament prefix like a colcon install (issue 15): ament_index_python finds the
package, its share directory (package.xml, launch, config) and its executables in lib/worldstereo_ros, the
environment's activation sets AMENT_PREFIX_PATH, and the project's launch runner resolves through the index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

packages = pytest.importorskip("ament_index_python.packages", reason="ament_index_python not installed")

from worldstereo_ros.ros import launch_subset  # noqa: E402

PREFIX = Path(sys.prefix)
REPO = Path(__file__).resolve().parents[2]
EXECUTABLES = ("replay_node", "imagination_node", "generation_node", "worldstereo-ros")

if not (PREFIX / "share/ament_index/resource_index/packages/worldstereo_ros").is_file():
    pytest.skip(f"{PREFIX} has no ament index entry for worldstereo_ros (scripts/setup.sh installs it)",
                allow_module_level=True)


@pytest.fixture
def venv_index(monkeypatch):
    """AMENT_PREFIX_PATH as activation and the scripts set it: this environment first."""
    rest = os.environ.get("AMENT_PREFIX_PATH", "")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(PREFIX) + (f":{rest}" if rest else ""))


def test_the_index_finds_the_package_its_share_and_executables(venv_index):
    assert "worldstereo_ros" in packages.get_packages_with_prefixes()
    assert Path(packages.get_package_prefix("worldstereo_ros")) == PREFIX
    share = Path(packages.get_package_share_directory("worldstereo_ros"))
    assert share == PREFIX / "share" / "worldstereo_ros"
    assert (share / "package.xml").read_text() == (REPO / "package.xml").read_text()
    for folder, example in (("launch", "imagination.launch.py"), ("config", None)):
        assert (share / folder).is_dir(), folder
        expected = sorted(p.name for p in (REPO / folder).iterdir())
        assert sorted(p.name for p in (share / folder).iterdir()) == expected
        if example:
            assert (share / folder / example).is_file()
    for exe in EXECUTABLES:
        path = PREFIX / "lib" / "worldstereo_ros" / exe
        assert path.is_file() and os.access(path, os.X_OK), exe


def test_an_installed_executable_runs(venv_index):
    # what `ros2 run worldstereo_ros worldstereo-ros --help` would start
    exe = Path(packages.get_package_prefix("worldstereo_ros")) / "lib" / "worldstereo_ros" / "worldstereo-ros"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "imagine" in out.stdout, out.stderr


def test_activation_sets_the_prefix_path():
    activate = PREFIX / "bin" / "activate"
    env = {k: v for k, v in os.environ.items() if k not in ("AMENT_PREFIX_PATH", "VIRTUAL_ENV")}
    out = subprocess.run(["bash", "-c", f"source '{activate}' && echo \"$AMENT_PREFIX_PATH\""], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip().split(":")[0] == str(PREFIX), out.stderr
    twice = subprocess.run(["bash", "-c", f"source '{activate}' && source '{activate}' && echo \"$AMENT_PREFIX_PATH\""],
                           env={**env, "AMENT_PREFIX_PATH": "/opt/ros/x"}, capture_output=True, text=True, timeout=30)
    assert twice.stdout.strip() == f"{PREFIX}:/opt/ros/x"  # prepended once, the rest kept


def test_the_launch_runner_resolves_through_the_index(venv_index, monkeypatch):
    share = Path(packages.get_package_share_directory("worldstereo_ros"))
    assert launch_subset.package_share() == share
    assert launch_subset.find_launch_file("replay.launch.py") == share / "launch" / "replay.launch.py"
    # without an index entry the runner falls back to the source tree
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(REPO / "no-such-prefix"))
    assert launch_subset.package_share() is None
    assert launch_subset.find_launch_file("replay.launch.py") == REPO / "launch" / "replay.launch.py"
