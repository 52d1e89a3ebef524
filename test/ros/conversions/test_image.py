"""Image/CompressedImage <-> numpy (issue 2): encodings, step padding, byte order, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image

from worldstereo_ros.errors import ConversionError
from worldstereo_ros.ros.conversions.image import (
    ENCODINGS,
    compressed_to_numpy,
    depth_from_image,
    depth_to_image,
    image_to_numpy,
    numpy_to_image,
    rgb_from_image,
    rgb_to_image,
)


def test_colour_orders_and_alpha():
    rgb = np.array([[[255, 0, 0], [0, 255, 0]]], dtype=np.uint8)  # red, green
    bgr = rgb[:, :, ::-1].copy()
    assert np.array_equal(rgb_from_image(numpy_to_image(bgr, "bgr8")), rgb)
    bgra = np.concatenate([bgr, np.full((1, 2, 1), 7, np.uint8)], axis=2)
    assert np.array_equal(rgb_from_image(numpy_to_image(bgra, "bgra8")), rgb)
    mono = np.array([[10, 200]], np.uint8)
    assert np.array_equal(rgb_from_image(numpy_to_image(mono, "mono8"))[0, 1], [200, 200, 200])


def test_step_padding_and_big_endian_depth():
    mm = np.array([[1000, 2500], [0, 65534]], dtype=np.uint16)
    msg = Image(height=2, width=2, encoding="16UC1", is_bigendian=1, step=6)  # 2 bytes of padding per row
    rows = [mm[r].astype(">u2").tobytes() + b"\xff\xff" for r in range(2)]
    msg.data = b"".join(rows)
    depth = depth_from_image(msg)
    np.testing.assert_allclose(depth, [[1.0, 2.5], [0.0, 65.534]], rtol=1e-6)
    assert depth.dtype == np.float32
    # issue 15: one depth convention for files and messages: 65535 is "no reading" (geometry.depth_units)
    mm[1, 1] = 65535
    msg.data = b"".join(mm[r].astype(">u2").tobytes() + b"\xff\xff" for r in range(2))
    assert depth_from_image(msg)[1, 1] == 0.0


def test_float_depth_invalid_values_become_zero():
    d = np.array([[1.5, np.nan], [np.inf, -2.0]], dtype=np.float32)
    out = depth_from_image(numpy_to_image(d, "32FC1"))
    np.testing.assert_array_equal(out, [[1.5, 0], [0, 0]])
    np.testing.assert_allclose(depth_from_image(depth_to_image(out, "16UC1")), out, atol=5e-4)


def test_rgb_to_image_rounds_floats_and_input_is_unchanged():
    img = np.array([[[0.0, 0.5, 1.0]]], dtype=np.float32)
    before = img.copy()
    assert list(image_to_numpy(rgb_to_image(img))[0, 0]) == [0, 128, 255]
    assert np.array_equal(img, before)


@pytest.mark.parametrize("field,change,match", [
    ("encoding", dict(encoding="yuv422"), "encoding: unsupported 'yuv422'"),
    ("step", dict(step=5), "step: 5 is less than"),
    ("data", dict(data=b"\x00" * 7), "data: expected height x step = 12 bytes, got 7"),
    ("height", dict(height=0), "height: must be positive"),
])
def test_bad_images_name_the_field(field, change, match):
    msg = Image(height=2, width=2, encoding="rgb8", step=6, data=b"\x00" * 12)
    for k, v in change.items():
        setattr(msg, k, v)
    with pytest.raises(ConversionError, match=match):
        image_to_numpy(msg)


def test_depth_rejects_colour_encodings():
    with pytest.raises(ConversionError, match="encoding: unsupported 'rgb8'; supported: 16UC1, mono16, 32FC1"):
        depth_from_image(numpy_to_image(np.zeros((2, 2, 3), np.uint8), "rgb8"))


def test_compressed_png_and_jpeg():
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4] = (200, 30, 10)
    ok, png = cv2.imencode(".png", rgb[:, :, ::-1])
    assert np.array_equal(compressed_to_numpy(CompressedImage(format="png", data=png.tobytes())), rgb)
    ok, jpg = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    dec = compressed_to_numpy(CompressedImage(format="rgb8; jpeg compressed bgr8", data=jpg.tobytes()))
    interior = np.r_[0:2, 6:8]  # jpeg rings at the edge; the channel order shows away from it
    assert np.abs(dec[:, interior].astype(int) - rgb[:, interior]).max() < 6
    mm = (np.arange(16, dtype=np.uint16) * 1000).reshape(4, 4)
    ok, png16 = cv2.imencode(".png", mm)
    assert np.array_equal(compressed_to_numpy(CompressedImage(format="png", data=png16.tobytes())), mm)
    with pytest.raises(ConversionError, match="data: could not be decoded"):
        compressed_to_numpy(CompressedImage(format="jpeg", data=b"not a jpeg"))
    with pytest.raises(ConversionError, match="format: unsupported 'tiff'"):
        compressed_to_numpy(CompressedImage(format="tiff", data=png.tobytes()))


@settings(max_examples=60, deadline=None)
@given(enc=st.sampled_from(sorted(ENCODINGS)), h=st.integers(1, 6), w=st.integers(1, 6), pad=st.integers(0, 5),
       seed=st.integers(0, 2**16))
def test_round_trip_with_padding(enc, h, w, pad, seed):
    dtype, ch = ENCODINGS[enc]
    shape = (h, w, ch) if ch > 1 else (h, w)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, size=shape).astype(dtype)
    msg = numpy_to_image(arr, enc)
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(h, -1)
    padded = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1)
    msg.step = msg.step + pad
    msg.data = padded.tobytes()
    assert np.array_equal(image_to_numpy(msg), arr)


@settings(max_examples=150, deadline=None)
@given(enc=st.one_of(st.sampled_from(sorted(ENCODINGS)), st.text(max_size=8)), h=st.integers(-2, 5),
       w=st.integers(-2, 5), step=st.integers(0, 40), n=st.integers(0, 80), big=st.booleans())
def test_malformed_images_raise_only_conversion_error(enc, h, w, step, n, big):
    msg = Image()
    try:
        msg.height, msg.width, msg.step = h, w, step
    except (AssertionError, OverflowError, ValueError):
        return  # the message class itself refuses negative sizes
    msg.encoding, msg.is_bigendian, msg.data = enc, int(big), bytes(n)
    for convert in (image_to_numpy, depth_from_image, rgb_from_image):
        try:
            convert(msg)
        except ConversionError:
            pass
