"""The one image-size parser of the command line (cli/commands.py), shared by imagine, distill and train."""

from __future__ import annotations

import argparse

import pytest

from worldstereo_ros.cli.commands import height_width, width_height


def test_orders_follow_the_names():
    assert width_height("640x480") == (640, 480)
    assert width_height("64X48") == (64, 48)
    assert height_width("480x640") == (480, 640)


@pytest.mark.parametrize("text", ["640", "640x480x3", "axb", "", "7x480", "640x0", "-8x8"])
def test_bad_sizes_are_argparse_errors_naming_the_form(text):
    with pytest.raises(argparse.ArgumentTypeError, match="WIDTHxHEIGHT"):
        width_height(text)
    with pytest.raises(argparse.ArgumentTypeError, match="HEIGHTxWIDTH"):
        height_width(text)
