"""Training FillNet on forward–backward fill problems (library function :func:`train`).

Data: examples from RGB-D sequences (7-Scenes layout; only the frames given, by default the training
split 0-199 and 300-599 of the shared redkitchen): forward-backward pairs and, with ``pipeline_pairs``, the
pipeline's own condition (the cache of frame s rendered at frame t); and from random procedural rooms; built
lazily and cached on disk (:mod:`.data`). Each step draws a seeded batch of random crops (centred on holes,
random flips, brightness gain, the reference dropped 40 % of the time so the model also learns to fill without
one).

Loss on the hole pixels only (observed pixels pass through): L1 + (1 - SSIM) + an image-gradient L1 (the
last two punish blur, which plain L1 rewards far from any observation), L1 on normalised inverse depth
where the truth is known, and a binary cross-entropy teaching the confidence head whether its depth is
within 5 %. No pretrained networks.

Outputs in ``out_dir``: ``checkpoint.safetensors`` (model, Adam moments, step; resumable),
``model.safetensors`` (weights only, what the backend loads), ``losses.csv`` (one row per logged step)
and ``samples-epochNNN.png`` (condition | Telea | FillNet | truth for fixed tuning examples).
Everything is seeded: the batch of step ``s`` depends on (seed, s) only, so a resumed run continues
exactly where it stopped.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.learned.data import (
    TRAIN_FRAMES,
    ConditionRenderer,
    FillExample,
    example_tensors,
    pipeline_source,
    rgbd_source,
    rooms_source,
    sample_batch,
)
from worldstereo_ros.generation.learned.model import FillNet, FillOutput
from worldstereo_ros.generation.learned.weights import read_metadata, save_model


@dataclass
class TrainConfig:
    """Options of :func:`train` (the CLI flags have the same names).

    Attributes:
        out_dir: folder for checkpoints, losses and sample images.
        sequences: RGB-D folders (7-Scenes layout) to draw pairs from; may be empty.
        frames: frame indices allowed in every sequence (default: the 7-Scenes training split).
        pairs_per_sequence: forward-backward examples drawn per sequence. pipeline_pairs: pipeline examples
            (the cache of frame s rendered at frame t, :func:`.data.pipeline_source`) per sequence, drawn by
            ``render_condition`` (``pipeline.condition.render_condition``: the pipeline sits above this layer).
            rooms: random procedural room examples.
        steps: optimiser steps in total. batch_size: crops per step. crop: (height, width) of the crops,
            multiples of 32. lr: Adam learning rate (cosine decay to 5 % over ``steps``).
        epoch_steps: steps per epoch (checkpoint, samples PNG). log_every: steps per CSV row.
        seed: fixes data, initialisation and batch order. threads: torch CPU threads (1 is fastest on a
            shared machine: idle OpenMP threads spin while waiting for a busy core).
        cache_dir: example cache (default ``out_dir / "examples"``). resume: continue from the checkpoint.
        max_minutes: wall-time budget: the schedule follows whichever of steps and time is further along, and
            the run stops (with a checkpoint) when the time is spent; None = steps only (bit-repeatable).
        stop_after: stop (with a checkpoint) at this step, keeping the schedule of ``steps``; a later run resumes.
        room_size: (height, width) of the procedural room views. progress: show a progress bar.
        widths, fine: architecture (FillNet).
    """

    out_dir: Path
    sequences: list[Path] = field(default_factory=list)
    frames: tuple[int, ...] = TRAIN_FRAMES
    pairs_per_sequence: int = 240
    pipeline_pairs: int = 0
    render_condition: ConditionRenderer | None = None
    rooms: int = 80
    steps: int = 3000
    batch_size: int = 4
    crop: tuple[int, int] = (256, 256)
    lr: float = 1e-3
    epoch_steps: int = 250
    log_every: int = 10
    seed: int = 0
    threads: int = 1
    cache_dir: Path | None = None
    resume: bool = True
    max_minutes: float | None = None
    stop_after: int | None = None
    room_size: tuple[int, int] = (480, 640)
    progress: bool = True
    widths: tuple[int, int, int, int] = (32, 48, 64, 96)
    fine: int = 16

    def check(self) -> None:
        for name in ("steps", "batch_size", "epoch_steps", "log_every", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(name, f"expected an int >= 1, got {value!r}")
        for name in ("pairs_per_sequence", "pipeline_pairs", "rooms"):
            if getattr(self, name) < 0:
                raise InputError(name, f"expected >= 0, got {getattr(self, name)!r}")
        if not self.sequences and self.rooms == 0:
            raise InputError("sequences", "no training data: give a sequence or rooms > 0")
        if self.sequences and self.pipeline_pairs and self.render_condition is None:
            raise InputError("render_condition", "pipeline_pairs need the pipeline's condition renderer "
                             "(worldstereo_ros.pipeline.condition.render_condition)")
        if self.sequences and self.pairs_per_sequence == 0:
            raise InputError("pairs_per_sequence", "must be >= 1 when sequences are given")
        for name in ("crop", "room_size"):
            h, w = getattr(self, name)
            if h % FillNet.MULTIPLE or w % FillNet.MULTIPLE or h < 32 or w < 32:
                raise InputError(name, f"expected multiples of {FillNet.MULTIPLE} >= 32, got {h} x {w}")
        if not (0 < self.lr < 1):
            raise InputError("lr", f"expected a float in (0, 1), got {self.lr!r}")


@dataclass
class TrainResult:
    """What :func:`train` did: the weights file, the step reached, the last logged losses, seconds spent."""

    model_path: Path
    step: int
    losses: dict[str, float]
    seconds: float


# ---------------------------------------------------------------------------------------------- losses

_LOSS_NAMES = ("total", "l1", "ssim", "grad", "depth", "confidence")


def _masked_mean(value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` (B, C, H, W) over the pixels where ``mask`` (B, 1, H, W) is 1."""
    weight = mask.expand_as(value)
    return (value * weight).sum() / weight.sum().clamp(min=1.0)


