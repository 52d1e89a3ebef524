"""Fill-protocol scores of the learned backend beside Telea and ``render_fill`` on the same holes.

Each example is a forward–backward fill problem (:mod:`.data`): the frame with its disocclusion holes is
handed to every method as a :class:`~worldstereo_ros.generation.base.GenerationRequest` (cache render = the
frame outside the holes, depth 0 where the sensor had none), and the fill is scored against the frame itself
on the hole pixels: PSNR (dB), SSIM and the sharpness ratio (gradient energy of the fill / of the truth),
with :mod:`worldstereo_ros.evaluation.image_metrics`. Imagined depth is scored too (absolute relative
error on the hole pixels with known depth, and the fraction within 5 %), and the confident part of it.

With ``with_reference`` the example's reference keyframe (already drawn in the target camera) is passed to
the backends as a retrieved reference; Telea never sees it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from worldstereo_ros.evaluation.image_metrics import psnr, sharpness_ratio, ssim
from worldstereo_ros.generation.base import GenerationRequest, Generator, Reference, create_backend
from worldstereo_ros.generation.learned.data import REPORT_FRAMES, TRAIN_FRAMES, FillExample, rgbd_source
from worldstereo_ros.geometry.inpaint import telea_inpaint
from worldstereo_ros.io.images import contact_sheet, write_rgb_png
from worldstereo_ros.snapshot import Snapshot


@dataclass
class MethodScores:
    """Per-example scores of one method (lists in example order)."""

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    depth_absrel: list[float] = field(default_factory=list)
    depth_within5: list[float] = field(default_factory=list)
    confident_fraction: list[float] = field(default_factory=list)
    confident_within5: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def mean(self, name: str) -> float:
        values = [v for v in getattr(self, name) if np.isfinite(v)]
        return float(np.mean(values)) if values else float("nan")


def request_for(example: FillExample, with_reference: bool = False) -> GenerationRequest:
    """The fill problem as a one-frame GenerationRequest (module doc)."""
    h, w = example.hole.shape
    rgb = example.rgb.astype(np.float32) / 255.0
    observed = ~example.hole
    cond_depth = np.where(observed, example.depth, 0.0).astype(np.float32)
    T = np.eye(4)
    references: list[Reference] = []
    if with_reference and example.ref_valid.any():
        K = example.K
        v, u = np.mgrid[0:h, 0:w]
        z = np.where(example.ref_valid, example.ref_depth, 0.0).astype(np.float32)
        pointmap = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1).astype(np.float32)
        references.append(Reference(rgb=example.ref_rgb.astype(np.float32) / 255.0, depth=z, pointmap=pointmap,
                                    K=K.copy(), T_world_cam=T.copy(), score=1.0, keyframe_id=0))
    source = Snapshot.create(np.where(observed[..., None], rgb, 0.0).astype(np.float32), cond_depth, example.K, T,
                             frame_id="eval")
    return GenerationRequest(K=example.K[None].copy(), T_world_cam=T[None].copy(), height=h, width=w,
                             cond_rgb=np.where(observed[..., None], rgb, 0.0)[None].astype(np.float32),
                             cond_depth=cond_depth[None], cond_mask=observed[None],
                             cond_index=np.where(observed, 0, -1)[None].astype(np.int64), references=[references],
                             source=source, trajectory_id=example.name)


def _score(scores: MethodScores, pred: np.ndarray, example: FillExample, depth: np.ndarray | None,
           confidence: np.ndarray | None) -> None:

    truth = example.rgb.astype(np.float32) / 255.0
    hole = example.hole
    scores.psnr.append(psnr(pred, truth, hole))
    scores.ssim.append(ssim(pred, truth, hole))
    scores.sharpness.append(sharpness_ratio(pred, truth, hole))
    if depth is not None:
        known = hole & (example.depth > 0) & (depth > 0)
        if known.any():
            rel = np.abs(depth[known] - example.depth[known]) / example.depth[known]
            scores.depth_absrel.append(float(rel.mean()))
            scores.depth_within5.append(float((rel < 0.05).mean()))
            if confidence is not None:
                sure = confidence[known] >= 0.5
                scores.confident_fraction.append(float(sure.mean()))
                if sure.any():
                    scores.confident_within5.append(float((rel[sure] < 0.05).mean()))


def evaluate_examples(examples: list[FillExample], backends: dict[str, Generator], with_reference: bool = False,
                      progress: bool = False, keep_images: int = 0,
                      images: dict[str, list[np.ndarray]] | None = None) -> dict[str, MethodScores]:
    """Scores of Telea and every backend on the hole pixels of ``examples`` (module doc).

    With ``keep_images`` > 0 the first that many examples' images are appended to ``images`` (a dict of
    lists keyed ``condition``, ``telea``, each backend and ``truth``; holes magenta in the condition).
    """
    results = {"telea": MethodScores(), **{name: MethodScores() for name in backends}}
    keep = images if (images is not None and keep_images > 0) else None
    iterator = examples
    if progress:

        iterator = tqdm(examples, desc="evaluate", unit="example")
    for n, ex in enumerate(iterator):
        rgb = ex.rgb.astype(np.float32) / 255.0
        kept = keep is not None and n < keep_images
        if kept:
            magenta = np.where(ex.hole[..., None], [1.0, 0.0, 1.0], rgb).astype(np.float32)
            keep.setdefault("condition", []).append(magenta)
            keep.setdefault("truth", []).append(rgb)
        t0 = time.perf_counter()
        fill = telea_inpaint(np.where(ex.hole[..., None], 0.0, rgb).astype(np.float32), ex.hole)
        results["telea"].seconds += time.perf_counter() - t0
        _score(results["telea"], fill, ex, None, None)
        if kept:
            keep.setdefault("telea", []).append(fill)
        request = request_for(ex, with_reference)
        for name, backend in backends.items():
            t0 = time.perf_counter()
            frames = backend.generate(request, generator=torch.Generator().manual_seed(0))
            results[name].seconds += time.perf_counter() - t0
            conf = None if frames.confidence is None else frames.confidence[0]
            _score(results[name], frames.rgb[0], ex, frames.depth[0], conf)
            if kept:
                keep.setdefault(name, []).append(frames.rgb[0])
    return results


def format_table(results: dict[str, MethodScores], reference: str = "telea") -> str:
    """A markdown table of the means, with PSNR differences to ``reference``."""
    lines = ["| method | hole PSNR dB | vs Telea dB | hole SSIM | sharpness | depth AbsRel | depth <5 % | "
             "confident | confident <5 % | s/view |", "|---|---|---|---|---|---|---|---|---|---|"]
    base = results[reference].mean("psnr")
    for name, s in results.items():
        n = max(1, len(s.psnr))
        lines.append(f"| {name} | {s.mean('psnr'):.2f} | {s.mean('psnr') - base:+.2f} | {s.mean('ssim'):.3f} | "
                     f"{s.mean('sharpness'):.2f} | {s.mean('depth_absrel'):.3f} | {s.mean('depth_within5'):.2f} | "
                     f"{s.mean('confident_fraction'):.2f} | {s.mean('confident_within5'):.2f} | {s.seconds / n:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m worldstereo_ros.evaluation.learned_fill``: the fill table on a tuning or report split."""


    p = argparse.ArgumentParser(description="hole-pixel PSNR/SSIM/sharpness of learned vs Telea vs render_fill "
                                            "on forward-backward fill problems")
    p.add_argument("--sequence", type=Path, required=True, help="RGB-D folder (7-Scenes layout)")
    p.add_argument("--split", choices=("tuning", "report"), default="tuning",
                   help="tuning: frames 0-199/300-599; report: frames 200-299 (measure once, at the end)")
    p.add_argument("--count", type=int, default=40, help="pairs")
    p.add_argument("--seed", type=int, default=1000, help="pair seed (training uses 0, tuning 1000)")
    p.add_argument("--model", type=Path, default=None, help="weights (default: the shipped file)")
    p.add_argument("--with-reference", action="store_true", help="pass each example's reference keyframe")
    p.add_argument("--cache-dir", type=Path, default=Path("outputs/eval-examples"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sheet", type=Path, default=None,
                   help="also write a contact sheet (condition, Telea, render_fill, learned, truth) of 5 examples")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    frames = TRAIN_FRAMES if args.split == "tuning" else REPORT_FRAMES
    source = rgbd_source(args.sequence, frames, args.count, args.seed, cache_dir=args.cache_dir)
    examples = [source[i] for i in range(len(source))]
    backends = {"render_fill": create_backend("render_fill"),
                "learned": create_backend("learned", model_path=args.model)}
    images: dict[str, list[np.ndarray]] = {}
    results = evaluate_examples(examples, backends, args.with_reference, progress=True,
                                keep_images=5 if args.sheet else 0, images=images)
    if args.sheet:

        order = ["condition", "telea", "render_fill", "learned", "truth"]
        labels = {"condition": "condition (holes magenta)", "telea": "Telea (r=3)"}
        rows = [(labels.get(k, k), np.stack(images[k])) for k in order]
        write_rgb_png(args.sheet, contact_sheet(rows, columns=5, thumb_width=256, show_indices=False))
        print(f"contact sheet: {args.sheet}")
    holes = float(np.mean([ex.hole.mean() for ex in examples]))
    print(f"{args.split} split, {len(examples)} pairs (seed {args.seed}, offsets 5-60), mean hole fraction "
          f"{holes:.3f}, references {'on' if args.with_reference else 'off'}")
    print(format_table(results))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
