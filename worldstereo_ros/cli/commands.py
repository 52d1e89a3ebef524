"""The shape of a subcommand: what every module of :mod:`worldstereo_ros.cli` registers.

A subcommand module exposes ``COMMANDS: dict[str, Command]``; the dispatcher (``cli/__init__.py``) adds each
entry as a sub-parser. Kept apart from the dispatcher so subcommand modules need not import it (no cycle).
"""

from __future__ import annotations

import argparse
from typing import Callable, NamedTuple


class Command(NamedTuple):
    """One ``worldstereo-ros`` subcommand."""

    #: one-line summary, shown by ``worldstereo-ros --help`` and as the sub-parser's description
    help: str
    #: adds the subcommand's options to its (empty) sub-parser
    add_arguments: Callable[[argparse.ArgumentParser], None]
    #: runs the subcommand on the parsed options; returns the process exit code
    run: Callable[[argparse.Namespace], int]
