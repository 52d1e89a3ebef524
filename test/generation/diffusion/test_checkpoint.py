"""Offline loading in the released layout; key and shape errors name the key; header-only inspect (issue 13)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from ws_tiny import fill_like_release_parity, parity_inputs, tiny_model

from worldstereo_ros.errors import BackendError, ConfigError
from worldstereo_ros.generation.diffusion.checkpoint import (
    inspect_weights,
    load_transformer,
    save_released_layout,
)
from worldstereo_ros.generation.diffusion.config import WorldStereoConfig, tiny_branch


def _cfg(variant: str = "memory") -> WorldStereoConfig:
    return WorldStereoConfig(variant=variant, base_model="org/Wan2.1-I2V-tiny", branch=tiny_branch(variant != "camera"))


def _outputs(model, kind):
    inputs = parity_inputs()
    if kind == "camera":
        for k in ("reference_latent", "ref_index", "camera_qt", "camera_qt_ref"):
            inputs.pop(k)
    with torch.no_grad():
        return model(**inputs)


@pytest.mark.parametrize("variant", ["memory", "camera"])
def test_round_trip_is_bit_identical(tmp_path, variant):
    kind = "camera" if variant == "camera" else "memory"
    model = tiny_model(kind)
    fill_like_release_parity(model)
    # Fine-tuned block 0 lives in model.safetensors; the base holds different (pre-fine-tuning) values for it.
    base_state = {k: v.clone() for k, v in model.state_dict().items()
                  if not k.startswith(("controlnet.", "camera_embedding.", "ref_index_embedding."))}
    for k in base_state:
        if k.startswith("blocks.0."):
            base_state[k] = base_state[k] + 1.0
    save_released_layout(model, _cfg(variant), tmp_path, base_state=base_state,
                         model_file_prefixes=("controlnet.", "camera_embedding.", "ref_index_embedding.", "blocks.0."))
    loaded, cfg, report = load_transformer(tmp_path, variant, dtype=torch.float32)
    assert cfg.variant == variant and report.unexpected == [] and report.missing == []
    assert all(k.startswith("blocks.0.") or not k.startswith("blocks.") for k in report.from_model_file)
    assert any(k.startswith("blocks.1.") for k in report.from_base)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert torch.equal(_outputs(loaded, kind), _outputs(model, kind))


def test_bf16_load_keeps_diffusers_fp32_modules(tmp_path):
    model = tiny_model("memory")
    save_released_layout(model, _cfg(), tmp_path)
    loaded, _, _ = load_transformer(tmp_path, "memory", dtype=torch.bfloat16)
    sd = loaded.state_dict()
    assert sd["blocks.0.attn1.to_q.weight"].dtype == torch.bfloat16
    assert sd["controlnet.controlnet_blocks.0.norm1.linear.weight"].dtype == torch.bfloat16
    assert sd["condition_embedder.time_embedder.linear_1.weight"].dtype == torch.float32
    assert sd["blocks.0.scale_shift_table"].dtype == torch.float32
    out = _outputs(loaded, "memory")
    assert out.shape == (1, 16, 3, 4, 4) and torch.isfinite(out.float()).all()


def _rewrite(tmp_path, variant, edit):
    path = tmp_path / f"worldstereo-{variant}" / "model.safetensors"
    state = load_file(str(path))
    edit(state)
    save_file(state, str(path))


def test_renamed_key_is_named(tmp_path):
    save_released_layout(tiny_model("memory"), _cfg(), tmp_path)
    key = "controlnet.proj_out.0.weight"
    _rewrite(tmp_path, "memory", lambda s: s.__setitem__("controlnet.proj_outt.0.weight", s.pop(key)))
    with pytest.raises(ConfigError, match=r"controlnet.proj_outt.0.weight: unexpected key"):
        load_transformer(tmp_path, "memory")


def test_missing_branch_key_is_named(tmp_path):
    save_released_layout(tiny_model("memory"), _cfg(), tmp_path)
    _rewrite(tmp_path, "memory", lambda s: s.pop("controlnet.proj_out.0.bias"))
    with pytest.raises(ConfigError, match=r"controlnet.proj_out.0.bias: missing .*must be in model.safetensors"):
        load_transformer(tmp_path, "memory")


def test_wrong_shape_is_named(tmp_path):
    save_released_layout(tiny_model("memory"), _cfg(), tmp_path)
    _rewrite(tmp_path, "memory", lambda s: s.__setitem__("camera_embedding.0.weight", torch.zeros(12, 6)))
    with pytest.raises(ConfigError, match=r"camera_embedding.0.weight: shape \(12, 6\) .* gives \(12, 7\)"):
        load_transformer(tmp_path, "memory")


def test_missing_base_is_reported(tmp_path):
    save_released_layout(tiny_model("memory"), _cfg(), tmp_path, base_dirname="elsewhere")
    cfg_path = tmp_path / "worldstereo-memory" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model"] = "org/not-here"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(BackendError, match="base model 'org/not-here' not found offline"):
        load_transformer(tmp_path, "memory")
    model, _, _ = load_transformer(tmp_path, "memory", base_model_path=tmp_path / "elsewhere")
    assert model.kind == "memory"


def test_inspect_reads_headers_only(tmp_path):
    model = tiny_model("memory")
    save_released_layout(model, _cfg(), tmp_path)
    report = inspect_weights(tmp_path)
    memory = report.variants["memory"]
    assert memory["status"].startswith("ok")
    assert report.variants["camera"]["status"] == "missing"
    n_branch = sum(p.numel() for k, p in model.state_dict().items()
                   if k.startswith(("controlnet.", "camera_embedding.", "ref_index_embedding.")))
    n_all = sum(p.numel() for p in model.state_dict().values())
    assert memory["params_in_file"] == n_branch
    assert report.base_params == n_all - n_branch
    text = report.render()
    assert "worldstereo-memory: ok" in text and "bf16" in text and "offload" in text


def test_weights_inspect_command(tmp_path, capsys):
    from worldstereo_ros.cli import main

    save_released_layout(tiny_model("memory"), _cfg(), tmp_path)
    assert main(["weights", "inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "worldstereo-memory: ok" in out and "worldstereo-memory-dmd: missing" in out
    assert main(["weights", "inspect", str(tmp_path / "nope")]) == 2
    assert "model_path: not a folder" in capsys.readouterr().err
