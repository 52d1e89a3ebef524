"""FillNet, its input tensor and its weights files (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from worldstereo_ros.errors import BackendError, InputError
from worldstereo_ros.generation.learned.conditioning import INPUT_CHANNELS, build_input, inverse_depth
from worldstereo_ros.generation.learned.model import FillNet, clamp_to_support, pad_to_multiple
from worldstereo_ros.generation.learned.weights import load_model, save_model

torch.set_num_threads(1)


def _input(h: int = 64, w: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = rng.random((h, w, 3), dtype=np.float32)
    depth = rng.uniform(1.0, 3.0, (h, w)).astype(np.float32)
    hole = np.zeros((h, w), bool)
    hole[10:30, 20:50] = True
    x, _ = build_input(rgb, depth, hole, np.zeros_like(rgb), np.zeros_like(depth), np.zeros((h, w), bool))
    return x, rgb, hole


def test_build_input_channels_and_scale():
    x, rgb, hole = _input()
    assert x.shape == (len(INPUT_CHANNELS), 64, 96) and x.dtype == np.float32
    assert np.array_equal(x[3] > 0.5, hole)
    assert np.all(x[0:3][:, hole] == 0.0) and np.all(x[4][hole] == 0.0)
    np.testing.assert_allclose(x[0:3][:, ~hole], rgb.transpose(2, 0, 1)[:, ~hole])
    # Telea leaves observed pixels alone and fills the hole from them
    np.testing.assert_allclose(x[5:8][:, ~hole], rgb.transpose(2, 0, 1)[:, ~hole])
    assert np.all(x[5:8][:, hole] > 0)


def test_inverse_depth_by_hand():
    d = np.array([[2.0, 0.0], [4.0, np.nan]], np.float32)
    np.testing.assert_allclose(inverse_depth(d, 2.0), [[1.0, 0.0], [0.5, 0.0]])


def test_shapes_and_observed_pixels_pass_through():
    torch.manual_seed(0)
    model = FillNet(widths=(8, 8, 8, 8), fine=4).eval()
    x, rgb, hole = _input()
    with torch.no_grad():
        out = model(torch.from_numpy(x)[None])
    assert out.rgb.shape == (1, 3, 64, 96) and out.inv_depth.shape == (1, 1, 64, 96)
    assert out.confidence.shape == (1, 1, 64, 96)
    assert float(out.confidence.min()) >= 0 and float(out.confidence.max()) <= 1 and float(out.inv_depth.min()) >= 0
    observed = out.rgb[0].numpy()[:, ~hole]
    assert np.array_equal(observed, x[0:3][:, ~hole])  # bit for bit
    assert not np.allclose(out.rgb[0].numpy()[:, hole], 0.0)


def test_bad_input_names_the_field():
    model = FillNet(widths=(8, 8, 8, 8), fine=4)
    with pytest.raises(InputError, match="x: expected shape"):
        model(torch.zeros(1, 5, 64, 64))
    with pytest.raises(InputError, match="multiples of 32"):
        model(torch.zeros(1, len(INPUT_CHANNELS), 60, 64))


def test_pad_to_multiple():
    x, pad = pad_to_multiple(torch.zeros(1, 2, 480, 641))
    assert x.shape == (1, 2, 480, 672) and pad == (0, 31)


def test_clamp_to_support_by_hand():
    observed = torch.zeros(1, 1, 32, 32)
    observed[0, 0, :, :8] = 2.0
    observed[0, 0, :, 8:12] = 3.0
    depth = torch.full((1, 1, 32, 32), 10.0)
    clamped, supported = clamp_to_support(depth, observed, window_px=9)
    # near the observations the imagined 10 m is pulled to the largest depth seen there (3 m) ...
    assert float(clamped[0, 0, 5, 12]) == 3.0 and bool(supported[0, 0, 5, 12])
    # ... and far from every observation nothing supports it
    assert not bool(supported[0, 0, 5, 31])


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = FillNet(widths=(8, 12, 16, 16), fine=4)
    path = save_model(model, tmp_path / "m.safetensors", {"note": "test"})
    loaded = load_model(path)
    assert loaded.widths == (8, 12, 16, 16) and loaded.fine == 4
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    x, _, _ = _input()
    with torch.no_grad():
        assert torch.equal(model.eval()(torch.from_numpy(x)[None]).rgb, loaded(torch.from_numpy(x)[None]).rgb)


def test_corrupt_or_mismatched_weights_name_the_file_and_key(tmp_path):
    model = FillNet(widths=(8, 8, 8, 8), fine=4)
    good = save_model(model, tmp_path / "good.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(good.read_bytes()[:200])
    with pytest.raises(BackendError, match="corrupt.safetensors"):
        load_model(corrupt)
    with pytest.raises(BackendError, match="missing.safetensors: weights file not found"):
        load_model(tmp_path / "missing.safetensors")
    state = load_file(str(good))
    meta = {"widths": "8,8,8,8", "fine": "4"}
    dropped = dict(state)
    del dropped["refine.2.bias"]
    save_file(dropped, str(tmp_path / "dropped.safetensors"), metadata=meta)
    with pytest.raises(BackendError, match=r"dropped.safetensors: missing key 'refine.2.bias'"):
        load_model(tmp_path / "dropped.safetensors")
    extra = dict(state, **{"head.extra": torch.zeros(2)})
    save_file(extra, str(tmp_path / "extra.safetensors"), metadata=meta)
    with pytest.raises(BackendError, match=r"extra.safetensors: unexpected key 'head.extra'"):
        load_model(tmp_path / "extra.safetensors")
    # the same keys for another architecture: the first wrong shape is named
    save_file(state, str(tmp_path / "other.safetensors"), metadata={"widths": "16,8,8,8", "fine": "4"})
    with pytest.raises(BackendError, match=r"other.safetensors: key 'stem.0.weight' has shape"):
        load_model(tmp_path / "other.safetensors")


def test_infer_matches_forward_at_hole_pixels():
    """Issue 12 speed: FillNet.infer (fused stem, refinement on hole tiles only) is forward's maths, not an
    approximation: the same values at every hole pixel, including tiles on the frame border."""
    torch.manual_seed(0)
    model = FillNet(widths=(8, 8, 8, 8), fine=4).eval()
    rng = np.random.default_rng(1)
    h, w = 96, 128
    rgb = rng.random((h, w, 3), dtype=np.float32)
    depth = rng.uniform(1.0, 3.0, (h, w)).astype(np.float32)
    hole = np.zeros((h, w), bool)
    hole[0:5, 0:7] = True  # the top-left corner tile: its halo lies outside the frame
    hole[40:52, 60:100] = True
    hole[90:96, 120:128] = True  # bottom-right corner
    x, _ = build_input(rgb, depth, hole, rgb[::-1].copy(), depth, rng.random((h, w)) > 0.5)
    xt = torch.from_numpy(x)[None]
    with torch.no_grad():
        full = model(xt)
        fast = model.infer(xt.contiguous(memory_format=torch.channels_last))
    for name in ("rgb", "inv_depth", "confidence", "confidence_logit"):
        a, b = getattr(full, name)[0].numpy()[:, hole], getattr(fast, name)[0].numpy()[:, hole]
        np.testing.assert_allclose(b, a, atol=1e-5, err_msg=name)
    # tiles without a hole pixel are not computed: the condition passes through, no depth, no confidence
    assert np.array_equal(fast.rgb[0].numpy()[:, 64:96, 0:32], x[0:3, 64:96, 0:32])
    assert float(fast.confidence[0, 0, 64:96, 0:32].abs().max()) == 0.0


def test_build_input_hwc_is_build_input_transposed():
    from worldstereo_ros.generation.learned.conditioning import build_input_hwc

    x, rgb, hole = _input()
    depth = np.full(hole.shape, 2.0, np.float32)
    depth[5, 5] = np.nan
    y, scale = build_input_hwc(rgb, depth, hole, np.zeros_like(rgb), np.zeros_like(depth), np.zeros(hole.shape, bool))
    x2, scale2 = build_input(rgb, depth, hole, np.zeros_like(rgb), np.zeros_like(depth), np.zeros(hole.shape, bool))
    assert np.array_equal(y.transpose(2, 0, 1), x2) and scale == scale2
    from worldstereo_ros.geometry.inpaint import telea_inpaint

    r2, _ = build_input_hwc(rgb, depth, hole, np.zeros_like(rgb), np.zeros_like(depth), np.zeros(hole.shape, bool),
                            prior="telea_r2")
    assert np.array_equal(r2[..., 5:8], telea_inpaint(np.where(hole[..., None], 0.0, rgb), hole, 2.0))
    assert np.array_equal(np.delete(r2, [5, 6, 7], axis=2), np.delete(y, [5, 6, 7], axis=2))
    with pytest.raises(InputError, match="prior"):
        build_input_hwc(rgb, depth, hole, np.zeros_like(rgb), np.zeros_like(depth), np.zeros(hole.shape, bool),
                        prior="blur")


def test_support_range_by_hand():
    from worldstereo_ros.generation.learned.conditioning import support_range

    observed = np.zeros((10, 14), np.float32)  # sides not multiples of 4: the last cells are partial
    observed[9, 13] = 2.0  # in the last (partial) cell
    observed[0, 0] = 5.0
    lo, hi = support_range(observed, window_px=5)  # 5 // 4 = 1 -> a 1-cell window: each cell alone
    assert lo.shape == hi.shape == (3, 4)
    assert hi[2, 3] == 2.0 and lo[2, 3] == 2.0 and hi[0, 0] == 5.0 and lo[0, 0] == 5.0
    assert hi[1, 1] == 0.0 and lo[1, 1] == np.float32(1e9)  # nothing observed there
    lo, hi = support_range(observed, window_px=13)  # 3 cells wide: the neighbours' depths count
    assert hi[1, 1] == 5.0 and lo[1, 1] == 5.0 and hi[1, 2] == 2.0 and lo[1, 2] == 2.0


def test_fast_telea_keeps_observed_pixels_and_fills_smooth_images():
    from worldstereo_ros.generation.learned.conditioning import fast_telea
    from worldstereo_ros.geometry.inpaint import telea_inpaint

    v, u = np.mgrid[0:64, 0:96]
    rgb = np.stack([u / 95.0, v / 63.0, np.full(u.shape, 0.5)], -1).astype(np.float32)  # a smooth ramp
    hole = np.zeros((64, 96), bool)
    hole[20:44, 30:70] = True
    holed = np.where(hole[..., None], 0.0, rgb).astype(np.float32)
    fast = fast_telea(holed, hole)
    assert np.array_equal(fast[~hole], holed[~hole])  # observed pixels untouched
    # on a ramp both fills stay close to the truth; the fast one no worse than 0.03 from exact Telea's error
    err_fast = np.abs(fast[hole] - rgb[hole]).mean()
    err_exact = np.abs(telea_inpaint(holed, hole)[hole] - rgb[hole]).mean()
    assert err_fast < err_exact + 0.03, (err_fast, err_exact)
    # odd sides: exact Telea
    odd = np.ascontiguousarray(holed[:63]), hole[:63]
    assert np.array_equal(fast_telea(*odd), telea_inpaint(*odd))
