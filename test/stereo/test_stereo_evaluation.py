"""Issue 16: the stereo evaluation on the real Middlebury pair (skips without the shared data)."""

from __future__ import annotations

import cv2
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


def _write_pfm(path, disp: np.ndarray) -> None:
    h, w = disp.shape
    with open(path, "wb") as fh:  # little-endian (negative scale), rows bottom to top
        fh.write(f"Pf\n{w} {h}\n-1.0\n".encode())
        fh.write(np.flipud(disp).astype("<f4").tobytes())


def _write_tiny_2014_pair(folder, h: int = 40, w: int = 96) -> None:
    """A Middlebury-2014-layout pair rendered by hand: a smooth background at disparity 4 and a near block
    at disparity 12, textures fixed to the left image's columns, so the right image is exact."""
    folder.mkdir()
    y, x = np.mgrid[0:h, 0:w + 16].astype(np.float32)
    bg = np.stack([0.5 + 0.3 * np.sin(x / 5.0), 0.5 + 0.3 * np.cos(y / 4.0), 0.4 + 0.2 * np.sin((x + y) / 9.0)], -1)
    fg = np.stack([0.2 + 0.1 * np.sin(x / 3.0), 0.8 - 0.0 * x, 0.3 + 0.2 * np.cos(y / 2.0)], -1)
    rows, cols = slice(4, 24), (40, 64)  # not symmetric in y: a PFM read upside down would show
    in_block = np.zeros((h, w + 16), bool)
    in_block[rows, cols[0]:cols[1]] = True
    left = np.where(in_block[:, :w, None], fg[:, :w], bg[:, :w])
    disp = np.where(in_block[:, :w], 12.0, 4.0).astype(np.float32)
    xr = np.arange(w)
    right = np.where(in_block[:, xr + 12, None], fg[:, xr + 12], bg[:, xr + 4])
    for name, img in (("im0.png", left), ("im1.png", right)):
        cv2.imwrite(str(folder / name), cv2.cvtColor((img * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
    disp[0, 0] = np.inf  # an unknown ground-truth pixel, as Middlebury marks them
    _write_pfm(folder / "disp0.pfm", disp)
    (folder / "calib.txt").write_text(f"cam0=[100 0 {w / 2}; 0 100 {h / 2}; 0 0 1]\n"
                                      f"cam1=[100 0 {w / 2}; 0 100 {h / 2}; 0 0 1]\ndoffs=0\nbaseline=50\n"
                                      f"width={w}\nheight={h}\nndisp=32\n")


def test_any_middlebury_2014_pair_is_evaluated(tmp_path):
    torch.set_num_threads(1)
    _write_tiny_2014_pair(tmp_path / "tiny")
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


def test_bench_evaluates_every_middlebury_pair_given(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    torch.set_num_threads(1)
    bench_path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_stereo.py"
    spec = importlib.util.spec_from_file_location("bench_stereo_under_test", bench_path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for name in ("pair_a", "pair_b"):
        _write_tiny_2014_pair(tmp_path / name)
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
