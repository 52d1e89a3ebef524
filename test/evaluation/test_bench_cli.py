"""``worldstereo-ros bench`` argument handling (issue 11): --frames, --middlebury with any layout and --calib,
and the fixed thread counts."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from worldstereo_ros.cli import main as cli_main
from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation.benchmark import BENCH_THREADS, BenchConfig, fixed_threads, parse_frames, resolve_starts

W, H = 96, 72


@pytest.fixture(scope="module")
def room_folder(tmp_path_factory, write_room_folder):
    return write_room_folder(tmp_path_factory.mktemp("room"), W, H, 8, 0.3)


def test_parse_frames_and_starts(tmp_path):
    assert parse_frames("200-299") == (200, 299) and parse_frames("all") is None
    for bad in ("200", "a-b", "5-5"):
        with pytest.raises(InputError, match="frames"):
            parse_frames(bad)
    cfg = BenchConfig.full(tmp_path)
    assert cfg.frames == (200, 299) and resolve_starts(cfg, range(600)) == [200, 240]
    assert resolve_starts(BenchConfig.quick(tmp_path, frames=(0, 199)), range(600)) == [0]
    with pytest.raises(InputError, match="starts"):
        resolve_starts(BenchConfig.full(tmp_path, starts=[100]), range(600))


def test_fixed_threads_restores_the_counts():
    before = torch.get_num_threads(), cv2.getNumThreads()
    with fixed_threads():
        assert torch.get_num_threads() == BENCH_THREADS and cv2.getNumThreads() == BENCH_THREADS
    assert (torch.get_num_threads(), cv2.getNumThreads()) == before


def test_middlebury_2014_pair_by_flag(room_folder, tmp_path, capsys):
    pair = tmp_path / "pair2014"
    pair.mkdir()
    rng = np.random.default_rng(0)
    left = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    cv2.imwrite(str(pair / "im0.png"), left)
    cv2.imwrite(str(pair / "im1.png"), np.roll(left, -4, axis=1))
    disp = np.full((H, W), 4.0, np.float32)
    (pair / "disp0.pfm").write_bytes(f"Pf\n{W} {H}\n-1.0\n".encode() + disp.astype("<f4").tobytes())
    (pair / "calib.txt").write_text(f"cam0=[80 0 {W / 2}; 0 80 {H / 2}; 0 0 1]\ndoffs=0\nbaseline=50\n")
    out = tmp_path / "out"
    assert cli_main(["bench", "--data", str(room_folder), "--frames", "all", "--sections", "stereo",
                     "--middlebury", str(pair), "--out", str(out)]) == 0
    [base, ours] = json.loads((out / "results.json").read_text())["stereo"]
    assert base["pair"] == "pair2014" and ours["method"] == "render_fill"
    # the right view of a fronto-parallel plane shifted 4 px: nearly everything is observed and right
    assert base["psnr_observed"] > 25.0
    # without calib.txt the calibration must come by flag
    (pair / "calib.txt").unlink()
    assert cli_main(["bench", "--data", str(room_folder), "--frames", "all", "--sections", "stereo",
                     "--middlebury", str(pair), "--out", str(out)]) == 2
    assert "calib.txt" in capsys.readouterr().err
    assert cli_main(["bench", "--data", str(room_folder), "--frames", "all", "--sections", "stereo",
                     "--middlebury", str(pair), "--calib", "f=80,baseline=50,doffs=0", "--out", str(out)]) == 0
    assert cli_main(["bench", "--data", str(room_folder), "--frames", "all", "--sections", "stereo",
                     "--middlebury", str(pair), "--calib", "focal=80", "--out", str(out)]) == 2
    assert "--calib" in capsys.readouterr().err
