"""Building blocks of the WorldStereo transformer that diffusers does not have.

- :class:`MaskCamEmbed`: hole mask + Plücker rays (pixel resolution) -> branch tokens, through a zero-initialised
  projection (a fresh model ignores them).
- :class:`BranchBlock`: one block of the geometry (GGM) branch: CogVideoX-style timestep modulation, self-attention
  with RoPE and no text cross-attention, GELU-tanh MLP.
- :class:`GeometryBranch`: the branch; its block i yields a residual (zero-initialised projection) that is added to
  the backbone's hidden states after backbone block i. Parameter names follow the release (``controlnet.*``).
- :class:`ReferenceBlock`: the memory variant's backbone block (spatial-stereo memory): self-attention runs jointly
  over ``[reference tokens; target tokens]`` with shared weights; cross-attention and output only for the target.
  Its parameter names equal diffusers' ``WanTransformerBlock`` (it is a subclass), so Wan weights load unchanged.

Token tensors are (B, L, C) in the module's dtype; RoPE tables are the (cos, sin) pairs of
``diffusers``' ``WanRotaryPosEmbed``, shaped (1, L, 1, head_dim).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from diffusers.models.transformers.transformer_wan import WanTransformerBlock

from worldstereo_ros.generation.diffusion.config import BranchConfig

RotaryTables = tuple[torch.Tensor, torch.Tensor]


def zero_init(module: nn.Module) -> nn.Module:
    """Zero every parameter of ``module`` in place and return it (a residual path that starts as a no-op)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def apply_rotary(x: torch.Tensor, rotary: RotaryTables) -> torch.Tensor:
    """Rotate channel pairs (0,1), (2,3)... of ``x`` (B, L, heads, head_dim) by the Wan RoPE tables."""
    cos, sin = rotary
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)
    return out.type_as(x)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Unmasked scaled-dot-product attention on (B, L, heads, head_dim) tensors; returns (B, Lq, heads*head_dim)."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2).flatten(2, 3)


