"""Global cache files: lossless .npz and PLY through Open3D (worldstereo_ros.io.cache_files)."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.io.cache_files import load_cache_npz, load_cache_ply, save_cache_npz, save_cache_ply
from worldstereo_ros.memory.global_cache import GlobalCache


def test_npz_round_trip_is_exact(tmp_path):
    g = torch.Generator().manual_seed(2)
    cache = GlobalCache(voxel_size_m=0.03, max_points=100_000, bounds_min=[-1, -1, -1], bounds_max=[1, 1, 1],
                        max_confidence=7.0)
    for view in range(3):
        cache.merge(torch.rand((3000, 3), generator=g) * 2 - 1, torch.rand((3000, 3), generator=g),
                    torch.rand(3000, generator=g) + 0.1, view_id=view, viewpoint=[0.0, 0.0, view])
    save_cache_npz(cache, tmp_path / "cache.npz")
    back = load_cache_npz(tmp_path / "cache.npz")
    for name in ("keys", "xyz", "rgb", "confidence", "count", "view_id", "bounds_min", "bounds_max",
                 "reference_point"):
        assert torch.equal(getattr(back, name), getattr(cache, name)), name
    assert (back.voxel_size_m, back.max_points, back.max_confidence) == (0.03, 100_000, 7.0)
    empty = GlobalCache()
    save_cache_npz(empty, tmp_path / "empty.npz")
    again = load_cache_npz(tmp_path / "empty.npz")
    assert len(again) == 0 and again.bounds_min is None and again.reference_point is None
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="path: .* is not a GlobalCache file"):
        load_cache_npz(tmp_path / "other.npz")


def test_ply_round_trip_through_open3d(tmp_path, corner_room_points):
    g = torch.Generator().manual_seed(3)
    cache = GlobalCache(voxel_size_m=0.05)
    cache.merge(corner_room_points(0.02), torch.rand((corner_room_points(0.02).shape[0], 3), generator=g), view_id=3)
    cache.merge(corner_room_points(0.02) + 0.01, view_id=5)
    save_cache_ply(cache, tmp_path / "cache.ply")
    back = load_cache_ply(tmp_path / "cache.ply", voxel_size_m=0.05)
    assert torch.equal(back.keys, cache.keys)
    assert torch.equal(back.xyz, cache.xyz)
    assert (back.rgb - cache.rgb).abs().max() <= 0.5 / 255 + 1e-3
    assert torch.equal(back.confidence, cache.confidence)
    assert torch.equal(back.count, cache.count) and torch.equal(back.view_id, cache.view_id)
    legacy = o3d.io.read_point_cloud(str(tmp_path / "cache.ply"))  # any PLY reader sees xyz + colours
    assert len(legacy.points) == len(cache) and legacy.has_colors()
    with pytest.raises(InputError, match="path: no such file"):
        load_cache_ply(tmp_path / "missing.ply")
    save_cache_ply(GlobalCache(), tmp_path / "empty.ply")  # Open3D writes no empty clouds: a header-only PLY
    assert len(load_cache_ply(tmp_path / "empty.ply")) == 0
    assert len(o3d.io.read_point_cloud(str(tmp_path / "empty.ply")).points) == 0
