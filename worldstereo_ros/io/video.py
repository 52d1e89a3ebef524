"""MP4 videos of imagined frames: H.264 through imageio-ffmpeg, else OpenCV's ``mp4v`` writer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from worldstereo_ros.errors import InputError
from worldstereo_ros.io.images import to_uint8


def write_video(path: str | Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    """Write frames (N, H, W, 3) (float in [0, 1] or uint8, RGB) as an MP4 file.

    H.264 with yuv420p needs even sizes: odd widths/heights are padded by one black pixel. Returns the path.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[0] < 1:
        raise InputError("frames", f"expected shape (N, H, W, 3) with N >= 1, got {frames.shape}")
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise InputError("fps", f"expected a float > 0, got {fps!r}")
    frames = to_uint8(frames)
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write_ffmpeg(path, frames, fps)
    except (ImportError, OSError, RuntimeError):
        _write_opencv(path, frames, fps)
    return path


def _write_ffmpeg(path: Path, frames: np.ndarray, fps: float) -> None:
    import imageio_ffmpeg  # optional dependency: without it (or its ffmpeg binary) OpenCV writes mp4v

    h, w = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=1, quality=7, ffmpeg_log_level="error",
                                         output_params=["-preset", "veryfast"])
    writer.send(None)
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


def _write_opencv(path: Path, frames: np.ndarray, fps: float) -> None:
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise InputError("path", f"neither imageio-ffmpeg nor OpenCV could open a video writer for {path}")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
