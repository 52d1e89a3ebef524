"""generation_node: serve ``Generate`` goals with a local backend (the GPU side of a split deployment).

The robot runs imagination_node with ``generator:=remote``; this node, on the same host or a GPU server on
the same ROS_DOMAIN_ID, builds one backend at start-up (``backend``, ``model_path``, ``device``, ...; paths
confined to ``allowed_roots``), warms it up, and answers each goal on the ``generate`` action: the request's
conditions in, every frame out as feedback the moment the backend finishes it, then a result with what only
the end knows (confidence, timings, the generator state). One goal runs at a time (one model, one device);
later goals wait their turn. Cancelling a goal stops the backend at its next frame or denoising step.
docs/split-deployment.md has the deployment, QoS and bandwidth.
"""

from __future__ import annotations

import threading

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from worldstereo_ros.action import Generate
from worldstereo_ros.errors import WorldStereoError
from worldstereo_ros.generation.base import GenerationCancelled, Generator, create_backend
from worldstereo_ros.ros.conversions.generation import (
    frame_to_feedback,
    frames_to_result,
    goal_to_request,
    step_to_feedback,
)
from worldstereo_ros.ros.node_main import run_node
from worldstereo_ros.ros.parameters import ALLOWED_ROOTS, PARAMS_BY_NAME, ParamSpec, declare_params
from worldstereo_ros.ros.parameters import markdown_table as parameters_table
from worldstereo_ros.ros.path_parameters import confine_path_parameters
from worldstereo_ros.ros.remote_generator import FEEDBACK_QOS, backend_options

#: The backend's parameters mean what they mean on imagination_node (one description, one place).
GENERATION_NODE_PARAMS: tuple[ParamSpec, ...] = tuple(
    PARAMS_BY_NAME[name] for name in ("backend", "model_path", "variant", "base_model_path", "dtype", "steps",
                                      "prompt", "offload", "device")) + (ALLOWED_ROOTS,)


def markdown_table() -> str:
    """The README's parameter table of generation_node."""
    return parameters_table(GENERATION_NODE_PARAMS)


class GenerationNode(Node):
    """See the module doc."""

    def __init__(self, backend: Generator | None = None, **kwargs) -> None:
        super().__init__("generation_node", **kwargs)
        self.p = confine_path_parameters(declare_params(self, GENERATION_NODE_PARAMS))
        self.backend = backend if backend is not None else create_backend(self.p["backend"],
                                                                           **backend_options(self.p))
        self.backend.warmup()  # weights load now, not in the first robot's request
        self._one_at_a_time = threading.Lock()
        self.served = 0
        self._server = ActionServer(self, Generate, "generate", execute_callback=self._execute,
                                    goal_callback=lambda _: GoalResponse.ACCEPT,
                                    cancel_callback=lambda _: CancelResponse.ACCEPT,
                                    callback_group=ReentrantCallbackGroup(), feedback_pub_qos_profile=FEEDBACK_QOS)
        self.get_logger().info(f"generation_node ready: backend {self.p['backend']} on {self.p['device']}, action "
                               f"{self.resolve_topic_name('generate')}")

    def destroy_node(self) -> None:
        self._server.destroy()
        self.backend.close()
        super().destroy_node()

    def _execute(self, goal_handle) -> Generate.Result:
        with self._one_at_a_time:
            return self._generate(goal_handle)

    def _generate(self, goal_handle) -> Generate.Result:
        goal = goal_handle.request
        if goal_handle.is_cancel_requested:  # cancelled while it waited for the previous goal
            goal_handle.canceled()
            return Generate.Result(success=False, message="cancelled before it started")
        try:
            request, generator = goal_to_request(goal)
        except WorldStereoError as err:
            goal_handle.abort()
            self.get_logger().warning(f"rejected trajectory {goal.trajectory_id!r}: {err}")
            return Generate.Result(success=False, message=f"bad request: {err}")
        n, sent = request.num_frames, set()

        def on_frame(index: int, rgb, depth, imagined) -> None:
            goal_handle.publish_feedback(frame_to_feedback(index, n, rgb, depth, imagined, goal.rgb_encoding))
            sent.add(index)
            if goal_handle.is_cancel_requested:
                raise GenerationCancelled(f"cancelled by the client after frame {index + 1} of {n}")

        iterative = hasattr(self.backend, "on_step")
        if iterative:
            self.backend.on_step = lambda step, total: goal_handle.publish_feedback(step_to_feedback(step, total))
            self.backend.should_cancel = lambda: goal_handle.is_cancel_requested
        try:
            frames = self.backend.generate(request, generator=generator, on_frame=on_frame)
        except GenerationCancelled as err:
            goal_handle.canceled()
            return Generate.Result(success=False, message=str(err))
        except Exception as err:  # the node serves the next goal whatever this one brought
            goal_handle.abort()
            self.get_logger().error(f"trajectory {goal.trajectory_id!r} failed: {type(err).__name__}: {err}")
            return Generate.Result(success=False, message=f"{type(err).__name__}: {err}")
        finally:
            if iterative:  # no stale hooks of this goal on the shared backend
                self.backend.on_step = self.backend.should_cancel = None
        for index in sorted(set(range(n)) - sent):  # a backend that skipped on_frame: its frames still go out
            goal_handle.publish_feedback(frame_to_feedback(index, n, frames.rgb[index], frames.depth[index],
                                                           frames.imagined[index], goal.rgb_encoding))
        goal_handle.succeed()
        self.served += 1
        return frames_to_result(frames, generator)


def main(args: list[str] | None = None) -> int:
    return run_node(GenerationNode, "generation_node", args, make_executor=lambda: MultiThreadedExecutor(num_threads=3))


if __name__ == "__main__":
    raise SystemExit(main())
