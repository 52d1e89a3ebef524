"""Issue 16: the stereo evaluation on the real Middlebury pair (skips without the shared data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation import stereo_synthesis as ev


@pytest.fixture(scope="module")
def motorcycle(middlebury_dir):
    return middlebury_dir


def test_motorcycle_beats_warp_telea_by_the_target(motorcycle):
    torch.set_num_threads(1)
    rows = ev.evaluate_pair(motorcycle)
    base, ours = rows[0], rows[1]
    assert base.psnr_full == pytest.approx(22.46, abs=0.05)  # the bench's classical baseline
    assert ours.psnr_full >= base.psnr_full + 1.0
    assert ours.psnr_occluded > base.psnr_occluded
    assert ev.pair_targets_met(rows)


def test_pan_video_propagation_costs_little_psnr(motorcycle):
    torch.set_num_threads(1)
    pan = ev.pan_video_psnr(motorcycle, frames=6)
    assert pan["per-frame"] - pan["propagated"] <= ev.TARGET_PSNR_LOSS_DB
    assert np.isfinite(pan["ewarp_propagated"])


def test_pair_name_needs_one_left_image(tmp_path):
    with pytest.raises(InputError, match="folder"):
        ev.find_pair_name(tmp_path)
