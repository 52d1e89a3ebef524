"""render_fill backend on a synthetic two-plane scene whose disocclusions can be worked out by hand.

Scene: a textured far plane at z = 4 m (blue-ish, world-anchored stripes) and a narrow near plane at z = 2 m
(red, x in [-0.4, 0.4], taller than any view) in front of it. Camera A at the origin looks along +z and
makes the cache; target cameras B move sideways (+x), which reveals far-plane pixels to the right of the
near plane that A never saw (the disocclusion hole), plus a strip at B's right image border. A reference
keyframe at z = 2.5 m (behind the near plane, so it sees the far plane unoccluded) provides those pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.base import GenerationRequest, Reference, available_backends, create_backend
from worldstereo_ros.generation.render_fill import RenderFillGenerator
from worldstereo_ros.geometry.render import render_points
from worldstereo_ros.snapshot import Snapshot

H, W = 48, 64
F = 50.0
K = np.array([[F, 0.0, (W - 1) / 2], [0.0, F, (H - 1) / 2], [0.0, 0.0, 1.0]])
Z_FAR, Z_NEAR = 4.0, 2.0
FAR_BLUE, NEAR_BLUE = 0.8, 0.05


def far_colour(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # stripes of about 6.5 px period in the targets (0.08 m per pixel at 4 m): texture that a fill must
    # copy, not smear
    r = 0.5 + 0.45 * np.sin(x * 12.0)
    g = 0.5 + 0.3 * np.cos(y * 7.0)
    return np.stack([r, g, np.full_like(x, FAR_BLUE)], axis=1)


def scene_points() -> tuple[torch.Tensor, torch.Tensor]:
    fx, fy = np.meshgrid(np.arange(-4.0, 4.0, 0.02), np.arange(-3.0, 3.0, 0.02))
    fx, fy = fx.ravel(), fy.ravel()
    far = np.stack([fx, fy, np.full_like(fx, Z_FAR)], axis=1)
    nx, ny = np.meshgrid(np.arange(-0.4, 0.4 + 1e-9, 0.01), np.arange(-1.5, 1.5, 0.01))
    nx, ny = nx.ravel(), ny.ravel()
    near = np.stack([nx, ny, np.full_like(nx, Z_NEAR)], axis=1)
    near_rgb = np.stack([np.full_like(nx, 0.9), 0.2 + 0.1 * np.sin(ny * 9.0), np.full_like(nx, NEAR_BLUE)],
                        axis=1)
    xyz = np.concatenate([far, near]).astype(np.float32)
    rgb = np.concatenate([far_colour(fx, fy), near_rgb]).astype(np.float32)
    return torch.as_tensor(xyz), torch.as_tensor(rgb)


SCENE = scene_points()


def T_world_cam(x: float = 0.0, z: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    T[0, 3], T[2, 3] = x, z
    return T


def render_scene(T_wc: np.ndarray, splat: int = 1):
    out = render_points(SCENE[0], SCENE[1], K, np.linalg.inv(T_wc), H, W, splat_px=splat)
    return out.rgb[0].numpy(), out.depth[0].numpy()


def back_project(depth: np.ndarray, T_wc: np.ndarray, K_: np.ndarray = K) -> np.ndarray:
    v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]].astype(np.float64)
    rays = np.stack([(u - K_[0, 2]) / K_[0, 0], (v - K_[1, 2]) / K_[1, 1], np.ones_like(u)], axis=-1)
    pts = rays * depth[..., None]
    world = pts @ T_wc[:3, :3].T + T_wc[:3, 3]
    return np.where(depth[..., None] > 0, world, 0.0).astype(np.float32)


def cache_points() -> tuple[torch.Tensor, torch.Tensor]:
    rgb, depth = render_scene(T_world_cam(), splat=0)
    pts = back_project(depth, T_world_cam()).reshape(-1, 3)
    keep = depth.reshape(-1) > 0
    return torch.as_tensor(pts[keep]), torch.as_tensor(rgb.reshape(-1, 3)[keep])


CACHE = cache_points()


def reference() -> Reference:
    # a wider, larger image than the targets': it sees every far-plane pixel of the targets
    T = T_world_cam(x=0.5, z=2.5)
    K_ref = np.array([[30.0, 0.0, 63.5], [0.0, 30.0, 47.5], [0.0, 0.0, 1.0]])
    out = render_points(SCENE[0], SCENE[1], K_ref, np.linalg.inv(T), 96, 128, splat_px=1)
    rgb, depth = out.rgb[0].numpy(), out.depth[0].numpy()
    return Reference(rgb=rgb, depth=depth, pointmap=back_project(depth, T, K_ref), K=K_ref, T_world_cam=T,
                     score=1.0, keyframe_id=3)


REF = reference()


def make_request(xs, with_refs: bool = True) -> GenerationRequest:
    poses = np.stack([T_world_cam(x=x) for x in xs])
    n = len(xs)
    out = render_points(CACHE[0], CACHE[1], K, np.linalg.inv(poses), H, W, splat_px=1)
    src_rgb, src_depth = render_scene(T_world_cam())
    return GenerationRequest(K=np.broadcast_to(K, (n, 3, 3)).copy(), T_world_cam=poses, height=H, width=W,
                             cond_rgb=out.rgb.numpy(), cond_depth=out.depth.numpy(),
                             cond_mask=out.mask.numpy(), cond_index=out.index.numpy(),
                             references=[[REF] if with_refs else [] for _ in xs],
                             source=Snapshot.create(src_rgb, src_depth, K), trajectory_id="t")


def disocclusion(request: GenerationRequest, i: int) -> np.ndarray:
    """Hole pixels of frame i that lie behind the near plane's right edge (not the image-border strip)."""
    holes = ~request.cond_mask[i]
    cols = np.nonzero(holes.all(axis=0))[0]
    assert cols.size, "the scene must produce a disocclusion"
    mask = np.zeros_like(holes)
    mask[:, cols[cols < W - 8]] = True
    mask &= holes
    assert mask.sum() >= 2 * H, "expected a disocclusion strip at least two pixels wide"
    return mask


