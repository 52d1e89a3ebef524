"""PointCloud2 <-> numpy (issue 2): PCL/RViz rgb layout, organised clouds, any field layout, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from worldstereo_ros.errors import ConversionError
from worldstereo_ros.ros.conversions.pointcloud2 import (
    DATATYPES,
    pack_rgb,
    pointcloud2_to_array,
    pointcloud2_to_xyzrgb,
    unpack_rgb,
    xyzrgb_to_pointcloud2,
)


def test_rgb_packing_matches_pcl_byte_layout():
    packed = pack_rgb(np.array([[0x12, 0x34, 0x56]], np.uint8))
    assert packed.view(np.uint32)[0] == 0x00123456
    assert packed.tobytes() == bytes([0x56, 0x34, 0x12, 0x00])  # little-endian B G R 0


def test_layout_is_what_rviz_and_nav2_read():
    msg = xyzrgb_to_pointcloud2(np.zeros((3, 3), np.float32), np.zeros((3, 3), np.uint8),
                                Header(frame_id="map"))
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1), ("z", 8, PointField.FLOAT32, 1),
        ("rgb", 12, PointField.FLOAT32, 1)]
    assert (msg.point_step, msg.row_step, msg.height, msg.width, msg.is_bigendian) == (16, 48, 1, 3, False)
    assert len(msg.data) == 48 and msg.header.frame_id == "map"


def test_round_trip_organised_and_float_colours():
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(6, 3)).astype(np.float32)
    rgb = rng.random((6, 3)).astype(np.float32)
    msg = xyzrgb_to_pointcloud2(xyz, rgb, organised_shape=(2, 3))
    assert (msg.height, msg.width, msg.row_step) == (2, 3, 48)
    assert pointcloud2_to_array(msg).shape == (2, 3)
    xyz2, rgb2 = pointcloud2_to_xyzrgb(msg)
    assert np.array_equal(xyz2, xyz)
    assert np.array_equal(rgb2, (rgb * 255 + 0.5).astype(np.uint8))


def test_reads_foreign_layout_with_padding_row_step_and_big_endian():
    # x, y, z float64 big-endian, an intensity we don't use, 4 bytes padding, rgba as uint32.
    dt = np.dtype({"names": ["x", "y", "z", "intensity", "rgba"], "formats": [">f8", ">f8", ">f8", ">u2", ">u4"],
                   "offsets": [0, 8, 16, 24, 32], "itemsize": 40})
    pts = np.zeros(2, dt)
    pts["x"], pts["y"], pts["z"], pts["rgba"] = [1.0, 4.0], [2.0, 5.0], [3.0, 6.0], [0xFF0A0B0C, 0x00010203]
    fields = [PointField(name=n, offset=o, datatype=d, count=1) for n, o, d in
              [("x", 0, 8), ("y", 8, 8), ("z", 16, 8), ("intensity", 24, 4), ("rgba", 32, 6)]]
    msg = PointCloud2(height=1, width=2, fields=fields, is_bigendian=True, point_step=40, row_step=88)
    msg.data = pts.tobytes() + bytes(8)  # row padding
    xyz, rgb = pointcloud2_to_xyzrgb(msg)
    np.testing.assert_array_equal(xyz, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(rgb, [[10, 11, 12], [1, 2, 3]])


def test_skip_nans_and_input_unchanged():
    xyz = np.array([[0, 0, 1], [np.nan, 0, 0]], np.float32)
    before = xyz.copy()
    out, rgb = pointcloud2_to_xyzrgb(xyzrgb_to_pointcloud2(xyz, None), skip_nans=True)
    assert out.shape == (1, 3)
    np.testing.assert_array_equal(xyz, before)


@pytest.mark.parametrize("change,match", [
    (dict(point_step=12), "fields\\[3\\]: 'rgb' at offset 12 \\+ 4 bytes exceeds point_step 12"),
    (dict(row_step=10), "row_step: 10 is less than"),
    (dict(data=bytes(20)), "data: expected row_step x height = 32 bytes, got 20"),
])
def test_bad_clouds_name_the_field(change, match):
    msg = xyzrgb_to_pointcloud2(np.zeros((2, 3), np.float32), None)
    for k, v in change.items():
        setattr(msg, k, v)
    with pytest.raises(ConversionError, match=match):
        pointcloud2_to_xyzrgb(msg)


def test_overlapping_and_unknown_fields():
    msg = xyzrgb_to_pointcloud2(np.zeros((2, 3), np.float32), None)
    msg.fields = list(msg.fields[:3]) + [PointField(name="w", offset=6, datatype=7, count=1)]
    with pytest.raises(ConversionError, match="'y' and 'w' overlap"):
        pointcloud2_to_array(msg)
    msg.fields = list(msg.fields[:3]) + [PointField(name="w", offset=12, datatype=42, count=1)]
    with pytest.raises(ConversionError, match="unknown datatype 42"):
        pointcloud2_to_array(msg)
    with pytest.raises(ConversionError, match="xyz: expected shape \\(N, 3\\)"):
        xyzrgb_to_pointcloud2(np.zeros((2, 2), np.float32), None)


def test_byte_identical_to_sensor_msgs_py_create_cloud():
    pc2 = pytest.importorskip("sensor_msgs_py.point_cloud2",
                              reason="sensor_msgs_py not installed (needs a full ROS 2 install)")
    rng = np.random.default_rng(3)
    xyz = rng.normal(size=(50, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(50, 3), dtype=np.uint8)
    header = Header(frame_id="map")
    ours = xyzrgb_to_pointcloud2(xyz, rgb, header)
    points = [(*p, c) for p, c in zip(xyz.tolist(), pack_rgb(rgb).tolist())]
    theirs = pc2.create_cloud(header, ours.fields, points)
    assert bytes(ours.data) == bytes(theirs.data)
    assert ours == theirs


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 50), seed=st.integers(0, 2**16), organised=st.booleans())
def test_round_trip_property(n, seed, organised):
    rng = np.random.default_rng(seed)
    xyz = rng.normal(scale=100, size=(n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    rows = next(d for d in (5, 3, 2, 1) if n % d == 0) if n else 1
    shape = (1, n) if not organised or n == 0 else (rows, n // rows)
    xyz2, rgb2 = pointcloud2_to_xyzrgb(xyzrgb_to_pointcloud2(xyz, rgb, organised_shape=shape))
    assert np.array_equal(xyz2, xyz) and np.array_equal(rgb2, rgb)
    assert np.array_equal(unpack_rgb(pack_rgb(rgb)), rgb)


field_strategy = st.builds(lambda name, off, dt, cnt: PointField(name=name, offset=off, datatype=dt, count=cnt),
                           st.sampled_from(["x", "y", "z", "rgb", "rgba", "i", ""]), st.integers(0, 40),
                           st.integers(0, 10), st.integers(0, 3))


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(field_strategy, max_size=5), h=st.integers(0, 3), w=st.integers(0, 4),
       point_step=st.integers(0, 40), row_extra=st.integers(-4, 8), n=st.integers(0, 300), big=st.booleans())
def test_malformed_clouds_raise_only_conversion_error(fields, h, w, point_step, row_extra, n, big):
    msg = PointCloud2(height=h, width=w, fields=fields, is_bigendian=big, point_step=point_step,
                      row_step=max(point_step * w + row_extra, 0))
    msg.data = bytes(n)
    try:
        pointcloud2_to_xyzrgb(msg)
    except ConversionError:
        pass
    assert set(DATATYPES) == set(range(1, 9))
