"""``worldstereo-ros train``: train the learned generator (arguments and run; registered in ``cli/__init__.py``).

Example (the shipped weights' command, see docs/learned-generator.md)::

    worldstereo-ros train --sequence ../shared/data/7scenes-redkitchen --out outputs/train-learned
"""

from __future__ import annotations

import argparse
from pathlib import Path

from worldstereo_ros.cli.commands import Command, height_width

HELP = ("train the learned generator on forward-backward fill problems from RGB-D sequences (7-Scenes frames "
        "0-199 and 300-599 by default) and random procedural rooms; safetensors checkpoints, losses CSV, samples")


def _frames(text: str) -> tuple[int, ...]:
    """'0-199,300-599' -> the frame indices."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    if not out:
        raise argparse.ArgumentTypeError(f"no frames in {text!r}")
    return tuple(out)


def add_parser(p: argparse.ArgumentParser) -> None:
    """Add the ``train`` arguments to ``p``."""
    p.add_argument("--sequence", action="append", default=[], type=Path,
                   help="RGB-D folder in the 7-Scenes layout (repeatable)")
    p.add_argument("--frames", type=_frames, default="0-199,300-599",
                   help="frames of every sequence that training may use (default: the 7-Scenes training split)")
    p.add_argument("--pairs", type=int, default=240, help="forward-backward examples per sequence")
    p.add_argument("--pipeline-pairs", type=int, default=0,
                   help="pipeline examples per sequence: the cache of frame s rendered at frame t, the answer frame t")
    p.add_argument("--rooms", type=int, default=80, help="random procedural room examples")
    p.add_argument("--steps", type=int, default=3000, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--crop", type=height_width, default=(256, 256), help="training crop HEIGHTxWIDTH (multiples of 32)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epoch-steps", type=int, default=250, help="steps between checkpoints and sample sheets")
    p.add_argument("--log-every", type=int, default=10, help="steps per row of losses.csv")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--cache-dir", type=Path, default=None, help="example cache (default OUT/examples)")
    p.add_argument("--no-resume", action="store_true", help="start from scratch even if OUT has a checkpoint")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="wall-time budget: the learning-rate schedule anneals by time too and the run stops (with a "
                        "checkpoint) when it is spent")
    p.add_argument("--room-size", type=height_width, default=(480, 640), help="procedural view HEIGHTxWIDTH")
    p.add_argument("--out", type=Path, default=Path("outputs/train-learned"), help="output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Train with the parsed arguments; prints where the weights went."""
    # lazy: keeps --help and the other commands fast (package doc)
    from worldstereo_ros.generation.learned.train import TrainConfig, train
    from worldstereo_ros.pipeline.condition import render_condition

    frames = _frames(args.frames) if isinstance(args.frames, str) else args.frames
    config = TrainConfig(out_dir=args.out, sequences=list(args.sequence), frames=frames,
                         pairs_per_sequence=args.pairs, pipeline_pairs=args.pipeline_pairs,
                         render_condition=render_condition, rooms=args.rooms,
                         steps=args.steps,
                         batch_size=args.batch_size, crop=tuple(args.crop), lr=args.lr, epoch_steps=args.epoch_steps,
                         log_every=args.log_every,
                         seed=args.seed, threads=args.threads, cache_dir=args.cache_dir, resume=not args.no_resume,
                         max_minutes=args.max_minutes, room_size=tuple(args.room_size), progress=not args.no_progress)
    result = train(config)
    print(f"trained to step {result.step} in {result.seconds:.0f} s; weights: {result.model_path}")
    print("last losses: " + ", ".join(f"{k}={v:.4f}" for k, v in result.losses.items()))
    return 0


COMMANDS: dict[str, Command] = {"train": Command(HELP, add_parser, run)}
