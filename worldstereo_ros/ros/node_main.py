"""The ``main`` every node executable shares: init, spin, clean shutdown, configuration errors as exit code 2."""

from __future__ import annotations

import sys
from typing import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from worldstereo_ros.errors import WorldStereoError


def run_node(make_node: Callable[[], Node], name: str, args: list[str] | None = None,
             make_executor: Callable[[], Executor] = SingleThreadedExecutor) -> int:
    """Create the node with ``make_node`` and spin it until Ctrl-C or shutdown; 2 when it refused to start."""
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        executor = make_executor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except WorldStereoError as err:
        print(f"{name}: {err}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
