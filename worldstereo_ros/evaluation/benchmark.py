"""The benchmark suite behind ``worldstereo-ros bench``: geometry, camera accuracy, cross-path consistency,
image fidelity and speed of every generator backend on real RGB-D data (and one real stereo pair).

Sections (each a list of flat rows, so the report can print and plot them and the JSON stays plain):

* ``geometry``: the ground-truth frames s, s+step, ..., s+span are TSDF-fused into a reference
  (:func:`~worldstereo_ros.evaluation.reconstruction.fuse_reference`); the pipeline, started from frame s
  alone, imagines the views at the other frames' ground-truth poses and its global cache is scored against
  the reference (accuracy, completeness, F1 at 2/5/10 cm, Chamfer). Frame s's own points are the floor.
* ``camera``: the camera path is estimated from the generated frames alone
  (:func:`~worldstereo_ros.evaluation.camera_accuracy.estimate_path`) and compared with the commanded path
  (RotErr, TransErr, ATE); the same frames against the path run backwards show that a generator ignoring its
  path would be caught, and the real frames give the estimator's own error.
  The plain cache render (frame s's points drawn at the commanded poses, no generator) is the row to
  beat; the section is informative only for backends whose frames are not renders of the cache
  (:func:`frames_are_cache_renders`): for those, exact depth at exactly the commanded pose makes it
  unable to fail.
* ``consistency``: :mod:`~worldstereo_ros.evaluation.consistency` for no memory / GGM / GGM+SSM: both
  routes' views against the truth (real check frames the runs never saw; the procedural room's true
  render) beside route-vs-route agreement, and the z-buffer + Telea level.
* ``fill``: the forward-backward fill protocol (:mod:`~worldstereo_ros.evaluation.fill_protocol`) for Telea,
  every registered backend (and, for backends that read references, the same without the partner
  reference), on seeded pairs of the data and of the procedural room.
* ``fidelity``: views at ground-truth poses vs the real frames, with the one-pixel z-buffer + Telea
  baseline side by side (:mod:`~worldstereo_ros.evaluation.view_fidelity`): PSNR, SSIM, sharpness.
* ``stereo``: the right view of the Middlebury pair synthesised from the left image and its ground-truth
  depth, against the real right image, with the same baseline.
* ``speed``: a demo-sized run (procedural snapshot, 4 trajectories) per backend: per-stage seconds, frames
  per second and peak resident memory.

Every backend is deterministic for a seed, so two runs give the same numbers except in ``speed`` (and the
``seconds`` columns). Across machines, the thread counts of torch, OpenCV and BLAS change the order of
floating-point sums (and OpenCV's parallel loops), so the bench fixes them (:data:`BENCH_THREADS`,
:func:`fixed_threads`) and records the library versions in ``config["environment"]``.

Tuning discipline: ``frames`` restricts every start, target, check frame and pair to one range of the
sequence. The reported numbers come from 7-Scenes frames 200-299 (the shared data's report split); defaults
are tuned on 0-199 and 300-599 only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict

from worldstereo_ros.datasets.tum_rgbd import open_rgbd_sequence
from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation.bench_config import (
    REPORT_FRAMES,
    SECTIONS,
    THRESHOLDS_M,
    BenchConfig,
    BenchResults,
    parse_frames,
    resolve_starts,
    without_timings,
)
from worldstereo_ros.evaluation.bench_environment import BENCH_THREADS, data_fingerprint, environment, fixed_threads
from worldstereo_ros.evaluation.bench_sections import (
    consistency,
    fidelity,
    fill,
    geometry_and_camera,
    speed,
    stereo,
)
from worldstereo_ros.generation.base import available_backends


def run_benchmark(config: BenchConfig, sections: tuple[str, ...] = SECTIONS,
                  progress: Callable[[str], None] | None = None) -> BenchResults:
    """Measure the ``sections`` of ``config`` (module doc); ``progress`` gets a line before each step."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise InputError("sections", f"unknown {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    unknown = [b for b in config.backends if b not in available_backends()]
    if unknown or not config.backends:
        raise InputError("backends", f"unknown {unknown or 'none given'}; valid: {', '.join(available_backends())}")
    say = progress or (lambda _: None)
    folder = open_rgbd_sequence(config.data)
    starts = resolve_starts(config, folder.indices)
    cfg = asdict(config)
    cfg.update(data=str(config.data), middlebury=None if config.middlebury is None else str(config.middlebury),
               starts=starts, environment=dict(environment(), data_sha256=data_fingerprint(config.data)))
    settings = config.pipeline()
    results = BenchResults(config=cfg)
    t0 = time.perf_counter()
    geometry_starts = starts[:config.geometry_starts]
    with fixed_threads():
        if "geometry" in sections or "camera" in sections:
            for start in geometry_starts:
                say(f"geometry and camera accuracy from frame {start}")
                geometry_and_camera(folder, start, config.span, config.step, config.backends, settings, results,
                                    config.depth_max_m, config.frames)
        if "consistency" in sections:
            consistency(folder, geometry_starts, config, results, say)
        if "fill" in sections:
            fill(folder, config, results, say)
        if "fidelity" in sections:
            say(f"view fidelity from frames {starts}")
            fidelity(folder, starts, config.offsets, config.backends, settings, results, config.frames)
        if "stereo" in sections and config.middlebury is not None:
            say(f"stereo view synthesis on {config.middlebury}")
            stereo(config.middlebury, config.backends, settings, results, config.middlebury_calibration)
        if "speed" in sections:
            say("speed")
            speed(config.backends, config.speed_frames, config.speed_size, settings, results)
    results.seconds = time.perf_counter() - t0
    return results


#: The bench's public names (the config, results and environment helpers live in their own modules; importing
#: them from here keeps working).
__all__ = ["BENCH_THREADS", "REPORT_FRAMES", "SECTIONS", "THRESHOLDS_M", "BenchConfig", "BenchResults",
           "fixed_threads", "parse_frames", "resolve_starts", "run_benchmark", "without_timings"]
