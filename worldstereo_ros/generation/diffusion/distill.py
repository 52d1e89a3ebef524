"""``worldstereo-ros distill``: DMD-distil a WorldStereo teacher (``memory``) into a 4-step ``memory-dmd`` model.

Training conditions come from the project's own pipeline: a snapshot (the procedural room or an RGB-D frame) is
imagined along the four standard trajectories with the CPU ``render_fill`` backend while a recorder keeps every
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
from typing import Any, Callable

import torch

from worldstereo_ros.errors import ConfigError
from worldstereo_ros.generation.base import GeneratedFrames, GenerationRequest, Generator


class _Recorder(Generator):
    """Delegates to another backend and keeps a copy of every request (the distillation conditions)."""

    name = "recorder"

    def __init__(self, inner: Generator) -> None:
        self.inner = inner
        self.uses_references = inner.uses_references
        self.requests: list[GenerationRequest] = []

    def generate(self, request, generator=None, on_frame=None) -> GeneratedFrames:
        self.requests.append(copy.deepcopy(request))
        return self.inner.generate(request, generator, on_frame)


def collect_requests(snapshot, frames: int, trajectories: str = "orbit:15,up:10,left:0.3,right:0.3",
                     seed: int = 0) -> list[GenerationRequest]:
    """GenerationRequests of the standard trajectories from ``snapshot`` (cache renders + references)."""
    from worldstereo_ros.generation.render_fill import RenderFillGenerator
    from worldstereo_ros.geometry.trajectories import build_trajectory, parse_trajectory_spec
    from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig, Trajectory

    recorder = _Recorder(RenderFillGenerator())
    pipeline = ImaginationPipeline(PipelineConfig(seed=seed), backend=recorder).initialize(snapshot)
    trajs = []
    for spec in parse_trajectory_spec(trajectories):
        T = build_trajectory(spec, pipeline.snapshot.T_world_cam, frames, pipeline.depth_median_m)
        trajs.append(Trajectory(str(spec.name), T.numpy() if hasattr(T, "numpy") else T))
    pipeline.run(trajs)
    return recorder.requests


def distill(model_path: str | Path, out: str | Path, snapshot, teacher_variant: str = "memory",
            base_model_path: str | Path | None = None, iterations: int = 100, lr: float = 1e-5,
            fake_lr: float | None = None, fake_updates: int = 5, guidance_scale: float = 5.0, prompt: str = "",
            device: str = "cpu", dtype: str = "auto", seed: int = 0,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run DMD and write the generator in the released layout; returns a summary (losses, times, paths)."""
    from safetensors.torch import save_file

    from worldstereo_ros.generation.diffusion.backend import WorldStereoDiffusionGenerator
    from worldstereo_ros.generation.diffusion.checkpoint import resolve_base, variant_dir
    from worldstereo_ros.generation.diffusion.conditioning import chunk_inputs, nearest_bucket, plan_chunks
    from worldstereo_ros.generation.diffusion.dmd import DMDConfig, DMDTrainer, freeze, trainable_backbone

    if teacher_variant not in ("memory", "camera"):
        raise ConfigError("teacher", f"expected memory or camera (a CFG teacher), got {teacher_variant!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigError("iterations", f"expected an int >= 1, got {iterations!r}")
    t0 = time.perf_counter()
    teacher = WorldStereoDiffusionGenerator(model_path, teacher_variant, base_model_path, device, dtype,
                                            guidance_scale=guidance_scale, prompt=prompt)
    teacher.warmup()
    cfg = teacher.config
    requests = collect_requests(snapshot, cfg.nframe, seed=seed)
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


def snapshot_from_args(args) -> Any:
    """The snapshot of ``--rgbd-folder``/``--frame`` (7-Scenes or TUM RGB-D) or the procedural room at ``--size``."""
    from worldstereo_ros.snapshot import Snapshot

    if args.rgbd_folder:
        from worldstereo_ros.datasets.tum_rgbd import open_rgbd_sequence

        frame = open_rgbd_sequence(args.rgbd_folder).read(args.frame)
        snapshot = Snapshot.create(frame.rgb, frame.depth, frame.K, frame.T_world_cam)
        if args.size:
            raise ConfigError("size", "--size applies to the procedural room only")
        return snapshot
    from worldstereo_ros.datasets.procedural_scene import procedural_snapshot

    width, height = args.size or (768, 480)
    return procedural_snapshot(width, height)
