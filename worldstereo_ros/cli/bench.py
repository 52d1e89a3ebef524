"""The ``worldstereo-ros bench`` subcommand: its arguments (with the worldstereo backend's) and its run.
Importing this module is cheap; the benchmark's dependencies load when it runs."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from worldstereo_ros.cli.commands import Command
from worldstereo_ros.cli.diffusion import add_bench_options, set_bench_defaults
from worldstereo_ros.datasets.shared_data import shared_data_dir
from worldstereo_ros.errors import WorldStereoError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``bench``."""
    p.add_argument("--data", default=None, help="a 7-Scenes-style folder (rgb, depth, pose per frame and "
                   "camera-intrinsics.txt) or a TUM RGB-D sequence (rgb.txt, depth.txt, groundtruth.txt) "
                   "(default: $WORLDSTEREO_DATA/7scenes-redkitchen, else ../shared/data/7scenes-redkitchen next "
                   "to the checkout)")
    p.add_argument("--middlebury", default=None, help="Middlebury stereo folder: im0/im1/disp0 (2014), "
                   "view1/view5/disp1 (2005/2006) or <name>_left/_right/_disp.npz, with calib.txt or the "
                   "--calib values (default: middlebury-motorcycle next to the default data; 'none' skips the "
                   "stereo section)")
    p.add_argument("--calib", default=None, help="calibration of --middlebury when it has no calib.txt: "
                   "'f=994.978,baseline=193.001,doffs=31.086' (focal px, baseline mm, doffs px)")
    p.add_argument("--quick", action="store_true", help="about a tenth of the work (one start frame, short "
                   "routes, few fill pairs, 320x240 speed run): under a minute")
    p.add_argument("--backends", nargs="+", default=["render_fill"], help="generator backends to measure (the "
                   "fill protocol measures every registered backend)")
    p.add_argument("--frames", default="200-299", help="FIRST-LAST frame range that every start, target, check "
                   "frame and fill pair stays in, or 'all' (default 200-299: the shared 7-Scenes data's report "
                   "split; defaults are tuned on 0-199 and 300-599)")
    p.add_argument("--starts", type=int, nargs="+", default=None, help="start frames (default: the range's first "
                   "frame and 40 frames later; --quick: the first)")
    p.add_argument("--sections", nargs="+", default=None, help="subset of: geometry camera consistency fill "
                   "fidelity stereo speed (default: all)")
    p.add_argument("--voxel-size-m", type=float, default=None, help="voxel size of every pipeline's global "
                   "cache, metres (default: the pipeline's, 0.01)")
    p.add_argument("--out", default="outputs/bench", help="folder for results.md, results.json, the plots "
                   "and the contact sheet")


def _calibration(text: str | None) -> dict:
    if not text:
        return {}
    names = {"f": "focal_px", "baseline": "baseline_mm", "doffs": "doffs_px"}
    out = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key.strip() not in names:
            raise ValueError(f"--calib: unknown key {key.strip()!r}; valid: {', '.join(names)}")
        out[names[key.strip()]] = float(value)
    return out


def run(args: argparse.Namespace) -> int:
    """Run the bench for parsed ``args``; 0 on success, 2 on bad input (message on stderr)."""
    # lazy: the benchmark imports torch, Open3D and matplotlib (--help stays fast)
    from worldstereo_ros.evaluation.bench_config import SECTIONS, BenchConfig, parse_frames
    from worldstereo_ros.evaluation.bench_report import markdown, write_report
    from worldstereo_ros.evaluation.benchmark import run_benchmark

    data = Path(args.data) if args.data else shared_data_dir() / "7scenes-redkitchen"
    if not ((data / "camera-intrinsics.txt").is_file() or (data / "rgb.txt").is_file()):
        print(f"error: data: no RGB-D sequence at {data} (neither camera-intrinsics.txt nor rgb.txt); pass --data "
              "or set WORLDSTEREO_DATA", file=sys.stderr)
        return 2
    if args.middlebury is None:
        middlebury = data.parent / "middlebury-motorcycle"
        middlebury = middlebury if middlebury.is_dir() else None
    else:
        middlebury = None if args.middlebury == "none" else Path(args.middlebury)
    t0 = time.perf_counter()
    try:
        overrides = {"backends": args.backends, "frames": parse_frames(args.frames),
                     "middlebury_calibration": _calibration(args.calib)}
        if args.starts:
            overrides.update(starts=args.starts, geometry_starts=len(args.starts))
        if args.voxel_size_m is not None:
            overrides.update(voxel_size_m=args.voxel_size_m)
        config = (BenchConfig.quick if args.quick else BenchConfig.full)(data, middlebury, **overrides)
        results = run_benchmark(config, tuple(args.sections or SECTIONS),
                                progress=lambda line: print(f"[bench] {line}", file=sys.stderr, flush=True))
        paths = write_report(results, args.out)
    except (WorldStereoError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(results))
    print(f"bench {'--quick ' if args.quick else ''}took {time.perf_counter() - t0:.1f} s; wrote:")
    for name, path in paths.items():
        print(f"  {name:15s}{path}")
    return 0


def _bench_args(p: argparse.ArgumentParser) -> None:
    add_arguments(p)
    add_bench_options(p)


def _bench(args: argparse.Namespace) -> int:
    set_bench_defaults(args)
    return run(args)


COMMANDS: dict[str, Command] = {
    "bench": Command("measure geometry, camera accuracy, cross-path consistency, view fidelity and speed of the "
                     "generator backends on real RGB-D data; tables, plots and a contact sheet", _bench_args, _bench),
}
