"""Issue 11: a deliberately wrong backend (cache render shifted 3 px, noise in the holes) scores below the
baseline on the fill protocol and on consistency's accuracy against the truth, and the camera section's
plain-render row is a bar a render-based backend does not clear by construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldstereo_ros.datasets.procedural_scene import build_scene, procedural_snapshot
from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation.consistency import (
    BASELINE,
    CheckPose,
    accuracy_rises,
    check_pose_is_no_keyframe,
    consistency_row,
    consistency_rows,
    keyframe_indices,
    room_checks,
    sequence_checks,
)
from worldstereo_ros.evaluation.fill_protocol import BASELINE as FILL_BASELINE
from worldstereo_ros.evaluation.fill_protocol import fill_rows, protocol_pairs, summarise
from worldstereo_ros.evaluation.procedural_sequence import ProceduralSequence
from worldstereo_ros.generation.base import create_backend
from worldstereo_ros.pipeline import PipelineConfig

torch.set_num_threads(1)


def test_wrong_backend_loses_the_fill_protocol(wrong_backend):
    room = ProceduralSequence(frames=30, width=160, height=120)
    rows = fill_rows(room, protocol_pairs(room.indices, 6, seed=1), {wrong_backend: create_backend(wrong_backend),
                                                                    "render_fill": create_backend("render_fill")},
                     "room")
    s = {r["method"]: r for r in summarise(rows)}
    assert s[wrong_backend]["psnr_hole"] < s[FILL_BASELINE]["psnr_hole"] - 1.0
    assert s[wrong_backend]["psnr_full"] < s[FILL_BASELINE]["psnr_full"] - 1.0
    assert s[wrong_backend]["wins"] == 0


def test_wrong_backend_loses_accuracy_against_the_truth(wrong_backend):
    snapshot = procedural_snapshot(160, 120)
    checks = room_checks(snapshot, build_scene(0, 0.01), frames=8)
    baseline, *_ = consistency_rows(snapshot, checks[:1], PipelineConfig(backend="render_fill"))[:1]
    wrong = consistency_row(snapshot, checks[:1], "ggm+ssm", PipelineConfig(backend=wrong_backend))
    assert baseline.memory == BASELINE
    assert wrong.accuracy_db < baseline.accuracy_db - 1.0
    # ...while its two routes agree with each other at least as well as they match the truth: agreement
    # alone would not have caught it
    assert wrong.mean_agreement_db > wrong.accuracy_db


def test_check_poses_are_never_keyframes():
    snapshot = procedural_snapshot(64, 48)
    for frames in (6, 8, 25):
        for check in room_checks(snapshot, build_scene(0, 0.02), frames=frames):
            assert check.index not in keyframe_indices(frames, 5)
            np.testing.assert_array_equal(check.route_a[check.index], check.T_world_cam)
            np.testing.assert_allclose(check.route_b[check.index], check.T_world_cam, atol=1e-9)
            check_pose_is_no_keyframe(check, 5, snapshot.T_world_cam)
    # a layout where the check pose is a route's last frame (a keyframe) is refused
    bad = CheckPose("end", check.route_a[-1], check.truth, check.route_a, check.route_b, len(check.route_a) - 1)
    with pytest.raises(InputError, match="coincides with a keyframe"):
        check_pose_is_no_keyframe(bad, 5, snapshot.T_world_cam)


def test_real_check_frames_stay_in_the_range():
    room = ProceduralSequence(frames=40, width=64, height=48)
    [check] = sequence_checks(room, 0, [20], frames=8, frame_range=(0, 30))
    assert check.name == "frame 20"
    np.testing.assert_array_equal(check.T_world_cam, room.pose(20))
    with pytest.raises(InputError, match="outside the data or the frame range"):
        sequence_checks(room, 0, [28], frames=8, frame_range=(0, 30))
    with pytest.raises(InputError, match="more than"):
        sequence_checks(room, 0, [3], frames=8)


def test_accuracy_rises_reads_the_truth_column():
    rows = [dict(memory=m, accuracy_db=a, mean_agreement_db=g)
            for m, a, g in (("none", 15.0, 30.0), ("ggm", 15.5, 28.0), ("ggm+ssm", 15.4, 35.0))]
    assert not accuracy_rises(rows)
    rows[2]["accuracy_db"] = 16.0
    assert accuracy_rises(rows)
