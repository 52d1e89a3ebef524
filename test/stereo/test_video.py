"""Issue 16: the stereo video (flow-propagated disparity, masks and fills) and the frame processor."""

from __future__ import annotations

import numpy as np
import pytest

from worldstereo_ros.errors import ConfigError, InputError
from worldstereo_ros.stereo import synthesize_right
from worldstereo_ros.stereo.processor import StereoProcessor, StereoSettings
from worldstereo_ros.stereo.video import StereoVideo, TemporalConfig, forward_backward_flow, temporal_blend


def _scene(t: int, h: int = 48, w: int = 96):
    """Textured background at disparity 2, a textured near block at disparity 9 sliding right 1 px/frame."""
    rng = np.random.default_rng(1)
    bg = rng.uniform(0.2, 0.8, size=(h, w + 64, 3)).astype(np.float32)
    bg = (bg + np.roll(bg, 1, 1) + np.roll(bg, 1, 0)) / 3  # some spatial correlation for the flow
    left = bg[:, 8 + t: 8 + t + w].copy()  # the camera pans: the background moves left
    disp = np.full((h, w), 2.0, np.float32)
    x0 = 30 + t
    left[12:36, x0:x0 + 16] = np.linspace(0.1, 0.9, 16, dtype=np.float32)[None, :, None]
    disp[12:36, x0:x0 + 16] = 9.0
    return left, disp


def test_per_frame_mode_is_single_frame_synthesis():
    video = StereoVideo(config=TemporalConfig(propagate=False))
    for t in range(3):
        left, disp = _scene(t)
        np.testing.assert_array_equal(video.process(left, disp).right, synthesize_right(left, disp).right)


def test_propagation_is_deterministic_and_keeps_the_current_occlusions():
    runs = []
    for _ in range(2):
        video = StereoVideo()
        views = [video.process(*_scene(t)) for t in range(4)]
        runs.append(views)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a.right, b.right)
    for t, view in enumerate(runs[0]):
        current = synthesize_right(*_scene(t)).occlusion
        assert (view.occlusion | ~current).all()  # the fused mask contains every current occlusion


def test_static_video_repeats_itself_exactly():
    # the same frame twice: the flow is zero, the propagated fill is the previous one and nothing changes
    left, disp = _scene(0)
    video = StereoVideo()
    a, b = video.process(left, disp), video.process(left, disp)
    np.testing.assert_allclose(b.right, a.right, atol=1e-5)


