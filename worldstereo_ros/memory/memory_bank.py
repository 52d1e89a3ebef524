"""The memory bank of keyframes (WorldStereo's "spatial-stereo memory").

Imagined views are kept as keyframes (rgb, depth, world-frame pointmap, camera). For a target camera the
bank returns the keyframes that saw the most of what the target will see, scored by

    score = frustum_overlap(target, keyframe) x view_angle_penalty(target, keyframe)

where the overlap is the shared visible volume over the union of the two frusta
(:func:`~worldstereo_ros.geometry.frustum.frustum_overlap`), both cut at the keyframe's depth range
(``near_m`` to the 95th percentile of its valid depth, or ``far_m`` when given), so a keyframe that looked
at a wall 1 m away does not claim the space behind it. The penalty (1 up to 90 degrees between the
optical axes, then decaying) keeps keyframes that face the other way out.

Eviction: when a keyframe arrives at a full bank, the unpinned keyframe (the new one included) that is
most redundant is dropped, redundancy being its largest pairwise score with any other keyframe in the
bank; among equals the oldest goes. A keyframe that covers space no other one covers therefore stays,
and a new view of a well-covered place is not kept at the cost of one that is unique. Pinned keyframes
(e.g. the real snapshot) are never evicted.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.cameras import PinholeCamera
from worldstereo_ros.geometry.frustum import frustum_overlap, view_angle_penalty
from worldstereo_ros.memory.types import Keyframe, Reference


def _camera(K: np.ndarray, width: int, height: int):
    return PinholeCamera.from_K(K, width, height)


class MemoryBank:
    """A bounded set of keyframes with retrieval by frustum overlap (see the module doc).

    Args:
        capacity: most keyframes kept (>= 1).
        near_m: near plane of the frusta compared, metres.
        far_m: far plane, metres; None = each keyframe's own depth range (95th percentile of its valid
            depth, at least ``2 * near_m``).
        samples: Monte-Carlo samples per overlap estimate (more = less noise, slower).
        seed: seed of those samples (retrieval is deterministic).
    """

    def __init__(self, capacity: int = 8, near_m: float = 0.1, far_m: float | None = None, samples: int = 1024,
                 seed: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise InputError("capacity", f"expected an int >= 1, got {capacity!r}")
        if not isinstance(near_m, (int, float)) or not 0 < near_m < math.inf:
            raise InputError("near_m", f"expected a finite float > 0 metres, got {near_m!r}")
        if far_m is not None and (not isinstance(far_m, (int, float)) or not near_m < far_m < math.inf):
            raise InputError("far_m", f"expected None or a finite float > near_m = {near_m} metres, got {far_m!r}")
        if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 16:
            raise InputError("samples", f"expected an int >= 16, got {samples!r}")
        self.capacity = int(capacity)
        self.near_m = float(near_m)
        self.far_m = None if far_m is None else float(far_m)
        self.samples = int(samples)
        self.seed = int(seed)
        self._frames: list[Keyframe] = []
        self._pinned: set[int] = set()
        self._far: dict[int, float] = {}
        self._pair: dict[tuple[int, int], float] = {}

    # ------------------------------------------------------------------ container
    def __len__(self) -> int:
        return len(self._frames)

    def __iter__(self) -> Iterator[Keyframe]:
        return iter(list(self._frames))

    def __repr__(self) -> str:
        return f"MemoryBank({len(self)}/{self.capacity} keyframes, ids={self.ids})"

    @property
    def ids(self) -> list[int]:
        """Keyframe ids, oldest first."""
        return [kf.keyframe_id for kf in self._frames]

    def get(self, keyframe_id: int) -> Keyframe:
        """The keyframe with this id (InputError if absent)."""
        for kf in self._frames:
            if kf.keyframe_id == keyframe_id:
                return kf
        raise InputError("keyframe_id", f"no keyframe {keyframe_id} in the bank (ids {self.ids})")

    @property
    def pinned_count(self) -> int:
        """How many keyframes are pinned."""
        return len(self._pinned)

    @property
    def pinned_ids(self) -> list[int]:
        """Ids of the pinned keyframes, oldest first."""
        return [kf.keyframe_id for kf in self._frames if kf.keyframe_id in self._pinned]

    def copy(self) -> "MemoryBank":
        """A new bank with the same settings, keyframes (shared, they are read-only) and pins. Safe to call
        while another thread adds keyframes: it copies one consistent list (a list is swapped, not edited,
        by :meth:`_remove`; ``add`` appends, which a copy sees whole or not at all)."""
        frames, pinned = list(self._frames), set(self._pinned)
        other = MemoryBank(self.capacity, self.near_m, self.far_m, self.samples, self.seed)
        for kf in frames:
            other._frames.append(kf)
            other._far[kf.keyframe_id] = self._far.get(kf.keyframe_id) or other._keyframe_far(kf)
            if kf.keyframe_id in pinned:
                other._pinned.add(kf.keyframe_id)
        return other

    def settings(self) -> dict[str, float | int | None]:
        """The constructor arguments (``capacity``, ``near_m``, ``far_m``, ``samples``, ``seed``)."""
        return dict(capacity=self.capacity, near_m=self.near_m, far_m=self.far_m, samples=self.samples,
                    seed=self.seed)

    def clear(self) -> None:
        """Forget every keyframe, pinned ones included."""
        self._frames.clear()
        self._pinned.clear()
        self._far.clear()
        self._pair.clear()

    # ------------------------------------------------------------------ scoring
    def _keyframe_far(self, kf: Keyframe) -> float:
        if self.far_m is not None:
            return self.far_m
        valid = kf.depth[kf.depth > 0]
        far = float(np.percentile(valid, 95.0)) if valid.size else 0.0
        return max(far, 2.0 * self.near_m)

    def _score(self, K_a: np.ndarray, T_a: np.ndarray, w_a: int, h_a: int, kf: Keyframe, far_m: float) -> float:
        T_a = torch.as_tensor(np.asarray(T_a, dtype=np.float64))
        T_b = torch.as_tensor(kf.T_world_cam)
        overlap = frustum_overlap(_camera(K_a, w_a, h_a), T_a, _camera(kf.K, kf.width, kf.height), T_b,
                                  near_m=self.near_m, far_m=far_m, samples=self.samples, seed=self.seed)
        return float(overlap) * float(view_angle_penalty(T_a, T_b))

    def score(self, K: np.ndarray, T_world_cam: np.ndarray, width: int, height: int) -> np.ndarray:
        """Retrieval score (len(bank),) float64 in [0, 1] of every keyframe, oldest first, for a target camera
        with intrinsics ``K`` (3, 3), pose ``T_world_cam`` (4, 4) and image size ``width`` x ``height``."""
        K = np.asarray(K, dtype=np.float64)
        T = np.asarray(T_world_cam, dtype=np.float64)
        if K.shape != (3, 3):
            raise InputError("K", f"expected shape (3, 3), got {K.shape}")
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise InputError("T_world_cam", f"expected a finite (4, 4) matrix, got shape {T.shape}")
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(name, f"expected a positive int, got {value!r}")
        return np.array([self._score(K, T, int(width), int(height), kf, self._far[kf.keyframe_id])
                         for kf in self._frames], dtype=np.float64)

    def retrieve(self, K: np.ndarray, T_world_cam: np.ndarray, width: int, height: int, k: int = 1,
                 min_score: float = 0.05) -> list[Reference]:
        """The (at most) ``k`` keyframes with the highest score for a target camera, best first.

        Args:
            K: (3, 3) target intrinsics. T_world_cam: (4, 4) target pose (OpenCV optical axes).
            width, height: target image size, pixels.
            k: most references returned (>= 1).
            min_score: keyframes scoring below this are not returned (in [0, 1]).
        Returns:
            list of :class:`~worldstereo_ros.memory.types.Reference` (the keyframe's arrays, not copies:
            treat them as read-only), possibly empty. Ties keep the older keyframe first.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError("k", f"expected an int >= 1, got {k!r}")
        if not isinstance(min_score, (int, float)) or not 0.0 <= min_score <= 1.0:
            raise InputError("min_score", f"expected a float in [0, 1], got {min_score!r}")
        if not self._frames:
            return []
        scores = self.score(K, T_world_cam, width, height)
        refs = []
        for i in np.argsort(-scores, kind="stable")[:k]:
            if scores[i] >= min_score:
                kf = self._frames[i]
                refs.append(Reference(kf.rgb, kf.depth, kf.pointmap, kf.K, kf.T_world_cam, float(scores[i]),
                                      kf.keyframe_id))
        return refs

    # ------------------------------------------------------------------ adding and eviction
    def _pair_score(self, a: Keyframe, b: Keyframe) -> float:
        key = (min(a.keyframe_id, b.keyframe_id), max(a.keyframe_id, b.keyframe_id))
        if key not in self._pair:
            far = max(self._far[a.keyframe_id], self._far[b.keyframe_id])
            self._pair[key] = self._score(a.K, a.T_world_cam, a.width, a.height, b, far)
        return self._pair[key]

    def add(self, keyframe: Keyframe, pinned: bool = False) -> int | None:
        """Add a keyframe; at capacity, evict the most redundant unpinned one (see the module doc).

        Args:
            keyframe: the view to remember (kept by reference: do not modify its arrays afterwards).
            pinned: never evict this keyframe (at most ``capacity`` keyframes may be pinned; a full bank of
                pinned keyframes drops every new unpinned one).
        Returns:
            the id of the keyframe dropped (possibly ``keyframe`` itself), or None.
        """
        if not isinstance(keyframe, Keyframe):
            raise InputError("keyframe", f"expected a Keyframe, got {type(keyframe).__name__}")
        if keyframe.keyframe_id in self.ids:
            raise InputError("keyframe_id", f"keyframe {keyframe.keyframe_id} is already in the bank")
        if pinned and len(self._pinned) >= self.capacity:
            raise InputError("pinned", f"the bank already holds capacity = {self.capacity} pinned keyframes")
        self._far[keyframe.keyframe_id] = self._keyframe_far(keyframe)
        self._frames.append(keyframe)
        if pinned:
            self._pinned.add(keyframe.keyframe_id)
        if len(self._frames) <= self.capacity:
            return None
        candidates = [kf for kf in self._frames if kf.keyframe_id not in self._pinned]
        redundancy = []
        for kf in candidates:
            others = [self._pair_score(kf, o) for o in self._frames if o is not kf]
            redundancy.append(max(others, default=0.0))
        # candidates are oldest first; the max picks the first of equals, i.e. the oldest
        victim = candidates[int(np.argmax(redundancy))]
        self._remove(victim.keyframe_id)
        return victim.keyframe_id

    def _remove(self, keyframe_id: int) -> None:
        self._frames = [kf for kf in self._frames if kf.keyframe_id != keyframe_id]
        self._pinned.discard(keyframe_id)
        self._far.pop(keyframe_id, None)
        self._pair = {key: v for key, v in self._pair.items() if keyframe_id not in key}