def test_registered_by_name():
    assert "render_fill" in available_backends()
    assert isinstance(create_backend("render_fill"), RenderFillGenerator)
    assert RenderFillGenerator.uses_references is True


def test_ssm_fills_disocclusion_with_reference_colour_and_depth():
    req = make_request([0.6])
    hole = disocclusion(req, 0)
    gt_rgb, gt_depth = render_scene(T_world_cam(x=0.6))
    assert np.allclose(gt_depth[hole], Z_FAR)  # the revealed pixels are far plane
    out = RenderFillGenerator().generate(req)
    assert np.abs(out.depth[0][hole] - Z_FAR).max() < 1e-3
    assert np.abs(out.rgb[0][hole] - gt_rgb[hole]).mean() < 0.05
    # without the reference the same pixels are imagined, not observed: clearly worse colours
    guess = RenderFillGenerator(ssm=False).generate(req)
    ssm_error = np.abs(out.rgb[0][hole] - gt_rgb[hole]).mean()
    assert np.abs(guess.rgb[0][hole] - gt_rgb[hole]).mean() > 2 * ssm_error


def test_completion_fills_disocclusion_with_background():
    for request, backend in ((make_request([0.6], with_refs=False), RenderFillGenerator(colour_fill="mirror")),
                             (make_request([0.6]), RenderFillGenerator(ssm=False, colour_fill="mirror"))):
        hole = disocclusion(request, 0)
        out = backend.generate(request)
        assert (out.depth[0] > 0).all()
        assert np.abs(out.depth[0][hole] / Z_FAR - 1.0).max() < 0.02  # background depth, not 2 m
        assert (out.rgb[0][hole][:, 2] > 0.5 * (FAR_BLUE + NEAR_BLUE)).all()  # background colour
        # copied texture, not a smear: the stripes continue into the hole with comparable contrast
        gt_rgb, _ = render_scene(T_world_cam(x=0.6))
        gx_fill = np.abs(np.diff(out.rgb[0][..., 0], axis=1))[hole[:, 1:] & hole[:, :-1]].mean()
        gx_true = np.abs(np.diff(gt_rgb[..., 0], axis=1))[hole[:, 1:] & hole[:, :-1]].mean()
        assert gx_fill > 0.3 * gx_true


