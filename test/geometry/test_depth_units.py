"""Depth m <-> uint16 units in one place, with one saturation value (issue 15: four copies clipped at 65534
or 65535)."""

from __future__ import annotations

import numpy as np
import pytest

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.depth_units import MAX_DEPTH_UNITS, NO_READING, depth_m_to_units, depth_units_to_m


def test_round_trip_at_millimetres():
    depth = np.array([[0.0, 0.0004, 0.0016, 1.2344], [2.5, 65.534, 70.0, -1.0]], np.float32)
    units = depth_m_to_units(depth)
    assert units.dtype == np.uint16
    assert units.tolist() == [[0, 0, 2, 1234], [2500, 65534, MAX_DEPTH_UNITS, 0]]
    back = depth_units_to_m(units)
    assert back.dtype == np.float32
    assert np.allclose(back, [[0, 0, 0.002, 1.234], [2.5, 65.534, 65.534, 0]], atol=1e-6)
    assert (depth_units_to_m(depth_m_to_units(back)) == back).all()  # a second round trip changes nothing


def test_unknown_values_both_ways():
    assert depth_m_to_units(np.array([np.nan, np.inf, -np.inf])).tolist() == [0, 0, 0]
    raw = np.array([0, 1, NO_READING - 1, NO_READING], np.uint16)
    assert depth_units_to_m(raw).tolist() == pytest.approx([0.0, 0.001, 65.534, 0.0])


def test_other_scales():
    # TUM RGB-D: 5000 units per metre
    assert depth_m_to_units(np.array([1.0, 2.5]), 1 / 5000).tolist() == [5000, 12500]
    assert depth_units_to_m(np.array([5000], np.uint16), 1 / 5000).tolist() == [1.0]


@pytest.mark.parametrize("call, match", [(lambda: depth_units_to_m(np.zeros(3, np.float32)), "depth: expected uint16"),
                                         (lambda: depth_units_to_m(np.zeros(3, np.uint16), 0.0), "depth_scale_m"),
                                         (lambda: depth_m_to_units(np.zeros(3), -1.0), "depth_scale_m")])
def test_bad_input(call, match):
    with pytest.raises(InputError, match=match):
        call()
