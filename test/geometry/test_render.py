"""Point renderer on synthetic scenes whose images can be worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.render import RenderOutput, footprint_radius_px, render_points

H, W = 48, 64
F = 50.0
K = torch.tensor([[F, 0.0, 31.5], [0.0, F, 23.5], [0.0, 0.0, 1.0]], dtype=torch.float64)


def pose(R: np.ndarray | None = None, t=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """T_cam_world from a rotation and a translation (camera-from-world)."""
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = R
    T[:3, 3] = t
    return torch.as_tensor(T)


def rot_y(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def pixel_rays(height: int, width: int, K: torch.Tensor, step: float = 1.0) -> torch.Tensor:
    """(M, 3) camera rays (x/z, y/z, 1) through a grid of image points ``step`` pixels apart."""
    v, u = torch.meshgrid(torch.arange(0, height - 1 + 1e-9, step, dtype=torch.float64),
                          torch.arange(0, width - 1 + 1e-9, step, dtype=torch.float64), indexing="ij")
    x = (u.reshape(-1) - K[0, 2]) / K[0, 0]
    y = (v.reshape(-1) - K[1, 2]) / K[1, 1]
    return torch.stack([x, y, torch.ones_like(x)], dim=1)


def plane_points(depth_m: float, step: float = 1.0, margin_px: float = 0.0) -> torch.Tensor:
    """Points of the plane z = depth_m seen through the pixel grid of K (margin: extra pixels around)."""
    v, u = torch.meshgrid(torch.arange(-margin_px, H - 1 + margin_px + 1e-9, step, dtype=torch.float64),
                          torch.arange(-margin_px, W - 1 + margin_px + 1e-9, step, dtype=torch.float64),
                          indexing="ij")
    x = (u.reshape(-1) - K[0, 2]) / F * depth_m
    y = (v.reshape(-1) - K[1, 2]) / F * depth_m
    return torch.stack([x, y, torch.full_like(x, depth_m)], dim=1).to(torch.float32)


def test_fronto_parallel_plane_one_point_per_pixel():
    xyz = plane_points(2.0)
    rgb = torch.rand(xyz.shape, generator=torch.Generator().manual_seed(0))
    out = render_points(xyz, rgb, K, torch.eye(4), H, W)
    assert isinstance(out, RenderOutput)
    assert out.rgb.shape == (1, H, W, 3) and out.depth.shape == (1, H, W)
    assert out.mask.all()
    assert torch.equal(out.depth, torch.full((1, H, W), 2.0))
    # the points were made in row-major pixel order, so each pixel shows its own point
    assert torch.equal(out.index[0].reshape(-1), torch.arange(H * W))
    assert torch.equal(out.rgb[0].reshape(-1, 3), rgb)


def test_tilted_plane_matches_analytic_depth():
    # plane z = 2 + 0.5 x (camera frame of the capture), sampled 3x denser than the pixels
    rays = pixel_rays(H, W, K, step=1 / 3)
    t = 2.0 / (1.0 - 0.5 * rays[:, 0])
    xyz = (rays * t[:, None]).to(torch.float32)
    T = pose(rot_y(5.0), (0.05, -0.02, 0.1))  # a nearby view
    out = render_points(xyz, None, K, T, H, W)
    # analytic depth of the plane through each pixel centre of the new view
    Tinv = torch.linalg.inv(T)
    c = Tinv[:3, 3]
    d = pixel_rays(H, W, K) @ Tinv[:3, :3].T  # world directions per unit camera z
    n = torch.tensor([-0.5, 0.0, 1.0], dtype=torch.float64)
    lam = (2.0 - n @ c) / (d @ n)
    expected = lam.reshape(H, W).to(torch.float32)
    got = out.depth[0]
    inner = out.mask[0].clone()
    inner[:2], inner[-2:], inner[:, :2], inner[:, -2:] = False, False, False, False
    assert inner.float().mean() > 0.7
    # a point may sit up to half a pixel off the centre: |dz/du| * 0.5 px bounds the difference
    slope = (expected[:, 1:] - expected[:, :-1]).abs().max()
    assert torch.allclose(got[inner], expected[inner], atol=float(slope) * 0.5 + 1e-5)
    assert not torch.allclose(got[inner], expected[inner] + 0.01, atol=float(slope) * 0.5 + 1e-5)


def box_surface(lo: np.ndarray, hi: np.ndarray, step: float) -> torch.Tensor:
    """Points on the six faces of an axis-aligned box, ``step`` metres apart."""
    faces = []
    axes = [np.arange(lo[i], hi[i] + 1e-9, step) for i in range(3)]
    for axis in range(3):
        a, b = [i for i in range(3) if i != axis]
        ga, gb = np.meshgrid(axes[a], axes[b], indexing="ij")
        for value in (lo[axis], hi[axis]):
            face = np.zeros((ga.size, 3))
            face[:, a], face[:, b], face[:, axis] = ga.ravel(), gb.ravel(), value
            faces.append(face)
    return torch.as_tensor(np.concatenate(faces), dtype=torch.float32)


def test_box_matches_ray_box_intersection():
    lo, hi = np.array([-0.4, -0.3, 2.0]), np.array([0.4, 0.3, 2.6])
    xyz = box_surface(lo, hi, 0.004)
    T = pose(rot_y(-20.0), (0.3, 0.1, 0.4))
    out = render_points(xyz, None, K, T, H, W)
    Tinv = torch.linalg.inv(T).numpy()
    c = Tinv[:3, 3]
    d = pixel_rays(H, W, K).numpy() @ Tinv[:3, :3].T
    with np.errstate(divide="ignore", invalid="ignore"):
        t0, t1 = (lo - c) / d, (hi - c) / d
    t_near = np.minimum(t0, t1).max(axis=1)
    t_far = np.maximum(t0, t1).min(axis=1)
    hit = (t_near <= t_far) & (t_near > 0)
    expected = np.where(hit, t_near, 0.0).reshape(H, W)
    got = out.depth[0].numpy()
    # away from the silhouette every pixel must show the front face at the analytic depth
    inside = hit.reshape(H, W)
    core = inside.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            core &= np.roll(np.roll(inside, dy, 0), dx, 1)
    assert core.sum() > 150
    assert out.mask[0].numpy()[core].all()
    np.testing.assert_allclose(got[core], expected[core], atol=0.012)
    # and nothing is drawn where the rays miss the box
    outside = ~inside
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            outside &= ~np.roll(np.roll(inside, dy, 0), dx, 1)
    assert not out.mask[0].numpy()[outside].any()


def test_occlusion_near_square_in_front_of_far_plane():
    far = plane_points(4.0)
    near = plane_points(1.0)
    # keep only a square of the near plane: pixels 20..39 x 10..29
    rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    square = ((cols >= 20) & (cols < 40) & (rows >= 10) & (rows < 30)).reshape(-1)
    near = near[square]
    for xyz, near_first in ((torch.cat([far, near]), False), (torch.cat([near, far]), True)):
        out = render_points(xyz, None, K, torch.eye(4), H, W)
        sq = square.reshape(H, W)
        assert torch.all(out.depth[0][sq] == 1.0)
        assert torch.all(out.depth[0][~sq] == 4.0)
        n_near = int(square.sum())
        is_near = out.index[0] < n_near if near_first else out.index[0] >= far.shape[0]
        assert torch.equal(is_near, sq)


def test_index_points_back_to_the_drawn_points():
    g = torch.Generator().manual_seed(1)
    xyz = torch.rand((5000, 3), generator=g) * torch.tensor([4.0, 3.0, 3.0]) - torch.tensor([2.0, 1.5, -1.0])
    rgb = torch.rand((5000, 3), generator=g)
    T = pose(rot_y(10.0), (0.1, 0.0, 0.2))
    out = render_points(xyz, rgb, K, T, H, W)
    idx = out.index[0][out.mask[0]]
    assert idx.numel() > 500
    assert torch.equal(out.rgb[0][out.mask[0]], rgb[idx])
    cam = xyz[idx].double() @ T[:3, :3].T + T[:3, 3]
    u = cam[:, 0] / cam[:, 2] * F + K[0, 2]
    v = cam[:, 1] / cam[:, 2] * F + K[1, 2]
    vv, uu = torch.nonzero(out.mask[0], as_tuple=True)
    assert torch.all((u - uu).abs() <= 0.5 + 1e-4) and torch.all((v - vv).abs() <= 0.5 + 1e-4)
    assert torch.allclose(out.depth[0][out.mask[0]].double(), cam[:, 2], atol=1e-5)
    # each drawn point is the nearest among the points that land on its pixel
    pix = torch.floor(v + 0.5).long() * W + torch.floor(u + 0.5).long()
    cam_all = xyz.double() @ T[:3, :3].T + T[:3, 3]
    u_all = torch.floor(cam_all[:, 0] / cam_all[:, 2] * F + K[0, 2] + 0.5).long()
    v_all = torch.floor(cam_all[:, 1] / cam_all[:, 2] * F + K[1, 2] + 0.5).long()
    ok = (cam_all[:, 2] > 1e-3) & (u_all >= 0) & (u_all < W) & (v_all >= 0) & (v_all < H)
    zmin = torch.full((H * W,), math.inf, dtype=torch.float64)
    zmin.scatter_reduce_(0, (v_all * W + u_all)[ok], cam_all[ok, 2], "amin")
    assert torch.allclose(zmin[pix], cam[:, 2], atol=1e-5)
    assert int(torch.isfinite(zmin).sum()) == idx.numel()
    # empty pixels
    assert torch.all(out.index[0][~out.mask[0]] == -1)
    assert torch.all(out.depth[0][~out.mask[0]] == 0) and torch.all(out.rgb[0][~out.mask[0]] == 0)


def test_pixel_centres_are_at_integer_coordinates():
    # u = 2.49 rounds to pixel 2, u = 2.51 to pixel 3 (pixel u covers [u - 0.5, u + 0.5])
    Kc = torch.tensor([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 1]])
    xyz = torch.tensor([[0.249, 0.0, 1.0], [0.251, 0.1, 1.0], [-0.049, 0.0, 1.0], [-0.051, 0.2, 1.0]])
    out = render_points(xyz, None, Kc, torch.eye(4), 4, 5)
    assert out.index[0, 0, 2] == 0 and out.index[0, 1, 3] == 1 and out.index[0, 0, 0] == 2
    assert int(out.mask.sum()) == 3  # u = -0.51 is left of the image


def plane_seen_closer(splat_px, background: bool):
    """A plane sampled once per pixel at 2 m, rendered from 30 % closer (0.6 m forward)."""
    xyz = plane_points(2.0, margin_px=16)
    if background:
        xyz = torch.cat([xyz, plane_points(6.0, step=0.5, margin_px=40)])
    T = pose(t=(0.0, 0.0, -0.6))
    out = render_points(xyz, None, K, T, H, W, splat_px=splat_px, point_spacing_m=2.0 / F)
    return out.depth[0]


@pytest.mark.parametrize("background", [False, True])
def test_one_pixel_footprint_leaves_cracks_seen_from_closer(background):
    depth = plane_seen_closer(0, background)
    cracks = (depth != 1.4).float().mean()
    assert cracks > 0.2  # 1/0.7 = 1.43 px between points: about a third of the pixels stay open
    if background:
        assert torch.any(depth == 5.4)  # the far plane shows through


@pytest.mark.parametrize("splat_px", [1, "auto"])
@pytest.mark.parametrize("background", [False, True])
def test_crack_closing_footprint_has_no_cracks(splat_px, background):
    depth = plane_seen_closer(splat_px, background)
    assert torch.all(depth == 1.4)


def test_footprint_keeps_directly_hit_pixels_and_covers_farther_ones():
    Kc = torch.tensor([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 1]])
    # same surface: pixel (0,2) and (0,3) at 1.00 m and 1.01 m, a far point at pixel (0,5), 3 m
    xyz = torch.tensor([[0.2, 0.0, 1.0], [0.303, 0.0, 1.01], [1.5, 0.0, 3.0]])
    out = render_points(xyz, None, Kc, torch.eye(4), 3, 8, splat_px=1)
    assert out.index[0, 0].tolist() == [-1, 0, 0, 1, 1, 2, 2, -1]
    # an empty pixel goes to the nearest footprint
    assert out.index[0, 1].tolist() == [-1, 0, 0, 0, 1, 2, 2, -1]
    # a near point's footprint covers a far point next to it
    xyz = torch.tensor([[0.2, 0.0, 1.0], [0.9, 0.0, 3.0]])
    out = render_points(xyz, None, Kc, torch.eye(4), 3, 8, splat_px=1)
    assert out.index[0, 0].tolist() == [-1, 0, 0, 0, 1, -1, -1, -1]
    assert out.index[0, 0, 3] == 0 and out.depth[0, 0, 3] == 1.0


def test_auto_footprint_radius():
    # p = f*s/z pixels between neighbours; ceil(p) - 1 empty pixels shared by two footprints
    r = footprint_radius_px(torch.tensor([2.0, 1.0, 0.7, 0.5, 0.34, 0.1]), 0.02, 100.0, max_radius_px=4)
    assert r.tolist() == [0, 1, 1, 2, 3, 4]


def test_batched_render_equals_per_view_render():
    g = torch.Generator().manual_seed(2)
    xyz = torch.randn((20000, 3), generator=g) + torch.tensor([0.0, 0.0, 4.0])
    rgb = torch.rand((20000, 3), generator=g)
    Ts = torch.stack([pose(rot_y(a), (0.1 * a / 10, 0.0, 0.0)) for a in (-10.0, 0.0, 15.0)])
    Ks = torch.stack([K, K * torch.tensor([[1.2], [1.2], [1.0]], dtype=torch.float64), K])
    for splat in (0, 1):
        batched = render_points(xyz, rgb, Ks, Ts, H, W, splat_px=splat)
        assert batched.depth.shape == (3, H, W)
        for b in range(3):
            single = render_points(xyz, rgb, Ks[b], Ts[b], H, W, splat_px=splat)
            for name in ("rgb", "depth", "mask", "index"):
                assert torch.equal(getattr(batched, name)[b], getattr(single, name)[0]), name
    # one K shared by several poses
    shared = render_points(xyz, rgb, K, Ts, H, W)
    assert torch.equal(shared.index[2], render_points(xyz, rgb, K, Ts[2], H, W).index[0])


def test_empty_input_and_points_behind_the_camera():
    out = render_points(torch.zeros((0, 3)), torch.zeros((0, 3)), K, torch.eye(4).repeat(2, 1, 1), H, W)
    assert out.rgb.shape == (2, H, W, 3) and not out.mask.any() and torch.all(out.index == -1)
    assert torch.all(out.depth == 0)
    behind = plane_points(-2.0) * torch.tensor([-1.0, -1.0, 1.0])  # z = -2 (projects into the image)
    near = plane_points(5e-4)  # in front of the camera but closer than near_m
    out = render_points(torch.cat([behind, near]), None, K, torch.eye(4), H, W)
    assert not out.mask.any()
    out = render_points(near, None, K, torch.eye(4), H, W, near_m=1e-4)
    assert out.mask.all()


def test_non_finite_points_are_not_drawn():
    xyz = plane_points(2.0)
    xyz[0] = torch.tensor([math.nan, 0.0, 2.0])
    xyz[1] = torch.tensor([0.0, 0.0, math.inf])
    xyz[2] = torch.tensor([0.0, math.nan, math.nan])
    out = render_points(xyz, None, K, torch.eye(4), H, W)
    assert out.index[0, 0, :3].tolist() == [-1, -1, -1]
    assert int(out.mask.sum()) == H * W - 3


def test_float64_points_and_numpy_inputs():
    xyz = plane_points(2.0)
    a = render_points(xyz, None, K, torch.eye(4), H, W)
    b = render_points(xyz.double().numpy(), None, K.numpy(), np.eye(4), H, W)
    assert torch.equal(a.index, b.index) and torch.equal(a.depth, b.depth)
    assert b.depth.dtype == torch.float32


def test_inputs_are_not_mutated():
    xyz = torch.randn((1000, 3)) + torch.tensor([0.0, 0.0, 3.0])
    rgb = torch.rand((1000, 3))
    T = pose(rot_y(3.0), (0.1, 0.2, 0.3))
    copies = [x.clone() for x in (xyz, rgb, K, T)]
    render_points(xyz, rgb, K, T, H, W, splat_px="auto", point_spacing_m=0.01)
    for x, c in zip((xyz, rgb, K, T), copies):
        assert torch.equal(x, c)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(xyz=torch.zeros((5, 2))), "xyz: expected shape \\(N, 3\\)"),
        (dict(xyz=torch.zeros((5, 3), dtype=torch.int64)), "xyz: expected a floating dtype"),
        (dict(rgb=torch.zeros((4, 3))), "rgb: expected shape \\(5, 3\\)"),
        (dict(K=torch.eye(4)), "K: expected shape \\(3, 3\\) or \\(B, 3, 3\\)"),
        (dict(T_cam_world=torch.eye(3)), "T_cam_world: expected shape"),
        (dict(K=K.repeat(2, 1, 1), T_cam_world=torch.eye(4).repeat(3, 1, 1)), "K: batch of 2"),
        (dict(height=0), "height: expected a positive int"),
        (dict(width=2.5), "width: expected a positive int"),
        (dict(splat_px=-1), "splat_px: expected an int >= 0 or 'auto'"),
        (dict(splat_px="big"), "splat_px"),
        (dict(splat_px="auto"), "point_spacing_m: required"),
        (dict(splat_px="auto", point_spacing_m=-1.0), "point_spacing_m: expected a finite float > 0"),
        (dict(splat_px="auto", point_spacing_m=torch.ones(3)), "point_spacing_m: expected a float or shape"),
        (dict(near_m=0.0), "near_m"),
    ],
)
def test_bad_input(kwargs, match):
    args = dict(xyz=torch.zeros((5, 3)), rgb=None, K=K, T_cam_world=torch.eye(4), height=H, width=W)
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        render_points(**args)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_render_equals_cpu_render():
    g = torch.Generator().manual_seed(5)
    xyz = torch.randn((50000, 3), generator=g) + torch.tensor([0.0, 0.0, 4.0])
    rgb = torch.rand((50000, 3), generator=g)
    Ts = torch.stack([pose(rot_y(a), (0.05 * a, 0.0, 0.0)) for a in (-5.0, 5.0)])
    for splat in (0, 1):
        cpu = render_points(xyz, rgb, K, Ts, H, W, splat_px=splat)
        gpu = render_points(xyz.cuda(), rgb.cuda(), K, Ts, H, W, splat_px=splat).to("cpu")
        # projections that land within rounding of a pixel border or a depth tie may go either way
        same = cpu.index == gpu.index
        assert same.float().mean() > 0.999
        assert torch.allclose(cpu.depth[same], gpu.depth[same], rtol=1e-5)
        assert torch.equal(cpu.rgb[same], gpu.rgb[same])
