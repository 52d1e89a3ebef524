"""The ROS 2 subcommands: ``smoke``, ``replay``, ``record`` and ``launch`` (each starts a node or a graph)."""

from __future__ import annotations

import argparse

from worldstereo_ros.cli.commands import Command
from worldstereo_ros.ros.parameters import REPLAY_NODE_PARAMS, help_text


def _smoke_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="outputs/smoke", help="folder for the synthetic frames and the received preview")
    p.add_argument("--frames", type=int, default=5, help="frames to replay")
    p.add_argument("--timeout-s", type=float, default=30.0, help="give up after this long")


def _smoke(args: argparse.Namespace) -> int:
    # lazy: keeps --help and the other commands fast (package doc)
    from worldstereo_ros.ros.smoke import run_smoke

    return run_smoke(args.out, args.frames, args.timeout_s)


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("ros_args", nargs=argparse.REMAINDER, help="passed to the node, e.g. --ros-args -p folder:=PATH")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "node parameters (--ros-args -p NAME:=VALUE):\n" + help_text(REPLAY_NODE_PARAMS)


def _replay(args: argparse.Namespace) -> int:
    # lazy: keeps --help and the other commands fast (package doc)
    from worldstereo_ros.ros.replay_node import main

    ros_args = args.ros_args[1:] if args.ros_args[:1] == ["--"] else args.ros_args
    return main(["replay_node", *ros_args])


def _launch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("launch_file", help="a launch file path, or the name of one in the package's launch/ folder")
    p.add_argument("launch_args", nargs="*", help="name:=value launch arguments")


def _launch(args: argparse.Namespace) -> int:
    # lazy: keeps --help and the other commands fast (package doc)
    from worldstereo_ros.ros.launch_subset import main

    return main([args.launch_file, *args.launch_args])


def _record_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", help="the .mcap file to write")
    p.add_argument("topics", nargs="*", help="topics to record, e.g. /imagined/views /global_cache /tf; "
                   "/topic:pkg/msg/Type records a topic not yet on the graph; none records every visible topic")
    p.add_argument("--duration", type=float, default=None, help="seconds to record (default: until Ctrl-C)")


def _record(args: argparse.Namespace) -> int:
    # lazy: keeps --help and the other commands fast (package doc)
    from worldstereo_ros.ros.mcap_recorder import main

    return main([args.output, *args.topics, *(["--duration", str(args.duration)] if args.duration else [])])


#: Commands whose arguments all go to a node (``--ros-args ...``).
PASS_THROUGH = ("replay",)

COMMANDS: dict[str, Command] = {
    "smoke": Command("start a replay node in another process on a synthetic RGB-D sequence and receive its topics "
                     "over DDS", _smoke_args, _smoke),
    "replay": Command("publish a 7-Scenes-style RGB-D folder as image/depth/camera_info/tf", _replay_args, _replay),
    "record": Command("record topics to an MCAP file (opens in Foxglove and ros2 bag play)", _record_args, _record),
    "launch": Command("run one of the package's launch files without the ROS 2 launch package (ros2 launch where "
                      "it is installed)", _launch_args, _launch),
}
