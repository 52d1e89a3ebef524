"""The split-deployment tests' scenario: one procedural snapshot, two short trajectories, the pipeline run with
a given backend; and, run as a script, the robot side of a split run (used inside a network namespace).

``python split_scenario.py --namespace /ns --out views.npz [--rgb-encoding rgb8]`` runs the pipeline with a
RemoteGenerator asking the generation_node in ``/ns`` and saves every view, so a test can compare a robot in
one network namespace with a server in another.
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass

import numpy as np
import torch

from worldstereo_ros.datasets.procedural_scene import procedural_snapshot
from worldstereo_ros.generation.base import GeneratedFrames, GenerationRequest, Generator, create_backend
from worldstereo_ros.memory.types import Reference
from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig, Trajectory
from worldstereo_ros.ros.conversions.generation import quantise_rgb

WIDTH, HEIGHT, FRAMES = 48, 36, 5


def trajectories(snapshot) -> list[Trajectory]:
    """Two 5-view trajectories from the snapshot's camera: forward-left, then forward-right (the second reuses
    what the first revealed, so the memories and references matter)."""
    out = []
    for name, side in (("left", -1.0), ("right", 1.0)):
        poses = np.repeat(snapshot.T_world_cam[None], FRAMES, axis=0).copy()
        for i in range(FRAMES):
            step = np.eye(4)
            step[:3, 3] = [side * 0.08 * i, 0.0, 0.12 * i]  # optical frame: x right, z forward
            poses[i] = snapshot.T_world_cam @ step
        out.append(Trajectory(name, poses))
    return out


@dataclass
class Views:
    """Every view of a run, stacked over both trajectories: rgb (V, H, W, 3), depth (V, H, W), imagined (V, H, W),
    and the arrays of the pipeline's results."""

    streamed: dict[str, np.ndarray]
    results: dict[str, np.ndarray]


def run(backend: Generator) -> Views:
    """The pipeline on the scenario with ``backend`` (memory ggm+ssm, seed 0)."""
    torch.set_num_threads(1)
    snapshot = procedural_snapshot(WIDTH, HEIGHT, spacing_m=0.04)
    config = PipelineConfig(backend="render_fill", memory="ggm+ssm", width=WIDTH, height=HEIGHT, seed=0,
                            keyframe_stride=2)
    streamed: dict[str, list] = {"rgb": [], "depth": [], "imagined": []}
    lock = threading.Lock()

    def on_frame(trajectory_id, index, rgb, depth, imagined, T_world_cam, K) -> None:
        with lock:
            for name, value in (("rgb", rgb), ("depth", depth), ("imagined", imagined)):
                streamed[name].append(np.array(value))

    pipeline = ImaginationPipeline(config, backend=backend).initialize(snapshot)
    results = pipeline.run(trajectories(snapshot), on_frame=on_frame)
    return Views({k: np.stack(v) for k, v in streamed.items()},
                 {name: np.concatenate([getattr(r, name) for r in results]) for name in ("rgb", "depth", "imagined")})


def run_request(backend: Generator, on_frame=None) -> GeneratedFrames:
    """One seeded request of FRAMES synthetic frames (trajectory id ``probe``) straight to ``backend``."""
    rng = np.random.default_rng(5)
    snapshot = procedural_snapshot(WIDTH, HEIGHT, spacing_m=0.04)
    poses = np.stack([t for t in trajectories(snapshot)[0].T_world_cam])
    mask = rng.random((FRAMES, HEIGHT, WIDTH)) > 0.3
    request = GenerationRequest(K=np.repeat(snapshot.K[None], FRAMES, axis=0), T_world_cam=poses, height=HEIGHT,
                                width=WIDTH, cond_rgb=rng.random((FRAMES, HEIGHT, WIDTH, 3), dtype=np.float32),
                                cond_depth=np.where(mask, 1.0 + rng.random(mask.shape), 0).astype(np.float32),
                                cond_mask=mask, cond_index=np.where(mask, 1, -1), references=[[]] * FRAMES,
                                source=snapshot, trajectory_id="probe")
    return backend.generate(request, torch.Generator().manual_seed(0), on_frame)


class QuantisedWire(Generator):
    """A local backend seen through an rgb8 wire: every colour in and out rounded as the messages round it, so
    the single process can be compared with a split run that sends rgb8."""

    name = "render_fill_rgb8"

    def __init__(self) -> None:
        self.inner = create_backend("render_fill")

    def generate(self, request: GenerationRequest, generator=None, on_frame=None) -> GeneratedFrames:
        refs = [[Reference(**{**r.__dict__, "rgb": quantise_rgb(r.rgb)}) for r in frame] for frame in
                request.references]
        source = request.source.__class__(**{**request.source.__dict__, "rgb": quantise_rgb(request.source.rgb)})
        start = None if request.start_rgb is None else quantise_rgb(request.start_rgb)
        wired = GenerationRequest(**{**request.__dict__, "cond_rgb": quantise_rgb(request.cond_rgb),
                                     "references": refs, "source": source, "start_rgb": start})

        def frame(index, rgb, depth, imagined):
            if on_frame is not None:
                on_frame(index, quantise_rgb(rgb), depth, imagined)

        frames = self.inner.generate(wired, generator, frame)
        frames.rgb = quantise_rgb(frames.rgb)
        return frames


def main() -> None:
    import rclpy  # why: only the script mode needs ROS; the helpers above serve rclpy-free comparisons too
    from rclpy.executors import MultiThreadedExecutor

    from worldstereo_ros.ros.remote_generator import RemoteGenerator

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--rgb-encoding", default="32FC3")
    parser.add_argument("--timeout-s", type=float, default=60.0)
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("split_robot")
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        views = run(RemoteGenerator(node, args.namespace, args.timeout_s, args.rgb_encoding))
        np.savez(args.out, **{f"streamed_{k}": v for k, v in views.streamed.items()},
                 **{f"results_{k}": v for k, v in views.results.items()})
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
