"""The geometry section's cache scores for variants of the ``learned`` backend, on tuning starts (issue 12).

The bench's geometry section (``worldstereo-ros bench --sections geometry``) runs each backend with its
defaults; this script runs the same steps (TSDF reference of frames s, s+4, ..., s+100; the pipeline from
frame s alone imagines the other frames' ground-truth poses; its cache scored against the reference, the start
frame's own points as the floor) for backend options given as JSON, so the merge rule of the learned backend
can be chosen on tuning starts (7-Scenes 0-199 / 300-599) and only reported on 200-299.

    .venv/bin/python benchmarks/tune_learned_merge.py --starts 0 99 300 450 \\
        --variants '{"reference depth": {}, "network depth": {"reference_depth": false}}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worldstereo_ros.datasets.rgbd_folder import RgbdFolder  # noqa: E402
from worldstereo_ros.evaluation.bench_config import THRESHOLDS_M  # noqa: E402
from worldstereo_ros.evaluation.reconstruction import fuse_reference, reconstruction_score  # noqa: E402
from worldstereo_ros.geometry.projection import depth_to_points  # noqa: E402
from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig, Trajectory  # noqa: E402
from worldstereo_ros.snapshot import Snapshot  # noqa: E402

TUNING = ((0, 199), (300, 599))


def _row(start: int, name: str, score, seconds: float) -> str:
    f1 = " | ".join(f"{score.f1[t]:.3f}" for t in THRESHOLDS_M)
    return (f"| {start} | {name} | {100 * score.accuracy_m:.2f} cm | {100 * score.completeness_m:.2f} cm | {f1} | "
            f"{score.n_pred} | {seconds:.0f} s |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequence", type=Path, default=REPO.parent / "shared" / "data" / "7scenes-redkitchen")
    p.add_argument("--starts", type=int, nargs="+", default=[0, 99, 300, 450])
    p.add_argument("--variants", default='{"learned": {}}', help="JSON: name -> learned backend options")
    p.add_argument("--span", type=int, default=100)
    p.add_argument("--step", type=int, default=4)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    variants = json.loads(args.variants)
    folder = RgbdFolder(args.sequence)
    for start in args.starts:
        if not any(lo <= start and start + args.span <= hi for lo, hi in TUNING):
            print(f"error: start {start}: frames {start}..{start + args.span} leave the tuning ranges {TUNING}",
                  file=sys.stderr)
            return 2
    print("| start | method | accuracy | completeness | " + " | ".join(f"F1@{round(100 * t)}cm" for t in THRESHOLDS_M)
          + " | points | time |")
    print("|---|---|---|---|" + "---|" * len(THRESHOLDS_M) + "---|---|")
    for start in args.starts:
        frames = [folder.read(i) for i in range(start, start + args.span + 1, args.step)]
        reference, _ = fuse_reference(frames, depth_max_m=6.0)
        first = frames[0]
        floor = depth_to_points(torch.from_numpy(first.depth), torch.from_numpy(first.K),
                                torch.from_numpy(first.T_world_cam), drop_edges=False).xyz.numpy()
        print(_row(start, f"frame {start} only (floor)", reconstruction_score(floor, reference, THRESHOLDS_M), 0.0))
        path = np.stack([f.T_world_cam for f in frames[1:]])
        for name, options in variants.items():
            t0 = time.perf_counter()
            config = PipelineConfig(backend="learned", seed=0, backend_options=options)
            pipe = ImaginationPipeline(config).initialize(Snapshot.create(first.rgb, first.depth, first.K,
                                                                          first.T_world_cam))
            pipe.run([Trajectory("gt_path", path)])
            score = reconstruction_score(pipe.cache.xyz.cpu().numpy(), reference, THRESHOLDS_M)
            print(_row(start, name, score, time.perf_counter() - t0), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
