"""DDS peer process for test_interfaces_dds.py.

Publishes every sample message (reliable, transient-local, so a late subscriber still gets it) and
serves the Imagine action: two feedback messages, then a result echoing the goal's path ids.
Runs until it is terminated or 60 s pass.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import rclpy
from rclpy.action import ActionServer
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interface_samples import SAMPLES  # noqa: E402

from worldstereo_ros.action import Imagine  # noqa: E402

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def execute(goal_handle):
    goal = goal_handle.request
    for i in range(2):
        fb = Imagine.Feedback(path_id=goal.paths[0].id if goal.paths else "", path_index=0,
                              path_count=len(goal.paths), frame_index=i, frame_count=2,
                              progress=(i + 1) / 2.0, stage="generate")
        goal_handle.publish_feedback(fb)
        time.sleep(0.05)
    goal_handle.succeed()
    return Imagine.Result(success=True, message="echo", path_ids=[p.id for p in goal.paths],
                          views_published=goal.frames_per_path * len(goal.paths), cache_points=42,
                          elapsed_s=0.1)


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("interface_peer")
    pubs = [node.create_publisher(t, topic, LATCHED) for topic, (t, _) in SAMPLES.items()]
    for pub, (_, build) in zip(pubs, SAMPLES.values()):
        pub.publish(build())
    ActionServer(node, Imagine, "imagine", execute)
    print("peer ready", flush=True)
    deadline = time.monotonic() + 60.0
    try:
        while rclpy.ok() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
