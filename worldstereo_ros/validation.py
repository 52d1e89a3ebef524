"""Checks of scalar arguments and settings, in one place: each returns the value converted (int or float) or
raises the project's error naming the field, the expected range and what it got.

    >>> check_int("bank_capacity", 8, lo=1)
    8
    >>> check_float("voxel_size_m", 0.0, lo=0.0, hi=10.0)
    Traceback (most recent call last):
    ...
    worldstereo_ros.errors.InputError: voxel_size_m: expected a float in (0.0, 10.0], got 0.0

``error`` picks the subclass (e.g. :class:`~worldstereo_ros.errors.ConfigError` for settings). Booleans are
never numbers here, although Python makes ``True`` an int.
"""

from __future__ import annotations

import math

import numpy as np

from worldstereo_ros.errors import InputError


def check_int(field: str, value, lo: int, hi: int | None = None, error: type[InputError] = InputError) -> int:
    """``value`` as an int in ``[lo, hi]`` (``hi`` None: no upper bound)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < lo \
            or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise error(field, f"expected an int {bound}, got {value!r}")
    return int(value)


def check_float(field: str, value, lo: float, hi: float = math.inf, lo_open: bool = True,
                error: type[InputError] = InputError, hi_open: bool = False) -> float:
    """``value`` as a finite float in ``(lo, hi]`` (``[lo, ...`` with ``lo_open=False``, ``..., hi)`` with
    ``hi_open=True``)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    ok = ok and math.isfinite(value) and (value > lo if lo_open else value >= lo) \
        and (value < hi if hi_open else value <= hi)
    if not ok:
        raise error(field, f"expected a float in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}, "
                           f"got {value!r}")
    return float(value)


def check_bool(field: str, value, error: type[InputError] = InputError) -> bool:
    """``value`` as a bool (Python's or numpy's; ints such as 0/1 are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise error(field, f"expected a bool, got {value!r}")
    return bool(value)


def check_positive(field: str, value, error: type[InputError] = InputError) -> float:
    """``value`` as a finite float > 0."""
    return check_float(field, value, 0.0, error=error)
