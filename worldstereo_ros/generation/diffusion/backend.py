"""``worldstereo``: the released WorldStereo model (camera / memory / memory-DMD) as a generator backend.

One request becomes chunks of ``nframe`` keyframes (see :mod:`.conditioning`); per chunk: the cache renders and the
start image are VAE-encoded per frame, the hole mask and Plücker rays go to the geometry branch, the retrieved
references (memory variants) are encoded as I2V-layout latents with their camera tokens, the prompt and the start
image are encoded (UMT5, CLIP), the sampler runs (DMD: 4 Euler steps; camera/memory: UniPC with text CFG), and the
keyframes are decoded and resized back. Frames of a chunk are final (``on_frame``) when the chunk is decoded.

Depth of generated frames: ``depth="cache"``: the cache's rendered depth where it covers the pixel and the
``render_fill`` geometric completion elsewhere (metric; imagined geometry is extrapolated, not learned).
``depth="estimator"``: a monocular depth model from local weights (``depth_model_path``) run on each generated frame,
its inverse depth fitted (scale + shift) to the cache depth on the frame's covered pixels (frames with too few covered
pixels fall back to the cache depth); reported as not metric, so the pipeline's Sim(3) alignment refines it.

Lifecycle: construction only validates options; :meth:`warmup` loads everything (once); :meth:`close` drops the
weights and empties the CUDA cache; :meth:`memory_estimate` reads only headers.
"""

from __future__ import annotations

import gc
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKLWan

from worldstereo_ros.errors import ConfigError
from worldstereo_ros.generation.base import (
    CancelCheck,
    Capabilities,
    FrameCallback,
    GeneratedFrames,
    GenerationRequest,
    Generator,
    MemoryEstimate,
    StepCallback,
    cpu_generator,
)
from worldstereo_ros.generation.diffusion.camera import plucker_rays, target_and_reference_tokens
from worldstereo_ros.generation.diffusion.checkpoint import inspect_weights, load_transformer, resolve_base, variant_dir
from worldstereo_ros.generation.diffusion.conditioning import chunk_inputs, nearest_bucket, plan_chunks, resize
from worldstereo_ros.generation.diffusion.config import LATENT_CHANNELS, VARIANTS, WorldStereoConfig
from worldstereo_ros.generation.diffusion.depth import DepthEstimator, align_to_covered
from worldstereo_ros.generation.diffusion.encoders import ImageEncoder, PromptEncoder
from worldstereo_ros.generation.diffusion.sampler import DMDScheduler, denoise, initial_noise, unipc_scheduler
from worldstereo_ros.generation.diffusion.vae import KeyframeVAE
from worldstereo_ros.generation.render_fill import RenderFillGenerator

DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
OFFLOAD = ("none", "model", "group")
DEPTH = ("cache", "estimator")


@dataclass
class EncodedChunk:
    """The model inputs of one chunk except the noisy latent.

    Attributes:
        condition: (1, 20, F, h, w) I2V mask + image latent. context / negative_context: (1, 512, text_dim).
        image_context: (1, tokens, image_dim). kwargs: the transformer's geometry/reference inputs.
        latent_shape: (1, 16, F, h, w).
    """

    condition: torch.Tensor
    context: torch.Tensor
    negative_context: torch.Tensor
    image_context: torch.Tensor
    kwargs: dict[str, Any]
    latent_shape: tuple[int, ...]

    def velocity(self, model: torch.nn.Module, grad: bool = False):
        """``velocity(x, t, positive)`` of ``model`` with these conditions (the samplers' and DMD's signature)."""
        dtype = model.patch_embedding.weight.dtype

        def call(x: torch.Tensor, t: torch.Tensor, positive: bool) -> torch.Tensor:
            with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
                return model(torch.cat([x, self.condition], dim=1).to(dtype), t,
                             self.context if positive else self.negative_context, self.image_context, **self.kwargs)

        return call


