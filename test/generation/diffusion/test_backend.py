"""The ``worldstereo`` backend on a tiny random release: registry, lifecycle, determinism, chunks (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import ConfigError
from worldstereo_ros.generation.base import GenerationCancelled, GenerationRequest, Reference, create_backend


def _request(n: int, h: int = 30, w: int = 40, refs: bool = False, seed: int = 0) -> GenerationRequest:
    rng = np.random.default_rng(seed)
    K = np.array([[30.0, 0, 19.5], [0, 30, 14.5], [0, 0, 1]])
    T = np.repeat(np.eye(4)[None], n, 0)
    T[:, 0, 3] = np.linspace(0, 0.3, n)
    mask = np.zeros((n, h, w), bool)
    mask[:, :, :25] = True
    references = [[] for _ in range(n)]
    if refs:
        for i in range(1, n):
            references[i] = [Reference(rgb=rng.random((h, w, 3), dtype=np.float32), depth=np.ones((h, w), np.float32),
                                       pointmap=np.zeros((h, w, 3), np.float32), K=K, T_world_cam=T[i], score=0.5,
                                       keyframe_id=i % 2)]
    return GenerationRequest(K=np.repeat(K[None], n, 0), T_world_cam=T, height=h, width=w,
                             cond_rgb=rng.random((n, h, w, 3), dtype=np.float32),
                             cond_depth=np.where(mask, 2.0, 0).astype(np.float32), cond_mask=mask,
                             cond_index=np.where(mask, 1, -1), references=references, source=None)


@pytest.fixture(scope="module")
def dmd(tiny_release):
    backend = create_backend("worldstereo", model_path=str(tiny_release))
    backend.warmup()
    yield backend
    backend.close()


def test_dmd_backend_is_deterministic_and_reports_progress(dmd):
    req = _request(3, refs=True)
    steps, frames = [], []
    dmd.on_step = lambda s, t: steps.append((s, t))
    out = dmd.generate(req, torch.Generator().manual_seed(0), on_frame=lambda i, *_: frames.append(i))
    dmd.on_step = None
    assert out.rgb.shape == (3, 30, 40, 3) and out.rgb.dtype == np.float32
    assert 0 <= out.rgb.min() and out.rgb.max() <= 1
    assert np.array_equal(out.imagined, ~req.cond_mask)
    assert np.allclose(out.depth[req.cond_mask], 2.0) and (out.depth > 0).all()  # completed where not covered
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)] and frames == [0, 1, 2]
    again = dmd.generate(req, torch.Generator().manual_seed(0))
    assert np.array_equal(again.rgb, out.rgb)
    other = dmd.generate(req, torch.Generator().manual_seed(1))
    assert not np.array_equal(other.rgb, out.rgb)


def test_long_paths_run_in_chained_chunks(dmd):
    req = _request(7)  # nframe 5: chunks [0..4], [4..6]
    steps, frames = [], []
    dmd.on_step = lambda s, t: steps.append((s, t))
    out = dmd.generate(req, torch.Generator().manual_seed(0), on_frame=lambda i, *_: frames.append(i))
    dmd.on_step = None
    assert frames == list(range(7)) and steps[-1] == (8, 8)
    assert out.rgb.shape == (7, 30, 40, 3)


def test_cancel_stops_between_steps(dmd):
    dmd.should_cancel = lambda: True
    try:
        with pytest.raises(GenerationCancelled):
            dmd.generate(_request(2), torch.Generator().manual_seed(0))
    finally:
        dmd.should_cancel = None


def test_camera_variant_uses_cfg(tiny_release):
    backend = create_backend("worldstereo", model_path=str(tiny_release), variant="camera", steps=2)
    assert not backend.uses_references and backend.capabilities.frame_rule == "chunks:5"
    backend.warmup()
    calls = []
    model = backend._parts["transformer"]
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    out = backend.generate(_request(2), torch.Generator().manual_seed(0))
    handle.remove()
    assert len(calls) == 4  # 2 steps x (positive + negative prompt)
    assert out.rgb.shape == (2, 30, 40, 3)
    backend.close()
    assert backend._parts is None


def test_options_are_checked(tiny_release):
    with pytest.raises(ConfigError, match="model_path: expected a folder"):
        create_backend("worldstereo", model_path="/nonexistent")
    with pytest.raises(ConfigError, match="variant: expected one of camera, memory, memory-dmd"):
        create_backend("worldstereo", model_path=str(tiny_release), variant="big")
    with pytest.raises(ConfigError, match="offload: .* device is cpu"):
        create_backend("worldstereo", model_path=str(tiny_release), offload="group")
    with pytest.raises(ConfigError, match="colour: unknown option of the worldstereo backend"):
        create_backend("worldstereo", model_path=str(tiny_release), colour=1)
    est = create_backend("worldstereo", model_path=str(tiny_release)).memory_estimate()
    assert est.weights_bytes > 0 and "memory-dmd" in est.notes


def test_estimator_depth_is_aligned_and_goes_through_sim3(tiny_release, tmp_path):
    from worldstereo_ros.datasets.procedural_scene import procedural_snapshot
    from worldstereo_ros.generation.diffusion.tiny import write_tiny_depth_model
    from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig, Trajectory

    depth_model = write_tiny_depth_model(tmp_path / "depth")
    with pytest.raises(ConfigError, match="depth_model_path: depth='estimator' needs"):
        create_backend("worldstereo", model_path=str(tiny_release), depth="estimator")
    backend = create_backend("worldstereo", model_path=str(tiny_release), depth="estimator",
                             depth_model_path=str(depth_model))
    req = _request(3)
    out = backend.generate(req, torch.Generator().manual_seed(0))
    assert not out.depth_is_metric and (out.depth > 0).all()
    # Aligned on the covered pixels (cache depth 2 m there).
    assert abs(np.median(out.depth[req.cond_mask]) - 2.0) < 0.5
    snap = procedural_snapshot(40, 30)
    pipeline = ImaginationPipeline(PipelineConfig(backend="worldstereo", memory="ggm+ssm"), backend=backend)
    pipeline.initialize(snap)
    poses = np.repeat(snap.T_world_cam[None], 3, 0)
    poses[:, 0, 3] += [0.0, 0.05, 0.1]
    calls = []
    align = pipeline._align
    pipeline._align = lambda *a, **k: calls.append(1) or align(*a, **k)
    results = pipeline.run([Trajectory("t", poses)])
    assert len(results) == 1 and calls == [1]  # the pipeline's Sim(3) alignment ran on the estimator depth
    backend.close()


def test_pipeline_passes_the_snapshot_image_as_start_frame():
    from worldstereo_ros.datasets.procedural_scene import procedural_snapshot
    from worldstereo_ros.generation.base import GeneratedFrames, Generator
    from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig, Trajectory

    seen = []

    class Spy(Generator):
        name = "spy"

        def generate(self, request, generator=None, on_frame=None):
            seen.append(request.start_rgb)
            return GeneratedFrames(rgb=request.cond_rgb, depth=np.where(request.cond_mask, request.cond_depth, 1.0),
                                   imagined=~request.cond_mask)

    snap = procedural_snapshot(40, 30)
    pipeline = ImaginationPipeline(PipelineConfig(memory="ggm"), backend=Spy()).initialize(snap)
    from_snapshot = np.repeat(snap.T_world_cam[None], 2, 0)
    from_snapshot[1, 0, 3] += 0.05
    elsewhere = from_snapshot.copy()
    elsewhere[:, 1, 3] += 0.1
    pipeline.run([Trajectory("a", from_snapshot), Trajectory("b", elsewhere)])
    assert np.array_equal(seen[0], snap.rgb) and seen[1] is None


def test_fp8_storage_halves_weight_bytes_and_still_runs(tiny_release, dmd):
    backend = create_backend("worldstereo", model_path=str(tiny_release), fp8_storage=True)
    backend.warmup()
    model = backend._parts["transformer"]
    stored = {p.dtype for n, p in model.named_parameters() if n.startswith("blocks.0.ffn")}
    assert stored == {torch.float8_e4m3fn}
    req = _request(2)
    out = backend.generate(req, torch.Generator().manual_seed(0))
    ref = dmd.generate(req, torch.Generator().manual_seed(0))
    assert np.isfinite(out.rgb).all() and not np.array_equal(out.rgb, ref.rgb)
    assert np.abs(out.rgb - ref.rgb).mean() < 0.1
    backend.close()


def test_pipeline_progress_moves_during_steps_and_cancel_stops_them(dmd):
    from worldstereo_ros.datasets.procedural_scene import procedural_snapshot
    from worldstereo_ros.pipeline import Cancelled, ImaginationPipeline, PipelineConfig, Trajectory

    snap = procedural_snapshot(40, 30)
    poses = np.repeat(snap.T_world_cam[None], 4, 0)
    poses[:, 0, 3] += [0.0, 0.03, 0.06, 0.09]
    pipeline = ImaginationPipeline(PipelineConfig(backend="worldstereo"), backend=dmd).initialize(snap)
    seen = []
    pipeline.run([Trajectory("t", poses)], progress=lambda p: seen.append((p.stage, p.frame_index)))
    during = [f for stage, f in seen if stage == "generate"]
    assert during[:5] == [0, 1, 2, 3, 3]  # 4 denoising steps move the feedback before any frame is final
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(Cancelled, match="cancelled before denoising step"):
        pipeline.run([Trajectory("u", poses)], should_cancel=cancel)
    assert dmd.on_step is None and dmd.should_cancel is None  # the pipeline removed its hooks


def test_backends_with_the_same_settings_share_one_load(tiny_release):
    a = create_backend("worldstereo", model_path=str(tiny_release), variant="camera")
    b = create_backend("worldstereo", model_path=str(tiny_release), variant="camera", steps=3)
    a.warmup()
    b.warmup()
    assert b._parts is a._parts
    a.close()
    c = create_backend("worldstereo", model_path=str(tiny_release), variant="camera")
    c.warmup()
    assert c._parts is not b._parts  # close() dropped the shared entry: a fresh load
    b.close()
    c.close()
