"""The command line's one pattern: each module of ``worldstereo_ros/cli/`` that defines subcommands exposes
``COMMANDS`` (name -> Command) and is registered by the dispatcher, with no name defined twice."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import subprocess
import sys

import worldstereo_ros.cli as cli
from worldstereo_ros.cli.commands import Command


def _modules_with_commands() -> set[str]:
    names = set()
    for info in pkgutil.iter_modules(cli.__path__):
        if info.name == "__main__":  # importing it runs the command line
            continue
        module = importlib.import_module(f"worldstereo_ros.cli.{info.name}")
        if hasattr(module, "COMMANDS"):
            names.add(module.__name__)
    return names


def test_every_subcommand_module_is_registered():
    registered = {m.__name__ for m in cli.SUBCOMMAND_MODULES}
    assert _modules_with_commands() == registered


def test_names_are_unique_and_commands_well_formed():
    seen: dict[str, str] = {}
    for module in cli.SUBCOMMAND_MODULES:
        for name, command in module.COMMANDS.items():
            assert name not in seen, f"{name} defined in {seen.get(name)} and {module.__name__}"
            seen[name] = module.__name__
            assert isinstance(command, Command) and command.help and callable(command.run)
            command.add_arguments(argparse.ArgumentParser(prog=name))  # builds without error
    assert set(seen) == set(cli.COMMANDS)
    assert {"imagine", "demo", "smoke", "replay", "record", "launch", "bench", "weights", "distill"} <= set(seen)


def test_help_does_not_import_torch():
    code = "import sys, worldstereo_ros.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
