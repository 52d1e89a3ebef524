"""The ``learned`` backend: arbitrary requests, the pipeline's confidence-gated merge, the CLI, the shipped file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from worldstereo_ros.datasets.procedural_scene import procedural_snapshot
from worldstereo_ros.errors import BackendError, InputError
from worldstereo_ros.generation.base import (
    GeneratedFrames,
    GenerationRequest,
    Generator,
    Reference,
    available_backends,
    create_backend,
)
from worldstereo_ros.generation.learned.model import FillNet
from worldstereo_ros.generation.learned.weights import SHIPPED_WEIGHTS, load_model, save_model, sha256
from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig, Trajectory
from worldstereo_ros.snapshot import Snapshot

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[3]
H, W = 48, 64
K = np.array([[50.0, 0.0, (W - 1) / 2], [0.0, 50.0, (H - 1) / 2], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model(FillNet(widths=(8, 8, 8, 8), fine=4), tmp_path_factory.mktemp("w") / "tiny.safetensors")


def _request(n: int = 2, with_reference: bool = True) -> GenerationRequest:
    """A far wall at 4 m (stripes) seen by n cameras; a vertical band of each view is a hole."""
    rng = np.random.default_rng(0)
    v, u = np.mgrid[0:H, 0:W]
    rgb = np.stack([0.5 + 0.4 * np.sin(u / 3.0), 0.5 + 0.3 * np.cos(v / 4.0), np.full((H, W), 0.6)], -1)
    rgb = np.clip(rgb + rng.normal(0, 0.01, rgb.shape), 0, 1).astype(np.float32)
    depth = np.full((H, W), 4.0, np.float32)
    mask = np.ones((n, H, W), bool)
    mask[:, :, 30:44] = False
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, 0, 3] = np.arange(n) * 0.05
    refs: list[list[Reference]] = [[] for _ in range(n)]
    if with_reference:
        z = depth
        pointmap = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1).astype(np.float32)
        refs[0] = [Reference(rgb=rgb, depth=depth, pointmap=pointmap, K=K.copy(), T_world_cam=np.eye(4), score=1.0,
                             keyframe_id=7)]
    return GenerationRequest(K=np.tile(K, (n, 1, 1)), T_world_cam=T, height=H, width=W,
                             cond_rgb=np.where(mask[..., None], rgb, 0.0).astype(np.float32),
                             cond_depth=np.where(mask, depth, 0.0).astype(np.float32), cond_mask=mask,
                             cond_index=np.where(mask, 0, -1).astype(np.int64), references=refs,
                             source=Snapshot.create(rgb, depth, K, np.eye(4)), trajectory_id="t")


def test_registered_beside_render_fill():
    assert {"learned", "render_fill"} <= set(available_backends())


def test_generate_shapes_pass_through_and_confidence(tiny_weights):
    backend = create_backend("learned", model_path=tiny_weights, reference_detail=False)
    request = _request()
    seen = []
    frames = backend.generate(request, on_frame=lambda i, *a: seen.append(i))
    assert seen == [0, 1]
    assert frames.rgb.shape == (2, H, W, 3) and frames.depth.shape == (2, H, W)
    assert frames.confidence is not None and frames.confidence.shape == (2, H, W)
    assert frames.confidence.dtype == np.float32
    assert np.array_equal(frames.imagined, ~request.cond_mask)
    observed = request.cond_mask
    assert np.array_equal(frames.rgb[observed], request.cond_rgb[observed])  # bit for bit
    assert np.array_equal(frames.depth[observed], request.cond_depth[observed])
    assert np.all(frames.confidence[observed] == 1.0)
    assert 0.0 <= frames.confidence.min() and frames.confidence.max() <= 1.0
    # imagined depth never leaves the range the memories hold nearby (only 4 m here)
    d = frames.depth[~observed]
    assert np.all((d == 0.0) | (np.abs(d - 4.0) < 1e-5))
    assert frames.depth_is_metric


def test_options_are_checked(tiny_weights):
    with pytest.raises(InputError, match="unknown option"):
        create_backend("learned", model_path=tiny_weights, colour_fill="inpaint")
    with pytest.raises(InputError, match="support_window_px"):
        create_backend("learned", model_path=tiny_weights, support_window_px=2)
    with pytest.raises(BackendError, match="nowhere.safetensors"):
        create_backend("learned", model_path="/nowhere.safetensors")


def test_bad_request_names_the_field(tiny_weights):
    request = _request()
    request.cond_depth = request.cond_depth[:, :10]
    with pytest.raises(InputError, match="cond_depth"):
        create_backend("learned", model_path=tiny_weights).generate(request)


class _Constant(Generator):
    """Fills every hole with grey at 3 m and a fixed confidence (to test the pipeline's merge gate)."""

    name = "constant_for_test"

    def __init__(self, confidence: float):
        self.confidence = confidence

    def generate(self, request, generator=None, on_frame=None):
        imagined = ~request.cond_mask
        rgb = np.where(imagined[..., None], 0.5, request.cond_rgb).astype(np.float32)
        depth = np.where(imagined, 3.0, request.cond_depth).astype(np.float32)
        return GeneratedFrames(rgb=rgb, depth=depth, imagined=imagined,
                               confidence=np.full(imagined.shape, self.confidence, np.float32))


def _path(T0: np.ndarray, n: int, dx: float) -> np.ndarray:
    out = np.tile(T0, (n, 1, 1))
    for i in range(n):
        step = np.eye(4)
        step[0, 3] = dx * (i + 1) / n
        out[i] = T0 @ step
    return out


@pytest.fixture(scope="module")
def snapshot():
    return procedural_snapshot(W, H, spacing_m=0.02)


def test_pipeline_merges_only_confident_imagined_points(snapshot):
    sizes, keyframe_points = {}, {}
    for conf in (0.2, 0.9):
        pipe = ImaginationPipeline(PipelineConfig(voxel_size_m=0.04, keyframe_stride=1),
                                   backend=_Constant(conf)).initialize(snapshot)
        before = len(pipe.cache)
        [run] = pipe.run([Trajectory("right", _path(snapshot.T_world_cam, 3, 0.6))])
        sizes[conf] = len(pipe.cache) - before
        # the keyframes are evidence for later views too: they hold the unsure imagined pixels without depth
        last = list(pipe.bank)[-1]
        keyframe_points[conf] = int((last.depth[run.imagined[-1]] > 0).sum())
    assert sizes[0.2] == 0 and sizes[0.9] > 0
    assert keyframe_points[0.2] == 0 and keyframe_points[0.9] > 0


def test_backend_through_the_pipeline(snapshot, tiny_weights):
    cfg = PipelineConfig(backend="learned", backend_options={"model_path": str(tiny_weights)}, voxel_size_m=0.04,
                         keyframe_stride=1)
    pipe = ImaginationPipeline(cfg).initialize(snapshot)
    runs = pipe.run([Trajectory("right", _path(snapshot.T_world_cam, 3, 0.4)),
                     Trajectory("left", _path(snapshot.T_world_cam, 3, -0.4))])
    assert [r.rgb.shape for r in runs] == [(3, H, W, 3)] * 2
    assert all(r.imagined.any() for r in runs)
    assert runs[1].reference_ids and any(runs[1].reference_ids)  # the second path retrieved keyframes


def test_shipped_weights_load_and_match_the_model_card():
    assert SHIPPED_WEIGHTS.is_file(), f"{SHIPPED_WEIGHTS} is not shipped"
    assert SHIPPED_WEIGHTS.stat().st_size <= 8 * 1024 * 1024
    model = load_model()  # raises on any missing or unexpected key
    from safetensors.torch import load_file

    assert set(load_file(str(SHIPPED_WEIGHTS))) == set(model.state_dict())
    card = (REPO / "docs" / "learned-generator.md").read_text()
    listed = re.search(r"sha256[^0-9a-f]*([0-9a-f]{64})", card)
    assert listed is not None, "docs/learned-generator.md lists no sha256"
    assert listed.group(1) == sha256(SHIPPED_WEIGHTS)


def test_cli_train_and_imagine_with_the_learned_backend(tmp_path):
    from worldstereo_ros.cli import main as cli_main

    assert cli_main(["train", "--rooms", "2", "--steps", "2", "--batch-size", "2", "--crop", "32x32",
                     "--room-size", "64x96", "--epoch-steps", "2", "--log-every", "1", "--threads", "1",
                     "--no-progress", "--out", str(tmp_path / "train")]) == 0
    assert (tmp_path / "train" / "model.safetensors").is_file()
    assert cli_main(["demo", "--backend", "learned", "--size", "64x48", "--frames", "2", "--trajectories", "right:0.3",
                     "--skip", "videos,contact_sheet,cache_ply,poses,colmap,mesh", "--no-progress",
                     "--out", str(tmp_path / "demo")]) == 0
    assert (tmp_path / "demo" / "frames" / "right").is_dir()


def test_no_other_large_binary_in_the_package():
    big = [p for p in (REPO / "worldstereo_ros").rglob("*")
           if p.is_file() and p.stat().st_size > 2 * 1024 * 1024 and p != SHIPPED_WEIGHTS]
    assert not big, big


def test_frame_without_holes_is_the_cache_render(tiny_weights):
    request = _request(n=1)
    request.cond_mask[:] = True
    request.cond_rgb[:] = 0.25
    request.cond_depth[:] = 2.0
    frames = create_backend("learned", model_path=tiny_weights).generate(request)
    assert not frames.imagined.any() and np.all(frames.rgb == 0.25) and np.all(frames.depth == 2.0)
    assert np.all(frames.confidence == 1.0)


def test_reference_detail_replaces_observed_colours_only_where_a_reference_sees_them(tiny_weights):
    request = _request(n=2)
    sharp = request.references[0][0].rgb
    request.cond_rgb[:] = np.where(request.cond_mask[..., None], 0.5, 0.0)  # a flat, voxel-averaged cache
    frames = create_backend("learned", model_path=tiny_weights).generate(request)
    observed = request.cond_mask[0]
    # frame 0 has the reference at its own pose: its observed pixels take the reference's colours
    np.testing.assert_allclose(frames.rgb[0][observed], sharp[observed], atol=1e-5)
    # frame 1 has no reference: the cache render passes through
    assert np.all(frames.rgb[1][request.cond_mask[1]] == 0.5)


def test_carried_pixels_land_on_their_world_points():
    from worldstereo_ros.generation.learned.backend import LearnedGenerator

    T = np.eye(4)
    T[:3, 3] = (1.0, 2.0, 3.0)
    xyz, colours = LearnedGenerator._carry(np.array([[1.0, 0.5, 0.25]], np.float32), np.array([2.0], np.float32),
                                           np.array([10]), np.array([20]), K, T)
    # pixel (u=20, v=10) at 2 m: x = (20 - 31.5) / 50 * 2, y = (10 - 23.5) / 50 * 2, then shifted by the pose
    np.testing.assert_allclose(xyz, [[1.0 + (20 - 31.5) / 25.0, 2.0 + (10 - 23.5) / 25.0, 5.0]], atol=1e-6)
    np.testing.assert_allclose(colours, [[1.0, 0.5, 0.25]])


def _partly_seen_request() -> GenerationRequest:
    """Two frames with the hole band of ``_request``; frame 0's reference is a wall at 3.5 m that covers only
    columns 30-35 of the hole; frame 1 has no reference (only the carry from frame 0 can reach it)."""
    request = _request(n=2, with_reference=False)
    v, u = np.mgrid[0:H, 0:W]
    z = np.where((u >= 30) & (u < 36), 3.5, 0.0).astype(np.float32)
    pointmap = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1).astype(np.float32)
    rgb = np.full((H, W, 3), 0.25, np.float32)
    request.references[0] = [Reference(rgb=rgb, depth=z, pointmap=pointmap, K=K.copy(), T_world_cam=np.eye(4),
                                       score=1.0, keyframe_id=3)]
    return request


