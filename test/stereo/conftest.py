"""Fixtures of the stereo tests: the real Middlebury pair (skips when absent), a tiny Middlebury-2014 pair writer."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def middlebury_dir() -> Path:
    """The Middlebury Motorcycle folder under $WORLDSTEREO_DATA, else ``<repo>/../shared/data``."""
    path = Path(os.environ.get("WORLDSTEREO_DATA", REPO.parent / "shared" / "data")).resolve() / "middlebury-motorcycle"
    if not (path / "motorcycle_left.png").is_file():
        pytest.skip(f"Middlebury data not found at {path} (set WORLDSTEREO_DATA to the shared data folder)")
    return path


def _write_pfm(path, disp: np.ndarray) -> None:
    h, w = disp.shape
    with open(path, "wb") as fh:  # little-endian (negative scale), rows bottom to top
        fh.write(f"Pf\n{w} {h}\n-1.0\n".encode())
        fh.write(np.flipud(disp).astype("<f4").tobytes())


def write_tiny_middlebury_2014(folder, h: int = 40, w: int = 96) -> None:
    """A Middlebury-2014-layout pair rendered by hand: a smooth background at disparity 4 and a near block
    at disparity 12, textures fixed to the left image's columns, so the right image is exact."""
    folder.mkdir()
    y, x = np.mgrid[0:h, 0:w + 16].astype(np.float32)
    bg = np.stack([0.5 + 0.3 * np.sin(x / 5.0), 0.5 + 0.3 * np.cos(y / 4.0), 0.4 + 0.2 * np.sin((x + y) / 9.0)], -1)
    fg = np.stack([0.2 + 0.1 * np.sin(x / 3.0), 0.8 - 0.0 * x, 0.3 + 0.2 * np.cos(y / 2.0)], -1)
    rows, cols = slice(4, 24), (40, 64)  # not symmetric in y: a PFM read upside down would show
    in_block = np.zeros((h, w + 16), bool)
    in_block[rows, cols[0]:cols[1]] = True
    left = np.where(in_block[:, :w, None], fg[:, :w], bg[:, :w])
    disp = np.where(in_block[:, :w], 12.0, 4.0).astype(np.float32)
    xr = np.arange(w)
    right = np.where(in_block[:, xr + 12, None], fg[:, xr + 12], bg[:, xr + 4])
    for name, img in (("im0.png", left), ("im1.png", right)):
        cv2.imwrite(str(folder / name), cv2.cvtColor((img * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
    disp[0, 0] = np.inf  # an unknown ground-truth pixel, as Middlebury marks them
    _write_pfm(folder / "disp0.pfm", disp)
    (folder / "calib.txt").write_text(f"cam0=[100 0 {w / 2}; 0 100 {h / 2}; 0 0 1]\n"
                                      f"cam1=[100 0 {w / 2}; 0 100 {h / 2}; 0 0 1]\ndoffs=0\nbaseline=50\n"
                                      f"width={w}\nheight={h}\nndisp=32\n")


@pytest.fixture
def tiny_middlebury_2014():
    """The writer of a tiny Middlebury-2014 pair: ``tiny_middlebury_2014(folder)``."""
    return write_tiny_middlebury_2014
