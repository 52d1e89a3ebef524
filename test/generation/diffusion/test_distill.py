"""``worldstereo-ros distill`` on a tiny teacher: writes a memory-dmd model the backend loads (issue 13, item 7)."""

from __future__ import annotations

import json

import numpy as np
import torch

from worldstereo_ros.cli import main as cli_main
from worldstereo_ros.generation.base import create_backend


def test_distill_tiny_teacher_end_to_end(tmp_path, capsys):
    from worldstereo_ros.generation.diffusion.tiny import write_tiny_release

    release = write_tiny_release(tmp_path / "release", ("memory",), nframe=5)
    out = tmp_path / "distilled"
    args = ["distill", "--model-path", str(release), "--out", str(out), "--size", "48x32", "--iterations", "2",
            "--fake-updates", "1", "--lr", "1e-3", "--seed", "3"]
    assert cli_main(args) == 0, capsys.readouterr().err
    summary = json.loads((out / "worldstereo-memory-dmd" / "distill_summary.json").read_text())
    assert summary["conditions"] == 4 and summary["iterations"] == 2
    # The generator moved away from the teacher (backbone) while the branch stayed the teacher's.
    from safetensors.torch import load_file

    student = load_file(str(out / "worldstereo-memory-dmd" / "model.safetensors"))
    teacher = load_file(str(release / "worldstereo-memory" / "model.safetensors"))
    base = {}
    for shard in sorted((release / "tiny-wan-i2v" / "transformer").glob("*.safetensors")):
        base.update(load_file(str(shard)))
    assert all(torch.equal(student[k], teacher[k]) for k in teacher if k.startswith("controlnet."))
    assert not torch.equal(student["proj_out.weight"], base["proj_out.weight"])
    # The backend loads the result as a released memory-dmd model.
    backend = create_backend("worldstereo", model_path=str(out))
    assert backend.config.is_dmd
    backend.warmup()
    assert backend._parts["report"].missing == []
    backend.close()
    assert np.isfinite(summary["last_losses"]["generator"])
