"""Where the real data lives: one rule for the command line, the tests and the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

#: The environment variable that names the shared data folder.
ENV = "WORLDSTEREO_DATA"


def shared_data_dir() -> Path:
    """``$WORLDSTEREO_DATA``, else the ``shared/data`` folder next to this checkout (``<repo>/../shared/data``),
    resolved; it need not exist (callers say what is missing)."""
    default = Path(__file__).resolve().parents[3] / "shared" / "data"
    return Path(os.environ.get(ENV, default)).resolve()
