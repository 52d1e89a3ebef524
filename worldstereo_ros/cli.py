"""``worldstereo-ros``: the command-line entry point.

Subcommands are registered in :data:`COMMANDS`; each imports its heavy dependencies only when run,
so ``worldstereo-ros --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from worldstereo_ros.generation.learned import cli as _learned_cli  # light: imports torch only when run

DEFAULT_TRAJECTORIES = "orbit:30,up:10,left:0.5,right:0.5"


def _smoke_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="outputs/smoke", help="folder for the synthetic frames and the received preview")
    p.add_argument("--frames", type=int, default=5, help="frames to replay")
    p.add_argument("--timeout-s", type=float, default=30.0, help="give up after this long")


def _smoke(args: argparse.Namespace) -> int:
    from worldstereo_ros.ros.smoke import run_smoke

    return run_smoke(args.out, args.frames, args.timeout_s)


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("ros_args", nargs=argparse.REMAINDER, help="passed to the node, e.g. --ros-args -p folder:=PATH")


def _replay(args: argparse.Namespace) -> int:
    from worldstereo_ros.ros.replay_node import main

    return main(["replay_node", *args.ros_args])


# ---------------------------------------------------------------------------------------------- imagine / demo
def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x480, got {text!r}") from exc
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"image size must be at least 8x8, got {text!r}")
    return w, h


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _run_args(p: argparse.ArgumentParser, out_default: str | None) -> None:
    """Options shared by ``imagine`` and ``demo``."""
    paths = p.add_mutually_exclusive_group()
    paths.add_argument("--trajectories", default=None,
                       help=f"comma-separated name:amount list (orbit/up in degrees, left/right/forward in metres); "
                            f"default {DEFAULT_TRAJECTORIES!r}")
    paths.add_argument("--poses-file", default=None,
                       help="camera poses instead: a TUM text file (one trajectory) or a JSON poses file")
    p.add_argument("--frames", type=_positive_int, default=None,
                   help="views per trajectory (default 25; with --poses-file the poses are resampled to this many "
                        "when given)")
    p.add_argument("--size", type=_size, default=None, help="size of the imagined views, WIDTHxHEIGHT "
                                                            "(default: the snapshot's)")
    p.add_argument("--out", required=out_default is None, default=out_default, help="output folder")
    p.add_argument("--backend", default="render_fill", help="generator backend")
    p.add_argument("--memory", default="ggm+ssm", choices=("none", "ggm", "ggm+ssm"),
                   help="memories kept across trajectories")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator (runs are repeatable)")
    p.add_argument("--voxel-size-m", type=float, default=0.01, help="voxel size of the global cache, metres")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate of the videos")
    p.add_argument("--mesh-voxel-m", type=float, default=None,
                   help="TSDF voxel size of the mesh, metres (default: 1/100 of the median depth)")
    p.add_argument("--skip", default="", help="comma-separated exports to skip: frames, videos, contact_sheet, "
                                              "cache_ply, poses, colmap, mesh")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _trajectories(args: argparse.Namespace, pipeline) -> list:
    """Trajectory objects from ``--trajectories`` or ``--poses-file``."""
    from worldstereo_ros.pipeline import Trajectory

    if args.poses_file:
        from worldstereo_ros.geometry.trajectories import resample_path
        from worldstereo_ros.io.poses import read_poses_file

        out = []
        for track in read_poses_file(args.poses_file):
            T = track.T_world_cam
            if args.frames is not None and args.frames != T.shape[0]:
                T = resample_path(T, args.frames)
                T = T.numpy() if hasattr(T, "numpy") else T
            out.append(Trajectory(track.id, T, track.K if args.frames is None else None))
        return out
    from worldstereo_ros.geometry.trajectories import build_trajectory, parse_trajectory_spec

    frames = args.frames or 25
    specs = parse_trajectory_spec(args.trajectories or DEFAULT_TRAJECTORIES)
    out, seen = [], {}
    for spec in specs:
        name = str(spec.name)
        seen[name] = seen.get(name, 0) + 1
        tid = name if seen[name] == 1 else f"{name}_{seen[name]}"
        T = build_trajectory(spec, pipeline.snapshot.T_world_cam, frames, pipeline.depth_median_m)
        T = T.numpy() if hasattr(T, "numpy") else T
        out.append(Trajectory(tid, T))
    return out


def _imagine_and_export(snapshot, args: argparse.Namespace, source: str) -> int:
    """Run the pipeline on ``snapshot`` with the options in ``args``, write the outputs, print where they are."""
    import json
    import time
    from pathlib import Path

    import numpy as np

    from worldstereo_ros.io.export import EXPORTS, export_run
    from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig, STAGES

    skip = [s.strip() for s in args.skip.split(",") if s.strip()]
    bad = [s for s in skip if s not in EXPORTS]
    if bad:
        print(f"error: --skip: unknown {bad}; valid: {', '.join(EXPORTS)}", file=sys.stderr)
        return 2
    width, height = args.size if args.size else (None, None)
    config = PipelineConfig(backend=args.backend, memory=args.memory, seed=args.seed, voxel_size_m=args.voxel_size_m,
                            width=width, height=height, device=args.device)
    t0 = time.perf_counter()
    pipeline = ImaginationPipeline(config).initialize(snapshot)
    t_init = time.perf_counter() - t0
    trajectories = _trajectories(args, pipeline)
    total = sum(len(t) for t in trajectories)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc="imagining", file=sys.stderr, dynamic_ncols=True)

    def progress(p) -> None:
        if bar is None:
            return
        if p.stage == "generate" and p.frame_index > 0:
            bar.update(1)
        bar.set_postfix_str(f"{p.trajectory_id} ({p.trajectory_index + 1}/{p.trajectory_count}) {p.stage}",
                            refresh=False)

    t0 = time.perf_counter()
    try:
        results = pipeline.run(trajectories, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    t_run = time.perf_counter() - t0
    out = Path(args.out)
    exports = [e for e in EXPORTS if e not in skip]
    t_write = time.perf_counter()
    paths, write_s = export_run(out, snapshot, pipeline.cache, results, exports, fps=args.fps,
                                mesh_voxel_m=args.mesh_voxel_m)
    t_write = time.perf_counter() - t_write
    stages = {s: sum(r.timings_s.get(s, 0.0) for r in results) for s in STAGES[:-1]}
    summary = {
        "source": source,
        "snapshot": {"width": snapshot.width, "height": snapshot.height, "panorama": snapshot.is_panorama,
                     "K": None if snapshot.K is None else snapshot.K.tolist(),
                     "T_world_cam": snapshot.T_world_cam.tolist(), "depth_median_m": pipeline.depth_median_m},
        "config": config.to_dict(),
        "trajectories": [{"id": r.id, "frames": r.num_frames, "width": r.width, "height": r.height,
                          "imagined_fraction": float(np.mean(r.imagined)), "cache_points_after": r.cache_points_after,
                          "timings_s": r.timings_s} for r in results],
        "cache_points": len(pipeline.cache),
        "bank_keyframes": len(pipeline.bank),
        "timings_s": {"initialize": t_init, "imagine": t_run, "imagine_stages": stages,
                      "pipeline_total": t_init + t_run, "write": write_s, "write_total": t_write,
                      "end_to_end": t_init + t_run + t_write},
        "outputs": {name: [str(p.relative_to(out)) for p in ps] for name, ps in paths.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))

    n_frames = sum(r.num_frames for r in results)
    print(f"imagined {len(results)} trajectories x {results[0].num_frames} frames "
          f"({results[0].width}x{results[0].height}) from {source} in {t_init + t_run:.2f} s "
          f"(initialize {t_init:.2f} s, {n_frames / max(t_run, 1e-9):.1f} frames/s); "
          f"cache: {len(pipeline.cache)} points; files written in {t_write:.2f} s; end to end "
          f"{t_init + t_run + t_write:.2f} s")
    print("  " + ", ".join(f"{s} {v:.2f} s" for s, v in stages.items()))
    where = {
        "frames": out / "frames", "videos": out / "videos", "contact_sheet": out / "contact_sheet.png",
        "cache_ply": out / "cache.ply", "poses": out / "poses.json", "colmap": out / "colmap",
        "mesh": out / "mesh.ply",
    }
    for name in exports:
        print(f"  {name:<14} {where[name]}")
    print(f"  {'summary':<14} {out / 'summary.json'}")
    return 0


def _imagine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rgb", required=True, help="colour image (PNG/JPEG)")
    p.add_argument("--depth", required=True, help="depth: uint16 PNG (millimetres by default) or float32 .npy metres")
    p.add_argument("--depth-scale", type=float, default=None,
                   help="metres per depth unit (default 0.001 for PNG, 1 for .npy)")
    p.add_argument("--intrinsics", required=True,
                   help="'fx,fy,cx,cy', a 3x3 text file (e.g. 7-Scenes camera-intrinsics.txt) or a file with the "
                        "four numbers")
    p.add_argument("--pose", default=None, help="4x4 camera-to-world text file (default identity)")
    _run_args(p, out_default=None)


def _imagine(args: argparse.Namespace) -> int:
    from worldstereo_ros.errors import WorldStereoError
    from worldstereo_ros.io.snapshot_files import load_snapshot

    try:
        snapshot = load_snapshot(args.rgb, args.depth, args.intrinsics, args.pose, args.depth_scale)
        return _imagine_and_export(snapshot, args, f"{args.rgb}")
    except WorldStereoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rgbd-folder", default=None,
                   help="a 7-Scenes-style folder or a TUM RGB-D sequence to take the snapshot from (default: the "
                        "procedural room)")
    p.add_argument("--frame", type=int, default=0, help="frame number in --rgbd-folder")
    _run_args(p, out_default="outputs/demo")


def _demo(args: argparse.Namespace) -> int:
    from worldstereo_ros.errors import WorldStereoError

    try:
        if args.rgbd_folder:
            from worldstereo_ros.io.tum_rgbd import open_rgbd_sequence
            from worldstereo_ros.snapshot import Snapshot

            frame = open_rgbd_sequence(args.rgbd_folder).read(args.frame)
            snapshot = Snapshot.create(frame.rgb, frame.depth, frame.K, frame.T_world_cam)
            source = f"{args.rgbd_folder} frame {args.frame}"
        else:
            from worldstereo_ros.io.procedural_scene import procedural_snapshot

            width, height = args.size if args.size else (640, 480)
            snapshot = procedural_snapshot(width, height)
            source = f"the procedural room ({width}x{height})"
        return _imagine_and_export(snapshot, args, source)
    except WorldStereoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _shared_data() -> "Path":
    """$WORLDSTEREO_DATA, else the ``shared/data`` folder next to this checkout."""
    import os
    from pathlib import Path

    return Path(os.environ.get("WORLDSTEREO_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="a 7-Scenes-style folder (rgb, depth, pose per frame and "
                   "camera-intrinsics.txt) or a TUM RGB-D sequence (rgb.txt, depth.txt, groundtruth.txt) "
                   "(default: $WORLDSTEREO_DATA/7scenes-redkitchen, else ../shared/data/7scenes-redkitchen next "
                   "to the checkout)")
    p.add_argument("--middlebury", default=None, help="Middlebury stereo folder (default: middlebury-motorcycle "
                   "next to the default data; 'none' skips the stereo section)")
    p.add_argument("--quick", action="store_true", help="about a tenth of the work (one start frame, short "
                   "trajectories, 320x240 speed run): under a minute")
    p.add_argument("--backends", nargs="+", default=["render_fill"], help="generator backends to measure")
    p.add_argument("--starts", type=int, nargs="+", default=None, help="start frames (default 0 100 200; "
                   "--quick: 0)")
    p.add_argument("--sections", nargs="+", default=None, help="subset of: geometry camera consistency "
                   "fidelity stereo speed (default: all)")
    p.add_argument("--out", default="outputs/bench", help="folder for results.md, results.json, the plots "
                   "and the contact sheet")


def _bench(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from worldstereo_ros.errors import WorldStereoError
    from worldstereo_ros.evaluation.benchmark import SECTIONS, BenchConfig, run_benchmark
    from worldstereo_ros.evaluation.bench_report import markdown, write_report

    data = Path(args.data) if args.data else _shared_data() / "7scenes-redkitchen"
    if not ((data / "camera-intrinsics.txt").is_file() or (data / "rgb.txt").is_file()):
        print(f"error: data: no RGB-D sequence at {data} (neither camera-intrinsics.txt nor rgb.txt); pass --data "
              "or set WORLDSTEREO_DATA", file=sys.stderr)
        return 2
    if args.middlebury is None:
        middlebury = data.parent / "middlebury-motorcycle"
        middlebury = middlebury if middlebury.is_dir() else None
    else:
        middlebury = None if args.middlebury == "none" else Path(args.middlebury)
    overrides = {"backends": args.backends}
    if args.starts:
        overrides.update(starts=args.starts, geometry_starts=len(args.starts))
    config = (BenchConfig.quick if args.quick else BenchConfig.full)(data, middlebury, **overrides)
    t0 = time.perf_counter()
    try:
        results = run_benchmark(config, tuple(args.sections or SECTIONS),
                                progress=lambda line: print(f"[bench] {line}", file=sys.stderr, flush=True))
        paths = write_report(results, args.out)
    except WorldStereoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(results))
    print(f"bench {'--quick ' if args.quick else ''}took {time.perf_counter() - t0:.1f} s; wrote:")
    for name, path in paths.items():
        print(f"  {name:15s}{path}")
    return 0


def _launch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("launch_file", help="a launch file path, or the name of one in the package's launch/ folder")
    p.add_argument("launch_args", nargs="*", help="name:=value launch arguments")


def _launch(args: argparse.Namespace) -> int:
    from worldstereo_ros.ros.launch_subset import main

    return main([args.launch_file, *args.launch_args])


def _record_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", help="the .mcap file to write")
    p.add_argument("topics", nargs="*", help="topics to record, e.g. /imagined/views /global_cache /tf; "
                   "/topic:pkg/msg/Type records a topic not yet on the graph; none records every visible topic")
    p.add_argument("--duration", type=float, default=None, help="seconds to record (default: until Ctrl-C)")


def _record(args: argparse.Namespace) -> int:
    from worldstereo_ros.ros.mcap_recorder import main

    return main([args.output, *args.topics, *(["--duration", str(args.duration)] if args.duration else [])])


#: name -> (help, add_arguments, run)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "imagine": ("imagine views along trajectories from one RGB-D snapshot and write frames, videos, the fused "
                "cache, poses, a COLMAP model and a mesh", _imagine_args, _imagine),
    "demo": ("imagine the four standard trajectories (orbit, up, left, right) from the procedural room or a "
             "7-Scenes frame; no data or network needed", _demo_args, _demo),
    "smoke": ("start a replay node in another process on a synthetic RGB-D sequence and receive its topics over "
              "DDS", _smoke_args, _smoke),
    "replay": ("publish a 7-Scenes-style RGB-D folder as image/depth/camera_info/tf", _replay_args, _replay),
    "record": ("record topics to an MCAP file (opens in Foxglove and ros2 bag play)", _record_args, _record),
    "bench": ("measure geometry, camera accuracy, cross-path consistency, view fidelity and speed of the "
              "generator backends on real RGB-D data; tables, plots and a contact sheet", _bench_args, _bench),
    "train": (_learned_cli.HELP, _learned_cli.add_parser, _learned_cli.run),
    "launch": ("run one of the package's launch files without the ROS 2 launch package (ros2 launch where it is "
               "installed)", _launch_args, _launch),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worldstereo-ros", description="Imagine views along robot paths (ROS 2).")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