def test_inpaint_closes_thin_cracks_smoothly_and_keeps_completed_depth():
    req = make_request([0.0], with_refs=False)
    gt_rgb, gt_depth = render_scene(T_world_cam())
    crack = np.zeros((H, W), bool)
    crack[:, 8:10] = True  # a two-pixel column of the far plane lost by the cache render
    crack &= np.isclose(gt_depth, Z_FAR)
    req.cond_mask[0][crack] = False
    inpainted = RenderFillGenerator(colour_fill="inpaint").generate(req)
    mirrored = RenderFillGenerator(colour_fill="mirror").generate(req)
    np.testing.assert_array_equal(inpainted.depth, mirrored.depth)  # colour mode leaves geometry alone
    assert np.abs(inpainted.depth[0][crack] - Z_FAR).max() < 1e-3
    error = np.abs(inpainted.rgb[0][crack] - gt_rgb[crack]).mean()
    flat = np.abs(gt_rgb[~crack & (gt_depth > 0)].mean(0) - gt_rgb[crack]).mean()  # one colour for all
    assert error < 0.1 and error < 0.5 * flat, (error, flat)
    keep = ~crack
    np.testing.assert_array_equal(inpainted.rgb[0][keep], mirrored.rgb[0][keep])


def test_reference_colours_are_pulled_at_subpixel_correspondences():
    # a reference of the target's resolution, half a pixel (on the far plane) beside the target: pulled
    # colours match the true view more closely than the reference's points snapped to the nearest pixel
    x_ref, x_target = 0.6, 0.6 + 0.5 * Z_FAR / F
    ref_rgb, ref_depth = render_scene(T_world_cam(x=x_ref), splat=0)
    ref = Reference(rgb=ref_rgb, depth=ref_depth, pointmap=back_project(ref_depth, T_world_cam(x=x_ref)), K=K,
                    T_world_cam=T_world_cam(x=x_ref), score=1.0, keyframe_id=7)
    req = make_request([x_target])
    req.references = [[ref]]
    gt_rgb, _ = render_scene(T_world_cam(x=x_target), splat=0)
    pulled = RenderFillGenerator().generate(req)
    keep = ref_depth.reshape(-1) > 0
    snapped = render_points(torch.as_tensor(ref.pointmap.reshape(-1, 3)[keep]),
                            torch.as_tensor(ref_rgb.reshape(-1, 3)[keep]), K,
                            np.linalg.inv(req.T_world_cam[0]), H, W, splat_px=1)
    far = (np.abs(pulled.depth[0] - Z_FAR) < 1e-3) & snapped.mask[0].numpy()
    err_pulled = np.abs(pulled.rgb[0][far] - gt_rgb[far]).mean()
    err_snapped = np.abs(snapped.rgb[0].numpy()[far] - gt_rgb[far]).mean()
    assert far.sum() > H * W // 4
    assert err_pulled < 0.8 * err_snapped, (err_pulled, err_snapped)


def test_outputs_keep_cache_pixels_and_mark_the_rest_imagined():
    req = make_request([0.5, 0.55, 0.6])
    frames = RenderFillGenerator(reference_detail=False).generate(req)
    assert frames.rgb.shape == (3, H, W, 3) and frames.rgb.dtype == np.float32
    assert frames.depth.shape == (3, H, W) and frames.depth.dtype == np.float32
    assert frames.depth_is_metric is True
    np.testing.assert_array_equal(frames.imagined, ~req.cond_mask)
    np.testing.assert_array_equal(frames.rgb[req.cond_mask], req.cond_rgb[req.cond_mask])
    np.testing.assert_array_equal(frames.depth[req.cond_mask], req.cond_depth[req.cond_mask])
    assert (frames.depth > 0).all()
    assert frames.rgb.min() >= 0.0 and frames.rgb.max() <= 1.0
    assert set(frames.timings_s) == {"ssm", "temporal", "complete"}
    assert all(v >= 0.0 for v in frames.timings_s.values())


def test_deterministic_and_streams_frames_in_order():
    req = make_request([0.5, 0.55, 0.6])
    seen = []

    def on_frame(i, rgb, depth, imagined):
        seen.append((i, rgb.copy(), depth.copy(), imagined.copy()))

    a = RenderFillGenerator().generate(req, generator=torch.Generator().manual_seed(0), on_frame=on_frame)
    b = RenderFillGenerator().generate(req, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.depth, b.depth)
    assert [s[0] for s in seen] == [0, 1, 2]
    for i, rgb, depth, imagined in seen:
        np.testing.assert_array_equal(rgb, a.rgb[i])
        np.testing.assert_array_equal(depth, a.depth[i])
        np.testing.assert_array_equal(imagined, a.imagined[i])


def test_identical_poses_give_identical_frames():
    frames = RenderFillGenerator(ssm=False).generate(make_request([0.6, 0.6]))
    np.testing.assert_array_equal(frames.rgb[0], frames.rgb[1])
    np.testing.assert_array_equal(frames.depth[0], frames.depth[1])


