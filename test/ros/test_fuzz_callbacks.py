"""Fuzzing imagination_node's callbacks and the message converters (issue 14 item 4), a few thousand inputs.

Oracles: a converter returns or raises the project's error naming a field (any other exception is a bug);
the node survives every input, each one ends in a success or a counted rejection and none reaches the
catch-all ``request.failed``; memory stays flat (RSS growth and peak) although messages declare sizes up to
4 GiB x 4 GiB. benchmarks/fuzz_node.py runs the same strategies with 100 000 inputs per callback.
"""

from __future__ import annotations

import resource

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
pytest.importorskip("hypothesis", reason="hypothesis not installed (requirements/python.txt)")
import torch  # noqa: E402
from fuzz_inputs import (  # noqa: E402
    NodeHarness,
    camera_infos,
    candidate_paths,
    compressed_images,
    goals,
    images,
    long_path,
    paths,
    png_bytes,
    rss_bytes,
    valid_camera,
)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402

from worldstereo_ros.action import Imagine  # noqa: E402
from worldstereo_ros.errors import WorldStereoError  # noqa: E402
from worldstereo_ros.msg import CandidatePath, CandidatePaths  # noqa: E402
from worldstereo_ros.ros.conversions.camera_info import camera_info_to_intrinsics  # noqa: E402
from worldstereo_ros.ros.conversions.image import (  # noqa: E402
    MAX_DECODED_PIXELS,
    compressed_to_numpy,
    depth_from_image,
    rgb_from_image,
)
from worldstereo_ros.ros.conversions.rgbd import rgbd_from_messages  # noqa: E402
from worldstereo_ros.ros.conversions.transforms import path_to_matrices  # noqa: E402

torch.set_num_threads(1)


