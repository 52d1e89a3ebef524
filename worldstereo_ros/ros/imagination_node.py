"""imagination_node: imagine camera views along planned paths and publish the fused cache for planners.

Data flow: ``image`` + ``depth`` + ``camera_info`` are paired by stamp (latest only); a snapshot takes the
newest pair and its camera pose from TF (``fixed_frame`` <- the image's optical frame at the image stamp)
and initialises the pipeline. A request (``planned_path``, ``candidate_paths`` or the ``imagine`` action)
turns each path's base poses into camera poses through the base -> camera extrinsic from TF, resamples
them to ``frames_per_path`` views and runs the pipeline on a worker thread; views are published as they
are generated, the cache after each request. Topics, QoS and parameters: README, "imagination_node".
RGB-only camera (``use_depth`` false): image + camera_info, depth from :mod:`~worldstereo_ros.ros.estimated_depth`.

Threads: subscriptions and timers run in the executor; inference runs on one worker thread fed by a
bounded request queue (``busy_policy`` queue | preempt), so camera callbacks never wait on it
(:mod:`~worldstereo_ros.ros.imagination_worker`). Outputs read the cache through immutable snapshots
(:mod:`~worldstereo_ros.ros.imagination_outputs`); persistence: :mod:`~worldstereo_ros.ros.imagination_state`.

Goals, bounded: an ``imagine`` goal is queued by ``_on_goal`` itself, or REJECTED there with a logged reason
(limits, or the queue full), so the decision and the reservation are one step. The execute callback then
waits for its request on an executor thread; at most ``queue_size`` + 1 goals can be in flight (one running,
``queue_size`` waiting), and the executor has that many threads more than the sensors, timers, services and
cancels need (:func:`executor_threads`), so waiting goals never starve them; a waiting goal costs a
sleeping thread (an Event wait that wakes every 50 ms to forward feedback and cancels), no CPU. Not an
``async`` execute awaiting an rclpy Future: in this rclpy (9.1.2) such a coroutine was never resumed when
another thread completed the Future after 0.2 s or more, directly or through ``executor.create_task`` (5 of
5 runs, ``test/ros/probe_async_execute.py``), so the goal would never end.

``take_snapshot`` answers at once ("queued ...", or the refusal) and its job runs on the worker.
``destroy_node`` fails every queued request (their goals abort with "the node is shutting down"), cancels
the running one and waits a bounded time for the worker and the goals (:data:`SHUTDOWN_TIMEOUT_S` each).
"""

from __future__ import annotations

import collections
import threading
import time

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
from std_srvs.srv import Trigger

from worldstereo_ros.action import Imagine
from worldstereo_ros.errors import InputError, WorldStereoError
from worldstereo_ros.msg import CandidatePaths, ImaginedView
from worldstereo_ros.ros import parameters
from worldstereo_ros.ros.diagnostics import ProblemLog
from worldstereo_ros.ros.estimated_depth import EstimatedDepth
from worldstereo_ros.ros.frame_sync import RGB_STREAMS, STREAMS, FrameSynchronizer
from worldstereo_ros.ros.imagination_messages import imagine_result, named_paths
from worldstereo_ros.ros.imagination_outputs import TIMED_PARAMETERS, ImaginationOutputs
from worldstereo_ros.ros.imagination_state import StatePersistence
from worldstereo_ros.ros.imagination_worker import ImaginationWorker
from worldstereo_ros.ros.node_main import run_node
from worldstereo_ros.ros.path_parameters import confine_path_parameters
from worldstereo_ros.ros.request_queue import ImagineRequest, RequestQueue
from worldstereo_ros.ros.tf import TfBroadcaster, TfLookup, stamp_to_ns

