"""`imagine --poses-file` keeps a TUM file's timestamps in the exported poses (issue 15: they were rewritten
as 0, 1, 2 ..., so evo_ape against the input matched 2 of 25 poses)."""

from __future__ import annotations

import json

import cv2
import numpy as np

from worldstereo_ros.cli import main as cli_main
from worldstereo_ros.datasets.procedural_scene import procedural_snapshot
from worldstereo_ros.io.poses import read_tum, write_tum


def test_tum_timestamps_round_trip_through_imagine(tmp_path):
    snap = procedural_snapshot(64, 48)
    cv2.imwrite(str(tmp_path / "c.png"), cv2.cvtColor((snap.rgb * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "d.png"), (snap.depth * 1000 + 0.5).astype(np.uint16))
    np.savetxt(tmp_path / "pose.txt", snap.T_world_cam)
    stamps = 1305031102.175304 + 0.0333 * np.arange(4)  # Unix times, as the TUM RGB-D benchmark has them
    T = np.repeat(snap.T_world_cam[None], 4, axis=0)
    T[:, 0, 3] += 0.02 * np.arange(4)
    write_tum(tmp_path / "walk.tum.txt", T, stamps)
    K = snap.K
    out = tmp_path / "out"
    assert cli_main(["imagine", "--rgb", str(tmp_path / "c.png"), "--depth", str(tmp_path / "d.png"),
                     "--intrinsics", f"{K[0, 0]},{K[1, 1]},{K[0, 2]},{K[1, 2]}", "--pose", str(tmp_path / "pose.txt"),
                     "--poses-file", str(tmp_path / "walk.tum.txt"), "--no-progress", "--out", str(out),
                     "--skip", "frames,videos,contact_sheet,cache_ply,colmap,mesh"]) == 0
    back_stamps, back_T = read_tum(out / "poses" / "walk.tum.txt")
    np.testing.assert_allclose(back_stamps, stamps, rtol=0, atol=1e-6)
    np.testing.assert_allclose(back_T, T, atol=1e-6)
    frames = json.loads((out / "poses.json").read_text())["trajectories"][0]["frames"]
    np.testing.assert_allclose([f["timestamp_s"] for f in frames], stamps, rtol=0, atol=1e-6)
