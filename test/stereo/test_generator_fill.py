"""Issue 16: generator backends as stereo occlusion fillers (render_fill's fast path, the learned fill, the
request scale)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.stereo import synthesize_right
from worldstereo_ros.stereo.fill import GeneratorFiller, RenderFillStereoFiller, create_filler, out_of_view
from worldstereo_ros.stereo.synthesis import complete_disparity_background, warp_to_right

K = np.array([[80.0, 0, 79.5], [0, 80.0, 47.5], [0, 0, 1]])


def _scene(h: int = 96, w: int = 160):
    """A smooth textured wall at disparity 3 with two near blocks (disparity 11 and 8), one at the top
    border: disocclusions inside the image, at its border and the right strip the left camera misses."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    left = np.stack([0.5 + 0.3 * np.sin(x / 6.0), 0.5 + 0.25 * np.cos(y / 5.0), 0.5 + 0.2 * np.sin((x - y) / 8.0)], -1)
    disp = np.full((h, w), 3.0, np.float32)
    left[30:70, 50:80] = np.float32([0.9, 0.2, 0.1])
    disp[30:70, 50:80] = 11.0
    left[0:20, 110:130] = np.float32([0.1, 0.2, 0.8])
    disp[0:20, 110:130] = 8.0
    return left.astype(np.float32), disp


def _warp():
    left, disp = _scene()
    return warp_to_right(left, complete_disparity_background(disp), 2.0)


@pytest.mark.parametrize("hide", [False, True])
def test_render_fill_fast_path_equals_the_backend(hide):
    # the stereo fast path skips render_fill's depth completion (stereo drops its depth): same colours,
    # up to OpenCV's Telea reading masked pixels' initial values at the image border (a few 8-bit steps)
    torch.set_num_threads(1)
    w = _warp()
    fast = create_filler("render_fill", K, 80.0 * 0.1)
    assert isinstance(fast, RenderFillStereoFiller) and fast._direct and not fast.hide_foreground
    fast.hide_foreground = hide
    backend = GeneratorFiller("render_fill", K, 80.0 * 0.1, hide_foreground=hide, fill_border=fast.fill_border)
    a = fast.fill(w.rgb, w.occlusion, w.right_full, w.right_observed)
    b = backend.fill(w.rgb, w.occlusion, w.right_full, w.right_observed)
    diff = np.abs(a - b).max(axis=2)
    assert w.occlusion.sum() > 400
    assert diff.max() <= 5.0 / 255.0
    assert (diff > 1e-6).mean() < 0.01


def test_render_fill_mirror_colours_run_the_backend():
    torch.set_num_threads(1)
    w = _warp()
    mirror = RenderFillStereoFiller(K, 80.0 * 0.1, colour_fill="mirror")
    assert not mirror._direct
    out = mirror.fill(w.rgb, w.occlusion, w.right_full, w.right_observed)
    backend = GeneratorFiller(mirror.backend, K, 80.0 * 0.1, hide_foreground=False, fill_border=True)
    np.testing.assert_array_equal(out, backend.fill(w.rgb, w.occlusion, w.right_full, w.right_observed))


@pytest.mark.parametrize("name", ["render_fill", "learned"])
def test_generator_fill_at_half_size_changes_only_the_occlusions(name):
    torch.set_num_threads(1)
    left, disp = _scene()
    filler = create_filler(name, K, 80.0 * 0.1, scale=0.5)
    view = synthesize_right(left, disp, filler=filler)
    plain = synthesize_right(left, disp)
    np.testing.assert_array_equal(view.right[~view.occlusion], plain.right[~plain.occlusion])
    assert np.isfinite(view.right).all() and view.right.min() >= 0 and view.right.max() <= 1
    assert np.abs(view.right - plain.right)[view.occlusion].max() > 0.01  # the backend did paint the holes


def test_learned_fill_defaults_to_a_reduced_size():
    torch.set_num_threads(1)
    filler = create_filler("learned", K, 80.0 * 0.1)
    assert isinstance(filler, GeneratorFiller) and filler.name == "learned" and filler.scale == 0.4
    assert filler.hide_foreground


def test_hiding_the_occluder_keeps_its_colour_out_of_the_fill():
    # the red block's edge beside the disocclusion is hidden from the backend: the strip takes the wall's colours
    torch.set_num_threads(1)
    w = _warp()
    strip = (slice(35, 65), slice(71, 76))
    reds = {}
    for hide in (False, True):
        filler = GeneratorFiller("render_fill", K, 80.0 * 0.1, hide_foreground=hide)
        out = filler.fill(w.rgb, w.occlusion, w.right_full, w.right_observed)
        np.testing.assert_array_equal(out[~w.occlusion], w.rgb[~w.occlusion])
        reds[hide] = out[strip][..., 0].mean()
    assert reds[True] < reds[False] - 0.05


@pytest.mark.parametrize("scale", [0.0, 1.5, True])
def test_bad_scale_names_the_field(scale):
    with pytest.raises(InputError, match="scale"):
        GeneratorFiller("render_fill", K, 8.0, scale=scale)


def test_out_of_view_strip_by_hand():
    occ = np.array([[0, 1, 0, 1, 1],   # a disocclusion at 1, the strip at 3-4
                    [1, 1, 1, 1, 1],   # nothing covered: no row edge to extend, not a strip
                    [0, 0, 0, 0, 0]], bool)
    strip, last = out_of_view(occ)
    assert strip.tolist() == [[False, False, False, True, True], [False] * 5, [False] * 5]
    assert last.tolist() == [2, -1, 4]


def test_border_strip_repeats_the_row_edge_and_the_backend_fills_the_rest():
    torch.set_num_threads(1)
    w = _warp()
    strip, last = out_of_view(w.occlusion)
    assert strip.sum() > 100 and (w.occlusion & ~strip).sum() > 100
    filler = create_filler("render_fill", K, 80.0 * 0.1)
    assert not filler.fill_border
    out = filler.fill(w.rgb, w.occlusion, w.right_full, w.right_observed)
    rows, cols = np.nonzero(strip)
    np.testing.assert_array_equal(out[rows, cols], w.rgb[rows, last[rows]])
    full = RenderFillStereoFiller(K, 80.0 * 0.1, fill_border=True).fill(w.rgb, w.occlusion, w.right_full,
                                                                         w.right_observed)
    assert np.abs(full - out)[strip].max() > 0.01  # the backend paints the strip only when asked
