"""Training the learned generator on a tiny procedural set (issue 12): seeded, resumable, lowers the loss."""

from __future__ import annotations

import csv
import time

import numpy as np
import pytest
import torch

from worldstereo_ros.datasets.random_rooms import random_camera_pair, random_room
from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.learned.data import rooms_source, sample_batch
from worldstereo_ros.generation.learned.model import FillNet
from worldstereo_ros.generation.learned.train import TrainConfig, fill_loss, ssim_map, train
from worldstereo_ros.generation.learned.weights import load_model

torch.set_num_threads(1)

TINY = dict(rooms=4, steps=40, batch_size=4, crop=(64, 64), room_size=(64, 96), epoch_steps=20, log_every=5,
            threads=1, progress=False, widths=(12, 16, 16, 24), fine=8, lr=3e-3)


def _fixed_loss(model: FillNet, cache) -> float:
    source = rooms_source(4, 0, 96, 64, cache_dir=cache)
    examples = [source[i] for i in range(len(source))]
    batch = sample_batch(examples, np.random.default_rng(123), (64, 64), reference_dropout=0.0)
    with torch.no_grad():
        loss, _ = fill_loss(model.eval()(batch.x), batch.rgb, batch.inv_depth, batch.hole, batch.valid)
    return float(loss)


def test_short_seeded_run_lowers_the_loss(tmp_path):
    t0 = time.perf_counter()
    cache = tmp_path / "examples"
    result = train(TrainConfig(out_dir=tmp_path / "run", cache_dir=cache, seed=0, **TINY))
    seconds = time.perf_counter() - t0
    assert seconds <= 30.0, f"tiny run took {seconds:.1f} s"
    assert result.step == 40
    torch.manual_seed(0)  # the initialisation train() starts from
    before = _fixed_loss(FillNet(widths=TINY["widths"], fine=TINY["fine"]), cache)
    after = _fixed_loss(load_model(result.model_path), cache)
    assert after < 0.9 * before, (before, after)
    rows = list(csv.DictReader(open(tmp_path / "run" / "losses.csv")))
    assert [int(r["step"]) for r in rows] == list(range(5, 41, 5))
    assert (tmp_path / "run" / "samples-epoch001.png").is_file()
    assert (tmp_path / "run" / "samples-epoch002.png").is_file()


def test_resume_continues_exactly(tmp_path):
    cache = tmp_path / "examples"
    cfg = dict(TINY, steps=8, epoch_steps=4, log_every=1)
    straight = train(TrainConfig(out_dir=tmp_path / "a", cache_dir=cache, seed=3, **cfg))
    # stop after 3 steps (mid-epoch: the stop writes its own checkpoint), then resume to 8
    stopped = train(TrainConfig(out_dir=tmp_path / "b", cache_dir=cache, seed=3, stop_after=3, **cfg))
    assert stopped.step == 3
    resumed = train(TrainConfig(out_dir=tmp_path / "b", cache_dir=cache, seed=3, **cfg))
    assert resumed.step == 8
    a, b = load_model(straight.model_path).state_dict(), load_model(resumed.model_path).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_bad_config_names_the_field(tmp_path):
    with pytest.raises(InputError, match="crop"):
        TrainConfig(out_dir=tmp_path, crop=(60, 64), rooms=1).check()
    with pytest.raises(InputError, match="sequences"):
        TrainConfig(out_dir=tmp_path, rooms=0).check()
    with pytest.raises(InputError, match="pipeline_pairs"):
        TrainConfig(out_dir=tmp_path, rooms=1, pipeline_pairs=-1).check()
    with pytest.raises(InputError, match="render_condition"):
        TrainConfig(out_dir=tmp_path, sequences=[tmp_path], pipeline_pairs=2).check()


def test_ssim_of_identical_images_is_one():
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(ssim_map(x, x), torch.ones(1, 3, 32, 32), atol=1e-4)
    assert float(ssim_map(x, 1 - x).mean()) < 0.5


def test_random_rooms_are_seeded_and_checked():
    a, b = random_room(5, 0.03), random_room(5, 0.03)
    assert np.array_equal(a.scene.xyz, b.scene.xyz) and np.array_equal(a.scene.rgb, b.scene.rgb)
    assert not np.array_equal(random_room(6, 0.03).scene.xyz.shape, (0, 3))
    Ti, Tj, Tk = random_camera_pair(a, 5)
    assert np.array_equal(Ti, random_camera_pair(a, 5)[0]) and not np.allclose(Ti, Tj)
    with pytest.raises(InputError, match="seed"):
        random_room(-1)
    with pytest.raises(InputError, match="spacing_m"):
        random_room(0, spacing_m=1.0)
