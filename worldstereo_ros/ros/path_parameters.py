"""Path parameters of the nodes confined to ``allowed_roots`` at start-up (issue 14 item 8).

A node is told where its weights are (``model_path``, ``base_model_path``, ``depth_model_path``), or
replay_node which folder to read (``folder``), by whoever can set its parameters; this module makes every
such path resolve inside the folders of ``allowed_roots`` (default: the working directory at start-up and
``~/.cache/worldstereo_ros``), through
:func:`worldstereo_ros.confinement.confine`, so ``model_path:=../../etc`` or a symlink that leads out of a root
stops the node at start-up with one line naming the parameter (exit code 2, like any bad parameter).
No rclpy here: the check works on the validated parameter dict.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from worldstereo_ros.confinement import confine
from worldstereo_ros.errors import ConfigError, InputError

#: Parameters holding a file or folder path, in any node; empty values mean "unused" and are not checked.
PATH_PARAMETERS = ("model_path", "base_model_path", "depth_model_path", "state_dir", "folder")


def allowed_roots(values: dict[str, Any]) -> list[str]:
    """The ``allowed_roots`` parameter as a list of non-empty strings.

    Raises:
        ConfigError: not a list of strings, or an empty string in it.
    """
    roots = values.get("allowed_roots")
    if not isinstance(roots, (list, tuple)) or not all(isinstance(r, str) for r in roots):
        raise ConfigError("allowed_roots", f"expected a list of folder names (string[]), got {roots!r}")
    if any(not r.strip() for r in roots):
        raise ConfigError("allowed_roots", f"an empty folder name in {list(roots)!r} (use '.' for the working "
                                           "directory)")
    return list(roots)


def confine_path_parameters(values: dict[str, Any], names: Iterable[str] = PATH_PARAMETERS) -> dict[str, Any]:
    """A copy of ``values`` whose non-empty path parameters in ``names`` are the absolute, symlink-free paths
    they resolve to, each inside one of ``allowed_roots``; ``values`` itself is not changed.

    Raises:
        ConfigError: naming the first path parameter that resolves outside every root, or a malformed
            ``allowed_roots``.
    """
    roots = allowed_roots(values)
    out = dict(values)
    for name in names:
        if out.get(name):
            try:
                out[name] = str(confine(out[name], roots, name))
            except InputError as err:  # a path parameter is configuration: the node refuses to start
                raise ConfigError(name, err.problem) from None
    return out
