"""Training and tuning examples: forward–backward fill problems with a perfectly registered answer.

An example is frame ``i`` of an RGB-D sequence (or a random procedural room) with the disocclusion holes
that a round trip through a partner pose ``j`` opens (:func:`~worldstereo_ros.geometry.forward_backward.
forward_backward_holes`), plus a reference keyframe ``k`` reprojected into ``i`` through its pointmap (the
SSM condition the pipeline's retrieval supplies). The answer is frame ``i`` itself.

A *pipeline* example (:func:`pipeline_source`) is what the backend sees at inference: the pipeline is
initialised from frame ``s`` and its cache rendered at the pose of frame ``t`` (the condition, with the
voxel cache's quantisation and the colours of frame ``s``), frame ``s`` reprojected into ``t`` as the
reference (what retrieval returns from a one-snapshot bank); the answer is the real frame ``t``.

Frames of a sequence are chosen with :func:`~worldstereo_ros.geometry.forward_backward.sample_pairs` inside
the allowed split only (both ``i``, ``j`` and the reference ``k``), so a tuning split never sees report frames.
Building one example at 640 x 480 takes about a second, so examples are cached on disk as ``.npz``
(the cache key holds every argument that changes the content).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldstereo_ros.datasets.random_rooms import random_camera_pair, random_room
from worldstereo_ros.datasets.rgbd_folder import RgbdFolder
from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.learned.conditioning import build_input, reproject_points
from worldstereo_ros.geometry.forward_backward import forward_backward_holes, sample_pairs
from worldstereo_ros.geometry.projection import backproject_depth

#: 7-Scenes frames that training and tuning may use (200-299 are kept for reporting)
TRAIN_FRAMES = tuple(list(range(0, 200)) + list(range(300, 600)))
REPORT_FRAMES = tuple(range(200, 300))


@dataclass
class FillExample:
    """One fill problem in the target camera.

    Attributes:
        rgb: (H, W, 3) uint8 target frame (the answer). depth: (H, W) float32 metres, 0 = unknown.
        hole: (H, W) bool pixels to imagine. ref_rgb: (H, W, 3) uint8, ref_depth: (H, W) float32 metres and
        ref_valid: (H, W) bool: the reference keyframe reprojected into the target. K: (3, 3) float64.
        name: where it came from (``"redkitchen i=10 j=40 k=20"``).
        cond_rgb: (H, W, 3) uint8 and cond_depth: (H, W) float32 metres: the condition's observed pixels when
        they are not the answer's own (pipeline examples: the cache render); None = ``rgb`` / ``depth``.
    """

    rgb: np.ndarray
    depth: np.ndarray
    hole: np.ndarray
    ref_rgb: np.ndarray
    ref_depth: np.ndarray
    ref_valid: np.ndarray
    K: np.ndarray
    name: str
    cond_rgb: np.ndarray | None = None
    cond_depth: np.ndarray | None = None

    @property
    def condition(self) -> tuple[np.ndarray, np.ndarray]:
        """(rgb uint8, depth metres) of the condition's observed pixels (the answer's own by default)."""
        return (self.rgb if self.cond_rgb is None else self.cond_rgb,
                self.depth if self.cond_depth is None else self.cond_depth)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        extra = {} if self.cond_rgb is None else {"cond_rgb": self.cond_rgb,
                                                   "cond_depth": self.cond_depth.astype(np.float16)}
        np.savez(tmp, rgb=self.rgb, depth=self.depth.astype(np.float16), hole=self.hole, ref_rgb=self.ref_rgb,
                 ref_depth=self.ref_depth.astype(np.float16), ref_valid=self.ref_valid, K=self.K,
                 name=np.array(self.name), **extra)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "FillExample":
        with np.load(path) as z:
            cond = (z["cond_rgb"], z["cond_depth"].astype(np.float32)) if "cond_rgb" in z.files else (None, None)
            return cls(z["rgb"], z["depth"].astype(np.float32), z["hole"], z["ref_rgb"],
                       z["ref_depth"].astype(np.float32), z["ref_valid"], z["K"], str(z["name"]), *cond)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float colours in [0, 1] (clipped) rounded to uint8."""
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _reference_layer(rgb: np.ndarray, depth: np.ndarray, K_ref: np.ndarray, T_world_ref: np.ndarray,
                     K: np.ndarray, T_world_cam: np.ndarray, height: int, width: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A keyframe's valid pixels drawn into the target camera through its pointmap."""
    valid = np.isfinite(depth) & (depth > 0)
    pointmap = backproject_depth(torch.from_numpy(np.where(valid, depth, 0.0)).double(),
                                 torch.as_tensor(K_ref, dtype=torch.float64),
                                 torch.as_tensor(T_world_ref, dtype=torch.float64))
    xyz = pointmap.reshape(-1, 3)[torch.from_numpy(valid.reshape(-1))].float()
    colours = rgb.reshape(-1, 3)[valid.reshape(-1)]
    return reproject_points(xyz, colours, K, T_world_cam, height, width, splat_px=1)


def make_example(rgb_i: np.ndarray, depth_i: np.ndarray, T_i: np.ndarray, T_j: np.ndarray, rgb_k: np.ndarray,
                 depth_k: np.ndarray, T_k: np.ndarray, K: np.ndarray, name: str) -> FillExample:
    """The fill problem of frame i (uint8 rgb, metres depth) with partner pose j and reference frame k."""
    h, w = depth_i.shape
    fb = forward_backward_holes(rgb_i.astype(np.float32) / 255.0, depth_i, K, T_i, T_j)
    ref_rgb, ref_depth, ref_valid = _reference_layer(rgb_k.astype(np.float32) / 255.0, depth_k, K, T_k, K, T_i, h, w)
    return FillExample(rgb=rgb_i.astype(np.uint8), depth=np.where(fb.valid, depth_i, 0.0).astype(np.float32),
                       hole=fb.hole, ref_rgb=_to_uint8(ref_rgb),
                       ref_depth=ref_depth, ref_valid=ref_valid, K=np.asarray(K, np.float64), name=name)


def _key(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


class ExampleSource:
    """A deterministic, lazily built list of examples (``len`` known up front, each built on first use).

    Args:
        specs: one tuple per example, passed to ``build``; it fixes the example's content.
        build: spec -> FillExample.
        cache_dir: folder for the ``.npz`` cache (None: keep in memory only).
        tag: name of the source, part of the cache key.
    """

    def __init__(self, specs: list[tuple], build, cache_dir: Path | None, tag: str) -> None:
        self.specs, self.build, self.tag = specs, build, tag
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: dict[int, FillExample] = {}

    def __len__(self) -> int:
        return len(self.specs)

    def path(self, index: int) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{self.tag}-{_key(self.tag, self.specs[index])}.npz"

    def is_built(self, index: int) -> bool:
        p = self.path(index)
        return index in self._memory or (p is not None and p.is_file())

    def __getitem__(self, index: int) -> FillExample:
        if index in self._memory:
            return self._memory[index]
        p = self.path(index)
        if p is not None and p.is_file():
            try:
                return FillExample.load(p)
            except (OSError, ValueError, KeyError):
                p.unlink(missing_ok=True)  # a torn write from an interrupted run: rebuild it
        example = self.build(self.specs[index])
        if p is None:
            self._memory[index] = example
            return example
        example.save(p)
        # read back, so a fresh example carries the same float16 depth rounding as a cached one (repeatable runs)
        return FillExample.load(p)


def rgbd_source(folder: str | Path, frames: tuple[int, ...] | list[int], count: int, seed: int,
                min_offset: int = 5, max_offset: int = 60, cache_dir: Path | None = None) -> ExampleSource:
    """Examples from an RGB-D sequence in the 7-Scenes layout, using only ``frames``.

    The reference ``k`` of pair (i, j) is another frame of ``frames`` 3-30 frames from i (never j), drawn
    with the same seed.
    """

    seq = RgbdFolder(folder)
    allowed = sorted(set(int(f) for f in frames) & set(seq.indices))
    if not allowed:
        raise InputError("frames", f"none of the requested frames exist in {folder}")
    pairs = sample_pairs(allowed, count, min_offset, max_offset, seed)
    rng = np.random.default_rng(seed + 7919)
    members = set(allowed)
    specs = []
    for i, j in pairs:
        near = [k for k in range(i - 30, i + 31) if 3 <= abs(k - i) and k != j and k in members]
        k = int(rng.choice(near)) if near else i
        specs.append((str(Path(folder).resolve()), int(i), int(j), int(k)))

    def build(spec: tuple) -> FillExample:
        _, i, j, k = spec
        fi, fj, fk = seq.read(i), seq.read(j), seq.read(k)
        return make_example(fi.rgb, fi.depth, fi.T_world_cam, fj.T_world_cam, fk.rgb, fk.depth, fk.T_world_cam,
                            seq.K, f"{Path(folder).name} i={i} j={j} k={k}")

    return ExampleSource(specs, build, cache_dir, "rgbd")


#: (rgb_s, depth_s, K, T_world_s, T_world_t, height, width) -> (rgb (H, W, 3) float [0, 1], depth (H, W) metres,
#: observed (H, W) bool): the cache of frame s rendered at pose t (``pipeline.condition.render_condition``; the
#: pipeline sits above this layer, so the caller hands it in)
ConditionRenderer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int],
                             tuple[np.ndarray, np.ndarray, np.ndarray]]


