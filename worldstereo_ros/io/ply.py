"""Coloured point clouds as PLY files, through Open3D's tensor point cloud.

Positions are float32 metres; colours are written as 8-bit (``red``, ``green``, ``blue``) and read back as
float32 in [0, 1]; extra per-point attributes are kept: integer ones as int32 (e.g. ``count``), the rest as
float32 (e.g. ``confidence``). Binary little-endian by default. The one PLY point-cloud writer of the
package (the global cache's files go through it too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import open3d as o3d

from worldstereo_ros.errors import InputError


def write_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray | None = None, normals: np.ndarray | None = None,
              attributes: Mapping[str, np.ndarray] | None = None, ascii: bool = False) -> Path:
    """Write points (N, 3) metres with optional colours (N, 3) (float in [0, 1] or uint8), normals (N, 3) and
    named scalar attributes (N,) (integer arrays written as int32, others as float32).

    Returns the path. An empty cloud is written as a header-only PLY (Open3D refuses to write none).
    """
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or not np.issubdtype(xyz.dtype, np.floating):
        raise InputError("xyz", f"expected float (N, 3), got {xyz.shape} {xyz.dtype}")
    n = xyz.shape[0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    colours = None
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != (n, 3):
            raise InputError("rgb", f"expected shape ({n}, 3), got {rgb.shape}")
        colours = rgb if rgb.dtype == np.uint8 else np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    if normals is not None and np.shape(normals) != (n, 3):
        raise InputError("normals", f"expected shape ({n}, 3), got {np.shape(normals)}")
    attributes = {name: np.asarray(value) for name, value in (attributes or {}).items()}
    for name, value in attributes.items():
        if value.shape != (n,):
            raise InputError(name, f"expected shape ({n},), got {value.shape}")
    attributes = {name: np.ascontiguousarray(value, np.int32 if np.issubdtype(value.dtype, np.integer) else np.float32)
                  for name, value in attributes.items()}
    if n == 0:
        props = ["float x", "float y", "float z"]
        props += ["uchar red", "uchar green", "uchar blue"] if colours is not None else []
        props += ["float nx", "float ny", "float nz"] if normals is not None else []
        props += [f"{'int' if v.dtype == np.int32 else 'float'} {name}" for name, v in attributes.items()]
        body = "".join(f"property {p}\n" for p in props)
        path.write_text(f"ply\nformat {'ascii' if ascii else 'binary_little_endian'} 1.0\nelement vertex 0\n"
                        f"{body}end_header\n")
        return path
    pcd = o3d.t.geometry.PointCloud()
    pcd.point.positions = o3d.core.Tensor(np.ascontiguousarray(xyz, dtype=np.float32))
    if colours is not None:
        pcd.point.colors = o3d.core.Tensor(np.ascontiguousarray(colours))
    if normals is not None:
        pcd.point.normals = o3d.core.Tensor(np.ascontiguousarray(normals, dtype=np.float32))
    for name, value in attributes.items():
        pcd.point[name] = o3d.core.Tensor(value[:, None])
    if not o3d.t.io.write_point_cloud(str(path), pcd, write_ascii=ascii):
        raise InputError("path", f"Open3D could not write {path}")
    return path


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """Read a PLY point cloud: (xyz (N, 3) float32 metres, rgb (N, 3) float32 in [0, 1] or None,
    other per-point attributes name -> (N,) or (N, k) arrays, normals included)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("path", f"no such file: {path}")
    pcd = o3d.t.io.read_point_cloud(str(path))
    if "positions" not in pcd.point:
        return np.zeros((0, 3), np.float32), None, {}
    xyz = pcd.point.positions.numpy().astype(np.float32)
    rgb = None
    extra = {}
    for name in pcd.point:
        if name == "positions":
            continue
        value = pcd.point[name].numpy()
        if name == "colors":
            rgb = value.astype(np.float32) / (255.0 if value.dtype == np.uint8 else 1.0)
        else:
            extra[name] = value[:, 0] if value.ndim == 2 and value.shape[1] == 1 else value
    return xyz, rgb, extra
