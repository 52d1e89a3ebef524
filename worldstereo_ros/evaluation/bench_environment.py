"""The bench's reproducibility setting: fixed thread counts (:func:`fixed_threads`), and what is stored with the
results so two machines can compare numbers (library versions, the checkout's commit, a hash of the data)."""

from __future__ import annotations

import contextlib
import hashlib
import platform
import subprocess
from pathlib import Path

import cv2
import numpy as np
import open3d
import skimage
import torch

#: Threads torch, OpenCV and BLAS use inside the bench (the numbers must not depend on the machine's cores).
BENCH_THREADS = 1


@contextlib.contextmanager
def fixed_threads(n: int = BENCH_THREADS):
    """Run the block with ``n`` threads in torch, OpenCV and (through threadpoolctl, when installed) BLAS and
    OpenMP, restoring the previous counts after."""
    before_torch, before_cv = torch.get_num_threads(), cv2.getNumThreads()
    limits = contextlib.nullcontext()
    try:
        # lazy and optional: threadpoolctl is not a dependency of the project
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(n)
    except ImportError:  # numpy's BLAS then keeps its own count; the bench's maths is torch and OpenCV
        pass
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    try:
        with limits:
            yield
    finally:
        torch.set_num_threads(before_torch)
        cv2.setNumThreads(before_cv)


def environment() -> dict:
    """Library versions and thread counts that the numbers may depend on (stored with the results)."""
    return dict(python=platform.python_version(), numpy=np.__version__, torch=torch.__version__,
                opencv=cv2.__version__, open3d=open3d.__version__, scikit_image=skimage.__version__,
                threads=BENCH_THREADS, **_checkout())


def _checkout() -> dict:
    """The commit of the checkout the code runs from and whether tracked files differ from it."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return dict(commit=None, uncommitted_changes=None)
    return dict(commit=commit, uncommitted_changes=bool(dirty))


def data_fingerprint(folder: Path) -> str:
    """SHA-256 over the names and bytes of every file under ``folder`` (sorted): two machines that disagree
    on a deterministic number first compare this, the versions and the commit."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