def pipeline_example(rgb_s: np.ndarray, depth_s: np.ndarray, T_s: np.ndarray, rgb_t: np.ndarray,
                     depth_t: np.ndarray, T_t: np.ndarray, K: np.ndarray, name: str,
                     render_condition: ConditionRenderer) -> FillExample:
    """The pipeline's own condition for frame t from a snapshot of frame s (module doc); uint8 rgb, metres."""
    h, w = depth_t.shape
    cond_rgb, cond_depth, observed = render_condition(rgb_s, depth_s, K, T_s, T_t, h, w)
    ref_rgb, ref_depth, ref_valid = _reference_layer(rgb_s.astype(np.float32) / 255.0, depth_s, K, T_s, K, T_t, h, w)
    truth_depth = np.where(np.isfinite(depth_t) & (depth_t > 0), depth_t, 0.0).astype(np.float32)
    return FillExample(rgb=rgb_t.astype(np.uint8), depth=truth_depth, hole=~observed, ref_rgb=_to_uint8(ref_rgb),
                       ref_depth=ref_depth, ref_valid=ref_valid, K=np.asarray(K, np.float64), name=name,
                       cond_rgb=_to_uint8(np.where(observed[..., None], cond_rgb, 0.0)),
                       cond_depth=np.where(observed, cond_depth, 0.0).astype(np.float32))