#: global_cache: like a latched map: late subscribers get the last cloud.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                         history=HistoryPolicy.KEEP_LAST)
#: imagined/views and imagined/poses: every view matters to a consumer that keeps up (reliable), no latching.
VIEWS_QOS = QoSProfile(depth=30, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                       history=HistoryPolicy.KEEP_LAST)
#: Longest wait of ``destroy_node`` for the worker, and again for the goals still answering, seconds.
SHUTDOWN_TIMEOUT_S = 4.0
#: Executor threads besides the goals' (sensors, timers, request callbacks and services, cancels).
BASE_THREADS = 4


class _ImagineServer(ActionServer):
    """The ``imagine`` action server, counting the result responses it has sent, so ``destroy_node`` can wait
    (bounded) until the goals it aborted have reached their clients before the server goes away."""

    def __init__(self, *args, **kwargs) -> None:
        self.results_sent = 0
        self.results_cond = threading.Condition()
        super().__init__(*args, **kwargs)

    def _send_result_response(self, request_header, future) -> None:  # rclpy's hook for every result response
        super()._send_result_response(request_header, future)
        with self.results_cond:
            self.results_sent += 1
            self.results_cond.notify_all()


def executor_threads(queue_size: int) -> int:
    """Threads the node's MultiThreadedExecutor needs: one per goal that may wait (``queue_size`` + the
    running one) plus :data:`BASE_THREADS` (module doc)."""
    return queue_size + 1 + BASE_THREADS


