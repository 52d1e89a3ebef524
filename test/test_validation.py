"""The one module of scalar checks (issue 15: about eight ad-hoc copies)."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from worldstereo_ros import validation
from worldstereo_ros.errors import ConfigError, InputError
from worldstereo_ros.validation import check_bool, check_float, check_int, check_positive


def test_doc_examples():
    assert doctest.testmod(validation).failed == 0


def test_values_come_back_converted():
    assert check_int("n", np.int64(3), 1, 5) == 3 and type(check_int("n", np.int64(3), 1)) is int
    assert check_float("x", 2, 0.0) == 2.0 and check_float("x", 0.0, 0.0, lo_open=False) == 0.0
    assert check_positive("x", np.float32(0.5)) == 0.5


@pytest.mark.parametrize("call, match", [
    (lambda: check_int("n", True, 0), "n: expected an int >= 0, got True"),
    (lambda: check_int("n", 2.0, 0), "n: expected an int >= 0"),
    (lambda: check_int("n", 9, 1, 8), r"n: expected an int in \[1, 8\], got 9"),
    (lambda: check_float("x", math.nan, 0.0), r"x: expected a float in \(0.0, inf\], got nan"),
    (lambda: check_float("x", 0.0, 0.0), r"x: expected a float in \(0.0"),
    (lambda: check_float("x", 11.0, 0.0, 10.0), r"x: expected a float in \(0.0, 10.0\]"),
    (lambda: check_positive("x", "1"), "x: expected a float"),
    (lambda: check_float("x", 1.0, 0.0, 1.0, lo_open=False, hi_open=True),
     r"x: expected a float in \[0.0, 1.0\), got 1.0"),
    (lambda: check_bool("flag", 1), "flag: expected a bool, got 1"),
])
def test_errors_name_the_field_and_the_range(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_the_error_class_is_the_callers():
    with pytest.raises(ConfigError):
        check_int("bank_capacity", 0, 1, error=ConfigError)


def test_half_open_ranges_and_bools():
    assert check_float("x", 0.0, 0.0, 1.0, lo_open=False, hi_open=True) == 0.0
    assert check_float("x", 0.999, 0.0, 1.0, lo_open=False, hi_open=True) == 0.999
    assert check_bool("flag", np.bool_(True)) is True and check_bool("flag", False) is False