def pipeline_source(folder: str | Path, frames: tuple[int, ...] | list[int], count: int, seed: int,
                    render_condition: ConditionRenderer, min_offset: int = 4, max_offset: int = 60,
                    cache_dir: Path | None = None) -> ExampleSource:
    """Pipeline examples (module doc) from an RGB-D sequence in the 7-Scenes layout, using only ``frames``:
    pairs (s, t) drawn as :func:`rgbd_source` draws them, both inside ``frames``; ``render_condition`` draws the
    cache of s at t."""
    seq = RgbdFolder(folder)
    allowed = sorted(set(int(f) for f in frames) & set(seq.indices))
    if not allowed:
        raise InputError("frames", f"none of the requested frames exist in {folder}")
    specs = [(str(Path(folder).resolve()), int(s), int(t))
             for s, t in sample_pairs(allowed, count, min_offset, max_offset, seed)]

    def build(spec: tuple) -> FillExample:
        _, s, t = spec
        fs, ft = seq.read(s), seq.read(t)
        return pipeline_example(fs.rgb, fs.depth, fs.T_world_cam, ft.rgb, ft.depth, ft.T_world_cam, seq.K,
                                f"{Path(folder).name} pipeline s={s} t={t}", render_condition)

    return ExampleSource(specs, build, cache_dir, "pipeline")


