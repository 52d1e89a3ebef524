"""Triangle meshes of imagined scenes: the frames TSDF-fused (:class:`~worldstereo_ros.geometry.tsdf.TsdfFusion`,
with its half-pixel fix) and marching cubes on the zero level, with per-vertex colours.

Fusing the rgb-d frames (rather than meshing the point cache) averages depth noise over views and leaves free
space empty, which gives a much cleaner surface. (Open3D 0.20's legacy ``ScalableTSDFVolume`` integrates
nothing in this environment; the tensor ``VoxelBlockGrid`` is used instead.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import open3d as o3d

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.tsdf import TsdfFusion


def tsdf_mesh(frames: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], voxel_size_m: float = 0.02,
              trunc_voxels: float = 4.0, depth_max_m: float = 8.0, block_count: int = 1000,
              min_weight: float = 1.0):
    """Fuse RGB-D frames into a TSDF and extract a coloured triangle mesh.

    Args:
        frames: (rgb (H, W, 3) float in [0, 1] or uint8, depth (H, W) float32 metres (0 = unknown),
            K (3, 3) pixels, T_world_cam (4, 4) OpenCV optical frame) per frame.
        voxel_size_m: TSDF voxel edge, metres.
        trunc_voxels: truncation distance in voxels.
        depth_max_m: depths beyond this are ignored, metres.
        block_count: initial hash-map capacity in blocks of 8^3 voxels; the map grows as needed, and a small
            start matters: Open3D allocates every block's voxels up front.
        min_weight: marching cubes keeps voxels fused from at least this many observations.
    Returns:
        ``open3d.geometry.TriangleMesh`` (legacy) with vertex colours, world frame; empty if nothing fused.
    """
    if not (isinstance(voxel_size_m, (int, float)) and voxel_size_m > 0):
        raise InputError("voxel_size_m", f"expected a float > 0 metres, got {voxel_size_m!r}")
    fusion = TsdfFusion(voxel_size_m, trunc_voxels * voxel_size_m, depth_max_m, block_resolution=8,
                        block_count=block_count)
    for i, (rgb, depth, K, T_world_cam) in enumerate(frames):
        depth = np.asarray(depth, dtype=np.float32)
        rgb = np.asarray(rgb)
        if depth.ndim != 2 or rgb.shape != (*depth.shape, 3):
            raise InputError("frames", f"frame {i}: expected rgb (H, W, 3) and depth (H, W), got {rgb.shape} "
                                       f"and {depth.shape}")
        colour = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
        fusion.integrate(depth, colour, K, np.linalg.inv(np.asarray(T_world_cam, dtype=np.float64)))
    return fusion.triangle_mesh(min_weight)


def write_mesh(mesh, path_stem: str | Path) -> list[Path]:
    """Write a legacy Open3D triangle mesh as ``<stem>.ply`` (binary, vertex colours) and ``<stem>.obj``."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".ply"), stem.with_suffix(".obj")]
    for path in paths:
        if len(mesh.triangles) == 0:
            _write_empty(path)
        elif not o3d.io.write_triangle_mesh(str(path), mesh, write_ascii=path.suffix == ".obj",
                                            write_vertex_normals=False, print_progress=False):
            raise InputError("path", f"Open3D could not write {path}")
    return paths


def _write_empty(path: Path) -> None:
    if path.suffix == ".ply":
        path.write_text("ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\n"
                        "property float z\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n")
    else:
        path.write_text("# empty mesh\n")
