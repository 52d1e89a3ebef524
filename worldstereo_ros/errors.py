"""The project's error hierarchy.

Every check on user input raises :class:`InputError` (a ``ValueError``) naming the offending field
and saying what was expected and what was found, so callers can catch one type at every boundary.
"""

from __future__ import annotations


class WorldStereoError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(WorldStereoError, ValueError):
    """Bad input: names the field and the problem.

    Example:
        >>> raise InputError("depth", "expected shape (H, W), got (2, 3, 4)")
        Traceback (most recent call last):
        ...
        worldstereo_ros.errors.InputError: depth: expected shape (H, W), got (2, 3, 4)
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class ConversionError(InputError):
    """A ROS message (or file) that cannot be converted: bad encoding, size, layout or value."""


class ConfigError(InputError):
    """An invalid configuration value or an impossible combination of values."""


class BackendError(WorldStereoError):
    """A generator backend that cannot run: unknown name, missing weights, unavailable device."""
