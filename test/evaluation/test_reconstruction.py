"""Reconstruction metrics (analytic planes), TSDF fusion of synthetic frames, input checks, and real data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from worldstereo_ros.datasets.rgbd_folder import RgbdFolder, RgbdFrame
from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation.reconstruction import fuse_reference, reconstruction_score, voxel_downsample
from worldstereo_ros.geometry.poses import look_at

# A tilted plane, so voxel grids and the surface are not aligned (no lucky exact answers).
PLANE_R = Rotation.from_euler("xyz", [20.0, 35.0, 10.0], degrees=True).as_matrix()
E1, E2, NORMAL = PLANE_R[:, 0], PLANE_R[:, 1], PLANE_R[:, 2]
ORIGIN = np.array([0.3, -0.2, 1.5])


def _plane(side_m: float = 1.0, step_m: float = 0.005, offset_m: float = 0.0,
           u_min: float | None = None) -> np.ndarray:
    """(N, 3) grid on the tilted plane, ``side_m`` square, shifted ``offset_m`` along its normal; points
    with in-plane u < ``u_min`` left out."""
    s = np.arange(-side_m / 2, side_m / 2 + 1e-9, step_m)
    u, v = np.meshgrid(s, s, indexing="ij")
    u, v = u.reshape(-1), v.reshape(-1)
    if u_min is not None:
        keep = u >= u_min
        u, v = u[keep], v[keep]
    return ORIGIN + u[:, None] * E1 + v[:, None] * E2 + offset_m * NORMAL


def test_plane_shifted_along_its_normal():
    ref = _plane()
    s = reconstruction_score(_plane(offset_m=0.03), ref)
    # Per-voxel centroids of the two grids differ in-plane by under a voxel, so distances lie in
    # [3 cm, sqrt(3^2 + ~0.7^2) cm].
    assert 0.0299 < s.accuracy_m < 0.032
    assert 0.0299 < s.completeness_m < 0.032
    assert s.chamfer_m == pytest.approx((s.accuracy_m + s.completeness_m) / 2)
    assert s.precision[0.02] == 0.0 and s.recall[0.02] == 0.0 and s.f1[0.02] == 0.0
    for t in (0.05, 0.10):
        assert s.precision[t] == 1.0 and s.recall[t] == 1.0 and s.f1[t] == 1.0
    assert s.n_pred > 5000 and s.n_ref > 5000


def test_identical_clouds_score_perfectly():
    ref = _plane()
    s = reconstruction_score(ref, ref.copy(), thresholds_m=(0.001, 0.02))
    assert s.accuracy_m == 0.0 and s.completeness_m == 0.0 and s.chamfer_m == 0.0
    assert s.f1 == {0.001: 1.0, 0.02: 1.0} and s.precision[0.001] == 1.0 and s.recall[0.001] == 1.0
    assert s.n_pred == s.n_ref


def test_far_blob_is_cropped_unless_crop_is_off():
    ref = _plane()
    rng = np.random.default_rng(0)
    blob = np.array([5.0, 5.0, 5.0]) + rng.uniform(-0.05, 0.05, size=(2000, 3))
    pred = np.concatenate([ref, blob])
    clean = reconstruction_score(ref, ref)
    cropped = reconstruction_score(pred, ref)
    assert cropped == clean
    raw = reconstruction_score(pred, ref, crop_margin_m=None)
    n_blob = len(voxel_downsample(blob, 0.01))
    assert raw.n_pred == clean.n_pred + n_blob
    assert raw.precision[0.05] == pytest.approx(clean.n_pred / raw.n_pred)
    assert raw.accuracy_m > 0.3  # ~6 m for the blob's ~7 % of the points
    assert raw.recall == clean.recall  # extra points never hurt completeness


def test_cropping_everything_gives_the_worst_score():
    s = reconstruction_score(_plane() + 10.0, _plane())
    assert s.n_pred == 0 and math.isnan(s.accuracy_m) and s.completeness_m == math.inf
    assert set(s.f1.values()) == {0.0} and set(s.recall.values()) == {0.0}


def test_half_missing_prediction_halves_recall_not_precision():
    s = reconstruction_score(_plane(u_min=0.0), _plane(), thresholds_m=(0.02, 0.05, 0.10))
    for t in (0.02, 0.05, 0.10):
        assert s.precision[t] == 1.0
        # Reference points within t of the cut still count: the expected recall on a 1 m square is 0.5 + t.
        assert s.recall[t] == pytest.approx(0.5 + t, abs=0.02)
        assert s.f1[t] == pytest.approx(2 * s.recall[t] / (1 + s.recall[t]))
    assert s.completeness_m > 0.1  # the missing half is ~0.25 m away on average


def test_density_does_not_bias_the_means():
    ref = _plane()
    pred = _plane(offset_m=0.03)
    # The right half four times as densely sampled and shifted further: without downsampling it would
    # weigh 4:1 in the mean (0.054 m instead of 0.045 m).
    dense_far = _plane(step_m=0.0025, offset_m=0.06, u_min=0.0)
    pred = np.concatenate([pred[(pred - ORIGIN) @ E1 < 0], dense_far])
    s = reconstruction_score(pred, ref)
    assert s.accuracy_m == pytest.approx(0.045, abs=0.002)
    raw = reconstruction_score(pred, ref, voxel_size_m=None)
    assert raw.accuracy_m > 0.051


# --- fusion of synthetic frames -----------------------------------------------------------------------------

H, W = 240, 320
K_SYN = np.array([[240.0, 0.0, 159.5], [0.0, 240.0, 119.5], [0.0, 0.0, 1.0]])
COLOUR = np.array([200, 60, 20], np.uint8)
FUSE_NORMAL = np.array([0.0, -math.sin(math.radians(30)), -math.cos(math.radians(30))])  # faces the cameras
FUSE_POINT = np.array([0.0, 0.0, 2.0])


def _pose(eye) -> np.ndarray:
    f64 = torch.float64
    return look_at(torch.tensor(eye, dtype=f64), torch.tensor(FUSE_POINT, dtype=f64),
                   torch.tensor([0.0, -1.0, 0.0], dtype=f64)).numpy()


POSES = [_pose([-0.3, 0.0, 0.0]), _pose([0.3, 0.05, 0.0]), _pose([0.0, 0.25, 0.3])]


def _render_plane(T_world_cam: np.ndarray) -> np.ndarray:
    """(H, W) depth (m along the optical axis) of the plane n.x = n.p0: the ray t + z R K^-1 [u, v, 1]
    meets it at z = n.(p0 - t) / n.(R K^-1 [u, v, 1])."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K_SYN).T @ T_world_cam[:3, :3].T
    return (FUSE_NORMAL @ (FUSE_POINT - T_world_cam[:3, 3]) / (rays @ FUSE_NORMAL)).astype(np.float32)


