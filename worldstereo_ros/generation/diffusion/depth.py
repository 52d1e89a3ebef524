"""Monocular depth from local weights (transformers depth models), for RGB-only snapshots, panoramas and the
``depth="estimator"`` option of the worldstereo backend.

Models: any ``AutoModelForDepthEstimation`` folder (Depth Anything V2, Depth Pro, DPT, ZoeDepth...). A model whose
config says ``depth_estimation_type == "relative"`` (Depth Anything's default) predicts affine-invariant inverse depth;
it is turned into depth up to scale as ``median(d) / d`` (median depth 1). Others are taken as metric depth (metres).

Scale of a relative estimate, in this order: ``camera_height_m`` (height of the camera above the floor: a RANSAC plane
through the lowest third of the image's points gives the current height), ``median_depth_m`` (a known typical
distance), else none: the depth stays relative and every output says so (``depth_is_metric=False``).

Panoramas (equirectangular, width = 2 x height): six 100-degree cube-map faces are estimated separately; the faces'
scales are chained to the front face through their overlaps (median ratio of ray distances), then each panorama pixel
takes its most central face. Depth of a panorama is along the ray, as :class:`~worldstereo_ros.snapshot.Snapshot`.

Images are (H, W, 3) float32 in [0, 1]; depths (H, W) float32, 0 = unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d
import torch
from transformers import AutoImageProcessor, AutoModelForDepthEstimation

from worldstereo_ros.errors import BackendError, InputError
from worldstereo_ros.geometry.rotations import euler_to_matrix

#: Faces of the cube map: yaw, pitch in degrees (OpenCV camera axes: x right, y down, z forward).
CUBE_FACES = ((0, 0), (90, 0), (180, 0), (270, 0), (0, -90), (0, 90))
FACE_FOV_DEG = 100.0


@dataclass
class DepthEstimate:
    """A depth map and whether it is metric.

    Attributes:
        depth: (H, W) float32, metres when ``is_metric`` else up to one unknown scale; 0 = unknown.
        is_metric: whether ``depth`` is in metres.
        note: how the scale was obtained (for logs and run summaries).
    """

    depth: np.ndarray
    is_metric: bool
    note: str


class DepthEstimator:
    """A transformers depth model from a local folder (model + image processor).

    Args:
        path: folder with ``config.json``, weights and ``preprocessor_config.json``.
        device: torch device.
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu") -> None:
        path = Path(path)
        if not (path / "config.json").is_file():
            raise BackendError(f"depth model: no config.json in {path} (a local transformers depth-model folder)")
        self.processor = AutoImageProcessor.from_pretrained(str(path))
        self.model = AutoModelForDepthEstimation.from_pretrained(str(path)).to(device).eval()
        self.device = torch.device(device)
        self.relative = getattr(self.model.config, "depth_estimation_type", "metric") == "relative"

    @torch.no_grad()
    def raw(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 model output resized to the image: inverse depth (relative models) or metres."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError("rgb", f"expected (H, W, 3), got {rgb.shape}")
        pixels = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
        inputs = self.processor(images=pixels, return_tensors="pt").to(self.device)
        pred = self.model(**inputs).predicted_depth  # (1, h, w)
        pred = torch.nn.functional.interpolate(pred[:, None].float(), size=rgb.shape[:2], mode="bilinear",
                                               align_corners=False)[0, 0]
        return pred.cpu().numpy().astype(np.float32)

    def depth_up_to_scale(self, rgb: np.ndarray) -> tuple[np.ndarray, bool]:
        """(depth (H, W), is_metric): relative models give median depth 1; metric ones metres."""
        out = self.raw(rgb)
        if not self.relative:
            return np.clip(out, 0, None), True
        disp = np.clip(out, 1e-6, None)
        return (np.median(disp) / disp).astype(np.float32), False

    def estimate(self, rgb: np.ndarray, K: np.ndarray | None = None, camera_height_m: float | None = None,
                 median_depth_m: float | None = None) -> DepthEstimate:
        """Depth of a pinhole image, scaled per the module doc (``K`` is needed for ``camera_height_m``)."""
        depth, metric = self.depth_up_to_scale(rgb)
        return apply_scale(depth, metric, K, camera_height_m, median_depth_m)

    def estimate_panorama(self, rgb: np.ndarray, camera_height_m: float | None = None,
                          median_depth_m: float | None = None) -> DepthEstimate:
        """Ray-distance depth of an equirectangular panorama through cube-map faces (module doc)."""
        h, w = rgb.shape[:2]
        if w != 2 * h:
            raise InputError("rgb", f"a panorama must be equirectangular (width = 2 x height), got {w} x {h}")
        face = max(16, h // 2)
        f = (face / 2) / np.tan(np.radians(FACE_FOV_DEG / 2))
        K = np.array([[f, 0, (face - 1) / 2], [0, f, (face - 1) / 2], [0, 0, 1]])
        dirs = equirect_directions(h, w)  # (h, w, 3) unit rays, camera axes
        per_face, weights = [], []
        metric = True
        for yaw, pitch in CUBE_FACES:
            R = face_rotation(yaw, pitch)  # face camera -> panorama camera
            img = sample_face(rgb, R, K, face)
            d, m = self.depth_up_to_scale(img)
            metric = metric and m
            # Ray distance of the face's pixels, then looked up for every panorama direction it sees.
            rays = np.linalg.inv(K) @ np.stack([*np.meshgrid(np.arange(face), np.arange(face)), np.ones((face, face))]
                                              ).reshape(3, -1)
            dist = (d.reshape(-1) * np.linalg.norm(rays, axis=0)).reshape(face, face).astype(np.float32)
            local = dirs @ R  # panorama rays in face axes
            z = local[..., 2]
            with np.errstate(divide="ignore", invalid="ignore"):
                u = K[0, 0] * local[..., 0] / z + K[0, 2]
                v = K[1, 1] * local[..., 1] / z + K[1, 2]
            inside = (z > 1e-6) & (u >= 0) & (u <= face - 1) & (v >= 0) & (v <= face - 1)
            map_u = np.where(inside, u, -1).astype(np.float32)
            map_v = np.where(inside, v, -1).astype(np.float32)
            sampled = cv2.remap(dist, map_u, map_v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            per_face.append(np.where(inside, sampled, 0))
            weights.append(np.where(inside, z, 0))  # the most central face wins
        per_face, weights = np.stack(per_face), np.stack(weights)
        scales = chain_scales(per_face)
        per_face = per_face * scales[:, None, None]
        best = weights.argmax(axis=0)
        depth = np.take_along_axis(per_face, best[None], axis=0)[0].astype(np.float32)
        if camera_height_m is not None:
            # Height from the lowest part of the sphere: rays pointing down (y > 0.5 in camera axes).
            pts = dirs * depth[..., None]
            floor = pts[(dirs[..., 1] > 0.5) & (depth > 0)]
            est = _floor_distance(floor)
            return DepthEstimate(depth * np.float32(camera_height_m / est), True,
                                 f"scaled so the camera is {camera_height_m} m above the fitted floor")
        return apply_scale(depth, metric, None, None, median_depth_m)

    def close(self) -> None:
        self.model = None


def _floor_distance(points: np.ndarray) -> float:
    """Distance from the origin to a RANSAC plane through ``points`` (N, 3)."""
    if len(points) < 50:
        raise InputError("camera_height_m", "too few floor points to fit a plane (is the floor in view?)")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    scale = float(np.median(np.linalg.norm(points, axis=1)))
    plane, _ = cloud.segment_plane(distance_threshold=0.02 * scale, ransac_n=3, num_iterations=200,
                                   probability=0.9999)
    a, b, c, d = plane
    dist = abs(d) / float(np.linalg.norm([a, b, c]))
    if not np.isfinite(dist) or dist <= 0:
        raise InputError("camera_height_m", "the fitted floor plane passes through the camera")
    return dist


def apply_scale(depth: np.ndarray, metric: bool, K: np.ndarray | None, camera_height_m: float | None,
                median_depth_m: float | None) -> DepthEstimate:
    """Scale a depth map per the module doc."""
    if camera_height_m is not None:
        if not camera_height_m > 0:
            raise InputError("camera_height_m", f"expected > 0 metres, got {camera_height_m}")
        if K is None:
            raise InputError("K", "camera_height_m needs the intrinsics of a pinhole image")
        h, w = depth.shape
        v, u = np.mgrid[0:h, 0:w]
        rays = np.stack([u, v, np.ones_like(u)], -1).astype(np.float64) @ np.linalg.inv(K).T
        pts = rays * depth[..., None]
        low = pts[(v >= 2 * h // 3) & (depth > 0)]
        est = _floor_distance(low)
        return DepthEstimate((depth * camera_height_m / est).astype(np.float32), True,
                             f"scaled so the camera is {camera_height_m} m above the fitted floor")
    if median_depth_m is not None:
        if not median_depth_m > 0:
            raise InputError("median_depth_m", f"expected > 0 metres, got {median_depth_m}")
        valid = depth[depth > 0]
        return DepthEstimate((depth * median_depth_m / np.median(valid)).astype(np.float32), True,
                             f"scaled to a median depth of {median_depth_m} m")
    if metric:
        return DepthEstimate(depth.astype(np.float32), True, "metric depth model")
    return DepthEstimate(depth.astype(np.float32), False, "relative depth (median 1; no scale given)")


def equirect_directions(h: int, w: int) -> np.ndarray:
    """(h, w, 3) unit rays of an equirectangular image in camera axes (x right, y down, z forward at the centre)."""
    lon = (np.arange(w) + 0.5) / w * 2 * np.pi - np.pi
    lat = np.pi / 2 - (np.arange(h) + 0.5) / h * np.pi
    lon, lat = np.meshgrid(lon, lat)
    return np.stack([np.cos(lat) * np.sin(lon), -np.sin(lat), np.cos(lat) * np.cos(lon)], -1)


def face_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """(3, 3) rotation from a cube face's camera axes to the panorama's (yaw about y, then pitch about x)."""
    return euler_to_matrix((np.radians(yaw_deg), np.radians(pitch_deg), 0.0), "ryxz")


def sample_face(rgb: np.ndarray, R: np.ndarray, K: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) pinhole view of an equirectangular image along rotation ``R`` (face -> panorama)."""
    h, w = rgb.shape[:2]
    u, v = np.meshgrid(np.arange(size), np.arange(size))
    rays = np.stack([u, v, np.ones_like(u)], -1).astype(np.float64) @ np.linalg.inv(K).T @ R.T
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    lon = np.arctan2(rays[..., 0], rays[..., 2])
    lat = np.arcsin(np.clip(-rays[..., 1], -1, 1))
    x = ((lon + np.pi) / (2 * np.pi) * w - 0.5).astype(np.float32)
    y = ((np.pi / 2 - lat) / np.pi * h - 0.5).astype(np.float32)
    return cv2.remap(rgb.astype(np.float32), x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


def chain_scales(per_face: np.ndarray) -> np.ndarray:
    """(F,) scale per face so overlapping faces agree (median ratio), face 0 fixed at 1; breadth-first."""
    n = per_face.shape[0]
    scales = np.full(n, np.nan)
    scales[0] = 1.0
    frontier = [0]
    while frontier:
        a = frontier.pop(0)
        for b in range(n):
            if not np.isnan(scales[b]):
                continue
            both = (per_face[a] > 0) & (per_face[b] > 0)
            if both.sum() < 10:
                continue
            scales[b] = scales[a] * float(np.median(per_face[a][both] / per_face[b][both]))
            frontier.append(b)
    return np.where(np.isnan(scales), 1.0, scales)


def align_to_covered(estimate: np.ndarray, reference: np.ndarray, covered: np.ndarray,
                     min_pixels: int = 50) -> np.ndarray | None:
    """Fit ``1/ref ~ a / est + b`` (inverse depth, least squares) on covered pixels; the aligned depth or None.

    Args:
        estimate: (H, W) depth up to scale. reference: (H, W) metric depth (the cache render). covered: (H, W) bool.
    """
    m = covered & (reference > 0) & (estimate > 0)
    if m.sum() < min_pixels:
        return None
    x = 1.0 / estimate[m].astype(np.float64)
    y = 1.0 / reference[m].astype(np.float64)
    A = np.stack([x, np.ones_like(x)], 1)
    (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
    inv = a / np.clip(estimate, 1e-6, None) + b
    return np.where(inv > 1e-6, 1.0 / np.clip(inv, 1e-6, None), 0).astype(np.float32)
