"""GPU check of the WorldStereo backend: seconds per transformer forward, DMD trajectory time, peak memory.

One command, < 8 minutes on one large GPU (H100/H200). Three modes:

- ``--model-path DIR``: the released weights (offline). Loads the chosen variant with the backend and times the
  transformer forwards inside a real 21-keyframe DMD trajectory (encoders, VAE and all) at 480 x 768.
- ``--synthetic`` (default when no ``--model-path``): a full-size memory model (Wan2.1-I2V-14B backbone + a
  1024 x 20 branch, camera tokens) with random bf16 weights created directly on the GPU; times the transformer alone
  (1 and 8 references) and a 4-step DMD denoising loop. Nothing is downloaded.
- ``--tiny``: the same code path with the tiny test config on the CPU (checks the script, not the hardware).

The result table is printed beside the paper sizing of ``docs/gpu-sizing.md`` (H100/H200 row) and written as JSON
with ``--json FILE``. Example::

    python benchmarks/bench_gpu.py --synthetic --json bench_gpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worldstereo_ros.generation.diffusion.config import BranchConfig, tiny_backbone_kwargs, tiny_branch  # noqa: E402

#: Wan2.1-I2V-14B transformer config (diffusers).
WAN_14B = dict(patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36, out_channels=16,
               text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
               qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280, added_kv_proj_dim=5120,
               rope_max_seq_len=1024)
#: The branch size assumed by the sizing (Uni3C's PCDController is 0.95 B: dim 1024 x 20 layers).
BRANCH_FULL = BranchConfig(dim=1024, num_heads=16, ffn_dim=3072, num_layers=20, time_embed_dim=5120,
                           conv_out_dim=5120, add_channels=7, mid_channels=64, mask_downsample=1, update_ref=True,
                           main_camera_embedding=True, camera_embedding_dim=7, ref_embedding=True)
#: docs/gpu-sizing.md, H100/H200 row (estimates, +-30 %).
PAPER = {"s_per_forward_1ref": 3.4, "s_per_forward_8ref": 5.1, "dmd_trajectory_s": (14.0, 20.0),
         "peak_GB_interleaved": 42.0}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_model(branch: BranchConfig, wan: dict[str, Any], device: torch.device, dtype: torch.dtype, seed: int = 0):
    """A WorldStereoTransformer whose parameters are created on ``device`` directly (never on the host)."""
    from accelerate import init_empty_weights
    from accelerate.utils import set_module_tensor_to_device

    from worldstereo_ros.generation.diffusion.transformer import WorldStereoTransformer

    with init_empty_weights(include_buffers=False):
        model = WorldStereoTransformer(branch, kind="memory", **wan)
    gen = torch.Generator(device=device).manual_seed(seed)
    for name, param in list(model.named_parameters()):
        value = torch.empty(param.shape, device=device, dtype=dtype)
        if param.ndim == 1 and name.endswith("weight"):
            value.fill_(1.0)  # norm scales
        else:
            value.normal_(0.0, 0.02, generator=gen)
        set_module_tensor_to_device(model, name, device, value=value)
    return model.to(device).eval()


def inputs(b: BranchConfig, wan: dict[str, Any], frames: int, height: int, width: int, refs: int,
           device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Random model inputs of one forward (shapes of docs/worldstereo-backend.md section 1.2)."""
    g = torch.Generator().manual_seed(0)
    h, w = height // 8, width // 8

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=g).to(device, dtype)

    return dict(hidden_states=rnd(1, 36, frames, h, w), timestep=torch.tensor([937.5], device=device),
                encoder_hidden_states=rnd(1, 512, wan["text_dim"]),
                encoder_hidden_states_image=rnd(1, 257, wan["image_dim"]), render_latent=rnd(1, 16, frames, h, w),
                render_mask=(torch.rand(1, 1, frames, height, width, generator=g) > 0.5).to(device, dtype),
                plucker=rnd(1, 6, frames, height, width), reference_latent=rnd(1, 36, refs, h, w),
                ref_index=torch.arange(refs, device=device) % max(frames - 1, 1),
                camera_qt=rnd(1, frames, 7), camera_qt_ref=rnd(1, refs, 7))


