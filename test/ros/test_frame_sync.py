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
