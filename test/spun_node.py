"""The tests' own ROS node, spun on a background thread (test/ros/ node tests). Import after
``pytest.importorskip("rclpy")``.
"""

from __future__ import annotations

import threading
from typing import Callable

import rclpy
from node_processes import wait_until
from rclpy.executors import SingleThreadedExecutor


class SpunNode:
    """``self.node`` (named ``name``) in a fresh rclpy context; a subclass creates its subscriptions and
    publishers on it, then calls :meth:`start`. :meth:`close` shuts the context down."""

    def __init__(self, name: str) -> None:
        rclpy.init()
        self.node = rclpy.create_node(name)

    def start(self) -> None:
        """Spin the node on a daemon thread from now on."""
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """See :func:`node_processes.wait_until`."""
        return wait_until(done, timeout_s)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()
