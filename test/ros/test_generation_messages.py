"""GenerationRequest / GeneratedFrames <-> Generate action messages round trip without DDS (issue 14 item 7)."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch

pytest.importorskip("worldstereo_ros.action", reason="interfaces not generated (run scripts/setup.sh)")

from worldstereo_ros.action import Generate  # noqa: E402
from worldstereo_ros.errors import ConversionError  # noqa: E402
from worldstereo_ros.generation.base import GeneratedFrames, GenerationRequest  # noqa: E402
from worldstereo_ros.memory.types import Reference  # noqa: E402
from worldstereo_ros.ros.conversions.generation import (  # noqa: E402
    feedback_to_frame,
    frame_to_feedback,
    frames_to_result,
    goal_to_request,
    quantise_rgb,
    request_to_goal,
    result_to_frames,
    step_to_feedback,
)
from worldstereo_ros.snapshot import Snapshot  # noqa: E402

N, H, W = 3, 4, 5


def sample_request(panorama: bool = False, start: bool = True) -> GenerationRequest:
    rng = np.random.default_rng(7)
    K = np.array([[50.0, 0.0, 2.0], [0.0, 51.0, 1.5], [0.0, 0.0, 1.0]])
    T = np.repeat(np.eye(4)[None], N, axis=0)
    T[:, 0, 3] = [0.0, 0.1, 0.2 + 1e-12]  # a value float32 would lose
    mask = rng.random((N, H, W)) > 0.4
    index = np.where(mask, rng.integers(0, 2**31 - 1, (N, H, W)), -1).astype(np.int64)
    kf = Reference(rgb=rng.random((H, W, 3), dtype=np.float32), depth=rng.random((H, W), dtype=np.float32) + 1,
                   pointmap=rng.standard_normal((H, W, 3)).astype(np.float32), K=K, T_world_cam=np.eye(4),
                   score=0.75, keyframe_id=4)
    other = Reference(rgb=kf.rgb[::-1].copy(), depth=kf.depth.copy(), pointmap=kf.pointmap.copy(), K=K,
                      T_world_cam=np.eye(4), score=0.125, keyframe_id=9)
    same_kf_other_score = Reference(**{**kf.__dict__, "score": 0.5})
    sw = 2 * H if panorama else W  # a panorama is equirectangular; the source's size need not be the targets'
    source = Snapshot.create(rng.random((H, sw, 3), dtype=np.float32), rng.random((H, sw), dtype=np.float32),
                             None if panorama else K, T[0], stamp_ns=123456789012, frame_id="cam_optical",
                             depth_is_metric=False)
    return GenerationRequest(K=np.repeat(K[None], N, axis=0), T_world_cam=T, height=H, width=W,
                             cond_rgb=rng.random((N, H, W, 3), dtype=np.float32),
                             cond_depth=np.where(mask, rng.random((N, H, W), dtype=np.float32), 0),
                             cond_mask=mask, cond_index=index, references=[[kf, other], [], [same_kf_other_score]],
                             source=source, trajectory_id="left_aisle", prompt="a kitchen",
                             start_rgb=rng.random((H, W, 3), dtype=np.float32) if start else None)


def assert_requests_equal(a: GenerationRequest, b: GenerationRequest) -> None:
    for name in ("K", "T_world_cam", "cond_rgb", "cond_depth", "cond_mask", "cond_index"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert (a.height, a.width, a.trajectory_id, a.prompt) == (b.height, b.width, b.trajectory_id, b.prompt)
    assert [len(r) for r in a.references] == [len(r) for r in b.references]
    for ra, rb in zip(sum(a.references, []), sum(b.references, [])):
        assert (ra.keyframe_id, ra.score) == (rb.keyframe_id, rb.score)
        for name in ("rgb", "depth", "pointmap", "K", "T_world_cam"):
            assert np.array_equal(getattr(ra, name), getattr(rb, name)), name
    sa, sb = a.source, b.source
    assert (sa.stamp_ns, sa.frame_id, sa.depth_is_metric) == (sb.stamp_ns, sb.frame_id, sb.depth_is_metric)
    assert np.array_equal(sa.rgb, sb.rgb) and np.array_equal(sa.depth, sb.depth)
    assert np.array_equal(sa.T_world_cam, sb.T_world_cam)
    assert (sa.K is None and sb.K is None) or np.array_equal(sa.K, sb.K)
    assert (a.start_rgb is None) == (b.start_rgb is None)
    if a.start_rgb is not None:
        assert np.array_equal(a.start_rgb, b.start_rgb)


@pytest.mark.parametrize("panorama,start", [(False, True), (True, False)])
def test_request_round_trip_is_exact_with_float_colour(panorama, start):
    request = sample_request(panorama, start)
    before = copy.deepcopy(request)
    goal = request_to_goal(request, rgb_encoding="32FC3")
    assert_requests_equal(request, before)  # the input is not changed
    assert len(goal.reference_views) == 2  # keyframe 4 travels once although two frames use it
    assert list(goal.reference_frame) == [0, 0, 2] and list(goal.reference_view) == [0, 1, 0]
    back, generator = goal_to_request(goal)
    assert generator is None
    assert_requests_equal(request, back)
    back.cond_rgb[0, 0, 0, 0] = 2.0  # a backend may write into its inputs: they are copies, not the message
    assert goal_to_request(goal)[0].cond_rgb[0, 0, 0, 0] == request.cond_rgb[0, 0, 0, 0]


def test_rgb8_rounds_every_colour_to_the_nearest_255th():
    request = sample_request()
    back, _ = goal_to_request(request_to_goal(request, rgb_encoding="rgb8"))
    assert np.array_equal(back.cond_rgb, quantise_rgb(request.cond_rgb))
    assert np.array_equal(back.start_rgb, quantise_rgb(request.start_rgb))
    assert np.array_equal(back.references[0][0].rgb, quantise_rgb(request.references[0][0].rgb))
    assert np.abs(back.cond_rgb - request.cond_rgb).max() <= 0.5 / 255 + 1e-7
    assert np.array_equal(back.cond_depth, request.cond_depth)  # depth stays float either way
    assert np.array_equal(quantise_rgb(np.array([0.0, 0.5, 1.0, 1.5])) * 255, [0, 128, 255, 255])


def test_generator_state_travels_so_the_remote_draws_the_same_numbers():
    generator = torch.Generator().manual_seed(11)
    torch.rand(3, generator=generator)  # not a fresh state: the seed alone would not reproduce it
    goal = request_to_goal(sample_request(), generator)
    _, remote = goal_to_request(goal)
    assert torch.equal(torch.rand(5, generator=remote), torch.rand(5, generator=generator))
    goal.generator_state = [1, 2, 3]
    with pytest.raises(ConversionError, match="generator_state"):
        goal_to_request(goal)


def test_frames_round_trip_through_feedback_and_result():
    rng = np.random.default_rng(3)
    rgb = rng.random((N, H, W, 3), dtype=np.float32)
    depth = rng.random((N, H, W), dtype=np.float32)
    imagined = rng.random((N, H, W)) > 0.5
    conf = rng.random((N, H, W), dtype=np.float32)
    frames = GeneratedFrames(rgb, depth, imagined, depth_is_metric=False, timings_s={"fill": 0.25, "scan": 1.5},
                             confidence=conf)
    got = [feedback_to_frame(frame_to_feedback(i, N, rgb[i], depth[i], imagined[i], "32FC3"), H, W)
           for i in range(N)]
    assert [g[0] for g in got] == [0, 1, 2]
    stacked = [np.stack([g[k] for g in got]) for k in (1, 2, 3)]
    back = result_to_frames(frames_to_result(frames), *stacked)
    assert np.array_equal(back.rgb, rgb) and np.array_equal(back.depth, depth)
    assert back.imagined.dtype == bool and np.array_equal(back.imagined, imagined)
    assert np.array_equal(back.confidence, conf)
    assert back.depth_is_metric is False and back.timings_s == {"fill": 0.25, "scan": 1.5}
    no_conf = result_to_frames(frames_to_result(GeneratedFrames(rgb, depth, imagined)), *stacked)
    assert no_conf.confidence is None and no_conf.depth_is_metric is True


def test_bad_goals_name_the_field():
    goal = request_to_goal(sample_request())
    cases = {
        "cond_depth": lambda g: g.cond_depth.pop(),
        "k": lambda g: setattr(g, "k", list(g.k)[:-1]),
        "rgb_encoding": lambda g: setattr(g, "rgb_encoding", "bgr8"),
        "reference_view": lambda g: setattr(g, "reference_view", [0, 5, 0]),
        "reference_frame": lambda g: setattr(g, "reference_score", [0.5]),
        "cond_index[1].encoding": lambda g: g.cond_index.__setitem__(1, g.cond_depth[1]),
        "cond_rgb[2]": lambda g: setattr(g.cond_rgb[2], "width", W + 1),
        "source_k": lambda g: setattr(g, "source_k", [1.0] * 4),
    }
    for field, spoil in cases.items():
        bad = copy.deepcopy(goal)
        spoil(bad)
        with pytest.raises(ConversionError, match="^" + re.escape(field)):
            goal_to_request(bad)
    with pytest.raises(ConversionError, match="rgb_encoding"):
        request_to_goal(sample_request(), rgb_encoding="jpeg")


def test_bad_feedback_and_results_are_refused():
    with pytest.raises(ConversionError, match="has_frame"):
        feedback_to_frame(step_to_feedback(2, 8), H, W)
    fb = frame_to_feedback(0, N, np.zeros((H, W, 3), np.float32), np.zeros((H, W), np.float32),
                           np.zeros((H, W), bool), "rgb8")
    with pytest.raises(ConversionError, match="^rgb"):
        feedback_to_frame(fb, H + 1, W)
    frames = GeneratedFrames(np.zeros((N, H, W, 3), np.float32), np.zeros((N, H, W), np.float32),
                             np.zeros((N, H, W), bool))
    result = frames_to_result(frames)
    with pytest.raises(ConversionError, match="frame_count"):
        result_to_frames(result, frames.rgb[:2], frames.depth[:2], frames.imagined[:2])
    assert isinstance(result, Generate.Result) and result.success
