"""Middlebury stereo reader: the real Motorcycle pair (skipped when absent), error handling on tiny files."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from worldstereo_ros.datasets.middlebury import StereoPair, read_middlebury
from worldstereo_ros.datasets.shared_data import shared_data_dir
from worldstereo_ros.errors import InputError

FILES = ("motorcycle_left.png", "motorcycle_right.png", "motorcycle_disp.npz")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pair() -> StereoPair:
    folder = shared_data_dir() / "middlebury-motorcycle"
    if not all((folder / f).is_file() for f in FILES):
        pytest.skip(f"Middlebury Motorcycle data not found at {folder} "
                    "(set WORLDSTEREO_DATA to the shared data folder)")
    return read_middlebury(folder)


def test_shapes_dtypes_and_calibration(pair):
    h, w = pair.left.shape[:2]
    assert (h, w) == (500, 741)
    assert pair.left.shape == pair.right.shape == (h, w, 3)
    assert pair.left.dtype == pair.right.dtype == np.uint8
    assert pair.disparity.shape == pair.depth_m.shape == (h, w)
    assert pair.disparity.dtype == pair.depth_m.dtype == np.float32
    assert pair.K.dtype == np.float64
    np.testing.assert_allclose(pair.K, [[994.978, 0, 370.0], [0, 994.978, 249.5], [0, 0, 1]])
    assert pair.baseline_m == pytest.approx(0.193001)
    assert pair.doffs_px == pytest.approx(31.086)
    # unknown disparity <-> unknown depth
    np.testing.assert_array_equal(np.isnan(pair.disparity), pair.depth_m == 0)


def test_depth_is_plausible_metres(pair):
    valid = pair.depth_m > 0
    print(f"\nmotorcycle: {valid.mean():.3f} of pixels valid, depth {pair.depth_m[valid].min():.2f}.."
          f"{pair.depth_m[valid].max():.2f} m, median {np.median(pair.depth_m[valid]):.2f} m")
    assert valid.mean() > 0.85
    assert 1.5 < pair.depth_m[valid].min() and pair.depth_m[valid].max() < 6.0
    assert 2.0 < np.median(pair.depth_m[valid]) < 4.0
    # Z = f B / (d + doffs) at one valid pixel
    y, x = np.argwhere(valid)[1234]
    assert pair.depth_m[y, x] == pytest.approx(994.978 * 0.193001 / (pair.disparity[y, x] + 31.086), rel=1e-5)


def test_disparity_explains_the_pair(pair):
    h, w = pair.disparity.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    d = np.nan_to_num(pair.disparity, nan=0.0)
    left = pair.left.astype(np.float32)

    def warp_error(disp):
        map_x = xs - disp
        warped = cv2.remap(pair.right.astype(np.float32), map_x, ys, cv2.INTER_LINEAR)
        # the same pixels for both disparities: known ground truth, inside the right image either way
        valid = np.isfinite(pair.disparity) & (xs - d >= 0) & (xs - d <= w - 1)
        return float(np.abs(warped - left)[valid].mean())

    err_gt = warp_error(d)
    err_zero = warp_error(np.zeros_like(d))
    err_flipped = warp_error(-d)  # the opposite sign convention, x_right = x_left + d
    print(f"\nright warped into left: mean |diff| {err_gt:.2f} (gt disparity) vs {err_zero:.2f} "
          "(zero disparity), "
          f"{err_flipped:.2f} (sign flipped)")
    assert err_gt * 2.0 < err_zero
    assert err_gt * 2.0 < err_flipped
    assert err_gt < 15.0


# ---------------------------------------------------------------------------------------------------
# error handling on tiny synthetic files (no real data needed)


def _write(folder, h=6, w=8, right_w=None, disp_shape=None, skip=()):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    if "motorcycle_left.png" not in skip:
        cv2.imwrite(str(folder / "motorcycle_left.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    if "motorcycle_right.png" not in skip:
        right = rng.integers(0, 255, (h, right_w or w, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / "motorcycle_right.png"), right)
    if "motorcycle_disp.npz" not in skip:
        disp = np.full(disp_shape or (h, w), 10.0, dtype=np.float32)
        disp[0, 0] = np.inf
        np.savez(folder / "motorcycle_disp.npz", disp)
    return folder


def test_tiny_folder_reads(tmp_path):
    pair = read_middlebury(_write(tmp_path / "ok"), focal_px=100.0, baseline_mm=200.0, doffs_px=10.0)
    assert np.isnan(pair.disparity[0, 0]) and pair.depth_m[0, 0] == 0
    assert pair.depth_m[1, 1] == pytest.approx(100.0 * 0.2 / 20.0)
    np.testing.assert_allclose(pair.K[:2, 2], [3.5, 2.5])


@pytest.mark.parametrize("missing", FILES)
def test_missing_file_is_named(tmp_path, missing):
    folder = _write(tmp_path / "data", skip=(missing,))
    with pytest.raises(InputError, match=missing.replace(".", r"\.")) as err:
        read_middlebury(folder)
    assert err.value.field == "folder"


def test_missing_folder_and_bad_values(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        read_middlebury(tmp_path / "nowhere")
    folder = _write(tmp_path / "data")
    with pytest.raises(InputError) as err:
        read_middlebury(folder, focal_px=0.0)
    assert err.value.field == "focal_px"
    with pytest.raises(InputError) as err:
        read_middlebury(folder, baseline_mm=float("nan"))
    assert err.value.field == "baseline_mm"


def test_shape_disagreement_names_the_file(tmp_path):
    with pytest.raises(InputError, match=r"motorcycle_right\.png"):
        read_middlebury(_write(tmp_path / "a", right_w=9))
    with pytest.raises(InputError, match=r"motorcycle_disp\.npz"):
        read_middlebury(_write(tmp_path / "b", disp_shape=(6, 7)))


def test_unreadable_disparity_file_is_named(tmp_path):
    folder = _write(tmp_path / "data")
    (folder / "motorcycle_disp.npz").write_bytes(b"not an npz")
    with pytest.raises(InputError, match=r"motorcycle_disp\.npz"):
        read_middlebury(folder)


# ---------------------------------------------------------------------------------------------------
# the other Middlebury layouts (issue 11): tiny synthetic folders written here


def _write_pfm(path, disp: np.ndarray) -> None:
    """Little-endian single-channel PFM, rows bottom to top as the format stores them."""
    h, w = disp.shape
    path.write_bytes(f"Pf\n{w} {h}\n-1.0\n".encode() + np.flipud(disp).astype("<f4").tobytes())


def _images(folder, names, h=6, w=8):
    rng = np.random.default_rng(1)
    for n in names:
        cv2.imwrite(str(folder / n), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_2014_layout_reads_calib_txt(tmp_path):
    folder = tmp_path / "Adirondack-perfect"
    folder.mkdir()
    _images(folder, ("im0.png", "im1.png"))
    disp = np.arange(48, dtype=np.float32).reshape(6, 8) + 5.0  # row 0 differs from row 5: catches a flip
    disp[2, 3] = np.inf
    _write_pfm(folder / "disp0.pfm", disp)
    (folder / "calib.txt").write_text("cam0=[400.5 0 3.25; 0 400.5 2.75; 0 0 1]\ncam1=[400.5 0 5.25; 0 400.5 2.75; "
                                      "0 0 1]\ndoffs=2.0\nbaseline=100.0\nwidth=8\nheight=6\nndisp=64\n")
    pair = read_middlebury(folder)
    np.testing.assert_allclose(pair.K, [[400.5, 0, 3.25], [0, 400.5, 2.75], [0, 0, 1]])
    assert pair.baseline_m == pytest.approx(0.1) and pair.doffs_px == 2.0
    assert pair.disparity[0, 0] == 5.0 and pair.disparity[5, 7] == 52.0
    assert np.isnan(pair.disparity[2, 3]) and pair.depth_m[2, 3] == 0
    assert pair.depth_m[0, 0] == pytest.approx(400.5 * 0.1 / (5.0 + 2.0))
    # a given value overrides calib.txt
    assert read_middlebury(folder, doffs_px=0.0).depth_m[0, 0] == pytest.approx(400.5 * 0.1 / 5.0)


def test_2005_layout_zero_disparity_is_unknown(tmp_path):
    folder = tmp_path / "Art"
    folder.mkdir()
    _images(folder, ("view1.png", "view5.png"))
    disp = np.full((6, 8), 40, np.uint8)
    disp[1, 2] = 0
    cv2.imwrite(str(folder / "disp1.png"), disp)
    with pytest.raises(InputError, match=r"calib\.txt is missing"):
        read_middlebury(folder)
    pair = read_middlebury(folder, focal_px=3740.0, baseline_mm=160.0, doffs_px=240.0)
    assert np.isnan(pair.disparity[1, 2]) and pair.depth_m[1, 2] == 0
    assert pair.depth_m[0, 0] == pytest.approx(3740.0 * 0.16 / 280.0)
    assert (pair.depth_m > 0).sum() == 47
    # 16-bit maps with a scale
    cv2.imwrite(str(folder / "disp1.png"), (disp.astype(np.uint16) * 256))
    pair16 = read_middlebury(folder, focal_px=3740.0, baseline_mm=160.0, doffs_px=240.0, disparity_scale=256.0)
    np.testing.assert_array_equal(pair16.disparity, pair.disparity)


@pytest.mark.parametrize("missing", ("im1.png", "disp0.pfm"))
def test_2014_missing_file_is_named(tmp_path, missing):
    folder = tmp_path / "p"
    folder.mkdir()
    _images(folder, [n for n in ("im0.png", "im1.png") if n != missing])
    if missing != "disp0.pfm":
        _write_pfm(folder / "disp0.pfm", np.ones((6, 8), np.float32))
    (folder / "calib.txt").write_text("cam0=[10 0 3; 0 10 2; 0 0 1]\ndoffs=0\nbaseline=50\n")
    with pytest.raises(InputError, match=missing.replace(".", r"\.")):
        read_middlebury(folder)


def test_empty_folder_lists_the_layouts(tmp_path):
    with pytest.raises(InputError, match="im0.png/im1.png/disp0.pfm"):
        read_middlebury(tmp_path)
