"""Messages in and out of the imagination node, built without rclpy (issue 15: rclpy-free modules)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time

from worldstereo_ros.errors import InputError
from worldstereo_ros.msg import CandidatePath
from worldstereo_ros.pipeline import Progress
from worldstereo_ros.ros.conversions.camera_info import intrinsics_to_camera_info
from worldstereo_ros.ros.conversions.image import depth_from_image, depth_to_image, image_to_numpy, numpy_to_image
from worldstereo_ros.ros.conversions.transforms import pose_to_matrix
from worldstereo_ros.ros.frame_sync import SyncedFrame
from worldstereo_ros.ros.imagination_messages import (
    imagine_feedback,
    imagine_result,
    imagined_view,
    named_paths,
    snapshot_from_frame,
)

K = np.array([[50.0, 0.0, 3.5], [0.0, 50.0, 2.5], [0.0, 0.0, 1.0]])


def _turn_z(deg: float, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    a = math.radians(deg)
    T = np.eye(4)
    T[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    T[:3, 3] = t
    return T


def test_imagined_view_carries_the_frame_in_its_units_and_frames():
    rgb = np.zeros((6, 8, 3), np.float32)
    rgb[0, 0] = [1.0, 0.5, 0.0]  # 0.5 * 255 + 0.5 rounds to 128
    depth = np.full((6, 8), 1.25, np.float32)
    depth[5, 7] = 0.0
    imagined = np.zeros((6, 8), bool)
    imagined[:3] = True
    T = _turn_z(180.0, (1.0, -2.0, 0.5))
    stamp = Time(sec=12, nanosec=34)
    inputs = [a.copy() for a in (rgb, depth, imagined, T)]
    view = imagined_view("left", 3, 25, rgb, depth, imagined, T, K, stamp, "map", "worldstereo/left/3")
    assert (view.path_id, view.index, view.count) == ("left", 3, 25)
    assert view.header.frame_id == "map" and view.header.stamp == stamp
    for msg in (view.rgb, view.depth, view.imagined_mask, view.camera_info):
        assert msg.header.frame_id == "worldstereo/left/3" and msg.header.stamp == stamp
    assert view.rgb.encoding == "rgb8" and image_to_numpy(view.rgb)[0, 0].tolist() == [255, 128, 0]
    assert view.depth.encoding == "32FC1"
    back = depth_from_image(view.depth)
    assert back[0, 0] == 1.25 and not back[5, 7] > 0  # unknown stays unknown
    mask = image_to_numpy(view.imagined_mask)
    assert view.imagined_mask.encoding == "mono8" and mask[:3].min() == 255 and mask[3:].max() == 0
    assert view.imagined_fraction == pytest.approx(0.5)
    assert np.allclose(pose_to_matrix(view.pose), T, atol=1e-12)
    assert np.allclose(np.reshape(view.camera_info.k, (3, 3)), K) and view.camera_info.width == 8
    for a, b in zip((rgb, depth, imagined, T), inputs):  # inputs untouched
        assert np.array_equal(a, b)


def _frame(width: int = 8, info_size: tuple[int, int] = (8, 6), depth_width: int = 8) -> SyncedFrame:
    rgb = np.full((6, width, 3), 200, np.uint8)
    depth = np.full((6, depth_width), 2.0, np.float32)
    return SyncedFrame(stamp_ns=1_500_000_000, image=numpy_to_image(rgb, "rgb8"), depth=depth_to_image(depth),
                       camera_info=intrinsics_to_camera_info(K, *info_size))


def test_snapshot_from_frame():
    T = _turn_z(90.0, (0.1, 0.2, 0.3))
    snap = snapshot_from_frame(_frame(), T, False, "camera_optical")
    assert snap.rgb.shape == (6, 8, 3) and np.allclose(snap.rgb, 200 / 255)
    assert np.allclose(snap.depth, 2.0) and np.allclose(snap.K, K) and np.allclose(snap.T_world_cam, T)
    assert snap.stamp_ns == 1_500_000_000 and snap.frame_id == "camera_optical"


@pytest.mark.parametrize("frame, match", [(_frame(depth_width=7), "depth: size 7x6 differs"),
                                          (_frame(info_size=(10, 6)), "camera_info: size 10x6 differs")])
def test_snapshot_from_mismatched_frames(frame, match):
    with pytest.raises(InputError, match=match):
        snapshot_from_frame(frame, np.eye(4), False, "cam")


def test_snapshot_from_a_distorted_camera_is_refused():
    frame = _frame()
    frame.camera_info.d = [0.1, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(InputError, match="camera_info.d: distortion"):
        snapshot_from_frame(frame, np.eye(4), False, "cam")


def test_feedback_and_result():
    fb = imagine_feedback(Progress(1, 4, "up", 5, 10, "generate"))
    assert (fb.path_id, fb.path_index, fb.path_count, fb.frame_index, fb.frame_count, fb.stage) == \
        ("up", 1, 4, 5, 10, "generate")
    assert fb.progress == pytest.approx((1 + 0.5) / 4)
    result = imagine_result({"success": True, "message": "ok", "path_ids": ["a", "b"], "views_published": 50,
                             "cache_points": 1234, "elapsed_s": 2.5})
    assert (result.success, result.message, list(result.path_ids), result.views_published, result.cache_points,
            result.elapsed_s) == (True, "ok", ["a", "b"], 50, 1234, 2.5)
    empty = imagine_result({})
    assert (empty.success, empty.message, list(empty.path_ids), empty.views_published) == (False, "", [], 0)


def test_snapshot_of_an_rgb_only_frame_takes_the_estimated_depth():
    from dataclasses import replace
    from types import SimpleNamespace

    seen = []

    def estimate(rgb, K_in):
        seen.append((rgb.dtype, rgb.shape, float(rgb.max()), K_in.copy()))
        ramp = np.linspace(1.0, 2.0, 8, dtype=np.float32)[None].repeat(6, 0)  # relative depth, as a model gives
        # a DepthEstimate's fields (the depth module imports transformers: seconds this test need not spend)
        return SimpleNamespace(depth=ramp, is_metric=False, note="relative depth")

    frame = replace(_frame(), depth=None)
    snap = snapshot_from_frame(frame, np.eye(4), False, "cam", estimate_depth=estimate)
    assert seen[0][:3] == (np.float32, (6, 8, 3), pytest.approx(200 / 255)) and np.allclose(seen[0][3], K)
    assert not snap.depth_is_metric and np.allclose(snap.depth[0], np.linspace(1.0, 2.0, 8))
    with pytest.raises(InputError, match="depth: an RGB-only frame"):
        snapshot_from_frame(frame, np.eye(4), False, "cam")
    # the camera_info check still comes first
    bad = replace(_frame(info_size=(10, 6)), depth=None)
    with pytest.raises(InputError, match="camera_info: size 10x6"):
        snapshot_from_frame(bad, np.eye(4), False, "cam", estimate_depth=estimate)


def test_image_size_limit_is_checked_before_decoding():
    import cv2
    from sensor_msgs.msg import CompressedImage, Image

    from worldstereo_ros.ros.imagination_messages import image_pixels, stamp_from_ns

    huge = Image(width=100_000, height=100_000, encoding="rgb8", step=300_000)  # no pixel data at all
    assert image_pixels(huge, False) == 10**10
    frame = SyncedFrame(stamp_ns=1, image=huge, depth=depth_to_image(np.ones((6, 8), np.float32)),
                        camera_info=intrinsics_to_camera_info(K, 8, 6))
    with pytest.raises(InputError, match="image: 10000000000 pixels exceed max_image_pixels = 1000"):
        snapshot_from_frame(frame, np.eye(4), False, "cam", max_pixels=1000)
    ok, png = cv2.imencode(".png", np.zeros((40, 30, 3), np.uint8))
    assert image_pixels(CompressedImage(format="png", data=png.tobytes()), True) == 1200
    with pytest.raises(InputError, match="image: compressed image: no readable size"):
        image_pixels(CompressedImage(format="jpeg", data=b"\xff\xd8 not really"), True)
    t = stamp_from_ns(1_500_000_123)
    assert (t.sec, t.nanosec) == (1, 500_000_123)


def test_named_paths_names_empty_ids_and_refuses_bad_or_repeated_ones():
    paths = [CandidatePath(id="left"), CandidatePath(id=""), CandidatePath(id="right")]
    assert [pid for pid, _ in named_paths(paths, "goal.paths")] == ["left", "path_1", "right"]
    with pytest.raises(InputError, match=r"goal.paths\[1\].id: expected a non-empty name"):
        named_paths([CandidatePath(id="a"), CandidatePath(id="a b")], "goal.paths")
    with pytest.raises(InputError, match=r"candidate_paths.paths\[2\].id: 'a' is also the id of .*\[0\]"):
        named_paths([CandidatePath(id="a"), CandidatePath(id="b"), CandidatePath(id="a")], "candidate_paths.paths")
    with pytest.raises(InputError, match=r"\[1\].id: 'path_0' is also"):  # an explicit id that clashes with a default
        named_paths([CandidatePath(id=""), CandidatePath(id="path_0")], "x")