def warp_consistency(frames, request) -> float:
    """Mean colour difference between frame i's imagined pixels warped into frame i + 1 and frame i + 1."""
    errors = []
    for i in range(request.num_frames - 1):
        pts = back_project(frames.depth[i], request.T_world_cam[i]).reshape(-1, 3)
        keep = frames.imagined[i].reshape(-1)
        warped = render_points(pts[keep], frames.rgb[i].reshape(-1, 3)[keep], K,
                               np.linalg.inv(request.T_world_cam[i + 1]), H, W)
        both = warped.mask[0].numpy() & frames.imagined[i + 1]
        assert both.sum() > H
        errors.append(np.abs(warped.rgb[0].numpy()[both] - frames.rgb[i + 1][both]).mean())
    return float(np.mean(errors))


def test_temporal_carries_fills_along_the_trajectory():
    # no references: everything imagined comes from completion, whose mirrored texture depends on the
    # hole's width, which grows from frame to frame
    req = make_request([0.4, 0.45, 0.5, 0.55, 0.6], with_refs=False)
    with_temporal = warp_consistency(RenderFillGenerator().generate(req), req)
    without = warp_consistency(RenderFillGenerator(temporal=False).generate(req), req)
    assert with_temporal < 0.02
    assert without > 3 * with_temporal + 0.02


@pytest.mark.parametrize("option, value", [
    ("ssm", "yes"), ("temporal", 1), ("reference_splat_px", -1), ("reference_splat_px", 1.5),
    ("temporal_splat_px", True), ("far_tolerance", 1.0), ("edge_tolerance", 0.0), ("mirror_max_px", 0),
    ("slope_limit", float("nan")), ("max_passes", 0), ("device", "no-such-device"), ("bogus", 3),
    ("colour_fill", "telea"),
])
def test_bad_options_name_the_option(option, value):
    with pytest.raises(InputError) as info:
        create_backend("render_fill", **{option: value})
    assert info.value.field == option


def test_request_shape_mismatch_is_an_input_error():
    req = make_request([0.55, 0.6])
    req.cond_depth = req.cond_depth[:, :-1]
    with pytest.raises(InputError) as info:
        RenderFillGenerator().generate(req)
    assert info.value.field == "cond_depth"
    req = make_request([0.55, 0.6])
    req.references = req.references[:1]
    with pytest.raises(InputError) as info:
        RenderFillGenerator().generate(req)
    assert info.value.field == "references"


def test_ssm_off_ignores_references():
    with_refs = RenderFillGenerator(ssm=False).generate(make_request([0.6]))
    no_refs = RenderFillGenerator(ssm=False).generate(make_request([0.6], with_refs=False))
    np.testing.assert_array_equal(with_refs.rgb, no_refs.rgb)
    np.testing.assert_array_equal(with_refs.depth, no_refs.depth)


def test_empty_frame_stays_unknown():
    req = make_request([0.6])
    req.cond_mask[:] = False
    req.cond_depth[:] = 0.0
    req.references = [[]]
    frames = RenderFillGenerator().generate(req)
    assert (frames.depth == 0).all() and frames.imagined.all()


def test_reference_detail_replaces_coarse_cache_colour_on_the_same_surface_only():
    req = make_request([0.5, 0.55, 0.6])
    # a coarse cache: flat grey where it sees the scene (the references keep the real texture)
    req.cond_rgb[...] = np.where(req.cond_mask[..., None], 0.5, 0.0).astype(np.float32)
    plain = RenderFillGenerator(reference_detail=False).generate(req)
    detail = RenderFillGenerator(reference_detail=True).generate(req)
    np.testing.assert_array_equal(detail.depth, plain.depth)  # geometry stays the cache's
    np.testing.assert_array_equal(detail.imagined, plain.imagined)
    changed = (np.abs(detail.rgb - plain.rgb).max(-1) > 1e-6) & req.cond_mask
    assert changed.mean() > 0.2 * req.cond_mask.mean()  # texture came back on cache pixels
    # where the cache shows a surface nearer than the reference's (e.g. an imagined occluder), it is kept
    req.cond_depth[:, :, : W // 2] *= 0.5
    near = RenderFillGenerator(reference_detail=True).generate(req)
    left = req.cond_mask.copy()
    left[:, :, W // 2:] = False
    np.testing.assert_array_equal(near.rgb[left], req.cond_rgb[left])
