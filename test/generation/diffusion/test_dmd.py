"""DMD distillation: the toy cuts its distance to the target by >= 50 %; one step on three tiny models (issue 13)."""

from __future__ import annotations

import copy

import pytest
import torch
from scipy.stats import wasserstein_distance
from ws_tiny import parity_inputs, tiny_model

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.diffusion.dmd import (
    DMDConfig,
    DMDTrainer,
    ToyVelocity,
    freeze,
    mixture_velocity,
    rollout,
    trainable_backbone,
)
from worldstereo_ros.generation.diffusion.sampler import dmd_timesteps


def test_toy_dmd_halves_the_distance_to_the_target():
    torch.manual_seed(0)
    gen, fake = ToyVelocity(), ToyVelocity()
    trainer = DMDTrainer(gen, mixture_velocity(), fake, torch.optim.Adam(gen.parameters(), 3e-3),
                         torch.optim.Adam(fake.parameters(), 3e-3), (256, 1),
                         DMDConfig(guidance_scale=1.0, fake_updates=2, normaliser="batch"),
                         torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    target = torch.cat([torch.randn(2048, generator=g) * 0.3 - 2, torch.randn(2048, generator=g) * 0.3 + 2]).numpy()

    def distance() -> float:
        return wasserstein_distance(trainer.sample(16).flatten().numpy(), target)

    before = distance()
    for _ in range(200):
        trainer.step()
    after = distance()
    assert after <= 0.5 * before, (before, after)


def test_teacher_rollout_reaches_the_mixture():
    # The exact teacher velocity, sampled with the generator's own 4-step schedule, lands near +-2.
    x = rollout(mixture_velocity(), torch.randn(4096, 1, generator=torch.Generator().manual_seed(0)),
                dmd_timesteps(40, 25, 1000, 1.0), 40, grad_last=False)
    assert abs(x.abs().mean().item() - 2.0) < 0.15


def _bind(model, inputs, neg_text):
    cond = inputs["hidden_states"][:, 16:]
    extra = {k: inputs[k] for k in ("render_latent", "render_mask", "plucker", "reference_latent", "ref_index",
                                    "camera_qt", "camera_qt_ref")}

    def velocity(x, t, positive):
        text = inputs["encoder_hidden_states"] if positive else neg_text
        return model(torch.cat([x, cond], 1), t, text, inputs["encoder_hidden_states_image"], **extra)

    return velocity


def test_one_step_on_three_tiny_models_trains_only_what_it_should():
    inputs = parity_inputs()
    neg = torch.zeros_like(inputs["encoder_hidden_states"])
    teacher = tiny_model("memory", seed=1)
    with torch.no_grad():  # a teacher whose branch matters
        for p in teacher.controlnet.proj_out.parameters():
            p.normal_(0, 0.1)
    gen, fake = copy.deepcopy(teacher), copy.deepcopy(teacher)
    freeze([teacher])
    gen_params = trainable_backbone(gen)
    fake_params = [p for p in fake.parameters() if p.requires_grad]
    branch_before = {k: v.clone() for k, v in gen.controlnet.state_dict().items()}
    backbone_before = gen.proj_out.weight.clone()
    trainer = DMDTrainer(_bind(gen, inputs, neg), _bind(teacher, inputs, neg), _bind(fake, inputs, neg),
                         torch.optim.SGD(gen_params, 1e-2), torch.optim.SGD(fake_params, 1e-2), (1, 16, 3, 4, 4),
                         DMDConfig(guidance_scale=5.0, fake_updates=1), torch.Generator().manual_seed(0))
    losses = trainer.step()
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is None for p in gen.controlnet.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in fake_params)
    assert gen.proj_out.weight.grad is not None and not torch.equal(gen.proj_out.weight, backbone_before)
    for k, v in gen.controlnet.state_dict().items():
        assert torch.equal(v, branch_before[k]), k


def test_bad_config():
    with pytest.raises(InputError, match="fake_updates: expected >= 1"):
        DMDTrainer(ToyVelocity(), ToyVelocity(), ToyVelocity(), None, None, (1, 1), DMDConfig(fake_updates=0))
    with pytest.raises(InputError, match="k: expected an int in"):
        rollout(ToyVelocity(), torch.zeros(1, 1), dmd_timesteps(), 5)
