"""The ``main`` every node executable shares: init, spin, clean shutdown, configuration errors as exit code 2.

Exit codes: 0 after Ctrl-C, SIGTERM or an external shutdown; 2 when the node refused to start (a bad
parameter: one line on stderr naming it); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Callable

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from worldstereo_ros.errors import WorldStereoError


def run_node(make_node: Callable[[], Node], name: str, args: list[str] | None = None,
             make_executor: Callable[[], Executor] = SingleThreadedExecutor) -> int:
    """Create the node with ``make_node`` and spin it until Ctrl-C, SIGTERM or shutdown (exit codes: module doc)."""
    rclpy.init(args=args)
    node = executor = None
    try:
        node = make_node()
        executor = make_executor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (WorldStereoError, ParameterException) as err:
        print(f"{name}: {err}", file=sys.stderr)
        return 2
    except Exception:
        # rclpy's SIGINT/SIGTERM handler shuts the context down while a callback may be publishing; that
        # callback then fails (RCLError: context is invalid). Part of the shutdown, not a failure of the node.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        if executor is not None:
            # wakes and ends a MultiThreadedExecutor's pool threads: left idle, one of them now and then kept
            # the interpreter from exiting after SIGINT (1 in 20 exits hung in threading._shutdown)
            executor.shutdown(timeout_sec=5.0)
        rclpy.try_shutdown()
    return 0
