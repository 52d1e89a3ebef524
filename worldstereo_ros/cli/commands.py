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


def _pixel_pair(text: str, form: str, minimum: int) -> tuple[int, int]:
    """``'640x480'`` -> ``(640, 480)``: two ints >= ``minimum`` joined by ``x``, in the order ``form`` names."""
    try:
        a, b = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected {form}, e.g. 640x480, got {text!r}") from exc
    if a < minimum or b < minimum:
        raise argparse.ArgumentTypeError(f"{form} must be at least {minimum}x{minimum}, got {text!r}")
    return a, b


def width_height(text: str) -> tuple[int, int]:
    """argparse type of an image size ``WIDTHxHEIGHT`` (pixels, each >= 8) -> ``(width, height)``."""
    return _pixel_pair(text, "WIDTHxHEIGHT", 8)


def height_width(text: str) -> tuple[int, int]:
    """argparse type of an image size ``HEIGHTxWIDTH`` (pixels, each >= 8) -> ``(height, width)``."""
    return _pixel_pair(text, "HEIGHTxWIDTH", 8)


def add_depth_estimation_options(group: argparse._ArgumentGroup) -> None:
    """The options of every command that estimates depth for RGB-only input (``imagine``, ``stereo``):
    ``--depth-model`` (alias ``--depth-model-path``, the nodes' parameter name; a local transformers
    depth-estimation folder, never downloaded) and the metric scale, ``--camera-height-m`` / ``--median-depth-m``."""
    group.add_argument("--depth-model", "--depth-model-path", dest="depth_model", default=None,
                       help="local transformers depth-model folder (e.g. Depth Anything V2) used when --depth is not "
                            "given; the nodes' estimator for RGB-only cameras")
    group.add_argument("--camera-height-m", type=float, default=None, help="camera height above the floor, metres: "
                       "gives the estimated depth its metric scale")
    group.add_argument("--median-depth-m", type=float, default=None, help="typical distance of the scene, metres "
                       "(scale when no camera height is given); without either, depth stays relative")

