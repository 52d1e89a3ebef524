"""Tiny WorldStereo models and the release-parity fill, shared by the diffusion tests (issue 13)."""

from __future__ import annotations

import zlib

import torch


def fill_like_release_parity(model: torch.nn.Module) -> None:
    """Fill every state-dict entry as the parity numbers of docs/worldstereo-backend.md (section 6, item 7) did."""
    state = model.state_dict()
    values = {}
    for key in sorted(state):
        value = torch.randn(state[key].shape, generator=torch.Generator().manual_seed(zlib.crc32(key.encode()))) * 0.05
        if value.ndim == 1 and key.endswith(".weight"):
            value = value + 1.0
        values[key] = value
    model.load_state_dict(values, strict=True)


def parity_inputs() -> dict[str, torch.Tensor]:
    """The parity inputs, drawn from one generator in the documented order."""
    g = torch.Generator().manual_seed(1234)
    out = {
        "hidden_states": torch.randn(1, 36, 3, 4, 4, generator=g),
        "render_latent": torch.randn(1, 16, 3, 4, 4, generator=g),
        "render_mask": (torch.rand(1, 1, 3, 32, 32, generator=g) > 0.5).float(),
        "plucker": torch.randn(1, 6, 3, 32, 32, generator=g),
        "reference_latent": torch.randn(1, 36, 2, 4, 4, generator=g),
        "camera_qt": torch.randn(1, 3, 7, generator=g),
        "camera_qt_ref": torch.randn(1, 2, 7, generator=g),
        "encoder_hidden_states": torch.randn(1, 512, 32, generator=g),
        "encoder_hidden_states_image": torch.randn(1, 257, 16, generator=g),
    }
    out["timestep"] = torch.tensor([937.5])
    out["ref_index"] = torch.tensor([0, 1])
    return out


def tiny_model(kind: str = "memory", seed: int = 0):
    from worldstereo_ros.generation.diffusion.config import tiny_backbone_kwargs, tiny_branch
    from worldstereo_ros.generation.diffusion.transformer import WorldStereoTransformer

    torch.manual_seed(seed)
    return WorldStereoTransformer(tiny_branch(kind == "memory"), kind=kind, **tiny_backbone_kwargs()).eval()


def shared_panorama():
    """The shared example panorama ($WORLDSTEREO_DATA or <repo>/../shared/data), or None when absent."""
    import os
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    path = Path(os.environ.get("WORLDSTEREO_DATA", repo.parent / "shared" / "data")) / "panorama" / "examplepano.jpg"
    return path if path.is_file() else None