def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Per-pixel SSIM (B, C, H, W) of images in [0, 1] over a uniform ``window`` (reflect-padded)."""
    pad = window // 2
    a_p, b_p = F.pad(a, [pad] * 4, mode="reflect"), F.pad(b, [pad] * 4, mode="reflect")
    mu_a, mu_b = F.avg_pool2d(a_p, window, 1), F.avg_pool2d(b_p, window, 1)
    var_a = F.avg_pool2d(a_p * a_p, window, 1) - mu_a ** 2
    var_b = F.avg_pool2d(b_p * b_p, window, 1) - mu_b ** 2
    cov = F.avg_pool2d(a_p * b_p, window, 1) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def fill_loss(out: FillOutput, rgb: torch.Tensor, inv_depth: torch.Tensor, hole: torch.Tensor,
              valid: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss (module doc) and its parts as floats."""
    l1 = _masked_mean((out.rgb - rgb).abs(), hole)
    ssim = _masked_mean(1.0 - ssim_map(out.rgb, rgb), hole)
    gx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    gy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    grad = (_masked_mean((gx(out.rgb) - gx(rgb)).abs(), hole[..., :, 1:] * hole[..., :, :-1])
            + _masked_mean((gy(out.rgb) - gy(rgb)).abs(), hole[..., 1:, :] * hole[..., :-1, :]))
    known = hole * valid
    depth_l1 = _masked_mean((out.inv_depth - inv_depth).abs(), known)
    with torch.no_grad():
        rel = (out.inv_depth - inv_depth).abs() / inv_depth.clamp(min=1e-6)
        good = (rel < 0.05).float()
    bce = F.binary_cross_entropy_with_logits(out.confidence_logit, good, reduction="none")
    conf = _masked_mean(bce, known)
    total = l1 + 0.5 * ssim + 0.5 * grad + 0.5 * depth_l1 + 0.1 * conf
    parts = {k: float(v.detach()) for k, v in (("total", total), ("l1", l1), ("ssim", ssim), ("grad", grad),
                                                 ("depth", depth_l1), ("confidence", conf))}
    return total, parts


# ---------------------------------------------------------------------------------------------- checkpoints


def _save_checkpoint(path: Path, model: FillNet, optimiser: torch.optim.Adam, step: int) -> None:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in optimiser.param_groups:
        for p in group["params"]:
            state = optimiser.state.get(p, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    tensors[f"adam.{names[id(p)]}.{key}"] = state[key].contiguous()
            if "step" in state:
                tensors[f"adam.{names[id(p)]}.step"] = torch.as_tensor(state["step"], dtype=torch.float32).reshape(1)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(step), **model.config()})
    tmp.replace(path)


def _load_checkpoint(path: Path, model: FillNet, optimiser: torch.optim.Adam) -> int:

    step = int(read_metadata(path).get("step", "0"))
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    for name, p in model.named_parameters():
        if f"adam.{name}.exp_avg" in tensors:
            optimiser.state[p] = {"exp_avg": tensors[f"adam.{name}.exp_avg"].clone(),
                                  "exp_avg_sq": tensors[f"adam.{name}.exp_avg_sq"].clone(),
                                  "step": torch.tensor(float(tensors[f"adam.{name}.step"][0]))}
    return step


# ---------------------------------------------------------------------------------------------- samples


