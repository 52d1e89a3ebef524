"""CLI subcommands of the diffusion backend, registered by ``worldstereo_ros/cli.py`` in one line.

``worldstereo-ros weights inspect DIR``: what a released weights folder holds (headers and configs only).
Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable


def _weights_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="weights_command", required=True)
    inspect = sub.add_parser("inspect", help="list variants, keys, parameter counts and memory estimates of a "
                                             "released WorldStereo folder without loading any tensor")
    inspect.add_argument("model_path", help="folder holding worldstereo-{camera,memory,memory-dmd}/")
    inspect.add_argument("--base-model-path", default=None, help="local diffusers Wan2.1-I2V folder "
                         "(default: <model_path>/<repo name of base_model>)")


def _weights(args: argparse.Namespace) -> int:
    from worldstereo_ros.errors import WorldStereoError
    from worldstereo_ros.generation.diffusion.checkpoint import inspect_weights

    try:
        report = inspect_weights(args.model_path, args.base_model_path)
    except WorldStereoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    ok = any(v.get("status", "").startswith("ok") for v in report.variants.values()) and report.base is not None
    return 0 if ok else 1


#: name -> (help, add_arguments, run), merged into worldstereo_ros.cli.COMMANDS
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "weights": ("inspect released WorldStereo weights (headers and configs only)", _weights_args, _weights),
}


def add_backend_options(p: argparse.ArgumentParser) -> None:
    """Options of the ``worldstereo`` backend on ``imagine``/``demo`` (ignored by other backends)."""
    g = p.add_argument_group("worldstereo backend (--backend worldstereo)")
    g.add_argument("--model-path", default=None, help="folder with worldstereo-{camera,memory,memory-dmd}/")
    g.add_argument("--variant", default="memory-dmd", choices=("memory-dmd", "memory", "camera"),
                   help="released model variant (memory-dmd: 4 steps)")
    g.add_argument("--base-model-path", default=None, help="local diffusers Wan2.1-I2V folder")
    g.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                   help="weights dtype (auto: bf16 on CUDA, fp32 on CPU)")
    g.add_argument("--steps", type=int, default=None, help="denoising steps (default 4 for memory-dmd, else 40)")
    g.add_argument("--prompt", default="", help="text prompt describing the scene")
    g.add_argument("--offload", default="none", choices=("none", "model", "group"),
                   help="offload weights to the CPU for GPUs smaller than the model")


def backend_options(args: argparse.Namespace) -> dict:
    """``backend_options`` of the pipeline config from the parsed CLI options."""
    if getattr(args, "backend", None) != "worldstereo":
        return {}
    return dict(model_path=args.model_path or "", variant=args.variant, base_model_path=args.base_model_path,
                device=args.device, dtype=args.dtype, steps=args.steps, prompt=args.prompt, offload=args.offload)
