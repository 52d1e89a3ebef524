"""The fill protocol (issue 11): forward-backward holes filled through ``Generator.generate`` and scored
against the frame itself, on the procedural sequence (exact depth, so checkable)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation.fill_protocol import BASELINE, fill_request, fill_rows, protocol_pairs, summarise
from worldstereo_ros.evaluation.procedural_sequence import ProceduralSequence
from worldstereo_ros.generation.base import create_backend
from worldstereo_ros.geometry.forward_backward import forward_backward_holes
from worldstereo_ros.geometry.inpaint import telea_inpaint

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def room() -> ProceduralSequence:
    return ProceduralSequence(frames=40, width=160, height=120)


def test_pairs_are_seeded_and_stay_in_the_range():
    pairs = protocol_pairs(range(600), 30, frames=(200, 299), seed=3)
    assert pairs == protocol_pairs(range(600), 30, frames=(200, 299), seed=3)
    assert all(200 <= i <= 299 and 200 <= j <= 299 and 5 <= abs(i - j) <= 60 for i, j in pairs)
    assert pairs != protocol_pairs(range(600), 30, frames=(200, 299), seed=4)
    with pytest.raises(InputError, match="frames"):
        protocol_pairs(range(600), 3, frames=(200, 203))


def test_request_is_the_condition_the_backend_would_get(room):
    fi, fj = room.read(10), room.read(30)
    real = fi.rgb.astype(np.float32) / 255
    fb = forward_backward_holes(real, fi.depth, fi.K, fi.T_world_cam, fj.T_world_cam)
    assert 0.02 < fb.hole_fraction < 0.8
    req = fill_request(fi, fj, fb, with_references=True)
    req.check()
    assert not req.cond_mask[0][fb.hole].any() and (req.cond_rgb[0][fb.hole] == 0).all()
    np.testing.assert_array_equal(req.cond_rgb[0][req.cond_mask[0]], real[req.cond_mask[0]])
    assert (req.cond_index[0] >= 0).sum() == req.cond_mask[0].sum()
    [[ref]] = req.references
    np.testing.assert_array_equal(ref.T_world_cam, fj.T_world_cam)
    assert fill_request(fi, fj, fb, with_references=False).references == [[]]


def test_telea_keeps_the_given_pixels():
    rgb = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    holes = np.zeros((20, 30), bool)
    holes[5:9, 10:15] = True
    out = telea_inpaint(rgb, holes, keep_known=False)
    np.testing.assert_allclose(out[~holes], rgb[~holes], atol=0.5 / 255 + 1e-6)
    with pytest.raises(InputError, match="holes"):
        telea_inpaint(rgb, holes[:, :5])


def test_thirty_pairs_twice_give_identical_numbers(room):
    pairs = protocol_pairs(room.indices, 30, seed=0)
    backends = {"render_fill": create_backend("render_fill")}
    first = fill_rows(room, pairs, backends, "room")
    second = fill_rows(room, pairs, backends, "room")
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in first]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in second]
    summary = {r["method"]: r for r in summarise(first)}
    assert summary[BASELINE]["pairs"] == summary["render_fill"]["pairs"] >= 25
    base = summary[BASELINE]
    # Telea leaves the given pixels alone: the whole frame scores far better than its holes
    assert base["psnr_full"] > base["psnr_hole"] + 3.0
    print(f"\nfill protocol, procedural room 160x120, {base['pairs']} pairs: "
          + "; ".join(f"{m}: holes {r['psnr_hole']:.2f} dB, full {r['psnr_full']:.2f} dB" for m, r in summary.items()))
