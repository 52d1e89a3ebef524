"""Forward–backward disocclusion holes on scenes checkable by hand."""

from __future__ import annotations

import numpy as np
import pytest

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.forward_backward import forward_backward_holes, sample_pairs

W, H = 64, 48
K = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1.0]])


def _pose(tx: float = 0.0, tz: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    T[0, 3], T[2, 3] = tx, tz
    return T


def _wall_with_box() -> tuple[np.ndarray, np.ndarray]:
    """A wall at 4 m with a box face at 2 m covering the central columns 24..39."""
    depth = np.full((H, W), 4.0, np.float32)
    depth[:, 24:40] = 2.0
    rgb = np.random.default_rng(0).random((H, W, 3)).astype(np.float32)
    return rgb, depth


def test_same_pose_has_no_holes():
    rgb, depth = _wall_with_box()
    fb = forward_backward_holes(rgb, depth, K, _pose(), _pose())
    assert not fb.hole.any()
    np.testing.assert_array_equal(fb.rgb, rgb)


def test_sideways_move_hides_the_wall_beside_the_box():
    rgb, depth = _wall_with_box()
    rgb_before = rgb.copy()
    # Moving 0.2 m right shifts the box by 50*0.2/2 = 5 px and the wall by 2.5 px to the left: the wall
    # columns just left of the box (about 2-3 px wide) go behind it, and the wall's leftmost 2 columns
    # leave the view.
    fb = forward_backward_holes(rgb, depth, K, _pose(), _pose(tx=0.2))
    wall_hidden = fb.hole[:, 20:24].sum(axis=1)
    assert np.all((wall_hidden >= 2) & (wall_hidden <= 3)), wall_hidden
    assert not fb.hole[:, 24:40].any(), "the near box face is never hidden"
    assert fb.hole[:, :2].all() and not fb.hole[:, 2:20].any() and not fb.hole[:, 40:].any()
    np.testing.assert_array_equal(rgb, rgb_before)  # the input is not modified
    assert np.all(fb.rgb[fb.hole] == 0) and np.all(fb.depth[fb.hole] == 0)


def test_moving_back_keeps_everything_visible():
    rgb, depth = _wall_with_box()
    # Stepping straight back shrinks the image: several points share a pixel of j but none is occluded.
    fb = forward_backward_holes(rgb, depth, K, _pose(), _pose(tz=-1.0))
    assert fb.hole_fraction < 0.02


def test_unknown_depth_is_never_a_hole():
    rgb, depth = _wall_with_box()
    depth[:5] = 0.0
    depth[5, :] = np.nan
    fb = forward_backward_holes(rgb, depth, K, _pose(), _pose(tx=0.5))
    assert not fb.hole[:6].any() and not fb.valid[:6].any()


def test_bad_input_names_the_field():
    rgb, depth = _wall_with_box()
    with pytest.raises(InputError, match="rgb"):
        forward_backward_holes(rgb[:, :10], depth, K, _pose(), _pose())
    with pytest.raises(InputError, match="T_world_j"):
        forward_backward_holes(rgb, depth, K, _pose(), np.eye(3))


def test_pairs_are_seeded_and_stay_in_the_split():
    pairs = sample_pairs(range(200, 300), 40, 5, 60, seed=3)
    assert pairs == sample_pairs(range(200, 300), 40, 5, 60, seed=3)
    assert pairs != sample_pairs(range(200, 300), 40, 5, 60, seed=4)
    assert all(200 <= i < 300 and 200 <= j < 300 and 5 <= abs(i - j) <= 60 for i, j in pairs)
    with pytest.raises(InputError, match="frames"):
        sample_pairs(range(0, 4), 3, 5, 60)
