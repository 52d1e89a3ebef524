"""Back-projection, projection, depth edges, far-depth compression, panoramas, and the real-data check."""

import numpy as np
import pytest
import torch

from worldstereo_ros.datasets.rgbd_folder import RgbdFolder
from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.cameras import EquirectCamera, PinholeCamera
from worldstereo_ros.geometry.poses import invert, look_at
from worldstereo_ros.geometry.projection import (
    backproject_depth,
    compress_far_depth,
    depth_edge_mask,
    depth_to_points,
    equirect_depth_to_points,
    project_points,
)
from worldstereo_ros.geometry.render import render_points

K = PinholeCamera(50.0, 50.0, 31.5, 23.5, 64, 48).K


def _pose() -> torch.Tensor:
    return look_at(torch.tensor([0.3, -0.2, -1.0], dtype=torch.float64),
                   torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64),
                   torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64))


def test_backproject_then_project_returns_the_pixels():
    depth = torch.rand(48, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3 + 0.5
    T = _pose()
    pts = backproject_depth(depth, K, T)
    uv, z = project_points(pts.reshape(-1, 3), K, invert(T))
    v, u = torch.meshgrid(torch.arange(48.0, dtype=torch.float64), torch.arange(64.0, dtype=torch.float64),
                          indexing="ij")
    np.testing.assert_allclose(uv.numpy(), torch.stack([u, v], -1).reshape(-1, 2).numpy(), atol=1e-9)
    np.testing.assert_allclose(z.numpy(), depth.reshape(-1).numpy(), atol=1e-12)


def test_backproject_is_batched():
    depth = torch.ones(3, 48, 64)
    T = torch.stack([_pose(), torch.eye(4, dtype=torch.float64), _pose()])
    out = backproject_depth(depth, K, T)
    assert out.shape == (3, 48, 64, 3)
    np.testing.assert_allclose(out[1].numpy(), backproject_depth(depth[1], K, None).numpy(), atol=1e-6)


def test_depth_to_points_drops_invalid_pixels_and_edges():
    depth = torch.full((48, 64), 2.0)
    depth[:, 32:] = 4.0        # a step: pixels on both sides of it are edges
    depth[0, 0] = 0.0          # unknown
    depth[5, 5] = float("nan")  # not finite
    rgb = torch.rand(48, 64, 3)
    points = depth_to_points(depth, K, None, rgb=rgb)
    kept = torch.zeros(48 * 64, dtype=torch.bool)
    kept[points.pixel] = True
    kept = kept.reshape(48, 64)
    assert not kept[0, 0] and not kept[5, 5]
    assert not kept[:, 31].any() and not kept[:, 32].any()
    assert kept[:, 30].all() and kept[:, 33].all()
    np.testing.assert_allclose(points.rgb.numpy(), rgb.reshape(-1, 3)[points.pixel].numpy())
    all_points = depth_to_points(depth, K, None, drop_edges=False)
    assert len(all_points) == 48 * 64 - 2
    assert len(depth_to_points(depth, K, None, drop_edges=False, stride=2)) == 24 * 32 - 1


def test_edge_mask_keeps_slanted_planes():
    # a plane at 70 degrees incidence: depth grows ~0.7 % per pixel
    z = torch.linspace(1.0, 1.0 * 1.007 ** 63, 64).expand(48, 64).contiguous()
    assert not depth_edge_mask(z).any()


def test_depth_to_points_shape_errors_name_the_field():
    with pytest.raises(InputError, match="rgb"):
        depth_to_points(torch.ones(48, 64), K, None, rgb=torch.ones(48, 63, 3))
    with pytest.raises(InputError, match="depth"):
        depth_to_points(torch.ones(48), K, None)


def test_compress_far_depth_is_continuous_and_bounded():
    depth = torch.tensor([0.0] + [1.0] * 10 + [7.9, 8.0, 8.1, 100.0, 1e6])  # median 1 m -> knee at 8 m
    out = compress_far_depth(depth, factor=8.0)
    assert out[0] == 0 and torch.equal(out[:13], depth[:13])
    assert float(out[13]) == pytest.approx(8.1, abs=0.01)
    assert float(out.max()) < 16.0
    assert torch.all(out[1:].diff() >= 0)


def test_equirect_points_lie_at_their_ray_distance():
    cam = EquirectCamera(32, 16)
    depth = torch.full((16, 32), 2.5)
    depth[3, 4] = 0.0
    rgb = torch.rand(16, 32, 3)
    T = _pose()
    points = equirect_depth_to_points(rgb, depth, T)
    assert len(points) == 16 * 32 - 1
    dist = torch.linalg.vector_norm(points.xyz.double() - T[:3, 3], dim=-1)
    np.testing.assert_allclose(dist.numpy(), 2.5, atol=1e-5)
    # each point projects back to its own pixel
    local = (points.xyz.double() - T[:3, 3]) @ T[:3, :3]
    uv = cam.ray_to_pixel(local)
    flat = uv[:, 1].round() * 32 + uv[:, 0].round()
    assert torch.equal(flat.long(), points.pixel)


def test_real_data_frame0_rendered_at_frame20_matches_measured_depth(redkitchen_dir):
    """Pins the conventions end to end on real RGB-D with ground-truth poses (issue target: median <= 3 cm)."""
    folder = RgbdFolder(redkitchen_dir)
    f0, f20 = folder.read(0), folder.read(20)
    points = depth_to_points(torch.from_numpy(f0.depth), torch.from_numpy(f0.K), torch.from_numpy(f0.T_world_cam))
    T_cw = invert(torch.from_numpy(f20.T_world_cam))
    out = render_points(points.xyz, None, torch.from_numpy(f20.K), T_cw, 480, 640, splat_px=0)
    rendered = out.depth[0].numpy()
    both = (rendered > 0) & (f20.depth > 0)
    assert both.mean() > 0.5, f"only {both.mean():.0%} co-visible pixels"
    err = np.abs(rendered[both] - f20.depth[both])
    median = float(np.median(err))
    print(f"frame0 -> frame20 median depth error {median * 100:.2f} cm on {both.sum()} co-visible pixels")
    assert median <= 0.03
    # a wrong convention (e.g. the inverse pose) is far off: the check can fail
    wrong = render_points(points.xyz, None, torch.from_numpy(f20.K), torch.from_numpy(f20.T_world_cam), 480, 640)
    w = wrong.depth[0].numpy()
    wb = (w > 0) & (f20.depth > 0)
    assert wb.sum() == 0 or np.median(np.abs(w[wb] - f20.depth[wb])) > 0.03
