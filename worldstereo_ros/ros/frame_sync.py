"""Pairing of image, depth and camera_info messages by stamp (latest-only), without rclpy.

Each stream keeps its last few messages; whenever one arrives, the newest triple whose stamps lie
within ``tolerance_ns`` of the image's stamp replaces the stored pair. Older triples are never queued:
a 30 Hz camera leaves exactly one pending snapshot, the newest. An RGB-only camera (``use_depth`` false)
pairs image and camera_info alone (``streams=RGB_STREAMS``); its frames carry ``depth=None``.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

STREAMS = ("image", "depth", "camera_info")
#: The streams of an RGB-only camera: its depth is estimated from the image.
RGB_STREAMS = ("image", "camera_info")


@dataclass(frozen=True)
class SyncedFrame:
    """One matched triple; ``stamp_ns`` is the image's stamp; ``depth`` is None for an RGB-only camera."""

    stamp_ns: int
    image: Any
    depth: Any
    camera_info: Any


class FrameSynchronizer:
    """Approximate-time pairing of the camera streams, latest only. Thread-safe.

    Args:
        tolerance_ns: largest stamp difference (ns) between the image and each other stream.
        history: messages kept per stream.
        streams: the streams paired: :data:`STREAMS`, or :data:`RGB_STREAMS` for a camera without depth.
    """

    def __init__(self, tolerance_ns: int, history: int = 5, streams: tuple[str, ...] = STREAMS) -> None:
        if tolerance_ns < 0:
            raise ValueError(f"tolerance_ns must be >= 0, got {tolerance_ns}")
        if tuple(streams) not in (STREAMS, RGB_STREAMS):
            raise ValueError(f"streams must be {STREAMS} or {RGB_STREAMS}, got {tuple(streams)}")
        self.tolerance_ns = int(tolerance_ns)
        self.streams = tuple(streams)
        self._queues = {name: deque(maxlen=max(1, history)) for name in self.streams}
        self._latest: SyncedFrame | None = None
        self._lock = threading.Lock()
        self.matched = 0

    def add(self, stream: str, stamp_ns: int, msg: Any) -> SyncedFrame | None:
        """Add a message; return the new matched frame when this message completed one."""
        if stream not in self._queues:
            raise ValueError(f"unknown stream {stream!r}; valid: {', '.join(self.streams)}")
        with self._lock:
            self._queues[stream].append((int(stamp_ns), msg))
            frame = self._match()
            if frame is not None and (self._latest is None or frame.stamp_ns > self._latest.stamp_ns):
                self._latest = frame
                self.matched += 1
                return frame
            return None

    def _match(self) -> SyncedFrame | None:
        for stamp, image in reversed(self._queues["image"]):
            best = {}
            for name in self.streams[1:]:
                candidates = [(abs(s - stamp), m) for s, m in self._queues[name] if abs(s - stamp) <= self.tolerance_ns]
                if not candidates:
                    break
                best[name] = min(candidates, key=lambda c: c[0])[1]
            else:
                return SyncedFrame(stamp, image, best.get("depth"), best["camera_info"])
        return None

    def latest(self) -> SyncedFrame | None:
        """The newest matched frame so far (None before the first match)."""
        with self._lock:
            return self._latest

    def pending_streams(self) -> list[str]:
        """Streams that have delivered nothing yet (for a 'waiting for ...' message)."""
        with self._lock:
            return [name for name, q in self._queues.items() if not q]
