"""Randomised procedural rooms: unlimited RGB-D training views with exact depth.

Each seed draws a room (size, wall/floor/ceiling textures), a few furniture-like boxes with their own
textures, and camera pairs standing inside it. The textures and the point-cloud builder are the ones of
:mod:`worldstereo_ros.datasets.procedural_scene` (wood planks, running-bond bricks, checkers, painted plaster),
with random scales and colours, plus per-point grain. Views are drawn with the project's crack-closing
point renderer, so depth is metric and exact (float32 metres along the optical axis, 0 = no surface).

World frame: x forward, y left, z up (REP 103), metres; the floor is ``z = 0``. Cameras use OpenCV
optical axes. Everything is seeded: the same arguments give the same scene and the same cameras.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from worldstereo_ros.datasets.procedural_scene import (
    ProceduralScene,
    _brick,
    _Builder,
    _checker,
    _plaster,
    _wood,
    look_at,
)
from worldstereo_ros.errors import InputError


@dataclass(frozen=True)
class RandomRoom:
    """A random room and the box it spans.

    Attributes:
        scene: dense coloured points (render with ``scene.render``).
        size_m: (3,) room extent along x, y (full width) and z, metres; x in [0, X], y in [-Y/2, Y/2].
    """

    scene: ProceduralScene
    size_m: tuple[float, float, float]


def _random_texture(rng: np.random.Generator, seed: int):
    """A texture function (u, v) -> (M, 3) with random kind, scale and colours."""
    kind = int(rng.integers(0, 5))
    scale = float(rng.uniform(0.5, 2.5))
    a = tuple(rng.uniform(0.05, 0.95, 3))
    b = tuple(rng.uniform(0.05, 0.95, 3))
    tone = rng.uniform(0.6, 1.4, 3)
    if kind == 0:
        return lambda u, v: np.clip(_wood(u * scale, v * scale, seed) * tone, 0, 1)
    if kind == 1:
        return lambda u, v: np.clip(_brick(u * scale, v * scale, seed) * tone, 0, 1)
    if kind == 2:
        cell = float(rng.uniform(0.04, 0.4))
        return lambda u, v: _checker(u, v, cell, a, b)
    if kind == 3:
        return lambda u, v: np.clip(_plaster(u * scale, v * scale, a, seed), 0, 1)
    # stripes: a common indoor pattern (blinds, shelves) the other kinds lack
    period = float(rng.uniform(0.05, 0.5))
    angle = float(rng.uniform(0, math.pi))
    ca, sa = math.cos(angle), math.sin(angle)
    return lambda u, v: np.where((((u * ca + v * sa) / period) % 1.0 < 0.5)[:, None], np.array(a), np.array(b))


def random_room(seed: int, spacing_m: float = 0.015, max_boxes: int = 6) -> RandomRoom:
    """Draw one random room.

    Args:
        seed: int >= 0; fixes the layout, the textures and the grain.
        spacing_m: point spacing on every surface, metres (0.005 .. 0.1).
        max_boxes: most boxes (furniture) placed in the room, >= 0.
    Returns:
        :class:`RandomRoom`.
    Raises:
        InputError: naming the argument, for a bad value.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError("seed", f"expected an int >= 0, got {seed!r}")
    if isinstance(spacing_m, bool) or not isinstance(spacing_m, (int, float)) or not 0.005 <= spacing_m <= 0.1:
        raise InputError("spacing_m", f"expected a float in [0.005, 0.1] metres, got {spacing_m!r}")
    if isinstance(max_boxes, bool) or not isinstance(max_boxes, (int, np.integer)) or max_boxes < 0:
        raise InputError("max_boxes", f"expected an int >= 0, got {max_boxes!r}")
    rng = np.random.default_rng(seed)
    X, Y, Z = (1, 0, 0), (0, 1, 0), (0, 0, 1)
    sx, sy, sz = float(rng.uniform(2.5, 6.0)), float(rng.uniform(2.5, 5.0)), float(rng.uniform(2.2, 3.0))
    hy = sy / 2.0
    b = _Builder(float(spacing_m), int(seed))
    b.patch((0, 0, 0), X, Y, (0.0, sx), (-hy, hy), _random_texture(rng, seed))
    b.patch((0, 0, sz), X, Y, (0.0, sx), (-hy, hy), _random_texture(rng, seed + 1))
    b.patch((0, -hy, 0), X, Z, (0.0, sx), (0.0, sz), _random_texture(rng, seed + 2))
    b.patch((0, hy, 0), X, Z, (0.0, sx), (0.0, sz), _random_texture(rng, seed + 3))
    b.patch((0, 0, 0), Y, Z, (-hy, hy), (0.0, sz), _random_texture(rng, seed + 4))
    b.patch((sx, 0, 0), Y, Z, (-hy, hy), (0.0, sz), _random_texture(rng, seed + 5))
    for k in range(int(rng.integers(min(2, max_boxes), max_boxes + 1))):
        w, d, h = rng.uniform(0.15, 1.2), rng.uniform(0.15, 1.2), rng.uniform(0.1, 1.6)
        x0 = rng.uniform(0.3, sx - 0.3 - w)
        y0 = rng.uniform(-hy + 0.1, hy - 0.1 - d)
        # some boxes float (shelves, table tops) so that holes also open below objects
        z0 = 0.0 if rng.random() < 0.7 else float(rng.uniform(0.3, 1.2))
        b.box((x0, y0, z0), (x0 + w, y0 + d, min(z0 + h, sz - 0.05)), _random_texture(rng, seed + 10 + k))
    xyz, rgb = b.build()
    return RandomRoom(ProceduralScene(xyz, rgb, float(spacing_m), int(seed)), (sx, sy, sz))


def random_camera_pair(room: RandomRoom, seed: int, min_baseline_m: float = 0.1, max_baseline_m: float = 0.6
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three nearby camera poses inside ``room`` looking at its contents.

    Args:
        room: the room. seed: fixes the cameras.
        min_baseline_m, max_baseline_m: range of the distance between the first pose and each other one.
    Returns:
        T_world_i, T_world_j, T_world_k: (4, 4) float64 camera-to-world poses (OpenCV optical axes): i is the
        frame to fill, j the partner that makes its holes, k a third view (a reference keyframe).
    """
    if not 0 < min_baseline_m <= max_baseline_m:
        raise InputError("min_baseline_m", f"need 0 < min <= max, got {min_baseline_m}, {max_baseline_m}")
    rng = np.random.default_rng(seed)
    sx, sy, sz = room.size_m
    hy = sy / 2.0

    def inside() -> np.ndarray:
        return np.array([rng.uniform(0.3, 0.45 * sx), rng.uniform(-0.6 * hy, 0.6 * hy), rng.uniform(0.8, sz - 0.6)])

    def pose_near(position: np.ndarray, target: np.ndarray) -> np.ndarray:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction) + 1e-9
        p = position + direction * rng.uniform(min_baseline_m, max_baseline_m)
        p = np.clip(p, [0.15, -hy + 0.15, 0.3], [sx - 0.15, hy - 0.15, sz - 0.15])
        return look_at(p, target + rng.normal(scale=0.2, size=3))

    position = inside()
    target = np.array([rng.uniform(0.55 * sx, sx), rng.uniform(-hy, hy), rng.uniform(0.0, 1.5)])
    return look_at(position, target), pose_near(position, target), pose_near(position, target)
