"""Frame images, depth PNGs, masks, contact sheets and videos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from worldstereo_ros.errors import InputError
from worldstereo_ros.io.images import (
    contact_sheet,
    tint_imagined,
    to_uint8,
    write_depth_png,
    write_mask_png,
    write_rgb_png,
)
from worldstereo_ros.io.video import write_video


def test_depth_png_is_uint16_millimetres_with_zero_unknown(tmp_path):
    depth = np.array([[0.0, 1.2344], [np.nan, 70.0]], np.float32)
    raw = cv2.imread(str(write_depth_png(tmp_path / "d.png", depth)), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    assert raw.tolist() == [[0, 1234], [0, 65534]]  # rounded to mm, clipped below 65535


def test_rgb_and_mask_pngs_read_back(tmp_path):
    rgb = np.zeros((3, 4, 3), np.float32)
    rgb[0, 0] = (1.0, 0.0, 0.0)
    bgr = cv2.imread(str(write_rgb_png(tmp_path / "c.png", rgb)))
    assert bgr[0, 0].tolist() == [0, 0, 255]  # red, in OpenCV's BGR order
    mask = np.eye(3, 4, dtype=bool)
    m = cv2.imread(str(write_mask_png(tmp_path / "m.png", mask)), cv2.IMREAD_UNCHANGED)
    assert (m == 255).tolist() == mask.tolist()


def test_to_uint8_rounds_and_clips():
    assert to_uint8(np.array([[-0.1, 0.5, 1.2]])).tolist() == [[0, 128, 255]]


def test_tint_changes_only_imagined_pixels():
    rgb = np.full((2, 2, 3), 0.5, np.float32)
    mask = np.array([[True, False], [False, False]])
    out = tint_imagined(rgb, mask)
    assert out[0, 0].tolist() != out[0, 1].tolist()
    assert (out[1] == to_uint8(rgb)[1]).all()


def test_contact_sheet_has_one_strip_per_row():
    frames = np.zeros((7, 30, 40, 3), np.float32)
    sheet = contact_sheet([("a", frames), ("b", frames[:2])], columns=3, thumb_width=40, label_px=10)
    assert sheet.dtype == np.uint8
    assert sheet.shape == (2 * (10 + 30), 3 * 40 + 2 * 2, 3)
    with pytest.raises(InputError, match="rows"):
        contact_sheet([("bad", np.zeros((2, 3)))])


def test_video_has_every_frame(tmp_path):
    frames = np.zeros((6, 31, 41, 3), np.uint8)  # odd size: padded to even for H.264
    frames[:, :, :, 0] = np.arange(6)[:, None, None] * 40
    path = write_video(tmp_path / "v.mp4", frames, fps=5)
    cap = cv2.VideoCapture(str(path))
    count = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        count += 1
        assert frame.shape[:2] == (32, 42)
    assert count == 6
    with pytest.raises(InputError, match="frames"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 4, 4)))
