"""Run the project's launch files where the ``launch`` / ``launch_ros`` packages are not installed (the PyPI
wheels do not ship them).

The launch file is executed with small stand-ins for the subset of the launch API the project's files use:
``launch.LaunchDescription``, ``launch.actions.DeclareLaunchArgument``, ``launch.actions.SetEnvironmentVariable``
(for the nodes after it, as ``ros2 launch`` applies it),
``launch.substitutions.LaunchConfiguration`` and ``launch_ros.actions.Node`` (package, executable, name,
namespace, parameters as dicts or YAML files, remappings, arguments). Substitutions may be a string, a
``LaunchConfiguration`` or a list of both (concatenated). Each node becomes a child process
``python -m <module> --ros-args ...``; their output lines are prefixed with ``[name]`` as ``ros2 launch``
does, SIGINT/SIGTERM are forwarded, and the first child that fails stops the others.

With a full ROS 2 install use ``ros2 launch worldstereo_ros <file>``; this runner always uses its stand-ins
so it behaves the same everywhere.

    worldstereo-ros launch imagination.launch.py image:=/camera/color/image_raw
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from worldstereo_ros.errors import ConfigError

PACKAGE = "worldstereo_ros"
REPO_LAUNCH = Path(__file__).resolve().parents[2] / "launch"


# ---------------------------------------------------------------------------------------------- stand-ins
class LaunchConfiguration:
    def __init__(self, variable_name, default=None) -> None:
        self.variable_name = variable_name
        self.default = default


class DeclareLaunchArgument:
    def __init__(self, name, default_value=None, description="", choices=None, **_ignored) -> None:
        self.name, self.default_value, self.description, self.choices = name, default_value, description, choices


class SetEnvironmentVariable:
    def __init__(self, name, value, **_ignored) -> None:
        self.name, self.value = name, value


class Node:
    def __init__(self, package=None, executable=None, name=None, namespace=None, parameters=(), remappings=(),
                 arguments=(), output="screen", **_ignored) -> None:
        if not executable:
            raise ConfigError("executable", "a Node needs an executable")
        self.package, self.executable, self.name, self.namespace = package, executable, name, namespace
        self.parameters, self.remappings, self.arguments = list(parameters), list(remappings), list(arguments)


class LaunchDescription:
    def __init__(self, initial_entities=()) -> None:
        self.entities = list(initial_entities)


def _stand_in_modules() -> dict[str, types.ModuleType]:
    launch = types.ModuleType("launch")
    launch.LaunchDescription = LaunchDescription
    actions = types.ModuleType("launch.actions")
    actions.DeclareLaunchArgument = DeclareLaunchArgument
    actions.SetEnvironmentVariable = SetEnvironmentVariable
    substitutions = types.ModuleType("launch.substitutions")
    substitutions.LaunchConfiguration = LaunchConfiguration
    launch.actions, launch.substitutions = actions, substitutions
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = Node
    launch_ros.actions = ros_actions
    return {"launch": launch, "launch.actions": actions, "launch.substitutions": substitutions,
            "launch_ros": launch_ros, "launch_ros.actions": ros_actions}


# ---------------------------------------------------------------------------------------------- loading
@dataclass
class NodeSpec:
    """One node to start: its module, its ``--ros-args`` and the environment variables set before it."""

    name: str
    module: str
    namespace: str | None = None
    parameters: list[dict | str] = field(default_factory=list)
    remappings: list[tuple[str, str]] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", self.module, *self.arguments, "--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            # launch_ros makes a relative namespace absolute; rcl refuses one without the leading slash
            cmd += ["-r", f"__ns:=/{self.namespace.lstrip('/')}"]
        for src, dst in self.remappings:
            cmd += ["-r", f"{src}:={dst}"]
        for p in self.parameters:
            if isinstance(p, str):
                cmd += ["--params-file", p]
            else:
                for key, value in p.items():
                    # rcl parses the value as YAML; JSON is valid YAML and quotes strings
                    cmd += ["-p", f"{key}:={_yaml_value(value)}"]
        return cmd


def executable_module(executable: str) -> str:
    """The module of one of this package's executables (its console-script entry point)."""
    for ep in importlib.metadata.entry_points(group="console_scripts"):
        if ep.name == executable and ep.value.startswith(PACKAGE + "."):
            return ep.value.split(":")[0]
    module = f"{PACKAGE}.ros.{executable}"  # a source tree without installed entry points
    if importlib.util.find_spec(module) is None:
        raise ConfigError("executable", f"{executable!r} is not an executable of {PACKAGE}")
    return module