class ImaginationNode(ImaginationWorker, ImaginationOutputs, StatePersistence, Node):
    """See the module doc; parameters in :mod:`worldstereo_ros.ros.parameters`."""

    def __init__(self, **kwargs) -> None:
        super().__init__("imagination_node", **kwargs)
        # the queue exists before anything can refuse to start, so destroy_node always finds it
        self._requests = RequestQueue()
        self._worker: threading.Thread | None = None
        self._action = None
        self._state_dir = None
        self._goal_requests: dict[int, tuple[object, ImagineRequest]] = {}
        self._goals_running = 0
        self._goals_ended = 0  # goals whose execute returned (their result is then sent by the action server)
        self._goals_cond = threading.Condition()
        self.p = confine_path_parameters(parameters.declare(self))
        self.problems = ProblemLog(self.get_logger(), window_s=self.p["problem_window_s"])
        self.tf = TfLookup(self)
        self.tf_out = TfBroadcaster(self)
        self.sync = FrameSynchronizer(int(self.p["sync_tolerance_s"] * 1e9),
                                      streams=STREAMS if self.p["use_depth"] else RGB_STREAMS)
        self._depth = None if self.p["use_depth"] else EstimatedDepth(self.p, self.get_logger())
        self._pipeline = None
        self._backend = None  # one generator instance for the warm-up and every request (see _shared_backend)
        self._snapshot = None
        self._restored_memories = None  # (GlobalCache, MemoryBank) loaded from state_dir, until a snapshot
        self._cache_version = 0
        self._published_version = -1
        self._lock = threading.Lock()
        self.stats = collections.Counter()
        self.last_timings: dict[str, float] = {}
        self._state_dir = self._init_state_dir()
        if self.p["restore_on_start"]:
            self._restore_state()
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
        self.create_service(Trigger, "save_state", self._on_save_state, callback_group=requests)
        self._action = _ImagineServer(self, Imagine, "imagine", execute_callback=self._execute_goal,
                                      goal_callback=self._on_goal,
                                      cancel_callback=lambda _: CancelResponse.ACCEPT, callback_group=requests)
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._param_timers: dict[str, object] = {}
        self.create_timer(0.5, self._publish_cache_if_needed, callback_group=self._timer_group)
        self._rebuild_timers(TIMED_PARAMETERS)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._worker = threading.Thread(target=self._work, name="imagination_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"imagination_node ready: backend {self.p['backend']}, memory {self.p['memory']}, "
                               f"fixed frame {self.p['fixed_frame']}, {self.p['frames_per_path']} views per path")

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, params):
        """Validate and apply a ``ros2 param set``: values are read at their next use; timers are rebuilt,
        the synchroniser and the problem window updated (read-only parameters are refused by rclpy)."""
        try:
            updates = parameters.validate({p.name: p.value for p in params})
            parameters.check_limits({**self.p, **updates})
        except WorldStereoError as err:
            return SetParametersResult(successful=False, reason=str(err))
        with self._lock:
            self.p.update(updates)
        if "sync_tolerance_s" in updates:
            self.sync.tolerance_ns = int(updates["sync_tolerance_s"] * 1e9)
        if "problem_window_s" in updates:
            self.problems.window_s = updates["problem_window_s"]
        self._rebuild_timers([name for name in updates if name in TIMED_PARAMETERS])
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
        if len(msg.paths) > self.p["max_paths_per_request"]:
            self.problems.report("candidate_paths.too_many", f"candidate_paths: {len(msg.paths)} paths, more than "
                                 f"max_paths_per_request = {self.p['max_paths_per_request']}; ignored")
            return
        try:
            paths = named_paths(msg.paths, "candidate_paths.paths")
        except InputError as err:
            self.problems.report("candidate_paths.id", f"candidate_paths: {err}; ignored")
            return
        self._submit(ImagineRequest(paths, self.p["frames_per_path"]))

    def _on_take_snapshot(self, request, response):
        """Queue a snapshot and answer at once: success = queued (the snapshot itself runs on the worker and
        shows in /diagnostics and on global_cache), or the refusal's reason."""
        refused = self._requests.offer(ImagineRequest([], 0, new_snapshot=True), self.p["busy_policy"],
                                       self.p["queue_size"])
        if refused:
            self.problems.report("take_snapshot.refused", f"take_snapshot refused: {refused}")
        response.success = refused is None
        response.message = refused or f"queued a snapshot request ({len(self._requests)} waiting)"
        return response

    def _periodic_snapshot(self) -> None:
        if self._requests.busy:
            return  # busy: the running request already uses a recent snapshot
        self._submit(ImagineRequest([], 0, new_snapshot=True))

    def _submit(self, request: ImagineRequest) -> None:
        """Queue a request, or preempt the running one (``busy_policy``; :mod:`~worldstereo_ros.ros.request_queue`)."""
        dropped = self._requests.submit(request, self.p["busy_policy"], self.p["queue_size"])
        if dropped and self.p["busy_policy"] == "queue":
            self.problems.report("request.dropped", "request queue full: " + (
                "dropped this request (every waiting one is an accepted goal or service call)"
                if dropped == [request] else "dropped the oldest waiting path request"))

    # ------------------------------------------------------------------ action
    def _goal_request(self, goal) -> tuple[ImagineRequest | None, tuple[str, str] | None]:
        """(the request serving ``goal``, None), or (None, (key, reason)) why it cannot be served within the
        limits; nothing is allocated for a refused goal."""
        p = self.p
        if not goal.paths:
            return None, ("goal.empty", "imagine goal without paths rejected")
        if len(goal.paths) > p["max_paths_per_request"]:
            return None, ("goal.too_many_paths", (f"imagine goal rejected: {len(goal.paths)} paths, more than "
                                                  f"max_paths_per_request = {p['max_paths_per_request']}"))
        frames = int(goal.frames_per_path) or p["frames_per_path"]
        if not 2 <= frames <= p["max_frames_per_path"]:
            return None, ("goal.frames_per_path", (f"imagine goal rejected: frames_per_path = {frames} outside "
                                                   f"2..max_frames_per_path = {p['max_frames_per_path']}"))
        for i, cp in enumerate(goal.paths):
            if len(cp.path.poses) > p["max_poses_per_path"]:
                return None, ("goal.too_many_poses", (f"imagine goal rejected: paths[{i}] has {len(cp.path.poses)} "
                                                      f"poses, more than max_poses_per_path = "
                                                      f"{p['max_poses_per_path']}"))
        try:
            paths = named_paths(goal.paths, "goal.paths")
        except InputError as err:
            return None, ("goal.path_id", f"imagine goal rejected: {err}")
        return ImagineRequest(paths, frames, bool(goal.new_snapshot)), None

    def _on_goal(self, goal) -> GoalResponse:
        """Accept ``goal`` by queueing its request now, or reject it with a logged reason (module doc)."""
        try:
            request, problem = self._goal_request(goal)
        except Exception as err:  # a goal must never stop the node
            request, problem = None, ("goal.invalid", f"imagine goal rejected: {type(err).__name__}: {err}")
        if request is not None:
            refused = self._requests.offer(request, self.p["busy_policy"], self.p["queue_size"])
            if refused is None:
                with self._goals_cond:
                    self._goal_requests[id(goal)] = (goal, request)
                return GoalResponse.ACCEPT
            problem = "goal.refused", f"imagine goal rejected: {refused}"
        self.problems.report(*problem)
        return GoalResponse.REJECT

    def _execute_goal(self, goal_handle):
        """Wait (bounded: module doc) for the goal's request, forwarding feedback and cancels; end the goal."""
        goal = goal_handle.request
        with self._goals_cond:
            _, request = self._goal_requests.pop(id(goal), (None, None))
            self._goals_running += 1
        try:
            if request is None:  # not queued by _on_goal (a caller that skipped it): judge and queue it here
                request, problem = self._goal_request(goal)
                if problem is not None:
                    self.problems.report(*problem)
                    request = ImagineRequest([], 0)
                    request.drop(problem[1])
                else:
                    self._submit(request)
            while not request.done.wait(0.05):
                if goal_handle.is_cancel_requested and not request.cancel.is_set():
                    request.cancel.set()
                    self._requests.withdraw(request, "cancelled before it ran")
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
        finally:
            with self._goals_cond:
                self._goals_running -= 1
                self._goals_ended += 1
                self._goals_cond.notify_all()

    def destroy_node(self):
        """Fail every queued request, cancel the running one, wait (bounded) for the worker and the goals to
        answer, save the state, free the backend (module doc)."""
        self._requests.stop()
        with self._goals_cond:
            for _, request in self._goal_requests.values():  # accepted goals whose execute never started
                request.drop("the node is shutting down")
            self._goal_requests.clear()
        if self._worker is not None:
            self._worker.join(timeout=SHUTDOWN_TIMEOUT_S)
            if self._worker.is_alive():
                self.get_logger().warn(f"the worker did not stop within {SHUTDOWN_TIMEOUT_S} s; leaving it")
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
        with self._goals_cond:  # the goals' results reach their clients before the action server goes
            self._goals_cond.wait_for(lambda: self._goals_running == 0, timeout=SHUTDOWN_TIMEOUT_S)
            ended = self._goals_ended
        # their result responses are sent by executor tasks: wait for them too, unless the context is already
        # shut down (SIGINT/SIGTERM), when nothing can be sent any more
        if self._action is not None and self.context.ok():
            with self._action.results_cond:
                self._action.results_cond.wait_for(lambda: self._action.results_sent >= ended,
                                                   timeout=max(0.0, deadline - time.monotonic()))
        self._save_on_shutdown()
        if self._backend is not None:
            self._backend.close()  # frees a heavy backend's device memory
        if self._depth is not None:
            self._depth.close()
        if self._action is not None:
            self._action.destroy()
        return super().destroy_node()


def main(args: list[str] | None = None) -> int:
    made: list[ImaginationNode] = []

    def make_node() -> ImaginationNode:
        made.append(ImaginationNode())
        return made[-1]

    # run_node builds the executor after the node, so its size can follow the node's queue_size
    return run_node(make_node, "imagination_node", args,
                    make_executor=lambda: MultiThreadedExecutor(num_threads=executor_threads(made[-1].p["queue_size"])))


if __name__ == "__main__":
    raise SystemExit(main())