def _frames():
    rgb = np.broadcast_to(COLOUR, (H, W, 3)).copy()
    for i, T in enumerate(POSES):
        yield RgbdFrame(i, rgb, _render_plane(T), T, K_SYN.copy())


def test_synthetic_plane_fuses_onto_the_plane_with_its_colour():
    voxel = 0.01
    xyz, rgb = fuse_reference(_frames(), voxel_size_m=voxel, sdf_trunc_m=0.04)  # a generator is fine
    assert xyz.dtype == np.float32 and rgb.dtype == np.float32 and xyz.shape == rgb.shape and len(xyz) > 1000
    signed = (xyz - FUSE_POINT) @ FUSE_NORMAL
    off_plane = np.abs(signed)
    # Measured: max 4.3 mm, median 0.6 mm (depth looked up at the nearest pixel of a slanted plane).
    assert off_plane.max() < 0.6 * voxel, f"fused points up to {off_plane.max():.4f} m off the plane"
    assert np.median(off_plane) < 0.1 * voxel
    # Unbiased: sampling depth at the truncated instead of the nearest pixel moves the plane 2.6 mm back.
    assert abs(signed.mean()) < 0.05 * voxel
    np.testing.assert_allclose(rgb, np.broadcast_to(COLOUR / 255.0, rgb.shape), atol=0.01)

    # Coverage: a 1 cm grid on the plane, each cell kept if some camera sees it inside its image and
    # within the default 4 m depth limit.
    e1 = np.cross(FUSE_NORMAL, [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(FUSE_NORMAL, e1)
    s = np.arange(-3.0, 3.0, 0.01)
    a, b = np.meshgrid(s, s, indexing="ij")
    grid = FUSE_POINT + a.reshape(-1, 1) * e1 + b.reshape(-1, 1) * e2
    seen = np.zeros(len(grid), bool)
    for T in POSES:
        p_cam = (grid - T[:3, 3]) @ T[:3, :3]
        uv = p_cam[:, :2] / p_cam[:, 2:] * K_SYN[[0, 1], [0, 1]] + K_SYN[[0, 1], [2, 2]]
        in_image = (uv >= 0).all(axis=1) & (uv[:, 0] <= W - 1) & (uv[:, 1] <= H - 1)
        seen |= (p_cam[:, 2] > 0) & (p_cam[:, 2] <= 4.0) & in_image
    seen_pts = grid[seen]
    assert len(seen_pts) > 20000  # the union of the three footprints is a few square metres
    d_seen, _ = cKDTree(xyz).query(seen_pts)
    assert (d_seen < 1.5 * voxel).mean() > 0.95, "fused surface does not cover what the cameras saw"
    d_fused, _ = cKDTree(seen_pts).query(xyz)
    assert d_fused.max() < 2 * voxel, "fused surface extends beyond what the cameras saw"


def test_fusion_drops_far_depth_and_checks_weight():
    frames = list(_frames())
    with pytest.raises(InputError, match="frames: none of the 3 frames"):
        fuse_reference(frames, depth_max_m=1.0)  # the plane is 1.6 m+ away
    # Each voxel is seen by at most 3 frames: asking for 4 observations leaves nothing.
    with pytest.raises(InputError, match="frames: fusing 3 frames gave no surface points"):
        fuse_reference(frames, min_observations=4)
    all_seen, _ = fuse_reference(frames, min_observations=1)
    thrice_seen, _ = fuse_reference(frames, min_observations=3)
    assert 0 < len(thrice_seen) < len(all_seen)


# --- bad input ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, field", [
    ({"pred_xyz": np.zeros((5, 2))}, "pred_xyz"),
    ({"pred_xyz": np.zeros((0, 3))}, "pred_xyz"),
    ({"pred_xyz": np.array([[0.0, 0.0, np.nan]])}, "pred_xyz"),
    ({"pred_xyz": "not points"}, "pred_xyz"),
    ({"ref_xyz": np.zeros((0, 3))}, "ref_xyz"),
    ({"ref_xyz": np.full((4, 3), np.inf)}, "ref_xyz"),
    ({"thresholds_m": ()}, "thresholds_m"),
    ({"thresholds_m": (0.05, 0.0)}, "thresholds_m"),
    ({"thresholds_m": (-0.01,)}, "thresholds_m"),
    ({"thresholds_m": (float("nan"),)}, "thresholds_m"),
    ({"voxel_size_m": 0.0}, "voxel_size_m"),
    ({"crop_margin_m": -0.1}, "crop_margin_m"),
])
def test_score_rejects_bad_input(kwargs, field):
    args = {"pred_xyz": np.ones((4, 3)), "ref_xyz": np.ones((4, 3))} | kwargs
    with pytest.raises(InputError) as err:
        reconstruction_score(**args)
    assert err.value.field == field


