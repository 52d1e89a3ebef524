"""``worldstereo-ros demo`` and ``imagine`` end to end: every export is written and reads back with the
library made for its format."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from worldstereo_ros.cli import main as cli_main
from worldstereo_ros.datasets.procedural_scene import procedural_snapshot
from worldstereo_ros.datasets.rgbd_folder import RgbdFolder

SIZE = (96, 72)
FRAMES = 4


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert cli_main(["demo", "--size", f"{SIZE[0]}x{SIZE[1]}", "--frames", str(FRAMES), "--no-progress",
                     "--out", str(out)]) == 0
    return out


def test_demo_writes_every_export(demo_out):
    summary = json.loads((demo_out / "summary.json").read_text())
    ids = [t["id"] for t in summary["trajectories"]]
    assert ids == ["orbit", "up", "left", "right"]
    assert set(summary["outputs"]) == {"frames", "videos", "contact_sheet", "cache_ply", "poses", "colmap", "mesh"}
    assert summary["timings_s"]["end_to_end"] >= summary["timings_s"]["write_total"] > 0
    for tid in ids:
        seq = RgbdFolder(demo_out / "frames" / tid)
        assert seq.indices == list(range(FRAMES))
        frame = seq.read(FRAMES - 1)
        assert frame.rgb.shape == (SIZE[1], SIZE[0], 3) and (frame.depth > 0).mean() > 0.9
        imagined = cv2.imread(str(demo_out / "frames" / tid / f"frame-{FRAMES - 1:06d}.imagined.png"),
                              cv2.IMREAD_UNCHANGED)
        assert imagined.shape == (SIZE[1], SIZE[0]) and set(np.unique(imagined)) <= {0, 255}
        video = cv2.VideoCapture(str(demo_out / "videos" / f"{tid}.mp4"))
        count = 0
        while video.read()[0]:
            count += 1
        assert count == FRAMES
        tum = [line for line in (demo_out / "poses" / f"{tid}.tum.txt").read_text().splitlines()
               if line and not line.startswith("#")]
        assert len(tum) == FRAMES and len(tum[0].split()) == 8
    poses = json.loads((demo_out / "poses.json").read_text())
    assert len(json.dumps(poses)) > 100
    sheet = cv2.imread(str(demo_out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 8 * 20


def test_demo_geometry_exports_read_back(demo_out):
    import open3d as o3d

    cloud = o3d.io.read_point_cloud(str(demo_out / "cache.ply"))
    summary = json.loads((demo_out / "summary.json").read_text())
    assert len(cloud.points) == summary["cache_points"] > 1000
    mesh = o3d.io.read_triangle_mesh(str(demo_out / "mesh.ply"))
    assert len(mesh.triangles) > 100 and len(mesh.vertices) > 100
    assert o3d.io.read_triangle_mesh(str(demo_out / "mesh.obj")).has_triangles()
    images = (demo_out / "colmap" / "images.txt").read_text().splitlines()
    headers = [line.split() for line in images if line and not line.startswith("#")]
    assert len(headers) == 4 * FRAMES and all(len(h) == 10 for h in headers)  # POINTS2D lines are empty
    assert headers[0][-1] == "orbit/frame-000000.color.png"
    cameras = [line for line in (demo_out / "colmap" / "cameras.txt").read_text().splitlines()
               if line and not line.startswith("#")]
    assert cameras and cameras[0].split()[1] == "PINHOLE"


def test_imagine_takes_files_and_bad_input_names_the_field(tmp_path, capsys):
    snap = procedural_snapshot(*SIZE)
    cv2.imwrite(str(tmp_path / "c.png"), cv2.cvtColor((snap.rgb * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "d.png"), (snap.depth * 1000 + 0.5).astype(np.uint16))
    np.savetxt(tmp_path / "pose.txt", snap.T_world_cam)
    K = snap.K
    intr = f"{K[0, 0]},{K[1, 1]},{K[0, 2]},{K[1, 2]}"
    out = tmp_path / "out"
    args = ["imagine", "--rgb", str(tmp_path / "c.png"), "--depth", str(tmp_path / "d.png"), "--intrinsics", intr,
            "--pose", str(tmp_path / "pose.txt"), "--trajectories", "left:0.2", "--frames", "3", "--no-progress",
            "--skip", "videos,mesh", "--out", str(out)]
    assert cli_main(args) == 0
    assert RgbdFolder(out / "frames" / "left").indices == [0, 1, 2]
    assert not (out / "videos").exists() and not (out / "mesh.ply").exists()
    bad = list(args)
    bad[bad.index("--intrinsics") + 1] = "585,585,320"
    assert cli_main(bad) == 2
    assert "intrinsics" in capsys.readouterr().err
    bad = list(args)
    bad[bad.index("--depth") + 1] = str(tmp_path / "missing.png")
    assert cli_main(bad) == 2
    assert "depth" in capsys.readouterr().err
