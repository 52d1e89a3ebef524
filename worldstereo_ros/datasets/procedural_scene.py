"""A small textured indoor scene made from numpy alone: the demo's snapshot when no data folder is given.

The scene is a room (5 m x 4 m x 2.6 m) with a wood-plank floor, brick side walls, a plastered back wall
with a doorway into a short corridor, a checkered rug, a table and a few boxes. Every surface is sampled
as dense coloured points (``spacing_m`` apart) and drawn with the project's point renderer
(:func:`~worldstereo_ros.geometry.render.render_points` with the ``"auto"`` crack-closing footprint), so a
view of it is an RGB-D frame with exact depth.

World frame: x forward (into the room), y left, z up (REP 103), metres; the floor is ``z = 0``. Cameras
use OpenCV optical axes (x right, y down, z forward). Everything is seeded: the same arguments give the
same points, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry import poses
from worldstereo_ros.geometry.render import render_points
from worldstereo_ros.snapshot import Snapshot

#: Room extent, metres: x from 0 (front wall) to ROOM_X (back wall), y in [-ROOM_Y, ROOM_Y], z in [0, ROOM_Z].
ROOM_X, ROOM_Y, ROOM_Z = 5.0, 2.0, 2.6
#: The doorway in the back wall (y range, height) and the corridor behind it (depth), metres.
DOOR_Y, DOOR_Z, CORRIDOR_X = (0.4, 1.3), 2.1, 2.0


@dataclass(frozen=True)
class ProceduralScene:
    """Dense coloured points of the procedural room.

    Attributes:
        xyz: (N, 3) float32 world points (z up), metres.
        rgb: (N, 3) float32 colours in [0, 1].
        spacing_m: distance between neighbouring points on each surface, metres.
        seed: the seed the textures were drawn with.
    """

    xyz: np.ndarray
    rgb: np.ndarray
    spacing_m: float
    seed: int

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def render(self, K: np.ndarray, T_world_cam: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw the scene into a pinhole camera.

        Args:
            K: (3, 3) intrinsics, pixels. T_world_cam: (4, 4) camera pose (OpenCV optical axes).
            width, height: image size, pixels.
        Returns:
            rgb (H, W, 3) float32 in [0, 1] and depth (H, W) float32 metres along the optical axis,
            0 where no surface is drawn.
        """
        T = np.asarray(T_world_cam, dtype=np.float64)
        if T.shape != (4, 4):
            raise InputError("T_world_cam", f"expected shape (4, 4), got {T.shape}")
        # the arrays are read-only (shared by the lru_cache): torch gets writable copies
        out = render_points(torch.from_numpy(self.xyz.copy()), torch.from_numpy(self.rgb.copy()),
                            torch.as_tensor(np.asarray(K, dtype=np.float64)),
                            torch.from_numpy(np.linalg.inv(T)), height, width, splat_px="auto",
                            point_spacing_m=self.spacing_m, max_splat_px=6)
        return out.rgb[0].numpy(), out.depth[0].numpy()


