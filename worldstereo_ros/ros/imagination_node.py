"""imagination_node: imagine camera views along planned paths and publish the fused cache for planners.

Data flow: ``image`` + ``depth`` + ``camera_info`` are paired by stamp (latest only); a snapshot takes the
newest pair and its camera pose from TF (``fixed_frame`` <- the image's optical frame at the image stamp)
and initialises the pipeline. A request (``planned_path``, ``candidate_paths`` or the ``imagine`` action)
turns each path's base poses into camera poses through the base -> camera extrinsic from TF, resamples
them to ``frames_per_path`` views and runs the pipeline on a worker thread; views are published as they
are generated, the cache after each request. Topics, QoS and parameters: README, "imagination_node".
RGB-only camera (``use_depth`` false): image + camera_info, depth from :mod:`~worldstereo_ros.ros.estimated_depth`.

Threads: subscriptions and timers run in the executor; inference runs on one worker thread fed by a
bounded request queue (``busy_policy`` queue | preempt), so camera callbacks never wait on it.
"""

from __future__ import annotations

import collections
import threading
import time

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from nav_msgs.msg import Path
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from worldstereo_ros.action import Imagine
from worldstereo_ros.errors import WorldStereoError
from worldstereo_ros.geometry.trajectories import camera_poses_along_path
from worldstereo_ros.msg import CandidatePaths, ImaginedView
from worldstereo_ros.pipeline import Cancelled, ImaginationPipeline, PipelineConfig, Trajectory
from worldstereo_ros.ros import parameters
from worldstereo_ros.ros.conversions.pointcloud2 import xyzrgb_to_pointcloud2
from worldstereo_ros.ros.conversions.transforms import matrices_to_pose_array, path_to_matrices
from worldstereo_ros.ros.diagnostics import ProblemLog
from worldstereo_ros.ros.estimated_depth import EstimatedDepth
from worldstereo_ros.ros.frame_sync import RGB_STREAMS, STREAMS, FrameSynchronizer
from worldstereo_ros.ros.imagination_messages import (
    imagine_feedback,
    imagine_result,
    imagined_view,
    snapshot_from_frame,
)
from worldstereo_ros.ros.node_main import run_node
from worldstereo_ros.ros.path_parameters import confine_path_parameters
from worldstereo_ros.ros.remote_generator import node_generator
from worldstereo_ros.ros.request_queue import ImagineRequest, RequestError, RequestQueue
from worldstereo_ros.ros.tf import TfBroadcaster, TfLookup, stamp_to_ns
from worldstereo_ros.ros.transform_tree import TransformLookupError
from worldstereo_ros.snapshot import Snapshot

#: global_cache: like a latched map: late subscribers get the last cloud.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                         history=HistoryPolicy.KEEP_LAST)
#: imagined/views and imagined/poses: every view matters to a consumer that keeps up (reliable), no latching.
VIEWS_QOS = QoSProfile(depth=30, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                       history=HistoryPolicy.KEEP_LAST)


