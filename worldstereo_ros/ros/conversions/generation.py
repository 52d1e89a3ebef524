"""GenerationRequest / GeneratedFrames <-> the ``Generate`` action's messages (split deployment).

The robot side (:class:`~worldstereo_ros.ros.remote_generator.RemoteGenerator`) turns a request into a
goal, the generation side (``generation_node``) turns it back, runs a local backend and streams each
frame as feedback; the result carries what only the end knows (confidence, timings, the generator state).

Wire formats: matrices are float64, row-major; depth is 32FC1 metres with 0 = unknown; masks are mono8
(255 = True); cache-point indices are 32SC1 (-1 = none; the cache budget stays below 2**31). Colour images
use the goal's ``rgb_encoding``: ``32FC3`` carries the float32 values unchanged, so the split deployment
gives exactly the single process's views; ``rgb8`` sends a quarter of the bytes and rounds every colour to
the nearest 1/255 (:func:`quantise_rgb` is that rounding, for comparisons).

No rclpy here: these functions build and read plain message objects, and are tested without DDS.
"""

from __future__ import annotations

import numpy as np
import torch
from sensor_msgs.msg import Image

from worldstereo_ros.action import Generate
from worldstereo_ros.errors import ConversionError
from worldstereo_ros.generation.base import GeneratedFrames, GenerationRequest
from worldstereo_ros.memory.types import Reference
from worldstereo_ros.msg import GenerationReference
from worldstereo_ros.ros.conversions.image import image_to_numpy, numpy_to_image, rgb_to_image
from worldstereo_ros.snapshot import Snapshot

#: Colour encodings the action accepts: exact floats, or 8-bit (a quarter of the bytes).
RGB_ENCODINGS = ("32FC3", "rgb8")


