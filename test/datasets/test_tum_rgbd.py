"""TUM RGB-D sequences (``io.tum_rgbd``): association by timestamp, pose interpolation, intrinsics, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from worldstereo_ros.datasets.procedural_scene import build_scene, default_camera
from worldstereo_ros.datasets.rgbd_folder import RgbdFolder, write_rgbd_frame
from worldstereo_ros.datasets.tum_rgbd import TumSequence, open_rgbd_sequence
from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.poses import matrix_to_quat_xyzw
from worldstereo_ros.geometry.trajectories import lateral

W, H = 64, 48
T_START = 1305031102.0


def _write_sequence(folder, frames: int = 5):
    """Colour at 10 Hz, depth 4 ms later, ground truth at 40 Hz along a 0.4 m slide; returns the poses at the
    colour timestamps and the rendered depths."""
    scene = build_scene(0, 0.02)
    K, T0 = default_camera(W, H)
    (folder / "rgb").mkdir(parents=True)
    (folder / "depth").mkdir()
    gt_path = lateral(T0, 4 * frames + 1, 0.4, "left")  # one ground-truth sample every 25 ms
    gt_lines = ["# timestamp tx ty tz qx qy qz qw"]
    for k, T in enumerate(gt_path):
        q = matrix_to_quat_xyzw(torch.from_numpy(T[:3, :3])).numpy()
        gt_lines.append(f"{T_START + 0.025 * k:.6f} " + " ".join(f"{v:.9f}" for v in (*T[:3, 3], *q)))
    rgb_lines, depth_lines, poses, depths = ["# colour"], ["# depth"], [], []
    for i in range(frames):
        t = T_START + 0.1 * i + 0.0125  # half way between two ground-truth samples
        T = gt_path[4 * i].copy()
        T[:3, 3] = 0.5 * (gt_path[4 * i][:3, 3] + gt_path[4 * i + 1][:3, 3])  # a pure slide: rotation is constant
        rgb, depth = scene.render(K, T, W, H)
        cv2.imwrite(str(folder / f"rgb/{t:.6f}.png"), cv2.cvtColor((rgb * 255 + 0.5).astype(np.uint8),
                                                                   cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(folder / f"depth/{t + 0.004:.6f}.png"), (depth * 5000 + 0.5).astype(np.uint16))
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t + 0.004:.6f} depth/{t + 0.004:.6f}.png")
        poses.append(T)
        depths.append(depth)
    rgb_lines.append(f"{T_START + 10.0:.6f} rgb/late.png")  # after the ground truth ends: dropped
    (folder / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (folder / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    (folder / "groundtruth.txt").write_text("\n".join(gt_lines) + "\n")
    return K, poses, depths


def test_frames_are_associated_and_poses_interpolated(tmp_path):
    folder = tmp_path / "rgbd_dataset_freiburg1_synthetic"
    K, poses, depths = _write_sequence(folder)
    seq = TumSequence(folder, K=K)
    assert seq.indices == [0, 1, 2, 3, 4] and len(seq) == 5
    for i in seq.indices:
        f = seq.read(i)
        assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8
        np.testing.assert_allclose(f.depth, depths[i], atol=1.0 / 5000)
        np.testing.assert_allclose(f.T_world_cam, poses[i], atol=1e-6)
    # without K the folder name picks the Freiburg 1 calibration
    assert TumSequence(folder).K[0, 0] == pytest.approx(517.3)


def test_open_rgbd_sequence_picks_the_layout(tmp_path):
    _write_sequence(tmp_path / "tum_freiburg2")
    assert isinstance(open_rgbd_sequence(tmp_path / "tum_freiburg2"), TumSequence)
    K, T0 = default_camera(W, H)
    write_rgbd_frame(tmp_path / "seven", 0, np.zeros((H, W, 3), np.uint8), np.ones((H, W), np.float32), T0, K)
    assert isinstance(open_rgbd_sequence(tmp_path / "seven"), RgbdFolder)


def test_errors_name_what_is_wrong(tmp_path):
    folder = tmp_path / "seq_freiburg3"
    _write_sequence(folder)
    with pytest.raises(InputError, match="index"):
        TumSequence(folder).read(5)
    with pytest.raises(InputError, match="no colour image has a depth image"):
        TumSequence(folder, max_dt_s=0.001)
    (folder / "groundtruth.txt").write_text("1.0 0 0 0 0 0 0\n2.0 0 0 0 0 0 0 1\n")
    with pytest.raises(InputError, match="pose 1: expected 7 numbers"):
        TumSequence(folder)
    (folder / "depth.txt").unlink()
    with pytest.raises(InputError, match="depth.txt is missing"):
        TumSequence(folder)
    unnamed = tmp_path / "sequence"
    _write_sequence(unnamed)
    with pytest.raises(InputError, match="no intrinsics"):
        TumSequence(unnamed)
