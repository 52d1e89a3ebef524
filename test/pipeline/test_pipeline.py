"""ImaginationPipeline end to end on a tiny snapshot (64 x 48, 2 trajectories x 4 frames)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from worldstereo_ros.datasets.procedural_scene import procedural_snapshot
from worldstereo_ros.errors import ConfigError, InputError
from worldstereo_ros.generation.base import GeneratedFrames, GenerationRequest, Generator
from worldstereo_ros.pipeline import STAGES, Cancelled, ImaginationPipeline, PipelineConfig, Progress, Trajectory

W, H = 64, 48


@pytest.fixture(scope="module")
def snapshot():
    return procedural_snapshot(W, H, spacing_m=0.02)


def _path(T0: np.ndarray, n: int, dx_m: float, yaw_deg: float) -> np.ndarray:
    """n poses moving dx_m along the camera's x axis while turning yaw_deg about its y axis."""
    out = np.tile(T0, (n, 1, 1))
    for i in range(n):
        s = (i + 1) / n
        a = math.radians(yaw_deg * s)
        step = np.eye(4)
        step[:3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
        step[0, 3] = dx_m * s
        out[i] = T0 @ step
    return out


def _trajectories(snapshot) -> list[Trajectory]:
    return [Trajectory("right", _path(snapshot.T_world_cam, 4, 0.4, -15.0)),
            Trajectory("left", _path(snapshot.T_world_cam, 4, -0.4, 15.0))]


def _config(**kw) -> PipelineConfig:
    base = dict(voxel_size_m=0.04, bank_capacity=3, keyframe_stride=2)
    base.update(kw)
    return PipelineConfig(**base)


def test_cache_grows_and_bank_stays_bounded(snapshot):
    pipe = ImaginationPipeline(_config(bank_capacity=2, keyframe_stride=1)).initialize(snapshot)
    n0 = len(pipe.cache)
    assert len(pipe.bank) == 1  # the snapshot itself
    results = pipe.run(_trajectories(snapshot))
    assert len(pipe.cache) > n0
    assert results[0].cache_points_after <= results[1].cache_points_after == len(pipe.cache)
    assert len(pipe.bank) == 2
    r = results[0]
    assert r.rgb.shape == (4, H, W, 3) and r.depth.shape == (4, H, W) and r.imagined.shape == (4, H, W)
    assert r.rgb.dtype == np.float32 and r.imagined.dtype == bool
    assert r.imagined.any() and (~r.imagined).any()
    assert set(STAGES[:-1]) <= set(r.timings_s)


def test_progress_and_on_frame_come_in_order(snapshot):
    events: list[Progress] = []
    frames = []
    pipe = ImaginationPipeline(_config()).initialize(snapshot)
    pipe.run(_trajectories(snapshot), progress=events.append,
             on_frame=lambda tid, i, rgb, depth, imag, T, K: frames.append((tid, i, rgb.shape, T.shape, K.shape)))
    assert [(f[0], f[1]) for f in frames] == [("right", i) for i in range(4)] + [("left", i) for i in range(4)]
    assert frames[0][2:] == ((H, W, 3), (4, 4), (3, 3))
    for k, tid in enumerate(["right", "left"]):
        mine = [e for e in events if e.trajectory_id == tid]
        assert all(e.trajectory_index == k and e.trajectory_count == 2 and e.frame_count == 4 for e in mine)
        stages = [e.stage for e in mine]
        assert [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]] == list(STAGES)
        assert [e.frame_index for e in mine if e.stage == "generate"] == [0, 1, 2, 3, 4]
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0


def test_cancel_stops_between_frames_and_leaves_no_trace(snapshot):
    pipe = ImaginationPipeline(_config()).initialize(snapshot)
    xyz0 = pipe.cache.xyz.clone()
    seen = []
    with pytest.raises(Cancelled, match="right"):
        pipe.run(_trajectories(snapshot), on_frame=lambda *a: seen.append(a[1]), should_cancel=lambda: len(seen) >= 2)
    assert seen == [0, 1]
    assert torch.equal(pipe.cache.xyz, xyz0) and len(pipe.bank) == 1
    with pytest.raises(Cancelled, match="before trajectory"):
        pipe.run(_trajectories(snapshot), should_cancel=lambda: True)


