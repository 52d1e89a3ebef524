"""What the memories buy: cross-trajectory consistency with no memory, the global cache (GGM) and GGM + the
keyframe references (SSM) (issue 4); the method is :mod:`worldstereo_ros.evaluation.consistency`.

    .venv/bin/python benchmarks/bench_memory_ablation.py [--rgbd-folder ../shared/data/7scenes-redkitchen --frame 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worldstereo_ros.evaluation.consistency import consistency_row, rises  # noqa: E402
from worldstereo_ros.snapshot import Snapshot  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rgbd-folder", default=None, help="7-Scenes-style folder (default: the procedural room)")
    parser.add_argument("--frame", type=int, default=0)
    parser.add_argument("--frames", type=int, default=25)
    args = parser.parse_args(argv)
    if args.rgbd_folder:
        from worldstereo_ros.datasets.rgbd_folder import RgbdFolder

        f = RgbdFolder(args.rgbd_folder).read(args.frame)
        snapshot = Snapshot.create(f.rgb, f.depth, f.K, f.T_world_cam)
        source = f"{args.rgbd_folder} frame {args.frame}"
    else:
        from worldstereo_ros.datasets.procedural_scene import procedural_snapshot

        snapshot = procedural_snapshot(640, 480)
        source = "the procedural room"
    h, w = snapshot.depth.shape
    print(f"| memory ({source}; 4 x {args.frames} views, {w}x{h}) | PSNR at check poses (orbit, up) | mean PSNR "
          f"| mean SSIM | imagined at check poses | time |")
    print("|---|---|---|---|---|---|")
    rows = []
    for memory in ("none", "ggm", "ggm+ssm"):
        r = consistency_row(snapshot, memory, args.frames)
        rows.append(r)
        print(f"| {memory} | {r.psnr_db[0]:.2f} / {r.psnr_db[1]:.2f} dB | {r.mean_psnr_db:.2f} dB | {r.mean_ssim:.3f} "
              f"| {r.imagined_fraction:.0%} | {r.seconds:.1f} s |", flush=True)
    print(f"consistency rises none -> GGM -> GGM+SSM: {'PASS' if rises(rows) else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
