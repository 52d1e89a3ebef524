"""A deliberately wrong backend (issue 11): every new bench section must be able to fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldstereo_ros.generation import base
from worldstereo_ros.generation.base import GeneratedFrames, GenerationRequest, Generator


class ShiftedNoiseBackend(Generator):
    """Returns the cache render shifted 3 px to the right and uniform noise in its holes."""

    name = "test_shifted_noise"
    uses_references = False

    def generate(self, request: GenerationRequest, generator: torch.Generator | None = None,
                 on_frame=None) -> GeneratedFrames:
        request.check()
        rng = np.random.default_rng(0)
        rgb = np.roll(np.asarray(request.cond_rgb, np.float32), 3, axis=2)
        mask = np.roll(np.asarray(request.cond_mask, bool), 3, axis=2)
        depth = np.roll(np.asarray(request.cond_depth, np.float32), 3, axis=2)
        rgb = np.where(mask[..., None], rgb, rng.random(rgb.shape, dtype=np.float32))
        imagined = ~np.asarray(request.cond_mask, bool)
        if on_frame is not None:
            for i in range(request.num_frames):
                on_frame(i, rgb[i], depth[i], imagined[i])
        return GeneratedFrames(rgb=rgb, depth=depth, imagined=imagined)


@pytest.fixture
def wrong_backend():
    """Registers :class:`ShiftedNoiseBackend` for one test and removes it after."""
    base.register_backend(ShiftedNoiseBackend)
    yield ShiftedNoiseBackend.name
    base._BACKENDS.pop(ShiftedNoiseBackend.name, None)