def quantise_rgb(rgb: np.ndarray) -> np.ndarray:
    """What an ``rgb8`` wire does to a float colour image: (..., 3) float32 in [0, 1], rounded to k/255."""
    return (np.clip(np.asarray(rgb, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).astype(np.float32) / 255.0


def check_rgb_encoding(encoding: str, field: str = "rgb_encoding") -> str:
    """``encoding`` when it is one of :data:`RGB_ENCODINGS`, else ConversionError naming ``field``."""
    if encoding not in RGB_ENCODINGS:
        raise ConversionError(field, f"must be one of {', '.join(RGB_ENCODINGS)}; got {encoding!r}")
    return encoding


# ---------------------------------------------------------------------------------------------- images
def colour_to_image(rgb: np.ndarray, encoding: str) -> Image:
    """(H, W, 3) float in [0, 1] -> Image in ``encoding`` (32FC3 unchanged, rgb8 rounded)."""
    if check_rgb_encoding(encoding) == "rgb8":
        return rgb_to_image(np.asarray(rgb, np.float32))
    return numpy_to_image(np.asarray(rgb, np.float32), "32FC3")


def colour_from_image(msg: Image, field: str) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from a 32FC3 or rgb8 Image (a writable copy)."""
    check_rgb_encoding(msg.encoding, f"{field}.encoding")
    arr = _pixels(msg, field)
    return arr.astype(np.float32) / 255.0 if msg.encoding == "rgb8" else np.array(arr, np.float32)


def _pixels(msg: Image, field: str) -> np.ndarray:
    try:
        return image_to_numpy(msg)
    except ConversionError as err:
        raise ConversionError(f"{field}.{err.field}", err.problem) from None


def _plane(msg: Image, encoding: str, field: str) -> np.ndarray:
    if msg.encoding != encoding:
        raise ConversionError(f"{field}.encoding", f"expected {encoding}, got {msg.encoding!r}")
    return np.array(_pixels(msg, field))  # a copy: backends may write into their inputs


def _mask_to_image(mask: np.ndarray) -> Image:
    return numpy_to_image(np.where(np.asarray(mask, bool), np.uint8(255), np.uint8(0)), "mono8")


def _mask_from_image(msg: Image, field: str) -> np.ndarray:
    return _plane(msg, "mono8", field) > 0


def _matrices(values, count: int, size: int, field: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size != count * size * size:
        raise ConversionError(field, f"expected {count} x {size * size} values, got {arr.size}")
    return arr.reshape(count, size, size)


def _size(msg: Image, height: int, width: int, field: str) -> None:
    if (int(msg.height), int(msg.width)) != (height, width):
        raise ConversionError(field, f"expected {height}x{width} pixels, got {msg.height}x{msg.width}")


# ---------------------------------------------------------------------------------------------- request
def request_to_goal(request: GenerationRequest, generator: torch.Generator | None = None,
                    rgb_encoding: str = "32FC3") -> Generate.Goal:
    """The ``Generate`` goal carrying ``request`` (checked first) and the state of ``generator`` (CPU)."""
    request.check()
    check_rgb_encoding(rgb_encoding)
    n = request.num_frames
    goal = Generate.Goal(trajectory_id=request.trajectory_id, prompt=request.prompt, height=request.height,
                         width=request.width, rgb_encoding=rgb_encoding)
    goal.k = np.asarray(request.K, np.float64).reshape(-1).tolist()
    goal.t_world_cam = np.asarray(request.T_world_cam, np.float64).reshape(-1).tolist()
    goal.cond_rgb = [colour_to_image(request.cond_rgb[i], rgb_encoding) for i in range(n)]
    goal.cond_depth = [numpy_to_image(np.asarray(request.cond_depth[i], np.float32), "32FC1") for i in range(n)]
    goal.cond_mask = [_mask_to_image(request.cond_mask[i]) for i in range(n)]
    goal.cond_index = [numpy_to_image(np.asarray(request.cond_index[i]).astype(np.int32), "32SC1")
                       for i in range(n)]
    views: dict[int, int] = {}  # keyframe id -> position in reference_views: each keyframe travels once
    frames, positions, scores = [], [], []
    for i, refs in enumerate(request.references):
        for ref in refs:
            if ref.keyframe_id not in views:
                views[ref.keyframe_id] = len(goal.reference_views)
                goal.reference_views.append(_reference_to_msg(ref, rgb_encoding))
            frames.append(i)
            positions.append(views[ref.keyframe_id])
            scores.append(float(ref.score))
    goal.reference_frame, goal.reference_view, goal.reference_score = frames, positions, scores
    source = request.source
    goal.source_rgb = colour_to_image(source.rgb, rgb_encoding)
    goal.source_depth = numpy_to_image(np.asarray(source.depth, np.float32), "32FC1")
    goal.source_k = [] if source.K is None else np.asarray(source.K, np.float64).reshape(-1).tolist()
    goal.source_t_world_cam = np.asarray(source.T_world_cam, np.float64).reshape(-1).tolist()
    goal.source_stamp_ns, goal.source_frame_id = int(source.stamp_ns), source.frame_id
    goal.source_depth_is_metric = bool(source.depth_is_metric)
    goal.has_start_rgb = request.start_rgb is not None
    if request.start_rgb is not None:
        goal.start_rgb = colour_to_image(request.start_rgb, rgb_encoding)
    goal.generator_state = generator_state_bytes(generator)
    return goal


def goal_to_request(goal: Generate.Goal) -> tuple[GenerationRequest, torch.Generator | None]:
    """The request a goal carries, and a CPU generator in the goal's state (None when it sent none).

    Raises:
        ConversionError: naming the goal field that is malformed (counts, sizes, encodings, indices).
        InputError: from :meth:`GenerationRequest.check` for shapes that disagree.
    """
    encoding = check_rgb_encoding(goal.rgb_encoding)
    h, w = int(goal.height), int(goal.width)
    if h < 1 or w < 1:
        raise ConversionError("height" if h < 1 else "width", f"must be positive, got {h}x{w}")
    n = len(goal.t_world_cam) // 16
    if n < 1:
        raise ConversionError("t_world_cam", "a trajectory needs at least one pose (16 values each)")
    T_world_cam = _matrices(goal.t_world_cam, n, 4, "t_world_cam")
    K = _matrices(goal.k, n, 3, "k")
    planes = {}
    for name in ("cond_rgb", "cond_depth", "cond_mask", "cond_index"):
        msgs = getattr(goal, name)
        if len(msgs) != n:
            raise ConversionError(name, f"expected one image per pose ({n}), got {len(msgs)}")
        for i, msg in enumerate(msgs):
            _size(msg, h, w, f"{name}[{i}]")
        planes[name] = msgs
    cond_rgb = np.stack([colour_from_image(m, f"cond_rgb[{i}]") for i, m in enumerate(planes["cond_rgb"])])
    cond_depth = np.stack([_plane(m, "32FC1", f"cond_depth[{i}]") for i, m in enumerate(planes["cond_depth"])])
    cond_mask = np.stack([_mask_from_image(m, f"cond_mask[{i}]") for i, m in enumerate(planes["cond_mask"])])
    cond_index = np.stack([_plane(m, "32SC1", f"cond_index[{i}]") for i, m in enumerate(planes["cond_index"])])
    references = _references_from_goal(goal, n)
    source = _source_from_goal(goal)
    start_rgb = None
    if goal.has_start_rgb:
        _size(goal.start_rgb, h, w, "start_rgb")
        start_rgb = colour_from_image(goal.start_rgb, "start_rgb")
    del encoding  # every colour image was checked against the set of encodings above
    request = GenerationRequest(K=K, T_world_cam=T_world_cam, height=h, width=w, cond_rgb=cond_rgb,
                                cond_depth=cond_depth, cond_mask=cond_mask, cond_index=cond_index.astype(np.int64),
                                references=references, source=source, trajectory_id=goal.trajectory_id,
                                prompt=goal.prompt, start_rgb=start_rgb)
    request.check()
    return request, generator_from_bytes(goal.generator_state)


def _reference_to_msg(ref: Reference, rgb_encoding: str) -> GenerationReference:
    msg = GenerationReference(keyframe_id=int(ref.keyframe_id))
    msg.rgb = colour_to_image(ref.rgb, rgb_encoding)
    msg.depth = numpy_to_image(np.asarray(ref.depth, np.float32), "32FC1")
    msg.pointmap = numpy_to_image(np.asarray(ref.pointmap, np.float32), "32FC3")
    msg.k = np.asarray(ref.K, np.float64).reshape(-1).tolist()
    msg.t_world_cam = np.asarray(ref.T_world_cam, np.float64).reshape(-1).tolist()
    return msg


def _references_from_goal(goal: Generate.Goal, n: int) -> list[list[Reference]]:
    counts = {len(goal.reference_frame), len(goal.reference_view), len(goal.reference_score)}
    if len(counts) != 1:
        raise ConversionError("reference_frame", "reference_frame, reference_view and reference_score differ in "
                                                 f"length ({len(goal.reference_frame)}, {len(goal.reference_view)}, "
                                                 f"{len(goal.reference_score)})")
    views = []
    for j, msg in enumerate(goal.reference_views):
        field = f"reference_views[{j}]"
        rgb = colour_from_image(msg.rgb, f"{field}.rgb")
        hw = rgb.shape[:2]
        _size(msg.depth, *hw, f"{field}.depth")
        _size(msg.pointmap, *hw, f"{field}.pointmap")
        views.append((rgb, _plane(msg.depth, "32FC1", f"{field}.depth"),
                      _plane(msg.pointmap, "32FC3", f"{field}.pointmap"),
                      np.asarray(msg.k, np.float64).reshape(3, 3),
                      np.asarray(msg.t_world_cam, np.float64).reshape(4, 4), int(msg.keyframe_id)))
    references: list[list[Reference]] = [[] for _ in range(n)]
    for frame, view, score in zip(goal.reference_frame, goal.reference_view, goal.reference_score):
        if frame >= n:
            raise ConversionError("reference_frame", f"frame {frame} out of range for {n} poses")
        if view >= len(views):
            raise ConversionError("reference_view", f"view {view} out of range for {len(views)} reference views")
        rgb, depth, pointmap, K, T, keyframe_id = views[view]
        references[frame].append(Reference(rgb=rgb, depth=depth, pointmap=pointmap, K=K, T_world_cam=T,
                                           score=float(score), keyframe_id=keyframe_id))
    return references


def _source_from_goal(goal: Generate.Goal) -> Snapshot:
    rgb = colour_from_image(goal.source_rgb, "source_rgb")
    depth = _plane(goal.source_depth, "32FC1", "source_depth")
    if len(goal.source_k) not in (0, 9):
        raise ConversionError("source_k", f"expected 9 values (or none for a panorama), got {len(goal.source_k)}")
    K = np.asarray(goal.source_k, np.float64).reshape(3, 3) if len(goal.source_k) else None
    return Snapshot.create(rgb, depth, K, np.asarray(goal.source_t_world_cam, np.float64).reshape(4, 4),
                           stamp_ns=int(goal.source_stamp_ns), frame_id=goal.source_frame_id,
                           depth_is_metric=bool(goal.source_depth_is_metric))


# ---------------------------------------------------------------------------------------------- generator
def generator_state_bytes(generator: torch.Generator | None) -> bytes:
    """The state of a CPU ``generator`` as bytes (empty for None)."""
    if generator is None:
        return b""
    if generator.device.type != "cpu":
        raise ConversionError("generator", f"expected a CPU torch.Generator, got {generator.device}")
    return generator.get_state().numpy().tobytes()


def generator_from_bytes(state) -> torch.Generator | None:
    """A CPU generator in ``state`` (bytes or a uint8 sequence); None when empty."""
    data = np.frombuffer(bytes(state), np.uint8) if len(state) else None
    if data is None:
        return None
    generator = torch.Generator()
    try:
        generator.set_state(torch.from_numpy(data.copy()))
    except RuntimeError as err:
        raise ConversionError("generator_state",
                              f"not a CPU torch.Generator state ({len(data)} bytes): {err}") from None
    return generator


# ---------------------------------------------------------------------------------------------- frames
def frame_to_feedback(index: int, count: int, rgb: np.ndarray, depth: np.ndarray, imagined: np.ndarray,
                      rgb_encoding: str) -> Generate.Feedback:
    """Feedback carrying frame ``index`` of ``count``: rgb (H, W, 3) float [0, 1], depth (H, W) metres,
    imagined (H, W) bool."""
    return Generate.Feedback(has_frame=True, index=int(index), count=int(count),
                             rgb=colour_to_image(rgb, rgb_encoding),
                             depth=numpy_to_image(np.asarray(depth, np.float32), "32FC1"),
                             imagined=_mask_to_image(imagined))


def step_to_feedback(step: int, total: int) -> Generate.Feedback:
    """Feedback with the progress of an iterative backend only (no frame)."""
    return Generate.Feedback(has_frame=False, step=int(step), total_steps=int(total))


def feedback_to_frame(feedback: Generate.Feedback, height: int, width: int
                      ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(index, rgb (H, W, 3) float32, depth (H, W) float32 metres, imagined (H, W) bool) of a frame feedback."""
    if not feedback.has_frame:
        raise ConversionError("has_frame", "feedback carries no frame")
    for name in ("rgb", "depth", "imagined"):
        _size(getattr(feedback, name), height, width, name)
    return (int(feedback.index), colour_from_image(feedback.rgb, "rgb"), _plane(feedback.depth, "32FC1", "depth"),
            _mask_from_image(feedback.imagined, "imagined"))


def frames_to_result(frames: GeneratedFrames, generator: torch.Generator | None = None) -> Generate.Result:
    """A successful result for ``frames`` (whose pixels went out as feedback)."""
    n = int(np.shape(frames.rgb)[0])
    result = Generate.Result(success=True, message=f"{n} frames", frame_count=n,
                             depth_is_metric=bool(frames.depth_is_metric))
    result.timing_names = list(frames.timings_s)
    result.timing_s = [float(s) for s in frames.timings_s.values()]
    if frames.confidence is not None:
        result.confidence = [numpy_to_image(np.asarray(c, np.float32), "32FC1") for c in frames.confidence]
    result.generator_state = generator_state_bytes(generator)
    return result


def result_to_frames(result: Generate.Result, rgb: np.ndarray, depth: np.ndarray, imagined: np.ndarray
                     ) -> GeneratedFrames:
    """GeneratedFrames from a result and the stacked frames its feedback carried ((N, H, W, ...))."""
    n, h, w = rgb.shape[:3]
    if int(result.frame_count) != n:
        raise ConversionError("frame_count", f"result says {result.frame_count} frames, {n} arrived")
    if len(result.timing_names) != len(result.timing_s):
        raise ConversionError("timing_s", f"{len(result.timing_s)} values for {len(result.timing_names)} names")
    confidence = None
    if len(result.confidence):
        if len(result.confidence) != n:
            raise ConversionError("confidence", f"expected {n} images or none, got {len(result.confidence)}")
        for i, msg in enumerate(result.confidence):
            _size(msg, h, w, f"confidence[{i}]")
        confidence = np.stack([_plane(m, "32FC1", f"confidence[{i}]") for i, m in enumerate(result.confidence)])
    return GeneratedFrames(rgb=rgb, depth=depth, imagined=imagined, depth_is_metric=bool(result.depth_is_metric),
                           timings_s=dict(zip(result.timing_names, (float(s) for s in result.timing_s))),
                           confidence=confidence)
