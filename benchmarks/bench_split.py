"""Benchmark the split deployment (issue 14 item 7): latency per view added by running the generator in
generation_node (another process, data over UDP) instead of in-process, and the bytes per view each topic carries.

Run: .venv/bin/python benchmarks/bench_split.py [--width 160 --height 120 --frames 8 --repeats 3]
     [--rgb-encoding 32FC3|rgb8] [--camera-width 640 --camera-height 480]

The pipeline (render_fill, memory ggm+ssm, two trajectories) runs ``--repeats`` times in-process and as many
times through a RemoteGenerator; a view's latency is the time from the start of its trajectory's generate stage
to the moment the view reaches the pipeline's on_frame. Added latency = split minus single, per view index.
Bytes are the serialized (CDR) sizes of the messages, as DDS sends them (before UDP/RTPS headers).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict

import cv2
import numpy as np
import rclpy
import torch
from builtin_interfaces.msg import Time
from rclpy.executors import MultiThreadedExecutor
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CompressedImage

from worldstereo_ros.datasets.procedural_scene import procedural_snapshot
from worldstereo_ros.generation.base import GeneratedFrames, GenerationRequest, Generator, create_backend
from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig, Trajectory
from worldstereo_ros.ros.conversions.generation import frame_to_feedback, frames_to_result, request_to_goal
from worldstereo_ros.ros.conversions.image import depth_to_image, rgb_to_image
from worldstereo_ros.ros.imagination_messages import imagined_view
from worldstereo_ros.ros.remote_generator import RemoteGenerator


def trajectories(snapshot, frames: int) -> list[Trajectory]:
    out = []
    for name, side in (("left", -1.0), ("right", 1.0)):
        poses = np.repeat(snapshot.T_world_cam[None], frames, axis=0).copy()
        for i in range(frames):
            step = np.eye(4)
            step[:3, 3] = [side * 0.05 * i, 0.0, 0.08 * i]
            poses[i] = snapshot.T_world_cam @ step
        out.append(Trajectory(name, poses))
    return out


class Recorder(Generator):
    """Passes requests to ``inner`` and keeps the last request and frames (for the message sizes)."""

    name = "recorder"

    def __init__(self, inner: Generator) -> None:
        self.inner, self.requests, self.frames = inner, [], []
        if hasattr(inner, "on_step"):
            self.on_step = self.should_cancel = None

    def generate(self, request: GenerationRequest, generator=None, on_frame=None) -> GeneratedFrames:
        if hasattr(self.inner, "on_step"):
            self.inner.on_step, self.inner.should_cancel = self.on_step, self.should_cancel
        frames = self.inner.generate(request, generator, on_frame)
        self.requests.append(request)
        self.frames.append(frames)
        return frames


def view_latencies(backend: Generator, snapshot, args) -> dict[int, list[float]]:
    """Seconds from the start of the generate stage to each view's on_frame, per view index, over all runs."""
    config = PipelineConfig(backend="render_fill", memory="ggm+ssm", width=args.width, height=args.height, seed=0,
                            keyframe_stride=2)
    latencies: dict[int, list[float]] = defaultdict(list)
    started: dict[str, float] = {}

    def progress(p) -> None:
        if p.stage == "generate" and p.frame_index == 0 and p.trajectory_id not in started:
            started[p.trajectory_id] = time.perf_counter()

    def on_frame(trajectory_id, index, *_rest) -> None:
        latencies[index].append(time.perf_counter() - started[trajectory_id])

    for _ in range(args.repeats):
        started.clear()
        pipeline = ImaginationPipeline(config, backend=backend).initialize(snapshot)
        pipeline.run(trajectories(snapshot, args.frames), progress=progress, on_frame=on_frame)
    return latencies


