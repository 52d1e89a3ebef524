"""``worldstereo-ros distill``: DMD-distil a WorldStereo teacher (``memory``) into a 4-step ``memory-dmd`` model.

Training conditions come from the project's own pipeline (read on the command-line side, passed in here): a
snapshot (the procedural room or an RGB-D frame) is imagined along the four standard trajectories with the CPU
``render_fill`` backend while a :class:`RequestRecorder` keeps every
:class:`~worldstereo_ros.generation.base.GenerationRequest`; each request's first chunk is encoded once by the
teacher backend (renders, masks, rays, references, prompt, start image). Each DMD iteration picks one encoded
condition set at random (CPU generator, repeatable).

The generator and the fake score start as copies of the teacher; the geometry branch of both stays frozen. The
result is written in the released layout (``<out>/worldstereo-memory-dmd/{config.json, model.safetensors}`` with the
whole transformer, ``base_model`` pointing at the teacher's base folder), so the backend loads it like the release.

Memory: three transformers plus optimiser state. Tiny configs run on a CPU; the full 17 B model needs
~3 x 35 GB of bf16 weights plus optimiser state: multi-GPU (FSDP) territory, not one robot GPU.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from safetensors.torch import save_file

from worldstereo_ros.errors import ConfigError
from worldstereo_ros.generation.base import GeneratedFrames, GenerationRequest, Generator
from worldstereo_ros.generation.diffusion.backend import WorldStereoDiffusionGenerator
from worldstereo_ros.generation.diffusion.checkpoint import resolve_base, variant_dir
from worldstereo_ros.generation.diffusion.conditioning import chunk_inputs, nearest_bucket, plan_chunks
from worldstereo_ros.generation.diffusion.dmd import DMDConfig, DMDTrainer, freeze, trainable_backbone


class RequestRecorder(Generator):
    """Delegates to another backend and keeps a copy of every request (the distillation conditions)."""

    name = "recorder"

    def __init__(self, inner: Generator) -> None:
        self.inner = inner
        self.uses_references = inner.uses_references
        self.requests: list[GenerationRequest] = []

    def generate(self, request, generator=None, on_frame=None) -> GeneratedFrames:
        self.requests.append(copy.deepcopy(request))
        return self.inner.generate(request, generator, on_frame)


def distill(model_path: str | Path, out: str | Path,
            conditions: Callable[[int], Sequence[GenerationRequest]], teacher_variant: str = "memory",
            base_model_path: str | Path | None = None, iterations: int = 100, lr: float = 1e-5,
            fake_lr: float | None = None, fake_updates: int = 5, guidance_scale: float = 5.0, prompt: str = "",
            device: str = "cpu", dtype: str = "auto", seed: int = 0,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run DMD and write the generator in the released layout; returns a summary (losses, times, paths).

    ``conditions(frames)`` gives the training requests (each with ``frames`` views: the teacher's chunk length,
    known once the teacher is loaded); the command line records them from the pipeline
    (``worldstereo_ros.cli.diffusion.collect_requests``) with a :class:`RequestRecorder`.
    """

    if teacher_variant not in ("memory", "camera"):
        raise ConfigError("teacher", f"expected memory or camera (a CFG teacher), got {teacher_variant!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigError("iterations", f"expected an int >= 1, got {iterations!r}")
    t0 = time.perf_counter()
    teacher = WorldStereoDiffusionGenerator(model_path, teacher_variant, base_model_path, device, dtype,
                                            guidance_scale=guidance_scale, prompt=prompt)
    teacher.warmup()
    cfg = teacher.config
    requests = list(conditions(cfg.nframe))
    encoded = []
    for req in requests:
        bucket = nearest_bucket(req.height, req.width, cfg.scale_map)
        plan = plan_chunks(req.num_frames, cfg.nframe)[0]
        start = req.start_rgb if req.start_rgb is not None else req.cond_rgb[0]
        encoded.append(teacher.encode_chunk(chunk_inputs(req, plan, cfg.nframe, bucket, start), prompt))
    log(f"{len(encoded)} condition sets from {len(requests)} trajectories ({time.perf_counter() - t0:.1f} s)")

    real = teacher._parts["transformer"]
    freeze([real])
    gen, fake = copy.deepcopy(real), copy.deepcopy(real)
    gen_params, fake_params = trainable_backbone(gen), trainable_backbone(fake)
    gen.train(), fake.train()
    current = {"c": encoded[0]}

    def bound(model: torch.nn.Module, grad: bool):
        def call(x: torch.Tensor, t: torch.Tensor, positive: bool) -> torch.Tensor:
            return current["c"].velocity(model, grad=grad)(x, t, positive).float()
        return call

    rng = torch.Generator().manual_seed(seed)
    trainer = DMDTrainer(bound(gen, True), bound(real, False), bound(fake, True),
                         torch.optim.AdamW(gen_params, lr=lr, weight_decay=0.0),
                         torch.optim.AdamW(fake_params, lr=fake_lr or lr, weight_decay=0.0),
                         encoded[0].latent_shape,
                         DMDConfig(guidance_scale=guidance_scale, fake_updates=fake_updates,
                                   start=cfg.dmd_start_steps, shift=cfg.gen_shift, steps=cfg.dmd_steps),
                         rng, teacher.device)
    losses = []
    for it in range(iterations):
        current["c"] = encoded[int(torch.randint(len(encoded), (1,), generator=rng))]
        losses.append(trainer.step())
        if (it + 1) % max(1, iterations // 10) == 0 or it == 0:
            log(f"iteration {it + 1}/{iterations}: fake {losses[-1]['fake']:.4f} "
                f"generator {losses[-1]['generator']:.4f}")

    out = Path(out)
    folder = variant_dir(out, "memory-dmd")
    folder.mkdir(parents=True, exist_ok=True)
    base = resolve_base(model_path, cfg, base_model_path)
    config = cfg.to_dict()
    config["base_model"] = str(base.resolve())
    config["distilled_from"] = f"worldstereo-{teacher_variant}"
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.detach().contiguous().cpu() for k, v in gen.state_dict().items()},
              str(folder / "model.safetensors"))
    summary = {"iterations": iterations, "conditions": len(encoded), "seconds": time.perf_counter() - t0,
               "first_losses": losses[0], "last_losses": losses[-1], "out": str(folder)}
    (folder / "distill_summary.json").write_text(json.dumps(summary, indent=2))
    teacher.close()
    if teacher_variant == "camera":
        log("note: a camera-variant teacher gives a camera-variant generator; the released DMD model is a memory one")
    return summary
