"""The WorldStereo transformer: diffusers' Wan2.1-I2V DiT plus the geometry branch, camera tokens and references.

Two variants share this class:
- ``camera``: diffusers' Wan blocks unchanged + the geometry (GGM) branch (render latent, hole mask, Plücker rays).
- ``memory`` (and its distilled ``memory-dmd`` weights): the branch + a per-frame camera token (``camera_qt``) added
  to every token of its frame + :class:`~.modules.ReferenceBlock` blocks attending jointly over reference keyframes.

The branch is run block by block just before the backbone block it feeds, so only one residual is alive at a time
(the release computes all of them first: 20 x 30 240 x 5120 bf16 = 6.2 GB at 480 x 768); the result is identical.

Shapes (B batch, F latent frames, h x w latent size, H x W = 8h x 8w pixels, R references, C backbone width):
``hidden_states`` (B, 36, F, h, w) = noisy latent 16 | I2V mask 4 | image-condition latent 16; ``render_latent``
(B, 16, F, h, w); ``render_mask`` (B, 1, F, H, W) with 1 = hole; ``plucker`` (B, 6, F, H, W);
``reference_latent`` (B, 36, R, h, w); ``ref_index`` (R,) long, the target frame minus one each reference was
retrieved for; ``camera_qt`` (B, F, 7) and ``camera_qt_ref`` (B, R, 7); ``timestep`` (B,) in [0, 1000];
``encoder_hidden_states`` (B, 512, text_dim); ``encoder_hidden_states_image`` (B, 257, image_dim).
Output: (B, 16, F, h, w) flow velocity ``noise - x0``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed, WanTransformer3DModel

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.diffusion.config import LATENT_CHANNELS, BranchConfig
from worldstereo_ros.generation.diffusion.modules import GeometryBranch, ReferenceBlock, zero_init

KINDS = ("camera", "memory")
#: The number of target frames ``ref_index_embedding`` was sized for in the release (unused by the forward).
REF_INDEX_SIZE = 21


class WorldStereoTransformer(WanTransformer3DModel):
    """Wan2.1-I2V transformer with the WorldStereo conditions (module doc).

    Args:
        branch: the geometry branch configuration.
        kind: ``"camera"`` or ``"memory"``.
        **wan_config: ``WanTransformer3DModel`` arguments (the base folder's ``transformer/config.json``).
    """

    _no_split_modules = ["WanTransformerBlock", "ReferenceBlock", "BranchBlock"]
    _repeated_blocks = ["WanTransformerBlock", "ReferenceBlock"]

    def __init__(self, branch: BranchConfig, kind: str = "memory", **wan_config: Any) -> None:
        if kind not in KINDS:
            raise InputError("kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
        super().__init__(**wan_config)
        cfg = self.config
        inner = cfg.num_attention_heads * cfg.attention_head_dim
        if branch.conv_out_dim != inner or branch.time_embed_dim != inner:
            raise InputError("controlnet_cfg.conv_out_dim", f"conv_out_dim {branch.conv_out_dim} and time_embed_dim "
                             f"{branch.time_embed_dim} must equal the backbone width {inner}")
        if kind == "memory" and not branch.main_camera_embedding:
            raise InputError("controlnet_cfg.main_camera_embedding", "the memory variant needs camera tokens")
        self.kind = kind
        self.branch_config = branch
        self.inner_dim = inner
        if kind == "memory":
            self.blocks = nn.ModuleList(
                ReferenceBlock(inner, cfg.ffn_dim, cfg.num_attention_heads, cfg.qk_norm, cfg.cross_attn_norm, cfg.eps,
                               cfg.added_kv_proj_dim) for _ in range(cfg.num_layers))
        if branch.num_layers > cfg.num_layers:
            raise InputError("controlnet_cfg.num_layers", f"{branch.num_layers} branch blocks but only "
                             f"{cfg.num_layers} backbone blocks")

        self.controlnet = GeometryBranch(branch, cfg.in_channels, tuple(cfg.patch_size), inner)
        # The branch patch embedding starts as a copy of the backbone's (the render latent takes the image slot).
        with torch.no_grad():
            self.controlnet.controlnet_patch_embedding.weight.copy_(self.patch_embedding.weight)
            self.controlnet.controlnet_patch_embedding.bias.copy_(self.patch_embedding.bias)
        self.controlnet_rope = WanRotaryPosEmbed(branch.dim // branch.num_heads, tuple(cfg.patch_size),
                                                 cfg.rope_max_seq_len)
        self.camera_embedding = None
        if branch.main_camera_embedding:
            self.camera_embedding = nn.Sequential(
                nn.Linear(branch.camera_embedding_dim, inner // 2), nn.SiLU(), nn.Linear(inner // 2, inner), nn.SiLU(),
                zero_init(nn.Linear(inner, inner)))
        self.ref_index_embedding = None
        if branch.ref_embedding:
            # Present in the released checkpoints (zero-initialised) but never read by their forward.
            self.ref_index_embedding = zero_init(nn.Embedding(REF_INDEX_SIZE, inner))

    # ------------------------------------------------------------------ helpers

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters outside the geometry branch (the ones DMD trains; the branch stays frozen)."""
        branch = {id(p) for p in self.controlnet.parameters()}
        return [p for p in self.parameters() if id(p) not in branch]

    def _camera_tokens(self, qt: torch.Tensor | None, frames: int, tokens_per_frame: int,
                       name: str) -> torch.Tensor | None:
        if qt is None or self.camera_embedding is None:
            return None
        if qt.ndim != 3 or qt.shape[1] != frames or qt.shape[2] != self.branch_config.camera_embedding_dim:
            raise InputError(name, f"expected shape (B, {frames}, {self.branch_config.camera_embedding_dim}), "
                             f"got {tuple(qt.shape)}")
        emb = self.camera_embedding(qt.to(self.patch_embedding.weight.dtype))
        return emb[:, :, None].expand(-1, -1, tokens_per_frame, -1).flatten(1, 2)

    def _rotary(self, frames: int, h: int, w: int, ref_index: torch.Tensor | None, device: torch.device):
        """Target RoPE tables and (memory) reference tables: frame ``ref_index + 1``, width columns w..2w-1."""
        span = frames if ref_index is None else max(frames, int(ref_index.max()) + 2)
        pt, ph, pw = self.config.patch_size
        width = w if ref_index is None else 2 * w
        # WanRotaryPosEmbed reads only the shape of its input.
        cos, sin = self.rope(torch.empty(1, 0, span * pt, h * ph, width * pw, device=device))
        cos = cos.reshape(span, h, width, *cos.shape[2:])
        sin = sin.reshape(span, h, width, *sin.shape[2:])
        target = (cos[:frames, :, :w].reshape(1, -1, *cos.shape[3:]),
                  sin[:frames, :, :w].reshape(1, -1, *sin.shape[3:]))
        if ref_index is None:
            return target, None
        sel = ref_index.to(cos.device) + 1
        ref = (cos[sel, :, w:].reshape(1, -1, *cos.shape[3:]), sin[sel, :, w:].reshape(1, -1, *sin.shape[3:]))
        return target, ref

    def _check(self, hidden_states: torch.Tensor, render_latent: torch.Tensor, render_mask: torch.Tensor,
               plucker: torch.Tensor | None, reference_latent: torch.Tensor | None,
               ref_index: torch.Tensor | None) -> None:
        cfg = self.config
        if hidden_states.ndim != 5 or hidden_states.shape[1] != cfg.in_channels:
            raise InputError("hidden_states", f"expected (B, {cfg.in_channels}, F, h, w), got "
                             f"{tuple(hidden_states.shape)}")
        b, _, f, h, w = hidden_states.shape
        pt, ph, pw = cfg.patch_size
        if f % pt or h % ph or w % pw:
            raise InputError("hidden_states", f"F, h, w must be multiples of the patch size {tuple(cfg.patch_size)}")
        if tuple(render_latent.shape) != (b, LATENT_CHANNELS, f, h, w):
            raise InputError("render_latent", f"expected {(b, LATENT_CHANNELS, f, h, w)}, got "
                             f"{tuple(render_latent.shape)}")
        extra = 1 + (0 if plucker is None else plucker.shape[1])
        if extra != self.branch_config.add_channels:
            raise InputError("plucker", f"the branch takes {self.branch_config.add_channels} mask+ray channels, "
                             f"got {extra} (Plücker rays {'missing' if plucker is None else 'not expected'})")
        if tuple(render_mask.shape) != (b, 1, f, 8 * h, 8 * w):
            raise InputError("render_mask", f"expected {(b, 1, f, 8 * h, 8 * w)}, got {tuple(render_mask.shape)}")
        if plucker is not None and tuple(plucker.shape) != (b, 6, f, 8 * h, 8 * w):
            raise InputError("plucker", f"expected {(b, 6, f, 8 * h, 8 * w)}, got {tuple(plucker.shape)}")
        if self.kind == "memory":
            if reference_latent is None or ref_index is None:
                raise InputError("reference_latent", "the memory variant needs >= 1 reference (single view: pass the "
                                 "start image with ref_index 0)")
            r = reference_latent.shape[2]
            if reference_latent.shape[:2] != (b, cfg.in_channels) or reference_latent.shape[3:] != (h, w) or r < 1:
                raise InputError("reference_latent", f"expected (B, {cfg.in_channels}, R, {h}, {w}), got "
                                 f"{tuple(reference_latent.shape)}")
            if tuple(ref_index.shape) != (r,) or ref_index.dtype not in (torch.int64, torch.int32):
                raise InputError("ref_index", f"expected an integer tensor of shape ({r},), got "
                                 f"{tuple(ref_index.shape)} "
                                 f"{ref_index.dtype}")
            if int(ref_index.min()) < 0 or int(ref_index.max()) + 1 >= cfg.rope_max_seq_len:
                raise InputError("ref_index", f"values must lie in [0, {cfg.rope_max_seq_len - 2}], got "
                                 f"{ref_index.tolist()}")

    # ------------------------------------------------------------------ forward

    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                encoder_hidden_states_image: torch.Tensor | None = None, render_latent: torch.Tensor | None = None,
                render_mask: torch.Tensor | None = None, plucker: torch.Tensor | None = None,
                reference_latent: torch.Tensor | None = None, ref_index: torch.Tensor | None = None,
                camera_qt: torch.Tensor | None = None, camera_qt_ref: torch.Tensor | None = None,
                return_dict: bool = False, **unused: Any) -> torch.Tensor:
        """Flow velocity (B, 16, F, h, w) for the inputs of the module doc."""
        if unused:
            raise InputError(sorted(unused)[0], "unknown input of WorldStereoTransformer.forward")
        if render_latent is None or render_mask is None:
            raise InputError("render_latent", "the geometry branch needs render_latent and render_mask")
        # 1. check inputs
        self._check(hidden_states, render_latent, render_mask, plucker, reference_latent, ref_index)
        b, _, f, h, w = hidden_states.shape
        pt, ph, pw = self.config.patch_size
        tf, th, tw = f // pt, h // ph, w // pw
        memory = self.kind == "memory"
        # Inputs follow the weights' dtype (bf16 on a GPU); fp32-kept modules upcast internally as in diffusers.
        dtype = self.patch_embedding.weight.dtype
        hidden_states, render_latent, render_mask = (t.to(dtype) for t in (hidden_states, render_latent, render_mask))
        plucker = None if plucker is None else plucker.to(dtype)
        reference_latent = None if reference_latent is None else reference_latent.to(dtype)
        encoder_hidden_states = encoder_hidden_states.to(dtype)
        if encoder_hidden_states_image is not None:
            encoder_hidden_states_image = encoder_hidden_states_image.to(dtype)

        # 2. positions
        rotary, rotary_ref = self._rotary(tf, th, tw, ref_index if memory else None, hidden_states.device)
        branch_rotary = self.controlnet_rope(render_latent)

        # 3. tokens (+ camera tokens)
        branch_in = torch.cat([hidden_states[:, : self.config.in_channels - LATENT_CHANNELS], render_latent], dim=1)
        extra = render_mask if plucker is None else torch.cat([render_mask, plucker], dim=1)
        x = self.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()
        cam = self._camera_tokens(camera_qt, tf, th * tw, "camera_qt")
        if cam is not None:
            x = x + cam
        ref = None
        if memory:
            ref = self.patch_embedding(reference_latent).flatten(2).transpose(1, 2)
            cam_ref = self._camera_tokens(camera_qt_ref, reference_latent.shape[2] // pt, th * tw, "camera_qt_ref")
            if cam_ref is not None:
                ref = ref + cam_ref

        # 4. timestep, text and image context
        temb, timestep_proj, context, context_image = self.condition_embedder(
            timestep, encoder_hidden_states, encoder_hidden_states_image, timestep_seq_len=None)
        timestep_proj = timestep_proj.unflatten(1, (6, -1))
        if context_image is not None:
            context = torch.cat([context_image, context], dim=1)

        # 5. blocks, each branch block just before the backbone block its residual feeds
        branch_x = self.controlnet.embed(branch_in, extra)
        ref_in = ref
        for i, block in enumerate(self.blocks):
            residual = None
            if i < self.branch_config.num_layers:
                branch_x, residual = self.controlnet.step(i, branch_x, temb.to(branch_x.dtype), branch_rotary)
            if memory:
                x, ref = block(x, ref if self.branch_config.update_ref else ref_in, context, timestep_proj, rotary,
                               rotary_ref)
            else:
                x = block(x, context, timestep_proj, rotary)
            if residual is not None:
                x = x + residual

        # 6. output norm, projection, unpatchify
        shift, scale = (self.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        x = (self.norm_out(x.float()) * (1 + scale) + shift).type_as(x)
        x = self.proj_out(x)
        x = x.reshape(b, tf, th, tw, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.flatten(6, 7).flatten(4, 5).flatten(2, 3)
