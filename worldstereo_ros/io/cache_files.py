"""The global cache and the memory bank in files: ``.npz`` (every array and setting, lossless) and, for the
cache, PLY (:mod:`worldstereo_ros.io.ply`:
xyz float32, colours as 8-bit, plus ``confidence`` (float), ``count`` and ``view_id`` (int) per vertex, which
any PLY reader shows as an ordinary coloured cloud).

``.npz`` files are written atomically: into a temporary file in the destination folder, flushed and fsynced,
renamed over the destination with ``os.replace`` and the folder fsynced, so after a crash or kill at any
moment the destination is either the previous complete file, the new complete file, or absent. A kill
mid-write can leave a ``.<name>.<random>.tmp`` file beside it; :func:`save_cache_npz` does not delete
other writers' temporaries, so they may be removed by hand. Both :func:`save_cache_npz` and
:func:`load_cache_npz` take the file name exactly as given and require it to end in ``.npz`` (numpy's own
``savez`` would silently append the suffix, so ``save("x")`` and ``load("x")`` would name different files).
:func:`save_bank_npz` / :func:`load_bank_npz` do the same for a
:class:`~worldstereo_ros.memory.memory_bank.MemoryBank`: settings, keyframe ids, pins and trajectory ids, and
each keyframe's rgb, depth, pointmap, K and pose, every dtype, shape and value range checked on load.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.io.ply import read_ply, write_ply
from worldstereo_ros.memory.global_cache import GlobalCache
from worldstereo_ros.memory.memory_bank import MemoryBank
from worldstereo_ros.memory.types import Keyframe
from worldstereo_ros.memory.voxel_arrays import FIELDS, unpack_voxel_keys

#: Version of the ``.npz`` layout; :func:`load_cache_npz` refuses others.
NPZ_FORMAT = 1
_OPTIONAL = ("bounds_min", "bounds_max", "reference_point")
_SETTINGS = ("voxel_size_m", "max_points", "max_confidence")
#: dtype and trailing shape of every per-point array (leading dimension: the number of points).
_ARRAYS = {"keys": (np.int64, ()), "xyz": (np.float32, (3,)), "rgb": (np.float16, (3,)),
           "confidence": (np.float32, ()), "count": (np.int32, ()), "view_id": (np.int32, ())}
assert tuple(_ARRAYS) == FIELDS


def _npz_path(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix != ".npz":
        raise InputError("path", f"expected a file name ending in .npz, got {str(p)!r}")
    return p


def save_cache_npz(cache: GlobalCache, path: str | Path) -> None:
    """Write every array and setting of ``cache`` to the ``.npz`` file ``path`` atomically (module doc);
    :func:`load_cache_npz` restores it exactly.

    Absent bounds and reference point are stored as NaN triples.

    Raises:
        InputError: ``path`` does not end in ``.npz``.
        OSError: the folder is missing or not writable (the destination is then left as it was).
    """
    target = _npz_path(path)
    state = cache.snapshot().state()  # one merge state even while another thread merges
    none = np.full(3, np.nan, dtype=np.float32)
    for name in _OPTIONAL:
        state[name] = none if state[name] is None else state[name]
    _atomic_savez(target, format=np.int64(NPZ_FORMAT), **state)


def _atomic_savez(target: Path, **arrays) -> None:
    """``np.savez`` of ``arrays`` into ``target`` through a temporary file, fsync and rename (module doc)."""
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # the rename itself is only durable once the folder's entry is on disk
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _validated_state(f, path: Path) -> dict:
    """The state in the open ``.npz`` ``f``, every name, dtype, shape and the voxel ordering checked."""
    names = set(f.files)
    if "format" not in names or f["format"].shape != () or int(f["format"]) != NPZ_FORMAT:
        raise InputError("path", f"{path} is not a GlobalCache file (format {NPZ_FORMAT})")
    missing = [n for n in (*FIELDS, *_SETTINGS, *_OPTIONAL) if n not in names]
    if missing:
        raise InputError(missing[0], f"missing from {path} (also missing: {', '.join(missing[1:]) or 'none'})")
    unknown = sorted(names - {"format", *FIELDS, *_SETTINGS, *_OPTIONAL})
    if unknown:
        raise InputError(unknown[0], f"unexpected array in {path}")
    state: dict = {}
    n = None
    for name, (dtype, tail) in _ARRAYS.items():
        a = f[name]
        if a.dtype != dtype:
            raise InputError(name, f"expected dtype {np.dtype(dtype)} in {path}, got {a.dtype}")
        n = a.shape[0] if n is None and a.ndim else n
        if a.shape != (n, *tail):
            raise InputError(name, f"expected shape ({n}, {', '.join(map(str, tail))}) like keys in {path}, "
                                   f"got {a.shape}")
        state[name] = a
    for name, kind in zip(_SETTINGS, ("f", "i", "f")):
        a = f[name]
        if a.shape != () or a.dtype.kind != kind:
            raise InputError(name, f"expected a scalar of kind {kind!r} in {path}, got {a.dtype} {a.shape}")
        state[name] = a.item()
    for name in _OPTIONAL:
        a = f[name]
        if a.shape != (3,) or a.dtype != np.float32:
            raise InputError(name, f"expected (3,) float32 (NaN = none) in {path}, got {a.dtype} {a.shape}")
        state[name] = None if np.isnan(a).all() else a
    keys, xyz = state["keys"], state["xyz"]
    if n and not bool((keys[1:] > keys[:-1]).all()):
        raise InputError("keys", f"voxel keys in {path} are not strictly increasing")
    if not (np.isfinite(xyz).all() and np.isfinite(state["confidence"]).all()):
        raise InputError("xyz", f"non-finite positions or confidences in {path}")
    if n and not 0 < state["voxel_size_m"] < np.inf:
        raise InputError("voxel_size_m", f"expected a finite float > 0 in {path}, got {state['voxel_size_m']}")
    if n:
        # a fused point is a weighted mean of points in its voxel; float32 rounding may put it on the border
        ijk = unpack_voxel_keys(torch.from_numpy(keys)).numpy()
        off = np.abs(np.floor(xyz.astype(np.float64) / state["voxel_size_m"]) - ijk)
        if off.max() > 1:
            raise InputError("keys", f"voxel keys in {path} do not match the positions (off by up to "
                                     f"{int(off.max())} voxels)")
    return state


def load_cache_npz(path: str | Path, device: str | torch.device = "cpu") -> GlobalCache:
    """Read a cache written by :func:`save_cache_npz` onto ``device``.

    Raises:
        InputError: ``path`` does not end in ``.npz`` or does not exist (field ``path``); the file is truncated
            or corrupt (field ``path``); an array is missing, or has the wrong dtype or length, or the keys are
            unsorted or do not match the positions (the field is the array's name).
    """
    target = _npz_path(path)
    if not target.is_file():
        raise InputError("path", f"no such file: {target}")
    try:
        with np.load(target, allow_pickle=False) as f:
            state = _validated_state(f, target)
    except InputError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, SyntaxError) as exc:
        raise InputError("path", f"{target} is truncated or corrupt: {exc}") from exc
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


#: Version of the memory bank's ``.npz`` layout; :func:`load_bank_npz` refuses others.
BANK_FORMAT = 1
#: per keyframe ``k<i>.<name>``: dtype and shape (H, W from its depth)
_KEYFRAME_ARRAYS = {"rgb": (np.float32, ("H", "W", 3)), "depth": (np.float32, ("H", "W")),
                    "pointmap": (np.float32, ("H", "W", 3)), "K": (np.float64, (3, 3)),
                    "T_world_cam": (np.float64, (4, 4))}


def save_bank_npz(bank: MemoryBank, path: str | Path) -> None:
    """Write ``bank`` (settings, keyframes in order, pins) to the ``.npz`` file ``path`` atomically (module
    doc); :func:`load_bank_npz` restores it.

    Raises:
        InputError: ``path`` does not end in ``.npz``.
        OSError: the folder is missing or not writable (the destination is then left as it was).
    """
    target = _npz_path(path)
    frames = list(bank)
    pinned = set(bank.pinned_ids)
    settings = bank.settings()
    arrays = {"format": np.int64(BANK_FORMAT), "capacity": np.int64(settings["capacity"]),
              "near_m": np.float64(settings["near_m"]),
              "far_m": np.float64(np.nan if settings["far_m"] is None else settings["far_m"]),
              "samples": np.int64(settings["samples"]), "seed": np.int64(settings["seed"]),
              "ids": np.array([kf.keyframe_id for kf in frames], dtype=np.int64),
              "pinned": np.array([kf.keyframe_id in pinned for kf in frames], dtype=bool),
              "trajectory_ids": np.array([kf.trajectory_id for kf in frames], dtype=np.str_).reshape(len(frames))}
    for i, kf in enumerate(frames):
        for name, (dtype, _) in _KEYFRAME_ARRAYS.items():
            arrays[f"k{i}.{name}"] = np.asarray(getattr(kf, name), dtype=dtype)
    _atomic_savez(target, **arrays)


def _scalar(f, name: str, kind: str, path: Path):
    a = f[name]
    if a.shape != () or a.dtype.kind != kind:
        raise InputError(name, f"expected a scalar of kind {kind!r} in {path}, got {a.dtype} {a.shape}")
    return a.item()


def _bank_from_file(f, path: Path) -> MemoryBank:
    names = set(f.files)
    if "format" not in names or f["format"].shape != () or int(f["format"]) != BANK_FORMAT:
        raise InputError("path", f"{path} is not a MemoryBank file (format {BANK_FORMAT})")
    head = ("capacity", "near_m", "far_m", "samples", "seed", "ids", "pinned", "trajectory_ids")
    missing = [n for n in head if n not in names]
    if missing:
        raise InputError(missing[0], f"missing from {path}")
    ids, pins, traj = f["ids"], f["pinned"], f["trajectory_ids"]
    n = ids.shape[0] if ids.ndim == 1 else -1
    for name, a, kind in (("ids", ids, "i"), ("pinned", pins, "b"), ("trajectory_ids", traj, "U")):
        if a.shape != (n,) or a.dtype.kind != kind:
            raise InputError(name, f"expected shape ({n},) of kind {kind!r} in {path}, got {a.dtype} {a.shape}")
    if len(set(ids.tolist())) != n:
        raise InputError("ids", f"duplicate keyframe ids in {path}")
    expected = {"format", *head, *(f"k{i}.{name}" for i in range(n) for name in _KEYFRAME_ARRAYS)}
    if names != expected:
        odd = sorted(names ^ expected)
        raise InputError(odd[0], f"{'missing from' if odd[0] in expected else 'unexpected array in'} {path}")
    far = _scalar(f, "far_m", "f", path)
    try:
        bank = MemoryBank(_scalar(f, "capacity", "i", path), _scalar(f, "near_m", "f", path),
                          None if np.isnan(far) else far, _scalar(f, "samples", "i", path),
                          _scalar(f, "seed", "i", path))
    except InputError as err:
        raise InputError(err.field, f"{err.problem} (in {path})") from None
    if n > bank.capacity or int(pins.sum()) > bank.capacity:
        raise InputError("ids", f"{n} keyframes ({int(pins.sum())} pinned) exceed capacity {bank.capacity} in {path}")
    for i in range(n):
        arrays = {}
        depth = f[f"k{i}.depth"]
        h, w = depth.shape if depth.ndim == 2 else (-1, -1)
        for name, (dtype, shape) in _KEYFRAME_ARRAYS.items():
            a = f[f"k{i}.{name}"]
            want = tuple(h if d == "H" else w if d == "W" else d for d in shape)
            if a.dtype != dtype or a.shape != want:
                raise InputError(f"k{i}.{name}", f"expected {np.dtype(dtype)} {want} in {path}, "
                                                 f"got {a.dtype} {a.shape}")
            if not np.isfinite(a).all():
                raise InputError(f"k{i}.{name}", f"non-finite values in {path}")
            arrays[name] = a
        if (arrays["depth"] < 0).any() or arrays["rgb"].min(initial=0.0) < 0 or arrays["rgb"].max(initial=0.0) > 1:
            raise InputError(f"k{i}", f"depth < 0 or rgb outside [0, 1] in {path}")
        kf = Keyframe(arrays["rgb"], arrays["depth"], arrays["pointmap"], arrays["K"], arrays["T_world_cam"],
                      int(ids[i]), str(traj[i]))
        bank.add(kf, pinned=bool(pins[i]))
    return bank


def load_bank_npz(path: str | Path) -> MemoryBank:
    """Read a bank written by :func:`save_bank_npz`.

    Raises:
        InputError: ``path`` does not end in ``.npz`` or does not exist (field ``path``); the file is truncated
            or corrupt (field ``path``); a setting or array is missing, of the wrong dtype or shape, or holds
            non-finite or out-of-range values (the field is its name, e.g. ``k2.depth``).
    """
    target = _npz_path(path)
    if not target.is_file():
        raise InputError("path", f"no such file: {target}")
    try:
        with np.load(target, allow_pickle=False) as f:
            return _bank_from_file(f, target)
    except InputError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, SyntaxError) as exc:
        raise InputError("path", f"{target} is truncated or corrupt: {exc}") from exc
