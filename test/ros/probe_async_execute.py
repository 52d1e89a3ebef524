"""Probe (not a test): does an ``async`` action execute callback awaiting an rclpy Future resume when another
thread completes that Future (``plain``: ``set_result``; ``task``: ``executor.create_task(set_result)``)?

imagination_node's bounded goal design rests on the answer (worldstereo_ros/ros/imagination_node.py module
doc). Run: ``.venv/bin/python test/ros/probe_async_execute.py task 1.0`` (mode ``task`` or ``plain``, then
how long the goal waits before the Future is completed); prints how long the client then waited for the
result (at most 10 s) and the process CPU while the goal waited.
"""

from __future__ import annotations

import sys
import threading
import time

import rclpy
from rclpy.action import ActionClient, ActionServer
from rclpy.executors import MultiThreadedExecutor
from rclpy.task import Future

from worldstereo_ros.action import Imagine


def main(mode: str, delay_s: float) -> None:
    rclpy.init()
    node = rclpy.create_node("probe_server")
    pending: dict[str, Future] = {}

    async def execute(goal_handle):
        future = Future(executor=node.executor)
        pending["future"] = future
        await future
        goal_handle.succeed()
        return Imagine.Result(success=True)

    ActionServer(node, Imagine, "imagine", execute_callback=execute)
    client_node = rclpy.create_node("probe_client")
    client = ActionClient(client_node, Imagine, "imagine")
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    executor.add_node(client_node)
    threading.Thread(target=executor.spin, daemon=True).start()
    client.wait_for_server(timeout_sec=10.0)
    sent = client.send_goal_async(Imagine.Goal())
    while not sent.done() or "future" not in pending:
        time.sleep(0.01)
    result = sent.result().get_result_async()
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(delay_s)  # the goal waits this long, as behind a running request
    cpu = (time.process_time() - cpu0) / max(time.monotonic() - wall0, 1e-9)
    t0 = time.monotonic()
    if mode == "task":
        executor.create_task(pending["future"].set_result, 1)
    else:
        pending["future"].set_result(1)
    while not result.done() and time.monotonic() - t0 < 10.0:
        time.sleep(0.001)
    print(f"{mode}, completed after {delay_s} s: result {'after' if result.done() else 'NOT received within'} "
          f"{1000 * (time.monotonic() - t0):.0f} ms; CPU while waiting {100 * cpu:.0f}% of a core")
    executor.shutdown()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "task", float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
