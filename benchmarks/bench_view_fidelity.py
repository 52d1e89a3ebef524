"""View fidelity on 7-Scenes redkitchen: our pipeline vs the one-pixel z-buffer + Telea baseline (issues 4, 11).

For each start frame s, both methods synthesise the views at the ground-truth poses of s + offset from frame
s alone; PSNR / SSIM (full frame, observed pixels, imagined pixels) and the sharpness ratio on imagined
pixels are printed per offset, then the summary against the targets: mean full-frame PSNR gain >= 1.5 dB
and a sharpness ratio not below the baseline's, from every start frame. Exit status 1 when a target fails.
Targets stay inside ``--frames`` (default 200-299, the data's report split: nothing was tuned on it).

    .venv/bin/python benchmarks/bench_view_fidelity.py [--starts 200 240] [--offsets 5 10 20 40 60]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worldstereo_ros.datasets.rgbd_folder import RgbdFolder  # noqa: E402
from worldstereo_ros.evaluation.benchmark import fixed_threads, parse_frames  # noqa: E402
from worldstereo_ros.evaluation.view_fidelity import evaluate_start  # noqa: E402
from worldstereo_ros.pipeline import PipelineConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "7scenes-redkitchen"))
    parser.add_argument("--starts", type=int, nargs="+", default=[200, 240])
    parser.add_argument("--frames", default="200-299", help="FIRST-LAST range the targets stay in, or 'all'")
    parser.add_argument("--offsets", type=int, nargs="+", default=[5, 10, 20, 40, 60])
    parser.add_argument("--memory", default="ggm+ssm", choices=("none", "ggm", "ggm+ssm"))
    parser.add_argument("--backend", default="render_fill", help="generator backend of our pipeline")
    parser.add_argument("--out", default=str(REPO / "outputs" / "bench"))
    args = parser.parse_args(argv)
    if not (Path(args.data) / "camera-intrinsics.txt").is_file():
        print(f"no 7-Scenes folder at {args.data}: nothing to measure (pass --data)", file=sys.stderr)
        return 2
    folder = RgbdFolder(args.data)
    frames = parse_frames(args.frames)
    if frames is not None and not all(frames[0] <= s <= frames[1] for s in args.starts):
        print(f"error: starts {args.starts} outside --frames {args.frames}", file=sys.stderr)
        return 2
    config = PipelineConfig(backend=args.backend, memory=args.memory)
    lines = ["| start | offset | holes | PSNR full base / ours | PSNR observed base / ours | PSNR imagined base / ours "
             "| SSIM full base / ours | SSIM imagined base / ours | sharpness imagined base / ours |",
             "|---|---|---|---|---|---|---|---|---|"]
    summary = ["| start | mean PSNR baseline | mean PSNR ours | gain (>= 1.5 dB) | sharpness base / ours (ours >= base) "
               "| ours time | result |", "|---|---|---|---|---|---|---|"]
    results, all_pass = [], True
    for s in args.starts:
        offsets = [o for o in args.offsets if frames is None or s + o <= frames[1]]
        with fixed_threads():
            r = evaluate_start(folder, s, offsets, config, keep_images=(s == args.starts[0]))
        results.append(r)
        for o, b, u, hole in zip(r.offsets, r.baseline, r.ours, r.hole_fraction):
            lines.append(f"| {s} | {o} | {hole:.0%} | {b.psnr_full:.2f} / {u.psnr_full:.2f} | "
                         f"{b.psnr_observed:.2f} / {u.psnr_observed:.2f} | {b.psnr_imagined:.2f} / {u.psnr_imagined:.2f} | "
                         f"{b.ssim_full:.3f} / {u.ssim_full:.3f} | {b.ssim_imagined:.3f} / {u.ssim_imagined:.3f} | "
                         f"{b.sharpness_imagined:.2f} / {u.sharpness_imagined:.2f} |")
        pb = float(np.mean([v.psnr_full for v in r.baseline]))
        pu = float(np.mean([v.psnr_full for v in r.ours]))
        sb = float(np.nanmean([v.sharpness_imagined for v in r.baseline]))
        su = float(np.nanmean([v.sharpness_imagined for v in r.ours]))
        ok = pu - pb >= 1.5 and su >= sb
        all_pass &= ok
        summary.append(f"| {s} | {pb:.2f} dB | {pu:.2f} dB | {pu - pb:+.2f} dB | {sb:.2f} / {su:.2f} | "
                       f"{r.ours_seconds:.1f} s | {'PASS' if ok else 'FAIL'} |")
    text = "\n".join(lines + [""] + summary)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "view_fidelity.md").write_text(text + "\n")
    (out / "view_fidelity.json").write_text(json.dumps([{k: v for k, v in asdict(r).items() if k != "images"}
                                                        for r in results], indent=1))
    first = results[0]
    rows = [np.concatenate([real, base, ours], axis=1) for real, base, ours in first.images]
    sheet = (np.concatenate(rows, axis=0) * 255).clip(0, 255).astype(np.uint8)
    sheet = cv2.resize(sheet, (sheet.shape[1] // 2, sheet.shape[0] // 2), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out / "view_fidelity.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"\nrows: offsets {first.offsets} from frame {first.start}; columns: real | baseline | ours -> "
          f"{out / 'view_fidelity.png'}")
    print("ALL PASS" if all_pass else "SOME TARGETS FAILED")
    return 0 if all_pass else 1


if __name__ == "__main__":
    raise SystemExit(main())