def package_share() -> Path | None:
    """``share/worldstereo_ros`` of the first ament prefix (``AMENT_PREFIX_PATH``) that has the package, as
    ``$(find-pkg-share worldstereo_ros)`` resolves it; None without an index or without the package in it."""
    try:
        # optional: a plain pip install has no ament index
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, OSError, ValueError):  # no prefix path set, or the package not in it
        return None


def find_launch_file(name: str) -> Path:
    """A path as given, else a file of that name in the installed package's ``launch/`` (through the ament
    index, as ``ros2 launch`` finds it), else in the source tree's."""
    path = Path(name)
    if path.is_file():
        return path
    share = package_share()
    candidates = ([share / "launch" / name] if share is not None else []) + [REPO_LAUNCH / name]
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError("launch_file", f"{name} not found (looked in {', '.join(str(c.parent) for c in candidates)})")


def load_launch_file(path: str | Path, launch_args: dict[str, str]) -> list[NodeSpec]:
    """Execute the launch file with the stand-ins and resolve its nodes with ``launch_args``.

    Raises:
        ConfigError: unknown or missing arguments, unsupported entities, unknown executables.
    """
    path = Path(path)
    saved = {name: sys.modules.get(name) for name in _stand_in_modules()}
    sys.modules.update(_stand_in_modules())
    try:
        namespace = runpy.run_path(str(path))
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    if "generate_launch_description" not in namespace:
        raise ConfigError("launch_file", f"{path} has no generate_launch_description()")
    description = namespace["generate_launch_description"]()
    declared = {e.name: e for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    unknown = sorted(set(launch_args) - set(declared))
    if unknown:
        raise ConfigError("launch_args", f"unknown argument(s) {', '.join(unknown)}; declared: {', '.join(declared)}")
    values = {}
    for name, decl in declared.items():
        value = launch_args.get(name, decl.default_value)
        if value is None:
            raise ConfigError(name, f"launch argument {name!r} is required ({decl.description})")
        if decl.choices and value not in decl.choices:
            raise ConfigError(name, f"must be one of {', '.join(decl.choices)}, got {value!r}")
        values[name] = value

    def resolve(sub):
        if isinstance(sub, LaunchConfiguration):
            if sub.variable_name in values:
                return values[sub.variable_name]
            if sub.default is not None:
                return resolve(sub.default)
            raise ConfigError(sub.variable_name, "LaunchConfiguration of an undeclared argument without default")
        if isinstance(sub, (list, tuple)):
            return "".join(str(resolve(s)) for s in sub)
        return sub

    def typed(value):
        # launch_ros reads substituted parameter values as YAML, so "5.0" becomes a double and "true" a bool;
        # a list is a substitution list only when it holds a substitution, otherwise it is an array value
        is_substitution = isinstance(value, LaunchConfiguration) or (
            isinstance(value, (list, tuple)) and any(isinstance(v, LaunchConfiguration) for v in value))
        if not is_substitution:
            return value
        text = resolve(value)
        parsed = yaml.safe_load(text) if text.strip() else ""
        # YAML null is no parameter value, and dates/timestamps are not parameter types: keep the text
        return text if parsed is None or not isinstance(parsed, (bool, int, float, str, list)) else parsed

    nodes = []
    env: dict[str, str] = {}
    for e in description.entities:
        if isinstance(e, DeclareLaunchArgument):
            continue
        if isinstance(e, SetEnvironmentVariable):
            env[str(resolve(e.name))] = str(resolve(e.value))
            continue
        if not isinstance(e, Node):
            raise ConfigError("launch_file", f"{type(e).__name__} is not supported by this runner (use ros2 launch)")
        if e.package not in (None, PACKAGE):
            raise ConfigError("package", f"only {PACKAGE}'s executables can run here, got {e.package!r}")
        params = []
        for p in e.parameters:
            params.append({k: typed(v) for k, v in p.items()} if isinstance(p, dict) else str(resolve(p)))
        nodes.append(NodeSpec(
            name=str(resolve(e.name) or e.executable), module=executable_module(str(resolve(e.executable))),
            namespace=resolve(e.namespace), parameters=params,
            remappings=[(str(resolve(a)), str(resolve(b))) for a, b in e.remappings],
            arguments=[str(resolve(a)) for a in e.arguments], env=dict(env)))
    return nodes


def _yaml_value(value) -> str:
    """A parameter value as rcl's ``-p name:=value`` YAML; JSON is valid YAML and quotes strings."""
    try:
        return json.dumps(value)
    except TypeError as exc:
        raise ConfigError("parameters", f"{value!r} is not a ROS parameter value ({exc})") from None


# ---------------------------------------------------------------------------------------------- running
def _pump(name: str, stream) -> None:
    for line in stream:
        sys.stdout.write(f"[{name}] {line}")
        sys.stdout.flush()


#: Seconds after the first stop signal at which a child still running gets SIGTERM, then SIGKILL; the run
#: ends within the second (issue 14 item 9: a child ignoring SIGINT kept the runner waiting forever).
SIGTERM_AFTER_S = 2.0
SIGKILL_AFTER_S = 4.0
#: How often the supervising loop looks at its children when no signal wakes it.
POLL_S = 0.1


def _signal_alive(procs: list[tuple[NodeSpec, subprocess.Popen]], signum: int) -> None:
    for _, p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signum)
            except ProcessLookupError:  # ended between poll() and the signal
                pass