def _sample_sheet(model: FillNet, examples: list[FillExample], path: Path, size: tuple[int, int] = (224, 288)) -> None:
    """PNG rows of condition | Telea | FillNet | truth for ``examples`` (centre crops of ``size``)."""
    rows = []
    model.eval()
    with torch.no_grad():
        for ex in examples:
            h, w = ex.hole.shape
            ch, cw = min(size[0], h - h % 32), min(size[1], w - w % 32)
            top, left = (h - ch) // 2, (w - cw) // 2
            x, rgb, _, hole, _ = example_tensors(ex, crop=(top, left, ch, cw))
            out = model(torch.from_numpy(x)[None]).rgb[0].numpy()
            cond = x[0:3] * (1 - hole) + hole * np.array([1.0, 0.0, 1.0])[:, None, None]
            tiles = [cond, x[5:8], out, rgb]
            rows.append(np.concatenate([t_.transpose(1, 2, 0) for t_ in tiles], axis=1))
    model.train()
    sheet = (np.clip(np.concatenate(rows, axis=0), 0, 1) * 255 + 0.5).astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


# ---------------------------------------------------------------------------------------------- train


def train(config: TrainConfig) -> TrainResult:
    """Train (or resume training) FillNet; see the module doc. Returns where the weights are."""
    config.check()
    torch.set_num_threads(config.threads)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(config.cache_dir) if config.cache_dir is not None else out / "examples"
    t_start = time.perf_counter()

    # 1. data: deterministic example lists (built lazily, interleaved with the first steps)
    sources = [rgbd_source(seq, config.frames, config.pairs_per_sequence, config.seed + n, cache_dir=cache)
               for n, seq in enumerate(config.sequences)]
    if config.pipeline_pairs:
        sources += [pipeline_source(seq, config.frames, config.pipeline_pairs, config.seed + 500 + n,
                                    config.render_condition, cache_dir=cache)
                    for n, seq in enumerate(config.sequences)]
    if config.rooms:
        sources.append(rooms_source(config.rooms, config.seed, config.room_size[1], config.room_size[0],
                                    cache_dir=cache))
    index = [(s, i) for s in range(len(sources)) for i in range(len(sources[s]))]
    order = np.random.default_rng(config.seed).permutation(len(index))
    index = [index[k] for k in order]

    # 2. model and optimiser
    torch.manual_seed(config.seed)
    model = FillNet(widths=config.widths, fine=config.fine)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    ckpt = out / "checkpoint.safetensors"
    step = _load_checkpoint(ckpt, model, optimiser) if (config.resume and ckpt.is_file()) else 0
    log_path = out / "losses.csv"
    if step == 0 or not log_path.is_file():
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(["step", "seconds", "lr", *_LOSS_NAMES])
    samples = [sources[s][i] for s, i in index[:min(3, len(index))]]

    # 3. the loop
    bar = None
    if config.progress:

        bar = tqdm(total=config.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    model.train()
    running: dict[str, float] = {}
    last: dict[str, float] = {}
    while step < config.steps:
        progress = step / config.steps
        if config.max_minutes is not None:
            # a time budget anneals the schedule by wall time too, so a run on a busy machine still ends at
            # the low learning rate instead of being cut off mid-schedule
            progress = max(progress, (time.perf_counter() - t_start) / (60.0 * config.max_minutes))
            if progress >= 1.0:
                break
        if config.stop_after is not None and step >= config.stop_after:
            break
        rng = np.random.default_rng([config.seed, step])
        # the pool grows by one example per step until complete, so the first steps don't wait for all
        built = min(len(index), max(config.batch_size, step + 1))
        picks = rng.integers(0, built, size=config.batch_size)
        batch = sample_batch([sources[index[k][0]][index[k][1]] for k in picks], rng, config.crop)
        lr = config.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))
        for group in optimiser.param_groups:
            group["lr"] = lr
        output = model(batch.x)
        loss, parts = fill_loss(output, batch.rgb, batch.inv_depth, batch.hole, batch.valid)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        step += 1
        for k, v in parts.items():
            running[k] = running.get(k, 0.0) + v
        if step % config.log_every == 0:
            last = {k: v / config.log_every for k, v in running.items()}
            running = {}
            with open(log_path, "a", newline="") as f:
                csv.writer(f).writerow([step, f"{time.perf_counter() - t_start:.1f}", f"{lr:.6f}"]
                                       + [f"{last[k]:.5f}" for k in _LOSS_NAMES])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{parts['total']:.4f}")
        if step % config.epoch_steps == 0 or step == config.steps:
            _save_checkpoint(ckpt, model, optimiser, step)
            save_model(model, out / "model.safetensors", {"step": str(step), "seed": str(config.seed)})
            _sample_sheet(model, samples, out / f"samples-epoch{step // config.epoch_steps:03d}.png")
    if bar is not None:
        bar.close()
    _save_checkpoint(ckpt, model, optimiser, step)
    path = save_model(model, out / "model.safetensors", {"step": str(step), "seed": str(config.seed)})
    return TrainResult(path, step, last, time.perf_counter() - t_start)
