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
