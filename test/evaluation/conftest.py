"""A deliberately wrong backend (issue 11): every new bench section must be able to fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldstereo_ros.datasets.procedural_scene import build_scene, default_camera
from worldstereo_ros.datasets.rgbd_folder import write_rgbd_frame
from worldstereo_ros.generation import base
from worldstereo_ros.generation.base import GeneratedFrames, GenerationRequest, Generator
from worldstereo_ros.geometry.trajectories import lateral


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


def _write_room_folder(folder, width: int, height: int, frames: int, distance_m: float):
    """``frames`` RGB-D frames (width x height) of procedural room 0 sliding ``distance_m`` to the left, written
    into ``folder`` in the 7-Scenes layout; returns ``folder``."""
    scene = build_scene(0, 0.02)
    K, T0 = default_camera(width, height)
    for i, T in enumerate(lateral(T0, frames, distance_m, "left")):
        rgb, depth = scene.render(K, T, width, height)
        write_rgbd_frame(folder, i, (rgb * 255 + 0.5).astype(np.uint8), depth, T, K)
    return folder


@pytest.fixture(scope="session")
def write_room_folder():
    """The writer of a procedural-room sequence folder shared by the bench tests (see ``_write_room_folder``)."""
    return _write_room_folder
