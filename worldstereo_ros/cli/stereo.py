"""``worldstereo-ros stereo``: right views, disparity, a side-by-side video and a red-cyan anaglyph preview
from an image, a frame folder, a video or a Middlebury pair.

Inputs (``source``):

* a Middlebury folder (2014 ``im0.png`` + ``disp0.pfm`` + ``calib.txt``, 2005/2006 ``view1.png``, or
  ``<name>_left.png`` + ``<name>_disp.npz``): its left image and ground-truth
  disparity with the pair's own calibration, or, with ``--baseline-m``, a virtual rig of that baseline
  (principal points aligned; ``--strength`` does not apply);
* an RGB-D sequence folder (7-Scenes ``camera-intrinsics.txt`` or TUM ``rgb.txt``): colour, depth and K;
* an image file, with ``--depth FILE`` and ``--intrinsics``;
* a folder of images or a video file (``.mp4``, ``.avi``, ``.mov``, ``.mkv``), with ``--depth FOLDER`` (one
  depth file per frame, in name order) and ``--intrinsics``.

RGB-only input (an image, a frame folder or a video without ``--depth``): depth comes from the monocular depth
estimator the imagination node uses for RGB-only cameras
(:class:`~worldstereo_ros.generation.diffusion.depth.DepthEstimator`), loaded from ``--depth-model`` (a
local transformers depth-model folder such as Depth Anything V2: weights are never downloaded; without the
flag the command stops and names it). Scale: ``--camera-height-m``, else ``--median-depth-m``, else relative
(median 1 per frame), which the default ``--baseline-m 0`` (baseline from ``--strength``) handles: the rig is
then in the estimate's units, and ``stereo.json`` says so.

Outputs under ``--out``: ``right/000000.png`` ..., ``disparity/000000.png`` (uint16, disparity x 256, the
KITTI convention; left view), ``occlusion/000000.png`` (255 = filled), ``disparity_preview.png``,
``anaglyph.jpg`` (red-cyan, the middle frame), ``side_by_side.mp4`` (more than one frame) or
``side_by_side.png``, and ``stereo.json`` (rig and settings).
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import count, islice
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from worldstereo_ros.cli.commands import Command, add_depth_estimation_options
from worldstereo_ros.datasets.tum_rgbd import open_rgbd_sequence
from worldstereo_ros.errors import InputError, WorldStereoError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="image file, frame folder, video file, RGB-D sequence folder or Middlebury folder")
    p.add_argument("--depth", default=None, help="depth for an image (file) or for a video / image folder (folder "
                   "of uint16 mm PNG or float metre .npy files, one per frame)")
    p.add_argument("--intrinsics", default=None, help="'fx,fy,cx,cy' or a file with K (image, video, image folder)")
    p.add_argument("--baseline-m", type=float, default=0.0, help="rig baseline in metres; 0 = from --strength")
    p.add_argument("--strength", type=float, default=0.03, help="stereo deviation strength: disparity range as a "
                   "fraction of the image width, mapped to a baseline from the first frame's depth range")
    p.add_argument("--fill", default="classical", help="occlusion filler: classical, background-telea, telea or a "
                   "generator backend (render_fill, learned)")
    p.add_argument("--no-temporal", action="store_true", help="process frames independently (no flow propagation)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames; 0 = all")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate of side_by_side.mp4")
    p.add_argument("--out", default="outputs/stereo", help="output folder")
    g = p.add_argument_group("RGB-only input (no --depth)")
    add_depth_estimation_options(g)
    g.add_argument("--device", default="cpu", help="torch device of the depth model")


def _check_needs(args: argparse.Namespace, kind: str) -> np.ndarray:
    # lazy: keeps --help and the other commands fast (package doc)
    from worldstereo_ros.datasets.snapshot_files import parse_intrinsics

    if args.depth is None and not args.depth_model:
        raise InputError("depth_model", f"a {kind} without --depth needs --depth-model DIR (a local "
                                             "transformers depth-estimation model, e.g. Depth Anything V2; weights are "
                                             "not downloaded)")
    if args.intrinsics is None:
        raise InputError("intrinsics", f"a {kind} needs --intrinsics ('fx,fy,cx,cy' or a file with K)")
    return parse_intrinsics(args.intrinsics)


class _Estimated:
    """Depth of RGB-only frames from ``--depth-model`` (module doc), loaded at the first frame."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.estimator = None
        self.note = ""

    def __call__(self, rgb: np.ndarray, K: np.ndarray) -> np.ndarray:
        if self.estimator is None:
            # lazy: transformers loads only for RGB-only input
            from worldstereo_ros.generation.diffusion.depth import DepthEstimator

            try:
                self.estimator = DepthEstimator(self.args.depth_model, self.args.device)
            except Exception as err:  # BackendError, or transformers' OSError/ValueError for an unreadable folder
                raise InputError("depth_model", f"cannot load {self.args.depth_model!r}: "
                                                     f"{type(err).__name__}: {err}") from None
        est = self.estimator.estimate(rgb.astype(np.float32) / np.float32(255.0), K, self.args.camera_height_m,
                                      self.args.median_depth_m)
        self.note = est.note
        return est.depth


