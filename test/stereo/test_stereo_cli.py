"""Issue 16: ``worldstereo-ros stereo`` and the anaglyph / side-by-side previews."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from worldstereo_ros.cli import main
from worldstereo_ros.errors import InputError
from worldstereo_ros.stereo.preview import anaglyph, disparity_png16, side_by_side


def _write_frame(folder, i, shift=0):
    rng = np.random.default_rng(i)
    rgb = rng.integers(0, 255, (40, 64, 3), dtype=np.uint8)
    depth = np.full((40, 64), 2000, np.uint16)
    depth[10:30, 20 + shift:40 + shift] = 800
    cv2.imwrite(str(folder / "img" / f"{i:03d}.png"), rgb)
    cv2.imwrite(str(folder / "depth" / f"{i:03d}.png"), depth)


def test_anaglyph_and_side_by_side_by_hand():
    left = np.zeros((2, 3, 3), np.uint8)
    left[..., 0] = 200
    right = np.full((2, 3, 3), 50, np.uint8)
    a = anaglyph(left, right)
    assert (a[..., 0] == 200).all() and (a[..., 1:] == 50).all()
    assert side_by_side(left, right).shape == (2, 6, 3)
    with pytest.raises(InputError, match="right"):
        anaglyph(left, right[:, :2])


def test_disparity_png_is_kitti_scaled():
    d = disparity_png16(np.array([[1.5, np.nan, 0.0]], np.float32))
    assert d.tolist() == [[384, 0, 0]]


def test_single_image(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "depth").mkdir()
    _write_frame(tmp_path, 0)
    out = tmp_path / "out"
    rc = main(["stereo", str(tmp_path / "img" / "000.png"), "--depth", str(tmp_path / "depth" / "000.png"),
               "--intrinsics", "50,50,31.5,19.5", "--baseline-m", "0.1", "--out", str(out)])
    assert rc == 0
    for name in ("right/000000.png", "disparity/000000.png", "occlusion/000000.png", "anaglyph.jpg",
                 "side_by_side.png", "disparity_preview.png"):
        assert (out / name).is_file(), name
    disp = cv2.imread(str(out / "disparity" / "000000.png"), cv2.IMREAD_UNCHANGED)
    # disparity = fx * B / Z: 50 * 0.1 / 0.8 = 6.25 px on the near block, stored x 256
    assert disp[20, 30] == 1600 and disp[0, 0] == 640
    info = json.loads((out / "stereo.json").read_text())
    assert info["baseline_m"] == 0.1 and info["P_right"][0][3] == pytest.approx(-5.0)


def test_frame_folder_makes_a_video(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "depth").mkdir()
    for i in range(3):
        _write_frame(tmp_path, i, shift=i)
    out = tmp_path / "out"
    rc = main(["stereo", str(tmp_path / "img"), "--depth", str(tmp_path / "depth"), "--intrinsics", "50,50,31.5,19.5",
               "--strength", "0.05", "--out", str(out)])
    assert rc == 0
    assert sorted(p.name for p in (out / "right").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert (out / "side_by_side.mp4").stat().st_size > 0


def test_missing_depth_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    (tmp_path / "depth").mkdir()
    _write_frame(tmp_path, 0)
    rc = main(["stereo", str(tmp_path / "img" / "000.png"), "--intrinsics", "50,50,31.5,19.5", "--out",
               str(tmp_path / "out")])
    assert rc == 2
    assert "depth" in capsys.readouterr().err


def test_rgb_only_without_a_depth_model_names_the_flag(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    (tmp_path / "depth").mkdir()
    _write_frame(tmp_path, 0)
    rc = main(["stereo", str(tmp_path / "img"), "--intrinsics", "50,50,31.5,19.5", "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "--depth-model" in capsys.readouterr().err


def test_rgb_only_frames_take_the_estimated_depth(tmp_path):
    # a tiny random Depth Anything (transformers) folder stands in for real weights: the command must load it,
    # estimate each frame's depth and scale it by --median-depth-m
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from worldstereo_ros.generation.diffusion.tiny import write_tiny_depth_model

    model = write_tiny_depth_model(tmp_path / "depth_model")
    (tmp_path / "img").mkdir()
    (tmp_path / "depth").mkdir()
    for i in range(2):
        _write_frame(tmp_path, i, shift=i)
    out = tmp_path / "out"
    rc = main(["stereo", str(tmp_path / "img"), "--intrinsics", "50,50,31.5,19.5", "--depth-model-path", str(model),
               "--median-depth-m", "2.0", "--baseline-m", "0.1", "--no-temporal", "--out", str(out)])
    assert rc == 0
    info = json.loads((out / "stereo.json").read_text())
    assert info["frames"] == 2 and "estimated by" in info["depth"] and "2.0" in info["depth"]
    disp = cv2.imread(str(out / "disparity" / "000000.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 256.0
    # median depth 2 m, f = 50 px, B = 0.1 m: the median disparity is f * B / 2 = 2.5 px
    assert np.median(disp[disp > 0]) == pytest.approx(2.5, rel=0.05)


def test_unreadable_depth_model_names_the_flag(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    (tmp_path / "depth").mkdir()
    _write_frame(tmp_path, 0)
    (tmp_path / "model").mkdir()
    rc = main(["stereo", str(tmp_path / "img"), "--intrinsics", "50,50,31.5,19.5", "--depth-model",
               str(tmp_path / "model"), "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "depth_model" in capsys.readouterr().err


def test_middlebury_2014_folder_is_a_stereo_source(tmp_path, tiny_middlebury_2014):
    tiny_middlebury_2014(tmp_path / "pair")
    out = tmp_path / "out"
    assert main(["stereo", str(tmp_path / "pair"), "--out", str(out)]) == 0
    info = json.loads((out / "stereo.json").read_text())
    assert info["baseline_m"] == pytest.approx(0.05) and info["fx"] == 100.0  # calib.txt: baseline=50 mm, f=100
    assert cv2.imread(str(out / "right" / "000000.png")).shape == (40, 96, 3)