def test_only_reference_seen_pixels_are_confident_and_take_the_reference_depth(tiny_weights):
    """Issue 12 geometry: an imagined pixel counts as evidence for the cache (confidence > 0) only where a retrieved
    reference sees it, and its depth is then the reference's measurement; the temporal carry (the model's own
    earlier guess) and unseen pixels get confidence 0, so a guess can never confirm itself along a path."""
    request = _partly_seen_request()
    frames = create_backend("learned", model_path=tiny_weights, reference_detail=False,
                            temporal_min_confidence=0.0).generate(request)
    seen = np.zeros((H, W), bool)  # the reference's columns, less the one-pixel splat at its edges
    seen[:, 31:35] = True
    unseen = np.zeros((H, W), bool)
    unseen[:, 38:] = True
    hole = ~request.cond_mask[0]
    assert np.all(frames.confidence[0][hole & unseen] == 0.0)
    assert np.all(frames.confidence[0][hole & seen] > 0.0)
    np.testing.assert_allclose(frames.depth[0][hole & seen], 3.5, rtol=1e-6)
    # frame 1 has no reference: whatever the carry drew there, nothing imagined is confident
    assert np.all(frames.confidence[1][~request.cond_mask[1]] == 0.0)
    # without reference_depth the network's (clamped) estimate stays
    own = create_backend("learned", model_path=tiny_weights, reference_detail=False,
                         reference_depth=False).generate(request)
    assert not np.allclose(own.depth[0][hole & seen], 3.5)
    with pytest.raises(InputError, match="reference_depth"):
        create_backend("learned", model_path=tiny_weights, reference_depth=1)
    # the seen pixels' confidence: 1 by default (their depth is a measurement), the network's own on request
    assert np.all(frames.confidence[0][hole & seen] == 1.0)
    net = create_backend("learned", model_path=tiny_weights, reference_detail=False, temporal_min_confidence=0.0,
                         reference_confidence=None).generate(request)
    assert np.all(net.confidence[0][hole & unseen] == 0.0)
    assert 0.0 < net.confidence[0][hole & seen].min() and net.confidence[0][hole & seen].max() < 1.0
    # with agreement the network's depth must meet the reference's (3.5 m): a tiny random net's does not
    strict = create_backend("learned", model_path=tiny_weights, reference_detail=False, reference_depth=False,
                            agreement=0.01).generate(request)
    agree = np.abs(strict.depth[0] - 3.5) <= 0.035
    assert np.all(strict.confidence[0][hole & seen & ~agree] == 0.0)
    for name, value in (("reference_confidence", 1.5), ("agreement", 0.0), ("agreement", True)):
        with pytest.raises(InputError, match=name):
            create_backend("learned", model_path=tiny_weights, **{name: value})


