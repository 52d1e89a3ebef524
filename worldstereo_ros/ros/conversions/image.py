"""sensor_msgs/Image and CompressedImage <-> numpy.

Numpy side: colour images are uint8 (H, W, 3) RGB (alpha dropped) or (H, W, 4) for the *a8
encodings via :func:`image_to_numpy`; depth is float32 metres with 0 = unknown
(:func:`depth_from_image`: 16UC1/mono16 millimetres, 0 invalid; 32FC1 metres, NaN/inf/<= 0 invalid).
``step`` padding and ``is_bigendian`` are honoured.

Nothing is allocated from a size a message declares: a raw Image's data must already hold
height x step bytes, and a CompressedImage's header is read (Pillow, no pixel decoding) and refused above
:data:`MAX_DECODED_PIXELS` before it is decoded (a 1 MB PNG can declare 20000 x 20000 pixels: 1.2 GB).
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
import PIL.Image
from sensor_msgs.msg import CompressedImage, Image

from worldstereo_ros.errors import ConversionError
from worldstereo_ros.geometry.depth_units import depth_m_to_units, depth_units_to_m

# encoding -> (dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
    "32FC3": (np.dtype(np.float32), 3),
    "32SC1": (np.dtype(np.int32), 1),
}
#: Largest width x height a CompressedImage may declare (an 8K frame); larger ones are refused undecoded.
MAX_DECODED_PIXELS = 7680 * 4320

COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")


def as_bytes_array(data, field: str) -> np.ndarray:
    """A uint8 view of a message's byte field (array.array, bytes or a list of ints)."""
    try:
        if isinstance(data, (list, tuple)):
            return np.asarray(data, dtype=np.uint8)
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, OverflowError) as err:
        raise ConversionError(field, f"not a byte buffer: {err}") from None


def _check_encoding(encoding: str, allowed) -> tuple[np.dtype, int]:
    if encoding not in allowed:
        raise ConversionError("encoding", f"unsupported {encoding!r}; supported: {', '.join(allowed)}")
    return ENCODINGS[encoding]


def image_to_numpy(msg: Image) -> np.ndarray:
    """The pixels of ``msg`` as (H, W) or (H, W, C) in the encoding's own dtype and channel order.

    Returns a read-only view of ``msg.data`` where the layout allows (no padding, native byte order).
    """
    dtype, channels = _check_encoding(msg.encoding, tuple(ENCODINGS))
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ConversionError("height" if h <= 0 else "width", f"must be positive, got {h}x{w}")
    row_bytes = w * channels * dtype.itemsize
    if step < row_bytes:
        raise ConversionError("step", f"{step} is less than width x bytes per pixel = {row_bytes}")
    buf = as_bytes_array(msg.data, "data")
    if buf.size != h * step:
        raise ConversionError("data", f"expected height x step = {h * step} bytes, got {buf.size}")
    rows = buf.reshape(h, step)[:, :row_bytes]
    big = bool(msg.is_bigendian)
    pixel_dtype = dtype.newbyteorder(">" if big else "<") if dtype.itemsize > 1 else dtype
    if step == row_bytes:
        arr = rows.reshape(-1).view(pixel_dtype)
    else:
        arr = np.ascontiguousarray(rows).reshape(-1).view(pixel_dtype)
    if pixel_dtype != dtype:
        arr = arr.astype(dtype)
    arr = arr.reshape(h, w, channels) if channels > 1 else arr.reshape(h, w)
    return arr


