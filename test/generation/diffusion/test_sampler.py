"""Samplers: DMD schedule values, Euler exactness, call counts, progress and cancel (issue 13)."""

from __future__ import annotations

import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.base import GenerationCancelled
from worldstereo_ros.generation.diffusion.sampler import (
    DMDScheduler,
    denoise,
    dmd_timesteps,
    initial_noise,
    unipc_scheduler,
)


@pytest.mark.parametrize("shift, expected", [
    (1, [1000, 750, 500, 250]),
    (3, [1000, 900, 750, 500]),
    (5, [1000, 937.5, 833.3, 625]),
    (8, [1000, 960, 888.9, 727.3]),
])
def test_dmd_schedule_values(shift, expected):
    assert dmd_timesteps(4, 250, 1000, shift).tolist() == pytest.approx(expected, abs=0.05)


def test_oracle_velocity_recovers_x0_in_one_step():
    x0 = torch.randn(2, 16, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(2, 16, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    sched = DMDScheduler(shift=5.0)
    sched.set_timesteps(1)  # one step from sigma 1 straight to 0
    for t in (1000.0, 937.5, 400.0):
        sched.timesteps = torch.tensor([t], dtype=torch.float64)
        xt = sched.add_noise(x0, noise, t)
        out = sched.step(noise - x0, torch.tensor(t), xt).prev_sample
        assert torch.allclose(out, x0, atol=1e-5)


def _counting_velocity(target: torch.Tensor):
    calls = {"pos": 0, "neg": 0}

    def velocity(x, t, positive):
        calls["pos" if positive else "neg"] += 1
        sigma = (t / 1000.0).reshape(-1, 1, 1, 1, 1)
        # The exact flow velocity towards ``target`` from x_sigma: (x - target) / sigma.
        return (x - target) / sigma.clamp_min(1e-6)

    return velocity, calls


def test_dmd_makes_four_calls_and_reaches_the_target():
    target = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    velocity, calls = _counting_velocity(target)
    progress = []
    out = denoise(velocity, initial_noise((1, 16, 3, 4, 4), torch.Generator().manual_seed(4)), DMDScheduler(), 4,
                  on_step=lambda s, n: progress.append((s, n)))
    assert calls == {"pos": 4, "neg": 0}
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert torch.allclose(out, target, atol=1e-4)


@pytest.mark.parametrize("guidance, expected", [(5.0, {"pos": 6, "neg": 6}), (1.0, {"pos": 6, "neg": 0})])
def test_unipc_call_counts(guidance, expected):
    target = torch.zeros(1, 16, 3, 4, 4)
    velocity, calls = _counting_velocity(target)
    out = denoise(velocity, initial_noise((1, 16, 3, 4, 4), torch.Generator().manual_seed(0)), unipc_scheduler(), 6,
                  guidance_scale=guidance)
    assert calls == expected
    assert out.abs().max() < 0.05  # both predictions agree on the target, so guidance keeps it


def test_cancel_between_steps():
    velocity, calls = _counting_velocity(torch.zeros(1, 16, 1, 2, 2))
    state = {"n": 0}

    def cancel():
        state["n"] += 1
        return state["n"] > 2

    with pytest.raises(GenerationCancelled, match="before denoising step 3 of 4"):
        denoise(velocity, torch.randn(1, 16, 1, 2, 2), DMDScheduler(), 4, should_cancel=cancel)
    assert calls["pos"] == 2


def test_noise_is_drawn_on_cpu_and_repeatable():
    a = initial_noise((2, 3), torch.Generator().manual_seed(9))
    b = initial_noise((2, 3), torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and a.device.type == "cpu"


def test_bad_schedule_inputs():
    with pytest.raises(InputError, match="steps: expected an int >= 1"):
        dmd_timesteps(0)
    with pytest.raises(InputError, match="guidance_scale: expected >= 1"):
        denoise(lambda x, t, p: x, torch.zeros(1, 16, 1, 2, 2), DMDScheduler(), 4, guidance_scale=0.5)
    with pytest.raises(InputError, match="timestep: 123.0 is not in the schedule"):
        DMDScheduler().step(torch.zeros(1), torch.tensor(123.0), torch.zeros(1))