def test_forward_backward_flow_of_a_shift():
    rng = np.random.default_rng(0)
    img = (rng.uniform(0, 255, (64, 96)) // 1).astype(np.uint8)
    img = np.ascontiguousarray(np.clip(img.astype(np.float32), 0, 255).astype(np.uint8))
    import cv2
    img = cv2.GaussianBlur(img, (5, 5), 1.0)
    moved = np.roll(img, 2, axis=1)  # content moves right by 2: pixel x came from x - 2
    flow, trusted = forward_backward_flow(img, moved, "medium")
    inner = trusted[10:-10, 10:-10]
    assert inner.mean() > 0.9
    np.testing.assert_allclose(np.median(flow[10:-10, 10:-10][inner], axis=0), [-2.0, 0.0], atol=0.1)


@pytest.mark.parametrize("kwargs, field", [(dict(fill_memory=1.5), "fill_memory"),
                                           (dict(disparity_memory=1.0), "disparity_memory"),
                                           (dict(flow_preset="slow"), "flow_preset"),
                                           (dict(mask_grow_px=-1), "mask_grow_px"),
                                           (dict(blend=1.0), "blend"),
                                           (dict(blend_colour_tol=0.0), "blend_colour_tol")])
def test_bad_temporal_config(kwargs, field):
    with pytest.raises(InputError, match=field):
        TemporalConfig(**kwargs)


def test_processor_strength_fixes_the_rig_from_the_first_frame():
    K = np.array([[100.0, 0, 48], [0, 100.0, 24], [0, 0, 1]])
    depth = np.where(np.arange(96)[None, :] < 48, 1.0, 3.0).astype(np.float32).repeat(48, 0)
    rgb = np.random.default_rng(0).integers(0, 255, (48, 96, 3), dtype=np.uint8)
    proc = StereoProcessor(StereoSettings(baseline_m=0.0, strength=0.05, temporal=False))
    first = proc.process(rgb, depth, K)
    # disparity range near - far = 0.05 * 96 = 4.8 px
    assert 100.0 * first.rig.baseline_m * (1 / 1.0 - 1 / 3.0) == pytest.approx(4.8, rel=1e-3)
    second = proc.process(rgb, depth * 2, K)
    assert second.rig.baseline_m == first.rig.baseline_m


def test_processor_bad_input_keeps_it_usable():
    K = np.array([[100.0, 0, 16], [0, 100.0, 8], [0, 0, 1]])
    proc = StereoProcessor(StereoSettings(baseline_m=0.1))
    rgb = np.zeros((16, 32, 3), np.uint8)
    with pytest.raises(InputError, match="depth_m"):
        proc.process(rgb, np.ones((16, 31), np.float32), K)
    with pytest.raises(InputError, match="left_disparity"):
        proc.process(rgb, np.zeros((16, 32), np.float32), K)
    assert proc.process(rgb, np.ones((16, 32), np.float32), K).view.right.shape == (16, 32, 3)


def test_bad_settings():
    with pytest.raises(ConfigError, match="strength"):
        StereoSettings(baseline_m=0.0, strength=0.0)
    with pytest.raises(ConfigError, match="baseline_m"):
        StereoSettings(baseline_m=-1.0)


def test_temporal_blend_weights_by_hand():
    cur = np.full((1, 4, 3), 0.5, np.float32)
    prev = np.array([0.54, 0.54, 0.9, np.nan], np.float32)[None, :, None].repeat(3, axis=2)
    trusted = np.array([[True, False, True, True]])
    before = (cur.copy(), prev.copy())
    out = temporal_blend(cur, prev, trusted, blend=0.6, colour_tol=0.08)
    np.testing.assert_array_equal(cur, before[0])  # inputs untouched
    np.testing.assert_array_equal(prev, before[1])
    # pixel 0: difference 0.04 = half the tolerance -> weight 0.6 * 0.5 = 0.3
    np.testing.assert_allclose(out[0, 0], 0.5 + 0.3 * 0.04, atol=1e-6)
    np.testing.assert_array_equal(out[0, 1:], cur[0, 1:])  # untrusted, too different (an edge), no previous value
    assert np.isfinite(out).all()


def _noisy_static(t: int):
    left, disp = _scene(0)
    noise = np.random.default_rng(100 + t).normal(0.0, 0.02, left.shape).astype(np.float32)
    return np.clip(left + noise, 0.0, 1.0), disp


def test_recurrent_filter_removes_most_input_flicker():
    # a still camera whose sensor noise differs per frame: the per-frame right view flickers with it,
    # the filtered one much less (frame-to-frame difference on interior pixels, the flow is zero)
    diffs = {}
    for propagate in (False, True):
        video = StereoVideo(config=TemporalConfig(propagate=propagate))
        views = [video.process(*_noisy_static(t)) for t in range(8)]
        diffs[propagate] = np.mean([np.abs(b.right - a.right)[8:-8, 16:-16].mean() for a, b in zip(views, views[1:])])
    assert diffs[True] < 0.6 * diffs[False]


def test_recurrent_filter_does_not_ghost_a_moving_block():
    # the near block slides 1 px/frame over the background: its trailing edge must not keep old colours
    video = StereoVideo()
    views = [video.process(*_scene(t)) for t in range(6)]
    truth = synthesize_right(*_scene(5))
    covered = ~truth.occlusion
    assert np.abs(views[-1].right - truth.right)[covered].mean() < 0.02
