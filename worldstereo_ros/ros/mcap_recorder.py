"""Record ROS 2 topics to an MCAP file that Foxglove and ``ros2 bag play`` open.

Messages are taken as serialized CDR (raw subscriptions, no decode/encode round trip) and written with the
``mcap`` library: one ``ros2msg`` schema per type holding the message definition with its dependencies
(the ``MSG: pkg/Name`` blocks ros2 bag writes), one ``cdr`` channel per topic, log time = receive time.
Definitions are read from the ``share/<pkg>/msg/*.msg`` files of the environment (the venv, or every prefix
of ``AMENT_PREFIX_PATH`` with a sourced ROS 2).

    worldstereo-ros record rollout.mcap /imagined/views /global_cache /tf --duration 30
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import threading
import time
from pathlib import Path

from mcap.writer import Writer

from worldstereo_ros.errors import InputError

_BUILTIN = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
            "int64", "uint64", "string", "wstring"}
_SEPARATOR = "=" * 80


def _share_dirs() -> list[Path]:
    prefixes = [Path(sys.prefix)] + [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    return [p / "share" for p in prefixes]


def _msg_file(pkg: str, name: str) -> Path:
    for share in _share_dirs():
        path = share / pkg / "msg" / f"{name}.msg"
        if path.is_file():
            return path
    raise InputError("type", f"no definition {pkg}/msg/{name}.msg under {', '.join(map(str, _share_dirs()))}")


def _dependencies(pkg: str, text: str) -> list[str]:
    """``pkg/Name`` of every non-builtin field type in a .msg text, in order."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or re.match(r"^\S+\s+[A-Z0-9_]+\s*=", line):
            continue  # blank, comment or constant
        base = re.sub(r"\[.*\]$", "", line.split()[0])
        base = re.sub(r"<=\d+$", "", base)  # bounded strings
        if base in _BUILTIN:
            continue
        if base == "Header":
            base = "std_msgs/Header"
        full = base.replace("/msg/", "/") if "/" in base else f"{pkg}/{base}"
        out.append(full)
    return out


def message_definition(type_name: str) -> str:
    """The ros2msg schema text of ``pkg/msg/Name``: its .msg file, then each dependency once as a
    ``MSG: pkg/Name`` block."""
    pkg, _, name = type_name.partition("/msg/")
    if not name:
        raise InputError("type", f"expected pkg/msg/Name, got {type_name!r}")
    main = _msg_file(pkg, name).read_text()
    blocks, seen, todo = [], {f"{pkg}/{name}"}, list(_dependencies(pkg, main))
    while todo:
        dep = todo.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        dep_pkg, dep_name = dep.split("/")
        text = _msg_file(dep_pkg, dep_name).read_text()
        blocks.append(f"{_SEPARATOR}\nMSG: {dep}\n{text}")
        todo.extend(_dependencies(dep_pkg, text))
    return "\n".join([main, *blocks])


def message_class(type_name: str):
    """The Python class of ``pkg/msg/Name``."""
    pkg, _, name = type_name.partition("/msg/")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError):
        raise InputError("type", f"cannot import {type_name}") from None


class McapRecorder:
    """Subscribes to ``topics`` on ``node`` (raw CDR) and writes every message to ``path``. Thread-safe.

    Args:
        topics: topic names; their types come from the ROS graph (a topic not yet on the graph is picked up
            when it appears, by :meth:`poll_graph`, which the caller's timer or :func:`record` calls).
        qos_depth: history depth of the subscriptions. Like ros2 bag, reliability and durability follow the
            publishers: reliable (and transient-local, for latched topics) when every publisher offers it.
    """

    def __init__(self, node, path: str | Path, topics: list[str], qos_depth: int = 50) -> None:
        self._node = node
        self._qos_depth = qos_depth
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")
        self._writer = Writer(self._file)
        self._writer.start(profile="ros2", library="worldstereo_ros")
        self._lock = threading.Lock()
        self._wanted = list(topics)
        self._channels: dict[str, int] = {}
        self._schemas: dict[str, int] = {}
        self.counts: dict[str, int] = {t: 0 for t in topics}
        self._closed = False
        self.poll_graph()

    def poll_graph(self) -> None:
        """Subscribe to the wanted topics that have appeared on the graph since the last call."""
        types = dict(self._node.get_topic_names_and_types())
        for topic in self._wanted:
            if topic in self._channels or topic not in types:
                continue
            type_name = types[topic][0]
            with self._lock:
                if type_name not in self._schemas:
                    self._schemas[type_name] = self._writer.register_schema(
                        type_name, "ros2msg", message_definition(type_name).encode())
                self._channels[topic] = self._writer.register_channel(topic, "cdr", self._schemas[type_name])
            self._node.create_subscription(message_class(type_name), topic,
                                           lambda data, t=topic: self._on_message(t, data), self._qos_for(topic), raw=True)

    def _qos_for(self, topic: str):
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        infos = self._node.get_publishers_info_by_topic(topic)
        reliable = bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
        latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
        return QoSProfile(depth=self._qos_depth,
                          reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)

    def _on_message(self, topic: str, data: bytes) -> None:
        now = time.time_ns()
        with self._lock:
            if self._closed:
                return
            self.counts[topic] += 1
            self._writer.add_message(self._channels[topic], log_time=now, data=bytes(data), publish_time=now,
                                     sequence=self.counts[topic])

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._writer.finish()
            self._file.close()


def record(path: str, topics: list[str], duration_s: float | None) -> dict[str, int]:
    """Record ``topics`` to ``path`` until ``duration_s`` passes (None: until Ctrl-C); returns message counts."""
    import rclpy

    rclpy.init()
    node = rclpy.create_node("worldstereo_recorder")
    recorder = McapRecorder(node, path, topics)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    last_poll = 0.0
    try:
        while deadline is None or time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
            if time.monotonic() - last_poll > 0.5:
                recorder.poll_graph()
                last_poll = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        recorder.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return recorder.counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worldstereo-ros record", description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="the .mcap file to write")
    parser.add_argument("topics", nargs="+", help="topics to record")
    parser.add_argument("--duration", type=float, default=None, help="seconds to record (default: until Ctrl-C)")
    args = parser.parse_args(argv)
    counts = record(args.output, args.topics, args.duration)
    print(f"wrote {args.output}: " + ", ".join(f"{t} {n}" for t, n in counts.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
