"""The global cache in files: ``.npz`` (every array and setting, lossless) and PLY (:mod:`worldstereo_ros.io.ply`:
xyz float32, colours as 8-bit, plus ``confidence`` (float), ``count`` and ``view_id`` (int) per vertex, which
any PLY reader shows as an ordinary coloured cloud).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.io.ply import read_ply, write_ply
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
    """Write ``cache`` as a binary PLY (module doc) through :func:`~worldstereo_ros.io.ply.write_ply`."""
    state = cache.state()
    write_ply(path, state["xyz"], state["rgb"].astype(np.float32),
              attributes={name: state[name] for name in ("confidence", "count", "view_id")})


def load_cache_ply(path: str | Path, **kwargs) -> GlobalCache:
    """A new cache (``kwargs`` as for :class:`GlobalCache`) from a PLY file (:func:`~worldstereo_ros.io.ply.read_ply`).

    Positions are required; colours (8-bit or float), ``confidence``, ``count`` and ``view_id`` are used when
    present (else mid grey, 1, 1, 0). Points are fused into the cache's voxels, so a file written by
    :func:`save_cache_ply` at the same voxel size comes back with the same points.
    """
    xyz, rgb, extra = read_ply(path)
    cache = GlobalCache(**kwargs)
    n = xyz.shape[0]
    if n == 0:
        return cache

    def attr(name: str, default: float, dtype: torch.dtype) -> torch.Tensor:
        if name in extra:
            return torch.from_numpy(np.ascontiguousarray(np.reshape(extra[name], (n, -1))[:, 0])).to(dtype)
        return torch.full((n,), default, dtype=dtype)

    rgb_t = torch.full((n, 3), 0.5) if rgb is None else torch.from_numpy(rgb)
    cache.fuse_records(torch.from_numpy(xyz), rgb_t, attr("confidence", 1.0, torch.float32),
                       attr("count", 1, torch.int32), attr("view_id", 0, torch.int32))
    return cache
