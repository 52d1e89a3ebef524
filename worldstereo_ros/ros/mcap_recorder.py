"""Record ROS 2 topics to an MCAP file that Foxglove and ``ros2 bag play`` open.

Messages are taken as serialized CDR (raw subscriptions, no decode/encode round trip) and written with the
``mcap`` library: one ``ros2msg`` schema per type holding the message definition with its dependencies
(the ``MSG: pkg/Name`` blocks ros2 bag writes), one ``cdr`` channel per topic carrying the publishers'
``offered_qos_profiles`` (the ros2 profile's channel metadata, as rosbag2 writes it), log time = receive time,
publish time = the message's ``header.stamp`` when its first field is a ``std_msgs/Header`` with a non-zero
stamp (read straight from the CDR bytes), else the receive time. Definitions are read from the
``share/<pkg>/msg/*.msg`` files of the environment (the venv, or every prefix of ``AMENT_PREFIX_PATH`` with a
sourced ROS 2).

    worldstereo-ros record rollout.mcap /imagined/views /global_cache /tf --duration 30
    python -m worldstereo_ros.ros.mcap_recorder all.mcap --duration 10       # every (non-hidden) topic
    python -m worldstereo_ros.ros.mcap_recorder out.mcap /plan:nav_msgs/msg/Path   # type checked against the graph
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import struct
import sys
import threading
import time
from pathlib import Path

import rclpy
import yaml
from mcap.writer import Writer
from rclpy.executors import ExternalShutdownException
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

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


def starts_with_header(type_name: str) -> bool:
    """Whether the first field of ``pkg/msg/Name`` is a ``std_msgs/Header`` (so its CDR starts with the stamp)."""
    pkg, _, name = type_name.partition("/msg/")
    for line in _msg_file(pkg, name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or re.match(r"^\S+\s+[A-Z0-9_]+\s*=", line):
            continue
        return line.split()[0] in ("Header", "std_msgs/Header", "std_msgs/msg/Header")
    return False


def header_stamp_ns(data: bytes) -> int | None:
    """``header.stamp`` in ns of a CDR message whose first field is a Header; None when unset or too short.

    After the 4-byte encapsulation header (its second byte odd = little endian) come ``int32 sec`` and
    ``uint32 nanosec``, 4-aligned in every CDR version.
    """
    if len(data) < 12:
        return None
    sec, nanosec = struct.unpack_from("<iI" if data[1] & 1 else ">iI", data, 4)
    if sec <= 0 and nanosec == 0:
        return None
    return sec * 1_000_000_000 + nanosec


def subscription_qos(offered: list[QoSProfile], depth: int) -> QoSProfile:
    """The QoS a recorder subscribes with, given the publishers' offered profiles (rosbag2's rule): reliable
    when every publisher is, transient-local when every publisher is, else best effort / volatile."""
    reliable = bool(offered) and all(q.reliability == ReliabilityPolicy.RELIABLE for q in offered)
    latched = bool(offered) and all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offered)
    return QoSProfile(depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def _duration(d) -> dict[str, int]:
    ns = int(d.nanoseconds)
    return {"sec": ns // 1_000_000_000, "nsec": ns % 1_000_000_000}


def offered_qos_profiles_yaml(offered: list[QoSProfile]) -> str:
    """The ``offered_qos_profiles`` channel metadata of the MCAP ros2 profile: a YAML list with one mapping per
    publisher (history, depth, reliability, durability, deadline, lifespan, liveliness,
    liveliness_lease_duration, avoid_ros_namespace_conventions; policies as their rmw enum values, durations
    as sec/nsec), the layout rosbag2 writes."""
    rows = [{"history": int(q.history), "depth": int(q.depth), "reliability": int(q.reliability),
             "durability": int(q.durability), "deadline": _duration(q.deadline), "lifespan": _duration(q.lifespan),
             "liveliness": int(q.liveliness), "liveliness_lease_duration": _duration(q.liveliness_lease_duration),
             "avoid_ros_namespace_conventions": bool(q.avoid_ros_namespace_conventions)} for q in offered]
    return yaml.safe_dump(rows, sort_keys=False)


def _hidden(topic: str) -> bool:
    return any(part.startswith("_") for part in topic.split("/"))


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
        topics: topic names, or ``(topic, type)`` pairs (``type`` like ``sensor_msgs/msg/Image``; the graph's
            type must match it, else the topic is skipped with a warning), or None for every topic on the
            graph except hidden ones (a name part starting with ``_``, e.g. action and service internals) and
            types without a ``.msg`` definition here (warned once). Subscriptions are made when a topic
            appears on the graph, by :meth:`poll_graph`, which the caller's timer or :func:`record` calls.
        qos_depth: history depth of the subscriptions. Like ros2 bag, reliability and durability follow the
            publishers: reliable (and transient-local, for latched topics) when every publisher offers it. A
            topic is subscribed once it has a publisher, and re-subscribed when its publishers' offer changes.
    """

    def __init__(self, node, path: str | Path, topics: list[str | tuple[str, str]] | None = None,
                 qos_depth: int = 50) -> None:
        self._node = node
        self._qos_depth = qos_depth
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._all = topics is None
        # topic -> expected type (None: whatever the graph says)
        self._wanted: dict[str, str | None] = {}
        for t in topics or []:
            topic, type_name = (t, None) if isinstance(t, str) else t
            self._wanted[topic] = type_name
        self._channels: dict[str, int] = {}
        self._schemas: dict[str, int] = {}
        self._stamped: dict[str, bool] = {}  # topic -> first field is a Header
        self._classes: dict[str, type] = {}
        self._subscriptions: dict[str, tuple[object, QoSProfile]] = {}  # topic -> (subscription, its QoS)
        self._skipped: set[str] = set()
        self.counts: dict[str, int] = {t: 0 for t in self._wanted}
        self._closed = False
        for type_name in {t for t in self._wanted.values() if t}:
            message_definition(type_name)  # fail now, not when the topic appears, if a given type is unknown
        self._file = open(self.path, "wb")
        self._writer = Writer(self._file)
        self._writer.start(profile="ros2", library="worldstereo_ros")
        self.poll_graph()

    def _skip(self, topic: str, why: str) -> None:
        if topic not in self._skipped:
            self._skipped.add(topic)
            self._node.get_logger().warning(f"not recording {topic}: {why}")

    def poll_graph(self) -> None:
        """Subscribe to the wanted topics whose first publisher appeared since the last call, and follow changes
        of the publishers' QoS (a subscription made best-effort is made reliable once every publisher is)."""
        types = dict(self._node.get_topic_names_and_types())
        wanted = dict(self._wanted)
        if self._all:
            wanted.update({t: None for t in types if t not in wanted and not _hidden(t)})
        for topic, expected in wanted.items():
            if topic in self._skipped or topic not in types:
                continue
            # a topic known only from its subscribers has nothing to record yet, and its QoS is unknown
            publishers = self._node.get_publishers_info_by_topic(topic)
            if not publishers:
                continue
            if topic in self._channels:
                self._follow_qos(topic, publishers)
                continue
            graph_types = types[topic]
            if expected is not None and expected not in graph_types:
                self._skip(topic, f"its type on the graph is {', '.join(graph_types)}, not {expected}")
                continue
            type_name = expected or graph_types[0]
            try:
                msg_class = message_class(type_name)
                definition = message_definition(type_name) if type_name not in self._schemas else None
                stamped = starts_with_header(type_name)
            except InputError as err:
                self._skip(topic, str(err))
                continue
            with self._lock:
                if self._closed:
                    return
                if type_name not in self._schemas:
                    self._schemas[type_name] = self._writer.register_schema(type_name, "ros2msg", definition.encode())
                self._channels[topic] = self._writer.register_channel(
                    topic, "cdr", self._schemas[type_name],
                    metadata={"offered_qos_profiles": offered_qos_profiles_yaml([p.qos_profile for p in publishers])})
                self._stamped[topic] = stamped
                self._classes[topic] = msg_class
                self.counts.setdefault(topic, 0)
            self._subscribe(topic, publishers)

    def _subscribe(self, topic: str, publishers) -> None:
        qos = subscription_qos([p.qos_profile for p in publishers], self._qos_depth)
        self._subscriptions[topic] = (self._node.create_subscription(
            self._classes[topic], topic, lambda data, t=topic: self._on_message(t, data), qos, raw=True), qos)

    def _follow_qos(self, topic: str, publishers) -> None:
        subscription, qos = self._subscriptions[topic]
        wanted = subscription_qos([p.qos_profile for p in publishers], self._qos_depth)
        if (wanted.reliability, wanted.durability) != (qos.reliability, qos.durability):
            self._node.destroy_subscription(subscription)
            self._subscribe(topic, publishers)
            self._node.get_logger().info(f"{topic}: now subscribed {wanted.reliability.name.lower()}, "
                                         f"{wanted.durability.name.lower()}, as its publishers offer")

    def _on_message(self, topic: str, data: bytes) -> None:
        now = time.time_ns()
        data = bytes(data)
        stamp = header_stamp_ns(data) if self._stamped.get(topic) else None
        with self._lock:
            if self._closed:
                return
            self.counts[topic] += 1
            self._writer.add_message(self._channels[topic], log_time=now, data=data,
                                     publish_time=now if stamp is None else stamp, sequence=self.counts[topic])

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._writer.finish()
            self._file.close()