class ImaginationNode(Node):
    """See the module doc; parameters in :mod:`worldstereo_ros.ros.parameters`."""

    def __init__(self, **kwargs) -> None:
        super().__init__("imagination_node", **kwargs)
        # the queue exists before anything can refuse to start, so destroy_node always finds it
        self._requests = RequestQueue()
        self._worker: threading.Thread | None = None
        self._action = None
        self.p = confine_path_parameters(parameters.declare(self))
        self.problems = ProblemLog(self.get_logger())
        self.tf = TfLookup(self)
        self.tf_out = TfBroadcaster(self)
        self.sync = FrameSynchronizer(int(self.p["sync_tolerance_s"] * 1e9),
                                      streams=STREAMS if self.p["use_depth"] else RGB_STREAMS)
        self._depth = None if self.p["use_depth"] else EstimatedDepth(self.p, self.get_logger())
        self._pipeline = None
        self._backend = None  # one generator instance for the warm-up and every request (see _shared_backend)
        self._snapshot = None
        self._cache_version = 0
        self._published_version = -1
        self._lock = threading.Lock()
        self.stats = collections.Counter()
        self.last_timings: dict[str, float] = {}
        self._warm_up()  # before any subscription, so no message waits behind it

        sensors = MutuallyExclusiveCallbackGroup()
        requests = ReentrantCallbackGroup()
        qos_in = QoSProfile(depth=self.p["input_depth"], history=HistoryPolicy.KEEP_LAST,
                            reliability=(ReliabilityPolicy.BEST_EFFORT if self.p["input_reliability"] == "best_effort"
                                         else ReliabilityPolicy.RELIABLE))
        image_type = CompressedImage if self.p["use_compressed"] else Image
        self.create_subscription(image_type, "image", lambda m: self._on_camera("image", m), qos_in,
                                 callback_group=sensors)
        for stream, kind in (("depth", Image), ("camera_info", CameraInfo)):
            if stream in self.sync.streams:  # an RGB-only camera has no depth topic
                self.create_subscription(kind, stream, lambda m, s=stream: self._on_camera(s, m), qos_in,
                                         callback_group=sensors)
        self.create_subscription(Path, "planned_path", self._on_planned_path, 10, callback_group=requests)
        self.create_subscription(CandidatePaths, "candidate_paths", self._on_candidate_paths, 10,
                                 callback_group=requests)
        self.pub_cache = self.create_publisher(PointCloud2, "global_cache", LATCHED_QOS)
        self.pub_local = self.create_publisher(PointCloud2, "local_cache", qos_profile_sensor_data)
        self.pub_views = self.create_publisher(ImaginedView, "imagined/views", VIEWS_QOS)
        self.pub_poses = self.create_publisher(PoseArray, "imagined/poses", VIEWS_QOS)
        # the rgb of each view again as a plain Image, for RViz and image viewers
        self.pub_image = self.create_publisher(Image, "imagined/image", qos_profile_sensor_data)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "take_snapshot", self._on_take_snapshot, callback_group=requests)
        self._action = ActionServer(self, Imagine, "imagine", execute_callback=self._execute_goal,
                                    goal_callback=self._on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT,
                                    callback_group=requests)
        timers = MutuallyExclusiveCallbackGroup()
        self.create_timer(self.p["diagnostics_period_s"], self._publish_diagnostics, callback_group=timers)
        self.create_timer(0.5, self._publish_cache_if_needed, callback_group=timers)
        if self.p["local_rate_hz"] > 0:
            self.create_timer(1.0 / self.p["local_rate_hz"], self._publish_local_cache, callback_group=timers)
        if self.p["snapshot_period_s"] > 0:
            self.create_timer(self.p["snapshot_period_s"], self._periodic_snapshot, callback_group=timers)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._worker = threading.Thread(target=self._work, name="imagination_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"imagination_node ready: backend {self.p['backend']}, memory {self.p['memory']}, "
                               f"fixed frame {self.p['fixed_frame']}, {self.p['frames_per_path']} views per path")

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, params):
        try:
            updates = parameters.validate({p.name: p.value for p in params})
        except WorldStereoError as err:
            return SetParametersResult(successful=False, reason=str(err))
        with self._lock:
            self.p.update(updates)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ inputs
    def _on_camera(self, stream: str, msg) -> None:
        try:
            self.stats[f"received.{stream}"] += 1
            self.sync.add(stream, stamp_to_ns(msg.header.stamp), msg)
        except Exception as err:  # a message must never stop the node
            self.problems.report(f"{stream}.message", f"{stream}: {err}")

    def _on_planned_path(self, msg: Path) -> None:
        self._submit(ImagineRequest([("planned_path", msg)], self.p["frames_per_path"]))

    def _on_candidate_paths(self, msg: CandidatePaths) -> None:
        if not msg.paths:
            self.problems.report("candidate_paths.empty", "candidate_paths: message holds no paths; ignored")
            return
        ids = [p.id or f"path_{i}" for i, p in enumerate(msg.paths)]
        self._submit(ImagineRequest(list(zip(ids, (p.path for p in msg.paths))), self.p["frames_per_path"]))

    def _on_take_snapshot(self, request, response):
        job = ImagineRequest([], 0, new_snapshot=True)
        self._submit(job)
        job.done.wait(timeout=30.0)
        response.success = bool(job.result.get("success", False))
        response.message = str(job.result.get("message", "timed out waiting for the worker"))
        return response

    def _periodic_snapshot(self) -> None:
        if self._requests.busy:
            return  # busy: the running request already uses a recent snapshot
        self._submit(ImagineRequest([], 0, new_snapshot=True))

    def _submit(self, request: ImagineRequest) -> None:
        """Queue a request, or preempt the running one (``busy_policy``; :mod:`~worldstereo_ros.ros.request_queue`)."""
        dropped = self._requests.submit(request, self.p["busy_policy"], self.p["queue_size"])
        if dropped and self.p["busy_policy"] == "queue":
            self.problems.report("request.dropped", "request queue full: dropped the oldest waiting request")

    # ------------------------------------------------------------------ action
    def _on_goal(self, goal) -> GoalResponse:
        if not goal.paths:
            self.problems.report("goal.empty", "imagine goal without paths rejected")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute_goal(self, goal_handle):
        goal = goal_handle.request
        ids = [p.id or f"path_{i}" for i, p in enumerate(goal.paths)]
        frames = int(goal.frames_per_path) or self.p["frames_per_path"]
        request = ImagineRequest(list(zip(ids, (p.path for p in goal.paths))), frames, bool(goal.new_snapshot),
                                 goal_handle)
        self._submit(request)
        while not request.done.wait(0.05):
            if goal_handle.is_cancel_requested:
                request.cancel.set()
            if request.feedback:
                goal_handle.publish_feedback(request.feedback.pop())
        result = imagine_result(request.result)
        if request.result.get("cancelled") and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif result.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

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
                                           estimate_depth=self._depth)
        except WorldStereoError as err:
            raise RequestError(f"snapshot.{getattr(err, 'field', 'input')}", f"snapshot rejected: {err}") from None
        pipeline = self._pipeline_for(snapshot)
        with self._lock:
            pipeline.initialize(snapshot)
            self._pipeline, self._snapshot = pipeline, snapshot
            self._cache_version += 1
        self.tf_out.send_static([self.tf_out.make(self.p["fixed_frame"], self.p["snapshot_frame"], T_world_cam,
                                                  frame.image.header.stamp)])
        self.stats["snapshots"] += 1

    def _pipeline_for(self, snapshot: Snapshot) -> ImaginationPipeline:
        p = self.p
        sized = p["image_width"] and p["image_height"]
        width, height = (p["image_width"], p["image_height"]) if sized else (None, None)
        config = PipelineConfig(backend=p["backend"], memory=p["memory"], voxel_size_m=p["voxel_size_m"],
                                max_cache_points=p["max_cache_points"], bank_capacity=p["bank_capacity"],
                                keyframe_stride=p["keyframe_stride"], width=width, height=height, seed=p["seed"],
                                device=p["device"])
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
        """(frames, 4, 4) camera poses in the fixed frame for a path of base poses (module doc)."""
        if len(path.poses) == 0:
            raise RequestError("path.empty", f"path {path_id!r} has no poses")
        if len(path.poses) < 2:
            raise RequestError("path.short", f"path {path_id!r} has one pose; a path needs at least two")
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
        return camera_poses_along_path(T_fixed_path, T_base_poses, T_base_cam, frames)

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
        trajectories = [Trajectory(pid, self.camera_poses(path, pid, request.frames_per_path))
                        for pid, path in request.paths]
        published = 0
        fixed = self.p["fixed_frame"]

        def on_frame(traj_id, index, rgb, depth, imagined, T_world_cam, K):
            nonlocal published
            stamp = self.get_clock().now().to_msg()
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
            request.result.update(success=False, cancelled=True, views_published=published,
                                  message="preempted by a newer request" if request.result.get("preempted")
                                  else "cancelled")
            self.stats["cancelled"] += 1
            return
        finally:
            with self._lock:
                self._cache_version += 1
        stamp = self.get_clock().now().to_msg()
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

    # ------------------------------------------------------------------ outputs
    def cache_cloud(self) -> tuple[np.ndarray, np.ndarray]:
        """(xyz, rgb) of the cache as published: voxelised to ``publish_voxel_size_m`` when > 0."""
        cache = self._pipeline.cache
        voxel = self.p["publish_voxel_size_m"]
        if voxel > 0 and voxel > cache.voxel_size_m:
            xyz, rgb = cache.voxel_downsampled(voxel)
        else:
            xyz, rgb = cache.xyz, cache.rgb
        return xyz.cpu().numpy(), rgb.cpu().float().numpy()

    def _publish_cache_if_needed(self, force: bool = False) -> None:
        try:
            with self._lock:
                version, pipeline = self._cache_version, self._pipeline
            if pipeline is None or version == self._published_version:
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
        if self._pipeline is None or self.pub_local.get_subscription_count() == 0:
            return
        local = self.p["local_frame"] or self.p["base_frame"]
        try:
            T_fixed_local = self.tf.lookup(self.p["fixed_frame"], local, 0, 0.0)
        except TransformLookupError as err:
            self.problems.report("tf.local", f"local_cache skipped: {err}")
            return
        with self._lock:
            cache = self._pipeline.cache
            idx = cache.radius_query(torch.as_tensor(T_fixed_local[:3, 3], dtype=torch.float32),
                                     self.p["local_radius_m"])
            xyz = cache.xyz[idx].cpu().numpy().astype(np.float64)
            rgb = cache.rgb[idx].cpu().float().numpy()
        T_local_fixed = np.linalg.inv(T_fixed_local)
        xyz_local = (xyz @ T_local_fixed[:3, :3].T + T_local_fixed[:3, 3]).astype(np.float32)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=local)
        self.pub_local.publish(xyzrgb_to_pointcloud2(xyz_local, rgb, header))

    def _publish_diagnostics(self) -> None:
        values = {k: str(v) for k, v in sorted(self.stats.items())}
        values["busy"] = str(self._requests.running)
        values["queued_requests"] = str(len(self._requests))
        values["cache_points"] = str(len(self._pipeline.cache) if self._pipeline is not None else 0)
        values["tf"] = "tf2_ros" if self.tf.uses_tf2_ros else "builtin TransformTree"
        values["depth"] = self._depth.status() if self._depth else "measured (depth topic)"
        values["depth_is_metric"] = str(self._snapshot.depth_is_metric) if self._snapshot else "no snapshot yet"
        self.pub_diag.publish(self.problems.diagnostic_array(self.get_clock().now().to_msg(),
                                                             f"{self.get_name()}: imagination",
                                                             self.get_fully_qualified_name(), values))

    def destroy_node(self):
        self._requests.stop()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
        if self._backend is not None:
            self._backend.close()  # frees a heavy backend's device memory
        if self._depth is not None:
            self._depth.close()
        if self._action is not None:
            self._action.destroy()
        return super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(ImaginationNode, "imagination_node", args,
                    make_executor=lambda: MultiThreadedExecutor(num_threads=4))


if __name__ == "__main__":
    raise SystemExit(main())