def percentiles_ms(values) -> tuple[float, float]:
    return float(np.percentile(values, 50) * 1e3), float(np.percentile(values, 95) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--frames", type=int, default=8, help="views per trajectory (two trajectories)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rgb-encoding", default="32FC3", choices=("32FC3", "rgb8"))
    parser.add_argument("--camera-width", type=int, default=640)
    parser.add_argument("--camera-height", type=int, default=480)
    parser.add_argument("--camera-rate-hz", type=float, default=30.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    snapshot = procedural_snapshot(args.width, args.height, spacing_m=0.03)

    namespace = f"/bench_split_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "FASTDDS_BUILTIN_TRANSPORTS": "UDPv4", "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "worldstereo_ros.ros.generation_node", "--ros-args", "-r",
                               f"__ns:={namespace}", "-p", "backend:=render_fill"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node("bench_split")
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        local = Recorder(create_backend("render_fill"))
        remote = RemoteGenerator(node, namespace, timeout_s=120.0, rgb_encoding=args.rgb_encoding)
        view_latencies(remote, snapshot, argparse.Namespace(**{**vars(args), "repeats": 1}))  # warm both sides
        single = view_latencies(local, snapshot, args)
        split = view_latencies(remote, snapshot, args)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        server.terminate()
        server.wait(timeout=20)

    added = [s - t for i in single for s, t in zip(split[i], single[i])]
    print(f"## Split deployment: {args.width}x{args.height}, 2 trajectories x {args.frames} views, {args.repeats} "
          f"runs, render_fill, rgb_encoding {args.rgb_encoding}, loopback UDP\n")
    print("| view latency (start of generate -> on_frame) | p50 ms | p95 ms |\n|---|---|---|")
    for label, values in (("single process", sum(single.values(), [])), ("split (generation_node)",
                                                                         sum(split.values(), [])),
                          ("added by the split, per view", added)):
        p50, p95 = percentiles_ms(values)
        print(f"| {label} | {p50:.1f} | {p95:.1f} |")

    request, frames = local.requests[-1], local.frames[-1]
    n = request.num_frames
    goal = serialize_message(request_to_goal(request, torch.Generator(), args.rgb_encoding))
    feedback = serialize_message(frame_to_feedback(0, n, frames.rgb[0], frames.depth[0], frames.imagined[0],
                                                   args.rgb_encoding))
    result = serialize_message(frames_to_result(frames, torch.Generator()))
    refs = sum(len(r) for r in request.references)
    print(f"\n| topic (action generate) | direction | bytes per view ({args.width}x{args.height}) |\n|---|---|---|")
    print(f"| _action/send_goal (conditions, {refs} reference uses over {n} views) | robot -> GPU | "
          f"{len(goal) / n:,.0f} |")
    print(f"| _action/feedback (rgb, depth, imagined) | GPU -> robot | {len(feedback):,} |")
    print(f"| _action/get_result | GPU -> robot | {len(result) / n:,.0f} |")

    # the robot's own topics at the camera's size, for the link budget in docs/split-deployment.md
    cw, ch, rate = args.camera_width, args.camera_height, args.camera_rate_hz
    cam = procedural_snapshot(cw, ch, spacing_m=0.02)
    jpeg = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", cv2.cvtColor(
        (cam.rgb * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    view = imagined_view("p", 0, 1, cam.rgb, cam.depth, np.zeros((ch, cw), bool), np.eye(4), cam.K, Time(), "map",
                         "camera")
    rows = [("image (sensor_msgs/Image rgb8)", serialize_message(rgb_to_image(cam.rgb))),
            ("image (sensor_msgs/CompressedImage jpeg q90, use_compressed)", serialize_message(jpeg)),
            ("depth (sensor_msgs/Image 32FC1)", serialize_message(depth_to_image(cam.depth))),
            ("depth (sensor_msgs/Image 16UC1 mm)", serialize_message(depth_to_image(cam.depth, "16UC1")))]
    rows.append(("imagined/views (ImaginedView: rgb8, 32FC1, mono8, per view)", serialize_message(view)))
    print(f"\n| robot topic ({cw}x{ch}) | bytes per message | MB/s at {rate:g} Hz |\n|---|---|---|")
    for label, data in rows:
        print(f"| {label} | {len(data):,} | {len(data) * rate / 1e6:.1f} |")


if __name__ == "__main__":
    main()
