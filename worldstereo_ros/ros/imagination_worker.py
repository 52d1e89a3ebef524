"""imagination_node's worker thread: snapshots, the pipeline and the requests it runs, one at a time.

:class:`ImaginationWorker` is a mixin of :class:`~worldstereo_ros.ros.imagination_node.ImaginationNode`
(it uses the node's parameters ``self.p``, TF, publishers and problem log). Everything here runs on the one
worker thread fed by :class:`~worldstereo_ros.ros.request_queue.RequestQueue`, except :meth:`_warm_up`
(construction) and :meth:`camera_poses` (also a pure helper for tests).

Shared state and its lock: ``self._pipeline``, ``self._snapshot`` and ``self._cache_version`` change only
under ``self._lock`` (held briefly: never across inference); readers on executor threads take the pipeline
reference under that lock and then read the cache through ``cache.snapshot()``, an immutable state the
worker's merges never touch.
"""

from __future__ import annotations

import time

import numpy as np
from nav_msgs.msg import Path
from std_msgs.msg import Header

from worldstereo_ros.errors import WorldStereoError
from worldstereo_ros.geometry.trajectories import camera_poses_along_path
from worldstereo_ros.memory.voxel_arrays import AXIS_OFFSET
from worldstereo_ros.pipeline import Cancelled, ImaginationPipeline, PipelineConfig, Trajectory
from worldstereo_ros.ros.conversions.transforms import matrices_to_pose_array, path_to_matrices
from worldstereo_ros.ros.imagination_messages import (
    imagine_feedback,
    imagined_view,
    snapshot_from_frame,
    stamp_from_ns,
)
from worldstereo_ros.ros.remote_generator import node_generator
from worldstereo_ros.ros.request_queue import ImagineRequest, RequestError
from worldstereo_ros.ros.transform_tree import TransformLookupError
from worldstereo_ros.snapshot import Snapshot


