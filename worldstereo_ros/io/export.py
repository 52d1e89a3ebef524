"""Write everything a run produced into one folder, timing each writer.

Layout of ``out``::

    frames/<trajectory>/frame-XXXXXX.color.png       8-bit RGB
    frames/<trajectory>/frame-XXXXXX.depth.png       uint16 millimetres, 0 = unknown
    frames/<trajectory>/frame-XXXXXX.imagined.png    255 where the pixel was imagined
    frames/<trajectory>/frame-XXXXXX.pose.txt        4x4 T_world_cam (OpenCV optical frame)
    frames/<trajectory>/camera-intrinsics.txt        3x3 K
    videos/<trajectory>.mp4
    contact_sheet.png                                per trajectory: rgb row, depth row (imagined tinted)
    cache.ply                                        the fused global cache (xyz, rgb, confidence, count, view_id)
    poses.json, poses/<trajectory>.tum.txt           imagined camera poses
    colmap/cameras.txt, images.txt, points3D.txt     COLMAP text model (cameras + cache points)
    mesh.ply, mesh.obj                               TSDF mesh of the snapshot and every imagined frame

Each ``frames/<trajectory>`` folder is a 7-Scenes-style sequence (readable by
:class:`~worldstereo_ros.datasets.rgbd_folder.RgbdFolder` and the replay node).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from worldstereo_ros.errors import InputError
from worldstereo_ros.io.cache_files import save_cache_ply
from worldstereo_ros.io.colmap import ColmapView, write_colmap_text
from worldstereo_ros.io.images import (
    contact_sheet,
    depth_preview,
    tint_imagined,
    write_depth_png,
    write_mask_png,
    write_rgb_png,
)
from worldstereo_ros.io.mesh import tsdf_mesh, write_mesh
from worldstereo_ros.io.poses import PoseTrack, write_poses_json, write_tum
from worldstereo_ros.io.video import write_video

#: Writers :func:`export_run` knows, in the order it runs them.
log = logging.getLogger(__name__)

EXPORTS = ("frames", "videos", "contact_sheet", "cache_ply", "poses", "colmap", "mesh")


def write_trajectory_frames(folder: str | Path, rgb: np.ndarray, depth: np.ndarray, imagined: np.ndarray,
                            T_world_cam: np.ndarray, K: np.ndarray) -> list[Path]:
    """Write one trajectory's frames as a 7-Scenes-style folder plus imagined masks (layout in the module doc).

    Args:
        rgb: (N, H, W, 3) float in [0, 1]. depth: (N, H, W) metres. imagined: (N, H, W) bool.
        T_world_cam: (N, 4, 4). K: (3, 3).
    Returns:
        the paths written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = np.shape(depth)[0]
    for name, value, shape in (("rgb", rgb, 4), ("imagined", imagined, 3), ("T_world_cam", T_world_cam, 3)):
        if np.ndim(value) != shape or np.shape(value)[0] != n:
            raise InputError(name, f"expected {n} frames, got shape {np.shape(value)}")
    paths = []
    for i in range(n):
        stem = folder / f"frame-{i:06d}"
        paths.append(write_rgb_png(f"{stem}.color.png", rgb[i]))
        paths.append(write_depth_png(f"{stem}.depth.png", depth[i]))
        paths.append(write_mask_png(f"{stem}.imagined.png", imagined[i]))
        np.savetxt(f"{stem}.pose.txt", np.asarray(T_world_cam[i], dtype=np.float64))
        paths.append(Path(f"{stem}.pose.txt"))
    np.savetxt(folder / "camera-intrinsics.txt", np.asarray(K, dtype=np.float64))
    paths.append(folder / "camera-intrinsics.txt")
    return paths


