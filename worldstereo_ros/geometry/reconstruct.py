"""Generated frames back to coloured world points: the "reconstruct" stage of the pipeline, as pure geometry."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from worldstereo_ros.geometry.projection import backproject_depth, depth_edge_mask


def reconstruct_points(rgb: np.ndarray, depth: np.ndarray, imagined: np.ndarray, K: np.ndarray,
                       T_world_cam: np.ndarray, imagined_confidence: float = 0.5, imagined_only: bool = True,
                       drop_edges: bool = True, edge_threshold: float = 0.08, stride: int = 1,
                       device: str | torch.device = "cpu", return_sources: bool = False,
                       max_imagined_distance_px: float | None = None) -> tuple[torch.Tensor, ...]:
    """Back-project generated frames into coloured world points with confidences.

    Args:
        rgb: (N, H, W, 3) float32 in [0, 1]. depth: (N, H, W) float32 metres, 0 = unknown.
        imagined: (N, H, W) bool. K: (3, 3) or (N, 3, 3). T_world_cam: (N, 4, 4) OpenCV optical frames.
        imagined_confidence: confidence of imagined pixels (observed ones get 1).
        imagined_only: keep only imagined pixels.
        drop_edges: drop pixels on depth edges (:func:`~worldstereo_ros.geometry.projection.depth_edge_mask`).
        edge_threshold: threshold of that mask.
        stride: keep every ``stride``-th pixel along each image axis.
        device: torch device of the outputs.
        return_sources: also return each point's frame index (M,) int64 and imagined flag (M,) bool.
        max_imagined_distance_px: keep only the imagined pixels within this distance (pixels) of an observed
            pixel of their frame; None keeps all.
    Returns:
        xyz (M, 3) float32 world metres, rgb (M, 3) float32, confidence (M,) float32 (and the sources).
    """
    depth_t = torch.as_tensor(np.asarray(depth, dtype=np.float32), device=device)
    n, h, w = depth_t.shape
    keep = depth_t > 0
    imagined_t = torch.as_tensor(np.asarray(imagined, dtype=bool), device=device)
    if imagined_only:
        keep &= imagined_t
    if drop_edges:
        for i in range(n):
            if bool(keep[i].any()):
                keep[i] &= ~depth_edge_mask(depth_t[i], edge_threshold).to(device)
    if max_imagined_distance_px is not None:
        for i in range(n):
            mask = np.asarray(imagined[i], dtype=np.uint8)
            if mask.any():
                dist = torch.as_tensor(cv2.distanceTransform(mask, cv2.DIST_L2, 3), device=device)
                keep[i] &= ~imagined_t[i] | (dist <= max_imagined_distance_px)
    if stride > 1:
        grid = torch.zeros((h, w), dtype=torch.bool, device=device)
        grid[::stride, ::stride] = True
        keep &= grid
    K_t = torch.as_tensor(np.asarray(K, dtype=np.float64), device=device)
    K_t = K_t.expand(n, 3, 3) if K_t.ndim == 2 else K_t
    T_t = torch.as_tensor(np.asarray(T_world_cam, dtype=np.float64), device=device)
    rows = []
    for i in range(n):  # frame by frame: only the kept pixels are transformed
        if not bool(keep[i].any()):
            continue
        cam = backproject_depth(depth_t[i].to(torch.float64), K_t[i], None)[keep[i]]
        rows.append((cam @ T_t[i, :3, :3].T + T_t[i, :3, 3]).to(torch.float32))
    if not rows:
        empty = torch.zeros((0, 3), dtype=torch.float32, device=device)
        out = empty, empty.clone(), torch.zeros(0, dtype=torch.float32, device=device)
        if return_sources:
            return (*out, torch.zeros(0, dtype=torch.int64, device=device),
                    torch.zeros(0, dtype=torch.bool, device=device))
        return out
    xyz = torch.cat(rows)
    colours = torch.as_tensor(np.asarray(rgb, dtype=np.float32), device=device)[keep]
    conf = torch.where(imagined_t[keep], torch.tensor(float(imagined_confidence), device=device),
                       torch.tensor(1.0, device=device))
    if return_sources:
        frame = torch.arange(n, device=device)[:, None, None].expand(n, h, w)[keep]
        return xyz, colours, conf.to(torch.float32), frame, imagined_t[keep]
    return xyz, colours, conf.to(torch.float32)