def time_forwards(model, x: dict[str, torch.Tensor], repeats: int, device: torch.device) -> float:
    """Median seconds per forward after one warm-up forward."""
    with torch.no_grad():
        model(**x)
        _sync(device)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(**x)
            _sync(device)
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def bench_model(model, b: BranchConfig, wan: dict[str, Any], frames: int, height: int, width: int,
                device: torch.device, dtype: torch.dtype, repeats: int) -> dict[str, Any]:
    from worldstereo_ros.generation.diffusion.sampler import DMDScheduler, denoise, initial_noise

    out: dict[str, Any] = {}
    for refs in (1, 8):
        x = inputs(b, wan, frames, height, width, refs, device, dtype)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        out[f"s_per_forward_{refs}ref"] = time_forwards(model, x, repeats, device)
        if device.type == "cuda":
            out[f"peak_GB_{refs}ref"] = torch.cuda.max_memory_allocated(device) / 1e9
    x = inputs(b, wan, frames, height, width, 8, device, dtype)
    cond = x.pop("hidden_states")[:, 16:]
    x.pop("timestep")

    def velocity(lat: torch.Tensor, t: torch.Tensor, positive: bool) -> torch.Tensor:
        with torch.no_grad():
            return model(torch.cat([lat.to(dtype), cond], 1), t, **x)

    _sync(device)
    t0 = time.perf_counter()
    denoise(velocity, initial_noise((1, 16, frames, height // 8, width // 8), torch.Generator().manual_seed(0), device),
            DMDScheduler(), 4)
    _sync(device)
    out["dmd_denoise_s_8ref"] = time.perf_counter() - t0
    return out


def bench_released(model_path: str, variant: str, device: torch.device, dtype: str, frames_hw: tuple[int, int],
                   base_model_path: str | None) -> dict[str, Any]:
    """A full backend trajectory (encoders, VAE, 4 DMD steps) on the real weights; forwards timed with hooks."""
    import numpy as np

    from worldstereo_ros.generation.base import GenerationRequest, create_backend

    backend = create_backend("worldstereo", model_path=model_path, variant=variant, device=str(device), dtype=dtype,
                             base_model_path=base_model_path)
    t0 = time.perf_counter()
    backend.warmup()
    out: dict[str, Any] = {"load_s": time.perf_counter() - t0}
    model = backend._parts["transformer"]
    stamps: list[float] = []

    def stamp(*_: Any) -> None:  # hooks must return None (a value would replace the inputs/outputs)
        _sync(device)
        stamps.append(time.perf_counter())

    model.register_forward_pre_hook(stamp)
    model.register_forward_hook(stamp)
    h, w = frames_hw
    n = backend.config.nframe
    K = np.array([[0.8 * w, 0, w / 2 - 0.5], [0, 0.8 * w, h / 2 - 0.5], [0, 0, 1]])
    T = np.repeat(np.eye(4)[None], n, 0)
    T[:, 0, 3] = np.linspace(0, 0.5, n)
    rng = np.random.default_rng(0)
    mask = np.zeros((n, h, w), bool)
    mask[:, :, : w // 2] = True
    req = GenerationRequest(K=np.repeat(K[None], n, 0), T_world_cam=T, height=h, width=w,
                            cond_rgb=rng.random((n, h, w, 3), dtype=np.float32),
                            cond_depth=np.where(mask, 2.0, 0).astype(np.float32), cond_mask=mask,
                            cond_index=np.where(mask, 0, -1), references=[[] for _ in range(n)], source=None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    backend.generate(req, torch.Generator().manual_seed(0))
    out["trajectory_s"] = time.perf_counter() - t0
    fwd = [stamps[i + 1] - stamps[i] for i in range(0, len(stamps) - 1, 2)]
    out["forwards"] = len(fwd)
    out["s_per_forward_1ref"] = sorted(fwd)[len(fwd) // 2] if fwd else float("nan")
    if device.type == "cuda":
        out["peak_GB"] = torch.cuda.max_memory_allocated(device) / 1e9
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--model-path", default=None, help="released weights folder (worldstereo-*/ + base)")
    mode.add_argument("--synthetic", action="store_true", help="full-size random model on the GPU (default)")
    mode.add_argument("--tiny", action="store_true", help="tiny config on the CPU (checks the script)")
    p.add_argument("--variant", default="memory-dmd")
    p.add_argument("--base-model-path", default=None)
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--size", default="480x768", help="HEIGHTxWIDTH of the keyframes")
    p.add_argument("--frames", type=int, default=21, help="keyframes per call")
    p.add_argument("--repeats", type=int, default=3, help="timed forwards per case (after one warm-up)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(1)  # tiny tensors: extra threads only add contention
    height, width = (int(v) for v in args.size.lower().split("x"))
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    t_start = time.perf_counter()
    if args.model_path:
        result["mode"] = f"released {args.variant}"
        result.update(bench_released(args.model_path, args.variant, device, "auto", (height, width),
                                     args.base_model_path))
    else:
        tiny = args.tiny or device.type == "cpu"
        if tiny:
            branch, wan, dtype = tiny_branch(True), tiny_backbone_kwargs(), torch.float32
            height, width, frames = 32, 48, min(args.frames, 5)
            result["mode"] = "tiny (CPU check of the script; numbers say nothing about a GPU)"
        else:
            branch, wan, frames = BRANCH_FULL, WAN_14B, args.frames
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            result["mode"] = "synthetic full-size memory model, random weights"
        t0 = time.perf_counter()
        model = random_model(branch, wan, device, dtype)
        result["build_s"] = time.perf_counter() - t0
        result["params_B"] = sum(p.numel() for p in model.parameters()) / 1e9
        result["size"] = f"{frames} x {height} x {width}"
        result.update(bench_model(model, branch, wan, frames, height, width, device, dtype, args.repeats))
    result["total_s"] = time.perf_counter() - t_start
    print(f"mode: {result['mode']} on {result['device']}")
    print(f"{'quantity':<28} {'measured':>12} {'paper H100/H200':>18}")
    rows = [("s / forward, 1 ref", result.get("s_per_forward_1ref"), PAPER["s_per_forward_1ref"]),
            ("s / forward, 8 refs", result.get("s_per_forward_8ref"), PAPER["s_per_forward_8ref"]),
            ("DMD 4-step denoise, 8 refs s", result.get("dmd_denoise_s_8ref"), "14-20 (+2-5 enc/VAE)"),
            ("trajectory s (released)", result.get("trajectory_s"), "16-25"),
            ("peak GB (8 refs)", result.get("peak_GB_8ref", result.get("peak_GB")), PAPER["peak_GB_interleaved"])]
    for name, value, paper in rows:
        if value is not None:
            print(f"{name:<28} {value:>12.3f} {str(paper):>18}")
    print(f"total {result['total_s']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
