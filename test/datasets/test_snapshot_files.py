"""Snapshot files: intrinsics in three spellings, uint16 and .npy depth, pose text, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from worldstereo_ros.datasets.snapshot_files import load_snapshot, parse_intrinsics, read_depth, read_pose
from worldstereo_ros.errors import InputError

K = np.array([[585.0, 0, 320], [0, 586.0, 240], [0, 0, 1]])


def test_intrinsics_from_numbers_3x3_file_and_four_number_file(tmp_path):
    np.testing.assert_array_equal(parse_intrinsics("585,586,320,240"), K)
    np.savetxt(tmp_path / "camera-intrinsics.txt", K)
    np.testing.assert_array_equal(parse_intrinsics(tmp_path / "camera-intrinsics.txt"), K)
    (tmp_path / "k4.txt").write_text("585 586 320 240\n")
    np.testing.assert_array_equal(parse_intrinsics(str(tmp_path / "k4.txt")), K)


@pytest.mark.parametrize("bad", ["585,320,240", "a,b,c,d", "-1,1,0,0"])
def test_bad_intrinsics_name_the_field(bad):
    with pytest.raises(InputError, match="intrinsics"):
        parse_intrinsics(bad)


def test_depth_png_in_mm_and_npy_in_metres(tmp_path):
    mm = np.array([[0, 1500], [65535, 20]], np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), mm)
    np.testing.assert_allclose(read_depth(tmp_path / "d.png"), [[0, 1.5], [0, 0.02]], rtol=1e-6)
    np.testing.assert_allclose(read_depth(tmp_path / "d.png", 0.0002), [[0, 0.3], [0, 0.004]], rtol=1e-6)
    np.save(tmp_path / "d.npy", np.array([[np.nan, 2.0], [-1.0, 0.5]], np.float32))
    np.testing.assert_allclose(read_depth(tmp_path / "d.npy"), [[0, 2.0], [0, 0.5]])
    with pytest.raises(InputError, match="depth"):
        cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((2, 2, 3), np.uint8))
        read_depth(tmp_path / "rgb.png")


def test_load_snapshot_from_files(tmp_path):
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 1] = 200
    cv2.imwrite(str(tmp_path / "rgb.png"), rgb)
    cv2.imwrite(str(tmp_path / "depth.png"), np.full((48, 64), 1250, np.uint16))
    T = np.eye(4)
    T[:3, 3] = (1, 2, 3)
    np.savetxt(tmp_path / "pose.txt", T)
    snap = load_snapshot(tmp_path / "rgb.png", tmp_path / "depth.png", "50,50,31.5,23.5", tmp_path / "pose.txt")
    assert snap.rgb.shape == (48, 64, 3) and abs(snap.rgb[0, 0, 1] - 200 / 255) < 1e-6
    np.testing.assert_allclose(snap.depth, 1.25)
    np.testing.assert_array_equal(snap.T_world_cam, T)
    with pytest.raises(InputError, match="pose"):
        (tmp_path / "bad.txt").write_text("1 2 3")
        load_snapshot(tmp_path / "rgb.png", tmp_path / "depth.png", "50,50,31.5,23.5", tmp_path / "bad.txt")


def _tilted(deviation: float) -> np.ndarray:
    """A pose whose rotation block is off orthonormal by about ``deviation`` (as rounded text files are)."""
    T = np.eye(4)
    c, s = np.cos(0.3), np.sin(0.3)
    T[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    T[:3, :3] += deviation * np.array([[1.0, 0.5, 0.0], [0.0, -0.5, 1.0], [0.2, 0.0, 0.7]])
    T[:3, 3] = (0.5, -1.0, 2.0)
    return T


def test_pose_files_with_rounded_rotations_load_orthonormalised(tmp_path):
    # issue 15: `imagine --pose frame-000000.pose.txt` on 7-Scenes failed: its rotations deviate ~1.8e-4 from
    # orthonormal, the snapshot check allows 1e-4, while RgbdFolder orthonormalises
    np.savetxt(tmp_path / "pose.txt", _tilted(1.8e-4))
    T = read_pose(tmp_path / "pose.txt")
    assert np.abs(T[:3, :3] @ T[:3, :3].T - np.eye(3)).max() < 1e-12 and np.linalg.det(T[:3, :3]) > 0
    assert np.abs(T - _tilted(1.8e-4)).max() < 1e-3 and np.array_equal(T[:3, 3], [0.5, -1.0, 2.0])
    np.savetxt(tmp_path / "far.txt", _tilted(0.2))
    with pytest.raises(InputError, match="pose \\(far.txt\\): not a proper rotation matrix"):
        read_pose(tmp_path / "far.txt")


def test_imagine_reads_a_real_7scenes_pose(redkitchen_dir):
    # issue 15: the same file the README's `worldstereo-ros imagine ... --pose` example names
    snap = load_snapshot(redkitchen_dir / "frame-000000.color.jpg", redkitchen_dir / "frame-000000.depth.png",
                         redkitchen_dir / "camera-intrinsics.txt", redkitchen_dir / "frame-000000.pose.txt")
    raw = np.loadtxt(redkitchen_dir / "frame-000000.pose.txt")
    assert np.abs(snap.T_world_cam - raw).max() < 1e-3