def _frame(**changes) -> RgbdFrame:
    fields = {"index": 0, "rgb": np.zeros((H, W, 3), np.uint8), "depth": _render_plane(POSES[0]),
              "T_world_cam": POSES[0], "K": K_SYN} | changes
    return RgbdFrame(**fields)


@pytest.mark.parametrize("frames, kwargs, field", [
    ([], {}, "frames"),
    ([_frame(depth=np.zeros((H, W), np.float32))], {}, "frames"),
    ([_frame(), _frame(rgb=np.zeros((H, W, 3), np.float32))], {}, "frames[1].rgb"),
    ([_frame(rgb=np.zeros((H, W + 1, 3), np.uint8))], {}, "frames[0].rgb"),
    ([_frame(depth=np.zeros((H, W, 1), np.float32))], {}, "frames[0].depth"),
    ([_frame(K=np.eye(4))], {}, "frames[0].K"),
    ([_frame(T_world_cam=np.full((4, 4), np.nan))], {}, "frames[0].T_world_cam"),
    ([_frame()], {"voxel_size_m": -0.01}, "voxel_size_m"),
    ([_frame()], {"sdf_trunc_m": 0.005}, "sdf_trunc_m"),
    ([_frame()], {"depth_max_m": 0.0}, "depth_max_m"),
    ([_frame()], {"block_count": 0}, "block_count"),
    ([_frame()], {"min_observations": 0}, "min_observations"),
    ([_frame()], {"min_observations": 1.5}, "min_observations"),
    ([_frame()], {"device": "nonsense"}, "device"),
])
def test_fusion_rejects_bad_input(frames, kwargs, field):
    with pytest.raises(InputError) as err:
        fuse_reference(frames, **kwargs)
    assert err.value.field == field


