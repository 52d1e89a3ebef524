"""The benchmark suite (``evaluation.benchmark`` + ``bench_report`` + ``worldstereo-ros bench``).

A small 7-Scenes-style folder rendered from the procedural room (exact depth and poses) runs every section
at low resolution; the real-data test runs ``bench --quick`` as CI does when ``../shared/data`` is there.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from worldstereo_ros.cli import main as cli_main
from worldstereo_ros.errors import ConfigError, InputError
from worldstereo_ros.evaluation.bench_report import markdown, write_report
from worldstereo_ros.evaluation.benchmark import BenchConfig, parse_frames, run_benchmark, without_timings

W, H = 320, 240


@pytest.fixture(scope="module")
def room_folder(tmp_path_factory, write_room_folder):
    """13 frames sliding 0.6 m to the left in the procedural room, 320 x 240."""
    return write_room_folder(tmp_path_factory.mktemp("room"), W, H, 13, 0.6)


def _config(folder) -> BenchConfig:
    return BenchConfig.quick(folder, frames=None, starts=[0], offsets=[2, 6, 12], span=12, step=2,
                             consistency_frames=6, check_offsets=[6], room_size=(160, 120), fill_pairs=3,
                             fill_room_pairs=4, fill_room_frames=20, speed_frames=4, speed_size=(W, H))


@pytest.fixture(scope="module")
def room_results(room_folder):
    return run_benchmark(_config(room_folder))


def test_every_section_has_its_rows(room_results):
    r = room_results
    assert [row["method"] for row in r.geometry] == ["frame 0 only (floor)", "render_fill"]
    assert [row["method"] for row in r.camera] == ["real frames (estimator floor)",
                                                   "plain cache render, no generator (to beat)", "render_fill",
                                                   "render_fill vs the path reversed (must fail)"]
    assert [row["informative"] for row in r.camera] == [True, True, False, False]
    assert [(row["source"], row["memory"]) for row in r.consistency] == [
        (source, memory) for source in ("data, frame 0", "procedural room")
        for memory in ("z-buffer + Telea (no generator)", "none", "ggm", "ggm+ssm")]
    assert {row["source"] for row in r.fill} == {"procedural room", "data all frames"}
    assert {"Telea (baseline)", "render_fill", "render_fill (no reference)"} <= {row["method"] for row in r.fill}
    assert {(row["offset"], row["method"]) for row in r.fidelity} == {
        (o, m) for o in (2, 6, 12) for m in ("baseline (z-buffer + Telea)", "render_fill")}
    assert r.stereo == []  # no Middlebury folder given
    [speed] = r.speed
    assert speed["views"] == 16 and speed["fps"] > 0 and speed["generate_s"] > 0
    assert speed["peak_rss_mb"] is None or speed["peak_rss_mb"] > 50


def test_the_numbers_measure_what_they_claim(room_results):
    floor, ours = room_results.geometry
    # exact depth and poses: frame 0's own points lie on the reference surface, up to the silhouettes,
    # where the renderer's footprints put foreground depth on a pixel or two of background
    assert floor["accuracy_cm"] < 4.0 and floor["f1_10cm"] > 0.85
    # imagining along the path adds what frame 0 did not see
    assert ours["completeness_cm"] < floor["completeness_cm"]
    real, plain, generated, reversed_path = room_results.camera
    assert generated["rot_err_deg"] < 1.0 and generated["ate_cm"] < 2.0
    # frames of one path scored against another: the estimator flags it
    assert reversed_path["trans_err"] > 5 * generated["trans_err"] + 0.1
    for row in room_results.fidelity:
        assert 10.0 < row["psnr_full"] < 60.0 and 0.0 < row["ssim_full"] <= 1.0


def test_same_numbers_twice(room_folder, room_results):
    again = run_benchmark(_config(room_folder), sections=("geometry", "camera", "consistency", "fill", "fidelity"))
    first = without_timings(room_results.to_json())
    second = without_timings(again.to_json())
    assert second == {k: v for k, v in first.items() if k in second}
    assert first["geometry"] and first["fidelity"] and first["fill"] and first["consistency"]


def test_report_files_and_tables(room_results, tmp_path):
    paths = write_report(room_results, tmp_path)
    assert {"results_md", "results_json", "psnr_vs_offset", "consistency", "timing", "contact_sheet"} <= set(paths)
    for name in ("psnr_vs_offset", "consistency", "timing", "contact_sheet"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = json.loads(paths["results_json"].read_text())
    assert without_timings(loaded) == without_timings(room_results.to_json())
    text = markdown(loaded)
    assert text == paths["results_md"].read_text()
    for title in ("Geometry", "Camera accuracy", "Consistency", "Fill protocol", "View fidelity", "Speed"):
        assert f"### {title}" in text
    assert "Stereo" not in text
    assert "| F1@2cm | F1@5cm | F1@10cm |" in text and "- F1@10cm: imagination" in text
    assert "target none < GGM < GGM+SSM **" in text


def test_bad_input(room_folder, tmp_path, capsys):
    with pytest.raises(InputError, match="sections"):
        run_benchmark(_config(room_folder), sections=("geometry", "typo"))
    with pytest.raises(InputError, match="backends.*valid: .*render_fill"):
        run_benchmark(BenchConfig.quick(room_folder, backends=["nope"]))
    with pytest.raises(InputError, match="fewer than 3 frames"):
        run_benchmark(BenchConfig.quick(room_folder, frames=None, starts=[11], span=12, step=2),
                      sections=("geometry",))
    # the default frame range (200-299) is not in a 13-frame folder: refused by name, not silently emptied
    with pytest.raises(InputError, match="starts"):
        run_benchmark(BenchConfig.quick(room_folder), sections=("geometry",))
    with pytest.raises(InputError, match="frames"):
        parse_frames("299-200")
    assert cli_main(["bench", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "camera-intrinsics.txt" in capsys.readouterr().err


def test_voxel_size_reaches_every_pipeline(room_folder, room_results):
    coarse = run_benchmark(replace(_config(room_folder), voxel_size_m=0.05), sections=("geometry", "camera"))
    assert coarse.config["voxel_size_m"] == 0.05
    [fine_row] = [r for r in room_results.geometry if r["method"] == "render_fill"]
    [coarse_row] = [r for r in coarse.geometry if r["method"] == "render_fill"]
    assert coarse_row["points"] < 0.5 * fine_row["points"]  # 5 cm voxels hold far fewer points than 1 cm ones
    # the floor is the start frame's own points: no pipeline, so the voxel size leaves it alone
    assert coarse.geometry[0]["points"] == room_results.geometry[0]["points"]
    with pytest.raises(ConfigError, match="voxel_size_m"):
        run_benchmark(replace(_config(room_folder), voxel_size_m=0.0), sections=("geometry",))


def test_quick_bench_on_real_data(redkitchen_dir, tmp_path, capsys):
    assert cli_main(["bench", "--quick", "--data", str(redkitchen_dir), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    print(out)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["frames"] == [200, 299] and results["config"]["starts"] == [200]
    _, plain, generated, reversed_path = results["camera"]
    assert reversed_path["rot_err_deg"] > 3 * generated["rot_err_deg"]
    # every check frame and fill pair stays inside the report split
    for row in results["fill"]:
        if row["source"].startswith("data"):
            assert 200 <= row["i"] <= 299 and 200 <= row["j"] <= 299 and 5 <= row["offset"] <= 60
    for row in results["consistency"]:
        assert row["source"] != "data, frame 200" or all(200 <= int(c.split()[1]) <= 299 for c in row["checks"])
        assert np.isfinite(row["accuracy_db"]) and 8.0 < row["accuracy_db"] < 40.0
    middlebury = redkitchen_dir.parent / "middlebury-motorcycle"
    assert bool(results["stereo"]) == middlebury.is_dir()
    assert (tmp_path / "contact_sheet.png").is_file() and "### Speed" in out
