"""The condition a backend gets for one target pose when the pipeline starts from one snapshot: the cache
render (colours, depth, coverage). The learned generator trains on it (``worldstereo-ros train
--pipeline-pairs``), so the training data is built by the same code as the inference condition.
"""

from __future__ import annotations

import numpy as np
import torch

from worldstereo_ros.pipeline.config import PipelineConfig
from worldstereo_ros.pipeline.loop import ImaginationPipeline
from worldstereo_ros.snapshot import Snapshot


def render_condition(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, T_world_source: np.ndarray,
                     T_world_target: np.ndarray, height: int, width: int, config: PipelineConfig | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pipeline initialised from one RGB-D frame, its cache rendered at another pose.

    Args:
        rgb: (H, W, 3) uint8 or float [0, 1] source frame. depth: (H, W) metres, 0 = unknown. K: (3, 3) pixels,
            shared by source and target. T_world_source, T_world_target: (4, 4) camera-to-world poses.
        height, width: target size, pixels. config: pipeline settings (default: the defaults, render_fill).
    Returns:
        rgb (height, width, 3) float32 [0, 1], depth (height, width) float32 metres and observed
        (height, width) bool, each 0 / False where the cache does not cover the pixel.
    """
    pipe = ImaginationPipeline(config or PipelineConfig(backend="render_fill"))
    pipe.initialize(Snapshot.create(rgb, depth, K, T_world_source, frame_id="condition"))
    T_cw = torch.linalg.inv(torch.as_tensor(np.asarray(T_world_target, np.float64)))
    cond = pipe.cache.render(torch.as_tensor(np.asarray(K, np.float64)), T_cw, height, width,
                             splat_px=pipe.config.splat_px)
    observed = cond.mask[0].cpu().numpy().astype(bool)
    colours = np.where(observed[..., None], cond.rgb[0].cpu().numpy(), 0.0).astype(np.float32)
    return colours, np.where(observed, cond.depth[0].cpu().numpy(), 0.0).astype(np.float32), observed
