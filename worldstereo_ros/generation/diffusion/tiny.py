"""A tiny random WorldStereo release on disk (tests, the CPU demo, the bench's ``--tiny`` flag).

:func:`write_tiny_release` writes exactly the released layout with random weights small enough to run on a CPU in
a fraction of a second per call: ``worldstereo-<variant>/{config.json, model.safetensors}`` and a diffusers Wan
base folder ``tiny-wan-i2v/{transformer, vae, text_encoder, tokenizer, image_encoder, image_processor, scheduler}``.
Its outputs are meaningless images; it exercises every code path of loading, conditioning and sampling.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    DepthAnythingConfig,
    DepthAnythingForDepthEstimation,
    Dinov2Config,
    DPTImageProcessor,
    PreTrainedTokenizerFast,
    UMT5Config,
    UMT5EncoderModel,
)

from worldstereo_ros.generation.diffusion.checkpoint import save_released_layout, variant_dir
from worldstereo_ros.generation.diffusion.config import WorldStereoConfig, tiny_backbone_kwargs, tiny_branch
from worldstereo_ros.generation.diffusion.sampler import unipc_scheduler
from worldstereo_ros.generation.diffusion.transformer import WorldStereoTransformer

TINY_BASE = "tiny-wan-i2v"
#: Buckets of the tiny release (height, width), multiples of 16.
TINY_BUCKETS = ((32, 48), (48, 32), (48, 48))
_WORDS = ["<pad>", "</s>", "<unk>"] + [f"w{i}" for i in range(61)]


def _tokenizer(path: Path) -> None:
    vocab = {w: i for i, w in enumerate(_WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=512)
    fast.save_pretrained(str(path))


def write_tiny_release(path: str | Path, variants: tuple[str, ...] = ("memory-dmd",), nframe: int = 5,
                       seed: int = 0) -> Path:
    """Write a tiny random release under ``path`` (see the module doc) and return ``path``.

    Args:
        variants: which of ``camera``, ``memory``, ``memory-dmd`` to write (same base).
        nframe: keyframes per call (the real models use 21; fewer keep CPU tests fast).
        seed: torch seed of the random weights.
    """
    path = Path(path)
    base = path / TINY_BASE
    torch.manual_seed(seed)
    for i, variant in enumerate(variants):
        memory = variant != "camera"
        model = WorldStereoTransformer(tiny_branch(memory), kind="memory" if memory else "camera",
                                       **tiny_backbone_kwargs())
        # Random (not zero) residual layers, so that renders, rays and camera tokens change the output as in a
        # trained model.
        with torch.no_grad():
            zero_layers = [model.controlnet.proj_out, model.controlnet.controlnet_mask_embedding.mask_zero_proj]
            if model.camera_embedding is not None:
                zero_layers.append(model.camera_embedding[4])
            for module in zero_layers:
                for p in module.parameters():
                    p.normal_(0.0, 0.05)
        cfg = WorldStereoConfig(variant=variant, base_model=f"tiny/{TINY_BASE}", branch=tiny_branch(memory),
                                nframe=nframe, scale_map=TINY_BUCKETS)
        # The first variant writes the base; later ones keep it and carry their whole backbone in model.safetensors.
        prefixes = ("controlnet.", "camera_embedding.", "ref_index_embedding.") if i == 0 else ("",)
        if i == 0:
            save_released_layout(model, cfg, path, base_dirname=TINY_BASE, model_file_prefixes=prefixes)
        else:
            folder = variant_dir(path, variant)
            folder.mkdir(parents=True, exist_ok=True)
            out_cfg = cfg.to_dict()
            out_cfg["base_model"] = TINY_BASE
            (folder / "config.json").write_text(json.dumps(out_cfg, indent=2))
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                     temperal_downsample=[False, True, True]).save_pretrained(str(base / "vae"))
    UMT5EncoderModel(UMT5Config(vocab_size=len(_WORDS), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                                feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1)
                     ).save_pretrained(str(base / "text_encoder"))
    _tokenizer(base / "tokenizer")
    CLIPVisionModel(CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     image_size=32, patch_size=8)).save_pretrained(str(base / "image_encoder"))
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                       do_rescale=False).save_pretrained(str(base / "image_processor"))
    unipc_scheduler().save_pretrained(str(base / "scheduler"))
    (base / "model_index.json").write_text(json.dumps({"_class_name": "WanImageToVideoPipeline"}))
    return path


def write_tiny_depth_model(path: str | Path, seed: int = 0) -> Path:
    """A tiny random Depth Anything (relative) model + processor in a transformers folder (76 k parameters)."""
    torch.manual_seed(seed)
    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                            image_size=56, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[8, 16, 16, 16], fusion_hidden_size=16,
                              head_hidden_size=8, reassemble_hidden_size=16, patch_size=14,
                              depth_estimation_type="relative")
    model = DepthAnythingForDepthEstimation(cfg).eval()
    with torch.no_grad():  # a positive, image-dependent output like a trained head (ReLU of random weights)
        model.head.conv3.bias.fill_(1.0)
    path = Path(path)
    model.save_pretrained(str(path))
    DPTImageProcessor(do_resize=True, size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      do_rescale=True, do_normalize=True, image_mean=[0.485, 0.456, 0.406],
                      image_std=[0.229, 0.224, 0.225]).save_pretrained(str(path))
    return path
