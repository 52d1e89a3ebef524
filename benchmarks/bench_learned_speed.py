"""Generator-only speed of ``learned`` beside ``render_fill`` on the same 640 x 480 requests.

``python benchmarks/bench_learned_speed.py --sequence ../shared/data/7scenes-redkitchen``

Each request is one trajectory of ``--views`` frames: forward–backward fill problems of the tuning split
(real hole shapes, 5-60 frames apart) with their reference keyframe. Both backends run on the same requests,
alternating, with the same torch thread count; the table gives views per second and the ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from worldstereo_ros.evaluation.learned_fill import request_for
from worldstereo_ros.generation.base import GenerationRequest, create_backend
from worldstereo_ros.generation.learned.conditioning import PRIORS
from worldstereo_ros.generation.learned.data import TRAIN_FRAMES, rgbd_source


def _stack(requests: list[GenerationRequest]) -> GenerationRequest:
    first = requests[0]
    return GenerationRequest(K=np.concatenate([r.K for r in requests]),
                             T_world_cam=np.concatenate([r.T_world_cam for r in requests]), height=first.height,
                             width=first.width, cond_rgb=np.concatenate([r.cond_rgb for r in requests]),
                             cond_depth=np.concatenate([r.cond_depth for r in requests]),
                             cond_mask=np.concatenate([r.cond_mask for r in requests]),
                             cond_index=np.concatenate([r.cond_index for r in requests]),
                             references=[refs for r in requests for refs in r.references], source=first.source)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequence", type=Path, required=True)
    p.add_argument("--views", type=int, default=10, help="frames per request")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per backend")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--prior", choices=PRIORS, default="telea",
                   help="the learned backend's prior channel (telea: radius 3, as trained; telea_r2: radius 2; "
                   "fast: half-resolution Telea)")
    p.add_argument("--without-prefetch", action="store_true",
                   help="also time the learned backend with prefetch=False (its condition built on the same thread)")
    p.add_argument("--cache-dir", type=Path, default=Path("outputs/eval-examples"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    source = rgbd_source(args.sequence, TRAIN_FRAMES, args.views, 2000, cache_dir=args.cache_dir)
    request = _stack([request_for(source[i], with_reference=True) for i in range(len(source))])
    backends = {"render_fill": create_backend("render_fill"),
                "learned": create_backend("learned", model_path=args.model, prior=args.prior)}
    if args.without_prefetch:
        backends["learned, no prefetch"] = create_backend("learned", model_path=args.model, prior=args.prior,
                                                          prefetch=False)
    for backend in backends.values():  # warm-up (allocations, one-time kernels)
        backend.generate(_stack([request_for(source[0], with_reference=True)]))
    seconds = {name: [] for name in backends}
    stages: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, backend in backends.items():
            t0 = time.perf_counter()
            frames = backend.generate(request)
            seconds[name].append(time.perf_counter() - t0)
            if name == "learned" and seconds[name][-1] == min(seconds[name]):
                stages = frames.timings_s
    holes = float(np.mean(~request.cond_mask))
    print(f"{request.num_frames} views of {request.width}x{request.height} per run (mean hole fraction {holes:.3f}), "
          f"{args.repeats} runs each, torch threads {args.threads}")
    print("| backend | views/s (best run) | views/s (mean) |")
    print("|---|---|---|")
    rate = {}
    for name, s in seconds.items():
        rate[name] = request.num_frames / min(s)
        print(f"| {name} | {rate[name]:.2f} | {request.num_frames / float(np.mean(s)):.2f} |")
    print(f"learned / render_fill speed ratio (best runs): {rate['learned'] / rate['render_fill']:.2f}")
    if args.without_prefetch:
        print(f"learned with / without prefetch (best runs): {rate['learned'] / rate['learned, no prefetch']:.2f}")
    print("learned stages (best run, ms per view): " + ", ".join(f"{k} {1000 * v / request.num_frames:.0f}"
                                                                 for k, v in stages.items()))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
