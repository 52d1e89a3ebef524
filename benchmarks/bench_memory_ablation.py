"""What the memories buy: cross-trajectory consistency with no memory, the global cache (GGM) and GGM + the
keyframe references (SSM) (issue 4).

Four trajectories from one snapshot, in pairs that end at the same check pose by different routes:
``orbit`` (30 degrees) and ``orbit_direct`` (straight to the orbit's end pose, turning on the way), then
``up`` (15 degrees) and ``up_direct``. The second of each pair runs after the first, so with memory it can
reuse what the first imagined. At each check pose the two trajectories' views are compared (PSNR and SSIM
over the whole view); consistency should rise from none -> GGM -> GGM+SSM.

    .venv/bin/python benchmarks/bench_memory_ablation.py [--rgbd-folder ../shared/data/7scenes-redkitchen --frame 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worldstereo_ros.evaluation.image_metrics import psnr, ssim  # noqa: E402
from worldstereo_ros.geometry.poses import interpolate_poses  # noqa: E402
from worldstereo_ros.geometry.trajectories import orbit, tilt_up  # noqa: E402
from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig, Trajectory  # noqa: E402
from worldstereo_ros.snapshot import Snapshot  # noqa: E402


def trajectories(snapshot: Snapshot, depth_median_m: float, frames: int) -> list[Trajectory]:
    T0 = snapshot.T_world_cam
    a = orbit(T0, frames, 30.0, depth_median_m=depth_median_m)
    c = tilt_up(T0, frames, 15.0, depth_median_m=depth_median_m)
    alphas = torch.linspace(0.0, 1.0, frames, dtype=torch.float64)

    def direct(end: np.ndarray) -> np.ndarray:
        return interpolate_poses(torch.from_numpy(T0), torch.from_numpy(end), alphas).numpy()

    return [Trajectory("orbit", a), Trajectory("orbit_direct", direct(a[-1])),
            Trajectory("up", c), Trajectory("up_direct", direct(c[-1]))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rgbd-folder", default=None, help="7-Scenes-style folder (default: the procedural room)")
    parser.add_argument("--frame", type=int, default=0)
    parser.add_argument("--frames", type=int, default=25)
    args = parser.parse_args(argv)
    if args.rgbd_folder:
        from worldstereo_ros.io.rgbd_folder import RgbdFolder

        f = RgbdFolder(args.rgbd_folder).read(args.frame)
        snapshot = Snapshot.create(f.rgb, f.depth, f.K, f.T_world_cam)
        source = f"{args.rgbd_folder} frame {args.frame}"
    else:
        from worldstereo_ros.io.procedural_scene import procedural_snapshot

        snapshot = procedural_snapshot(640, 480)
        source = "the procedural room"
    depth_median = float(np.median(snapshot.depth[snapshot.depth > 0]))
    print(f"| memory ({source}; 4 x {args.frames} views, 640x480) | PSNR at check poses (orbit, up) | mean PSNR "
          f"| mean SSIM | imagined at check poses | time |")
    print("|---|---|---|---|---|---|")
    rows = []
    for memory in ("none", "ggm", "ggm+ssm"):
        t0 = time.perf_counter()
        pipe = ImaginationPipeline(PipelineConfig(memory=memory)).initialize(snapshot)
        results = {r.id: r for r in pipe.run(trajectories(snapshot, depth_median, args.frames))}
        seconds = time.perf_counter() - t0
        pairs = [("orbit", "orbit_direct"), ("up", "up_direct")]
        p = [psnr(results[a].rgb[-1], results[b].rgb[-1]) for a, b in pairs]
        s = [ssim(results[a].rgb[-1], results[b].rgb[-1]) for a, b in pairs]
        imagined = np.mean([results[b].imagined[-1].mean() for _, b in pairs])
        rows.append(float(np.mean(p)))
        print(f"| {memory} | {p[0]:.2f} / {p[1]:.2f} dB | {np.mean(p):.2f} dB | {np.mean(s):.3f} | {imagined:.0%} "
              f"| {seconds:.1f} s |")
    rising = rows[0] < rows[1] < rows[2]
    print(f"consistency rises none -> GGM -> GGM+SSM: {'PASS' if rising else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
