"""Distribution-matching distillation (DMD) of a WorldStereo teacher into the 4-step generator.

The release ships the 4-step sampler and the generator rollout used in training, not the training code; this is the
standard DMD2 recipe on the release's rollout (``docs/worldstereo-backend.md`` section 4):

- three networks with the same call signature ``net(x, timestep, positive) -> velocity``: the **generator** G
  (initialised from the teacher; backbone trainable, geometry branch frozen), the **real score** R (the teacher,
  frozen, queried with text CFG) and the **fake score** F (initialised from the teacher, trainable);
- rollout: the release's deterministic 4-step Euler ODE from pure noise; with k ~ U{1..4} the first k - 1 steps run
  without gradients and step k jumps straight to sigma 0 with gradients (``x0 = x - sigma_k v``);
- fake-score loss (flow matching on generator samples): ``|F(x_t, t) - (noise' - x0)|^2`` with
  ``x_t = (1 - sigma) x0 + sigma noise'``, t ~ U[t_min, t_max];
- generator loss: ``grad = (x0_fake - x0_real) / mean|x0 - x0_real|`` (per sample) with ``x0_real`` from R's CFG
  velocity and ``x0_fake`` from F's, and ``L_G = 0.5 |x0 - stopgrad(x0 - grad)|^2``, whose gradient w.r.t. x0 is
  ``grad``;
- two time scales: ``fake_updates`` F steps per G step.

Shapes: latents (B, ...) float32; timesteps (B,) in [0, 1000].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.diffusion.sampler import NUM_TRAIN_TIMESTEPS, dmd_timesteps

#: net(x (B, ...), timestep (B,), positive prompt?) -> velocity like x.
ScoreFn = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.ndim - 1)))


def rollout(generator: ScoreFn, noise: torch.Tensor, timesteps: torch.Tensor, k: int,
            grad_last: bool = True) -> torch.Tensor:
    """The generator's sample after ``k`` of its Euler steps, the k-th jumping to sigma 0 (module doc).

    Args:
        generator: the generator's velocity.
        noise: (B, ...) pure noise (sigma 1).
        timesteps: (S,) the generator's descending schedule (``dmd_timesteps``).
        k: steps in [1, S].
        grad_last: keep the graph of the last step (generator update) or not (fake-score update).
    """
    if not 1 <= k <= len(timesteps):
        raise InputError("k", f"expected an int in [1, {len(timesteps)}], got {k}")
    sigmas = torch.cat([timesteps.double() / NUM_TRAIN_TIMESTEPS, torch.zeros(1, dtype=torch.float64)])
    x = noise
    with torch.no_grad():
        for i in range(k - 1):
            t = torch.full((x.shape[0],), float(timesteps[i]), device=x.device)
            x = x + float(sigmas[i + 1] - sigmas[i]) * generator(x, t, True)
    t = torch.full((x.shape[0],), float(timesteps[k - 1]), device=x.device)
    with torch.set_grad_enabled(grad_last and torch.is_grad_enabled()):
        return x - float(sigmas[k - 1]) * generator(x, t, True)


@dataclass
class DMDConfig:
    """Hyper-parameters (the release's are unknown; defaults follow DMD2 / the doc's toy).

    Attributes:
        guidance_scale: teacher CFG of the real score (1 = none).
        fake_updates: fake-score steps per generator step.
        t_min, t_max: range of the diffusion timestep of both losses, as fractions of 1000.
        steps, start, shift: the generator's schedule (:func:`dmd_timesteps`).
        normaliser: ``"sample"`` (DMD: mean |x0 - x0_real| over each sample's elements) or ``"batch"`` (over the
            whole batch; for samples of one element, where a per-sample mean is just |x0 - x0_real|).
    """

    guidance_scale: float = 5.0
    fake_updates: int = 5
    t_min: float = 0.02
    t_max: float = 0.98
    steps: int = 4
    start: float = 250.0
    shift: float = 5.0
    normaliser: str = "sample"


class DMDTrainer:
    """One DMD iteration = ``fake_updates`` fake-score steps + one generator step (module doc).

    Args:
        generator, real, fake: the three networks' velocity functions (same conditions bound).
        generator_params: the generator's trainable parameters (its optimiser's); fake_params likewise.
        opt_generator, opt_fake: their optimisers.
        config: hyper-parameters.
        noise_shape: shape of one batch of latents (B, ...).
        rng: CPU generator for every random draw (noise, k, t): runs repeat.
    """

    def __init__(self, generator: ScoreFn, real: ScoreFn, fake: ScoreFn, opt_generator: torch.optim.Optimizer,
                 opt_fake: torch.optim.Optimizer, noise_shape: tuple[int, ...], config: DMDConfig | None = None,
                 rng: torch.Generator | None = None, device: torch.device | str = "cpu") -> None:
        self.g, self.r, self.f = generator, real, fake
        self.opt_g, self.opt_f = opt_generator, opt_fake
        self.cfg = config or DMDConfig()
        if self.cfg.fake_updates < 1:
            raise InputError("fake_updates", f"expected >= 1, got {self.cfg.fake_updates}")
        if self.cfg.normaliser not in ("sample", "batch"):
            raise InputError("normaliser", f"expected 'sample' or 'batch', got {self.cfg.normaliser!r}")
        if not 0 <= self.cfg.t_min < self.cfg.t_max <= 1:
            raise InputError("t_min", f"expected 0 <= t_min < t_max <= 1, got {self.cfg.t_min}, {self.cfg.t_max}")
        self.shape = tuple(noise_shape)
        self.rng = rng or torch.Generator().manual_seed(0)
        self.device = torch.device(device)
        self.timesteps = dmd_timesteps(self.cfg.steps, self.cfg.start, NUM_TRAIN_TIMESTEPS, self.cfg.shift)

    def _randn(self) -> torch.Tensor:
        return torch.randn(self.shape, generator=self.rng).to(self.device)

    def _k(self) -> int:
        return int(torch.randint(1, self.cfg.steps + 1, (1,), generator=self.rng))

    def _t(self) -> torch.Tensor:
        u = torch.rand(self.shape[0], generator=self.rng, dtype=torch.float64)
        return ((self.cfg.t_min + (self.cfg.t_max - self.cfg.t_min) * u) * NUM_TRAIN_TIMESTEPS).float().to(self.device)

    def _noised(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        t = self._t()
        sigma = _bcast(t / NUM_TRAIN_TIMESTEPS, x0)
        eps = self._randn()
        return t, sigma, eps, (1 - sigma) * x0 + sigma * eps

    def fake_loss(self) -> torch.Tensor:
        """Flow-matching loss of the fake score on a fresh generator sample (no graph into the generator)."""
        with torch.no_grad():
            x0 = rollout(self.g, self._randn(), self.timesteps, self._k(), grad_last=False)
        t, _, eps, xt = self._noised(x0)
        return F.mse_loss(self.f(xt, t, True).float(), (eps - x0).float())

    def generator_loss(self) -> torch.Tensor:
        """The DMD loss whose gradient w.r.t. the generator sample is the normalised score difference."""
        x0 = rollout(self.g, self._randn(), self.timesteps, self._k(), grad_last=True)
        with torch.no_grad():
            t, sigma, _, xt = self._noised(x0.detach())
            v_real = self.r(xt, t, True).float()
            if self.cfg.guidance_scale != 1.0:
                v_neg = self.r(xt, t, False).float()
                v_real = v_neg + self.cfg.guidance_scale * (v_real - v_neg)
            x0_real = xt - sigma * v_real
            x0_fake = xt - sigma * self.f(xt, t, True).float()
            dims = tuple(range(1 if self.cfg.normaliser == "sample" else 0, x0.ndim))
            norm = (x0.detach() - x0_real).abs().mean(dim=dims, keepdim=True).clamp_min(1e-8)
            grad = (x0_fake - x0_real) / norm
            target = x0.detach() - grad
        return 0.5 * F.mse_loss(x0.float(), target)

    def step(self) -> dict[str, float]:
        """One two-time-scale iteration; returns the last losses."""
        for _ in range(self.cfg.fake_updates):
            self.opt_f.zero_grad(set_to_none=True)
            loss_f = self.fake_loss()
            loss_f.backward()
            self.opt_f.step()
        self.opt_g.zero_grad(set_to_none=True)
        # The fake score must not collect gradients from the generator loss (it is read under no_grad).
        loss_g = self.generator_loss()
        loss_g.backward()
        self.opt_g.step()
        return {"fake": float(loss_f.detach()), "generator": float(loss_g.detach())}

    @torch.no_grad()
    def sample(self, n_batches: int = 1) -> torch.Tensor:
        """Full 4-step generator samples (n_batches * B, ...)."""
        return torch.cat([rollout(self.g, self._randn(), self.timesteps, self.cfg.steps, grad_last=False)
                          for _ in range(n_batches)])


def trainable_backbone(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Freeze the geometry branch of a WorldStereoTransformer and return the rest as trainable parameters."""
    model.requires_grad_(True)
    model.controlnet.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def freeze(modules: Iterable[torch.nn.Module]) -> None:
    for m in modules:
        m.requires_grad_(False)
        m.eval()


