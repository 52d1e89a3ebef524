"""COLMAP text model: re-read, camera centres -R^T t equal the poses, pixel-centre shift, points."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from worldstereo_ros.errors import InputError
from worldstereo_ros.io.colmap import ColmapView, read_colmap_text, write_colmap_text
from worldstereo_ros.io.export import export_run
from worldstereo_ros.memory.global_cache import GlobalCache
from worldstereo_ros.pipeline import TrajectoryResult
from worldstereo_ros.snapshot import Snapshot


def _views(n: int) -> list[ColmapView]:
    rng = np.random.default_rng(4)
    K = np.array([[525.0, 0, 319.5], [0, 526.0, 239.5], [0, 0, 1]])
    out = []
    for i in range(n):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        T = np.eye(4)
        T[:3, :3] = q * np.sign(np.linalg.det(q))
        T[:3, 3] = rng.normal(size=3) * 2
        out.append(ColmapView(f"traj/frame-{i:06d}.color.png", K if i < 3 else K * [[0.5], [0.5], [1]], 640, 480, T))
    return out


def _quat_to_R(qw, qx, qy, qz):
    # written out here, independently of the project's conversion, to check the file itself
    return np.array([
        [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)],
        [2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw)],
        [2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy)]])


def test_camera_centres_in_the_file_are_the_poses(tmp_path):
    views = _views(5)
    write_colmap_text(tmp_path, views)
    lines = [ln for ln in (tmp_path / "images.txt").read_text().splitlines() if not ln.startswith("#")]
    image_lines = lines[0::2]
    assert len(image_lines) == 5 and all(ln == "" for ln in lines[1::2])
    for view, line in zip(views, image_lines):
        parts = line.split()
        q = np.array(parts[1:5], float)
        t = np.array(parts[5:8], float)
        R = _quat_to_R(*q)
        np.testing.assert_allclose(-R.T @ t, view.T_world_cam[:3, 3], atol=1e-9)
        np.testing.assert_allclose(R.T, view.T_world_cam[:3, :3], atol=1e-9)
        assert parts[-1] == view.name


def test_round_trip_cameras_views_and_points(tmp_path):
    views = _views(5)
    xyz = np.random.default_rng(0).normal(size=(100, 3))
    rgb = np.random.default_rng(1).random((100, 3))
    write_colmap_text(tmp_path, views, xyz, rgb)
    model = read_colmap_text(tmp_path)
    assert len(model.cameras) == 2  # two distinct intrinsics
    model_name, w, h, params = model.cameras[1]
    assert (model_name, w, h) == ("PINHOLE", 640, 480)
    np.testing.assert_allclose(params, [525.0, 526.0, 320.0, 240.0])  # COLMAP's pixel centres are at +0.5
    for i, view in enumerate(views, start=1):
        np.testing.assert_allclose(model.views[i].T_world_cam, view.T_world_cam, atol=1e-9)
        np.testing.assert_allclose(model.views[i].K, view.K, atol=1e-9)
    assert model.image_camera[4] == 2
    np.testing.assert_allclose(model.xyz, xyz, rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(model.rgb, np.round(rgb * 255).astype(np.uint8))
    np.testing.assert_array_equal(model.point_ids, np.arange(1, 101))


def test_bad_input(tmp_path):
    with pytest.raises(InputError, match="views"):
        write_colmap_text(tmp_path, [])
    bad = _views(1)
    bad[0].name = "has space.png"
    with pytest.raises(InputError, match="name"):
        write_colmap_text(tmp_path, bad)
    with pytest.raises(InputError, match="rgb"):
        write_colmap_text(tmp_path, _views(1), np.zeros((3, 3)), np.zeros((2, 3)))


def test_export_writes_every_cache_point_unless_capped(tmp_path, caplog):
    # issue 15: the COLMAP export silently capped the model at 200k points
    g = np.random.default_rng(0)
    cache = GlobalCache.from_points(g.random((3000, 3)).astype(np.float32), voxel_size_m=0.001)
    K = np.array([[20.0, 0, 7.5], [0, 20.0, 5.5], [0, 0, 1]])
    snap = Snapshot.create(np.zeros((12, 16, 3), np.float32), np.ones((12, 16), np.float32), K)
    result = TrajectoryResult("a", np.zeros((2, 12, 16, 3), np.float32), np.ones((2, 12, 16), np.float32),
                              np.zeros((2, 12, 16), bool), np.repeat(np.eye(4)[None], 2, 0), K, {}, len(cache))
    export_run(tmp_path / "all", snap, cache, [result], ["colmap"])
    assert len(read_colmap_text(tmp_path / "all" / "colmap").xyz) == len(cache)
    with caplog.at_level(logging.WARNING, logger="worldstereo_ros.io.export"):
        export_run(tmp_path / "capped", snap, cache, [result], ["colmap"], colmap_max_points=500)
    assert len(read_colmap_text(tmp_path / "capped" / "colmap").xyz) <= 500
    assert "thinned" in caplog.text and "colmap_max_points=500" in caplog.text
