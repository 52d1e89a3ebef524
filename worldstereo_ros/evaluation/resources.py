"""Peak memory of a stretch of code, for the benchmark's speed table.

Python's ``tracemalloc`` misses torch's and Open3D's native allocations and ``ru_maxrss`` only ever grows
over the process's life, so :class:`PeakRss` samples the resident set size (``/proc/self/statm``, Linux) from
a background thread while its block runs and reports the largest value above the size at entry.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

_STATM = Path("/proc/self/statm")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """Resident set size of this process in bytes, or None where ``/proc`` is not available."""
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class PeakRss:
    """``with PeakRss() as m: ...`` then ``m.peak_mb`` (largest RSS seen, MiB) and ``m.growth_mb`` (its excess
    over the RSS at entry, MiB); both None where RSS cannot be read. Samples every ``interval_s`` seconds, so
    a spike shorter than that can be missed."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.start: int | None = None
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = rss_bytes()
            if now is not None and (self.peak is None or now > self.peak):
                self.peak = now
            time.sleep(self.interval_s)

    def __enter__(self) -> "PeakRss":
        self.start = self.peak = rss_bytes()
        if self.start is not None:
            self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        end = rss_bytes()
        if end is not None and self.peak is not None:
            self.peak = max(self.peak, end)

    @property
    def peak_mb(self) -> float | None:
        return None if self.peak is None else self.peak / 2**20

    @property
    def growth_mb(self) -> float | None:
        return None if self.peak is None or self.start is None else (self.peak - self.start) / 2**20
