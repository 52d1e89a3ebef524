"""COLMAP sparse models in COLMAP's text format (``cameras.txt``, ``images.txt``, ``points3D.txt``).

Written as COLMAP documents it (https://colmap.github.io/format.html, "Text Format"):

- ``cameras.txt``: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]``; here always ``PINHOLE`` with ``fx fy cx cy``.
- ``images.txt``: two lines per image: ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME``, the world-to-camera
  rotation as a unit quaternion (w first) and translation, then the 2D points as ``X Y POINT3D_ID`` triples
  (empty here: the cameras are known, no features were matched).
- ``points3D.txt``: ``POINT3D_ID X Y Z R G B ERROR TRACK[]``, colours 0..255, track as
  ``IMAGE_ID POINT2D_IDX`` pairs (empty here, ERROR 0).

Conventions: COLMAP's camera axes are OpenCV's (x right, y down, z forward), so the pose is
``T_cam_world = inv(T_world_cam)`` unchanged. COLMAP puts the centre of the top-left pixel at (0.5, 0.5)
while this project puts it at (0, 0), so the written principal point is ``cx + 0.5, cy + 0.5`` (and the
reader subtracts it again). Ids start at 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.rotations import matrix_to_quat_xyzw, quat_xyzw_to_matrix, wxyz_to_xyzw, xyzw_to_wxyz


@dataclass
class ColmapView:
    """One image of the model: name (relative path), K (3, 3) (this project's pixel convention), image size,
    and ``T_world_cam`` (4, 4) of the OpenCV optical frame."""

    name: str
    K: np.ndarray
    width: int
    height: int
    T_world_cam: np.ndarray


@dataclass
class ColmapModel:
    """A model read back by :func:`read_colmap_text`.

    Attributes:
        cameras: camera id -> (model, width, height, params (k,) float64 as written).
        views: image id -> ColmapView (K and T_world_cam converted back to this project's conventions).
        image_camera: image id -> camera id.
        point_ids: (M,) int64. xyz: (M, 3) float64 metres. rgb: (M, 3) uint8. error: (M,) float64.
    """

    cameras: dict[int, tuple[str, int, int, np.ndarray]]
    views: dict[int, ColmapView]
    image_camera: dict[int, int]
    point_ids: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray
    error: np.ndarray


#: COLMAP camera models whose parameters start with one focal length: f, cx, cy, ...
_SINGLE_FOCAL = {"SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"}


def _quat_wxyz(R: np.ndarray) -> np.ndarray:
    return xyzw_to_wxyz(matrix_to_quat_xyzw(R))  # unit, qw >= 0


def _rotation(q_wxyz: np.ndarray) -> np.ndarray:
    return quat_xyzw_to_matrix(wxyz_to_xyzw(q_wxyz), "QW QX QY QZ")


def write_colmap_text(folder: str | Path, views: Sequence[ColmapView], xyz: np.ndarray | None = None,
                      rgb: np.ndarray | None = None) -> list[Path]:
    """Write a COLMAP text model of known cameras and a point cloud.

    Args:
        folder: output folder (created).
        views: the images; views with equal K and size share one camera.
        xyz: (M, 3) world points, metres (or None for no points).
        rgb: (M, 3) colours, float in [0, 1] or uint8 (None = grey).
    Returns:
        the three paths written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not views:
        raise InputError("views", "expected at least one view")
    cam_ids: dict[tuple, int] = {}
    cam_lines, img_lines = [], []
    Ts = np.stack([np.asarray(v.T_world_cam, dtype=np.float64) for v in views])
    if Ts.shape[1:] != (4, 4) or not np.isfinite(Ts).all():
        raise InputError("T_world_cam", f"expected finite (4, 4) poses, got shape {Ts.shape[1:]}")
    R_cw = np.transpose(Ts[:, :3, :3], (0, 2, 1))
    t_cw = -np.einsum("nij,nj->ni", R_cw, Ts[:, :3, 3])
    q = _quat_wxyz(R_cw)
    for i, view in enumerate(views):
        K = np.asarray(view.K, dtype=np.float64)
        if K.shape != (3, 3):
            raise InputError("K", f"view {view.name!r}: expected shape (3, 3), got {K.shape}")
        if any(c.isspace() for c in view.name) or not view.name:
            raise InputError("name", f"image names must be non-empty without spaces, got {view.name!r}")
        params = (K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5)
        key = (int(view.width), int(view.height), *np.round(params, 9))
        if key not in cam_ids:
            cam_ids[key] = len(cam_ids) + 1
            cam_lines.append(f"{cam_ids[key]} PINHOLE {int(view.width)} {int(view.height)} "
                             + " ".join(f"{p:.17g}" for p in params))
        values = " ".join(f"{v:.17g}" for v in (*q[i], *t_cw[i]))
        img_lines.append(f"{i + 1} {values} {cam_ids[key]} {view.name}")
        img_lines.append("")
    if xyz is None:
        xyz = np.zeros((0, 3))
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise InputError("xyz", f"expected shape (M, 3), got {xyz.shape}")
    if rgb is None:
        colours = np.full(xyz.shape, 128, dtype=np.uint8)
    else:
        rgb = np.asarray(rgb)
        if rgb.shape != xyz.shape:
            raise InputError("rgb", f"expected shape {xyz.shape}, got {rgb.shape}")
        colours = rgb if rgb.dtype == np.uint8 else np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)

    paths = [folder / "cameras.txt", folder / "images.txt", folder / "points3D.txt"]
    paths[0].write_text("# Camera list with one line of data per camera:\n"
                        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
                        f"# Number of cameras: {len(cam_lines)}\n" + "\n".join(cam_lines) + "\n")
    paths[1].write_text("# Image list with two lines of data per image:\n"
                        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
                        "#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
                        f"# Number of images: {len(views)}, mean observations per image: 0\n"
                        + "\n".join(img_lines) + "\n")
    with open(paths[2], "w") as f:
        f.write("# 3D point list with one line of data per point:\n"
                "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
                f"# Number of points: {xyz.shape[0]}, mean track length: 0\n")
        if xyz.shape[0]:
            ids = np.arange(1, xyz.shape[0] + 1)
            table = np.column_stack([ids, xyz, colours.astype(np.int64), np.zeros(xyz.shape[0])])
            np.savetxt(f, table, fmt=["%d", "%.9g", "%.9g", "%.9g", "%d", "%d", "%d", "%g"])
    return paths


def _data_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError("path", f"no such file: {path}")
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def read_colmap_text(folder: str | Path) -> ColmapModel:
    """Read a COLMAP text model (any camera model; K is built for PINHOLE, SIMPLE_PINHOLE and the first four
    parameters of the others, f fx fy cx cy as COLMAP orders them)."""
    folder = Path(folder)
    cameras = {}
    for line in _data_lines(folder / "cameras.txt"):
        if not line.strip():
            continue
        parts = line.split()
        cameras[int(parts[0])] = (parts[1], int(parts[2]), int(parts[3]), np.array(parts[4:], dtype=np.float64))
    views, image_camera = {}, {}
    lines = _data_lines(folder / "images.txt")
    # image lines and point lines alternate; the point line may be empty
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        parts = lines[i].split()
        if len(parts) < 10:
            raise InputError("path", f"{folder / 'images.txt'}: malformed image line {lines[i]!r}")
        image_id, cam_id = int(parts[0]), int(parts[8])
        q = np.array(parts[1:5], dtype=np.float64)
        t = np.array(parts[5:8], dtype=np.float64)
        model, w, h, params = cameras[cam_id]
        if model in _SINGLE_FOCAL:
            fx = fy = params[0]
            cx, cy = params[1], params[2]
        else:
            fx, fy, cx, cy = params[:4]
        K = np.array([[fx, 0.0, cx - 0.5], [0.0, fy, cy - 0.5], [0.0, 0.0, 1.0]])
        R_cw = _rotation(q)
        T = np.eye(4)
        T[:3, :3] = R_cw.T
        T[:3, 3] = -R_cw.T @ t
        views[image_id] = ColmapView(" ".join(parts[9:]), K, w, h, T)
        image_camera[image_id] = cam_id
        i += 2
    rows = [line.split() for line in _data_lines(folder / "points3D.txt") if line.strip()]
    ids = np.array([int(r[0]) for r in rows], dtype=np.int64)
    xyz = np.array([r[1:4] for r in rows], dtype=np.float64).reshape(-1, 3)
    rgb = np.array([r[4:7] for r in rows], dtype=np.int64).reshape(-1, 3).astype(np.uint8)
    err = np.array([r[7] for r in rows], dtype=np.float64)
    return ColmapModel(cameras, views, image_camera, ids, xyz, rgb, err)
