"""Peak memory of one trajectory of N views, chunked (``chunk_frames``) or not (issue 14, item 2).

Each configuration runs in its own process (``ru_maxrss`` is a process-wide peak): render_fill on a
procedural 320 x 240 snapshot, a 1 m straight trajectory, frames only streamed through ``on_frame``
(``keep_frames`` False when chunked). Prints one line per configuration: peak RSS, its growth over the
set-up and the run time.

    .venv/bin/python benchmarks/bench_chunk_memory.py            # N = 50, 200 x chunk_frames = 0, 25
    .venv/bin/python benchmarks/bench_chunk_memory.py --one 200 25
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time


def one(n: int, chunk: int) -> str:
    import numpy as np
    import torch

    from worldstereo_ros.datasets.procedural_scene import procedural_snapshot
    from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig, Trajectory

    torch.set_num_threads(1)
    snap = procedural_snapshot(320, 240)
    T = np.tile(snap.T_world_cam, (n, 1, 1))
    T[:, 0, 3] += np.linspace(0.0, 1.0, n)
    pipeline = ImaginationPipeline(PipelineConfig(chunk_frames=chunk, keep_frames=chunk == 0)).initialize(snap)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    pipeline.run([Trajectory("t", T)], on_frame=lambda *frame: None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return (f"N={n:4d} chunk_frames={chunk:3d}: peak RSS {peak / 1024:6.0f} MiB "
            f"(+{(peak - base) / 1024:5.0f} MiB over the set-up), {time.perf_counter() - t0:5.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=2, type=int, metavar=("N", "CHUNK"), help="run one configuration here")
    args = parser.parse_args()
    if args.one:
        print(one(*args.one))
        return
    for n in (50, 200):
        for chunk in (0, 25):
            out = subprocess.run([sys.executable, __file__, "--one", str(n), str(chunk)], capture_output=True,
                                 text=True, check=True)
            print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
