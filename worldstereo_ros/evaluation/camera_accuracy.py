"""Camera-control accuracy: does the generated camera go where it was told?

From the generated frames alone (RGB plus the generator's own depth) :func:`estimate_path` recovers the
camera path by frame-to-frame visual odometry; :func:`path_errors` compares any estimated path with the
commanded one using the metrics of CameraCtrl / WorldStereo (relative rotation error, scale-normalised
relative translation error) plus the absolute trajectory error after a Sim(3) alignment.

Odometry method (classical, CPU only): ORB keypoints on every frame; Hamming brute-force matching with a
cross check from the reference frame to the current one; the reference frame's keypoints are lifted to 3D
with its depth (pixels with unknown depth or on a depth discontinuity are skipped, since a corner on an
occlusion edge has no single depth); each match is refined to sub-pixel precision in the current frame by
Lucas-Kanade (9 px window, started at the ORB match; matches it moves by more than 2 px are dropped), which
halves the pose error on rendered frames; ``cv2.solvePnPRansac`` (EPnP minimal sets, 2.5 px inlier
threshold) followed by a Levenberg-Marquardt refinement on the inliers gives the current camera relative
to the reference. The reference is the last frame that was tracked, so one failed frame does not break the
chain; a failed frame holds the previous pose and is flagged ``tracked = False``.

All poses are camera-to-world (``T_world_cam``), 4x4, OpenCV optical axes (x right, y down, z forward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.align import _solve, umeyama
from worldstereo_ros.validation import check_int

#: RANSAC inlier threshold of the PnP step, pixels.
PNP_REPROJECTION_PX = 2.5
#: A keypoint is lifted only if the depth in its 5x5 neighbourhood varies by less than this share of its
#: depth (corners on occlusion edges have no single depth).
DEPTH_EDGE_REL = 0.05
#: Camera centres closer than this count as the same centre (metres) in :func:`path_errors`.
DISTINCT_CENTRE_M = 1e-6
#: Window of the Lucas-Kanade sub-pixel refinement of the matches, pixels.
LK_WINDOW_PX = 9
#: A refined position further than this from its ORB keypoint is not used, pixels.
LK_MAX_SHIFT_PX = 2.0


@dataclass(frozen=True)
class PathErrors:
    """Errors of an estimated camera path against the commanded one.

    Attributes:
        rot_err_deg: mean over frames 1..N-1 of the geodesic angle between the relative rotations
            ``R_cmd_0i`` and ``R_est_0i``, degrees (frame 0 is identity in both by construction).
        trans_err: mean over frames 1..N-1 of ``|t_est_0i - t_cmd_0i|`` after each path's relative
            translations are divided by that path's length (sum of its step lengths), unitless.
        ate_m: RMSE of the camera centres after aligning the estimated path to the commanded one
            (Sim(3) Umeyama by default; see ``alignment``), metres in the commanded path's frame.
        n_frames: N.
        tracked_fraction: share of frames flagged tracked (1.0 when no flags were given).
        alignment: the alignment behind ``ate_m``: ``"sim3"``, ``"se3"`` or ``"translation"``.
    """

    rot_err_deg: float
    trans_err: float
    ate_m: float
    n_frames: int
    tracked_fraction: float
    alignment: str = "sim3"


# ----------------------------------------------------------------------------------------------------
# input checks


def _check_frames(rgb, depth, K) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, H, W) uint8 grey images, (N, H, W) float32 depth with 0 for invalid, (3, 3) float64 K."""
    rgb = np.asarray(rgb)
    depth = np.asarray(depth)
    K = np.asarray(K)
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise InputError("rgb", f"expected shape (N, H, W, 3), got {rgb.shape}")
    n, h, w = rgb.shape[:3]
    if n < 2:
        raise InputError("rgb", f"expected at least 2 frames, got {n}")
    if h < 8 or w < 8:
        raise InputError("rgb", f"expected frames of at least 8x8 pixels, got {h}x{w}")
    if depth.shape != (n, h, w):
        raise InputError("depth", f"expected shape {(n, h, w)} to match rgb, got {depth.shape}")
    if not np.issubdtype(depth.dtype, np.floating):
        raise InputError("depth", f"expected float metres, got dtype {depth.dtype}")
    if K.shape != (3, 3) or not np.issubdtype(K.dtype, np.number) or not np.isfinite(K).all():
        raise InputError("K", f"expected a finite (3, 3) matrix, got shape {K.shape}")
    K = K.astype(np.float64)
    if not (K[0, 0] > 0 and K[1, 1] > 0) or not np.allclose(K[2], [0.0, 0.0, 1.0]):
        raise InputError("K", "expected fx > 0, fy > 0 and last row [0, 0, 1]")

    if rgb.dtype == np.uint8:
        rgb8 = rgb
    elif np.issubdtype(rgb.dtype, np.floating):
        if not np.isfinite(rgb).all():
            raise InputError("rgb", "float colours must be finite")
        if rgb.size and (rgb.max() > 1.5 or rgb.min() < -0.5):
            raise InputError("rgb", f"float colours must be in [0, 1], got [{rgb.min():g}, {rgb.max():g}]")
        rgb8 = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise InputError("rgb", f"expected uint8 or float in [0, 1], got dtype {rgb.dtype}")
    grey = np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in rgb8])
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
    return grey, depth, K


