"""Pure helpers of the pipeline's stages (:mod:`worldstereo_ros.pipeline.loop` module doc), kept apart so
the loop reads as the sequence of stages."""

from __future__ import annotations

import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.base import GeneratedFrames
from worldstereo_ros.geometry.projection import backproject_depth


def beyond_rendered_depth(xyz: torch.Tensor, frame: torch.Tensor, T_cam_world: torch.Tensor, cond) -> torch.Tensor:
    """(M,) bool: points deeper in their frame (``frame`` (M,) indexes ``T_cam_world`` (N, 4, 4)) than the
    farthest cache point of that frame's render ``cond`` (loop module doc, stage 6). A frame the cache does
    not reach at all supports no imagined depth."""
    far = torch.where(cond.mask, cond.depth, torch.zeros_like(cond.depth)).flatten(1).amax(dim=1)
    T = T_cam_world.to(xyz.device, torch.float64)[frame]
    z = (T[:, 2, :3] * xyz.to(torch.float64)).sum(dim=1) + T[:, 2, 3]
    return z > far.to(xyz.device, torch.float64)[frame]


def check_frames(frames: GeneratedFrames, n: int, height: int, width: int) -> None:
    """Raise InputError (field ``backend.<array>``) unless the backend returned n frames of height x width."""
    for name, shape in (("rgb", (n, height, width, 3)), ("depth", (n, height, width)),
                        ("imagined", (n, height, width))):
        actual = tuple(np.shape(getattr(frames, name)))
        if actual != shape:
            raise InputError(f"backend.{name}", f"expected shape {shape}, got {actual}")


def aligned_depth(depth: np.ndarray, K: np.ndarray, T_world_cam: np.ndarray, T_fix: np.ndarray) -> np.ndarray:
    """Depth (N, H, W) float32 metres of the geometry moved by the Sim(3) ``T_fix`` (4, 4), seen from the
    (unchanged) target poses ``T_world_cam`` (N, 4, 4) with intrinsics ``K`` (3, 3); 0 stays 0."""
    out = np.zeros_like(depth)
    for i in range(depth.shape[0]):
        cam = backproject_depth(torch.as_tensor(depth[i], dtype=torch.float64), torch.as_tensor(K), None).numpy()
        world = cam @ T_world_cam[i, :3, :3].T + T_world_cam[i, :3, 3]
        moved = world @ T_fix[:3, :3].T + T_fix[:3, 3]
        T_cw = np.linalg.inv(T_world_cam[i])
        z = (moved @ T_cw[:3, :3].T + T_cw[:3, 3])[..., 2]
        out[i] = np.where(depth[i] > 0, z, 0.0).astype(np.float32)
    return out
