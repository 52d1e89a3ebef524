"""``worldstereo-ros``: the command-line entry point.

Subcommands are registered in :data:`COMMANDS`; each imports its heavy dependencies only when run,
so ``worldstereo-ros --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable


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


#: name -> (help, add_arguments, run)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "smoke": ("start a replay node in another process on a synthetic RGB-D sequence and receive its topics over "
              "DDS", _smoke_args, _smoke),
    "replay": ("publish a 7-Scenes-style RGB-D folder as image/depth/camera_info/tf", _replay_args, _replay),
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
