"""Samplers of the WorldStereo model: the DMD 4-step Euler schedule and UniPC with text CFG, in one loop.

Flow matching convention of Wan: ``x_sigma = (1 - sigma) x0 + sigma * noise``, the model predicts the velocity
``v = noise - x0``, timestep = 1000 * sigma. An Euler step goes ``x_{sigma'} = x_sigma + (sigma' - sigma) v``.

- :class:`DMDScheduler`: the distilled model's fixed schedule. ``u = linspace(start, T, steps)[::-1] / T``,
  ``timesteps = T * shift * u / (1 + (shift - 1) u)`` (start 250, T 1000, shift 5 -> 1000, 937.5, 833.3, 625);
  each step is an Euler step to the next timestep and the last one goes to sigma = 0 (the clean sample).
  One forward per step, no guidance.
- UniPC: diffusers' ``UniPCMultistepScheduler`` (flow prediction, flow sigmas, Wan's ``flow_shift``), 40 steps with
  classifier-free guidance on the text: ``v = v_neg + g (v_pos - v_neg)``, two forwards per step.

:func:`denoise` is the one loop both use: model call(s), guidance, ``scheduler.step``, ``on_step(step, total)`` and a
cancel check between steps. Initial noise is drawn on the CPU from the caller's generator, so a seed gives the same
result on any device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from diffusers import UniPCMultistepScheduler

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.base import CancelCheck, GenerationCancelled, StepCallback

NUM_TRAIN_TIMESTEPS = 1000

#: velocity(latents (B, 16, F, h, w), timestep (B,) float in [0, 1000], positive: bool) -> velocity like latents.
#: ``positive=False`` asks for the unconditional (negative-prompt) prediction used by CFG.
VelocityFn = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]


def dmd_timesteps(steps: int = 4, start: float = 250.0, end: float = NUM_TRAIN_TIMESTEPS,
                  shift: float = 5.0) -> torch.Tensor:
    """(steps,) float64 shifted timesteps of the DMD generator, descending from ``end`` (module doc)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError("steps", f"expected an int >= 1, got {steps!r}")
    if not 0 < start <= end:
        raise InputError("dmd_start_steps", f"expected 0 < start <= end ({end}), got {start}")
    if shift <= 0:
        raise InputError("gen_shift", f"expected > 0, got {shift}")
    u = torch.linspace(start, end, steps, dtype=torch.float64).flip(0) / end
    return end * shift * u / (1 + (shift - 1) * u)


class Scheduler(Protocol):
    timesteps: torch.Tensor

    def set_timesteps(self, num_inference_steps: int, device: torch.device | str | None = None) -> None: ...

    def step(self, model_output: torch.Tensor, timestep: torch.Tensor, sample: torch.Tensor,
             return_dict: bool = True): ...


@dataclass
class _StepOutput:
    prev_sample: torch.Tensor


class DMDScheduler:
    """The distilled generator's Euler schedule with the diffusers scheduler interface (module doc).

    Args:
        start, end, shift: see :func:`dmd_timesteps`.
    """

    order = 1

    def __init__(self, start: float = 250.0, end: float = NUM_TRAIN_TIMESTEPS, shift: float = 5.0) -> None:
        self.start, self.end, self.shift = float(start), float(end), float(shift)
        self.timesteps = dmd_timesteps(4, self.start, self.end, self.shift)
        self._index = 0

    def set_timesteps(self, num_inference_steps: int, device: torch.device | str | None = None) -> None:
        self.timesteps = dmd_timesteps(num_inference_steps, self.start, self.end, self.shift)
        self._index = 0

    @property
    def sigmas(self) -> torch.Tensor:
        """(steps + 1,) sigma of every step and the final 0."""
        return torch.cat([self.timesteps / self.end, torch.zeros(1, dtype=self.timesteps.dtype)])

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timestep: torch.Tensor | float) -> torch.Tensor:
        """``(1 - sigma) x0 + sigma noise`` at ``timestep`` (scalar or (B,))."""
        sigma = torch.as_tensor(timestep, dtype=torch.float64) / self.end
        sigma = sigma.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.device, torch.float32) if sigma.ndim else float(sigma)
        return (1 - sigma) * x0 + sigma * noise

    def step(self, model_output: torch.Tensor, timestep: torch.Tensor, sample: torch.Tensor, return_dict: bool = True):
        """Euler step from ``timestep`` to the next one of the schedule (sigma 0 after the last)."""
        matches = (self.timesteps - float(timestep)).abs() < 1e-6
        if not bool(matches.any()):
            raise InputError("timestep", f"{float(timestep)} is not in the schedule {self.timesteps.tolist()}")
        i = int(matches.nonzero()[0, 0])
        sigmas = self.sigmas
        prev = (sample.float() + float(sigmas[i + 1] - sigmas[i]) * model_output.float()).to(sample.dtype)
        return _StepOutput(prev) if return_dict else (prev,)


def unipc_scheduler(flow_shift: float = 3.0, config: dict | None = None):
    """diffusers' UniPC configured as Wan's flow-matching scheduler (or from a base folder's ``scheduler/`` config)."""
    if config is not None:
        return UniPCMultistepScheduler.from_config(config)
    return UniPCMultistepScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, prediction_type="flow_prediction",
                                   use_flow_sigmas=True, flow_shift=flow_shift, solver_order=2)


def initial_noise(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise drawn on the CPU from ``generator`` (then moved): the same on every device."""
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)


def denoise(velocity: VelocityFn, latents: torch.Tensor, scheduler: Scheduler, steps: int,
            guidance_scale: float = 1.0, on_step: StepCallback | None = None,
            should_cancel: CancelCheck | None = None, step_offset: int = 0, total_steps: int | None = None
            ) -> torch.Tensor:
    """Run the sampler from pure noise ``latents`` (B, 16, F, h, w) to a clean latent.

    Args:
        velocity: the model call (see :data:`VelocityFn`).
        latents: initial noise, float32.
        scheduler: :class:`DMDScheduler` or a diffusers flow scheduler (UniPC).
        steps: denoising steps (4 for DMD, 40 for the teacher models).
        guidance_scale: text CFG scale; > 1 makes two forwards per step (positive and negative prompt).
        on_step: called with (step, total) after each step (``step_offset + i + 1`` of ``total_steps``).
        should_cancel: polled before each step; True raises GenerationCancelled.
        step_offset, total_steps: progress numbering when a trajectory runs several chunks.

    Returns:
        The clean latent (B, 16, F, h, w), float32.
    """
    if guidance_scale < 1.0:
        raise InputError("guidance_scale", f"expected >= 1 (1 = no guidance), got {guidance_scale}")
    scheduler.set_timesteps(steps, device=latents.device)
    total = total_steps if total_steps is not None else steps
    x = latents
    for i, t in enumerate(scheduler.timesteps):
        if should_cancel is not None and should_cancel():
            raise GenerationCancelled(f"cancelled before denoising step {step_offset + i + 1} of {total}")
        timestep = torch.full((x.shape[0],), float(t), device=x.device, dtype=torch.float32)
        v = velocity(x, timestep, True).float()
        if guidance_scale > 1.0:
            v_neg = velocity(x, timestep, False).float()
            v = v_neg + guidance_scale * (v - v_neg)
        x = scheduler.step(v, t, x, return_dict=False)[0]
        if on_step is not None:
            on_step(step_offset + i + 1, total)
    return x
