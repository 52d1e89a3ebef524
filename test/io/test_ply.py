"""PLY point clouds: round trip of positions, colours and attributes; bad input."""

from __future__ import annotations

import numpy as np
import pytest

from worldstereo_ros.errors import InputError
from worldstereo_ros.io.ply import read_ply, write_ply


def test_round_trip_keeps_points_colours_and_attributes(tmp_path):
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(500, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(500, 3)).astype(np.uint8)
    conf = rng.random(500).astype(np.float32)
    path = write_ply(tmp_path / "cloud.ply", xyz, rgb, attributes={"confidence": conf})
    xyz2, rgb2, extra = read_ply(path)
    np.testing.assert_array_equal(xyz2, xyz)
    np.testing.assert_array_equal(np.round(rgb2 * 255).astype(np.uint8), rgb)
    np.testing.assert_array_equal(extra["confidence"], conf)


def test_float_colours_are_rounded_to_8_bit(tmp_path):
    xyz = np.zeros((2, 3), np.float64)
    rgb = np.array([[0.0, 0.5, 1.0], [0.2, 0.4, 0.6]])
    _, rgb2, _ = read_ply(write_ply(tmp_path / "c.ply", xyz, rgb, ascii=True))
    np.testing.assert_allclose(rgb2, np.round(rgb * 255) / 255, atol=1e-6)


def test_empty_cloud_is_a_valid_header_only_file(tmp_path):
    path = write_ply(tmp_path / "empty.ply", np.zeros((0, 3), np.float32), np.zeros((0, 3)))
    assert "element vertex 0" in path.read_text()


def test_bad_input_names_the_field(tmp_path):
    with pytest.raises(InputError, match="xyz"):
        write_ply(tmp_path / "x.ply", np.zeros((4, 2), np.float32))
    with pytest.raises(InputError, match="rgb"):
        write_ply(tmp_path / "x.ply", np.zeros((4, 3), np.float32), np.zeros((3, 3)))
    with pytest.raises(InputError, match="path"):
        read_ply(tmp_path / "missing.ply")