def test_nan_depth_is_treated_as_unknown():
    depth = _render_plane(POSES[0])
    depth[:, : W // 2] = np.nan
    xyz, _ = fuse_reference([_frame(depth=depth)])
    assert np.isfinite(xyz).all() and len(xyz) > 100


# --- real data ----------------------------------------------------------------------------------------------

REAL_FRAMES = range(0, 41, 4)


def _world_points(frame: RgbdFrame, stride: int = 1) -> np.ndarray:
    """(N, 3) world points of the valid depth pixels of ``frame``, every ``stride``-th pixel."""
    v, u = np.nonzero(frame.depth > 0)
    v, u = v[::stride], u[::stride]
    z = frame.depth[v, u].astype(np.float64)
    K, T = frame.K, frame.T_world_cam
    p_cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1)
    return p_cam @ T[:3, :3].T + T[:3, 3]


@pytest.fixture(scope="module")
def real(redkitchen_dir):
    folder = RgbdFolder(redkitchen_dir)
    frames = [folder.read(i) for i in REAL_FRAMES]
    ref_xyz, ref_rgb = fuse_reference(frames)
    return frames, ref_xyz, ref_rgb


def _summary(name: str, s) -> str:
    fmt = lambda d: " ".join(f"{k * 100:g}cm={v:.3f}" for k, v in d.items())  # noqa: E731
    return (f"{name}: acc {s.accuracy_m * 100:.2f} cm, comp {s.completeness_m * 100:.2f} cm, chamfer "
            f"{s.chamfer_m * 100:.2f} cm | P {fmt(s.precision)} | R {fmt(s.recall)} | F1 {fmt(s.f1)} | "
            f"n_pred {s.n_pred} n_ref {s.n_ref}")


def test_real_frame0_matches_the_fused_reference(real):
    frames, ref_xyz, ref_rgb = real
    print(f"\nreference from frames {REAL_FRAMES.start}..{REAL_FRAMES.stop - 1} step {REAL_FRAMES.step}: "
          f"{len(ref_xyz)} points, bounds {ref_xyz.min(0).round(2)} .. {ref_xyz.max(0).round(2)}")
    assert len(ref_xyz) > 50000
    assert 0.1 < ref_rgb.mean() < 0.9 and ref_rgb.std() > 0.05  # a real, textured kitchen, not flat grey
    s = reconstruction_score(_world_points(frames[0]), ref_xyz)
    print(_summary("frame 0 depth", s))
    # Measured: ~0.8 cm accuracy (Kinect noise against the TSDF average), F1@5cm ~0.98.
    assert s.accuracy_m < 0.02
    assert s.precision[0.05] > 0.97
    assert s.f1[0.05] > 0.95


def test_real_more_frames_complete_more_of_the_reference(real):
    frames, ref_xyz, _ = real
    one = reconstruction_score(_world_points(frames[0]), ref_xyz)
    many = reconstruction_score(np.concatenate([_world_points(f, stride=3) for f in frames]), ref_xyz)
    print(_summary(f"frames {len(frames)} depth", many))
    # Measured: recall@2cm ~0.88 for frame 0 alone and ~0.99 for all fused frames' depth.
    assert many.recall[0.02] > one.recall[0.02] + 0.05
    assert many.completeness_m < one.completeness_m


def test_real_wrong_pose_is_caught(real):
    frames, ref_xyz, _ = real
    shifted = _world_points(frames[0]) + np.array([0.10, 0.0, 0.0])  # a 10 cm pose error
    s = reconstruction_score(shifted, ref_xyz)
    print(_summary("frame 0 shifted 10 cm", s))
    assert s.accuracy_m > 0.03
    assert s.f1[0.05] < 0.8