def rooms_source(count: int, seed: int, width: int = 640, height: int = 480, spacing_m: float = 0.015,
                 cache_dir: Path | None = None) -> ExampleSource:
    """Examples from random procedural rooms (:mod:`worldstereo_ros.datasets.random_rooms`), one room each."""

    if count < 0:
        raise InputError("count", f"expected >= 0, got {count}")
    f = 0.5 * width / np.tan(np.radians(58.0) / 2.0)  # a Kinect-like 58 deg horizontal field of view
    K = np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    specs = [(int(seed) * 100003 + n, int(width), int(height), float(spacing_m)) for n in range(count)]

    def build(spec: tuple) -> FillExample:
        room_seed, w, h, spacing = spec
        room = random_room(room_seed, spacing)
        Ti, Tj, Tk = random_camera_pair(room, room_seed)
        rgb_i, d_i = room.scene.render(K, Ti, w, h)
        rgb_k, d_k = room.scene.render(K, Tk, w, h)
        return make_example(_to_uint8(rgb_i), d_i, Ti, Tj, _to_uint8(rgb_k), d_k, Tk, K, f"room seed={room_seed}")

    return ExampleSource(specs, build, cache_dir, "room")


@dataclass
class Batch:
    """Network inputs and targets, (B, ., h, w) float32 (hole and valid as 0/1 float)."""

    x: torch.Tensor
    rgb: torch.Tensor
    inv_depth: torch.Tensor
    hole: torch.Tensor
    valid: torch.Tensor


def example_tensors(example: FillExample, drop_reference: bool = False, gain: float = 1.0,
                    flip: bool = False, crop: tuple[int, int, int, int] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Input (C, h, w) and targets rgb (3, h, w), inverse depth (1, h, w), hole (1, h, w), valid (1, h, w).

    ``crop`` = (top, left, height, width); ``gain`` scales brightness of target and reference alike.
    """
    rgb, ref = example.rgb, example.ref_rgb
    depth, hole, ref_depth, ref_valid = example.depth, example.hole, example.ref_depth, example.ref_valid
    cond_rgb, cond_depth = example.condition
    layers = (rgb, ref, depth, hole, ref_depth, ref_valid, cond_rgb, cond_depth)
    if crop is not None:  # crop first: converting whole frames to float would cost more than the crop's work
        top, left, ch, cw = crop
        sl = (slice(top, top + ch), slice(left, left + cw))
        layers = tuple(a[sl] for a in layers)
    if flip:
        layers = tuple(a[:, ::-1] for a in layers)
    rgb, ref, depth, hole, ref_depth, ref_valid, cond_rgb, cond_depth = layers
    rgb = np.clip(rgb.astype(np.float32) * np.float32(gain / 255.0), 0, 1)
    ref = np.clip(ref.astype(np.float32) * np.float32(gain / 255.0), 0, 1)
    cond_rgb = np.clip(cond_rgb.astype(np.float32) * np.float32(gain / 255.0), 0, 1)
    if drop_reference:
        ref_valid = np.zeros_like(ref_valid)
    x, scale = build_input(cond_rgb, cond_depth, hole, ref, ref_depth, ref_valid)
    valid = depth > 0
    inv = np.where(valid, scale / np.maximum(depth, 1e-6), 0.0).astype(np.float32)
    return (x, np.ascontiguousarray(rgb.transpose(2, 0, 1)), inv[None], hole[None].astype(np.float32),
            valid[None].astype(np.float32))


def sample_batch(examples: list[FillExample], rng: np.random.Generator, crop_hw: tuple[int, int],
                 reference_dropout: float = 0.4) -> Batch:
    """A training batch: one random crop per example, centred on a hole pixel when there is one."""
    ch, cw = crop_hw
    parts = []
    for ex in examples:
        h, w = ex.hole.shape
        if ch > h or cw > w:
            raise InputError("crop_hw", f"crop {ch} x {cw} larger than the example {h} x {w}")
        ys, xs = np.nonzero(ex.hole)
        if ys.size and rng.random() < 0.85:
            n = int(rng.integers(ys.size))
            cy = int(ys[n]) + int(rng.integers(-ch // 4, ch // 4 + 1))
            cx = int(xs[n]) + int(rng.integers(-cw // 4, cw // 4 + 1))
        else:
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
        top = int(np.clip(cy - ch // 2, 0, h - ch))
        left = int(np.clip(cx - cw // 2, 0, w - cw))
        parts.append(example_tensors(ex, drop_reference=bool(rng.random() < reference_dropout),
                                     gain=float(rng.uniform(0.8, 1.2)), flip=bool(rng.random() < 0.5),
                                     crop=(top, left, ch, cw)))
    stack = [torch.from_numpy(np.stack([p[n] for p in parts])) for n in range(5)]
    return Batch(*stack)
