"""imagination_node's persistence: the global cache and the memory bank saved to and restored from ``state_dir``.

:class:`StatePersistence` is a mixin of :class:`~worldstereo_ros.ros.imagination_node.ImaginationNode`.
With ``state_dir`` set, the node writes ``state_dir/global_cache.npz`` and ``state_dir/memory_bank.npz``
(:mod:`worldstereo_ros.io.cache_files`: temporary file, fsync, rename, so a kill at any moment leaves the
previous or the new complete file) on shutdown, on the ``save_state`` service (std_srvs/Trigger) and every
``save_period_s`` when the cache changed. With ``restore_on_start`` it loads them at start; a missing,
truncated or corrupt file is logged with the file and the field and the node starts empty. The restored
memories are published at once and kept when the first snapshot arrives (the snapshot is merged into
them). ``state_dir`` must resolve inside ``allowed_roots`` (checked with the node's other path parameters);
a path outside refuses the start (exit code 2).

The save runs on the calling thread; it reads one immutable cache snapshot and a copy of the bank's list
taken under ``self._lock``, so the worker may merge meanwhile.
"""

from __future__ import annotations

import threading
from pathlib import Path

from worldstereo_ros.errors import InputError
from worldstereo_ros.io.cache_files import load_bank_npz, load_cache_npz, save_bank_npz, save_cache_npz

CACHE_FILE = "global_cache.npz"
BANK_FILE = "memory_bank.npz"


class StatePersistence:
    """The persistence half of the imagination node (module doc)."""

    def _init_state_dir(self) -> Path | None:
        """``state_dir`` (created when missing), or None when persistence is off; the node's parameters hold it
        already confined to ``allowed_roots`` (:func:`~worldstereo_ros.ros.path_parameters.confine_path_parameters`).
        """
        self._save_lock = threading.Lock()
        self._saved_version = -1
        if not self.p["state_dir"]:
            return None
        folder = Path(self.p["state_dir"])
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _restore_state(self) -> None:
        """Load the saved cache and bank (``restore_on_start``); on any bad file log it and start empty."""
        if self._state_dir is None:
            return
        paths = {name: self._state_dir / name for name in (CACHE_FILE, BANK_FILE)}
        if not any(p.exists() for p in paths.values()):
            self.get_logger().info(f"restore_on_start: nothing saved in {self._state_dir} yet; starting empty")
            return
        try:
            cache = load_cache_npz(paths[CACHE_FILE], device=self.p["device"])
            bank = load_bank_npz(paths[BANK_FILE])
        except InputError as err:
            self.problems.report("state.restore", f"restore_on_start: starting empty, the saved state is "
                                                  f"unusable: {err}", "error")
            return
        with self._lock:
            self._restored_memories = (cache, bank)
            self._cache_version += 1
        self.stats["state_restored"] += 1
        self.get_logger().info(f"restored {len(cache)} cache points and {len(bank)} keyframes from {self._state_dir}")

    def save_state(self) -> str:
        """Write the cache and the bank to ``state_dir`` atomically; returns what was saved.

        Raises:
            InputError: persistence is off (``state_dir`` empty) or there is nothing to save yet.
            OSError: the folder is not writable (the previous files stay as they were).
        """
        if self._state_dir is None:
            raise InputError("state_dir", "persistence is off (state_dir is empty)")
        with self._lock:
            pipeline, restored, version = self._pipeline, self._restored_memories, self._cache_version
            if pipeline is not None:
                cache, bank = pipeline.cache, pipeline.bank.copy()
            elif restored is not None:
                cache, bank = restored
            else:
                raise InputError("state", "nothing to save yet: no snapshot and no restored state")
        with self._save_lock:  # the service, the timer and shutdown may save at once
            save_cache_npz(cache, self._state_dir / CACHE_FILE)
            save_bank_npz(bank, self._state_dir / BANK_FILE)
            self._saved_version = version
        self.stats["state_saved"] += 1
        return f"saved {len(cache)} cache points and {len(bank)} keyframes to {self._state_dir}"

    def _on_save_state(self, request, response):
        try:
            response.message = self.save_state()
            response.success = True
        except (InputError, OSError) as err:
            self.problems.report("state.save", f"save_state failed: {err}")
            response.success, response.message = False, str(err)
        return response

    def _periodic_save(self) -> None:
        if self._state_dir is None or self._cache_version == self._saved_version:
            return  # nothing changed since the last save
        if self._pipeline is None and self._restored_memories is None:
            return  # nothing to save yet: not a problem, the first snapshot has not come
        try:
            self.save_state()
        except (InputError, OSError) as err:
            self.problems.report("state.save", f"periodic save failed: {err}")

    def _save_on_shutdown(self) -> None:
        if self._state_dir is None:
            return
        try:
            self.get_logger().info(self.save_state())
        except (InputError, OSError) as err:
            self.get_logger().warn(f"state not saved on shutdown: {err}")