def test_network_sees_the_render_and_the_output_the_detail(tiny_weights):
    """With reference_detail the observed output pixels take the references' colours, but by default the network
    is conditioned on the cache render's own colours (as in training): the hole fill equals the one without
    reference_detail, while detail_to_network=True changes it."""
    request = _request(n=1)
    request.references[0][0].rgb = np.full((H, W, 3), 0.9, np.float32)  # a reference that disagrees with the render
    plain = create_backend("learned", model_path=tiny_weights, reference_detail=False).generate(request)
    detail = create_backend("learned", model_path=tiny_weights).generate(request)
    to_net = create_backend("learned", model_path=tiny_weights, detail_to_network=True).generate(request)
    hole = ~request.cond_mask[0]
    assert np.allclose(detail.rgb[0][~hole], 0.9, atol=1e-5)  # observed pixels: the reference's colours
    np.testing.assert_allclose(detail.rgb[0][hole], plain.rgb[0][hole], atol=1e-6)
    assert not np.allclose(to_net.rgb[0][hole], plain.rgb[0][hole], atol=1e-4)


def test_prefetching_the_condition_changes_no_output(tiny_weights):
    request = _request(n=4)
    request.references = [request.references[0]] * 4  # every frame has a reference: detail, prior and carry run
    outputs = [create_backend("learned", model_path=tiny_weights, prefetch=prefetch).generate(request)
               for prefetch in (False, True)]
    for name in ("rgb", "depth", "confidence"):
        assert np.array_equal(getattr(outputs[0], name), getattr(outputs[1], name)), name
    assert set(outputs[1].timings_s) == {"condition", "network"}


def test_an_error_in_a_prefetched_frame_reaches_the_caller(tiny_weights):
    request = _request(n=3)
    bad = request.references[0][0]
    request.references[2] = [Reference(rgb=bad.rgb[:10], depth=bad.depth, pointmap=bad.pointmap, K=bad.K,
                                       T_world_cam=bad.T_world_cam, score=1.0, keyframe_id=9)]
    with pytest.raises(InputError, match="keyframe 9"):
        create_backend("learned", model_path=tiny_weights, reference_detail=False).generate(request)
