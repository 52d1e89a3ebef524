"""imagination_node's periodic outputs: global_cache, local_cache, /diagnostics, and the timers behind them.

:class:`ImaginationOutputs` is a mixin of :class:`~worldstereo_ros.ros.imagination_node.ImaginationNode`.
Its callbacks run on executor threads while the worker merges into the cache, so they never read the live
cache: they take the pipeline (or the restored cache) under ``self._lock`` and read one immutable
``cache.snapshot()``, whose arrays no merge changes (:mod:`~worldstereo_ros.memory.global_cache`).

Timers whose period is a parameter (``diagnostics_period_s``, ``local_rate_hz``, ``snapshot_period_s``,
``save_period_s``) are rebuilt by :meth:`ImaginationOutputs._rebuild_timers` when the parameter is set.
"""

from __future__ import annotations

import numpy as np
import torch
from std_msgs.msg import Header

from worldstereo_ros.memory.global_cache import GlobalCache
from worldstereo_ros.ros.conversions.pointcloud2 import xyzrgb_to_pointcloud2
from worldstereo_ros.ros.transform_tree import TransformLookupError

#: parameter -> (name of the node method the timer calls, period in seconds from the value; None = no timer)
TIMED_PARAMETERS = {
    "diagnostics_period_s": ("_publish_diagnostics", lambda v: v),
    "local_rate_hz": ("_publish_local_cache", lambda v: 1.0 / v if v > 0 else None),
    "snapshot_period_s": ("_periodic_snapshot", lambda v: v if v > 0 else None),
    "save_period_s": ("_periodic_save", lambda v: v if v > 0 else None),
}


class ImaginationOutputs:
    """The publishing half of the imagination node (module doc)."""

    def _rebuild_timers(self, names) -> None:
        """(Re)create the timers of the parameters ``names`` (keys of :data:`TIMED_PARAMETERS`) from ``self.p``."""
        for name in names:
            method, period = TIMED_PARAMETERS[name]
            old = self._param_timers.pop(name, None)
            if old is not None:
                self.destroy_timer(old)
            seconds = period(self.p[name])
            if seconds is not None:
                self._param_timers[name] = self.create_timer(seconds, getattr(self, method),
                                                       callback_group=self._timer_group)

    def _current_cache(self) -> GlobalCache | None:
        """An immutable snapshot of the cache being published (the pipeline's, or the one restored from
        ``state_dir`` before the first snapshot), or None."""
        with self._lock:
            pipeline, restored = self._pipeline, self._restored_memories
        cache = pipeline.cache if pipeline is not None else restored[0] if restored is not None else None
        return None if cache is None else cache.snapshot()

    def cache_cloud(self) -> tuple[np.ndarray, np.ndarray]:
        """(xyz (N, 3) float32 metres in ``fixed_frame``, rgb (N, 3) float32 in [0, 1]) of the cache as
        published: voxelised to ``publish_voxel_size_m`` when > 0; empty arrays without a cache."""
        cache = self._current_cache()
        if cache is None:
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
        voxel = self.p["publish_voxel_size_m"]
        if voxel > 0 and voxel > cache.voxel_size_m:
            xyz, rgb = cache.voxel_downsampled(voxel)
        else:
            xyz, rgb = cache.xyz, cache.rgb
        return xyz.cpu().numpy(), rgb.cpu().float().numpy()

    def _publish_cache_if_needed(self, force: bool = False) -> None:
        try:
            with self._lock:
                version = self._cache_version
                has_cache = self._pipeline is not None or self._restored_memories is not None
            if not has_cache or version == self._published_version:
                return
            if not force and self.pub_cache.get_subscription_count() == 0:
                return  # built only when someone listens; transient-local delivers it to late joiners
            xyz, rgb = self.cache_cloud()
            header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.p["fixed_frame"])
            self.pub_cache.publish(xyzrgb_to_pointcloud2(xyz, rgb, header))
            self._published_version = version
            self.stats["cache_published"] += 1
        except Exception as err:
            self.problems.report("cache.publish", f"global_cache not published: {err}", "error")

    def _publish_local_cache(self) -> None:
        if self.pub_local.get_subscription_count() == 0:
            return
        cache = self._current_cache()
        if cache is None:
            return
        local = self.p["local_frame"] or self.p["base_frame"]
        try:
            T_fixed_local = self.tf.lookup(self.p["fixed_frame"], local, 0, 0.0)
        except TransformLookupError as err:
            self.problems.report("tf.local", f"local_cache skipped: {err}")
            return
        # one immutable state: the indices and the arrays they index belong together
        idx = cache.radius_query(torch.as_tensor(T_fixed_local[:3, 3], dtype=torch.float32), self.p["local_radius_m"])
        xyz = cache.xyz[idx].cpu().numpy().astype(np.float64)
        rgb = cache.rgb[idx].cpu().float().numpy()
        T_local_fixed = np.linalg.inv(T_fixed_local)
        xyz_local = (xyz @ T_local_fixed[:3, :3].T + T_local_fixed[:3, 3]).astype(np.float32)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=local)
        self.pub_local.publish(xyzrgb_to_pointcloud2(xyz_local, rgb, header))
        self.stats["local_published"] += 1

    def _publish_diagnostics(self) -> None:
        cache = self._current_cache()
        values = {k: str(v) for k, v in sorted(self.stats.items())}
        values["busy"] = str(self._requests.running)
        values["queued_requests"] = str(len(self._requests))
        values["cache_points"] = str(len(cache) if cache is not None else 0)
        values["tf"] = "tf2_ros" if self.tf.uses_tf2_ros else "builtin TransformTree"
        values["depth"] = self._depth.status() if self._depth else "measured (depth topic)"
        snapshot = self._snapshot
        values["depth_is_metric"] = str(snapshot.depth_is_metric) if snapshot else "no snapshot yet"
        self.stats["diagnostics_published"] += 1
        self.pub_diag.publish(self.problems.diagnostic_array(self.get_clock().now().to_msg(),
                                                             f"{self.get_name()}: imagination",
                                                             self.get_fully_qualified_name(), values))
