"""Global cache files: lossless .npz and PLY through Open3D (worldstereo_ros.io.cache_files)."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.io.cache_files import (
    load_bank_npz,
    load_cache_npz,
    load_cache_ply,
    save_bank_npz,
    save_cache_npz,
    save_cache_ply,
)
from worldstereo_ros.memory.global_cache import GlobalCache
from worldstereo_ros.memory.memory_bank import MemoryBank
from worldstereo_ros.memory.types import Keyframe


def test_npz_round_trip_is_exact(tmp_path):
    g = torch.Generator().manual_seed(2)
    cache = GlobalCache(voxel_size_m=0.03, max_points=100_000, bounds_min=[-1, -1, -1], bounds_max=[1, 1, 1],
                        max_confidence=7.0)
    for view in range(3):
        cache.merge(torch.rand((3000, 3), generator=g) * 2 - 1, torch.rand((3000, 3), generator=g),
                    torch.rand(3000, generator=g) + 0.1, view_id=view, viewpoint=[0.0, 0.0, view])
    save_cache_npz(cache, tmp_path / "cache.npz")
    back = load_cache_npz(tmp_path / "cache.npz")
    for name in ("keys", "xyz", "rgb", "confidence", "count", "view_id", "bounds_min", "bounds_max",
                 "reference_point"):
        assert torch.equal(getattr(back, name), getattr(cache, name)), name
    assert (back.voxel_size_m, back.max_points, back.max_confidence) == (0.03, 100_000, 7.0)
    empty = GlobalCache()
    save_cache_npz(empty, tmp_path / "empty.npz")
    again = load_cache_npz(tmp_path / "empty.npz")
    assert len(again) == 0 and again.bounds_min is None and again.reference_point is None
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="path: .* is not a GlobalCache file"):
        load_cache_npz(tmp_path / "other.npz")


def test_ply_round_trip_through_open3d(tmp_path, corner_room_points):
    g = torch.Generator().manual_seed(3)
    cache = GlobalCache(voxel_size_m=0.05)
    cache.merge(corner_room_points(0.02), torch.rand((corner_room_points(0.02).shape[0], 3), generator=g), view_id=3)
    cache.merge(corner_room_points(0.02) + 0.01, view_id=5)
    save_cache_ply(cache, tmp_path / "cache.ply")
    back = load_cache_ply(tmp_path / "cache.ply", voxel_size_m=0.05)
    assert torch.equal(back.keys, cache.keys)
    assert torch.equal(back.xyz, cache.xyz)
    assert (back.rgb - cache.rgb).abs().max() <= 0.5 / 255 + 1e-3
    assert torch.equal(back.confidence, cache.confidence)
    assert torch.equal(back.count, cache.count) and torch.equal(back.view_id, cache.view_id)
    legacy = o3d.io.read_point_cloud(str(tmp_path / "cache.ply"))  # any PLY reader sees xyz + colours
    assert len(legacy.points) == len(cache) and legacy.has_colors()
    with pytest.raises(InputError, match="path: no such file"):
        load_cache_ply(tmp_path / "missing.ply")
    save_cache_ply(GlobalCache(), tmp_path / "empty.ply")  # Open3D writes no empty clouds: a header-only PLY
    assert len(load_cache_ply(tmp_path / "empty.ply")) == 0
    assert len(o3d.io.read_point_cloud(str(tmp_path / "empty.ply")).points) == 0


def _small_cache(seed: int, n: int = 4000) -> GlobalCache:
    """Version ``seed`` of a small cache: every point has view_id ``seed``, so a loaded file names its version."""
    g = torch.Generator().manual_seed(seed)
    cache = GlobalCache(voxel_size_m=0.02, max_points=50_000)
    cache.merge(torch.rand((n, 3), generator=g), torch.rand((n, 3), generator=g), torch.rand(n, generator=g) + 0.1,
                view_id=seed, viewpoint=[0.0, 0.0, float(seed)])
    return cache


def _small_bank(seed: int, frames: int = 3) -> MemoryBank:
    """Version ``seed`` of a small bank: keyframes of trajectory ``v<seed>``, the first pinned."""
    rng = np.random.default_rng(seed)
    bank = MemoryBank(capacity=4, near_m=0.2, seed=seed)
    K = np.array([[20.0, 0, 7.5], [0, 20.0, 5.5], [0, 0, 1]])
    for i in range(frames):
        T = np.eye(4)
        T[0, 3] = 0.1 * i + seed
        kf = Keyframe.from_frame(rng.random((12, 16, 3), dtype=np.float32), rng.uniform(0.5, 3.0, (12, 16)), K, T,
                                 10 * seed + i, f"v{seed}")
        bank.add(kf, pinned=i == 0)
    return bank


def _assert_same_bank(a: MemoryBank, b: MemoryBank) -> None:
    assert a.settings() == b.settings() and a.ids == b.ids and a.pinned_ids == b.pinned_ids
    for ka, kb in zip(a, b):
        assert ka.trajectory_id == kb.trajectory_id
        for name in ("rgb", "depth", "pointmap", "K", "T_world_cam"):
            x, y = getattr(ka, name), getattr(kb, name)
            assert x.dtype == y.dtype and np.array_equal(x, y), name


def test_bank_npz_round_trip_is_exact_and_retrieval_agrees(tmp_path):
    bank = _small_bank(3)
    save_bank_npz(bank, tmp_path / "bank.npz")
    back = load_bank_npz(tmp_path / "bank.npz")
    _assert_same_bank(back, bank)
    K, T = bank.get(30).K, bank.get(31).T_world_cam
    assert np.array_equal(back.score(K, T, 16, 12), bank.score(K, T, 16, 12))
    save_bank_npz(MemoryBank(capacity=2), tmp_path / "empty.npz")
    assert len(load_bank_npz(tmp_path / "empty.npz")) == 0


def test_bank_npz_truncated_corrupt_or_inconsistent_is_rejected_naming_the_field(tmp_path):
    path = tmp_path / "bank.npz"
    save_bank_npz(_small_bank(1), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="path: .*truncated or corrupt"):
        load_bank_npz(path)
    with pytest.raises(InputError, match="path: no such file"):
        load_bank_npz(tmp_path / "none.npz")
    with pytest.raises(InputError, match="path: expected a file name ending in .npz"):
        save_bank_npz(_small_bank(1), tmp_path / "bank")
    save_bank_npz(_small_bank(1), path)
    with np.load(path) as f:
        good = {k: f[k] for k in f.files}
    cases = [
        ({"k1.depth": good["k1.depth"][:, :4]}, "k1.rgb: expected float32"),
        ({"k0.rgb": good["k0.rgb"].astype(np.float64)}, "k0.rgb: expected float32"),
        ({"k2.T_world_cam": np.full((4, 4), np.nan)}, "k2.T_world_cam: non-finite"),
        ({"ids": np.array([10, 10, 12])}, "ids: duplicate keyframe ids"),
        ({"k0.depth": -good["k0.depth"]}, "k0: depth < 0"),
        ({"capacity": np.int64(2)}, "ids: 3 keyframes .* exceed capacity 2"),
        ({"near_m": np.float64(-1.0)}, "near_m: .*in .*bank.npz"),
        ({"format": np.int64(9)}, "path: .*not a MemoryBank file"),
        ({"k3.rgb": good["k0.rgb"]}, "k3.rgb: unexpected array"),
    ]
    for changes, match in cases:
        np.savez(path, **{**good, **changes})
        with pytest.raises(InputError, match=match):
            load_bank_npz(path)


def _assert_same(a: GlobalCache, b: GlobalCache) -> None:
    for name in ("keys", "xyz", "rgb_half", "confidence", "count", "view_id", "reference_point"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_npz_names_must_agree_and_missing_file_is_named(tmp_path):
    cache = _small_cache(1, 100)
    with pytest.raises(InputError, match=r"path: expected a file name ending in \.npz"):
        save_cache_npz(cache, tmp_path / "x")
    with pytest.raises(InputError, match=r"path: expected a file name ending in \.npz"):
        load_cache_npz(tmp_path / "x")
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary
    save_cache_npz(cache, str(tmp_path / "x.npz"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]
    _assert_same(load_cache_npz(str(tmp_path / "x.npz")), cache)
    with pytest.raises(InputError, match=r"path: no such file: .*missing\.npz"):
        load_cache_npz(tmp_path / "missing.npz")


def test_truncated_and_corrupt_npz_are_rejected(tmp_path):
    import zipfile

    save_cache_npz(_small_cache(2), tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    bad = tmp_path / "bad.npz"
    for cut in (0, 10, len(data) // 3, len(data) // 2, len(data) - 200, len(data) - 1):
        bad.write_bytes(data[:cut])
        with pytest.raises(InputError, match="path: .*(truncated or corrupt|not a GlobalCache)"):
            load_cache_npz(bad)
    # one flipped byte inside each array's stored data: the zip CRC catches it
    with zipfile.ZipFile(tmp_path / "good.npz") as z:
        infos = [i for i in z.infolist() if i.file_size > 200]
    assert len(infos) >= 5
    for info in infos:
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        corrupt = bytearray(data)
        corrupt[start + info.file_size // 2] ^= 0x5A
        bad.write_bytes(bytes(corrupt))
        with pytest.raises(InputError, match="path: .*truncated or corrupt"):
            load_cache_npz(bad)


def test_npz_contents_are_validated_by_field(tmp_path):
    state = _small_cache(3, 300).state()
    state.update(bounds_min=np.full(3, np.nan, np.float32), bounds_max=np.full(3, np.nan, np.float32))

    def write(**changes) -> None:
        s = {**state, "format": np.int64(1), **changes}
        np.savez(tmp_path / "c.npz", **{k: v for k, v in s.items() if v is not None})

    write()
    assert len(load_cache_npz(tmp_path / "c.npz")) == len(state["keys"])
    cases = [
        ({"rgb": state["rgb"].astype(np.float32)}, "rgb: expected dtype float16"),
        ({"confidence": state["confidence"][:-1]}, "confidence: expected shape"),
        ({"xyz": state["xyz"][:, :2]}, "xyz: expected shape"),
        ({"view_id": None}, "view_id: missing from"),
        ({"keys": state["keys"][::-1].copy()}, "keys: .*not strictly increasing"),
        ({"xyz": state["xyz"] + 1.0}, "keys: .*do not match the positions"),
        ({"max_points": np.float64(2.5)}, "max_points: expected a scalar"),
        ({"extra": np.zeros(2)}, "extra: unexpected array"),
        ({"format": np.int64(7)}, "path: .*not a GlobalCache file"),
    ]
    for changes, match in cases:
        write(**changes)
        with pytest.raises(InputError, match=match):
            load_cache_npz(tmp_path / "c.npz")


_SAVE_LOOP = """
import os, sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
from test_cache_files import _small_bank, _small_cache
from worldstereo_ros.io.cache_files import save_bank_npz, save_cache_npz
versions = [_small_cache(v) for v in range(4)]
banks = [_small_bank(v) for v in range(4)]
path, bank_path = sys.argv[2], sys.argv[3]
print("ready", flush=True)
for line in sys.stdin:  # one line = fork one writer, report its pid, wait until it is killed
    pid = os.fork()
    if pid == 0:
        k = int(line)
        while True:
            save_cache_npz(versions[k % len(versions)], path)
            save_bank_npz(banks[k % len(banks)], bank_path)  # as the node saves its state: cache, then bank
            k += 1
    print(pid, flush=True)
    os.waitpid(pid, 0)
    print("dead", flush=True)
