"""Stamp pairing of image, depth and camera_info (latest only)."""

import pytest

from worldstereo_ros.ros.frame_sync import FrameSynchronizer

MS = 1_000_000


def test_pairs_within_tolerance_and_keeps_only_the_newest():
    sync = FrameSynchronizer(tolerance_ns=5 * MS)
    assert sync.pending_streams() == ["image", "depth", "camera_info"]
    assert sync.add("image", 100 * MS, "i100") is None
    assert sync.add("depth", 103 * MS, "d103") is None
    frame = sync.add("camera_info", 98 * MS, "c98")
    assert (frame.stamp_ns, frame.image, frame.depth, frame.camera_info) == (100 * MS, "i100", "d103", "c98")
    # a burst from a 30 Hz camera: only the newest complete triple is kept, nothing queues up
    for k in range(1, 10):
        t = (100 + 33 * k) * MS
        sync.add("camera_info", t, f"c{k}")
        sync.add("depth", t + 2 * MS, f"d{k}")
        sync.add("image", t + 1 * MS, f"i{k}")
    assert sync.latest().image == "i9" and sync.latest().depth == "d9"


def test_out_of_tolerance_and_older_matches_are_not_taken():
    sync = FrameSynchronizer(tolerance_ns=2 * MS)
    sync.add("image", 100 * MS, "i")
    sync.add("depth", 110 * MS, "d")
    assert sync.add("camera_info", 100 * MS, "c") is None
    assert sync.latest() is None
    sync.add("depth", 101 * MS, "d2")
    assert sync.latest().depth == "d2"
    # a late, older triple does not replace the newer one
    sync.add("image", 50 * MS, "old")
    sync.add("depth", 50 * MS, "old")
    sync.add("camera_info", 50 * MS, "old")
    assert sync.latest().image == "i"


def test_bad_stream_and_tolerance():
    with pytest.raises(ValueError, match="tolerance"):
        FrameSynchronizer(-1)
    with pytest.raises(ValueError, match="stream"):
        FrameSynchronizer(0).add("lidar", 0, None)


def test_rgb_only_pairs_image_and_camera_info_without_depth():
    from worldstereo_ros.ros.frame_sync import RGB_STREAMS

    sync = FrameSynchronizer(tolerance_ns=5 * MS, streams=RGB_STREAMS)
    assert sync.pending_streams() == ["image", "camera_info"]
    assert sync.add("image", 100 * MS, "i100") is None
    frame = sync.add("camera_info", 103 * MS, "c103")
    assert (frame.stamp_ns, frame.image, frame.depth, frame.camera_info) == (100 * MS, "i100", None, "c103")
    # out of tolerance: no new pair; the older one stays the latest
    sync.add("image", 200 * MS, "i200")
    assert sync.add("camera_info", 210 * MS, "c210") is None
    assert sync.latest().image == "i100"
    sync.add("camera_info", 199 * MS, "c199")
    assert (sync.latest().image, sync.latest().camera_info) == ("i200", "c199")
    # a depth stream does not exist for an RGB-only camera
    with pytest.raises(ValueError, match="depth"):
        sync.add("depth", 200 * MS, "d")


def test_only_the_two_known_stream_sets_are_accepted():
    with pytest.raises(ValueError, match="streams"):
        FrameSynchronizer(tolerance_ns=0, streams=("image",))