def _check_poses(name: str, poses) -> np.ndarray:
    T = np.asarray(poses)
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise InputError(name, f"expected shape (N, 4, 4), got {T.shape}")
    if not np.issubdtype(T.dtype, np.number) or not np.isfinite(T).all():
        raise InputError(name, "poses must be finite numbers")
    T = T.astype(np.float64)
    R = T[:, :3, :3]
    ortho = np.abs(R.transpose(0, 2, 1) @ R - np.eye(3)).max()
    if ortho > 1e-3 or (np.linalg.det(R) <= 0).any():
        raise InputError(name, f"rotation blocks must be proper rotations (max |R^T R - I| = {ortho:.2g})")
    return T


# ----------------------------------------------------------------------------------------------------
# odometry


@dataclass
class _Features:
    keypoints: np.ndarray  # (M, 2) float32 pixel positions
    descriptors: np.ndarray | None  # (M, 32) uint8
    points: np.ndarray  # (M, 3) float32 camera-frame points, NaN where the depth is not usable
    grey: np.ndarray  # (H, W) uint8 image the keypoints come from


def _features(orb, grey: np.ndarray, depth: np.ndarray, K: np.ndarray) -> _Features:
    kps, desc = orb.detectAndCompute(grey, None)
    if desc is None or len(kps) == 0:
        return _Features(np.zeros((0, 2), np.float32), None, np.zeros((0, 3), np.float32), grey)
    uv = np.array([kp.pt for kp in kps], dtype=np.float32)
    h, w = depth.shape
    u = np.clip(np.rint(uv[:, 0]).astype(int), 0, w - 1)
    v = np.clip(np.rint(uv[:, 1]).astype(int), 0, h - 1)
    # local depth extremes (unknown depth counts as 0, so a hole next to the pixel rejects it too)
    kernel = np.ones((5, 5), np.uint8)
    lo = cv2.erode(depth, kernel)[v, u]
    hi = cv2.dilate(depth, kernel)[v, u]
    z = depth[v, u]
    ok = (z > 0) & (lo > 0) & (hi - lo < DEPTH_EDGE_REL * z)
    x = (uv[:, 0] - K[0, 2]) / K[0, 0] * z
    y = (uv[:, 1] - K[1, 2]) / K[1, 1] * z
    pts = np.stack([x, y, z], axis=1).astype(np.float32)
    pts[~ok] = np.nan
    return _Features(uv, desc, pts, grey)


def _relative_pose(ref: _Features, cur: _Features, K: np.ndarray, matcher,
                   min_inliers: int) -> np.ndarray | None:
    """T_ref_cur (4, 4) from PnP of ref's 3D keypoints against cur's 2D keypoints, or None."""
    if ref.descriptors is None or cur.descriptors is None:
        return None
    usable = np.flatnonzero(np.isfinite(ref.points[:, 0]))
    if len(usable) < min_inliers:
        return None
    matches = matcher.match(ref.descriptors[usable], cur.descriptors)
    if len(matches) < min_inliers:
        return None
    qi = usable[np.array([m.queryIdx for m in matches])]
    ti = np.array([m.trainIdx for m in matches])
    obj = ref.points[qi].astype(np.float64)
    img = cur.keypoints[ti].astype(np.float64)
    # sub-pixel positions in cur: Lucas-Kanade from ref's keypoint, started at the ORB match (FAST corners
    # sit on the pixel grid, and ORB's coarser pyramid levels on a coarser one); matches where it does not
    # converge near the ORB position are dropped (keeping their coarse position makes the pose worse)
    p1, status, _ = cv2.calcOpticalFlowPyrLK(
        ref.grey, cur.grey, ref.keypoints[qi].reshape(-1, 1, 2), cur.keypoints[ti].reshape(-1, 1, 2).copy(),
        winSize=(LK_WINDOW_PX, LK_WINDOW_PX), maxLevel=1, flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    p1 = p1.reshape(-1, 2).astype(np.float64)
    shift = np.linalg.norm(p1 - img, axis=1)
    refined = (status.ravel() == 1) & np.isfinite(p1).all(1) & (shift < LK_MAX_SHIFT_PX)
    obj, img = obj[refined], p1[refined]
    if len(obj) < min_inliers:
        return None
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(obj, img, K, None, iterationsCount=300,
                                                 reprojectionError=PNP_REPROJECTION_PX, confidence=0.999,
                                                 flags=cv2.SOLVEPNP_EPNP)
    if not ok or inliers is None or len(inliers) < min_inliers:
        return None
    inl = inliers.ravel()
    rvec, tvec = cv2.solvePnPRefineLM(obj[inl], img[inl], K, None, rvec, tvec)
    # re-count the inliers of the refined pose
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, None)
    err = np.linalg.norm(proj.reshape(-1, 2) - img, axis=1)
    finite = np.isfinite(rvec).all() and np.isfinite(tvec).all()
    if not finite or int((err < PNP_REPROJECTION_PX).sum()) < min_inliers:
        return None
    T_cur_ref = np.eye(4)
    T_cur_ref[:3, :3] = cv2.Rodrigues(rvec)[0]
    T_cur_ref[:3, 3] = tvec.ravel()
    return np.linalg.inv(T_cur_ref)