def _depth_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError("depth", f"{folder} is not a folder of per-frame depth files")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".npy"))
    if not files:
        raise InputError("depth", f"{folder} holds no .png or .npy depth files")
    return files


def iter_frames(args: argparse.Namespace, estimate: _Estimated | None = None
                ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rgb uint8 (H, W, 3), depth metres (H, W) float32, K (3, 3)) per frame of an RGB-D source; without
    ``--depth`` the depth is ``estimate(rgb, K)`` (relative unless a scale flag is given)."""
    # lazy: keeps --help and the other commands fast (package doc)
    from worldstereo_ros.datasets.snapshot_files import read_depth, read_rgb

    estimate = estimate or _Estimated(args)

    source = Path(args.source)
    if source.is_dir() and ((source / "camera-intrinsics.txt").is_file() or (source / "rgb.txt").is_file()):

        seq = open_rgbd_sequence(source)
        for index in seq.indices:
            frame = seq.read(index)
            yield frame.rgb, frame.depth, frame.K
        return
    if source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
        K = _check_needs(args, "single image")
        rgb = read_rgb(source)
        yield rgb, read_depth(args.depth) if args.depth is not None else estimate(rgb, K), K
        return
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        K = _check_needs(args, "video")
        depths = _depth_files(Path(args.depth)) if args.depth is not None else None
        cap = cv2.VideoCapture(str(source))
        if not cap.isOpened():
            raise InputError("source", f"{source}: OpenCV cannot open this video")
        try:
            for i in range(len(depths)) if depths is not None else count():
                ok, bgr = cap.read()
                if not ok:
                    return
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yield rgb, read_depth(depths[i]) if depths is not None else estimate(rgb, K), K
        finally:
            cap.release()
        return
    if source.is_dir():
        K = _check_needs(args, "frame folder")
        images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise InputError("source", f"{source} holds no images")
        if args.depth is None:
            for image in images:
                rgb = read_rgb(image)
                yield rgb, estimate(rgb, K), K
            return
        depths = _depth_files(Path(args.depth))
        if len(images) != len(depths):
            raise InputError("depth", f"{len(depths)} depth files for {len(images)} images in {source}")
        for image, depth in zip(images, depths):
            yield read_rgb(image), read_depth(depth), K
        return
    raise InputError("source", f"{source}: expected an image, a video ({', '.join(VIDEO_SUFFIXES)}), or a folder")


def _is_middlebury(source: Path) -> bool:
    """A folder in one of the Middlebury layouts of :mod:`~worldstereo_ros.datasets.middlebury`."""
    return source.is_dir() and ((source / "im0.png").is_file() or (source / "view1.png").is_file()
                                or (any(source.glob("*_disp.npz")) and any(source.glob("*_left.png"))))


def run(args: argparse.Namespace) -> int:
    """Run the command (module doc); 0 on success, 2 on bad input (message on stderr)."""
    try:
        return _run(args)
    except WorldStereoError as err:
        print(f"worldstereo-ros stereo: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    # lazy: keeps --help and the other commands fast (package doc)
    from worldstereo_ros.io.images import write_mask_png, write_rgb_png
    from worldstereo_ros.io.video import write_video
    from worldstereo_ros.stereo.preview import anaglyph, disparity_colour, disparity_png16, side_by_side

    if args.max_frames < 0:
        raise InputError("max_frames", f"expected >= 0, got {args.max_frames}")
    out = Path(args.out)
    for sub in ("right", "disparity", "occlusion"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    sbs, lefts, rights, info = [], [], [], {}
    source = Path(args.source)
    estimate = _Estimated(args)
    views = _views(args, source, estimate)
    for i, (left, view, rig) in enumerate(islice(views, args.max_frames) if args.max_frames else views):
        write_rgb_png(out / "right" / f"{i:06d}.png", view.right)
        cv2.imwrite(str(out / "disparity" / f"{i:06d}.png"), disparity_png16(view.left_disparity))
        write_mask_png(out / "occlusion" / f"{i:06d}.png", view.occlusion)
        sbs.append(side_by_side(left, view.right))
        lefts.append(left)
        rights.append(view.right)
        if i == 0:
            write_rgb_png(out / "disparity_preview.png", disparity_colour(view.left_disparity))
            info = dict(source=str(source), baseline_m=rig.baseline_m, fx=rig.fx, doffs_px=rig.doffs_px,
                        fill=args.fill, temporal=not args.no_temporal, P_right=rig.P_right.tolist())
        print(f"frame {i}: {view.occlusion.mean():.1%} occluded", flush=True)
    if not sbs:
        raise InputError("source", f"{source}: no frames")
    mid = len(lefts) // 2
    cv2.imwrite(str(out / "anaglyph.jpg"), cv2.cvtColor(anaglyph(lefts[mid], rights[mid]), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 90])
    if len(sbs) > 1:
        write_video(out / "side_by_side.mp4", np.stack(sbs), fps=args.fps)
    else:
        write_rgb_png(out / "side_by_side.png", sbs[0])
    info["frames"] = len(sbs)
    if estimate.estimator is not None:
        info["depth"] = f"estimated by {args.depth_model}: {estimate.note}"
    (out / "stereo.json").write_text(json.dumps(info, indent=1))
    print(f"{len(sbs)} frame(s), baseline {info['baseline_m'] * 1000:.1f} mm -> {out}")
    return 0


def _views(args: argparse.Namespace, source: Path, estimate: _Estimated):
    """(left uint8, StereoView, StereoRig) per frame."""
    # lazy: keeps --help and the other commands fast (package doc)
    from worldstereo_ros.geometry.stereo_rig import StereoRig
    from worldstereo_ros.stereo.fill import create_filler
    from worldstereo_ros.stereo.processor import StereoProcessor, StereoSettings
    from worldstereo_ros.stereo.synthesis import synthesize_right

    if _is_middlebury(source):
        # lazy: keeps --help and the other commands fast (package doc)
        from worldstereo_ros.datasets.middlebury import read_middlebury

        pair = read_middlebury(source)
        rig, disparity = StereoRig(pair.K, pair.baseline_m, pair.doffs_px), pair.disparity
        if args.baseline_m > 0:  # a virtual rig with aligned principal points: d' = (d + doffs) * B' / B
            rig = StereoRig(pair.K, args.baseline_m)
            disparity = (pair.disparity + np.float32(pair.doffs_px)) * np.float32(args.baseline_m / pair.baseline_m)
        filler = create_filler(args.fill, rig.K_right, rig.fx * rig.baseline_m, rig.doffs_px)
        yield pair.left, synthesize_right(pair.left, disparity, filler=filler), rig
        return
    proc = StereoProcessor(StereoSettings(baseline_m=args.baseline_m, strength=args.strength, fill=args.fill,
                                         temporal=not args.no_temporal))
    for rgb, depth, K in iter_frames(args, estimate):
        frame = proc.process(rgb, depth, K)
        yield rgb, frame.view, frame.rig


COMMANDS: dict[str, Command] = {
    "stereo": Command("a right eye, disparity, side-by-side video and red-cyan anaglyph from an RGB-D image, frame "
                      "folder, video or Middlebury pair", add_parser, run),
}