def run_nodes(nodes: list[NodeSpec], sigterm_after_s: float = SIGTERM_AFTER_S,
              sigkill_after_s: float = SIGKILL_AFTER_S) -> int:
    """Start every node, forward SIGINT/SIGTERM, return the first non-zero exit code (0 when all end well).

    Stopping (a signal to the runner, or a child that failed) sends the children the signal (SIGINT for a
    failed sibling); a child still alive ``sigterm_after_s`` seconds later gets SIGTERM, and one alive
    ``sigkill_after_s`` seconds later gets SIGKILL, so a stop always ends in about ``sigkill_after_s``.
    """
    if not 0 <= sigterm_after_s <= sigkill_after_s:
        raise ConfigError("sigkill_after_s", f"expected 0 <= sigterm_after_s <= sigkill_after_s, got "
                                             f"{sigterm_after_s} and {sigkill_after_s}")
    procs: list[tuple[NodeSpec, subprocess.Popen]] = []
    pumps: list[threading.Thread] = []
    wake = threading.Event()  # set by a signal so the loop reacts at once instead of at its next poll
    requested: list[int] = []  # signals received, handled by the loop (a handler only records them)

    def on_signal(signum, _frame=None) -> None:
        requested.append(signum)
        wake.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for spec in nodes:
            p = subprocess.Popen(spec.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 env=dict(os.environ, **spec.env, PYTHONUNBUFFERED="1"))
            procs.append((spec, p))
            pumps.append(threading.Thread(target=_pump, args=(spec.name, p.stdout), daemon=True))
            pumps[-1].start()
            print(f"[launch] started {spec.name} (pid {p.pid}): {' '.join(spec.command()[1:])}", flush=True)
        code = 0
        stop_started: float | None = None
        escalated: set[int] = set()
        while any(p.poll() is None for _, p in procs):
            if stop_started is None:
                if requested:
                    stop_started = time.monotonic()
                    _signal_alive(procs, requested[0])
                else:
                    failed = next(((spec, p.returncode) for spec, p in procs if p.returncode not in (None, 0)), None)
                    if failed is not None:
                        print(f"[launch] {failed[0].name} exited with {failed[1]}; stopping the others", flush=True)
                        code = failed[1]
                        stop_started = time.monotonic()
                        _signal_alive(procs, signal.SIGINT)
            else:
                elapsed = time.monotonic() - stop_started
                for after, signum in ((sigterm_after_s, signal.SIGTERM), (sigkill_after_s, signal.SIGKILL)):
                    if elapsed >= after and signum not in escalated:
                        escalated.add(signum)
                        alive = [spec.name for spec, p in procs if p.poll() is None]
                        if alive:
                            print(f"[launch] {', '.join(alive)} still running {elapsed:.1f} s after the stop; "
                                  f"sending {signal.Signals(signum).name}", flush=True)
                            _signal_alive(procs, signum)
            wake.wait(POLL_S)
            wake.clear()
        for _, p in procs:
            p.wait()  # every child has ended (the loop above); this only reaps it
        for pump in pumps:  # a child's last lines (often the interesting ones) are still in its pipe
            pump.join(timeout=5)
        return code
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    args = {}
    for item in argv[1:]:
        if ":=" not in item:
            print(f"error: expected name:=value, got {item!r}", file=sys.stderr)
            return 2
        key, value = item.split(":=", 1)
        args[key] = value
    try:
        nodes = load_launch_file(find_launch_file(argv[0]), args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return run_nodes(nodes)


if __name__ == "__main__":
    raise SystemExit(main())
