"""Camera trajectories on disk: TUM text files and one JSON file for several trajectories.

TUM (one trajectory per file, the format of the TUM RGB-D benchmark tools): one line per pose,
``timestamp tx ty tz qx qy qz qw`` (seconds; position of the camera in the world, metres; unit quaternion
of its orientation, xyzw = ROS order); lines starting with ``#`` are comments. The pose is
``T_world_cam`` of the camera's OpenCV optical frame.

JSON (``worldstereo_ros.poses/1``)::

    {"format": "worldstereo_ros.poses/1",
     "convention": "...",
     "trajectories": [{"id": "orbit", "width": 640, "height": 480, "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],
                       "frames": [{"index": 0, "timestamp_s": 0.0, "T_world_cam": [[...4x4...]],
                                   "t_xyz": [x, y, z], "q_xyzw": [qx, qy, qz, qw]}, ...]}, ...]}

``T_world_cam`` is authoritative on reading; ``t_xyz``/``q_xyzw`` are written for convenience and used when
``T_world_cam`` is absent. ``K``, ``width``, ``height`` may be null.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.rotations import matrix_to_quat_xyzw, quat_xyzw_to_matrix

JSON_FORMAT = "worldstereo_ros.poses/1"
_CONVENTION = ("T_world_cam maps points from the camera's OpenCV optical frame (x right, y down, z forward) to "
               "the world frame; metres; quaternions xyzw; K in pixels with pixel centres at integer coordinates")


@dataclass
class PoseTrack:
    """One named camera trajectory.

    Attributes:
        id: trajectory name.
        T_world_cam: (N, 4, 4) float64 camera poses.
        timestamps_s: (N,) float64 seconds (default: the frame index).
        K: (3, 3) float64 intrinsics or None. width, height: image size in pixels or None.
    """

    id: str
    T_world_cam: np.ndarray
    timestamps_s: np.ndarray | None = None
    K: np.ndarray | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        T = np.asarray(self.T_world_cam, dtype=np.float64)
        if T.ndim != 3 or T.shape[1:] != (4, 4) or T.shape[0] < 1:
            raise InputError("T_world_cam", f"expected shape (N, 4, 4) with N >= 1, got {T.shape}")
        if not np.isfinite(T).all():
            raise InputError("T_world_cam", "poses must be finite")
        self.T_world_cam = T
        n = T.shape[0]
        ts = np.arange(n, dtype=np.float64) if self.timestamps_s is None else np.asarray(self.timestamps_s, np.float64)
        if ts.shape != (n,):
            raise InputError("timestamps_s", f"expected shape ({n},), got {ts.shape}")
        self.timestamps_s = ts
        if self.K is not None:
            self.K = np.asarray(self.K, dtype=np.float64)
            if self.K.shape != (3, 3):
                raise InputError("K", f"expected shape (3, 3), got {self.K.shape}")


def _quats(T: np.ndarray) -> np.ndarray:
    return matrix_to_quat_xyzw(T[:, :3, :3])  # unit, qw >= 0 (q and -q are one rotation)


def _matrices(t: np.ndarray, q: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(q, axis=1)
    if not np.all(np.abs(norm - 1.0) < 1e-3):
        raise InputError("q_xyzw", f"quaternions must have unit norm, got norms in "
                                   f"[{norm.min():.4f}, {norm.max():.4f}]")
    T = np.tile(np.eye(4), (t.shape[0], 1, 1))
    T[:, :3, :3] = quat_xyzw_to_matrix(q, "q_xyzw")
    T[:, :3, 3] = t
    return T


def write_tum(path: str | Path, T_world_cam: np.ndarray, timestamps_s: np.ndarray | None = None) -> Path:
    """Write ``T_world_cam`` (N, 4, 4) as a TUM trajectory (``timestamp tx ty tz qx qy qz qw`` per line)."""
    track = PoseTrack("tum", T_world_cam, timestamps_s)
    q = _quats(track.T_world_cam)
    t = track.T_world_cam[:, :3, 3]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# timestamp tx ty tz qx qy qz qw (T_world_cam of the OpenCV optical frame; s, m)"]
    for ts, ti, qi in zip(track.timestamps_s, t, q):
        # microseconds, as TUM files carry them: 9 significant digits would cut a Unix time to whole seconds
        lines.append(f"{ts:.6f} " + " ".join(f"{v:.9g}" for v in (*ti, *qi)))
    path.write_text("\n".join(lines) + "\n")
    return path


def read_tum(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a TUM trajectory: (timestamps_s (N,) float64, T_world_cam (N, 4, 4) float64)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("path", f"no such file: {path}")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        if len(parts) != 8:
            raise InputError("path", f"{path}:{number}: expected 8 numbers (timestamp tx ty tz qx qy qz qw), "
                                     f"got {len(parts)}")
        try:
            rows.append([float(p) for p in parts])
        except ValueError as exc:
            raise InputError("path", f"{path}:{number}: not a number in {line!r}") from exc
    if not rows:
        raise InputError("path", f"{path} holds no poses")
    a = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(a).all():
        raise InputError("path", f"{path} holds non-finite values")
    return a[:, 0], _matrices(a[:, 1:4], a[:, 4:8])


def write_poses_json(path: str | Path, tracks: Sequence[PoseTrack]) -> Path:
    """Write several trajectories to one JSON file (format in the module doc)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    ids = [t.id for t in tracks]
    if len(set(ids)) != len(ids):
        raise InputError("tracks", f"trajectory ids must be unique, got {ids}")
    for track in tracks:
        q = _quats(track.T_world_cam)
        frames = [{"index": i, "timestamp_s": float(track.timestamps_s[i]),
                   "T_world_cam": track.T_world_cam[i].tolist(),
                   "t_xyz": track.T_world_cam[i, :3, 3].tolist(), "q_xyzw": q[i].tolist()}
                  for i in range(track.T_world_cam.shape[0])]
        out.append({"id": track.id, "width": track.width, "height": track.height,
                    "K": None if track.K is None else track.K.tolist(), "frames": frames})
    path.write_text(json.dumps({"format": JSON_FORMAT, "convention": _CONVENTION, "trajectories": out}, indent=1))
    return path


def read_poses_json(path: str | Path) -> list[PoseTrack]:
    """Read the trajectories of a JSON poses file (format in the module doc)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("path", f"no such file: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError("path", f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != JSON_FORMAT \
            or not isinstance(data.get("trajectories"), list):
        raise InputError("path", f"{path} is not a {JSON_FORMAT} file")
    tracks = []
    for n, item in enumerate(data["trajectories"]):
        try:
            frames = item["frames"]
            if frames and "T_world_cam" in frames[0]:
                T = np.asarray([f["T_world_cam"] for f in frames], dtype=np.float64)
            else:
                T = _matrices(np.asarray([f["t_xyz"] for f in frames], dtype=np.float64),
                              np.asarray([f["q_xyzw"] for f in frames], dtype=np.float64))
            ts = np.asarray([f.get("timestamp_s", i) for i, f in enumerate(frames)], dtype=np.float64)
            tracks.append(PoseTrack(str(item.get("id", f"trajectory_{n}")), T, ts, item.get("K"),
                                    item.get("width"), item.get("height")))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError("path", f"{path}: trajectory {n} is malformed ({exc!r})") from exc
    return tracks


def read_poses_file(path: str | Path) -> list[PoseTrack]:
    """Read a TUM text file (one trajectory named after the file) or a JSON poses file (by extension)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return read_poses_json(path)
    ts, T = read_tum(path)
    name = path.name.split(".")[0] or "trajectory"
    return [PoseTrack(name, T, ts)]