class ImaginationWorker:
    """The worker half of the imagination node (module doc)."""

    # ------------------------------------------------------------------ snapshot
    def _take_snapshot(self) -> None:
        frame = self.sync.latest()
        if frame is None:
            waiting = self.sync.pending_streams()
            raise RequestError("snapshot.no_frame", "no snapshot yet: " + (
                f"nothing received on {', '.join(waiting)}" if waiting else
                f"{', '.join(self.sync.streams)} never arrived within sync_tolerance_s={self.p['sync_tolerance_s']}"))
        camera_frame = self.p["camera_frame"] or frame.image.header.frame_id
        if not camera_frame:
            raise RequestError("snapshot.frame_id", "the image has an empty header.frame_id and camera_frame is "
                                                    "not set")
        try:
            T_world_cam = self.tf.lookup(self.p["fixed_frame"], camera_frame, frame.stamp_ns, self.p["tf_timeout_s"])
        except TransformLookupError as err:
            raise RequestError("tf.camera", f"no camera pose for the snapshot: {err}") from None
        try:
            snapshot = snapshot_from_frame(frame, T_world_cam, self.p["use_compressed"], camera_frame,
                                           estimate_depth=self._depth, max_pixels=self.p["max_image_pixels"])
        except WorldStereoError as err:
            raise RequestError(f"snapshot.{getattr(err, 'field', 'input')}", f"snapshot rejected: {err}") from None
        pipeline = self._pipeline_for(snapshot)
        restored = self._restored_memories
        if restored is not None:
            # the map saved before a restart is kept: the new snapshot is merged into it (issue 14, item 6)
            try:
                pipeline.adopt_memories(*restored)
            except WorldStereoError as err:  # saved with other settings (voxel size): start over, say why
                self.problems.report("state.restore", f"restored state not used, starting empty: {err}", "error")
                restored = None
        pipeline.initialize(snapshot, keep_memories=restored is not None)
        with self._lock:
            self._pipeline, self._snapshot = pipeline, snapshot
            self._restored_memories = None
            self._cache_version += 1
        self.tf_out.send_static([self.tf_out.make(self.p["fixed_frame"], self.p["snapshot_frame"], T_world_cam,
                                                  frame.image.header.stamp)])
        self.stats["snapshots"] += 1

    def _pipeline_config(self) -> PipelineConfig:
        p = self.p
        sized = p["image_width"] and p["image_height"]
        width, height = (p["image_width"], p["image_height"]) if sized else (None, None)
        return PipelineConfig(backend=p["backend"], memory=p["memory"], voxel_size_m=p["voxel_size_m"],
                              max_cache_points=p["max_cache_points"], bank_capacity=p["bank_capacity"],
                              keyframe_stride=p["keyframe_stride"], width=width, height=height, seed=p["seed"],
                              device=p["device"], chunk_frames=p["chunk_frames"],
                              keep_frames=False)  # views go out through on_frame; results keep no frames

    def _pipeline_for(self, snapshot: Snapshot) -> ImaginationPipeline:
        config = self._pipeline_config()
        if self._pipeline is not None and self._pipeline.config == config:
            return self._pipeline
        return ImaginationPipeline(config, backend=self._shared_backend())

    def _shared_backend(self):
        """The node's one generator backend: a heavy model is loaded once, by the warm-up, and reused."""
        if self._backend is None:  # generator local: create_backend; remote: RemoteGenerator over DDS
            self._backend = node_generator(self, self.p)
        if hasattr(self._backend, "prompt"):
            self._backend.prompt = self.p["prompt"]  # prompt is the one backend parameter that may change live
        return self._backend

    # ------------------------------------------------------------------ worker
    def _warm_up(self) -> None:
        """Run the pipeline once on a tiny synthetic snapshot, so the first real request does
        not pay for torch's first-call set-up (about 2 s on a 2-core CPU)."""
        try:
            K = np.array([[40.0, 0.0, 15.5], [0.0, 40.0, 11.5], [0.0, 0.0, 1.0]])
            rgb = np.random.default_rng(0).random((24, 32, 3), dtype=np.float32)
            snapshot = Snapshot.create(rgb, np.full((24, 32), 2.0, np.float32), K)
            config = PipelineConfig(backend=self.p["backend"], memory=self.p["memory"], device=self.p["device"])
            backend = self._shared_backend()
            backend.warmup()
            if backend.capabilities.needs_weights:
                return  # loading is the warm-up; a synthetic trajectory would cost a whole generation
            poses = np.repeat(np.eye(4)[None], 3, axis=0)
            poses[:, 0, 3] = [0.0, 0.05, 0.1]
            ImaginationPipeline(config, backend=backend).initialize(snapshot).run([Trajectory("warm_up", poses)])
        except Exception as err:  # a failed warm-up only costs time later; the request reports real errors
            self.get_logger().warn(f"warm-up failed: {type(err).__name__}: {err}")

    def _work(self) -> None:
        while (request := self._requests.take()) is not None:
            try:
                if request.cancel.is_set():  # cancelled while it waited: nothing to undo, nothing to run
                    request.result.update(success=False, cancelled=True, message="cancelled before it ran")
                    self.stats["cancelled"] += 1
                    continue
                self._run(request)
            except RequestError as err:
                self.problems.report(err.key, str(err))
                request.result.update(success=False, message=str(err))
            except Exception as err:  # the worker must survive anything a request brings
                self.problems.report("request.failed", f"request failed: {type(err).__name__}: {err}", "error")
                request.result.update(success=False, message=f"{type(err).__name__}: {err}")
            finally:
                self._requests.finish(request)

    def camera_poses(self, path: Path, path_id: str, frames: int) -> np.ndarray:
        """(frames, 4, 4) camera poses in the fixed frame for a path of base poses (module doc of the node)."""
        if len(path.poses) == 0:
            raise RequestError("path.empty", f"path {path_id!r} has no poses")
        if len(path.poses) < 2:
            raise RequestError("path.short", f"path {path_id!r} has one pose; a path needs at least two")
        if len(path.poses) > self.p["max_poses_per_path"]:
            raise RequestError("path.too_long", f"path {path_id!r} has {len(path.poses)} poses, more than "
                                                f"max_poses_per_path = {self.p['max_poses_per_path']}")
        frame = path.header.frame_id or (path.poses[0].header.frame_id if path.poses else "")
        if not frame:
            raise RequestError("path.frame_id", f"path {path_id!r} has an empty header.frame_id")
        try:
            T_base_poses = path_to_matrices(path)
        except WorldStereoError as err:
            raise RequestError("path.pose", f"path {path_id!r}: {err}") from None
        camera_frame = self.p["camera_frame"] or self._snapshot.frame_id
        try:
            T_fixed_path = self.tf.lookup(self.p["fixed_frame"], frame, 0, self.p["tf_timeout_s"])
            T_base_cam = self.tf.lookup(self.p["base_frame"], camera_frame, 0, self.p["tf_timeout_s"])
        except TransformLookupError as err:
            raise RequestError("tf.path", f"path {path_id!r}: {err}") from None
        poses = camera_poses_along_path(T_fixed_path, T_base_poses, T_base_cam, frames)
        # the cache cannot hold points beyond its extent; 10 % of it is left for what the cameras see
        reach, farthest = 0.9 * AXIS_OFFSET * self._pipeline.cache.voxel_size_m, np.abs(poses[:, :3, 3]).max()
        if farthest > reach:
            raise RequestError("path.range", f"path {path_id!r}: camera positions reach {farthest:.0f} m from the "
                                             f"origin of {self.p['fixed_frame']!r}; the cache holds +-{reach:.0f} m at "
                                             f"voxel_size_m = {self.p['voxel_size_m']}")
        return poses

    def _run(self, request: ImagineRequest) -> None:
        t0 = time.perf_counter()
        if request.new_snapshot or self._snapshot is None:
            self._take_snapshot()
        if not request.paths:  # a snapshot request
            self._publish_cache_if_needed(force=True)
            request.result.update(success=True, cache_points=len(self._pipeline.cache),
                                  message=f"snapshot at stamp {self._snapshot.stamp_ns} ns, "
                                          f"{len(self._pipeline.cache)} cache points")
            return
        limit = self.p["max_frames_per_path"]
        if not 2 <= request.frames_per_path <= limit:
            raise RequestError("request.frames_per_path", f"frames_per_path = {request.frames_per_path} outside "
                                                          f"2..max_frames_per_path = {limit}")
        trajectories = [Trajectory(pid, self.camera_poses(path, pid, request.frames_per_path))
                        for pid, path in request.paths]
        published = 0
        fixed = self.p["fixed_frame"]
        # every view of the rollout shows the world as the snapshot saw it: the snapshot's stamp (contract of
        # ImaginedView.header.stamp), not the time the view happened to be generated
        stamp = stamp_from_ns(self._snapshot.stamp_ns)

        def on_frame(traj_id, index, rgb, depth, imagined, T_world_cam, K):
            nonlocal published
            count = request.frames_per_path
            frame_id = f"worldstereo/{traj_id}/{index}" if self.p["publish_camera_tf"] else fixed
            view = imagined_view(traj_id, index, count, rgb, depth, imagined, T_world_cam, K, stamp, fixed, frame_id)
            self.pub_views.publish(view)
            self.pub_image.publish(view.rgb)
            if self.p["publish_camera_tf"]:
                self.tf_out.send_static([self.tf_out.make(fixed, frame_id, T_world_cam, stamp)])
            published += 1
            self.stats["views_published"] += 1

        def progress(p):
            request.feedback.append(imagine_feedback(p))

        try:
            results = self._pipeline.run(trajectories, progress=progress, on_frame=on_frame,
                                         should_cancel=request.cancel.is_set)
        except Cancelled:
            reason = ("preempted by a newer request" if request.result.get("preempted") else
                      "cancelled: the node is shutting down" if request.result.get("stopping") else "cancelled")
            request.result.update(success=False, cancelled=True, views_published=published, message=reason)
            self.stats["cancelled"] += 1
            return
        finally:
            with self._lock:
                self._cache_version += 1
        for r in results:
            self.pub_poses.publish(matrices_to_pose_array(r.T_world_cam, Header(stamp=stamp, frame_id=fixed)))
        self._publish_cache_if_needed(force=True)
        elapsed = time.perf_counter() - t0
        self.last_timings = {k: sum(r.timings_s.get(k, 0.0) for r in results) for k in results[0].timings_s}
        self.last_timings["request_total"] = elapsed
        request.result.update(success=True, message=f"imagined {len(results)} path(s)",
                              path_ids=[r.id for r in results],
                              views_published=published, cache_points=len(self._pipeline.cache), elapsed_s=elapsed)
        self.stats["requests_done"] += 1
