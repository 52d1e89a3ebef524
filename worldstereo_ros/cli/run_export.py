"""The run-and-export service behind ``imagine`` and ``demo``: run the pipeline on a snapshot with the parsed
options, write the chosen exports (``io.export``), a ``summary.json`` and print where everything went."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from worldstereo_ros.cli.diffusion import backend_options


def trajectories_from_args(args: argparse.Namespace, pipeline) -> list:
    """Trajectory objects from ``--trajectories`` or ``--poses-file``."""
    # lazy: keeps --help and the other commands fast (package doc)
    from worldstereo_ros.pipeline import Trajectory

    if args.poses_file:
        # lazy: keeps --help and the other commands fast (package doc)
        from worldstereo_ros.geometry.trajectories import resample_path
        from worldstereo_ros.io.poses import read_poses_file

        out = []
        for track in read_poses_file(args.poses_file):
            T, stamps = track.T_world_cam, track.timestamps_s
            if args.frames is not None and args.frames != T.shape[0]:
                # resampled at constant arc length: the file's times no longer belong to the poses
                T, stamps = resample_path(T, args.frames), None
            out.append(Trajectory(track.id, T, track.K if args.frames is None else None, stamps))
        return out
    # lazy: keeps --help and the other commands fast (package doc)
    from worldstereo_ros.geometry.trajectories import DEFAULT_TRAJECTORIES, build_trajectory, parse_trajectory_spec

    frames = args.frames or 25
    specs = parse_trajectory_spec(args.trajectories or DEFAULT_TRAJECTORIES)
    out, seen = [], {}
    for spec in specs:
        name = str(spec.name)
        seen[name] = seen.get(name, 0) + 1
        tid = name if seen[name] == 1 else f"{name}_{seen[name]}"
        T = build_trajectory(spec, pipeline.snapshot.T_world_cam, frames, pipeline.depth_median_m)
        T = T.numpy() if hasattr(T, "numpy") else T
        out.append(Trajectory(tid, T))
    return out


def imagine_and_export(snapshot, args: argparse.Namespace, source: str) -> int:
    """Run the pipeline on ``snapshot`` with the options in ``args``, write the outputs, print where they are."""

    # lazy: keeps --help and the other commands fast (package doc)
    import numpy as np

    from worldstereo_ros.io.export import EXPORTS, export_run
    from worldstereo_ros.pipeline import STAGES, ImaginationPipeline, PipelineConfig

    skip = [s.strip() for s in args.skip.split(",") if s.strip()]
    bad = [s for s in skip if s not in EXPORTS]
    if bad:
        print(f"error: --skip: unknown {bad}; valid: {', '.join(EXPORTS)}", file=sys.stderr)
        return 2
    width, height = args.size if args.size else (None, None)
    config = PipelineConfig(backend=args.backend, memory=args.memory, seed=args.seed, voxel_size_m=args.voxel_size_m,
                            width=width, height=height, device=args.device,
                            backend_options=backend_options(args))
    t0 = time.perf_counter()
    pipeline = ImaginationPipeline(config).initialize(snapshot)
    t_init = time.perf_counter() - t0
    trajectories = trajectories_from_args(args, pipeline)
    total = sum(len(t) for t in trajectories)
    bar = None
    if not args.no_progress:
        # lazy: keeps --help and the other commands fast (package doc)
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc="imagining", file=sys.stderr, dynamic_ncols=True)

    def progress(p) -> None:
        if bar is None:
            return
        if p.stage == "generate" and p.frame_index > 0:
            bar.update(1)
        bar.set_postfix_str(f"{p.trajectory_id} ({p.trajectory_index + 1}/{p.trajectory_count}) {p.stage}",
                            refresh=False)

    t0 = time.perf_counter()
    try:
        results = pipeline.run(trajectories, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    t_run = time.perf_counter() - t0
    out = Path(args.out)
    exports = [e for e in EXPORTS if e not in skip]
    t_write = time.perf_counter()
    paths, write_s = export_run(out, snapshot, pipeline.cache, results, exports, fps=args.fps,
                                mesh_voxel_m=args.mesh_voxel_m, colmap_max_points=args.colmap_max_points)
    t_write = time.perf_counter() - t_write
    stages = {s: sum(r.timings_s.get(s, 0.0) for r in results) for s in STAGES[:-1]}
    summary = {
        "source": source,
        "snapshot": {"width": snapshot.width, "height": snapshot.height, "panorama": snapshot.is_panorama,
                     "K": None if snapshot.K is None else snapshot.K.tolist(),
                     "T_world_cam": snapshot.T_world_cam.tolist(), "depth_median_m": pipeline.depth_median_m},
        "config": config.to_dict(),
        "trajectories": [{"id": r.id, "frames": r.num_frames, "width": r.width, "height": r.height,
                          "imagined_fraction": float(np.mean(r.imagined)), "cache_points_after": r.cache_points_after,
                          "timings_s": r.timings_s} for r in results],
        "cache_points": len(pipeline.cache),
        "bank_keyframes": len(pipeline.bank),
        "timings_s": {"initialize": t_init, "imagine": t_run, "imagine_stages": stages,
                      "pipeline_total": t_init + t_run, "write": write_s, "write_total": t_write,
                      "end_to_end": t_init + t_run + t_write},
        "outputs": {name: [str(p.relative_to(out)) for p in ps] for name, ps in paths.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))

    n_frames = sum(r.num_frames for r in results)
    print(f"imagined {len(results)} trajectories x {results[0].num_frames} frames "
          f"({results[0].width}x{results[0].height}) from {source} in {t_init + t_run:.2f} s "
          f"(initialize {t_init:.2f} s, {n_frames / max(t_run, 1e-9):.1f} frames/s); "
          f"cache: {len(pipeline.cache)} points; files written in {t_write:.2f} s; end to end "
          f"{t_init + t_run + t_write:.2f} s")
    print("  " + ", ".join(f"{s} {v:.2f} s" for s, v in stages.items()))
    where = {
        "frames": out / "frames", "videos": out / "videos", "contact_sheet": out / "contact_sheet.png",
        "cache_ply": out / "cache.ply", "poses": out / "poses.json", "colmap": out / "colmap",
        "mesh": out / "mesh.ply",
    }
    for name in exports:
        print(f"  {name:<14} {where[name]}")
    print(f"  {'summary':<14} {out / 'summary.json'}")
    return 0
