"""Configuration of the WorldStereo transformer: the variant, the geometry branch and the released ``config.json``.

The released checkpoint folder ``worldstereo-{camera,memory,memory-dmd}/config.json`` names the diffusers Wan2.1-I2V
base (``base_model``) and the branch (``controlnet_cfg``). This module parses and validates it into plain dataclasses
(no torch), so ``weights inspect`` can read it before anything heavy is imported.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from worldstereo_ros.errors import ConfigError

#: The released model kinds: the sub-folder names of the release.
VARIANTS = ("camera", "memory", "memory-dmd")
#: Resolution buckets (height, width) of the release, all near 368.6 k pixels and multiples of 16.
DEFAULT_BUCKETS: tuple[tuple[int, int], ...] = (
    (480, 768), (512, 720), (576, 640), (608, 608), (640, 576), (720, 512), (768, 480))
#: Keyframes one model call makes (latent frames of an 81-frame video: (81 - 1) / 4 + 1).
NUM_KEYFRAMES = 21
#: Text tokens of the UMT5 context (hard-coded in diffusers' WanAttnProcessor too).
TEXT_TOKENS = 512
#: Channels of the I2V condition mask in the latent input (the other 16 are the image latent).
I2V_MASK_CHANNELS = 4
#: Latent channels of AutoencoderKLWan.
LATENT_CHANNELS = 16


@dataclass
class BranchConfig:
    """The geometry (GGM) branch, ``controlnet_cfg`` of the release.

    Attributes:
        dim: width of the branch blocks.
        num_heads: attention heads of the branch (``dim`` must divide; head dim splits in 3 RoPE parts).
        ffn_dim: hidden width of the branch MLP.
        num_layers: branch blocks; block i feeds backbone block i.
        time_embed_dim: width of the timestep embedding the blocks are modulated by (= backbone width).
        conv_out_dim: width of the branch patch embedding (= backbone width: it starts as a copy of it).
        add_channels: channels of the pixel-resolution extra input: 1 (hole mask) or 7 (mask + Plücker rays).
        mid_channels: hidden channels of the mask/camera embedding.
        mask_downsample: temporal stride of the mask embedding; 1 for keyframe models.
        update_ref: reference tokens flow from block to block (False: each block re-reads the embedding).
        main_camera_embedding: per-frame camera tokens (``camera_qt``) added to the backbone tokens.
        camera_embedding_dim: size of one camera token input (quaternion + translation = 7).
        ref_embedding: the checkpoint holds ``ref_index_embedding`` (created, never used by the forward).
        interp: I2V-interp padding of the mask embedding (only with ``mask_downsample`` > 1).
    """

    dim: int = 1024
    num_heads: int = 16
    ffn_dim: int = 3072
    num_layers: int = 20
    time_embed_dim: int = 5120
    conv_out_dim: int = 5120
    add_channels: int = 7
    mid_channels: int = 64
    mask_downsample: int = 1
    update_ref: bool = True
    main_camera_embedding: bool = False
    camera_embedding_dim: int = 7
    ref_embedding: bool = False
    interp: bool = False

    def validate(self) -> "BranchConfig":
        for name in ("dim", "num_heads", "ffn_dim", "num_layers", "time_embed_dim", "conv_out_dim", "add_channels",
                     "mid_channels", "mask_downsample", "camera_embedding_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"controlnet_cfg.{name}", f"expected an int >= 1, got {value!r}")
        for name in ("update_ref", "main_camera_embedding", "ref_embedding", "interp"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"controlnet_cfg.{name}", f"expected a bool, got {getattr(self, name)!r}")
        if self.dim % self.num_heads:
            raise ConfigError("controlnet_cfg.num_heads", f"must divide dim {self.dim}, got {self.num_heads}")
        if (self.dim // self.num_heads) % 2:
            raise ConfigError("controlnet_cfg.num_heads", f"head dim {self.dim // self.num_heads} must be even (RoPE)")
        if self.mid_channels % 8:
            raise ConfigError("controlnet_cfg.mid_channels", f"must be a multiple of 8 (GroupNorm groups), got "
                              f"{self.mid_channels}")
        if self.add_channels not in (1, 7):
            raise ConfigError("controlnet_cfg.add_channels", f"expected 1 (mask) or 7 (mask + Plücker), got "
                              f"{self.add_channels}")
        return self

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "BranchConfig":
        """Known keys of ``controlnet_cfg``; keys this code does not use (``base_model``...) are ignored."""
        if not isinstance(values, Mapping):
            raise ConfigError("controlnet_cfg", f"expected a mapping, got {type(values).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names}).validate()


@dataclass
class WorldStereoConfig:
    """One released model folder's ``config.json``.

    Attributes:
        variant: ``camera`` (branch only), ``memory`` (branch + camera tokens + joint reference attention) or
            ``memory-dmd`` (the memory model distilled to 4 steps).
        base_model: hub id (or path) of the diffusers Wan2.1-I2V base the transformer and encoders come from.
        branch: the geometry branch.
        nframe: keyframes per call.
        scale_map: resolution buckets (height, width), pixels.
        negative_prompt: text of the unconditional branch of classifier-free guidance.
        dmd_start_steps, dmd_end_steps, gen_shift, dmd_steps: the DMD schedule (timesteps of
            ``linspace(start, end, steps)`` shifted by ``gen_shift``).
        raw: the whole parsed file (for fields this code does not interpret).
    """

    variant: str
    base_model: str
    branch: BranchConfig
    nframe: int = NUM_KEYFRAMES
    scale_map: tuple[tuple[int, int], ...] = DEFAULT_BUCKETS
    negative_prompt: str = ""
    dmd_start_steps: float = 250.0
    dmd_end_steps: float = 1000.0
    gen_shift: float = 5.0
    dmd_steps: int = 4
    raw: dict = field(default_factory=dict)

    @property
    def is_memory(self) -> bool:
        return self.variant in ("memory", "memory-dmd")

    @property
    def is_dmd(self) -> bool:
        return self.variant == "memory-dmd"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], variant: str) -> "WorldStereoConfig":
        """Validate a parsed ``config.json``; ConfigError names the first bad field."""
        if variant not in VARIANTS:
            raise ConfigError("variant", f"expected one of {', '.join(VARIANTS)}, got {variant!r}")
        if not isinstance(values, Mapping):
            raise ConfigError("config.json", f"expected a JSON object, got {type(values).__name__}")
        for key in ("base_model", "controlnet_cfg"):
            if key not in values:
                raise ConfigError(key, "missing from config.json (the release requires it)")
        branch = BranchConfig.from_dict(values["controlnet_cfg"])
        if variant in ("memory", "memory-dmd") and not branch.main_camera_embedding:
            raise ConfigError("controlnet_cfg.main_camera_embedding", f"the {variant} variant needs camera tokens")
        scale_map = values.get("scale_map", DEFAULT_BUCKETS)
        try:
            buckets = tuple((int(h), int(w)) for h, w in scale_map)
        except (TypeError, ValueError) as exc:
            raise ConfigError("scale_map", f"expected [[height, width], ...], got {scale_map!r}") from exc
        for h, w in buckets:
            if h % 16 or w % 16 or h <= 0 or w <= 0:
                raise ConfigError("scale_map", f"bucket {h}x{w} is not a positive multiple of 16")
        nframe = values.get("nframe", NUM_KEYFRAMES)
        if isinstance(nframe, bool) or not isinstance(nframe, int) or nframe < 2:
            raise ConfigError("nframe", f"expected an int >= 2, got {nframe!r}")
        return cls(variant=variant, base_model=str(values["base_model"]), branch=branch, nframe=nframe,
                   scale_map=buckets, negative_prompt=str(values.get("negative_prompt", "") or ""),
                   dmd_start_steps=float(values.get("dmd_start_steps", 250.0)),
                   dmd_end_steps=float(values.get("dmd_end_steps", 1000.0)),
                   gen_shift=float(values.get("gen_shift", 5.0)), dmd_steps=int(values.get("dmd_steps", 4)),
                   raw=dict(values))

    @classmethod
    def from_file(cls, path: str | Path, variant: str) -> "WorldStereoConfig":
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError("config.json", f"not found: {path}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError("config.json", f"{path} is not valid JSON ({exc})") from exc
        return cls.from_dict(values, variant)

    def to_dict(self) -> dict[str, Any]:
        """The release's ``config.json`` layout."""
        out = dict(self.raw)
        out.update(base_model=self.base_model, controlnet_cfg=dataclasses.asdict(self.branch), nframe=self.nframe,
                   scale_map=[list(b) for b in self.scale_map], negative_prompt=self.negative_prompt,
                   dmd_start_steps=self.dmd_start_steps, dmd_end_steps=self.dmd_end_steps, gen_shift=self.gen_shift,
                   dmd_steps=self.dmd_steps)
        return out


def tiny_backbone_kwargs() -> dict[str, Any]:
    """A ``WanTransformer3DModel`` config small enough for CPU tests (head dim 12 splits 4/4/4 for RoPE)."""
    return dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, out_channels=16,
                text_dim=32, freq_dim=32, ffn_dim=48, num_layers=2, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=16, added_kv_proj_dim=24, rope_max_seq_len=64)


def tiny_branch(memory: bool = True) -> BranchConfig:
    """A branch config matching :func:`tiny_backbone_kwargs` (widths 24, branch dim 16, one block)."""
    return BranchConfig(dim=16, num_heads=2, ffn_dim=32, num_layers=1, time_embed_dim=24, conv_out_dim=24,
                        add_channels=7, mid_channels=16, mask_downsample=1, update_ref=True,
                        main_camera_embedding=memory, camera_embedding_dim=7, ref_embedding=memory).validate()