def test_memory_none_keeps_the_initial_cloud(snapshot):
    pipe = ImaginationPipeline(_config(memory="none")).initialize(snapshot)
    xyz0, rgb0 = pipe.cache.xyz.clone(), pipe.cache.rgb.clone()
    results = pipe.run(_trajectories(snapshot))
    assert torch.equal(pipe.cache.xyz, xyz0) and torch.equal(pipe.cache.rgb, rgb0)
    assert len(pipe.bank) == 0 and all(refs == [] for refs in results[1].reference_ids)


def test_ggm_ssm_retrieves_references_and_ggm_does_not(snapshot):
    full = ImaginationPipeline(_config()).initialize(snapshot).run(_trajectories(snapshot))
    assert any(refs for refs in full[1].reference_ids)
    ggm = ImaginationPipeline(_config(memory="ggm")).initialize(snapshot).run(_trajectories(snapshot))
    assert all(refs == [] for r in ggm for refs in r.reference_ids)


def test_same_seed_same_result(snapshot):
    a = ImaginationPipeline(_config(seed=3)).initialize(snapshot).run(_trajectories(snapshot))
    pipe = ImaginationPipeline(_config(seed=3)).initialize(snapshot)
    b = pipe.run(_trajectories(snapshot))
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(ra.rgb, rb.rgb)
        np.testing.assert_array_equal(ra.depth, rb.depth)
        np.testing.assert_array_equal(ra.imagined, rb.imagined)
    # reset() starts over from the same snapshot
    n = len(pipe.reset().cache)
    c = pipe.run(_trajectories(snapshot))
    np.testing.assert_array_equal(c[1].rgb, b[1].rgb)
    assert n < len(pipe.cache)


def test_target_size_rescales_the_intrinsics(snapshot):
    pipe = ImaginationPipeline(_config(width=32, height=24)).initialize(snapshot)
    [r] = pipe.run(_trajectories(snapshot)[:1])
    assert r.rgb.shape == (4, 24, 32, 3)
    np.testing.assert_allclose(r.K[0, 0], snapshot.K[0, 0] / 2)


@pytest.mark.parametrize("key, value, match", [
    ("memory", "ssm", "memory.*none, ggm, ggm\\+ssm"),
    ("backend", "nope", "backend.*render_fill"),
    ("voxel_size_m", 0.0, "voxel_size_m"),
    ("bank_capacity", 0, "bank_capacity"),
    ("keyframe_stride", 1.5, "keyframe_stride"),
    ("width", 64, "width"),
    ("splat_px", -1, "splat_px"),
    ("imagined_confidence", 2.0, "imagined_confidence"),
])
def test_config_errors_name_the_key(key, value, match):
    with pytest.raises(ConfigError, match=match):
        PipelineConfig(**{key: value}).validate()


def test_from_dict_rejects_unknown_keys():
    assert PipelineConfig.from_dict({"memory": "ggm"}).memory == "ggm"
    with pytest.raises(ConfigError, match="bogus.*valid: backend"):
        PipelineConfig.from_dict({"bogus": 1})


def test_bad_trajectories_and_order_of_calls(snapshot):
    pipe = ImaginationPipeline(_config())
    with pytest.raises(InputError, match="initialize"):
        pipe.run(_trajectories(snapshot))
    pipe.initialize(snapshot)
    t = _trajectories(snapshot)[0]
    with pytest.raises(InputError, match="unique"):
        pipe.run([t, t])
    with pytest.raises(InputError, match="T_world_cam"):
        Trajectory("x", np.eye(4))
    with pytest.raises(InputError, match="id"):
        Trajectory("a b", np.eye(4)[None])


