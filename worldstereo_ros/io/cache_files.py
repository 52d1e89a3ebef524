"""The global cache in files: ``.npz`` (every array and setting, lossless) and PLY (through Open3D's tensor
point cloud: xyz float32, colours as 8-bit, plus ``confidence`` (float), ``count`` and ``view_id`` (int) per
vertex, which any PLY reader shows as an ordinary coloured cloud).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open3d as o3d
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.memory.global_cache import GlobalCache
from worldstereo_ros.memory.voxel_arrays import FIELDS

#: Version of the ``.npz`` layout; :func:`load_cache_npz` refuses others.
NPZ_FORMAT = 1
_OPTIONAL = ("bounds_min", "bounds_max", "reference_point")


def save_cache_npz(cache: GlobalCache, path: str | Path) -> None:
    """Write every array and setting of ``cache`` to an ``.npz`` file; :func:`load_cache_npz` restores it exactly.

    Absent bounds and reference point are stored as NaN triples.
    """
    state = cache.state()
    none = np.full(3, np.nan, dtype=np.float32)
    for name in _OPTIONAL:
        state[name] = none if state[name] is None else state[name]
    np.savez(Path(path), format=NPZ_FORMAT, **state)


def load_cache_npz(path: str | Path, device: str | torch.device = "cpu") -> GlobalCache:
    """Read a cache written by :func:`save_cache_npz` onto ``device``."""
    with np.load(Path(path)) as f:
        if "format" not in f or int(f["format"]) != NPZ_FORMAT:
            raise InputError("path", f"{path} is not a GlobalCache file (format {NPZ_FORMAT})")
        state = {name: f[name] for name in (*FIELDS, "voxel_size_m", "max_points", "max_confidence")}
        for name in _OPTIONAL:
            state[name] = None if np.isnan(f[name]).all() else f[name]
    return GlobalCache.from_state(state, device)


def save_cache_ply(cache: GlobalCache, path: str | Path) -> None:
    """Write ``cache`` as a binary PLY (module doc)."""
    state = cache.state()
    if len(cache) == 0:  # Open3D refuses to write no points; the header alone is a valid PLY
        props = "".join(f"property {t} {n}\n" for t, n in (("float", "x"), ("float", "y"), ("float", "z"),
                        ("uchar", "red"), ("uchar", "green"), ("uchar", "blue"), ("float", "confidence"),
                        ("int", "count"), ("int", "view_id")))
        Path(path).write_text(f"ply\nformat binary_little_endian 1.0\nelement vertex 0\n{props}end_header\n")
        return
    pcd = o3d.t.geometry.PointCloud()
    pcd.point.positions = o3d.core.Tensor(state["xyz"])
    pcd.point.colors = o3d.core.Tensor(
        np.round(state["rgb"].astype(np.float32) * 255.0).clip(0, 255).astype(np.uint8))
    for name in ("confidence", "count", "view_id"):
        pcd.point[name] = o3d.core.Tensor(state[name][:, None])
    if not o3d.t.io.write_point_cloud(str(path), pcd, write_ascii=False):
        raise InputError("path", f"Open3D could not write {path}")


def load_cache_ply(path: str | Path, **kwargs) -> GlobalCache:
    """A new cache (``kwargs`` as for :class:`GlobalCache`) from a PLY file read through Open3D.

    Positions are required; colours (8-bit or float), ``confidence``, ``count`` and ``view_id`` are used when
    present (else mid grey, 1, 1, 0). Points are fused into the cache's voxels, so a file written by
    :func:`save_cache_ply` at the same voxel size comes back with the same points.
    """
    if not Path(path).is_file():
        raise InputError("path", f"no such file: {path}")
    pcd = o3d.t.io.read_point_cloud(str(path))
    cache = GlobalCache(**kwargs)
    if "positions" not in pcd.point or pcd.point.positions.shape[0] == 0:
        return cache
    xyz = torch.from_numpy(pcd.point.positions.numpy().astype(np.float32))
    n = xyz.shape[0]

    def attr(name: str, default: float, dtype: torch.dtype) -> torch.Tensor:
        if name in pcd.point:
            return torch.from_numpy(np.ascontiguousarray(pcd.point[name].numpy().reshape(n, -1)[:, 0])).to(dtype)
        return torch.full((n,), default, dtype=dtype)

    if "colors" in pcd.point:
        colors = pcd.point.colors.numpy()
        rgb = torch.from_numpy(colors.astype(np.float32) / (255.0 if colors.dtype == np.uint8 else 1.0))
    else:
        rgb = torch.full((n, 3), 0.5)
    cache.fuse_records(xyz, rgb, attr("confidence", 1.0, torch.float32), attr("count", 1, torch.int32),
                       attr("view_id", 0, torch.int32))
    return cache
