"""Problem counters with throttled log lines, published as diagnostic_msgs on /diagnostics.

Every bad input a node survives is reported through :meth:`ProblemLog.report` with a short key
(``"image.encoding"``, ``"path.empty"``, ...): the count goes up, a log line names the problem (at most
one per key every ``throttle_s``), and the next diagnostics message carries the counts and the last
message of each key.

Level: WARN while some problem was reported within the last ``window_s`` seconds, OK again once every
problem is older than that (the counts stay, so what happened is still visible), so a robot's monitor
sees the node recover when the bad input stops.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


@dataclass
class _Entry:
    count: int = 0
    last_message: str = ""
    last_logged: float = field(default=-1e18)
    last_seen: float = field(default=-1e18)


class ProblemLog:
    """Counts and throttles the problems of one node. Thread-safe."""

    def __init__(self, logger, throttle_s: float = 5.0, window_s: float = 10.0,
                 clock=time.monotonic) -> None:
        self._logger = logger
        self._throttle_s = throttle_s
        #: seconds a problem keeps the status at WARN after it was last reported (settable at run time)
        self.window_s = float(window_s)
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.counters: dict[str, int] = {}

    def report(self, key: str, message: str, level: str = "warn") -> None:
        """Count one occurrence of problem ``key`` and log ``message`` unless logged recently."""
        now = self._clock()
        with self._lock:
            entry = self._entries.setdefault(key, _Entry())
            entry.count += 1
            entry.last_seen = now
            entry.last_message = message
            self.counters[key] = entry.count
            log = now - entry.last_logged >= self._throttle_s
            if log:
                entry.last_logged = now
            count = entry.count
        if log:
            getattr(self._logger, level)(f"{message} [{key}, {count} so far]")

    def count(self, key: str) -> int:
        with self._lock:
            return self._entries[key].count if key in self._entries else 0

    def total(self) -> int:
        with self._lock:
            return sum(e.count for e in self._entries.values())

    def status(self, name: str, hardware_id: str, values: dict[str, str]) -> DiagnosticStatus:
        """One DiagnosticStatus: WARN while a problem is recent (module doc), else OK; every count and last
        message as values."""
        now = self._clock()
        with self._lock:
            problems = {k: (e.count, e.last_message) for k, e in sorted(self._entries.items())}
            recent = [k for k, e in sorted(self._entries.items()) if now - e.last_seen < self.window_s]
        level = DiagnosticStatus.WARN if recent else DiagnosticStatus.OK
        total = sum(c for c, _ in problems.values())
        if recent:
            summary = f"problems in the last {self.window_s:g} s: {', '.join(recent)} ({total} bad inputs survived)"
        elif problems:
            summary = f"running, no problems in the last {self.window_s:g} s ({total} bad inputs survived before)"
        else:
            summary = "running, no problems"
        kv = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        for key, (count, message) in problems.items():
            kv.append(KeyValue(key=f"problem.{key}.count", value=str(count)))
            kv.append(KeyValue(key=f"problem.{key}.last", value=message[:200]))
        return DiagnosticStatus(level=level, name=name, message=summary, hardware_id=hardware_id, values=kv)

    def diagnostic_array(self, stamp, name: str, hardware_id: str, values: dict[str, str]) -> DiagnosticArray:
        msg = DiagnosticArray()
        msg.header.stamp = stamp
        msg.status = [self.status(name, hardware_id, values)]
        return msg
