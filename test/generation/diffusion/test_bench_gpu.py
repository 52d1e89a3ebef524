"""benchmarks/bench_gpu.py runs its whole path on the CPU with the tiny config (issue 13, item 9)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_gpu.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_bench_writes_every_figure(tmp_path, capsys):
    bench = _load()
    out = tmp_path / "bench.json"
    assert bench.main(["--tiny", "--repeats", "1", "--device", "cpu", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("s_per_forward_1ref", "s_per_forward_8ref", "dmd_denoise_s_8ref", "params_B"):
        assert result[key] > 0, key
    assert "paper H100/H200" in capsys.readouterr().out


def test_full_size_config_counts_the_documented_parameters():
    # The synthetic full-size model is what the GPU run builds: 16.4 B backbone + branch + camera MLP.
    import torch
    from accelerate import init_empty_weights

    from worldstereo_ros.generation.diffusion.transformer import WorldStereoTransformer

    bench = _load()
    with init_empty_weights(include_buffers=False):
        model = WorldStereoTransformer(bench.BRANCH_FULL, kind="memory", **bench.WAN_14B)
    backbone = sum(p.numel() for n, p in model.named_parameters()
                   if not n.startswith(("controlnet.", "camera_embedding.", "ref_index_embedding.")))
    camera = sum(p.numel() for p in model.camera_embedding.parameters())
    assert abs(backbone / 1e9 - 16.395) < 0.01
    assert abs(camera / 1e6 - 39.4) < 0.1
    assert all(p.device == torch.device("meta") for p in model.parameters())