def _grid(u_range: tuple[float, float], v_range: tuple[float, float], spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Flat (M,) coordinates of a regular grid covering [u0, u1] x [v0, v1] with the given spacing."""
    nu = max(2, int(math.ceil((u_range[1] - u_range[0]) / spacing)) + 1)
    nv = max(2, int(math.ceil((v_range[1] - v_range[0]) / spacing)) + 1)
    u, v = np.meshgrid(np.linspace(*u_range, nu), np.linspace(*v_range, nv), indexing="xy")
    return u.ravel(), v.ravel()


def _hash_colours(ids: np.ndarray, base: np.ndarray, spread: float, seed: int) -> np.ndarray:
    """One colour per integer id: ``base`` (3,) jittered by up to ``spread``, fixed by (id, seed)."""
    ids = ids.astype(np.int64)
    out = np.empty((ids.size, 3), dtype=np.float64)
    for c in range(3):
        h = (ids * 73856093 + (c + 1) * 19349663 + seed * 83492791) % 1000003
        out[:, c] = base[c] + spread * (h / 1000003.0 - 0.5) * 2.0
    return out


def _wood(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Planks 0.18 m wide along u, with per-plank tone, grain stripes and plank joints."""
    plank = np.floor(v / 0.18)
    offset = _hash_colours(plank, np.array([0.0, 0.0, 0.0]), 1.2, seed)[:, 0]
    joint = np.floor((u + offset) / 1.2)
    tone = _hash_colours(plank * 31 + joint, np.array([0.55, 0.36, 0.2]), 0.08, seed)
    grain = 0.06 * np.sin(u * 37.0 + 3.0 * np.sin(v * 11.0 + plank))
    rgb = tone + grain[:, None]
    edge = (np.abs(v / 0.18 - np.round(v / 0.18)) < 0.04) | (np.abs((u + offset) / 1.2 - np.round((u + offset) / 1.2)) < 0.006)
    rgb[edge] *= 0.45
    return rgb


def _brick(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Running-bond bricks 0.24 x 0.08 m with 1 cm mortar joints."""
    row = np.floor(v / 0.08)
    shifted = u + 0.12 * (row % 2)
    col = np.floor(shifted / 0.24)
    rgb = _hash_colours(row * 1009 + col, np.array([0.62, 0.27, 0.2]), 0.1, seed)
    mortar = ((v - row * 0.08) < 0.01) | ((shifted - col * 0.24) < 0.01)
    rgb[mortar] = (0.78, 0.76, 0.72)
    return rgb


def _checker(u: np.ndarray, v: np.ndarray, cell: float, a: tuple, b: tuple) -> np.ndarray:
    odd = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(bool)
    return np.where(odd[:, None], np.array(b, dtype=np.float64), np.array(a, dtype=np.float64))


def _plaster(u: np.ndarray, v: np.ndarray, base: tuple, seed: int) -> np.ndarray:
    """A painted wall: smooth low-frequency blotches plus a thin dado stripe at 0.9 m."""
    blotch = 0.04 * np.sin(u * 2.3 + seed) * np.cos(v * 3.1 - seed) + 0.03 * np.sin(u * 7.7 + v * 5.3)
    rgb = np.array(base, dtype=np.float64)[None] + blotch[:, None]
    stripe = np.abs(v - 0.9) < 0.03
    rgb[stripe] = (0.25, 0.35, 0.55)
    return rgb


class _Builder:
    """Collects surface patches as (xyz, rgb) pairs."""

    def __init__(self, spacing: float, seed: int):
        self.spacing, self.seed = spacing, seed
        self.xyz: list[np.ndarray] = []
        self.rgb: list[np.ndarray] = []

    def patch(self, origin, axis_u, axis_v, u_range, v_range, texture, keep=None) -> None:
        """Add the rectangle origin + u * axis_u + v * axis_v, coloured by texture(u, v) (M, 3)."""
        u, v = _grid(u_range, v_range, self.spacing)
        if keep is not None:
            m = keep(u, v)
            u, v = u[m], v[m]
        xyz = np.asarray(origin, float)[None] + u[:, None] * np.asarray(axis_u, float) + v[:, None] * np.asarray(axis_v, float)
        self.xyz.append(xyz)
        self.rgb.append(texture(u, v))

    def box(self, lo, hi, texture) -> None:
        """An axis-aligned box [lo, hi] (3,) without its bottom face."""
        (x0, y0, z0), (x1, y1, z1) = lo, hi
        X, Y, Z = (1, 0, 0), (0, 1, 0), (0, 0, 1)
        self.patch((0, 0, z1), X, Y, (x0, x1), (y0, y1), texture)  # top
        self.patch((x0, 0, 0), Y, Z, (y0, y1), (z0, z1), texture)  # front (faces -x)
        self.patch((x1, 0, 0), Y, Z, (y0, y1), (z0, z1), texture)
        self.patch((0, y0, 0), X, Z, (x0, x1), (z0, z1), texture)
        self.patch((0, y1, 0), X, Z, (x0, x1), (z0, z1), texture)

    def build(self) -> tuple[np.ndarray, np.ndarray]:
        xyz = np.concatenate(self.xyz).astype(np.float32)
        rgb = np.concatenate(self.rgb)
        # fine per-point grain so that flat colours still carry texture at pixel scale
        rng = np.random.default_rng(self.seed)
        rgb = rgb + rng.normal(0.0, 0.015, size=rgb.shape)
        return xyz, np.clip(rgb, 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=4)
def _build(seed: int, spacing_m: float) -> ProceduralScene:
    b = _Builder(spacing_m, seed)
    X, Y, Z = (1, 0, 0), (0, 1, 0), (0, 0, 1)
    d0, d1 = DOOR_Y
    # floor and ceiling
    b.patch((0, 0, 0), X, Y, (0.0, ROOM_X), (-ROOM_Y, ROOM_Y), lambda u, v: _wood(u, v, seed))
    b.patch((0, 0, ROOM_Z), X, Y, (0.0, ROOM_X), (-ROOM_Y, ROOM_Y),
            lambda u, v: _plaster(u, v, (0.88, 0.87, 0.84), seed + 1) * 0.95)
    # side walls (brick) and front wall
    b.patch((0, -ROOM_Y, 0), X, Z, (0.0, ROOM_X), (0.0, ROOM_Z), lambda u, v: _brick(u, v, seed))
    b.patch((0, ROOM_Y, 0), X, Z, (0.0, ROOM_X), (0.0, ROOM_Z), lambda u, v: _brick(u + 0.05, v, seed + 2))
    b.patch((0, 0, 0), Y, Z, (-ROOM_Y, ROOM_Y), (0.0, ROOM_Z), lambda u, v: _plaster(u, v, (0.7, 0.78, 0.7), seed))
    # back wall with the doorway cut out, and the corridor behind it
    b.patch((ROOM_X, 0, 0), Y, Z, (-ROOM_Y, ROOM_Y), (0.0, ROOM_Z),
            lambda u, v: _plaster(u, v, (0.86, 0.8, 0.62), seed + 3),
            keep=lambda u, v: ~((u > d0) & (u < d1) & (v < DOOR_Z)))
    # the corridor starts one spacing behind the wall plane so that its edges never tie with the wall
    cx, gap = ROOM_X + CORRIDOR_X, spacing_m
    b.patch((ROOM_X, 0, 0), X, Y, (gap, CORRIDOR_X), (d0 - 0.6, d1 + 0.6),
            lambda u, v: _checker(u, v, 0.3, (0.2, 0.2, 0.22), (0.85, 0.85, 0.8)))
    b.patch((ROOM_X, 0, DOOR_Z + 0.3), X, Y, (gap, CORRIDOR_X), (d0 - 0.6, d1 + 0.6),
            lambda u, v: np.full((u.size, 3), 0.8))
    b.patch((cx, 0, 0), Y, Z, (d0 - 0.6, d1 + 0.6), (0.0, DOOR_Z + 0.3),
            lambda u, v: _plaster(u, v, (0.45, 0.6, 0.75), seed + 4))
    for y in (d0 - 0.6, d1 + 0.6):
        b.patch((ROOM_X, y, 0), X, Z, (gap, CORRIDOR_X), (0.0, DOOR_Z + 0.3),
                lambda u, v: _plaster(u, v, (0.75, 0.7, 0.55), seed + 5))
    # a checkered rug under the table
    b.patch((0, 0, 0.004), X, Y, (2.0, 3.8), (-1.1, 0.9),
            lambda u, v: _checker(u, v, 0.15, (0.65, 0.12, 0.12), (0.92, 0.85, 0.6)))
    # table: top slab and four legs
    top_lo, top_hi = (2.3, -0.7, 0.72), (3.4, 0.5, 0.76)
    b.box(top_lo, top_hi, lambda u, v: _wood(u * 1.7, v * 1.7, seed + 6) * 0.8)
    for lx in (2.36, 3.3):
        for ly in (-0.64, 0.4):
            b.box((lx, ly, 0.0), (lx + 0.05, ly + 0.05, 0.72), lambda u, v: np.full((u.size, 3), 0.22))
    # boxes: two on the floor, one on the table
    b.box((1.6, 0.9, 0.0), (2.1, 1.5, 0.45), lambda u, v: _checker(u, v, 0.1, (0.76, 0.6, 0.38), (0.66, 0.5, 0.3)))
    b.box((3.8, -1.6, 0.0), (4.4, -0.9, 0.7), lambda u, v: _plaster(u * 3, v * 3, (0.3, 0.55, 0.35), seed + 7))
    b.box((2.6, -0.4, 0.76), (2.9, -0.1, 0.98), lambda u, v: _checker(u, v, 0.05, (0.15, 0.3, 0.7), (0.9, 0.9, 0.95)))
    xyz, rgb = b.build()
    xyz.flags.writeable = False
    rgb.flags.writeable = False
    return ProceduralScene(xyz, rgb, float(spacing_m), int(seed))


def build_scene(seed: int = 0, spacing_m: float = 0.01) -> ProceduralScene:
    """The procedural room as dense coloured points (about 0.9 M at 1 cm).

    Args:
        seed: seed of the texture jitter and per-point grain.
        spacing_m: point spacing on each surface, metres (0.002 .. 0.1).
    Returns:
        ProceduralScene (its arrays are read-only and shared between calls with the same arguments).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError("seed", f"expected an int >= 0, got {seed!r}")
    if not isinstance(spacing_m, (int, float)) or not 0.002 <= spacing_m <= 0.1:
        raise InputError("spacing_m", f"expected a float in [0.002, 0.1] metres, got {spacing_m!r}")
    return _build(int(seed), float(spacing_m))


def look_at(position, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """T_world_cam (4, 4) float64 of an OpenCV camera at ``position`` looking at ``target`` (world, m), with
    the image's "up" as close to ``up`` as the viewing direction allows (:func:`geometry.poses.look_at`)."""
    p, t, w_up = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (position, target, up))
    return poses.look_at(p, t, w_up).numpy()


def default_camera(width: int = 640, height: int = 480) -> tuple[np.ndarray, np.ndarray]:
    """The snapshot camera of the demo: K (3, 3) (horizontal field of view 65 deg) and T_world_cam (4, 4).

    It stands near the front wall at eye height and looks at the table, the doorway in view.
    """
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 8:
            raise InputError(name, f"expected an int >= 8 pixels, got {value!r}")
    f = 0.5 * width / math.tan(math.radians(65.0) / 2.0)
    K = np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    return K, look_at((0.9, -0.3, 1.45), (3.6, 0.2, 0.75))


def procedural_snapshot(width: int = 640, height: int = 480, seed: int = 0, spacing_m: float = 0.01) -> Snapshot:
    """An RGB-D snapshot of the procedural room from :func:`default_camera` (metric depth).

    Args:
        width, height: image size, pixels. seed, spacing_m: as :func:`build_scene`.
    Returns:
        Snapshot with rgb (H, W, 3) float32, depth (H, W) float32 metres, K and T_world_cam (z-up world).
    """
    scene = build_scene(seed, spacing_m)
    K, T = default_camera(width, height)
    rgb, depth = scene.render(K, T, width, height)
    return Snapshot.create(rgb, depth, K, T, frame_id="procedural_camera_optical_frame")
