import os

import pytest

from worldstereo_ros.confinement import confine
from worldstereo_ros.errors import InputError


def test_paths_inside_a_root_resolve(tmp_path):
    (tmp_path / "a").mkdir()
    assert confine(tmp_path / "a" / "new.npz", [tmp_path], "out") == (tmp_path / "a" / "new.npz").resolve()
    assert confine(tmp_path, [tmp_path], "out") == tmp_path.resolve()
    inner = tmp_path / "a" / ".." / "a" / "x"  # '..' that stays inside is fine
    assert confine(inner, [tmp_path], "out") == (tmp_path / "a" / "x").resolve()


def test_dotdot_and_symlinks_out_are_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    with pytest.raises(InputError, match="snapshot_dir.*outside the allowed roots"):
        confine(root / ".." / "outside" / "x", [root], "snapshot_dir")
    os.symlink(outside, root / "link")
    with pytest.raises(InputError, match="model_path"):
        confine(root / "link" / "weights.safetensors", [root], "model_path")
    # a root that is a prefix string of another folder is not its parent
    (tmp_path / "root2").mkdir()
    with pytest.raises(InputError):
        confine(tmp_path / "root2" / "x", [root], "out")


def test_empty_nul_and_no_roots(tmp_path):
    with pytest.raises(InputError, match="empty path"):
        confine("", [tmp_path], "out")
    with pytest.raises(InputError, match="NUL"):
        confine("a\x00b", [tmp_path], "out")
    with pytest.raises(InputError, match="no allowed roots"):
        confine(tmp_path / "x", [], "out")
