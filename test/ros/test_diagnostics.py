"""ProblemLog: throttled counts, and a status that returns to OK once problems stop (issue 14, item 3)."""

from __future__ import annotations

import pytest

pytest.importorskip("diagnostic_msgs", reason="ROS message packages not installed (run scripts/setup.sh)")
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from worldstereo_ros.ros.diagnostics import ProblemLog  # noqa: E402


class _Logger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warn(self, text: str) -> None:
        self.lines.append(text)


def test_status_is_warn_within_the_window_and_ok_after_it_with_counts_kept():
    now = [100.0]
    log = ProblemLog(_Logger(), throttle_s=5.0, window_s=10.0, clock=lambda: now[0])
    assert log.status("n", "h", {}).level == DiagnosticStatus.OK
    log.report("image.encoding", "image: bad encoding")
    log.report("image.encoding", "image: bad encoding")
    status = log.status("n", "h", {})
    assert status.level == DiagnosticStatus.WARN and "image.encoding" in status.message
    now[0] += 9.9
    assert log.status("n", "h", {}).level == DiagnosticStatus.WARN
    now[0] += 0.2
    status = log.status("n", "h", {})
    assert status.level == DiagnosticStatus.OK and "no problems in the last 10 s" in status.message
    values = {kv.key: kv.value for kv in status.values}
    assert values["problem.image.encoding.count"] == "2"
    log.window_s = 60.0  # the window is a live parameter
    assert log.status("n", "h", {}).level == DiagnosticStatus.WARN


def test_log_lines_are_throttled_per_key():
    now = [0.0]
    logger = _Logger()
    log = ProblemLog(logger, throttle_s=5.0, clock=lambda: now[0])
    for _ in range(3):
        log.report("a", "problem a")
    log.report("b", "problem b")
    now[0] = 6.0
    log.report("a", "problem a")
    assert logger.lines == ["problem a [a, 1 so far]", "problem b [b, 1 so far]", "problem a [a, 4 so far]"]
