"""MemoryBank: retrieval by frustum overlap, bounded size, eviction of the most redundant keyframe."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldstereo_ros.errors import InputError
from worldstereo_ros.memory.memory_bank import MemoryBank
from worldstereo_ros.memory.types import Keyframe

W, H = 32, 24
K = np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])


def _pose(yaw_deg: float = 0.0, x: float = 0.0) -> np.ndarray:
    a = math.radians(yaw_deg)  # rotation about the camera's y axis (down): a turn left/right
    T = np.eye(4)
    T[:3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
    T[0, 3] = x
    return T


def _keyframe(kid: int, T: np.ndarray, depth_m: float = 3.0) -> Keyframe:
    depth = np.full((H, W), depth_m, np.float32)
    pointmap = np.zeros((H, W, 3), np.float32)  # not used by retrieval
    return Keyframe(np.zeros((H, W, 3), np.float32), depth, pointmap, K, T, kid, "t")


def test_keyframe_at_the_target_pose_beats_one_facing_away():
    bank = MemoryBank(capacity=4)
    bank.add(_keyframe(0, _pose(180.0)))
    bank.add(_keyframe(1, _pose(0.0)))
    refs = bank.retrieve(K, _pose(0.0), W, H, k=2)
    assert [r.keyframe_id for r in refs] == [1]  # the one facing away scores 0 < min_score
    assert refs[0].score > 0.9
    scores = bank.score(K, _pose(0.0), W, H)
    assert scores[0] < 0.01 and scores[1] > 0.9


def test_overlap_falls_as_the_target_turns_away():
    bank = MemoryBank()
    bank.add(_keyframe(0, _pose(0.0)))
    s = [float(bank.score(K, _pose(yaw), W, H)[0]) for yaw in (0.0, 20.0, 40.0, 90.0)]
    assert s[0] > s[1] > s[2] > s[3]
    assert s[3] < 0.01


def test_reference_carries_the_keyframe_arrays():
    bank = MemoryBank()
    kf = _keyframe(7, _pose(0.0))
    bank.add(kf)
    [ref] = bank.retrieve(K, _pose(5.0), W, H)
    assert ref.keyframe_id == 7 and ref.rgb is kf.rgb and ref.pointmap is kf.pointmap
    np.testing.assert_array_equal(ref.T_world_cam, kf.T_world_cam)


def test_bank_is_bounded_and_drops_the_most_redundant_keyframe():
    bank = MemoryBank(capacity=2)
    assert bank.add(_keyframe(0, _pose(0.0))) is None
    assert bank.add(_keyframe(1, _pose(120.0))) is None
    # a near copy of keyframe 0 arrives: 0 and 2 are the redundant pair, 0 is older
    assert bank.add(_keyframe(2, _pose(2.0))) == 0
    assert bank.ids == [1, 2] and len(bank) == 2


def test_pinned_keyframes_stay():
    bank = MemoryBank(capacity=2)
    bank.add(_keyframe(0, _pose(0.0)), pinned=True)
    bank.add(_keyframe(1, _pose(120.0)))
    assert bank.add(_keyframe(2, _pose(1.0))) == 2  # redundant with the pinned one: the newcomer goes
    assert bank.ids == [0, 1]
    for kid in range(3, 8):
        bank.add(_keyframe(kid, _pose(60.0 * kid)))
        assert 0 in bank.ids and len(bank) == 2


def test_bad_input_names_the_field():
    with pytest.raises(InputError, match="capacity"):
        MemoryBank(capacity=0)
    bank = MemoryBank()
    bank.add(_keyframe(0, _pose()))
    with pytest.raises(InputError, match="keyframe_id"):
        bank.add(_keyframe(0, _pose()))
    with pytest.raises(InputError, match="k"):
        bank.retrieve(K, _pose(), W, H, k=0)
    with pytest.raises(InputError, match="T_world_cam"):
        bank.retrieve(K, np.eye(3), W, H)
    with pytest.raises(InputError, match="pointmap"):
        Keyframe(np.zeros((H, W, 3)), np.zeros((H, W)), np.zeros((H, W)), K, np.eye(4), 1)


def test_empty_bank_returns_no_references():
    assert MemoryBank().retrieve(K, _pose(), W, H) == []


def test_from_frame_back_projects_the_depth():
    T = _pose(0.0, x=1.0)
    kf = Keyframe.from_frame(np.zeros((H, W, 3)), np.full((H, W), 2.0), K, T, 3, "a")
    # the principal point pixel lies on the optical axis, 2 m ahead of the camera at x = 1
    np.testing.assert_allclose(kf.pointmap[11, 15], [1.0 - 0.5 * 2 / 30, -0.5 * 2 / 30, 2.0], atol=1e-5)
    assert kf.pointmap.dtype == np.float32 and kf.trajectory_id == "a"