def rgb_from_image(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any colour encoding (mono is replicated, alpha dropped)."""
    _check_encoding(msg.encoding, COLOUR_ENCODINGS)
    arr = image_to_numpy(msg)
    if msg.encoding in ("mono8", "8UC1"):
        return np.repeat(arr[:, :, None], 3, axis=2)
    if msg.encoding.startswith("bgr"):
        arr = arr[:, :, 2::-1]
    return np.ascontiguousarray(arr[:, :, :3])


def depth_from_image(msg: Image) -> np.ndarray:
    """(H, W) float32 metres, 0 = unknown, from 16UC1/mono16 (mm; 0 and 65535 unknown) or 32FC1 (m)."""
    _check_encoding(msg.encoding, DEPTH_ENCODINGS)
    arr = image_to_numpy(msg)
    if arr.dtype == np.uint16:
        return depth_units_to_m(arr)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(arr) & (arr > 0), arr, np.float32(0)).astype(np.float32)


def numpy_to_image(array: np.ndarray, encoding: str, header=None) -> Image:
    """An Image holding ``array`` ((H, W) or (H, W, C) matching ``encoding``), little-endian, no padding."""
    dtype, channels = _check_encoding(encoding, tuple(ENCODINGS))
    array = np.asarray(array)
    expected = (channels,) if channels > 1 else ()
    if array.ndim != 2 + (channels > 1) or array.shape[2:] != expected or array.shape[0] < 1 or array.shape[1] < 1:
        raise ConversionError("array", f"expected shape (H, W{', ' + str(channels) if channels > 1 else ''}) for "
                                       f"{encoding}, got {array.shape}")
    if array.dtype != dtype:
        raise ConversionError("array", f"expected dtype {dtype} for {encoding}, got {array.dtype}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")).tobytes()
    return msg


def rgb_to_image(rgb: np.ndarray, header=None) -> Image:
    """rgb8 Image from (H, W, 3) uint8, or float in [0, 1] (rounded)."""
    rgb = np.asarray(rgb)
    if np.issubdtype(rgb.dtype, np.floating):
        rgb = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return numpy_to_image(rgb, "rgb8", header)


def depth_to_image(depth_m: np.ndarray, encoding: str = "32FC1", header=None) -> Image:
    """Depth image from (H, W) metres (0 = unknown): 32FC1 metres or 16UC1 millimetres (saturating at 65534)."""
    depth_m = np.asarray(depth_m, dtype=np.float32)
    if encoding == "32FC1":
        return numpy_to_image(depth_m, encoding, header)
    if encoding == "16UC1":
        return numpy_to_image(depth_m_to_units(depth_m), encoding, header)
    raise ConversionError("encoding", f"depth must be 32FC1 or 16UC1, got {encoding!r}")


def _check_declared_size(data: np.ndarray, fmt: str) -> None:
    """Refuse compressed ``data`` whose header is unreadable or declares more than MAX_DECODED_PIXELS."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb limit is higher than ours and warns before it raises; ours is checked below
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(io.BytesIO(data.tobytes())) as header:  # reads the header, decodes no pixels
                width, height = header.size
    except PIL.Image.DecompressionBombError as err:  # far beyond our limit too
        raise ConversionError("data", f"declares more than MAX_DECODED_PIXELS = {MAX_DECODED_PIXELS} pixels "
                                      f"({err}); refused before decoding") from None
    except (OSError, ValueError, SyntaxError) as err:  # Pillow's errors for unknown or broken headers
        raise ConversionError("data", f"could not be decoded as {fmt!r}: {err}") from None
    if width * height > MAX_DECODED_PIXELS:
        raise ConversionError("data", f"declares {width}x{height} pixels, more than MAX_DECODED_PIXELS = "
                                      f"{MAX_DECODED_PIXELS}; refused before decoding")


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg", header=None, jpeg_quality: int = 90) -> CompressedImage:
    """A CompressedImage (``format`` "jpeg" or "png", as image_transport's compressed plugin names them) from
    (H, W, 3) uint8 RGB; about a tenth of the raw bytes as JPEG, for links that cannot carry raw images."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ConversionError("rgb", f"expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if fmt not in ("jpeg", "png"):
        raise ConversionError("format", f"expected jpeg or png, got {fmt!r}")
    if not 1 <= jpeg_quality <= 100:
        raise ConversionError("jpeg_quality", f"expected 1..100, got {jpeg_quality}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ConversionError("rgb", f"OpenCV could not encode the image as {fmt}")
    msg = CompressedImage(format=fmt)
    if header is not None:
        msg.header = header
    msg.data = buf.tobytes()
    return msg


def compressed_to_numpy(msg: CompressedImage) -> np.ndarray:
    """Decode jpeg/png: (H, W, 3) uint8 RGB for colour, (H, W) uint8/uint16 for single-channel png.

    ``format`` may be "jpeg", "png", or image_transport's "rgb8; jpeg compressed bgr8" style.
    compressedDepth's 12-byte header is skipped.
    """
    fmt = (msg.format or "").lower()
    if not any(k in fmt for k in ("jpeg", "jpg", "png")):
        raise ConversionError("format", f"unsupported {msg.format!r}; supported: jpeg, png")
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if "compresseddepth" in fmt:
        data = data[12:]
    if data.size == 0:
        raise ConversionError("data", "empty")
    _check_declared_size(data, msg.format)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ConversionError("data", f"could not be decoded as {msg.format!r}")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return img