def _colmap_points(cache, max_points: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Cache points for the COLMAP model: all of them, or with ``max_points`` set and exceeded, the cache on a
    coarser grid (each step 1.5 x the voxel) until they fit, which is logged as a warning."""
    if max_points is None or len(cache) <= max_points:
        return cache.xyz.cpu().numpy(), cache.rgb.cpu().numpy()
    voxel = cache.voxel_size_m * 1.5
    while True:
        xyz, rgb = cache.voxel_downsampled(voxel)
        if xyz.shape[0] <= max_points:
            log.warning("COLMAP export: %d cache points thinned to %d on a %.3f m grid (colmap_max_points=%d)",
                        len(cache), xyz.shape[0], voxel, max_points)
            return xyz.cpu().numpy(), rgb.cpu().numpy()
        voxel *= 1.5


def export_run(out: str | Path, snapshot, cache, results: Sequence, exports: Sequence[str] = EXPORTS,
               fps: float = 10.0, mesh_voxel_m: float | None = None, colmap_max_points: int | None = None,
               ) -> tuple[dict[str, list[Path]], dict[str, float]]:
    """Write a run's outputs into ``out`` (layout in the module doc).

    Args:
        out: output folder (created).
        snapshot: the :class:`~worldstereo_ros.snapshot.Snapshot` the run started from.
        cache: the pipeline's :class:`~worldstereo_ros.memory.global_cache.GlobalCache`.
        results: the pipeline's :class:`~worldstereo_ros.pipeline.TrajectoryResult` list.
        exports: which writers to run (names in :data:`EXPORTS`).
        fps: video frame rate.
        mesh_voxel_m: TSDF voxel size, metres (None = 1/100 of the snapshot's median depth, 1..5 cm).
        colmap_max_points: None (default) writes every cache point to the COLMAP model; a number caps them
            (coarser grid beyond, with a logged warning).
    Returns:
        (paths per export name, seconds per export name).
    """
    unknown = [e for e in exports if e not in EXPORTS]
    if unknown:
        raise InputError("exports", f"unknown {unknown}; valid: {', '.join(EXPORTS)}")
    if not results:
        raise InputError("results", "nothing to export: no trajectory results")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, list[Path]] = {}
    seconds: dict[str, float] = {}
    valid = snapshot.depth[snapshot.depth > 0]
    depth_max = float(np.percentile(valid, 99.5)) * 1.5 if valid.size else 10.0

    def timed(name: str, fn) -> tuple[str, list[Path], float]:
        t0 = time.perf_counter()
        written = list(fn())
        return name, written, time.perf_counter() - t0

    def frames():
        for r in results:
            yield from write_trajectory_frames(out / "frames" / r.id, r.rgb, r.depth, r.imagined, r.T_world_cam, r.K)

    def videos():
        for r in results:
            yield write_video(out / "videos" / f"{r.id}.mp4", r.rgb, fps=fps)

    def sheet():
        rows = []
        for r in results:
            rows.append((f"{r.id}: rgb", r.rgb))
            top = depth_max / 1.5
            previews = np.stack([tint_imagined(depth_preview(d, top), m, 0.5) for d, m in zip(r.depth, r.imagined)])
            rows.append((f"{r.id}: depth, imagined tinted", previews))
        yield write_rgb_png(out / "contact_sheet.png", contact_sheet(rows))

    def cache_ply():
        save_cache_ply(cache, out / "cache.ply")
        yield out / "cache.ply"

    def poses():
        tracks = [PoseTrack(r.id, r.T_world_cam, r.timestamps_s, r.K, r.width, r.height) for r in results]
        yield write_poses_json(out / "poses.json", tracks)
        for r in results:
            yield write_tum(out / "poses" / f"{r.id}.tum.txt", r.T_world_cam, r.timestamps_s)

    def colmap():
        views = [ColmapView(f"{r.id}/frame-{i:06d}.color.png", r.K, r.width, r.height, r.T_world_cam[i])
                 for r in results for i in range(r.num_frames)]
        xyz, rgb = _colmap_points(cache, colmap_max_points)
        yield from write_colmap_text(out / "colmap", views, xyz, rgb)

    def mesh():
        voxel = mesh_voxel_m
        if voxel is None:
            median = float(np.median(valid)) if valid.size else 1.0
            voxel = float(np.clip(median / 100.0, 0.01, 0.05))
        inputs = []
        if not snapshot.is_panorama:
            inputs.append((snapshot.rgb, snapshot.depth, snapshot.K, snapshot.T_world_cam))
        for r in results:
            inputs += [(r.rgb[i], r.depth[i], r.K, r.T_world_cam[i]) for i in range(r.num_frames)]
        yield from write_mesh(tsdf_mesh(inputs, voxel_size_m=voxel, depth_max_m=depth_max), out / "mesh")

    jobs = [(name, fn) for name, fn in (("videos", videos), ("mesh", mesh), ("frames", frames),
                                        ("contact_sheet", sheet), ("cache_ply", cache_ply), ("poses", poses),
                                        ("colmap", colmap)) if name in exports]
    # the writers spend their time in ffmpeg, Open3D and libpng, which release the GIL: overlapping them
    # roughly halves the wall time on two cores (seconds per export are then wall times that overlap)
    with ThreadPoolExecutor(max_workers=max(1, min(3, os.cpu_count() or 1))) as pool:
        done = {name: result for name, *result in pool.map(lambda job: timed(*job), jobs)}
    for name in EXPORTS:
        if name in done:
            paths[name], seconds[name] = done[name]
    return paths, seconds
