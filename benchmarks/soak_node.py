"""Soak imagination_node (issue 14 item 5): a 30 Hz 640x480 RGB-D camera (image, depth, camera_info, TF) and
2 Hz candidate-path requests for ``--duration`` seconds, the node in another process over real DDS.

Prints the node's peak RSS per window and overall, the input figures (frames published here vs received by the
node, from its /diagnostics; the node keeps only the newest frame), requests sent / answered / dropped, and
request -> first imagined view latency p50/p95. Exits 1 when the node's RSS grows without bound (peak of the
last window > ``--growth-limit`` x peak of the first), when no view arrives, or when the node dies.

    .venv/bin/python benchmarks/soak_node.py --duration 600 [--frames 4] [--view-size 160x120]

Each request is a CandidatePaths message whose one path has a unique id (``soak_<n>``), so the first view of
each request is recognised by its ``path_id``. The project's Fast DDS profile (config/fastdds.xml) is used
unless FASTDDS_DEFAULT_PROFILES_FILE is already set.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(110 + os.getpid() % 100))
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds.xml"))

T_BASE_CAM = np.array([[0.0, 0.0, 1.0, 0.1], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.4], [0, 0, 0, 1.0]])


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class Soak:
    """The camera, the requester and the observer of one soak run (module doc)."""

    def __init__(self, args: argparse.Namespace) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image

        from worldstereo_ros.datasets.procedural_scene import procedural_snapshot
        from worldstereo_ros.msg import CandidatePaths, ImaginedView
        from worldstereo_ros.ros.conversions.camera_info import intrinsics_to_camera_info
        from worldstereo_ros.ros.conversions.image import depth_to_image, rgb_to_image
        from worldstereo_ros.ros.conversions.transforms import make_transform_stamped
        from worldstereo_ros.ros.imagination_node import VIEWS_QOS
        from worldstereo_ros.ros.tf import TfBroadcaster

        self.args = args
        width, height = args.camera_size
        snap = procedural_snapshot(width, height)
        self.T_world_base = snap.T_world_cam @ np.linalg.inv(T_BASE_CAM)
        view_w, view_h = args.view_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worldstereo_ros.ros.imagination_node", "--ros-args", "-p", "fixed_frame:=map",
             "-p", "base_frame:=base_link", "-p", f"frames_per_path:={args.frames}", "-p", f"image_width:={view_w}",
             "-p", f"image_height:={view_h}", "-p", "sync_tolerance_s:=0.001", "-p", "diagnostics_period_s:=1.0",
             "-p", "tf_timeout_s:=0.5", "-p", "busy_policy:=queue", "-p", "queue_size:=2"],
            stdout=None if args.verbose else subprocess.DEVNULL, stderr=subprocess.STDOUT)
        rclpy.init()
        self.node = rclpy.create_node("soak_peer")
        self.first_view: dict[str, float] = {}
        self.views = 0
        self.diagnostics: dict[str, str] = {}
        self.node.create_subscription(ImaginedView, "imagined/views", self._on_view, VIEWS_QOS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.pubs = {name: self.node.create_publisher(kind, name, qos_profile_sensor_data)
                     for name, kind in (("image", Image), ("depth", Image), ("camera_info", CameraInfo))}
        self.pub_paths = self.node.create_publisher(CandidatePaths, "candidate_paths", 10)
        self.tf = TfBroadcaster(self.node)
        self.tf.send_static([make_transform_stamped("base_link", "camera_optical", T_BASE_CAM,
                                                    self.node.get_clock().now().to_msg())])
        # converted once: a camera driver's cost is not what is measured; only the stamps change per frame
        self.messages = {"image": rgb_to_image(snap.rgb), "depth": depth_to_image(snap.depth, "16UC1"),
                         "camera_info": intrinsics_to_camera_info(snap.K, width, height)}
        self.make_tf = make_transform_stamped
        self.sent: dict[str, float] = {}
        self.frames_published = 0
        self.late_ticks = 0
        self.rss: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _on_view(self, msg) -> None:
        self.views += 1
        if msg.path_id not in self.first_view:
            self.first_view[msg.path_id] = time.monotonic()

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith("imagination_node"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    # -------------------------------------------------------------------------------------- loops
    def camera_loop(self, rate_hz: float = 30.0) -> None:
        period, t_next = 1.0 / rate_hz, time.monotonic()
        while not self.stop.is_set():
            stamp = self.node.get_clock().now().to_msg()
            self.tf.send([self.make_tf("map", "base_link", self.T_world_base, stamp)])
            for name in ("camera_info", "depth", "image"):
                msg = self.messages[name]
                msg.header.stamp, msg.header.frame_id = stamp, "camera_optical"
                self.pubs[name].publish(msg)
            self.frames_published += 1
            t_next += period
            delay = t_next - time.monotonic()
            if delay < 0:  # behind: skip ticks instead of bursting, as a driver at a fixed rate would
                self.late_ticks += 1
                t_next = time.monotonic()
            else:
                self.stop.wait(delay)

    def request_loop(self, rate_hz: float) -> None:
        from geometry_msgs.msg import PoseStamped
        from nav_msgs.msg import Path as PathMsg
        from std_msgs.msg import Header

        from worldstereo_ros.msg import CandidatePath, CandidatePaths
        from worldstereo_ros.ros.conversions.transforms import matrix_to_pose

        n = 0
        while not self.stop.wait(1.0 / rate_hz):
            path = PathMsg(header=Header(frame_id="map"))
            turn = np.radians(15.0) * (1 if n % 2 else -1)
            for i in range(5):
                step = np.eye(4)
                a = turn * i / 4
                step[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
                step[0, 3] = 1.0 * i / 4
                path.poses.append(PoseStamped(header=path.header, pose=matrix_to_pose(self.T_world_base @ step)))
            path_id = f"soak_{n}"
            self.sent[path_id] = time.monotonic()
            self.pub_paths.publish(CandidatePaths(paths=[CandidatePath(id=path_id, path=path)]))
            n += 1

    def rss_loop(self) -> None:
        import psutil

        proc = psutil.Process(self.proc.pid)
        while not self.stop.wait(0.5):
            try:
                self.rss.append((time.monotonic(), proc.memory_info().rss))
            except psutil.NoSuchProcess:
                return

    # -------------------------------------------------------------------------------------- run
    def run(self) -> int:
        args = self.args
        deadline = time.monotonic() + 120
        while self.pub_paths.get_subscription_count() == 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                print("imagination_node did not subscribe to candidate_paths within 120 s", file=sys.stderr)
                return 1
            time.sleep(0.05)
        loops = [threading.Thread(target=self.camera_loop, daemon=True),
                 threading.Thread(target=self.rss_loop, daemon=True)]
        for t in loops:
            t.start()
        time.sleep(1.0)  # the node has frames to pair before the first request
        requester = threading.Thread(target=self.request_loop, args=(args.request_hz,), daemon=True)
        requester.start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.duration and self.proc.poll() is None:
            time.sleep(0.5)
        self.stop.set()
        time.sleep(3.0)  # views of the last requests still arriving
        died = self.proc.poll() is not None
        return self.report(t0, died)

    def report(self, t0: float, died: bool) -> int:
        args = self.args
        window = min(60.0, args.duration / 3)
        latencies = [self.first_view[k] - t for k, t in self.sent.items() if k in self.first_view]
        rss = [(t - t0, r) for t, r in self.rss]
        first = max((r for t, r in rss if 0 <= t < window), default=0)
        last = max((r for t, r in rss if args.duration - window <= t <= args.duration), default=0)
        peak = max((r for _, r in rss), default=0)
        d = self.diagnostics
        problems = Counter({k[len("problem."):-len(".count")]: int(v) for k, v in d.items()
                            if k.startswith("problem.") and k.endswith(".count")})
        received = int(d.get("received.image", 0))
        print(f"soak: {args.duration:.0f} s, camera {args.camera_size[0]}x{args.camera_size[1]} RGB-D at 30 Hz, "
              f"requests at {args.request_hz:g} Hz, {args.frames} views of {args.view_size[0]}x{args.view_size[1]} "
              f"per request")
        print(f"node peak RSS: {peak / 2**20:.0f} MiB (first {window:.0f} s: {first / 2**20:.0f} MiB, "
              f"last {window:.0f} s: {last / 2**20:.0f} MiB)")
        print(f"camera frames published: {self.frames_published} ({self.late_ticks} ticks late); received by the "
              f"node: image {received}, depth {d.get('received.depth', '?')}, camera_info "
              f"{d.get('received.camera_info', '?')} (latest-only: one pending frame, {d.get('snapshots', 0)} "
              f"snapshots taken)")
        print(f"requests: sent {len(self.sent)}, answered with views {len(latencies)}, done "
              f"{d.get('requests_done', '?')}, dropped (queue full) {problems.get('request.dropped', 0)}, "
              f"views received {self.views}")
        print(f"request -> first view: p50 {percentile(latencies, 50):.2f} s, p95 {percentile(latencies, 95):.2f} s, "
              f"max {max(latencies, default=float('nan')):.2f} s")
        if problems:
            print(f"node problems: {dict(problems)}")
        failures = []
        if died:
            failures.append(f"imagination_node exited with {self.proc.returncode}")
        if not latencies:
            failures.append("no imagined view arrived")
        if first and last > args.growth_limit * first:
            failures.append(f"RSS grew from {first / 2**20:.0f} to {last / 2**20:.0f} MiB "
                            f"(> {args.growth_limit:g} x)")
        for f in failures:
            print(f"FAIL: {f}")
        return 1 if failures else 0

    def close(self) -> None:
        import rclpy

        self.stop.set()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load [s]")
    parser.add_argument("--request-hz", type=float, default=2.0)
    parser.add_argument("--frames", type=int, default=4, help="views per request")
    parser.add_argument("--camera-size", type=_size, default=(640, 480))
    parser.add_argument("--view-size", type=_size, default=(160, 120), help="imagined view size")
    parser.add_argument("--growth-limit", type=float, default=1.5, help="allowed last/first window RSS ratio")
    parser.add_argument("--verbose", action="store_true", help="show the node's log")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    soak = Soak(args)
    try:
        return soak.run()
    finally:
        soak.close()


if __name__ == "__main__":
    raise SystemExit(main())
