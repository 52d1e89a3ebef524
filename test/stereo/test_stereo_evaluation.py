"""Issue 16: the stereo evaluation on the real Middlebury pair (skips without the shared data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation import stereo_synthesis as ev


@pytest.fixture(scope="module")
def motorcycle(middlebury_dir):
    return middlebury_dir


def test_motorcycle_beats_warp_telea_by_the_target(motorcycle):
    torch.set_num_threads(1)
    rows = ev.evaluate_pair(motorcycle)
    base, ours = rows[0], rows[1]
    assert base.psnr_full == pytest.approx(22.46, abs=0.05)  # the bench's classical baseline
    assert ours.psnr_full >= base.psnr_full + 1.0
    assert ours.psnr_occluded > base.psnr_occluded
    assert ev.pair_targets_met(rows)


def test_pan_video_propagation_costs_little_psnr(motorcycle):
    torch.set_num_threads(1)
    pan = ev.pan_video_psnr(motorcycle, frames=6)
    assert pan["per-frame"] - pan["propagated"] <= ev.TARGET_PSNR_LOSS_DB
    assert np.isfinite(pan["ewarp_propagated"])


def test_any_middlebury_2014_pair_is_evaluated(tmp_path, tiny_middlebury_2014):
    torch.set_num_threads(1)
    tiny_middlebury_2014(tmp_path / "tiny")
    rows = ev.evaluate_pair(tmp_path / "tiny")
    assert [r.pair for r in rows] == ["tiny"] * len(rows)
    assert rows[0].method.startswith("warp + Telea")
    base, ours = rows[0], rows[1]
    # the 8-px strip right of the block (20 rows) and the 4-px right border the left camera does not see
    assert ours.occluded_fraction == pytest.approx((8 * 20 + 4 * 40) / (40 * 96), abs=0.01)
    # the calibration and disparity were read right: the observed pixels are exact, only the strips are guessed
    assert ours.psnr_full > 24.0 and base.psnr_full > 24.0
    assert ours.psnr_occluded < ours.psnr_full


def test_middlebury_folder_without_a_pair_names_the_folder(tmp_path):
    with pytest.raises(InputError, match="folder"):
        ev.evaluate_pair(tmp_path)


def test_procedural_truth_video_matches_the_rig():
    # the true right frames are rendered at the right-eye pose: the synthesised right view from exact depth is
    # much closer to them than the left frame is (a mirrored rig or a wrong baseline would not be)
    torch.set_num_threads(1)
    lefts, truth, K, baseline = ev.procedural_stereo_video(frames=3, width=160, height=120, strength=0.05)
    assert len(lefts) == len(truth) == 3 and truth[0].shape == (120, 160, 3) and truth[0].dtype == np.float32
    rows, b, _ = ev.temporal_consistency(lefts, K, baseline_m=baseline, truth=truth)
    assert b == baseline
    left_psnr = np.mean([ev.psnr(f.rgb.astype(np.float32) / 255.0, t) for f, t in zip(lefts, truth)])
    assert rows[0].psnr > left_psnr + 3.0
    assert np.isfinite(rows[1].psnr)
    with pytest.raises(InputError, match="truth"):
        ev.temporal_consistency(lefts, K, baseline_m=baseline, truth=truth[:2])


def test_bench_evaluates_every_middlebury_pair_given(tmp_path, capsys, tiny_middlebury_2014):
    import importlib.util
    import json
    from pathlib import Path

    torch.set_num_threads(1)
    bench_path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_stereo.py"
    spec = importlib.util.spec_from_file_location("bench_stereo_under_test", bench_path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for name in ("pair_a", "pair_b"):
        tiny_middlebury_2014(tmp_path / name)
    out = tmp_path / "stereo.json"
    rc = bench.main(["--sections", "middlebury", "--middlebury", str(tmp_path / "pair_a"), str(tmp_path / "pair_b"),
                     "--out", str(out)])
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())["middlebury"]
    assert [r["rows"][0]["pair"] for r in results] == ["pair_a", "pair_b"]
    assert {r["method"] for r in results[0]["rows"]} >= {"ours (render_fill fill)", "ours (learned fill)"}
    assert rc == (0 if all(r["target_met"] for r in results) else 1)
    assert "pair_b:" in printed and ("MET" in printed or "MISSED" in printed)
    assert bench.main(["--sections", "middlebury", "--middlebury", str(tmp_path / "absent")]) == 2
