"""Camera-control accuracy: odometry on rendered and real RGB-D frames, and the path error metrics."""

import math

import numpy as np
import pytest
import torch

from worldstereo_ros.datasets.procedural_scene import build_scene, default_camera
from worldstereo_ros.datasets.rgbd_folder import RgbdFolder
from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation.camera_accuracy import PathErrors, estimate_path, path_errors
from worldstereo_ros.geometry.trajectories import dolly, lateral, orbit

W, H, N = 320, 240, 12


def _rot(axis, deg) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = math.radians(deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


@pytest.fixture(scope="module")
def rendered():
    """name -> (commanded T_world_cam (N,4,4), rgb (N,H,W,3) float32 or None, depth (N,H,W) or None), plus K.

    "orbit_right" is only ever a (wrong) command, so its frames are not rendered.
    """
    scene = build_scene(0, 0.01)
    K, T0 = default_camera(W, H)
    paths = {
        "orbit_left": orbit(T0, N, -30.0, radius_m=2.5),
        "orbit_right": orbit(T0, N, 30.0, radius_m=2.5),
        "lateral": lateral(T0, N, 0.5, "left"),
        "dolly": dolly(T0, N, 0.6),
    }
    out = {"orbit_right": (paths.pop("orbit_right"), None, None)}
    # small renders gain little from a second torch thread and run ~20x slower with it when other
    # processes share the cores (spinning OpenMP workers)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, T in paths.items():
            frames = [scene.render(K, t, W, H) for t in T]
            out[name] = (T, np.stack([f[0] for f in frames]), np.stack([f[1] for f in frames]))
    finally:
        torch.set_num_threads(threads)
    return out, K


@pytest.fixture(scope="module")
def estimates(rendered):
    """name -> (estimated T_world_cam (N,4,4) anchored at the commanded first pose, tracked)."""
    data, K = rendered
    out = {}
    for name, (T, rgb, depth) in data.items():
        if rgb is None:
            continue
        est, tracked = estimate_path(rgb, depth, K)
        out[name] = (T[0] @ est, tracked)
    return out


# ---------------------------------------------------------------------------------------------------
# odometry on rendered frames


@pytest.mark.parametrize("name", ["orbit_left", "lateral", "dolly"])
def test_estimate_matches_the_rendered_path(rendered, estimates, name):
    data, _ = rendered
    T = data[name][0]
    est, tracked = estimates[name]
    assert est.shape == (N, 4, 4) and est.dtype == np.float64
    assert tracked.shape == (N,) and tracked.dtype == bool and tracked.all()
    np.testing.assert_allclose(est[0], T[0], atol=1e-12)  # frame 0 is identity before anchoring
    err = path_errors(est, T, tracked)
    print(f"\n{name}: correct path  rot {err.rot_err_deg:.3f} deg  trans {err.trans_err:.4f}  "
          f"ATE {err.ate_m * 100:.2f} cm")
    # measured: rot 0.18 .. 0.37 deg, trans 0.009 .. 0.012, ATE 0.14 .. 0.48 cm
    assert err.rot_err_deg < 0.5
    assert err.trans_err < 0.025
    assert err.ate_m < 0.01
    assert err.tracked_fraction == 1.0 and err.n_frames == N
    # metric scale from the depth: the estimated path length matches the commanded one
    length = lambda P: np.linalg.norm(np.diff(P[:, :3, 3], axis=0), axis=1).sum()  # noqa: E731
    assert length(est) == pytest.approx(length(T), rel=0.08)  # 320x240: 0.945 .. 1.014 measured


def test_uint8_frames_give_the_same_path(rendered, estimates):
    data, K = rendered
    T, rgb, depth = data["lateral"]
    rgb8 = (rgb * 255.0 + 0.5).astype(np.uint8)
    est8, tracked8 = estimate_path(rgb8, depth, K)
    np.testing.assert_allclose(T[0] @ est8, estimates["lateral"][0], atol=1e-9)
    assert tracked8.all()


def test_wrong_path_errors_rise(rendered, estimates):
    data, _ = rendered
    ok = path_errors(estimates["orbit_left"][0], data["orbit_left"][0])
    # mirrored command: orbit right instead of left
    mirror = path_errors(estimates["orbit_left"][0], data["orbit_right"][0])
    # different shape: the camera dollied forward but was told to orbit
    shape = path_errors(estimates["dolly"][0], data["orbit_left"][0])
    ok_dolly = path_errors(estimates["dolly"][0], data["dolly"][0])
    # same direction of travel mix-up for straight paths: moved sideways, told to dolly
    straight = path_errors(estimates["lateral"][0], data["dolly"][0])
    ok_lateral = path_errors(estimates["lateral"][0], data["lateral"][0])
    for label, e in (("orbit L vs L", ok), ("orbit L vs R", mirror), ("dolly vs dolly", ok_dolly),
                     ("dolly vs orbit L", shape), ("lateral vs lateral", ok_lateral),
                     ("lateral vs dolly", straight)):
        print(f"\n{label:18s} rot {e.rot_err_deg:7.3f} deg  trans {e.trans_err:.4f}  "
              f"ATE {e.ate_m * 100:6.2f} cm", end="")
    print()
    assert mirror.rot_err_deg > 20 * ok.rot_err_deg and mirror.rot_err_deg > 20.0
    assert mirror.trans_err > 20 * ok.trans_err and mirror.trans_err > 0.5
    assert shape.rot_err_deg > 10 * ok_dolly.rot_err_deg and shape.rot_err_deg > 10.0
    assert shape.trans_err > 10 * ok_dolly.trans_err
    assert shape.ate_m > 3 * ok_dolly.ate_m and shape.ate_m > 0.02
    assert straight.trans_err > 10 * ok_lateral.trans_err and straight.trans_err > 0.5


def test_camera_ignoring_generator_is_caught(rendered):
    """Every frame is the first one: the generator ignored the commanded camera."""
    data, K = rendered
    T, rgb, depth = data["lateral"]
    frozen_rgb, frozen_depth = np.repeat(rgb[:1], N, axis=0), np.repeat(depth[:1], N, axis=0)
    est, tracked = estimate_path(frozen_rgb, frozen_depth, K)
    assert tracked.all()
    assert np.abs(est[:, :3, 3]).max() < 1e-3
    err = path_errors(T[0] @ est, T, tracked)
    print(f"\nframes frozen vs lateral 0.5 m: rot {err.rot_err_deg:.3f} deg  trans {err.trans_err:.4f}  "
          f"ATE {err.ate_m * 100:.2f} cm ({err.alignment})")
    assert err.trans_err > 0.4  # exact value for a static estimate: N / (2 (N - 1)) = 0.545
    assert err.ate_m > 0.1      # the commanded path's spread about its mean, 0.157 m
    assert err.alignment == "translation"


def test_featureless_frames_are_untracked(rendered):
    data, K = rendered
    grey = np.full((5, H, W, 3), 0.5, dtype=np.float32)
    depth = np.full((5, H, W), 2.0, dtype=np.float32)
    est, tracked = estimate_path(grey, depth, K)
    assert tracked.tolist() == [True, False, False, False, False]
    np.testing.assert_array_equal(est, np.repeat(np.eye(4)[None], 5, axis=0))


def test_unknown_depth_is_not_used(rendered):
    data, K = rendered
    _, rgb, depth = data["lateral"]
    est, tracked = estimate_path(rgb[:4], np.zeros_like(depth[:4]), K)
    assert tracked.tolist() == [True, False, False, False]
    np.testing.assert_array_equal(est, np.repeat(np.eye(4)[None], 4, axis=0))
    # half the depth unknown (and NaN elsewhere in the same frames): the other half still tracks
    half = depth[:4].copy()
    half[:, :, : W // 2] = 0.0
    half[:, : H // 4, W // 2:] = np.nan
    _, tracked = estimate_path(rgb[:4], half, K)
    assert tracked.all()


def test_a_featureless_frame_mid_sequence_holds_and_tracking_resumes(rendered, estimates):
    data, K = rendered
    T, rgb, depth = data["lateral"]
    rgb, depth = rgb.copy(), depth.copy()
    rgb[5] = 0.5
    depth[5] = 0.0
    est, tracked = estimate_path(rgb, depth, K)
    assert tracked.tolist() == [i != 5 for i in range(N)]
    np.testing.assert_array_equal(est[5], est[4])  # constant-position hold
    est = T[0] @ est
    full = estimates["lateral"][0]  # the same frames without the blank one
    later = np.arange(6, N)  # matched against frame 4, the last tracked one
    gap = np.linalg.norm(est[later, :3, 3] - full[later, :3, 3], axis=1)
    drift = np.linalg.norm(full[later, :3, 3] - T[later, :3, 3], axis=1)
    print(f"\nblank frame 5: later centres {gap.max() * 100:.2f} cm from the uninterrupted estimate "
          f"(which drifts {drift.max() * 100:.2f} cm from the command)")
    assert gap.max() < 0.01
    cos = (np.trace(np.swapaxes(full[later, :3, :3], 1, 2) @ est[later, :3, :3], axis1=1, axis2=2) - 1) / 2
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 0.5
    assert path_errors(est, T, tracked).tracked_fraction == pytest.approx(11 / 12)


def test_estimate_path_rejects_bad_input(rendered):
    data, K = rendered
    _, rgb, depth = data["lateral"]
    cases = [
        (dict(rgb=rgb[0], depth=depth, K=K), "rgb"),                     # not (N, H, W, 3)
        (dict(rgb=rgb[:1], depth=depth[:1], K=K), "rgb"),                # N < 2
        (dict(rgb=rgb, depth=depth[:-1], K=K), "depth"),                 # N mismatch
        (dict(rgb=rgb, depth=depth[:, :-1], K=K), "depth"),              # H mismatch
        (dict(rgb=rgb * 255.0, depth=depth, K=K), "rgb"),                # float not in [0, 1]
        (dict(rgb=rgb.astype(np.int32), depth=depth, K=K), "rgb"),       # dtype
        (dict(rgb=rgb, depth=depth, K=K[:2]), "K"),
        (dict(rgb=rgb, depth=depth, K=np.diag([0.0, 1.0, 1.0])), "K"),
        (dict(rgb=rgb, depth=depth, K=K, min_inliers=2), "min_inliers"),
        (dict(rgb=rgb, depth=depth, K=K, max_features=True), "max_features"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InputError) as err:
            estimate_path(**kwargs)
        assert err.value.field == field, (field, str(err.value))


# ---------------------------------------------------------------------------------------------------
# path_errors on analytic paths


def _commanded_orbit() -> np.ndarray:
    return orbit(default_camera(W, H)[1], N, 40.0, radius_m=2.0)


def test_identical_paths_have_zero_error():
    T = _commanded_orbit()
    err = path_errors(T, T)
    assert isinstance(err, PathErrors)
    assert err.rot_err_deg < 1e-5 and err.trans_err < 1e-12 and err.ate_m < 1e-9
    assert (err.n_frames, err.tracked_fraction, err.alignment) == (N, 1.0, "sim3")
    with pytest.raises(AttributeError):
        err.ate_m = 1.0  # frozen


def _commanded_straight() -> np.ndarray:
    return lateral(default_camera(W, H)[1], N, 0.7, "right")


@pytest.mark.parametrize("make", [_commanded_orbit, _commanded_straight], ids=["orbit", "straight"])
def test_similarity_transformed_path_has_zero_error(make):
    """Scale x2 plus a rigid move of the world: a perfect estimate in another frame and unit."""
    T = make()
    G = np.eye(4)
    G[:3, :3], G[:3, 3] = _rot([0.3, -1.0, 0.5], 70.0), [1.0, -2.0, 0.5]
    est = T.copy()
    est[:, :3, 3] *= 2.0
    est = G[None] @ est
    err = path_errors(est, T)
    assert err.rot_err_deg < 1e-5
    assert err.trans_err < 1e-9
    assert err.ate_m < 1e-9
    assert err.alignment == "sim3"  # collinear centres too (the straight path): the residual is defined


def test_known_rotation_and_translation_errors():
    T = lateral(default_camera(W, H)[1], N, 0.5, "left")
    # every frame but the first turned by 5 deg about its optical axis: relative rotations off by 5 deg
    est = T.copy()
    est[1:, :3, :3] = est[1:, :3, :3] @ _rot([0, 0, 1], 5.0)
    err = path_errors(est, T)
    assert err.rot_err_deg == pytest.approx(5.0, abs=1e-9)
    assert err.trans_err < 1e-12 and err.ate_m < 1e-12
    # a static estimate: unit-length commanded path, mean of i / (N - 1) = N / (2 (N - 1))
    static = np.repeat(T[:1], N, axis=0)
    err = path_errors(static, T, np.ones(N, bool))
    assert err.trans_err == pytest.approx(N / (2 * (N - 1)), rel=1e-9)
    assert err.ate_m == pytest.approx(0.5 * math.sqrt((N + 1) / (12 * (N - 1))), rel=1e-9)
    assert err.alignment == "translation"
    # a static command cannot be matched by shrinking a moving estimate to a point (no scale then)
    err = path_errors(T, static)
    assert err.ate_m == pytest.approx(0.5 * math.sqrt((N + 1) / (12 * (N - 1))), rel=1e-9)


def test_two_distinct_centres_use_a_rigid_alignment():
    T = lateral(default_camera(W, H)[1], 2, 0.5, "left")
    est = T.copy()
    est[1, :3, 3] = T[0, :3, 3] + 2.0 * (T[1, :3, 3] - T[0, :3, 3])  # twice as far: Sim(3) would hide it
    err = path_errors(est, T)
    assert err.alignment == "se3"
    assert err.ate_m == pytest.approx(0.25, rel=1e-9)  # 0.5 m too long, split between the two ends
    assert err.trans_err < 1e-12  # scale-free


def test_path_errors_rejects_bad_input():
    T = _commanded_orbit()
    bad_rot = T.copy()
    bad_rot[3, :3, :3] *= 1.5
    nan = T.copy()
    nan[2, 0, 3] = np.nan
    cases = [
        (dict(estimated=T[:, :3], commanded=T), "estimated"),
        (dict(estimated=T, commanded=T[:-1]), "commanded"),
        (dict(estimated=T[:1], commanded=T[:1]), "estimated"),
        (dict(estimated=nan, commanded=T), "estimated"),
        (dict(estimated=T, commanded=nan), "commanded"),
        (dict(estimated=bad_rot, commanded=T), "estimated"),
        (dict(estimated=T, commanded=T, tracked=np.ones(N - 1, bool)), "tracked"),
        (dict(estimated=T, commanded=T, tracked=np.full(N, 0.5)), "tracked"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InputError) as err:
            path_errors(**kwargs)
        assert err.value.field == field, (field, str(err.value))


# ---------------------------------------------------------------------------------------------------
# real data


def test_real_redkitchen_path(redkitchen_dir):
    folder = RgbdFolder(redkitchen_dir)
    frames = [folder.read(i) for i in range(0, 41, 2)]
    rgb = np.stack([f.rgb for f in frames])
    depth = np.stack([f.depth for f in frames])
    T = np.stack([f.T_world_cam for f in frames])
    est, tracked = estimate_path(rgb, depth, frames[0].K)
    err = path_errors(T[0] @ est, T, tracked)
    length = np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=1).sum()
    print(f"\nredkitchen frames 0..40 step 2 ({length * 100:.1f} cm of travel): "
          f"rot {err.rot_err_deg:.3f} deg  "
          f"trans {err.trans_err:.4f}  ATE {err.ate_m * 100:.2f} cm  tracked {err.tracked_fraction:.2f}")
    assert tracked.all()
    assert err.rot_err_deg < 0.75
    assert err.trans_err < 0.15
    assert err.ate_m < 0.01
    # against the same frames in reverse order the errors rise
    wrong = path_errors(T[0] @ est, T[::-1], tracked)
    print(f"  vs the reversed ground truth: rot {wrong.rot_err_deg:.3f} deg  trans {wrong.trans_err:.4f}  "
          f"ATE {wrong.ate_m * 100:.2f} cm")
    assert wrong.trans_err > 5 * err.trans_err