#: Loaded weights shared by backends with the same load settings (a run that builds several pipelines, like the
#: bench, loads the model once). Entries leave with close().
_LOADED: dict[tuple, dict[str, Any]] = {}


def _auto_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


class WorldStereoDiffusionGenerator(Generator):
    """The released WorldStereo model from local weights (module doc).

    Args:
        model_path: folder holding ``worldstereo-<variant>/``.
        variant: ``memory-dmd`` (4 steps, default), ``memory`` or ``camera`` (UniPC + CFG).
        base_model_path: local diffusers Wan2.1-I2V folder (default: ``<model_path>/<repo name of base_model>``).
        device: torch device. dtype: ``auto`` (bf16 on CUDA when supported, else fp16; fp32 on CPU) or a name.
        steps: denoising steps (default: 4 for ``memory-dmd``, 40 otherwise).
        guidance_scale: text CFG scale of the UniPC variants (the DMD variant uses none).
        prompt: default prompt when a request has none. negative_prompt: None = the config's.
        offload: ``none``, ``model`` (each component on the device only while it runs) or ``group`` (diffusers block
            group offload of the transformer, for GPUs smaller than the model).
        depth: ``cache`` or ``estimator`` (module doc).
        depth_model_path: local transformers depth-model folder for ``depth="estimator"``.
        fp8_storage: keep the transformer's linear/conv weights in float8 (e4m3) and cast each layer to ``dtype``
            when it runs (diffusers layerwise casting): half the bf16 weight memory, quality unmeasured.
        max_references: most references per chunk (the release keeps 8).
        clip_release_scaling: feed CLIP 0-255 values as the release does (module doc of :mod:`.encoders`).
        prompt_cache_dir: folder for cached prompt embeddings (None: memory only).
    """

    name = "worldstereo"
    uses_references = True

    def __init__(self, model_path: str | Path = "", variant: str = "memory-dmd",
                 base_model_path: str | Path | None = None,
                 device: str | torch.device = "cpu", dtype: str = "auto", steps: int | None = None,
                 guidance_scale: float = 5.0, prompt: str = "", negative_prompt: str | None = None,
                 offload: str = "none", depth: str = "cache", max_references: int = 8,
                 clip_release_scaling: bool = True, prompt_cache_dir: str | Path | None = None,
                 depth_model_path: str | Path | None = None, fp8_storage: bool = False, **unknown: Any) -> None:
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown option of the worldstereo backend; valid: model_path, "
                              "variant, base_model_path, device, dtype, steps, guidance_scale, prompt, "
                              "negative_prompt, offload, depth, max_references, clip_release_scaling, "
                              "prompt_cache_dir, depth_model_path, fp8_storage")
        if not model_path or not Path(model_path).is_dir():
            raise ConfigError("model_path", f"expected a folder with worldstereo-<variant>/ (the released weights), "
                              f"got {str(model_path)!r}")
        if variant not in VARIANTS:
            raise ConfigError("variant", f"expected one of {', '.join(VARIANTS)}, got {variant!r}")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError("device", f"not a torch device: {device!r}") from exc
        if dtype not in DTYPES:
            raise ConfigError("dtype", f"expected one of {', '.join(DTYPES)}, got {dtype!r}")
        self.dtype = DTYPES[dtype] or _auto_dtype(self.device)
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 1000):
            raise ConfigError("steps", f"expected an int in [1, 1000] or None, got {steps!r}")
        if not isinstance(guidance_scale, (int, float)) or guidance_scale < 1:
            raise ConfigError("guidance_scale", f"expected a float >= 1, got {guidance_scale!r}")
        if offload not in OFFLOAD:
            raise ConfigError("offload", f"expected one of {', '.join(OFFLOAD)}, got {offload!r}")
        if offload != "none" and self.device.type == "cpu":
            raise ConfigError("offload", f"offload {offload!r} moves weights between the CPU and an accelerator; "
                              f"device is cpu")
        if depth not in DEPTH:
            raise ConfigError("depth", f"expected one of {', '.join(DEPTH)}, got {depth!r}")
        if depth == "estimator" and not (depth_model_path and Path(depth_model_path).is_dir()):
            raise ConfigError("depth_model_path", f"depth='estimator' needs a local depth-model folder, got "
                              f"{depth_model_path!r}")
        self.depth_model_path = depth_model_path
        if not isinstance(fp8_storage, bool):
            raise ConfigError("fp8_storage", f"expected a bool, got {fp8_storage!r}")
        self.fp8_storage = fp8_storage
        if isinstance(max_references, bool) or not isinstance(max_references, int) or not 1 <= max_references <= 8:
            raise ConfigError("max_references", f"expected an int in [1, 8], got {max_references!r}")
        self.model_path, self.variant = Path(model_path), variant
        self.base_model_path = base_model_path
        self.steps, self.guidance_scale = steps, float(guidance_scale)
        self.prompt, self.negative_prompt = str(prompt), negative_prompt
        self.offload, self.depth_mode, self.max_references = offload, depth, max_references
        self.clip_release_scaling, self.prompt_cache_dir = bool(clip_release_scaling), prompt_cache_dir

        self.config = WorldStereoConfig.from_file(variant_dir(model_path, variant) / "config.json", variant)
        self.uses_references = self.config.is_memory
        self._parts: dict[str, Any] | None = None
        #: Optional hooks (the pipeline sets them per trajectory): on_step(step, total) after each denoising step
        #: and a cancel check polled before each step.
        self.on_step: StepCallback | None = None
        self.should_cancel: CancelCheck | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(frame_rule=f"chunks:{self.config.nframe}", resolution_buckets=self.config.scale_map,
                            depth_is_metric=self.depth_mode == "cache", uses_prompt=True, needs_weights=True)

    @property
    def num_steps(self) -> int:
        return self.steps or (self.config.dmd_steps if self.config.is_dmd else 40)

    def memory_estimate(self) -> MemoryEstimate:
        report = inspect_weights(self.model_path, self.base_model_path)
        info = report.variants[self.variant]
        bytes_per = 1 if self.fp8_storage else torch.finfo(self.dtype).bits // 8
        branch = info.get("params_in_file", 0)
        weights = (report.base_params + branch) * bytes_per
        return MemoryEstimate(weights_bytes=weights, activations_bytes=int(5e9 if report.base_params > 1e9 else 1e6),
                              notes=f"{self.variant}, {self.dtype}, offload {self.offload}; transformer only "
                                    f"(text encoder/CLIP/VAE extra; docs/gpu-sizing.md)")

    def _load_key(self) -> tuple:
        return (str(self.model_path.resolve()), self.variant, str(self.base_model_path), str(self.device),
                str(self.dtype), self.offload, self.fp8_storage, self.depth_mode, str(self.depth_model_path),
                self.clip_release_scaling, str(self.prompt_cache_dir))

    def warmup(self) -> None:
        """Load the transformer, VAE and encoders once (idempotent; shared with backends of the same settings)."""
        if self._parts is not None:
            return
        if self._load_key() in _LOADED:
            self._parts = _LOADED[self._load_key()]
            return

        t0 = time.perf_counter()
        load_device = "cpu" if self.offload != "none" else self.device
        base = resolve_base(self.model_path, self.config, self.base_model_path)
        transformer, _, report = load_transformer(self.model_path, self.variant, base, self.dtype, load_device)
        if self.fp8_storage:
            transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=self.dtype)
        if self.offload == "group":
            transformer.enable_group_offload(onload_device=self.device, offload_device=torch.device("cpu"),
                                             offload_type="block_level", num_blocks_per_group=1, use_stream=True)
        vae_dtype = self.dtype if self.device.type == "cuda" else torch.float32
        vae = AutoencoderKLWan.from_pretrained(str(base / "vae"), torch_dtype=vae_dtype).to(load_device).eval()
        if self.config.is_dmd:
            scheduler = DMDScheduler(self.config.dmd_start_steps, self.config.dmd_end_steps, self.config.gen_shift)
        else:
            sched_cfg = base / "scheduler" / "scheduler_config.json"

            scheduler = unipc_scheduler(config=json.loads(sched_cfg.read_text()) if sched_cfg.is_file() else None)
        self._parts = dict(transformer=transformer, vae=KeyframeVAE(vae), scheduler=scheduler,
                           text=PromptEncoder(base, load_device, self.prompt_cache_dir),
                           image=ImageEncoder(base, load_device, self.clip_release_scaling), report=report,
                           load_s=time.perf_counter() - t0)
        if self.depth_mode == "estimator":
            self._parts["depth"] = DepthEstimator(self.depth_model_path, self.device)
        _LOADED[self._load_key()] = self._parts

    def close(self) -> None:
        """Drop every weight (also for backends sharing them); the next warmup()/generate() reloads."""
        _LOADED.pop(self._load_key(), None)
        self._parts = None
        gc.collect()
        if self.device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ generate

    def _on_device(self, module: torch.nn.Module):
        """Context for ``offload="model"``: the module sits on the device only while used."""
        backend = self

        class _Ctx:
            def __enter__(self):
                if backend.offload == "model":
                    module.to(backend.device)

            def __exit__(self, *exc):
                if backend.offload == "model":
                    module.to("cpu")
                return False

        return _Ctx()

    def encode_chunk(self, inputs, prompt: str) -> "EncodedChunk":
        """Every model input of one chunk except the noisy latent (also used by DMD distillation)."""
        self.warmup()
        p = self._parts
        vae, dev = p["vae"], self.device
        nf = self.config.nframe
        hb, wb = inputs.render_rgb.shape[1:3]
        w2c = torch.linalg.inv(torch.as_tensor(inputs.T_world_cam, dtype=torch.float64)).float()
        K = torch.as_tensor(inputs.K, dtype=torch.float32)
        # 1. renders, start image and references through the VAE (each frame alone)
        with self._on_device(vae.vae):
            render_latent = vae.encode_frames(inputs.render_rgb).to(dev)
            condition = vae.encode_i2v_condition(inputs.start_rgb, nf).to(dev)
            ref_lat = None
            if self.config.is_memory:
                ref_rgb = inputs.ref_rgb if len(inputs.ref_rgb) else inputs.start_rgb[None]
                lat = vae.encode_frames(ref_rgb).to(dev)
                # The I2V input layout with the clean latent in both slots and a mask of ones.
                ref_lat = torch.cat([lat, torch.ones(1, 4, *lat.shape[2:], device=dev), lat], dim=1)
        kwargs: dict[str, Any] = dict(render_latent=render_latent,
                                      render_mask=torch.as_tensor(inputs.render_mask)[None, None].to(dev),
                                      plucker=plucker_rays(K, w2c, hb, wb).to(dev)
                                      if self.config.branch.add_channels == 7 else None)
        # 2. camera tokens of targets and references (memory variants)
        if self.config.is_memory:
            if len(inputs.ref_rgb):
                ref_w2c = torch.linalg.inv(torch.as_tensor(inputs.ref_T_world_cam, dtype=torch.float64)).float()
                ref_index = torch.as_tensor(inputs.ref_index, dtype=torch.long)
            else:  # the start image as the only reference (the memory model needs one)
                ref_w2c, ref_index = w2c[:1], torch.zeros(1, dtype=torch.long)
            qt, qt_ref = target_and_reference_tokens(w2c, ref_w2c)
            kwargs.update(reference_latent=ref_lat, ref_index=ref_index.to(dev), camera_qt=qt[None].to(dev),
                          camera_qt_ref=qt_ref[None].to(dev))
        # 3. text (positive and negative) and image context
        negative = self.negative_prompt if self.negative_prompt is not None else self.config.negative_prompt
        with self._on_device(p["text"].model):
            ctx, ctx_neg = p["text"].encode(prompt).to(dev), p["text"].encode(negative).to(dev)
        with self._on_device(p["image"].model):
            image_ctx = p["image"].encode(inputs.start_rgb).to(dev)
        return EncodedChunk(condition=condition, context=ctx, negative_context=ctx_neg, image_context=image_ctx,
                            kwargs=kwargs, latent_shape=(1, LATENT_CHANNELS, nf, hb // 8, wb // 8))

    def _chunk(self, inputs, generator: torch.Generator, prompt: str, step_offset: int,
               total_steps: int) -> np.ndarray:
        """Generate one chunk; returns its keyframes (F, Hb, Wb, 3) in [0, 1]."""
        p = self._parts
        enc = self.encode_chunk(inputs, prompt)
        model = p["transformer"]
        guidance = 1.0 if self.config.is_dmd else self.guidance_scale
        velocity = enc.velocity(model)
        with self._on_device(model if self.offload == "model" else torch.nn.Identity()):
            latents = denoise(velocity, initial_noise(enc.latent_shape, generator, self.device), p["scheduler"],
                              self.num_steps, guidance, self.on_step, self.should_cancel, step_offset, total_steps)
        with self._on_device(p["vae"].vae):
            return p["vae"].decode_frames(latents)

    def generate(self, request: GenerationRequest, generator: torch.Generator | None = None,
                 on_frame: FrameCallback | None = None) -> GeneratedFrames:
        """Frames at the requested poses (module doc); deterministic for a given CPU ``generator``."""
        request.check()
        generator = cpu_generator(generator)
        self.warmup()
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        n, h, w = request.num_frames, request.height, request.width
        bucket = nearest_bucket(h, w, self.config.scale_map)
        plans = plan_chunks(n, self.config.nframe)
        prompt = request.prompt or self.prompt
        rgb = np.zeros((n, h, w, 3), np.float32)
        start = request.start_rgb if request.start_rgb is not None else request.cond_rgb[0]
        # Depth first (it does not depend on the generated colours): cache render + geometric completion.
        t_depth = time.perf_counter()
        depth = RenderFillGenerator(ssm=False).generate(request).depth
        timings["depth"] = time.perf_counter() - t_depth
        emitted = 0
        for c, plan in enumerate(plans):
            inputs = chunk_inputs(request, plan, self.config.nframe, bucket, start, self.max_references)
            frames = self._chunk(inputs, generator, prompt, c * self.num_steps, len(plans) * self.num_steps)
            for j, slot in zip(plan.requested, plan.slots):
                if j < emitted:
                    continue  # a chained chunk's first frame was made by the previous chunk
                rgb[j] = resize(frames[slot], h, w)
                if j == 0 and request.start_rgb is not None:
                    rgb[0] = request.start_rgb  # pose 0 is a real view
                if self.depth_mode == "estimator":
                    depth[j] = self._estimated_depth(rgb[j], depth[j], request.cond_depth[j], request.cond_mask[j])
                if on_frame is not None:
                    on_frame(int(j), rgb[j], depth[j], ~np.asarray(request.cond_mask[j], bool))
                emitted = j + 1
            start = rgb[plan.requested[-1]]
        timings["generate"] = time.perf_counter() - t0 - timings["depth"]
        return GeneratedFrames(rgb=rgb, depth=depth, imagined=~np.asarray(request.cond_mask, bool),
                               depth_is_metric=self.depth_mode == "cache", timings_s=timings)

    def _estimated_depth(self, rgb: np.ndarray, fallback: np.ndarray, cond_depth: np.ndarray,
                         cond_mask: np.ndarray) -> np.ndarray:
        """Estimator depth of one frame aligned to its covered pixels, else ``fallback`` (module doc)."""
        est, _ = self._parts["depth"].depth_up_to_scale(rgb)
        aligned = align_to_covered(est, np.asarray(cond_depth, np.float32), np.asarray(cond_mask, bool))
        return fallback if aligned is None else aligned

