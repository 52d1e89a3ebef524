"""Issue 16: right-view synthesis on scenes whose answer is known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from worldstereo_ros.errors import InputError
from worldstereo_ros.stereo import synthesize_right
from worldstereo_ros.stereo.fill import BackgroundTeleaFiller, TeleaFiller
from worldstereo_ros.stereo.synthesis import complete_disparity_background, right_view_disparity


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.1, 0.9, size=(h, w, 3)).astype(np.float32)


def test_plane_at_constant_disparity_is_a_shift():
    left = _texture(20, 40)
    disp = np.full((20, 40), 4.0, np.float32)
    view = synthesize_right(left, disp)
    # the right pixel x sees the left pixel x + 4; the last 4 columns are outside the left view
    np.testing.assert_allclose(view.right[:, :36], left[:, 4:], atol=1e-6)
    assert view.occlusion[:, 36:].all() and not view.occlusion[:, :36].any()
    np.testing.assert_allclose(view.disparity, 4.0)


def test_subpixel_disparity_is_sampled_bilinearly():
    left = np.repeat(np.linspace(0, 1, 30, dtype=np.float32)[None, :, None], 3, axis=2).repeat(5, 0)
    view = synthesize_right(left, np.full((5, 30), 2.5, np.float32))
    np.testing.assert_allclose(view.right[:, :27], left[:, 2:29] + 0.5 / 29, atol=1e-5)


def _square_scene():
    """Grey background at disparity 2, a red square at disparity 10 (columns 20..29)."""
    h, w = 30, 60
    left = np.full((h, w, 3), 0.5, np.float32)
    disp = np.full((h, w), 2.0, np.float32)
    left[10:20, 20:30] = [1.0, 0.0, 0.0]
    disp[10:20, 20:30] = 10.0
    return left, disp


def test_foreground_square_disoccludes_background_on_its_left():
    left, disp = _square_scene()
    view = synthesize_right(left, disp)
    # the square moves 10 px left, the background 2 px: 8 columns of background appear at its right
    occluded_cols = np.flatnonzero(view.occlusion[15, :50])
    np.testing.assert_array_equal(occluded_cols, np.arange(20, 28))
    np.testing.assert_allclose(view.right[15, 10:20], np.broadcast_to([1.0, 0.0, 0.0], (10, 3)), atol=1e-6)
    # the background-protected fill uses only the grey background, never the red edge
    np.testing.assert_allclose(view.right[15, 20:28], 0.5, atol=0.02)
    np.testing.assert_allclose(view.disparity[15, 20:28], 2.0)


def test_plain_telea_bleeds_foreground_into_the_hole():
    # guards the reason for the background filler: the same hole with plain Telea is not background
    left, disp = _square_scene()
    view = synthesize_right(left, disp, filler=TeleaFiller())
    assert np.abs(view.right[15, 20:28] - 0.5).max() > 0.05


def test_unknown_disparity_is_completed_from_the_background():
    disp = np.array([[1.0, np.nan, np.nan, 9.0, 9.0]], np.float32)
    np.testing.assert_array_equal(complete_disparity_background(disp), [[1.0, 1.0, 1.0, 9.0, 9.0]])
    assert np.isnan(disp[0, 1])  # input untouched


def test_right_disparity_z_buffer_keeps_the_nearest():
    disp = np.array([[0.0, 0.0, 3.0, 3.0, 0.0, 0.0]], np.float32)
    right = right_view_disparity(disp)
    # columns 2, 3 land on right 0..0 -> near surface wins at right pixel 0
    assert right[0, 0] == 3.0


def test_inputs_are_not_modified():
    left, disp = _square_scene()
    disp[0, 0] = np.nan
    left_copy, disp_copy = left.copy(), disp.copy()
    synthesize_right(left, disp)
    np.testing.assert_array_equal(left, left_copy)
    np.testing.assert_array_equal(disp, disp_copy)


def test_deterministic():
    left, disp = _square_scene()
    a, b = synthesize_right(left, disp), synthesize_right(left, disp)
    np.testing.assert_array_equal(a.right, b.right)


@pytest.mark.parametrize("rgb, disp, field", [
    (np.zeros((4, 5)), np.zeros((4, 5)), "left_rgb"),
    (np.zeros((4, 5, 3), np.float32), np.zeros((4, 6)), "left_disparity"),
    (np.zeros((4, 5, 3), np.float32), np.full((4, 5), np.nan), "left_disparity"),
    (np.zeros((4, 5, 3), np.int32), np.zeros((4, 5)), "left_rgb"),
])
def test_bad_input_names_the_field(rgb, disp, field):
    with pytest.raises(InputError, match=field):
        synthesize_right(rgb, disp)


def test_filler_rejects_bad_options():
    with pytest.raises(InputError, match="band_px"):
        BackgroundTeleaFiller(band_px=0)


def test_generator_backend_fills_only_the_occlusions():
    from worldstereo_ros.stereo.fill import create_filler

    left, disp = _square_scene()
    K = np.array([[50.0, 0, 29.5], [0, 50.0, 14.5], [0, 0, 1]])
    filler = create_filler("render_fill", K, fx_baseline=50.0 * 0.1)
    view = synthesize_right(left, disp, filler=filler)
    plain = synthesize_right(left, disp)
    np.testing.assert_array_equal(view.right[~view.occlusion], plain.right[~plain.occlusion])
    assert np.isfinite(view.right).all() and view.right.min() >= 0 and view.right.max() <= 1


def test_unknown_filler_lists_the_valid_ones():
    from worldstereo_ros.stereo.fill import create_filler

    with pytest.raises(InputError, match="classical"):
        create_filler("magic")
