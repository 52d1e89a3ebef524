"""What the memories buy, scored against the truth (issue 11): no memory / the global cache (GGM) / GGM + the
keyframe references (SSM); the method is :mod:`worldstereo_ros.evaluation.consistency`.

Two routes reach each check pose; both routes' views there are scored against the truth (procedural room:
the true render; real data: real ground-truth frames the runs never saw), beside the route-vs-route
agreement. Target: accuracy against the truth rises none < GGM < GGM+SSM. Exit status 1 when it does not.

    .venv/bin/python benchmarks/bench_memory_ablation.py                      # procedural room, 640x480
    .venv/bin/python benchmarks/bench_memory_ablation.py --rgbd-folder ../shared/data/7scenes-redkitchen \\
        --frame 200 --checks 225 250
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worldstereo_ros.evaluation.benchmark import fixed_threads  # noqa: E402
from worldstereo_ros.evaluation.consistency import (  # noqa: E402
    accuracy_rises,
    agreement_rises,
    consistency_rows,
    room_checks,
    sequence_checks,
)
from worldstereo_ros.pipeline import PipelineConfig  # noqa: E402
from worldstereo_ros.snapshot import Snapshot  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rgbd-folder", default=None, help="7-Scenes-style folder or TUM sequence (default: the "
                                                            "procedural room)")
    parser.add_argument("--frame", type=int, default=200, help="start frame in --rgbd-folder")
    parser.add_argument("--checks", type=int, nargs="+", default=[225, 250],
                        help="real check frames in --rgbd-folder (never seen by the runs)")
    parser.add_argument("--frames", type=int, default=25, help="poses per route")
    parser.add_argument("--backend", default="render_fill")
    args = parser.parse_args(argv)
    with fixed_threads():
        if args.rgbd_folder:
            from worldstereo_ros.datasets.tum_rgbd import open_rgbd_sequence

            sequence = open_rgbd_sequence(args.rgbd_folder)
            f = sequence.read(args.frame)
            snapshot = Snapshot.create(f.rgb, f.depth, f.K, f.T_world_cam)
            checks = sequence_checks(sequence, args.frame, args.checks, args.frames)
            source = f"{args.rgbd_folder} from frame {args.frame}"
        else:
            from worldstereo_ros.datasets.procedural_scene import build_scene, procedural_snapshot

            snapshot = procedural_snapshot(640, 480)
            checks = room_checks(snapshot, build_scene(0, 0.01), args.frames)
            source = "the procedural room"
        rows = consistency_rows(snapshot, checks, PipelineConfig(backend=args.backend))
    h, w = snapshot.depth.shape
    print(f"| memory ({source}; {args.backend}; routes of {args.frames} views, {w}x{h}) | check poses "
          "| route A vs truth | route B vs truth | accuracy vs truth | agreement A-B | imagined |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        agreement = "n/a" if r.mean_agreement_db is None else f"{r.mean_agreement_db:.2f} dB"
        print(f"| {r.memory} | {', '.join(r.checks)} | {' / '.join(f'{v:.2f}' for v in r.psnr_a_db)} dB "
              f"| {' / '.join(f'{v:.2f}' for v in r.psnr_b_db)} dB | {r.accuracy_db:.2f} dB | {agreement} "
              f"| {r.imagined_fraction:.0%} |")
    ok = accuracy_rises(rows)
    print(f"accuracy against the truth rises none -> GGM -> GGM+SSM: {'PASS' if ok else 'FAIL'} "
          f"(agreement {'rises' if agreement_rises(rows) else 'does not rise'}; agreement alone is not the target)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
