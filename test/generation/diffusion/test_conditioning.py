"""GenerationRequest -> model inputs: chunks, pose superset, buckets + K, masks, references (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

from worldstereo_ros.generation.base import GenerationRequest, Reference
from worldstereo_ros.generation.diffusion.conditioning import (
    HOLE_GREY,
    chunk_inputs,
    nearest_bucket,
    plan_chunks,
    rescale_K,
    select_references,
    superset_poses,
)


def _poses(n: int) -> np.ndarray:
    T = np.repeat(np.eye(4)[None], n, axis=0)
    T[:, 0, 3] = np.linspace(0, 1, n)
    return T


def _request(n: int, h: int = 24, w: int = 32, refs=None) -> GenerationRequest:
    K = np.array([[20.0, 0, 15.5], [0, 20, 11.5], [0, 0, 1]])
    rng = np.random.default_rng(0)
    mask = np.zeros((n, h, w), bool)
    mask[:, :, : w // 2] = True
    return GenerationRequest(K=np.repeat(K[None], n, 0), T_world_cam=_poses(n), height=h, width=w,
                             cond_rgb=rng.random((n, h, w, 3), dtype=np.float32),
                             cond_depth=np.where(mask, 2.0, 0).astype(np.float32), cond_mask=mask,
                             cond_index=np.where(mask, 1, -1), references=refs or [[] for _ in range(n)], source=None)


def test_plan_chunks_chain_on_last_frame():
    plans = plan_chunks(45, 21)
    assert [p.requested[0] for p in plans] == [0, 20, 40]
    assert [p.requested[-1] for p in plans] == [20, 40, 44]
    assert plans[0].slots.tolist() == list(range(21))
    assert plans[2].slots.tolist() == [0, 5, 10, 15, 20]
    assert plan_chunks(1, 21)[0].slots.tolist() == [0]


def test_superset_contains_requested_poses_in_order():
    T = _poses(4)
    plan = plan_chunks(4, 7)[0]
    S = superset_poses(T, plan, 7)
    assert plan.slots.tolist() == [0, 2, 4, 6]
    for j, slot in enumerate(plan.slots):
        assert np.allclose(S[slot], T[j])
    assert np.allclose(S[1, 0, 3], (T[0, 0, 3] + T[1, 0, 3]) / 2)  # inserted midway
    assert np.all(np.diff(S[:, 0, 3]) > 0)


def test_bucket_and_K_rescale():
    buckets = ((480, 768), (608, 608), (768, 480))
    assert nearest_bucket(480, 640, buckets) == (480, 768)
    assert nearest_bucket(640, 480, buckets) == (768, 480)
    K = np.array([[100.0, 0, 63.5], [0, 100, 47.5], [0, 0, 1]])  # centre of a 128 x 96 image
    K2 = rescale_K(K, 2.0, 0.5)
    assert K2[0, 0] == 200 and K2[1, 1] == 50
    assert K2[0, 2] == pytest.approx(127.5) and K2[1, 2] == pytest.approx(23.5)  # still the centre (256 x 48)
    assert K[0, 0] == 100  # input unchanged


def test_masks_holes_and_start_image():
    req = _request(3)
    start = np.full((24, 32, 3), 0.9, np.float32)
    inputs = chunk_inputs(req, plan_chunks(3, 5)[0], 5, (32, 48), start)
    assert inputs.render_rgb.shape == (5, 32, 48, 3) and inputs.render_mask.shape == (5, 32, 48)
    assert np.all(inputs.render_mask[0] == 0) and np.allclose(inputs.render_rgb[0], 0.9)
    # Requested frame 1 sits at slot 2: left half covered (mask 0), right half a grey hole (mask 1).
    assert np.all(inputs.render_mask[2][:, :20] == 0) and np.all(inputs.render_mask[2][:, 28:] == 1)
    assert np.allclose(inputs.render_rgb[2][:, 28:], HOLE_GREY)
    assert inputs.K[2][0, 0] == pytest.approx(20 * 48 / 32)
    # Inserted slot 1 is re-rendered from a requested neighbour: partly covered.
    assert 0 < inputs.render_mask[1].mean() < 1


def _ref(kid: int, score: float) -> Reference:
    return Reference(rgb=np.full((24, 32, 3), kid / 10, np.float32), depth=np.ones((24, 32), np.float32),
                     pointmap=np.zeros((24, 32, 3), np.float32), K=np.eye(3), T_world_cam=np.eye(4), score=score,
                     keyframe_id=kid)


def test_references_dedupe_index_and_cap():
    refs = [[_ref(9, 0.9)], [_ref(1, 0.5), _ref(2, 0.7)], [_ref(2, 0.6)], [_ref(3, 0.2)], [_ref(4, 0.8)]]
    plan = plan_chunks(5, 9)[0]  # slots 0, 2, 4, 6, 8
    chosen, index = select_references(refs, plan, 8)
    assert [r.keyframe_id for r in chosen] == [2, 3, 4]  # frame 0's reference is the start image's slot: unused
    assert index.tolist() == [1, 5, 7]  # slot - 1 of the first frame that retrieved it
    chosen, index = select_references(refs, plan, 2)
    assert [r.keyframe_id for r in chosen] == [2, 4] and index.tolist() == [1, 7]
    inputs = chunk_inputs(_request(5, refs=refs), plan, 9, (32, 48), None)
    assert inputs.ref_rgb.shape == (3, 32, 48, 3) and inputs.ref_index.tolist() == [1, 5, 7]
