"""Subcommands and options of the diffusion backend (``worldstereo``).

``worldstereo-ros weights inspect DIR``: what a released weights folder holds (headers and configs only);
``worldstereo-ros distill``: DMD distillation, with its training snapshot and conditions read here (the
``generation`` layer takes them as arguments). Also the backend's options of ``imagine``/``demo``/``bench`` and
the RGB-only snapshot (estimated depth). Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from worldstereo_ros.cli.commands import Command, add_depth_estimation_options, width_height
from worldstereo_ros.errors import ConfigError, InputError, WorldStereoError
from worldstereo_ros.snapshot import Snapshot

if TYPE_CHECKING:  # generation.base imports torch: annotations only, so --help stays fast
    from worldstereo_ros.generation.base import GenerationRequest


def _weights_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="weights_command", required=True)
    inspect = sub.add_parser("inspect", help="list variants, keys, parameter counts and memory estimates of a "
                                             "released WorldStereo folder without loading any tensor")
    inspect.add_argument("model_path", help="folder holding worldstereo-{camera,memory,memory-dmd}/")
    inspect.add_argument("--base-model-path", default=None, help="local diffusers Wan2.1-I2V folder "
                         "(default: <model_path>/<repo name of base_model>)")


def _weights(args: argparse.Namespace) -> int:
    # lazy: the checkpoint module imports torch, diffusers and accelerate at its top (--help stays fast)
    from worldstereo_ros.generation.diffusion.checkpoint import inspect_weights

    try:
        report = inspect_weights(args.model_path, args.base_model_path)
    except WorldStereoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    ok = any(v.get("status", "").startswith("ok") for v in report.variants.values()) and report.base is not None
    return 0 if ok else 1


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
    return _options(args)


def _options(args: argparse.Namespace) -> dict:
    return dict(model_path=args.model_path or "", variant=args.variant, base_model_path=args.base_model_path,
                device=getattr(args, "device", "cpu"), dtype=args.dtype, steps=args.steps, prompt=args.prompt,
                offload=args.offload)


def add_bench_options(p: argparse.ArgumentParser) -> None:
    """``bench`` options of the worldstereo backend (used when ``--backends`` names it)."""
    add_backend_options(p)
    p.add_argument("--device", default="cpu", help="torch device of the worldstereo backend")


def set_bench_defaults(args: argparse.Namespace) -> None:
    """Make ``--model-path`` & co. the worldstereo backend's defaults (the bench creates backends by name)."""
    # lazy: generation.base imports torch (--help stays fast)
    from worldstereo_ros.generation.base import set_backend_defaults

    if "worldstereo" in (getattr(args, "backends", None) or []):
        set_backend_defaults("worldstereo", **_options(args))


def add_depth_options(p: argparse.ArgumentParser) -> None:
    """``imagine`` options for snapshots without measured depth (an RGB image or an equirectangular panorama)."""
    g = p.add_argument_group("RGB-only snapshots (no --depth)")
    g.add_argument("--panorama", default=None, help="equirectangular panorama (width = 2 x height) instead of --rgb")
    add_depth_estimation_options(g)


def rgb_only_snapshot(args: argparse.Namespace):
    """The snapshot of ``--rgb``/``--panorama`` with estimated depth (``--depth-model``), and a one-line note."""
    # lazy: the estimator imports torch and transformers; the readers OpenCV (--help stays fast)
    from worldstereo_ros.datasets.snapshot_files import parse_intrinsics, read_pose, read_rgb
    from worldstereo_ros.generation.diffusion.depth import DepthEstimator

    if not args.depth_model:
        raise InputError("depth_model", "no --depth given: pass --depth-model DIR (a local depth-estimation model)")
    estimator = DepthEstimator(args.depth_model, getattr(args, "device", "cpu"))
    pose = read_pose(args.pose) if args.pose else None
    if args.panorama:
        rgb = read_rgb(args.panorama)
        est = estimator.estimate_panorama(rgb, args.camera_height_m, args.median_depth_m)
        K = None
    else:
        if not args.intrinsics:
            raise InputError("intrinsics", "required for a pinhole --rgb image")
        rgb = read_rgb(args.rgb)
        K = parse_intrinsics(args.intrinsics)
        est = estimator.estimate(rgb, K, args.camera_height_m, args.median_depth_m)
    estimator.close()
    snapshot = Snapshot.create(rgb, est.depth, K, pose, depth_is_metric=est.is_metric)
    return snapshot, f"estimated depth: {est.note}"


