"""Monocular depth from local weights: scale options, panorama cube map, alignment, RGB-only CLI (issue 13)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ws_tiny import shared_panorama

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.diffusion.depth import (
    DepthEstimator,
    align_to_covered,
    apply_scale,
    chain_scales,
    equirect_directions,
    face_rotation,
    sample_face,
)


@pytest.fixture(scope="module")
def tiny_depth(tmp_path_factory):
    from worldstereo_ros.generation.diffusion.tiny import write_tiny_depth_model

    return write_tiny_depth_model(tmp_path_factory.mktemp("depth_model"))


def _room(h: int = 48, w: int = 64):
    from worldstereo_ros.datasets.procedural_scene import procedural_snapshot

    return procedural_snapshot(w, h)


def test_relative_model_gives_median_one_and_scales(tiny_depth):
    est = DepthEstimator(tiny_depth)
    snap = _room()
    rel = est.estimate(snap.rgb)
    assert not rel.is_metric and "relative" in rel.note
    assert rel.depth.shape == (48, 64) and np.median(rel.depth) == pytest.approx(1.0, rel=1e-5)
    scaled = est.estimate(snap.rgb, median_depth_m=2.5)
    assert scaled.is_metric and np.median(scaled.depth) == pytest.approx(2.5, rel=1e-5)
    assert np.allclose(scaled.depth, rel.depth * 2.5, rtol=1e-5)


def test_camera_height_scale_on_a_known_floor():
    # A pinhole camera 1.2 m above a flat floor, looking 30 degrees down; depth known up to a factor 3.
    h, w = 48, 64
    K = np.array([[50.0, 0, 31.5], [0, 50, 23.5], [0, 0, 1]])
    tilt = np.radians(30)
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([(u - 31.5) / 50, (v - 23.5) / 50, np.ones((h, w))], -1)
    down = rays[..., 1] * np.cos(tilt) + rays[..., 2] * np.sin(tilt)  # world "down" component per unit z
    depth = np.where(down > 0.05, 1.2 / np.clip(down, 1e-6, None), 0).astype(np.float32)
    out = apply_scale(depth / 3, False, K, 1.2, None)
    assert out.is_metric
    assert np.allclose(out.depth[depth > 0], depth[depth > 0], rtol=0.02)
    with pytest.raises(InputError, match="camera_height_m: expected > 0"):
        apply_scale(depth, False, K, -1.0, None)


def test_cube_faces_cover_the_sphere_and_chain_scales():
    dirs = equirect_directions(16, 32)
    assert np.allclose(np.linalg.norm(dirs, axis=-1), 1)
    assert np.allclose(dirs[8, 16], [0, 0, 1], atol=0.2)  # centre column looks forward
    # A constant-colour-by-direction panorama sampled into the front face reproduces the face's directions.
    pano = (dirs + 1) / 2
    K = np.array([[8.0, 0, 7.5], [0, 8.0, 7.5], [0, 0, 1]])
    face = sample_face(pano.astype(np.float32), face_rotation(90, 0), K, 16)
    assert face[8, 8] == pytest.approx(((np.array([1, 0, 0]) + 1) / 2), abs=0.15)  # yaw 90: looking along +x
    per_face = np.ones((3, 4, 4), np.float32)
    per_face[1] *= 2
    per_face[2] *= 0.5
    assert chain_scales(per_face).tolist() == pytest.approx([1.0, 0.5, 2.0])


def test_panorama_depth_is_one_scale(tiny_depth):
    import cv2

    path = shared_panorama()
    if path is None:
        pytest.skip("shared panorama not present (set WORLDSTEREO_DATA)")
    pano = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    pano = cv2.resize(pano, (128, 64), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    est = DepthEstimator(tiny_depth).estimate_panorama(pano, median_depth_m=3.0)
    assert est.is_metric and est.depth.shape == (64, 128)
    assert (est.depth > 0).mean() > 0.99 and np.median(est.depth) == pytest.approx(3.0, rel=1e-4)


def test_align_to_covered_recovers_affine_inverse_depth():
    rng = np.random.default_rng(0)
    true = rng.uniform(1, 4, (20, 30)).astype(np.float32)
    est = 1.0 / (0.5 / true + 0.1)  # inverse depth off by scale 0.5 and shift 0.1
    covered = rng.random((20, 30)) > 0.5
    aligned = align_to_covered(est.astype(np.float32), np.where(covered, true, 0), covered)
    assert np.allclose(aligned, true, rtol=1e-4)
    assert align_to_covered(est, true, np.zeros_like(covered)) is None


def test_imagine_rgb_only_and_panorama(tiny_depth, tmp_path, capsys):
    import cv2

    from worldstereo_ros.cli import main

    snap = _room()
    cv2.imwrite(str(tmp_path / "c.png"), cv2.cvtColor((snap.rgb * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    K = snap.K
    out = tmp_path / "out"
    args = ["imagine", "--rgb", str(tmp_path / "c.png"), "--intrinsics", f"{K[0, 0]},{K[1, 1]},{K[0, 2]},{K[1, 2]}",
            "--depth-model", str(tiny_depth), "--median-depth-m", "2.0", "--trajectories", "left:0.2",
            "--frames", "3", "--no-progress", "--skip", "videos,mesh,colmap", "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    assert "median depth of 2.0 m" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["cache_points"] > 0
    assert main(args[:3] + ["--trajectories", "left:0.2", "--out", str(tmp_path / "o2")]) == 2
    assert "depth_model: no --depth given" in capsys.readouterr().err
    pano = shared_panorama()
    if pano is None:
        pytest.skip("shared panorama not present (set WORLDSTEREO_DATA)")
    small = tmp_path / "pano.jpg"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(pano)), (256, 128), interpolation=cv2.INTER_AREA))
    args = ["imagine", "--panorama", str(small), "--depth-model", str(tiny_depth), "--trajectories", "left:0.2",
            "--frames", "2", "--size", "64x48", "--no-progress", "--skip", "videos,mesh,colmap",
            "--out", str(tmp_path / "pano_out")]
    assert main(args) == 0, capsys.readouterr().err
    assert "relative depth" in capsys.readouterr().out