class MaskCamEmbed(nn.Module):
    """Hole mask (+ Plücker rays) at pixel resolution -> one token per backbone patch.

    Input (B, add_channels, F, H, W) with H, W multiples of 16; output (B, F' * H/16 * W/16, conv_out_dim) with
    F' = F for ``mask_downsample`` 1 (keyframe models).
    """

    def __init__(self, cfg: BranchConfig) -> None:
        super().__init__()
        self.mask_downsample = cfg.mask_downsample
        # The video (non-keyframe) release pads 3 frames in front (and behind for interpolation) so that
        # 4k+1 frames reach the latent's frame count; keyframe models use stride 1 and no padding.
        self.padding = None if cfg.mask_downsample == 1 else [0, 0, 0, 0, 3, 3 if cfg.interp else 0]
        stride = (cfg.mask_downsample, 8, 8)
        self.mask_proj = nn.Sequential(nn.Conv3d(cfg.add_channels, cfg.mid_channels, kernel_size=stride, stride=stride),
                                       nn.GroupNorm(cfg.mid_channels // 8, cfg.mid_channels), nn.SiLU())
        self.mask_zero_proj = zero_init(nn.Conv3d(cfg.mid_channels, cfg.conv_out_dim, kernel_size=(1, 2, 2),
                                                  stride=(1, 2, 2)))

    def forward(self, extra: torch.Tensor) -> torch.Tensor:
        if self.padding is not None:
            extra = F.pad(extra, self.padding)
        return self.mask_zero_proj(self.mask_proj(extra)).flatten(2).transpose(1, 2)


class ModulatedLayerNorm(nn.Module):
    """LayerNorm whose shift/scale/gate come from the timestep embedding (CogVideoX's LayerNormZero)."""

    def __init__(self, temb_dim: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(temb_dim, 3 * dim)
        self.norm = nn.LayerNorm(dim, eps=1e-5, elementwise_affine=True)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift, scale, gate = self.linear(F.silu(temb)).chunk(3, dim=1)
        return self.norm(x) * (1 + scale[:, None]) + shift[:, None], gate[:, None]


class BranchAttnProcessor:
    """Self-attention of a branch block: q/k RMS-normalised across heads, RoPE, SDPA (no mask, no text)."""

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None,
                 attention_mask=None, rotary_emb: RotaryTables | None = None, **_: object) -> torch.Tensor:
        q = attn.norm_q(attn.to_q(hidden_states)).unflatten(2, (attn.heads, -1))
        k = attn.norm_k(attn.to_k(hidden_states)).unflatten(2, (attn.heads, -1))
        v = attn.to_v(hidden_states).unflatten(2, (attn.heads, -1))
        if rotary_emb is not None:
            q, k = apply_rotary(q, rotary_emb), apply_rotary(k, rotary_emb)
        out = attention(q, k, v).type_as(q)
        return attn.to_out[1](attn.to_out[0](out))


class BranchBlock(nn.Module):
    """One geometry-branch block (B, L, dim) -> (B, L, dim), modulated by ``temb`` (B, time_embed_dim)."""

    def __init__(self, cfg: BranchConfig) -> None:
        super().__init__()
        self.norm1 = ModulatedLayerNorm(cfg.time_embed_dim, cfg.dim)
        self.self_attn = Attention(query_dim=cfg.dim, heads=cfg.num_heads, kv_heads=cfg.num_heads,
                                   dim_head=cfg.dim // cfg.num_heads, qk_norm="rms_norm_across_heads", eps=1e-6,
                                   bias=True, out_bias=True, processor=BranchAttnProcessor())
        self.norm2 = ModulatedLayerNorm(cfg.time_embed_dim, cfg.dim)
        self.ffn = nn.Sequential(nn.Linear(cfg.dim, cfg.ffn_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.ffn_dim, cfg.dim))

    def forward(self, x: torch.Tensor, temb: torch.Tensor, rotary: RotaryTables) -> torch.Tensor:
        h, gate = self.norm1(x, temb)
        x = x + gate * self.self_attn(h, rotary_emb=rotary)
        h, gate = self.norm2(x, temb)
        return x + gate * self.ffn(h)


class GeometryBranch(nn.Module):
    """The GGM branch (``controlnet.*`` in the checkpoint): render latent + mask + rays -> per-block residuals.

    Args:
        cfg: branch configuration.
        in_channels: channels of the branch patch embedding input (noisy latent 16 + I2V mask 4 + render latent 16).
        patch_size: the backbone's (t, h, w) patch size.
        out_dim: width of the residuals (= backbone width).
    """

    def __init__(self, cfg: BranchConfig, in_channels: int, patch_size: tuple[int, int, int], out_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.proj_in = nn.Linear(cfg.conv_out_dim, cfg.dim) if cfg.conv_out_dim != cfg.dim else nn.Identity()
        self.controlnet_blocks = nn.ModuleList(BranchBlock(cfg) for _ in range(cfg.num_layers))
        self.proj_out = nn.ModuleList(zero_init(nn.Linear(cfg.dim, out_dim)) for _ in range(cfg.num_layers))
        self.controlnet_patch_embedding = nn.Conv3d(in_channels, cfg.conv_out_dim, kernel_size=patch_size,
                                                    stride=patch_size)
        self.controlnet_mask_embedding = MaskCamEmbed(cfg)

    def embed(self, branch_latent: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        """Tokens (B, L, dim) from the latent input (B, in_channels, F, h, w) and mask/rays (B, A, F, 8h, 8w)."""
        tokens = self.controlnet_patch_embedding(branch_latent).flatten(2).transpose(1, 2)
        return self.proj_in(tokens + self.controlnet_mask_embedding(extra))

    def step(self, index: int, x: torch.Tensor, temb: torch.Tensor,
             rotary: RotaryTables) -> tuple[torch.Tensor, torch.Tensor]:
        """Run block ``index``: returns (its output tokens, its residual for backbone block ``index``)."""
        x = self.controlnet_blocks[index](x, temb, rotary)
        return x, self.proj_out[index](x)


class ReferenceBlock(WanTransformerBlock):
    """Wan block with joint reference self-attention (the memory variant's spatial-stereo memory).

    Reference tokens get the target's timestep modulation and the same q/k/v/out/FFN weights; attention runs once
    over ``[ref; target]`` without a mask; cross-attention (text + image) only for the target.
    """

    def _self_attention(self, x: torch.Tensor, ref: torch.Tensor, rotary: RotaryTables,
                        rotary_ref: RotaryTables) -> tuple[torch.Tensor, torch.Tensor]:
        attn = self.attn1

        def qkv(states: torch.Tensor, rot: RotaryTables) -> tuple[torch.Tensor, ...]:
            q = attn.norm_q(attn.to_q(states)).unflatten(2, (attn.heads, -1))
            k = attn.norm_k(attn.to_k(states)).unflatten(2, (attn.heads, -1))
            v = attn.to_v(states).unflatten(2, (attn.heads, -1))
            return apply_rotary(q, rot), apply_rotary(k, rot), v

        q_t, k_t, v_t = qkv(x, rotary)
        q_r, k_r, v_r = qkv(ref, rotary_ref)
        out = attention(torch.cat([q_r, q_t], 1), torch.cat([k_r, k_t], 1), torch.cat([v_r, v_t], 1)).type_as(q_t)
        n_ref = ref.shape[1]
        project = lambda o: attn.to_out[1](attn.to_out[0](o))  # noqa: E731 - shared output projection
        return project(out[:, n_ref:]), project(out[:, :n_ref])

    def forward(self, hidden_states: torch.Tensor, ref_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                temb: torch.Tensor, rotary_emb: RotaryTables,
                rotary_emb_ref: RotaryTables) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, C) target and (B, Lr, C) reference tokens -> both updated; ``temb`` (B, 6, C)."""
        shift, scale, gate, c_shift, c_scale, c_gate = (self.scale_shift_table + temb.float()).chunk(6, dim=1)

        def modulate(s: torch.Tensor, norm: nn.Module, sh: torch.Tensor, sc: torch.Tensor) -> torch.Tensor:
            return (norm(s.float()) * (1 + sc) + sh).type_as(s)

        x, ref = hidden_states, ref_states
        attn_x, attn_r = self._self_attention(modulate(x, self.norm1, shift, scale),
                                              modulate(ref, self.norm1, shift, scale), rotary_emb, rotary_emb_ref)
        x = (x.float() + attn_x * gate).type_as(x)
        ref = (ref.float() + attn_r * gate).type_as(ref)
        x = x + self.attn2(self.norm2(x.float()).type_as(x), encoder_hidden_states, None, None)
        x = (x.float() + self.ffn(modulate(x, self.norm3, c_shift, c_scale)).float() * c_gate).type_as(x)
        ref = (ref.float() + self.ffn(modulate(ref, self.norm3, c_shift, c_scale)).float() * c_gate).type_as(ref)
        return x, ref
