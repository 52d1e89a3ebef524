"""Messages in and out of the imagination node, built without rclpy (unit-tested on their own).

In: a synced (image, depth, camera_info) triple becomes a validated :class:`~worldstereo_ros.snapshot.Snapshot`;
an RGB-only pair (image, camera_info) gets its depth from a depth estimator.
Out: each imagined frame becomes a ``worldstereo_ros/ImaginedView``; pipeline progress and request outcomes
become the ``imagine`` action's feedback and result.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import PIL.Image
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from worldstereo_ros.action import Imagine
from worldstereo_ros.errors import InputError
from worldstereo_ros.msg import ImaginedView
from worldstereo_ros.pipeline import Progress
from worldstereo_ros.pipeline.types import check_trajectory_id
from worldstereo_ros.ros.conversions.camera_info import intrinsics_to_camera_info
from worldstereo_ros.ros.conversions.image import (
    depth_to_image,
    numpy_to_image,
)
from worldstereo_ros.ros.conversions.rgbd import rgbd_from_messages
from worldstereo_ros.ros.conversions.transforms import matrix_to_pose
from worldstereo_ros.ros.frame_sync import SyncedFrame
from worldstereo_ros.snapshot import Snapshot

if TYPE_CHECKING:  # the estimator module imports transformers: only a node without depth loads it
    from worldstereo_ros.generation.diffusion.depth import DepthEstimate

#: ``(rgb (H, W, 3) float32 [0, 1], K (3, 3)) -> DepthEstimate``: depth of an RGB-only camera's image.
EstimateDepth = Callable[[np.ndarray, np.ndarray], "DepthEstimate"]


def stamp_from_ns(stamp_ns: int) -> Time:
    """builtin_interfaces/Time of a stamp in integer nanoseconds (>= 0)."""
    return Time(sec=int(stamp_ns) // 10**9, nanosec=int(stamp_ns) % 10**9)


def image_pixels(image, compressed: bool) -> int:
    """width x height of an Image (its header fields) or a CompressedImage (read from the JPEG/PNG header
    alone, without decoding the pixels), so a size limit is checked before any pixel buffer is allocated.

    Raises:
        InputError (field ``image``): a compressed payload whose header names no image size.
    """
    if not compressed:
        return int(image.width) * int(image.height)
    try:
        with PIL.Image.open(io.BytesIO(bytes(image.data))) as probe:  # parses the header only
            width, height = probe.size
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as err:
        raise InputError("image", f"compressed image: no readable size in its header ({err})") from None
    return int(width) * int(height)


def snapshot_from_frame(frame: SyncedFrame, T_world_cam: np.ndarray, compressed: bool, frame_id: str,
                        estimate_depth: EstimateDepth | None = None, max_pixels: int | None = None) -> Snapshot:
    """A validated Snapshot from one synced (image, depth, camera_info) triple, or an RGB-only pair.

    Args:
        frame: the triple; ``image`` is a sensor_msgs/Image, or a CompressedImage when ``compressed``;
            ``depth`` is None for an RGB-only camera.
        T_world_cam: (4, 4) float64 pose of the image's optical frame in the fixed frame.
        frame_id: the camera's optical frame name, kept in the snapshot.
        estimate_depth: gives an RGB-only frame its depth (metres, or relative: then the snapshot's
            ``depth_is_metric`` is False); required when ``frame.depth`` is None.
        max_pixels: largest width x height of the image and of the depth image, checked before decoding;
            None = no limit.
    Raises:
        WorldStereoError (InputError / ConversionError) naming the field and the problem.
    """
    if max_pixels is not None:
        sizes = [("image", image_pixels(frame.image, compressed))]
        if frame.depth is not None:
            sizes.append(("depth", image_pixels(frame.depth, False)))
        for name, pixels in sizes:
            if pixels > max_pixels:
                raise InputError(name, f"{pixels} pixels exceed max_image_pixels = {max_pixels}")
    rgb, depth, K = rgbd_from_messages(frame.image, frame.depth, frame.camera_info, compressed)
    if depth is None:
        if estimate_depth is None:
            raise InputError("depth", "an RGB-only frame (no depth image) needs a depth estimator")
        rgb01 = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb
        est = estimate_depth(rgb01, K)
        return Snapshot.create(rgb, est.depth, K, T_world_cam, stamp_ns=frame.stamp_ns, frame_id=frame_id,
                               depth_is_metric=est.is_metric)
    return Snapshot.create(rgb, depth, K, T_world_cam, stamp_ns=frame.stamp_ns, frame_id=frame_id)


def imagined_view(path_id: str, index: int, count: int, rgb: np.ndarray, depth: np.ndarray, imagined: np.ndarray,
                  T_world_cam: np.ndarray, K: np.ndarray, stamp: Time, fixed_frame: str,
                  camera_frame: str) -> ImaginedView:
    """One imagined frame as a ``worldstereo_ros/ImaginedView``.

    Args:
        path_id, index, count: the path, the frame's index on it and the path's frame count.
        rgb: (H, W, 3) float32 in [0, 1] (sent as rgb8, rounded). depth: (H, W) float32 metres (32FC1,
            0 = unknown). imagined: (H, W) bool (mono8, 255 = imagined).
        T_world_cam: (4, 4) pose of the view's optical frame in ``fixed_frame`` (the message's ``pose``).
        K: (3, 3) intrinsics (the message's ``camera_info``).
        stamp: the time of all headers: the stamp of the snapshot the view was imagined from, the same for
            every view of a rollout (the view shows the world as that snapshot saw it).
        fixed_frame: frame of the message header and of ``pose``.
        camera_frame: frame of the images and the camera_info (the view's own optical frame when it is
            broadcast on TF, else ``fixed_frame``).
    """
    cam_header = Header(stamp=stamp, frame_id=camera_frame)
    view = ImaginedView(header=Header(stamp=stamp, frame_id=fixed_frame), path_id=path_id, index=int(index),
                        count=int(count))
    view.rgb = numpy_to_image(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), "rgb8", cam_header)
    view.depth = depth_to_image(np.asarray(depth, np.float32), "32FC1", cam_header)
    view.imagined_mask = numpy_to_image(np.asarray(imagined, bool).astype(np.uint8) * 255, "mono8", cam_header)
    view.camera_info = intrinsics_to_camera_info(K, rgb.shape[1], rgb.shape[0], cam_header)
    view.pose = matrix_to_pose(T_world_cam)
    view.imagined_fraction = float(np.mean(imagined))
    return view


def imagine_feedback(progress: Progress) -> Imagine.Feedback:
    """The action feedback for a pipeline :class:`~worldstereo_ros.pipeline.Progress`."""
    return Imagine.Feedback(path_id=progress.trajectory_id, path_index=progress.trajectory_index,
                            path_count=progress.trajectory_count, frame_index=progress.frame_index,
                            frame_count=progress.frame_count, progress=float(progress.fraction),
                            stage=progress.stage)


def imagine_result(outcome: Mapping) -> Imagine.Result:
    """The action result from a request's outcome fields (absent fields: False, "", [], 0)."""
    result = Imagine.Result()
    result.success = bool(outcome.get("success", False))
    result.message = str(outcome.get("message", ""))
    result.path_ids = [str(p) for p in outcome.get("path_ids", [])]
    result.views_published = int(outcome.get("views_published", 0))
    result.cache_points = int(outcome.get("cache_points", 0))
    result.elapsed_s = float(outcome.get("elapsed_s", 0.0))
    return result


def named_paths(candidate_paths: Sequence, field: str) -> list[tuple[str, object]]:
    """(id, nav_msgs/Path) pairs of CandidatePath messages; an empty id becomes ``path_<i>``.

    Raises:
        InputError: an id that cannot name a trajectory (whitespace, a slash) or the same id twice, naming
            ``field[i].id``; checked here so a bad id is refused with the request, not deep inside the worker.
    """
    ids = [cp.id or f"path_{i}" for i, cp in enumerate(candidate_paths)]
    for i, path_id in enumerate(ids):
        check_trajectory_id(path_id, f"{field}[{i}].id")
        if path_id in ids[:i]:
            raise InputError(f"{field}[{i}].id", f"{path_id!r} is also the id of {field}[{ids.index(path_id)}]")
    return [(path_id, cp.path) for path_id, cp in zip(ids, candidate_paths)]
