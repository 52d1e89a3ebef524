"""A :class:`~worldstereo_ros.generation.base.Generator` whose backend runs in ``generation_node``, over DDS.

The split deployment (docs/split-deployment.md): the robot keeps the camera, TF, the memories and the
publishing; a GPU host runs ``generation_node``. ``RemoteGenerator.generate`` sends the request as a
``Generate`` goal, hands each frame to ``on_frame`` as its feedback arrives, and returns the frames when
the result says the trajectory is done, so the pipeline cannot tell it from a local backend.

Threads: feedback and results arrive on the node's executor; :meth:`generate` runs on the caller's
thread (the imagination worker), which is where ``on_frame`` is called, so an exception it raises (a
pipeline cancel) cancels the goal and reaches the caller.
"""

from __future__ import annotations

import queue
import time
from typing import Any

import numpy as np
import torch
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from worldstereo_ros.action import Generate
from worldstereo_ros.errors import BackendError, ConversionError, InputError
from worldstereo_ros.generation.base import (
    CancelCheck,
    Capabilities,
    FrameCallback,
    GeneratedFrames,
    GenerationCancelled,
    GenerationRequest,
    Generator,
    StepCallback,
    create_backend,
)
from worldstereo_ros.ros.conversions.generation import (
    check_rgb_encoding,
    feedback_to_frame,
    generator_from_bytes,
    request_to_goal,
    result_to_frames,
)

#: Generate feedback: every frame must arrive (reliable) and none may be overwritten by the next one
#: while the robot is busy with the previous (keep all); the server uses the same profile.
FEEDBACK_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)


def action_name(namespace: str) -> str:
    """The Generate action's name for ``generation_namespace`` ("" = ``generate`` in the node's own namespace).

    Raises:
        InputError: a namespace with characters ROS names do not allow.
    """
    namespace = namespace.strip()
    if not namespace:
        return "generate"
    parts = namespace.strip("/").split("/")
    if "//" in namespace or not all(part.replace("_", "a").isalnum() for part in parts if part):
        raise InputError("generation_namespace", f"expected a ROS namespace like /gpu_server, got {namespace!r}")
    return namespace.rstrip("/") + "/generate"


def backend_options(p: dict[str, Any]) -> dict[str, Any]:
    """Constructor options of the local backend ``p["backend"]`` from a node's parameters."""
    if p["backend"] != "worldstereo":
        return {}
    return dict(model_path=p["model_path"], variant=p["variant"], device=p["device"],
                base_model_path=p["base_model_path"] or None, dtype=p["dtype"], steps=p["steps"] or None,
                prompt=p["prompt"], offload=p["offload"])


def node_generator(node: Node, p: dict[str, Any]) -> Generator:
    """The generator a node's parameters choose: ``generator`` local -> the backend ``backend`` in this process;
    remote -> a :class:`RemoteGenerator` asking generation_node (``generation_namespace``, ``generation_timeout_s``,
    ``generation_rgb_encoding``).
    """
    if p.get("generator", "local") == "remote":
        return RemoteGenerator(node, p["generation_namespace"], p["generation_timeout_s"],
                               p.get("generation_rgb_encoding", "32FC3"))
    return create_backend(p["backend"], **backend_options(p))


#: Seconds to wait after the result for frames whose feedback is still on its way before asking again.
STRAGGLER_S = 3.0