class _HalfScaleBackend(Generator):
    """Returns the conditioning render with depth at twice the true scale, marked non-metric; imagined
    pixels get a constant far depth."""

    name = "half_scale_test"
    uses_references = False

    def generate(self, request: GenerationRequest, generator=None, on_frame=None) -> GeneratedFrames:
        request.check()
        imagined = ~request.cond_mask
        depth = np.where(request.cond_mask, 2.0 * request.cond_depth, 2.0 * 4.0).astype(np.float32)
        rgb = np.where(imagined[..., None], 0.5, request.cond_rgb).astype(np.float32)
        for i in range(request.num_frames):
            if on_frame is not None:
                on_frame(i, rgb[i], depth[i], imagined[i])
        return GeneratedFrames(rgb, depth, imagined, depth_is_metric=False)


def test_non_metric_depth_is_aligned_to_the_cache(snapshot):
    pipe = ImaginationPipeline(_config(splat_px=0), backend=_HalfScaleBackend()).initialize(snapshot)
    [r] = pipe.run(_trajectories(snapshot)[:1])
    scale = np.cbrt(np.linalg.det(r.T_cache_generated[:3, :3]))
    assert abs(scale - 0.5) < 0.01
    observed = ~r.imagined & (r.depth > 0)
    cond = pipe.cache.render(torch.as_tensor(r.K), torch.linalg.inv(torch.as_tensor(r.T_world_cam)), H, W)
    # observed pixels now carry the cache's own depth again; a few border pixels differ because the merged
    # imagined points (at the constant far depth) can win the z-test next to a hole
    drawn = cond.depth.numpy()[observed]
    close = np.abs(r.depth[observed] - drawn) <= 0.02 * drawn
    assert close.mean() > 0.9, f"only {close.mean():.0%} of observed pixels agree with the cache"


class _FloaterBackend(Generator):
    """Marks every pixel imagined. Frame 0 puts a red layer at half the true depth; the later frames show the
    conditioning render itself (the true surfaces, already observed)."""

    name = "floater_test"
    uses_references = False

    def generate(self, request: GenerationRequest, generator=None, on_frame=None) -> GeneratedFrames:
        request.check()
        depth = np.array(request.cond_depth, dtype=np.float32)
        rgb = np.array(request.cond_rgb, dtype=np.float32)
        depth[0] *= 0.5
        rgb[0] = (1.0, 0.0, 0.0)
        return GeneratedFrames(rgb, depth, np.ones_like(request.cond_mask), depth_is_metric=True)


@pytest.mark.parametrize("tolerance", [0.02, None])
def test_merge_drops_seen_through_fills_and_leaves_observations_alone(snapshot, tolerance):
    cfg = _config(memory="ggm", free_space_tolerance=tolerance, drop_depth_edges=False, splat_px=0,
                  max_imagined_distance_px=None, protect_observed=tolerance is not None)
    pipe = ImaginationPipeline(cfg, backend=_FloaterBackend()).initialize(snapshot)
    keys, xyz, rgb = pipe.cache.keys.clone(), pipe.cache.xyz.clone(), pipe.cache.rgb.clone()
    pipe.run([Trajectory("still", np.tile(snapshot.T_world_cam, (2, 1, 1)))])  # frame 1 is the keyframe
    red = int((pipe.cache.rgb[:, 0] > 0.99).sum())
    rows = torch.searchsorted(pipe.cache.keys, keys)
    assert torch.equal(pipe.cache.keys[rows], keys)  # nothing observed was lost
    if tolerance is None:  # everything merged: the floaters join the cache, observed voxels are averaged
        assert red > keys.shape[0] / 8
        assert not torch.equal(pipe.cache.rgb[rows], rgb)
    else:  # the later view saw through the red layer; the true surfaces fell into observed voxels
        assert red == 0
        assert torch.equal(pipe.cache.xyz[rows], xyz) and torch.equal(pipe.cache.rgb[rows], rgb)
        assert len(pipe.cache) < 1.01 * keys.shape[0]  # a few points land across voxel borders


