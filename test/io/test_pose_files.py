"""TUM and JSON trajectories: round trips, quaternion order, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldstereo_ros.errors import InputError
from worldstereo_ros.io.poses import PoseTrack, read_poses_file, read_poses_json, read_tum, write_poses_json, write_tum


def _poses(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    T = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        T[i, :3, :3] = q * np.sign(np.linalg.det(q))
        T[i, :3, 3] = rng.normal(size=3)
    return T


def test_tum_line_is_timestamp_position_quaternion_xyzw(tmp_path):
    T = np.eye(4)
    a = math.pi / 2  # 90 degrees about z: q = (0, 0, sin 45, cos 45)
    T[:3, :3] = [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]]
    T[:3, 3] = (1, 2, 3)
    path = write_tum(tmp_path / "t.txt", T[None], np.array([12.5]))
    values = [float(v) for v in path.read_text().splitlines()[1].split()]
    np.testing.assert_allclose(values, [12.5, 1, 2, 3, 0, 0, math.sqrt(0.5), math.sqrt(0.5)], atol=1e-8)


def test_tum_round_trip(tmp_path):
    T = _poses(7)
    ts = np.linspace(0.0, 3.0, 7)
    ts2, T2 = read_tum(write_tum(tmp_path / "orbit.tum.txt", T, ts))
    np.testing.assert_allclose(ts2, ts)
    np.testing.assert_allclose(T2, T, atol=1e-7)
    [track] = read_poses_file(tmp_path / "orbit.tum.txt")
    assert track.id == "orbit" and track.T_world_cam.shape == (7, 4, 4)


def test_json_round_trip_with_several_trajectories(tmp_path):
    K = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    tracks = [PoseTrack("orbit", _poses(3, 1), None, K, 640, 480), PoseTrack("left", _poses(2, 2))]
    back = read_poses_json(write_poses_json(tmp_path / "poses.json", tracks))
    assert [t.id for t in back] == ["orbit", "left"]
    np.testing.assert_allclose(back[0].T_world_cam, tracks[0].T_world_cam)
    np.testing.assert_allclose(back[0].K, K)
    assert (back[0].width, back[0].height, back[1].K) == (640, 480, None)
    np.testing.assert_allclose(back[1].timestamps_s, [0.0, 1.0])


def test_json_without_matrices_uses_quaternions(tmp_path):
    T = _poses(2, 3)
    path = write_poses_json(tmp_path / "p.json", [PoseTrack("a", T)])
    text = path.read_text()
    import json

    data = json.loads(text)
    for f in data["trajectories"][0]["frames"]:
        del f["T_world_cam"]
    path.write_text(json.dumps(data))
    np.testing.assert_allclose(read_poses_json(path)[0].T_world_cam, T, atol=1e-9)


def test_bad_files_name_the_problem(tmp_path):
    (tmp_path / "bad.txt").write_text("0 1 2 3 0 0 0\n")
    with pytest.raises(InputError, match="8 numbers"):
        read_tum(tmp_path / "bad.txt")
    (tmp_path / "norm.txt").write_text("0 1 2 3 0 0 0 2\n")
    with pytest.raises(InputError, match="unit norm"):
        read_tum(tmp_path / "norm.txt")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(InputError, match="path"):
        read_poses_json(tmp_path / "x.json")
    with pytest.raises(InputError, match="T_world_cam"):
        PoseTrack("a", np.eye(4))
    with pytest.raises(InputError, match="unique"):
        write_poses_json(tmp_path / "d.json", [PoseTrack("a", _poses(1)), PoseTrack("a", _poses(1))])