def _distill_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-path", required=True, help="folder with the teacher worldstereo-<teacher>/")
    p.add_argument("--out", required=True, help="where to write worldstereo-memory-dmd/")
    p.add_argument("--teacher", default="memory", choices=("memory", "camera"), help="teacher variant")
    p.add_argument("--base-model-path", default=None, help="local diffusers Wan2.1-I2V folder")
    p.add_argument("--rgbd-folder", default=None, help="RGB-D folder for the training snapshot (default: the "
                   "procedural room)")
    p.add_argument("--frame", type=int, default=0, help="frame of --rgbd-folder")
    p.add_argument("--size", type=width_height, default=None,
                   help="WIDTHxHEIGHT of the procedural room (default 768x480)")
    p.add_argument("--iterations", type=int, default=100, help="generator updates")
    p.add_argument("--lr", type=float, default=1e-5, help="generator learning rate")
    p.add_argument("--fake-lr", type=float, default=None, help="fake-score learning rate (default --lr)")
    p.add_argument("--fake-updates", type=int, default=5, help="fake-score updates per generator update")
    p.add_argument("--guidance-scale", type=float, default=5.0, help="teacher CFG scale of the real score")
    p.add_argument("--prompt", default="", help="prompt of the training conditions")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")


def snapshot_from_args(args: argparse.Namespace) -> Snapshot:
    """The snapshot of ``--rgbd-folder``/``--frame`` (7-Scenes or TUM RGB-D) or the procedural room at ``--size``."""
    if args.rgbd_folder:
        # lazy: the readers import OpenCV (--help stays fast)
        from worldstereo_ros.datasets.tum_rgbd import open_rgbd_sequence

        frame = open_rgbd_sequence(args.rgbd_folder).read(args.frame)
        snapshot = Snapshot.create(frame.rgb, frame.depth, frame.K, frame.T_world_cam)
        if args.size:
            raise ConfigError("size", "--size applies to the procedural room only")
        return snapshot
    # lazy: the procedural scene imports torch (--help stays fast)
    from worldstereo_ros.datasets.procedural_scene import procedural_snapshot

    width, height = args.size or (768, 480)
    return procedural_snapshot(width, height)


def collect_requests(snapshot: Snapshot, frames: int, trajectories: str = "orbit:15,up:10,left:0.3,right:0.3",
                     seed: int = 0) -> list[GenerationRequest]:
    """The distillation conditions: every GenerationRequest (cache renders + references, ``frames`` views each) of
    ``trajectories`` imagined from ``snapshot`` by the pipeline with the CPU ``render_fill`` backend."""
    # lazy: the pipeline and the backends import torch (--help stays fast)
    from worldstereo_ros.generation.diffusion.distill import RequestRecorder
    from worldstereo_ros.generation.render_fill import RenderFillGenerator
    from worldstereo_ros.geometry.trajectories import build_trajectory, parse_trajectory_spec
    from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig, Trajectory

    recorder = RequestRecorder(RenderFillGenerator())
    pipeline = ImaginationPipeline(PipelineConfig(seed=seed), backend=recorder).initialize(snapshot)
    trajs = []
    for spec in parse_trajectory_spec(trajectories):
        T = build_trajectory(spec, pipeline.snapshot.T_world_cam, frames, pipeline.depth_median_m)
        trajs.append(Trajectory(str(spec.name), T.numpy() if hasattr(T, "numpy") else T))
    pipeline.run(trajs)
    return recorder.requests


def _distill(args: argparse.Namespace) -> int:
    # lazy: distillation imports torch, diffusers and the whole backend (--help stays fast)
    from worldstereo_ros.generation.diffusion.distill import distill

    try:
        snapshot = snapshot_from_args(args)
        summary = distill(args.model_path, args.out, lambda frames: collect_requests(snapshot, frames, seed=args.seed),
                          args.teacher, args.base_model_path, args.iterations, args.lr, args.fake_lr,
                          args.fake_updates, args.guidance_scale, args.prompt, args.device, args.dtype, args.seed)
    except WorldStereoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {summary['out']} ({summary['iterations']} iterations, {summary['seconds']:.1f} s)")
    return 0


COMMANDS: dict[str, Command] = {
    "weights": Command("inspect released WorldStereo weights (headers and configs only)", _weights_args, _weights),
    "distill": Command("DMD-distil a WorldStereo teacher into a 4-step memory-dmd model (tiny configs on a CPU; "
                       "the full model needs several GPUs)", _distill_args, _distill),
}
