"""Saving and loading FillNet weights as safetensors, with errors that name the file and the key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from worldstereo_ros.errors import BackendError
from worldstereo_ros.generation.learned.model import FillNet

#: the weights shipped with the package
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "learned_fill.safetensors"


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(model: FillNet, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the model's weights (float32) and architecture to ``path`` (safetensors), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**model.config(), **(metadata or {})}
    tensors = {k: v.detach().to(torch.float32).contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors metadata of ``path``."""

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise BackendError(f"{path}: not a readable safetensors file ({exc})") from exc


def load_model(path: str | Path | None = None) -> FillNet:
    """A FillNet (eval mode, CPU) with the weights of ``path`` (default: the shipped file).

    Raises:
        BackendError: naming the file, when it is missing or unreadable, and naming the key when a tensor is
            missing, unexpected or of the wrong shape.
    """
    path = Path(path) if path is not None else SHIPPED_WEIGHTS
    if not path.is_file():
        raise BackendError(f"{path}: weights file not found")
    meta = read_metadata(path)
    try:
        widths = tuple(int(v) for v in meta.get("widths", "32,48,64,96").split(","))
        fine = int(meta.get("fine", "16"))
        model = FillNet(widths=widths, fine=fine)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise BackendError(f"{path}: bad architecture metadata {meta!r} ({exc})") from exc
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise BackendError(f"{path}: not a readable safetensors file ({exc})") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        raise BackendError(f"{path}: missing key {missing[0]!r} ({len(missing)} missing)")
    if unexpected:
        raise BackendError(f"{path}: unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected)")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise BackendError(f"{path}: key {key!r} has shape {tuple(state[key].shape)}, "
                               f"the model expects {tuple(value.shape)}")
    model.load_state_dict(state, strict=True)
    return model.eval()
