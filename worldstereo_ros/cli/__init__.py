"""``worldstereo-ros``: the command-line entry point (the dispatcher).

Each subcommand lives in a module of this package that exposes ``COMMANDS`` (name ->
:class:`~worldstereo_ros.cli.commands.Command`: help, add_arguments, run); the dispatcher only registers them, so
a new subcommand module is one entry in :data:`SUBCOMMAND_MODULES`. Subcommand modules import their heavy
dependencies only when run, so ``worldstereo-ros --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from worldstereo_ros.cli import bench, diffusion, imagine, learned, ros, stereo
from worldstereo_ros.cli.commands import Command

#: The modules whose ``COMMANDS`` make up the command line, in the order ``--help`` lists them.
SUBCOMMAND_MODULES = (imagine, ros, bench, diffusion, learned, stereo)

#: name -> Command, from every module in :data:`SUBCOMMAND_MODULES`
COMMANDS: dict[str, Command] = {}
for _module in SUBCOMMAND_MODULES:
    COMMANDS.update(_module.COMMANDS)

#: Commands whose arguments all go to a node (``--ros-args ...``).
PASS_THROUGH = ros.PASS_THROUGH


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worldstereo-ros", description="Imagine views along robot paths (ROS 2).")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.help))
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in PASS_THROUGH and argv[1:2] not in (["-h"], ["--help"]):
        # argparse takes "--ros-args" for an option of its own; after "--" everything is the node's
        argv = [argv[0], "--", *argv[1:]]
    args = parser.parse_args(argv)
    return COMMANDS[args.command].run(args)