def record(path: str, topics: list[str | tuple[str, str]] | None, duration_s: float | None) -> dict[str, int]:
    """Record ``topics`` (None: all, see :class:`McapRecorder`) to ``path`` until ``duration_s`` passes (None: until
    Ctrl-C or SIGTERM); returns message counts. The file is finished (readable) however recording ends."""
    rclpy.init()
    node = rclpy.create_node("worldstereo_recorder")
    recorder = None
    deadline = None if duration_s is None else time.monotonic() + duration_s
    last_poll = 0.0
    try:
        recorder = McapRecorder(node, path, topics)
        while rclpy.ok() and (deadline is None or time.monotonic() < deadline):
            rclpy.spin_once(node, timeout_sec=0.05)
            if time.monotonic() - last_poll > 0.5:
                recorder.poll_graph()
                last_poll = time.monotonic()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if recorder is not None:
            recorder.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return recorder.counts


def _parse_topic(item: str) -> str | tuple[str, str]:
    """``/topic`` or ``/topic:pkg/msg/Type`` (a ROS name never holds ``:``)."""
    topic, sep, type_name = item.partition(":")
    return (topic, type_name) if sep else topic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worldstereo-ros record", description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="the .mcap file to write")
    parser.add_argument("topics", nargs="*", help="topics to record, each /name or /name:pkg/msg/Type (none: every "
                        "non-hidden topic, discovered while recording)")
    parser.add_argument("--duration", type=float, default=None, help="seconds to record (default: until Ctrl-C)")
    args = parser.parse_args(argv)
    try:
        counts = record(args.output, [_parse_topic(t) for t in args.topics] or None, args.duration)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: " + ", ".join(f"{t} {n}" for t, n in counts.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