"""


def test_sigkill_during_saves_never_leaves_a_partial_file(tmp_path):
    """A writer saving four versions of a cache and of a memory bank in a loop is SIGKILLed at seeded random
    moments, 120 times (forked from one started interpreter, so the test stays fast); after every kill each
    file either does not exist yet or loads as one complete version."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    torch.set_num_threads(1)
    versions = [_small_cache(v) for v in range(4)]
    banks = [_small_bank(v) for v in range(4)]
    path, bank_path = tmp_path / "cache.npz", tmp_path / "bank.npz"
    rng = np.random.default_rng(14)
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(Path(__file__).parent), str(path),
                             str(bank_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        assert proc.stdout.readline().strip() == "ready"
        kills, seen, absent, banks_seen = 120, set(), 0, set()
        for round_ in range(kills):
            proc.stdin.write(f"{round_}\n")
            proc.stdin.flush()
            pid = int(proc.stdout.readline())
            time.sleep(float(rng.uniform(0.0, 0.03)))  # the random moment of the kill
            os.kill(pid, signal.SIGKILL)
            assert proc.stdout.readline().strip() == "dead"
            if bank_path.exists():
                bank = load_bank_npz(bank_path)
                version = int(next(iter(bank)).trajectory_id[1:])
                _assert_same_bank(bank, banks[version])
                banks_seen.add(version)
            if not path.exists():
                absent += 1
                continue
            back = load_cache_npz(path)
            version = int(back.view_id[0])
            _assert_same(back, versions[version])
            seen.add(version)
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.monotonic() - start
    leftovers = len(list(tmp_path.glob(".cache.npz.*.tmp")))
    bank_leftovers = len(list(tmp_path.glob(".bank.npz.*.tmp")))
    print(f"sigkill: {kills} kills, {kills - absent} complete cache files loaded ({len(seen)} versions seen), "
          f"{absent} absent, {leftovers} kills landed mid-write of the cache and {bank_leftovers} of the bank "
          f"(temp file left), {len(banks_seen)} bank versions loaded, {elapsed:.1f} s")
    assert len(seen) == len(versions) and len(banks_seen) == len(banks)  # kills landed across the save loop
    assert leftovers > 0 and bank_leftovers > 0  # and during writes, the case the atomic rename protects
    assert elapsed < 20.0
