"""Training examples (forward–backward fill problems) and the fill-protocol evaluation (issue 12)."""

from __future__ import annotations

import numpy as np
import torch

from worldstereo_ros.evaluation.learned_fill import evaluate_examples, format_table, request_for
from worldstereo_ros.generation.base import create_backend
from worldstereo_ros.generation.learned.data import REPORT_FRAMES, TRAIN_FRAMES, FillExample, rgbd_source, rooms_source
from worldstereo_ros.generation.learned.model import FillNet
from worldstereo_ros.generation.learned.weights import save_model

torch.set_num_threads(1)


def test_training_split_never_touches_report_frames(redkitchen_dir):
    assert not set(TRAIN_FRAMES) & set(REPORT_FRAMES)
    source = rgbd_source(redkitchen_dir, TRAIN_FRAMES, 200, seed=0, cache_dir=None)
    for _, i, j, k in source.specs:
        assert {i, j, k} <= set(TRAIN_FRAMES), (i, j, k)
        assert 5 <= abs(i - j) <= 60 and k != j
    report = rgbd_source(redkitchen_dir, REPORT_FRAMES, 20, seed=0, cache_dir=None)
    assert all({i, j, k} <= set(REPORT_FRAMES) for _, i, j, k in report.specs)


def test_room_examples_are_cached_and_repeatable(tmp_path):
    a = rooms_source(2, 4, 96, 64, cache_dir=tmp_path)
    first = a[1]
    assert a.is_built(1) and not a.is_built(0)
    again = rooms_source(2, 4, 96, 64, cache_dir=tmp_path)[1]
    assert np.array_equal(first.rgb, again.rgb) and np.array_equal(first.depth, again.depth)
    assert first.hole.any() and not (first.hole & (first.depth == 0)).any()  # holes only where depth is known
    fresh = rooms_source(2, 4, 96, 64, cache_dir=None)[1]
    assert np.array_equal(fresh.hole, first.hole)


def test_evaluation_scores_every_method_on_the_same_holes(tmp_path):
    examples: list[FillExample] = [rooms_source(2, 9, 96, 64, cache_dir=tmp_path)[i] for i in range(2)]
    request = request_for(examples[0], with_reference=True)
    assert np.array_equal(request.cond_mask[0], ~examples[0].hole) and len(request.references[0]) == 1
    torch.manual_seed(0)
    weights = save_model(FillNet(widths=(8, 8, 8, 8), fine=4), tmp_path / "tiny.safetensors")
    backends = {"render_fill": create_backend("render_fill"), "learned": create_backend("learned", model_path=weights)}
    images: dict = {}
    results = evaluate_examples(examples, backends, keep_images=1, images=images)
    assert set(results) == {"telea", "render_fill", "learned"}
    assert all(len(s.psnr) == 2 and np.isfinite(s.psnr).all() for s in results.values())
    assert len(results["learned"].depth_absrel) == 2 and not results["telea"].depth_absrel
    assert set(images) == {"condition", "truth", "telea", "render_fill", "learned"}
    table = format_table(results)
    assert table.count("\n") == 4 and "| learned |" in table


def test_pipeline_examples_condition_on_the_cache_render_and_answer_with_the_later_frame(redkitchen_dir, tmp_path):
    from worldstereo_ros.datasets.rgbd_folder import RgbdFolder
    from worldstereo_ros.generation.learned.data import example_tensors, pipeline_source
    from worldstereo_ros.pipeline.condition import render_condition

    source = pipeline_source(redkitchen_dir, TRAIN_FRAMES, 2, seed=3, render_condition=render_condition,
                             cache_dir=tmp_path)
    assert all({s, t} <= set(TRAIN_FRAMES) and 4 <= abs(s - t) <= 60 for _, s, t in source.specs)
    example = source[0]
    _, s, t = source.specs[0]
    truth = RgbdFolder(redkitchen_dir).read(t)
    assert np.array_equal(example.rgb, truth.rgb)  # the answer is the real later frame
    observed = ~example.hole
    assert 0.02 < example.hole.mean() < 0.98
    assert np.all(example.cond_depth[observed] > 0) and np.all(example.cond_depth[example.hole] == 0)
    assert not np.array_equal(example.cond_rgb[observed], example.rgb[observed])  # the render, not the answer
    again = FillExample.load(source.path(0))  # the condition survives the cache
    assert np.array_equal(again.cond_rgb, example.cond_rgb) and np.array_equal(again.hole, example.hole)
    x, rgb, _, hole, _ = example_tensors(example)
    assert np.allclose(x[0:3][:, observed], example.cond_rgb[observed].T / 255.0, atol=1e-6)
    assert np.allclose(rgb[:, observed], example.rgb[observed].T / 255.0, atol=1e-6)
    assert np.array_equal(hole[0].astype(bool), example.hole)