# ------------------------------------------------------------------------------------------ toy (tests, docs)


def mixture_velocity(means: tuple[float, ...] = (-2.0, 2.0), std: float = 0.3) -> ScoreFn:
    """Exact flow velocity ``E[noise - x0 | x_t]`` of an equal-weight 1-D Gaussian mixture (the toy teacher)."""
    mu = torch.tensor(means, dtype=torch.float64)

    def velocity(x: torch.Tensor, t: torch.Tensor, positive: bool = True) -> torch.Tensor:
        xs = x.double().reshape(-1, 1)
        s = (t.double() / NUM_TRAIN_TIMESTEPS).reshape(-1, 1).clamp(1e-4, 1.0)
        var = (1 - s) ** 2 * std**2 + s**2
        logw = -0.5 * (xs - (1 - s) * mu) ** 2 / var
        w = torch.softmax(logw, dim=1)
        x0_k = mu + (1 - s) * std**2 / var * (xs - (1 - s) * mu)
        x0 = (w * x0_k).sum(1, keepdim=True)
        eps = (xs - (1 - s) * x0) / s
        return (eps - x0).reshape(x.shape).to(x.dtype)

    return velocity


class ToyVelocity(torch.nn.Module):
    """A small MLP ``(x, sigma) -> v`` for 1-D samples (B, 1)."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden),
                                       torch.nn.SiLU(), torch.nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, positive: bool = True) -> torch.Tensor:
        return self.net(torch.cat([x, (t / NUM_TRAIN_TIMESTEPS).reshape(-1, 1)], dim=1))
