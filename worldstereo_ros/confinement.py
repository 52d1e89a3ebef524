"""Keep file paths taken from parameters, requests and command lines inside configured roots.

A node that writes caches or loads weights from paths it is *told* must not be talked into reading or
writing elsewhere: ``snapshot_dir:=../../etc`` or a symlink planted inside an allowed folder that points
out of it. :func:`confine` resolves the path (following every symlink, like the kernel will) and refuses it
unless the resolved path lies inside one of the resolved roots.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from worldstereo_ros.errors import InputError


def confine(path: str | os.PathLike, roots: Sequence[str | os.PathLike], field: str) -> Path:
    """The absolute, symlink-free form of ``path`` when it lies inside one of ``roots``.

    Args:
        path: a file or folder path, absolute or relative to the current directory; it need not exist
            yet (a file about to be written), but the existing part of it is resolved through symlinks.
        roots: allowed folders; an empty sequence allows nothing.
        field: the parameter or argument the path came from, named in the error.

    Raises:
        InputError: empty path, a NUL byte, no roots, or a path that resolves outside every root
            (``..`` components or a symlink leading out).
    """
    text = os.fspath(path)
    if not text:
        raise InputError(field, "empty path")
    if "\x00" in text:
        raise InputError(field, "path contains a NUL byte")
    if not roots:
        raise InputError(field, f"{text!r} refused: no allowed roots are configured")
    resolved = Path(text).expanduser().resolve(strict=False)
    allowed = [Path(r).expanduser().resolve(strict=False) for r in roots]
    for root in allowed:
        if resolved == root or resolved.is_relative_to(root):
            return resolved
    raise InputError(field, f"{text!r} resolves to {str(resolved)!r}, outside the allowed roots "
                            f"{[str(r) for r in allowed]} ('..' and symlinks out of a root are refused)")
