"""The benchmark suite (``evaluation.benchmark`` + ``bench_report`` + ``worldstereo-ros bench``).

A small 7-Scenes-style folder rendered from the procedural room (exact depth and poses) runs every section
at low resolution; the real-data test runs ``bench --quick`` as CI does when ``../shared/data`` is there.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from worldstereo_ros.cli import main as cli_main
from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation.bench_report import markdown, write_report
from worldstereo_ros.evaluation.benchmark import BenchConfig, run_benchmark, without_timings
from worldstereo_ros.geometry.trajectories import lateral
from worldstereo_ros.io.procedural_scene import build_scene, default_camera
from worldstereo_ros.io.rgbd_folder import write_rgbd_frame

W, H = 320, 240


@pytest.fixture(scope="module")
def room_folder(tmp_path_factory):
    """13 frames sliding 0.6 m to the left in the procedural room, 320 x 240."""
    folder = tmp_path_factory.mktemp("room")
    scene = build_scene(0, 0.02)
    K, T0 = default_camera(W, H)
    for i, T in enumerate(lateral(T0, 13, 0.6, "left")):
        rgb, depth = scene.render(K, T, W, H)
        write_rgbd_frame(folder, i, (rgb * 255 + 0.5).astype(np.uint8), depth, T, K)
    return folder


def _config(folder) -> BenchConfig:
    return BenchConfig.quick(folder, starts=[0], offsets=[2, 6, 12], span=12, step=2, consistency_frames=6,
                             speed_frames=4, speed_size=(W, H))


@pytest.fixture(scope="module")
def room_results(room_folder):
    return run_benchmark(_config(room_folder))


def test_every_section_has_its_rows(room_results):
    r = room_results
    assert [row["method"] for row in r.geometry] == ["frame 0 only (floor)", "render_fill"]
    assert [row["method"] for row in r.camera] == ["real frames (estimator floor)", "render_fill",
                                                   "render_fill vs the path reversed (must fail)"]
    assert [row["memory"] for row in r.consistency] == ["none", "ggm", "ggm+ssm"]
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
    real, generated, reversed_path = room_results.camera
    assert generated["rot_err_deg"] < 1.0 and generated["ate_cm"] < 2.0
    # frames of one path scored against another: the estimator flags it
    assert reversed_path["trans_err"] > 5 * generated["trans_err"] + 0.1
    for row in room_results.fidelity:
        assert 10.0 < row["psnr_full"] < 60.0 and 0.0 < row["ssim_full"] <= 1.0


def test_same_numbers_twice(room_folder, room_results):
    again = run_benchmark(_config(room_folder), sections=("geometry", "camera", "consistency", "fidelity"))
    first = without_timings(room_results.to_json())
    second = without_timings(again.to_json())
    assert second == {k: v for k, v in first.items() if k in second}
    assert first["geometry"] and first["fidelity"]


def test_report_files_and_tables(room_results, tmp_path):
    paths = write_report(room_results, tmp_path)
    assert {"results_md", "results_json", "psnr_vs_offset", "consistency", "timing", "contact_sheet"} <= set(paths)
    for name in ("psnr_vs_offset", "consistency", "timing", "contact_sheet"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = json.loads(paths["results_json"].read_text())
    assert without_timings(loaded) == without_timings(room_results.to_json())
    text = markdown(loaded)
    assert text == paths["results_md"].read_text()
    for title in ("Geometry", "Camera accuracy", "Consistency", "View fidelity", "Speed"):
        assert f"### {title}" in text
    assert "Stereo" not in text


def test_bad_input(room_folder, tmp_path, capsys):
    with pytest.raises(InputError, match="sections"):
        run_benchmark(_config(room_folder), sections=("geometry", "typo"))
    with pytest.raises(InputError, match="backends.*valid: .*render_fill"):
        run_benchmark(BenchConfig.quick(room_folder, backends=["nope"]))
    with pytest.raises(InputError, match="fewer than 3 frames"):
        run_benchmark(BenchConfig.quick(room_folder, starts=[11], span=12, step=2), sections=("geometry",))
    assert cli_main(["bench", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "camera-intrinsics.txt" in capsys.readouterr().err


def test_quick_bench_on_real_data(redkitchen_dir, tmp_path, capsys):
    assert cli_main(["bench", "--quick", "--data", str(redkitchen_dir), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    print(out)
    results = json.loads((tmp_path / "results.json").read_text())
    _, generated, reversed_path = results["camera"]
    assert reversed_path["rot_err_deg"] > 3 * generated["rot_err_deg"]
    psnr = [row["mean_psnr_db"] for row in results["consistency"]]
    assert psnr[0] < psnr[1] < psnr[2], f"consistency none / ggm / ggm+ssm: {psnr}"
    middlebury = redkitchen_dir.parent / "middlebury-motorcycle"
    assert bool(results["stereo"]) == middlebury.is_dir()
    assert (tmp_path / "contact_sheet.png").is_file() and "### Speed" in out
