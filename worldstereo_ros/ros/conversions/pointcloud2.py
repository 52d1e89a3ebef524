"""sensor_msgs/PointCloud2 <-> numpy.

Writing: xyz float32 + rgb packed into a float32 field in the PCL/RViz byte layout (the uint32
0x00RRGGBB reinterpreted as float32): fields x, y, z, rgb at offsets 0, 4, 8, 12, point_step 16,
little-endian, the layout RViz and nav2's costmap layers read and the one sensor_msgs_py's
``create_cloud`` writes. Reading: any field layout, padding, row padding and byte order, as a
structured array viewing the message's bytes where the layout allows.
"""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

from worldstereo_ros.errors import ConversionError
from worldstereo_ros.ros.conversions.image import as_bytes_array

DATATYPES: dict[int, np.dtype] = {
    PointField.INT8: np.dtype(np.int8),
    PointField.UINT8: np.dtype(np.uint8),
    PointField.INT16: np.dtype(np.int16),
    PointField.UINT16: np.dtype(np.uint16),
    PointField.INT32: np.dtype(np.int32),
    PointField.UINT32: np.dtype(np.uint32),
    PointField.FLOAT32: np.dtype(np.float32),
    PointField.FLOAT64: np.dtype(np.float64),
}

XYZRGB_FIELDS = [
    PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
    PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
    PointField(name="rgb", offset=12, datatype=PointField.FLOAT32, count=1),
]
XYZRGB_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": ["<f4"] * 4, "offsets": [0, 4, 8, 12],
                         "itemsize": 16})


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 (or float in [0, 1]) -> (N,) float32 holding 0x00RRGGBB bit patterns."""
    rgb = np.asarray(rgb)
    if np.issubdtype(rgb.dtype, np.floating):
        rgb = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif rgb.dtype != np.uint8:
        raise ConversionError("rgb", f"expected uint8 or float in [0, 1], got {rgb.dtype}")
    if rgb.ndim != 2 or rgb.shape[1] != 3:
        raise ConversionError("rgb", f"expected shape (N, 3), got {rgb.shape}")
    # Little-endian bytes B, G, R, 0 are the uint32 0x00RRGGBB.
    packed = np.zeros((rgb.shape[0], 4), dtype=np.uint8)
    packed[:, 0], packed[:, 1], packed[:, 2] = rgb[:, 2], rgb[:, 1], rgb[:, 0]
    return packed.view("<f4").reshape(-1)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """(N,) float32/uint32 packed 0x00RRGGBB -> (N, 3) uint8."""
    u = np.ascontiguousarray(packed).view(np.uint32)
    return np.stack([(u >> 16) & 255, (u >> 8) & 255, u & 255], axis=-1).astype(np.uint8)


def xyzrgb_to_pointcloud2(xyz: np.ndarray, rgb: np.ndarray | None, header=None,
                          organised_shape: tuple[int, int] | None = None) -> PointCloud2:
    """PointCloud2 from (N, 3) positions and (N, 3) colours (uint8 or float in [0, 1]).

    Args:
        organised_shape: (height, width) with height x width = N for an organised cloud; None = (1, N).
        header: std_msgs/Header (frame and stamp).
    """
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ConversionError("xyz", f"expected shape (N, 3), got {xyz.shape}")
    n = xyz.shape[0]
    height, width = organised_shape if organised_shape is not None else (1, n)
    if height * width != n or height < 0 or width < 0:
        raise ConversionError("organised_shape", f"{height} x {width} does not hold {n} points")
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != (n, 3):
            raise ConversionError("rgb", f"expected shape ({n}, 3) to match xyz, got {rgb.shape}")
    # Fill the message's own buffer in place: the generated setter takes an array.array('B') as is,
    # so the 16 bytes per point are written once and never copied again.
    data = array.array("B", bytes(16 * n))
    if n:
        flat = np.frombuffer(data, dtype="<f4").reshape(n, 4)
        flat[:, :3] = xyz
        if rgb is not None:
            flat.view("<u4")[:, 3] = pack_rgb(rgb).view(np.uint32)
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(height), int(width)
    msg.fields = list(XYZRGB_FIELDS)
    msg.is_bigendian = False
    msg.point_step = 16
    msg.row_step = 16 * int(width)
    msg.is_dense = False  # as sensor_msgs_py's create_cloud: no promise that every point is finite
    msg.data = data
    return msg


def fields_dtype(fields, point_step: int, big_endian: bool) -> np.dtype:
    """Structured dtype for a PointField list; validates names, types, overlaps and sizes."""
    if point_step <= 0:
        raise ConversionError("point_step", f"must be positive, got {point_step}")
    names, formats, offsets, spans = [], [], [], []
    order = ">" if big_endian else "<"
    for i, f in enumerate(fields):
        if f.datatype not in DATATYPES:
            raise ConversionError(f"fields[{i}].datatype", f"unknown datatype {f.datatype} for field {f.name!r}")
        if not f.name or f.name in names:
            raise ConversionError(f"fields[{i}].name", f"empty or repeated field name {f.name!r}")
        count = max(int(f.count), 1)
        base = DATATYPES[f.datatype].newbyteorder(order)
        size = base.itemsize * count
        if f.offset + size > point_step:
            raise ConversionError(f"fields[{i}]", f"{f.name!r} at offset {f.offset} + {size} bytes exceeds "
                                                 f"point_step {point_step}")
        spans.append((f.offset, f.offset + size, f.name))
        names.append(f.name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(int(f.offset))
    spans.sort()
    for (a0, a1, an), (b0, _, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            raise ConversionError("fields", f"{an!r} and {bn!r} overlap")
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})


def pointcloud2_to_array(msg: PointCloud2) -> np.ndarray:
    """Structured array, shape (height, width) or (width,) when height == 1, viewing ``msg.data`` if possible."""
    dtype = fields_dtype(msg.fields, int(msg.point_step), bool(msg.is_bigendian))
    h, w = int(msg.height), int(msg.width)
    row = int(msg.point_step) * w
    if int(msg.row_step) < row:
        raise ConversionError("row_step", f"{msg.row_step} is less than point_step x width = {row}")
    buf = as_bytes_array(msg.data, "data")
    if buf.size != int(msg.row_step) * h:
        raise ConversionError("data", f"expected row_step x height = {int(msg.row_step) * h} bytes, got {buf.size}")
    if int(msg.row_step) == row:
        arr = buf.view(dtype) if buf.size else np.empty(0, dtype)
    else:
        arr = np.ascontiguousarray(buf.reshape(h, int(msg.row_step))[:, :row]).reshape(-1).view(dtype)
    return arr if h == 1 else arr.reshape(h, w)


def pointcloud2_to_xyzrgb(msg: PointCloud2, skip_nans: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 3) float32 positions and (N, 3) uint8 colours (None without an rgb/rgba field), flattened."""
    arr = pointcloud2_to_array(msg).reshape(-1)
    names = arr.dtype.names or ()
    for axis in "xyz":
        if axis not in names:
            raise ConversionError("fields", f"no {axis!r} field (have {list(names)})")
    xyz = np.stack([arr["x"], arr["y"], arr["z"]], axis=-1).astype(np.float32)
    colour_field = "rgb" if "rgb" in names else ("rgba" if "rgba" in names else None)
    rgb = None
    if colour_field is not None:
        packed = arr[colour_field]
        if packed.dtype.itemsize != 4 or packed.ndim != 1:
            raise ConversionError(f"fields.{colour_field}", "expected one 4-byte packed colour per point")
        rgb = unpack_rgb(packed.astype(packed.dtype.newbyteorder("=")))
    if skip_nans:
        keep = np.isfinite(xyz).all(axis=1)
        xyz = xyz[keep]
        rgb = rgb[keep] if rgb is not None else None
    return xyz, rgb
