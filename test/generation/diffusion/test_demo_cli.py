"""``worldstereo-ros demo --backend worldstereo --model-path <tiny release>`` end to end on CPU (issue 13)."""

from __future__ import annotations

import json

from worldstereo_ros.cli import main as cli_main


def test_demo_with_the_worldstereo_backend(tiny_release, tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--backend", "worldstereo", "--model-path", str(tiny_release), "--size", "40x30",
            "--trajectories", "orbit:10,left:0.2", "--frames", "3", "--no-progress", "--skip", "videos,mesh",
            "--prompt", "w1 w2", "--out", str(out)]
    assert cli_main(args) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert [t["id"] for t in summary["trajectories"]] == ["orbit", "left"]
    assert summary["cache_points"] > 0
    assert (out / "cache.ply").is_file() and (out / "colmap" / "images.txt").is_file()
    frames = sorted((out / "frames" / "left").glob("*.color.png"))
    assert len(frames) == 3


def test_bad_model_path_is_reported(tmp_path, capsys):
    args = ["demo", "--backend", "worldstereo", "--model-path", str(tmp_path / "none"), "--size", "40x30",
            "--frames", "2", "--no-progress", "--out", str(tmp_path / "o")]
    code = cli_main(args)
    assert code != 0
    assert "model_path" in capsys.readouterr().err


def test_bench_speed_section_with_the_worldstereo_backend(tiny_release, redkitchen_dir, tmp_path, capsys,
                                                          monkeypatch):
    from worldstereo_ros.generation import base

    monkeypatch.setattr(base, "BACKEND_DEFAULTS", {})
    out = tmp_path / "bench"
    args = ["bench", "--quick", "--sections", "speed", "--backends", "worldstereo", "--model-path", str(tiny_release),
            "--data", str(redkitchen_dir), "--middlebury", "none", "--out", str(out)]
    assert cli_main(args) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    rows = results["speed"]
    assert [r["backend"] for r in rows] == ["worldstereo"] and rows[0]["views"] > 0