def estimate_path(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, max_features: int = 2000,
                  min_inliers: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Camera path of a frame sequence from its RGB and depth (visual odometry, module doc).

    Args:
        rgb: (N, H, W, 3) uint8, or float in [0, 1]; N >= 2.
        depth: (N, H, W) float metres along the optical axis; 0 or non-finite = unknown.
        K: (3, 3) pinhole intrinsics shared by all frames, pixels.
        max_features: ORB keypoints per frame.
        min_inliers: PnP inliers (2.5 px) needed to accept a frame's pose.
    Returns:
        T_cam0_cami: (N, 4, 4) float64 pose of each camera in frame 0's camera frame (camera-to-cam0;
            the first is identity), OpenCV axes, metres in the depth's scale.
        tracked: (N,) bool; False where PnP failed (too few usable matches or inliers): that pose is then
            the previous pose (constant-position hold) and the next frame is matched against the last
            tracked frame. Frame 0 is always True.
    Raises:
        InputError: bad shapes, dtypes, fewer than 2 frames, bad K or options.
    """
    grey, depth, K = _check_frames(rgb, depth, K)
    max_features = check_int("max_features", max_features, 8)
    min_inliers = check_int("min_inliers", min_inliers, 6)
    n = grey.shape[0]
    orb = cv2.ORB_create(nfeatures=max_features)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)

    poses = np.repeat(np.eye(4)[None], n, axis=0)
    tracked = np.zeros(n, dtype=bool)
    tracked[0] = True
    ref = _features(orb, grey[0], depth[0], K)
    ref_pose = poses[0]
    for i in range(1, n):
        cur = _features(orb, grey[i], depth[i], K)
        T_ref_cur = _relative_pose(ref, cur, K, matcher, min_inliers)
        if T_ref_cur is None:
            poses[i] = poses[i - 1]
            continue
        poses[i] = ref_pose @ T_ref_cur
        tracked[i] = True
        ref, ref_pose = cur, poses[i]
    return poses, tracked


# ----------------------------------------------------------------------------------------------------
# errors


def _relative(T: np.ndarray) -> np.ndarray:
    """(N, 4, 4) poses relative to the first: inv(T_0) @ T_i."""
    return np.linalg.inv(T[0])[None] @ T


def _normalised_translations(t: np.ndarray) -> np.ndarray:
    """(N, 3) relative translations over the path length (sum of step lengths); zeros for a static path."""
    length = float(np.linalg.norm(np.diff(t, axis=0), axis=1).sum())
    if length <= DISTINCT_CENTRE_M:
        return np.zeros_like(t)
    return t / length


def _n_distinct(c: np.ndarray) -> int:
    """Number of camera centres more than DISTINCT_CENTRE_M apart (greedy), capped at 3."""
    kept: list[np.ndarray] = []
    for p in c:
        if all(np.linalg.norm(p - q) > DISTINCT_CENTRE_M for q in kept):
            kept.append(p)
            if len(kept) == 3:
                break
    return len(kept)


def _closed_form(src: np.ndarray, dst: np.ndarray, with_scale: bool) -> np.ndarray:
    """Aligned src (N, 3) by geometry.align's Umeyama closed form, without its degeneracy refusal.

    Used for collinear centres (straight paths), for which :func:`umeyama` refuses because the rotation
    about the line is not determined; the residual, and so the ATE, is determined all the same.
    """
    T, _, _ = _solve(torch.from_numpy(src).double(), torch.from_numpy(dst).double(), None, with_scale)
    T = T.numpy()
    return src @ T[:3, :3].T + T[:3, 3]


def _ate(est_c: np.ndarray, cmd_c: np.ndarray) -> tuple[float, str]:
    """RMSE of the centres after aligning est to cmd, and the alignment used.

    Sim(3) needs at least 3 distinct centres in both paths; with exactly 2 in either it is exact for any
    two segments (ATE 0 whatever the paths), so a rigid SE(3) alignment is used (metric scale kept);
    with a single centre in either path (a static camera) rotation and scale are meaningless and only
    the means are matched (translation-only), which reports the other path's spread instead of hiding it
    behind a scale of 0.
    """
    distinct = min(_n_distinct(est_c), _n_distinct(cmd_c))
    if distinct < 2:
        aligned, kind = est_c - est_c.mean(0) + cmd_c.mean(0), "translation"
    else:
        with_scale = distinct >= 3
        kind = "sim3" if with_scale else "se3"
        try:
            T = umeyama(torch.from_numpy(est_c), torch.from_numpy(cmd_c), with_scale=with_scale).numpy()
            aligned = est_c @ T[:3, :3].T + T[:3, 3]
        except InputError:  # collinear centres: the residual is still determined
            aligned = _closed_form(est_c, cmd_c, with_scale)
    return float(np.sqrt(((aligned - cmd_c) ** 2).sum(1).mean())), kind


def path_errors(estimated: np.ndarray, commanded: np.ndarray,
                tracked: np.ndarray | None = None) -> PathErrors:
    """Compare an estimated camera path with the commanded one (metrics in :class:`PathErrors`).

    Args:
        estimated: (N, 4, 4) camera-to-world poses, e.g. :func:`estimate_path`'s output (any world frame,
            any scale: only relative motion and the Sim(3)-aligned shape are compared).
        commanded: (N, 4, 4) camera-to-world poses the generator was asked for, metres.
        tracked: optional (N,) bool flags of :func:`estimate_path`; only reported as ``tracked_fraction``
            (untracked frames hold the previous pose and are scored as such, so a generator whose frames
            cannot be tracked is not rewarded).
    Returns:
        PathErrors. ``trans_err`` normalises each path by its own length, so a static path (length 0)
        counts as all-zero translations. ``ate_m`` uses Sim(3) (see ``_ate`` for the fallbacks when a
        path has fewer than 3 distinct centres; the one used is in ``alignment``). With N = 2, or any
        path of 2 distinct positions, ATE carries little information; rely on the relative errors.
    Raises:
        InputError: shapes that are not (N, 4, 4) or differ, N < 2, non-finite values, non-rotations,
            or tracked not of shape (N,).
    """
    est = _check_poses("estimated", estimated)
    cmd = _check_poses("commanded", commanded)
    if est.shape != cmd.shape:
        raise InputError("commanded", f"expected the shape of estimated {est.shape}, got {cmd.shape}")
    n = est.shape[0]
    if n < 2:
        raise InputError("estimated", f"expected at least 2 poses, got {n}")
    if tracked is None:
        tracked_fraction = 1.0
    else:
        flags = np.asarray(tracked)
        if flags.shape != (n,):
            raise InputError("tracked", f"expected shape ({n},), got {flags.shape}")
        as_bool = np.issubdtype(flags.dtype, np.integer) and np.isin(flags, (0, 1)).all()
        if flags.dtype != bool and not as_bool:
            raise InputError("tracked", f"expected booleans, got dtype {flags.dtype}")
        tracked_fraction = float(flags.astype(bool).mean())

    rel_est, rel_cmd = _relative(est), _relative(cmd)
    dR = rel_cmd[1:, :3, :3].transpose(0, 2, 1) @ rel_est[1:, :3, :3]
    cos = np.clip((np.trace(dR, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    rot_err = float(np.degrees(np.arccos(cos)).mean())

    t_est = _normalised_translations(rel_est[:, :3, 3])
    t_cmd = _normalised_translations(rel_cmd[:, :3, 3])
    trans_err = float(np.linalg.norm(t_est[1:] - t_cmd[1:], axis=1).mean())

    ate, kind = _ate(est[:, :3, 3], cmd[:, :3, 3])
    for name, value in (("rot_err_deg", rot_err), ("trans_err", trans_err), ("ate_m", ate)):
        if not math.isfinite(value):  # pragma: no cover - guarded by the input checks
            raise InputError(name, "not finite; check the poses")
    return PathErrors(rot_err, trans_err, ate, n, tracked_fraction, kind)
