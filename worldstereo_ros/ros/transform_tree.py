"""A time-stamped tree of coordinate frames: the lookups of tf2's buffer, without tf2.

Used where ``tf2_ros`` is not installed (the ROS 2 PyPI wheels lack it); fed from /tf and /tf_static
by :mod:`worldstereo_ros.ros.tf`. Pure numpy, no rclpy.

Conventions follow tf2: ``set_transform(parent, child, T_parent_child)`` stores the pose of ``child``
in ``parent`` (it maps points from child to parent), and ``lookup(target, source, t)`` returns
``T_target_source``, which maps points expressed in ``source`` into ``target``. Times are integer
nanoseconds; ``0`` asks for the latest time at which the whole chain is known.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

import numpy as np

from worldstereo_ros.errors import WorldStereoError
from worldstereo_ros.geometry.rotations import interpolate_pose


class TransformLookupError(WorldStereoError):
    """A lookup that cannot be answered: unknown frame, frames not connected, or time out of range."""


@dataclass
class _Edge:
    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)
    transforms: list[np.ndarray] = field(default_factory=list)

    def at(self, stamp_ns: int, tolerance_ns: int) -> np.ndarray:
        if self.static:
            return self.transforms[-1]
        i = bisect.bisect_left(self.stamps, stamp_ns)
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:
            return self.transforms[i]
        if i == 0:
            if self.stamps[0] - stamp_ns <= tolerance_ns:
                return self.transforms[0]
            raise _OutOfRange(self.stamps[0], self.stamps[-1])
        if i == len(self.stamps):
            if stamp_ns - self.stamps[-1] <= tolerance_ns:
                return self.transforms[-1]
            raise _OutOfRange(self.stamps[0], self.stamps[-1])
        t0, t1 = self.stamps[i - 1], self.stamps[i]
        alpha = (stamp_ns - t0) / (t1 - t0)
        return interpolate_pose(self.transforms[i - 1], self.transforms[i], alpha)


class _OutOfRange(Exception):
    def __init__(self, first: int, last: int) -> None:
        super().__init__()
        self.first, self.last = first, last


class TransformTree:
    """Frames connected by static and time-stamped transforms; thread-safe.

    Args:
        cache_time_s: how long dynamic transforms are kept behind the newest one (tf2's default: 10 s).
        extrapolation_tolerance_s: a lookup up to this far outside an edge's known times uses the
            nearest sample instead of failing (0 = exact tf2 behaviour).

    Example:
        >>> tree = TransformTree()
        >>> T = np.eye(4); T[0, 3] = 1.0
        >>> tree.set_transform("map", "base_link", T, stamp_ns=0, static=True)
        >>> tree.lookup("map", "base_link")[0, 3]
        1.0
    """

    def __init__(self, cache_time_s: float = 10.0, extrapolation_tolerance_s: float = 0.0) -> None:
        self._edges: dict[str, _Edge] = {}
        self._lock = threading.Lock()
        self._cache_ns = int(cache_time_s * 1e9)
        self._tolerance_ns = int(extrapolation_tolerance_s * 1e9)

    def frames(self) -> set[str]:
        """Every frame named so far, as parent or child."""
        with self._lock:
            return set(self._edges) | {e.parent for e in self._edges.values()}

    def set_transform(self, parent: str, child: str, T_parent_child: np.ndarray, stamp_ns: int, static: bool) -> None:
        """Store the pose of ``child`` in ``parent`` at ``stamp_ns`` (ignored for static transforms).

        Raises:
            TransformLookupError: empty or equal frame names, or a non-finite / non-rigid matrix.
        """
        if not parent or not child:
            raise TransformLookupError(f"transform {parent!r} -> {child!r}: frame ids must be non-empty")
        if parent == child:
            raise TransformLookupError(f"transform {parent!r} -> {child!r}: a frame cannot be its own parent")
        T = np.asarray(T_parent_child, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise TransformLookupError(f"transform {parent!r} -> {child!r}: expected a finite 4x4 matrix")
        with self._lock:
            edge = self._edges.get(child)
            if edge is None or edge.parent != parent or edge.static != static:
                # tf2 semantics: a child has one parent; the newest statement of it wins.
                edge = self._edges[child] = _Edge(parent=parent, static=static)
            if static:
                edge.stamps, edge.transforms = [0], [T.copy()]
                return
            i = bisect.bisect_left(edge.stamps, stamp_ns)
            if i < len(edge.stamps) and edge.stamps[i] == stamp_ns:
                edge.transforms[i] = T.copy()
            else:
                edge.stamps.insert(i, stamp_ns)
                edge.transforms.insert(i, T.copy())
            cutoff = edge.stamps[-1] - self._cache_ns
            drop = bisect.bisect_left(edge.stamps, cutoff)
            if drop:
                del edge.stamps[:drop], edge.transforms[:drop]

    def _chain_to_root(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._edges:
            parent = self._edges[chain[-1]].parent
            if parent in chain:
                raise TransformLookupError(f"frames form a loop through {parent!r}")
            chain.append(parent)
        return chain

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int = 0) -> np.ndarray:
        """``T_target_source`` (4, 4) float64 at ``stamp_ns`` (0 = latest common time).

        Raises:
            TransformLookupError: naming the frames and why (unknown, not connected, out of range).
        """
        with self._lock:
            known = set(self._edges) | {e.parent for e in self._edges.values()}
            for name, frame in (("target", target_frame), ("source", source_frame)):
                if frame not in known:
                    raise TransformLookupError(f"{name} frame {frame!r} does not exist (known: {sorted(known)})")
            if target_frame == source_frame:
                return np.eye(4)
            up_source = self._chain_to_root(source_frame)
            up_target = self._chain_to_root(target_frame)
            common = next((f for f in up_source if f in set(up_target)), None)
            if common is None:
                raise TransformLookupError(
                    f"{source_frame!r} and {target_frame!r} are not connected "
                    f"(roots {up_source[-1]!r} and {up_target[-1]!r})")
            src_edges = [self._edges[f] for f in up_source[: up_source.index(common)]]
            tgt_edges = [self._edges[f] for f in up_target[: up_target.index(common)]]
            if stamp_ns == 0:
                dynamic = [e.stamps[-1] for e in src_edges + tgt_edges if not e.static]
                stamp_ns = min(dynamic) if dynamic else 0
            try:
                T_common_source = np.eye(4)
                for edge in reversed(src_edges):
                    T_common_source = T_common_source @ edge.at(stamp_ns, self._tolerance_ns)
                T_common_target = np.eye(4)
                for edge in reversed(tgt_edges):
                    T_common_target = T_common_target @ edge.at(stamp_ns, self._tolerance_ns)
            except _OutOfRange as err:
                raise TransformLookupError(
                    f"lookup {target_frame!r} <- {source_frame!r} at {stamp_ns * 1e-9:.3f} s needs extrapolation: "
                    f"known from {err.first * 1e-9:.3f} s to {err.last * 1e-9:.3f} s") from None
        return np.linalg.inv(T_common_target) @ T_common_source

    def can_transform(self, target_frame: str, source_frame: str, stamp_ns: int = 0) -> bool:
        try:
            self.lookup(target_frame, source_frame, stamp_ns)
        except TransformLookupError:
            return False
        return True
