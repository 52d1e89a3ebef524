"""Helpers of the tests that run node executables in subprocesses (test/ros/, test/generation/learned/).

Importable from any test: ``test/`` is on ``sys.path`` through its conftest (pytest's default import mode).
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Callable


def start_module(args: list[str]) -> subprocess.Popen:
    """``python -m *args`` with stdout and stderr merged into one text pipe."""
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc: subprocess.Popen) -> str:
    """SIGTERM ``proc`` (SIGKILL after 15 s) and return everything it printed."""
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def wait_until(done: Callable[[], bool], timeout_s: float, poll_s: float = 0.02) -> bool:
    """Poll ``done`` every ``poll_s`` seconds until it is true or ``timeout_s`` has passed; its last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(poll_s)
    return done()