class RemoteGenerator(Generator):
    """Sends each request to ``generation_node`` (see the module doc).

    Args:
        node: the node whose executor spins the action client (it must be spinning during :meth:`generate`).
        namespace: namespace of the generation node's ``generate`` action ("" = the node's own namespace).
        timeout_s: the longest silence accepted: the server must be found, accept the goal, and send the
            next frame, progress step or its result within this many seconds, else :class:`BackendError`.
        rgb_encoding: ``32FC3`` (exact) or ``rgb8`` (a quarter of the bytes; colours rounded to 1/255).
        uses_references: whether the remote backend reads references (false: the pipeline skips retrieval
            and none travel); the same as the remote backend class's ``uses_references``.
    """

    name = "remote"

    def __init__(self, node: Node, namespace: str = "", timeout_s: float = 120.0, rgb_encoding: str = "32FC3",
                 uses_references: bool = True) -> None:
        if not timeout_s > 0:
            raise InputError("generation_timeout_s", f"must be > 0 s, got {timeout_s}")
        self.rgb_encoding = check_rgb_encoding(rgb_encoding)
        self.timeout_s = float(timeout_s)
        self.uses_references = bool(uses_references)
        self.action = action_name(namespace)
        self._node = node
        self._client = ActionClient(node, Generate, self.action, callback_group=ReentrantCallbackGroup(),
                                    feedback_sub_qos_profile=FEEDBACK_QOS)
        # the pipeline sets these around each request (progress between steps, cancel between frames)
        self.on_step: StepCallback | None = None
        self.should_cancel: CancelCheck | None = None
        #: scene prompt sent with requests that carry none (imagination_node sets it from its parameter)
        self.prompt = ""

    @property
    def capabilities(self) -> Capabilities:
        """``needs_weights`` true: the server loads and warms its backend itself, so a robot's warm-up must not
        send a synthetic trajectory (it would wait for a server that may not be up yet)."""
        return Capabilities(needs_weights=True)

    def server_ready(self) -> bool:
        """Whether a generation node serves the action now (no waiting)."""
        return bool(self._client.server_is_ready())

    def destroy(self) -> None:
        """Release the action client (the node outlives this generator), safely while an executor spins the node.

        Not ``ActionClient.destroy()``: it marks the handle destroyed *before* taking it off the node, so an
        executor thread that had already listed the node's waitables adds a dead handle to its wait set and
        its spin dies (seen in the suite: every later goal of that node then timed out). Taken off the node
        first, the handle is freed with its last reference, after any executor pass that still holds it.
        """
        if self._client in self._node.waitables:
            self._node.remove_waitable(self._client)
        executor = self._node.executor
        if executor is not None:
            executor.wake()  # rebuild its wait set without the client now
        self._client = None

    def generate(self, request: GenerationRequest, generator: torch.Generator | None = None,
                 on_frame: FrameCallback | None = None) -> GeneratedFrames:
        """Generate ``request`` on the generation node; ``generator`` (CPU) leaves in the state the remote
        backend left it in.

        Raises:
            InputError: a malformed request (checked before anything is sent).
            BackendError: no server, a rejected goal, a silence longer than ``timeout_s``, frames missing or
                malformed, or the remote backend's own error (its message is kept).
            GenerationCancelled: ``should_cancel`` returned True (the remote goal is cancelled too).
        """
        request.check()
        goal = request_to_goal(request, generator, self.rgb_encoding)
        goal.prompt = request.prompt or self.prompt
        self._wait_for_server()
        call = _Call(request, on_frame, self.on_step)
        try:
            for attempt in range(2):
                result = self._serve(call, goal)
                if not call.missing():
                    break
                # A reliable stream loses nothing once matched, but feedback published before the server's
                # writer has matched a new client's reader is gone; the same goal (generator state included)
                # makes the same frames, so asking once more fills the gap.
                self._node.get_logger().warning(f"frames {call.missing()} of trajectory {request.trajectory_id!r} "
                                             "did not arrive; asking the generation server again")
            if call.missing():
                raise BackendError(f"frames {call.missing()} of trajectory {request.trajectory_id!r} never arrived "
                                   "from the generation server (twice)")
        except BaseException:
            call.cancel()  # never leave the remote GPU working for nobody
            raise
        frames = result_to_frames(result, *call.stacked())
        if generator is not None and len(result.generator_state):
            generator.set_state(generator_from_bytes(result.generator_state).get_state())
        return frames

    def _wait_for_server(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not self._client.server_is_ready():
            if self.should_cancel is not None and self.should_cancel():
                raise GenerationCancelled("cancelled while waiting for the generation server")
            if time.monotonic() > deadline:
                raise BackendError(f"no generation server answers on action {self._resolved()!r} within "
                                   f"generation_timeout_s={self.timeout_s:g} s (is generation_node running, with "
                                   "the same ROS_DOMAIN_ID and a reachable network?)")
            time.sleep(0.05)

    def _resolved(self) -> str:
        return self._node.resolve_topic_name(self.action) if hasattr(self._node, "resolve_topic_name") else self.action

    def _serve(self, call: "_Call", goal):
        """Send ``goal`` and handle its events until the result and every frame are in; the Generate.Result.

        rclpy forgets a goal's feedback callback once its result has arrived, and feedback and result travel on
        different channels, so the result is requested only when every frame is in, or when the goal's status
        says it ended (at once if it failed; after :data:`STRAGGLER_S` without a frame if it succeeded, then the
        caller asks again for what is missing).
        """
        events = call.new_goal()
        send = self._client.send_goal_async(goal, feedback_callback=lambda msg: events.put(("feedback", msg)))
        send.add_done_callback(lambda future: events.put(("goal", future)))
        deadline = last_event = time.monotonic()
        deadline += self.timeout_s
        result = None
        while result is None:
            if self.should_cancel is not None and self.should_cancel():
                raise GenerationCancelled("cancelled while the generation server was working")
            try:
                kind, payload = events.get(timeout=0.05)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise BackendError(self._silence(call, result)) from None
            else:
                deadline = time.monotonic() + self.timeout_s  # the server is alive: the silence starts again
                last_event = time.monotonic()
                if kind == "goal":
                    call.accepted(payload)
                elif kind == "feedback":
                    call.feedback(payload.feedback)
                elif kind == "result":
                    result = call.finished(payload)
            if call.handle is not None and not call.result_requested:
                status = call.handle.status
                ended = status in (GoalStatus.STATUS_ABORTED, GoalStatus.STATUS_CANCELED) or (
                    status == GoalStatus.STATUS_SUCCEEDED and time.monotonic() - last_event > min(self.timeout_s,
                                                                                                  STRAGGLER_S))
                if not call.missing() or ended:
                    call.request_result()
        return result

    def _silence(self, call: "_Call", result) -> str:
        where = (f"{len(call.frames)} of {call.n} frames received" + (", result in" if result is not None else "")
                 if call.handle is not None else "goal not yet accepted")
        return (f"generation server on {self._resolved()!r} silent for generation_timeout_s={self.timeout_s:g} s "
                f"({where}, trajectory {call.request.trajectory_id!r})")


class _Call:
    """The state of one generate() call: events from the executor, frames received, the goal handle."""

    def __init__(self, request: GenerationRequest, on_frame: FrameCallback | None,
                 on_step: StepCallback | None) -> None:
        self.request = request
        self.n, self.h, self.w = request.num_frames, request.height, request.width
        self.on_frame, self.on_step = on_frame, on_step
        self.events: queue.Queue = queue.Queue()
        self.frames: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.handle = None
        self.result_requested = False
        self._next = 0  # frames are handed to on_frame in order, whatever order feedback took

    def new_goal(self) -> queue.Queue:
        """A fresh event queue for the next goal of this call (frames already received are kept)."""
        self.events, self.handle, self.result_requested = queue.Queue(), None, False
        return self.events

    def accepted(self, future) -> None:
        handle = future.result()
        if not handle.accepted:
            raise BackendError(f"the generation server rejected trajectory {self.request.trajectory_id!r}")
        self.handle = handle

    def request_result(self) -> None:
        """Ask for the goal's result (its feedback is dropped by rclpy once the answer is in)."""
        events = self.events
        self.result_requested = True
        self.handle.get_result_async().add_done_callback(lambda f: events.put(("result", f)))

    def feedback(self, msg) -> None:
        if not msg.has_frame:
            if self.on_step is not None and msg.total_steps:
                self.on_step(int(msg.step), int(msg.total_steps))
            return
        try:
            index, rgb, depth, imagined = feedback_to_frame(msg, self.h, self.w)
        except ConversionError as err:
            raise BackendError(f"generation server sent a malformed frame: {err}") from None
        if index >= self.n:
            raise BackendError(f"generation server sent frame {index} of a {self.n}-frame trajectory")
        self.frames.setdefault(index, (rgb, depth, imagined))  # a repeated goal's copy of a frame already here
        while self._next in self.frames:
            if self.on_frame is not None:
                self.on_frame(self._next, *self.frames[self._next])
            self._next += 1

    def finished(self, future):
        wrapped = future.result()
        result = wrapped.result
        if wrapped.status == GoalStatus.STATUS_CANCELED:
            raise GenerationCancelled(f"the generation server cancelled trajectory {self.request.trajectory_id!r}")
        if wrapped.status != GoalStatus.STATUS_SUCCEEDED or not result.success:
            raise BackendError(f"generation server failed on trajectory {self.request.trajectory_id!r}: "
                               f"{result.message or 'no message'}")
        if int(result.frame_count) != self.n:
            raise BackendError(f"generation server made {result.frame_count} frames, {self.n} were requested")
        return result

    def missing(self) -> list[int]:
        return [i for i in range(self.n) if i not in self.frames]

    def stacked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb, depth, imagined = zip(*(self.frames[i] for i in range(self.n)))
        return np.stack(rgb), np.stack(depth), np.stack(imagined)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel_goal_async()
