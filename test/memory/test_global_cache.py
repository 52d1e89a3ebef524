"""GlobalCache: voxel keys, fusion by hand, budget and bounds, queries, files, alignment on merge."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.memory.global_cache import GlobalCache, MergeReport
from worldstereo_ros.memory.voxel_arrays import pack_voxel_keys, unpack_voxel_keys

try:
    from worldstereo_ros.geometry.projection import PointSet as _Points
except ImportError:  # geometry.projection lands separately; until then a stand-in with its fields

    @dataclass
    class _Points:
        xyz: torch.Tensor
        rgb: torch.Tensor
        confidence: torch.Tensor
        pixel: torch.Tensor


def test_voxel_keys_round_trip_and_sort_x_major():
    ijk = torch.tensor([[0, 0, 0], [-1, 5, 7], [2**20 - 1, -2**20, 3], [-2**20, 2**20 - 1, -2**20]])
    assert torch.equal(unpack_voxel_keys(pack_voxel_keys(ijk)), ijk)
    grid = torch.cartesian_prod(*[torch.arange(-2, 3)] * 3)  # lexicographic order
    keys = pack_voxel_keys(grid)
    assert torch.all(keys[1:] > keys[:-1])


def test_fusion_rule_by_hand():
    cache = GlobalCache(voxel_size_m=0.1)
    xyz = torch.tensor([[0.01, 0.01, 0.01], [0.05, 0.09, 0.01], [0.35, 0.0, 0.0]])
    rgb = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5]])
    report = cache.merge(xyz, rgb, torch.tensor([1.0, 3.0, 2.0]), view_id=4)
    assert isinstance(report, MergeReport)
    assert (report.n_input, report.n_dropped, report.n_fused) == (3, 0, 0)
    assert (report.n_new_voxels, report.n_points) == (2, 2)
    # voxel (0,0,0): confidence-weighted means, confidence sums, two observations
    assert torch.allclose(cache.xyz[0], torch.tensor([0.04, 0.07, 0.01]))
    assert torch.allclose(cache.rgb[0], torch.tensor([0.25, 0.0, 0.75]))
    assert cache.confidence.tolist() == [4.0, 2.0]
    assert cache.count.tolist() == [2, 1]
    assert cache.view_id.tolist() == [4, 4]
    # a second merge fuses with the stored point, and its view becomes the voxel's view
    report = cache.merge(torch.tensor([[0.08, 0.03, 0.05]]), torch.tensor([[0.0, 1.0, 0.0]]),
                         torch.tensor([4.0]), view_id=9)
    assert (report.n_fused, report.n_new_voxels, report.n_points) == (1, 0, 2)
    assert torch.allclose(cache.xyz[0], torch.tensor([0.06, 0.05, 0.03]))
    assert torch.allclose(cache.rgb[0], torch.tensor([0.125, 0.5, 0.375]))
    assert cache.confidence.tolist() == [8.0, 2.0] and cache.count.tolist() == [3, 1]
    assert cache.view_id.tolist() == [9, 4]


def test_confidence_cap_and_defaults():
    cache = GlobalCache(voxel_size_m=0.1, max_confidence=2.5)
    cache.merge(torch.tensor([[0.01, 0.01, 0.01], [0.02, 0.02, 0.02], [0.03, 0.03, 0.03]]))
    assert cache.confidence.tolist() == [2.5] and cache.count.tolist() == [3]
    assert torch.allclose(cache.rgb, torch.full((1, 3), 0.5))  # no colours: mid grey


def test_new_voxels_are_interleaved_in_key_order():
    g = torch.Generator().manual_seed(0)
    cache = GlobalCache(voxel_size_m=0.05)
    everything = []
    for view in range(4):
        xyz = torch.rand((500, 3), generator=g) * 2.0 - 1.0
        everything.append(xyz)
        cache.merge(xyz, view_id=view)
    keys = cache.keys
    assert torch.all(keys[1:] > keys[:-1])
    all_xyz = torch.cat(everything)
    expected = torch.unique(pack_voxel_keys(torch.floor(all_xyz / 0.05).long()))
    assert torch.equal(keys, expected)
    assert int(cache.count.sum()) == 2000
    # every stored point lies in its own voxel
    assert torch.equal(pack_voxel_keys(torch.floor(cache.xyz / 0.05).long()), keys)


def test_dropped_points_and_bounds():
    cache = GlobalCache(voxel_size_m=0.1, bounds_min=[-1, -1, 0], bounds_max=[1, 1, 2])
    xyz = torch.tensor([[0.0, 0.0, 0.5], [math.nan, 0.0, 0.5], [0.0, 0.0, 2.5], [0.5, 0.5, 1.0],
                        [0.2, 0.2, 0.2]])
    conf = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0])
    report = cache.merge(xyz, confidence=conf)
    assert report.n_dropped == 3 and len(cache) == 2


def test_budget_evicts_lowest_confidence_then_farthest():
    cache = GlobalCache(voxel_size_m=0.1, max_points=3)
    xyz = torch.tensor([[0.05, 0.05, 0.05], [1.05, 0.05, 0.05], [2.05, 0.05, 0.05], [3.05, 0.05, 0.05],
                        [4.05, 0.05, 0.05]])
    report = cache.merge(xyz, confidence=torch.tensor([1.0, 5.0, 5.0, 2.0, 5.0]))
    assert report.n_evicted == 2 and len(cache) == 3
    assert torch.allclose(cache.xyz[:, 0], torch.tensor([1.05, 2.05, 4.05]))
    # equal confidences: the farthest from the viewpoint go first
    cache = GlobalCache(voxel_size_m=0.1, max_points=2)
    report = cache.merge(xyz[:4], viewpoint=[3.0, 0.0, 0.0])
    assert report.n_evicted == 2
    assert torch.allclose(cache.xyz[:, 0], torch.tensor([2.05, 3.05]))
    # without a viewpoint the reference is the centroid of the merged points
    cache = GlobalCache(voxel_size_m=0.1, max_points=2)
    cache.merge(xyz[[0, 1, 2, 4]])
    assert torch.allclose(cache.xyz[:, 0], torch.tensor([1.05, 2.05]))


def test_crop_and_radius_query_match_brute_force():
    g = torch.Generator().manual_seed(1)
    cache = GlobalCache.from_points(torch.rand((20000, 3), generator=g) * 4.0 - 2.0, voxel_size_m=0.02)
    lo, hi = torch.tensor([-0.5, -1.0, 0.0]), torch.tensor([1.0, 0.5, 1.5])
    cropped = cache.crop(lo, hi)
    inside = ((cache.xyz >= lo) & (cache.xyz <= hi)).all(1)
    assert torch.equal(cropped.xyz, cache.xyz[inside]) and torch.equal(cropped.keys, cache.keys[inside])
    assert cropped.voxel_size_m == 0.02 and torch.equal(cropped.bounds_min, lo)
    for center, radius in (([0.3, -0.2, 0.1], 0.5), ([-2.0, 0.0, 0.0], 0.3), ([5.0, 0.0, 0.0], 1.0),
                           ([0.0, 0.0, 0.0], 0.0)):
        got = cache.radius_query(center, radius)
        want = torch.nonzero((cache.xyz - torch.tensor(center)).norm(dim=1) <= radius).squeeze(1)
        assert torch.equal(got, want)
    assert len(cache.radius_query([0.0, 0.0, 0.0], 0.4)) > 50  # about 84 expected


def test_voxel_downsampled_by_hand():
    cache = GlobalCache(voxel_size_m=0.01)
    cache.merge(torch.tensor([[0.005, 0.005, 0.005], [0.015, 0.005, 0.005], [0.105, 0.0, 0.0]]),
                torch.eye(3), torch.tensor([1.0, 3.0, 1.0]))
    xyz, rgb = cache.voxel_downsampled(0.1)
    assert xyz.shape == (2, 3)
    assert torch.allclose(xyz[0], torch.tensor([0.0125, 0.005, 0.005]))
    assert torch.allclose(rgb[0], torch.tensor([0.25, 0.75, 0.0]))
    same_xyz, _ = cache.voxel_downsampled(0.01)
    assert torch.equal(same_xyz, cache.xyz)


def test_memory_is_38_bytes_per_point():
    cache = GlobalCache.from_points(torch.rand((10_000, 3)) * 10, voxel_size_m=0.001)
    assert len(cache) == 10_000
    assert cache.memory_bytes() == 38 * 10_000 + 3 * 4  # + the reference point


def corner_camera() -> torch.Tensor:
    """T_world_cam of a camera at (1.5, 1.5, 1.2) looking at the corner (the origin), OpenCV axes."""
    eye = torch.tensor([1.5, 1.5, 1.2])
    z = -eye / eye.norm()
    x = torch.linalg.cross(z, torch.tensor([0.0, 0.0, 1.0]))
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    T_world_cam = torch.eye(4)
    T_world_cam[:3, :3] = torch.stack([x, y, z], 1)
    T_world_cam[:3, 3] = eye
    return T_world_cam


def test_render_shows_the_cache(corner_room_points):
    K = torch.tensor([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    cache = GlobalCache.from_points(corner_room_points(0.005), voxel_size_m=0.01)
    T_cam_world = torch.linalg.inv(corner_camera())
    out = cache.render(K, T_cam_world, 48, 64, splat_px="auto")
    assert out.mask.float().mean() > 0.5
    idx = out.index[0][out.mask[0]]
    cam = cache.xyz[idx] @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    assert torch.allclose(out.depth[0][out.mask[0]], cam[:, 2], atol=1e-5)
    assert torch.equal(out.rgb[0][out.mask[0]], cache.rgb[idx])


def test_init_from_panorama_puts_a_constant_depth_on_a_sphere():
    pytest.importorskip("worldstereo_ros.geometry.projection", reason="geometry.projection not there yet")
    rgb = np.full((32, 64, 3), 0.25, dtype=np.float32)
    depth = np.full((32, 64), 2.0, dtype=np.float32)
    depth[0, :] = 0.0  # unknown
    T = np.eye(4)
    T[:3, 3] = [1.0, -2.0, 0.5]
    cache = GlobalCache(voxel_size_m=0.05)
    report = cache.init_from_panorama(rgb, depth, T, view_id=7)
    assert report.n_points == len(cache) > 100
    r = (cache.xyz - torch.tensor([1.0, -2.0, 0.5])).norm(dim=1)
    assert torch.allclose(r, torch.full_like(r, 2.0), atol=0.05 * 3**0.5)
    assert torch.all(cache.view_id == 7)
    assert torch.allclose(cache.rgb, torch.full_like(cache.rgb, 0.25), atol=1e-3)
    assert torch.allclose(cache.reference_point, torch.tensor([1.0, -2.0, 0.5]))


def test_merge_does_not_mutate_its_input():
    xyz = torch.rand((100, 3))
    rgb = torch.rand((100, 3))
    conf = torch.rand(100) + 0.5
    copies = [t.clone() for t in (xyz, rgb, conf)]
    cache = GlobalCache(voxel_size_m=0.05)
    cache.merge(xyz, rgb, conf)
    cache.merge(_Points(xyz=xyz, rgb=rgb, confidence=conf, pixel=torch.arange(100)))
    for t, c in zip((xyz, rgb, conf), copies):
        assert torch.equal(t, c)


def test_confidence_at_reads_the_voxel_of_each_point():
    cache = GlobalCache(voxel_size_m=0.1)
    cache.merge(torch.tensor([[0.05, 0.05, 0.05], [0.06, 0.04, 0.05], [1.05, 0.05, 0.05]]),
                confidence=torch.tensor([1.0, 0.5, 0.25]))
    got = cache.confidence_at(torch.tensor([[0.01, 0.09, 0.02], [1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [-0.05, 0.0, 0.0]]))
    assert torch.allclose(got, torch.tensor([1.5, 0.25, 0.0, 0.0]))
    assert GlobalCache().confidence_at(np.zeros((2, 3))).tolist() == [0.0, 0.0]
    with pytest.raises(InputError, match="xyz"):
        cache.confidence_at(torch.zeros(3))


def test_numpy_input_and_from_points():
    xyz = np.random.default_rng(0).random((50, 3))
    cache = GlobalCache.from_points(xyz, np.full((50, 3), 0.2, dtype=np.float32), voxel_size_m=0.5, view_id=2)
    assert len(cache) == 8 and cache.xyz.dtype == torch.float32
    assert torch.all(cache.view_id == 2) and torch.allclose(cache.rgb, torch.full((8, 3), 0.2), atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(voxel_size_m=0.0), "voxel_size_m: expected a finite float > 0"),
        (dict(max_points=0), "max_points: expected an int >= 1"),
        (dict(bounds_min=[0, 0]), "bounds_min: expected 3 finite numbers"),
        (dict(bounds_min=[1, 1, 1], bounds_max=[0, 2, 2]), "bounds_min: must not exceed bounds_max"),
        (dict(max_confidence=-1.0), "max_confidence"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        GlobalCache(**kwargs)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((torch.zeros((4, 2)),), {}, "xyz: expected float \\(N, 3\\)"),
        ((torch.zeros((4, 3)), torch.zeros((3, 3))), {}, "rgb: expected float \\(N, 3\\) = \\(4, 3\\)"),
        ((torch.zeros((4, 3)),), dict(confidence=torch.ones(5)), "confidence: expected shape \\(4,\\)"),
        ((torch.zeros((4, 3)),), dict(view_id=1.5), "view_id"),
        ((torch.tensor([[1e5, 0.0, 0.0]]),), {}, "xyz: points must lie within"),
        ((torch.zeros((4, 3)),), dict(viewpoint=[0.0, 1.0]), "viewpoint"),
    ],
)
def test_bad_merge_arguments(args, kwargs, match):
    with pytest.raises(InputError, match=match):
        GlobalCache().merge(*args, **kwargs)


def test_bad_query_arguments():
    cache = GlobalCache.from_points(torch.rand((10, 3)))
    with pytest.raises(InputError, match="center"):
        cache.radius_query([0.0, 0.0], 1.0)
    with pytest.raises(InputError, match="radius_m"):
        cache.radius_query([0.0, 0.0, 0.0], -1.0)
    with pytest.raises(InputError, match="voxel_size_m"):
        cache.voxel_downsampled(0.0)


def test_readers_never_see_a_half_merged_cache():
    """One thread merges (fusing, adding and evicting every time), two read radius / crop queries and
    snapshots; every read must be one consistent merge state: equal lengths, within the budget, sorted keys
    matching the positions, points inside the radius or box."""
    import threading
    import time

    torch.set_num_threads(1)
    voxel, budget = 0.05, 3000
    cache = GlobalCache(voxel_size_m=voxel, max_points=budget)
    n_merges, done, errors, checked = 150, threading.Event(), [], [0, 0]
    start = time.monotonic()

    def writer() -> None:
        g = torch.Generator().manual_seed(5)
        try:
            for view in range(n_merges):
                cache.merge(torch.rand((1500, 3), generator=g) * 2 - 1, torch.rand((1500, 3), generator=g),
                            torch.rand(1500, generator=g) + 0.1, view_id=view)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(repr(exc))
        finally:
            done.set()

    def check(snap: GlobalCache) -> None:
        n = snap.keys.shape[0]
        lengths = {t.shape[0] for t in (snap.xyz, snap.rgb_half, snap.confidence, snap.count, snap.view_id)}
        assert lengths == {n} and n <= budget, (lengths, n)
        assert bool((snap.keys[1:] > snap.keys[:-1]).all())
        assert torch.equal(pack_voxel_keys(torch.floor(snap.xyz / voxel).to(torch.int64)), snap.keys)

    def reader(slot: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not done.is_set():
                center, radius = rng.uniform(-1, 1, 3), float(rng.uniform(0.1, 0.6))
                snap = cache.snapshot()
                idx = snap.radius_query(center, radius)
                check(snap)
                d = (snap.xyz[idx] - torch.as_tensor(center, dtype=torch.float32)).norm(dim=1)
                assert bool((d <= radius + 1e-5).all())
                lo = rng.uniform(-1, 0, 3)
                box = cache.crop(lo, lo + 0.8)
                check(box)
                assert bool(((box.xyz >= torch.as_tensor(lo, dtype=torch.float32))
                             & (box.xyz <= torch.as_tensor(lo + 0.8, dtype=torch.float32))).all())
                checked[slot] += 1
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(repr(exc))

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(i, 10 + i))
                                                   for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5.0)
    elapsed = time.monotonic() - start
    assert not any(t.is_alive() for t in threads), "stress test did not finish in 5 s"
    assert not errors, errors[:3]
    assert min(checked) > 10, checked  # both readers really overlapped the merges
    assert elapsed < 5.0 and len(cache) == budget
    print(f"stress: {n_merges} merges, {sum(checked)} consistent reads in {elapsed:.2f} s")