def test_fills_far_from_any_observation_stay_out_of_the_cache(snapshot):
    from worldstereo_ros.geometry.reconstruct import reconstruct_points

    depth = np.full((1, 10, 40), 2.0, np.float32)
    imagined = np.zeros((1, 10, 40), bool)
    imagined[0, :, 5:] = True  # observed: columns 0-4
    rgb = np.zeros((1, 10, 40, 3), np.float32)
    K = np.array([[20.0, 0, 20], [0, 20, 5], [0, 0, 1]])
    _, _, _, frame, is_imagined = reconstruct_points(rgb, depth, imagined, K, np.eye(4)[None], drop_edges=False,
                                                     return_sources=True, max_imagined_distance_px=10)
    assert frame.shape[0] == 10 * 10 and bool(is_imagined.all())  # columns 5-14 are within 10 px of column 4
    everything = reconstruct_points(rgb, depth, imagined, K, np.eye(4)[None], drop_edges=False)[0]
    assert everything.shape[0] == 10 * 35
    with pytest.raises(ConfigError, match="max_imagined_distance_px"):
        PipelineConfig(max_imagined_distance_px=-1.0).validate()


class _FarFillBackend(Generator):
    """Observed pixels as rendered; imagined ones (the holes) at 50 m in the left half of the image and at the
    frame's median rendered depth in the right half."""

    name = "far_fill_test"
    uses_references = False

    def generate(self, request: GenerationRequest, generator=None, on_frame=None) -> GeneratedFrames:
        request.check()
        imagined = ~request.cond_mask
        depth = np.array(request.cond_depth, dtype=np.float32)
        for i in range(request.num_frames):
            near = float(np.median(depth[i][request.cond_mask[i]]))
            depth[i][imagined[i]] = near
            depth[i][:, : request.width // 2][imagined[i][:, : request.width // 2]] = 50.0
        return GeneratedFrames(np.array(request.cond_rgb, np.float32), depth, imagined, depth_is_metric=True)


def test_imagined_points_never_go_deeper_than_the_cache_in_their_view(snapshot):
    # issue 15: the real-frame demo cache held points 12.8 m from a camera whose depth reaches 3.5 m
    cfg = _config(memory="ggm", free_space_tolerance=None, max_imagined_distance_px=None, protect_observed=False,
                  drop_depth_edges=False, splat_px=0)
    pipe = ImaginationPipeline(cfg, backend=_FarFillBackend()).initialize(snapshot)
    before = len(pipe.cache)
    [r] = pipe.run(_trajectories(snapshot)[:1])
    imagined = pipe.cache.confidence < 1.0
    assert int(imagined.sum()) > 0 and len(pipe.cache) > before  # the near fills were merged
    T_cam_world = torch.linalg.inv(torch.as_tensor(r.T_world_cam))
    deepest = []  # of the merged imagined points, in each view (the procedural room is a few metres deep)
    for i in range(r.num_frames):
        cam = pipe.cache.xyz[imagined].double() @ T_cam_world[i, :3, :3].T + T_cam_world[i, :3, 3]
        deepest.append(float(cam[:, 2].max()))
    assert max(deepest) < 10.0  # no 50 m fill anywhere
    assert float(pipe.cache.xyz.double().norm(dim=1).max()) < 10.0


def test_adopted_memories_are_kept_by_the_next_snapshot(snapshot, tmp_path):
    """A cache and bank restored from files survive the first snapshot after a restart (issue 14, item 6):
    the snapshot is merged into them, keyframe ids continue, and the old keyframes stay retrievable."""
    from worldstereo_ros.io.cache_files import load_bank_npz, load_cache_npz, save_bank_npz, save_cache_npz

    torch.set_num_threads(1)
    config = PipelineConfig(voxel_size_m=0.02)
    first = ImaginationPipeline(config).initialize(snapshot)
    first.run([Trajectory("a", _path(snapshot.T_world_cam, 6, 0.3, 10.0))])
    save_cache_npz(first.cache, tmp_path / "c.npz")
    save_bank_npz(first.bank, tmp_path / "b.npz")
    before_points, before_ids = len(first.cache), first.bank.ids

    later = ImaginationPipeline(config).adopt_memories(load_cache_npz(tmp_path / "c.npz"),
                                                       load_bank_npz(tmp_path / "b.npz"))
    later.initialize(snapshot, keep_memories=True)
    assert len(later.cache) >= before_points
    # the old keyframes stay; the new snapshot's keyframe continues the ids (pinned: the bank has room)
    assert later.bank.ids == before_ids + [max(before_ids) + 1]
    assert later.bank.pinned_ids == [before_ids[0], max(before_ids) + 1]
    fresh = ImaginationPipeline(config).adopt_memories(load_cache_npz(tmp_path / "c.npz"),
                                                       load_bank_npz(tmp_path / "b.npz")).initialize(snapshot)
    assert len(fresh.cache) < before_points  # without keep_memories a snapshot starts over, as before
    with pytest.raises(InputError, match="cache: voxel size"):
        ImaginationPipeline(PipelineConfig(voxel_size_m=0.05)).adopt_memories(first.cache, first.bank)


def _recorded(on_frames: dict):
    def on_frame(tid, index, rgb, depth, imagined, T, K):
        on_frames.setdefault(tid, {})[index] = (rgb.copy(), depth.copy(), imagined.copy())
    return on_frame


def test_chunked_run_gives_the_same_views_with_bounded_batches(snapshot):
    """chunk_frames: the backend never sees more than chunk_frames views at once, and a backend without
    state across frames (render_fill, temporal=False) gives exactly the unchunked views (issue 14, item 2)."""
    from worldstereo_ros.generation.render_fill import RenderFillGenerator

    torch.set_num_threads(1)
    trajectory = Trajectory("long", _path(snapshot.T_world_cam, 11, 0.6, -20.0))
    seen_sizes: list[int] = []

    class Counting(RenderFillGenerator):
        def generate(self, request, generator=None, on_frame=None):
            seen_sizes.append(request.num_frames)
            return super().generate(request, generator=generator, on_frame=on_frame)

    views = {}
    results = {}
    for chunk in (0, 4):
        seen_sizes.clear()
        frames: dict = {}
        pipeline = ImaginationPipeline(PipelineConfig(voxel_size_m=0.02, chunk_frames=chunk, keep_frames=chunk == 0),
                                       backend=Counting(temporal=False)).initialize(snapshot)
        results[chunk] = pipeline.run([trajectory], on_frame=_recorded(frames))[0]
        views[chunk] = frames["long"]
        assert seen_sizes == ([11] if chunk == 0 else [4, 4, 3])
        results[chunk].keys = set(pipeline.cache.keys.tolist())
    assert sorted(views[4]) == list(range(11))
    for i in range(11):
        for a, b in zip(views[0][i], views[4][i]):
            assert np.array_equal(a, b), f"view {i} differs between the chunked and the unchunked run"
    assert results[4].rgb.shape == (0, H, W, 3)  # keep_frames=False: nothing kept per frame
    assert results[0].rgb.shape == (11, H, W, 3) and results[4].reference_ids == results[0].reference_ids
    # the cache differs only through stage 6: a chunk's points cannot be seen through by the keyframes of
    # later chunks, so the chunked cache keeps every voxel of the unchunked one, and some more
    assert results[0].keys <= results[4].keys
    print(f"cache voxels: unchunked {len(results[0].keys)}, chunks of 4 {len(results[4].keys)}")


def test_a_cancelled_chunked_trajectory_leaves_no_trace(snapshot):
    torch.set_num_threads(1)
    pipeline = ImaginationPipeline(PipelineConfig(voxel_size_m=0.02, chunk_frames=3)).initialize(snapshot)
    before_points, before_ids = len(pipeline.cache), pipeline.bank.ids
    count = [0]

    def stop_in_the_second_chunk() -> bool:
        count[0] += 1
        return count[0] > 5  # polled before the trajectory, then after every frame

    with pytest.raises(Cancelled):
        pipeline.run([Trajectory("t", _path(snapshot.T_world_cam, 9, 0.6, 20.0))],
                     should_cancel=stop_in_the_second_chunk)
    assert len(pipeline.cache) == before_points and pipeline.bank.ids == before_ids


def test_chunk_config_is_validated():
    with pytest.raises(ConfigError, match="chunk_frames"):
        PipelineConfig(chunk_frames=-1).validate()
    with pytest.raises(ConfigError, match="keep_frames: expected a bool"):
        PipelineConfig(keep_frames=1).validate()