def fuzz(examples: int):
    """Deterministic (CI must not flake on a new random draw), no example database, no timing limits."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


def _converts_or_names_the_field(convert, msg):
    """The converter's result, or None when it raised the project's error with a non-empty field."""
    try:
        return convert(msg)
    except WorldStereoError as err:
        assert getattr(err, "field", ""), f"{type(err).__name__} without a field: {err}"
        return None


# ------------------------------------------------------------------------------------------ converters
@fuzz(1500)
@given(images())
def test_colour_converter_never_fails_unnamed(msg):
    rgb = _converts_or_names_the_field(rgb_from_image, msg)
    if rgb is not None:
        assert rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8


@fuzz(800)
@given(images(depth=True))
def test_depth_converter_never_fails_unnamed(msg):
    depth = _converts_or_names_the_field(depth_from_image, msg)
    if depth is not None:
        assert depth.shape == (msg.height, msg.width) and depth.dtype == np.float32
        assert np.isfinite(depth).all() and (depth >= 0).all(), "unknown depth must read as 0, never NaN/inf/< 0"


@fuzz(600)
@given(compressed_images())
def test_compressed_converter_never_fails_unnamed(msg):
    img = _converts_or_names_the_field(compressed_to_numpy, msg)
    if img is not None:
        assert img.shape[0] * img.shape[1] <= MAX_DECODED_PIXELS


@fuzz(1000)
@given(camera_infos())
def test_camera_info_converter_never_fails_unnamed(msg):
    info = _converts_or_names_the_field(camera_info_to_intrinsics, msg)
    if info is not None:
        assert np.isfinite(info.K).all() and info.K[0, 0] > 0 and info.K[1, 1] > 0


@fuzz(400)
@given(paths())
def test_path_converter_never_fails_unnamed(msg):
    T = _converts_or_names_the_field(path_to_matrices, msg)
    if T is not None:
        R = T[:, :3, :3]
        assert np.isfinite(T).all()
        np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)


@fuzz(500)
@given(images(), images(depth=True), camera_infos())
def test_rgbd_triple_converter_never_fails_unnamed(image, depth, info):
    _converts_or_names_the_field(lambda _: rgbd_from_messages(image, depth, info), None)


def test_absurd_but_finite_positions_are_refused_by_name():
    # issue 14 item 4: a pose at 1e308 m passed the finiteness check and became NaN in path resampling
    from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion
    from nav_msgs.msg import Path

    far = Path(poses=[PoseStamped(pose=Pose(position=Point(x=1e308), orientation=Quaternion(w=1.0)))])
    with pytest.raises(WorldStereoError, match=r"^poses\[0\]\.pose\.position: .* farther than"):
        path_to_matrices(far)
    utm = Path(poses=[PoseStamped(pose=Pose(position=Point(x=6.5e5, y=5.3e6), orientation=Quaternion(w=1.0)))])
    assert path_to_matrices(utm)[0, 1, 3] == pytest.approx(5.3e6)  # map-scale coordinates still pass


def test_a_decompression_bomb_is_refused_before_decoding():
    # issue 14 item 4: 1.2 MB of PNG declaring 20000 x 20000 pixels made cv2.imdecode allocate 1.2 GB
    peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bomb = CompressedImage(format="png", data=png_bytes(20000, 20000, rows=20000))
    with pytest.raises(WorldStereoError, match=r"^data: declares more than MAX_DECODED_PIXELS"):
        compressed_to_numpy(bomb)
    with pytest.raises(WorldStereoError, match=r"^data: declares 9000x9000 pixels, more than MAX_DECODED_PIXELS"):
        compressed_to_numpy(CompressedImage(format="jpeg; png", data=png_bytes(9000, 9000)))
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak0) * 1024 < 200e6  # ru_maxrss is in KiB


# ------------------------------------------------------------------------------------------ the node
@pytest.fixture(scope="module")
def harness():
    import rclpy

    rclpy.init()
    h = NodeHarness()
    try:
        yield h
    finally:
        h.close()
        rclpy.try_shutdown()


def test_node_survives_fuzzed_inputs_counts_every_rejection_and_keeps_memory_flat(harness):
    h = harness
    h.good_snapshot()
    assert h.node.stats["snapshots"] == 1, h.rejections()
    rss0, peak0 = rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @fuzz(250)
    @given(images(), images(depth=True), camera_infos())
    def camera(image, depth, info):
        h.camera(image, depth, info)

    @fuzz(150)
    @given(compressed_images(), camera_infos())
    def compressed(image, info):
        # the node subscribes to CompressedImage only with use_compressed; the snapshot decode is what is
        # fuzzed here, so the message is fed through the same callback as the raw image
        h.node.p["use_compressed"] = True
        try:
            h.camera(image, valid_camera(h.next_stamp())[1], info)
        finally:
            h.node.p["use_compressed"] = False

    @fuzz(120)
    @given(paths())
    def planned(path):
        h.request("_on_planned_path", path)

    @fuzz(60)
    @given(candidate_paths)
    def candidates(msg):
        h.request("_on_candidate_paths", msg)

    @fuzz(400)
    @given(goals)
    def goal(g):
        h.goal(g)

    for run in (camera, compressed, planned, candidates, goal):
        run()
        h.good_snapshot()  # the next run starts from a good frame, so its requests reach the path checks
    for n in (0, 1, 100_000):  # issue 14: paths of 0, 1 and 100 000 poses
        h.request("_on_planned_path", long_path(n))

    rejections = h.rejections()
    assert sum(h.inputs.values()) >= 1500, h.inputs
    assert h.node.stats["requests_done"] > 0, f"no fuzzed request was valid enough to run: {rejections}"
    assert any(k.startswith("snapshot.") for k in rejections), rejections
    assert any(k.startswith("path") for k in rejections), rejections
    growth, peak = rss_bytes() - rss0, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak0) * 1024
    assert growth < 150e6, f"RSS grew by {growth / 1e6:.0f} MB over {sum(h.inputs.values())} inputs"
    assert peak < 400e6, f"peak RSS rose by {peak / 1e6:.0f} MB: an input made the node allocate from a declared size"
    assert h.node._worker.is_alive(), "the worker thread died"
    # and it still works: a good frame and a good path after all that
    h.good_snapshot()
    done = h.node.stats["requests_done"]
    h.request("_on_planned_path", long_path(3))
    assert h.node.stats["requests_done"] == done + 1, h.rejections()


def test_a_path_beyond_the_cache_extent_is_refused_by_name(harness):
    # found by benchmarks/fuzz_node.py: a path 1e7 m out (finite, under the converters' 1e9 m bound) reached the
    # cache's merge and failed in the worker's catch-all
    h = harness
    h.good_snapshot()
    before, named = h.node.problems.count(h.UNNAMED), h.node.problems.count("path.range")
    path = long_path(3)
    for ps in path.poses:
        ps.pose.position.x += 1e7
    h.request("_on_planned_path", path)
    assert h.node.problems.count(h.UNNAMED) == before, h.rejections()
    assert h.node.problems.count("path.range") == named + 1, h.rejections()


@pytest.mark.parametrize("ids", [["left turn"], ["a/b"], ["same", "same"]])
def test_a_bad_path_id_is_rejected_by_name(harness, ids):
    h = harness
    h.good_snapshot()
    before, named = h.node.problems.count(h.UNNAMED), h.node.problems.count("candidate_paths.id")
    paths = [CandidatePath(id=i, path=long_path(3)) for i in ids]
    h.node._on_candidate_paths(CandidatePaths(paths=paths))
    h.wait_idle()
    assert h.node.problems.count(h.UNNAMED) == before, h.rejections()
    assert h.node.problems.count("candidate_paths.id") == named + 1, h.rejections()
    # the action refuses the same paths in its goal callback, naming the path
    request, (key, reason) = h.node._goal_request(Imagine.Goal(paths=paths, frames_per_path=3))
    assert request is None
    assert key == "goal.path_id" and "goal.paths[" in reason and ".id" in reason
