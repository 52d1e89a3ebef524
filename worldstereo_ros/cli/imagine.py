"""The ``imagine`` and ``demo`` subcommands: a snapshot from files, an RGB-D folder or the procedural room,
handed to the run-and-export service (:mod:`worldstereo_ros.cli.run_export`)."""

from __future__ import annotations

import argparse
import sys

from worldstereo_ros.cli.commands import Command, width_height
from worldstereo_ros.cli.diffusion import add_backend_options, add_depth_options, rgb_only_snapshot
from worldstereo_ros.cli.run_export import imagine_and_export
from worldstereo_ros.errors import InputError, WorldStereoError
from worldstereo_ros.snapshot import Snapshot


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
                       help="comma-separated name:amount list (orbit/up in degrees, left/right/forward in metres); "
                            "default: the demo's four, orbit, up, left and right "
                            "(worldstereo_ros.geometry.trajectories.DEFAULT_TRAJECTORIES)")
    paths.add_argument("--poses-file", default=None,
                       help="camera poses instead: a TUM text file (one trajectory) or a JSON poses file")
    p.add_argument("--frames", type=_positive_int, default=None,
                   help="views per trajectory (default 25; with --poses-file the poses are resampled to this many "
                        "when given)")
    p.add_argument("--size", type=width_height, default=None, help="size of the imagined views, WIDTHxHEIGHT "
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
    p.add_argument("--colmap-max-points", type=_positive_int, default=None,
                   help="cap the COLMAP model's 3D points (thinned on a coarser grid, with a warning); default: all")
    p.add_argument("--skip", default="", help="comma-separated exports to skip: frames, videos, contact_sheet, "
                                              "cache_ply, poses, colmap, mesh")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_backend_options(p)


def _imagine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rgb", default=None, help="colour image (PNG/JPEG)")
    p.add_argument("--depth", default=None, help="depth: uint16 PNG (millimetres by default) or float32 .npy metres "
                   "(omit it to estimate depth with --depth-model)")
    p.add_argument("--depth-scale", type=float, default=None,
                   help="metres per depth unit (default 0.001 for PNG, 1 for .npy)")
    p.add_argument("--intrinsics", default=None,
                   help="'fx,fy,cx,cy', a 3x3 text file (e.g. 7-Scenes camera-intrinsics.txt) or a file with the "
                        "four numbers")
    p.add_argument("--pose", default=None, help="4x4 camera-to-world text file (default identity)")
    add_depth_options(p)
    _run_args(p, out_default=None)


def _imagine(args: argparse.Namespace) -> int:
    # lazy: keeps --help and the other commands fast (package doc)
    from worldstereo_ros.datasets.snapshot_files import load_snapshot

    try:
        if args.depth is None or args.panorama:  # RGB-only snapshot: depth from a local estimator
            snapshot, note = rgb_only_snapshot(args)
            print(note)
            return imagine_and_export(snapshot, args, f"{args.panorama or args.rgb} ({note})")
        if not args.rgb or not args.intrinsics:
            raise InputError("rgb", "--rgb, --depth and --intrinsics are required for an RGB-D snapshot")
        snapshot = load_snapshot(args.rgb, args.depth, args.intrinsics, args.pose, args.depth_scale)
        return imagine_and_export(snapshot, args, f"{args.rgb}")
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
    try:
        if args.rgbd_folder:
            # lazy: keeps --help and the other commands fast (package doc)
            from worldstereo_ros.datasets.tum_rgbd import open_rgbd_sequence

            frame = open_rgbd_sequence(args.rgbd_folder).read(args.frame)
            snapshot = Snapshot.create(frame.rgb, frame.depth, frame.K, frame.T_world_cam)
            source = f"{args.rgbd_folder} frame {args.frame}"
        else:
            # lazy: keeps --help and the other commands fast (package doc)
            from worldstereo_ros.datasets.procedural_scene import procedural_snapshot

            width, height = args.size if args.size else (640, 480)
            snapshot = procedural_snapshot(width, height)
            source = f"the procedural room ({width}x{height})"
        return imagine_and_export(snapshot, args, source)
    except WorldStereoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


COMMANDS: dict[str, Command] = {
    "imagine": Command("imagine views along trajectories from one RGB-D snapshot and write frames, videos, the "
                       "fused cache, poses, a COLMAP model and a mesh", _imagine_args, _imagine),
    "demo": Command("imagine the four standard trajectories (orbit, up, left, right) from the procedural room or a "
                    "7-Scenes frame; no data or network needed", _demo_args, _demo),
}
